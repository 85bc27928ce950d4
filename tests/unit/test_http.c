/*
 * test_http.c - unit tests for core/http.c: the request-head and
 * response-head parsers, the header/list helpers, reason phrases and the
 * response formatter.
 */
#include "http.h"
#include "unit.h"

#define MAX_HEAD 8192

static const char UPGRADE_REQ[] =
    "GET /ws?token=abc&x=1 HTTP/1.1\r\n"
    "Host: gw.example:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: https://app.example\r\n"
    "\r\n";

static int str_is(const mcpgw_str *s, const char *lit)
{
    return s && s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

static mcpgw_http_result parse_lit(const char *s, mcpgw_http_request *req)
{
    return mcpgw_http_parse(s, strlen(s), MAX_HEAD, req);
}

static mcpgw_http_request req;     /* large: keep it off the stack */

TEST(parse_full_upgrade)
{
    size_t len = strlen(UPGRADE_REQ);
    CHECK_EQ_INT(mcpgw_http_parse(UPGRADE_REQ, len, MAX_HEAD, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.head_len, len);
    CHECK(str_is(&req.method, "GET"));
    CHECK(str_is(&req.target, "/ws?token=abc&x=1"));
    CHECK(str_is(&req.path, "/ws"));
    CHECK(str_is(&req.query, "token=abc&x=1"));
    CHECK_EQ_INT(req.version_minor, 1);
    CHECK_EQ_INT(req.n_headers, 6);
    CHECK(str_is(&req.headers[0].name, "Host"));
    CHECK(str_is(&req.headers[0].value, "gw.example:8080"));
    CHECK(str_is(&req.headers[2].name, "Connection"));
    CHECK(str_is(&req.headers[2].value, "keep-alive, Upgrade"));
    CHECK(str_is(&req.headers[5].name, "Origin"));
    CHECK(str_is(&req.headers[5].value, "https://app.example"));
    /* Strings point into the caller's buffer. */
    CHECK(req.method.p == UPGRADE_REQ);
    CHECK(req.headers[0].name.p >= UPGRADE_REQ && req.headers[0].name.p < UPGRADE_REQ + len);

    CHECK(str_is(mcpgw_http_header_get(&req, "host"), "gw.example:8080"));
    CHECK(str_is(mcpgw_http_header_get(&req, "SEC-WEBSOCKET-KEY"), "dGhlIHNhbXBsZSBub25jZQ=="));
    CHECK(str_is(mcpgw_http_header_get(&req, "sec-websocket-version"), "13"));
    CHECK(mcpgw_http_header_get(&req, "Authorization") == NULL);
    CHECK(mcpgw_http_header_get(&req, "Hos") == NULL);
    CHECK(mcpgw_http_header_get(&req, "Host2") == NULL);
}

TEST(parse_trailing_bytes_not_consumed)
{
    static const char buf[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x85garbage";
    size_t head = strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK_EQ_INT(mcpgw_http_parse(buf, sizeof(buf) - 1, MAX_HEAD, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.head_len, head);
    CHECK_EQ_INT(req.n_headers, 1);
    CHECK(str_is(&req.path, "/"));
    CHECK_EQ_INT(req.query.len, 0);
}

TEST(parse_first_header_wins)
{
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX-A: one\r\nx-a: two\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(mcpgw_http_header_get(&req, "X-A"), "one"));
    CHECK_EQ_INT(req.n_headers, 2);
}

TEST(need_more_at_every_truncation)
{
    size_t len = strlen(UPGRADE_REQ);
    for (size_t k = 0; k < len; k++) {
        mcpgw_http_result r = mcpgw_http_parse(UPGRADE_REQ, k, MAX_HEAD, &req);
        if (r != MCPGW_HTTP_NEED_MORE)
            fprintf(stderr, "  truncated at %zu: %d\n", k, (int)r);
        CHECK_EQ_INT(r, MCPGW_HTTP_NEED_MORE);
    }
    CHECK_EQ_INT(mcpgw_http_parse(UPGRADE_REQ, len, MAX_HEAD, &req), MCPGW_HTTP_OK);
}

TEST(need_more_at_every_truncation_bare_lf)
{
    static const char buf[] = "GET /ws HTTP/1.1\nHost: a\nUpgrade: websocket\n\n";
    size_t len = strlen(buf);
    for (size_t k = 0; k < len; k++)
        CHECK_EQ_INT(mcpgw_http_parse(buf, k, MAX_HEAD, &req), MCPGW_HTTP_NEED_MORE);
    CHECK_EQ_INT(mcpgw_http_parse(buf, len, MAX_HEAD, &req), MCPGW_HTTP_OK);
}

TEST(need_more_does_not_look_at_garbage)
{
    /* The end of the head is found first: malformed bytes are reported
     * only once it has arrived. */
    CHECK_EQ_INT(parse_lit("\x16\x03\x01\x02", &req), MCPGW_HTTP_NEED_MORE);
    CHECK_EQ_INT(parse_lit("\x16\x03\x01\x02\n\n", &req), MCPGW_HTTP_BAD);
}

TEST(bare_lf)
{
    static const char buf[] = "GET /a HTTP/1.1\nHost: h\nX: y \n\n";
    CHECK_EQ_INT(parse_lit(buf, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.head_len, strlen(buf));
    CHECK_EQ_INT(req.n_headers, 2);
    CHECK(str_is(&req.headers[0].value, "h"));
    CHECK(str_is(&req.headers[1].value, "y"));
    CHECK(str_is(&req.target, "/a"));
}

TEST(mixed_line_ends)
{
    static const char buf[] = "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\n";
    CHECK_EQ_INT(parse_lit(buf, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.head_len, strlen(buf));
    CHECK(str_is(&req.headers[0].value, "h"));
    CHECK(str_is(&req.headers[1].value, "y"));

    static const char buf2[] = "GET / HTTP/1.1\nHost: h\n\r\n";
    CHECK_EQ_INT(parse_lit(buf2, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.head_len, strlen(buf2));
}

TEST(no_headers)
{
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.n_headers, 0);
    CHECK_EQ_INT(req.head_len, 18);
}

TEST(value_trimming)
{
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\n"
                           "A:   spaced  out \t \r\n"
                           "B:\tx\r\n"
                           "C:\r\n"
                           "D:    \r\n"
                           "E: a\tb\r\n"
                           "F: caf\xc3\xa9\r\n"
                           "\r\n", &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.n_headers, 6);
    CHECK(str_is(&req.headers[0].value, "spaced  out"));
    CHECK(str_is(&req.headers[1].value, "x"));
    CHECK_EQ_INT(req.headers[2].value.len, 0);
    CHECK_EQ_INT(req.headers[3].value.len, 0);
    CHECK(str_is(&req.headers[4].value, "a\tb"));        /* HTAB allowed inside */
    CHECK(str_is(&req.headers[5].value, "caf\xc3\xa9"));  /* obs-text allowed */
}

TEST(too_large)
{
    static const char buf[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";    /* 27 bytes */
    size_t len = strlen(buf);
    CHECK_EQ_INT(len, 27);

    /* Complete head exactly max_head long: fine; one byte over: too large. */
    CHECK_EQ_INT(mcpgw_http_parse(buf, len, len, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(mcpgw_http_parse(buf, len, len - 1, &req), MCPGW_HTTP_TOO_LARGE);
    CHECK_EQ_INT(mcpgw_http_parse(buf, len, 10, &req), MCPGW_HTTP_TOO_LARGE);

    /* Incomplete: need more while len <= max_head, too large beyond. */
    CHECK_EQ_INT(mcpgw_http_parse(buf, 20, 20, &req), MCPGW_HTTP_NEED_MORE);
    CHECK_EQ_INT(mcpgw_http_parse(buf, 21, 20, &req), MCPGW_HTTP_TOO_LARGE);
    CHECK_EQ_INT(mcpgw_http_parse(buf, 0, 0, &req), MCPGW_HTTP_NEED_MORE);
    CHECK_EQ_INT(mcpgw_http_parse(buf, 1, 0, &req), MCPGW_HTTP_TOO_LARGE);

    /* The head's end straddling max_head: too large even though the
     * whole head has arrived. */
    CHECK_EQ_INT(mcpgw_http_parse(buf, len, len - 2, &req), MCPGW_HTTP_TOO_LARGE);

    /* A big head of many long headers. */
    static char big[MAX_HEAD * 2];
    size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    while (n < MAX_HEAD + 100)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-Filler: %0100d\r\n", 0);
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    CHECK_EQ_INT(mcpgw_http_parse(big, n, MAX_HEAD, &req), MCPGW_HTTP_TOO_LARGE);
    CHECK_EQ_INT(mcpgw_http_parse(big, MAX_HEAD, MAX_HEAD, &req), MCPGW_HTTP_NEED_MORE);
    CHECK_EQ_INT(mcpgw_http_parse(big, MAX_HEAD + 1, MAX_HEAD, &req), MCPGW_HTTP_TOO_LARGE);
}

static size_t build_headers(char *buf, size_t cap, int count)
{
    size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < count; i++)
        n += (size_t)snprintf(buf + n, cap - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    return n;
}

TEST(too_many_headers)
{
    static char buf[4096];
    size_t n = build_headers(buf, sizeof buf, MCPGW_HTTP_MAX_HEADERS);
    CHECK_EQ_INT(mcpgw_http_parse(buf, n, MAX_HEAD, &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.n_headers, MCPGW_HTTP_MAX_HEADERS);
    CHECK(str_is(&req.headers[MCPGW_HTTP_MAX_HEADERS - 1].name, "X-H63"));
    CHECK(str_is(&req.headers[MCPGW_HTTP_MAX_HEADERS - 1].value, "63"));

    n = build_headers(buf, sizeof buf, MCPGW_HTTP_MAX_HEADERS + 1);
    CHECK_EQ_INT(mcpgw_http_parse(buf, n, MAX_HEAD, &req), MCPGW_HTTP_TOO_LARGE);
    n = build_headers(buf, sizeof buf, 200);
    CHECK_EQ_INT(mcpgw_http_parse(buf, n, MAX_HEAD, &req), MCPGW_HTTP_TOO_LARGE);
}

TEST(malformed_headers)
{
    /* No colon. */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nHost a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nHost\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Whitespace before the colon (RFC 7230 section 3.2.4). */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Empty name. */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\n: a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Name not a token. */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX(y): a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX/y: a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Obsolete line folding, with SP or HTAB. */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Whitespace between the request line and the first header. */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\n Host: a\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Control characters in the value: NUL, SOH, ESC, DEL, lone CR. */
    static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    CHECK_EQ_INT(mcpgw_http_parse(nul, sizeof nul - 1, MAX_HEAD, &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\x1b" "b\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\x7f" "b\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nX: a\r\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* A malformed header after many good ones. */
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC 3\r\n\r\n", &req), MCPGW_HTTP_BAD);
}

TEST(malformed_request_line)
{
    /* Method not a token. */
    CHECK_EQ_INT(parse_lit("G(T / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("G\"T / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GE\x01T / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Empty method, empty line, leading empty line. */
    CHECK_EQ_INT(parse_lit(" / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("\n\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("\r\nGET / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Target not origin-form. */
    CHECK_EQ_INT(parse_lit("GET http://h/ HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("OPTIONS * HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("CONNECT h:443 HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET ws HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Control characters, DEL and non-ASCII bytes in the target. */
    CHECK_EQ_INT(parse_lit("GET /a\x01" "b HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET /a\tb HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET /a\x7f HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET /a\rb HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Wrong spacing. */
    CHECK_EQ_INT(parse_lit("GET  / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET /  HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1 \r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET\t/ HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1 x\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET\r\n\r\n", &req), MCPGW_HTTP_BAD);
    /* Garbage version strings. */
    CHECK_EQ_INT(parse_lit("GET / http/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.x\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTP/.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / HTTPS/1.1\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / FOO\r\n\r\n", &req), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_lit("GET / \r\n\r\n", &req), MCPGW_HTTP_BAD);
}

TEST(versions)
{
    CHECK_EQ_INT(parse_lit("GET / HTTP/2.0\r\n\r\n", &req), MCPGW_HTTP_BAD_VERSION);
    CHECK_EQ_INT(parse_lit("GET / HTTP/2\r\n\r\n", &req), MCPGW_HTTP_BAD_VERSION);
    CHECK_EQ_INT(parse_lit("GET / HTTP/3.0\r\n\r\n", &req), MCPGW_HTTP_BAD_VERSION);
    CHECK_EQ_INT(parse_lit("GET / HTTP/0.9\r\n\r\n", &req), MCPGW_HTTP_BAD_VERSION);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.10\r\n\r\n", &req), MCPGW_HTTP_BAD_VERSION);
    /* HTTP/0.9 simple request: no version at all. */
    CHECK_EQ_INT(parse_lit("GET /\r\n\r\n", &req), MCPGW_HTTP_BAD_VERSION);
    CHECK_EQ_INT(parse_lit("GET /index.html\n\n", &req), MCPGW_HTTP_BAD_VERSION);

    CHECK_EQ_INT(parse_lit("GET / HTTP/1.0\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.version_minor, 0);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.version_minor, 1);
    CHECK_EQ_INT(parse_lit("GET / HTTP/1.9\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK_EQ_INT(req.version_minor, 9);
}

TEST(methods)
{
    CHECK_EQ_INT(parse_lit("POST /x HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.method, "POST"));
    CHECK_EQ_INT(parse_lit("M-SEARCH /x HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.method, "M-SEARCH"));
    CHECK_EQ_INT(parse_lit("get /x HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.method, "get"));    /* a token; handshake decides */
}

TEST(query_split)
{
    CHECK_EQ_INT(parse_lit("GET /ws?a=1&b=2 HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.path, "/ws"));
    CHECK(str_is(&req.query, "a=1&b=2"));

    CHECK_EQ_INT(parse_lit("GET /ws HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.path, "/ws"));
    CHECK_EQ_INT(req.query.len, 0);
    CHECK(req.query.p != NULL);

    CHECK_EQ_INT(parse_lit("GET /ws? HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.path, "/ws"));
    CHECK_EQ_INT(req.query.len, 0);

    CHECK_EQ_INT(parse_lit("GET /a/b?c?d=/e HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.path, "/a/b"));
    CHECK(str_is(&req.query, "c?d=/e"));
    CHECK(str_is(&req.target, "/a/b?c?d=/e"));

    CHECK_EQ_INT(parse_lit("GET /?x HTTP/1.1\r\n\r\n", &req), MCPGW_HTTP_OK);
    CHECK(str_is(&req.path, "/"));
    CHECK(str_is(&req.query, "x"));
}

static int has(const char *value, const char *token)
{
    mcpgw_str s = { value, strlen(value) };
    return mcpgw_http_list_has_token(&s, token);
}

TEST(list_tokens)
{
    CHECK(has("keep-alive, Upgrade", "upgrade"));
    CHECK(has("Upgrade", "upgrade"));
    CHECK(has("UPGRADE", "Upgrade"));
    CHECK(has("upgrade,keep-alive", "upgrade"));
    CHECK(has("  upgrade  ,x", "upgrade"));
    CHECK(has("x,\tupgrade\t", "upgrade"));
    CHECK(has(",,upgrade,,", "upgrade"));
    CHECK(has("keep-alive, Upgrade", "keep-alive"));
    CHECK(has("websocket", "websocket"));
    CHECK(!has("keep-alive", "upgrade"));
    CHECK(!has("upgrades", "upgrade"));
    CHECK(!has("xupgrade", "upgrade"));
    CHECK(!has("upgrade2, keep-alive", "upgrade"));
    CHECK(!has("up grade", "upgrade"));
    CHECK(!has("upgrade;q=1", "upgrade"));
    CHECK(!has("", "upgrade"));
    CHECK(!has(",", "upgrade"));
    CHECK(!has("upgrad", "upgrade"));

    mcpgw_str empty = { NULL, 0 };
    CHECK(!mcpgw_http_list_has_token(&empty, "upgrade"));
}

static int acc(const char *value, const char *type)
{
    mcpgw_str v = { value, strlen(value) };
    return mcpgw_http_accepts(&v, type);
}

TEST(accepts)
{
    CHECK(acc("application/json, text/event-stream", "application/json"));
    CHECK(acc("application/json, text/event-stream", "text/event-stream"));
    CHECK(acc("Text/Event-Stream", "text/event-stream"));
    CHECK(acc("*/*", "text/event-stream"));
    CHECK(acc("text/*;q=0.5", "text/event-stream"));
    CHECK(acc("application/json;charset=utf-8", "application/json"));
    CHECK(acc("  application/json  ;  q=1", "application/json"));
    CHECK(acc("x/y,,application/json", "application/json"));
    CHECK(acc("application/json; q=0.001", "application/json"));
    CHECK(!acc("application/json;q=0", "application/json"));
    CHECK(!acc("application/json; q=0.000", "application/json"));
    CHECK(!acc("*/*;q=0", "application/json"));
    CHECK(!acc("text/html", "text/event-stream"));
    CHECK(!acc("text/event-streams", "text/event-stream"));
    CHECK(!acc("application/*", "text/event-stream"));
    CHECK(!acc("application/jso", "application/json"));
    CHECK(!acc("", "application/json"));
    CHECK(!acc(",", "application/json"));
    CHECK(!mcpgw_http_accepts(NULL, "application/json"));
}

TEST(str_eq_nocase)
{
    mcpgw_str s = { "Content-Length", 14 };
    CHECK(mcpgw_str_eq_nocase(&s, "content-length"));
    CHECK(mcpgw_str_eq_nocase(&s, "CONTENT-LENGTH"));
    CHECK(mcpgw_str_eq_nocase(&s, "Content-Length"));
    CHECK(!mcpgw_str_eq_nocase(&s, "Content-Lengt"));
    CHECK(!mcpgw_str_eq_nocase(&s, "Content-Lengths"));
    CHECK(!mcpgw_str_eq_nocase(&s, "Content_Length"));
    mcpgw_str part = { "Hostname", 4 };       /* not NUL-terminated at len */
    CHECK(mcpgw_str_eq_nocase(&part, "host"));
    CHECK(!mcpgw_str_eq_nocase(&part, "hostname"));
    mcpgw_str empty = { NULL, 0 };
    CHECK(mcpgw_str_eq_nocase(&empty, ""));
    CHECK(!mcpgw_str_eq_nocase(&empty, "a"));
    /* '@' and '`' differ from 'A'/'a' by 0x20 too: must not match. */
    mcpgw_str at = { "@", 1 };
    CHECK(!mcpgw_str_eq_nocase(&at, "`"));
}

TEST(reasons)
{
    CHECK_EQ_STR(mcpgw_http_reason(101), "Switching Protocols");
    CHECK_EQ_STR(mcpgw_http_reason(200), "OK");
    CHECK_EQ_STR(mcpgw_http_reason(204), "No Content");
    CHECK_EQ_STR(mcpgw_http_reason(400), "Bad Request");
    CHECK_EQ_STR(mcpgw_http_reason(401), "Unauthorized");
    CHECK_EQ_STR(mcpgw_http_reason(403), "Forbidden");
    CHECK_EQ_STR(mcpgw_http_reason(404), "Not Found");
    CHECK_EQ_STR(mcpgw_http_reason(405), "Method Not Allowed");
    CHECK_EQ_STR(mcpgw_http_reason(408), "Request Timeout");
    CHECK_EQ_STR(mcpgw_http_reason(413), "Payload Too Large");
    CHECK_EQ_STR(mcpgw_http_reason(426), "Upgrade Required");
    CHECK_EQ_STR(mcpgw_http_reason(429), "Too Many Requests");
    CHECK_EQ_STR(mcpgw_http_reason(431), "Request Header Fields Too Large");
    CHECK_EQ_STR(mcpgw_http_reason(500), "Internal Server Error");
    CHECK_EQ_STR(mcpgw_http_reason(503), "Service Unavailable");
    CHECK_EQ_STR(mcpgw_http_reason(505), "HTTP Version Not Supported");
    CHECK_EQ_STR(mcpgw_http_reason(299), "Unknown");
    CHECK_EQ_STR(mcpgw_http_reason(0), "Unknown");
    CHECK_EQ_STR(mcpgw_http_reason(-1), "Unknown");
}

TEST(format_response)
{
    char out[512];
    static const char want[] =
        "HTTP/1.1 404 Not Found\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 9\r\n"
        "\r\n"
        "not found";
    size_t n = mcpgw_http_format_response(out, sizeof out, 404, NULL, "not found");
    CHECK_EQ_INT(n, strlen(want));
    CHECK(memcmp(out, want, sizeof want) == 0);     /* NUL-terminated too */

    static const char want2[] =
        "HTTP/1.1 426 Upgrade Required\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 16\r\n"
        "Upgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
        "Upgrade Required";
    n = mcpgw_http_format_response(out, sizeof out, 426,
                                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                                   "Upgrade Required");
    CHECK_EQ_INT(n, strlen(want2));
    CHECK_EQ_STR(out, want2);

    static const char want3[] =
        "HTTP/1.1 204 No Content\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    n = mcpgw_http_format_response(out, sizeof out, 204, NULL, NULL);
    CHECK_EQ_INT(n, strlen(want3));
    CHECK_EQ_STR(out, want3);
    n = mcpgw_http_format_response(out, sizeof out, 204, "", "");
    CHECK_EQ_STR(out, want3);

    /* Content-Length counts bytes, not characters. */
    n = mcpgw_http_format_response(out, sizeof out, 200, NULL, "caf\xc3\xa9");
    CHECK(strstr(out, "Content-Length: 5\r\n") != NULL);
    CHECK_EQ_STR(out + n - 5, "caf\xc3\xa9");
}

TEST(format_response_overflow)
{
    char out[256];
    size_t want = strlen("HTTP/1.1 404 Not Found\r\n"
                         "Connection: close\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 9\r\n"
                         "\r\n"
                         "not found");

    /* Exactly enough room for the bytes plus the NUL. */
    CHECK_EQ_INT(mcpgw_http_format_response(out, want + 1, 404, NULL, "not found"), want);
    CHECK_EQ_INT(out[want], '\0');

    /* One byte short (no room for the NUL), far too short, nothing. */
    memset(out, 'x', sizeof out);
    CHECK_EQ_INT(mcpgw_http_format_response(out, want, 404, NULL, "not found"), 0);
    CHECK_EQ_INT(out[0], '\0');
    CHECK_EQ_INT(out[want], 'x');        /* no write past cap */
    CHECK_EQ_INT(mcpgw_http_format_response(out, 10, 404, NULL, "not found"), 0);
    CHECK_EQ_INT(out[0], '\0');
    CHECK_EQ_INT(mcpgw_http_format_response(out, 1, 404, NULL, "not found"), 0);
    CHECK_EQ_INT(mcpgw_http_format_response(out, 0, 404, NULL, "not found"), 0);
    CHECK_EQ_INT(mcpgw_http_format_response(NULL, 0, 404, NULL, "not found"), 0);
}

TEST(query_param)
{
    static const char q[] = "a=1&user=al%20ice+b&empty=&bad=%zz&user=second&nul=%00";
    mcpgw_str query = { q, sizeof(q) - 1 };
    mcpgw_str none = { NULL, 0 };
    char out[16];

    CHECK_EQ_INT(mcpgw_http_query_param(&query, "user", out, sizeof(out)), 8);
    CHECK_EQ_STR(out, "al ice b");
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "a", out, sizeof(out)), 1);
    CHECK_EQ_STR(out, "1");
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "empty", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "bad", out, sizeof(out)), -1);
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "nul", out, sizeof(out)), -1);
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "use", out, sizeof(out)), -2);
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "missing", out, sizeof(out)), -2);
    CHECK_EQ_INT(mcpgw_http_query_param(&none, "user", out, sizeof(out)), -2);
    CHECK_EQ_INT(mcpgw_http_query_param(&query, "user", out, 4), -1);     /* no room */
}

TEST(bearer_token)
{
    size_t len = 0;
    const char *t;

    CHECK(parse_lit("GET / HTTP/1.1\r\nAuthorization: bearer   abc.def\r\n\r\n", &req)
          == MCPGW_HTTP_OK);
    t = mcpgw_http_bearer_token(&req, &len);
    CHECK(t && len == 7 && memcmp(t, "abc.def", 7) == 0);
    CHECK(parse_lit("GET / HTTP/1.1\r\nAuthorization: Bearerish x\r\n\r\n", &req)
          == MCPGW_HTTP_OK);
    CHECK(mcpgw_http_bearer_token(&req, &len) == NULL);
    CHECK(parse_lit("GET / HTTP/1.1\r\nAuthorization: Basic eA==\r\n\r\n", &req)
          == MCPGW_HTTP_OK);
    CHECK(mcpgw_http_bearer_token(&req, &len) == NULL);
}

/* mcpgw_http_check_framing on a literal head: its reason, or "ok". */
static const char *framing(const char *s)
{
    const char *body = "unset", *reason;

    if (parse_lit(s, &req) != MCPGW_HTTP_OK)
        return "parse_failed";
    reason = mcpgw_http_check_framing(&req, &body);
    if (reason && (!body || !*body))
        return "no_body";
    if (!reason && body)
        return "body_without_reason";
    return reason ? reason : "ok";
}

TEST(framing_checks)
{
    CHECK_EQ_STR(framing(UPGRADE_REQ), "ok");
    CHECK_EQ_STR(framing("GET / HTTP/1.1\r\n\r\n"), "ok");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n"), "ok");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), "ok");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\ncontent-length:   007  \r\n\r\n"), "ok");
    /* Host: once at most, whatever the case or value. */
    CHECK_EQ_STR(framing("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "duplicate_host");
    CHECK_EQ_STR(framing("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nhOST: a\r\n\r\n"),
                 "duplicate_host");
    CHECK_EQ_STR(framing("GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n"), "duplicate_host");
    CHECK_EQ_STR(framing("GET / HTTP/1.1\r\nHost: a\r\nHosts: b\r\nX-Host: c\r\n\r\n"), "ok");
    /* Content-Length: one header, one number. */
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
                 "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
                 "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"), "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 5,5\r\n\r\n"), "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length:\r\n\r\n"), "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"), "bad_content_length");
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"), "bad_content_length");
    /* The first problem in header order is the one reported. */
    CHECK_EQ_STR(framing("POST /a HTTP/1.1\r\nContent-Length: x\r\nHost: a\r\nHost: a\r\n\r\n"),
                 "bad_content_length");
}

static mcpgw_http_response resp;  /* large: keep it off the stack */

static mcpgw_http_result parse_resp(const char *s, size_t max_head)
{
    return mcpgw_http_parse_response(s, strlen(s), max_head, &resp);
}

/* The response head (the client's side of the upgrade). */
TEST(response_upgrade)
{
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection:Upgrade\r\n"
                             "Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
                             "\r\n\x81\x02hi";
    size_t head = strlen(ok) - 4;

    CHECK_EQ_INT(mcpgw_http_parse_response(ok, strlen(ok), MAX_HEAD, &resp), MCPGW_HTTP_OK);
    CHECK_EQ_INT(resp.head_len, head);      /* the frame after it is not consumed */
    CHECK_EQ_INT(resp.status, 101);
    CHECK_EQ_INT(resp.version_minor, 1);
    CHECK(str_is(&resp.reason, "Switching Protocols"));
    CHECK_EQ_INT(resp.n_headers, 3);
    CHECK(str_is(mcpgw_http_headers_get(resp.headers, resp.n_headers, "connection"), "Upgrade"));
    CHECK(str_is(mcpgw_http_headers_get(resp.headers, resp.n_headers, "SEC-WEBSOCKET-ACCEPT"),
                 "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    CHECK(mcpgw_http_headers_get(resp.headers, resp.n_headers, "Upgrad") == NULL);
    for (size_t k = 0; k < head; k++)
        CHECK_EQ_INT(mcpgw_http_parse_response(ok, k, MAX_HEAD, &resp), MCPGW_HTTP_NEED_MORE);
}

TEST(response_status_lines)
{
    CHECK_EQ_INT(parse_resp("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
                            MAX_HEAD), MCPGW_HTTP_OK);
    CHECK_EQ_INT(resp.status, 401);
    CHECK(str_is(&resp.reason, "Unauthorized"));
    /* an empty reason, with or without its SP; bare LF; HTTP/1.0 */
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 \r\n\r\n", MAX_HEAD), MCPGW_HTTP_OK);
    CHECK(resp.reason.len == 0 && resp.status == 101);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101\r\n\r\n", MAX_HEAD), MCPGW_HTTP_OK);
    CHECK(resp.reason.len == 0 && resp.n_headers == 0);
    CHECK_EQ_INT(parse_resp("HTTP/1.0 503 Busy now\nRetry-After: 1\n\n", MAX_HEAD),
                 MCPGW_HTTP_OK);
    CHECK(resp.version_minor == 0 && resp.status == 503 && str_is(&resp.reason, "Busy now"));
    CHECK_EQ_INT(resp.n_headers, 1);
    /* not HTTP/1.x */
    CHECK_EQ_INT(parse_resp("HTTP/2 101 X\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD_VERSION);
    CHECK_EQ_INT(parse_resp("HTTP/2.0 200 OK\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD_VERSION);
    /* malformed status lines */
    CHECK_EQ_INT(parse_resp("HTTP/1.1 1O1 X\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 10 X\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 1011 X\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1  101 X\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("http/1.1 101 X\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 X\x01Y\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("GET / HTTP/1.1\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    /* the header rules are the request's: no colon, obs-fold, space before the colon */
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 X\r\nNoColon\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 X\r\nA: b\r\n c\r\n\r\n", MAX_HEAD),
                 MCPGW_HTTP_BAD);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 X\r\nA : b\r\n\r\n", MAX_HEAD), MCPGW_HTTP_BAD);
    /* the head limit */
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 Switching Protocols\r\n", 16),
                 MCPGW_HTTP_TOO_LARGE);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 X\r\n\r\n", 17), MCPGW_HTTP_TOO_LARGE);
    CHECK_EQ_INT(mcpgw_http_parse_response("HTTP/1.1 101 X\r\n\r\n", 17, 17, &resp),
                 MCPGW_HTTP_NEED_MORE);
    CHECK_EQ_INT(parse_resp("HTTP/1.1 101 X\r\n\r\n", 18), MCPGW_HTTP_OK);
}

int main(void)
{
    RUN(response_upgrade);
    RUN(response_status_lines);
    RUN(query_param);
    RUN(bearer_token);
    RUN(parse_full_upgrade);
    RUN(parse_trailing_bytes_not_consumed);
    RUN(parse_first_header_wins);
    RUN(need_more_at_every_truncation);
    RUN(need_more_at_every_truncation_bare_lf);
    RUN(need_more_does_not_look_at_garbage);
    RUN(bare_lf);
    RUN(mixed_line_ends);
    RUN(no_headers);
    RUN(value_trimming);
    RUN(too_large);
    RUN(too_many_headers);
    RUN(malformed_headers);
    RUN(malformed_request_line);
    RUN(versions);
    RUN(methods);
    RUN(query_split);
    RUN(list_tokens);
    RUN(accepts);
    RUN(str_eq_nocase);
    RUN(reasons);
    RUN(format_response);
    RUN(format_response_overflow);
    RUN(framing_checks);
    return UNIT_SUMMARY();
}
