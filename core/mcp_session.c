/*
 * mcp_session.c - Streamable HTTP sessions and their streams: a session is
 * what the endpoint's plugin sees as one connection (a session conn, conn.h,
 * without a transport); its streams carry the answers, each SSE event
 * numbered and kept (replay_bytes) for a client that resumes with
 * Last-Event-ID; what the plugin sends is routed here to the right stream.
 * Sessions end on DELETE, idleness, the plugin's close, the admin API or
 * shutdown. See mcp_http.h and mcp_internal.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "cluster.h"
#include "conn_limits.h"
#include "http_upgrade.h"
#include "json_read.h"
#include "log.h"
#include "mcp_internal.h"
#include "plugin_loader.h"
#include "protocol.h"
#include "server.h"
#include "transport.h"
#include "worker_board.h"

#define MAX_DETACHED_STREAMS 16 /* per session: SSE answers whose reader left */

static void stream_free(mcpgw_mcp_stream *st);
static void prune_detached(mcpgw_mcp_session *s);

mcpgw_endpoint_stats *mcpgw_mcp_ep_stats(const mcpgw_conn *c, const mcpgw_handler_config *ep)
{
    return ep ? mcpgw_stats_endpoint(c->srv->stats, ep->type) : NULL;
}

void mcpgw_mcp_count_status(mcpgw_conn *c, int status)
{
    mcpgw_endpoint_stats *e = mcpgw_mcp_ep_stats(c, c->endpoint);
    int i = 0;

    if (!e)
        return;
    while (i < MCPGW_EP_HTTP_CODES - 1 && mcpgw_endpoint_http_codes[i] != status)
        i++;
    e->http_responses[i]++;
}

/* SSE: one chunk of the chunked body. */
void mcpgw_mcp_write_chunk(mcpgw_conn *c, const char *p, size_t n)
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

void mcpgw_mcp_write_sse_head(mcpgw_conn *c, const mcpgw_mcp_session *s, int keep)
{
    char sh[80];

    mcpgw_mcp_count_status(c, 200);
    evbuffer_add_printf(mcpgw_transport_out(c->transport),
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/event-stream\r\n"
                        "Cache-Control: no-cache\r\n"
                        "%s"
                        "Transfer-Encoding: chunked\r\n"
                        "%s\r\n",
                        session_header(s, sh, sizeof(sh)), keep ? "" : "Connection: close\r\n");
}

/* A request id or progress token as a map key ("s..." or "n..."); 0 when
 * it is neither a string nor an integer. */
int mcpgw_mcp_id_key(const json_t *id, char *out, size_t cap)
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

mcpgw_mcp_stream *mcpgw_mcp_stream_find(mcpgw_mcp_session *s, unsigned no)
{
    for (mcpgw_mcp_stream *st = s->streams; st; st = st->next)
        if (st->no == no)
            return st;
    return NULL;
}

mcpgw_mcp_stream *mcpgw_mcp_stream_new(mcpgw_mcp_session *s, int sse, int standalone)
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
        mcpgw_conn_start_linger(c, left <= 0      ? 0
                                   : left > 86400 ? 86400000
                                                  : (int)(left * 1000 + 1000));
    }
}

void mcpgw_mcp_stream_attach(mcpgw_mcp_stream *st, mcpgw_conn *c, int keep)
{
    mcpgw_endpoint_stats *e = st->sse ? mcpgw_mcp_ep_stats(c, st->s->ep) : NULL;

    if (e)
        e->sse_streams_open++;
    st->conn = c;
    st->keep = keep;
    c->mcp_stream = st;
    /* a stream lasts as long as it has to, or until the token that opened
     * it ends (c->valid_until, set by the request) */
    stream_attach_timer(c);
}

void mcpgw_mcp_stream_open(mcpgw_mcp_stream *st, mcpgw_conn *c, int keep, uint64_t seq)
{
    mcpgw_mcp_stream_attach(st, c, keep);
    if (st->sse) {
        char prime[64];
        int n = snprintf(prime, sizeof(prime), "id: %u-%llu\nretry: 1000\ndata: \n\n", st->no,
                         (unsigned long long)seq);

        mcpgw_mcp_write_sse_head(c, st->s, keep);
        mcpgw_mcp_write_chunk(c, prime, (size_t)n);
    }
}

static void stream_detach(mcpgw_mcp_stream *st)
{
    if (st->conn) {
        mcpgw_endpoint_stats *e = st->sse ? mcpgw_mcp_ep_stats(st->conn, st->s->ep) : NULL;
        if (e && e->sse_streams_open)
            e->sse_streams_open--;
        st->conn->mcp_stream = NULL;
        st->conn = NULL;
    }
}

/* Writes the kept events after `after` to the stream's connection. */
void mcpgw_mcp_stream_replay(mcpgw_mcp_stream *st, uint64_t after)
{
    for (mcpgw_mcp_event *e = st->ev_head; e; e = e->next)
        if (e->seq > after) {
            mcpgw_mcp_write_chunk(st->conn, e->text, e->len);
            st->sent_seq = e->seq;
        }
}

/* The stream has said everything (or its session ended): the answer is
 * finished where someone reads it; a stream that nobody reads keeps its
 * events for a Last-Event-ID until the session ends. */
void mcpgw_mcp_finish_cancelled(mcpgw_mcp_session *s)
{
    for (mcpgw_mcp_stream *st = s->streams, *next; st; st = next) {
        next = st->next;
        /* an SSE answer stays open, as the reference SDK server keeps it:
         * a client that sees it end without its answer resumes it (and
         * would find nothing); it goes with its connection */
        if (!st->sse && st->pending && st->pending == st->cancelled)
            mcpgw_mcp_stream_finish(st);
    }
}

void mcpgw_mcp_stream_finish(mcpgw_mcp_stream *st)
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
    } else if (!st->n_json) { /* every request cancelled: nothing to say */
        mcpgw_mcp_respond(c, 202, NULL, NULL, NULL, 0, keep);
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
        mcpgw_mcp_count_status(c, 200);
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
            oldest = o; /* the list is newest first */
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
    json_object_foreach_safe(s->pending, tmp, key, v)
    {
        json_int_t no = json_integer_value(v);
        if (no && (no < 0 ? -no : no) == (json_int_t)st->no) {
            if (s->orig)
                json_object_del(s->orig, key);
            json_object_del(s->pending, key);
        }
    }
    json_object_foreach_safe(s->progress, tmp, key, v)
    {
        if (json_integer_value(v) == (json_int_t)st->no) {
            if (s->orig_tok)
                json_object_del(s->orig_tok, key);
            json_object_del(s->progress, key);
        }
    }
    while (st->ev_head) {
        mcpgw_mcp_event *e = st->ev_head;
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
    mcpgw_mcp_event *e;
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
        mcpgw_mcp_write_chunk(st->conn, e->text, e->len);
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
        mcpgw_mcp_event *old = st->ev_head;
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

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_mcp_session *s = arg;
    struct timeval tv = {s->ep->session_idle_ms / 1000, (s->ep->session_idle_ms % 1000) * 1000};

    (void)fd;
    (void)what;
    for (mcpgw_mcp_stream *st = s->streams; st; st = st->next)
        if (st->conn) { /* someone still reads it: not idle */
            evtimer_add(s->idle_ev, &tv);
            return;
        }
    mcpgw_mcp_session_end(s, "idle");
}

void mcpgw_mcp_session_touch(mcpgw_mcp_session *s)
{
    struct timeval tv = {s->ep->session_idle_ms / 1000, (s->ep->session_idle_ms % 1000) * 1000};

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
    mcpgw_mcp_session_end(lru, "evicted_for_new_session");
    return 1;
}

mcpgw_mcp_session *mcpgw_mcp_session_find(mcpgw_server *srv, const mcpgw_str *id)
{
    if (!id || id->len != MCPGW_MCP_SESSION_ID_HEX)
        return NULL;
    for (mcpgw_mcp_session *s = srv->mcp_sessions; s; s = s->next)
        if (!s->ended && memcmp(s->id, id->p, MCPGW_MCP_SESSION_ID_HEX) == 0)
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
void mcpgw_mcp_session_end(mcpgw_mcp_session *s, const char *why)
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
    json_object_foreach(s->pending, key, v)
    {
        json_int_t no = json_integer_value(v);
        mcpgw_mcp_stream *st = mcpgw_mcp_stream_find(s, (unsigned)(no < 0 ? -no : no));
        json_t *err;
        char *t;

        if (!st || no < 0)
            continue;
        /* the client's own id (a 2026 request's was rewritten) */
        err = json_pack("{s:s, s:o, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                        s->orig && json_object_get(s->orig, key)
                            ? json_incref(json_object_get(s->orig, key))
                        : key[0] == 's' ? json_string(key + 1)
                                        : json_integer(strtoll(key + 1, NULL, 10)),
                        "error", "code", MCPGW_JSONRPC_SERVER_ERROR, "message", "Session ended");
        t = err ? json_dumps(err, JSON_COMPACT) : NULL;
        if (t)
            stream_say(st, t, strlen(t));
        free(t);
        json_decref(err);
    }
    while (s->streams) {
        mcpgw_mcp_stream *st = s->streams;
        mcpgw_mcp_stream_finish(st); /* frees it */
    }
    if (vc) {
        vc->state = MCPGW_CONN_GONE;
        if (vc->protocol && vc->protocol->closed)
            vc->protocol->closed(vc, MCPGW_WS_CLOSE_NORMAL);
        if (vc->holds_user_slot) {
            mcpgw_limits_release(srv->gw->limits, vc->user, srv->worker_id);
            vc->holds_user_slot = 0;
        }
        if (vc->lease && srv->cluster)
            mcpgw_cluster_release(srv->cluster, vc, vc->user);
    }
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "mcp_session_ended", "{s:s, s:s, s:I, s:s}", "user",
                     vc && vc->user ? vc->user : "", "endpoint", s->ep->type, "connection",
                     (json_int_t)(vc ? vc->id : 0), "reason", why);
    session_free(s);
    mcpgw_server_conn_gone(srv);
}

static void session_end_posted(void *arg)
{
    mcpgw_conn *vc = arg;

    if (vc->mcp_session)
        mcpgw_mcp_session_end(vc->mcp_session, "closed_by_plugin");
    mcpgw_conn_unref(vc);
}

/* Creates a session for user (claims: owned) and opens the plugin's side.
 * 0, or the HTTP status to refuse with (*why its reason). */
/* The cluster-wide limit (cluster.h) before a session is made for user: 0
 * to go on (c->lease is held when Redis granted one), MCPGW_MCP_WAIT while
 * Redis decides (the request stays buffered and is read again with the
 * verdict), or the HTTP status to refuse with. At the limit, one of the
 * user's idle sessions here makes room as for the local limit. */
static int cluster_admit(mcpgw_conn *c, const char *user, const char **why)
{
    mcpgw_server *srv = c->srv;
    int v = c->cluster_verdict;

    c->cluster_verdict = MCPGW_CLUSTER_UNDECIDED; /* the next request asks again */
    if (v == MCPGW_CLUSTER_FULL && session_evict_for(srv, user))
        v = MCPGW_CLUSTER_UNDECIDED; /* its lease went first: ask again */
    if (v == MCPGW_CLUSTER_UNDECIDED) {
        if (mcpgw_cluster_acquire(srv->cluster, c, user) == 0)
            return MCPGW_MCP_WAIT;
        v = MCPGW_CLUSTER_DOWN;
    }
    if (v == MCPGW_CLUSTER_FULL) {
        *why = "connection_limit";
        return 429;
    }
    if (v == MCPGW_CLUSTER_DOWN) {
        srv->metrics->cluster_upgrades_redis_down++;
        if (srv->gw->cfg->cluster_reject_when_down) {
            *why = "cluster_unavailable";
            return 503;
        }
    }
    return 0;
}

int mcpgw_mcp_session_new(mcpgw_conn *c, const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx,
                          const char *user, json_t *claims, mcpgw_mcp_session **out,
                          const char **why)
{
    mcpgw_server *srv = c->srv;
    mcpgw_mcp_session *s = NULL;
    mcpgw_conn *vc = NULL;
    mcpgw_endpoint_stats *e;
    unsigned char rnd[MCPGW_MCP_SESSION_ID_HEX / 2];
    int count = 0;
    mcpgw_limit_result lr;

    if (srv->shutting_down) {
        *why = "shutting_down";
        json_decref(claims);
        return 503;
    }
    if (srv->cluster) {
        int w = cluster_admit(c, user, why);
        if (w) {
            json_decref(claims);
            return w;
        }
    }
    lr = mcpgw_limits_acquire(srv->gw->limits, user, srv->worker_id,
                              srv->gw->cfg->max_connections_per_user, srv->gw->cfg->max_connections,
                              &count);
    if (lr == MCPGW_LIMIT_USER && session_evict_for(srv, user))
        lr = mcpgw_limits_acquire(srv->gw->limits, user, srv->worker_id,
                                  srv->gw->cfg->max_connections_per_user,
                                  srv->gw->cfg->max_connections, &count);
    if (lr != MCPGW_LIMIT_OK) {
        if (c->lease && srv->cluster)   /* granted cluster-wide, refused here */
            mcpgw_cluster_release(srv->cluster, c, user);
        json_decref(claims);
        *why = lr == MCPGW_LIMIT_SERVER  ? "server_full"
               : lr == MCPGW_LIMIT_ERROR ? "bad_user_id"
                                         : "connection_limit";
        return lr == MCPGW_LIMIT_SERVER ? 503 : lr == MCPGW_LIMIT_ERROR ? 500 : 429;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) || !(s = calloc(1, sizeof(*s))) ||
        !(vc = calloc(1, sizeof(*vc))) || !(vc->user = strdup(user)) ||
        !(s->pending = json_object()) || !(s->progress = json_object()) ||
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
    vc->peer = c->peer;
    vc->claims = claims;
    claims = NULL;
    vc->holds_user_slot = 1;
    vc->protocol = &mcpgw_protocol_jsonrpc;
    mcpgw_conn_set_endpoint(vc, ep);
    vc->ep_ctx = ctx;
    vc->mcp_session = s;
    if (srv->cluster) { /* the cluster lease is the session's from now on */
        if (c->lease) {
            vc->lease = c->lease;
            vc->lease_user = c->lease_user;
            c->lease = c->lease_user = NULL;
        } else {
            /* Redis was away: the next refresh writes it */
            mcpgw_cluster_hold(srv->cluster, vc, user);
        }
    }
    if ((e = mcpgw_stats_endpoint(srv->stats, ep->type)))
        e->http_sessions_open++;

    s->next = srv->mcp_sessions;
    if (srv->mcp_sessions)
        srv->mcp_sessions->prev = s;
    srv->mcp_sessions = s;
    srv->n_mcp_sessions++;
    mcpgw_mcp_session_touch(s);

    vc->protocol->opened(vc); /* the plugin's conn_open */
    if (!vc->ep_opened || s->ended || s->end_posted) {
        *why = "endpoint_unavailable";
        mcpgw_mcp_session_end(s, "open_failed");
        return 503;
    }
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "mcp_session_started", "{s:s, s:s, s:I, s:s, s:i}",
                     "user", user, "endpoint", ep->type, "connection", (json_int_t)vc->id, "ip",
                     mcpgw_conn_peer(c), "connections", count);
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
    if (c->lease && srv->cluster)
        mcpgw_cluster_release(srv->cluster, c, user);
    *why = "out_of_memory";
    return 500;
}

/* Where a message the session's plugin sends goes. */
void mcpgw_mcp_route(mcpgw_mcp_session *s, json_t *msg, const char *text, size_t len)
{
    json_t *method = json_object_get(msg, "method");
    json_t *id = json_object_get(msg, "id");
    mcpgw_mcp_stream *st = NULL;
    char key[1024];

    if (!method && id) { /* a response: to its request's stream */
        json_t *v;
        json_int_t no;

        if (!mcpgw_mcp_id_key(id, key, sizeof(key)) || !(v = json_object_get(s->pending, key)))
            return; /* nobody asked (or the stream is gone) */
        no = json_integer_value(v);
        if (no == 0) { /* the hidden session's own initialize */
            json_object_del(s->pending, key);
            mcpgw_mcp_stateless_ready(s, msg);
            return;
        }
        st = mcpgw_mcp_stream_find(s, (unsigned)(no < 0 ? -no : no));
        json_object_del(s->pending, key);
        if (!st)
            return;
        if (s->stateless) { /* the client's id back, and 2026's resultType */
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
        if (!s->version[0]) { /* initialize's answer names the revision */
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
            mcpgw_mcp_stream_finish(st);
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
        if (tok && mcpgw_mcp_id_key(tok, key, sizeof(key)) &&
            (v = json_object_get(s->progress, key)))
            st = mcpgw_mcp_stream_find(s, (unsigned)json_integer_value(v));
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
        st = s->standalone ? s->standalone : mcpgw_mcp_stream_new(s, 1, 1);
    if (!st)
        return;
    if (!st->sse) { /* a JSON answer cannot carry it */
        st = s->standalone ? s->standalone : mcpgw_mcp_stream_new(s, 1, 1);
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
    if (json_is_array(msg)) { /* a batch answer: each on its own */
        size_t i;
        json_t *m;
        json_array_foreach(msg, i, m)
        {
            char *t = json_is_object(m) ? json_dumps(m, JSON_COMPACT) : NULL;
            if (t)
                mcpgw_mcp_route(s, m, t, strlen(t));
            free(t);
            if (s->ended)
                break;
        }
    } else if (json_is_object(msg)) {
        mcpgw_mcp_route(s, msg, text, len);
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

void mcpgw_mcp_http_conn_gone(mcpgw_conn *c)
{
    mcpgw_mcp_stream *st = c->mcp_stream;

    if (!st)
        return;
    stream_detach(st);
    /* a JSON answer cannot be resumed; an SSE stream waits for its reader
     * (a bounded number of them per session) */
    if (!st->sse) {
        if (st->pending == st->cancelled) /* nothing more will come for it */
            stream_free(st);
        /* else: its answers still come, and go nowhere; freed at the last */
        return;
    }
    if (!st->standalone && st->pending && st->pending == st->cancelled) {
        stream_free(st); /* nothing more will come for it */
        return;
    }
    prune_detached(st->s);
}

void mcpgw_mcp_http_keepalive(mcpgw_conn *c)
{
    mcpgw_mcp_stream *st = c->mcp_stream;

    if (st && st->sse)
        mcpgw_mcp_write_chunk(c, ":\n\n", 2 + 1);
}

void mcpgw_mcp_http_expire(mcpgw_conn *c)
{
    mcpgw_mcp_stream *st = c->mcp_stream;
    mcpgw_server *srv = c->srv;

    if (!st)
        return;
    if (c->valid_until > (long long)mcpgw_clock_now(&srv->clock)) {
        stream_attach_timer(c); /* a far end: not yet */
        return;
    }
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "mcp_stream_token_expired", "{s:s, s:s}", "endpoint",
                     st->s->ep->type, "ip", mcpgw_conn_peer(c));
    stream_detach(st);
    if (st->sse) /* the end of the chunked body: resumable */
        evbuffer_add(mcpgw_transport_out(c->transport), "0\r\n\r\n", 5);
    mcpgw_upgrade_http_done(c, 0);
    if (!st->sse && !st->pending)
        stream_free(st);
}

mcpgw_conn *mcpgw_mcp_http_next(mcpgw_server *srv, mcpgw_conn *after)
{
    mcpgw_mcp_session *s =
        after && after->mcp_session ? after->mcp_session->next : srv->mcp_sessions;

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
        mcpgw_mcp_session_end(s, "closed_by_admin");
        n++;
        next = srv->mcp_sessions; /* ending may have changed the list */
    }
    return n;
}

void mcpgw_mcp_http_shutdown(mcpgw_server *srv)
{
    while (srv->mcp_sessions)
        mcpgw_mcp_session_end(srv->mcp_sessions, "shutdown");
}

void mcpgw_mcp_http_detach(mcpgw_server *srv, mcpgw_plugin_ctx *ctx)
{
    for (mcpgw_mcp_session *s = srv->mcp_sessions, *next; s; s = next) {
        next = s->next;
        if (s->vc && s->vc->ep_ctx == ctx)
            mcpgw_mcp_session_end(s, "endpoint_removed");
    }
}
