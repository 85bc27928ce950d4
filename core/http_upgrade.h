/*
 * http_upgrade.h - the HTTP request head of a new connection: the plain HTTP
 * endpoints (http_api.c) or the WebSocket upgrade (see http_upgrade.c).
 */
#ifndef MCPGW_HTTP_UPGRADE_H
#define MCPGW_HTTP_UPGRADE_H

typedef struct mcpgw_conn mcpgw_conn;

/* Reads the request head from the transport's input; returns 1 when the
 * connection moved on (upgraded, answered or refused), 0 when more bytes
 * are needed. */
int mcpgw_upgrade_read_http(mcpgw_conn *c);

/* A Streamable HTTP answer is complete (mcp_http.c): with keep, the
 * connection waits for its next request (within handshake_timeout_ms; one
 * that is already buffered is read at once), else it closes. */
void mcpgw_upgrade_http_done(mcpgw_conn *c, int keep);

#endif
