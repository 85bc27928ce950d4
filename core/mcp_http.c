/*
 * mcp_http.c - MCP Streamable HTTP on a jsonrpc endpoint, the request side:
 * which requests are ours, their checks (method, Origin, token, claim,
 * Accept, Content-Type, session, protocol version), and POST, GET and
 * DELETE; sessions and streams are mcp_session.c's, the 2026-07-28
 * revision mcp_stateless.c's. See mcp_http.h.
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

#include <event2/buffer.h>
#include <jansson.h>

#include "access_log.h"
#include "auth.h"
#include "plugin_abi.h"
#include "handshake.h"
#include "http_upgrade.h"
#include "json_read.h"
#include "log.h"
#include "mcp_internal.h"
#include "plugin_loader.h"
#include "protocol.h"
#include "server.h"
#include "worker_board.h"

#define MAX_TOKEN 8192

/* The revisions this transport serves (MCP-Protocol-Version). */
static const char *const versions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25",
                                       MCPGW_MCP_STATELESS};

/* A complete answer with a body; then the connection is free again (keep)
 * or closes. */
void mcpgw_mcp_respond(mcpgw_conn *c, int status, const char *ctype, const char *extra,
                       const char *body, size_t len, int keep)
{
    struct evbuffer *out = mcpgw_transport_out(c->transport);

    char clen[48] = "";

    if (status != 204) /* RFC 9110 8.6: none on a 204 */
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
    if (len && !c->http_head)
        evbuffer_add(out, body, len);
    mcpgw_mcp_count_status(c, status);
    mcpgw_upgrade_http_done(c, keep);
}

/* An error answer: a JSON-RPC error object (id null), logged once. */
void mcpgw_mcp_respond_error(mcpgw_conn *c, const mcpgw_http_request *req, int status, int code,
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
        json_t *f = json_pack("{s:s, s:i, s:s}", "reason", reason, "status", status, "ip",
                              mcpgw_conn_peer(c));
        if (f && req) {
            json_object_set_new(f, "method", json_stringn(req->method.p, req->method.len));
            json_object_set_new(f, "path", json_stringn(req->path.p, req->path.len));
        }
        mcpgw_log_event(&srv->gw->log, level, "mcp_http_rejected", f, mcpgw_clock_iso(&srv->clock));
    }
    mcpgw_access_log(c, req, status, text ? strlen(text) : 0, c->user, reason);
    mcpgw_mcp_respond(c, status, "application/json", extra, text ? text : "",
                      text ? strlen(text) : 0, keep);
    free(text);
    json_decref(j);
}

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

    if (!gw->bus || !gw->board || !sid || sid->len != MCPGW_MCP_SESSION_ID_HEX)
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
        v = v * 10 + (unsigned)(cl->p[i] - '0'); /* digits only: http_check_framing */
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
        mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_SERVER_ERROR,
                                "Bad Request: Mcp-Session-Id header is required", "session_missing",
                                NULL, keep);
        return NULL;
    }
    s = mcpgw_mcp_session_find(c->srv, sid);
    /* another user's session is as unknown as an ended one; a session begun
     * before a reload keeps its section (its snapshot), so endpoints are
     * compared by name */
    if (!s || strcmp(s->ep->type, ep->type) != 0 || strcmp(s->vc->user, user) != 0) {
        mcpgw_mcp_respond_error(c, req, 404, MCPGW_JSONRPC_SERVER_ERROR, "Session not found",
                                "session_unknown", NULL, keep);
        return NULL;
    }
    if (ver &&
        (!version_known(ver) || (s->version[0] && (ver->len != strlen(s->version) ||
                                                   memcmp(ver->p, s->version, ver->len) != 0)))) {
        mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_SERVER_ERROR,
                                "Bad Request: Unsupported protocol version", "bad_protocol_version",
                                NULL, keep);
        return NULL;
    }
    mcpgw_mcp_session_touch(s);
    return s;
}

/* Checks a message's shape: 1 request, 2 notification, 3 response, 0 bad. */
int mcpgw_mcp_classify(const json_t *m)
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
        return !json_is_string(method) ? 0
               : id                    ? (json_is_string(id) || json_is_integer(id) ? 1 : 0)
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

int mcpgw_mcp_header_is(const mcpgw_str *h, const char *v)
{
    return h && v && h->len == strlen(v) && memcmp(h->p, v, h->len) == 0;
}

static int handle_post(mcpgw_conn *c, const mcpgw_http_request *req,
                        const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx, const char *user,
                        json_t *claims, const char *body, size_t len, int keep)
{
    const mcpgw_str *ctype = mcpgw_http_header_get(req, "Content-Type");
    int acc_json = accepts(req, "application/json");
    int acc_sse = accepts(req, "text/event-stream");
    mcpgw_json_read_error jerr;
    json_t *msg = NULL, *m;
    mcpgw_mcp_session *s = NULL;
    mcpgw_mcp_stream *st;
    size_t n, i;
    int n_req = 0, init = 0, sse, status, wait = 0;
    json_t *seen = NULL;
    const char *why = NULL;
    char key[1024];

    if (!ctype || ctype->len < 16 || strncasecmp(ctype->p, "application/json", 16) != 0 ||
        (ctype->len > 16 && ctype->p[16] != ';' && ctype->p[16] != ' ')) {
        mcpgw_mcp_respond_error(c, req, 415, MCPGW_JSONRPC_SERVER_ERROR,
                                "Unsupported Media Type: Content-Type must be application/json",
                                "bad_content_type", NULL, keep);
        goto out;
    }
    if (!acc_json && !acc_sse) {
        mcpgw_mcp_respond_error(c, req, 406, MCPGW_JSONRPC_SERVER_ERROR,
                                "Not Acceptable: Client must accept both application/json and "
                                "text/event-stream",
                                "not_acceptable", NULL, keep);
        goto out;
    }
    msg = mcpgw_json_read(body, len, &jerr);
    if (!msg) {
        mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_PARSE_ERROR, "Parse error", "bad_json",
                                NULL, keep);
        goto out;
    }
    n = json_is_array(msg) ? json_array_size(msg) : 1;
    if (n == 0 || (!json_is_array(msg) && !json_is_object(msg))) {
        mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST, "Invalid Request",
                                "bad_jsonrpc", NULL, keep);
        goto out;
    }
    for (i = 0; i < n; i++) {
        int k;
        m = json_is_array(msg) ? json_array_get(msg, i) : msg;
        k = mcpgw_mcp_classify(m);
        if (!k) {
            mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST, "Invalid Request",
                                    "bad_jsonrpc", NULL, keep);
            goto out;
        }
        n_req += k == 1;
        init |= k == 1 && is_initialize(m);
    }

    if (!init) { /* a 2026-07-28 client: no session */
        const mcpgw_str *pv = mcpgw_http_header_get(req, "MCP-Protocol-Version");
        const char *mv = json_is_object(msg)
                             ? mcpgw_mcp_meta_string(msg, "io.modelcontextprotocol/protocolVersion")
                             : NULL;
        if (mcpgw_mcp_header_is(pv, MCPGW_MCP_STATELESS) ||
            (!pv && mv && !strcmp(mv, MCPGW_MCP_STATELESS) &&
             !mcpgw_http_header_get(req, "Mcp-Session-Id"))) {
            wait = mcpgw_mcp_stateless_post(c, req, ep, ctx, user, claims, msg, acc_json, acc_sse,
                                            keep);
            claims = NULL;
            goto out;
        }
    }
    if (init) {
        if (n != 1) {
            mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST,
                                    "Invalid Request: initialize must be sent alone",
                                    "bad_initialize", NULL, keep);
            goto out;
        }
        if (mcpgw_http_header_get(req, "Mcp-Session-Id")) {
            mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST,
                                    "Invalid Request: initialize starts a session; send it without "
                                    "Mcp-Session-Id",
                                    "bad_initialize", NULL, keep);
            goto out;
        }
        status = mcpgw_mcp_session_new(c, ep, ctx, user, claims, &s, &why);
        claims = NULL;
        if (status == MCPGW_MCP_WAIT) {
            wait = 1;
            goto out;
        }
        if (status) {
            mcpgw_mcp_respond_error(c, req, status, MCPGW_JSONRPC_SERVER_ERROR,
                                    status == 429   ? "Too Many Connections"
                                    : status == 503 ? "Service Unavailable"
                                                    : "Internal Server Error",
                                    why, NULL, keep);
            goto out;
        }
    } else if (!(s = request_session(c, req, ep, user, keep))) {
        goto out;
    }

    if (n_req == 0) {             /* notifications and responses: 202 */
        for (i = 0; i < n; i++) { /* a cancelled request answers nobody */
            const char *meth;
            json_t *rid, *v;
            m = json_is_array(msg) ? json_array_get(msg, i) : msg;
            meth = json_string_value(json_object_get(m, "method"));
            rid = json_object_get(json_object_get(m, "params"), "requestId");
            if (meth && strcmp(meth, "notifications/cancelled") == 0 && rid &&
                mcpgw_mcp_id_key(rid, key, sizeof(key)) && (v = json_object_get(s->pending, key)) &&
                json_integer_value(v) > 0) {
                mcpgw_mcp_stream *o = mcpgw_mcp_stream_find(s, (unsigned)json_integer_value(v));
                json_object_set_new(s->pending, key, json_integer(-json_integer_value(v)));
                if (o)
                    o->cancelled++;
            }
        }
        mcpgw_access_log(c, req, 202, 0, user, NULL);
        mcpgw_mcp_respond(c, 202, NULL, NULL, NULL, 0, keep);
        mcpgw_jsonrpc_deliver(s->vc, msg, body, len);
        mcpgw_mcp_finish_cancelled(s); /* after the plugin heard of it */
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
    /* ids must be new in the session and in the batch, and of a size we keep */
    if (!(seen = json_object()))
        goto out;
    for (i = 0; i < n; i++) {
        m = json_is_array(msg) ? json_array_get(msg, i) : msg;
        if (mcpgw_mcp_classify(m) != 1)
            continue;
        if (!mcpgw_mcp_id_key(json_object_get(m, "id"), key, sizeof(key))) {
            mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST,
                                    "Invalid Request: an id of at most 1000 bytes",
                                    "bad_id", NULL, keep);
            goto out;
        }
        if (json_object_get(s->pending, key) || json_object_get(seen, key)) {
            mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST,
                                    "Invalid Request: a request with this id is still open",
                                    "duplicate_id", NULL, keep);
            goto out;
        }
        json_object_set_new(seen, key, json_true());
    }
    st = mcpgw_mcp_stream_new(s, sse, 0);
    if (!st) {
        mcpgw_mcp_respond_error(c, req, 500, MCPGW_JSONRPC_SERVER_ERROR, "Internal Server Error",
                                "out_of_memory", NULL, keep);
        goto out;
    }
    st->batch = json_is_array(msg);
    for (i = 0; i < n; i++) {
        json_t *tok;
        m = json_is_array(msg) ? json_array_get(msg, i) : msg;
        if (mcpgw_mcp_classify(m) != 1 ||
            !mcpgw_mcp_id_key(json_object_get(m, "id"), key, sizeof(key)))
            continue;
        json_object_set_new(s->pending, key, json_integer(st->no));
        st->pending++;
        tok = json_object_get(json_object_get(json_object_get(m, "params"), "_meta"),
                              "progressToken");
        if (tok && mcpgw_mcp_id_key(tok, key, sizeof(key)))
            json_object_set_new(s->progress, key, json_integer(st->no));
    }
    mcpgw_access_log(c, req, 200, 0, user, NULL);
    mcpgw_mcp_stream_open(st, c, keep, 0);
    /* the plugin may answer at once: st may be gone when this returns */
    mcpgw_jsonrpc_deliver(s->vc, msg, body, len);
out:
    json_decref(seen);
    json_decref(claims);
    json_decref(msg);
    return wait;
}

static void handle_get(mcpgw_conn *c, const mcpgw_http_request *req, const mcpgw_handler_config *ep,
                       const char *user, int keep)
{
    const mcpgw_str *last = mcpgw_http_header_get(req, "Last-Event-ID");
    mcpgw_mcp_session *s;
    mcpgw_mcp_stream *st;
    mcpgw_endpoint_stats *e;
    unsigned long long no = 0, seq = 0;

    if (!accepts(req, "text/event-stream")) {
        mcpgw_mcp_respond_error(c, req, 406, MCPGW_JSONRPC_SERVER_ERROR,
                                "Not Acceptable: Client must accept text/event-stream",
                                "not_acceptable", NULL, keep);
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
        st = mcpgw_mcp_stream_find(s, (unsigned)no);
        if (!st || !st->sse) {
            mcpgw_mcp_respond_error(c, req, 404, MCPGW_JSONRPC_SERVER_ERROR,
                                    "Stream not found: its events are gone", "stream_unknown", NULL,
                                    keep);
            return;
        }
    } else {
        st = s->standalone ? s->standalone : mcpgw_mcp_stream_new(s, 1, 1);
        if (!st) {
            mcpgw_mcp_respond_error(c, req, 500, MCPGW_JSONRPC_SERVER_ERROR,
                                    "Internal Server Error", "out_of_memory", NULL, keep);
            return;
        }
        seq = st->sent_seq; /* what nobody has read yet comes first */
    }
    if (st->conn) {
        mcpgw_mcp_respond_error(c, req, 409, MCPGW_JSONRPC_SERVER_ERROR,
                                "Conflict: Only one connection reads a stream at a time",
                                "stream_busy", NULL, keep);
        return;
    }
    mcpgw_access_log(c, req, 200, 0, user, NULL);
    mcpgw_mcp_stream_open(st, c, keep, seq);
    if (last && (e = mcpgw_mcp_ep_stats(c, ep))) {
        e->sse_resumed++;
        if (seq + 1 < st->next_seq && (!st->ev_head || st->ev_head->seq > seq + 1))
            e->sse_replay_gaps++;
    }
    mcpgw_mcp_stream_replay(st, seq);
    if (!st->standalone && !st->pending)
        mcpgw_mcp_stream_finish(st); /* resumed after its last answer: that was all */
    return;
bad_last:
    mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_SERVER_ERROR,
                            "Bad Request: malformed Last-Event-ID", "bad_last_event_id", NULL,
                            keep);
}

int mcpgw_mcp_http_request(mcpgw_conn *c, const mcpgw_http_request *req,
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
    mcpgw_endpoint_stats *e = mcpgw_mcp_ep_stats(c, ep);

    mcpgw_conn_set_endpoint(c, ep); /* for the counters of its answers */
    if (e)
        e->http_requests[method_is(req, "POST")     ? 0
                         : method_is(req, "GET")    ? 1
                         : method_is(req, "DELETE") ? 2
                                                    : 3]++;

    c->http_head = method_is(req, "HEAD"); /* its answer: the head alone */
    if (!method_is(req, "POST") && !method_is(req, "GET") && !method_is(req, "DELETE")) {
        mcpgw_mcp_respond_error(c, req, 405, MCPGW_JSONRPC_SERVER_ERROR, "Method Not Allowed",
                                "bad_method", "Allow: GET, POST, DELETE\r\n", keep);
        return 0;
    }
    if (!origin_ok(c, req)) {
        mcpgw_mcp_respond_error(c, req, 403, MCPGW_JSONRPC_SERVER_ERROR,
                                "Forbidden: Origin not allowed", "origin_not_allowed", NULL, keep);
        return 0;
    }
    tlen = mcpgw_extract_token_from(req, token, sizeof(token), &tsrc);
    if (tlen <= 0) {
        mcpgw_mcp_respond_error(
            c, req, 401, MCPGW_JSONRPC_SERVER_ERROR,
            tlen == 0 ? "Unauthorized: Missing token" : "Unauthorized: Invalid token",
            tlen == 0 ? "missing_token" : "malformed_token",
            tlen == 0 ? "WWW-Authenticate: Bearer realm=\"mcpgw\"\r\n"
                      : "WWW-Authenticate: Bearer realm=\"mcpgw\", error=\"invalid_token\"\r\n",
            keep);
        return 0;
    }
    ar = mcpgw_auth_verify(&srv->gw->auth, token, mcpgw_clock_now(&srv->clock), &claims, user,
                           sizeof(user));
    memset(token, 0, sizeof(token));
    if (ar != MCPGW_AUTH_OK) {
        mcpgw_mcp_respond_error(
            c, req, 401, MCPGW_JSONRPC_SERVER_ERROR, "Unauthorized: Invalid token",
            mcpgw_auth_result_name(ar),
            "WWW-Authenticate: Bearer realm=\"mcpgw\", error=\"invalid_token\"\r\n", keep);
        return 0;
    }
    c->valid_until = mcpgw_auth_valid_until(claims, srv->gw->cfg->leeway_s);
    if (ep->claim_name && !mcpgw_claims_match(claims, ep->claim_name, ep->claim_value)) {
        json_decref(claims);
        mcpgw_mcp_respond_error(
            c, req, 403, MCPGW_JSONRPC_SERVER_ERROR,
            "Forbidden: this endpoint requires another claim", "claim_required",
            "WWW-Authenticate: Bearer realm=\"mcpgw\", error=\"insufficient_scope\"\r\n", keep);
        return 0;
    }
    ctx = mcpgw_plugins_find_section(&srv->plugins, ep);
    if (!ctx) {
        json_decref(claims);
        mcpgw_mcp_respond_error(c, req, 503, MCPGW_JSONRPC_SERVER_ERROR,
                                "Service Unavailable: endpoint plugin not loaded",
                                "endpoint_unavailable", NULL, keep);
        return 0;
    }

    if (method_is(req, "POST")) {
        return handle_post(c, req, ep, ctx, user, claims, body, body_len, keep);
    }
    json_decref(claims);
    if (mcpgw_mcp_header_is(mcpgw_http_header_get(req, "MCP-Protocol-Version"),
                            MCPGW_MCP_STATELESS)) {
        mcpgw_mcp_respond_error(c, req, 405, MCPGW_JSONRPC_SERVER_ERROR,
                                "Method Not Allowed: 2026-07-28 has no sessions and no GET stream "
                                "(POST subscriptions/listen)",
                                "bad_method", "Allow: POST\r\n", keep);
        return 0;
    }
    if (method_is(req, "GET")) {
        handle_get(c, req, ep, user, keep);
        return 0;
    }
    /* DELETE */
    {
        mcpgw_mcp_session *s = request_session(c, req, ep, user, keep);
        if (!s)
            return 0;
        mcpgw_access_log(c, req, 204, 0, user, NULL);
        mcpgw_mcp_respond(c, 204, NULL, NULL, NULL, 0, keep);
        mcpgw_mcp_session_end(s, "deleted");
    }
    return 0;
}
