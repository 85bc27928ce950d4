/*
 * json_write.c - compact JSON text of a json_t into a reusable buffer.
 * See json_write.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_write.h"
#include "utf8.h"

int mcpgw_jbuf_reserve(mcpgw_jbuf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return -1;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void mcpgw_jbuf_reset(mcpgw_jbuf *b, size_t keep)
{
    b->len = 0;
    if (b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

void mcpgw_jbuf_free(mcpgw_jbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static inline int put(mcpgw_jbuf *b, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (mcpgw_jbuf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int putc1(mcpgw_jbuf *b, char ch)
{
    if (b->len == b->cap && mcpgw_jbuf_reserve(b, 1) != 0)
        return -1;
    b->data[b->len++] = ch;
    return 0;
}

/* Which bytes need an escape: the quote, the backslash and controls. */
static inline int needs_escape(unsigned char ch)
{
    return ch < 0x20 || ch == '"' || ch == '\\';
}

static int write_string(mcpgw_jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int high = 0;

    /* Worst case every byte becomes \u00XX: reserve once for the common case
     * (nothing to escape) and grow only when an escape needs it. */
    if (mcpgw_jbuf_reserve(b, n + 2) != 0)
        return -1;
    b->data[b->len++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char ch = p[i];
        char esc[6];
        size_t elen = 2;

        high |= ch & 0x80;
        if (!needs_escape(ch))
            continue;
        if (put(b, s + run, i - run) != 0)
            return -1;
        run = i + 1;
        esc[0] = '\\';
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
        }
        if (put(b, esc, elen) != 0)
            return -1;
    }
    if (high && !mcpgw_utf8_valid(p, n))
        return -1;
    if (put(b, s + run, n - run) != 0)
        return -1;
    return putc1(b, '"');
}

/* The shortest of %.15g .. %.17g that reads back to the same double, with
 * ".0" added when it would otherwise look like an integer. */
static int write_real(mcpgw_jbuf *b, double d)
{
    char text[40];
    int n = 0;

    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(text, sizeof(text) - 3, "%.*g", prec, d);
        if (n <= 0 || (size_t)n >= sizeof(text) - 3)
            return -1;
        if (prec == 17 || strtod(text, NULL) == d)
            break;
    }
    if (!strpbrk(text, ".eE")) {
        text[n++] = '.';
        text[n++] = '0';
    }
    return put(b, text, (size_t)n);
}

static int write_value(mcpgw_jbuf *b, const json_t *v, int depth)
{
    char num[32];
    int n;

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        int first = 1;

        if (depth >= MCPGW_JSON_WRITE_MAX_DEPTH || putc1(b, '{') != 0)
            return -1;
        json_object_foreach((json_t *)v, key, member) {
            if (!first && putc1(b, ',') != 0)
                return -1;
            first = 0;
            if (write_string(b, key, strlen(key)) != 0 || putc1(b, ':') != 0 ||
                write_value(b, member, depth + 1) != 0)
                return -1;
        }
        return putc1(b, '}');
    }
    case JSON_ARRAY: {
        size_t size = json_array_size(v);

        if (depth >= MCPGW_JSON_WRITE_MAX_DEPTH || putc1(b, '[') != 0)
            return -1;
        for (size_t i = 0; i < size; i++) {
            if ((i && putc1(b, ',') != 0) || write_value(b, json_array_get(v, i), depth + 1) != 0)
                return -1;
        }
        return putc1(b, ']');
    }
    case JSON_STRING:
        return write_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        unsigned long long u = i < 0 ? 0ull - (unsigned long long)i : (unsigned long long)i;

        n = (int)sizeof(num);
        do {
            num[--n] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (i < 0)
            num[--n] = '-';
        return put(b, num + n, sizeof(num) - (size_t)n);
    }
    case JSON_REAL:
        return write_real(b, json_real_value(v));
    case JSON_TRUE:
        return put(b, "true", 4);
    case JSON_FALSE:
        return put(b, "false", 5);
    case JSON_NULL:
        return put(b, "null", 4);
    }
    return -1;
}

int mcpgw_json_write_string(mcpgw_jbuf *b, const char *s, size_t n)
{
    size_t mark = b->len;

    if (write_string(b, s, n) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

int mcpgw_json_write(mcpgw_jbuf *b, const json_t *v)
{
    size_t mark = b->len;

    if (!v || write_value(b, v, 0) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}
