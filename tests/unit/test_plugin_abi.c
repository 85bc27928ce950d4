/*
 * test_plugin_abi.c - unit tests for core/plugin_abi.c: the descriptor
 * check the gateway's loader and the mock host share, and the claim rule
 * of require_claim, handler claims and the host's claim_matches.
 */
#include "plugin_abi.h"
#include "unit.h"

#include <jansson.h>
#include <string.h>

static int fake_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                     char *err, size_t err_len)
{
    (void)host;
    (void)ctx;
    (void)instance;
    (void)err;
    (void)err_len;
    return 0;
}

static mcpgw_plugin good(void)
{
    mcpgw_plugin d;

    memset(&d, 0, sizeof(d));
    d.abi_major = MCPGW_PLUGIN_ABI_MAJOR;
    d.abi_minor = MCPGW_PLUGIN_ABI_MINOR;
    d.size = sizeof(d);
    d.name = "t";
    d.version = "1";
    d.init = fake_init;
    return d;
}

TEST(descriptor_check)
{
    char buf[200];
    const char *why;
    mcpgw_plugin d = good();

    CHECK(mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf)) == NULL);
    d.abi_minor = 0;                            /* older minors load */
    d.size = MCPGW_PLUGIN_SIZE_1_0;
    CHECK(mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf)) == NULL);

    d = good();
    d.abi_major = MCPGW_PLUGIN_ABI_MAJOR + 1;
    why = mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf));
    CHECK(why && strstr(why, "rebuild the plugin"));
    d = good();
    d.abi_minor = MCPGW_PLUGIN_ABI_MINOR + 1;
    why = mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf));
    CHECK(why && strstr(why, "upgrade mcpgw"));
    d = good();
    d.size = MCPGW_PLUGIN_SIZE_1_0 - 1;
    why = mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf));
    CHECK(why && strstr(why, "smaller than the ABI 1.0 descriptor"));
    d = good();
    d.version = NULL;
    why = mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf));
    CHECK(why && strstr(why, "no name or version"));
    d = good();
    d.init = NULL;
    why = mcpgw_plugin_check_descriptor(&d, buf, sizeof(buf));
    CHECK(why && strstr(why, "no init function"));
}

TEST(claim_rule)
{
    json_t *c = json_pack("{s:s, s:I, s:b, s:[s, i, b], s:n, s:{s:s}, s:f}", "role", "admin",
                          "level", (json_int_t)3, "ok", 1, "groups", "ops", 7, 0, "nothing",
                          "obj", "role", "admin", "ratio", 0.5);

    CHECK(c != NULL);
    CHECK(mcpgw_claims_match(c, "role", "admin"));
    CHECK(!mcpgw_claims_match(c, "role", "Admin"));
    CHECK(!mcpgw_claims_match(c, "role", "admi"));
    CHECK(mcpgw_claims_match(c, "level", "3"));
    CHECK(!mcpgw_claims_match(c, "level", "03"));
    CHECK(mcpgw_claims_match(c, "ok", "true"));
    CHECK(!mcpgw_claims_match(c, "ok", "false"));
    CHECK(mcpgw_claims_match(c, "groups", "ops"));
    CHECK(mcpgw_claims_match(c, "groups", "7"));
    CHECK(mcpgw_claims_match(c, "groups", "false"));
    CHECK(!mcpgw_claims_match(c, "groups", "dev"));
    /* null, objects and reals never match; nor does a missing claim */
    CHECK(!mcpgw_claims_match(c, "nothing", "null"));
    CHECK(!mcpgw_claims_match(c, "obj", "admin"));
    CHECK(!mcpgw_claims_match(c, "ratio", "0.5"));
    CHECK(!mcpgw_claims_match(c, "absent", "x"));
    CHECK(!mcpgw_claims_match(NULL, "role", "admin"));
    CHECK(!mcpgw_claims_match(c, NULL, "admin"));
    CHECK(!mcpgw_claims_match(c, "role", NULL));
    json_decref(c);
}

int main(void)
{
    RUN(descriptor_check);
    RUN(claim_rule);
    return UNIT_SUMMARY();
}
