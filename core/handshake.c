/*
 * handshake.c - owns the WebSocket opening-handshake decision (RFC 6455
 * section 4.2.1), the Sec-WebSocket-Accept computation (section 4.2.2) and
 * the extraction of the client's token from the query or Authorization.
 *
 * Decides only: conn.c formats and writes the answer.
 */
#include "handshake.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_LEN (sizeof(WS_GUID) - 1)

static void reject(mcpgw_handshake_verdict *v, int status, const char *body,
                   const char *extra_headers, const char *reason)
{
    v->status = status;
    v->body = body;
    v->extra_headers = extra_headers;
    v->reason = reason;
}

/* Does any header called name list token? Repeated list headers count as
 * one comma-joined list (RFC 7230 section 3.2.2). */
static int any_header_has_token(const mcpgw_http_request *req, const char *name,
                                const char *token)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (mcpgw_str_eq_nocase(&req->headers[i].name, name) &&
            mcpgw_http_list_has_token(&req->headers[i].value, token))
            return 1;
    return 0;
}

/* The only header called name, or NULL if it is absent or repeated. */
static const mcpgw_str *single_header(const mcpgw_http_request *req, const char *name)
{
    const mcpgw_str *found = NULL;

    for (size_t i = 0; i < req->n_headers; i++) {
        if (!mcpgw_str_eq_nocase(&req->headers[i].name, name))
            continue;
        if (found)
            return NULL;
        found = &req->headers[i].value;
    }
    return found;
}

static int is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Standard base64 with padding of exactly 16 bytes: 22 alphabet characters
 * then "==". Non-zero trailing bits in the last character are tolerated
 * (RFC 4648 lets decoders accept them; the key is only a nonce). */
static int key_is_valid(const mcpgw_str *key)
{
    if (key->len != 24)
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64_char((unsigned char)key->p[i]))
            return 0;
    return key->p[22] == '=' && key->p[23] == '=';
}

/* Does the request announce a body: any Transfer-Encoding, or a
 * Content-Length other than 0? Bytes after an upgrade's head are WebSocket
 * frames to us, while a proxy in front may take them for the body. */
static int announces_body(const mcpgw_http_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const mcpgw_str *value = &req->headers[i].value;

        if (mcpgw_str_eq_nocase(&req->headers[i].name, "Transfer-Encoding"))
            return 1;
        if (!mcpgw_str_eq_nocase(&req->headers[i].name, "Content-Length"))
            continue;
        if (value->len == 0)
            return 1;
        for (size_t k = 0; k < value->len; k++)
            if (value->p[k] != '0')
                return 1;
    }
    return 0;
}

void mcpgw_handshake_check(const mcpgw_http_request *req, mcpgw_handshake_verdict *v)
{
    const mcpgw_str *s;

    reject(v, 0, NULL, NULL, "ok");

    /* Methods are case-sensitive (RFC 7231 section 4.1). */
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0) {
        reject(v, 405, "Method Not Allowed", "Allow: GET\r\n", "bad_method");
        return;
    }
    if (req->version_minor < 1) {
        reject(v, 400, "HTTP/1.1 required", NULL, "bad_http_version");
        return;
    }
    if (announces_body(req)) {
        reject(v, 400, "Bad Request: an upgrade request has no body "
                       "(no Transfer-Encoding, no Content-Length but 0)",
               NULL, "upgrade_with_body");
        return;
    }
    if (!mcpgw_http_header_get(req, "Host")) {
        reject(v, 400, "Missing Host header", NULL, "missing_host");
        return;
    }
    if (!any_header_has_token(req, "Upgrade", "websocket")) {
        reject(v, 426, "Upgrade Required",
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", "not_upgrade");
        return;
    }
    if (!any_header_has_token(req, "Connection", "upgrade")) {
        reject(v, 400, "Missing or invalid Connection header", NULL, "bad_connection");
        return;
    }
    /* Sec-WebSocket-Key and -Version must not be repeated (section 11.3). */
    s = single_header(req, "Sec-WebSocket-Key");
    if (!s || !key_is_valid(s)) {
        reject(v, 400, "Missing or invalid Sec-WebSocket-Key header", NULL, "bad_key");
        return;
    }
    s = single_header(req, "Sec-WebSocket-Version");
    if (!s || s->len != 2 || memcmp(s->p, "13", 2) != 0) {
        reject(v, 426, "Unsupported WebSocket version",
               "Sec-WebSocket-Version: 13\r\n", "bad_version");
        return;
    }
}

void mcpgw_handshake_accept_key(const char *key, size_t key_len,
                                char out[MCPGW_WS_ACCEPT_LEN + 1])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned char buf[128 + WS_GUID_LEN];

    if (key_len <= sizeof(buf) - WS_GUID_LEN) {
        if (key_len)
            memcpy(buf, key, key_len);
        memcpy(buf + key_len, WS_GUID, WS_GUID_LEN);
        SHA1(buf, key_len + WS_GUID_LEN, digest);
    } else {
        /* Never the case for a key that passed mcpgw_handshake_check. */
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int dlen = 0;
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
            !EVP_DigestUpdate(ctx, key, key_len) ||
            !EVP_DigestUpdate(ctx, WS_GUID, WS_GUID_LEN) ||
            !EVP_DigestFinal_ex(ctx, digest, &dlen)) {
            EVP_MD_CTX_free(ctx);
            memset(out, 0, MCPGW_WS_ACCEPT_LEN + 1);
            return;
        }
        EVP_MD_CTX_free(ctx);
    }
    /* 20 bytes encode to 28 characters plus the NUL EVP_EncodeBlock adds. */
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    out[MCPGW_WS_ACCEPT_LEN] = '\0';
}

/* Browsers cannot set headers on a WebSocket: a page may pass its token as
 * the subprotocol "mcpgw.bearer.<token>" (kept out of URLs and logs). */
static const char *subprotocol_token(const mcpgw_http_request *req, size_t *len)
{
    static const char prefix[] = "mcpgw.bearer.";

    for (size_t i = 0; i < req->n_headers; i++) {
        const mcpgw_str *v = &req->headers[i].value;
        const char *p = v->p, *end = v->p + v->len;

        if (!mcpgw_str_eq_nocase(&req->headers[i].name, "Sec-WebSocket-Protocol"))
            continue;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            while (p < stop && (*p == ' ' || *p == '\t'))
                p++;
            const char *e = stop;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if ((size_t)(e - p) > sizeof(prefix) - 1 && memcmp(p, prefix, sizeof(prefix) - 1) == 0) {
                *len = (size_t)(e - p) - (sizeof(prefix) - 1);
                return p + sizeof(prefix) - 1;
            }
            p = stop + 1;
        }
    }
    return NULL;
}

long mcpgw_extract_token_from(const mcpgw_http_request *req, char *out, size_t cap,
                              mcpgw_token_source *source)
{
    const char *tok;
    size_t len = 0;

    *source = MCPGW_TOKEN_NONE;
    if (cap > 0)
        out[0] = '\0';

    {
        /* A present but empty query token is "no token": no fallback. */
        long r = mcpgw_http_query_param(&req->query, "token", out, cap);
        if (r != -2) {
            if (r < 0 && cap > 0)
                out[0] = '\0';
            if (r != 0)
                *source = MCPGW_TOKEN_QUERY;
            return r;
        }
    }

    tok = mcpgw_http_bearer_token(req, &len);
    if (tok && len > 0) {
        *source = MCPGW_TOKEN_HEADER;
    } else {
        tok = subprotocol_token(req, &len);
        if (tok && len > 0)
            *source = MCPGW_TOKEN_SUBPROTOCOL;
    }
    if (!tok || len == 0)
        return 0;
    if (len + 1 > cap)
        return -1;
    memcpy(out, tok, len);
    out[len] = '\0';
    return (long)len;
}

long mcpgw_extract_token(const mcpgw_http_request *req, char *out, size_t cap)
{
    mcpgw_token_source source;

    return mcpgw_extract_token_from(req, out, cap, &source);
}

int mcpgw_handshake_offers_subprotocol(const mcpgw_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (mcpgw_str_eq_nocase(&req->headers[i].name, "Sec-WebSocket-Protocol") &&
            mcpgw_http_list_has_token(&req->headers[i].value, name))
            return 1;
    return 0;
}
