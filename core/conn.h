/*
 * conn.h - one client connection: HTTP request head, upgrade, WebSocket
 * frames, message reassembly, sending, closing.
 *
 * Lifecycle: HTTP (reading the request head) -> OPEN (upgraded) -> CLOSING
 * (we sent a close frame and wait for the client's) or DRAINING (the last
 * bytes are being flushed before the TCP close) -> gone. A connection is
 * freed when it is gone and no pending request references it
 * (mcpgw_conn_ref/unref), so an asynchronous handler may finish after the
 * client left.
 *
 * Ownership: the server's list owns one reference; each pending request one.
 */
#ifndef MCPGW_CONN_H
#define MCPGW_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <event2/util.h>

#include "mcpgw/plugin.h"
#include "pmd.h"

typedef struct mcpgw_server mcpgw_server;
typedef struct mcpgw_payload mcpgw_payload;
struct bufferevent;
struct event;
struct evbuffer_cb_entry;
struct sockaddr;

typedef enum {
    MCPGW_CONN_HTTP = 0,
    MCPGW_CONN_OPEN,
    MCPGW_CONN_CLOSING,
    MCPGW_CONN_DRAINING,
    MCPGW_CONN_GONE
} mcpgw_conn_state;

struct mcpgw_conn {
    mcpgw_server *srv;
    struct bufferevent *bev;
    struct event *linger_ev;        /* bounds CLOSING and DRAINING */
    mcpgw_conn *prev, *next;        /* the server's list */
    unsigned refs;
    mcpgw_conn_state state;
    uint64_t id;
    char peer[64];                  /* "ip:port" */

    char *user;                     /* authenticated user id (owned) */
    json_t *claims;                 /* the token's claims (owned reference) */
    int holds_user_slot;

    /* reassembly of a data message */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    int msg_opcode;                 /* TEXT/BINARY while a fragmented message is open, else 0 */
    int msg_compressed;             /* the open message had RSV1 on its first frame */

    mcpgw_pmd_params pmd;           /* permessage-deflate in force (pmd.enabled) */
    mcpgw_pmd_state pmd_state;      /* own zlib streams: context takeover only */

    double rate_tokens;             /* inbound rate limit: the token bucket */
    double rate_stamp;              /* when it was last refilled (s) */
    double violations_since;        /* start of the current violation window (s) */
    int violations;                 /* messages refused in that window */

    /* Plain sockets write directly: output queued during a loop iteration
     * is written once, at its end (mcpgw_conn_flush_queued), and the write
     * event is enabled only while a write was partial. */
    int direct_write;
    int flush_queued;               /* on the server's flush list */
    /* Plain sockets are also read directly (recv into the bufferevent's
     * input), without libevent's FIONREAD before every read. */
    struct event *read_ev;          /* NULL on TLS connections */
    int read_suspended;             /* the input reached its high watermark */
    mcpgw_conn *flush_next;
    struct evbuffer_cb_entry *output_cb;
    /* Shared broadcast frames queued behind the output buffer (plain
     * connections): written with one writev at the flush, without an
     * evbuffer chain per recipient; moved into the output buffer before
     * anything else is queued there, or when a write is partial. */
#define MCPGW_CONN_FRAMES 8
    mcpgw_payload *frames[MCPGW_CONN_FRAMES];   /* one reference each */
    unsigned n_frames;
    size_t frames_bytes;

    int alive;                      /* a pong arrived since the last heartbeat ping */
    int warned_unknown_type;        /* logged one unknown type at warn already */
    int close_sent;
    int half_closed;                /* DRAINING: our side shut down, reading to EOF */
    unsigned close_code_sent;
    unsigned close_code_received;   /* 0 until a close frame arrives */
};

/* Accepts a new TCP connection (called by the listener); with ssl (owned
 * from then on) the connection speaks TLS. */
struct ssl_st;
void mcpgw_conn_accept(mcpgw_server *srv, evutil_socket_t fd,
                       const struct sockaddr *addr, int addrlen, struct ssl_st *ssl);

/* Writes the output queued on plain connections during this loop iteration:
 * one write per connection with new output (the server's flush event runs
 * it after the iteration's other callbacks). What the socket does not take
 * is left to the write event. mcpgw_conn_flush_discard() drops the list at
 * exit. */
void mcpgw_conn_flush_queued(mcpgw_server *srv);
void mcpgw_conn_flush_discard(mcpgw_server *srv);

void mcpgw_conn_ref(mcpgw_conn *c);
void mcpgw_conn_unref(mcpgw_conn *c);

/* Is the connection upgraded and not closing? */
int mcpgw_conn_is_open(const mcpgw_conn *c);

/* Serialises msg (borrowed) and sends it as one text frame. 0 or -1. */
int mcpgw_conn_send_json(mcpgw_conn *c, json_t *msg);
/* Sends text[0..len) as one text frame, compressed when negotiated and at
 * least the threshold. 0 or -1. */
int mcpgw_conn_send_text(mcpgw_conn *c, const char *text, size_t len);
/* Queues a shared frame (broadcast). 0 or -1. */
int mcpgw_conn_send_payload(mcpgw_conn *c, mcpgw_payload *p);
/* Queues a ping frame for the heartbeat. */
void mcpgw_conn_send_ping(mcpgw_conn *c);

/* Starts the closing handshake with code and reason; the TCP connection is
 * closed when the client answers or after the linger time. */
void mcpgw_conn_close(mcpgw_conn *c, unsigned code, const char *reason);
/* Drops the TCP connection at once, without a close frame (heartbeat). */
void mcpgw_conn_terminate(mcpgw_conn *c, const char *why);

#endif
