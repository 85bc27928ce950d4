/*
 * http_api.c - the plain HTTP endpoints served beside the WebSocket path:
 * /healthz, /readyz, /metrics, /status and the admin API (/api/broadcast,
 * /api/connections[?detail=1], DELETE /api/connections/ID,
 * POST /api/users/USER/disconnect; what acts on every worker's connections
 * is admin_ops.c). Every answer closes the connection after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "admin_ops.h"
#include "auth.h"
#include "plugin_abi.h"
#include "conn.h"
#include "http.h"
#include "http_api.h"
#include "cluster.h"
#include "json_read.h"
#include "json_write.h"
#include "log.h"
#include "access_log.h"
#include "metrics.h"
#include "server.h"
#include "transport.h"
#include "worker_board.h"

#ifdef MCPGW_HAVE_STATUS_PAGE
#include "web/status_page.h"
#endif

static void respond(mcpgw_conn *c, int status, const char *ctype, const char *extra,
                    const void *body, size_t len)
{
    struct evbuffer *out = mcpgw_transport_out(c->transport);

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Connection: close\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s\r\n",
                        status, mcpgw_http_reason(status), ctype, len, extra ? extra : "");
    if (len && !c->http_head)       /* HEAD: the headers GET would have, no body */
        evbuffer_add(out, body, len);
    mcpgw_access_log(c, c->http_req, status, c->http_head ? 0 : len, NULL, NULL);
}

/* Answers with a JSON body (stolen). */
static void respond_json(mcpgw_conn *c, int status, json_t *body)
{
    mcpgw_jbuf text = { NULL, 0, 0 };
    int ok = body && mcpgw_json_write(&text, body) == 0;

    respond(c, status, "application/json", NULL, ok ? text.data : "{}", ok ? text.len : 2);
    mcpgw_jbuf_free(&text);
    json_decref(body);
}

static void respond_error(mcpgw_conn *c, int status, const char *msg)
{
    respond_json(c, status, json_pack("{s:s}", "error", msg));
}

void mcpgw_http_api_error(mcpgw_conn *c, int status, const char *msg)
{
    respond_error(c, status, msg);
}

void mcpgw_http_api_answer(mcpgw_conn *c, int status, json_t *body)
{
    respond_json(c, status, body);
}

/* Does the request carry an admin token? Answers 401/403 itself when not.
 * who (may be NULL) gets the admin's user id. */
static int admin_ok(mcpgw_conn *c, const mcpgw_http_request *req, char *who, size_t who_cap)
{
    mcpgw_server *srv = c->srv;
    size_t tlen = 0;
    const char *bearer = mcpgw_http_bearer_token(req, &tlen);
    char token[8192], user[256];
    json_t *claims = NULL;
    mcpgw_auth_result ar;
    int ok = 0;

    if (!bearer || tlen == 0 || tlen >= sizeof(token)) {
        srv->metrics->errors[MCPGW_ERR_AUTH]++;
        respond_error(c, 401, "Unauthorized: Missing token");
        return 0;
    }
    memcpy(token, bearer, tlen);
    token[tlen] = '\0';
    ar = mcpgw_auth_verify(&srv->gw->auth, token, mcpgw_clock_now(&srv->clock), &claims, user,
                           sizeof(user));
    memset(token, 0, sizeof(token));
    if (ar != MCPGW_AUTH_OK) {
        srv->metrics->errors[MCPGW_ERR_AUTH]++;
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "admin_auth_failed", "{s:s, s:s}", "reason",
                         mcpgw_auth_result_name(ar), "ip", mcpgw_conn_peer(c));
        respond_error(c, 401, "Unauthorized: Invalid token");
        return 0;
    }
    ok = mcpgw_claims_match(claims, srv->gw->cfg->admin_claim, srv->gw->cfg->admin_value);
    json_decref(claims);
    if (ok && who)
        snprintf(who, who_cap, "%s", user);
    if (!ok) {
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "admin_auth_failed", "{s:s, s:s, s:s}", "reason",
                         "not_admin", "user", user, "ip", mcpgw_conn_peer(c));
        respond_error(c, 403, "Forbidden: admin token required");
    }
    return ok;
}

static void api_broadcast(mcpgw_conn *c, const mcpgw_http_request *req, const char *body,
                          size_t len)
{
    mcpgw_server *srv = c->srv;
    mcpgw_json_read_error jerr;
    json_t *msg;
    char user[256];
    size_t n = 0;
    long user_len = mcpgw_http_query_param(&req->query, "user", user, sizeof(user));
    int has_user = user_len > 0;

    if (user_len == -1 || user_len == 0) {
        respond_error(c, 400, "Bad user parameter");
        return;
    }
    msg = mcpgw_json_read(body, len, &jerr);
    if (!msg) {
        respond_json(c, 400, json_pack("{s:s, s:s}", "error", "Invalid JSON", "detail", jerr.text));
        return;
    }
    if (!json_is_object(msg)) {
        json_decref(msg);
        respond_error(c, 400, "The body must be a JSON object");
        return;
    }
    if (has_user)
        n = mcpgw_server_send_to_user(srv, msg, user);
    else
        n = mcpgw_server_broadcast(srv, msg, NULL);
    json_decref(msg);
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "admin_broadcast", "{s:I, s:s?}", "recipients",
                     (json_int_t)n, "user", has_user ? user : NULL);
    respond_json(c, 200, json_pack("{s:I}", "recipients", (json_int_t)n));
}

static void add_user(const char *user, int count, void *arg)
{
    json_object_set_new(arg, user, json_integer(count));
}

/* Is reason one of the token's (an authentication failure)? */
static int auth_reason(const char *reason)
{
    if (!strcmp(reason, "missing_token") || !strcmp(reason, "malformed_token"))
        return 1;
    for (int r = MCPGW_AUTH_MALFORMED; r <= MCPGW_AUTH_NO_EXP; r++)
        if (!strcmp(reason, mcpgw_auth_result_name((mcpgw_auth_result)r)))
            return 1;
    return 0;
}

static json_t *close_codes(const uint64_t *table)
{
    json_t *o = json_object();
    char code[16];

    for (int i = 0; o && i <= MCPGW_CLOSE_CODES; i++) {
        if (!table[i])
            continue;
        if (i < MCPGW_CLOSE_CODES)
            snprintf(code, sizeof(code), "%d", 1000 + i);
        else
            snprintf(code, sizeof(code), "other");
        json_object_set_new(o, code, json_integer((json_int_t)table[i]));
    }
    return o;
}

/* The error counters of every worker, for the status page's errors panel
 * (totals since the start; the page keeps the recent history). */
static json_t *error_counts(const mcpgw_metrics *m)
{
    json_t *auth = json_object(), *other = json_object();

    for (int i = 0; i < MCPGW_REJECT_REASONS && m->reject_reason[i]; i++)
        if (m->reject_count[i])
            json_object_set_new(auth_reason(m->reject_reason[i]) ? auth : other,
                                m->reject_reason[i], json_integer((json_int_t)m->reject_count[i]));
    return json_pack("{s:{s:o, s:o}, s:o, s:o, s:I, s:I, s:{s:I, s:I, s:I, s:I}}",
                     "close_codes", "sent", close_codes(m->close_sent), "received",
                     close_codes(m->close_received), "auth_failures", auth, "rejected", other,
                     "slow_consumer_closes", (json_int_t)m->slow_consumer_closes,
                     "heartbeat_timeouts", (json_int_t)m->heartbeat_timeouts, "kinds", "server",
                     (json_int_t)m->errors[MCPGW_ERR_SERVER], "network",
                     (json_int_t)m->errors[MCPGW_ERR_NETWORK], "protocol",
                     (json_int_t)m->errors[MCPGW_ERR_PROTOCOL], "auth",
                     (json_int_t)m->errors[MCPGW_ERR_AUTH]);
}

/* ?detail=1 and ?limit=N: 0 and the values, or -1 after answering 400. */
static int list_params(mcpgw_conn *c, const mcpgw_http_request *req, int *detail, size_t *limit)
{
    char v[32];
    long n = mcpgw_http_query_param(&req->query, "detail", v, sizeof(v));

    *detail = 0;
    *limit = MCPGW_ADMIN_LIST_DEFAULT;
    if (n != -2) {
        if (n > 0 && (!strcmp(v, "1") || !strcmp(v, "true")))
            *detail = 1;
        else if (n <= 0 || (strcmp(v, "0") != 0 && strcmp(v, "false") != 0)) {
            respond_error(c, 400, "Bad detail parameter: 1, true, 0 or false");
            return -1;
        }
    }
    n = mcpgw_http_query_param(&req->query, "limit", v, sizeof(v));
    if (n != -2) {
        char *end = NULL;
        long long l = n > 0 && v[0] >= '0' && v[0] <= '9' ? strtoll(v, &end, 10) : 0;
        if (!end || *end || l < 1 || l > MCPGW_ADMIN_LIST_MAX) {
            respond_error(c, 400, "Bad limit parameter: an integer 1..1000");
            return -1;
        }
        *limit = (size_t)l;
    }
    return 0;
}

static void api_connections(mcpgw_conn *c, const mcpgw_http_request *req)
{
    mcpgw_server *srv = c->srv;
    json_t *per_user, *answer;
    mcpgw_metrics sum;
    uint64_t tcp_open, ws_open;
    size_t limit;
    int detail;

    char scope[16];
    long sn = mcpgw_http_query_param(&req->query, "scope", scope, sizeof(scope));
    int cluster = 0;

    if (sn != -2) {
        if (sn > 0 && strcmp(scope, "cluster") == 0)
            cluster = 1;
        else if (sn <= 0 || strcmp(scope, "node") != 0) {
            respond_error(c, 400, "Bad scope parameter: node or cluster");
            return;
        }
    }
    if (cluster && !srv->cluster) {
        respond_error(c, 400, "scope=cluster needs a [cluster] section");
        return;
    }
    if (list_params(c, req, &detail, &limit) != 0)
        return;
    per_user = json_object();
    mcpgw_metrics_gather(srv, &sum, &tcp_open, &ws_open, NULL, NULL);
    mcpgw_limits_foreach_user(srv->gw->limits, add_user, per_user);
    answer = json_pack("{s:I, s:I, s:o, s:I, s:I, s:I}",
                       "connections", (json_int_t)mcpgw_limits_total(srv->gw->limits),
                       "users", (json_int_t)mcpgw_limits_users(srv->gw->limits),
                       "per_user", per_user,
                       "messages_in", (json_int_t)sum.messages[MCPGW_DIR_IN],
                       "messages_out", (json_int_t)sum.messages[MCPGW_DIR_OUT],
                       "uptime_s", (json_int_t)(mcpgw_clock_now(&srv->clock) - srv->gw->started));
    if (cluster && answer) {
        /* this node's numbers, and every node's from Redis (answered later) */
        mcpgw_cluster_connections(srv->cluster, c, answer);
        return;
    }
    if (!detail) {
        respond_json(c, 200, answer);
        return;
    }
    if (answer) {
        json_object_set_new(answer, "errors", error_counts(&sum));
        json_object_set_new(answer, "agent_silence_s",
                            json_integer(srv->gw->cfg->admin_agent_silence_s));
        json_object_set_new(answer, "workers",
                            json_integer(srv->gw->board ? srv->gw->board->n_workers : 1));
    }
    mcpgw_admin_list(c, answer, limit);
}

/* DELETE /api/connections/ID */
static void api_close_conn(mcpgw_conn *c, const char *id_text, size_t len, const char *admin)
{
    uint64_t id = 0;

    if (len == 0 || len > 19) {
        respond_error(c, 400, "Bad connection id: a positive integer");
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (id_text[i] < '0' || id_text[i] > '9') {
            respond_error(c, 400, "Bad connection id: a positive integer");
            return;
        }
        id = id * 10 + (uint64_t)(id_text[i] - '0');
    }
    if (id == 0) {
        respond_error(c, 400, "Bad connection id: a positive integer");
        return;
    }
    mcpgw_admin_close_conn(c, id, admin);
}

static int path_is(const mcpgw_http_request *req, const char *path)
{
    return req->path.len == strlen(path) && memcmp(req->path.p, path, req->path.len) == 0;
}

static int method_is(const mcpgw_http_request *req, const char *m)
{
    return req->method.len == strlen(m) && memcmp(req->method.p, m, req->method.len) == 0;
}

#define CONN_PREFIX "/api/connections/"
#define USERS_PREFIX "/api/users/"
#define DISCONNECT_SUFFIX "/disconnect"

static int path_starts(const mcpgw_http_request *req, const char *prefix)
{
    size_t n = strlen(prefix);

    return req->path.len >= n && memcmp(req->path.p, prefix, n) == 0;
}

/* /api/users/USER/disconnect, USER one non-empty segment */
static int user_disconnect_path(const mcpgw_http_request *req)
{
    size_t pre = strlen(USERS_PREFIX), suf = strlen(DISCONNECT_SUFFIX);
    const char *user = req->path.p + pre;

    if (!path_starts(req, USERS_PREFIX) || req->path.len <= pre + suf ||
        memcmp(req->path.p + req->path.len - suf, DISCONNECT_SUFFIX, suf) != 0)
        return 0;
    return memchr(user, '/', req->path.len - pre - suf) == NULL;
}

int mcpgw_http_api_body_needed(const mcpgw_server *srv, const mcpgw_http_request *req,
                               size_t *len)
{
    const mcpgw_str *cl = mcpgw_http_header_get(req, "Content-Length");
    const mcpgw_str *te = mcpgw_http_header_get(req, "Transfer-Encoding");
    size_t n = 0;

    *len = 0;
    if (te)
        return -1;          /* chunked bodies: not accepted (400) */
    if (!cl)
        return 0;
    if (cl->len == 0 || cl->len > 12)
        return -1;
    for (size_t i = 0; i < cl->len; i++) {
        if (cl->p[i] < '0' || cl->p[i] > '9')
            return -1;
        n = n * 10 + (size_t)(cl->p[i] - '0');
    }
    if (n > srv->gw->cfg->admin_max_body_bytes)
        return -2;
    *len = n;
    return 0;
}

void mcpgw_http_api_answer_deferred(mcpgw_conn *c, const char *method, const char *path,
                                    int status, json_t *body)
{
    mcpgw_http_request req;

    if (c->state != MCPGW_CONN_HTTP || !c->transport) {
        json_decref(body);          /* the client left meanwhile */
        return;
    }
    memset(&req, 0, sizeof(req));
    req.method.p = method;
    req.method.len = strlen(method);
    req.path.p = path;
    req.path.len = strlen(path);
    c->http_req = &req;             /* for the access log */
    c->api_pending = 0;
    mcpgw_http_api_answer(c, status, body);
    c->http_req = NULL;
    mcpgw_conn_drain(c);
}

void mcpgw_http_api_handle(mcpgw_conn *c, const mcpgw_http_request *req, const char *body,
                           size_t body_len)
{
    mcpgw_server *srv = c->srv;
    const char *allow = "GET, HEAD";

    srv->metrics->http_requests++;
    c->http_head = method_is(req, "HEAD");
    if (path_is(req, "/healthz")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            goto not_allowed;
        respond_json(c, 200, json_pack("{s:s}", "status", "ok"));
    } else if (path_is(req, "/readyz")) {
        int ready = !srv->shutting_down && srv->listener != NULL;
        json_t *answer;
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            goto not_allowed;
        answer = json_pack("{s:s, s:b, s:I, s:b}", "status", ready ? "ready" : "not_ready",
                         "listening", srv->listener != NULL, "handlers",
                         (json_int_t)srv->handlers.n_entries, "shutting_down",
                         srv->shutting_down);
        if (answer && srv->gw->board) {
            /* every worker, as the supervisor's board has it */
            const mcpgw_worker_board *b = srv->gw->board;
            json_t *list = json_array();
            for (int i = 0; i < b->n_workers; i++)
                json_array_append_new(list, json_pack("{s:i, s:i, s:b, s:I}", "worker", i, "pid",
                                                      (int)b->slot[i].pid, "running",
                                                      b->slot[i].pid != 0, "connections",
                                                      (json_int_t)b->slot[i].stats.ws_open));
            json_object_set_new(answer, "answered_by", json_integer(srv->worker_id));
            json_object_set_new(answer, "workers", list);
        }
        if (answer && srv->cluster) {
            /* serving, but cut off from the other nodes: "degraded" (200) */
            int up = srv->stats->cluster_up != 0;
            for (int i = 0; srv->gw->board && i < srv->gw->board->n_workers; i++)
                if (srv->gw->board->slot[i].pid && !srv->gw->board->slot[i].stats.cluster_up)
                    up = 0;
            json_object_set_new(answer, "cluster", mcpgw_cluster_status(srv->cluster));
            if (ready && !up)
                json_object_set_new(answer, "status", json_string("degraded"));
        }
        respond_json(c, ready ? 200 : 503, answer);
    } else if (path_is(req, "/metrics")) {
        struct evbuffer *text;
        size_t len;
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            goto not_allowed;
        if (!(text = evbuffer_new())) {
            respond_error(c, 500, "Out of memory");
            return;
        }
        mcpgw_metrics_render(srv, text);
        len = evbuffer_get_length(text);
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                evbuffer_pullup(text, -1), len);
        evbuffer_free(text);
    } else if (path_is(req, "/status")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            goto not_allowed;
#ifdef MCPGW_HAVE_STATUS_PAGE
        respond(c, 200, "text/html; charset=utf-8",
                "Content-Security-Policy: default-src 'none'; script-src 'self' 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src data:\r\n"
                "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
                mcpgw_status_page, mcpgw_status_page_len);
#else
        respond_error(c, 404, "Not Found");
#endif
    } else if (path_is(req, "/api/broadcast")) {
        allow = "POST";
        if (!method_is(req, "POST"))
            goto not_allowed;
        if (admin_ok(c, req, NULL, 0))
            api_broadcast(c, req, body, body_len);
    } else if (path_is(req, "/api/connections")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            goto not_allowed;
        if (admin_ok(c, req, NULL, 0))
            api_connections(c, req);
    } else if (path_starts(req, CONN_PREFIX)) {
        char who[256];
        allow = "DELETE";
        if (!method_is(req, "DELETE"))
            goto not_allowed;
        if (admin_ok(c, req, who, sizeof(who)))
            api_close_conn(c, req->path.p + strlen(CONN_PREFIX),
                           req->path.len - strlen(CONN_PREFIX), who);
    } else if (user_disconnect_path(req)) {
        char who[256], user[256];
        size_t ulen = req->path.len - strlen(USERS_PREFIX) - strlen(DISCONNECT_SUFFIX);
        allow = "POST";
        if (!method_is(req, "POST"))
            goto not_allowed;
        if (!admin_ok(c, req, who, sizeof(who)))
            return;
        if (mcpgw_http_segment_decode(req->path.p + strlen(USERS_PREFIX), ulen, user,
                                      sizeof(user)) <= 0) {
            respond_error(c, 400, "Bad user in the path: a percent-encoded user id");
            return;
        }
        mcpgw_admin_close_user(c, user, who);
    } else {
        mcpgw_metrics_reject(srv->metrics, "not_found");
        respond_error(c, 404, "Not Found");
    }
    return;

not_allowed:
    {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
        respond(c, 405, "application/json", hdr, "{\"error\":\"Method Not Allowed\"}", 30);
    }
}

int mcpgw_http_api_is_endpoint(const mcpgw_http_request *req)
{
    static const char *const paths[] = { "/healthz", "/readyz", "/metrics", "/status",
                                         "/api/broadcast", "/api/connections" };

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (path_is(req, paths[i]))
            return 1;
    return path_starts(req, CONN_PREFIX) || user_disconnect_path(req);
}
