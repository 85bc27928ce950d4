/*
 * test_json_read.c - unit tests for core/json_read.c: values equal what
 * jansson reads (fixed inputs and random trees printed with and without
 * whitespace), escapes and surrogates, the documented differences (big
 * integers become reals, any top-level value), and every kind of bad input
 * failing with a JSON.parse-style text and the right position.
 */
#include "json_read.h"
#include "unit.h"
#include "json_random.h"

#include <stdlib.h>
#include <string.h>

/* 1 when mcpgw_json_read and json_loadb(JSON_DECODE_ANY) give equal values. */
static int same_as_jansson(const char *src)
{
    json_error_t jerr;
    mcpgw_json_read_error err;
    json_t *want = json_loads(src, JSON_DECODE_ANY, &jerr);
    json_t *got = mcpgw_json_read(src, strlen(src), &err);
    int same = want && got && json_equal(want, got);

    if (!same)
        fprintf(stderr, "  %s: jansson %s, ours %s\n", src, want ? "ok" : jerr.text,
                got ? "ok" : err.text);
    json_decref(want);
    json_decref(got);
    return same;
}

TEST(reads_what_jansson_reads)
{
    static const char *const cases[] = {
        "{}", "[]", "null", "true", "false", "0", "-0", "-1", "42", "1.5", "-2.5e-3",
        "1E10", "1e+2", "0.000001", "9223372036854775807", "-9223372036854775808",
        "123456789012345678", "\"\"", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ",
        "{\"type\":\"ping\",\"id\":\"p0-00001234\"}",
        "{\"a\":[1,2,{\"b\":null,\"c\":[true,false]}],\"d\":{}}",
        "[[[[[]]]],{},[{}]]",
        "\"quote \\\" backslash \\\\ slash \\/ tab \\t nl \\n cr \\r bs \\b ff \\f\"",
        "\"\\u0001\\u001f\\u007f \\u00e9 \\u20AC \\ud83d\\ude00 caf\xc3\xa9 \xf0\x9f\x98\x80\"",
        "{\"\\u00e9t\\u00e9\":\"caf\\u00e9\",\"k\\\"ey\":\"v\"}",
        "{\"a\":1,\"a\":2}",
        "[1.7976931348623157e308, 5e-324, 2.2250738585072014e-308]",
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(same_as_jansson(cases[i]));
}

TEST(reads_random_trees_back)
{
    unsigned seed = 1125;
    int bad = 0;

    for (int i = 0; i < 3000; i++) {
        json_t *v = random_json(&seed, 5, 1);
        size_t flags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(17) |
                       (i % 3 == 0 ? JSON_INDENT(2) : i % 3 == 1 ? JSON_COMPACT : 0) |
                       (i % 5 == 0 ? JSON_ENSURE_ASCII : 0);
        char *text = json_dumps(v, flags);
        json_t *back = text ? mcpgw_json_read(text, strlen(text), NULL) : NULL;

        if (!back || !json_equal(v, back)) {
            if (bad++ < 3)
                fprintf(stderr, "  not read back: %s\n", text ? text : "(null)");
        }
        json_decref(back);
        free(text);
        json_decref(v);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(big_integers_become_reals)
{
    json_t *v = mcpgw_json_read("12345678901234567890", 20, NULL);

    CHECK(json_is_real(v) && json_real_value(v) == 12345678901234567890.0);
    json_decref(v);
    v = mcpgw_json_read("-9223372036854775809", 20, NULL);
    CHECK(json_is_real(v));
    json_decref(v);
    v = mcpgw_json_read("9223372036854775807", 19, NULL);
    CHECK(json_is_integer(v) && json_integer_value(v) == 9223372036854775807LL);
    json_decref(v);
}

TEST(escapes_decode)
{
    const char *src = "[\"a\\u00e9\\ud83d\\ude00\\n\\/\", \"\\u0041\\u004A\"]";
    json_t *v = mcpgw_json_read(src, strlen(src), NULL);

    CHECK(v != NULL);
    CHECK_EQ_STR(json_string_value(json_array_get(v, 0)), "a\xc3\xa9\xf0\x9f\x98\x80\n/");
    CHECK_EQ_STR(json_string_value(json_array_get(v, 1)), "AJ");
    json_decref(v);

    /* a long escaped key next to escaped values: the key survives the
     * scratch being reused for the value */
    src = "{\"\\u006bey with an escape and more than sixty-four bytes in it, padding padding\":\"v\\u0061l\"}";
    v = mcpgw_json_read(src, strlen(src), NULL);
    CHECK(v != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(
                     v, "key with an escape and more than sixty-four bytes in it, padding padding")),
                 "val");
    json_decref(v);
}

/* src fails with exactly this text. */
static int fails_with(const char *src, size_t len, const char *want)
{
    mcpgw_json_read_error err;
    json_t *v = mcpgw_json_read(src, len, &err);
    int ok = !v && strcmp(err.text, want) == 0;

    if (!ok)
        fprintf(stderr, "  %.*s: want \"%s\", got %s \"%s\"\n", (int)len, src, want,
                v ? "a value and" : "", v ? "" : err.text);
    json_decref(v);
    return ok;
}
#define FAILS(src, want) fails_with(src, sizeof(src) - 1, want)

TEST(bad_input_fails_clearly)
{
    CHECK(FAILS("", "Unexpected end of JSON input"));
    CHECK(FAILS("   ", "Unexpected end of JSON input"));
    CHECK(FAILS("{\"type\": \"ping\", ", "Unexpected end of JSON input"));
    CHECK(FAILS("nonsense", "Unexpected token 'o' in JSON at position 1"));
    CHECK(FAILS("{\"a\":1}x", "Unexpected token 'x' in JSON at position 7"));
    CHECK(FAILS("{\"a\" 1}", "Unexpected token '1' in JSON at position 5"));
    CHECK(FAILS("{a:1}", "Unexpected token 'a' in JSON at position 1"));
    CHECK(FAILS("[1,]", "Unexpected token ']' in JSON at position 3"));
    CHECK(FAILS("[1 2]", "Unexpected token '2' in JSON at position 3"));
    CHECK(FAILS("{\"a\":1,}", "Unexpected token '}' in JSON at position 7"));
    CHECK(FAILS("01", "Unexpected token '1' in JSON at position 1"));
    CHECK(FAILS("-", "Unexpected end of JSON input"));
    CHECK(FAILS("1.", "Unexpected end of JSON input"));
    CHECK(FAILS("1.e5", "Unexpected token 'e' in JSON at position 2"));
    CHECK(FAILS("1e", "Unexpected end of JSON input"));
    CHECK(FAILS("+1", "Unexpected token '+' in JSON at position 0"));
    CHECK(FAILS("1e400", "Number out of range in JSON at position 0"));
    CHECK(FAILS("[-1e400]", "Number out of range in JSON at position 1"));
    CHECK(FAILS("tru", "Unexpected end of JSON input"));
    CHECK(FAILS("nul!", "Unexpected token '!' in JSON at position 3"));
    CHECK(FAILS("\"abc", "Unexpected end of JSON input"));
    CHECK(FAILS("\"a\tb\"", "Bad control character in string literal in JSON at position 2"));
    CHECK(FAILS("\"a\\qb\"", "Bad escaped character in JSON at position 2"));
    CHECK(FAILS("\"\\u12G4\"", "Bad Unicode escape in JSON at position 1"));
    CHECK(FAILS("\"\\u12\"", "Bad Unicode escape in JSON at position 1"));
    CHECK(FAILS("\"\\ud800\"", "Lone surrogate in Unicode escape in JSON at position 1"));
    CHECK(FAILS("\"\\ud800\\u0041\"", "Lone surrogate in Unicode escape in JSON at position 1"));
    CHECK(FAILS("\"x\\udc00\"", "Lone surrogate in Unicode escape in JSON at position 2"));
    CHECK(FAILS("\"a\\u0000b\"", "\\u0000 is not allowed in JSON at position 2"));
    CHECK(FAILS("\"caf\xc3\"", "Invalid UTF-8 in string in JSON at position 1"));
    CHECK(FAILS("\"\xed\xa0\x80\"", "Invalid UTF-8 in string in JSON at position 1"));
    CHECK(FAILS("[\"ok\",\"\xc3\x28\"]", "Invalid UTF-8 in string in JSON at position 7"));
    CHECK(FAILS("\x01", "Unexpected byte 0x01 in JSON at position 0"));
    CHECK(FAILS("\"a\0b\"", "Bad control character in string literal in JSON at position 2"));
    CHECK(fails_with("{\"a\":1}\0", 8, "Unexpected byte 0x00 in JSON at position 7"));
}

TEST(depth_is_limited)
{
    size_t n = MCPGW_JSON_READ_MAX_DEPTH;
    char *s = malloc(2 * n + 4);
    json_t *v;
    mcpgw_json_read_error err;

    memset(s, '[', n);
    memset(s + n, ']', n);
    v = mcpgw_json_read(s, 2 * n, &err);
    CHECK(v != NULL);                   /* exactly at the limit */
    json_decref(v);

    memset(s, '[', n + 1);
    memset(s + n + 1, ']', n + 1);
    v = mcpgw_json_read(s, 2 * n + 2, &err);
    CHECK(v == NULL);
    CHECK_EQ_STR(err.text, "Maximum nesting depth exceeded in JSON at position 2048");
    free(s);
}

TEST(any_top_level_value)
{
    json_t *v = mcpgw_json_read(" \"ping\" ", 8, NULL);

    CHECK(json_is_string(v));
    json_decref(v);
    v = mcpgw_json_read("null", 4, NULL);
    CHECK(json_is_null(v));
    json_decref(v);
}

int main(void)
{
    RUN(reads_what_jansson_reads);
    RUN(reads_random_trees_back);
    RUN(big_integers_become_reals);
    RUN(escapes_decode);
    RUN(bad_input_fails_clearly);
    RUN(depth_is_limited);
    RUN(any_top_level_value);
    return UNIT_SUMMARY();
}
