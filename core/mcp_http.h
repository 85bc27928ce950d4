/*
 * mcp_http.h - MCP Streamable HTTP on a jsonrpc [endpoint.NAME]: POST a
 * JSON-RPC message or batch, GET an SSE stream of what the server says on
 * its own, DELETE to end a session; the same paths also upgrade to
 * WebSocket (http_upgrade.c).
 *
 * A session (Mcp-Session-Id, issued at initialize) is what the endpoint's
 * connection-level plugin sees as one connection: a "session conn" (an
 * mcpgw_conn without a transport, conn.h) that lives from initialize to
 * DELETE, the idle timeout, the plugin's close or shutdown, whatever TCP
 * connections come and go meanwhile. What the plugin sends on it is routed
 * here: a response to the POST stream that carries its request, a progress
 * notification to the stream that asked for it, anything else to the GET
 * stream. Each SSE stream numbers its events and keeps the latest
 * (replay_bytes) so that a client whose stream dropped resumes it with
 * Last-Event-ID without losing a result.
 *
 * Ownership: the server's list owns its sessions; a session owns its
 * streams and its session conn. A TCP connection points at the stream it
 * is writing (c->mcp_stream) and the stream back at it; either side going
 * first unlinks both.
 */
#ifndef MCPGW_MCP_HTTP_H
#define MCPGW_MCP_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mcpgw_conn mcpgw_conn;
typedef struct mcpgw_server mcpgw_server;
typedef struct mcpgw_plugin_ctx mcpgw_plugin_ctx;
typedef struct mcpgw_mcp_session mcpgw_mcp_session;
typedef struct mcpgw_mcp_stream mcpgw_mcp_stream;
struct mcpgw_http_request;
struct mcpgw_handler_config;

/* Is this request for Streamable HTTP (ep is a jsonrpc endpoint with http
 * on, and the request is not a WebSocket upgrade)? */
int mcpgw_mcp_http_wants(const struct mcpgw_http_request *req,
                         const struct mcpgw_handler_config *ep);

/* With several workers: the worker that holds the session this request
 * names, when it is another one (the connection goes there: bus.h), else -1. */
int mcpgw_mcp_http_owner(const mcpgw_conn *c, const struct mcpgw_http_request *req);

/* How many body bytes the request announces: 0 and the body's length in
 * *len, or an HTTP status to refuse it with (411, 413, 400). */
int mcpgw_mcp_http_body(const mcpgw_conn *c, const struct mcpgw_http_request *req, size_t *len);

/* Answers one request (its body[0..body_len) complete). Either the answer
 * is complete when this returns (the connection is idle again, or
 * draining), or c->mcp_stream is set and the connection is busy until that
 * stream ends. req and body are valid only during the call. Returns 1 when
 * nothing was answered because the cluster decides on the user's limit
 * first: the request stays buffered and is read again with the verdict. */
int mcpgw_mcp_http_request(mcpgw_conn *c, const struct mcpgw_http_request *req,
                            const struct mcpgw_handler_config *ep, const char *body,
                            size_t body_len);

/* The heartbeat: an SSE comment on a stream being written, so that proxies
 * in between do not take a quiet stream for a dead one. */
void mcpgw_mcp_http_keepalive(mcpgw_conn *c);
/* The token of the request that opened the stream c writes has ended: the
 * stream ends (the client resumes it with a fresh token). */
void mcpgw_mcp_http_expire(mcpgw_conn *c);

/* A TCP connection that was writing a stream is going (conn.c). */
void mcpgw_mcp_http_conn_gone(mcpgw_conn *c);

/* The plugin's side of a session conn (ws_session.c, host_api.c). */
int mcpgw_mcp_session_emit(mcpgw_conn *vc, const char *text, size_t len);
void mcpgw_mcp_session_close(mcpgw_conn *vc, unsigned code, const char *reason);
size_t mcpgw_mcp_session_queued(const mcpgw_conn *vc);

/* The admin API: this worker's sessions one by one (their session conns:
 * NULL after the last; after: the previous one or NULL), and ending the
 * one with connection id `id`, or all of `user`'s. Returns how many ended. */
mcpgw_conn *mcpgw_mcp_http_next(mcpgw_server *srv, mcpgw_conn *after);
size_t mcpgw_mcp_http_end(mcpgw_server *srv, uint64_t id, const char *user);

/* Ends every session (shutdown; their streams' answers are completed). */
void mcpgw_mcp_http_shutdown(mcpgw_server *srv);
/* The plugin serving ctx is going: its sessions end now. */
void mcpgw_mcp_http_detach(mcpgw_server *srv, mcpgw_plugin_ctx *ctx);

#endif
