/*
 * gateway.h - mcpgw_gateway: what the whole gateway shares, apart from any
 * event loop.
 *
 * The configuration snapshot in force (reference-counted, config.h), the log, the token verifier, the TLS context, the
 * connection slots of every worker (shared memory) and the start time. A worker (mcpgw_server, server.h)
 * holds the rest: its loop, listeners, connections, zlib pool, plugins,
 * handler table, counters and scratch buffers. Today one worker runs beside
 * the gateway in one process; with several, the supervisor builds the
 * gateway before it forks and each worker inherits it.
 *
 * Ownership: the gateway holds one reference on the configuration in force
 * from mcpgw_gateway_init() on (it takes the caller's); a reload drops it
 * for the new one's, so an earlier snapshot lives only as long as
 * something else still holds it (config.h).
 * conf_dir is borrowed and must outlive it. Workers borrow the gateway.
 */
#ifndef MCPGW_GATEWAY_H
#define MCPGW_GATEWAY_H

#include <time.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "conn_limits.h"

struct ssl_ctx_st;

typedef struct mcpgw_gateway {
    mcpgw_config *cfg;                      /* in force; replaced by a reload */
    const char *conf_dir;                   /* where a reload reads it again */
    int handler_watchdog_ms;                /* cfg's, for the watchdog thread (atomic) */
    mcpgw_log log;
    mcpgw_clock clock;                      /* for lines logged off any loop */
    mcpgw_auth_config auth;
    struct ssl_ctx_st *ssl_ctx;             /* NULL without [tls] */
    mcpgw_limits *limits;                   /* shared: connection slots, ids */
    time_t started;
    struct mcpgw_worker_board *board;       /* the supervisor's (worker_board.h); NULL alone */
    struct mcpgw_bus *bus;                  /* between workers (bus.h); NULL with one */
} mcpgw_gateway;

/* Takes cfg (read from conf_dir). Checks the JWT secret, sets up the token
 * verifier, the user table and TLS. Returns 0, or -1 after logging why
 * (free it with mcpgw_gateway_free then). */
int mcpgw_gateway_init(mcpgw_gateway *gw, mcpgw_config *cfg, const char *conf_dir);
void mcpgw_gateway_free(mcpgw_gateway *gw);

/* Opens a listening socket (listen.h), logging server_listen_failed when it
 * cannot; the fd or -1. */
int mcpgw_gateway_listen(mcpgw_gateway *gw, const char *host, int port, int reuseport,
                         mcpgw_listen_addr *bound);
/* Logs server_listening for a bound address. */
void mcpgw_gateway_log_listening(mcpgw_gateway *gw, const mcpgw_listen_addr *bound, int tls);

/* A reload in two steps, so that a worker can refuse it in between (its
 * plugins may reject the new configuration):
 * mcpgw_gateway_reload_read() reads conf_dir again and checks what the
 * gateway needs; NULL after logging every error. Then either
 * mcpgw_gateway_reload_commit(), which puts it in force (warning about what
 * only a restart changes), or mcpgw_gateway_reload_abandon(), which logs
 * that the running configuration stays and frees it. */
mcpgw_config *mcpgw_gateway_reload_read(mcpgw_gateway *gw);
void mcpgw_gateway_reload_commit(mcpgw_gateway *gw, mcpgw_config *next);
void mcpgw_gateway_reload_abandon(mcpgw_gateway *gw, mcpgw_config *next);

#endif
