/*
 * protocol.h - what a WebSocket session speaks on top of its frames.
 *
 * The session (ws_session.c) knows frames, messages and the closing
 * handshake; a protocol knows what a message means: the gateway protocol
 * (`{"type": ...}` messages routed to handlers, protocol.c) is the one
 * today. A protocol never touches the transport: it answers through
 * mcpgw_conn_send_json() and friends.
 *
 * Ownership: protocols are static tables; a connection points at one from
 * its upgrade on.
 */
#ifndef MCPGW_PROTOCOL_H
#define MCPGW_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct mcpgw_conn mcpgw_conn;

typedef struct mcpgw_protocol {
    const char *name;
    /* Answered in Sec-WebSocket-Protocol when the client offers it; NULL:
     * none. */
    const char *subprotocol;
    /* The upgrade is done (the 101 is queued): e.g. a welcome message. */
    void (*opened)(mcpgw_conn *c);
    /* One complete, valid (UTF-8 checked when text) message; binary: it
     * came as a binary message. c may be closed or gone when it returns. */
    void (*message)(mcpgw_conn *c, const uint8_t *data, size_t len, int binary);
    /* A message was refused by the inbound rate limit (the connection stays
     * open): tell the client, in this protocol's shape. */
    void (*refused)(mcpgw_conn *c, const char *message, const char *error);
    /* Optional: the session has ended (code: the client's close code, or
     * 1006 without one); runs once, before the connection is released. */
    void (*closed)(mcpgw_conn *c, unsigned code);
} mcpgw_protocol;

/* The gateway protocol: a welcome message, `{"type"}` routing through the
 * handler table, and `{"type":"error"}` answers. */
extern const mcpgw_protocol mcpgw_protocol_gateway;

/* {"type":"auth","token":T[,"id":X]}: a fresher token for the same user,
 * verified like a handshake's; the connection then lives until its end.
 * Answers {"type":"auth_ok","exp":N[,"id":X],"timestamp"} or a
 * {"type":"error","message":"Authentication failed",...}; a failed refresh
 * leaves the connection as it was. */
struct json_t;
void mcpgw_protocol_refresh(mcpgw_conn *c, struct json_t *msg);

/* JSON-RPC 2.0 on an [endpoint.NAME] with protocol jsonrpc: no welcome;
 * objects and batch arrays go whole to the endpoint's connection-level
 * plugin; malformed messages get JSON-RPC errors (protocol_jsonrpc.c). */
extern const mcpgw_protocol mcpgw_protocol_jsonrpc;

/* Hands a checked JSON-RPC message or batch (msg borrowed, text[0..len) its
 * bytes) to the connection's endpoint plugin (Streamable HTTP's way in). */
void mcpgw_jsonrpc_deliver(mcpgw_conn *c, struct json_t *msg, const char *text, size_t len);

/* Echo on an [endpoint.NAME] with protocol echo: each message back with its
 * opcode, no welcome, no JSON (benchmarks and conformance suites). */
extern const mcpgw_protocol mcpgw_protocol_echo;

/* The plugin serving ctx's endpoint is going (a reload removed the section):
 * each of its connections gets its conn_close now and is closed 1001. */
typedef struct mcpgw_server mcpgw_server;
typedef struct mcpgw_plugin_ctx mcpgw_plugin_ctx;
void mcpgw_jsonrpc_detach(mcpgw_server *srv, mcpgw_plugin_ctx *ctx);

#endif
