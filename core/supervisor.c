/*
 * supervisor.c - the supervisor process and the start of each worker
 * process (see supervisor.h). The supervisor waits on a signalfd and the
 * workers' ready pipe with poll(2): no event loop of its own, so nothing of
 * libevent is shared across fork.
 */
#define _GNU_SOURCE     /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "listen.h"
#include "plugin_loader.h"
#include "server.h"
#include "supervisor.h"
#include "worker_board.h"

#define WORKER_INIT_FAILED 3        /* a worker's exit code when it could not start */
#define START_TIMEOUT_S 30.0        /* every worker must be serving by then */
#define STABLE_RUN_S 10.0           /* a worker that ran this long was not crash-looping */
#define MAX_BACKOFF_S 10.0

mcpgw_handler_watch mcpgw_watch;

typedef struct worker_slot {
    pid_t pid;                      /* 0: not running */
    int ready;                      /* serving since its last start */
    int restarts;                   /* times it was started again */
    int crashes_in_row;             /* deaths without a stable run between */
    double started_at;
    double restart_at;              /* when to start it again; 0: not due */
    int fds[2];                     /* its sockets: listen, plain_listen (-1: none) */
} worker_slot;

typedef struct supervisor {
    mcpgw_gateway *gw;
    mcpgw_worker_board *board;
    int n;
    worker_slot w[MCPGW_LIMITS_MAX_WORKERS];
    mcpgw_listen_addr bound[2];
    int sfd;                        /* signalfd */
    int ready_pipe[2];              /* a worker writes its slot number when serving */
    sigset_t orig_mask;
    int all_ready;                  /* every worker reported ready once */
    int canary_ready;               /* worker 0 started: start the others */
    int shutting_down;
    int draining;                   /* a new generation took over (SIGQUIT) */
    pid_t upgrade_pid;              /* the new supervisor started by SIGUSR2 */
    pid_t upgrade_from;             /* the old one, when we are the new */
    char **argv;                    /* to start a new binary the same way */
    char exe[4096];                 /* this binary's path, as it was started */
    pid_t pid;                      /* the supervisor's own */
    int exit_code;
} supervisor;

static int live_workers(const supervisor *s);
static void signal_workers(supervisor *s, int sig);

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_event(supervisor *s, int level, const char *event, json_t *fields)
{
    mcpgw_log_event(&s->gw->log, level, event, fields, mcpgw_clock_iso(&s->gw->clock));
}

/* ------------------------------------------------------------- a worker */

static mcpgw_worker_board *crash_board;
static int crash_slot;

/* A fatal signal in a worker: note what it was handling for the
 * supervisor's log line, then die of the same signal. */
static void crash_handler(int sig)
{
    const char *type = __atomic_load_n(&mcpgw_watch.type, __ATOMIC_RELAXED);

    if (crash_board && type) {
        char *out = crash_board->slot[crash_slot].handling;
        size_t i = 0;
        for (; i < sizeof(crash_board->slot[0].handling) - 1 && type[i]; i++)
            out[i] = type[i];
        out[i] = '\0';
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handler(mcpgw_worker_board *board, int slot)
{
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
    static char altstack[64 * 1024];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0 };
    struct sigaction sa;

    crash_board = board;
    crash_slot = slot;
    sigaltstack(&ss, NULL);         /* a stack overflow still gets its line */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

typedef struct watchdog {
    mcpgw_gateway *gw;
    mcpgw_worker_board *board;
    int slot;
    pthread_mutex_t lock;
    pthread_cond_t wake;            /* CLOCK_MONOTONIC */
    int stop;
} watchdog;

/* A handler that runs past handler_watchdog_ms has wedged its worker's
 * loop: log it and abort, so the supervisor replaces the worker. */
static void *watchdog_main(void *arg)
{
    watchdog *wd = arg;
    mcpgw_clock clock;

    mcpgw_clock_init(&clock, NULL);
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        /* not through gw->cfg: a reload on the loop may free that snapshot */
        int limit = __atomic_load_n(&wd->gw->handler_watchdog_ms, __ATOMIC_ACQUIRE);
        int period = limit > 0 ? limit / 4 : 250;
        struct timespec until, now;
        const char *type;
        int64_t since, ran_ms;

        if (period < 10)
            period = 10;
        if (period > 250)
            period = 250;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)period * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&wd->wake, &wd->lock, &until);
        if (wd->stop)
            break;
        type = __atomic_load_n(&mcpgw_watch.type, __ATOMIC_ACQUIRE);
        since = __atomic_load_n(&mcpgw_watch.since_ns, __ATOMIC_RELAXED);
        if (limit <= 0 || !type)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ran_ms = ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec - since) / 1000000;
        if (ran_ms <= limit)
            continue;
        wd->board->slot[wd->slot].watchdog = 1;
        mcpgw_log_event(&wd->gw->log, MCPGW_LOG_ERROR, "handler_watchdog",
                        json_pack("{s:i, s:s, s:I, s:i}", "worker", wd->slot, "type", type,
                                  "running_ms", (json_int_t)ran_ms, "limit_ms", limit),
                        mcpgw_clock_iso(&clock));
        abort();
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

static int watchdog_start(watchdog *wd, pthread_t *tid)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&wd->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->wake, &ca);
    pthread_condattr_destroy(&ca);
    wd->stop = 0;
    return pthread_create(tid, NULL, watchdog_main, wd);
}

static void watchdog_stop(watchdog *wd, pthread_t tid)
{
    pthread_mutex_lock(&wd->lock);
    wd->stop = 1;
    pthread_cond_signal(&wd->wake);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(tid, NULL);
}

/* The life of a worker process after fork. Returns its exit code. */
static int worker_main(supervisor *s, int slot)
{
    static watchdog wd;
    mcpgw_worker_spec spec = { slot, s->w[slot].fds[0], s->w[slot].fds[1] };
    mcpgw_server srv;
    pthread_t tid;
    unsigned char byte = (unsigned char)slot;
    int rc, watching;

    /* Signals stay blocked until the loop has its handlers: a SIGHUP or
     * SIGTERM sent meanwhile waits instead of killing a starting worker. */
    close(s->sfd);
    close(s->ready_pipe[0]);
    /* Ctrl-C reaches the whole process group: the supervisor turns it into
     * one SIGTERM for each worker, so the worker itself ignores it. */
    signal(SIGINT, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);               /* the supervisor's: an upgrade */
    prctl(PR_SET_PDEATHSIG, SIGTERM);       /* no orphaned workers */
    if (getppid() != s->pid)                /* it died before the prctl */
        return 0;
    unsetenv("NOTIFY_SOCKET");              /* systemd hears the supervisor only */
    for (int i = 0; i < s->n; i++)
        if (i != slot)
            for (int k = 0; k < 2; k++)
                if (s->w[i].fds[k] >= 0)
                    close(s->w[i].fds[k]);
    s->gw->log.tag = MCPGW_LOG_TAG_WORKER;  /* its lines say which worker */
    s->gw->log.worker = slot;
    s->board->slot[slot].pid = getpid();
    s->board->slot[slot].watchdog = 0;
    s->board->slot[slot].handling[0] = '\0';
    install_crash_handler(s->board, slot);

    if (mcpgw_server_init(&srv, s->gw, &spec) != 0) {
        mcpgw_server_free(&srv);
        mcpgw_gateway_free(s->gw);
        return WORKER_INIT_FAILED;
    }
    sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
    wd.gw = s->gw;
    wd.board = s->board;
    wd.slot = slot;
    watching = watchdog_start(&wd, &tid) == 0;
    if (write(s->ready_pipe[1], &byte, 1) != 1) {
        /* the supervisor is gone: PR_SET_PDEATHSIG ends us */
    }
    close(s->ready_pipe[1]);
    rc = mcpgw_server_run(&srv);
    if (watching)
        watchdog_stop(&wd, tid);
    mcpgw_server_free(&srv);
    mcpgw_gateway_free(s->gw);
    return rc;
}

static int spawn(supervisor *s, int slot)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_event(s, MCPGW_LOG_ERROR, "worker_fork_failed",
                  json_pack("{s:i, s:s}", "worker", slot, "error", strerror(errno)));
        return -1;
    }
    if (pid == 0)
        exit(worker_main(s, slot));
    s->w[slot].pid = pid;
    s->w[slot].ready = 0;
    s->w[slot].started_at = now_s();
    s->w[slot].restart_at = 0;
    return 0;
}

/* ------------------------------------------------------ the supervisor */

static void close_listeners(supervisor *s)
{
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < 2; k++)
            if (s->w[i].fds[k] >= 0) {
                close(s->w[i].fds[k]);
                s->w[i].fds[k] = -1;
            }
}

/* The sockets an old generation handed over (a binary upgrade):
 * MCPGW_LISTEN_FDS is "fd,fd,...|fd,fd,..." (listen | plain_listen, one per
 * worker). Fills inherited[k][i] (-1 where none); returns how many. */
static int inherited_listeners(int inherited[2][MCPGW_LIMITS_MAX_WORKERS])
{
    const char *env = getenv("MCPGW_LISTEN_FDS");
    int k = 0, i = 0, n = 0;

    for (int a = 0; a < 2; a++)
        for (int b = 0; b < MCPGW_LIMITS_MAX_WORKERS; b++)
            inherited[a][b] = -1;
    if (!env)
        return 0;
    for (const char *p = env; *p; p++) {
        if (*p == '|') {
            k++;
            i = 0;
        } else if (*p >= '0' && *p <= '9' && k < 2 && i < MCPGW_LIMITS_MAX_WORKERS) {
            char *end;
            long fd = strtol(p, &end, 10);
            mcpgw_listen_addr b;
            if (fd > 2 && fd < 65536 && mcpgw_listen_describe((int)fd, &b) == 0) {
                inherited[k][i++] = (int)fd;
                n++;
            }
            p = end - 1;
        }
    }
    unsetenv("MCPGW_LISTEN_FDS");
    return n;
}

/* One socket per worker on each address, all on the port the first one
 * got (port 0 picks it): those of an old generation first. */
/* Is an inherited socket the one the configuration asks for? After a
 * SIGUSR2 upgrade whose configuration moved [server] listen, the old
 * address's sockets are not served again: they are closed (what is queued
 * on them is reset) and the new address is opened. A host name (not an
 * address literal) is taken to match. */
static int inherited_fits(const char *host, int port, const mcpgw_listen_addr *b)
{
    unsigned char want[16], have[16];
    int fam = strchr(host, ':') ? AF_INET6 : AF_INET;

    if (port && b->port != port)
        return 0;
    if (inet_pton(fam, host, want) == 1 && inet_pton(fam, b->ip, have) == 1 &&
        memcmp(want, have, fam == AF_INET ? 4 : 16) != 0)
        return 0;
    return 1;
}

static int open_listeners(supervisor *s)
{
    const mcpgw_config *cfg = s->gw->cfg;
    const char *host[2] = { cfg->listen_host, cfg->plain_listen_host };
    int port[2] = { cfg->listen_port, cfg->plain_listen_port };
    int inherited[2][MCPGW_LIMITS_MAX_WORKERS];

    inherited_listeners(inherited);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; host[k] && i < s->n; i++) {
            mcpgw_listen_addr b;
            int fd = inherited[k][i];
            if (fd >= 0 && (mcpgw_listen_describe(fd, &b) != 0 ||
                            !inherited_fits(host[k], port[k], &b))) {
                if (i == 0)
                    log_event(s, MCPGW_LOG_WARN, "listen_changed",
                              json_pack("{s:s, s:i, s:s, s:i}", "was", b.ip, "was_port", b.port,
                                        "now", host[k], "now_port", port[k]));
                fd = -1;        /* left in inherited[k]: closed below */
            }
            if (fd >= 0) {
                inherited[k][i] = -1;
                fcntl(fd, F_SETFD, FD_CLOEXEC);
            } else {
                fd = mcpgw_gateway_listen(s->gw, host[k], i ? s->bound[k].port : port[k], 1, &b);
            }
            if (fd < 0)
                return -1;
            if (i == 0)
                s->bound[k] = b;
            s->w[i].fds[k] = fd;
        }
        /* more than we need (fewer workers now), or another address: their
         * queues go */
        for (int i = 0; i < MCPGW_LIMITS_MAX_WORKERS; i++)
            if (inherited[k][i] >= 0)
                close(inherited[k][i]);
    }
    return 0;
}

/* SIGUSR2: start the binary again (the file at the path it was started
 * from, so a new one if it was replaced), handing it our sockets; it tells
 * us (SIGQUIT) when its workers serve. If it fails, we go on as we are. */
static void upgrade(supervisor *s)
{
    char fds[2][1024];
    pid_t pid;

    if (s->upgrade_pid || s->draining || s->shutting_down || !s->exe[0])
        return;
    for (int k = 0; k < 2; k++) {
        size_t len = 0;
        fds[k][0] = '\0';
        for (int i = 0; i < s->n && s->w[i].fds[k] >= 0; i++)
            len += (size_t)snprintf(fds[k] + len, sizeof(fds[k]) - len, "%s%d", i ? "," : "",
                                    s->w[i].fds[k]);
    }
    pid = fork();
    if (pid < 0) {
        log_event(s, MCPGW_LOG_ERROR, "upgrade_failed",
                  json_pack("{s:s}", "reason", strerror(errno)));
        return;
    }
    if (pid == 0) {
        char env[2100], from[32];
        for (int i = 0; i < s->n; i++)
            for (int k = 0; k < 2; k++)
                if (s->w[i].fds[k] >= 0)
                    fcntl(s->w[i].fds[k], F_SETFD, 0);     /* kept across exec */
        snprintf(env, sizeof(env), "%s|%s", fds[0], fds[1]);
        snprintf(from, sizeof(from), "%d", (int)getppid());
        setenv("MCPGW_LISTEN_FDS", env, 1);
        setenv("MCPGW_UPGRADE_FROM", from, 1);
        if (mcpgw_config_env_secret())  /* the new binary reads it, then scrubs it */
            setenv("MCPGW_JWT_SECRET", mcpgw_config_env_secret(), 1);
        sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
        execv(s->exe, s->argv);
        _exit(127);
    }
    s->upgrade_pid = pid;
    log_event(s, MCPGW_LOG_INFO, "upgrade_started",
              json_pack("{s:i, s:s}", "pid", (int)pid, "binary", s->exe));
}

/* SIGQUIT from the new generation: its workers serve our sockets. Let ours
 * stop accepting and drain, then go. */
static void hand_over(supervisor *s)
{
    if (s->draining || s->shutting_down)
        return;
    s->draining = 1;
    s->shutting_down = 1;           /* no restarts; exit once the workers are gone */
    {
        /* systemd hears only its main process: we name the new one */
        char state[32];
        snprintf(state, sizeof(state), "MAINPID=%d", (int)s->upgrade_pid);
        mcpgw_server_notify(state);
    }
    log_event(s, MCPGW_LOG_INFO, "supervisor_draining",
              json_pack("{s:i, s:i}", "new_supervisor", (int)s->upgrade_pid, "workers",
                        live_workers(s)));
    close_listeners(s);             /* the new generation holds them */
    for (int i = 0; i < s->n; i++)
        s->w[i].restart_at = 0;
    signal_workers(s, SIGQUIT);
}

static int live_workers(const supervisor *s)
{
    int n = 0;

    for (int i = 0; i < s->n; i++)
        n += s->w[i].pid != 0;
    return n;
}

static void signal_workers(supervisor *s, int sig)
{
    for (int i = 0; i < s->n; i++)
        if (s->w[i].pid)
            kill(s->w[i].pid, sig);
}

static void begin_shutdown(supervisor *s, int code)
{
    if (s->shutting_down) {
        /* a second SIGTERM: the workers' second one forces them out */
        signal_workers(s, SIGTERM);
        return;
    }
    s->shutting_down = 1;
    if (code > s->exit_code)
        s->exit_code = code;
    mcpgw_server_notify("STOPPING=1");
    /* New connections are refused once the workers close their copies. */
    close_listeners(s);
    for (int i = 0; i < s->n; i++)
        s->w[i].restart_at = 0;
    signal_workers(s, SIGTERM);
}

static void on_ready(supervisor *s, int slot)
{
    worker_slot *w;

    if (slot < 0 || slot >= s->n || !s->w[slot].pid || s->shutting_down)
        return;
    w = &s->w[slot];
    w->ready = 1;
    if (w->restarts)
        log_event(s, MCPGW_LOG_INFO, "worker_restarted",
                  json_pack("{s:i, s:i, s:i}", "worker", slot, "pid", (int)w->pid, "restarts",
                            w->restarts));
    else
        log_event(s, MCPGW_LOG_INFO, "worker_started",
                  json_pack("{s:i, s:i}", "worker", slot, "pid", (int)w->pid));
    if (s->all_ready)
        return;
    if (!s->canary_ready) {
        /* Worker 0 went first: a configuration that cannot start fails
         * once, with one set of error lines. Now the others. */
        s->canary_ready = 1;
        for (int i = 1; i < s->n; i++)
            if (spawn(s, i) != 0) {
                begin_shutdown(s, 1);
                return;
            }
    }
    for (int i = 0; i < s->n; i++)
        if (!s->w[i].ready)
            return;
    s->all_ready = 1;
    mcpgw_gateway_log_listening(s->gw, &s->bound[0], s->gw->ssl_ctx != NULL);
    if (s->gw->cfg->plain_listen_host)
        mcpgw_gateway_log_listening(s->gw, &s->bound[1], 0);
    if (s->upgrade_from > 0) {
        /* a binary upgrade: we serve; the old generation may drain now */
        char state[64];
        kill(s->upgrade_from, SIGQUIT);
        log_event(s, MCPGW_LOG_INFO, "upgrade_complete",
                  json_pack("{s:i, s:i}", "old_supervisor", (int)s->upgrade_from, "pid",
                            (int)getpid()));
        snprintf(state, sizeof(state), "MAINPID=%d\nREADY=1", (int)getpid());
        mcpgw_server_notify(state);
        return;
    }
    mcpgw_server_notify("READY=1");
}

/* A dead worker's child processes (a plugin's MCP servers, each the
 * leader of its own process group) were handed to us, the subreaper: they
 * serve nobody now. Each group gets SIGKILL; we reap them like workers. */
static void kill_orphans(supervisor *s)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[64], buf[512], *p;
        pid_t pid = (pid_t)atoi(e->d_name);
        int ppid = 0, ours = 0;
        FILE *f;

        if (pid <= 0 || pid == s->upgrade_pid)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (!(f = fopen(path, "re")))
            continue;
        p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid != (int)s->pid)
            continue;
        for (int i = 0; i < s->n; i++)
            ours |= s->w[i].pid == pid;
        if (ours)
            continue;
        if (kill(-pid, SIGKILL) != 0)
            kill(pid, SIGKILL);
        n++;
    }
    closedir(d);
    if (n)
        log_event(s, MCPGW_LOG_WARN, "orphans_killed", json_pack("{s:i}", "processes", n));
}

static void reap(supervisor *s)
{
    pid_t pid;
    int st;

    struct rusage ru;

    while ((pid = wait4(-1, &st, WNOHANG, &ru)) > 0) {
        int slot = -1, reason, code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        worker_slot *w;
        size_t freed;
        json_t *f;

        if (pid == s->upgrade_pid) {
            s->upgrade_pid = 0;
            if (!s->draining)       /* it never took over: we go on */
                log_event(s, MCPGW_LOG_ERROR, "upgrade_failed",
                          json_pack("{s:i, s:i}", "pid", (int)pid, "status", code));
            continue;
        }
        for (int i = 0; i < s->n; i++)
            if (s->w[i].pid == pid)
                slot = i;
        if (slot < 0)
            continue;
        w = &s->w[slot];
        w->pid = 0;
        w->ready = 0;
        s->board->ended_cpu_s += (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
        kill_orphans(s);
        s->board->slot[slot].pid = 0;
        mcpgw_stats_clear_gauges(&s->board->slot[slot].stats);
        freed = mcpgw_limits_release_worker(s->gw->limits, slot);
        if (s->shutting_down) {
            if (code != 0 && s->exit_code == 0)
                s->exit_code = 1;
            continue;
        }
        if (!w->ready && !s->all_ready) {
            /* it never served: the configuration or a plugin is at fault */
            log_event(s, MCPGW_LOG_ERROR, "worker_start_failed",
                      json_pack("{s:i, s:i}", "worker", slot, "status", code));
            begin_shutdown(s, 1);
            continue;
        }
        reason = WIFSIGNALED(st) ? (s->board->slot[slot].watchdog ? MCPGW_RESTART_WATCHDOG
                                                                  : MCPGW_RESTART_CRASH)
                                 : MCPGW_RESTART_EXIT;
        s->board->restarts[reason]++;
        f = json_pack("{s:i, s:i, s:s, s:I}", "worker", slot, "pid", (int)pid, "reason",
                      reason == MCPGW_RESTART_WATCHDOG ? "watchdog"
                      : reason == MCPGW_RESTART_CRASH  ? "crash"
                                                       : "exit",
                      "released_slots", (json_int_t)freed);
        if (f && WIFSIGNALED(st))
            json_object_set_new(f, "signal", json_integer(WTERMSIG(st)));
        if (f && WIFEXITED(st))
            json_object_set_new(f, "status", json_integer(code));
        if (f && s->board->slot[slot].handling[0])
            json_object_set_new(f, "handling", json_string(s->board->slot[slot].handling));
        log_event(s, MCPGW_LOG_ERROR, "worker_crashed", f);
        /* at once the first time; a worker that keeps dying waits longer */
        if (now_s() - w->started_at < STABLE_RUN_S)
            w->crashes_in_row++;
        else
            w->crashes_in_row = 0;
        {
            double delay = 0;
            if (w->crashes_in_row > 0) {
                delay = 0.1;
                for (int k = 1; k < w->crashes_in_row && delay < MAX_BACKOFF_S; k++)
                    delay *= 2;
                if (delay > MAX_BACKOFF_S)
                    delay = MAX_BACKOFF_S;
            }
            w->restart_at = now_s() + delay;
        }
    }
}

#define RELOAD_CHECK_MS 10000

/* Would every plugin of next start? Each section's init (and fini) runs as
 * mcpgw -t runs it, in a child process: the supervisor never runs plugin
 * code, so a plugin that crashes costs only the check. Without this, the
 * running workers would keep their old settings (a plugin's reload may
 * refuse), but a worker started later would be given next and fail to
 * start, again and again. 0 when next is fine. */
static int check_plugins_elsewhere(supervisor *s, mcpgw_config *next)
{
    pid_t pid = fork();
    int st = 0, waited = 0;

    if (pid < 0)
        return 0;           /* cannot check: the workers' own reload still judges */
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(mcpgw_server_check_plugins(next) == 0 ? 0 : 1);
    }
    /* SIGCHLD is blocked (signalfd): nothing else reaps it meanwhile */
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (waited >= RELOAD_CHECK_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            log_event(s, MCPGW_LOG_ERROR, "config_reload_error",
                      json_pack("{s:s}", "error", "the plugins' check did not end in 10 s"));
            return -1;
        }
        usleep(10000);
        waited += 10;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    log_event(s, MCPGW_LOG_ERROR, "config_reload_error",
              json_pack("{s:s}", "error", "a plugin refuses the new configuration (its "
                        "plugin_load_failed line says why)"));
    return -1;
}

static void reload(supervisor *s)
{
    mcpgw_config *next;
    char errs[4096];

    mcpgw_server_notify("RELOADING=1");
    next = mcpgw_gateway_reload_read(s->gw);
    if (next && mcpgw_plugins_check_files(next, errs, sizeof(errs)) > 0) {
        log_event(s, MCPGW_LOG_ERROR, "config_reload_error", json_pack("{s:s}", "error", errs));
        mcpgw_gateway_reload_abandon(s->gw, next);
        next = NULL;
    }
    if (next && check_plugins_elsewhere(s, next) != 0) {
        mcpgw_gateway_reload_abandon(s->gw, next);
        next = NULL;
    }
    if (next) {
        if (next->workers != s->gw->cfg->workers)
            log_event(s, MCPGW_LOG_WARN, "config_restart_required",
                      json_pack("{s:s}", "reason", "a change of workers takes effect after a restart"));
        /* Workers started from now on inherit it; the running ones read it
         * again themselves. */
        mcpgw_gateway_reload_commit(s->gw, next);
        signal_workers(s, SIGHUP);
    }
    mcpgw_server_notify("READY=1");
}

static void on_signal(supervisor *s, int sig, pid_t sender)
{
    switch (sig) {
    case SIGCHLD:
        reap(s);
        break;
    case SIGTERM:
    case SIGINT:
        if (!s->shutting_down)
            log_event(s, MCPGW_LOG_INFO, "supervisor_stopping",
                      json_pack("{s:i, s:i}", "signal", sig, "workers", live_workers(s)));
        begin_shutdown(s, 0);
        break;
    case SIGHUP:
        if (!s->shutting_down)
            reload(s);
        break;
    case SIGUSR2:
        upgrade(s);
        break;
    case SIGQUIT:
        /* only the new generation we started may take over */
        if (s->upgrade_pid && sender == s->upgrade_pid)
            hand_over(s);
        else
            log_event(s, MCPGW_LOG_WARN, "signal_ignored",
                      json_pack("{s:i, s:i}", "signal", sig, "sender", (int)sender));
        break;
    }
}

static int resolve_workers(const mcpgw_config *cfg)
{
    long n = cfg->workers;

    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > MCPGW_LIMITS_MAX_WORKERS)
        n = MCPGW_LIMITS_MAX_WORKERS;
    return (int)n;
}

int mcpgw_supervisor_run(mcpgw_gateway *gw, char **argv)
{
    static supervisor sup;
    supervisor *s = &sup;
    const char *from = getenv("MCPGW_UPGRADE_FROM");
    sigset_t set;
    double deadline;
    ssize_t n;

    memset(s, 0, sizeof(*s));
    s->gw = gw;
    s->argv = argv;
    s->pid = getpid();
    /* the path this binary was started from (SIGUSR2 starts what is there
     * then, a new binary if it was replaced) */
    n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
    s->exe[n > 0 ? n : 0] = '\0';
    if (n > 10 && strcmp(s->exe + n - 10, " (deleted)") == 0)
        s->exe[n - 10] = '\0';
    if (from) {
        s->upgrade_from = (pid_t)atoi(from);
        unsetenv("MCPGW_UPGRADE_FROM");
    }
    s->sfd = s->ready_pipe[0] = s->ready_pipe[1] = -1;
    s->n = resolve_workers(gw->cfg);
    for (int i = 0; i < MCPGW_LIMITS_MAX_WORKERS; i++)
        s->w[i].fds[0] = s->w[i].fds[1] = -1;
    s->board = mmap(NULL, sizeof(*s->board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    if (s->board == MAP_FAILED) {
        s->board = NULL;
        return 1;
    }
    s->board->n_workers = s->n;
    s->board->started = (int64_t)time(NULL);
    gw->board = s->board;
    gw->log.tag = MCPGW_LOG_TAG_SUPERVISOR;
    if (s->n > 1) {
        /* room for several of the largest messages in each ring */
        size_t ring = gw->cfg->max_payload * 4 + 65536;
        gw->bus = mcpgw_bus_new(s->n, ring < ((size_t)8 << 20) ? (size_t)8 << 20 : ring);
        if (!gw->bus)
            goto fail;
    }
    if (open_listeners(s) != 0)
        goto fail;

    /* what a worker leaves behind when it dies comes to us (kill_orphans) */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGQUIT);
    sigprocmask(SIG_BLOCK, &set, &s->orig_mask);
    s->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->sfd < 0 || pipe2(s->ready_pipe, O_CLOEXEC) != 0)
        goto fail;

    if (spawn(s, 0) != 0)           /* the canary; on_ready starts the rest */
        begin_shutdown(s, 1);
    deadline = now_s() + START_TIMEOUT_S;

    while (!s->shutting_down || live_workers(s) > 0) {
        struct pollfd pfd[2] = { { s->sfd, POLLIN, 0 }, { s->ready_pipe[0], POLLIN, 0 } };
        double next = s->all_ready || s->shutting_down ? 0 : deadline, t = now_s();
        int timeout = -1;

        for (int i = 0; i < s->n; i++)
            if (s->w[i].restart_at > 0 && (next == 0 || s->w[i].restart_at < next))
                next = s->w[i].restart_at;
        if (next > 0)
            timeout = next <= t ? 0 : (int)((next - t) * 1000) + 1;
        if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
            break;
        if (pfd[1].revents & POLLIN) {
            unsigned char buf[64];
            ssize_t got = read(s->ready_pipe[0], buf, sizeof(buf));
            for (ssize_t i = 0; i < got; i++)
                on_ready(s, buf[i]);
        }
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                on_signal(s, (int)si.ssi_signo, (pid_t)si.ssi_pid);
        }
        t = now_s();
        if (!s->all_ready && !s->shutting_down && t >= deadline) {
            log_event(s, MCPGW_LOG_ERROR, "worker_start_failed",
                      json_pack("{s:s}", "reason", "not every worker was serving in time"));
            begin_shutdown(s, 1);
        }
        for (int i = 0; i < s->n && !s->shutting_down; i++)
            if (s->w[i].restart_at > 0 && s->w[i].restart_at <= t) {
                s->w[i].restarts++;
                /* what the dead worker had not read is not the new one's */
                if (gw->bus)
                    mcpgw_bus_reset(gw->bus, i);
                if (spawn(s, i) != 0)
                    s->w[i].restart_at = t + 1.0;
            }
    }
    if (s->all_ready)
        log_event(s, MCPGW_LOG_INFO, "supervisor_stopped", json_pack("{s:i}", "exit_code",
                                                                      s->exit_code));
    close_listeners(s);
    close(s->sfd);
    close(s->ready_pipe[0]);
    close(s->ready_pipe[1]);
    gw->board = NULL;
    munmap(s->board, sizeof(*s->board));
    mcpgw_bus_free(gw->bus);
    gw->bus = NULL;
    return s->exit_code;
fail:
    close_listeners(s);
    if (s->sfd >= 0)
        close(s->sfd);
    mcpgw_bus_free(gw->bus);
    gw->bus = NULL;
    gw->board = NULL;
    munmap(s->board, sizeof(*s->board));
    return 1;
}
