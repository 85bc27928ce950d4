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
    mcpgw_pmd_params p = { 1, 1, 1, 10, 10 };
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
    mcpgw_pmd_params p = { 1, 0, 0, 10, 10 };   /* context takeover both ways */
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

int main(void)
{
    RUN(test_default_offer);
    RUN(test_parameters_and_order);
    RUN(test_declined);
    RUN(test_round_trip_and_limits);
    RUN(test_shared_frame_between_own_messages);
    return UNIT_SUMMARY();
}
