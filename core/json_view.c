/*
 * json_view.c - the validating scan behind a message view, member lookup,
 * string decoding and writing a member as the tree would be written. See
 * json_view.h.
 *
 * The scan is json_read.c's grammar without the values: the same checks on
 * strings (UTF-8, control characters, escapes, surrogates, no \u0000), on
 * numbers (the form, and strtod's range where the reader calls it) and on
 * nesting (MCPGW_JSON_READ_MAX_DEPTH), iteratively, with a bit per open
 * container. It allocates nothing unless a number needs a long copy.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_read.h"
#include "json_view.h"
#include "json_text.h"
#include "utf8.h"

struct mcpgw_json_view_chunk {
    mcpgw_json_view_chunk *next;
    char data[];
};

typedef struct scan {
    const char *p, *end;
    int oom;                        /* a copy failed: the verdict is unknown */
} scan;

static inline void skip_ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}


/* 1 for a byte a string may hold as it is: not '"', '\\', a control or
 * a non-ASCII byte (those go through the slow path). */
static const uint8_t plain[256] = {
    [0x20] = 1, [0x21] = 1, [0x23 ... 0x5B] = 1, [0x5D ... 0x7F] = 1,
};

/* The string whose opening quote is at s->p, as read_string checks it.
 * On success s->p is past the closing quote and *escaped says whether it
 * had a backslash. 0 or -1. */
static int scan_string(scan *s, int *escaped)
{
    const char *run = ++s->p;

    *escaped = 0;
    for (;;) {
        const char *q = s->p;
        unsigned char ch = 0;
        int high = 0;

        for (;;) {
            while (s->end - q >= 4 && plain[(uint8_t)q[0]] && plain[(uint8_t)q[1]] &&
                   plain[(uint8_t)q[2]] && plain[(uint8_t)q[3]])
                q += 4;
            while (q < s->end && plain[(uint8_t)*q])
                q++;
            if (q >= s->end)
                break;
            ch = (unsigned char)*q;
            if (ch < 0x80)              /* a quote, a backslash or a control */
                break;
            high = 1;
            q++;
        }
        if (high && !mcpgw_utf8_valid((const uint8_t *)run, (size_t)(q - run)))
            return -1;
        if (q >= s->end || ch < 0x20)
            return -1;
        if (ch == '"') {
            s->p = q + 1;
            return 0;
        }
        /* an escape */
        *escaped = 1;
        if (s->end - q < 2)
            return -1;
        switch (q[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            s->p = q + 2;
            break;
        case 'u': {
            unsigned cp, lo;
            if (s->end - q < 6 || mcpgw_json_hex4(q + 2, &cp) != 0)
                return -1;
            if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (s->end - q < 12 || q[6] != '\\' || q[7] != 'u' ||
                    mcpgw_json_hex4(q + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                s->p = q + 12;
            } else {
                s->p = q + 6;
            }
            break;
        }
        default:
            return -1;
        }
        run = s->p;
    }
}

/* The number at s->p, as the reader judges it (the one scanner,
 * json_text.h); *kind and *integer get what the tree would hold. 0 or -1. */
static int scan_number(scan *s, int *kind, int64_t *integer)
{
    mcpgw_json_number n;
    mcpgw_json_number_result r = mcpgw_json_scan_number(s->p, s->end, &n);

    if (r != MCPGW_JSON_NUMBER_OK) {
        s->oom |= r == MCPGW_JSON_NUMBER_NOMEM;
        return -1;
    }
    s->p = n.end;
    *kind = n.is_int ? MCPGW_JSON_INTEGER : MCPGW_JSON_REAL;
    *integer = n.integer;
    return 0;
}

static int literal(scan *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

int mcpgw_json_view_scan(mcpgw_view *v, const char *text, size_t len)
{
    /* one bit per open container: 1 an object, 0 an array */
    uint8_t open[MCPGW_JSON_READ_MAX_DEPTH / 8];
    int depth = 0, top_object = 0, overflow = 0, escaped;
    mcpgw_json_view_member *cur = NULL;     /* the top-level member being read */
    scan s = { text, text + len, 0 };

    v->text = text;
    v->len = len;
    v->n_members = 0;
    v->arena_used = 0;
    v->chunks = NULL;

value:
    skip_ws(&s);
    if (s.p >= s.end)
        goto invalid;
    if (cur && depth == 1)
        cur->value.text = s.p;
    switch (*s.p) {
    case '{':
    case '[':
        if (depth >= MCPGW_JSON_READ_MAX_DEPTH)
            goto invalid;
        if (*s.p == '{')
            open[depth / 8] |= (uint8_t)(1u << (depth % 8));
        else
            open[depth / 8] &= (uint8_t)~(1u << (depth % 8));
        if (depth == 0)
            top_object = *s.p == '{';
        if (cur && depth == 1)
            cur->value.kind = *s.p == '{' ? MCPGW_JSON_OBJECT : MCPGW_JSON_ARRAY;
        {
            int is_object = *s.p == '{';

            depth++;
            s.p++;
            skip_ws(&s);
            if (s.p < s.end && *s.p == (is_object ? '}' : ']')) {
                s.p++;
                depth--;
                goto after_value;
            }
            if (is_object)
                goto member;
            goto value;
        }
    case '"':
        if (scan_string(&s, &escaped) != 0)
            goto invalid;
        if (cur && depth == 1)
            cur->value.kind = MCPGW_JSON_STRING;
        goto after_value;
    case 't':
        if (literal(&s, "true", 4) != 0)
            goto invalid;
        if (cur && depth == 1)
            cur->value.kind = MCPGW_JSON_TRUE;
        goto after_value;
    case 'f':
        if (literal(&s, "false", 5) != 0)
            goto invalid;
        if (cur && depth == 1)
            cur->value.kind = MCPGW_JSON_FALSE;
        goto after_value;
    case 'n':
        if (literal(&s, "null", 4) != 0)
            goto invalid;
        if (cur && depth == 1)
            cur->value.kind = MCPGW_JSON_NULL;
        goto after_value;
    default: {
        int kind;
        int64_t integer = 0;

        if (!(*s.p == '-' || (*s.p >= '0' && *s.p <= '9')) ||
            scan_number(&s, &kind, &integer) != 0)
            goto invalid;
        if (cur && depth == 1) {
            cur->value.kind = kind;
            cur->value.integer = integer;
        }
        goto after_value;
    }
    }

member:
    /* at a key of the object open at depth - 1 */
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '"')
        goto invalid;
    if (depth == 1) {
        cur = NULL;
        if (v->n_members < MCPGW_JSON_VIEW_MAX_MEMBERS) {
            cur = &v->members[v->n_members++];
            cur->key = s.p + 1;
        } else {
            overflow = 1;
        }
    }
    if (scan_string(&s, &escaped) != 0)
        goto invalid;
    if (cur && depth == 1) {
        cur->key_len = (size_t)(s.p - 1 - cur->key);
        cur->key_escaped = escaped;
        cur->value.integer = 0;
    }
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ':')
        goto invalid;
    s.p++;
    goto value;

after_value:
    if (cur && depth == 1) {
        cur->value.len = (size_t)(s.p - cur->value.text);
        cur = NULL;
    }
    if (depth == 0) {
        skip_ws(&s);
        if (s.p != s.end)
            goto invalid;
        return top_object && !overflow ? MCPGW_JSON_VIEW_OK : MCPGW_JSON_VIEW_OTHER;
    }
    skip_ws(&s);
    if (s.p >= s.end)
        goto invalid;
    {
        int in_object = (open[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;

        if (*s.p == ',') {
            s.p++;
            if (in_object)
                goto member;
            goto value;
        }
        if (*s.p == (in_object ? '}' : ']')) {
            s.p++;
            depth--;
            goto after_value;
        }
    }
invalid:
    return s.oom ? MCPGW_JSON_VIEW_OTHER : MCPGW_JSON_VIEW_INVALID;
}

void mcpgw_json_view_release(mcpgw_view *v)
{
    while (v->chunks) {
        mcpgw_json_view_chunk *next = v->chunks->next;
        free(v->chunks);
        v->chunks = next;
    }
    v->arena_used = 0;
}

/* ------------------------------------------------------------ decoding */


/* Decodes the body of a string the scan accepted (raw[0..n), between the
 * quotes) into out (room for n bytes: decoding never grows it). Returns
 * the decoded length. */
static size_t decode(const char *raw, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        unsigned cp = 0, lo = 0;       /* the scan checked the digits */

        if (raw[i] != '\\') {
            out[o++] = raw[i++];
            continue;
        }
        switch (raw[i + 1]) {
        case 'b': out[o++] = '\b'; i += 2; continue;
        case 'f': out[o++] = '\f'; i += 2; continue;
        case 'n': out[o++] = '\n'; i += 2; continue;
        case 'r': out[o++] = '\r'; i += 2; continue;
        case 't': out[o++] = '\t'; i += 2; continue;
        case 'u': break;
        default: out[o++] = raw[i + 1]; i += 2; continue;   /* " \ / */
        }
        mcpgw_json_hex4(raw + i + 2, &cp);
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            mcpgw_json_hex4(raw + i + 2, &lo);
            i += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o += mcpgw_json_utf8_encode(cp, out + o);
    }
    return o;
}

static int key_equals(const mcpgw_json_view_member *m, const char *key, size_t klen)
{
    char stackbuf[256], *dec;
    size_t n;
    int eq;

    if (!m->key_escaped)
        return m->key_len == klen && memcmp(m->key, key, klen) == 0;
    if (m->key_len < klen)          /* decoding only shortens */
        return 0;
    dec = m->key_len <= sizeof(stackbuf) ? stackbuf : malloc(m->key_len);
    if (!dec)
        return 0;
    n = decode(m->key, m->key_len, dec);
    eq = n == klen && memcmp(dec, key, klen) == 0;
    if (dec != stackbuf)
        free(dec);
    return eq;
}

int mcpgw_json_view_get(const mcpgw_view *v, const char *key, mcpgw_member *m)
{
    size_t klen = key ? strlen(key) : 0;

    for (size_t i = v->n_members; key && i-- > 0;) {
        if (key_equals(&v->members[i], key, klen)) {
            *m = v->members[i].value;
            return m->kind;
        }
    }
    memset(m, 0, sizeof(*m));
    return MCPGW_JSON_ABSENT;
}

/* n bytes that live as long as the view. */
static char *view_alloc(mcpgw_view *v, size_t n)
{
    mcpgw_json_view_chunk *c;

    if (n <= sizeof(v->arena) - v->arena_used) {
        char *p = v->arena + v->arena_used;
        v->arena_used += n;
        return p;
    }
    c = malloc(sizeof(*c) + n);
    if (!c)
        return NULL;
    c->next = v->chunks;
    v->chunks = c;
    return c->data;
}

const char *mcpgw_json_view_string(mcpgw_view *v, const mcpgw_member *m, size_t *len)
{
    const char *raw;
    size_t n, out_len;
    char *out;

    if (!m || m->kind != MCPGW_JSON_STRING || m->len < 2)
        return NULL;
    raw = m->text + 1;
    n = m->len - 2;
    if (!(out = view_alloc(v, n + 1)))
        return NULL;
    if (memchr(raw, '\\', n)) {
        out_len = decode(raw, n, out);
    } else {
        memcpy(out, raw, n);
        out_len = n;
    }
    out[out_len] = '\0';
    if (len)
        *len = out_len;
    return out;
}

/* -------------------------------------------------------------- writing */

int mcpgw_json_view_write_member(mcpgw_jbuf *b, const mcpgw_member *m)
{
    size_t mark = b->len;

    if (!m)
        return -1;
    switch (m->kind) {
    case MCPGW_JSON_STRING:
        if (!memchr(m->text, '\\', m->len)) {
            /* nothing the writer would escape: no quote, backslash or
             * control character is left in an unescaped string */
            break;
        } else {
            char stackbuf[256], *dec = m->len <= sizeof(stackbuf) ? stackbuf : malloc(m->len);
            int rc;

            if (!dec)
                return -1;
            rc = mcpgw_json_write_string(b, dec, decode(m->text + 1, m->len - 2, dec));
            if (dec != stackbuf)
                free(dec);
            if (rc != 0)
                b->len = mark;
            return rc;
        }
    case MCPGW_JSON_INTEGER:
        if (m->len == 2 && m->text[0] == '-' && m->text[1] == '0') {
            if (mcpgw_jbuf_reserve(b, 1) != 0)
                return -1;
            b->data[b->len++] = '0';
            return 0;
        }
        /* otherwise digits without leading zeros: the value's decimal text
         * (a 19-digit integer inside json_int_t as well) */
        break;
    case MCPGW_JSON_TRUE:
    case MCPGW_JSON_FALSE:
    case MCPGW_JSON_NULL:
        break;
    case MCPGW_JSON_REAL:
    case MCPGW_JSON_OBJECT:
    case MCPGW_JSON_ARRAY: {
        /* reals and containers: through the tree, byte for byte the same */
        json_t *t = mcpgw_json_read(m->text, m->len, NULL);
        int rc = t ? mcpgw_json_write(b, t) : -1;

        json_decref(t);
        return rc;
    }
    default:
        return -1;
    }
    if (mcpgw_jbuf_reserve(b, m->len) != 0)
        return -1;
    memcpy(b->data + b->len, m->text, m->len);
    b->len += m->len;
    return 0;
}
