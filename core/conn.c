/*
 * conn.c - one client connection: the HTTP request head, the upgrade with
 * authentication, RFC 6455 frames and message reassembly, sending and the
 * closing handshake. See conn.h for the lifecycle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "conn.h"
#include "dispatch.h"
#include "handshake.h"
#include "http.h"
#include "http_api.h"
#include "json_write.h"
#include "metrics.h"
#include "log.h"
#include "payload.h"
#include "server.h"
#include "utf8.h"
#include "ws_frame.h"

/* How long a closing connection may take to answer our close frame, or to
 * take its last bytes, before the TCP connection is dropped. */
#define MCPGW_LINGER_MS 3000
/* At most this much is read from a plain socket at once (libevent's
 * default for bufferevents). */
#define MCPGW_READ_MAX 16384
/* The reply scratch buffer keeps up to this much capacity between replies. */
#define MCPGW_REPLY_TEXT_KEEP 65536
#define MCPGW_MAX_TOKEN 8192

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_destroy(mcpgw_conn *c, unsigned code, const char *why);
static void conn_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void conn_flush_enqueue(mcpgw_conn *c);
static void conn_plain_read_cb(evutil_socket_t fd, short what, void *arg);

/* Reading on and off: our read event on a plain socket, the bufferevent's
 * on a TLS one. */
static void conn_read_enable(mcpgw_conn *c)
{
    if (c->read_ev) {
        c->read_suspended = 0;
        event_add(c->read_ev, NULL);
    } else {
        bufferevent_enable(c->bev, EV_READ);
    }
}

static void conn_read_disable(mcpgw_conn *c)
{
    if (c->read_ev)
        event_del(c->read_ev);
    else
        bufferevent_disable(c->bev, EV_READ);
}

/* Moves the queued shared frames into the output buffer, in order. */
static void frames_spill(mcpgw_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    for (unsigned i = 0; i < c->n_frames; i++) {
        mcpgw_payload_append(c->frames[i], out);    /* takes its own reference */
        mcpgw_payload_unref(c->frames[i]);
        c->frames[i] = NULL;
    }
    c->n_frames = 0;
    c->frames_bytes = 0;
}

static void frames_release(mcpgw_conn *c)
{
    for (unsigned i = 0; i < c->n_frames; i++)
        mcpgw_payload_unref(c->frames[i]);
    c->n_frames = 0;
    c->frames_bytes = 0;
}

/* The output buffer, for appending: queued frames go first. */
static struct evbuffer *conn_out(mcpgw_conn *c)
{
    if (c->n_frames)
        frames_spill(c);
    return bufferevent_get_output(c->bev);
}

/* Everything queued to send: the output buffer and the frames behind it. */
static size_t conn_queued(mcpgw_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) + c->frames_bytes;
}

/* ------------------------------------------------------------ lifecycle */


void mcpgw_conn_ref(mcpgw_conn *c)
{
    c->refs++;
}

void mcpgw_conn_unref(mcpgw_conn *c)
{
    if (--c->refs > 0)
        return;
    free(c->user);
    json_decref(c->claims);
    free(c->msg);
    mcpgw_pmd_state_free(&c->pmd_state);
    frames_release(c);
    free(c);
}

int mcpgw_conn_is_open(const mcpgw_conn *c)
{
    return c->state == MCPGW_CONN_OPEN;
}

static void format_peer(const struct sockaddr *addr, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

static void start_linger(mcpgw_conn *c, int ms);

void mcpgw_conn_accept(mcpgw_server *srv, evutil_socket_t fd,
                       const struct sockaddr *addr, int addrlen, SSL *ssl)
{
    mcpgw_conn *c = calloc(1, sizeof(*c));

    (void)addrlen;
    if (!c)
        goto fail;
    if (ssl) {
        c->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        ssl = NULL;     /* the bufferevent owns it now, even on failure */
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev)
        goto fail;
    {
        /* Replies are coalesced per loop iteration already; don't let Nagle
         * hold the last small frame back (bench/: p50 -10 % at low load). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->srv = srv;
    c->refs = 1;
    c->id = ++srv->next_conn_id;
    c->state = MCPGW_CONN_HTTP;
    format_peer(addr, c->peer, sizeof(c->peer));

    /* Bound what one client can make us buffer: the request head, or one
     * frame of at most max_payload plus its header. */
    bufferevent_setwatermark(c->bev, EV_READ, 0,
                             srv->cfg->max_header_bytes > srv->cfg->max_payload + 64
                                 ? srv->cfg->max_header_bytes + 1
                                 : srv->cfg->max_payload + 64);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    if (bufferevent_openssl_get_ssl(c->bev)) {
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    } else {
        /* Plain: output is written at the end of the iteration that queued
         * it, without a write event (see mcpgw_conn_flush_queued). */
        c->direct_write = 1;
        c->output_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), conn_output_added, c);
        c->read_ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_plain_read_cb, c);
        if (!c->output_cb || !c->read_ev)
            goto fail_conn;
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);   /* a new bufferevent has EV_WRITE on */
        conn_read_enable(c);
    }

    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    /* Slowloris: the upgrade must complete within handshake_timeout_ms. */
    start_linger(c, srv->cfg->handshake_timeout_ms);
    return;

fail_conn:
    if (c->read_ev)
        event_free(c->read_ev);
    bufferevent_free(c->bev);       /* closes fd */
    free(c);
    return;
fail:
    if (ssl)
        SSL_free(ssl);
    if (c && c->bev)
        bufferevent_free(c->bev);
    else
        evutil_closesocket(fd);
    free(c);
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->state == MCPGW_CONN_HTTP) {
        mcpgw_server *srv = c->srv;
        if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_INFO))
            mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "http_request_rejected",
                            json_pack("{s:s, s:s}", "reason", "handshake_timeout", "ip", c->peer),
                            mcpgw_clock_iso(&srv->clock));
        conn_destroy(c, 0, "handshake_timeout");
        return;
    }
    conn_destroy(c, c->close_code_received ? c->close_code_received : MCPGW_WS_CLOSE_ABNORMAL,
                 c->state == MCPGW_CONN_CLOSING ? "close_timeout" : "drain_timeout");
}

static void start_linger(mcpgw_conn *c, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (!c->linger_ev)
        c->linger_ev = evtimer_new(c->srv->base, linger_cb, c);
    if (c->linger_ev)
        evtimer_add(c->linger_ev, &tv);
}

/* Everything queued has left. On a plain socket, half-close and read (and
 * discard) until the client closes: closing with unread client bytes would
 * send a reset that can destroy our last frame in flight. The linger timer
 * bounds the wait. */
static void conn_drained(mcpgw_conn *c)
{
    if (!c->half_closed && !bufferevent_openssl_get_ssl(c->bev)) {
        c->half_closed = 1;
        if (shutdown(bufferevent_getfd(c->bev), SHUT_WR) == 0) {
            conn_read_enable(c);
            return;
        }
    }
    conn_destroy(c, c->close_code_received ? c->close_code_received : c->close_code_sent,
                 "closed");
}

/* Flush what is queued, then close the TCP connection. */
static void conn_drain(mcpgw_conn *c)
{
    c->state = MCPGW_CONN_DRAINING;
    conn_read_disable(c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    start_linger(c, MCPGW_LINGER_MS);
    if (conn_queued(c) == 0)
        conn_drained(c);
}

/* The connection leaves the server for good: logs, releases the user slot,
 * closes the socket. The struct lives on while requests reference it. */
static void conn_destroy(mcpgw_conn *c, unsigned code, const char *why)
{
    mcpgw_server *srv = c->srv;
    int was_ws = c->user != NULL && c->state != MCPGW_CONN_HTTP;

    if (c->state == MCPGW_CONN_GONE)
        return;
    c->state = MCPGW_CONN_GONE;

    if (was_ws) {
        srv->n_open--;
        if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_INFO))
            mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "websocket_disconnection",
                            json_pack("{s:s, s:I, s:i, s:s}", "user", c->user,
                                      "connection", (json_int_t)c->id, "code", (int)code,
                                      "reason", why),
                            mcpgw_clock_iso(&srv->clock));
    }
    if (c->holds_user_slot) {
        if (mcpgw_user_table_release(srv->users, c->user) < 0)
            mcpgw_log_event(&srv->log, MCPGW_LOG_ERROR, "user_slot_release_failed",
                            json_pack("{s:s}", "user", c->user), mcpgw_clock_iso(&srv->clock));
        c->holds_user_slot = 0;
    }
    if (c->linger_ev) {
        event_free(c->linger_ev);
        c->linger_ev = NULL;
    }
    if (c->output_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->output_cb);
    c->output_cb = NULL;
    frames_release(c);
    if (c->read_ev)
        event_free(c->read_ev);     /* before the socket closes */
    c->read_ev = NULL;
    bufferevent_free(c->bev);       /* closes the socket */
    c->bev = NULL;
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
    mcpgw_pmd_state_free(&c->pmd_state);

    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    srv->n_conns--;
    mcpgw_conn_unref(c);
    mcpgw_server_conn_gone(srv);
}

void mcpgw_conn_terminate(mcpgw_conn *c, const char *why)
{
    conn_destroy(c, MCPGW_WS_CLOSE_ABNORMAL, why);
}

/* -------------------------------------------------------------- sending */

static int output_over_cap(mcpgw_conn *c)
{
    return conn_queued(c) > c->srv->cfg->max_outbound_bytes;
}

/* A reader so slow that its queue passed the cap: stop queueing for it. */
static void conn_slow_consumer(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;

    srv->metrics.slow_consumer_closes++;
    mcpgw_log_event(&srv->log, MCPGW_LOG_WARN, "websocket_slow_consumer",
                    json_pack("{s:s, s:I, s:I}", "user", c->user ? c->user : "",
                              "connection", (json_int_t)c->id, "queued",
                              (json_int_t)conn_queued(c)),
                    mcpgw_clock_iso(&srv->clock));
    mcpgw_conn_close(c, MCPGW_WS_CLOSE_POLICY, "Slow consumer");
}

static inline void count_out(mcpgw_server *srv, size_t payload, size_t wire)
{
    srv->metrics.messages[MCPGW_DIR_OUT]++;
    srv->metrics.payload_bytes[MCPGW_DIR_OUT] += payload;
    srv->metrics.wire_bytes[MCPGW_DIR_OUT] += wire;
}

static void free_dumped(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

static int send_frame(mcpgw_conn *c, int opcode, const void *body, size_t len)
{
    uint8_t header[MCPGW_WS_MAX_HEADER];
    size_t hlen = mcpgw_ws_encode_header(header, opcode, 0, len);
    struct evbuffer *out = conn_out(c);

    /* header and body land in the same chain */
    if (evbuffer_expand(out, hlen + len) != 0 || evbuffer_add(out, header, hlen) != 0)
        return -1;
    if (len && evbuffer_add(out, body, len) != 0)
        return -1;
    return 0;
}

int mcpgw_conn_send_text(mcpgw_conn *c, const char *text, size_t len)
{
    uint8_t header[MCPGW_WS_MAX_HEADER];
    struct evbuffer *out;
    size_t hlen;

    if (c->state != MCPGW_CONN_OPEN)
        return -1;
    out = conn_out(c);
    if (c->pmd.enabled && len >= c->srv->cfg->compression.threshold) {
        size_t zlen;
        uint8_t *z = mcpgw_pmd_deflate(&c->srv->pmd_pool, &c->pmd_state, &c->pmd,
                                       (const uint8_t *)text, len, &zlen);
        if (!z)
            return -1;
        hlen = mcpgw_ws_encode_header(header, MCPGW_WS_OP_TEXT, 4, zlen);
        if (evbuffer_add(out, header, hlen) != 0 ||
            evbuffer_add_reference(out, z, zlen, free_dumped, NULL) != 0) {
            free(z);
            return -1;
        }
        count_out(c->srv, len, hlen + zlen);
    } else if (send_frame(c, MCPGW_WS_OP_TEXT, text, len) != 0) {
        return -1;
    } else {
        count_out(c->srv, len, len + (len < 126 ? 2 : len < 65536 ? 4 : 10));
    }
    if (output_over_cap(c))
        conn_slow_consumer(c);
    return 0;
}

int mcpgw_conn_send_json(mcpgw_conn *c, json_t *msg)
{
    mcpgw_jbuf *b = &c->srv->reply_text;
    int rc;

    if (c->state != MCPGW_CONN_OPEN)
        return -1;
    /* The text goes to the server's scratch buffer, is copied into the
     * output buffer (or compressed from it) and the scratch is free again
     * before anything else can run. */
    b->len = 0;
    if (mcpgw_json_write(b, msg) != 0)
        return -1;
    rc = mcpgw_conn_send_text(c, b->data, b->len);
    mcpgw_jbuf_reset(b, MCPGW_REPLY_TEXT_KEEP);
    return rc;
}

int mcpgw_conn_send_payload(mcpgw_conn *c, mcpgw_payload *p)
{
    if (c->state != MCPGW_CONN_OPEN)
        return -1;
    if (c->direct_write && c->n_frames < MCPGW_CONN_FRAMES) {
        /* behind whatever the output buffer holds; the flush writes both */
        p->refs++;
        c->frames[c->n_frames++] = p;
        c->frames_bytes += p->len;
        conn_flush_enqueue(c);
    } else if (mcpgw_payload_append(p, conn_out(c)) != 0) {
        return -1;
    }
    count_out(c->srv, p->payload_len, p->len);
    if (output_over_cap(c))
        conn_slow_consumer(c);
    return 0;
}

void mcpgw_conn_send_ping(mcpgw_conn *c)
{
    static const uint8_t ping[2] = { 0x80 | MCPGW_WS_OP_PING, 0 };

    if (c->state == MCPGW_CONN_OPEN)
        evbuffer_add_reference(conn_out(c), ping, sizeof(ping), NULL, NULL);
}

static void send_close_frame(mcpgw_conn *c, unsigned code, const char *reason)
{
    uint8_t body[MCPGW_WS_MAX_CONTROL];
    size_t rlen = reason ? strlen(reason) : 0;

    if (c->close_sent)
        return;
    if (rlen > sizeof(body) - 2)
        rlen = sizeof(body) - 2;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)(code & 0xff);
    if (rlen)
        memcpy(body + 2, reason, rlen);
    send_frame(c, MCPGW_WS_OP_CLOSE, body, 2 + rlen);
    c->close_sent = 1;
    c->close_code_sent = code;
    mcpgw_metrics_close(c->srv->metrics.close_sent, code);
}

void mcpgw_conn_close(mcpgw_conn *c, unsigned code, const char *reason)
{
    if (c->state != MCPGW_CONN_OPEN)
        return;
    send_close_frame(c, code, reason);
    c->state = MCPGW_CONN_CLOSING;
    start_linger(c, c->srv->shutting_down && c->srv->cfg->shutdown_timeout_ms > 0
                        ? c->srv->cfg->shutdown_timeout_ms : MCPGW_LINGER_MS);
}

/* A protocol violation: send the close frame, then drop the connection
 * once it has left (RFC 6455 7.1.7). */
static void conn_fail(mcpgw_conn *c, unsigned code, const char *why)
{
    mcpgw_server *srv = c->srv;

    srv->metrics.errors[code == MCPGW_WS_CLOSE_INTERNAL ? MCPGW_ERR_SERVER : MCPGW_ERR_PROTOCOL]++;
    if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_INFO))
        mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "websocket_protocol_error",
                        json_pack("{s:s, s:I, s:i, s:s}", "user", c->user ? c->user : "",
                                  "connection", (json_int_t)c->id, "code", (int)code,
                                  "reason", why),
                        mcpgw_clock_iso(&srv->clock));
    send_close_frame(c, code, why);
    conn_drain(c);
}

/* ------------------------------------------------------ HTTP and upgrade */

static void http_reject(mcpgw_conn *c, int status, const char *extra, const char *body,
                        const char *event, const char *reason)
{
    mcpgw_server *srv = c->srv;
    char resp[1024];
    size_t n = mcpgw_http_format_response(resp, sizeof(resp), status, extra, body);
    int level = status == 401 || status == 429 ? MCPGW_LOG_WARN : MCPGW_LOG_INFO;

    mcpgw_metrics_reject(&srv->metrics, reason);
    if (status == 401)
        srv->metrics.errors[MCPGW_ERR_AUTH]++;

    if (mcpgw_log_enabled(&srv->log, level))
        mcpgw_log_event(&srv->log, level, event,
                        json_pack("{s:s, s:i, s:s}", "reason", reason, "status", status,
                                  "ip", c->peer),
                        mcpgw_clock_iso(&srv->clock));
    if (n)
        bufferevent_write(c->bev, resp, n);
    conn_drain(c);
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

static void upgrade(mcpgw_conn *c, const mcpgw_http_request *req)
{
    mcpgw_server *srv = c->srv;
    mcpgw_handshake_verdict v;
    char token[MCPGW_MAX_TOKEN];
    char user[256];
    char accept[MCPGW_WS_ACCEPT_LEN + 1];
    char ext[320];
    char resp[768];
    json_t *claims = NULL;
    const mcpgw_str *key;
    long tlen;
    int count;
    mcpgw_auth_result ar;

    mcpgw_handshake_check(req, &v);
    if (v.status) {
        http_reject(c, v.status, v.extra_headers, v.body, "websocket_handshake_rejected", v.reason);
        return;
    }
    if (srv->shutting_down) {
        http_reject(c, 503, NULL, "Service Unavailable: shutting down", "websocket_handshake_rejected",
                    "shutting_down");
        return;
    }
    if (!origin_allowed(srv->cfg, mcpgw_http_header_get(req, "Origin"))) {
        http_reject(c, 403, NULL, "Forbidden: Origin not allowed", "websocket_handshake_rejected",
                    "origin_not_allowed");
        return;
    }
    if (srv->n_open >= (size_t)srv->cfg->max_connections) {
        http_reject(c, 503, NULL, "Service Unavailable: too many connections",
                    "websocket_handshake_rejected", "server_full");
        return;
    }

    tlen = mcpgw_extract_token(req, token, sizeof(token));
    if (tlen <= 0) {
        http_reject(c, 401, NULL,
                    tlen == 0 ? "Unauthorized: Missing token" : "Unauthorized: Invalid token",
                    "websocket_auth_failed", tlen == 0 ? "missing_token" : "malformed_token");
        return;
    }
    ar = mcpgw_auth_verify(&srv->auth, token, mcpgw_clock_now(&srv->clock), &claims,
                           user, sizeof(user));
    memset(token, 0, sizeof(token));
    if (ar != MCPGW_AUTH_OK) {
        http_reject(c, 401, NULL, "Unauthorized: Invalid token", "websocket_auth_failed",
                    mcpgw_auth_result_name(ar));
        return;
    }

    count = mcpgw_user_table_acquire(srv->users, user, srv->cfg->max_connections_per_user);
    if (count <= 0) {
        json_decref(claims);
        if (count < 0) {
            http_reject(c, 500, NULL, "Internal Server Error", "websocket_auth_failed", "out_of_memory");
            return;
        }
        if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_WARN))
            mcpgw_log_event(&srv->log, MCPGW_LOG_WARN, "websocket_auth_failed",
                            json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "reason", "connection_limit",
                                      "userId", user, "connections",
                                      mcpgw_user_table_count(srv->users, user),
                                      "limit", srv->cfg->max_connections_per_user,
                                      "status", 429, "ip", c->peer),
                            mcpgw_clock_iso(&srv->clock));
        http_reject(c, 429, NULL, "Too Many Connections", "websocket_connection_rejected",
                    "connection_limit");
        return;
    }
    c->user = strdup(user);
    c->claims = claims;
    c->holds_user_slot = 1;
    if (!c->user) {
        http_reject(c, 500, NULL, "Internal Server Error", "websocket_auth_failed", "out_of_memory");
        return;
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
        if (mcpgw_pmd_negotiate(&srv->cfg->compression, hd->value.p, hd->value.len, &c->pmd,
                                value, sizeof(value))) {
            snprintf(ext, sizeof(ext), "Sec-WebSocket-Extensions: %s\r\n", value);
            break;
        }
    }
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n%s%s\r\n", accept, ext,
             mcpgw_handshake_wants_subprotocol(req) ? "Sec-WebSocket-Protocol: mcpgw\r\n" : "");
    bufferevent_write(c->bev, resp, strlen(resp));

    c->state = MCPGW_CONN_OPEN;
    c->alive = 1;
    srv->n_open++;
    srv->metrics.upgrades_accepted++;
    if (c->linger_ev)
        evtimer_del(c->linger_ev);      /* the handshake timer */
    c->rate_tokens = srv->cfg->rate_limit_burst > 0 ? srv->cfg->rate_limit_burst
                                                    : (srv->cfg->rate_limit_per_s > 1
                                                           ? srv->cfg->rate_limit_per_s : 1);
    c->rate_stamp = mcpgw_clock_seconds(&srv->clock);
    if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_INFO)) {
        mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "websocket_auth_success",
                        json_pack("{s:s, s:i}", "userId", user, "connections", count),
                        mcpgw_clock_iso(&srv->clock));
        mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "websocket_connection",
                        json_pack("{s:s, s:I, s:s}", "user", user, "connection",
                                  (json_int_t)c->id, "ip", c->peer),
                        mcpgw_clock_iso(&srv->clock));
    }

    {
        json_t *welcome = json_pack("{s:s, s:s, s:s}", "type", "connection_established",
                                    "message", "Connected to MCP Server",
                                    "timestamp", mcpgw_clock_iso(&srv->clock));
        if (welcome)
            mcpgw_conn_send_json(c, welcome);
        json_decref(welcome);
    }
}

/* Reads the request head; returns 1 when the connection moved on (upgraded
 * or answered), 0 when more bytes are needed. */
static int read_http(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    size_t look = avail > srv->cfg->max_header_bytes + 1 ? srv->cfg->max_header_bytes + 1 : avail;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    mcpgw_http_request req;
    mcpgw_http_result r;

    if (!buf)
        return 0;
    r = mcpgw_http_parse(buf, look, srv->cfg->max_header_bytes, &req);
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

    if (req.path.len != strlen(srv->cfg->path) ||
        memcmp(req.path.p, srv->cfg->path, req.path.len) != 0) {
        size_t body_len = 0;
        int b;

        if (!mcpgw_http_api_is_endpoint(&req)) {
            http_reject(c, 404, NULL, "Not Found", "http_request_rejected", "not_found");
            return 1;
        }
        b = mcpgw_http_api_body_needed(srv, &req, &body_len);
        if (b < 0) {
            mcpgw_metrics_reject(&srv->metrics, b == -1 ? "bad_body" : "body_too_large");
            mcpgw_http_api_error(c, b == -1 ? 400 : 413,
                                 b == -1 ? "Bad Request: Content-Length required, no chunked bodies"
                                         : "Payload Too Large");
            conn_drain(c);
            return 1;
        }
        if (avail < req.head_len + body_len) {
            /* Wait for the body (bounded by max_body_bytes). */
            bufferevent_setwatermark(c->bev, EV_READ, 0, req.head_len + body_len + 1);
            return 0;
        }
        buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)(req.head_len + body_len));
        if (!buf || mcpgw_http_parse(buf, req.head_len, srv->cfg->max_header_bytes, &req) !=
                        MCPGW_HTTP_OK) {
            http_reject(c, 500, NULL, "Internal Server Error", "http_request_rejected", "internal");
            return 1;
        }
        mcpgw_http_api_handle(c, &req, buf + req.head_len, body_len);
        conn_drain(c);
        return 1;
    }
    upgrade(c, &req);
    /* req points into the input buffer: drop the head only now. */
    if (c->state != MCPGW_CONN_GONE)
        evbuffer_drain(in, req.head_len);
    return 1;
}

/* -------------------------------------------------------------- frames */

static void handle_close_frame(mcpgw_conn *c, const uint8_t *p, size_t len)
{
    unsigned code = MCPGW_WS_CLOSE_NO_STATUS;

    if (len == 1) {
        conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Invalid close frame");
        return;
    }
    if (len >= 2) {
        code = ((unsigned)p[0] << 8) | p[1];
        if (!mcpgw_ws_close_code_valid(code)) {
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Invalid close code");
            return;
        }
        if (!mcpgw_utf8_valid(p + 2, len - 2)) {
            conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in close reason");
            return;
        }
    }
    c->close_code_received = code;
    mcpgw_metrics_close(c->srv->metrics.close_received, code);
    if (!c->close_sent) {
        /* Echo the code (RFC 6455 5.5.1); an empty close gets an empty one. */
        if (len >= 2)
            send_close_frame(c, code, NULL);
        else {
            send_frame(c, MCPGW_WS_OP_CLOSE, NULL, 0);
            c->close_sent = 1;
        }
    }
    conn_drain(c);
}

static int handle_control(mcpgw_conn *c, const mcpgw_ws_frame_header *h, uint8_t *p)
{
    switch (h->opcode) {
    case MCPGW_WS_OP_PING:
        if (c->state == MCPGW_CONN_OPEN)
            send_frame(c, MCPGW_WS_OP_PONG, p, (size_t)h->payload_len);
        return 0;
    case MCPGW_WS_OP_PONG:
        c->alive = 1;
        return 0;
    case MCPGW_WS_OP_CLOSE:
        handle_close_frame(c, p, (size_t)h->payload_len);
        return -1;
    }
    return 0;
}

/* The inbound rate limit (a token bucket per connection). Returns 1 when
 * the message may be handled, 0 when it was refused (answered, or the
 * connection closed for sustained abuse). */
static int rate_limit_admit(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    const mcpgw_config *cfg = srv->cfg;
    double now, burst;
    json_t *err;

    if (cfg->rate_limit_per_s <= 0)
        return 1;
    now = mcpgw_clock_seconds(&srv->clock);
    burst = cfg->rate_limit_burst > 0 ? cfg->rate_limit_burst
                                      : (cfg->rate_limit_per_s > 1 ? cfg->rate_limit_per_s : 1);
    c->rate_tokens += (now - c->rate_stamp) * cfg->rate_limit_per_s;
    if (c->rate_tokens > burst)
        c->rate_tokens = burst;
    c->rate_stamp = now;
    if (c->rate_tokens >= 1) {
        c->rate_tokens -= 1;
        return 1;
    }
    if (now - c->violations_since > 10.0) {
        c->violations_since = now;
        c->violations = 0;
    }
    if (++c->violations > cfg->rate_limit_max_violations) {
        if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_WARN))
            mcpgw_log_event(&srv->log, MCPGW_LOG_WARN, "websocket_rate_limited",
                            json_pack("{s:s, s:I, s:i}", "user", c->user ? c->user : "",
                                      "connection", (json_int_t)c->id, "violations",
                                      c->violations),
                            mcpgw_clock_iso(&srv->clock));
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_POLICY, "Rate limit exceeded");
        return 0;
    }
    err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "message", "Rate limit exceeded",
                    "error", "Too many messages: slow down", "timestamp",
                    mcpgw_clock_iso(&srv->clock));
    if (err)
        mcpgw_conn_send_json(c, err);
    json_decref(err);
    return 0;
}

/* Appends a data frame's payload to the message being assembled; delivers
 * it when FIN. Returns -1 when the connection was failed or closed. */
static int handle_data(mcpgw_conn *c, const mcpgw_ws_frame_header *h, struct evbuffer *in)
{
    size_t len = (size_t)h->payload_len;

    if (h->opcode == MCPGW_WS_OP_CONT) {
        if (!c->msg_opcode) {
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Unexpected continuation frame");
            return -1;
        }
    } else {
        if (c->msg_opcode) {
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Expected continuation frame");
            return -1;
        }
        c->msg_opcode = h->opcode;
        c->msg_compressed = (h->rsv & 4) != 0;
        c->msg_len = 0;
    }
    if (c->msg_len + len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 256;
        uint8_t *m;

        while (cap < c->msg_len + len)
            cap *= 2;
        m = realloc(c->msg, cap);
        if (!m) {
            conn_fail(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
            return -1;
        }
        c->msg = m;
        c->msg_cap = cap;
    }
    if (len) {      /* an empty first frame leaves c->msg NULL */
        evbuffer_remove(in, c->msg + c->msg_len, len);
        mcpgw_ws_unmask(c->msg + c->msg_len, len, h->mask, 0);
        c->msg_len += len;
    }
    if (!h->fin)
        return 0;

    {
        const uint8_t *data = c->msg ? c->msg : (const uint8_t *)"";
        size_t data_len = c->msg_len;
        uint8_t *inflated = NULL;

        if (c->msg_compressed) {
            switch (mcpgw_pmd_inflate(&c->srv->pmd_pool, &c->pmd_state, &c->pmd, c->msg,
                                      c->msg_len, c->srv->cfg->max_payload, &inflated,
                                      &data_len)) {
            case MCPGW_PMD_OK:
                data = inflated;
                break;
            case MCPGW_PMD_TOO_BIG:
                conn_fail(c, MCPGW_WS_CLOSE_TOO_BIG, "Message too big");
                return -1;
            case MCPGW_PMD_CORRUPT:
                conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid compressed data");
                return -1;
            case MCPGW_PMD_NOMEM:
                conn_fail(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
                return -1;
            }
        }
        if (c->msg_opcode == MCPGW_WS_OP_TEXT && !mcpgw_utf8_valid(data, data_len)) {
            free(inflated);
            conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
            return -1;
        }
        c->msg_opcode = 0;
        c->msg_compressed = 0;
        c->srv->metrics.messages[MCPGW_DIR_IN]++;
        c->srv->metrics.payload_bytes[MCPGW_DIR_IN] += data_len;
        c->srv->metrics.wire_bytes[MCPGW_DIR_IN] += c->msg_len;
        if (c->state == MCPGW_CONN_OPEN && rate_limit_admit(c)) {
            int gone;
            mcpgw_conn_ref(c);
            mcpgw_dispatch_raw(c, data, data_len);
            gone = c->state == MCPGW_CONN_GONE;
            mcpgw_conn_unref(c);
            if (gone) {
                free(inflated);
                return -1;
            }
        }
        free(inflated);
    }
    /* Do not keep a large buffer for an idle connection. */
    if (c->msg_cap > 64 * 1024) {
        free(c->msg);
        c->msg = NULL;
        c->msg_cap = 0;
    }
    c->msg_len = 0;
    return 0;
}

/* Processes every complete frame in the input buffer. */
static void read_frames(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);

    while (c->state == MCPGW_CONN_OPEN || c->state == MCPGW_CONN_CLOSING) {
        uint8_t hbuf[MCPGW_WS_MAX_HEADER];
        uint8_t control[MCPGW_WS_MAX_CONTROL];
        mcpgw_ws_frame_header h;
        size_t avail = evbuffer_get_length(in);
        ev_ssize_t got;
        const char *why = NULL;
        int code;

        if (avail < 2)
            return;
        got = evbuffer_copyout(in, hbuf, avail < sizeof(hbuf) ? avail : sizeof(hbuf));
        if (got < 2)
            return;
        switch (mcpgw_ws_parse_header(hbuf, (size_t)got, &h)) {
        case MCPGW_WS_PARSE_NEED_MORE:
            return;
        case MCPGW_WS_PARSE_ERROR:
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Invalid frame length");
            return;
        case MCPGW_WS_PARSE_OK:
            break;
        }
        code = mcpgw_ws_frame_check(&h, c->pmd.enabled ? 4u : 0u, &why);
        if (!code && (h.rsv & 4) && (h.opcode >= MCPGW_WS_OP_CLOSE || h.opcode == MCPGW_WS_OP_CONT)) {
            /* RFC 7692 6.1: RSV1 only on the first frame of a data message. */
            code = MCPGW_WS_CLOSE_PROTOCOL_ERROR;
            why = h.opcode == MCPGW_WS_OP_CONT ? "RSV1 set on a continuation frame"
                                               : "RSV1 set on a control frame";
        }
        if (code) {
            conn_fail(c, (unsigned)code, why);
            return;
        }
        if (h.opcode < MCPGW_WS_OP_CLOSE &&
            (h.payload_len > srv->cfg->max_payload ||
             c->msg_len + h.payload_len > srv->cfg->max_payload)) {
            conn_fail(c, MCPGW_WS_CLOSE_TOO_BIG, "Message too big");
            return;
        }
        if (avail < h.header_len + h.payload_len)
            return;                 /* wait for the whole frame */
        evbuffer_drain(in, h.header_len);

        if (h.opcode >= MCPGW_WS_OP_CLOSE) {
            evbuffer_remove(in, control, (size_t)h.payload_len);
            mcpgw_ws_unmask(control, (size_t)h.payload_len, h.mask, 0);
            if (handle_control(c, &h, control) < 0)
                return;
        } else if (c->state == MCPGW_CONN_CLOSING) {
            evbuffer_drain(in, (size_t)h.payload_len);  /* ignored after our close */
        } else if (handle_data(c, &h, in) < 0) {
            return;
        }
    }
}

/* ----------------------------------------------------------- callbacks */

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    mcpgw_conn *c = arg;

    (void)bev;
    mcpgw_conn_ref(c);              /* c may leave the server while we work */
    if (c->state == MCPGW_CONN_HTTP && !read_http(c))
        goto out;
    if (c->state == MCPGW_CONN_OPEN || c->state == MCPGW_CONN_CLOSING)
        read_frames(c);
    else if (c->state == MCPGW_CONN_DRAINING)
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
out:
    mcpgw_conn_unref(c);
}

/* A plain socket is readable: one recv of at most what the input's high
 * watermark leaves room for, appended to the bufferevent's input, then the
 * same processing as a bufferevent read. EOF and errors go where the
 * bufferevent would send them. */
static void conn_plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    char buf[MCPGW_READ_MAX];
    size_t high = 0, len = evbuffer_get_length(in), room = sizeof(buf);
    ssize_t n;
    int rc;

    (void)what;
    bufferevent_getwatermark(c->bev, EV_READ, NULL, &high);
    if (high) {
        if (len >= high) {
            /* nothing consumes until more is read: cannot happen while the
             * watermark is above the largest acceptable frame or head */
            event_del(c->read_ev);
            c->read_suspended = 1;
            return;
        }
        if (high - len < room)
            room = high - len;
    }
    n = recv(fd, buf, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_event_cb(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
        return;
    }
    /* a socket bufferevent keeps the end of its input frozen except while
     * it reads itself */
    evbuffer_unfreeze(in, 0);
    rc = evbuffer_add(in, buf, (size_t)n);
    evbuffer_freeze(in, 0);
    if (rc != 0) {
        conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, c);
        return;
    }
    conn_read_cb(c->bev, c);
}

/* The bufferevent wrote everything queued: a TLS connection, or a plain
 * one whose direct write was partial (which goes back to direct writes). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    mcpgw_conn *c = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    if (c->direct_write)
        bufferevent_disable(bev, EV_WRITE);
    if (c->n_frames) {
        conn_flush_enqueue(c);      /* frames queued while the write event ran */
        return;
    }
    if (c->state == MCPGW_CONN_DRAINING && !c->half_closed)
        conn_drained(c);
}

/* ------------------------------------------------- end-of-iteration flush */

/* Puts a plain connection with something to write on the flush list. */
static void conn_flush_enqueue(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;

    if (c->flush_queued || c->state == MCPGW_CONN_GONE)
        return;
    c->flush_queued = 1;
    mcpgw_conn_ref(c);
    c->flush_next = srv->flush_head;
    if (!srv->flush_head)
        event_active(srv->flush_ev, EV_WRITE, 0);
    srv->flush_head = c;
}

/* Output was queued on a plain connection's buffer. */
static void conn_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    if (info->n_added)
        conn_flush_enqueue(arg);
}

/* Only shared frames are queued: one writev of them all. What the socket
 * does not take goes to the output buffer. 0, or -1 when the rest is left
 * to the write event. */
static int frames_write(mcpgw_conn *c)
{
    struct iovec iov[MCPGW_CONN_FRAMES];
    struct evbuffer *out = bufferevent_get_output(c->bev);
    unsigned i, n = c->n_frames;
    ssize_t w;
    size_t done;

    for (i = 0; i < n; i++) {
        iov[i].iov_base = c->frames[i]->bytes;
        iov[i].iov_len = c->frames[i]->len;
    }
    do
        w = writev(bufferevent_getfd(c->bev), iov, (int)n);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        /* EAGAIN, or an error the bufferevent's write will report */
        frames_spill(c);
        return -1;
    }
    done = (size_t)w;
    for (i = 0; i < n; i++) {
        mcpgw_payload *p = c->frames[i];
        if (done >= p->len)
            done -= p->len;
        else {
            mcpgw_payload_append_from(p, out, done);
            done = 0;
        }
        mcpgw_payload_unref(p);
        c->frames[i] = NULL;
    }
    c->n_frames = 0;
    c->frames_bytes = 0;
    return evbuffer_get_length(out) ? -1 : 0;
}

/* One write of everything queued. The rest, or an error, is left to the
 * bufferevent's write event (which reports an error through conn_event_cb). */
static void conn_write_now(mcpgw_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (c->n_frames) {
        if (evbuffer_get_length(out) == 0 && !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
            if (frames_write(c) != 0) {
                bufferevent_enable(c->bev, EV_WRITE);
                return;
            }
        } else {
            frames_spill(c);        /* behind what is already there */
        }
    }
    if (evbuffer_get_length(out) != 0 &&
        !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
        int n;

        /* a socket bufferevent keeps the front of its output frozen except
         * while it writes itself; so do we */
        evbuffer_unfreeze(out, 1);
        n = evbuffer_write(out, bufferevent_getfd(c->bev));
        evbuffer_freeze(out, 1);
        if ((n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
            evbuffer_get_length(out) != 0) {
            bufferevent_enable(c->bev, EV_WRITE);
            return;
        }
    }
    if (evbuffer_get_length(out) == 0 && c->state == MCPGW_CONN_DRAINING && !c->half_closed)
        conn_drained(c);
}

void mcpgw_conn_flush_queued(mcpgw_server *srv)
{
    mcpgw_conn *list = srv->flush_head;

    srv->flush_head = NULL;         /* output queued from here on starts a new round */
    while (list) {
        mcpgw_conn *c = list;

        list = c->flush_next;
        c->flush_next = NULL;
        c->flush_queued = 0;
        if (c->bev && c->state != MCPGW_CONN_GONE)
            conn_write_now(c);
        mcpgw_conn_unref(c);
    }
}

void mcpgw_conn_flush_discard(mcpgw_server *srv)
{
    while (srv->flush_head) {
        mcpgw_conn *c = srv->flush_head;

        srv->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flush_queued = 0;
        mcpgw_conn_unref(c);
    }
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    mcpgw_conn *c = arg;

    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state == MCPGW_CONN_DRAINING) {
            conn_destroy(c, c->close_code_received ? c->close_code_received : c->close_code_sent,
                         "closed");
            return;
        }
        if (c->state == MCPGW_CONN_HTTP) {
            conn_destroy(c, 0, "client_gone");
            return;
        }
        if (what & BEV_EVENT_ERROR)
            c->srv->metrics.errors[MCPGW_ERR_NETWORK]++;
        conn_destroy(c, c->close_code_received ? c->close_code_received : MCPGW_WS_CLOSE_ABNORMAL,
                     (what & BEV_EVENT_EOF) ? "connection_closed" : "network_error");
    }
}
