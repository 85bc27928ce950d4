/*
 * mcp_http.c - MCP Streamable HTTP on a jsonrpc endpoint (revisions
 * 2025-03-26 to 2025-11-25): requests, sessions, SSE streams with replay,
 * and the routing of what the endpoint's plugin says. See mcp_http.h.
 *
 * The answers follow the specification's transport section: 202 for a POST
 * of notifications or responses only; a POST with requests answered as one
 * application/json body or as a text/event-stream that ends once every
 * request is answered; 400 without a session (or with a bad protocol
 * version), 404 for an unknown or ended session, 406 for an Accept that
 * takes neither, 415 for a body that is not JSON, 409 for a second GET
 * stream, 405 for other methods, 401 with WWW-Authenticate: Bearer, 403
 * for a foreign Origin. Error bodies are JSON-RPC error objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "access_log.h"
#include "auth.h"
#include "config.h"
#include "conn.h"
#include "conn_limits.h"
#include "handshake.h"
#include "http.h"
#include "http_upgrade.h"
#include "json_read.h"
#include "log.h"
#include "mcp_http.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "protocol.h"
#include "server.h"
#include "transport.h"
#include "worker_board.h"

#define SESSION_ID_HEX 32
#define MAX_DETACHED_STREAMS 16     /* per session: SSE answers whose reader left */
#define MAX_TOKEN 8192

/* JSON-RPC error codes of the transport's answers */
#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_SERVER_ERROR -32000

/* The revisions this transport serves (MCP-Protocol-Version). */
static const char *const versions[] = { "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25",
                                         "2026-07-28" };
#define MODERN "2026-07-28"         /* stateless: no session, no initialize */
#define JSONRPC_HEADER_MISMATCH -32001
#define INIT_KEY "smcpgw-init"      /* the hidden session's own initialize */

typedef struct mcp_event {
    struct mcp_event *next;
    uint64_t seq;
    size_t len;
    char text[];                /* "id: N-S\ndata: ...\n\n" */
} mcp_event;

struct mcpgw_mcp_stream {
    mcpgw_mcp_session *s;
    mcpgw_mcp_stream *next;     /* the session's streams */
    unsigned no;                /* 1, 2, ... within the session; event ids "no-seq" */
    unsigned standalone : 1;    /* the GET stream */
    unsigned sse : 1;           /* else one application/json answer */
    unsigned batch : 1;         /* JSON: answer an array */
    unsigned keep : 1;          /* the connection may serve another request after */
    mcpgw_conn *conn;           /* writing it now, or NULL */
    unsigned pending;           /* its requests not answered yet */
    unsigned cancelled;         /* of which the client cancelled */
    struct evbuffer *json;      /* JSON: the answers so far, comma-separated */
    unsigned n_json;
    uint64_t next_seq;          /* SSE: the next event's number (from 1) */
    mcp_event *ev_head, *ev_tail;   /* kept for Last-Event-ID */
    size_t ev_bytes;
    uint64_t sent_seq;          /* the last event written to a connection */
};

struct mcpgw_mcp_session {
    mcpgw_server *srv;
    mcpgw_mcp_session *prev, *next;
    char id[SESSION_ID_HEX + 1];
    mcpgw_conn *vc;             /* what the plugin sees (owned reference) */
    const mcpgw_handler_config *ep;
    mcpgw_mcp_stream *streams;
    mcpgw_mcp_stream *standalone;
    unsigned next_no;
    json_t *pending;            /* request id key -> stream no (negative: cancelled) */
    json_t *progress;           /* progress token key -> stream no */
    char version[16];           /* negotiated at initialize */
    /* 2026-07-28 (stateless): one hidden session per user and endpoint,
     * initialized by the gateway; request ids and progress tokens are
     * rewritten so that several clients of the user can share it */
    int stateless;
    int ready;                  /* its initialize was answered */
    json_t *queue;              /* requests waiting for that: [[stream no, msg], ...] */
    json_t *orig;               /* our id key -> the client's id */
    json_t *orig_tok;           /* our progress token key -> the client's token */
    json_t *init_result;        /* the server's initialize result (server/discover) */
    uint64_t next_gid;
    struct event *idle_ev;
    double last_used;           /* clock seconds of its last request */
    int ended;
    int end_posted;
};

static void stream_free(mcpgw_mcp_stream *st);
static void prune_detached(mcpgw_mcp_session *s);
static void session_end(mcpgw_mcp_session *s, const char *why);

/* ------------------------------------------------------------ answers */

static mcpgw_endpoint_stats *ep_stats(const mcpgw_conn *c, const mcpgw_handler_config *ep)
{
    return ep ? mcpgw_stats_endpoint(c->srv->stats, ep->type) : NULL;
}

static void count_status(mcpgw_conn *c, int status)
{
    mcpgw_endpoint_stats *e = ep_stats(c, c->endpoint);
    int i = 0;

    if (!e)
        return;
    while (i < MCPGW_EP_HTTP_CODES - 1 && mcpgw_endpoint_http_codes[i] != status)
        i++;
    e->http_responses[i]++;
}

/* A complete answer with a body; then the connection is free again (keep)
 * or closes. */
static void respond(mcpgw_conn *c, int status, const char *ctype, const char *extra,
                    const char *body, size_t len, int keep)
{
    struct evbuffer *out = mcpgw_transport_out(c->transport);

    char clen[48] = "";

    if (status != 204)          /* RFC 9110 8.6: none on a 204 */
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", len);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "%s%s%s"
                        "%s"
                        "Cache-Control: no-store\r\n"
                        "%s%s\r\n",
                        status, mcpgw_http_reason(status), ctype ? "Content-Type: " : "",
                        ctype ? ctype : "", ctype ? "\r\n" : "", clen, extra ? extra : "",
                        keep ? "" : "Connection: close\r\n");
    if (len)
        evbuffer_add(out, body, len);
    count_status(c, status);
    mcpgw_upgrade_http_done(c, keep);
}

/* An error answer: a JSON-RPC error object (id null), logged once. */
static void respond_error(mcpgw_conn *c, const mcpgw_http_request *req, int status, int code,
                          const char *message, const char *reason, const char *extra, int keep)
{
    mcpgw_server *srv = c->srv;
    json_t *j = json_pack("{s:s, s:{s:i, s:s}, s:n}", "jsonrpc", "2.0", "error", "code", code,
                          "message", message, "id");
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int level = status == 401 || status == 403 || status == 429 ? MCPGW_LOG_WARN : MCPGW_LOG_INFO;

    mcpgw_metrics_reject(srv->metrics, reason);
    if (status == 401)
        srv->metrics->errors[MCPGW_ERR_AUTH]++;
    if (mcpgw_log_enabled(&srv->gw->log, level)) {
        json_t *f = json_pack("{s:s, s:i, s:s}", "reason", reason, "status", status, "ip", c->peer);
        if (f && req) {
            json_object_set_new(f, "method", json_stringn(req->method.p, req->method.len));
            json_object_set_new(f, "path", json_stringn(req->path.p, req->path.len));
        }
        mcpgw_log_event(&srv->gw->log, level, "mcp_http_rejected", f, mcpgw_clock_iso(&srv->clock));
    }
    mcpgw_access_log(c, req, status, text ? strlen(text) : 0, c->user, reason);
    respond(c, status, "application/json", extra, text ? text : "", text ? strlen(text) : 0, keep);
    free(text);
    json_decref(j);
}

/* SSE: one chunk of the chunked body. */
static void write_chunk(mcpgw_conn *c, const char *p, size_t n)
{
    struct evbuffer *out = mcpgw_transport_out(c->transport);

    if (!n)
        return;
    evbuffer_add_printf(out, "%zx\r\n", n);
    evbuffer_add(out, p, n);
    evbuffer_add(out, "\r\n", 2);
}

/* "Mcp-Session-Id: ID\r\n" for a 2025 session; nothing for 2026's */
static const char *session_header(const mcpgw_mcp_session *s, char *buf, size_t cap)
{
    if (s->stateless)
        return "";
    snprintf(buf, cap, "Mcp-Session-Id: %s\r\n", s->id);
    return buf;
}

static void write_sse_head(mcpgw_conn *c, const mcpgw_mcp_session *s, int keep)
{
    char sh[80];

    count_status(c, 200);
    evbuffer_add_printf(mcpgw_transport_out(c->transport),
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/event-stream\r\n"
                        "Cache-Control: no-cache\r\n"
                        "%s"
                        "Transfer-Encoding: chunked\r\n"
                        "%s\r\n",
                        session_header(s, sh, sizeof(sh)), keep ? "" : "Connection: close\r\n");
}

/* ------------------------------------------------------------ keys */

/* A request id or progress token as a map key ("s..." or "n..."); 0 when
 * it is neither a string nor an integer. */
static int id_key(const json_t *id, char *out, size_t cap)
{
    if (json_is_string(id)) {
        int n = snprintf(out, cap, "s%s", json_string_value(id));
        return n > 0 && (size_t)n < cap;
    }
    if (json_is_integer(id)) {
        snprintf(out, cap, "n%lld", (long long)json_integer_value(id));
        return 1;
    }
    return 0;
}

static mcpgw_mcp_stream *stream_find(mcpgw_mcp_session *s, unsigned no)
{
    for (mcpgw_mcp_stream *st = s->streams; st; st = st->next)
        if (st->no == no)
            return st;
    return NULL;
}

/* ------------------------------------------------------------ streams */

static mcpgw_mcp_stream *stream_new(mcpgw_mcp_session *s, int sse, int standalone)
{
    mcpgw_mcp_stream *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    if (!sse && !(st->json = evbuffer_new())) {
        free(st);
        return NULL;
    }
    st->s = s;
    st->no = ++s->next_no;
    st->sse = sse;
    st->standalone = standalone;
    st->next_seq = 1;
    st->next = s->streams;
    s->streams = st;
    if (standalone)
        s->standalone = st;
    return st;
}

static void stream_attach_timer(mcpgw_conn *c)
{
    mcpgw_conn_stop_linger(c);
    if (c->valid_until) {
        long long left = c->valid_until - (long long)mcpgw_clock_now(&c->srv->clock);
        mcpgw_conn_start_linger(c, left <= 0 ? 0 : left > 86400 ? 86400000
                                                                : (int)(left * 1000 + 1000));
    }
}

static void stream_attach(mcpgw_mcp_stream *st, mcpgw_conn *c, int keep)
{
    mcpgw_endpoint_stats *e = st->sse ? ep_stats(c, st->s->ep) : NULL;

    if (e)
        e->sse_streams_open++;
    st->conn = c;
    st->keep = keep;
    c->mcp_stream = st;
    /* a stream lasts as long as it has to, or until the token that opened
     * it ends (c->valid_until, set by the request) */
    stream_attach_timer(c);
}

static void stream_detach(mcpgw_mcp_stream *st)
{
    if (st->conn) {
        mcpgw_endpoint_stats *e = st->sse ? ep_stats(st->conn, st->s->ep) : NULL;
        if (e && e->sse_streams_open)
            e->sse_streams_open--;
        st->conn->mcp_stream = NULL;
        st->conn = NULL;
    }
}

/* Writes the kept events after `after` to the stream's connection. */
static void stream_replay(mcpgw_mcp_stream *st, uint64_t after)
{
    for (mcp_event *e = st->ev_head; e; e = e->next)
        if (e->seq > after) {
            write_chunk(st->conn, e->text, e->len);
            st->sent_seq = e->seq;
        }
}

/* The stream has said everything (or its session ended): the answer is
 * finished where someone reads it; a stream that nobody reads keeps its
 * events for a Last-Event-ID until the session ends. */
static void stream_finish(mcpgw_mcp_stream *st)
{
    mcpgw_conn *c = st->conn;
    int keep = st->keep;

    if (!c) {
        /* nobody reads it: what was written may not have arrived, so an
         * SSE answer waits for a Last-Event-ID (a bounded number of them) */
        if (!st->sse || st->s->ended)
            stream_free(st);
        else
            prune_detached(st->s);
        return;
    }
    stream_detach(st);
    if (st->sse) {
        evbuffer_add(mcpgw_transport_out(c->transport), "0\r\n\r\n", 5);
        mcpgw_upgrade_http_done(c, keep);
    } else {
        size_t n = evbuffer_get_length(st->json);
        char extra[80];
        struct evbuffer *out = mcpgw_transport_out(c->transport);

        evbuffer_add_printf(out,
                            "HTTP/1.1 200 OK\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %zu\r\n"
                            "Cache-Control: no-store\r\n"
                            "%s%s\r\n",
                            n + (st->batch ? 2 : 0), session_header(st->s, extra, sizeof(extra)),
                            keep ? "" : "Connection: close\r\n");
        if (st->batch)
            evbuffer_add(out, "[", 1);
        evbuffer_add_buffer(out, st->json);
        if (st->batch)
            evbuffer_add(out, "]", 1);
        count_status(c, 200);
        mcpgw_upgrade_http_done(c, keep);
    }
    stream_free(st);
}

/* At most MAX_DETACHED_STREAMS SSE answers wait for a reader: the oldest
 * goes first. */
static void prune_detached(mcpgw_mcp_session *s)
{
    unsigned detached = 0;
    mcpgw_mcp_stream *oldest = NULL;

    for (mcpgw_mcp_stream *o = s->streams; o; o = o->next)
        if (!o->conn && !o->standalone && o->sse) {
            detached++;
            oldest = o;             /* the list is newest first */
        }
    if (detached > MAX_DETACHED_STREAMS && oldest)
        stream_free(oldest);
}

static void stream_free(mcpgw_mcp_stream *st)
{
    mcpgw_mcp_session *s = st->s;
    const char *key;
    json_t *v;
    void *tmp;

    stream_detach(st);
    for (mcpgw_mcp_stream **pp = &s->streams; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    if (s->standalone == st)
        s->standalone = NULL;
    json_object_foreach_safe(s->pending, tmp, key, v) {
        json_int_t no = json_integer_value(v);
        if (no && (no < 0 ? -no : no) == (json_int_t)st->no) {
            if (s->orig)
                json_object_del(s->orig, key);
            json_object_del(s->pending, key);
        }
    }
    json_object_foreach_safe(s->progress, tmp, key, v) {
        if (json_integer_value(v) == (json_int_t)st->no) {
            if (s->orig_tok)
                json_object_del(s->orig_tok, key);
            json_object_del(s->progress, key);
        }
    }
    while (st->ev_head) {
        mcp_event *e = st->ev_head;
        st->ev_head = e->next;
        free(e);
    }
    if (st->json)
        evbuffer_free(st->json);
    free(st);
}

/* One message of the session for this stream. */
static void stream_say(mcpgw_mcp_stream *st, const char *text, size_t len)
{
    const mcpgw_handler_config *ep = st->s->ep;
    mcp_event *e;
    int n;
    char head[64];

    if (!st->sse) {
        if (st->n_json++)
            evbuffer_add(st->json, ",", 1);
        evbuffer_add(st->json, text, len);
        return;
    }
    n = snprintf(head, sizeof(head), "id: %u-%llu\ndata: ", st->no,
                 (unsigned long long)st->next_seq);
    e = malloc(sizeof(*e) + (size_t)n + len + 2);
    if (!e)
        return;
    e->next = NULL;
    e->seq = st->next_seq++;
    memcpy(e->text, head, (size_t)n);
    /* a JSON text's raw CR and LF are whitespace: as spaces they cannot
     * end the data line */
    for (size_t i = 0; i < len; i++)
        e->text[n + i] = text[i] == '\n' || text[i] == '\r' ? ' ' : text[i];
    e->text[n + len] = '\n';
    e->text[n + len + 1] = '\n';
    e->len = (size_t)n + len + 2;
    if (st->conn) {
        write_chunk(st->conn, e->text, e->len);
        st->sent_seq = e->seq;
    }
    if (ep->replay_bytes == 0 || e->len > ep->replay_bytes) {
        free(e);
        return;
    }
    /* kept for a Last-Event-ID; the oldest go first */
    if (st->ev_tail)
        st->ev_tail->next = e;
    else
        st->ev_head = e;
    st->ev_tail = e;
    st->ev_bytes += e->len;
    while (st->ev_bytes > ep->replay_bytes && st->ev_head) {
        mcp_event *old = st->ev_head;
        st->ev_head = old->next;
        if (!st->ev_head)
            st->ev_tail = NULL;
        st->ev_bytes -= old->len;
        free(old);
    }
}

/* A slow reader of a stream is a bounded cost: past max_outbound_bytes its
 * connection goes; the stream keeps its events for a resumption. */
static void stream_check_backlog(mcpgw_mcp_stream *st)
{
    mcpgw_conn *c = st->conn;

    if (c && mcpgw_transport_queued(c->transport) > c->srv->gw->cfg->max_outbound_bytes) {
        stream_detach(st);
        mcpgw_conn_terminate(c, "slow_consumer");
    }
}

/* ------------------------------------------------------------ sessions */

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_mcp_session *s = arg;
    struct timeval tv = { s->ep->session_idle_ms / 1000, (s->ep->session_idle_ms % 1000) * 1000 };

    (void)fd;
    (void)what;
    for (mcpgw_mcp_stream *st = s->streams; st; st = st->next)
        if (st->conn) {             /* someone still reads it: not idle */
            evtimer_add(s->idle_ev, &tv);
            return;
        }
    session_end(s, "idle");
}

static void session_touch(mcpgw_mcp_session *s)
{
    struct timeval tv = { s->ep->session_idle_ms / 1000, (s->ep->session_idle_ms % 1000) * 1000 };

    if (s->idle_ev)
        evtimer_add(s->idle_ev, &tv);
    s->last_used = mcpgw_clock_seconds(&s->srv->clock);
}

/* A session nobody uses now: no stream being read, no request open. */
static int session_idle(const mcpgw_mcp_session *s)
{
    if (json_object_size(s->pending))
        return 0;
    for (const mcpgw_mcp_stream *st = s->streams; st; st = st->next)
        if (st->conn)
            return 0;
    return 1;
}

/* A client that never sends DELETE (the SDK's close() does not) must not
 * lock its user out until the idle timeout: at the per-user limit, the
 * user's least recently used idle session on this worker makes room. */
static int session_evict_for(mcpgw_server *srv, const char *user)
{
    mcpgw_mcp_session *lru = NULL;

    for (mcpgw_mcp_session *s = srv->mcp_sessions; s; s = s->next)
        if (!s->ended && s->vc && strcmp(s->vc->user, user) == 0 && session_idle(s) &&
            (!lru || s->last_used < lru->last_used))
            lru = s;
    if (!lru)
        return 0;
    session_end(lru, "evicted_for_new_session");
    return 1;
}

static mcpgw_mcp_session *session_find(mcpgw_server *srv, const mcpgw_str *id)
{
    if (!id || id->len != SESSION_ID_HEX)
        return NULL;
    for (mcpgw_mcp_session *s = srv->mcp_sessions; s; s = s->next)
        if (!s->ended && memcmp(s->id, id->p, SESSION_ID_HEX) == 0)
            return s;
    return NULL;
}

static void session_free(mcpgw_mcp_session *s)
{
    if (s->idle_ev)
        event_free(s->idle_ev);
    json_decref(s->pending);
    json_decref(s->progress);
    json_decref(s->queue);
    json_decref(s->orig);
    json_decref(s->orig_tok);
    json_decref(s->init_result);
    if (s->vc) {
        s->vc->mcp_session = NULL;
        mcpgw_conn_unref(s->vc);
    }
    free(s);
}

/* Ends a session: the plugin's conn_close, every stream's answer
 * finished (a request still open is answered with an error), the user's
 * slot released. Not from inside a plugin call (see mcpgw_mcp_session_close). */
static void session_end(mcpgw_mcp_session *s, const char *why)
{
    mcpgw_server *srv = s->srv;
    mcpgw_conn *vc = s->vc;
    mcpgw_endpoint_stats *e;
    const char *key;
    json_t *v;

    if (s->ended)
        return;
    s->ended = 1;
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->mcp_sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->n_mcp_sessions--;
    if ((e = mcpgw_stats_endpoint(srv->stats, s->ep->type)) && e->http_sessions_open)
        e->http_sessions_open--;

    /* requests still open get an answer instead of a silent end */
    json_object_foreach(s->pending, key, v) {
        json_int_t no = json_integer_value(v);
        mcpgw_mcp_stream *st = stream_find(s, (unsigned)(no < 0 ? -no : no));
        json_t *err;
        char *t;

        if (!st || no < 0)
            continue;
        err = json_pack("{s:s, s:o, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                        key[0] == 's' ? json_string(key + 1)
                                      : json_integer(strtoll(key + 1, NULL, 10)),
                        "error", "code", JSONRPC_SERVER_ERROR, "message", "Session ended");
        t = err ? json_dumps(err, JSON_COMPACT) : NULL;
        if (t)
            stream_say(st, t, strlen(t));
        free(t);
        json_decref(err);
    }
    while (s->streams) {
        mcpgw_mcp_stream *st = s->streams;
        stream_finish(st);          /* frees it */
    }
    if (vc) {
        vc->state = MCPGW_CONN_GONE;
        if (vc->protocol && vc->protocol->closed)
            vc->protocol->closed(vc, MCPGW_WS_CLOSE_NORMAL);
        if (vc->holds_user_slot) {
            mcpgw_limits_release(srv->gw->limits, vc->user, srv->worker_id);
            vc->holds_user_slot = 0;
        }
    }
    if (mcpgw_log_enabled(&srv->gw->log, MCPGW_LOG_INFO))
        mcpgw_log_event(&srv->gw->log, MCPGW_LOG_INFO, "mcp_session_ended",
                        json_pack("{s:s, s:s, s:I, s:s}", "user", vc && vc->user ? vc->user : "",
                                  "endpoint", s->ep->type, "connection",
                                  (json_int_t)(vc ? vc->id : 0), "reason", why),
                        mcpgw_clock_iso(&srv->clock));
    session_free(s);
    mcpgw_server_conn_gone(srv);
}

static void session_end_posted(void *arg)
{
    mcpgw_conn *vc = arg;

    if (vc->mcp_session)
        session_end(vc->mcp_session, "closed_by_plugin");
    mcpgw_conn_unref(vc);
}

/* Creates a session for user (claims: owned) and opens the plugin's side.
 * 0, or the HTTP status to refuse with (*why its reason). */
static int session_new(mcpgw_conn *c, const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx,
                       const char *user, json_t *claims, mcpgw_mcp_session **out,
                       const char **why)
{
    mcpgw_server *srv = c->srv;
    mcpgw_mcp_session *s = NULL;
    mcpgw_conn *vc = NULL;
    mcpgw_endpoint_stats *e;
    unsigned char rnd[SESSION_ID_HEX / 2];
    int count = 0;
    mcpgw_limit_result lr;

    if (srv->shutting_down) {
        *why = "shutting_down";
        json_decref(claims);
        return 503;
    }
    lr = mcpgw_limits_acquire(srv->gw->limits, user, srv->worker_id,
                              srv->gw->cfg->max_connections_per_user,
                              srv->gw->cfg->max_connections, &count);
    if (lr == MCPGW_LIMIT_USER && session_evict_for(srv, user))
        lr = mcpgw_limits_acquire(srv->gw->limits, user, srv->worker_id,
                                  srv->gw->cfg->max_connections_per_user,
                                  srv->gw->cfg->max_connections, &count);
    if (lr != MCPGW_LIMIT_OK) {
        json_decref(claims);
        *why = lr == MCPGW_LIMIT_SERVER ? "server_full"
               : lr == MCPGW_LIMIT_ERROR ? "bad_user_id" : "connection_limit";
        return lr == MCPGW_LIMIT_SERVER ? 503 : lr == MCPGW_LIMIT_ERROR ? 500 : 429;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
        !(s = calloc(1, sizeof(*s))) || !(vc = calloc(1, sizeof(*vc))) ||
        !(vc->user = strdup(user)) || !(s->pending = json_object()) ||
        !(s->progress = json_object()) ||
        !(s->idle_ev = evtimer_new(srv->base, idle_cb, s)))
        goto fail;
    /* the first byte names the worker that holds it (mcpgw_mcp_http_owner) */
    rnd[0] = (unsigned char)srv->worker_id;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    s->srv = srv;
    s->ep = ep;
    s->vc = vc;
    vc->srv = srv;
    vc->refs = 1;
    vc->state = MCPGW_CONN_OPEN;
    vc->id = mcpgw_limits_next_conn_id(srv->gw->limits);
    vc->accepted_at = mcpgw_clock_seconds(&srv->clock);
    vc->opened_at = (long long)mcpgw_clock_now(&srv->clock);
    memcpy(vc->peer, c->peer, sizeof(vc->peer));
    vc->claims = claims;
    claims = NULL;
    vc->holds_user_slot = 1;
    vc->protocol = &mcpgw_protocol_jsonrpc;
    vc->endpoint = ep;
    vc->ep_ctx = ctx;
    vc->mcp_session = s;

    s->next = srv->mcp_sessions;
    if (srv->mcp_sessions)
        srv->mcp_sessions->prev = s;
    srv->mcp_sessions = s;
    srv->n_mcp_sessions++;
    session_touch(s);

    vc->protocol->opened(vc);       /* the plugin's conn_open */
    if (!vc->ep_opened || s->ended || s->end_posted) {
        *why = "endpoint_unavailable";
        session_end(s, "open_failed");
        return 503;
    }
    if ((e = mcpgw_stats_endpoint(srv->stats, ep->type)))
        e->http_sessions_open++;
    if (mcpgw_log_enabled(&srv->gw->log, MCPGW_LOG_INFO))
        mcpgw_log_event(&srv->gw->log, MCPGW_LOG_INFO, "mcp_session_started",
                        json_pack("{s:s, s:s, s:I, s:s, s:i}", "user", user, "endpoint",
                                  ep->type, "connection", (json_int_t)vc->id, "ip", c->peer,
                                  "connections", count),
                        mcpgw_clock_iso(&srv->clock));
    *out = s;
    return 0;
fail:
    json_decref(claims);
    if (vc) {
        json_decref(vc->claims);
        free(vc->user);
        free(vc);
    }
    if (s) {
        s->vc = NULL;
        if (s->idle_ev)
            event_free(s->idle_ev);
        json_decref(s->pending);
        json_decref(s->progress);
        free(s);
    }
    mcpgw_limits_release(srv->gw->limits, user, srv->worker_id);
    *why = "out_of_memory";
    return 500;
}

/* ------------------------------------------------------ the plugin's side */

static void modern_ready(mcpgw_mcp_session *s, json_t *msg);

/* Where a message the session's plugin sends goes. */
static void route(mcpgw_mcp_session *s, json_t *msg, const char *text, size_t len)
{
    json_t *method = json_object_get(msg, "method");
    json_t *id = json_object_get(msg, "id");
    mcpgw_mcp_stream *st = NULL;
    char key[256];

    if (!method && id) {            /* a response: to its request's stream */
        json_t *v;
        json_int_t no;

        if (!id_key(id, key, sizeof(key)) || !(v = json_object_get(s->pending, key)))
            return;                 /* nobody asked (or the stream is gone) */
        no = json_integer_value(v);
        if (no == 0) {              /* the hidden session's own initialize */
            json_object_del(s->pending, key);
            modern_ready(s, msg);
            return;
        }
        st = stream_find(s, (unsigned)(no < 0 ? -no : no));
        json_object_del(s->pending, key);
        if (!st)
            return;
        if (s->stateless) {         /* the client's id back, and 2026's resultType */
            json_t *r = json_object_get(msg, "result");
            char *t;
            if (json_object_get(s->orig, key))
                json_object_set(msg, "id", json_object_get(s->orig, key));
            json_object_del(s->orig, key);
            if (json_is_object(r) && !json_object_get(r, "resultType"))
                json_object_set_new(r, "resultType", json_string("complete"));
            t = json_dumps(msg, JSON_COMPACT);
            if (t)
                stream_say(st, t, strlen(t));
            free(t);
            goto answered;
        }
        if (!s->version[0]) {       /* initialize's answer names the revision */
            const char *ver = NULL;
            if (json_unpack(msg, "{s:{s:s}}", "result", "protocolVersion", &ver) == 0 && ver)
                snprintf(s->version, sizeof(s->version), "%s", ver);
        }
        stream_say(st, text, len);
answered:
        if (st->pending)
            st->pending--;
        if (no < 0 && st->cancelled)
            st->cancelled--;
        if (!st->pending)
            stream_finish(st);
        else
            stream_check_backlog(st);
        return;
    }
    if (!method)
        return;
    if (strcmp(json_string_value(method) ? json_string_value(method) : "",
               "notifications/progress") == 0) {
        json_t *tok = json_object_get(json_object_get(msg, "params"), "progressToken");
        json_t *v;
        if (tok && id_key(tok, key, sizeof(key)) && (v = json_object_get(s->progress, key)))
            st = stream_find(s, (unsigned)json_integer_value(v));
        if (st && s->stateless && json_object_get(s->orig_tok, key)) {
            char *t;
            json_object_set(json_object_get(msg, "params"), "progressToken",
                            json_object_get(s->orig_tok, key));
            t = json_dumps(msg, JSON_COMPACT);
            if (t)
                stream_say(st, t, strlen(t));
            free(t);
            stream_check_backlog(st);
            return;
        }
    }
    if (!st && !(s->standalone && s->standalone->conn)) {
        /* nobody listens on GET: the newest SSE answer still open hears it */
        for (mcpgw_mcp_stream *o = s->streams; o; o = o->next)
            if (o->sse && !o->standalone && o->conn && o->pending) {
                st = o;
                break;
            }
    }
    if (!st)
        st = s->standalone ? s->standalone : stream_new(s, 1, 1);
    if (!st)
        return;
    if (!st->sse) {                 /* a JSON answer cannot carry it */
        st = s->standalone ? s->standalone : stream_new(s, 1, 1);
        if (!st)
            return;
    }
    stream_say(st, text, len);
    stream_check_backlog(st);
}

int mcpgw_mcp_session_emit(mcpgw_conn *vc, const char *text, size_t len)
{
    mcpgw_mcp_session *s = vc->mcp_session;
    json_t *msg;

    if (!s || s->ended)
        return -1;
    msg = mcpgw_json_read(text, len, NULL);
    if (!msg)
        return 0;
    if (json_is_array(msg)) {       /* a batch answer: each on its own */
        size_t i;
        json_t *m;
        json_array_foreach(msg, i, m) {
            char *t = json_is_object(m) ? json_dumps(m, JSON_COMPACT) : NULL;
            if (t)
                route(s, m, t, strlen(t));
            free(t);
            if (s->ended)
                break;
        }
    } else if (json_is_object(msg)) {
        route(s, msg, text, len);
    }
    json_decref(msg);
    return 0;
}

void mcpgw_mcp_session_close(mcpgw_conn *vc, unsigned code, const char *reason)
{
    mcpgw_mcp_session *s = vc->mcp_session;

    (void)code;
    (void)reason;
    /* the plugin may be inside one of its callbacks: end it from the loop */
    if (!s || s->ended || s->end_posted)
        return;
    s->end_posted = 1;
    mcpgw_conn_ref(vc);
    if (mcpgw_server_post(s->srv, session_end_posted, vc) != 0) {
        mcpgw_conn_unref(vc);
        s->end_posted = 0;
    }
}

size_t mcpgw_mcp_session_queued(const mcpgw_conn *vc)
{
    const mcpgw_mcp_session *s = vc->mcp_session;
    size_t n = 0;

    if (!s)
        return 0;
    for (const mcpgw_mcp_stream *st = s->streams; st; st = st->next)
        if (st->conn && st->conn->transport)
            n += mcpgw_transport_queued(st->conn->transport);
    return n;
}

/* ------------------------------------------------------------ requests */

int mcpgw_mcp_http_wants(const mcpgw_http_request *req, const mcpgw_handler_config *ep)
{
    const mcpgw_str *up;

    if (!ep || ep->protocol != MCPGW_ENDPOINT_JSONRPC || !ep->http)
        return 0;
    up = mcpgw_http_header_get(req, "Upgrade");
    return !up || !mcpgw_http_list_has_token(up, "websocket");
}

static int hex_digit(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -256;
}

int mcpgw_mcp_http_owner(const mcpgw_conn *c, const mcpgw_http_request *req)
{
    const mcpgw_gateway *gw = c->srv->gw;
    const mcpgw_str *sid = mcpgw_http_header_get(req, "Mcp-Session-Id");
    int w;

    if (!gw->bus || !gw->board || !sid || sid->len != SESSION_ID_HEX)
        return -1;
    w = hex_digit(sid->p[0]) * 16 + hex_digit(sid->p[1]);
    if (w < 0 || w == c->srv->worker_id || w >= gw->board->n_workers)
        return -1;
    return w;
}

int mcpgw_mcp_http_body(const mcpgw_conn *c, const mcpgw_http_request *req, size_t *len)
{
    const mcpgw_str *cl = mcpgw_http_header_get(req, "Content-Length");
    unsigned long long v = 0;

    *len = 0;
    if (mcpgw_http_header_get(req, "Transfer-Encoding"))
        return 400;
    if (!cl)
        return req->method.len == 4 && memcmp(req->method.p, "POST", 4) == 0 ? 411 : 0;
    for (size_t i = 0; i < cl->len; i++) {
        if (v > c->srv->gw->cfg->max_payload)
            return 413;
        v = v * 10 + (unsigned)(cl->p[i] - '0');     /* digits only: http_check_framing */
    }
    if (v > c->srv->gw->cfg->max_payload)
        return 413;
    *len = (size_t)v;
    return 0;
}

static int accepts(const mcpgw_http_request *req, const char *type)
{
    return mcpgw_http_accepts(mcpgw_http_header_get(req, "Accept"), type);
}

/* DNS rebinding: a browser's Origin must be allowed ([server]
 * allowed_origins) or, without a list, name the host it talks to. */
static int origin_ok(const mcpgw_conn *c, const mcpgw_http_request *req)
{
    const mcpgw_config *cfg = c->srv->gw->cfg;
    const mcpgw_str *o = mcpgw_http_header_get(req, "Origin");
    const mcpgw_str *host = mcpgw_http_header_get(req, "Host");
    const char *p;
    size_t n;

    if (!o)
        return !cfg->require_origin;
    if (cfg->allowed_origins) {
        for (char **a = cfg->allowed_origins; *a; a++)
            if (strcmp(*a, "*") == 0 ||
                (strlen(*a) == o->len && strncasecmp(*a, o->p, o->len) == 0))
                return 1;
        return 0;
    }
    /* scheme://host[:port] must be the Host we were asked as */
    p = memchr(o->p, ':', o->len);
    if (!p || (size_t)(p - o->p) + 3 > o->len || memcmp(p, "://", 3) != 0 || !host)
        return 0;
    p += 3;
    n = o->len - (size_t)(p - o->p);
    return n == host->len && strncasecmp(p, host->p, n) == 0;
}

static int method_is(const mcpgw_http_request *req, const char *m)
{
    return req->method.len == strlen(m) && memcmp(req->method.p, m, req->method.len) == 0;
}

static int keep_alive(const mcpgw_http_request *req)
{
    const mcpgw_str *conn = mcpgw_http_header_get(req, "Connection");

    if (conn && mcpgw_http_list_has_token(conn, "close"))
        return 0;
    if (req->version_minor == 0)
        return conn && mcpgw_http_list_has_token(conn, "keep-alive");
    return 1;
}

static int version_known(const mcpgw_str *v)
{
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
        if (v->len == strlen(versions[i]) && memcmp(v->p, versions[i], v->len) == 0)
            return 1;
    return 0;
}

/* The session a request names, checked (user, protocol version); NULL
 * after answering the refusal. */
static mcpgw_mcp_session *request_session(mcpgw_conn *c, const mcpgw_http_request *req,
                                          const mcpgw_handler_config *ep, const char *user,
                                          int keep)
{
    const mcpgw_str *sid = mcpgw_http_header_get(req, "Mcp-Session-Id");
    const mcpgw_str *ver = mcpgw_http_header_get(req, "MCP-Protocol-Version");
    mcpgw_mcp_session *s;

    if (!sid) {
        respond_error(c, req, 400, JSONRPC_SERVER_ERROR,
                      "Bad Request: Mcp-Session-Id header is required", "session_missing", NULL,
                      keep);
        return NULL;
    }
    s = session_find(c->srv, sid);
    /* another user's session is as unknown as an ended one */
    if (!s || s->ep != ep || strcmp(s->vc->user, user) != 0) {
        respond_error(c, req, 404, JSONRPC_SERVER_ERROR, "Session not found", "session_unknown",
                      NULL, keep);
        return NULL;
    }
    if (ver && (!version_known(ver) ||
                (s->version[0] && (ver->len != strlen(s->version) ||
                                   memcmp(ver->p, s->version, ver->len) != 0)))) {
        respond_error(c, req, 400, JSONRPC_SERVER_ERROR,
                      "Bad Request: Unsupported protocol version", "bad_protocol_version", NULL,
                      keep);
        return NULL;
    }
    session_touch(s);
    return s;
}

/* Checks a message's shape: 1 request, 2 notification, 3 response, 0 bad. */
static int classify(const json_t *m)
{
    json_t *method, *id;

    if (!json_is_object(m))
        return 0;
    if (!json_is_string(json_object_get(m, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") != 0)
        return 0;
    method = json_object_get(m, "method");
    id = json_object_get(m, "id");
    if (method)
        return !json_is_string(method) ? 0 : id ? (json_is_string(id) || json_is_integer(id) ? 1 : 0)
                                                : 2;
    if (id && (json_object_get(m, "result") || json_object_get(m, "error")))
        return 3;
    return 0;
}

static int is_initialize(const json_t *m)
{
    const char *method = json_string_value(json_object_get(m, "method"));

    return method && strcmp(method, "initialize") == 0;
}

/* ------------------------------------------------- 2026-07-28: stateless */

static const char *meta_string(const json_t *m, const char *name)
{
    return json_string_value(json_object_get(
        json_object_get(json_object_get(m, "params"), "_meta"), name));
}

/* Hands one (rewritten) request to the hidden session's plugin, or answers
 * server/discover from what the server said at initialize. */
static void modern_forward(mcpgw_mcp_session *s, json_t *m)
{
    const char *method = json_string_value(json_object_get(m, "method"));
    char *text;

    if (method && strcmp(method, "server/discover") == 0) {
        json_t *r = s->init_result;
        json_t *res = json_pack("{s:s, s:[s,s,s,s], s:O?, s:O?}", "resultType", "complete",
                                "supportedVersions", MODERN, "2025-11-25", "2025-06-18",
                                "2025-03-26", "capabilities", json_object_get(r, "capabilities"),
                                "serverInfo", json_object_get(r, "serverInfo"));
        json_t *reply;
        if (res && json_object_get(r, "instructions"))
            json_object_set(res, "instructions", json_object_get(r, "instructions"));
        reply = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", json_object_get(m, "id"),
                          "result", res);
        text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
        if (text)
            route(s, reply, text, strlen(text));
        free(text);
        json_decref(reply);
        return;
    }
    text = json_dumps(m, JSON_COMPACT);
    if (text)
        mcpgw_jsonrpc_deliver(s->vc, m, text, strlen(text));
    free(text);
}

/* The hidden session's initialize was answered: the requests that waited
 * go on (or, if the server refused, are answered with its error). */
static void modern_ready(mcpgw_mcp_session *s, json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    json_t *queue = s->queue;
    size_t i;
    json_t *item;

    s->queue = json_array();
    if (json_is_object(res)) {
        json_t *n = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
                              "notifications/initialized");
        char *t = n ? json_dumps(n, JSON_COMPACT) : NULL;
        s->init_result = json_incref(res);
        s->ready = 1;
        if (t)
            mcpgw_jsonrpc_deliver(s->vc, n, t, strlen(t));
        free(t);
        json_decref(n);
    }
    json_array_foreach(queue, i, item) {
        json_t *m = json_array_get(item, 1);
        if (s->ended)
            break;
        if (s->ready) {
            modern_forward(s, m);
        } else {
            json_t *err = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                                    json_object_get(m, "id"), "error", "code", -32603,
                                    "message", "The MCP server refused to initialize");
            char *t = err ? json_dumps(err, JSON_COMPACT) : NULL;
            if (t)
                route(s, err, t, strlen(t));
            free(t);
            json_decref(err);
        }
    }
    json_decref(queue);
    if (!s->ready && s->vc)
        mcpgw_mcp_session_close(s->vc, MCPGW_WS_CLOSE_INTERNAL, "initialize refused");
}

/* The user's hidden session on this endpoint (this worker), made and
 * initialized on first use with the client's capabilities and identity. */
static mcpgw_mcp_session *modern_session(mcpgw_conn *c, const mcpgw_handler_config *ep,
                                         mcpgw_plugin_ctx *ctx, const char *user, json_t *claims,
                                         const json_t *first, int *status, const char **why)
{
    mcpgw_mcp_session *s;
    json_t *meta = json_object_get(json_object_get(first, "params"), "_meta");
    json_t *init;
    char *text;

    for (s = c->srv->mcp_sessions; s; s = s->next)
        if (s->stateless && !s->ended && s->ep == ep && strcmp(s->vc->user, user) == 0) {
            json_decref(claims);
            session_touch(s);
            return s;
        }
    *status = session_new(c, ep, ctx, user, claims, &s, why);
    if (*status)
        return NULL;
    s->stateless = 1;
    if (!(s->queue = json_array()) || !(s->orig = json_object()) ||
        !(s->orig_tok = json_object())) {
        session_end(s, "out_of_memory");
        *status = 500;
        *why = "out_of_memory";
        return NULL;
    }
    init = json_pack("{s:s, s:s, s:s, s:{s:s, s:O?, s:O?}}", "jsonrpc", "2.0", "id",
                     INIT_KEY + 1, "method", "initialize", "params", "protocolVersion",
                     "2025-11-25", "capabilities",
                     json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"),
                     "clientInfo", json_object_get(meta, "io.modelcontextprotocol/clientInfo"));
    if (init) {
        json_t *p = json_object_get(init, "params");
        if (!json_is_object(json_object_get(p, "capabilities")))
            json_object_set_new(p, "capabilities", json_object());
        if (!json_is_object(json_object_get(p, "clientInfo")))
            json_object_set_new(p, "clientInfo",
                                json_pack("{s:s, s:s}", "name", "mcpgw", "version", PACKAGE_VERSION));
    }
    text = init ? json_dumps(init, JSON_COMPACT) : NULL;
    if (!text) {
        json_decref(init);
        session_end(s, "out_of_memory");
        *status = 500;
        *why = "out_of_memory";
        return NULL;
    }
    json_object_set_new(s->pending, INIT_KEY, json_integer(0));
    mcpgw_jsonrpc_deliver(s->vc, init, text, strlen(text));
    free(text);
    json_decref(init);
    return s->ended ? NULL : s;
}

/* The name a 2026-07-28 request carries in Mcp-Name, or NULL. */
static const char *request_name(const json_t *m)
{
    const char *method = json_string_value(json_object_get(m, "method"));
    json_t *params = json_object_get(m, "params");

    if (!method)
        return NULL;
    if (!strcmp(method, "tools/call") || !strcmp(method, "prompts/get"))
        return json_string_value(json_object_get(params, "name"));
    if (!strcmp(method, "resources/read") || !strcmp(method, "resources/subscribe") ||
        !strcmp(method, "resources/unsubscribe"))
        return json_string_value(json_object_get(params, "uri"));
    return NULL;
}

static int str_is(const mcpgw_str *h, const char *v)
{
    return h && v && h->len == strlen(v) && memcmp(h->p, v, h->len) == 0;
}

/* A 2026-07-28 POST: no session, no initialize; the headers name what the
 * body does, for proxies that route without reading it, and must say the
 * same as the body. */
static void handle_modern(mcpgw_conn *c, const mcpgw_http_request *req,
                          const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx, const char *user,
                          json_t *claims, json_t *m, int acc_json, int acc_sse, int keep)
{
    const mcpgw_str *pv = mcpgw_http_header_get(req, "MCP-Protocol-Version");
    const mcpgw_str *hm = mcpgw_http_header_get(req, "Mcp-Method");
    const mcpgw_str *hn = mcpgw_http_header_get(req, "Mcp-Name");
    const char *method = json_string_value(json_object_get(m, "method"));
    const char *name = request_name(m);
    const char *mv = meta_string(m, "io.modelcontextprotocol/protocolVersion");
    const char *why = NULL;
    int kind = classify(m), status = 0, sse;
    mcpgw_mcp_session *s;
    mcpgw_mcp_stream *st;
    json_t *tok;
    char key[256], our[48];

    if (!json_is_object(m)) {
        json_decref(claims);
        respond_error(c, req, 400, JSONRPC_INVALID_REQUEST,
                      "Invalid Request: 2026-07-28 has no batches", "bad_jsonrpc", NULL, keep);
        return;
    }
    if (!str_is(pv, MODERN) || (mv && strcmp(mv, MODERN) != 0) ||
        (method && !str_is(hm, method)) || (name && !str_is(hn, name)) || (!name && hn)) {
        json_decref(claims);
        respond_error(c, req, 400, JSONRPC_HEADER_MISMATCH,
                      !str_is(pv, MODERN) || (mv && strcmp(mv, MODERN) != 0)
                          ? "HeaderMismatch: MCP-Protocol-Version and _meta disagree"
                      : method && !str_is(hm, method)
                          ? "HeaderMismatch: Mcp-Method must name the body's method"
                          : "HeaderMismatch: Mcp-Name must name the body's tool, prompt or resource",
                      "header_mismatch", NULL, keep);
        return;
    }
    s = modern_session(c, ep, ctx, user, claims, m, &status, &why);
    if (!s) {
        respond_error(c, req, status ? status : 503, JSONRPC_SERVER_ERROR,
                      status == 429 ? "Too Many Connections" : "Service Unavailable",
                      why ? why : "endpoint_unavailable", NULL, keep);
        return;
    }

    if (kind != 1) {                /* notifications (and stray responses): 202 */
        json_t *rid = json_object_get(json_object_get(m, "params"), "requestId");
        if (method && !strcmp(method, "notifications/cancelled") && rid) {
            const char *k;
            json_t *v;
            json_object_foreach(s->orig, k, v) {
                json_t *pend = json_object_get(s->pending, k);
                if (json_equal(v, rid) && pend && json_integer_value(pend) > 0) {
                    mcpgw_mcp_stream *o = stream_find(s, (unsigned)json_integer_value(pend));
                    json_object_set_new(json_object_get(m, "params"), "requestId",
                                        json_string(k + 1));
                    json_object_set_new(s->pending, k, json_integer(-json_integer_value(pend)));
                    if (o)
                        o->cancelled++;
                    break;
                }
            }
        }
        mcpgw_access_log(c, req, 202, 0, user, NULL);
        respond(c, 202, NULL, NULL, NULL, 0, keep);
        if (s->ready)
            modern_forward(s, m);
        return;
    }
    if (!strcmp(method, "subscriptions/listen")) {
        /* what the server says on its own, as one SSE answer that lasts */
        if (!acc_sse) {
            respond_error(c, req, 406, JSONRPC_SERVER_ERROR,
                          "Not Acceptable: subscriptions/listen answers text/event-stream",
                          "not_acceptable", NULL, keep);
            return;
        }
        st = s->standalone ? s->standalone : stream_new(s, 1, 1);
        if (!st || st->conn) {
            respond_error(c, req, 409, JSONRPC_SERVER_ERROR,
                          "Conflict: this user already listens on this worker", "stream_busy",
                          NULL, keep);
            return;
        }
        mcpgw_access_log(c, req, 200, 0, user, NULL);
        stream_attach(st, c, keep);
        write_sse_head(c, s, keep);
        stream_replay(st, st->sent_seq);
        return;
    }

    /* a request: our id (and progress token) for it, the client's back in
     * the answer */
    sse = acc_sse && (!acc_json || ep->http_response == MCPGW_HTTP_RESPONSE_SSE);
    tok = json_object_get(json_object_get(json_object_get(m, "params"), "_meta"),
                          "progressToken");
    if (!sse && acc_sse && ep->http_response == MCPGW_HTTP_RESPONSE_AUTO && tok)
        sse = 1;
    st = stream_new(s, sse, 0);
    if (!st) {
        respond_error(c, req, 500, JSONRPC_SERVER_ERROR, "Internal Server Error", "out_of_memory",
                      NULL, keep);
        return;
    }
    snprintf(our, sizeof(our), "mcpgw-%llu", (unsigned long long)++s->next_gid);
    snprintf(key, sizeof(key), "s%s", our);
    json_object_set(s->orig, key, json_object_get(m, "id"));
    json_object_set_new(m, "id", json_string(our));
    json_object_set_new(s->pending, key, json_integer(st->no));
    st->pending = 1;
    if (tok) {
        snprintf(our, sizeof(our), "mcpgw-p%llu", (unsigned long long)s->next_gid);
        snprintf(key, sizeof(key), "s%s", our);
        json_object_set(s->orig_tok, key, tok);
        json_object_set_new(json_object_get(json_object_get(m, "params"), "_meta"),
                            "progressToken", json_string(our));
        json_object_set_new(s->progress, key, json_integer(st->no));
    }
    stream_attach(st, c, keep);
    mcpgw_access_log(c, req, 200, 0, user, NULL);
    if (sse) {
        char prime[64];
        int pn = snprintf(prime, sizeof(prime), "id: %u-0\nretry: 1000\ndata: \n\n", st->no);
        write_sse_head(c, s, keep);
        write_chunk(c, prime, (size_t)pn);
    }
    if (s->ready)
        modern_forward(s, m);      /* st may be gone when this returns */
    else
        json_array_append_new(s->queue, json_pack("[I, O]", (json_int_t)st->no, m));
}

static void handle_post(mcpgw_conn *c, const mcpgw_http_request *req,
                        const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx, const char *user,
                        json_t *claims, const char *body, size_t len, int keep)
{
    mcpgw_server *srv = c->srv;
    const mcpgw_str *ctype = mcpgw_http_header_get(req, "Content-Type");
    int acc_json = accepts(req, "application/json");
    int acc_sse = accepts(req, "text/event-stream");
    mcpgw_json_read_error jerr;
    json_t *msg = NULL, *m;
    mcpgw_mcp_session *s = NULL;
    mcpgw_mcp_stream *st;
    size_t n, i;
    int n_req = 0, init = 0, sse, status;
    const char *why = NULL;
    char key[256];

    if (!ctype || ctype->len < 16 || strncasecmp(ctype->p, "application/json", 16) != 0 ||
        (ctype->len > 16 && ctype->p[16] != ';' && ctype->p[16] != ' ')) {
        respond_error(c, req, 415, JSONRPC_SERVER_ERROR,
                      "Unsupported Media Type: Content-Type must be application/json",
                      "bad_content_type", NULL, keep);
        goto out;
    }
    if (!acc_json && !acc_sse) {
        respond_error(c, req, 406, JSONRPC_SERVER_ERROR,
                      "Not Acceptable: Client must accept both application/json and "
                      "text/event-stream", "not_acceptable", NULL, keep);
        goto out;
    }
    msg = mcpgw_json_read(body, len, &jerr);
    if (!msg) {
        respond_error(c, req, 400, JSONRPC_PARSE_ERROR, "Parse error", "bad_json", NULL, keep);
        goto out;
    }
    n = json_is_array(msg) ? json_array_size(msg) : 1;
    if (n == 0 || (!json_is_array(msg) && !json_is_object(msg))) {
        respond_error(c, req, 400, JSONRPC_INVALID_REQUEST, "Invalid Request", "bad_jsonrpc",
                      NULL, keep);
        goto out;
    }
    for (i = 0; i < n; i++) {
        int k;
        m = json_is_array(msg) ? json_array_get(msg, i) : msg;
        k = classify(m);
        if (!k) {
            respond_error(c, req, 400, JSONRPC_INVALID_REQUEST, "Invalid Request", "bad_jsonrpc",
                          NULL, keep);
            goto out;
        }
        n_req += k == 1;
        init |= k == 1 && is_initialize(m);
    }

    if (!init) {                    /* a 2026-07-28 client: no session */
        const mcpgw_str *pv = mcpgw_http_header_get(req, "MCP-Protocol-Version");
        const char *mv = json_is_object(msg)
                             ? meta_string(msg, "io.modelcontextprotocol/protocolVersion") : NULL;
        if (str_is(pv, MODERN) || (!pv && mv && !strcmp(mv, MODERN) &&
                                   !mcpgw_http_header_get(req, "Mcp-Session-Id"))) {
            handle_modern(c, req, ep, ctx, user, claims, msg, acc_json, acc_sse, keep);
            claims = NULL;
            goto out;
        }
    }
    if (init) {
        if (n != 1) {
            respond_error(c, req, 400, JSONRPC_INVALID_REQUEST,
                          "Invalid Request: initialize must be sent alone", "bad_initialize",
                          NULL, keep);
            goto out;
        }
        if (mcpgw_http_header_get(req, "Mcp-Session-Id")) {
            respond_error(c, req, 400, JSONRPC_INVALID_REQUEST,
                          "Invalid Request: initialize starts a session; send it without "
                          "Mcp-Session-Id", "bad_initialize", NULL, keep);
            goto out;
        }
        status = session_new(c, ep, ctx, user, claims, &s, &why);
        claims = NULL;
        if (status) {
            respond_error(c, req, status, JSONRPC_SERVER_ERROR,
                          status == 429 ? "Too Many Connections"
                          : status == 503 ? "Service Unavailable" : "Internal Server Error",
                          why, NULL, keep);
            goto out;
        }
    } else if (!(s = request_session(c, req, ep, user, keep))) {
        goto out;
    }

    if (n_req == 0) {               /* notifications and responses: 202 */
        for (i = 0; i < n; i++) {   /* a cancelled request answers nobody */
            const char *meth;
            json_t *rid, *v;
            m = json_is_array(msg) ? json_array_get(msg, i) : msg;
            meth = json_string_value(json_object_get(m, "method"));
            rid = json_object_get(json_object_get(m, "params"), "requestId");
            if (meth && strcmp(meth, "notifications/cancelled") == 0 && rid &&
                id_key(rid, key, sizeof(key)) && (v = json_object_get(s->pending, key)) &&
                json_integer_value(v) > 0) {
                mcpgw_mcp_stream *o = stream_find(s, (unsigned)json_integer_value(v));
                json_object_set_new(s->pending, key, json_integer(-json_integer_value(v)));
                if (o)
                    o->cancelled++;
            }
        }
        mcpgw_access_log(c, req, 202, 0, user, NULL);
        respond(c, 202, NULL, NULL, NULL, 0, keep);
        mcpgw_jsonrpc_deliver(s->vc, msg, body, len);
        goto out;
    }

    /* requests: an answer stream; SSE when the client takes it and wants
     * (or the endpoint says) so */
    sse = acc_sse && (!acc_json || ep->http_response == MCPGW_HTTP_RESPONSE_SSE);
    if (!sse && acc_sse && ep->http_response == MCPGW_HTTP_RESPONSE_AUTO)
        for (i = 0; i < n && !sse; i++) {
            m = json_is_array(msg) ? json_array_get(msg, i) : msg;
            sse = json_object_get(json_object_get(json_object_get(m, "params"), "_meta"),
                                  "progressToken") != NULL;
        }
    for (i = 0; i < n; i++) {       /* ids must be new in the session */
        m = json_is_array(msg) ? json_array_get(msg, i) : msg;
        if (classify(m) == 1 && id_key(json_object_get(m, "id"), key, sizeof(key)) &&
            json_object_get(s->pending, key)) {
            respond_error(c, req, 400, JSONRPC_INVALID_REQUEST,
                          "Invalid Request: a request with this id is still open", "duplicate_id",
                          NULL, keep);
            goto out;
        }
    }
    st = stream_new(s, sse, 0);
    if (!st) {
        respond_error(c, req, 500, JSONRPC_SERVER_ERROR, "Internal Server Error", "out_of_memory",
                      NULL, keep);
        goto out;
    }
    st->batch = json_is_array(msg);
    for (i = 0; i < n; i++) {
        json_t *tok;
        m = json_is_array(msg) ? json_array_get(msg, i) : msg;
        if (classify(m) != 1 || !id_key(json_object_get(m, "id"), key, sizeof(key)))
            continue;
        json_object_set_new(s->pending, key, json_integer(st->no));
        st->pending++;
        tok = json_object_get(json_object_get(json_object_get(m, "params"), "_meta"),
                              "progressToken");
        if (tok && id_key(tok, key, sizeof(key)))
            json_object_set_new(s->progress, key, json_integer(st->no));
    }
    stream_attach(st, c, keep);
    mcpgw_access_log(c, req, 200, 0, user, NULL);
    if (sse) {
        char prime[64];
        int pn = snprintf(prime, sizeof(prime), "id: %u-0\nretry: 1000\ndata: \n\n", st->no);
        write_sse_head(c, s, keep);
        write_chunk(c, prime, (size_t)pn);
    }
    (void)srv;
    /* the plugin may answer at once: st may be gone when this returns */
    mcpgw_jsonrpc_deliver(s->vc, msg, body, len);
out:
    json_decref(claims);
    json_decref(msg);
}

static void handle_get(mcpgw_conn *c, const mcpgw_http_request *req,
                       const mcpgw_handler_config *ep, const char *user, int keep)
{
    const mcpgw_str *last = mcpgw_http_header_get(req, "Last-Event-ID");
    mcpgw_mcp_session *s;
    mcpgw_mcp_stream *st;
    mcpgw_endpoint_stats *e;
    unsigned long long no = 0, seq = 0;
    char prime[64];
    int pn;

    if (!accepts(req, "text/event-stream")) {
        respond_error(c, req, 406, JSONRPC_SERVER_ERROR,
                      "Not Acceptable: Client must accept text/event-stream", "not_acceptable",
                      NULL, keep);
        return;
    }
    if (!(s = request_session(c, req, ep, user, keep)))
        return;
    if (last) {
        char buf[48];
        char *end;
        if (last->len == 0 || last->len >= sizeof(buf))
            goto bad_last;
        memcpy(buf, last->p, last->len);
        buf[last->len] = '\0';
        no = strtoull(buf, &end, 10);
        if (*end != '-' || end == buf)
            goto bad_last;
        seq = strtoull(end + 1, &end, 10);
        if (*end)
            goto bad_last;
        st = stream_find(s, (unsigned)no);
        if (!st || !st->sse) {
            respond_error(c, req, 404, JSONRPC_SERVER_ERROR,
                          "Stream not found: its events are gone", "stream_unknown", NULL, keep);
            return;
        }
    } else {
        st = s->standalone ? s->standalone : stream_new(s, 1, 1);
        if (!st) {
            respond_error(c, req, 500, JSONRPC_SERVER_ERROR, "Internal Server Error",
                          "out_of_memory", NULL, keep);
            return;
        }
        seq = st->sent_seq;         /* what nobody has read yet comes first */
    }
    if (st->conn) {
        respond_error(c, req, 409, JSONRPC_SERVER_ERROR,
                      "Conflict: Only one connection reads a stream at a time", "stream_busy",
                      NULL, keep);
        return;
    }
    mcpgw_access_log(c, req, 200, 0, user, NULL);
    stream_attach(st, c, keep);
    write_sse_head(c, s, keep);
    pn = snprintf(prime, sizeof(prime), "id: %u-%llu\nretry: 1000\ndata: \n\n", st->no, seq);
    write_chunk(c, prime, (size_t)pn);
    if (last && (e = ep_stats(c, ep))) {
        e->sse_resumed++;
        if (seq + 1 < st->next_seq && (!st->ev_head || st->ev_head->seq > seq + 1))
            e->sse_replay_gaps++;
    }
    stream_replay(st, seq);
    if (!st->standalone && !st->pending)
        stream_finish(st);          /* resumed after its last answer: that was all */
    return;
bad_last:
    respond_error(c, req, 400, JSONRPC_SERVER_ERROR, "Bad Request: malformed Last-Event-ID",
                  "bad_last_event_id", NULL, keep);
}

void mcpgw_mcp_http_request(mcpgw_conn *c, const mcpgw_http_request *req,
                            const mcpgw_handler_config *ep, const char *body, size_t body_len)
{
    mcpgw_server *srv = c->srv;
    char token[MAX_TOKEN];
    char user[256];
    json_t *claims = NULL;
    mcpgw_token_source tsrc;
    mcpgw_plugin_ctx *ctx;
    mcpgw_auth_result ar;
    long tlen;
    int keep = keep_alive(req);
    mcpgw_endpoint_stats *e = ep_stats(c, ep);

    c->endpoint = ep;               /* for the counters of its answers */
    if (e)
        e->http_requests[method_is(req, "POST")     ? 0
                         : method_is(req, "GET")    ? 1
                         : method_is(req, "DELETE") ? 2
                                                    : 3]++;

    if (!method_is(req, "POST") && !method_is(req, "GET") && !method_is(req, "DELETE")) {
        respond_error(c, req, 405, JSONRPC_SERVER_ERROR, "Method Not Allowed", "bad_method",
                      "Allow: GET, POST, DELETE\r\n", keep);
        return;
    }
    if (!origin_ok(c, req)) {
        respond_error(c, req, 403, JSONRPC_SERVER_ERROR, "Forbidden: Origin not allowed",
                      "origin_not_allowed", NULL, keep);
        return;
    }
    tlen = mcpgw_extract_token_from(req, token, sizeof(token), &tsrc);
    if (tlen <= 0) {
        respond_error(c, req, 401, JSONRPC_SERVER_ERROR,
                      tlen == 0 ? "Unauthorized: Missing token" : "Unauthorized: Invalid token",
                      tlen == 0 ? "missing_token" : "malformed_token",
                      tlen == 0 ? "WWW-Authenticate: Bearer realm=\"mcpgw\"\r\n"
                                : "WWW-Authenticate: Bearer realm=\"mcpgw\", error=\"invalid_token\"\r\n",
                      keep);
        return;
    }
    ar = mcpgw_auth_verify(&srv->gw->auth, token, mcpgw_clock_now(&srv->clock), &claims, user,
                           sizeof(user));
    memset(token, 0, sizeof(token));
    if (ar != MCPGW_AUTH_OK) {
        respond_error(c, req, 401, JSONRPC_SERVER_ERROR, "Unauthorized: Invalid token",
                      mcpgw_auth_result_name(ar),
                      "WWW-Authenticate: Bearer realm=\"mcpgw\", error=\"invalid_token\"\r\n",
                      keep);
        return;
    }
    c->valid_until = mcpgw_auth_valid_until(claims, srv->gw->cfg->leeway_s);
    if (ep->claim_name && !mcpgw_auth_claim_matches(claims, ep->claim_name, ep->claim_value)) {
        json_decref(claims);
        respond_error(c, req, 403, JSONRPC_SERVER_ERROR,
                      "Forbidden: this endpoint requires another claim", "claim_required",
                      "WWW-Authenticate: Bearer realm=\"mcpgw\", error=\"insufficient_scope\"\r\n",
                      keep);
        return;
    }
    ctx = mcpgw_plugins_find_section(&srv->plugins, ep);
    if (!ctx) {
        json_decref(claims);
        respond_error(c, req, 503, JSONRPC_SERVER_ERROR,
                      "Service Unavailable: endpoint plugin not loaded", "endpoint_unavailable",
                      NULL, keep);
        return;
    }

    if (method_is(req, "POST")) {
        handle_post(c, req, ep, ctx, user, claims, body, body_len, keep);
        return;
    }
    json_decref(claims);
    if (str_is(mcpgw_http_header_get(req, "MCP-Protocol-Version"), MODERN)) {
        respond_error(c, req, 405, JSONRPC_SERVER_ERROR,
                      "Method Not Allowed: 2026-07-28 has no sessions and no GET stream "
                      "(POST subscriptions/listen)", "bad_method", "Allow: POST\r\n", keep);
        return;
    }
    if (method_is(req, "GET")) {
        handle_get(c, req, ep, user, keep);
        return;
    }
    /* DELETE */
    {
        mcpgw_mcp_session *s = request_session(c, req, ep, user, keep);
        if (!s)
            return;
        mcpgw_access_log(c, req, 204, 0, user, NULL);
        respond(c, 204, NULL, NULL, NULL, 0, keep);
        session_end(s, "deleted");
    }
}

void mcpgw_mcp_http_conn_gone(mcpgw_conn *c)
{
    mcpgw_mcp_stream *st = c->mcp_stream;

    if (!st)
        return;
    stream_detach(st);
    /* a JSON answer cannot be resumed; an SSE stream waits for its reader
     * (a bounded number of them per session) */
    if (!st->sse) {
        if (st->pending == 0)
            stream_free(st);
        /* else: its answers still come, and go nowhere; freed at the last */
        return;
    }
    if (!st->standalone && st->pending && st->pending == st->cancelled) {
        stream_free(st);            /* nothing more will come for it */
        return;
    }
    prune_detached(st->s);
}

void mcpgw_mcp_http_keepalive(mcpgw_conn *c)
{
    mcpgw_mcp_stream *st = c->mcp_stream;

    if (st && st->sse)
        write_chunk(c, ":\n\n", 2 + 1);
}

void mcpgw_mcp_http_expire(mcpgw_conn *c)
{
    mcpgw_mcp_stream *st = c->mcp_stream;
    mcpgw_server *srv = c->srv;

    if (!st)
        return;
    if (c->valid_until > (long long)mcpgw_clock_now(&srv->clock)) {
        stream_attach_timer(c);     /* a far end: not yet */
        return;
    }
    if (mcpgw_log_enabled(&srv->gw->log, MCPGW_LOG_INFO))
        mcpgw_log_event(&srv->gw->log, MCPGW_LOG_INFO, "mcp_stream_token_expired",
                        json_pack("{s:s, s:s}", "endpoint", st->s->ep->type, "ip", c->peer),
                        mcpgw_clock_iso(&srv->clock));
    stream_detach(st);
    if (st->sse)                    /* the end of the chunked body: resumable */
        evbuffer_add(mcpgw_transport_out(c->transport), "0\r\n\r\n", 5);
    mcpgw_upgrade_http_done(c, 0);
    if (!st->sse && !st->pending)
        stream_free(st);
}

mcpgw_conn *mcpgw_mcp_http_next(mcpgw_server *srv, mcpgw_conn *after)
{
    mcpgw_mcp_session *s = after && after->mcp_session ? after->mcp_session->next
                                                       : srv->mcp_sessions;

    while (s && (s->ended || !s->vc))
        s = s->next;
    return s ? s->vc : NULL;
}

size_t mcpgw_mcp_http_end(mcpgw_server *srv, uint64_t id, const char *user)
{
    size_t n = 0;

    for (mcpgw_mcp_session *s = srv->mcp_sessions, *next; s; s = next) {
        next = s->next;
        if (s->ended || !s->vc || (user && strcmp(s->vc->user, user) != 0) ||
            (!user && s->vc->id != id))
            continue;
        session_end(s, "closed_by_admin");
        n++;
        next = srv->mcp_sessions;   /* ending may have changed the list */
    }
    return n;
}

void mcpgw_mcp_http_shutdown(mcpgw_server *srv)
{
    while (srv->mcp_sessions)
        session_end(srv->mcp_sessions, "shutdown");
}

void mcpgw_mcp_http_detach(mcpgw_server *srv, mcpgw_plugin_ctx *ctx)
{
    for (mcpgw_mcp_session *s = srv->mcp_sessions, *next; s; s = next) {
        next = s->next;
        if (s->vc && s->vc->ep_ctx == ctx)
            session_end(s, "endpoint_removed");
    }
}
