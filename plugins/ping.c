/*
 * ping.c - the `ping` handler plugin: answers {"type":"ping","id":X} with
 * {"type":"pong","id":X,"timestamp":...} (the reference protocol).
 *
 * Options ([handler.TYPE] section): reply_type (default "pong").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/plugin.h>

typedef struct ping_instance {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    json_t *reply_type;     /* made (and UTF-8 checked) once, shared by every reply */
} ping_instance;

static int ping_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    ping_instance *pi = data;
    json_t *id = json_object_get(msg, "id");
    json_t *reply = json_object();

    (void)req;
    if (!reply)
        return MCPGW_HANDLER_FAILED;
    /* the keys are ASCII literals and the timestamp is ASCII: no checks */
    json_object_set_nocheck(reply, "type", pi->reply_type);
    if (id)
        json_object_set_nocheck(reply, "id", id);
    json_object_set_new_nocheck(reply, "timestamp",
                                json_string_nocheck(pi->host->timestamp(pi->ctx)));
    *out = reply;
    return MCPGW_HANDLER_DONE;
}

static int ping_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                     char *err, size_t err_len)
{
    ping_instance *pi = calloc(1, sizeof(*pi));
    const char *rt = host->config_get(ctx, "reply_type");

    if (!pi || !(pi->reply_type = json_string(rt ? rt : "pong"))) {
        snprintf(err, err_len, pi ? "reply_type is not valid UTF-8" : "out of memory");
        free(pi);
        return -1;
    }
    pi->host = host;
    pi->ctx = ctx;
    if (host->register_handler(ctx, host->handler_type(ctx), ping_handle, pi) != 0) {
        snprintf(err, err_len, "cannot register type '%s'", host->handler_type(ctx));
        json_decref(pi->reply_type);
        free(pi);
        return -1;
    }
    *instance = pi;
    return 0;
}

static void ping_fini(void *instance)
{
    ping_instance *pi = instance;

    if (pi)
        json_decref(pi->reply_type);
    free(pi);
}

static const char *const ping_keys[] = { "reply_type", NULL };

MCPGW_PLUGIN_DEFINE_KEYS("ping", "1.1.0", "answers ping with pong", ping_init, ping_fini, NULL,
                         ping_keys);
