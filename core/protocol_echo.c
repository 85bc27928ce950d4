/*
 * protocol_echo.c - protocol = echo on an [endpoint.NAME]: every message
 * goes back as it came (text as text, binary as binary; compressed again
 * when permessage-deflate is in force), with no welcome and no JSON. Off
 * unless configured: it is for measuring the transport without the JSON
 * layer (bench/run's echo rows) and for conformance suites such as
 * Autobahn's. Auth, limits, heartbeat and the closing handshake are the
 * gateway's as on every path. See protocol.h.
 */
#include <string.h>

#include "conn.h"
#include "protocol.h"
#include "ws_frame.h"

static void echo_opened(mcpgw_conn *c)
{
    (void)c;
}

static void echo_message(mcpgw_conn *c, const uint8_t *data, size_t len, int binary)
{
    mcpgw_conn_send_message(c, binary ? MCPGW_WS_OP_BINARY : MCPGW_WS_OP_TEXT, data, len);
}

static void echo_refused(mcpgw_conn *c, const char *message, const char *error)
{
    (void)error;
    /* the inbound rate limit: say so as text, the only shape echo has */
    mcpgw_conn_send_message(c, MCPGW_WS_OP_TEXT, message, strlen(message));
}

const mcpgw_protocol mcpgw_protocol_echo = {
    .name = "echo",
    .subprotocol = NULL,
    .opened = echo_opened,
    .message = echo_message,
    .refused = echo_refused,
    .closed = NULL,
};
