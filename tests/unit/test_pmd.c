/*
 * test_pmd.c - permessage-deflate negotiation and the bounded data path.
 */
#include <stdlib.h>
#include <string.h>

#include "pmd.h"
#include "unit.h"

static mcpgw_pmd_config defaults(void)
{
    mcpgw_pmd_config c = { 1, 6, 8, 1024, 10, 15, 1, 1 };
    return c;
}

static int nego(const char *offer, mcpgw_pmd_params *p, char *resp, size_t cap)
{
    mcpgw_pmd_config c = defaults();
    return mcpgw_pmd_negotiate(&c, offer, strlen(offer), p, resp, cap);
}

TEST(test_default_offer)
{
    mcpgw_pmd_params p;
    char resp[256];

    CHECK(nego("permessage-deflate; client_max_window_bits", &p, resp, sizeof(resp)));
    CHECK_EQ_STR(resp, "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover; server_max_window_bits=10");
    CHECK_EQ_INT(p.server_window_bits, 10);
    CHECK_EQ_INT(p.client_window_bits, 15);
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
}

TEST(test_parameters_and_order)
{
    mcpgw_pmd_params p;
    char resp[256];

    CHECK(nego("permessage-deflate; server_max_window_bits=9; client_max_window_bits=11",
               &p, resp, sizeof(resp)));
    CHECK_EQ_INT(p.server_window_bits, 9);
    CHECK_EQ_INT(p.client_window_bits, 11);
    CHECK(strstr(resp, "client_max_window_bits=11") != NULL);
    /* First acceptable offer wins; the unknown parameter declines the first. */
    CHECK(nego("permessage-deflate; x=1, permessage-deflate; server_max_window_bits=\"12\"",
               &p, resp, sizeof(resp)));
    CHECK_EQ_INT(p.server_window_bits, 10);
    CHECK(nego("foo; a=b, permessage-deflate", &p, resp, sizeof(resp)));
    /* Not requested: no client_max_window_bits in the answer. */
    CHECK(strstr(resp, "client_max_window_bits") == NULL);
}

TEST(test_declined)
{
    static const char *const bad[] = {
        "", "foo", "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=yes",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate;", "permessage-deflate; =1", "permessage-deflate; a=\"x",
        "permessage-deflate; a=\"\\", ", ,", "permessage-deflate x",
    };
    mcpgw_pmd_params p;
    char resp[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int got = nego(bad[i], &p, resp, sizeof(resp));
        if (got)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        CHECK(!got);
        CHECK(!p.enabled);
    }
    {
        mcpgw_pmd_config c = defaults();
        c.enabled = 0;
        CHECK(!mcpgw_pmd_negotiate(&c, "permessage-deflate", 18, &p, resp, sizeof(resp)));
    }
}

TEST(test_round_trip_and_limits)
{
    mcpgw_pmd_pool pool;
    mcpgw_pmd_state st = { NULL, NULL, 0 };
    mcpgw_pmd_params p = { 1, 1, 1, 10, 10, MCPGW_PMD_SERVER };
    size_t n = 100000, zlen, olen;
    uint8_t *in = malloc(n), *z, *out;

    mcpgw_pmd_pool_init(&pool, 6, 8);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)("abcdefgh"[i % 8] + (i / 5000));
    for (int round = 0; round < 3; round++) {   /* the pooled streams are reused */
        z = mcpgw_pmd_deflate(&pool, NULL, &p, in, n, &zlen);
        CHECK(z != NULL && zlen < n / 10);
        CHECK_EQ_INT(mcpgw_pmd_inflate(&pool, NULL, &p, z, zlen, n, &out, &olen), MCPGW_PMD_OK);
        CHECK_EQ_INT(olen, n);
        CHECK(out && memcmp(out, in, n) == 0);
        free(out);
        /* One byte less room than the message needs: too big, nothing kept. */
        CHECK_EQ_INT(mcpgw_pmd_inflate(&pool, NULL, &p, z, zlen, n - 1, &out, &olen),
                     MCPGW_PMD_TOO_BIG);
        CHECK(out == NULL);
        free(z);
    }
    CHECK_EQ_INT(mcpgw_pmd_inflate(&pool, NULL, &p, (const uint8_t *)"\xff\xfe\xfd", 3, n,
                                   &out, &olen), MCPGW_PMD_CORRUPT);
    /* Context takeover: the connection's own streams, second message smaller. */
    p.server_no_context_takeover = p.client_no_context_takeover = 0;
    {
        size_t z1, z2;
        uint8_t *a = mcpgw_pmd_deflate(&pool, &st, &p, in, 2000, &z1);
        uint8_t *b = mcpgw_pmd_deflate(&pool, &st, &p, in, 2000, &z2);
        CHECK(a && b && z2 < z1);
        CHECK(st.deflater != NULL);
        CHECK_EQ_INT(mcpgw_pmd_inflate(&pool, &st, &p, a, z1, n, &out, &olen), MCPGW_PMD_OK);
        free(out);
        CHECK_EQ_INT(mcpgw_pmd_inflate(&pool, &st, &p, b, z2, n, &out, &olen), MCPGW_PMD_OK);
        CHECK(olen == 2000 && memcmp(out, in, 2000) == 0);
        free(out);
        free(a);
        free(b);
    }
    mcpgw_pmd_state_free(&st);
    mcpgw_pmd_pool_free(&pool);
    free(in);
}

/* A broadcast frame compressed once from an empty window (the pool's
 * stream) between two messages of a connection's own context-takeover
 * stream: one long-lived inflater on the peer's side decodes all three when
 * the own stream restarts after the shared frame, and not without. */
TEST(test_shared_frame_between_own_messages)
{
    mcpgw_pmd_pool pool;
    mcpgw_pmd_state own = { NULL, NULL, 0 }, stale = { NULL, NULL, 0 };
    mcpgw_pmd_state peer = { NULL, NULL, 0 }, peer2 = { NULL, NULL, 0 };
    mcpgw_pmd_params p = { 1, 0, 0, 10, 10, MCPGW_PMD_SERVER }; /* context takeover both ways */
    /* the direct message fits in the 2^10 window (less zlib's lookahead) */
    size_t nd = 700, nb = 3000, n[3] = { 700, 3000, 700 }, len[3], slen[3], olen;
    uint8_t *direct = malloc(nd), *bcast = malloc(nb), *z[3], *zs[3], *out;
    const uint8_t *plain[3];
    uint32_t x = 12345;

    mcpgw_pmd_pool_init(&pool, 6, 8);
    for (size_t i = 0; i < nd; i++) {
        x = x * 1103515245u + 12345u;
        direct[i] = (uint8_t)('a' + (x >> 16) % 26);
    }
    for (size_t i = 0; i < nb; i++)
        bcast[i] = (uint8_t)("0123456789abcdefghijklmnopqrstuvwxyz"[(i * 7) % 36]);
    plain[0] = direct;
    plain[1] = bcast;
    plain[2] = direct;

    z[0] = mcpgw_pmd_deflate(&pool, &own, &p, direct, nd, &len[0]);
    zs[0] = mcpgw_pmd_deflate(&pool, &stale, &p, direct, nd, &slen[0]);
    /* the broadcast: pooled stream, reset, whatever the connection's mode */
    z[1] = mcpgw_pmd_deflate(&pool, NULL, &p, bcast, nb, &len[1]);
    zs[1] = z[1] ? malloc(len[1]) : NULL;
    if (zs[1])
        memcpy(zs[1], z[1], slen[1] = len[1]);
    mcpgw_pmd_state_restart(&own);
    CHECK(own.deflater_stale);
    z[2] = mcpgw_pmd_deflate(&pool, &own, &p, direct, nd, &len[2]);
    CHECK(!own.deflater_stale);
    zs[2] = mcpgw_pmd_deflate(&pool, &stale, &p, direct, nd, &slen[2]);
    CHECK(z[0] && z[1] && z[2] && zs[0] && zs[1] && zs[2]);
    /* the stale stream took the repeat from its own window: far smaller */
    CHECK(slen[2] < len[2] / 4);

    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(mcpgw_pmd_inflate(&pool, &peer, &p, z[i], len[i], nb, &out, &olen),
                     MCPGW_PMD_OK);
        CHECK(out && olen == n[i] && memcmp(out, plain[i], n[i]) == 0);
        free(out);
    }
    /* without the restart the third message points into a window the peer
     * no longer has: corrupt or wrong */
    for (int i = 0; i < 3; i++) {
        mcpgw_pmd_result r = mcpgw_pmd_inflate(&pool, &peer2, &p, zs[i], slen[i], nb, &out,
                                               &olen);
        if (i < 2)
            CHECK(r == MCPGW_PMD_OK && olen == n[i] && memcmp(out, plain[i], n[i]) == 0);
        else
            CHECK(r != MCPGW_PMD_OK || olen != n[i] || memcmp(out, plain[i], n[i]) != 0);
        free(out);
    }
    /* a restart before the first message costs nothing: no stream yet */
    mcpgw_pmd_state_free(&own);
    mcpgw_pmd_state_restart(&own);
    CHECK(!own.deflater_stale && own.deflater == NULL);

    for (int i = 0; i < 3; i++) {
        free(z[i]);
        free(zs[i]);
    }
    mcpgw_pmd_state_free(&stale);
    mcpgw_pmd_state_free(&peer);
    mcpgw_pmd_state_free(&peer2);
    mcpgw_pmd_pool_free(&pool);
    free(direct);
    free(bcast);
}

/* Client side: the server's answer to MCPGW_PMD_CLIENT_OFFER (the cases
 * client/pmd.c's mcpgw_cpmd_accept handled, and more). */
TEST(test_client_accept_response)
{
    static const struct { const char *value, *why; } bad[] = {
        { "", "server selected an extension that was not offered" },
        { "x-webkit-deflate-frame", "server selected an extension that was not offered" },
        { "permessage-deflate-x", "server selected an extension that was not offered" },
        { "permessage-deflate, permessage-deflate", "server selected more than one extension" },
        { "permessage-deflate; server_no_context_takeover, foo",
          "server selected more than one extension" },
        { "permessage-deflate; foo", NULL },
        { "permessage-deflate; foo=1", NULL },
        { "permessage-deflate; server_max_window_bits=16", NULL },
        { "permessage-deflate; server_max_window_bits=7", NULL },
        { "permessage-deflate; server_max_window_bits=010", NULL },
        { "permessage-deflate; server_max_window_bits", NULL },
        { "permessage-deflate; client_max_window_bits", NULL },
        { "permessage-deflate; client_max_window_bits=1x", NULL },
        { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", NULL },
        { "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9", NULL },
        { "permessage-deflate; client_no_context_takeover=1", NULL },
        { "permessage-deflate;", NULL },
        { "permessage-deflate x", NULL },
        { "permessage-deflate; server_max_window_bits=\"9", NULL },
    };
    const char *all = "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
                      " server_max_window_bits=10; client_max_window_bits=\"12\"";
    mcpgw_pmd_params p;
    const char *why = NULL;

    CHECK_EQ_INT(mcpgw_pmd_accept_response(all, strlen(all), &p, &why), 0);
    CHECK_EQ_INT(p.enabled, 1);
    CHECK_EQ_INT(p.role, MCPGW_PMD_CLIENT);
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
    CHECK_EQ_INT(p.server_window_bits, 10);
    CHECK_EQ_INT(p.client_window_bits, 12);
    CHECK_EQ_INT(mcpgw_pmd_accept_response(" PerMessage-Deflate ", 20, &p, &why), 0);
    CHECK(p.enabled && !p.server_no_context_takeover && !p.client_no_context_takeover);
    CHECK_EQ_INT(p.server_window_bits, 15);
    CHECK_EQ_INT(p.client_window_bits, 15);
    /* the server's own answer, as core/pmd.c negotiates it */
    {
        mcpgw_pmd_params s;
        char resp[256];
        CHECK(nego(MCPGW_PMD_CLIENT_OFFER, &s, resp, sizeof(resp)));
        CHECK_EQ_INT(mcpgw_pmd_accept_response(resp, strlen(resp), &p, &why), 0);
        CHECK_EQ_INT(p.server_window_bits, s.server_window_bits);
        CHECK_EQ_INT(p.client_window_bits, s.client_window_bits);
        CHECK_EQ_INT(p.server_no_context_takeover, s.server_no_context_takeover);
        CHECK_EQ_INT(p.client_no_context_takeover, s.client_no_context_takeover);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int got = mcpgw_pmd_accept_response(bad[i].value, strlen(bad[i].value), &p, &why);
        if (got == 0)
            fprintf(stderr, "  accepted: %s\n", bad[i].value);
        CHECK_EQ_INT(got, -1);
        CHECK(!p.enabled);
        CHECK_EQ_STR(why, bad[i].why ? bad[i].why
                                     : "invalid permessage-deflate parameters from the server");
    }
}

/* Client role: it deflates with the client_* parameters and inflates with
 * the server_* ones, against a server-role peer with the same answer. */
TEST(test_client_role_round_trip)
{
    mcpgw_pmd_pool cpool, spool;
    mcpgw_pmd_state cst = { NULL, NULL, 0 }, sst = { NULL, NULL, 0 };
    mcpgw_pmd_params c, s;
    const char *why = NULL;
    const char *ans = "permessage-deflate; server_max_window_bits=9; client_max_window_bits=11";
    size_t n = 5000, zlen, olen;
    uint8_t *in = malloc(n), *z, *out, small[100];

    mcpgw_pmd_pool_init(&cpool, 6, 8);
    mcpgw_pmd_pool_init(&spool, 6, 8);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)("client role "[i % 12]);
    CHECK_EQ_INT(mcpgw_pmd_accept_response(ans, strlen(ans), &c, &why), 0);
    s = c;
    s.role = MCPGW_PMD_SERVER;
    for (int round = 0; round < 3; round++) {   /* context takeover: the windows carry on */
        /* client to server: the client's window, 11 bits */
        z = mcpgw_pmd_deflate(&cpool, &cst, &c, in, n, &zlen);
        CHECK(z != NULL && zlen < n / 10);
        CHECK(cst.deflater != NULL && cpool.deflaters[11 - 8] == NULL);
        CHECK_EQ_INT(mcpgw_pmd_inflate(&spool, &sst, &s, z, zlen, n, &out, &olen), MCPGW_PMD_OK);
        CHECK(out && olen == n && memcmp(out, in, n) == 0);
        free(out);
        free(z);
        /* server to client: the server's window, 9 bits */
        z = mcpgw_pmd_deflate(&spool, &sst, &s, in, n, &zlen);
        CHECK(z != NULL);
        CHECK_EQ_INT(mcpgw_pmd_inflate(&cpool, &cst, &c, z, zlen, n, &out, &olen), MCPGW_PMD_OK);
        CHECK(out && olen == n && memcmp(out, in, n) == 0);
        free(out);
        free(z);
    }
    /* server_no_context_takeover: the client inflates with its pool's stream */
    mcpgw_pmd_state_free(&cst);
    mcpgw_pmd_state_free(&sst);
    c.server_no_context_takeover = s.server_no_context_takeover = 1;
    z = mcpgw_pmd_deflate(&spool, NULL, &s, in, n, &zlen);
    CHECK(z != NULL);
    CHECK_EQ_INT(mcpgw_pmd_inflate(&cpool, &cst, &c, z, zlen, n, &out, &olen), MCPGW_PMD_OK);
    CHECK(cst.inflater == NULL && cpool.inflaters[9 - 8] != NULL);
    free(out);
    /* into a buffer: a prefix when it does not fit, the whole otherwise */
    CHECK_EQ_INT(mcpgw_pmd_inflate_into(&cpool, NULL, &c, z, zlen, small, sizeof(small), &olen),
                 MCPGW_PMD_TOO_BIG);
    CHECK(olen == sizeof(small) && memcmp(small, in, sizeof(small)) == 0);
    out = malloc(n + 1);
    CHECK_EQ_INT(mcpgw_pmd_inflate_into(&cpool, NULL, &c, z, zlen, out, n + 1, &olen),
                 MCPGW_PMD_OK);
    CHECK(olen == n && memcmp(out, in, n) == 0);
    CHECK_EQ_INT(mcpgw_pmd_inflate_into(&cpool, NULL, &c, (const uint8_t *)"\xff\xfe\xfd", 3,
                                        out, n + 1, &olen), MCPGW_PMD_CORRUPT);
    free(out);
    free(z);
    /* an 8-bit client window: zlib cannot deflate it, so it goes plain */
    c.client_window_bits = 8;
    CHECK(mcpgw_pmd_deflate(&cpool, NULL, &c, in, n, &zlen) == NULL);
    mcpgw_pmd_pool_free(&cpool);
    mcpgw_pmd_pool_free(&spool);
    free(in);
}

int main(void)
{
    RUN(test_default_offer);
    RUN(test_parameters_and_order);
    RUN(test_declined);
    RUN(test_round_trip_and_limits);
    RUN(test_shared_frame_between_own_messages);
    RUN(test_client_accept_response);
    RUN(test_client_role_round_trip);
    return UNIT_SUMMARY();
}
