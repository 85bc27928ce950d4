/*
 * pmd.c - permessage-deflate for the client: checking the server's
 * extension answer, and deflating/inflating messages with zlib.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pmd.h"

void mcpgw_cpmd_free(mcpgw_cpmd *p)
{
    if (p->inflater) {
        inflateEnd(p->inflater);
        free(p->inflater);
    }
    if (p->deflater) {
        deflateEnd(p->deflater);
        free(p->deflater);
    }
    memset(p, 0, sizeof(*p));
}

static const char *skip_ws(const char *s, const char *e)
{
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* One "name[=value]" parameter, value possibly quoted; bits -1 when absent. */
static int parse_bits(const char *v, size_t n, int *bits)
{
    int b = 0;
    size_t i;

    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n < 1 || n > 2)
        return -1;
    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        b = b * 10 + (v[i] - '0');
    }
    if (b < 8 || b > 15 || (n == 2 && v[0] == '0'))
        return -1;
    *bits = b;
    return 0;
}

int mcpgw_cpmd_accept(const char *value, size_t len, mcpgw_cpmd *p, const char **why)
{
    const char *s = value, *e = value + len, *tok;
    int seen_snct = 0, seen_cnct = 0, seen_smwb = 0, seen_cmwb = 0;

    memset(p, 0, sizeof(*p));
    p->server_window_bits = 15;
    p->client_window_bits = 15;
    s = skip_ws(s, e);
    tok = s;
    while (s < e && *s != ';' && *s != ',' && *s != ' ' && *s != '\t')
        s++;
    if ((size_t)(s - tok) != 18 || strncasecmp(tok, "permessage-deflate", 18) != 0) {
        *why = "server selected an extension that was not offered";
        return -1;
    }
    for (;;) {
        const char *name, *ne, *v = NULL, *ve = NULL;
        s = skip_ws(s, e);
        if (s == e)
            break;
        if (*s == ',') {
            *why = "server selected more than one extension";
            return -1;
        }
        if (*s != ';')
            goto bad;
        s = skip_ws(s + 1, e);
        name = s;
        while (s < e && *s != '=' && *s != ';' && *s != ',' && *s != ' ' && *s != '\t')
            s++;
        ne = s;
        s = skip_ws(s, e);
        if (s < e && *s == '=') {
            s = skip_ws(s + 1, e);
            v = s;
            while (s < e && *s != ';' && *s != ',' && *s != ' ' && *s != '\t')
                s++;
            ve = s;
        }
#define NAME_IS(lit) ((size_t)(ne - name) == sizeof(lit) - 1 && strncasecmp(name, lit, sizeof(lit) - 1) == 0)
        if (NAME_IS("server_no_context_takeover") && !v && !seen_snct++) {
            p->server_no_context_takeover = 1;
        } else if (NAME_IS("client_no_context_takeover") && !v && !seen_cnct++) {
            p->client_no_context_takeover = 1;
        } else if (NAME_IS("server_max_window_bits") && v && !seen_smwb++) {
            if (parse_bits(v, (size_t)(ve - v), &p->server_window_bits) != 0)
                goto bad;
        } else if (NAME_IS("client_max_window_bits") && v && !seen_cmwb++) {
            if (parse_bits(v, (size_t)(ve - v), &p->client_window_bits) != 0)
                goto bad;
        } else {
            goto bad;
        }
#undef NAME_IS
    }
    p->active = 1;
    return 0;

bad:
    *why = "invalid permessage-deflate parameters from the server";
    return -1;
}

uint8_t *mcpgw_cpmd_deflate(mcpgw_cpmd *p, const uint8_t *in, size_t len, size_t *out_len)
{
    uint8_t *out;
    size_t cap;

    if (!p->active || len < MCPGW_CPMD_THRESHOLD || p->client_window_bits < 9)
        return NULL;
    if (!p->deflater) {
        p->deflater = calloc(1, sizeof(z_stream));
        if (!p->deflater)
            return NULL;
        if (deflateInit2(p->deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -p->client_window_bits,
                         8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(p->deflater);
            p->deflater = NULL;
            return NULL;
        }
    } else {
        deflateReset(p->deflater);
    }
    cap = deflateBound(p->deflater, len) + 16;
    out = malloc(cap);
    if (!out)
        return NULL;
    p->deflater->next_in = (Bytef *)in;
    p->deflater->avail_in = (uInt)len;
    p->deflater->next_out = out;
    p->deflater->avail_out = (uInt)cap;
    if (deflate(p->deflater, Z_SYNC_FLUSH) != Z_OK || p->deflater->avail_in != 0
        || p->deflater->avail_out == 0) {
        free(out);
        return NULL;
    }
    *out_len = cap - p->deflater->avail_out;
    if (*out_len < 4 || memcmp(out + *out_len - 4, "\x00\x00\xff\xff", 4) != 0) {
        free(out);
        return NULL;
    }
    *out_len -= 4;
    if (*out_len >= len) {          /* no gain: send it plain */
        free(out);
        return NULL;
    }
    return out;
}

int mcpgw_cpmd_inflate(mcpgw_cpmd *p, const uint8_t *in, size_t len, size_t limit,
                       uint8_t **out, size_t *out_len)
{
    static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
    uint8_t *buf = NULL;
    size_t cap = len * 4 + 256, have = 0;
    int pass, rc;

    *out = NULL;
    if (!p->inflater) {
        p->inflater = calloc(1, sizeof(z_stream));
        if (!p->inflater)
            return 3;
        if (inflateInit2(p->inflater, -15) != Z_OK) {
            free(p->inflater);
            p->inflater = NULL;
            return 3;
        }
    }
    if (cap > limit + 1)
        cap = limit + 1;
    buf = malloc(cap ? cap : 1);
    if (!buf)
        return 3;
    for (pass = 0; pass < 2; pass++) {
        p->inflater->next_in = (Bytef *)(pass == 0 ? in : tail);
        p->inflater->avail_in = (uInt)(pass == 0 ? len : sizeof(tail));
        for (;;) {
            if (have == cap) {
                uint8_t *nb;
                if (cap > limit) {
                    free(buf);
                    inflateReset(p->inflater);
                    return 1;
                }
                cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
                nb = realloc(buf, cap);
                if (!nb) {
                    free(buf);
                    return 3;
                }
                buf = nb;
            }
            p->inflater->next_out = buf + have;
            p->inflater->avail_out = (uInt)(cap - have);
            rc = inflate(p->inflater, Z_SYNC_FLUSH);
            have = cap - p->inflater->avail_out;
            if (rc == Z_STREAM_END) {
                /* A final block: the next message starts a new stream. */
                inflateReset(p->inflater);
                break;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                free(buf);
                inflateReset(p->inflater);
                return 2;
            }
            if (have > limit) {
                free(buf);
                inflateReset(p->inflater);
                return 1;
            }
            if (p->inflater->avail_in == 0 && p->inflater->avail_out != 0)
                break;          /* all input used, all output out */
            if (rc == Z_BUF_ERROR && p->inflater->avail_out != 0)
                break;          /* no progress possible */
        }
    }
    if (have > limit) {
        free(buf);
        inflateReset(p->inflater);
        return 1;
    }
    *out = buf;
    *out_len = have;
    return 0;
}
