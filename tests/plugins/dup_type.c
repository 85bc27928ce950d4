/*
 * dup_type.c - a valid test plugin whose init registers the type "ping"
 * whatever section it serves. With the shipped ping plugin also configured,
 * the registration fails and the loader must refuse this plugin.
 */
#include <stdio.h>
#include <mcpgw/plugin.h>

static int dup_handler(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)req;
    (void)msg;
    (void)data;
    *out = json_pack("{s:s}", "type", "dup_type_reply");
    return MCPGW_HANDLER_DONE;
}

static int dup_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                    char *err, size_t err_len)
{
    *instance = NULL;
    if (host->register_handler(ctx, "ping", dup_handler, NULL) != 0) {
        snprintf(err, err_len, "message type \"ping\" is already handled");
        return -1;
    }
    return 0;
}

MCPGW_PLUGIN_DEFINE("dup_type", "0.0.1", "test: registers ping regardless of its section",
                    dup_init, NULL);
