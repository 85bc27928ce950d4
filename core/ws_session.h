/*
 * ws_session.h - the WebSocket session of an upgraded connection (see
 * ws_session.c). Sending, closing and the heartbeat ping are declared in
 * conn.h, where the rest of the gateway finds them.
 */
#ifndef MCPGW_WS_SESSION_H
#define MCPGW_WS_SESSION_H

typedef struct mcpgw_conn mcpgw_conn;

/* The upgrade succeeded: the connection is OPEN, counted, alive for the
 * heartbeat, and its rate-limit bucket is full. */
void mcpgw_ws_session_start(mcpgw_conn *c);

/* Processes every complete frame in the transport's input. */
void mcpgw_ws_read_frames(mcpgw_conn *c);

/* Frees what a frame or message cut by the connection's end left
 * (c->ws_in), giving a large message's memory back; NULL-safe. */
void mcpgw_ws_session_free_input(mcpgw_conn *c);

#endif
