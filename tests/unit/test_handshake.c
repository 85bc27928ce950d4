/*
 * test_handshake.c - unit tests for core/handshake.c: the RFC 6455 upgrade
 * checks, Sec-WebSocket-Accept and token extraction.
 */
#include "handshake.h"
#include "unit.h"

#define MAX_HEAD 8192

#define GOOD_HEADERS \
    "Host: gw.example\r\n" \
    "Upgrade: websocket\r\n" \
    "Connection: Upgrade\r\n" \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
    "Sec-WebSocket-Version: 13\r\n"

static mcpgw_http_request req;     /* large: keep it off the stack */

/* Parses a complete literal head into req; a failure fails the test. */
static int parse(const char *s)
{
    mcpgw_http_result r = mcpgw_http_parse(s, strlen(s), MAX_HEAD, &req);
    if (r != MCPGW_HTTP_OK)
        fprintf(stderr, "  parse failed (%d): %s\n", (int)r, s);
    return r == MCPGW_HTTP_OK;
}

static mcpgw_handshake_verdict check(const char *s)
{
    mcpgw_handshake_verdict v;
    memset(&v, 0, sizeof v);
    if (!parse(s)) {
        v.status = -1;
        return v;
    }
    mcpgw_handshake_check(&req, &v);
    return v;
}

static int expect_reject(const char *s, int status, const char *reason,
                         const char *body, const char *extra)
{
    mcpgw_handshake_verdict v = check(s);
    int ok = v.status == status && v.reason && strcmp(v.reason, reason) == 0 &&
             v.body && strcmp(v.body, body) == 0 &&
             ((extra == NULL && v.extra_headers == NULL) ||
              (extra && v.extra_headers && strcmp(v.extra_headers, extra) == 0));
    if (!ok)
        fprintf(stderr, "  got %d %s \"%s\" [%s]\n", v.status,
                v.reason ? v.reason : "(null)", v.body ? v.body : "(null)",
                v.extra_headers ? v.extra_headers : "(null)");
    return ok;
}

#define REJECT(req_text, status, reason, body, extra) \
    CHECK(expect_reject(req_text, status, reason, body, extra))

TEST(valid_upgrade)
{
    mcpgw_handshake_verdict v = check("GET /ws HTTP/1.1\r\n" GOOD_HEADERS "\r\n");
    CHECK_EQ_INT(v.status, 0);
    CHECK(v.body == NULL);
    CHECK(v.extra_headers == NULL);
    CHECK_EQ_STR(v.reason, "ok");
}

TEST(valid_upgrade_variants)
{
    /* Browser-like: extra list members, odd case, bare LF, later minor. */
    CHECK_EQ_INT(check("GET /ws?token=x HTTP/1.1\r\n"
                       "host: h\r\n"
                       "connection: keep-alive, Upgrade\r\n"
                       "upgrade: WebSocket\r\n"
                       "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                       "sec-websocket-version: 13\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                       "\r\n").status, 0);
    CHECK_EQ_INT(check("GET / HTTP/1.1\n" GOOD_HEADERS "\n").status, 0);
    CHECK_EQ_INT(check("GET / HTTP/1.2\r\n" GOOD_HEADERS "\r\n").status, 0);
    /* Upgrade offering several protocols. */
    CHECK_EQ_INT(check("GET / HTTP/1.1\r\n"
                       "Host: h\r\nUpgrade: h2c, websocket\r\nConnection: upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").status, 0);
    /* Connection split over two headers is one list. */
    CHECK_EQ_INT(check("GET / HTTP/1.1\r\n"
                       "Host: h\r\nUpgrade: websocket\r\n"
                       "Connection: keep-alive\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").status, 0);
    /* Empty Host is still present. */
    CHECK_EQ_INT(check("GET / HTTP/1.1\r\n"
                       "Host:\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").status, 0);
    /* Non-canonical trailing bits in the key's last character. */
    CHECK_EQ_INT(check("GET / HTTP/1.1\r\n"
                       "Host: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").status, 0);
}

TEST(reject_method)
{
    REJECT("POST /ws HTTP/1.1\r\n" GOOD_HEADERS "\r\n",
           405, "bad_method", "Method Not Allowed", "Allow: GET\r\n");
    REJECT("get /ws HTTP/1.1\r\n" GOOD_HEADERS "\r\n",
           405, "bad_method", "Method Not Allowed", "Allow: GET\r\n");
    REJECT("GETS /ws HTTP/1.1\r\n" GOOD_HEADERS "\r\n",
           405, "bad_method", "Method Not Allowed", "Allow: GET\r\n");
    REJECT("HEAD /ws HTTP/1.1\r\n" GOOD_HEADERS "\r\n",
           405, "bad_method", "Method Not Allowed", "Allow: GET\r\n");
    /* The method is checked first. */
    REJECT("POST /ws HTTP/1.0\r\n\r\n",
           405, "bad_method", "Method Not Allowed", "Allow: GET\r\n");
}

TEST(reject_http_version)
{
    REJECT("GET /ws HTTP/1.0\r\n" GOOD_HEADERS "\r\n",
           400, "bad_http_version", "HTTP/1.1 required", NULL);
    REJECT("GET /ws HTTP/1.0\r\n\r\n",
           400, "bad_http_version", "HTTP/1.1 required", NULL);
}

TEST(reject_body)
{
    static const char body[] =
        "Bad Request: an upgrade request has no body (no Transfer-Encoding, no Content-Length but 0)";
#define BODY_REQ(h) "GET /ws HTTP/1.1\r\n" GOOD_HEADERS h "\r\n"
    REJECT(BODY_REQ("Content-Length: 5\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("content-length: 10\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("Content-Length:\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("Content-Length: 0, 1\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("Content-Length: 0\r\nContent-Length: 1\r\n"),
           400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("Transfer-Encoding: chunked\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("transfer-encoding: identity\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("Transfer-Encoding:\r\n"), 400, "upgrade_with_body", body, NULL);
    REJECT(BODY_REQ("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
           400, "upgrade_with_body", body, NULL);
    /* Content-Length 0 announces no body. */
    CHECK_EQ_INT(check(BODY_REQ("Content-Length: 0\r\n")).status, 0);
    CHECK_EQ_INT(check(BODY_REQ("Content-Length: 000\r\n")).status, 0);
    /* After the method and version, before Host. */
    REJECT("POST /ws HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
           405, "bad_method", "Method Not Allowed", "Allow: GET\r\n");
    REJECT("GET /ws HTTP/1.0\r\nContent-Length: 5\r\n\r\n",
           400, "bad_http_version", "HTTP/1.1 required", NULL);
    REJECT("GET /ws HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
           400, "upgrade_with_body", body, NULL);
#undef BODY_REQ
}

TEST(reject_host)
{
    REJECT("GET /ws HTTP/1.1\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           400, "missing_host", "Missing Host header", NULL);
    REJECT("GET /ws HTTP/1.1\r\nHostname: h\r\n\r\n",
           400, "missing_host", "Missing Host header", NULL);
}

TEST(reject_upgrade)
{
    static const char *extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    /* Plain GET. */
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n",
           426, "not_upgrade", "Upgrade Required", extra);
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           426, "not_upgrade", "Upgrade Required", extra);
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websockets\r\nConnection: Upgrade\r\n\r\n",
           426, "not_upgrade", "Upgrade Required", extra);
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade:\r\nConnection: Upgrade\r\n\r\n",
           426, "not_upgrade", "Upgrade Required", extra);
}

TEST(reject_connection)
{
    static const char *body = "Missing or invalid Connection header";
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           400, "bad_connection", body, NULL);
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           400, "bad_connection", body, NULL);
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgraded\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           400, "bad_connection", body, NULL);
}

#define KEY_REQ(key_line) \
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    key_line "Sec-WebSocket-Version: 13\r\n\r\n"

TEST(reject_key)
{
    static const char *body = "Missing or invalid Sec-WebSocket-Key header";
    REJECT(KEY_REQ(""), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key:\r\n"), 400, "bad_key", body, NULL);
    /* Unpadded. */
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n"), 400, "bad_key", body, NULL);
    /* 15 and 17 bytes. */
    REJECT(KEY_REQ("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P\r\n"), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=\r\n"), 400, "bad_key", body, NULL);
    /* 20 bytes (a SHA-1 sized value). */
    REJECT(KEY_REQ("Sec-WebSocket-Key: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), 400, "bad_key", body, NULL);
    /* Right length, wrong alphabet or padding. */
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ-_=\r\n"), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n"), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQQ=\r\n"), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQQQ\r\n"), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j=Q==\r\n"), 400, "bad_key", body, NULL);
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n"), 400, "bad_key", body, NULL);
    /* Repeated (RFC 6455 section 11.3.1), even when both are valid. */
    REJECT(KEY_REQ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), 400, "bad_key", body, NULL);
}

#define VERSION_REQ(version_line) \
    "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" version_line "\r\n"

TEST(reject_version)
{
    static const char *body = "Unsupported WebSocket version";
    static const char *extra = "Sec-WebSocket-Version: 13\r\n";
    REJECT(VERSION_REQ(""), 426, "bad_version", body, extra);
    REJECT(VERSION_REQ("Sec-WebSocket-Version: 8\r\n"), 426, "bad_version", body, extra);
    REJECT(VERSION_REQ("Sec-WebSocket-Version: 14\r\n"), 426, "bad_version", body, extra);
    REJECT(VERSION_REQ("Sec-WebSocket-Version: 013\r\n"), 426, "bad_version", body, extra);
    REJECT(VERSION_REQ("Sec-WebSocket-Version: 13, 8\r\n"), 426, "bad_version", body, extra);
    REJECT(VERSION_REQ("Sec-WebSocket-Version:\r\n"), 426, "bad_version", body, extra);
    REJECT(VERSION_REQ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n"),
           426, "bad_version", body, extra);
    /* Trimmed whitespace is fine. */
    CHECK_EQ_INT(check(VERSION_REQ("Sec-WebSocket-Version:   13  \r\n")).status, 0);
}

TEST(reject_order)
{
    /* Bad key and bad version: the key is reported. */
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 8\r\n\r\n",
           400, "bad_key", "Missing or invalid Sec-WebSocket-Key header", NULL);
    /* No Connection, no key: Connection is reported. */
    REJECT("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
           400, "bad_connection", "Missing or invalid Connection header", NULL);
    /* No Host, no Upgrade: Host is reported. */
    REJECT("GET /ws HTTP/1.1\r\n\r\n", 400, "missing_host", "Missing Host header", NULL);
}

TEST(verdict_formats)
{
    char out[512];
    mcpgw_handshake_verdict v = check("POST /ws HTTP/1.1\r\n" GOOD_HEADERS "\r\n");
    static const char want[] =
        "HTTP/1.1 405 Method Not Allowed\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 18\r\n"
        "Allow: GET\r\n"
        "\r\n"
        "Method Not Allowed";
    size_t n = mcpgw_http_format_response(out, sizeof out, v.status, v.extra_headers, v.body);
    CHECK_EQ_INT(n, strlen(want));
    CHECK_EQ_STR(out, want);
}

TEST(accept_key_rfc_sample)
{
    char out[MCPGW_WS_ACCEPT_LEN + 1];
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    memset(out, 'x', sizeof out);
    mcpgw_handshake_accept_key(key, strlen(key), out);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_EQ_INT(strlen(out), MCPGW_WS_ACCEPT_LEN);

    /* Only key_len bytes count. */
    static const char longer[] = "dGhlIHNhbXBsZSBub25jZQ==trailing";
    mcpgw_handshake_accept_key(longer, 24, out);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(accept_key_other_lengths)
{
    char out[MCPGW_WS_ACCEPT_LEN + 1];
    char key[256];

    /* Expected values from Python's hashlib/base64. */
    mcpgw_handshake_accept_key("", 0, out);
    CHECK_EQ_STR(out, "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=");
    memset(key, 'x', 128);
    mcpgw_handshake_accept_key(key, 128, out);       /* largest on-stack case */
    CHECK_EQ_STR(out, "d5DxsU9is+/O9m7nTbwV0cK0jLc=");
    memset(key, 'A', 200);
    mcpgw_handshake_accept_key(key, 200, out);       /* streamed through EVP */
    CHECK_EQ_STR(out, "epQuepyJZUpkXo4+7CeEEfXbmv8=");
}

/* Runs mcpgw_extract_token on a parsed head. */
static long tok(const char *head, char *out, size_t cap)
{
    if (!parse(head))
        return -99;
    return mcpgw_extract_token(&req, out, cap);
}

TEST(token_from_query)
{
    char out[64];
    CHECK_EQ_INT(tok("GET /ws?token=abc.def-ghi HTTP/1.1\r\n\r\n", out, sizeof out), 11);
    CHECK_EQ_STR(out, "abc.def-ghi");
    /* Not the first parameter. */
    CHECK_EQ_INT(tok("GET /ws?a=1&token=xyz&b=2 HTTP/1.1\r\n\r\n", out, sizeof out), 3);
    CHECK_EQ_STR(out, "xyz");
    /* Similar names do not count. */
    CHECK_EQ_INT(tok("GET /ws?xtoken=1&tokens=2&Token=3&token=4 HTTP/1.1\r\n\r\n", out, sizeof out), 1);
    CHECK_EQ_STR(out, "4");
    /* First token= wins. */
    CHECK_EQ_INT(tok("GET /ws?token=first&token=second HTTP/1.1\r\n\r\n", out, sizeof out), 5);
    CHECK_EQ_STR(out, "first");
    /* '=' inside the value is kept. */
    CHECK_EQ_INT(tok("GET /ws?token=a=b HTTP/1.1\r\n\r\n", out, sizeof out), 3);
    CHECK_EQ_STR(out, "a=b");
}

TEST(token_percent_decoding)
{
    char out[64];
    CHECK_EQ_INT(tok("GET /ws?token=a%2Fb%3d%3D HTTP/1.1\r\n\r\n", out, sizeof out), 5);
    CHECK_EQ_STR(out, "a/b==");
    CHECK_EQ_INT(tok("GET /ws?token=%41%62%7e HTTP/1.1\r\n\r\n", out, sizeof out), 3);
    CHECK_EQ_STR(out, "Ab~");
    CHECK_EQ_INT(tok("GET /ws?token=a+b%2Bc HTTP/1.1\r\n\r\n", out, sizeof out), 5);
    CHECK_EQ_STR(out, "a b+c");
    CHECK_EQ_INT(tok("GET /ws?token=%26x&y=1 HTTP/1.1\r\n\r\n", out, sizeof out), 2);
    CHECK_EQ_STR(out, "&x");
    CHECK_EQ_INT(tok("GET /ws?token=%C3%A9 HTTP/1.1\r\n\r\n", out, sizeof out), 2);
    CHECK_EQ_STR(out, "\xc3\xa9");
}

TEST(token_bad_escape)
{
    char out[64];
    CHECK_EQ_INT(tok("GET /ws?token=a%zzb HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(tok("GET /ws?token=a%4 HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_INT(tok("GET /ws?token=a% HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_INT(tok("GET /ws?token=a%4&b=1 HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_INT(tok("GET /ws?token=a%g1 HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    /* An escaped NUL would silently cut the C string. */
    CHECK_EQ_INT(tok("GET /ws?token=abc%00def HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_STR(out, "");
    /* A bad escape elsewhere in the query is not our business. */
    CHECK_EQ_INT(tok("GET /ws?x=%zz&token=ok HTTP/1.1\r\n\r\n", out, sizeof out), 2);
    CHECK_EQ_STR(out, "ok");
}

TEST(token_from_bearer)
{
    char out[64];
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer eyJ.abc.def\r\n\r\n",
                     out, sizeof out), 11);
    CHECK_EQ_STR(out, "eyJ.abc.def");
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nauthorization: bEaReR   t0k+/=  \r\n\r\n",
                     out, sizeof out), 6);
    CHECK_EQ_STR(out, "t0k+/=");
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer\tt\r\n\r\n", out, sizeof out), 1);
    CHECK_EQ_STR(out, "t");
    /* Query without a token parameter falls through to the header. */
    CHECK_EQ_INT(tok("GET /ws?a=1&token HTTP/1.1\r\nAuthorization: Bearer hdr\r\n\r\n",
                     out, sizeof out), 3);
    CHECK_EQ_STR(out, "hdr");
    /* Header values are not percent-decoded. */
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer a%20b+c\r\n\r\n",
                     out, sizeof out), 7);
    CHECK_EQ_STR(out, "a%20b+c");
}

TEST(token_bearer_rejects)
{
    char out[64];
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n",
                     out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer    \r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearerabc\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bear abc\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization:\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nX-Authorization: Bearer abc\r\n\r\n", out, sizeof out), 0);
}

TEST(token_query_wins)
{
    char out[64];
    CHECK_EQ_INT(tok("GET /ws?token=fromquery HTTP/1.1\r\n"
                     "Authorization: Bearer fromheader\r\n\r\n", out, sizeof out), 9);
    CHECK_EQ_STR(out, "fromquery");
    /* A malformed query token is an error, not a reason to use the header. */
    CHECK_EQ_INT(tok("GET /ws?token=%zz HTTP/1.1\r\n"
                     "Authorization: Bearer fromheader\r\n\r\n", out, sizeof out), -1);
}

TEST(token_empty_or_none)
{
    char out[64];
    memset(out, 'x', sizeof out);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(tok("GET /ws? HTTP/1.1\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_INT(tok("GET /ws?token= HTTP/1.1\r\n\r\n", out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(tok("GET /ws?token=&a=1 HTTP/1.1\r\n\r\n", out, sizeof out), 0);
    /* Present but empty: no fallback to the header. */
    CHECK_EQ_INT(tok("GET /ws?token= HTTP/1.1\r\nAuthorization: Bearer hdr\r\n\r\n",
                     out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    /* No token and no room at all. */
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\n\r\n", NULL, 0), 0);
}

TEST(token_too_long)
{
    char out[8];
    /* 7 characters fit in 8 bytes with the NUL; 8 do not. */
    CHECK_EQ_INT(tok("GET /ws?token=1234567 HTTP/1.1\r\n\r\n", out, sizeof out), 7);
    CHECK_EQ_STR(out, "1234567");
    CHECK_EQ_INT(tok("GET /ws?token=12345678 HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_STR(out, "");
    /* Decoded length is what counts: 8 escapes decode to 8 bytes. */
    CHECK_EQ_INT(tok("GET /ws?token=%41%41%41%41%41%41%41 HTTP/1.1\r\n\r\n", out, sizeof out), 7);
    CHECK_EQ_STR(out, "AAAAAAA");
    CHECK_EQ_INT(tok("GET /ws?token=%41%41%41%41%41%41%41%41 HTTP/1.1\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer 1234567\r\n\r\n", out, sizeof out), 7);
    CHECK_EQ_STR(out, "1234567");
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer 12345678\r\n\r\n", out, sizeof out), -1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(tok("GET /ws?token=a HTTP/1.1\r\n\r\n", out, 1), -1);
    CHECK_EQ_INT(tok("GET /ws?token=a HTTP/1.1\r\n\r\n", NULL, 0), -1);
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nAuthorization: Bearer a\r\n\r\n", NULL, 0), -1);
}

/* Runs mcpgw_extract_token_from on a parsed head. */
static long tok_from(const char *head, char *out, size_t cap, mcpgw_token_source *src)
{
    *src = (mcpgw_token_source)-1;
    if (!parse(head))
        return -99;
    return mcpgw_extract_token_from(&req, out, cap, src);
}

TEST(token_from_subprotocol)
{
    char out[64];
    mcpgw_token_source src;

    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw, mcpgw.bearer.abc.d-f\r\n\r\n",
                          out, sizeof out, &src), 7);
    CHECK_EQ_STR(out, "abc.d-f");
    CHECK_EQ_INT(src, MCPGW_TOKEN_SUBPROTOCOL);
    /* Alone, first, in a second header: the same. */
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw.bearer.t\r\n\r\n",
                          out, sizeof out, &src), 1);
    CHECK_EQ_INT(src, MCPGW_TOKEN_SUBPROTOCOL);
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nsec-websocket-protocol: chat\r\n"
                          "Sec-WebSocket-Protocol:  mcpgw.bearer.t2 , mcp\r\n\r\n",
                          out, sizeof out, &src), 2);
    CHECK_EQ_STR(out, "t2");
    CHECK_EQ_INT(src, MCPGW_TOKEN_SUBPROTOCOL);
    /* The prefix alone, or another spelling of it, is no token. */
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw.bearer.\r\n\r\n",
                          out, sizeof out, &src), 0);
    CHECK_EQ_INT(src, MCPGW_TOKEN_NONE);
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: MCPGW.BEARER.x\r\n\r\n",
                          out, sizeof out, &src), 0);
    CHECK_EQ_INT(src, MCPGW_TOKEN_NONE);
    /* Too long for out: still from the subprotocol. */
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw.bearer.12345678\r\n\r\n",
                          out, 8, &src), -1);
    CHECK_EQ_INT(src, MCPGW_TOKEN_SUBPROTOCOL);
}

TEST(token_source)
{
    char out[64];
    mcpgw_token_source src;

    /* The query wins over the header, which wins over the subprotocol. */
    CHECK_EQ_INT(tok_from("GET /ws?token=q HTTP/1.1\r\nAuthorization: Bearer h\r\n"
                          "Sec-WebSocket-Protocol: mcpgw.bearer.s\r\n\r\n", out, sizeof out, &src), 1);
    CHECK_EQ_STR(out, "q");
    CHECK_EQ_INT(src, MCPGW_TOKEN_QUERY);
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nAuthorization: Bearer h\r\n"
                          "Sec-WebSocket-Protocol: mcpgw.bearer.s\r\n\r\n", out, sizeof out, &src), 1);
    CHECK_EQ_STR(out, "h");
    CHECK_EQ_INT(src, MCPGW_TOKEN_HEADER);
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nAuthorization: Bearer \r\n"
                          "Sec-WebSocket-Protocol: mcpgw.bearer.s\r\n\r\n", out, sizeof out, &src), 1);
    CHECK_EQ_STR(out, "s");
    CHECK_EQ_INT(src, MCPGW_TOKEN_SUBPROTOCOL);
    /* A malformed query token is from the query; an empty one is none. */
    CHECK_EQ_INT(tok_from("GET /ws?token=%zz HTTP/1.1\r\n\r\n", out, sizeof out, &src), -1);
    CHECK_EQ_INT(src, MCPGW_TOKEN_QUERY);
    CHECK_EQ_INT(tok_from("GET /ws?token= HTTP/1.1\r\n"
                          "Sec-WebSocket-Protocol: mcpgw.bearer.s\r\n\r\n", out, sizeof out, &src), 0);
    CHECK_EQ_INT(src, MCPGW_TOKEN_NONE);
    CHECK_EQ_INT(tok_from("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", out, sizeof out, &src), 0);
    CHECK_EQ_INT(src, MCPGW_TOKEN_NONE);
    /* mcpgw_extract_token gives the same token. */
    CHECK_EQ_INT(tok("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw.bearer.s\r\n\r\n",
                     out, sizeof out), 1);
    CHECK_EQ_STR(out, "s");
}

TEST(offers_subprotocol)
{
    CHECK(parse("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw.bearer.x, mcpgw\r\n\r\n"));
    CHECK(mcpgw_handshake_offers_subprotocol(&req, "mcpgw"));
    CHECK(!mcpgw_handshake_offers_subprotocol(&req, "mcp"));
    CHECK(parse("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: mcpgw.bearer.mcpgw\r\n\r\n"));
    CHECK(!mcpgw_handshake_offers_subprotocol(&req, "mcpgw"));
    CHECK(parse("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: mcp\r\n\r\n"));
    CHECK(mcpgw_handshake_offers_subprotocol(&req, "mcp"));
    CHECK(!mcpgw_handshake_offers_subprotocol(&req, "mcpgw"));
}

int main(void)
{
    RUN(valid_upgrade);
    RUN(valid_upgrade_variants);
    RUN(reject_method);
    RUN(reject_http_version);
    RUN(reject_body);
    RUN(reject_host);
    RUN(reject_upgrade);
    RUN(reject_connection);
    RUN(reject_key);
    RUN(reject_version);
    RUN(reject_order);
    RUN(verdict_formats);
    RUN(accept_key_rfc_sample);
    RUN(accept_key_other_lengths);
    RUN(token_from_query);
    RUN(token_percent_decoding);
    RUN(token_bad_escape);
    RUN(token_from_bearer);
    RUN(token_bearer_rejects);
    RUN(token_query_wins);
    RUN(token_empty_or_none);
    RUN(token_too_long);
    RUN(token_from_subprotocol);
    RUN(token_source);
    RUN(offers_subprotocol);
    return UNIT_SUMMARY();
}
