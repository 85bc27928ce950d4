/*
 * worker_board.h - what the supervisor and its workers share about the
 * workers themselves: per slot, the message type a worker was handling when
 * it died and whether its watchdog killed it; restart counts by reason (for
 * /metrics). One shared anonymous mapping, made by the supervisor before it
 * forks (NULL for a lone server).
 *
 * Also the process-wide record of the handler running now (mcpgw_watch),
 * which dispatch writes around each handler call and the crash handler and
 * watchdog of a worker read.
 */
#ifndef MCPGW_WORKER_BOARD_H
#define MCPGW_WORKER_BOARD_H

#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "conn_limits.h"
#include "metrics.h"

enum { MCPGW_RESTART_CRASH = 0, MCPGW_RESTART_EXIT, MCPGW_RESTART_WATCHDOG, MCPGW_RESTART_REASONS };

typedef struct mcpgw_worker_board {
    struct {
        volatile pid_t pid;
        volatile int watchdog;          /* the watchdog aborted it */
        char handling[64];              /* the type being handled at its death, or "" */
        mcpgw_worker_stats stats;       /* written by that worker only */
    } slot[MCPGW_LIMITS_MAX_WORKERS];
    volatile uint64_t restarts[MCPGW_RESTART_REASONS];
    int n_workers;
    /* CPU seconds of the workers that ended (the supervisor adds each
     * one's rusage when it reaps it), so process_cpu_seconds_total never
     * goes back when a worker is replaced */
    volatile double ended_cpu_s;
    volatile int64_t started;           /* the supervisor's start, Unix seconds */
} mcpgw_worker_board;

/* The handler running now in this process (NULL type: none). */
typedef struct mcpgw_handler_watch {
    const char *type;
    int64_t since_ns;                   /* CLOCK_MONOTONIC */
} mcpgw_handler_watch;

extern mcpgw_handler_watch mcpgw_watch;

static inline const char *mcpgw_watch_enter(const char *type, int64_t now_ns)
{
    const char *prev = __atomic_load_n(&mcpgw_watch.type, __ATOMIC_RELAXED);

    if (!prev)      /* a nested handler (batch) runs within its parent's time */
        __atomic_store_n(&mcpgw_watch.since_ns, now_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&mcpgw_watch.type, type, __ATOMIC_RELEASE);
    return prev;
}

static inline void mcpgw_watch_leave(const char *prev)
{
    __atomic_store_n(&mcpgw_watch.type, prev, __ATOMIC_RELEASE);
}

/* The same for plugin code that is not a handler (a connection-level
 * plugin's callbacks, timers, child output): `what` names it. */
static inline const char *mcpgw_watch_enter_now(const char *what)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return mcpgw_watch_enter(what, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

#endif
