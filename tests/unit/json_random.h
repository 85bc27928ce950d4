/*
 * json_random.h - random jansson trees for the JSON reader and writer unit
 * tests (test_json_read.c, test_json_write.c): null, booleans, integers,
 * optionally reals, strings of every ASCII byte but NUL, and arrays and
 * objects (keys with escapes) up to `depth` levels. Deterministic per seed.
 */
#ifndef MCPGW_TEST_JSON_RANDOM_H
#define MCPGW_TEST_JSON_RANDOM_H

#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>

static json_t *random_json(unsigned *seed, int depth, int with_reals)
{
    int kind = rand_r(seed) % 9;
    char s[24];
    size_t n;

    if (depth <= 0 && kind >= 7)
        kind = 4;                   /* a string instead of a container */
    if (!with_reals && kind == 3)
        kind = 2;
    switch (kind) {
    case 0: return json_null();
    case 1: return json_boolean(rand_r(seed) & 1);
    case 2: return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) & 1 ? -1000003 : 31));
    case 3: return json_real((double)rand_r(seed) / ((rand_r(seed) % 1000) + 1) *
                             (rand_r(seed) & 1 ? -1 : 1));
    case 4: case 5: case 6:
        n = (size_t)(rand_r(seed) % (int)sizeof(s));
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(1 + rand_r(seed) % 127);
        return json_stringn(s, n);
    case 7: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 5; i > 0; i--)
            json_array_append_new(a, random_json(seed, depth - 1, with_reals));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = rand_r(seed) % 5; i > 0; i--) {
            snprintf(s, sizeof(s), "k%d\n\t\"%d", rand_r(seed) % 100, i);
            json_object_set_new(o, s, random_json(seed, depth - 1, with_reals));
        }
        return o;
    }
    }
}

#endif
