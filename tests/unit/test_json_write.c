/*
 * test_json_write.c - unit tests for core/json_write.c: the text matches
 * json_dumps(JSON_COMPACT) for every value without reals (a fixed set and
 * random trees), reals are the shortest text that reads back, escapes,
 * invalid UTF-8, depth and cycles fail and leave the buffer as it was, and
 * the buffer is reused and released.
 */
#include "json_write.h"
#include "unit.h"
#include "json_random.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Our text of v as a NUL-terminated string in a static buffer, or NULL. */
static const char *ours(const json_t *v)
{
    static char out[1 << 16];
    mcpgw_jbuf b = { NULL, 0, 0 };
    const char *r = NULL;

    if (mcpgw_json_write(&b, v) == 0 && b.len < sizeof(out)) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
        r = out;
    }
    mcpgw_jbuf_free(&b);
    return r;
}

/* 1 when our text of the JSON text src equals json_dumps's. */
static int same_as_jansson(const char *src)
{
    json_error_t err;
    json_t *v = json_loads(src, JSON_DECODE_ANY, &err);
    char *want;
    const char *got;
    int same;

    if (!v) {
        fprintf(stderr, "  bad test input %s: %s\n", src, err.text);
        return 0;
    }
    want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    got = ours(v);
    same = want && got && strcmp(want, got) == 0;
    if (!same)
        fprintf(stderr, "  %s: jansson %s, ours %s\n", src, want ? want : "(null)",
                got ? got : "(null)");
    free(want);
    json_decref(v);
    return same;
}

TEST(matches_jansson_on_fixed_values)
{
    static const char *const cases[] = {
        "{}", "[]", "null", "true", "false", "0", "-1", "42",
        "9223372036854775807", "-9223372036854775808", "\"\"",
        "{\"type\":\"ping\",\"id\":\"p0-00001234\"}",
        "{\"a\":[1,2,{\"b\":null,\"c\":[true,false]}],\"d\":{}}",
        "[[[[[]]]],{},[{}]]",
        "\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"",
        "\"\\u0001\\u001f\\u007f \\u00e9 \\u20ac \\ud83d\\ude00\"",
        "{\"\\u00e9t\\u00e9\":\"caf\\u00e9\",\"k\\\"ey\":\"v\"}",
        "{\"z\":1,\"a\":2,\"m\":3}",
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(same_as_jansson(cases[i]));
}

TEST(matches_jansson_on_random_trees)
{
    unsigned seed = 20261125;
    int mismatches = 0;

    for (int i = 0; i < 2000; i++) {
        json_t *v = random_json(&seed, 5, 0);
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *got = ours(v);

        if (!want || !got || strcmp(want, got) != 0)
            mismatches++;
        free(want);
        json_decref(v);
    }
    CHECK_EQ_INT(mismatches, 0);
}

static int real_text_is(double d, const char *want)
{
    json_t *v = json_real(d);
    const char *got = ours(v);
    int ok = got && strcmp(got, want) == 0;

    if (!ok)
        fprintf(stderr, "  %.17g: want %s, got %s\n", d, want, got ? got : "(null)");
    json_decref(v);
    return ok;
}

TEST(reals_are_shortest_and_stay_reals)
{
    CHECK(real_text_is(0.6, "0.6"));
    CHECK(real_text_is(0.1 + 0.2, "0.30000000000000004"));
    CHECK(real_text_is(1.0, "1.0"));
    CHECK(real_text_is(-0.0, "-0.0"));
    CHECK(real_text_is(100.0, "100.0"));
    CHECK(real_text_is(1e300, "1e+300"));
    CHECK(real_text_is(2.5e-7, "2.5e-07"));
    CHECK(real_text_is(123456.789, "123456.789"));
}

TEST(reals_read_back_exactly)
{
    unsigned seed = 7;
    int bad = 0;

    for (int i = 0; i < 20000; i++) {
        uint64_t bits = ((uint64_t)rand_r(&seed) << 40) ^ ((uint64_t)rand_r(&seed) << 20) ^
                        (uint64_t)rand_r(&seed);
        double d;
        json_t *v;
        const char *got;

        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            continue;
        v = json_real(d);
        got = ours(v);
        if (!got || strtod(got, NULL) != d || !strpbrk(got, ".e"))
            bad++;
        json_decref(v);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(invalid_utf8_fails_and_keeps_the_buffer)
{
    mcpgw_jbuf b = { NULL, 0, 0 };
    json_t *bad = json_stringn_nocheck("ok \xC3\x28 no", 9);
    json_t *arr = json_pack("[s, o]", "first", bad);

    CHECK_EQ_INT(mcpgw_json_write(&b, json_null()), 0);
    CHECK_EQ_INT(b.len, 4);
    CHECK_EQ_INT(mcpgw_json_write(&b, arr), -1);
    CHECK_EQ_INT(b.len, 4);
    CHECK(memcmp(b.data, "null", 4) == 0);
    json_decref(arr);
    mcpgw_jbuf_free(&b);
}

TEST(too_deep_and_cycles_fail)
{
    json_t *root = json_array(), *cur = root;
    json_t *cyc = json_array(), *inner = json_array();
    mcpgw_jbuf b = { NULL, 0, 0 };

    for (int i = 0; i < MCPGW_JSON_WRITE_MAX_DEPTH + 10; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    CHECK_EQ_INT(mcpgw_json_write(&b, root), -1);
    CHECK_EQ_INT(b.len, 0);
    json_decref(root);

    /* exactly at the limit it works */
    root = json_array();
    cur = root;
    for (int i = 0; i < MCPGW_JSON_WRITE_MAX_DEPTH - 1; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    CHECK_EQ_INT(mcpgw_json_write(&b, root), 0);
    CHECK_EQ_INT(b.len, 2 * MCPGW_JSON_WRITE_MAX_DEPTH);
    json_decref(root);

    b.len = 0;
    /* cyc -> inner -> cyc (jansson refuses only a direct self-append) */
    CHECK_EQ_INT(json_array_append(cyc, inner), 0);
    CHECK_EQ_INT(json_array_append(inner, cyc), 0);
    CHECK_EQ_INT(mcpgw_json_write(&b, cyc), -1);
    CHECK_EQ_INT(b.len, 0);
    json_array_clear(inner);    /* break the cycle so both can be freed */
    json_decref(inner);
    json_decref(cyc);
    CHECK_EQ_INT(mcpgw_json_write(&b, NULL), -1);
    mcpgw_jbuf_free(&b);
}

TEST(buffer_is_reused_and_released)
{
    mcpgw_jbuf b = { NULL, 0, 0 };
    json_t *big = json_array();
    char *first;

    CHECK_EQ_INT(mcpgw_json_write(&b, json_true()), 0);
    first = b.data;
    b.len = 0;
    CHECK_EQ_INT(mcpgw_json_write(&b, json_false()), 0);
    CHECK(b.data == first);                 /* no new allocation for a small value */
    CHECK_EQ_INT(b.len, 5);
    /* appending keeps what is there */
    CHECK_EQ_INT(mcpgw_json_write(&b, json_null()), 0);
    CHECK(b.len == 9 && memcmp(b.data, "falsenull", 9) == 0);

    for (int i = 0; i < 20000; i++)
        json_array_append_new(big, json_integer(i));
    b.len = 0;
    CHECK_EQ_INT(mcpgw_json_write(&b, big), 0);
    CHECK(b.cap >= b.len && b.len > 100000);
    mcpgw_jbuf_reset(&b, 65536);            /* grew past keep: memory given back */
    CHECK(b.data == NULL && b.cap == 0 && b.len == 0);
    CHECK_EQ_INT(mcpgw_json_write(&b, json_true()), 0);
    mcpgw_jbuf_reset(&b, 65536);            /* small: kept */
    CHECK(b.data != NULL && b.len == 0);
    json_decref(big);
    mcpgw_jbuf_free(&b);
}

int main(void)
{
    RUN(matches_jansson_on_fixed_values);
    RUN(matches_jansson_on_random_trees);
    RUN(reals_are_shortest_and_stay_reals);
    RUN(reals_read_back_exactly);
    RUN(invalid_utf8_fails_and_keeps_the_buffer);
    RUN(too_deep_and_cycles_fail);
    RUN(buffer_is_reused_and_released);
    return UNIT_SUMMARY();
}
