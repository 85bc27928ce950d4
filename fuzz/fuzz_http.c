/*
 * fuzz_http.c - libFuzzer target for the HTTP upgrade request: core/http.c
 * (mcpgw_http_parse, the header helpers and the framing checks; every input
 * is also read as a response head, mcpgw_http_parse_response, the client's
 * side of the upgrade: see check_response) and
 * core/handshake.c (mcpgw_handshake_check, mcpgw_handshake_accept_key,
 * mcpgw_extract_token_from, mcpgw_http_accepts), plus the response
 * formatter conn.c answers with.
 *
 * Invariants checked (trap on mismatch):
 *  - the result is one of the documented codes; NEED_MORE only while the
 *    input fits in max_head;
 *  - on OK: head_len <= len and <= max_head, every parsed string lies inside
 *    the head, path + "?" + query == target, header names are tokens and
 *    values hold no CR/LF/NUL; every strict prefix of the head gives
 *    NEED_MORE (all prefixes for heads up to 1 KiB, a sample beyond); the
 *    head alone parses to the same request;
 *  - mcpgw_handshake_check() gives 0 or one of 400/405/426 with a body and
 *    a reason; on 0 the key is 24 bytes and the accept key is 28 base64
 *    characters; the answer conn.c would send formats.
 * max_head is 8192 (the default) or, if the first byte is '~', a small
 * value taken from the second byte (that byte is then skipped), so the
 * TOO_LARGE paths are reached too.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "handshake.h"
#include "http.h"

static int in_buf(const char *buf, size_t len, const mcpgw_str *s)
{
    if (s->len == 0)
        return 1;
    return s->p >= buf && s->p + s->len <= buf + len;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

static void check_prefix(const char *buf, size_t k, size_t max_head)
{
    char *pre = malloc(k ? k : 1);         /* exact size: ASan sees over-reads */
    mcpgw_http_request *req = malloc(sizeof(*req));

    FUZZ_ASSERT(pre && req);
    memcpy(pre, buf, k);
    FUZZ_ASSERT(mcpgw_http_parse(pre, k, max_head, req) == MCPGW_HTTP_NEED_MORE);
    free(req);
    free(pre);
}

static void check_request(const char *buf, size_t len, size_t max_head,
                          const mcpgw_http_request *req)
{
    mcpgw_handshake_verdict v;
    char resp[1024];
    size_t n;

    FUZZ_ASSERT(req->head_len > 0 && req->head_len <= len && req->head_len <= max_head);
    FUZZ_ASSERT(req->method.len > 0 && in_buf(buf, req->head_len, &req->method));
    FUZZ_ASSERT(req->target.len > 0 && req->target.p[0] == '/');
    FUZZ_ASSERT(in_buf(buf, req->head_len, &req->target));
    FUZZ_ASSERT(req->path.p == req->target.p && req->path.len <= req->target.len);
    if (req->query.len || req->path.len < req->target.len) {
        FUZZ_ASSERT(req->path.len + 1 + req->query.len == req->target.len);
        FUZZ_ASSERT(req->target.p[req->path.len] == '?');
        FUZZ_ASSERT(req->query.p == req->target.p + req->path.len + 1);
    }
    FUZZ_ASSERT(memchr(req->path.p, '?', req->path.len) == NULL);
    FUZZ_ASSERT(req->version_minor >= 0 && req->version_minor <= 9);
    FUZZ_ASSERT(req->n_headers <= MCPGW_HTTP_MAX_HEADERS);
    /* Streamable HTTP's Accept check: any header value, no crash, and a
     * wildcard range is at least as accepting as the type itself */
    if (mcpgw_http_accepts(mcpgw_http_header_get(req, "Accept"), "application/json"))
        (void)mcpgw_http_accepts(mcpgw_http_header_get(req, "Accept"), "text/event-stream");
    for (size_t i = 0; i < req->n_headers; i++) {
        const mcpgw_http_header *h = &req->headers[i];

        FUZZ_ASSERT(h->name.len > 0 && in_buf(buf, req->head_len, &h->name));
        FUZZ_ASSERT(in_buf(buf, req->head_len, &h->value));
        for (size_t k = 0; k < h->name.len; k++)
            FUZZ_ASSERT(is_tchar((unsigned char)h->name.p[k]));
        for (size_t k = 0; k < h->value.len; k++) {
            unsigned char c = (unsigned char)h->value.p[k];
            FUZZ_ASSERT(c != '\r' && c != '\n' && c != '\0');
        }
        if (h->value.len) {
            FUZZ_ASSERT(h->value.p[0] != ' ' && h->value.p[0] != '\t');
            FUZZ_ASSERT(h->value.p[h->value.len - 1] != ' ' &&
                        h->value.p[h->value.len - 1] != '\t');
        }
        /* The lookup finds a header of that name (the first one). */
        {
            char name[256];
            size_t nl = h->name.len < sizeof(name) - 1 ? h->name.len : sizeof(name) - 1;
            const mcpgw_str *got;

            memcpy(name, h->name.p, nl);
            name[nl] = '\0';
            got = mcpgw_http_header_get(req, name);
            if (nl == h->name.len)
                FUZZ_ASSERT(got != NULL);
            (void)mcpgw_http_list_has_token(&h->value, "upgrade");
            (void)mcpgw_http_list_has_token(&h->value, "websocket");
        }
    }

    /* Prefixes of the head: NEED_MORE (all of them for small heads). */
    if (req->head_len <= 1024) {
        for (size_t k = 0; k < req->head_len; k++)
            check_prefix(buf, k, max_head);
    } else {
        for (size_t k = 0; k < req->head_len; k += req->head_len / 61 + 1)
            check_prefix(buf, k, max_head);
        for (size_t k = req->head_len - 4; k < req->head_len; k++)
            check_prefix(buf, k, max_head);
    }
    /* The head alone gives the same request. */
    {
        mcpgw_http_request *again = malloc(sizeof(*again));
        char *head = malloc(req->head_len);

        FUZZ_ASSERT(again && head);
        memcpy(head, buf, req->head_len);
        FUZZ_ASSERT(mcpgw_http_parse(head, req->head_len, max_head, again) == MCPGW_HTTP_OK);
        FUZZ_ASSERT(again->head_len == req->head_len && again->n_headers == req->n_headers);
        FUZZ_ASSERT(again->target.len == req->target.len && again->method.len == req->method.len);
        free(head);
        free(again);
    }

    /* request-smuggling checks (issue 15): a reason comes with a body */
    {
        const char *body = NULL;
        const char *why = mcpgw_http_check_framing(req, &body);
        FUZZ_ASSERT(!why || (*why && body && *body));
    }
    /* the token, wherever it is: a result within cap, NUL-terminated, and
     * a source that agrees with it */
    {
        char tok[64];
        mcpgw_token_source src = MCPGW_TOKEN_NONE;
        long t = mcpgw_extract_token_from(req, tok, sizeof(tok), &src);
        FUZZ_ASSERT(t < (long)sizeof(tok));
        if (t > 0)
            FUZZ_ASSERT(strlen(tok) == (size_t)t && src != MCPGW_TOKEN_NONE);
        if (t == 0)
            FUZZ_ASSERT(src == MCPGW_TOKEN_NONE || tok[0] == '\0');
    }
    mcpgw_handshake_check(req, &v);
    FUZZ_ASSERT(v.reason && *v.reason);
    if (v.status == 0) {
        const mcpgw_str *key = mcpgw_http_header_get(req, "Sec-WebSocket-Key");
        char accept[MCPGW_WS_ACCEPT_LEN + 1];

        FUZZ_ASSERT(req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0);
        FUZZ_ASSERT(req->version_minor >= 1);
        FUZZ_ASSERT(mcpgw_http_header_get(req, "Host") != NULL);
        FUZZ_ASSERT(key && key->len == 24);
        memset(accept, 0x55, sizeof(accept));
        mcpgw_handshake_accept_key(key->p, key->len, accept);
        FUZZ_ASSERT(accept[MCPGW_WS_ACCEPT_LEN] == '\0');
        for (size_t i = 0; i < MCPGW_WS_ACCEPT_LEN; i++)
            FUZZ_ASSERT(is_b64((unsigned char)accept[i]));
    } else {
        FUZZ_ASSERT(v.status == 400 || v.status == 405 || v.status == 426);
        FUZZ_ASSERT(v.body && *v.body);
        n = mcpgw_http_format_response(resp, sizeof(resp), v.status, v.extra_headers, v.body);
        FUZZ_ASSERT(n > 0 && n == strlen(resp));
    }
}

static void check_response_prefix(const char *buf, size_t k, size_t max_head)
{
    char *pre = malloc(k ? k : 1);
    mcpgw_http_response *resp = malloc(sizeof(*resp));

    FUZZ_ASSERT(pre && resp);
    memcpy(pre, buf, k);
    FUZZ_ASSERT(mcpgw_http_parse_response(pre, k, max_head, resp) == MCPGW_HTTP_NEED_MORE);
    free(resp);
    free(pre);
}

/* The same bytes as a response head (the client's side): the documented
 * results; on OK a three-digit status, a reason without controls, headers
 * as a request's, every strict prefix NEED_MORE, and header lines parsed
 * exactly as the request parser parses them. */
static void check_response(const char *buf, size_t len, size_t max_head)
{
    mcpgw_http_response *resp = malloc(sizeof(*resp));
    mcpgw_http_result r;

    FUZZ_ASSERT(resp);
    r = mcpgw_http_parse_response(buf, len, max_head, resp);
    FUZZ_ASSERT(r == MCPGW_HTTP_OK || r == MCPGW_HTTP_NEED_MORE || r == MCPGW_HTTP_BAD ||
                r == MCPGW_HTTP_TOO_LARGE || r == MCPGW_HTTP_BAD_VERSION);
    if (r == MCPGW_HTTP_NEED_MORE)
        FUZZ_ASSERT(len <= max_head);
    if (r == MCPGW_HTTP_OK) {
        mcpgw_http_request *req = malloc(sizeof(*req));
        char *as_req;
        size_t skip;

        FUZZ_ASSERT(resp->head_len > 0 && resp->head_len <= len && resp->head_len <= max_head);
        FUZZ_ASSERT(resp->status >= 0 && resp->status <= 999);
        FUZZ_ASSERT(resp->version_minor >= 0 && resp->version_minor <= 9);
        FUZZ_ASSERT(in_buf(buf, resp->head_len, &resp->reason));
        for (size_t k = 0; k < resp->reason.len; k++) {
            unsigned char c = (unsigned char)resp->reason.p[k];
            FUZZ_ASSERT(c >= 0x20 || c == '\t');
        }
        FUZZ_ASSERT(resp->n_headers <= MCPGW_HTTP_MAX_HEADERS);
        for (size_t i = 0; i < resp->n_headers; i++) {
            FUZZ_ASSERT(resp->headers[i].name.len > 0);
            FUZZ_ASSERT(in_buf(buf, resp->head_len, &resp->headers[i].name));
            FUZZ_ASSERT(in_buf(buf, resp->head_len, &resp->headers[i].value));
        }
        for (size_t k = 0; k < resp->head_len; k += resp->head_len / 61 + 1)
            check_response_prefix(buf, k, max_head);
        /* the status line swapped for a request line: the same headers */
        skip = (size_t)((const char *)memchr(buf, '\n', resp->head_len) - buf) + 1;
        as_req = malloc(resp->head_len - skip + 16);
        FUZZ_ASSERT(req && as_req);
        memcpy(as_req, "GET / HTTP/1.1\r\n", 16);
        memcpy(as_req + 16, buf + skip, resp->head_len - skip);
        if (resp->head_len - skip + 16 <= max_head) {
            FUZZ_ASSERT(mcpgw_http_parse(as_req, resp->head_len - skip + 16, max_head, req) ==
                        MCPGW_HTTP_OK);
            FUZZ_ASSERT(req->n_headers == resp->n_headers);
            for (size_t i = 0; i < resp->n_headers; i++)
                FUZZ_ASSERT(req->headers[i].value.len == resp->headers[i].value.len &&
                            req->headers[i].name.len == resp->headers[i].name.len);
        }
        free(as_req);
        free(req);
    }
    free(resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t max_head = 8192;
    mcpgw_http_request *req;
    mcpgw_http_result r;
    char *buf;

    if (size >= 2 && data[0] == '~') {
        max_head = 16 + data[1];
        data += 2;
        size -= 2;
    }
    buf = malloc(size ? size : 1);
    req = malloc(sizeof(*req));
    FUZZ_ASSERT(buf && req);
    memcpy(buf, data, size);

    r = mcpgw_http_parse(buf, size, max_head, req);
    switch (r) {
    case MCPGW_HTTP_OK:
        check_request(buf, size, max_head, req);
        break;
    case MCPGW_HTTP_NEED_MORE:
        FUZZ_ASSERT(size <= max_head);
        break;
    case MCPGW_HTTP_BAD:
    case MCPGW_HTTP_TOO_LARGE:
    case MCPGW_HTTP_BAD_VERSION:
        break;
    default:
        FUZZ_ASSERT(!"unknown mcpgw_http_result");
    }
    check_response(buf, size, max_head);
    free(req);
    free(buf);
    return 0;
}
