/*
 * gw.c - running the real gateway for the client tests, and small event
 * loop / event recording helpers (see gw.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"

const char *gw_builddir(void)
{
    const char *b = getenv("MCPGW_BUILDDIR");
    return b && *b ? b : ".";
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int gw_has_async_echo(void)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/tests/plugins/.libs/async_echo.so", gw_builddir());
    return access(p, R_OK) == 0;
}

static void abs_path(const char *rel, char *out, size_t cap)
{
    char cwd[768];
    if (rel[0] == '/')
        snprintf(out, cap, "%s", rel);
    else
        snprintf(out, cap, "%s/%s", getcwd(cwd, sizeof(cwd)) ? cwd : ".", rel);
}

int gw_init(gw *g, const char *extra_ini)
{
    char p[1024], src[1200], b[1024];
    static const char *plugins[] = { "ping", "batch", "agent_status" };
    size_t i;

    memset(g, 0, sizeof(*g));
    snprintf(g->dir, sizeof(g->dir), "/tmp/mcpgw-client-test-XXXXXX");
    if (!mkdtemp(g->dir))
        return -1;
    snprintf(p, sizeof(p), "%s/plugins", g->dir);
    mkdir(p, 0700);
    abs_path(gw_builddir(), b, sizeof(b));
    for (i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
        snprintf(src, sizeof(src), "%s/plugins/.libs/%s.so", b, plugins[i]);
        snprintf(p, sizeof(p), "%s/plugins/%s.so", g->dir, plugins[i]);
        if (symlink(src, p) != 0)
            return -1;
    }
    if (gw_has_async_echo()) {
        snprintf(src, sizeof(src), "%s/tests/plugins/.libs/async_echo.so", b);
        snprintf(p, sizeof(p), "%s/plugins/async_echo.so", g->dir);
        if (symlink(src, p) != 0)
            return -1;
    }
    snprintf(g->extra, sizeof(g->extra), "%s", extra_ini ? extra_ini : "");
    return 0;
}

static int write_conf(gw *g)
{
    char p[1024];
    FILE *f;

    snprintf(p, sizeof(p), "%s/50-test.ini", g->dir);
    f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f, "[server]\nlisten = 127.0.0.1:%d\npath = /ws\nshutdown_timeout_ms = 1000\n"
               "[auth]\njwt_secret = " GW_SECRET "\nalgorithms = HS256\n"
               "[log]\nlevel = info\n"
               "[plugins]\ndir = %s/plugins\n"
               "[handler.ping]\nplugin = ping\n"
               "[handler.batch]\nplugin = batch\n"
               "[handler.agent_status]\nplugin = agent_status\n",
            g->port, g->dir);
    if (gw_has_async_echo())
        fprintf(f, "[handler.slow]\nplugin = async_echo\ndelay_ms = 400\n");
    if (fclose(f) != 0)
        return -1;
    /* The test's own settings, in a later file so they override. */
    snprintf(p, sizeof(p), "%s/60-extra.ini", g->dir);
    f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", g->extra);
    return fclose(f);
}

int gw_start(gw *g)
{
    char bin[1024], log[1024], conf[1024];
    long deadline;
    pid_t pid;

    if (write_conf(g) != 0)
        return -1;
    snprintf(bin, sizeof(bin), "%s/core/mcpgw", gw_builddir());
    snprintf(log, sizeof(log), "%s/gw-%d.log", g->dir, ++g->starts);
    snprintf(conf, sizeof(conf), "%s", g->dir);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDWR);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(fd, 2);
        setpgid(0, 0);      /* its own group: a SIGKILL takes its workers too */
        unsetenv("MCPGW_JWT_SECRET");
        execl(bin, "mcpgw", "-c", conf, (char *)NULL);
        _exit(127);
    }
    g->pid = pid;
    deadline = now_ms() + 5000;
    while (now_ms() < deadline) {
        char buf[8192];
        FILE *f = fopen(log, "r");
        int status;
        if (f) {
            while (fgets(buf, sizeof(buf), f)) {
                char *p = strstr(buf, "\"server_listening\"");
                char *q = p ? strstr(buf, "\"port\":") : NULL;
                if (q) {
                    g->port = atoi(q + 7);
                    fclose(f);
                    return 0;
                }
            }
            fclose(f);
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "gateway exited early; log %s\n", log);
            g->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    fprintf(stderr, "gateway did not report server_listening; log %s\n", log);
    gw_stop(g, SIGKILL);
    return -1;
}

void gw_stop(gw *g, int sig)
{
    long deadline;
    int status;

    if (g->pid <= 0)
        return;
    /* SIGKILL is a hard crash of the whole gateway, workers included (a
     * supervisor killed alone has its workers shut down gracefully). */
    if (sig == SIGKILL)
        kill(-g->pid, SIGKILL);
    kill(g->pid, sig);
    deadline = now_ms() + 5000;
    while (waitpid(g->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(g->pid, SIGKILL);
            waitpid(g->pid, &status, 0);
            break;
        }
        usleep(5000);
    }
    g->pid = 0;
}

void gw_cleanup(gw *g)
{
    char cmd[512];

    gw_stop(g, SIGKILL);
    if (g->dir[0] && strncmp(g->dir, "/tmp/mcpgw-client-test-", 23) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g->dir);
    }
    g->dir[0] = '\0';
}

void gw_url(const gw *g, char *buf, size_t cap)
{
    snprintf(buf, cap, "ws://127.0.0.1:%d/ws", g->port);
}

char *gw_token(gw *g, const char *user)
{
    char cmd[2048], buf[4096];
    FILE *p;
    size_t n;

    if (write_conf(g) != 0)
        return NULL;
    snprintf(cmd, sizeof(cmd), "'%s/core/mcpgw' -c '%s' --mint-token '%s' 2>/dev/null",
             gw_builddir(), g->dir, user);
    p = popen(cmd, "r");
    if (!p)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, p);
    pclose(p);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return n ? strdup(buf) : NULL;
}

/* ---------------------------------------------------------------- loop */

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

int run_until(struct event_base *base, int (*pred)(void *), void *arg, int timeout_ms)
{
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = { 0, 5000 };
    long deadline = now_ms() + timeout_ms;
    int ok = 1;

    event_add(t, &tv);
    while (!pred || !pred(arg)) {
        if (now_ms() >= deadline) {
            ok = pred ? 0 : 1;
            break;
        }
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
    return ok;
}

void run_for(struct event_base *base, int ms)
{
    run_until(base, NULL, NULL, ms);
}

/* ---------------------------------------------------------------- events */

void evlog_init(evlog *l)
{
    memset(l, 0, sizeof(*l));
    l->messages = json_array();
}

void evlog_free(evlog *l)
{
    json_decref(l->messages);
    l->messages = NULL;
}

void evlog_cb(mcpgw_client *c, const mcpgw_client_event *ev, void *arg)
{
    evlog *l = arg;
    (void)c;

    if (ev->type == MCPGW_CLIENT_EV_MESSAGE && ev->message)
        json_array_append(l->messages, ev->message);
    if (l->n >= EVLOG_MAX)
        return;
    l->e[l->n].type = ev->type;
    l->e[l->n].code = ev->code;
    l->e[l->n].will_reconnect = ev->will_reconnect;
    l->e[l->n].attempt = ev->attempt;
    l->e[l->n].delay_ms = ev->delay_ms;
    l->e[l->n].http_status = ev->http_status;
    snprintf(l->e[l->n].reason, sizeof(l->e[l->n].reason), "%s", ev->reason ? ev->reason : "");
    snprintf(l->e[l->n].body, sizeof(l->e[l->n].body), "%s", ev->http_body ? ev->http_body : "");
    snprintf(l->e[l->n].text, sizeof(l->e[l->n].text), "%.*s",
             (int)(ev->len < 500 ? ev->len : 500), ev->text ? ev->text : "");
    l->n++;
}

int evlog_count(const evlog *l, mcpgw_client_event_type t)
{
    int i, n = 0;
    for (i = 0; i < l->n; i++)
        n += l->e[i].type == t;
    return n;
}

int evlog_last(const evlog *l, mcpgw_client_event_type t)
{
    int i;
    for (i = l->n - 1; i >= 0; i--)
        if (l->e[i].type == t)
            return i;
    return -1;
}

void evlog_ids(const evlog *l, const char *type, char *out, size_t cap)
{
    size_t i, o = 0;
    json_t *m;

    out[0] = '\0';
    json_array_foreach(l->messages, i, m) {
        const char *t = json_string_value(json_object_get(m, "type"));
        const char *id = json_string_value(json_object_get(m, "id"));
        if (!t || strcmp(t, type) != 0)
            continue;
        o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? "," : "",
                              id ? id : "?");
        if (o >= cap)
            break;
    }
}
