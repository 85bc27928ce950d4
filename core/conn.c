/*
 * conn.c - the life of one client connection: accepted onto a transport,
 * listed on the server, timed (handshake, closing, draining), drained and
 * destroyed. What its bytes mean is for the layers above: the HTTP request
 * head and the upgrade (http_upgrade.c), then the WebSocket session
 * (ws_session.c). See conn.h for the lifecycle.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "cluster.h"
#include "log.h"
#include "mcp_http.h"
#include "protocol.h"
#include "server.h"
#include "transport.h"
#include "http_upgrade.h"
#include "ws_frame.h"
#include "ws_session.h"

/* How long a closing connection may take to answer our close frame, or to
 * take its last bytes, before the TCP connection is dropped. */
#define MCPGW_LINGER_MS 3000

static void conn_destroy(mcpgw_conn *c, unsigned code, const char *why);
static void conn_readable(void *arg);
static mcpgw_conn *conn_new(mcpgw_server *srv, evutil_socket_t fd, const struct sockaddr *addr,
                            struct ssl_st *ssl);

/* ------------------------------------------------------------ lifecycle */

void mcpgw_conn_ref(mcpgw_conn *c)
{
    c->refs++;
}

void mcpgw_conn_unref(mcpgw_conn *c)
{
    if (--c->refs > 0)
        return;
    if (mcpgw_deadline_armed(&c->linger))      /* freed without conn_destroy */
        mcpgw_deadline_cancel(&c->srv->deadlines, &c->linger);
    mcpgw_config_free(c->endpoint_cfg);
    free(c->user);
    free(c->lease);
    free(c->lease_user);
    json_decref(c->claims);
    free(c->claims_text);
    mcpgw_ws_session_free_input(c);
    mcpgw_pmd_state_free(&c->pmd_state);
    free(c);
}

void mcpgw_conn_set_endpoint(mcpgw_conn *c, const mcpgw_handler_config *ep)
{
    mcpgw_config *cfg = ep ? ep->owner : NULL;

    c->endpoint = ep;
    if (cfg == c->endpoint_cfg)
        return;
    mcpgw_config_free(c->endpoint_cfg);
    c->endpoint_cfg = mcpgw_config_ref(cfg);
}

json_t *mcpgw_conn_claims(const mcpgw_conn *c)
{
    mcpgw_conn *m = (mcpgw_conn *)c;   /* the decoded object is a cache */

    if (!m->claims && m->claims_text)
        m->claims = json_loads(m->claims_text, 0, NULL);
    return m->claims;
}

void mcpgw_conn_pack_claims(mcpgw_conn *c)
{
    char *text;

    if (!c->claims || !(text = json_dumps(c->claims, JSON_COMPACT)))
        return;
    free(c->claims_text);
    c->claims_text = text;
    json_decref(c->claims);
    c->claims = NULL;
}

int mcpgw_conn_is_open(const mcpgw_conn *c)
{
    return c->state == MCPGW_CONN_OPEN;
}

void mcpgw_peer_set(mcpgw_peer_addr *p, const struct sockaddr *addr)
{
    memset(p, 0, sizeof(*p));
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        p->family = AF_INET;
        memcpy(p->addr, &in->sin_addr, 4);
        p->port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        p->family = AF_INET6;
        memcpy(p->addr, &in6->sin6_addr, 16);
        p->port = ntohs(in6->sin6_port);
    }
}

const char *mcpgw_peer_format(const mcpgw_peer_addr *p, char *out)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (p->family == AF_INET || p->family == AF_INET6)
        inet_ntop(p->family, p->addr, ip, sizeof(ip));
    snprintf(out, MCPGW_PEER_STRLEN, "%s:%d", ip, (int)p->port);
    return out;
}

/* ------------------------------------------------- transport callbacks */

static void conn_readable(void *arg)
{
    mcpgw_conn *c = arg;

    mcpgw_conn_ref(c);              /* c may leave the server while we work */
    if (c->state == MCPGW_CONN_HTTP && !mcpgw_upgrade_read_http(c))
        goto out;
    if (c->state == MCPGW_CONN_OPEN || c->state == MCPGW_CONN_CLOSING) {
        mcpgw_ws_read_frames(c);
    } else if (c->state == MCPGW_CONN_DRAINING) {
        struct evbuffer *in = c->transport->in;
        if (in)
            evbuffer_drain(in, evbuffer_get_length(in));
    }
out:
    if (c->transport)       /* what waits for more bytes lets the loop's read block go */
        mcpgw_transport_settle_in(c->transport);
    mcpgw_conn_unref(c);
}

static void conn_drained(mcpgw_conn *c);

static void conn_written(void *arg)
{
    mcpgw_conn *c = arg;

    if (c->state == MCPGW_CONN_DRAINING && !c->half_closed)
        conn_drained(c);
}

static void conn_closed(void *arg, int eof)
{
    mcpgw_conn *c = arg;

    if (c->state == MCPGW_CONN_DRAINING) {
        conn_destroy(c, c->close_code_received ? c->close_code_received : c->close_code_sent,
                     "closed");
        return;
    }
    if (c->state == MCPGW_CONN_HTTP) {
        conn_destroy(c, 0, "client_gone");
        return;
    }
    if (!eof)
        c->srv->metrics->errors[MCPGW_ERR_NETWORK]++;
    conn_destroy(c, c->close_code_received ? c->close_code_received : MCPGW_WS_CLOSE_ABNORMAL,
                 eof ? "connection_closed" : "network_error");
}

static const mcpgw_transport_cbs conn_transport_cbs = {
    .readable = conn_readable,
    .written = conn_written,
    .closed = conn_closed,
};

void mcpgw_conn_accept(mcpgw_server *srv, evutil_socket_t fd,
                       const struct sockaddr *addr, int addrlen, SSL *ssl)
{
    (void)addrlen;
    (void)conn_new(srv, fd, addr, ssl);
}

void mcpgw_conn_adopt(mcpgw_server *srv, evutil_socket_t fd, const void *bytes, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    mcpgw_conn *c;

    memset(&ss, 0, sizeof(ss));
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        evutil_make_socket_nonblocking(fd) != 0) {
        evutil_closesocket(fd);
        return;
    }
    c = conn_new(srv, fd, (struct sockaddr *)&ss, NULL);
    if (!c)
        return;
    if (evbuffer_add(mcpgw_transport_in(c->transport), bytes, len) != 0) {
        conn_destroy(c, 0, "out_of_memory");
        return;
    }
    conn_readable(c);
}

static mcpgw_conn *conn_new(mcpgw_server *srv, evutil_socket_t fd, const struct sockaddr *addr,
                            SSL *ssl)
{
    mcpgw_conn *c = calloc(1, sizeof(*c));

    if (!c) {
        if (ssl)
            SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    c->transport = ssl ? mcpgw_transport_tls_new(&srv->io, fd, ssl, &conn_transport_cbs, c)
                       : mcpgw_transport_plain_new(&srv->io, fd, &conn_transport_cbs, c);
    if (!c->transport) {            /* it closed fd and freed ssl */
        free(c);
        return NULL;
    }
    c->srv = srv;
    c->refs = 1;
    c->id = mcpgw_limits_next_conn_id(srv->gw->limits);     /* unique across workers */
    c->accepted_at = mcpgw_clock_seconds(&srv->clock);
    c->state = MCPGW_CONN_HTTP;
    mcpgw_peer_set(&c->peer, addr);

    /* Bound what one client can make us buffer: the request head, or one
     * frame of at most max_payload plus its header. */
    mcpgw_transport_set_read_limit(c->transport, mcpgw_conn_read_limit(srv));

    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->stats->tcp_open = ++srv->n_conns;
    /* Slowloris: the upgrade must complete within handshake_timeout_ms. */
    mcpgw_conn_start_linger(c, srv->gw->cfg->handshake_timeout_ms);
    return c;
}

size_t mcpgw_conn_read_limit(const mcpgw_server *srv)
{
    const mcpgw_config *cfg = srv->gw->cfg;

    return cfg->max_header_bytes > cfg->max_payload + 64 ? cfg->max_header_bytes + 1
                                                         : cfg->max_payload + 64;
}

/* ---------------------------------------------------- timers and closing */

void mcpgw_conn_deadline_fired(mcpgw_deadline *d, void *arg)
{
    mcpgw_conn *c = (mcpgw_conn *)((char *)d - offsetof(mcpgw_conn, linger));

    (void)arg;
    if (c->state == MCPGW_CONN_HTTP && c->mcp_stream) {
        mcpgw_mcp_http_expire(c);
        return;
    }
    if (c->state == MCPGW_CONN_HTTP) {
        mcpgw_server *srv = c->srv;
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "http_request_rejected", "{s:s, s:s}", "reason",
                         "handshake_timeout", "ip", mcpgw_conn_peer(c));
        conn_destroy(c, 0, "handshake_timeout");
        return;
    }
    if (c->state == MCPGW_CONN_OPEN) {
        /* the token's end (or a stop on the way to a far one) */
        mcpgw_server *srv = c->srv;
        if ((long long)mcpgw_clock_now(&srv->clock) < c->valid_until) {
            mcpgw_conn_arm_expiry(c);
            return;
        }
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_token_expired", "{s:s, s:I}", "user",
                         c->user ? c->user : "", "connection", (json_int_t)c->id);
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_TOKEN_EXPIRED, "Token expired");
        return;
    }
    conn_destroy(c, c->close_code_received ? c->close_code_received : MCPGW_WS_CLOSE_ABNORMAL,
                 c->state == MCPGW_CONN_CLOSING ? "close_timeout" : "drain_timeout");
}

void mcpgw_conn_start_linger(mcpgw_conn *c, int ms)
{
    /* out of memory: the timer is lost, as an evtimer_new failing was */
    (void)mcpgw_deadline_arm(&c->srv->deadlines, &c->linger, ms);
}

void mcpgw_conn_arm_expiry(mcpgw_conn *c)
{
    long long left;

    if (c->state != MCPGW_CONN_OPEN)
        return;
    if (!c->valid_until) {
        mcpgw_conn_stop_linger(c);
        return;
    }
    left = c->valid_until - (long long)mcpgw_clock_now(&c->srv->clock);
    if (left < 0)
        left = 0;
    if (left > 86400)               /* a far end: look again tomorrow */
        left = 86400;
    /* a second late rather than early: exp is in whole seconds */
    mcpgw_conn_start_linger(c, (int)(left * 1000 + 1000));
}

void mcpgw_conn_stop_linger(mcpgw_conn *c)
{
    mcpgw_deadline_cancel(&c->srv->deadlines, &c->linger);
}

int mcpgw_conn_linger_ms(const mcpgw_conn *c)
{
    const mcpgw_server *srv = c->srv;

    return srv->shutting_down && srv->gw->cfg->shutdown_timeout_ms > 0 ? srv->gw->cfg->shutdown_timeout_ms
                                                                   : MCPGW_LINGER_MS;
}

/* Everything queued has left. Where the transport can, half-close and read
 * (and discard) until the client closes: closing with unread client bytes
 * would send a reset that can destroy our last frame in flight. The linger
 * timer bounds the wait. */
static void conn_drained(mcpgw_conn *c)
{
    if (!c->half_closed) {
        c->half_closed = 1;
        if (mcpgw_transport_shutdown_write(c->transport) == 0) {
            mcpgw_transport_set_reading(c->transport, 1);
            return;
        }
    }
    conn_destroy(c, c->close_code_received ? c->close_code_received : c->close_code_sent,
                 "closed");
}

void mcpgw_conn_drain(mcpgw_conn *c)
{
    c->state = MCPGW_CONN_DRAINING;
    mcpgw_transport_set_reading(c->transport, 0);
    mcpgw_transport_set_read_limit(c->transport, 0);
    mcpgw_conn_start_linger(c, MCPGW_LINGER_MS);
    if (mcpgw_transport_queued(c->transport) == 0)
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
        srv->stats->ws_open = --srv->n_open;
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_disconnection", "{s:s, s:I, s:i, s:s}",
                         "user", c->user, "connection", (json_int_t)c->id, "code", (int)code,
                         "reason", why);
    }
    if (was_ws && c->protocol && c->protocol->closed)
        c->protocol->closed(c, c->close_code_received ? c->close_code_received
                               : code ? code : MCPGW_WS_CLOSE_ABNORMAL);
    /* its cluster lease goes back, unless Redis is still deciding on it:
     * then the answer finds the client gone and gives it back */
    if (c->lease && !c->cluster_wait && srv->cluster)
        mcpgw_cluster_release(srv->cluster, c, NULL);
    if (c->holds_user_slot) {
        if (mcpgw_limits_release(srv->gw->limits, c->user, srv->worker_id) < 0)
            mcpgw_server_log(srv, MCPGW_LOG_ERROR, "user_slot_release_failed", "{s:s}", "user",
                             c->user);
        c->holds_user_slot = 0;
    }
    if (c->mcp_stream)              /* it was writing a Streamable HTTP answer */
        mcpgw_mcp_http_conn_gone(c);
    mcpgw_deadline_cancel(&srv->deadlines, &c->linger);
    mcpgw_transport_free(c->transport);     /* closes the socket */
    c->transport = NULL;
    mcpgw_ws_session_free_input(c);  /* it may have left in the middle of a message */
    mcpgw_pmd_state_free(&c->pmd_state);

    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    srv->stats->tcp_open = --srv->n_conns;
    mcpgw_conn_unref(c);
    mcpgw_server_conn_gone(srv);
}

void mcpgw_conn_terminate(mcpgw_conn *c, const char *why)
{
    conn_destroy(c, MCPGW_WS_CLOSE_ABNORMAL, why);
}
