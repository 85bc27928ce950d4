/*
 * bad_abi.c - a test plugin built for an ABI major the gateway does not
 * speak (99). The loader must refuse it. The descriptor is written by hand
 * instead of with MCPGW_PLUGIN_DEFINE so the major can be wrong.
 */
#include <mcpgw/plugin.h>

static int bad_abi_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                        char *err, size_t err_len)
{
    (void)host;
    (void)ctx;
    (void)instance;
    (void)err;
    (void)err_len;
    /* Never reached: the loader must check the ABI before calling init. */
    return 0;
}

MCPGW_PLUGIN_EXPORT const mcpgw_plugin mcpgw_plugin_descriptor = {
    .abi_major = 99,
    .abi_minor = 0,
    .size = sizeof(mcpgw_plugin),
    .name = "bad_abi",
    .version = "0.0.1",
    .description = "test: wrong ABI major",
    .init = bad_abi_init,
    .fini = NULL,
};
