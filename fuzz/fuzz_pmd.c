/*
 * fuzz_pmd.c - libFuzzer target for permessage-deflate (core/pmd.c):
 * the Sec-WebSocket-Extensions offer parser (mcpgw_pmd_negotiate) and the
 * message inflater, with a deflate/inflate round trip.
 *
 * The first byte chooses the mode, the second the settings (window bits,
 * context takeover); the rest is the payload P.
 *   mode 0  P is an extension header value; negotiate under a config made
 *           from the settings byte. On acceptance the response value is
 *           NUL-terminated inside the buffer, starts with
 *           "permessage-deflate" and the parameters are in range; a tiny
 *           response buffer never overflows. The client's check of the
 *           answer (mcpgw_pmd_accept_response) accepts that response with
 *           the same parameters, and on P itself gives 0 with parameters
 *           in range or -1 with a reason.
 *   mode 1  P is a compressed message; inflate with a 64 KiB limit: a
 *           result code, and on OK at most the limit. The client role's
 *           inflate into a buffer agrees with it.
 *   mode 2  P is a message; deflate then inflate must give P back.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "pmd.h"

static mcpgw_pmd_pool pool;
static int pool_ready;

static mcpgw_pmd_params params_from(uint8_t s)
{
    mcpgw_pmd_params p;

    memset(&p, 0, sizeof(p));
    p.enabled = 1;
    p.server_no_context_takeover = 1;
    p.client_no_context_takeover = 1;
    p.server_window_bits = 9 + (s & 7) % 7;         /* 9..15 */
    p.client_window_bits = 8 + ((s >> 3) & 7);      /* 8..15 */
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t mode, s;
    const uint8_t *p;
    size_t n;

    if (size < 2)
        return 0;
    if (!pool_ready) {
        mcpgw_pmd_pool_init(&pool, 6, 8);
        pool_ready = 1;
    }
    mode = data[0] % 3;
    s = data[1];
    p = data + 2;
    n = size - 2;

    if (mode == 0) {
        mcpgw_pmd_config cfg;
        mcpgw_pmd_params out;
        char *value = malloc(n ? n : 1);
        char resp[256], tiny[8];
        int r;

        FUZZ_ASSERT(value);
        memcpy(value, p, n);
        memset(&cfg, 0, sizeof(cfg));
        cfg.enabled = 1;
        cfg.level = 6;
        cfg.mem_level = 8;
        cfg.threshold = 1024;
        cfg.server_max_window_bits = 9 + (s & 7) % 7;
        cfg.client_max_window_bits = 8 + ((s >> 3) & 7);
        cfg.server_no_context_takeover = (s >> 6) & 1;
        cfg.client_no_context_takeover = (s >> 7) & 1;
        memset(resp, 'x', sizeof(resp));
        r = mcpgw_pmd_negotiate(&cfg, value, n, &out, resp, sizeof(resp));
        FUZZ_ASSERT(r == 0 || r == 1);
        if (r == 1) {
            FUZZ_ASSERT(memchr(resp, '\0', sizeof(resp)) != NULL);
            FUZZ_ASSERT(strncmp(resp, "permessage-deflate", 18) == 0);
            FUZZ_ASSERT(out.enabled);
            FUZZ_ASSERT(out.server_window_bits >= 8 && out.server_window_bits <= 15);
            FUZZ_ASSERT(out.client_window_bits >= 8 && out.client_window_bits <= 15);
            {
                mcpgw_pmd_params cli;
                const char *why = NULL;
                FUZZ_ASSERT(mcpgw_pmd_accept_response(resp, strlen(resp), &cli, &why) == 0);
                FUZZ_ASSERT(cli.enabled && cli.role == MCPGW_PMD_CLIENT);
                FUZZ_ASSERT(cli.server_window_bits == out.server_window_bits);
                FUZZ_ASSERT(cli.client_window_bits == out.client_window_bits);
                FUZZ_ASSERT(cli.server_no_context_takeover == out.server_no_context_takeover);
                FUZZ_ASSERT(cli.client_no_context_takeover == out.client_no_context_takeover);
            }
        }
        {
            mcpgw_pmd_params cli;
            const char *why = NULL;
            r = mcpgw_pmd_accept_response(value, n, &cli, &why);
            FUZZ_ASSERT(r == 0 || r == -1);
            if (r == 0)
                FUZZ_ASSERT(cli.enabled && cli.server_window_bits >= 8 &&
                            cli.server_window_bits <= 15 && cli.client_window_bits >= 8 &&
                            cli.client_window_bits <= 15);
            else
                FUZZ_ASSERT(!cli.enabled && why && *why);
        }
        memset(tiny, 'x', sizeof(tiny));
        (void)mcpgw_pmd_negotiate(&cfg, value, n, &out, tiny, sizeof(tiny));
        free(value);
    } else if (mode == 1) {
        mcpgw_pmd_params prm = params_from(s);
        uint8_t *out = NULL;
        size_t out_len = 0;
        mcpgw_pmd_result r = mcpgw_pmd_inflate(&pool, NULL, &prm, p, n, 65536, &out, &out_len);

        FUZZ_ASSERT(r == MCPGW_PMD_OK || r == MCPGW_PMD_TOO_BIG || r == MCPGW_PMD_CORRUPT ||
                    r == MCPGW_PMD_NOMEM);
        if (r == MCPGW_PMD_OK)
            FUZZ_ASSERT(out_len <= 65536);
        {
            /* the same stream read by a client: the server's window is prm's client one */
            static uint8_t buf[65537];
            mcpgw_pmd_params cli = prm;
            size_t blen = 0;
            mcpgw_pmd_result r2;

            cli.role = MCPGW_PMD_CLIENT;
            cli.server_window_bits = prm.client_window_bits;
            r2 = mcpgw_pmd_inflate_into(&pool, NULL, &cli, p, n, buf, sizeof(buf), &blen);
            FUZZ_ASSERT(blen <= sizeof(buf));
            if (r == MCPGW_PMD_OK)
                FUZZ_ASSERT(r2 == MCPGW_PMD_OK && blen == out_len &&
                            (out_len == 0 || memcmp(buf, out, out_len) == 0));
            if (r2 == MCPGW_PMD_OK && blen <= 65536)
                FUZZ_ASSERT(r == MCPGW_PMD_OK);
        }
        free(out);
    } else {
        mcpgw_pmd_params prm = params_from(s);
        uint8_t *z, *back = NULL;
        size_t zlen = 0, back_len = 0;

        /* What we send is inflated by a client with our window: use ours
         * for both directions here. */
        prm.client_window_bits = prm.server_window_bits;
        z = mcpgw_pmd_deflate(&pool, NULL, &prm, p, n, &zlen);
        FUZZ_ASSERT(z);
        FUZZ_ASSERT(mcpgw_pmd_inflate(&pool, NULL, &prm, z, zlen, n + 1, &back, &back_len) ==
                    MCPGW_PMD_OK);
        FUZZ_ASSERT(back_len == n && (n == 0 || memcmp(back, p, n) == 0));
        free(back);
        free(z);
    }
    return 0;
}
