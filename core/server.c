/*
 * server.c - mcpgw_server: the event loop, the listener, the heartbeat,
 * broadcast, signals and the graceful shutdown. See server.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "conn.h"
#include "payload.h"
#include "server.h"
#include "ws_frame.h"

/* ------------------------------------------------------------ listener */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    (void)l;
    mcpgw_conn_accept(arg, fd, addr, addrlen);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    mcpgw_server *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();

    (void)l;
    /* EMFILE and friends: log and keep serving those already connected. */
    mcpgw_log_event(&srv->log, MCPGW_LOG_ERROR, "websocket_server_error",
                    json_pack("{s:s}", "error", evutil_socket_error_to_string(err)),
                    mcpgw_clock_iso(&srv->clock));
}

static int bind_listener(mcpgw_server *srv)
{
    const mcpgw_config *cfg = srv->cfg;
    struct evutil_addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "";
    char port[16];
    int gai;

    /* Resolving a host name blocks, but only here, before the loop runs. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    gai = evutil_getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        mcpgw_log_event(&srv->log, MCPGW_LOG_ERROR, "server_listen_failed",
                        json_pack("{s:s, s:i, s:s}", "host", cfg->listen_host, "port",
                                  cfg->listen_port, "reason", evutil_gai_strerror(gai)),
                        mcpgw_clock_iso(&srv->clock));
        return -1;
    }
    srv->listener = evconnlistener_new_bind(srv->base, accept_cb, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                                LEV_OPT_CLOSE_ON_EXEC,
                                            1024, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!srv->listener) {
        mcpgw_log_event(&srv->log, MCPGW_LOG_ERROR, "server_listen_failed",
                        json_pack("{s:s, s:i, s:s}", "host", cfg->listen_host, "port",
                                  cfg->listen_port, "reason", strerror(errno)),
                        mcpgw_clock_iso(&srv->clock));
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, accept_error_cb);

    /* Report the bound address: with port 0 the kernel picked one. */
    if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
            srv->listen_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
            srv->listen_port = ntohs(a->sin_port);
        }
        snprintf(srv->listen_address, sizeof(srv->listen_address), "%s", ip);
    }
    mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "server_listening",
                    json_pack("{s:s, s:i, s:s}", "address", srv->listen_address, "port",
                              srv->listen_port, "path", cfg->path),
                    mcpgw_clock_iso(&srv->clock));
    return 0;
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
    while (c) {
        mcpgw_conn *next = c->next;

        if (c->state == MCPGW_CONN_OPEN) {
            if (!c->alive) {
                if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_INFO))
                    mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "websocket_heartbeat_timeout",
                                    json_pack("{s:s, s:I}", "user", c->user, "connection",
                                              (json_int_t)c->id),
                                    mcpgw_clock_iso(&srv->clock));
                mcpgw_conn_terminate(c, "heartbeat_timeout");
            } else {
                c->alive = 0;
                mcpgw_conn_send_ping(c);
            }
        }
        c = next;
    }
}

/* ----------------------------------------------------------- broadcast */

size_t mcpgw_server_broadcast(mcpgw_server *srv, json_t *msg, mcpgw_conn *except)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    mcpgw_payload *p;
    mcpgw_conn *c, *next;
    size_t sent = 0;

    if (!text)
        return 0;
    p = mcpgw_payload_new_frame(MCPGW_WS_OP_TEXT, text, strlen(text));
    free(text);
    if (!p)
        return 0;
    for (c = srv->conns; c; c = next) {
        next = c->next;     /* a slow consumer may be closed (not freed) here */
        if (c != except && c->state == MCPGW_CONN_OPEN && mcpgw_conn_send_payload(c, p) == 0)
            sent++;
    }
    mcpgw_payload_unref(p);
    if (mcpgw_log_enabled(&srv->log, MCPGW_LOG_DEBUG))
        mcpgw_log_event(&srv->log, MCPGW_LOG_DEBUG, "websocket_broadcast",
                        json_pack("{s:I, s:I}", "clientCount", (json_int_t)srv->n_open,
                                  "sentCount", (json_int_t)sent),
                        mcpgw_clock_iso(&srv->clock));
    return sent;
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
    mcpgw_log_event(&srv->log, MCPGW_LOG_WARN, "shutdown_timeout",
                    json_pack("{s:I}", "remaining", (json_int_t)srv->n_conns),
                    mcpgw_clock_iso(&srv->clock));
    event_base_loopexit(srv->base, NULL);
}

/* The shutdown is complete when every connection has gone and every
 * pending request has finished (so plugins see no request at fini). */
void mcpgw_server_conn_gone(mcpgw_server *srv)
{
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
    mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "shutdown_started",
                    json_pack("{s:I}", "connections", (json_int_t)srv->n_open),
                    mcpgw_clock_iso(&srv->clock));
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    if (srv->heartbeat_ev)
        event_del(srv->heartbeat_ev);

    tv.tv_sec = srv->cfg->shutdown_timeout_ms / 1000;
    tv.tv_usec = (srv->cfg->shutdown_timeout_ms % 1000) * 1000;
    srv->shutdown_ev = evtimer_new(srv->base, shutdown_deadline_cb, srv);
    if (srv->shutdown_ev)
        evtimer_add(srv->shutdown_ev, &tv);

    for (c = srv->conns; c; c = next) {
        next = c->next;
        if (c->state == MCPGW_CONN_OPEN)
            mcpgw_conn_close(c, MCPGW_WS_CLOSE_GOING_AWAY, "Server shutting down");
        else if (c->state == MCPGW_CONN_HTTP)
            mcpgw_conn_terminate(c, "shutdown");
    }
    mcpgw_server_conn_gone(srv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    mcpgw_server *srv = arg;

    (void)what;
    if (srv->shutting_down) {
        mcpgw_log_event(&srv->log, MCPGW_LOG_WARN, "shutdown_forced",
                        json_pack("{s:i, s:I}", "signal", (int)sig, "remaining",
                                  (json_int_t)srv->n_conns),
                        mcpgw_clock_iso(&srv->clock));
        srv->exit_code = 1;
        event_base_loopbreak(srv->base);
        return;
    }
    mcpgw_server_begin_shutdown(srv);
}

/* -------------------------------------------------------- init / run */

int mcpgw_server_init(mcpgw_server *srv, const mcpgw_config *cfg)
{
    struct timeval hb;

    memset(srv, 0, sizeof(*srv));
    srv->cfg = cfg;
    srv->log.level = cfg->log_level;
    pthread_mutex_init(&srv->post_lock, NULL);

    srv->base = event_base_new();
    if (!srv->base)
        return -1;
    mcpgw_clock_init(&srv->clock, srv->base);

    if (!cfg->jwt_secret || !*cfg->jwt_secret) {
        mcpgw_log_event(&srv->log, MCPGW_LOG_ERROR, "config_error",
                        json_pack("{s:s}", "reason",
                                  "no JWT secret: set [auth] jwt_secret or MCPGW_JWT_SECRET"),
                        mcpgw_clock_iso(&srv->clock));
        return -1;
    }
    srv->auth.secret = (const unsigned char *)cfg->jwt_secret;
    srv->auth.secret_len = strlen(cfg->jwt_secret);
    srv->auth.algorithms = cfg->algorithms;
    srv->auth.n_algorithms = cfg->n_algorithms;
    srv->auth.user_claim = cfg->user_claim;
    srv->auth.leeway_s = cfg->leeway_s;

    srv->users = mcpgw_user_table_new();
    if (!srv->users || mcpgw_handler_table_init(&srv->handlers) != 0)
        return -1;
    if (mcpgw_plugins_load(srv, &srv->plugins) != 0)
        return -1;

    srv->post_ev = event_new(srv->base, -1, EV_PERSIST | EV_READ, post_cb, srv);
    srv->heartbeat_ev = event_new(srv->base, -1, EV_PERSIST, heartbeat_cb, srv);
    srv->sigterm_ev = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
    srv->sigint_ev = evsignal_new(srv->base, SIGINT, signal_cb, srv);
    if (!srv->post_ev || !srv->heartbeat_ev || !srv->sigterm_ev || !srv->sigint_ev)
        return -1;
    hb.tv_sec = cfg->heartbeat_interval_ms / 1000;
    hb.tv_usec = (cfg->heartbeat_interval_ms % 1000) * 1000;
    event_add(srv->heartbeat_ev, &hb);
    event_add(srv->sigterm_ev, NULL);
    event_add(srv->sigint_ev, NULL);

    if (bind_listener(srv) != 0)
        return -1;
    mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "websocket_heartbeat_started",
                    json_pack("{s:i}", "interval_ms", cfg->heartbeat_interval_ms),
                    mcpgw_clock_iso(&srv->clock));
    return 0;
}

int mcpgw_server_run(mcpgw_server *srv)
{
    event_base_dispatch(srv->base);
    if (srv->shutting_down)
        mcpgw_log_event(&srv->log, MCPGW_LOG_INFO, "shutdown_complete",
                        json_pack("{s:I}", "remaining", (json_int_t)srv->n_conns),
                        mcpgw_clock_iso(&srv->clock));
    return srv->exit_code;
}

void mcpgw_server_free(mcpgw_server *srv)
{
    mcpgw_posted *p;

    while (srv->conns)
        mcpgw_conn_terminate(srv->conns, "shutdown");
    if (srv->listener)
        evconnlistener_free(srv->listener);
    /* Plugins go after the connections: no request is pending by now. */
    mcpgw_plugins_unload(&srv->plugins);
    mcpgw_handler_table_free(&srv->handlers);
    if (srv->users)
        mcpgw_user_table_free(srv->users);
    if (srv->heartbeat_ev)
        event_free(srv->heartbeat_ev);
    if (srv->sigterm_ev)
        event_free(srv->sigterm_ev);
    if (srv->sigint_ev)
        event_free(srv->sigint_ev);
    if (srv->shutdown_ev)
        event_free(srv->shutdown_ev);
    if (srv->post_ev)
        event_free(srv->post_ev);
    for (p = srv->post_head; p;) {
        mcpgw_posted *next = p->next;
        free(p);
        p = next;
    }
    if (srv->base)
        event_base_free(srv->base);
    pthread_mutex_destroy(&srv->post_lock);
    memset(srv, 0, sizeof(*srv));
}
