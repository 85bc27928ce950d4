/*
 * agent_status.c - the `agent_status` handler plugin: an agent reports
 * {"type":"agent_status","id":X,"agentId":A,"status":S}; every open
 * connection receives {"type":"agent_status_update","agentId":A,"status":S,
 * "timestamp":...} (serialised once for all of them by the host), and the
 * sender gets {"type":"agent_status_ack","id":X,"agentId":A,"timestamp":...}.
 *
 * Options: include_sender (default true: the sender also gets the update,
 * as in the reference protocol).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/plugin.h>

typedef struct agent_status_instance {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    int include_sender;
} agent_status_instance;

static int usable(const json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return v && !json_is_null(v);
}

static int agent_status_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    agent_status_instance *ai = data;
    const mcpgw_host *host = ai->host;
    json_t *agent = json_object_get(msg, "agentId");
    json_t *status = json_object_get(msg, "status");
    json_t *id = json_object_get(msg, "id");
    json_t *update, *ack;
    const char *ts = host->timestamp(ai->ctx);
    mcpgw_conn *sender = host->request_conn(req);

    if (!usable(agent) || !usable(status)) {
        *out = json_string("agent_status requires agentId and status");
        return MCPGW_HANDLER_FAILED;
    }
    if (!json_is_string(agent) && !json_is_integer(agent)) {
        *out = json_string("agentId must be a string or an integer");
        return MCPGW_HANDLER_FAILED;
    }

    update = json_object();
    json_object_set_new(update, "type", json_string("agent_status_update"));
    json_object_set(update, "agentId", agent);
    json_object_set(update, "status", status);
    json_object_set_new(update, "timestamp", json_string(ts));
    host->broadcast(ai->ctx, update, ai->include_sender ? NULL : sender);
    json_decref(update);

    ack = json_object();
    json_object_set_new(ack, "type", json_string("agent_status_ack"));
    if (id)
        json_object_set(ack, "id", id);
    json_object_set(ack, "agentId", agent);
    json_object_set_new(ack, "timestamp", json_string(ts));
    *out = ack;
    return MCPGW_HANDLER_DONE;
}

static int agent_status_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                             char *err, size_t err_len)
{
    agent_status_instance *ai = calloc(1, sizeof(*ai));
    const char *inc = host->config_get(ctx, "include_sender");

    if (!ai) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    ai->host = host;
    ai->ctx = ctx;
    ai->include_sender = 1;
    if (inc) {
        if (!strcmp(inc, "true") || !strcmp(inc, "yes") || !strcmp(inc, "1"))
            ai->include_sender = 1;
        else if (!strcmp(inc, "false") || !strcmp(inc, "no") || !strcmp(inc, "0"))
            ai->include_sender = 0;
        else {
            snprintf(err, err_len, "include_sender must be true or false, not '%s'", inc);
            free(ai);       /* fini() only runs after a successful init() */
            return -1;
        }
    }
    if (host->register_handler(ctx, host->handler_type(ctx), agent_status_handle, ai) != 0) {
        snprintf(err, err_len, "cannot register type '%s'", host->handler_type(ctx));
        free(ai);
        return -1;
    }
    *instance = ai;
    return 0;
}

static void agent_status_fini(void *instance)
{
    free(instance);
}

MCPGW_PLUGIN_DEFINE("agent_status", "1.0.0",
                    "broadcasts agent status updates to every connection",
                    agent_status_init, agent_status_fini);
