/*
 * fuzz_json_view.c - libFuzzer target for the message view
 * (core/json_view.c), differential against the gateway's reader
 * (core/json_read.c), which builds the tree a tree handler would get.
 *
 * The scan must give the reader's verdict: invalid exactly when the reader
 * refuses the input; for a valid object it serves, every top-level member
 * of the tree is found with the same kind, integer and decoded string, and
 * buf_member's text is the writer's text of the tree's member; a key the
 * tree lacks is absent. The input is also tried wrapped as the value of a
 * member ({"k":INPUT}) so that any value reaches the member paths.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "json_read.h"
#include "json_view.h"
#include "json_write.h"

static int kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return MCPGW_JSON_OBJECT;
    case JSON_ARRAY: return MCPGW_JSON_ARRAY;
    case JSON_STRING: return MCPGW_JSON_STRING;
    case JSON_INTEGER: return MCPGW_JSON_INTEGER;
    case JSON_REAL: return MCPGW_JSON_REAL;
    case JSON_TRUE: return MCPGW_JSON_TRUE;
    case JSON_FALSE: return MCPGW_JSON_FALSE;
    case JSON_NULL: return MCPGW_JSON_NULL;
    }
    return -1;
}

static void check(const char *text, size_t len)
{
    mcpgw_view v;
    int verdict = mcpgw_json_view_scan(&v, text, len);
    json_t *tree = mcpgw_json_read(text, len, NULL);
    const char *key;
    json_t *val;
    mcpgw_member m;

    FUZZ_ASSERT((verdict == MCPGW_JSON_VIEW_INVALID) == (tree == NULL));
    if (tree && !json_is_object(tree))
        FUZZ_ASSERT(verdict == MCPGW_JSON_VIEW_OTHER);
    if (tree && verdict == MCPGW_JSON_VIEW_OK) {
        FUZZ_ASSERT(json_is_object(tree));
        json_object_foreach(tree, key, val) {
            mcpgw_jbuf want = { NULL, 0, 0 }, got = { NULL, 0, 0 };
            int kind = mcpgw_json_view_get(&v, key, &m);

            FUZZ_ASSERT(kind == kind_of(val));
            FUZZ_ASSERT(m.text >= text && m.text + m.len <= text + len);
            if (kind == MCPGW_JSON_INTEGER)
                FUZZ_ASSERT(m.integer == json_integer_value(val));
            if (kind == MCPGW_JSON_STRING) {
                size_t n = 0;
                const char *s = mcpgw_json_view_string(&v, &m, &n);
                FUZZ_ASSERT(s && n == json_string_length(val) && s[n] == '\0' &&
                            memcmp(s, json_string_value(val), n) == 0);
            }
            /* the writer refuses only what nests at its limit */
            if (mcpgw_json_write(&want, val) == 0) {
                FUZZ_ASSERT(mcpgw_json_view_write_member(&got, &m) == 0);
                FUZZ_ASSERT(want.len == got.len && memcmp(want.data, got.data, want.len) == 0);
            }
            mcpgw_jbuf_free(&want);
            mcpgw_jbuf_free(&got);
        }
        FUZZ_ASSERT(mcpgw_json_view_get(&v, "\x01 not a key", &m) == MCPGW_JSON_ABSENT ||
                    json_object_get(tree, "\x01 not a key"));
    }
    mcpgw_json_view_release(&v);
    json_decref(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *wrapped = malloc(size + 8);

    check((const char *)data, size);
    if (wrapped) {
        memcpy(wrapped, "{\"k\":", 5);
        memcpy(wrapped + 5, data, size);
        wrapped[size + 5] = '}';
        check(wrapped, size + 6);
        free(wrapped);
    }
    return 0;
}
