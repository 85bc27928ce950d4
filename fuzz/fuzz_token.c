/*
 * fuzz_token.c - libFuzzer target for authentication input:
 * core/handshake.c mcpgw_extract_token() on requests built from the input,
 * then core/auth.c mcpgw_auth_verify() on the token text with a fixed
 * secret. Neither may crash; only result codes come back.
 *
 * The first byte chooses the mode (the rest is the payload P):
 *   0  P is a whole request head, parsed by mcpgw_http_parse() first;
 *   1  "GET /ws?P HTTP/1.1" with a Host header (the query path);
 *   2  P split at its first '\n': "GET /ws?A" and "Authorization: B";
 *   3  P is a token given to mcpgw_auth_verify() directly;
 *   4-6 P split at its first NUL into a JWT header and claims (JSON text,
 *      sent as is), base64url-encoded and signed with the fixed secret
 *      using HS256 / HS384 / HS512, so that the checks after the signature
 *      (libjwt's decode, exp/nbf, the user claim) see fuzzed claims too.
 * Other first bytes map onto these modulo 7.
 *
 * Invariants: extract returns > 0 with a NUL-terminated token of exactly
 * that length (shorter than the buffer), else "" in the buffer; a small
 * buffer never yields a different token than a large one; verify returns a
 * named result; on OK the user id is non-empty, control-free and claims is
 * an object; otherwise the user id is "" and claims NULL.
 */
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "fuzz_common.h"
#include "handshake.h"
#include "http.h"

#define SECRET "fuzz-secret"
#define NOW ((time_t)1700000000)
#define TOKEN_CAP 8192          /* what conn.c gives mcpgw_extract_token() */

static const int algorithms[] = { JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512 };

static void verify(const char *token)
{
    mcpgw_auth_config cfg;
    json_t *claims = (json_t *)0x1;
    char user[256];
    mcpgw_auth_result r;
    const char *name;

    memset(&cfg, 0, sizeof(cfg));
    cfg.secret = (const unsigned char *)SECRET;
    cfg.secret_len = sizeof(SECRET) - 1;
    cfg.algorithms = algorithms;
    cfg.n_algorithms = 3;
    cfg.user_claim = "id";
    cfg.leeway_s = 30;

    memset(user, 'x', sizeof(user));
    r = mcpgw_auth_verify(&cfg, token, NOW, &claims, user, sizeof(user));
    name = mcpgw_auth_result_name(r);
    FUZZ_ASSERT(name && strcmp(name, "unknown") != 0);
    if (r == MCPGW_AUTH_OK) {
        size_t n = strnlen(user, sizeof(user));
        FUZZ_ASSERT(n > 0 && n < sizeof(user));
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT((unsigned char)user[i] >= 0x20 && user[i] != 0x7f);
        FUZZ_ASSERT(json_is_object(claims));
        json_decref(claims);
    } else {
        FUZZ_ASSERT(user[0] == '\0');
        FUZZ_ASSERT(claims == NULL);
    }
}

/* Extracts the token with the gateway's buffer and a small one, checks
 * both, and verifies the token when there is one. */
static void extract_and_verify(const mcpgw_http_request *req, size_t small_cap)
{
    char *big = malloc(TOKEN_CAP), *small = malloc(small_cap ? small_cap : 1);
    long r, rs;

    FUZZ_ASSERT(big && small);
    memset(big, 'x', TOKEN_CAP);
    r = mcpgw_extract_token(req, big, TOKEN_CAP);
    FUZZ_ASSERT(r >= -1 && r < TOKEN_CAP);
    if (r > 0)
        FUZZ_ASSERT(strnlen(big, TOKEN_CAP) == (size_t)r);
    else
        FUZZ_ASSERT(big[0] == '\0');

    memset(small, 'x', small_cap ? small_cap : 1);
    rs = mcpgw_extract_token(req, small, small_cap);
    FUZZ_ASSERT(rs >= -1);
    if (rs > 0) {
        FUZZ_ASSERT((size_t)rs < small_cap);
        FUZZ_ASSERT(rs == r && memcmp(small, big, (size_t)r + 1) == 0);
    } else if (small_cap > 0) {
        FUZZ_ASSERT(small[0] == '\0');
    }
    if (r == 0)
        FUZZ_ASSERT(rs == 0);

    if (r > 0)
        verify(big);
    free(small);
    free(big);
}

/* Parses head (which must be a complete request head) and runs the token
 * checks on it. */
static void from_head(const char *head, size_t len, size_t small_cap)
{
    mcpgw_http_request *req = malloc(sizeof(*req));
    char *copy = malloc(len ? len : 1);

    FUZZ_ASSERT(req && copy);
    memcpy(copy, head, len);
    if (mcpgw_http_parse(copy, len, 65536, req) == MCPGW_HTTP_OK)
        extract_and_verify(req, small_cap);
    free(copy);
    free(req);
}

static void append(char **buf, size_t *len, const void *p, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);

    FUZZ_ASSERT(b);
    memcpy(b + *len, p, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

static void b64url_append(char **buf, size_t *len, const uint8_t *p, size_t n)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        char out[4];
        size_t k = 2;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8, k++;
        if (i + 2 < n)
            v |= p[i + 2], k++;
        out[0] = tbl[(v >> 18) & 63];
        out[1] = tbl[(v >> 12) & 63];
        out[2] = tbl[(v >> 6) & 63];
        out[3] = tbl[v & 63];
        append(buf, len, out, k);
    }
}

static void signed_token(const uint8_t *p, size_t n, int mode)
{
    const EVP_MD *md = mode == 4 ? EVP_sha256() : mode == 5 ? EVP_sha384() : EVP_sha512();
    const uint8_t *sep = memchr(p, '\0', n);
    size_t hlen = sep ? (size_t)(sep - p) : n;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *tok = NULL;
    size_t len = 0;

    b64url_append(&tok, &len, p, hlen);
    append(&tok, &len, ".", 1);
    if (sep)
        b64url_append(&tok, &len, sep + 1, n - hlen - 1);
    FUZZ_ASSERT(HMAC(md, SECRET, sizeof(SECRET) - 1, (const unsigned char *)tok, len, mac,
                     &mac_len));
    append(&tok, &len, ".", 1);
    b64url_append(&tok, &len, mac, mac_len);
    verify(tok);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p;
    size_t n, small_cap;
    char *buf = NULL;
    size_t len = 0;
    int mode;

    if (size < 1)
        return 0;
    mode = data[0] % 7;
    small_cap = data[0] / 7;    /* 0 .. 36: exercises the "does not fit" path */
    p = (const char *)data + 1;
    n = size - 1;

    switch (mode) {
    case 0:
        from_head(p, n, small_cap);
        break;
    case 1:
        append(&buf, &len, "GET /ws?", 8);
        append(&buf, &len, p, n);
        append(&buf, &len, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
        from_head(buf, len, small_cap);
        break;
    case 2: {
        const char *nl = memchr(p, '\n', n);
        size_t qlen = nl ? (size_t)(nl - p) : n;

        append(&buf, &len, "GET /ws?", 8);
        append(&buf, &len, p, qlen);
        append(&buf, &len, " HTTP/1.1\r\nHost: h\r\nAuthorization: ", 35);
        if (nl)
            append(&buf, &len, nl + 1, n - qlen - 1);
        append(&buf, &len, "\r\n\r\n", 4);
        from_head(buf, len, small_cap);
        break;
    }
    case 3:
        append(&buf, &len, p, n);   /* NUL-terminated copy; embedded NULs cut it */
        verify(buf);
        break;
    default:
        signed_token((const uint8_t *)p, n, mode);
        break;
    }
    free(buf);
    return 0;
}
