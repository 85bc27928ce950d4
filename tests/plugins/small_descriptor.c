/*
 * small_descriptor.c - a test plugin whose descriptor claims a size (8
 * bytes) smaller than the 1.0 layout. The loader must refuse it without
 * reading the members past that size.
 */
#include <mcpgw/plugin.h>

static int small_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                      char *err, size_t err_len)
{
    (void)instance;
    (void)err;
    (void)err_len;
    (void)host;
    (void)ctx;
    return 0;
}

MCPGW_PLUGIN_EXPORT const mcpgw_plugin mcpgw_plugin_descriptor = {
    .abi_major = MCPGW_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPGW_PLUGIN_ABI_MINOR,
    .size = 8,
    .name = "small_descriptor",
    .version = "0.0.1",
    .description = "test: descriptor size below the 1.0 layout",
    .init = small_init,
    .fini = NULL,
};
