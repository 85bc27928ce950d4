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

/* The texts are what JSON.parse prints in Node 20 (V8 11), checked with
 * node -e 'try{JSON.parse(process.argv[1])}catch(e){console.log(e.message)}' TEXT;
 * the differential test (tests/integration/test_differential.py) compares
 * them with a live Node over the wire. */
TEST(bad_input_fails_as_json_parse_does)
{
    CHECK(FAILS("", "Unexpected end of JSON input"));
    CHECK(FAILS("   ", "Unexpected end of JSON input"));
    CHECK(FAILS("[", "Unexpected end of JSON input"));
    CHECK(FAILS("{\"a\":", "Unexpected end of JSON input"));
    CHECK(FAILS("tru", "Unexpected end of JSON input"));
    CHECK(FAILS("\"ab\\", "Unexpected end of JSON input"));
    /* a token no rule expected: the whole text when it is short, else ten
     * characters of context either side */
    CHECK(FAILS("not json", "Unexpected token 'o', \"not json\" is not valid JSON"));
    CHECK(FAILS("[1,]", "Unexpected token ']', \"[1,]\" is not valid JSON"));
    CHECK(FAILS("+1", "Unexpected token '+', \"+1\" is not valid JSON"));
    CHECK(FAILS("nul!", "Unexpected token '!', \"nul!\" is not valid JSON"));
    CHECK(FAILS("t rue", "Unexpected token ' ', \"t rue\" is not valid JSON"));
    CHECK(FAILS("aaaaaaaaaaaaaaaaaaaa", "Unexpected token 'a', \"aaaaaaaaaaaaaaaaaaaa\" is not valid JSON"));
    CHECK(FAILS("aaaaaaaaaaaaaaaaaaaaa", "Unexpected token 'a', \"aaaaaaaaaa\"... is not valid JSON"));
    CHECK(FAILS("{\"type\":\"ping\",\"id\":\"xx\",\"bad\":[tru]}",
                "Unexpected token ']', ...\"\"bad\":[tru]}\" is not valid JSON"));
    CHECK(FAILS("{\"type\":\"ping\",\"x\":[tru],\"id\":\"xxxxxxxx\"}",
                "Unexpected token ']', ...\"\",\"x\":[tru],\"id\":\"xx\"... is not valid JSON"));
    CHECK(FAILS("\xc3\xa9", "Unexpected token '\xc3\xa9', \"\xc3\xa9\" is not valid JSON"));
    CHECK(FAILS("\x01", "Unexpected token '\x01', \"\x01\" is not valid JSON"));
    CHECK(FAILS("NaN", "\"NaN\" is not valid JSON"));
    CHECK(FAILS("undefined", "\"undefined\" is not valid JSON"));
    CHECK(FAILS("[object Object]", "\"[object Object]\" is not valid JSON"));
    CHECK(FAILS("tr1", "Unexpected number in JSON at position 2"));
    CHECK(FAILS("01", "Unexpected number in JSON at position 1"));
    CHECK(FAILS("tr\"", "Unexpected string in JSON at position 2"));
    /* the messages V8 names by what it expected */
    CHECK(FAILS("{a:1}", "Expected property name or '}' in JSON at position 1"));
    CHECK(FAILS("{", "Expected property name or '}' in JSON at position 1"));
    CHECK(FAILS("{\"type\": \"ping\", ", "Expected double-quoted property name in JSON at position 17"));
    CHECK(FAILS("{\"a\":1,}", "Expected double-quoted property name in JSON at position 7"));
    CHECK(FAILS("{\"a\" 1}", "Expected ':' after property name in JSON at position 5"));
    CHECK(FAILS("{\"a\":1,\"b\"}", "Unexpected token '}', \"{\"a\":1,\"b\"}\" is not valid JSON"));
    CHECK(FAILS("{\"a\" :1 , \"b\" 2}", "Unexpected number in JSON at position 14"));
    CHECK(FAILS("{\"a\":1", "Expected ',' or '}' after property value in JSON at position 6"));
    CHECK(FAILS("[1 2]", "Expected ',' or ']' after array element in JSON at position 3"));
    CHECK(FAILS("{\"a\":1}x", "Unexpected non-whitespace character after JSON at position 7"));
    CHECK(FAILS("-", "No number after minus sign in JSON at position 1"));
    CHECK(FAILS("1.", "Unterminated fractional number in JSON at position 2"));
    CHECK(FAILS("1.e5", "Unterminated fractional number in JSON at position 2"));
    CHECK(FAILS("1e+", "Exponent part is missing a number in JSON at position 3"));
    CHECK(FAILS("\"abc", "Unterminated string in JSON at position 4"));
    CHECK(FAILS("\"a\tb\"", "Bad control character in string literal in JSON at position 2"));
    CHECK(FAILS("\"a\0b\"", "Bad control character in string literal in JSON at position 2"));
    CHECK(FAILS("\"a\\qb\"", "Bad escaped character in JSON at position 3"));
    CHECK(FAILS("\"\\u12G4\"", "Bad Unicode escape in JSON at position 5"));
    CHECK(FAILS("\"\\u12\"", "Bad Unicode escape in JSON at position 5"));
    CHECK(FAILS("\"\\u12", "Bad Unicode escape in JSON at position 5"));
    CHECK(fails_with("{\"a\":1}\0", 8, "Unexpected non-whitespace character after JSON at position 7"));
    /* positions count UTF-16 code units, as JavaScript strings do */
    CHECK(FAILS("{\"\xc3\xa9\":\"\xc3\xbc\" x}",
                "Expected ',' or '}' after property value in JSON at position 9"));
    CHECK(FAILS("[\"\xf0\x9f\x98\x80\" x]",
                "Expected ',' or ']' after array element in JSON at position 6"));
    /* the gateway's own refusals, where JSON.parse would accept */
    CHECK(FAILS("1e400", "Number out of range in JSON at position 0"));
    CHECK(FAILS("[-1e400]", "Number out of range in JSON at position 1"));
    CHECK(FAILS("\"\\ud800\"", "Lone surrogate in Unicode escape in JSON at position 1"));
    CHECK(FAILS("\"\\ud800\\u0041\"", "Lone surrogate in Unicode escape in JSON at position 1"));
    CHECK(FAILS("\"x\\udc00\"", "Lone surrogate in Unicode escape in JSON at position 2"));
    CHECK(FAILS("\"a\\u0000b\"", "\\u0000 is not allowed in JSON at position 2"));
    CHECK(FAILS("\"caf\xc3\"", "Invalid UTF-8 in string in JSON at position 1"));
    CHECK(FAILS("\"\xed\xa0\x80\"", "Invalid UTF-8 in string in JSON at position 1"));
    CHECK(FAILS("[\"ok\",\"\xc3\x28\"]", "Invalid UTF-8 in string in JSON at position 7"));
    /* a byte that is not UTF-8 is quoted as U+FFFD (binary frames are not checked) */
    CHECK(FAILS("\xff", "Unexpected token '\xef\xbf\xbd', \"\xef\xbf\xbd\" is not valid JSON"));
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
    RUN(bad_input_fails_as_json_parse_does);
    RUN(depth_is_limited);
    RUN(any_top_level_value);
    return UNIT_SUMMARY();
}
