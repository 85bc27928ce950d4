/*
 * ping.c - the `ping` handler plugin: answers {"type":"ping","id":X} with
 * {"type":"pong","id":X,"timestamp":...} (the reference protocol).
 *
 * Two handlers of the same answer: ping_raw (ABI 1.4, no JSON tree: a
 * gateway that has it calls it for every top-level ping) and ping_handle
 * (the tree: pings inside a batch, and gateways older than 1.4).
 *
 * Options ([handler.TYPE] section): reply_type (default "pong").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/plugin.h>

/* a string literal and its length, for buf_append */
#define LIT(s) (s), sizeof(s) - 1

typedef struct ping_instance {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    json_t *reply_type;     /* made (and UTF-8 checked) once, shared by every reply */
    mcpgw_buf head;         /* {"type":REPLY_TYPE (the raw reply's start), made once */
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

/* The same reply written as text: {"type":T,"id":X,"timestamp":S}, X as
 * the gateway would write the tree's id (buf_member), so the bytes are
 * ping_handle's. */
static int ping_raw(mcpgw_request *req, mcpgw_view *msg, mcpgw_buf *reply, void *data)
{
    ping_instance *pi = data;
    const mcpgw_host *host = pi->host;
    const char *ts = host->timestamp(pi->ctx);
    mcpgw_member id;

    (void)req;
    if (host->buf_append(reply, pi->head.data, pi->head.len) != 0)
        return MCPGW_HANDLER_DECLINED;
    if (host->view_get(msg, "id", &id) != MCPGW_JSON_ABSENT &&
        (host->buf_append(reply, LIT(",\"id\":")) != 0 || host->buf_member(reply, &id) != 0))
        return MCPGW_HANDLER_DECLINED;
    /* the timestamp is ASCII without anything to escape */
    if (host->buf_append(reply, LIT(",\"timestamp\":\"")) != 0 ||
        host->buf_append(reply, ts, strlen(ts)) != 0 || host->buf_append(reply, LIT("\"}")) != 0)
        return MCPGW_HANDLER_DECLINED;
    return MCPGW_HANDLER_DONE;
}

/* Makes the raw reply's head and registers ping_raw, on a gateway with ABI
 * 1.4 (an older one, or a failure here, leaves ping_handle alone). */
static void ping_init_raw(ping_instance *pi)
{
    const mcpgw_host *host = pi->host;
    const char *rt = json_string_value(pi->reply_type);

    if (!MCPGW_HOST_HAS(host, broadcast_text))
        return;
    if (host->buf_append(&pi->head, LIT("{\"type\":")) != 0 ||
        host->buf_string(&pi->head, rt, json_string_length(pi->reply_type)) != 0 ||
        host->register_raw_handler(pi->ctx, host->handler_type(pi->ctx), ping_raw, pi) != 0)
        host->buf_free(&pi->head);
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
    ping_init_raw(pi);
    *instance = pi;
    return 0;
}

static void ping_fini(void *instance)
{
    ping_instance *pi = instance;

    if (pi) {
        json_decref(pi->reply_type);
        if (pi->head.data)
            pi->host->buf_free(&pi->head);
    }
    free(pi);
}

static const char *const ping_keys[] = { "reply_type", NULL };

MCPGW_PLUGIN_DEFINE_KEYS("ping", "1.1.0", "answers ping with pong", ping_init, ping_fini, NULL,
                         ping_keys);
