/*
 * json_read.c - a recursive-descent JSON parser that builds jansson values
 * straight from the input bytes. See json_read.h.
 *
 * A string without escapes goes from the input to json_stringn_nocheck in
 * one copy; only a string with escapes is decoded, into a scratch buffer the
 * parse reuses. Numbers of up to 18 digits are converted inline.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_read.h"
#include "json_text.h"
#include "utf8.h"

typedef struct parser {
    const char *p;          /* the next byte */
    const char *start, *end;
    int depth;
    mcpgw_json_read_error *err;
    char *scratch;          /* decoded escaped strings (owned) */
    size_t scratch_cap;
} parser;

/* ---------------------------------------------------------------- errors */

/*
 * The texts are those of JSON.parse in Node 20 and later (V8 11+), which
 * clients of the reference server see: positions count UTF-16 code units,
 * not bytes; a token that no rule expected is quoted with up to ten
 * characters of context either side of it.
 */

/* UTF-16 code units in s[0..n), as JavaScript counts the decoded text: a
 * four-byte UTF-8 sequence is a surrogate pair, continuation bytes add none. */
static size_t u16_count(const char *s, size_t n)
{
    size_t units = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if ((b & 0xC0) != 0x80)
            units += b >= 0xF0 ? 2 : 1;
    }
    return units;
}

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 when it is not
 * valid UTF-8. */
static size_t utf8_char_len(const char *s, size_t n)
{
    unsigned char b = (unsigned char)*s;
    size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;

    if (len == 0 || len > n || !mcpgw_utf8_valid((const uint8_t *)s, len))
        return 0;
    return len;
}

/* Appends the characters of the input whose UTF-16 index is in [from, to)
 * to out (NUL-terminated, at most cap bytes); a byte that is not UTF-8, and
 * NUL, become U+FFFD (as Buffer.toString() decodes them). */
static void copy_units(const parser *ps, size_t from, size_t to, char *out, size_t cap)
{
    const char *q = ps->start;
    size_t unit = 0, o = 0;

    while (q < ps->end && unit < to) {
        size_t n = utf8_char_len(q, (size_t)(ps->end - q));
        const char *bytes = q;
        size_t nb = n;

        if (n == 0 || *q == '\0') {
            bytes = "\xEF\xBF\xBD";
            nb = 3;
            n = 1;
        }
        if (unit >= from && o + nb < cap) {
            memcpy(out + o, bytes, nb);
            o += nb;
        }
        unit += n == 4 ? 2 : 1;
        q += n;
    }
    out[o] = '\0';
}

/* "TEXT at position N", N in UTF-16 units up to `at`. */
static void fail_at(parser *ps, const char *at, const char *text)
{
    if (!ps->err)
        return;
    ps->err->position = (size_t)(at - ps->start);
    snprintf(ps->err->text, sizeof(ps->err->text), "%s at position %zu", text,
             u16_count(ps->start, (size_t)(at - ps->start)));
}

/* "TEXT in JSON at position N": most of JSON.parse's texts. */
static void fail(parser *ps, const char *at, const char *text)
{
    char with[96];

    snprintf(with, sizeof(with), "%s in JSON", text);
    fail_at(ps, at, with);
}

/* The input ended where more was needed. */
static void fail_eos(parser *ps)
{
    if (!ps->err)
        return;
    ps->err->position = (size_t)(ps->end - ps->start);
    snprintf(ps->err->text, sizeof(ps->err->text), "Unexpected end of JSON input");
}

/* The byte at `at` begins a token no rule expected (V8's
 * ReportUnexpectedToken without a message of its own). */
static void fail_token(parser *ps, const char *at)
{
    static const char *const special[] = { "NaN", "Infinity", "undefined", "[object Object]" };
    size_t len, pos, from = 0, to;
    const char *pre = "", *post = "";
    char tok[8], context[96];
    unsigned char ch;

    if (!ps->err)
        return;
    if (at >= ps->end) {
        fail_eos(ps);
        return;
    }
    ch = (unsigned char)*at;
    if (ch == '"') {
        fail(ps, at, "Unexpected string");
        return;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        fail(ps, at, "Unexpected number");
        return;
    }
    ps->err->position = (size_t)(at - ps->start);
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        if ((size_t)(ps->end - ps->start) == strlen(special[i]) &&
            memcmp(ps->start, special[i], strlen(special[i])) == 0) {
            snprintf(ps->err->text, sizeof(ps->err->text), "\"%s\" is not valid JSON",
                     special[i]);
            return;
        }
    }
    len = u16_count(ps->start, (size_t)(ps->end - ps->start));
    pos = u16_count(ps->start, (size_t)(at - ps->start));
    to = len;
    if (len > 20) {                 /* ten characters of context either side */
        if (pos < 10) {
            to = pos + 10;
            post = "...";
        } else if (pos < len - 10) {
            from = pos - 10;
            to = pos + 10;
            pre = post = "...";
        } else {
            from = pos - 10;
            pre = "...";
        }
    }
    copy_units(ps, pos, pos + 1, tok, sizeof(tok));
    copy_units(ps, from, to, context, sizeof(context));
    snprintf(ps->err->text, sizeof(ps->err->text),
             "Unexpected token '%s', %s\"%s\"%s is not valid JSON", tok, pre, context, post);
}

/* --------------------------------------------------------------- helpers */

static inline void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int scratch_put(parser *ps, size_t *len, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (ps->scratch_cap - *len < n) {
        size_t cap = ps->scratch_cap ? ps->scratch_cap : 64;
        char *q;

        while (cap - *len < n)
            cap *= 2;
        q = realloc(ps->scratch, cap);
        if (!q)
            return -1;
        ps->scratch = q;
        ps->scratch_cap = cap;
    }
    memcpy(ps->scratch + *len, s, n);
    *len += n;
    return 0;
}

static int hex4_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}



/* ---------------------------------------------------------------- strings */

/* Decodes the escape at ps->p (the backslash) into the scratch. 0 or -1. */
static int read_escape(parser *ps, size_t *len)
{
    const char *at = ps->p;
    char utf8[4];
    unsigned cp, lo;
    char c;

    if (ps->end - at < 2) {
        fail_eos(ps);
        return -1;
    }
    c = at[1];
    ps->p += 2;
    switch (c) {
    case '"': return scratch_put(ps, len, "\"", 1);
    case '\\': return scratch_put(ps, len, "\\", 1);
    case '/': return scratch_put(ps, len, "/", 1);
    case 'b': return scratch_put(ps, len, "\b", 1);
    case 'f': return scratch_put(ps, len, "\f", 1);
    case 'n': return scratch_put(ps, len, "\n", 1);
    case 'r': return scratch_put(ps, len, "\r", 1);
    case 't': return scratch_put(ps, len, "\t", 1);
    case 'u':
        break;
    default:
        fail(ps, at + 1, "Bad escaped character");
        return -1;
    }
    if (ps->end - ps->p < 4 || mcpgw_json_hex4(ps->p, &cp) != 0) {
        const char *bad = ps->p;    /* JSON.parse names the first non-hex digit */

        while (bad < ps->end && bad < ps->p + 4 && hex4_digit(*bad))
            bad++;
        fail(ps, bad, "Bad Unicode escape");
        return -1;
    }
    ps->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail(ps, at, "Lone surrogate in Unicode escape");
        return -1;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* a high surrogate must be followed by an escaped low one */
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
            mcpgw_json_hex4(ps->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
            fail(ps, at, "Lone surrogate in Unicode escape");
            return -1;
        }
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) {
        fail(ps, at, "\\u0000 is not allowed");
        return -1;
    }
    return scratch_put(ps, len, utf8, mcpgw_json_utf8_encode(cp, utf8));
}

/* Reads the string whose opening quote is at ps->p. On success *s and *n give its
 * decoded text: in the input when it had no escapes (*decoded = 0), else in
 * the scratch (*decoded = 1), valid until the next string. 0 or -1. */
static int read_string(parser *ps, const char **s, size_t *n, int *decoded)
{
    const char *run = ++ps->p;      /* past the quote */
    size_t len = 0;
    int high = 0, escaped = 0;

    for (;;) {
        const char *q = ps->p;
        unsigned char ch = 0;

        while (q < ps->end) {
            ch = (unsigned char)*q;
            if (ch == '"' || ch == '\\' || ch < 0x20)
                break;
            high |= ch & 0x80;
            q++;
        }
        if (high && !mcpgw_utf8_valid((const uint8_t *)run, (size_t)(q - run))) {
            fail(ps, run, "Invalid UTF-8 in string");
            return -1;
        }
        high = 0;
        ps->p = q;
        if (q >= ps->end) {
            fail(ps, ps->end, "Unterminated string");
            return -1;
        }
        if (ch < 0x20) {
            fail(ps, q, "Bad control character in string literal");
            return -1;
        }
        if (ch == '"') {
            ps->p++;
            if (!escaped) {
                *s = run;
                *n = (size_t)(q - run);
                *decoded = 0;
                return 0;
            }
            if (scratch_put(ps, &len, run, (size_t)(q - run)) != 0)
                goto oom;
            *s = ps->scratch;
            *n = len;
            *decoded = 1;
            return 0;
        }
        /* a backslash: keep the run so far, decode the escape, go on */
        if (!escaped) {
            escaped = 1;
            len = 0;
        }
        if (scratch_put(ps, &len, run, (size_t)(q - run)) != 0)
            goto oom;
        if (read_escape(ps, &len) != 0)
            return -1;
        run = ps->p;
    }
oom:
    fail(ps, ps->p, "Out of memory");
    return -1;
}

/* ---------------------------------------------------------------- numbers */

static json_t *read_number(parser *ps)
{
    mcpgw_json_number n;

    if (mcpgw_json_scan_number(ps->p, ps->end, &n) != MCPGW_JSON_NUMBER_OK) {
        fail(ps, n.err_at, n.err);
        return NULL;
    }
    ps->p = n.end;
    return n.is_int ? json_integer(n.integer) : json_real(n.real);
}

/* ------------------------------------------------------------------ values */

static json_t *read_value(parser *ps);

static json_t *read_literal(parser *ps, const char *word, size_t n, json_t *value)
{
    for (size_t i = 0; i < n; i++) {
        if (ps->p + i >= ps->end || ps->p[i] != word[i]) {
            fail_token(ps, ps->p + i);
            return NULL;
        }
    }
    ps->p += n;
    return value;
}

/* After a member of a container that `close` ends: 1 when a ',' leads to
 * another member, 0 when the container ends here, -1 (failed) otherwise. */
static int next_member(parser *ps, char close)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
        ps->p++;
        return 1;
    }
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    fail(ps, ps->p, close == ']' ? "Expected ',' or ']' after array element"
                                 : "Expected ',' or '}' after property value");
    return -1;
}

static json_t *read_array(parser *ps)
{
    json_t *arr = json_array();

    if (!arr) {
        fail(ps, ps->p, "Out of memory");
        return NULL;
    }
    ps->p++;                        /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return arr;
    }
    for (;;) {
        json_t *v = read_value(ps);

        if (!v)
            goto fail;
        if (json_array_append_new(arr, v) != 0) {
            fail(ps, ps->p, "Out of memory");
            goto fail;
        }
        switch (next_member(ps, ']')) {
        case 1: continue;
        case 0: return arr;
        default: goto fail;
        }
    }
fail:
    json_decref(arr);
    return NULL;
}

static json_t *read_object(parser *ps)
{
    json_t *obj = json_object();
    char keybuf[64], *heapkey = NULL;

    if (!obj) {
        fail(ps, ps->p, "Out of memory");
        return NULL;
    }
    ps->p++;                        /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    for (int first = 1;; first = 0) {
        const char *key, *key_at;
        size_t klen;
        int decoded;
        json_t *v;

        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, ps->p, first ? "Expected property name or '}'"
                                  : "Expected double-quoted property name");
            goto fail;
        }
        key_at = ps->p;
        if (read_string(ps, &key, &klen, &decoded) != 0)
            goto fail;
        if (decoded) {
            /* the scratch is reused by the value's strings: keep a copy */
            char *dst = keybuf;

            if (klen > sizeof(keybuf))
                dst = heapkey = malloc(klen);
            if (!dst) {
                fail(ps, key_at, "Out of memory");
                goto fail;
            }
            memcpy(dst, key, klen);
            key = dst;
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            /* V8 names the colon only after the first key */
            if (first)
                fail(ps, ps->p, "Expected ':' after property name");
            else
                fail_token(ps, ps->p);
            goto fail;
        }
        ps->p++;
        v = read_value(ps);
        if (!v)
            goto fail;
        if (json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
            fail(ps, key_at, "Out of memory");
            goto fail;
        }
        free(heapkey);
        heapkey = NULL;
        switch (next_member(ps, '}')) {
        case 1: continue;
        case 0: return obj;
        default: goto fail;
        }
    }
fail:
    free(heapkey);
    json_decref(obj);
    return NULL;
}

static json_t *read_value(parser *ps)
{
    json_t *v;

    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail_eos(ps);
        return NULL;
    }
    switch (*ps->p) {
    case '{':
    case '[':
        if (ps->depth >= MCPGW_JSON_READ_MAX_DEPTH) {
            fail(ps, ps->p, "Maximum nesting depth exceeded");
            return NULL;
        }
        ps->depth++;
        v = *ps->p == '{' ? read_object(ps) : read_array(ps);
        ps->depth--;
        return v;
    case '"': {
        const char *s, *at = ps->p;
        size_t n;
        int decoded;

        if (read_string(ps, &s, &n, &decoded) != 0)
            return NULL;
        v = json_stringn_nocheck(s, n);
        if (!v)
            fail(ps, at, "Out of memory");
        return v;
    }
    case 't':
        return read_literal(ps, "true", 4, json_true());
    case 'f':
        return read_literal(ps, "false", 5, json_false());
    case 'n':
        return read_literal(ps, "null", 4, json_null());
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return read_number(ps);
        fail_token(ps, ps->p);
        return NULL;
    }
}

json_t *mcpgw_json_read(const char *text, size_t len, mcpgw_json_read_error *err)
{
    parser ps;
    json_t *v;

    if (err) {
        err->text[0] = '\0';
        err->position = 0;
    }
    ps = (parser){ text, text, text + len, 0, err, NULL, 0 };
    v = read_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            fail_at(&ps, ps.p, "Unexpected non-whitespace character after JSON");
            json_decref(v);
            v = NULL;
        }
    }
    free(ps.scratch);
    return v;
}
