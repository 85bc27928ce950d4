/*
 * server.h - mcpgw_server: one worker, everything one event loop owns.
 *
 * A worker holds its loop, its listeners, its open connections, its zlib
 * pool, its plugins and handler table, its counters and scratch buffers.
 * What the whole gateway shares (the configuration in force, the log, the
 * token verifier, TLS, the per-user slot table) is the mcpgw_gateway it
 * borrows (gateway.h). Nothing lives in globals, so that several workers
 * can each run their own. All functions run on the loop thread.
 *
 * Ownership: the server owns its connections, plugins and handler table;
 * the gateway passed to mcpgw_server_init() must outlive the server.
 */
#ifndef MCPGW_SERVER_H
#define MCPGW_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "deadline.h"
#include "dispatch.h"
#include "gateway.h"
#include "json_write.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "plugin_loader.h"
#include "pmd.h"
#include "transport.h"

struct event_base;
struct event;
struct evconnlistener;
typedef struct mcpgw_conn mcpgw_conn;
typedef struct mcpgw_payload mcpgw_payload;

/* A function posted from another thread (host->post). */
typedef struct mcpgw_posted {
    void (*fn)(void *arg);
    void *arg;
    struct mcpgw_posted *next;
} mcpgw_posted;

typedef struct mcpgw_server {
    mcpgw_gateway *gw;              /* borrowed: configuration, log, auth, limits */
    int worker_id;                  /* 0..workers-1 (its slot in the shared limits) */
    struct event_base *base;
    mcpgw_clock clock;

    struct evconnlistener *listener;        /* [server] listen: TLS when [tls] is set */
    struct evconnlistener *plain_listener;  /* [server] plain_listen, optional */

    struct event *heartbeat_ev;
    mcpgw_deadlines deadlines;      /* the connections' timers (conn.c): one heap, one event */
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct event *sighup_ev;
    struct event *sigquit_ev;       /* a worker: drain (a binary upgrade) */
    struct event *drain_ev;         /* drain_timeout_ms, then the shutdown */
    struct event *shutdown_ev;      /* shutdown_timeout_ms deadline */
    /* accept() failing for want of resources (EMFILE, ENFILE, ENOBUFS,
     * ENOMEM): the listeners pause, then try again; one log line per
     * interval says how often it failed */
    struct event *accept_resume_ev;
    int accept_backoff_ms;          /* 0: accepting normally */
    unsigned long accept_failures;  /* since the last accept_failed line */
    double accept_logged_at;
    struct event *post_ev;          /* wakes the loop for posted functions */
    mcpgw_io io;                    /* the transports' end-of-iteration flush, buffer pool */
    mcpgw_block *msg_buf;           /* the pool block the message being delivered lies in,
                                       or NULL (ws_session.c: a reply may reference it) */
    struct event *bus_ev;           /* messages from other workers (gw->bus) */
    struct event *bus_again_ev;     /* the rest of them, after the next poll */
    struct event *handover_ev;      /* connections other workers hand us (bus.h) */
    struct mcpgw_cluster *cluster;  /* [cluster]: this worker's Redis side (cluster.h), or NULL */

    pthread_mutex_t post_lock;
    mcpgw_posted *post_head, *post_tail;

    mcpgw_conn *conns;              /* every TCP connection, newest first */
    struct mcpgw_admin_op *admin_ops; /* admin requests waiting for other workers */
    uint64_t admin_seq;             /* their ids (admin_ops.c) */
    struct mcpgw_child *children;   /* plugins' child processes (child.c) */
    struct mcpgw_timer *timers;     /* plugins' pending timers (host_api.c) */
    mcpgw_policy policy;            /* per-user rates of [handler.*] (policy.h) */
    size_t n_conns;                 /* TCP connections */
    size_t n_open;                  /* upgraded WebSocket connections */
    struct mcpgw_mcp_session *mcp_sessions; /* Streamable HTTP sessions (mcp_http.c) */
    size_t n_mcp_sessions;
    size_t n_requests;              /* requests not finished yet */

    mcpgw_pmd_pool pmd_pool;        /* shared zlib streams (no context takeover) */
    mcpgw_handler_table handlers;
    mcpgw_plugin_set plugins;

    mcpgw_worker_stats *stats;      /* this worker's counters: its board slot,
                                       or own_stats for a lone server */
    mcpgw_metrics *metrics;         /* &stats->m */
    mcpgw_worker_stats *own_stats;

    mcpgw_jbuf reply_text;          /* scratch for one reply's JSON text:
                                       filled and copied out in one call */
    mcpgw_buf raw_reply;            /* a raw handler's reply (dispatch.c): filled by
                                       the handler, sent, emptied */
    struct event *trim_ev;          /* gives freed memory back (mcpgw_server_release_memory) */
    double trim_last;               /* when it last ran (s) */

    int shutting_down;              /* 1 after the first SIGTERM/SIGINT */
    int draining;                   /* 1 after SIGQUIT: no more accepts */
    int exit_code;
} mcpgw_server;

/* What the supervisor hands a worker process: its slot, and its listening
 * sockets (owned by the worker from mcpgw_server_init on). */
typedef struct mcpgw_worker_spec {
    int worker_id;
    int listen_fd;                  /* [server] listen */
    int plain_listen_fd;            /* [server] plain_listen, or -1 */
} mcpgw_worker_spec;

/* Sets up the loop and loads the plugins for the gateway gw (initialised);
 * serves spec's sockets, or without spec (a lone server) opens its own.
 * Returns 0, or -1 after logging why (the server is then freed with
 * mcpgw_server_free). */
/* mcpgw -t: runs every plugin's init and fini for the configuration,
 * without sockets. 0, or -1 after logging plugin_load_failed. */
int mcpgw_server_check_plugins(mcpgw_config *cfg);

int mcpgw_server_init(mcpgw_server *srv, mcpgw_gateway *gw, const mcpgw_worker_spec *spec);

/* SIGHUP: reads the gateway's conf_dir again and applies it; an invalid
 * configuration (or one a plugin refuses) is refused as a whole and the
 * running one stays. Returns 0 or -1. */
int mcpgw_server_reload(mcpgw_server *srv);
/* Runs the loop until shutdown; returns the process exit code. */
int mcpgw_server_run(mcpgw_server *srv);
void mcpgw_server_free(mcpgw_server *srv);

/* Begins the graceful shutdown (what SIGTERM does). */
void mcpgw_server_begin_shutdown(mcpgw_server *srv);

/* Sends msg (borrowed), serialised and framed once, to every open
 * connection but `except`. Returns the number of recipients. */
size_t mcpgw_server_broadcast(mcpgw_server *srv, json_t *msg, mcpgw_conn *except);
/* The same for a message already serialised: text[0..len), one JSON
 * object (copied). */
size_t mcpgw_server_broadcast_text(mcpgw_server *srv, const char *text, size_t len,
                                   mcpgw_conn *except);

/* Sends msg (borrowed, serialised once) to every open connection of user.
 * Returns the number of recipients. */
size_t mcpgw_server_send_to_user(mcpgw_server *srv, json_t *msg, const char *user);

/* A broadcast (user NULL) or send-to-user another node published (the
 * cluster's stream): delivered to this worker's connections only. */
void mcpgw_server_deliver_remote(mcpgw_server *srv, const char *user, const char *text, size_t len);

/* Tells systemd (Type=notify) about our state: "READY=1", "STOPPING=1",
 * "RELOADING=1". Nothing happens without $NOTIFY_SOCKET. */
void mcpgw_server_notify(const char *state);

/* One log line of this worker: below the configured level nothing is
 * evaluated (the level is checked inline, before the arguments); fmt and
 * what follows are json_pack()'s (NULL: no fields), and the loop's clock
 * stamps the line. srv is evaluated twice. */
#define mcpgw_server_log(srv, level, event, ...)                                 \
    do {                                                                         \
        if (mcpgw_log_enabled(&(srv)->gw->log, (level)))                         \
            mcpgw_server_log_fields((srv), (level), (event), __VA_ARGS__);       \
    } while (0)
void mcpgw_server_log_fields(mcpgw_server *srv, int level, const char *event, const char *fmt,
                             ...);

/* Queues fn(arg) to run on the loop thread; safe from any thread. */
int mcpgw_server_post(mcpgw_server *srv, void (*fn)(void *arg), void *arg);

/* A message (or a buffer) of at least this many bytes gives its memory back
 * to the system once released (mcpgw_server_release_memory). */
#define MCPGW_RELEASE_AFTER (1024 * 1024)

/* A large message has been handled and its buffers freed: hands the memory
 * the allocator keeps free back to the system (glibc: malloc_trim, at the
 * next turn of the loop and at most once a second; elsewhere nothing).
 * Parsing a large message makes many small allocations that, once freed,
 * glibc would otherwise keep for good. */
void mcpgw_server_release_memory(mcpgw_server *srv);

/* Called when a connection has gone from the list or a request finished:
 * completes a shutdown once nothing is left. */
void mcpgw_server_conn_gone(mcpgw_server *srv);

#endif
