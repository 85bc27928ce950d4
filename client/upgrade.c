/*
 * upgrade.c - the client side of the WebSocket upgrade: the request head,
 * and the server's answer read with libmcpgw-proto (the response head by
 * core/http.c, the accept key by core/handshake.c, the permessage-deflate
 * answer by core/pmd.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "handshake.h"
#include "http.h"
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

static void copy_trunc(char *dst, size_t cap, const mcpgw_str *s)
{
    size_t n = s->len < cap ? s->len : cap - 1;

    if (n)
        memcpy(dst, s->p, n);
    dst[n] = '\0';
}

int mcpgw_cup_parse(const char *buf, size_t len, mcpgw_cup_response *r)
{
    mcpgw_http_response head, *h = &head;
    mcpgw_http_result hr;
    int rc = -1;

    hr = mcpgw_http_parse_response(buf, len, MCPGW_CUP_MAX_HEAD, h);
    if (hr == MCPGW_HTTP_NEED_MORE) {
        rc = len >= MCPGW_CUP_MAX_HEAD ? -1 : 1;
        goto out;
    }
    if (hr != MCPGW_HTTP_OK)
        goto out;
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->head_len = h->head_len;
    r->status = h->status;
    copy_trunc(r->reason, sizeof(r->reason), &h->reason);
    for (size_t i = 0; i < h->n_headers; i++) {
        const mcpgw_str *name = &h->headers[i].name, *v = &h->headers[i].value;

        if (mcpgw_str_eq_nocase(name, "Content-Length")) {
            long cl = 0;
            if (v->len == 0)
                goto out;
            for (size_t k = 0; k < v->len; k++) {
                if (v->p[k] < '0' || v->p[k] > '9' || cl > 100000000L)
                    goto out;
                cl = cl * 10 + (v->p[k] - '0');
            }
            r->content_length = cl;
        } else if (mcpgw_str_eq_nocase(name, "Upgrade")) {
            r->upgrade_websocket = mcpgw_http_list_has_token(v, "websocket");
        } else if (mcpgw_str_eq_nocase(name, "Connection")) {
            r->connection_upgrade = mcpgw_http_list_has_token(v, "upgrade");
        } else if (mcpgw_str_eq_nocase(name, "Sec-WebSocket-Accept")) {
            copy_trunc(r->accept, sizeof(r->accept), v);
        } else if (mcpgw_str_eq_nocase(name, "Sec-WebSocket-Extensions")) {
            if (r->has_extensions++)
                goto out;           /* one answer only */
            copy_trunc(r->extensions, sizeof(r->extensions), v);
        } else if (mcpgw_str_eq_nocase(name, "Sec-WebSocket-Protocol")) {
            r->has_protocol = 1;
        }
    }
    rc = 0;
out:
    return rc;
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
