/*
 * host_api.c - the host services table plugins receive at init (the
 * functions behind include/mcpgw/plugin.h's mcpgw_host). Each function only
 * translates the plugin's handles to the core's objects and delegates.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dispatch.h"
#include "host_api.h"
#include "log.h"
#include "plugin_loader.h"
#include "server.h"
#include "worker_board.h"

static int host_register_handler(mcpgw_plugin_ctx *ctx, const char *type,
                                 mcpgw_handler_fn fn, void *handler_data)
{
    mcpgw_server *srv;
    const mcpgw_handler_entry *taken;

    if (!ctx || !type || !*type || !fn)
        return -1;
    srv = ctx->srv;
    if (!ctx->in_init) {
        mcpgw_log_event(&srv->gw->log, MCPGW_LOG_ERROR, "plugin_register_refused",
                        json_pack("{s:s, s:s}", "plugin", ctx->section->plugin, "reason",
                                  "register_handler called outside init"),
                        mcpgw_clock_iso(&srv->clock));
        return -1;
    }
    taken = mcpgw_handler_table_find(&srv->handlers, type);
    if (taken || mcpgw_handler_table_add(&srv->handlers, type, fn, handler_data, ctx) != 0) {
        if (!ctx->register_error[0]) {
            if (taken)
                snprintf(ctx->register_error, sizeof(ctx->register_error),
                         "message type '%s' is already handled by plugin '%s' ([handler.%s])",
                         type, taken->ctx->section->plugin, taken->ctx->section->type);
            else
                snprintf(ctx->register_error, sizeof(ctx->register_error),
                         "cannot register message type '%s'", type);
        }
        return -1;
    }
    return 0;
}

static const char *host_handler_type(mcpgw_plugin_ctx *ctx)
{
    return ctx->section->type;
}

static const char *host_config_get(mcpgw_plugin_ctx *ctx, const char *key)
{
    const mcpgw_kv *kv;

    for (kv = ctx->section->options; kv; kv = kv->next)
        if (strcmp(kv->key, key) == 0)
            return kv->value;
    return NULL;
}

static int host_config_foreach(mcpgw_plugin_ctx *ctx,
                               int (*fn)(const char *key, const char *value, void *arg),
                               void *arg)
{
    const mcpgw_kv *kv;

    for (kv = ctx->section->options; kv; kv = kv->next) {
        int rc = fn(kv->key, kv->value, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static void host_log(mcpgw_plugin_ctx *ctx, int level, const char *event, json_t *fields)
{
    mcpgw_server *srv = ctx->srv;

    if (!mcpgw_log_enabled(&srv->gw->log, level)) {
        json_decref(fields);
        return;
    }
    if (!json_is_object(fields)) {
        json_decref(fields);
        fields = json_object();
    }
    json_object_set_new(fields, "plugin", json_string(ctx->section->plugin));
    mcpgw_log_event(&srv->gw->log, level, event ? event : "plugin_event", fields,
                    mcpgw_clock_iso(&srv->clock));
}

static const char *host_timestamp(mcpgw_plugin_ctx *ctx)
{
    return mcpgw_clock_iso(&ctx->srv->clock);
}

static struct event_base *host_event_base(mcpgw_plugin_ctx *ctx)
{
    return ctx->srv->base;
}

static int host_post(mcpgw_plugin_ctx *ctx, void (*fn)(void *arg), void *arg)
{
    return mcpgw_server_post(ctx->srv, fn, arg);
}

static mcpgw_conn *host_request_conn(mcpgw_request *req)
{
    return req->conn;
}

static int host_request_orphaned(mcpgw_request *req)
{
    return !mcpgw_conn_is_open(req->conn);
}

static const char *host_conn_user(mcpgw_conn *conn)
{
    return conn->user ? conn->user : "";
}

static json_t *host_conn_claims(mcpgw_conn *conn)
{
    return conn->claims;
}

static uint64_t host_conn_id(mcpgw_conn *conn)
{
    return conn->id;
}

static int host_send(mcpgw_conn *conn, json_t *msg)
{
    return mcpgw_conn_send_json(conn, msg);
}

static size_t host_broadcast(mcpgw_plugin_ctx *ctx, json_t *msg, mcpgw_conn *except)
{
    return mcpgw_server_broadcast(ctx->srv, msg, except);
}

static int host_worker(mcpgw_plugin_ctx *ctx, int *n_workers)
{
    const mcpgw_gateway *gw = ctx->srv->gw;

    if (n_workers)
        *n_workers = gw->board ? gw->board->n_workers : 1;
    return ctx->srv->worker_id;
}

static const mcpgw_host host_table = {
    .size = sizeof(mcpgw_host),
    .abi_major = MCPGW_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPGW_PLUGIN_ABI_MINOR,
    .register_handler = host_register_handler,
    .handler_type = host_handler_type,
    .config_get = host_config_get,
    .config_foreach = host_config_foreach,
    .log = host_log,
    .timestamp = host_timestamp,
    .event_base = host_event_base,
    .post = host_post,
    .request_conn = host_request_conn,
    .request_orphaned = host_request_orphaned,
    .complete = mcpgw_request_complete,
    .fail = mcpgw_request_fail,
    .dispatch = mcpgw_dispatch_sub,
    .conn_user = host_conn_user,
    .conn_claims = host_conn_claims,
    .conn_id = host_conn_id,
    .send = host_send,
    .broadcast = host_broadcast,
    .worker = host_worker,
};

const mcpgw_host *mcpgw_host_table(void)
{
    return &host_table;
}
