/*
 * echo.c - a complete mcpgw handler plugin, built out of tree.
 *
 * {"type":"echo","id":X,"payload":P} is answered with
 * {"type":"echo_reply","id":X,"payload":P,"user":U,"timestamp":T}, where U
 * is the authenticated user. Option `prefix` (from the plugin's
 * [handler.TYPE] section) is prepended to string payloads.
 *
 * Build:   make                      (uses pkg-config mcpgw)
 * Install: make install              (into the gateway's plugin dir)
 * Enable:  add to conf.d/20-echo.ini:
 *              [handler.echo]
 *              plugin = echo
 *              prefix = echo:
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/plugin.h>

struct echo {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    const char *prefix;         /* owned by the host; valid until fini */
};

static int echo_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    struct echo *e = data;
    json_t *payload = json_object_get(msg, "payload");
    json_t *reply = json_object();

    json_object_set_new(reply, "type", json_string("echo_reply"));
    if (json_object_get(msg, "id"))
        json_object_set(reply, "id", json_object_get(msg, "id"));
    if (json_is_string(payload) && e->prefix) {
        size_t n = strlen(e->prefix) + json_string_length(payload) + 1;
        char *s = malloc(n);
        if (!s) {
            json_decref(reply);
            *out = json_string("out of memory");
            return MCPGW_HANDLER_FAILED;
        }
        snprintf(s, n, "%s%s", e->prefix, json_string_value(payload));
        json_object_set_new(reply, "payload", json_string(s));
        free(s);
    } else {
        json_object_set(reply, "payload", payload ? payload : json_null());
    }
    json_object_set_new(reply, "user",
                        json_string(e->host->conn_user(e->host->request_conn(req))));
    json_object_set_new(reply, "timestamp", json_string(e->host->timestamp(e->ctx)));
    *out = reply;               /* the gateway takes this reference */
    return MCPGW_HANDLER_DONE;
}

static int echo_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                     char *err, size_t err_len)
{
    struct echo *e = calloc(1, sizeof(*e));

    if (!e) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    e->host = host;
    e->ctx = ctx;
    e->prefix = host->config_get(ctx, "prefix");
    *instance = e;
    return host->register_handler(ctx, host->handler_type(ctx), echo_handle, e);
}

static void echo_fini(void *instance)
{
    free(instance);
}

MCPGW_PLUGIN_DEFINE("echo", "1.0.0", "echoes a payload back to its sender",
                    echo_init, echo_fini);
