/*
 * conn.h - one client connection, in layers: its transport (transport.h:
 * bytes in and out, plain or TLS), its lifecycle and timers (conn.c), the
 * HTTP request head and upgrade (http_upgrade.c), the WebSocket session
 * (ws_session.c: frames, messages, sending, the closing handshake) and the
 * protocol it speaks once upgraded (protocol.h).
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
#include "deadline.h"
#include "pmd.h"
#include "ws_frame.h"

typedef struct mcpgw_server mcpgw_server;
typedef struct mcpgw_payload mcpgw_payload;
typedef struct mcpgw_transport mcpgw_transport;
struct event;
struct sockaddr;

typedef enum {
    MCPGW_CONN_HTTP = 0,
    MCPGW_CONN_OPEN,
    MCPGW_CONN_CLOSING,
    MCPGW_CONN_DRAINING,
    MCPGW_CONN_GONE
} mcpgw_conn_state;

/* A client's address and port as 20 bytes (a formatted "ip:port" took 64
 * in every connection); mcpgw_conn_peer() formats it for a log line. */
typedef struct mcpgw_peer_addr {
    uint16_t port;                  /* host order */
    uint8_t family;                 /* AF_INET, AF_INET6, or 0: unknown ("?:0") */
    uint8_t addr[16];               /* network order; 4 bytes for AF_INET */
} mcpgw_peer_addr;

/* "ip:port" as inet_ntop writes the address ("127.0.0.1:40112",
 * "::1:40112"), into out (MCPGW_PEER_STRLEN bytes); returns out. */
#define MCPGW_PEER_STRLEN 64
const char *mcpgw_peer_format(const mcpgw_peer_addr *p, char *out);
void mcpgw_peer_set(mcpgw_peer_addr *p, const struct sockaddr *addr);
/* The connection's peer as "ip:port", in a buffer that lives until the end
 * of the enclosing block (a compound literal): for a log line's fields. */
#define mcpgw_conn_peer(c) mcpgw_peer_format(&(c)->peer, (char[MCPGW_PEER_STRLEN]){ 0 })

/* What a connection speaks once upgraded (protocol.h). */
typedef struct mcpgw_protocol mcpgw_protocol;

struct mcpgw_conn {
    /* -- the connection (conn.c) */
    mcpgw_server *srv;
    mcpgw_transport *transport;     /* owned; NULL once gone */
    mcpgw_deadline linger;          /* the one timer (in srv->deadlines): the handshake,
                                       the token's end, CLOSING and DRAINING */
    mcpgw_conn *prev, *next;        /* the server's list */
    unsigned refs;
    mcpgw_conn_state state;
    uint64_t id;
    mcpgw_peer_addr peer;           /* formatted only when logged (mcpgw_conn_peer) */

    /* -- the upgrade (http_upgrade.c) */
    char *user;                     /* authenticated user id (owned); while a lease request
                                       is out (cluster_wait), the verified one, with claims */
    char *claims_text;              /* the token's claims as compact JSON (owned): an idle
                                       connection keeps ~60 bytes, not a jansson object */
    json_t *claims;                 /* the claims object (owned reference): until packed,
                                       or decoded again on first use (mcpgw_conn_claims) */
    double accepted_at;             /* clock seconds of the TCP accept (access log) */
    const struct mcpgw_http_request *http_req; /* the request being answered, or NULL */
    long long valid_until;          /* the token's exp + leeway (s); 0: it never ends */
    const mcpgw_protocol *protocol; /* set by the upgrade */
    int cluster_verdict;            /* MCPGW_CLUSTER_* (cluster.h) for this upgrade */
    char *lease;                    /* its lease member in Redis while it holds one (owned) */
    char *lease_user;               /* whose it is (owned; set with lease) */

    /* -- the WebSocket session (ws_session.c) */
    struct mcpgw_ws_in *ws_in;      /* a data frame read in pieces and the message
                                       being assembled (owned, ws_session.c): only
                                       while there is one, else NULL */
    mcpgw_pmd_state pmd_state;      /* own zlib streams: context takeover only */
    double rate_tat;                /* inbound rate limit: its token bucket as the time
                                       at which it is full again (ws_session.c; s since
                                       accepted_at) */
    double violations_since;        /* start of the current violation window (s) */
    int violations;                 /* messages refused in that window */
    unsigned close_code_sent;
    unsigned close_code_received;   /* 0 until a close frame arrives */
    uint64_t messages[2];           /* data messages by direction (MCPGW_DIR_*) */
    uint64_t wire_bytes[2];         /* their bytes as received / sent (after compression) */
    long long opened_at;            /* Unix seconds of the upgrade */

    /* -- the gateway protocol (protocol.c, dispatch.c) */
    unsigned n_pending;             /* its top-level requests not finished yet */

    /* -- an [endpoint.NAME] (endpoint.c, protocol_jsonrpc.c) */
    const struct mcpgw_handler_config *endpoint; /* NULL: [server] path */
    struct mcpgw_config *endpoint_cfg; /* a reference on endpoint's snapshot */
    mcpgw_plugin_ctx *ep_ctx;       /* jsonrpc: the plugin serving it */
    void *ep_data;                  /* what its conn_open gave */

    /* -- MCP Streamable HTTP (mcp_http.c) */
    struct mcpgw_mcp_session *mcp_session; /* a session conn: no transport; what
                                              the plugin sends goes to the session */
    struct mcpgw_mcp_stream *mcp_stream;   /* a TCP connection busy writing this
                                              stream's answer */

    /* -- flags, one bit each (the layer above each one owns it) */
    unsigned half_closed : 1;       /* DRAINING: our side shut down, reading to EOF */
    unsigned holds_user_slot : 1;
    unsigned http_head : 1;         /* a HEAD request: answers carry no body */
    unsigned api_pending : 1;       /* an admin request waits for other workers (admin_ops.c) */
    unsigned http_reading : 1;      /* inside read_http: it looks for the next request */
    unsigned http_continued : 1;    /* sent "100 Continue" for the request being read */
    unsigned cluster_wait : 1;      /* a lease request is out: nothing is read meanwhile */
    unsigned alive : 1;             /* a pong arrived since the last heartbeat ping */
    unsigned close_sent : 1;
    unsigned warned_unknown_type : 1;/* logged one unknown type at warn already */
    unsigned close_when_done : 1;   /* shutting down: close 1001 once n_pending is 0 */
    unsigned ep_opened : 1;         /* conn_open succeeded: conn_close is due */

    /* -- the WebSocket session again: 6 bytes, where the bits leave room */
    mcpgw_pmd_params pmd;           /* permessage-deflate in force (pmd.enabled) */
};

/* Accepts a new TCP connection (called by the listener); with ssl (owned
 * from then on) the connection speaks TLS. */
struct ssl_st;
void mcpgw_conn_accept(mcpgw_server *srv, evutil_socket_t fd,
                       const struct sockaddr *addr, int addrlen, struct ssl_st *ssl);

/* Takes over a plain TCP connection that another worker handed over
 * (bus.h) with the bytes it had read from it, and reads them as if they
 * had just arrived. fd is owned from the call on. */
void mcpgw_conn_adopt(mcpgw_server *srv, evutil_socket_t fd, const void *bytes, size_t len);

void mcpgw_conn_ref(mcpgw_conn *c);
void mcpgw_conn_unref(mcpgw_conn *c);
/* Sets c->endpoint (NULL: none), holding a reference on the configuration
 * snapshot the section belongs to until another is set or c is freed. */
void mcpgw_conn_set_endpoint(mcpgw_conn *c, const struct mcpgw_handler_config *ep);

/* The token's claims (borrowed; valid while the conn is and its claims
 * do not change): decoded from the packed text on first use. NULL when
 * there are none (or out of memory). */
json_t *mcpgw_conn_claims(const mcpgw_conn *c);
/* Packs c->claims into c->claims_text and drops the object (kept when
 * that fails). */
void mcpgw_conn_pack_claims(mcpgw_conn *c);

/* Is the connection upgraded and not closing? */
int mcpgw_conn_is_open(const mcpgw_conn *c);

/* Sending and closing (ws_session.c). */
/* Serialises msg (borrowed) and sends it as one text frame. 0 or -1. */
int mcpgw_conn_send_json(mcpgw_conn *c, json_t *msg);
/* Sends text[0..len) as one text frame, compressed when negotiated and at
 * least the threshold. 0 or -1. */
int mcpgw_conn_send_text(mcpgw_conn *c, const char *text, size_t len);
/* Sends data[0..len) as one message with opcode (MCPGW_WS_OP_TEXT or
 * _BINARY), compressed when negotiated and at least the threshold. 0 or -1. */
int mcpgw_conn_send_message(mcpgw_conn *c, int opcode, const void *data, size_t len);
/* Queues a shared frame (broadcast). 0 or -1. */
int mcpgw_conn_send_payload(mcpgw_conn *c, mcpgw_payload *p);
/* Queues a ping frame for the heartbeat. */
void mcpgw_conn_send_ping(mcpgw_conn *c);

/* Starts the closing handshake with code and reason; the TCP connection is
 * closed when the client answers or after the linger time. */
void mcpgw_conn_close(mcpgw_conn *c, unsigned code, const char *reason);
/* Drops the TCP connection at once, without a close frame (heartbeat). */
void mcpgw_conn_terminate(mcpgw_conn *c, const char *why);

/* Within the connection layer (conn.c, http_upgrade.c, ws_session.c). */
/* What one connection may make us buffer: a request head, or one frame of
 * max_payload with its header (a Streamable HTTP body likewise). */
size_t mcpgw_conn_read_limit(const mcpgw_server *srv);
/* Stops reading, writes what is queued, then closes the TCP connection
 * (bounded by the linger time). */
void mcpgw_conn_drain(mcpgw_conn *c);
/* The connection's one timer, a deadline in the worker's heap
 * (deadline.h): the handshake deadline, then the bound on CLOSING and
 * DRAINING. */
void mcpgw_conn_start_linger(mcpgw_conn *c, int ms);
void mcpgw_conn_stop_linger(mcpgw_conn *c);
/* How long a close handshake may take now (longer while shutting down). */
int mcpgw_conn_linger_ms(const mcpgw_conn *c);
/* An open connection's timer runs until its token ends (valid_until): then
 * it is closed 4001 "Token expired". Called at the upgrade and after an
 * in-band refresh. */
void mcpgw_conn_arm_expiry(mcpgw_conn *c);
/* The worker's deadline heap calls this when a connection's timer comes
 * (arg: the server). */
void mcpgw_conn_deadline_fired(mcpgw_deadline *d, void *arg);

#endif
