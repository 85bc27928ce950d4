/*
 * http_upgrade.c - the HTTP side of a connection: reads the request head, sends
 * the plain HTTP endpoints to http_api.c, and turns a WebSocket upgrade into
 * an open session: handshake checks, origin, server limits, the token, the
 * per-user slot, permessage-deflate and the subprotocol, then the 101. Every
 * refusal is an HTTP status with a short body, logged once. See http_upgrade.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "access_log.h"
#include "bus.h"
#include "auth.h"
#include "plugin_abi.h"
#include "conn.h"
#include "handshake.h"
#include "http.h"
#include "http_api.h"
#include "log.h"
#include "mcp_http.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "protocol.h"
#include "server.h"
#include "transport.h"
#include "http_upgrade.h"
#include "cluster.h"
#include "ws_frame.h"
#include "ws_session.h"

#define MCPGW_MAX_TOKEN 8192

static void http_reject(mcpgw_conn *c, int status, const char *extra, const char *body,
                        const char *event, const char *reason)
{
    mcpgw_server *srv = c->srv;
    char resp[1024];
    size_t n = mcpgw_http_format_response(resp, sizeof(resp), status, extra, body);
    int level = status == 401 || status == 429 ? MCPGW_LOG_WARN : MCPGW_LOG_INFO;
    const mcpgw_http_request *req = c->http_req;

    mcpgw_metrics_reject(srv->metrics, reason);
    if (status == 401)
        srv->metrics->errors[MCPGW_ERR_AUTH]++;
    /* a browser's favicon.ico is no news */
    if (req && req->path.len == 12 && memcmp(req->path.p, "/favicon.ico", 12) == 0)
        level = MCPGW_LOG_DEBUG;

    if (mcpgw_log_enabled(&srv->gw->log, level)) {
        json_t *f = json_pack("{s:s, s:i, s:s}", "reason", reason, "status", status, "ip",
                              mcpgw_conn_peer(c));
        if (f && req) {     /* the path, never the query: it may carry a token */
            json_object_set_new(f, "method", json_stringn(req->method.p, req->method.len));
            json_object_set_new(f, "path", json_stringn(req->path.p, req->path.len));
        }
        mcpgw_log_event(&srv->gw->log, level, event, f, mcpgw_clock_iso(&srv->clock));
    }
    mcpgw_access_log(c, req, status, n, NULL, reason);
    if (n)
        evbuffer_add(mcpgw_transport_out(c->transport), resp, n);
    mcpgw_conn_drain(c);
}

/* Cross-site WebSocket hijacking: a browser always sends Origin; when an
 * allow-list is configured, only its origins may upgrade. */
static int origin_allowed(const mcpgw_config *cfg, const mcpgw_str *origin)
{
    if (!origin)
        return !cfg->require_origin;
    if (!cfg->allowed_origins)
        return 1;
    for (char **o = cfg->allowed_origins; *o; o++)
        if (strcmp(*o, "*") == 0 ||
            (strlen(*o) == origin->len && strncasecmp(*o, origin->p, origin->len) == 0))
            return 1;
    return 0;
}

/* The cluster-wide limit (cluster.h): 1 when the answer is awaited (the
 * request stays buffered and is read again with the verdict), -1 after
 * refusing the upgrade, 0 to go on. */
static int cluster_verdict(mcpgw_conn *c, const char *user, json_t *claims)
{
    mcpgw_server *srv = c->srv;
    const mcpgw_config *cfg = srv->gw->cfg;

    if (!srv->cluster)
        return 0;
    if (c->cluster_verdict == MCPGW_CLUSTER_UNDECIDED &&
        mcpgw_cluster_acquire(srv->cluster, c, user) == 0)
        return 1;
    if (c->cluster_verdict == MCPGW_CLUSTER_UNDECIDED)
        c->cluster_verdict = MCPGW_CLUSTER_DOWN;
    if (c->cluster_verdict == MCPGW_CLUSTER_DOWN) {
        srv->metrics->cluster_upgrades_redis_down++;
        if (cfg->cluster_reject_when_down) {
            json_decref(claims);
            http_reject(c, 503, NULL, "Service Unavailable: the cluster is unreachable",
                        "websocket_handshake_rejected", "cluster_unavailable");
            return -1;
        }
        /* on_redis_down = local: the local limits alone; the lease is
         * written by the next refresh once Redis is back */
        mcpgw_cluster_hold(srv->cluster, c, user);
        return 0;
    }
    if (c->cluster_verdict == MCPGW_CLUSTER_FULL) {
        json_decref(claims);
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "websocket_auth_failed",
                         "{s:s, s:s, s:i, s:s, s:i, s:s}", "reason", "connection_limit", "user",
                         user, "limit", cfg->max_connections_per_user, "scope", "cluster", "status",
                         429, "ip", mcpgw_conn_peer(c));
        http_reject(c, 429, NULL, "Too Many Connections", "websocket_connection_rejected",
                    "connection_limit");
        return -1;
    }
    return 0;                       /* granted: c->lease is held */
}

/* 1 when it waits for the cluster (nothing was answered), else 0. */
static int upgrade(mcpgw_conn *c, const mcpgw_http_request *req,
                   const mcpgw_handler_config *ep)
{
    mcpgw_server *srv = c->srv;
    mcpgw_handshake_verdict v;
    char token[MCPGW_MAX_TOKEN];
    char user[256];
    char accept[MCPGW_WS_ACCEPT_LEN + 1];
    char ext[320];
    char resp[768];
    char sub[96];
    const mcpgw_protocol *proto = &mcpgw_protocol_gateway;
    const char *subprotocol;
    mcpgw_plugin_ctx *ep_ctx = NULL;
    json_t *claims = NULL;
    const mcpgw_str *key;
    mcpgw_token_source tsrc;
    long tlen;
    int count;
    mcpgw_limit_result lr;
    mcpgw_auth_result ar;

    mcpgw_handshake_check(req, &v);
    if (v.status) {
        http_reject(c, v.status, v.extra_headers, v.body, "websocket_handshake_rejected", v.reason);
        return 0;
    }
    if (srv->shutting_down) {
        http_reject(c, 503, NULL, "Service Unavailable: shutting down", "websocket_handshake_rejected",
                    "shutting_down");
        return 0;
    }
    if (!origin_allowed(srv->gw->cfg, mcpgw_http_header_get(req, "Origin"))) {
        http_reject(c, 403, NULL, "Forbidden: Origin not allowed", "websocket_handshake_rejected",
                    "origin_not_allowed");
        return 0;
    }
    if (mcpgw_limits_total(srv->gw->limits) >= srv->gw->cfg->max_connections) {
        http_reject(c, 503, NULL, "Service Unavailable: too many connections",
                    "websocket_handshake_rejected", "server_full");
        return 0;
    }

    tlen = mcpgw_extract_token_from(req, token, sizeof(token), &tsrc);
    if (tlen <= 0) {
        http_reject(c, 401, NULL,
                    tlen == 0 ? "Unauthorized: Missing token" : "Unauthorized: Invalid token",
                    "websocket_auth_failed", tlen == 0 ? "missing_token" : "malformed_token");
        return 0;
    }
    /* The subprotocol this path answers (when offered). A browser that
     * sends its token as a subprotocol fails the connection (1006) unless
     * the 101 names one of its offers: it must offer this one too. */
    if (ep && ep->protocol == MCPGW_ENDPOINT_JSONRPC)
        proto = &mcpgw_protocol_jsonrpc;
    else if (ep && ep->protocol == MCPGW_ENDPOINT_ECHO)
        proto = &mcpgw_protocol_echo;
    subprotocol = ep && ep->subprotocol ? ep->subprotocol : proto->subprotocol;
    if (tsrc == MCPGW_TOKEN_SUBPROTOCOL &&
        (!subprotocol || !mcpgw_handshake_offers_subprotocol(req, subprotocol))) {
        char body[256];

        memset(token, 0, sizeof(token));
        snprintf(body, sizeof(body),
                 "Bad Request: a token sent as the subprotocol mcpgw.bearer.<token> needs "
                 "the subprotocol %s offered alongside",
                 subprotocol ? subprotocol : "(none)");
        http_reject(c, 400, NULL, body, "websocket_handshake_rejected", "subprotocol_missing");
        return 0;
    }
    if (c->cluster_verdict != MCPGW_CLUSTER_UNDECIDED && c->user) {
        /* Redis has answered for this request: its token was verified
         * before the lease request went out (c->user and c->claims kept
         * what it said). Only its time may have run out since. */
        snprintf(user, sizeof(user), "%s", c->user);
        free(c->user);
        c->user = NULL;
        claims = c->claims;
        c->claims = NULL;
        ar = mcpgw_auth_check_times(claims, mcpgw_clock_now(&srv->clock), srv->gw->auth.leeway_s);
        if (ar != MCPGW_AUTH_OK) {
            json_decref(claims);
            claims = NULL;
        }
    } else {
        ar = mcpgw_auth_verify(&srv->gw->auth, token, mcpgw_clock_now(&srv->clock), &claims,
                               user, sizeof(user));
    }
    memset(token, 0, sizeof(token));
    if (ar != MCPGW_AUTH_OK) {
        http_reject(c, 401, NULL, "Unauthorized: Invalid token", "websocket_auth_failed",
                    mcpgw_auth_result_name(ar));
        return 0;
    }

    if (ep && ep->claim_name && !mcpgw_claims_match(claims, ep->claim_name, ep->claim_value)) {
        json_decref(claims);
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "websocket_auth_failed",
                         "{s:s, s:s, s:s, s:s, s:i, s:s}", "reason", "claim_required", "user", user,
                         "endpoint", ep->type, "claim", ep->claim_name, "status", 403, "ip",
                         mcpgw_conn_peer(c));
        http_reject(c, 403, NULL, "Forbidden: this endpoint requires another claim",
                    "websocket_handshake_rejected", "claim_required");
        return 0;
    }
    if (ep && ep->protocol == MCPGW_ENDPOINT_JSONRPC) {
        ep_ctx = mcpgw_plugins_find_section(&srv->plugins, ep);
        if (!ep_ctx) {
            json_decref(claims);
            http_reject(c, 503, NULL, "Service Unavailable: endpoint plugin not loaded",
                        "websocket_handshake_rejected", "endpoint_unavailable");
            return 0;
        }
    }

    switch (cluster_verdict(c, user, claims)) {
    case 1:
        /* kept for the answer: the request is read again then, but its
         * token is not verified again. Without memory it is. */
        if ((c->user = strdup(user)) != NULL) {
            c->claims = claims;
        } else {
            json_decref(claims);
        }
        return 1;
    case -1:
        return 0;
    }
    lr = mcpgw_limits_acquire(srv->gw->limits, user, srv->worker_id,
                              srv->gw->cfg->max_connections_per_user,
                              srv->gw->cfg->max_connections, &count);
    if (lr != MCPGW_LIMIT_OK) {
        json_decref(claims);
        if (c->lease && srv->cluster)
            mcpgw_cluster_release(srv->cluster, c, user);
        if (lr == MCPGW_LIMIT_SERVER) {
            http_reject(c, 503, NULL, "Service Unavailable: too many connections",
                        "websocket_handshake_rejected", "server_full");
            return 0;
        }
        if (lr == MCPGW_LIMIT_ERROR) {
            http_reject(c, 500, NULL, "Internal Server Error", "websocket_auth_failed", "bad_user_id");
            return 0;
        }
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "websocket_auth_failed",
                         "{s:s, s:s, s:i, s:i, s:i, s:s}", "reason", "connection_limit", "user",
                         user, "connections", count, "limit",
                         srv->gw->cfg->max_connections_per_user, "status", 429, "ip",
                         mcpgw_conn_peer(c));
        http_reject(c, 429, NULL, "Too Many Connections", "websocket_connection_rejected",
                    "connection_limit");
        return 0;
    }
    c->user = strdup(user);
    c->claims = claims;
    c->holds_user_slot = 1;
    if (!c->user) {
        http_reject(c, 500, NULL, "Internal Server Error", "websocket_auth_failed", "out_of_memory");
        return 0;
    }

    key = mcpgw_http_header_get(req, "Sec-WebSocket-Key");
    mcpgw_handshake_accept_key(key->p, key->len, accept);
    /* permessage-deflate: the first offer we can honour, in header order. */
    ext[0] = '\0';
    for (size_t i = 0; i < req->n_headers; i++) {
        const mcpgw_http_header *hd = &req->headers[i];
        char value[256];
        if (!mcpgw_str_eq_nocase(&hd->name, "Sec-WebSocket-Extensions"))
            continue;
        if (mcpgw_pmd_negotiate(&srv->gw->cfg->compression, hd->value.p, hd->value.len, &c->pmd,
                                value, sizeof(value))) {
            snprintf(ext, sizeof(ext), "Sec-WebSocket-Extensions: %s\r\n", value);
            break;
        }
    }
    sub[0] = '\0';
    if (subprotocol && mcpgw_handshake_offers_subprotocol(req, subprotocol))
        snprintf(sub, sizeof(sub), "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n%s%s\r\n", accept, ext, sub);
    evbuffer_add(mcpgw_transport_out(c->transport), resp, strlen(resp));
    c->protocol = proto;
    mcpgw_conn_set_endpoint(c, ep);
    c->ep_ctx = ep_ctx;
    c->valid_until = mcpgw_auth_valid_until(claims, srv->gw->cfg->leeway_s);
    mcpgw_conn_pack_claims(c);          /* claims: the object goes; decoded on demand */
    claims = NULL;
    c->opened_at = (long long)mcpgw_clock_now(&srv->clock);

    srv->metrics->upgrades_accepted++;
    mcpgw_access_log(c, req, 101, strlen(resp), user, NULL);
    mcpgw_conn_stop_linger(c);          /* the handshake timer */
    mcpgw_ws_session_start(c);
    mcpgw_conn_arm_expiry(c);           /* now the token's end */
    if (mcpgw_log_enabled(&srv->gw->log, MCPGW_LOG_INFO)) {
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_auth_success", "{s:s, s:i}", "user", user,
                         "connections", count);
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_connection", "{s:s, s:I, s:s}", "user",
                         user, "connection", (json_int_t)c->id, "ip", mcpgw_conn_peer(c));
    }
    proto->opened(c);
    return 0;
}

/* A Streamable HTTP session lives in one worker: a request for one held by
 * another worker moves there with its connection (the socket and what was
 * read from it: bus.h), unless TLS state or a queued answer pins it here. */
static void handover(mcpgw_conn *c, int owner)
{
    mcpgw_server *srv = c->srv;
    struct evbuffer *in = mcpgw_transport_in(c->transport);
    size_t n = evbuffer_get_length(in);
    const unsigned char *bytes;

    if (mcpgw_transport_is_tls(c->transport)) {
        srv->metrics->handovers_failed++;
        http_reject(c, 421, NULL,
                    "Misdirected Request: this session is held by another worker, and a TLS "
                    "connection cannot move there (terminate TLS in front, or run workers = 1)",
                    "http_request_rejected", "session_on_other_worker");
        return;
    }
    bytes = n <= MCPGW_BUS_HANDOVER_MAX && mcpgw_transport_queued(c->transport) == 0
                ? evbuffer_pullup(in, (ev_ssize_t)n) : NULL;
    if (!bytes || mcpgw_bus_handover(srv->gw->bus, owner, c->transport->fd, bytes, n) != 0) {
        srv->metrics->handovers_failed++;
        http_reject(c, 503, "Retry-After: 1\r\n", "Service Unavailable: try again",
                    "http_request_rejected", "handover_failed");
        return;
    }
    /* the other worker has the socket now: ours closes without a word */
    mcpgw_conn_terminate(c, "handed_over");
}

/* The body of req (body_len bytes after its head): 1 with *buf at the head
 * once all of it is here, 0 while more is needed (a client that sent
 * "Expect: 100-continue" is told to go on, once), -1 after a refusal. The
 * request is parsed again: pulling the body up may move the head. */
static int read_body(mcpgw_conn *c, mcpgw_http_request *req, size_t body_len, const char **buf)
{
    struct evbuffer *in = mcpgw_transport_in(c->transport);
    const mcpgw_str *expect;

    if (evbuffer_get_length(in) < req->head_len + body_len) {
        expect = mcpgw_http_header_get(req, "Expect");
        if (expect && !c->http_continued && mcpgw_str_eq_nocase(expect, "100-continue")) {
            c->http_continued = 1;
            evbuffer_add(mcpgw_transport_out(c->transport), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        mcpgw_transport_set_read_limit(c->transport, req->head_len + body_len + 1);
        return 0;
    }
    c->http_continued = 0;
    *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)(req->head_len + body_len));
    if (!*buf || mcpgw_http_parse(*buf, req->head_len, c->srv->gw->cfg->max_header_bytes, req) !=
                     MCPGW_HTTP_OK) {
        http_reject(c, 500, NULL, "Internal Server Error", "http_request_rejected", "internal");
        return -1;
    }
    return 1;
}

/* Reads the request head; returns 1 when the connection moved on (upgraded
 * or answered), 0 when more bytes are needed. */
static int read_http(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    struct evbuffer *in = mcpgw_transport_in(c->transport);
    size_t avail = evbuffer_get_length(in);
    size_t look = avail > srv->gw->cfg->max_header_bytes + 1 ? srv->gw->cfg->max_header_bytes + 1 : avail;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    /* static: c->http_req points at it while the request is answered; one
     * loop thread per process, and read_http never runs inside itself */
    static mcpgw_http_request req;
    mcpgw_http_result r;
    const mcpgw_handler_config *ep;
    const char *reason, *body;

    if (c->api_pending) {
        /* an admin request waits for other workers: nothing more is read */
        evbuffer_drain(in, avail);
        return 0;
    }
    if (c->cluster_wait)            /* Redis has the lease request: wait */
        return 0;
    if (!buf || c->mcp_stream)     /* busy answering the previous request */
        return 0;
    if (c->transport->not_tls) {
        /* Plain text on a TLS port: refused in plain text, unread. */
        http_reject(c, 400, NULL, "This port speaks TLS (https/wss)", "http_request_rejected",
                    "plain_http_on_tls");
        return 1;
    }
    r = mcpgw_http_parse(buf, look, srv->gw->cfg->max_header_bytes, &req);
    switch (r) {
    case MCPGW_HTTP_NEED_MORE:
        return 0;
    case MCPGW_HTTP_TOO_LARGE:
        http_reject(c, 431, NULL, "Request Header Fields Too Large", "http_request_rejected",
                    "header_too_large");
        return 1;
    case MCPGW_HTTP_BAD_VERSION:
        http_reject(c, 505, NULL, "HTTP Version Not Supported", "http_request_rejected",
                    "bad_http_version");
        return 1;
    case MCPGW_HTTP_BAD:
        http_reject(c, 400, NULL, "Bad Request", "http_request_rejected", "malformed_request");
        return 1;
    case MCPGW_HTTP_OK:
        break;
    }
    /* for log lines; mcpgw_upgrade_read_http() clears it when read_http returns */
    c->http_req = &req;
    /* Before anything reads a header: what a proxy might frame otherwise. */
    reason = mcpgw_http_check_framing(&req, &body);
    if (reason) {
        http_reject(c, 400, NULL, body, "http_request_rejected", reason);
        return 1;
    }

    if (req.path.len == strlen(srv->gw->cfg->path) &&
        memcmp(req.path.p, srv->gw->cfg->path, req.path.len) == 0)
        ep = NULL;
    else
        ep = mcpgw_config_endpoint(srv->gw->cfg, req.path.p, req.path.len);
    if (!ep && (req.path.len != strlen(srv->gw->cfg->path) ||
                memcmp(req.path.p, srv->gw->cfg->path, req.path.len) != 0)) {
        size_t body_len = 0;
        int b;

        if (!mcpgw_http_api_is_endpoint(&req)) {
            http_reject(c, 404, NULL, "Not Found", "http_request_rejected", "not_found");
            return 1;
        }
        b = mcpgw_http_api_body_needed(srv, &req, &body_len);
        if (b < 0) {
            mcpgw_metrics_reject(srv->metrics, b == -1 ? "bad_body" : "body_too_large");
            mcpgw_http_api_error(c, b == -1 ? 400 : 413,
                                 b == -1 ? "Bad Request: Content-Length required, no chunked bodies"
                                         : "Payload Too Large");
            mcpgw_conn_drain(c);
            return 1;
        }
        /* the body: bounded by max_body_bytes */
        if ((b = read_body(c, &req, body_len, &buf)) <= 0)
            return -b;
        mcpgw_http_api_handle(c, &req, buf + req.head_len, body_len);
        if (c->api_pending) {
            /* answered later (admin_ops.c): the request is read */
            evbuffer_drain(in, req.head_len + body_len);
            return 0;
        }
        mcpgw_conn_drain(c);
        return 1;
    }
    if (mcpgw_mcp_http_wants(&req, ep)) {
        size_t body_len = 0;
        int st, owner = mcpgw_mcp_http_owner(c, &req);

        if (owner >= 0) {
            handover(c, owner);
            return 1;
        }
        st = mcpgw_mcp_http_body(c, &req, &body_len);
        if (st) {
            http_reject(c, st, NULL,
                        st == 413 ? "Payload Too Large"
                        : st == 411 ? "Length Required"
                                    : "Bad Request: Content-Length required, no chunked bodies",
                        "http_request_rejected", st == 413 ? "body_too_large" : "bad_body");
            return 1;
        }
        /* the body: at most max_payload */
        if ((st = read_body(c, &req, body_len, &buf)) <= 0)
            return -st;
        c->http_reading = 1;
        st = mcpgw_mcp_http_request(c, &req, ep, buf + req.head_len, body_len);
        c->http_reading = 0;
        if (c->state == MCPGW_CONN_GONE)
            return 1;
        if (st)
            return 0; /* the cluster answers later: the request stays */
        evbuffer_drain(in, req.head_len + body_len);
        /* idle again with the next request already here: read it now */
        return c->state == MCPGW_CONN_HTTP && !c->mcp_stream && evbuffer_get_length(in) ? 2 : 1;
    }
    if (upgrade(c, &req, ep))
        return 0;               /* the cluster answers later: the request stays */
    /* req points into the input buffer: drop the head only now. */
    if (c->state != MCPGW_CONN_GONE)
        evbuffer_drain(in, req.head_len);
    return 1;
}

/* The caller holds a reference on c: it is still memory when this returns. */
int mcpgw_upgrade_read_http(mcpgw_conn *c)
{
    int moved_on;

    /* 2: a keep-alive request was answered and the next one is buffered */
    while ((moved_on = read_http(c)) == 2)
        c->http_req = NULL;
    c->http_req = NULL;     /* it pointed at read_http's request */
    return moved_on;
}

static void resume_http(void *arg)
{
    mcpgw_conn *c = arg;

    if (c->state == MCPGW_CONN_HTTP && !c->mcp_stream && c->transport &&
        mcpgw_transport_in_len(c->transport))
        c->transport->cbs->readable(c->transport->owner);
    mcpgw_conn_unref(c);
}

void mcpgw_upgrade_http_done(mcpgw_conn *c, int keep)
{
    mcpgw_server *srv = c->srv;

    if (c->state != MCPGW_CONN_HTTP || !c->transport)
        return;
    if (!keep || srv->shutting_down) {
        mcpgw_conn_drain(c);
        return;
    }
    mcpgw_transport_set_read_limit(c->transport, mcpgw_conn_read_limit(srv));
    mcpgw_conn_start_linger(c, srv->gw->cfg->handshake_timeout_ms);
    /* an answer that completed later: a request that waited behind it is
     * read from the loop, not from inside the plugin that answered */
    if (!c->http_reading && mcpgw_transport_in_len(c->transport)) {
        mcpgw_conn_ref(c);
        if (mcpgw_server_post(srv, resume_http, c) != 0)
            mcpgw_conn_unref(c);
    }
}
