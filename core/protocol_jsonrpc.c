/*
 * protocol_jsonrpc.c - JSON-RPC 2.0 on an [endpoint.NAME] (protocol =
 * jsonrpc): what MCP clients speak over WebSocket. The connection-level
 * plugin of the endpoint sees the connection open and close and gets each
 * message whole; this file only checks the outer shape (a JSON object or a
 * non-empty array, in a text message) and answers what fails it with the
 * JSON-RPC error objects, so a plugin never sees a parse error. See
 * protocol.h and plugin.h (CONNECTION-LEVEL PLUGINS).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "conn.h"
#include "config.h"
#include "json_read.h"
#include "mcp_http.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "protocol.h"
#include "server.h"
#include "worker_board.h"
#include "ws_frame.h"

/* JSON-RPC 2.0 section 5.1 */
#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
/* server-defined (-32000 .. -32099) */
#define JSONRPC_RATE_LIMITED -32000

static void send_error(mcpgw_conn *c, int code, const char *message, const char *detail)
{
    char buf[512];
    json_t *msg = json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code",
                            code, "message", message);

    if (!msg)
        return;
    if (detail) {
        snprintf(buf, sizeof(buf), "%s", detail);
        json_object_set_new(json_object_get(msg, "error"), "data", json_string(buf));
    }
    mcpgw_conn_send_json(c, msg);
    json_decref(msg);
}

static const mcpgw_plugin *plugin_of(const mcpgw_conn *c)
{
    return c->ep_ctx ? c->ep_ctx->module->desc : NULL;
}

static void jsonrpc_opened(mcpgw_conn *c)
{
    const mcpgw_plugin *d = plugin_of(c);
    void *data = NULL;

    if (!d) {
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_INTERNAL, "Endpoint unavailable");
        return;
    }
    const char *outer = mcpgw_watch_enter_now(c->endpoint->type);
    int rc = d->conn_open(c->ep_ctx->instance, c, &data);

    mcpgw_watch_leave(outer);
    if (rc == 0) {
        mcpgw_endpoint_stats *e = mcpgw_stats_endpoint(c->srv->stats, c->endpoint->type);
        if (e) {
            e->sessions++;
            e->sessions_open++;
        }
        c->ep_data = data;
        c->ep_opened = 1;
        /* the plugin may have closed it already: conn_close still comes */
        return;
    }
    if (mcpgw_conn_is_open(c))
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_INTERNAL, "Endpoint unavailable");
}

static void jsonrpc_message(mcpgw_conn *c, const uint8_t *data, size_t len, int binary)
{
    const mcpgw_plugin *d = plugin_of(c);
    mcpgw_json_read_error jerr;
    const char *outer;
    json_t *msg;

    if (binary) {
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_UNSUPPORTED, "JSON-RPC messages are text");
        return;
    }
    if (!c->ep_opened || !d)
        return;
    msg = mcpgw_json_read((const char *)data, len, &jerr);
    if (!msg) {
        send_error(c, JSONRPC_PARSE_ERROR, "Parse error", jerr.text);
        return;
    }
    if (!json_is_object(msg) && !(json_is_array(msg) && json_array_size(msg) > 0)) {
        send_error(c, JSONRPC_INVALID_REQUEST, "Invalid Request",
                   json_is_array(msg) ? "empty batch" : "a request is a JSON object or a batch array");
        json_decref(msg);
        return;
    }
    outer = mcpgw_watch_enter_now(c->endpoint->type);
    d->conn_message(c->ep_ctx->instance, c, c->ep_data, msg, (const char *)data, len);
    mcpgw_watch_leave(outer);
    json_decref(msg);
}

void mcpgw_jsonrpc_deliver(mcpgw_conn *c, json_t *msg, const char *text, size_t len)
{
    const mcpgw_plugin *d = plugin_of(c);
    const char *outer;

    if (!c->ep_opened || !d)
        return;
    outer = mcpgw_watch_enter_now(c->endpoint->type);
    d->conn_message(c->ep_ctx->instance, c, c->ep_data, msg, text, len);
    mcpgw_watch_leave(outer);
}

static void jsonrpc_refused(mcpgw_conn *c, const char *message, const char *error)
{
    send_error(c, JSONRPC_RATE_LIMITED, message, error);
}

static void jsonrpc_closed(mcpgw_conn *c, unsigned code)
{
    const mcpgw_plugin *d = plugin_of(c);
    mcpgw_endpoint_stats *e;
    const char *outer;

    if (!c->ep_opened || !d)
        return;
    c->ep_opened = 0;
    if ((e = mcpgw_stats_endpoint(c->srv->stats, c->endpoint->type)) && e->sessions_open)
        e->sessions_open--;
    outer = mcpgw_watch_enter_now(c->endpoint->type);
    d->conn_close(c->ep_ctx->instance, c, c->ep_data, (int)code);
    mcpgw_watch_leave(outer);
    c->ep_data = NULL;
}

void mcpgw_jsonrpc_detach(mcpgw_server *srv, mcpgw_plugin_ctx *ctx)
{
    for (mcpgw_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->ep_ctx != ctx)
            continue;
        jsonrpc_closed(c, MCPGW_WS_CLOSE_GOING_AWAY);
        c->ep_ctx = NULL;
        if (mcpgw_conn_is_open(c))
            mcpgw_conn_close(c, MCPGW_WS_CLOSE_GOING_AWAY, "Endpoint removed");
    }
    mcpgw_mcp_http_detach(srv, ctx);
}

const mcpgw_protocol mcpgw_protocol_jsonrpc = {
    .name = "jsonrpc",
    .subprotocol = "mcp",
    .opened = jsonrpc_opened,
    .message = jsonrpc_message,
    .refused = jsonrpc_refused,
    .closed = jsonrpc_closed,
};
