/*
 * mcp_internal.h - what the three files of MCP Streamable HTTP share: the
 * session and stream structures (mcp_session.c owns them), the answers and
 * checks of the request side (mcp_http.c) and the 2026-07-28 stateless
 * revision (mcp_stateless.c). Not for anything else in the core, which
 * uses mcp_http.h.
 *
 * Ownership: the server's list owns its sessions (srv->mcp_sessions); a
 * session owns its streams, their kept events and its session conn (vc);
 * a stream points at the TCP connection writing it (conn) and that
 * connection back at it (c->mcp_stream), unlinked by whichever goes first.
 */
#ifndef MCPGW_MCP_INTERNAL_H
#define MCPGW_MCP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "config.h"
#include "conn.h"
#include "http.h"
#include "mcp_http.h"
#include "metrics.h"

#define MCPGW_MCP_SESSION_ID_HEX 32      /* the first byte names the worker */
#define MCPGW_MCP_STATELESS "2026-07-28" /* no session, no initialize */
#define MCPGW_MCP_WAIT 1 /* mcpgw_mcp_session_new: the cluster answers later */
#define MCPGW_MCP_INIT_KEY "smcpgw-init" /* the hidden session's own initialize */

/* JSON-RPC error codes of the transport's answers */
#define MCPGW_JSONRPC_PARSE_ERROR -32700
#define MCPGW_JSONRPC_INVALID_REQUEST -32600
#define MCPGW_JSONRPC_SERVER_ERROR -32000
#define MCPGW_JSONRPC_HEADER_MISMATCH -32001

/* One SSE event, kept for a Last-Event-ID. */
typedef struct mcpgw_mcp_event {
    struct mcpgw_mcp_event *next;
    uint64_t seq;
    size_t len;
    char text[]; /* "id: N-S\ndata: ...\n\n" */
} mcpgw_mcp_event;

/* One answer stream: a POST's (its requests' answers), or the session's
 * standalone one (GET, or 2026's subscriptions/listen). */
struct mcpgw_mcp_stream {
    mcpgw_mcp_session *s;
    mcpgw_mcp_stream *next;  /* the session's streams, newest first */
    unsigned no;             /* 1, 2, ... within the session; event ids "no-seq" */
    unsigned standalone : 1; /* the GET stream */
    unsigned sse : 1;        /* else one application/json answer */
    unsigned batch : 1;      /* JSON: answer an array */
    unsigned keep : 1;       /* the connection may serve another request after */
    mcpgw_conn *conn;        /* writing it now, or NULL */
    unsigned pending;        /* its requests not answered yet */
    unsigned cancelled;      /* of which the client cancelled */
    struct evbuffer *json;   /* JSON: the answers so far, comma-separated */
    unsigned n_json;
    uint64_t next_seq;                  /* SSE: the next event's number (from 1) */
    mcpgw_mcp_event *ev_head, *ev_tail; /* kept for Last-Event-ID */
    size_t ev_bytes;
    uint64_t sent_seq; /* the last event written to a connection */
};

/* One session: what the endpoint's plugin sees as a connection. */
struct mcpgw_mcp_session {
    mcpgw_server *srv;
    mcpgw_mcp_session *prev, *next;
    char id[MCPGW_MCP_SESSION_ID_HEX + 1];
    mcpgw_conn *vc; /* what the plugin sees (owned reference) */
    const mcpgw_handler_config *ep;
    mcpgw_mcp_stream *streams;
    mcpgw_mcp_stream *standalone;
    unsigned next_no;
    json_t *pending;  /* request id key -> stream no (negative: cancelled;
                         0: the hidden session's initialize) */
    json_t *progress; /* progress token key -> stream no */
    char version[16]; /* negotiated at initialize */
    /* 2026-07-28 (stateless): one hidden session per user and endpoint,
     * initialized by the gateway; request ids and progress tokens are
     * rewritten so that several clients of the user can share it */
    int stateless;
    int ready;           /* its initialize was answered */
    json_t *queue;       /* requests waiting for that: [[stream no, msg], ...] */
    json_t *orig;        /* our id key -> the client's id */
    json_t *orig_tok;    /* our progress token key -> the client's token */
    json_t *init_result; /* the server's initialize result (server/discover) */
    uint64_t next_gid;
    struct event *idle_ev;
    double last_used; /* clock seconds of its last request */
    int ended;
    int end_posted;
};

/* ---- sessions and streams (mcp_session.c) */
/* A session for user (claims: owned), its plugin side opened. 0 and
 * *out; MCPGW_MCP_WAIT while the cluster decides on the user's limit (the
 * request stays buffered and is read again); or the HTTP status to refuse
 * with and *why its reason */
int mcpgw_mcp_session_new(mcpgw_conn *c, const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx,
                          const char *user, json_t *claims, mcpgw_mcp_session **out,
                          const char **why);
/* The live session with this Mcp-Session-Id on this worker, or NULL */
mcpgw_mcp_session *mcpgw_mcp_session_find(mcpgw_server *srv, const mcpgw_str *id);
/* A request used it: its idle timer starts again */
void mcpgw_mcp_session_touch(mcpgw_mcp_session *s);
/* Ends it (plugin conn_close, open requests answered, slot released,
 * freed). Not from inside a plugin call */
void mcpgw_mcp_session_end(mcpgw_mcp_session *s, const char *why);
/* A new stream of s (sse, or one JSON answer; standalone: the GET one) */
mcpgw_mcp_stream *mcpgw_mcp_stream_new(mcpgw_mcp_session *s, int sse, int standalone);
/* Stream number no of s, or NULL */
mcpgw_mcp_stream *mcpgw_mcp_stream_find(mcpgw_mcp_session *s, unsigned no);
/* Connection c writes st from now on (keep: it serves another request
 * after) */
void mcpgw_mcp_stream_attach(mcpgw_mcp_stream *st, mcpgw_conn *c, int keep);
/* Attaches c and, for SSE, writes the answer's head and a first, empty
 * event with id "no-seq" (it primes the client's Last-Event-ID) */
void mcpgw_mcp_stream_open(mcpgw_mcp_stream *st, mcpgw_conn *c, int keep, uint64_t seq);
/* The JSON answers whose every open request the client cancelled end now
 * (no answer is due to a cancelled request) with what they have (202 when
 * nothing); an SSE answer stays open until its connection goes */
void mcpgw_mcp_finish_cancelled(mcpgw_mcp_session *s);
/* Writes st's kept events after number `after` to its connection */
void mcpgw_mcp_stream_replay(mcpgw_mcp_stream *st, uint64_t after);
/* st has said everything: its answer ends where someone reads it */
void mcpgw_mcp_stream_finish(mcpgw_mcp_stream *st);
/* Where a message of the session's plugin goes (msg: its tree, text:
 * its bytes) */
void mcpgw_mcp_route(mcpgw_mcp_session *s, json_t *msg, const char *text, size_t len);
/* A request id or progress token as a map key ("s..." or "n...");
 * 0 when it is neither a string nor an integer */
int mcpgw_mcp_id_key(const json_t *id, char *out, size_t cap);
/* One chunk of a chunked (SSE) body */
void mcpgw_mcp_write_chunk(mcpgw_conn *c, const char *p, size_t n);
/* The head of an SSE answer */
void mcpgw_mcp_write_sse_head(mcpgw_conn *c, const mcpgw_mcp_session *s, int keep);
/* The endpoint's counters, or NULL */
mcpgw_endpoint_stats *mcpgw_mcp_ep_stats(const mcpgw_conn *c, const mcpgw_handler_config *ep);
/* Counts an answer by status */
void mcpgw_mcp_count_status(mcpgw_conn *c, int status);

/* ---- the request side (mcp_http.c) */
/* A complete answer; then the connection serves the next request (keep)
 * or closes */
void mcpgw_mcp_respond(mcpgw_conn *c, int status, const char *ctype, const char *extra,
                       const char *body, size_t len, int keep);
/* An error answer: a JSON-RPC error object, logged once */
void mcpgw_mcp_respond_error(mcpgw_conn *c, const mcpgw_http_request *req, int status, int code,
                             const char *message, const char *reason, const char *extra, int keep);
/* A JSON-RPC message: 1 request, 2 notification, 3 response, 0 bad */
int mcpgw_mcp_classify(const json_t *m);
/* Is header h present and exactly v? */
int mcpgw_mcp_header_is(const mcpgw_str *h, const char *v);

/* ---- 2026-07-28 (mcp_stateless.c) */
/* A string of the message's params._meta, or NULL */
const char *mcpgw_mcp_meta_string(const json_t *m, const char *name);
/* Answers a stateless POST (claims owned, m borrowed); 1 when it waits for
 * the cluster (nothing was answered: the request is read again), else 0 */
int mcpgw_mcp_stateless_post(mcpgw_conn *c, const mcpgw_http_request *req,
                              const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx,
                              const char *user, json_t *claims, json_t *m, int acc_json,
                              int acc_sse, int keep);
/* The hidden session's initialize was answered (msg): what waited goes on */
void mcpgw_mcp_stateless_ready(mcpgw_mcp_session *s, json_t *msg);

#endif
