/*
 * pmd.c - permessage-deflate (RFC 7692) for the server and the client:
 * offer parsing and negotiation, checking the server's answer, pooled and
 * per-connection zlib streams, compress and bounded inflate. See pmd.h for
 * the memory model.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pmd.h"

/* ------------------------------------------------------------ parsing */

/* RFC 7230 tchar. */
static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ows(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* A token; returns its length (0 if none). */
static size_t take_token(cursor *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* A token or a quoted-string, unquoted into buf (cap bytes). -1 if malformed. */
static int take_value(cursor *c, char *buf, size_t cap)
{
    size_t n = 0;

    if (c->p < c->end && *c->p == '"') {
        c->p++;
        while (c->p < c->end && *c->p != '"') {
            if (*c->p == '\\') {
                if (++c->p >= c->end)
                    return -1;
            }
            if ((unsigned char)*c->p < 0x20 && *c->p != '\t')
                return -1;
            if (n + 1 >= cap)
                return -1;
            buf[n++] = *c->p++;
        }
        if (c->p >= c->end)
            return -1;
        c->p++;     /* closing quote */
    } else {
        const char *s;
        size_t len = take_token(c, &s);
        if (len == 0 || len + 1 > cap)
            return -1;
        memcpy(buf, s, len);
        n = len;
    }
    buf[n] = '\0';
    return 0;
}

/* Window bits per RFC 7692 7.1.2: "8".."15", no leading zeros. */
static int window_bits(const char *v)
{
    if (v[0] >= '8' && v[0] <= '9' && v[1] == '\0')
        return v[0] - '0';
    if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && v[2] == '\0')
        return 10 + v[1] - '0';
    return -1;
}

typedef struct offer {
    int valid;
    int server_nct, client_nct;
    int server_bits;                /* 0: not offered */
    int client_bits;                /* 0: not offered; -1: offered without a value */
} offer;

/* Parses the parameters of one extension up to ',' or the end. Returns -1
 * when the header is malformed (nothing after can be trusted). */
static int parse_params(cursor *c, offer *o)
{
    o->valid = 1;
    for (;;) {
        const char *name;
        size_t nlen;
        char value[32];
        int has_value = 0;

        skip_ows(c);
        if (c->p >= c->end || *c->p == ',')
            return 0;
        if (*c->p != ';')
            return -1;
        c->p++;
        skip_ows(c);
        nlen = take_token(c, &name);
        if (nlen == 0)
            return -1;
        skip_ows(c);
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            skip_ows(c);
            if (take_value(c, value, sizeof(value)) != 0)
                return -1;
            has_value = 1;
        }

#define IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(name, lit, nlen) == 0)
        if (IS("server_no_context_takeover")) {
            if (has_value || o->server_nct)
                o->valid = 0;
            o->server_nct = 1;
        } else if (IS("client_no_context_takeover")) {
            if (has_value || o->client_nct)
                o->valid = 0;
            o->client_nct = 1;
        } else if (IS("server_max_window_bits")) {
            int b = has_value ? window_bits(value) : -1;
            if (b < 0 || o->server_bits)
                o->valid = 0;
            o->server_bits = b;
        } else if (IS("client_max_window_bits")) {
            int b = has_value ? window_bits(value) : -1;
            if ((has_value && b < 0) || o->client_bits)
                o->valid = 0;
            o->client_bits = b;
        } else {
            o->valid = 0;           /* an unknown parameter: decline the offer */
        }
#undef IS
    }
}

/* Can we honour offer o? Fills p and the response. */
static int accept_offer(const mcpgw_pmd_config *cfg, const offer *o, mcpgw_pmd_params *p,
                        char *resp, size_t cap)
{
    int sw = cfg->server_max_window_bits;
    int cw = 15;
    int n;

    if (o->server_bits > 0 && o->server_bits < sw)
        sw = o->server_bits;
    /* zlib cannot produce a raw deflate stream with a 256-byte window. */
    if (sw < 9)
        return 0;
    if (o->client_bits) {
        cw = cfg->client_max_window_bits;
        if (o->client_bits > 0 && o->client_bits < cw)
            cw = o->client_bits;
    }
    p->enabled = 1;
    p->server_no_context_takeover = o->server_nct || cfg->server_no_context_takeover;
    p->client_no_context_takeover = o->client_nct || cfg->client_no_context_takeover;
    p->server_window_bits = sw;
    p->client_window_bits = cw;

    n = snprintf(resp, cap, "permessage-deflate%s%s",
                 p->server_no_context_takeover ? "; server_no_context_takeover" : "",
                 p->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (n > 0 && (size_t)n < cap && (sw < 15 || o->server_bits > 0))
        n += snprintf(resp + n, cap - (size_t)n, "; server_max_window_bits=%d", sw);
    if (n > 0 && (size_t)n < cap && o->client_bits && (cw < 15 || o->client_bits > 0))
        n += snprintf(resp + n, cap - (size_t)n, "; client_max_window_bits=%d", cw);
    return n > 0 && (size_t)n < cap;
}

int mcpgw_pmd_negotiate(const mcpgw_pmd_config *cfg, const char *value, size_t len,
                        mcpgw_pmd_params *out, char *resp, size_t cap)
{
    cursor c;

    memset(out, 0, sizeof(*out));
    if (!cfg->enabled || !value)
        return 0;
    c.p = value;
    c.end = value + len;
    for (;;) {
        const char *name;
        size_t nlen;
        offer o;

        skip_ows(&c);
        while (c.p < c.end && *c.p == ',') {    /* empty list elements */
            c.p++;
            skip_ows(&c);
        }
        if (c.p >= c.end)
            return 0;
        nlen = take_token(&c, &name);
        if (nlen == 0)
            return 0;                           /* malformed: decline all */
        memset(&o, 0, sizeof(o));
        if (parse_params(&c, &o) != 0)
            return 0;
        if (nlen == 18 && strncasecmp(name, "permessage-deflate", 18) == 0 && o.valid &&
            accept_offer(cfg, &o, out, resp, cap))
            return 1;
        memset(out, 0, sizeof(*out));
        if (c.p < c.end && *c.p == ',')
            c.p++;
    }
}

int mcpgw_pmd_accept_response(const char *value, size_t len, mcpgw_pmd_params *out,
                              const char **why)
{
    cursor c;
    const char *name;
    size_t nlen;
    offer o;

    memset(out, 0, sizeof(*out));
    memset(&o, 0, sizeof(o));
    c.p = value;
    c.end = value + len;
    skip_ows(&c);
    nlen = value ? take_token(&c, &name) : 0;
    if (nlen != 18 || strncasecmp(name, "permessage-deflate", 18) != 0) {
        *why = "server selected an extension that was not offered";
        return -1;
    }
    /* An answer names the window it chose: client_max_window_bits needs a value. */
    if (parse_params(&c, &o) != 0 || !o.valid || o.client_bits < 0) {
        *why = "invalid permessage-deflate parameters from the server";
        return -1;
    }
    if (c.p < c.end) {                          /* stopped at a ',' */
        *why = "server selected more than one extension";
        return -1;
    }
    out->enabled = 1;
    out->role = MCPGW_PMD_CLIENT;
    out->server_no_context_takeover = o.server_nct;
    out->client_no_context_takeover = o.client_nct;
    out->server_window_bits = o.server_bits > 0 ? o.server_bits : 15;
    out->client_window_bits = o.client_bits > 0 ? o.client_bits : 15;
    return 0;
}

/* ------------------------------------------------------------ streams */

/* Our side's parameters and the peer's, by role. */
static int own_nct(const mcpgw_pmd_params *p)
{
    return p->role == MCPGW_PMD_CLIENT ? p->client_no_context_takeover
                                       : p->server_no_context_takeover;
}

static int own_bits(const mcpgw_pmd_params *p)
{
    return p->role == MCPGW_PMD_CLIENT ? p->client_window_bits : p->server_window_bits;
}

static int peer_nct(const mcpgw_pmd_params *p)
{
    return p->role == MCPGW_PMD_CLIENT ? p->server_no_context_takeover
                                       : p->client_no_context_takeover;
}

/* An 8-bit window is inflated with a 9-bit one: a larger window reads any
 * stream a smaller one wrote. */
static int peer_bits(const mcpgw_pmd_params *p)
{
    int b = p->role == MCPGW_PMD_CLIENT ? p->server_window_bits : p->client_window_bits;
    return b < 9 ? 9 : b;
}

void mcpgw_pmd_pool_init(mcpgw_pmd_pool *pool, int level, int mem_level)
{
    memset(pool, 0, sizeof(*pool));
    pool->level = level;
    pool->mem_level = mem_level;
}

static void free_deflater(z_stream *z)
{
    if (z) {
        deflateEnd(z);
        free(z);
    }
}

static void free_inflater(z_stream *z)
{
    if (z) {
        inflateEnd(z);
        free(z);
    }
}

void mcpgw_pmd_pool_free(mcpgw_pmd_pool *pool)
{
    for (int i = 0; i < MCPGW_PMD_WINDOWS; i++) {
        free_deflater(pool->deflaters[i]);
        free_inflater(pool->inflaters[i]);
        pool->deflaters[i] = pool->inflaters[i] = NULL;
    }
}

void mcpgw_pmd_state_free(mcpgw_pmd_state *st)
{
    free_deflater(st->deflater);
    free_inflater(st->inflater);
    st->deflater = st->inflater = NULL;
    st->deflater_stale = 0;
}

void mcpgw_pmd_state_restart(mcpgw_pmd_state *st)
{
    /* a deflater not made yet starts empty anyway */
    st->deflater_stale = st->deflater != NULL;
}

static z_stream *new_deflater(int level, int mem_level, int bits)
{
    z_stream *z = calloc(1, sizeof(*z));

    if (z && deflateInit2(z, level, Z_DEFLATED, -bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

static z_stream *new_inflater(int bits)
{
    z_stream *z = calloc(1, sizeof(*z));

    if (z && inflateInit2(z, -bits) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

/* The stream to compress with: the connection's own (context takeover) or
 * the pool's for this window, reset for a fresh context. */
static z_stream *deflater_for(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                              const mcpgw_pmd_params *p)
{
    int bits = own_bits(p), i = bits - 8;

    /* zlib cannot produce a raw deflate stream with a 256-byte window. */
    if (bits < 9 || bits > 15)
        return NULL;
    if (!own_nct(p) && st) {
        if (!st->deflater) {
            st->deflater = new_deflater(pool->level, pool->mem_level, bits);
        } else if (st->deflater_stale) {
            /* The peer's window has moved on with a message this stream did
             * not see: no back-reference into its old window may follow. The
             * last message ended with a sync flush, so the next starts on a
             * byte boundary with a new block, as a fresh stream's does. */
            deflateReset(st->deflater);
        }
        st->deflater_stale = 0;
        return st->deflater;
    }
    if (!pool->deflaters[i])
        pool->deflaters[i] = new_deflater(pool->level, pool->mem_level, bits);
    else
        deflateReset(pool->deflaters[i]);
    return pool->deflaters[i];
}

static z_stream *inflater_for(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                              const mcpgw_pmd_params *p)
{
    int bits = peer_bits(p), i = bits - 8;

    if (bits > 15)
        return NULL;
    if (!peer_nct(p) && st) {
        if (!st->inflater)
            st->inflater = new_inflater(bits);
        return st->inflater;
    }
    if (!pool->inflaters[i])
        pool->inflaters[i] = new_inflater(bits);
    else
        inflateReset(pool->inflaters[i]);
    return pool->inflaters[i];
}

uint8_t *mcpgw_pmd_deflate(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                           const mcpgw_pmd_params *p, const uint8_t *in, size_t len,
                           size_t *out_len)
{
    z_stream *z = deflater_for(pool, st, p);
    size_t cap, used;
    uint8_t *out;

    if (!z || len > 0xffffffffu)
        return NULL;
    cap = deflateBound(z, (uLong)len) + 16;
    out = malloc(cap);
    if (!out)
        return NULL;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)len;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    /* deflateBound covers one flush of the whole input: a single call. */
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0) {
        free(out);
        return NULL;
    }
    used = cap - z->avail_out;
    /* RFC 7692 7.2.1: drop the 00 00 ff ff that ends the sync flush. */
    if (used >= 4 && memcmp(out + used - 4, "\x00\x00\xff\xff", 4) == 0)
        used -= 4;
    *out_len = used;
    return out;
}

/* Runs one message, then the tail the sender removed, through z into
 * *buf (*used of *cap bytes filled). With grow the buffer is doubled up to
 * limit + 1 bytes; without, limit is *cap and filling it is TOO_BIG. */
static mcpgw_pmd_result inflate_run(z_stream *z, const uint8_t *in, size_t len, uint8_t **buf,
                                    size_t *cap, size_t *used, size_t limit, int grow)
{
    static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };

    if (len > 0xffffffffu)
        return MCPGW_PMD_TOO_BIG;
    for (int pass = 0; pass < 2; pass++) {
        z->next_in = (Bytef *)(pass == 0 ? in : tail);
        z->avail_in = (uInt)(pass == 0 ? len : sizeof(tail));
        for (;;) {
            int rc;

            if (*used == *cap) {
                size_t ncap;
                uint8_t *nb;
                if (!grow || *cap > limit)  /* already holds limit + 1 bytes */
                    return MCPGW_PMD_TOO_BIG;
                ncap = *cap * 2 > limit + 1 ? limit + 1 : *cap * 2;
                nb = realloc(*buf, ncap);
                if (!nb)
                    return MCPGW_PMD_NOMEM;
                *buf = nb;
                *cap = ncap;
            }
            z->next_out = *buf + *used;
            z->avail_out = (uInt)(*cap - *used);
            rc = inflate(z, Z_SYNC_FLUSH);
            *used = *cap - z->avail_out;
            if (*used > limit)
                return MCPGW_PMD_TOO_BIG;
            if (rc == Z_STREAM_END) {
                /* BFINAL: the sender started afresh; so do we. */
                inflateReset(z);
                return MCPGW_PMD_OK;
            }
            if (rc == Z_BUF_ERROR || (rc == Z_OK && z->avail_in == 0 && z->avail_out != 0))
                break;                      /* all input used */
            if (rc != Z_OK)
                return MCPGW_PMD_CORRUPT;
        }
    }
    return MCPGW_PMD_OK;
}

/* After a failed message: a stream that outlives it starts afresh (the
 * connection is failed anyway when it keeps context). */
static void inflate_failed(z_stream *z, mcpgw_pmd_state *st, const mcpgw_pmd_params *p,
                           mcpgw_pmd_result r)
{
    if (r == MCPGW_PMD_TOO_BIG || peer_nct(p) || !st)
        inflateReset(z);
}

mcpgw_pmd_result mcpgw_pmd_inflate(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                                   const mcpgw_pmd_params *p, const uint8_t *in, size_t len,
                                   size_t limit, uint8_t **out, size_t *out_len)
{
    z_stream *z = inflater_for(pool, st, p);
    size_t cap = limit < 16384 ? limit + 1 : 16384;
    size_t used = 0;
    uint8_t *buf;
    mcpgw_pmd_result r;

    *out = NULL;
    *out_len = 0;
    if (!z)
        return MCPGW_PMD_NOMEM;
    buf = malloc(cap);
    if (!buf)
        return MCPGW_PMD_NOMEM;
    r = inflate_run(z, in, len, &buf, &cap, &used, limit, 1);
    if (r != MCPGW_PMD_OK) {
        free(buf);
        inflate_failed(z, st, p, r);
        return r;
    }
    *out = buf;
    *out_len = used;
    return MCPGW_PMD_OK;
}

mcpgw_pmd_result mcpgw_pmd_inflate_into(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                                        const mcpgw_pmd_params *p, const uint8_t *in,
                                        size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    z_stream *z = inflater_for(pool, st, p);
    size_t used = 0;
    mcpgw_pmd_result r;

    *out_len = 0;
    if (!z)
        return MCPGW_PMD_NOMEM;
    r = inflate_run(z, in, len, &out, &cap, &used, cap, 0);
    if (r != MCPGW_PMD_OK)
        inflate_failed(z, st, p, r);
    *out_len = used;
    return r;
}
