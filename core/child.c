/*
 * child.c - plugin child processes: spawn, pipes, exit. See child.h.
 *
 * Life of a child: spawned (posix_spawnp: vfork semantics, so the worker
 * does not copy its page tables) -> running (stdout lines to on_line, stdin
 * queue flushed when the loop iteration's callbacks are done) -> reaped
 * (pidfd readable) and both output pipes at EOF -> on_exit -> freed. A
 * stopped (detached) child takes the same road silently, with SIGTERM and
 * SIGKILL to its process group on a timer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "child.h"
#include "json_write.h"
#include "log.h"
#include "server.h"
#include "worker_board.h"

#define CHILD_DEFAULT_MAX 4194304u
#define CHILD_READ_CHUNK 65536
#define CHILD_STDERR_LINES_PER_S 20
#define CHILD_STDERR_MAX_LINE 2048
#define CHILD_EOF_AFTER_EXIT_MS 1000   /* a grandchild may hold the pipes open */
#define CHILD_POLL_MS 100              /* without pidfd_open */
#define CHILD_SCRATCH_KEEP 65536       /* the worker's scratch text buffer kept between uses */

struct mcpgw_child {
    mcpgw_server *srv;
    char owner[64];                 /* the plugin, for log lines */
    pid_t pid;
    int pidfd;                      /* -1: polled with waitpid */
    int in_fd, out_fd, err_fd;      /* -1 once closed */
    struct event *in_ev, *out_ev, *err_ev, *pid_ev, *timer_ev;
    struct evbuffer *inq, *out, *err;
    size_t max_line, max_queue;
    void (*on_line)(void *arg, const char *line, size_t len);
    void (*on_exit)(void *arg, int status);
    void *arg;
    int paused, detached, reaped, status, killed;
    int kill_stage;                 /* detached: 0 wait, 1 SIGTERM sent, 2 SIGKILL sent */
    double kill_at;                 /* polled (no pidfd) and stopped: SIGKILL from then on */
    unsigned grace_ms;
    int in_delivery;                /* on_line is running: do not free */
    double err_window;              /* stderr rate limit: window start (s) */
    int err_lines, err_dropped;
    mcpgw_child *prev, *next;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void close_fd(int *fd, struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void log_child(mcpgw_child *ch, int level, const char *event, json_t *fields)
{
    mcpgw_server *srv = ch->srv;

    if (!mcpgw_log_enabled(&srv->gw->log, level)) {
        json_decref(fields);
        return;
    }
    if (!fields)
        fields = json_object();
    json_object_set_new(fields, "plugin", json_string(ch->owner));
    json_object_set_new(fields, "pid", json_integer(ch->pid));
    mcpgw_log_event(&srv->gw->log, level, event, fields, mcpgw_clock_iso(&srv->clock));
}

static void signal_group(mcpgw_child *ch, int sig)
{
    if (!ch->reaped)
        kill(-ch->pid, sig);        /* its own process group: grandchildren too */
}

static void child_free(mcpgw_child *ch)
{
    mcpgw_server *srv = ch->srv;

    close_fd(&ch->in_fd, &ch->in_ev);
    close_fd(&ch->out_fd, &ch->out_ev);
    close_fd(&ch->err_fd, &ch->err_ev);
    close_fd(&ch->pidfd, &ch->pid_ev);
    if (ch->timer_ev)
        event_free(ch->timer_ev);
    if (ch->inq)
        evbuffer_free(ch->inq);
    if (ch->out)
        evbuffer_free(ch->out);
    if (ch->err)
        evbuffer_free(ch->err);
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        srv->children = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    free(ch);
}

/* Reaped and both pipes at EOF: tell the plugin, then free. */
static void maybe_finish(mcpgw_child *ch)
{
    if (!ch->reaped || ch->out_fd >= 0 || ch->err_fd >= 0 || ch->in_delivery)
        return;
    if (WIFSIGNALED(ch->status))
        log_child(ch, MCPGW_LOG_INFO, "child_exited",
                  json_pack("{s:i, s:b}", "signal", WTERMSIG(ch->status), "stopped", ch->detached));
    else
        log_child(ch, MCPGW_LOG_INFO, "child_exited",
                  json_pack("{s:i, s:b}", "code", WEXITSTATUS(ch->status), "stopped", ch->detached));
    if (!ch->detached && ch->on_exit) {
        const char *outer = mcpgw_watch_enter_now(ch->owner);
        ch->detached = 1;
        ch->on_exit(ch->arg, ch->status);
        mcpgw_watch_leave(outer);
    }
    child_free(ch);
}

/* ------------------------------------------------------------ stdout */

/* Hands every complete line to the plugin; 0, or -1 when a line is too
 * long (the child is killed). */
static int deliver_lines(mcpgw_child *ch)
{
    while (!ch->paused && !ch->killed) {
        struct evbuffer_ptr eol = evbuffer_search(ch->out, "\n", 1, NULL);
        size_t avail = evbuffer_get_length(ch->out);
        size_t len;
        char *line;

        if (eol.pos < 0) {
            if (avail > ch->max_line) {
                log_child(ch, MCPGW_LOG_WARN, "child_line_too_long",
                          json_pack("{s:I}", "limit", (json_int_t)ch->max_line));
                ch->killed = 1;
                signal_group(ch, SIGKILL);
                evbuffer_drain(ch->out, avail);
                return -1;
            }
            return 0;
        }
        len = (size_t)eol.pos;
        line = (char *)evbuffer_pullup(ch->out, (ev_ssize_t)len + 1);
        if (!line)
            return -1;
        if (len && line[len - 1] == '\r')
            len--;
        if (!ch->detached && ch->on_line && len) {
            const char *outer = mcpgw_watch_enter_now(ch->owner);
            ch->in_delivery = 1;
            ch->on_line(ch->arg, line, len);
            ch->in_delivery = 0;
            mcpgw_watch_leave(outer);
        }
        evbuffer_drain(ch->out, (size_t)eol.pos + 1);
    }
    return 0;
}

static void out_readable(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_child *ch = arg;
    int n = evbuffer_read(ch->out, fd, CHILD_READ_CHUNK);

    (void)what;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        ch->paused = 0;     /* the end: what is left is bounded, it all goes */
    deliver_lines(ch);
    if (n <= 0) {
        /* EOF (or an error): a last line without newline still counts */
        if (evbuffer_get_length(ch->out) && !ch->detached && ch->on_line && !ch->killed) {
            size_t len = evbuffer_get_length(ch->out);
            char *line = (char *)evbuffer_pullup(ch->out, -1);
            if (line && len <= ch->max_line) {
                const char *outer = mcpgw_watch_enter_now(ch->owner);
                ch->in_delivery = 1;
                ch->on_line(ch->arg, line, len);
                ch->in_delivery = 0;
                mcpgw_watch_leave(outer);
            }
        }
        evbuffer_drain(ch->out, evbuffer_get_length(ch->out));
        close_fd(&ch->out_fd, &ch->out_ev);
        maybe_finish(ch);
    }
}

/* ------------------------------------------------------------ stderr */

static void stderr_line(mcpgw_child *ch, const char *line, size_t len)
{
    double t = now_s();

    if (t - ch->err_window >= 1.0) {
        if (ch->err_dropped)
            log_child(ch, MCPGW_LOG_WARN, "child_stderr_suppressed",
                      json_pack("{s:i}", "lines", ch->err_dropped));
        ch->err_window = t;
        ch->err_lines = 0;
        ch->err_dropped = 0;
    }
    if (ch->err_lines >= CHILD_STDERR_LINES_PER_S) {
        ch->err_dropped++;
        return;
    }
    ch->err_lines++;
    if (len > CHILD_STDERR_MAX_LINE)
        len = CHILD_STDERR_MAX_LINE;
    log_child(ch, MCPGW_LOG_INFO, "child_stderr", json_pack("{s:s%}", "line", line, len));
}

static void err_readable(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_child *ch = arg;
    int n = evbuffer_read(ch->err, fd, CHILD_READ_CHUNK);

    (void)what;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    for (;;) {
        struct evbuffer_ptr eol = evbuffer_search(ch->err, "\n", 1, NULL);
        size_t avail = evbuffer_get_length(ch->err);
        if (eol.pos < 0) {
            if (avail > CHILD_STDERR_MAX_LINE || (n <= 0 && avail)) {
                stderr_line(ch, (char *)evbuffer_pullup(ch->err, -1), avail);
                evbuffer_drain(ch->err, avail);
            }
            break;
        }
        stderr_line(ch, (char *)evbuffer_pullup(ch->err, eol.pos + 1), (size_t)eol.pos);
        evbuffer_drain(ch->err, (size_t)eol.pos + 1);
    }
    if (n <= 0) {
        close_fd(&ch->err_fd, &ch->err_ev);
        maybe_finish(ch);
    }
}

/* ------------------------------------------------------------ stdin */

static void in_writable(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_child *ch = arg;

    (void)what;
    while (evbuffer_get_length(ch->inq)) {
        int n = evbuffer_write(ch->inq, fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(ch->in_ev, NULL);     /* wait for room */
                return;
            }
            /* EPIPE: the child closed stdin or died; what is queued is lost */
            evbuffer_drain(ch->inq, evbuffer_get_length(ch->inq));
            close_fd(&ch->in_fd, &ch->in_ev);
            return;
        }
    }
    event_del(ch->in_ev);
    if (ch->detached)           /* stopping: everything is written, close stdin */
        close_fd(&ch->in_fd, &ch->in_ev);
}

/* ------------------------------------------------------------ exit */

static void reap(mcpgw_child *ch)
{
    int status;
    siginfo_t si;
    pid_t r;

    /* Exited? Look without reaping: while the leader is a zombie its pid
     * and process group cannot be reused, so what it left running in its
     * group (a wrapper's server, a helper) is killed now. */
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)ch->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
        return;
    kill(-ch->pid, SIGKILL);
    r = waitpid(ch->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return;
    ch->reaped = 1;
    if (ch->paused && ch->out_fd >= 0) {
        /* the rest of its output is bounded now (the pipe): it all goes */
        ch->paused = 0;
        event_add(ch->out_ev, NULL);
        event_active(ch->out_ev, EV_READ, 0);
    }
    ch->status = r == ch->pid ? status : 0;
    close_fd(&ch->pidfd, &ch->pid_ev);
    close_fd(&ch->in_fd, &ch->in_ev);
    /* The pipes should reach EOF now; a grandchild holding them gets a
     * moment, then they are closed. */
    if (ch->out_fd >= 0 || ch->err_fd >= 0) {
        struct timeval tv = { 0, CHILD_EOF_AFTER_EXIT_MS * 1000 };
        ch->kill_stage = 3;
        evtimer_add(ch->timer_ev, &tv);
    }
    maybe_finish(ch);
}

static void pid_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap(arg);
}

static void timer_fired(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_child *ch = arg;
    struct timeval tv;

    (void)fd;
    (void)what;
    switch (ch->kill_stage) {
    case 0:             /* a stopped child had grace_ms / 2 to leave */
        signal_group(ch, SIGTERM);
        ch->kill_stage = 1;
        tv.tv_sec = (ch->grace_ms - ch->grace_ms / 2) / 1000;
        tv.tv_usec = (suseconds_t)((ch->grace_ms - ch->grace_ms / 2) % 1000) * 1000;
        evtimer_add(ch->timer_ev, &tv);
        break;
    case 1:
        signal_group(ch, SIGKILL);
        ch->kill_stage = 2;
        break;
    case 3:             /* exited long ago; its pipes are still open */
        close_fd(&ch->out_fd, &ch->out_ev);
        close_fd(&ch->err_fd, &ch->err_ev);
        maybe_finish(ch);
        break;
    case 4:             /* no pidfd: poll */
        if (ch->kill_at > 0 && now_s() >= ch->kill_at)
            signal_group(ch, SIGKILL);
        reap(ch);
        if (!ch->reaped) {
            tv.tv_sec = 0;
            tv.tv_usec = CHILD_POLL_MS * 1000;
            evtimer_add(ch->timer_ev, &tv);
        }
        break;
    }
}

/* ------------------------------------------------------------ spawn */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

mcpgw_child *mcpgw_child_spawn(mcpgw_server *srv, const char *owner,
                               const mcpgw_child_spec *spec, char *err, size_t err_len)
{
    static char *const empty_env[] = { NULL };
    int in_p[2] = { -1, -1 }, out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = 0, attr_ok = 0, rc;
    sigset_t none, defaults;
    mcpgw_child *ch = NULL;
    pid_t pid;

    if (!spec || !spec->argv || !spec->argv[0] || !spec->on_line) {
        snprintf(err, err_len, "child_spawn needs argv and on_line");
        return NULL;
    }
    ch = calloc(1, sizeof(*ch));
    if (!ch || pipe2(in_p, O_CLOEXEC) || pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC)) {
        snprintf(err, err_len, "%s", ch ? strerror(errno) : "out of memory");
        goto fail;
    }
    ch->srv = srv;
    snprintf(ch->owner, sizeof(ch->owner), "%s", owner ? owner : "");
    ch->pidfd = ch->in_fd = ch->out_fd = ch->err_fd = -1;
    ch->max_line = spec->max_line ? spec->max_line : CHILD_DEFAULT_MAX;
    ch->max_queue = spec->max_queue ? spec->max_queue : CHILD_DEFAULT_MAX;
    ch->on_line = spec->on_line;
    ch->on_exit = spec->on_exit;
    ch->arg = spec->arg;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        goto spawn_error;
    fa_ok = 1;
    if ((rc = posix_spawnattr_init(&attr)) != 0)
        goto spawn_error;
    attr_ok = 1;
    sigemptyset(&none);
    /* What the worker ignores would stay ignored across exec. */
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGQUIT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGUSR1);
    sigaddset(&defaults, SIGUSR2);
    sigaddset(&defaults, SIGCHLD);
    if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&attr, &defaults)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, in_p[0], 0)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, out_p[1], 1)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, err_p[1], 2)) != 0 ||
        (spec->cwd && (rc = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd)) != 0) ||
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
        goto spawn_error;
    rc = posix_spawnp(&pid, spec->argv[0], &fa, &attr, (char *const *)spec->argv,
                      spec->envp ? (char *const *)spec->envp : empty_env);
    if (rc != 0)
        goto spawn_error;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    fa_ok = attr_ok = 0;
    ch->pid = pid;

    close(in_p[0]);
    close(out_p[1]);
    close(err_p[1]);
    ch->in_fd = in_p[1];
    ch->out_fd = out_p[0];
    ch->err_fd = err_p[0];
    in_p[1] = out_p[0] = err_p[0] = -1;
    set_nonblock(ch->in_fd);
    set_nonblock(ch->out_fd);
    set_nonblock(ch->err_fd);
    ch->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    ch->inq = evbuffer_new();
    ch->out = evbuffer_new();
    ch->err = evbuffer_new();
    ch->in_ev = event_new(srv->base, ch->in_fd, EV_WRITE, in_writable, ch);
    ch->out_ev = event_new(srv->base, ch->out_fd, EV_READ | EV_PERSIST, out_readable, ch);
    ch->err_ev = event_new(srv->base, ch->err_fd, EV_READ | EV_PERSIST, err_readable, ch);
    ch->timer_ev = evtimer_new(srv->base, timer_fired, ch);
    if (ch->pidfd >= 0)
        ch->pid_ev = event_new(srv->base, ch->pidfd, EV_READ, pid_event, ch);
    ch->next = srv->children;
    if (srv->children)
        srv->children->prev = ch;
    srv->children = ch;
    if (!ch->inq || !ch->out || !ch->err || !ch->in_ev || !ch->out_ev || !ch->err_ev ||
        !ch->timer_ev || (ch->pidfd >= 0 && !ch->pid_ev)) {
        snprintf(err, err_len, "out of memory");
        ch->detached = 1;
        signal_group(ch, SIGKILL);
        waitpid(ch->pid, NULL, 0);      /* SIGKILL: at once */
        child_free(ch);
        return NULL;
    }
    event_add(ch->out_ev, NULL);
    event_add(ch->err_ev, NULL);
    if (ch->pid_ev) {
        event_add(ch->pid_ev, NULL);
    } else {
        struct timeval tv = { 0, CHILD_POLL_MS * 1000 };
        ch->kill_stage = 4;
        evtimer_add(ch->timer_ev, &tv);
    }
    log_child(ch, MCPGW_LOG_INFO, "child_started", json_pack("{s:s}", "command", spec->argv[0]));
    return ch;

spawn_error:
    snprintf(err, err_len, "cannot start %s: %s", spec->argv[0], strerror(rc));
fail:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    for (int i = 0; i < 2; i++) {
        if (in_p[i] >= 0)
            close(in_p[i]);
        if (out_p[i] >= 0)
            close(out_p[i]);
        if (err_p[i] >= 0)
            close(err_p[i]);
    }
    free(ch);
    return NULL;
}

int mcpgw_child_write(mcpgw_child *ch, const char *data, size_t len)
{
    size_t queued;

    if (ch->in_fd < 0 || ch->detached)
        return -1;
    queued = evbuffer_get_length(ch->inq);
    if (queued + len > ch->max_queue)
        return -1;
    if (evbuffer_add(ch->inq, data, len) != 0)
        return -1;
    /* Written once this loop iteration's callbacks are done: what several
     * of them queued goes out in one write. */
    if (queued == 0)
        event_active(ch->in_ev, EV_WRITE, 0);
    return 0;
}

int mcpgw_child_write_json(mcpgw_child *ch, json_t *msg)
{
    mcpgw_jbuf *b = &ch->srv->reply_text;       /* the worker's scratch, free between calls */
    int rc;

    b->len = 0;
    if (!msg || mcpgw_json_write(b, msg) != 0 || mcpgw_jbuf_reserve(b, 1) != 0) {
        mcpgw_jbuf_reset(b, CHILD_SCRATCH_KEEP);
        return -1;
    }
    b->data[b->len++] = '\n';
    rc = mcpgw_child_write(ch, b->data, b->len);
    mcpgw_jbuf_reset(b, CHILD_SCRATCH_KEEP);
    return rc;
}

size_t mcpgw_child_queued(mcpgw_child *ch)
{
    return ch->inq ? evbuffer_get_length(ch->inq) : 0;
}

void mcpgw_child_pause(mcpgw_child *ch, int paused)
{
    if (ch->detached || ch->out_fd < 0 || ch->paused == !!paused)
        return;
    ch->paused = !!paused;
    if (paused) {
        event_del(ch->out_ev);
        return;
    }
    event_add(ch->out_ev, NULL);
    /* lines read before the pause */
    if (evbuffer_get_length(ch->out))
        event_active(ch->out_ev, EV_READ, 0);
}

void mcpgw_child_stop(mcpgw_child *ch, unsigned grace_ms)
{
    struct timeval tv;

    if (ch->detached)
        return;
    ch->detached = 1;
    ch->paused = 0;
    ch->grace_ms = grace_ms;
    if (ch->out_fd >= 0)
        event_add(ch->out_ev, NULL);    /* keep draining, so it never blocks on a full pipe */
    if (ch->in_fd >= 0 && evbuffer_get_length(ch->inq) == 0)
        close_fd(&ch->in_fd, &ch->in_ev);
    if (ch->reaped) {
        maybe_finish(ch);
        return;
    }
    if (ch->kill_stage == 4) {          /* polling: keep polling, signal by hand */
        signal_group(ch, grace_ms ? SIGTERM : SIGKILL);
        ch->kill_at = now_s() + grace_ms / 1000.0;
    }
    else {
        ch->kill_stage = 0;
        tv.tv_sec = grace_ms / 2 / 1000;
        tv.tv_usec = (suseconds_t)(grace_ms / 2 % 1000) * 1000;
        evtimer_add(ch->timer_ev, &tv);
    }
}

long mcpgw_child_pid(mcpgw_child *ch)
{
    return (long)ch->pid;
}

void mcpgw_children_free_all(mcpgw_server *srv)
{
    mcpgw_child *ch;
    int waited_ms = 0;

    for (ch = srv->children; ch; ch = ch->next) {
        ch->detached = 1;
        close_fd(&ch->in_fd, &ch->in_ev);
        signal_group(ch, SIGTERM);
    }
    /* a short, bounded wait for a clean exit, then SIGKILL */
    while (srv->children && waited_ms < 500) {
        int left = 0;
        for (ch = srv->children; ch; ch = ch->next) {
            if (!ch->reaped && waitpid(ch->pid, &ch->status, WNOHANG) == ch->pid)
                ch->reaped = 1;
            left += !ch->reaped;
        }
        if (!left)
            break;
        usleep(10000);
        waited_ms += 10;
    }
    while ((ch = srv->children)) {
        if (!ch->reaped) {
            signal_group(ch, SIGKILL);
            waitpid(ch->pid, &ch->status, 0);
            ch->reaped = 1;
        }
        child_free(ch);
    }
}
