/*
 * upgrade.c - the client side of the WebSocket upgrade: request head,
 * response head parsing, and checking the response with libmcpgw-proto's
 * accept key and permessage-deflate answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "handshake.h"
#include "upgrade.h"

void mcpgw_cup_key(char key[25])
{
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* The RNG failing is not a reason to refuse to connect: the key is
         * not a secret (RFC 6455 only wants it unpredictable per request). */
        size_t i;
        for (i = 0; i < sizeof(raw); i++)
            raw[i] = (unsigned char)(rand() & 0xff);
    }
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
}

char *mcpgw_cup_request(const char *host_header, const char *target,
                        const char *bearer, const char *key, const char *extensions)
{
    const char *fmt = "GET %s HTTP/1.1\r\n"
                      "Host: %s\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n"
                      "User-Agent: libmcpgw-client/0.1\r\n"
                      "%s%s%s"
                      "%s%s%s"
                      "\r\n";
    int n = snprintf(NULL, 0, fmt, target, host_header, key,
                     bearer ? "Authorization: Bearer " : "", bearer ? bearer : "",
                     bearer ? "\r\n" : "",
                     extensions ? "Sec-WebSocket-Extensions: " : "", extensions ? extensions : "",
                     extensions ? "\r\n" : "");
    char *r;

    if (n < 0)
        return NULL;
    r = malloc((size_t)n + 1);
    if (r)
        snprintf(r, (size_t)n + 1, fmt, target, host_header, key,
                 bearer ? "Authorization: Bearer " : "", bearer ? bearer : "",
                 bearer ? "\r\n" : "",
                 extensions ? "Sec-WebSocket-Extensions: " : "", extensions ? extensions : "",
                 extensions ? "\r\n" : "");
    return r;
}

/* Does the comma list v[0..n) contain token (case-insensitive)? */
static int list_has(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token), i = 0;

    while (i < n) {
        size_t b, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        b = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - b == tl && strncasecmp(v + b, token, tl) == 0)
            return 1;
    }
    return 0;
}

static void copy_trunc(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int mcpgw_cup_parse(const char *buf, size_t len, mcpgw_cup_response *r)
{
    const char *end = NULL, *p, *line_end;
    size_t i;

    for (i = 0; i + 3 < len && i < MCPGW_CUP_MAX_HEAD; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i + 4;
            break;
        }
    }
    if (!end)
        return len >= MCPGW_CUP_MAX_HEAD ? -1 : 1;
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->head_len = (size_t)(end - buf);

    /* Status line: HTTP/1.x SP 3DIGIT [SP reason] */
    line_end = buf;
    while (!(line_end[0] == '\r' && line_end[1] == '\n'))
        line_end++;
    if ((size_t)(line_end - buf) < 12 || strncmp(buf, "HTTP/1.", 7) != 0
        || !isdigit((unsigned char)buf[7]) || buf[8] != ' '
        || !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10])
        || !isdigit((unsigned char)buf[11]))
        return -1;
    r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (line_end > buf + 12) {
        if (buf[12] != ' ')
            return -1;
        copy_trunc(r->reason, sizeof(r->reason), buf + 13, (size_t)(line_end - (buf + 13)));
    }

    for (p = line_end + 2; p < end - 2; p = line_end + 2) {
        const char *colon, *v, *ve;
        size_t nl;

        line_end = p;
        while (line_end < end && !(line_end[0] == '\r' && line_end[1] == '\n'))
            line_end++;
        colon = memchr(p, ':', (size_t)(line_end - p));
        if (!colon || colon == p)
            return -1;
        nl = (size_t)(colon - p);
        v = colon + 1;
        while (v < line_end && (*v == ' ' || *v == '\t'))
            v++;
        ve = line_end;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(p, name, nl) == 0)
        if (IS("Content-Length")) {
            long cl = 0;
            const char *q;
            if (v == ve)
                return -1;
            for (q = v; q < ve; q++) {
                if (!isdigit((unsigned char)*q) || cl > 100000000L)
                    return -1;
                cl = cl * 10 + (*q - '0');
            }
            r->content_length = cl;
        } else if (IS("Upgrade")) {
            r->upgrade_websocket = list_has(v, (size_t)(ve - v), "websocket");
        } else if (IS("Connection")) {
            r->connection_upgrade = list_has(v, (size_t)(ve - v), "upgrade");
        } else if (IS("Sec-WebSocket-Accept")) {
            copy_trunc(r->accept, sizeof(r->accept), v, (size_t)(ve - v));
        } else if (IS("Sec-WebSocket-Extensions")) {
            if (r->has_extensions++)
                return -1;      /* one answer only */
            copy_trunc(r->extensions, sizeof(r->extensions), v, (size_t)(ve - v));
        } else if (IS("Sec-WebSocket-Protocol")) {
            r->has_protocol = 1;
        }
#undef IS
    }
    return 0;
}

int mcpgw_cup_validate(const mcpgw_cup_response *r, const char *key, int offered_pmd,
                       mcpgw_pmd_params *pmd, const char **why)
{
    char expect[MCPGW_WS_ACCEPT_LEN + 1];

    if (r->status != 101) {
        *why = "not 101 Switching Protocols";
        return -1;
    }
    if (!r->upgrade_websocket) {
        *why = "missing Upgrade: websocket";
        return -1;
    }
    if (!r->connection_upgrade) {
        *why = "missing Connection: upgrade";
        return -1;
    }
    mcpgw_handshake_accept_key(key, strlen(key), expect);
    if (strcmp(expect, r->accept) != 0) {
        *why = "wrong Sec-WebSocket-Accept";
        return -1;
    }
    memset(pmd, 0, sizeof(*pmd));
    if (r->has_extensions) {
        if (!offered_pmd) {
            *why = "server selected an extension that was not offered";
            return -1;
        }
        if (mcpgw_pmd_accept_response(r->extensions, strlen(r->extensions), pmd, why) != 0)
            return -1;
    }
    if (r->has_protocol) {
        *why = "server selected a subprotocol that was not offered";
        return -1;
    }
    return 0;
}
