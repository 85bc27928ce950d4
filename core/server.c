/*
 * server.c - mcpgw_server: the event loop, the listener, the heartbeat,
 * broadcast, signals and the graceful shutdown. See server.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stddef.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "admin_ops.h"
#include "bus.h"
#include "cluster.h"
#include "conn.h"
#include "payload.h"
#include "server.h"
#include "child.h"
#include "host_api.h"
#include "mcp_http.h"
#include "worker_board.h"
#include "ws_frame.h"

/* ------------------------------------------------------------ listener */

#define ACCEPT_BACKOFF_MIN_MS 50
#define ACCEPT_BACKOFF_MAX_MS 1000
#define ACCEPT_LOG_EVERY_S 10.0

static void accept_ok(mcpgw_server *srv)
{
    srv->accept_backoff_ms = 0;
}

static void accept_plain_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                            int addrlen, void *arg)
{
    (void)l;
    accept_ok(arg);
    mcpgw_conn_accept(arg, fd, addr, addrlen, NULL);
}

static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                          int addrlen, void *arg)
{
    mcpgw_server *srv = arg;
    SSL *ssl = SSL_new(srv->gw->ssl_ctx);

    (void)l;
    accept_ok(srv);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    mcpgw_conn_accept(srv, fd, addr, addrlen, ssl);
}

static void set_accepting(mcpgw_server *srv, int on)
{
    struct evconnlistener *ls[2] = { srv->listener, srv->plain_listener };

    for (int i = 0; i < 2; i++)
        if (ls[i])
            (on ? evconnlistener_enable : evconnlistener_disable)(ls[i]);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_server *srv = arg;

    (void)fd;
    (void)what;
    if (!srv->shutting_down)
        set_accepting(srv, 1);      /* a new failure pauses again, longer */
}

/* accept() failed. Out of descriptors or memory, retrying at once would
 * spin (the pending connection stays in the backlog) and log each time:
 * the listeners pause instead (50 ms, doubling to 1 s while it lasts), and
 * one line per 10 s tells how many accepts failed. The clients already
 * connected are served meanwhile. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    mcpgw_server *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();
    double now = mcpgw_clock_seconds(&srv->clock);
    int starved = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;

    (void)l;
    srv->accept_failures++;
    srv->metrics->errors[MCPGW_ERR_SERVER]++;
    if (starved) {
        struct timeval tv;
        srv->accept_backoff_ms = srv->accept_backoff_ms
                                     ? srv->accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
        if (srv->accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
            srv->accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
        if (!srv->accept_resume_ev)
            srv->accept_resume_ev = evtimer_new(srv->base, accept_resume_cb, srv);
        if (srv->accept_resume_ev) {
            set_accepting(srv, 0);
            tv.tv_sec = srv->accept_backoff_ms / 1000;
            tv.tv_usec = (srv->accept_backoff_ms % 1000) * 1000;
            evtimer_add(srv->accept_resume_ev, &tv);
        }
    }
    if (srv->accept_logged_at && now - srv->accept_logged_at < ACCEPT_LOG_EVERY_S)
        return;
    mcpgw_server_log(srv, MCPGW_LOG_ERROR, "accept_failed", "{s:s, s:I, s:i}", "error",
                     evutil_socket_error_to_string(err), "failures",
                     (json_int_t)srv->accept_failures, "paused_ms",
                     starved ? srv->accept_backoff_ms : 0);
    srv->accept_logged_at = now;
    srv->accept_failures = 0;
}

/* Serves a listening socket (owned from here on, closed on failure). */
static struct evconnlistener *serve_listener(mcpgw_server *srv, int fd, int tls)
{
    struct evconnlistener *l;

    l = evconnlistener_new(srv->base, tls ? accept_tls_cb : accept_plain_cb, srv,
                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!l) {
        evutil_closesocket(fd);
        return NULL;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    return l;
}

/* A lone server (no supervisor) opens its own sockets. */
static int open_own_listener(mcpgw_server *srv, const char *host, int port, int tls)
{
    mcpgw_listen_addr bound;
    int fd = mcpgw_gateway_listen(srv->gw, host, port, 0, &bound);

    if (fd >= 0)
        mcpgw_gateway_log_listening(srv->gw, &bound, tls);
    return fd;
}

/* ------------------------------------------------------- service manager */

/* systemd's readiness protocol (Type=notify), without libsystemd: one
 * datagram to $NOTIFY_SOCKET. Does nothing when not run by systemd. */
void mcpgw_server_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    socklen_t len;
    int fd;

    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sun.sun_path))
        return;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0';        /* abstract namespace */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
    close(fd);
}

/* ----------------------------------------------------------- heartbeat */

/* One round: a connection that has not answered the previous ping is
 * terminated; every other one is pinged. O(1) work and no allocation per
 * connection (the ping frame is a static 2 bytes). */
static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_server *srv = arg;
    mcpgw_conn *c = srv->conns;

    (void)fd;
    (void)what;
    /* a writer that died between taking the bus's wake-up and sending it
     * would leave us asleep: look now and then anyway */
    if (srv->bus_ev)
        event_active(srv->bus_ev, EV_READ, 0);
    while (c) {
        mcpgw_conn *next = c->next;

        if (c->state == MCPGW_CONN_OPEN) {
            if (!c->alive) {
                mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_heartbeat_timeout", "{s:s, s:I}",
                                 "user", c->user, "connection", (json_int_t)c->id);
                srv->metrics->heartbeat_timeouts++;
                mcpgw_conn_terminate(c, "heartbeat_timeout");
            } else {
                c->alive = 0;
                mcpgw_conn_send_ping(c);
            }
        } else if (c->mcp_stream) {
            mcpgw_mcp_http_keepalive(c);  /* an SSE comment, for proxies */
        }
        c = next;
    }
}

/* ----------------------------------------------------------- broadcast */

/* A broadcast is serialised once (by the worker where it starts), framed
 * once uncompressed and compressed once per deflate window in use, from an
 * empty window; every recipient's buffer references those shared frames.
 * That includes connections with context takeover: deflating a large
 * message once per recipient held the loop for seconds (issue 15, item 9),
 * and RFC 7692 7.2.1 lets a sender start any message from an empty window.
 * Such a connection's own deflater restarts before its next message
 * (mcpgw_pmd_state_restart), since its peer's window now ends with the
 * broadcast. The work per broadcast is one deflate per window size in use,
 * whatever the number of recipients. With user set, only that user's
 * connections receive it. Returns the number of this worker's recipients. */
static size_t deliver_text(mcpgw_server *srv, const char *text, size_t len, mcpgw_conn *except,
                           const char *user)
{
    mcpgw_payload *plain = NULL;
    mcpgw_payload *deflated[MCPGW_PMD_WINDOWS] = { NULL };
    mcpgw_conn *c, *next;
    size_t sent = 0;
    int compress = len >= srv->gw->cfg->compression.threshold;

    for (c = srv->conns; c; c = next) {
        mcpgw_payload **slot;

        /* cppcheck-suppress nullPointerRedundantCheck ; c is never NULL here: except may be */
        next = c->next;     /* a slow consumer may be closed (not freed) here */
        /* cppcheck-suppress nullPointerRedundantCheck */
        if (c->state != MCPGW_CONN_OPEN || c == except ||
            (user && (!c->user || strcmp(c->user, user) != 0)))
            continue;
        if (compress && c->pmd.enabled) {
            slot = &deflated[c->pmd.server_window_bits - 8];
            /* before the send: should it fail, only a window is lost */
            if (!c->pmd.server_no_context_takeover)
                mcpgw_pmd_state_restart(&c->pmd_state);
        } else {
            slot = &plain;
        }
        if (!*slot) {
            if (slot == &plain) {
                *slot = mcpgw_payload_new_frame(MCPGW_WS_OP_TEXT, 0, text, len);
            } else {
                size_t zlen;
                uint8_t *z = mcpgw_pmd_deflate(&srv->pmd_pool, NULL, &c->pmd,
                                               (const uint8_t *)text, len, &zlen);
                if (z && (*slot = mcpgw_payload_new_frame(MCPGW_WS_OP_TEXT, 4, z, zlen)))
                    (*slot)->payload_len = len;
                free(z);
            }
            if (!*slot)
                continue;
        }
        if (mcpgw_conn_send_payload(c, *slot) == 0)
            sent++;
    }
    mcpgw_payload_unref(plain);
    for (int i = 0; i < MCPGW_PMD_WINDOWS; i++)
        mcpgw_payload_unref(deflated[i]);
    srv->metrics->broadcast_recipients += sent;
    return sent;
}

/* Delivers a serialised message here and hands the same text to the
 * other workers through the bus (and the cluster). Returns the recipients here plus the open
 * connections that match on the other workers (from the shared counts: the
 * bus answers nothing back). */
static size_t deliver_serialised(mcpgw_server *srv, const char *text, size_t len,
                                 mcpgw_conn *except, const char *user)
{
    size_t sent, elsewhere = 0;

    sent = deliver_text(srv, text, len, except, user);
    if (srv->cluster)
        mcpgw_cluster_publish(srv->cluster, user, text, len);
    if (srv->gw->bus) {
        mcpgw_limits *l = srv->gw->limits;
        uint64_t took;

        /* the matching connections of the workers whose ring took it (a
         * worker far behind misses it, and it is not counted) */
        mcpgw_bus_publish(srv->gw->bus, srv->worker_id, user, text, len, &took);
        for (int w = 0; took; w++, took >>= 1) {
            long n;
            if (!(took & 1))
                continue;
            n = user ? mcpgw_limits_user_count_on(l, user, w) : mcpgw_limits_worker_total(l, w);
            elsewhere += n > 0 ? (size_t)n : 0;
        }
    }
    srv->metrics->broadcasts++;
    mcpgw_server_log(srv, MCPGW_LOG_DEBUG, "websocket_broadcast", "{s:I, s:I, s:I}", "clientCount",
                     (json_int_t)srv->n_open, "sentCount", (json_int_t)sent, "otherWorkers",
                     (json_int_t)elsewhere);
    return sent + elsewhere;
}

/* Serialises msg once, then as deliver_serialised(). */
static size_t deliver(mcpgw_server *srv, json_t *msg, mcpgw_conn *except, const char *user)
{
    /* Its own buffer, not the reply scratch: sending may close a slow
     * consumer, and what that runs may send replies. */
    mcpgw_jbuf buf = { NULL, 0, 0 };
    size_t n = 0;

    if (mcpgw_json_write(&buf, msg) == 0)
        n = deliver_serialised(srv, buf.data, buf.len, except, user);
    mcpgw_jbuf_free(&buf);
    return n;
}

size_t mcpgw_server_broadcast(mcpgw_server *srv, json_t *msg, mcpgw_conn *except)
{
    return deliver(srv, msg, except, NULL);
}

size_t mcpgw_server_broadcast_text(mcpgw_server *srv, const char *text, size_t len,
                                   mcpgw_conn *except)
{
    return text ? deliver_serialised(srv, text, len, except, NULL) : 0;
}

size_t mcpgw_server_send_to_user(mcpgw_server *srv, json_t *msg, const char *user)
{
    return deliver(srv, msg, NULL, user);
}

void mcpgw_server_deliver_remote(mcpgw_server *srv, const char *user, const char *text, size_t len)
{
    deliver_text(srv, text, len, NULL, user);
}

/* ------------------------------------------------------------------ bus */

/* At most this many messages from other workers per loop iteration, and
 * no more once this many bytes of them were delivered (at least one
 * message goes each time: compressing a large broadcast is the costly part,
 * ~35 ms for 1 MB); the rest wait for the next iteration, so local clients
 * are served in between. */
#define BUS_BUDGET 64
#define BUS_BUDGET_BYTES ((size_t)1 << 20)

/* Connections handed over by other workers: a Streamable HTTP request for
 * a session that lives here, with the bytes read so far. A few per wake. */
static void handover_cb(evutil_socket_t fd, short what, void *arg)
{
    static char buf[MCPGW_BUS_HANDOVER_MAX];   /* one loop thread per process */
    mcpgw_server *srv = arg;

    (void)fd;
    (void)what;
    for (int i = 0; i < 16; i++) {
        int cfd;
        long n = mcpgw_bus_handover_recv(srv->gw->bus, srv->worker_id, &cfd, buf, sizeof(buf));
        if (n == -1)
            break;
        if (n < 0)
            continue;
        if (srv->shutting_down) {
            evutil_closesocket(cfd);
            continue;
        }
        srv->metrics->handovers_in++;
        mcpgw_conn_adopt(srv, cfd, buf, (size_t)n);
    }
}

static void bus_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_server *srv = arg;
    mcpgw_bus *bus = srv->gw->bus;
    const char *user, *text;
    size_t len, bytes = 0;
    int n = 0, control = 0;

    (void)fd;
    (void)what;
    for (;;) {
        while (n < BUS_BUDGET && bytes < BUS_BUDGET_BYTES &&
               mcpgw_bus_peek(bus, srv->worker_id, &user, &text, &len, &control)) {
            if (control)
                mcpgw_admin_bus_message(srv, text, len);
            else
                deliver_text(srv, text, len, NULL, user);
            mcpgw_bus_done(bus, srv->worker_id);
            n++;
            bytes += len;
        }
        if (n >= BUS_BUDGET || bytes >= BUS_BUDGET_BYTES) {
            /* more after the next poll (an event_active here would run
             * before any socket is looked at again) */
            static const struct timeval now = { 0, 0 };
            evtimer_add(srv->bus_again_ev, &now);
            return;
        }
        if (mcpgw_bus_sleep(bus, srv->worker_id))
            return;
    }
}

/* --------------------------------------------------------------- post */

static void post_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_server *srv = arg;
    mcpgw_posted *list;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&srv->post_lock);
    list = srv->post_head;
    srv->post_head = srv->post_tail = NULL;
    pthread_mutex_unlock(&srv->post_lock);
    while (list) {
        mcpgw_posted *next = list->next;
        list->fn(list->arg);
        free(list);
        list = next;
    }
}

int mcpgw_server_post(mcpgw_server *srv, void (*fn)(void *arg), void *arg)
{
    mcpgw_posted *p = malloc(sizeof(*p));

    if (!p || !fn) {
        free(p);
        return -1;
    }
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&srv->post_lock);
    if (srv->post_tail)
        srv->post_tail->next = p;
    else
        srv->post_head = p;
    srv->post_tail = p;
    pthread_mutex_unlock(&srv->post_lock);
    event_active(srv->post_ev, EV_READ, 0);     /* thread-safe with evthread */
    return 0;
}

/* ------------------------------------------------------------ shutdown */

static void shutdown_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_server *srv = arg;

    (void)fd;
    (void)what;
    mcpgw_server_log(srv, MCPGW_LOG_WARN, "shutdown_timeout", "{s:I}", "remaining",
                     (json_int_t)srv->n_conns);
    event_base_loopexit(srv->base, NULL);
}

void mcpgw_server_log_fields(mcpgw_server *srv, int level, const char *event, const char *fmt,
                             ...)
{
    json_t *fields = NULL;
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        fields = json_vpack_ex(NULL, 0, fmt, ap);
        va_end(ap);
    }
    mcpgw_log_event(&srv->gw->log, level, event, fields, mcpgw_clock_iso(&srv->clock));
}

/* The shutdown is complete when every connection has gone and every
 * pending request has finished (so plugins see no request at fini). */
static void begin_shutdown_posted(void *arg)
{
    mcpgw_server_begin_shutdown(arg);
}

void mcpgw_server_conn_gone(mcpgw_server *srv)
{
    if (srv->draining && !srv->shutting_down && srv->n_conns == 0 && srv->n_requests == 0) {
        /* a drained worker has nothing to wait for; from the loop, not from
         * inside whatever closed the last connection (a plugin's send_text
         * may be running: the shutdown ends every session) */
        if (mcpgw_server_post(srv, begin_shutdown_posted, srv) != 0)
            mcpgw_server_begin_shutdown(srv);
        return;
    }
    if (srv->shutting_down && srv->n_conns == 0 && srv->n_requests == 0)
        event_base_loopexit(srv->base, NULL);
}

void mcpgw_server_begin_shutdown(mcpgw_server *srv)
{
    mcpgw_conn *c, *next;
    struct timeval tv;

    if (srv->shutting_down)
        return;
    srv->shutting_down = 1;
    mcpgw_server_notify("STOPPING=1");
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "shutdown_started", "{s:I}", "connections",
                     (json_int_t)srv->n_open);
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    if (srv->plain_listener) {
        evconnlistener_free(srv->plain_listener);
        srv->plain_listener = NULL;
    }
    if (srv->heartbeat_ev)
        event_del(srv->heartbeat_ev);
    /* Streamable HTTP sessions end (a request still open is answered) */
    mcpgw_mcp_http_shutdown(srv);

    tv.tv_sec = srv->gw->cfg->shutdown_timeout_ms / 1000;
    tv.tv_usec = (srv->gw->cfg->shutdown_timeout_ms % 1000) * 1000;
    srv->shutdown_ev = evtimer_new(srv->base, shutdown_deadline_cb, srv);
    if (srv->shutdown_ev)
        evtimer_add(srv->shutdown_ev, &tv);

    for (c = srv->conns; c; c = next) {
        next = c->next;
        if (c->state == MCPGW_CONN_OPEN && c->n_pending) {
            /* its requests finish first (within shutdown_timeout_ms) and
             * their replies go out before the close; no new ones start */
            c->close_when_done = 1;
            if (c->transport)
                mcpgw_transport_set_reading(c->transport, 0);
        } else if (c->state == MCPGW_CONN_OPEN) {
            mcpgw_conn_close(c, MCPGW_WS_CLOSE_GOING_AWAY, "Server shutting down");
        } else if (c->state == MCPGW_CONN_HTTP) {
            mcpgw_conn_terminate(c, "shutdown");
        }
    }
    mcpgw_server_conn_gone(srv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    mcpgw_server *srv = arg;

    (void)what;
    if (srv->shutting_down) {
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "shutdown_forced", "{s:i, s:I}", "signal", (int)sig,
                         "remaining", (json_int_t)srv->n_conns);
        srv->exit_code = 1;
        event_base_loopbreak(srv->base);
        return;
    }
    mcpgw_server_begin_shutdown(srv);
}

/* -------------------------------------------------------- init / run */

static void set_heartbeat(mcpgw_server *srv)
{
    struct timeval hb;

    hb.tv_sec = srv->gw->cfg->heartbeat_interval_ms / 1000;
    hb.tv_usec = (srv->gw->cfg->heartbeat_interval_ms % 1000) * 1000;
    event_add(srv->heartbeat_ev, &hb);
}

int mcpgw_server_reload(mcpgw_server *srv)
{
    mcpgw_gateway *gw = srv->gw;
    mcpgw_config *next;

    mcpgw_server_notify("RELOADING=1");
    next = mcpgw_gateway_reload_read(gw);
    if (next && mcpgw_plugins_reload(srv, &srv->plugins, next) != 0) {
        mcpgw_gateway_reload_abandon(gw, next);
        next = NULL;
    }
    if (!next) {
        srv->metrics->reload_failures++;
        mcpgw_server_notify("READY=1");
        return -1;
    }
    mcpgw_gateway_reload_commit(gw, next);
    set_heartbeat(srv);
    mcpgw_pmd_pool_free(&srv->pmd_pool);
    mcpgw_pmd_pool_init(&srv->pmd_pool, next->compression.level, next->compression.mem_level);
    srv->metrics->reloads++;
    mcpgw_log_event(&gw->log, MCPGW_LOG_INFO, "config_reloaded",
                    json_pack("{s:s, s:I}", "dir", gw->conf_dir, "handlers",
                              (json_int_t)srv->handlers.n_entries),
                    mcpgw_clock_iso(&srv->clock));
    mcpgw_server_notify("READY=1");
    return 0;
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mcpgw_server_begin_shutdown(arg);
}

/* SIGQUIT to a worker: a new generation serves the same sockets now. Stop
 * accepting (our copies of the sockets close; the new workers hold them
 * open, so no connection is refused), keep the clients we have for
 * drain_timeout_ms, then shut down as on SIGTERM. */
static void sigquit_cb(evutil_socket_t sig, short what, void *arg)
{
    mcpgw_server *srv = arg;
    int ms = srv->gw->cfg->drain_timeout_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    (void)sig;
    (void)what;
    if (srv->draining || srv->shutting_down)
        return;
    srv->draining = 1;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    if (srv->plain_listener)
        evconnlistener_free(srv->plain_listener);
    srv->listener = srv->plain_listener = NULL;
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "worker_draining", "{s:I, s:i}", "connections",
                     (json_int_t)srv->n_open, "drain_timeout_ms", ms);
    srv->drain_ev = evtimer_new(srv->base, drain_deadline_cb, srv);
    if (!srv->drain_ev || evtimer_add(srv->drain_ev, &tv) != 0 || srv->n_conns == 0)
        mcpgw_server_begin_shutdown(srv);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    mcpgw_server_reload(arg);
}

/* mcpgw -t: every plugin section's init (and fini) runs as in a worker,
 * without sockets or a running loop, so a value a plugin refuses is a
 * configuration error too (its plugin_load_failed line says which). */
int mcpgw_server_check_plugins(mcpgw_config *cfg)
{
    mcpgw_gateway gw;
    mcpgw_server srv;
    int rc = -1;

    memset(&gw, 0, sizeof(gw));
    memset(&srv, 0, sizeof(srv));
    gw.cfg = cfg;
    gw.log.level = MCPGW_LOG_ERROR;         /* only the failures */
    srv.gw = &gw;
    srv.stats = srv.own_stats = calloc(1, sizeof(*srv.own_stats));
    if (!srv.stats)
        return -1;
    srv.metrics = &srv.stats->m;
    pthread_mutex_init(&srv.post_lock, NULL);
    srv.base = event_base_new();
    if (srv.base && mcpgw_handler_table_init(&srv.handlers) == 0) {
        mcpgw_clock_init(&srv.clock, srv.base);
        rc = mcpgw_plugins_load(&srv, &srv.plugins);
        mcpgw_plugins_unload(&srv.plugins);
        mcpgw_host_timers_free(&srv);
        mcpgw_children_free_all(&srv);
        mcpgw_policy_free(&srv.policy);
        mcpgw_handler_table_free(&srv.handlers);
    }
    if (srv.base)
        event_base_free(srv.base);
    pthread_mutex_destroy(&srv.post_lock);
    free(srv.own_stats);
    return rc;
}

int mcpgw_server_init(mcpgw_server *srv, mcpgw_gateway *gw, const mcpgw_worker_spec *spec)
{
    const mcpgw_config *cfg = gw->cfg;
    int lfd, pfd;

    memset(srv, 0, sizeof(*srv));
    srv->gw = gw;
    srv->worker_id = spec ? spec->worker_id : 0;
    if (spec && gw->board) {
        /* the slot's counters go on from the worker this one replaces */
        srv->stats = &gw->board->slot[spec->worker_id].stats;
        mcpgw_stats_clear_gauges(srv->stats);
    } else {
        srv->stats = srv->own_stats = calloc(1, sizeof(*srv->own_stats));
        if (!srv->stats)
            return -1;
    }
    srv->metrics = &srv->stats->m;
    pthread_mutex_init(&srv->post_lock, NULL);

    {
        /* The epoll changelist folds the add/del of a connection's write
         * event within one loop iteration into at most one epoll_ctl. */
        struct event_config *ec = event_config_new();
        if (!ec)
            return -1;
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        srv->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!srv->base)
        return -1;
    mcpgw_clock_init(&srv->clock, srv->base);
    mcpgw_pmd_pool_init(&srv->pmd_pool, cfg->compression.level, cfg->compression.mem_level);

    if (mcpgw_handler_table_init(&srv->handlers) != 0)
        return -1;
    if (mcpgw_plugins_load(srv, &srv->plugins) != 0)
        return -1;

    srv->post_ev = event_new(srv->base, -1, EV_PERSIST | EV_READ, post_cb, srv);
    srv->heartbeat_ev = event_new(srv->base, -1, EV_PERSIST, heartbeat_cb, srv);
    srv->sigterm_ev = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
    /* A worker leaves SIGINT to its supervisor (which sends SIGTERM). */
    srv->sigint_ev = spec ? NULL : evsignal_new(srv->base, SIGINT, signal_cb, srv);
    srv->sighup_ev = evsignal_new(srv->base, SIGHUP, sighup_cb, srv);
    if (spec && (!(srv->sigquit_ev = evsignal_new(srv->base, SIGQUIT, sigquit_cb, srv)) ||
                 event_add(srv->sigquit_ev, NULL) != 0))
        return -1;
    if (mcpgw_io_init(&srv->io, srv->base) != 0 ||
        mcpgw_deadlines_init(&srv->deadlines, srv->base, mcpgw_conn_deadline_fired, srv) != 0)
        return -1;
    if (gw->bus) {
        srv->bus_ev = event_new(srv->base, mcpgw_bus_fd(gw->bus, srv->worker_id),
                                EV_READ | EV_PERSIST, bus_cb, srv);
        srv->bus_again_ev = evtimer_new(srv->base, bus_cb, srv);
        if (!srv->bus_ev || !srv->bus_again_ev || event_add(srv->bus_ev, NULL) != 0)
            return -1;
        event_active(srv->bus_ev, EV_READ, 0);      /* what came before we started */
        srv->handover_ev = event_new(srv->base, mcpgw_bus_handover_fd(gw->bus, srv->worker_id),
                                     EV_READ | EV_PERSIST, handover_cb, srv);
        if (!srv->handover_ev || event_add(srv->handover_ev, NULL) != 0)
            return -1;
    }
    if (!srv->post_ev || !srv->heartbeat_ev || !srv->sigterm_ev || (!spec && !srv->sigint_ev) ||
        !srv->sighup_ev)
        return -1;
    if (cfg->cluster_redis && !(srv->cluster = mcpgw_cluster_new(srv)))
        return -1;
    set_heartbeat(srv);
    event_add(srv->sigterm_ev, NULL);
    if (srv->sigint_ev)
        event_add(srv->sigint_ev, NULL);
    event_add(srv->sighup_ev, NULL);

    lfd = spec ? spec->listen_fd
               : open_own_listener(srv, cfg->listen_host, cfg->listen_port, gw->ssl_ctx != NULL);
    if (lfd < 0 || !(srv->listener = serve_listener(srv, lfd, gw->ssl_ctx != NULL)))
        return -1;
    pfd = spec ? spec->plain_listen_fd
               : cfg->plain_listen_host
                     ? open_own_listener(srv, cfg->plain_listen_host, cfg->plain_listen_port, 0)
                     : -1;
    if (cfg->plain_listen_host && (pfd < 0 || !(srv->plain_listener = serve_listener(srv, pfd, 0))))
        return -1;
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_heartbeat_started", "{s:i}", "interval_ms",
                     cfg->heartbeat_interval_ms);
    mcpgw_server_notify("READY=1");
    return 0;
}

/* ------------------------------------------------------------ memory */

/* At most this often does the worker hand freed memory back (s). */
#define MCPGW_RELEASE_INTERVAL 1.0

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_server *srv = arg;

    (void)fd;
    (void)what;
    srv->trim_last = mcpgw_clock_seconds(&srv->clock);
#ifdef __GLIBC__
    /* Consolidates the free chunks and returns every whole free page (at
     * the top of the heap and inside it) with madvise/sbrk. */
    malloc_trim(0);
#endif
}

void mcpgw_server_release_memory(mcpgw_server *srv)
{
    double wait;
    struct timeval tv;

    if (!srv->trim_ev) {
        srv->trim_ev = evtimer_new(srv->base, trim_cb, srv);
        if (!srv->trim_ev)
            return;
    } else if (evtimer_pending(srv->trim_ev, NULL)) {
        return;                     /* one is due already */
    }
    wait = srv->trim_last ? srv->trim_last + MCPGW_RELEASE_INTERVAL
                                - mcpgw_clock_seconds(&srv->clock)
                          : 0;
    if (wait < 0)
        wait = 0;
    else if (wait > MCPGW_RELEASE_INTERVAL)    /* the clock went back */
        wait = MCPGW_RELEASE_INTERVAL;
    tv.tv_sec = (time_t)wait;
    tv.tv_usec = (suseconds_t)((wait - (double)tv.tv_sec) * 1e6);
    evtimer_add(srv->trim_ev, &tv);
}

int mcpgw_server_run(mcpgw_server *srv)
{
    event_base_dispatch(srv->base);
    if (srv->shutting_down)
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "shutdown_complete", "{s:I}", "remaining",
                         (json_int_t)srv->n_conns);
    return srv->exit_code;
}

void mcpgw_server_free(mcpgw_server *srv)
{
    mcpgw_posted *p;

    mcpgw_admin_ops_free(srv);
    while (srv->conns)
        mcpgw_conn_terminate(srv->conns, "shutdown");
    mcpgw_mcp_http_shutdown(srv);
    if (srv->cluster) {
        /* after the connections: the leases they held go in one script;
         * pending lease requests are answered "down" (nobody is read again) */
        mcpgw_cluster *cl = srv->cluster;
        srv->cluster = NULL;
        mcpgw_cluster_free(cl);
    }
    if (srv->listener)
        evconnlistener_free(srv->listener);
    if (srv->plain_listener)
        evconnlistener_free(srv->plain_listener);
    /* Plugins go after the connections: no request is pending by now. */
    mcpgw_plugins_unload(&srv->plugins);
    mcpgw_host_timers_free(srv);
    mcpgw_children_free_all(srv);
    mcpgw_policy_free(&srv->policy);
    mcpgw_handler_table_free(&srv->handlers);
    if (srv->heartbeat_ev)
        event_free(srv->heartbeat_ev);
    if (srv->accept_resume_ev)
        event_free(srv->accept_resume_ev);
    if (srv->sigterm_ev)
        event_free(srv->sigterm_ev);
    if (srv->sigint_ev)
        event_free(srv->sigint_ev);
    if (srv->sighup_ev)
        event_free(srv->sighup_ev);
    if (srv->sigquit_ev)
        event_free(srv->sigquit_ev);
    if (srv->drain_ev)
        event_free(srv->drain_ev);
    if (srv->shutdown_ev)
        event_free(srv->shutdown_ev);
    if (srv->post_ev)
        event_free(srv->post_ev);
    if (srv->bus_ev)
        event_free(srv->bus_ev);
    if (srv->handover_ev)
        event_free(srv->handover_ev);
    if (srv->bus_again_ev)
        event_free(srv->bus_again_ev);
    if (srv->trim_ev)
        event_free(srv->trim_ev);
    mcpgw_io_free(&srv->io);
    mcpgw_deadlines_free(&srv->deadlines);
    for (p = srv->post_head; p;) {
        mcpgw_posted *next = p->next;
        free(p);
        p = next;
    }
    if (srv->base)
        event_base_free(srv->base);
    mcpgw_pmd_pool_free(&srv->pmd_pool);
    mcpgw_jbuf_free(&srv->reply_text);
    free(srv->raw_reply.data);
    free(srv->own_stats);
    pthread_mutex_destroy(&srv->post_lock);
    memset(srv, 0, sizeof(*srv));
}
