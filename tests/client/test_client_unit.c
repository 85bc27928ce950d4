/*
 * test_client_unit.c - unit tests of the client library's pure parts: the
 * reconnect schedule (with a seeded random source), URL parsing, the
 * upgrade request/response, the bounded queue and UUID v4 format.
 */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <ctype.h>
#include <math.h>
#include <event2/event.h>

#include "unit.h"
#include <mcpgw/client.h>
#include "url.h"
#include "upgrade.h"
#include "queue.h"
#include "pmd.h"            /* core/pmd.h */

/* A seeded xorshift64* source: the same seed gives the same schedule. */
static uint64_t rng_state;
static double rng01(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

TEST(backoff_defaults_without_jitter)
{
    mcpgw_client_opts o;
    mcpgw_client_opts_init(&o);
    CHECK_EQ_INT(o.reconnect_base_ms, 1000);
    CHECK(o.reconnect_factor == 1.5);
    CHECK_EQ_INT(o.reconnect_max_ms, 30000);
    CHECK(o.reconnect_jitter == 0.3);
    CHECK_EQ_INT(o.reconnect_max_attempts, 10);
    CHECK_EQ_INT(o.reconnect, 1);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 1, 0), 1000);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 2, 0), 1500);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 3, 0), 2250);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 4, 0), 3375);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 9, 0), 25628);  /* 1000 * 1.5^8 = 25628.9 */
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 10, 0), 30000); /* capped */
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 1000, 0), 30000);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 0, 0), 1000);   /* clamped to attempt 1 */
}

TEST(backoff_jitter_bounds_seeded)
{
    mcpgw_client_opts o;
    int attempt, i;
    unsigned first[10], again[10];

    mcpgw_client_opts_init(&o);
    /* full jitter: +30 % at most */
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 1, 0.5), 1150);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 10, 0.5), 34500);
    CHECK(mcpgw_client_backoff_ms(&o, 10, 0.999999) < 39000);
    CHECK(mcpgw_client_backoff_ms(&o, 1, 1.5) < 1300);      /* out-of-range random clamped */
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 1, -1), 1000);

    rng_state = 42;
    for (attempt = 1; attempt <= 10; attempt++) {
        double r = rng01();
        double b = fmin(30000.0, 1000.0 * pow(1.5, attempt - 1));
        unsigned d = mcpgw_client_backoff_ms(&o, attempt, r);
        first[attempt - 1] = d;
        CHECK(d >= (unsigned)b);
        CHECK(d <= (unsigned)(b * 1.3));
        CHECK_EQ_INT(d, (unsigned)(b + r * 0.3 * b));
    }
    rng_state = 42;
    for (i = 0; i < 10; i++)
        again[i] = mcpgw_client_backoff_ms(&o, i + 1, rng01());
    CHECK(memcmp(first, again, sizeof(first)) == 0);
    /* many seeds, every attempt inside the envelope */
    for (rng_state = 1; rng_state < 200; rng_state += 7) {
        uint64_t keep = rng_state;
        for (attempt = 1; attempt <= 12; attempt++) {
            double b = fmin(30000.0, 1000.0 * pow(1.5, attempt - 1));
            unsigned d = mcpgw_client_backoff_ms(&o, attempt, rng01());
            CHECK(d >= (unsigned)b && d <= (unsigned)(b * 1.3) + 1);
        }
        rng_state = keep;
    }
}

TEST(backoff_configurable)
{
    mcpgw_client_opts o;
    mcpgw_client_opts_init(&o);
    o.reconnect_base_ms = 100;
    o.reconnect_factor = 2;
    o.reconnect_max_ms = 500;
    o.reconnect_jitter = 0;
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 1, 0.9), 100);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 3, 0.9), 400);
    CHECK_EQ_INT(mcpgw_client_backoff_ms(&o, 4, 0.9), 500);
}

TEST(url_parse)
{
    mcpgw_curl u;
    char err[128];

    CHECK_EQ_INT(mcpgw_curl_parse("ws://127.0.0.1:8080/ws", &u, err, sizeof(err)), 0);
    CHECK_EQ_INT(u.tls, 0);
    CHECK_EQ_STR(u.host, "127.0.0.1");
    CHECK_EQ_INT(u.port, 8080);
    CHECK_EQ_STR(u.host_header, "127.0.0.1:8080");
    CHECK_EQ_STR(u.target, "/ws");
    mcpgw_curl_clear(&u);

    CHECK_EQ_INT(mcpgw_curl_parse("wss://Example.org/a/b?x=1#frag", &u, err, sizeof(err)), 0);
    CHECK_EQ_INT(u.tls, 1);
    CHECK_EQ_INT(u.port, 443);
    CHECK_EQ_STR(u.target, "/a/b?x=1");
    mcpgw_curl_clear(&u);

    CHECK_EQ_INT(mcpgw_curl_parse("ws://[::1]:9000", &u, err, sizeof(err)), 0);
    CHECK_EQ_STR(u.host, "::1");
    CHECK_EQ_STR(u.host_header, "[::1]:9000");
    CHECK_EQ_STR(u.target, "/");
    CHECK_EQ_INT(u.port, 9000);
    mcpgw_curl_clear(&u);

    CHECK_EQ_INT(mcpgw_curl_parse("ws://h?q", &u, err, sizeof(err)), 0);
    CHECK_EQ_STR(u.target, "/?q");
    CHECK_EQ_INT(u.port, 80);
    mcpgw_curl_clear(&u);

    CHECK_EQ_INT(mcpgw_curl_parse("http://h/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://:80/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://h:0/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://h:65536/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://h:/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://u@h/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://[::1/", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse("ws://h/a b", &u, err, sizeof(err)), -1);
    CHECK_EQ_INT(mcpgw_curl_parse(NULL, &u, err, sizeof(err)), -1);
}

TEST(url_token)
{
    char *t = mcpgw_curl_with_token("/ws", "a.b-c_d");
    CHECK_EQ_STR(t, "/ws?token=a.b-c_d");
    free(t);
    t = mcpgw_curl_with_token("/ws?x=1", "a b&c");
    CHECK_EQ_STR(t, "/ws?x=1&token=a%20b%26c");
    free(t);
}

TEST(upgrade_request_and_accept)
{
    char key[25];
    char *req;

    mcpgw_cup_key(key);
    CHECK_EQ_INT(strlen(key), 24);
    CHECK(key[22] == '=' && key[23] == '=');
    req = mcpgw_cup_request("h:1", "/ws?token=t", NULL, key, NULL);
    CHECK(strncmp(req, "GET /ws?token=t HTTP/1.1\r\nHost: h:1\r\n", 37) == 0);
    CHECK(strstr(req, "Upgrade: websocket\r\n") != NULL);
    CHECK(strstr(req, "Connection: Upgrade\r\n") != NULL);
    CHECK(strstr(req, "Sec-WebSocket-Version: 13\r\n") != NULL);
    CHECK(strstr(req, key) != NULL);
    CHECK(strstr(req, "Authorization") == NULL);
    CHECK(strstr(req, "Sec-WebSocket-Extensions") == NULL);
    CHECK(strcmp(req + strlen(req) - 4, "\r\n\r\n") == 0);
    free(req);
    req = mcpgw_cup_request("h", "/ws", "TOK", key, MCPGW_PMD_CLIENT_OFFER);
    CHECK(strstr(req, "Authorization: Bearer TOK\r\n") != NULL);
    CHECK(strstr(req, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
          != NULL);
    free(req);
}

TEST(upgrade_response_parse)
{
    mcpgw_cup_response r;
    mcpgw_pmd_params pmd;
    const char *why = NULL;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nXX";
    const char *rej = "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
                      "Content-Length: 27\r\nConnection: close\r\n\r\nUnauthorized: Invalid token";
    char big[MCPGW_CUP_MAX_HEAD + 10];

    CHECK_EQ_INT(mcpgw_cup_parse(ok, 20, &r), 1);
    CHECK_EQ_INT(mcpgw_cup_parse(ok, strlen(ok), &r), 0);
    CHECK_EQ_INT(r.status, 101);
    CHECK_EQ_INT(r.head_len, strlen(ok) - 2);
    CHECK_EQ_INT(mcpgw_cup_validate(&r, "dGhlIHNhbXBsZSBub25jZQ==", 1, &pmd, &why), 0);
    CHECK_EQ_INT(pmd.enabled, 0);
    CHECK_EQ_INT(mcpgw_cup_validate(&r, "AAAAAAAAAAAAAAAAAAAAAA==", 1, &pmd, &why), -1);
    CHECK_EQ_STR(why, "wrong Sec-WebSocket-Accept");
    {
        /* permessage-deflate answered: core/pmd.c's client role */
        const char *z = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate; "
                        "server_no_context_takeover; server_max_window_bits=10\r\n\r\n";
        CHECK_EQ_INT(mcpgw_cup_parse(z, strlen(z), &r), 0);
        CHECK_EQ_INT(mcpgw_cup_validate(&r, "dGhlIHNhbXBsZSBub25jZQ==", 1, &pmd, &why), 0);
        CHECK(pmd.enabled && pmd.role == MCPGW_PMD_CLIENT && pmd.server_no_context_takeover);
        CHECK_EQ_INT(pmd.server_window_bits, 10);
        CHECK_EQ_INT(pmd.client_window_bits, 15);
        CHECK_EQ_INT(mcpgw_cup_validate(&r, "dGhlIHNhbXBsZSBub25jZQ==", 0, &pmd, &why), -1);
        CHECK_EQ_STR(why, "server selected an extension that was not offered");
    }

    CHECK_EQ_INT(mcpgw_cup_parse(rej, strlen(rej), &r), 0);
    CHECK_EQ_INT(r.status, 401);
    CHECK_EQ_STR(r.reason, "Unauthorized");
    CHECK_EQ_INT(r.content_length, 27);
    CHECK_EQ_INT(mcpgw_cup_validate(&r, "x", 1, &pmd, &why), -1);

    {
        const char *ext = "HTTP/1.1 101\r\nUpgrade: websocket\r\n"
                          "Connection: upgrade\r\nSec-WebSocket-Extensions: x\r\n\r\n";
        CHECK_EQ_INT(mcpgw_cup_parse(ext, strlen(ext), &r), 0);
    }
    CHECK_EQ_INT(r.has_extensions, 1);
    CHECK_EQ_STR(r.extensions, "x");
    CHECK_EQ_INT(mcpgw_cup_parse("HTTP/2 101 X\r\n\r\n", 16, &r), -1);
    CHECK_EQ_INT(mcpgw_cup_parse("HTTP/1.1 1O1 X\r\n\r\n", 18, &r), -1);
    CHECK_EQ_INT(mcpgw_cup_parse("HTTP/1.1 101 X\r\nNoColon\r\n\r\n", 27, &r), -1);
    CHECK_EQ_INT(mcpgw_cup_parse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 39, &r), -1);
    memset(big, 'a', sizeof(big));
    CHECK_EQ_INT(mcpgw_cup_parse(big, sizeof(big), &r), -1);
}

static int count_items(mcpgw_cq_item *it)
{
    int n = 0;
    while (it) {
        mcpgw_cq_item *next = it->next;
        free(it);
        it = next;
        n++;
    }
    return n;
}

TEST(queue_refuse_new)
{
    mcpgw_cqueue q;
    mcpgw_cq_item *d, *it;

    mcpgw_cq_init(&q, 2, 0, 0);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "a", 1, NULL, &d), MCPGW_CQ_OK);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "bb", 2, NULL, &d), MCPGW_CQ_OK);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "c", 1, NULL, &d), MCPGW_CQ_FULL);
    CHECK(d == NULL);
    CHECK_EQ_INT(q.count, 2);
    CHECK_EQ_INT(q.bytes, 3);
    it = mcpgw_cq_pop(&q);
    CHECK_EQ_STR(it->text, "a");
    free(it);
    it = mcpgw_cq_pop(&q);
    CHECK_EQ_STR(it->text, "bb");
    mcpgw_cq_unpop(&q, it);
    CHECK_EQ_INT(q.count, 1);
    mcpgw_cq_clear(&q);
    CHECK_EQ_INT(q.count, 0);
    CHECK_EQ_INT(q.bytes, 0);

    mcpgw_cq_init(&q, 0, 10, 0);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "0123456789X", 11, NULL, &d), MCPGW_CQ_TOO_BIG);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "01234567", 8, NULL, &d), MCPGW_CQ_OK);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "012", 3, NULL, &d), MCPGW_CQ_FULL);
    mcpgw_cq_clear(&q);
}

TEST(queue_drop_oldest)
{
    mcpgw_cqueue q;
    mcpgw_cq_item *d, *it;
    int tag;

    mcpgw_cq_init(&q, 2, 0, 1);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "1", 1, NULL, &d), MCPGW_CQ_OK);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "2", 1, &tag, &d), MCPGW_CQ_OK);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "3", 1, NULL, &d), MCPGW_CQ_DROPPED);
    CHECK(d && strcmp(d->text, "1") == 0 && d->next == NULL);
    count_items(d);
    CHECK_EQ_INT(mcpgw_cq_remove_tag(&q, &tag), 1);
    CHECK_EQ_INT(mcpgw_cq_remove_tag(&q, &tag), 0);
    it = mcpgw_cq_pop(&q);
    CHECK_EQ_STR(it->text, "3");
    free(it);
    CHECK(mcpgw_cq_pop(&q) == NULL);

    /* by bytes: one big push evicts several */
    mcpgw_cq_init(&q, 0, 6, 1);
    mcpgw_cq_push(&q, "aa", 2, NULL, &d);
    mcpgw_cq_push(&q, "bb", 2, NULL, &d);
    mcpgw_cq_push(&q, "cc", 2, NULL, &d);
    CHECK_EQ_INT(mcpgw_cq_push(&q, "dddd", 4, NULL, &d), MCPGW_CQ_DROPPED);
    CHECK_EQ_INT(count_items(d), 2);
    CHECK_EQ_INT(q.count, 2);
    CHECK_EQ_INT(q.bytes, 6);
    mcpgw_cq_clear(&q);
}

TEST(uuid_v4_format)
{
    char a[37], b[37];
    int i;

    mcpgw_client_uuid4(a);
    mcpgw_client_uuid4(b);
    CHECK_EQ_INT(strlen(a), 36);
    CHECK(strcmp(a, b) != 0);
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            CHECK(a[i] == '-');
        else
            CHECK(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
    }
    CHECK(a[14] == '4');
    CHECK(strchr("89ab", a[19]) != NULL);
}

TEST(client_new_rejects_bad_input)
{
    char err[128];
    mcpgw_client_opts o;

    mcpgw_client_opts_init(&o);
    CHECK_EQ_INT(o.compression, 1);
    CHECK(mcpgw_client_new(NULL, "ws://h/", &o, NULL, NULL, err, sizeof(err)) == NULL);
    {
        struct event_base *base = event_base_new();
        CHECK(mcpgw_client_new(base, "tcp://h/", &o, NULL, NULL, err, sizeof(err)) == NULL);
        o.reconnect_factor = 0.5;
        CHECK(mcpgw_client_new(base, "ws://h/", &o, NULL, NULL, err, sizeof(err)) == NULL);
        event_base_free(base);
    }
}

int main(void)
{
    RUN(backoff_defaults_without_jitter);
    RUN(backoff_jitter_bounds_seeded);
    RUN(backoff_configurable);
    RUN(url_parse);
    RUN(url_token);
    RUN(upgrade_request_and_accept);
    RUN(upgrade_response_parse);
    RUN(queue_refuse_new);
    RUN(queue_drop_oldest);
    RUN(uuid_v4_format);
    RUN(client_new_rejects_bad_input);
    return UNIT_SUMMARY();
}
