/*
 * protocol.c - the gateway protocol on an upgraded connection: the welcome
 * message, the shape of a refusal, and handing each message to dispatch
 * (which routes it by `type`). See protocol.h.
 */
#include <jansson.h>

#include "conn.h"
#include "dispatch.h"
#include "protocol.h"
#include "server.h"

static void gateway_opened(mcpgw_conn *c)
{
    json_t *welcome = json_pack("{s:s, s:s, s:s}", "type", "connection_established", "message",
                                "Connected to MCP Server", "timestamp",
                                mcpgw_clock_iso(&c->srv->clock));

    if (welcome)
        mcpgw_conn_send_json(c, welcome);
    json_decref(welcome);
}

static void gateway_message(mcpgw_conn *c, const uint8_t *data, size_t len, int binary)
{
    (void)binary;       /* binary JSON is accepted as the reference server does */
    mcpgw_dispatch_raw(c, data, len);
}

static void gateway_refused(mcpgw_conn *c, const char *message, const char *error)
{
    json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "message", message, "error",
                            error, "timestamp", mcpgw_clock_iso(&c->srv->clock));

    if (err)
        mcpgw_conn_send_json(c, err);
    json_decref(err);
}

const mcpgw_protocol mcpgw_protocol_gateway = {
    .name = "mcpgw",
    .subprotocol = "mcpgw",
    .opened = gateway_opened,
    .message = gateway_message,
    .refused = gateway_refused,
};
