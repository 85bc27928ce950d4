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
    mcpgw_pmd_state st = { NULL, NULL };
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

int main(void)
{
    RUN(test_default_offer);
    RUN(test_parameters_and_order);
    RUN(test_declined);
    RUN(test_round_trip_and_limits);
    return UNIT_SUMMARY();
}
