/*
 * test_json_view.c - unit tests for core/json_view.c against the tree the
 * gateway's reader builds (core/json_read.c): the scan's verdict is the
 * reader's (fixed malformed inputs, every prefix and byte mutation of valid
 * ones), and every top-level member the view finds is the tree's (kind,
 * integer, decoded string, and the text buf_member writes = the writer's
 * text of the tree member), duplicates and escaped keys included.
 */
#include "json_read.h"
#include "json_view.h"
#include "json_write.h"
#include "unit.h"
#include "json_random.h"

#include <stdlib.h>
#include <string.h>

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

/* 1 when the view of src[0..len) agrees with the tree in everything above;
 * prints what differs. */
static int agrees_n(const char *src, size_t len)
{
    mcpgw_view v;
    json_t *tree = mcpgw_json_read(src, len, NULL);
    int verdict = mcpgw_json_view_scan(&v, src, len), ok = 1;

    if (!tree) {
        ok = verdict == MCPGW_JSON_VIEW_INVALID;
        if (!ok)
            fprintf(stderr, "  %.*s: reader refuses, view %d\n", (int)len, src, verdict);
        goto out;
    }
    if (verdict == MCPGW_JSON_VIEW_INVALID) {
        fprintf(stderr, "  %.*s: reader accepts, view refuses\n", (int)len, src);
        ok = 0;
        goto out;
    }
    if (!json_is_object(tree)) {
        ok = verdict == MCPGW_JSON_VIEW_OTHER;
        if (!ok)
            fprintf(stderr, "  %.*s: not an object, view %d\n", (int)len, src, verdict);
        goto out;
    }
    if (verdict != MCPGW_JSON_VIEW_OK)
        goto out;           /* more member texts than the view keeps: the tree path */
    {
        const char *key;
        json_t *val;
        mcpgw_member m;

        json_object_foreach(tree, key, val) {
            mcpgw_jbuf want = { NULL, 0, 0 }, got = { NULL, 0, 0 };
            int kind = mcpgw_json_view_get(&v, key, &m);

            if (kind != kind_of(val)) {
                fprintf(stderr, "  %.*s: member %s kind %d, tree %d\n", (int)len, src, key,
                        kind, kind_of(val));
                ok = 0;
                continue;
            }
            if (kind == MCPGW_JSON_INTEGER && m.integer != json_integer_value(val)) {
                fprintf(stderr, "  %.*s: member %s integer differs\n", (int)len, src, key);
                ok = 0;
            }
            if (kind == MCPGW_JSON_STRING) {
                size_t n;
                const char *s = mcpgw_json_view_string(&v, &m, &n);
                if (!s || n != json_string_length(val) || memcmp(s, json_string_value(val), n) ||
                    s[n] != '\0') {
                    fprintf(stderr, "  %.*s: member %s string differs\n", (int)len, src, key);
                    ok = 0;
                }
            }
            if (mcpgw_json_write(&want, val) != 0 || mcpgw_json_view_write_member(&got, &m) != 0 ||
                want.len != got.len || memcmp(want.data, got.data, want.len) != 0) {
                fprintf(stderr, "  %.*s: member %s written %.*s, tree %.*s\n", (int)len, src, key,
                        (int)got.len, got.data ? got.data : "", (int)want.len,
                        want.data ? want.data : "");
                ok = 0;
            }
            mcpgw_jbuf_free(&want);
            mcpgw_jbuf_free(&got);
        }
        if (mcpgw_json_view_get(&v, "no such key", &m) != MCPGW_JSON_ABSENT || m.text) {
            fprintf(stderr, "  %.*s: an absent key was found\n", (int)len, src);
            ok = 0;
        }
    }
out:
    mcpgw_json_view_release(&v);
    json_decref(tree);
    return ok;
}

static int agrees(const char *src)
{
    return agrees_n(src, strlen(src));
}

static int verdict(const char *src)
{
    mcpgw_view v;
    int r = mcpgw_json_view_scan(&v, src, strlen(src));

    mcpgw_json_view_release(&v);
    return r;
}

static const char *const valid[] = {
    "{}", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ",
    "{\"type\":\"ping\",\"id\":\"p0-00001234\"}",
    "{\"type\":\"ping\",\"id\":7,\"pad\":\"xxxxxxxxxxxxxxxx\"}",
    "{\"a\":[1,2,{\"b\":null,\"c\":[true,false]}],\"d\":{},\"e\":true,\"f\":false,\"g\":null}",
    "{\"n\":-0,\"m\":0,\"o\":-1,\"p\":1e2,\"q\":1.50,\"r\":-2.5E-3,\"s\":1E+2,\"t\":0.000001}",
    "{\"i\":9223372036854775807,\"j\":-9223372036854775808,\"k\":123456789012345678}",
    "{\"big\":9223372036854775808,\"huge\":-123456789012345678901234567890}",
    "{\"r\":[1.7976931348623157e308,5e-324,2.2250738585072014e-308]}",
    "{\"s\":\"quote \\\" backslash \\\\ slash \\/ tab \\t nl \\n cr \\r bs \\b ff \\f\"}",
    "{\"u\":\"\\u0001\\u001f\\u007f \\u00e9 \\u20AC \\ud83d\\ude00 caf\xc3\xa9 \xf0\x9f\x98\x80\"}",
    "{\"\\u00e9t\\u00e9\":\"caf\\u00e9\",\"k\\\"ey\":\"v\",\"\":\"empty key\"}",
    "{\"a\":1,\"a\":2}", "{\"a\":1,\"b\":2,\"a\":{\"x\":1,\"x\":[2]}}",
    "{\"type\":\"a\",\"typ\\u0065\":\"b\"}", "{\"typ\\u0065\":\"a\",\"type\":\"b\"}",
    "{\"o\":{\"nested\" : { \"deep\" : [ [ ] , { } ] } }, \"a\" : [ \"x\" , 1.0 ]}",
    "{\"id\":\"\\u0041\\/\"}", "{\"id\":\"\xe2\x80\xa8\xe2\x80\xa9\x7f\"}",
    "{\"agentId\":\"\",\"status\":null}",
};

static const char *const invalid[] = {
    "", " ", "{", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,", "{\"a\":1,}", "{,}", "{\"a\" 1}",
    "{a:1}", "{\"a\":1}}", "{\"a\":1} x", "[1,]", "[1 2]", "[", "]",
    "{\"a\":tru}", "{\"a\":nul}", "{\"a\":falsey}", "{\"a\":True}", "{\"a\":NaN}",
    "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}",
    "{\"a\":+1}", "{\"a\":1e400}", "{\"a\":-1e400}", "{\"a\":[1e999]}",
    "{\"a\":1234567890123456789012345678901234567890123456789012345678901234567890e300}",
    "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12G4\"}", "{\"a\":\"\\u0000\"}",
    "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\ud800\\u0041\"}",
    "{\"a\":\"\\ud800\\n\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}",
    "{\"a\":\"\xc3\"}", "{\"a\":\"\xc3\x28\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xff\"}",
    "{\"\xc3\":1}", "{\"\\u0000\":1}", "{\"a\":\"unterminated}", "{\"a\":\"\\",
    "{\"a\":1 \"b\":2}", "{\"a\":[}", "{\"a\":{]}", "\"\\ud83d\\ude0\"", "nul", "-",
};

TEST(valid_objects_agree_with_the_tree)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        CHECK_EQ_INT(verdict(valid[i]), MCPGW_JSON_VIEW_OK);
        CHECK(agrees(valid[i]));
    }
}

TEST(malformed_inputs_are_refused_as_the_reader_refuses_them)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        CHECK_EQ_INT(verdict(invalid[i]), MCPGW_JSON_VIEW_INVALID);
        CHECK(agrees(invalid[i]));
    }
    /* a NUL byte inside a string, counted in the length */
    CHECK(agrees_n("{\"a\":\"x\0y\"}", 11));
    CHECK(agrees_n("{\"a\":1}\0", 8));
}

TEST(valid_texts_that_are_not_a_viewable_object_take_the_tree)
{
    static const char *const other[] = { "[]", "[{\"type\":\"ping\"}]", "\"ping\"", "1", "-0",
                                         "null", "true", " false " };
    char many[1024];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        CHECK_EQ_INT(verdict(other[i]), MCPGW_JSON_VIEW_OTHER);
        CHECK(agrees(other[i]));
    }
    /* more members than the view keeps */
    n += (size_t)snprintf(many + n, sizeof(many) - n, "{");
    for (int i = 0; i <= MCPGW_JSON_VIEW_MAX_MEMBERS; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    snprintf(many + n, sizeof(many) - n, "}");
    CHECK_EQ_INT(verdict(many), MCPGW_JSON_VIEW_OTHER);
    CHECK(agrees(many));
    many[n - 1] = '\0';             /* and when it is cut short: invalid */
    CHECK_EQ_INT(verdict(many), MCPGW_JSON_VIEW_INVALID);
}

TEST(nesting_limit_is_the_readers)
{
    size_t depth = MCPGW_JSON_READ_MAX_DEPTH;
    char *s = malloc(2 * depth + 16);
    size_t n = 0;

    /* exactly the limit: an object holding depth - 1 arrays */
    n += (size_t)sprintf(s, "{\"a\":");
    for (size_t i = 0; i < depth - 1; i++)
        s[n++] = '[';
    for (size_t i = 0; i < depth - 1; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    CHECK_EQ_INT(verdict(s), MCPGW_JSON_VIEW_OK);
    CHECK(agrees(s));
    /* one more */
    n = (size_t)sprintf(s, "{\"a\":");
    for (size_t i = 0; i < depth; i++)
        s[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    CHECK_EQ_INT(verdict(s), MCPGW_JSON_VIEW_INVALID);
    CHECK(agrees(s));
    free(s);
}

TEST(duplicate_and_escaped_keys_find_the_trees_member)
{
    mcpgw_view v;
    mcpgw_member m;
    const char *src = "{\"type\":\"x\",\"typ\\u0065\":\"pi\\u006eg\",\"id\":1,\"id\":\"two\"}";

    CHECK_EQ_INT(mcpgw_json_view_scan(&v, src, strlen(src)), MCPGW_JSON_VIEW_OK);
    CHECK_EQ_INT(mcpgw_json_view_get(&v, "type", &m), MCPGW_JSON_STRING);
    CHECK_EQ_STR(mcpgw_json_view_string(&v, &m, NULL), "ping");
    CHECK_EQ_INT(mcpgw_json_view_get(&v, "id", &m), MCPGW_JSON_STRING);
    CHECK_EQ_STR(mcpgw_json_view_string(&v, &m, NULL), "two");
    CHECK_EQ_INT(mcpgw_json_view_get(&v, "typ", &m), MCPGW_JSON_ABSENT);
    CHECK_EQ_INT(mcpgw_json_view_get(&v, "typee", &m), MCPGW_JSON_ABSENT);
    CHECK_EQ_INT(mcpgw_json_view_get(&v, NULL, &m), MCPGW_JSON_ABSENT);
    mcpgw_json_view_release(&v);
    CHECK(agrees(src));
}

/* What buf_member writes for {"m":TEXT}: the tree's text, not TEXT. */
static int writes(const char *text, const char *want)
{
    char src[256];
    mcpgw_view v;
    mcpgw_member m;
    mcpgw_jbuf b = { NULL, 0, 0 };
    int ok;

    snprintf(src, sizeof(src), "{\"m\":%s}", text);
    ok = mcpgw_json_view_scan(&v, src, strlen(src)) == MCPGW_JSON_VIEW_OK &&
         mcpgw_json_view_get(&v, "m", &m) != MCPGW_JSON_ABSENT &&
         mcpgw_json_view_write_member(&b, &m) == 0 && b.len == strlen(want) &&
         memcmp(b.data, want, b.len) == 0;
    if (!ok)
        fprintf(stderr, "  %s written %.*s, want %s\n", text, (int)b.len, b.data ? b.data : "",
                want);
    mcpgw_json_view_release(&v);
    mcpgw_jbuf_free(&b);
    return ok;
}

TEST(members_are_written_as_the_tree_is_written)
{
    CHECK(writes("\"plain\"", "\"plain\""));
    CHECK(writes("\"\\u0041\\/\"", "\"A/\""));
    CHECK(writes("\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""));
    CHECK(writes("\"\\u001f\\t\\\"\"", "\"\\u001F\\t\\\"\""));
    CHECK(writes("-0", "0"));
    CHECK(writes("-12", "-12"));
    CHECK(writes("1e2", "100.0"));
    CHECK(writes("1.50", "1.5"));
    CHECK(writes("true", "true"));
    CHECK(writes("null", "null"));
    CHECK(writes("{ \"a\" : 1 , \"a\" : [ 2 ] }", "{\"a\":[2]}"));
    CHECK(writes("[ \"\\u0041\" , -0 ]", "[\"A\",0]"));
}

TEST(random_trees_agree)
{
    unsigned seed = 1812;
    int bad = 0;

    for (int i = 0; i < 3000 && bad < 5; i++) {
        json_t *root = json_object();
        char key[8];
        char *text;

        for (int k = rand_r(&seed) % 8; k > 0; k--) {
            snprintf(key, sizeof(key), "k%d", rand_r(&seed) % 6);
            json_object_set_new(root, key, random_json(&seed, 4, 1));
        }
        text = json_dumps(root, JSON_REAL_PRECISION(17) |
                                    (i % 2 ? JSON_INDENT(1) : JSON_COMPACT) |
                                    (i % 3 ? 0 : JSON_ENSURE_ASCII));
        if (!agrees(text))
            bad++;
        free(text);
        json_decref(root);
    }
    CHECK_EQ_INT(bad, 0);
}

TEST(every_prefix_and_byte_mutation_gets_the_readers_verdict)
{
    static const char bytes[] = "{}[]\":,\\u0 -.e1xtfn\x80\xc3\xed\t";
    int bad = 0;

    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]) && bad < 5; i++) {
        size_t len = strlen(valid[i]);
        char *s = malloc(len + 1);

        for (size_t cut = 0; cut < len; cut++)
            if (!agrees_n(valid[i], cut))
                bad++;
        for (size_t at = 0; at < len; at++) {
            for (size_t b = 0; b < sizeof(bytes) - 1; b++) {
                memcpy(s, valid[i], len);
                s[at] = bytes[b];
                if (!agrees_n(s, len))
                    bad++;
            }
        }
        free(s);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(valid_objects_agree_with_the_tree);
    RUN(malformed_inputs_are_refused_as_the_reader_refuses_them);
    RUN(valid_texts_that_are_not_a_viewable_object_take_the_tree);
    RUN(nesting_limit_is_the_readers);
    RUN(duplicate_and_escaped_keys_find_the_trees_member);
    RUN(members_are_written_as_the_tree_is_written);
    RUN(random_trees_agree);
    RUN(every_prefix_and_byte_mutation_gets_the_readers_verdict);
    return UNIT_SUMMARY();
}
