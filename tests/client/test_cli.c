/*
 * test_cli.c - mcpgw-cli end to end through pipes against the real gateway
 * (stdin fed by the test, stdout and stderr read back, exit status checked),
 * plus the README example program.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "gw.h"

static gw G;
static char url[128];
static char *token;
static char cli_path[1024], example_path[1024];

typedef struct proc {
    pid_t pid;
    int in, out, err;
    char obuf[65536], ebuf[16384];
    size_t olen, elen;
    int status;             /* exit code, or 128+signal */
} proc;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int spawn(proc *p, const char *path, char *const argv[])
{
    int pin[2], pout[2], perr[2];

    memset(p, 0, sizeof(*p));
    if (pipe(pin) || pipe(pout) || pipe(perr))
        return -1;
    p->pid = fork();
    if (p->pid < 0)
        return -1;
    if (p->pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]); close(perr[0]); close(perr[1]);
        execv(path, argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    p->in = pin[1];
    p->out = pout[0];
    p->err = perr[0];
    return 0;
}

static void feed(proc *p, const char *text)
{
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(p->in, text + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static void close_stdin(proc *p)
{
    if (p->in >= 0)
        close(p->in);
    p->in = -1;
}

/* Reads stdout/stderr for up to ms (or until stdout has `until`, if not NULL). */
static void pump(proc *p, int ms, const char *until)
{
    long deadline = now_ms() + ms;

    while (now_ms() < deadline && (p->out >= 0 || p->err >= 0)) {
        struct pollfd fds[2];
        int n = 0, i;
        fds[0].fd = p->out;
        fds[0].events = POLLIN;
        fds[1].fd = p->err;
        fds[1].events = POLLIN;
        n = poll(fds, 2, 20);
        if (n < 0 && errno != EINTR)
            break;
        for (i = 0; i < 2; i++) {
            char *buf = i == 0 ? p->obuf : p->ebuf;
            size_t *len = i == 0 ? &p->olen : &p->elen;
            size_t cap = (i == 0 ? sizeof(p->obuf) : sizeof(p->ebuf)) - 1;
            int *fd = i == 0 ? &p->out : &p->err;
            if (*fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            {
                ssize_t r = read(*fd, buf + *len, cap - *len);
                if (r <= 0) {
                    close(*fd);
                    *fd = -1;
                } else {
                    *len += (size_t)r;
                    buf[*len] = '\0';
                }
            }
        }
        if (until && strstr(p->obuf, until))
            return;
    }
}

/* Waits for the exit (killing it after ms); returns the exit status. */
static int finish(proc *p, int ms)
{
    long deadline = now_ms() + ms;
    int st;

    close_stdin(p);
    for (;;) {
        pid_t r;
        pump(p, 20, NULL);
        r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            break;
        if (r < 0) {                        /* not our child any more: cannot happen */
            st = 255 << 8;
            break;
        }
        if (now_ms() > deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            fprintf(stderr, "  (killed after %d ms)\n", ms);
            break;
        }
    }
    pump(p, 200, NULL);
    if (p->out >= 0)
        close(p->out);
    if (p->err >= 0)
        close(p->err);
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return p->status;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------ tests */

TEST(token_subcommand)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "token", "--secret", GW_SECRET, "--user", "carol",
                     "--ttl", "60", NULL };
    char *dot1, *dot2;

    CHECK(spawn(&p, cli_path, argv) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 0);
    CHECK_EQ_INT(count_lines(p.obuf), 1);
    dot1 = strchr(p.obuf, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    CHECK(dot1 && dot2 && strncmp(p.obuf, "eyJ", 3) == 0);
    {
        char *argv2[] = { "mcpgw-cli", "token", "--user", "x", NULL };
        proc q;
        unsetenv("MCPGW_JWT_SECRET");
        CHECK(spawn(&q, cli_path, argv2) == 0);
        CHECK_EQ_INT(finish(&q, 5000), 2);
        CHECK(strstr(q.ebuf, "usage") != NULL);
    }
}

TEST(token_from_a_file_or_the_environment)
{
    char path[] = "/tmp/mcpgw-cli-token-XXXXXX";
    int fd = mkstemp(path);
    proc p, q, r;
    char *argv[] = { "mcpgw-cli", "--token-file", path, "--count", "1", url, NULL };
    char *argv2[] = { "mcpgw-cli", "--count", "1", url, NULL };
    char *argv3[] = { "mcpgw-cli", "--token-file", "/nonexistent/token", url, NULL };

    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, token, strlen(token)) == (ssize_t)strlen(token));
    CHECK(write(fd, "\n", 1) == 1);
    close(fd);
    CHECK(spawn(&p, cli_path, argv) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":\"file\"}\n");
    CHECK_EQ_INT(finish(&p, 5000), 0);
    CHECK(strstr(p.obuf, "\"file\"") != NULL);
    unlink(path);

    setenv("MCPGW_TOKEN", token, 1);
    CHECK(spawn(&q, cli_path, argv2) == 0);
    feed(&q, "{\"type\":\"ping\",\"id\":\"env\"}\n");
    CHECK_EQ_INT(finish(&q, 5000), 0);
    CHECK(strstr(q.obuf, "\"env\"") != NULL);
    unsetenv("MCPGW_TOKEN");

    CHECK(spawn(&r, cli_path, argv3) == 0);
    CHECK_EQ_INT(finish(&r, 5000), 2);
    CHECK(strstr(r.ebuf, "--token-file") != NULL);
}

TEST(pings_through_a_pipe)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "--token", token, "--count", "2", url, NULL };

    CHECK(spawn(&p, cli_path, argv) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":\"one\"}\n");
    pump(&p, 3000, "\"one\"");
    CHECK(strstr(p.obuf, "\"type\":\"pong\"") != NULL);
    feed(&p, "\n   \nnot json\n{\"type\":\"ping\",\"id\":\"two\"}\r\n");
    CHECK_EQ_INT(finish(&p, 5000), 0);
    CHECK_EQ_INT(count_lines(p.obuf), 2);
    CHECK(strncmp(p.obuf, "{\"type\":\"pong\",\"id\":\"one\",\"timestamp\":\"", 38) == 0);
    CHECK(strstr(p.obuf, "\n{\"type\":\"pong\",\"id\":\"two\"") != NULL);
    CHECK(strstr(p.obuf, "connection_established") == NULL);
    CHECK(strstr(p.ebuf, "line 4: invalid JSON") != NULL);
}

TEST(minted_token_pretty_and_eof_wait)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "--secret", GW_SECRET, "--user", "dave", "--pretty", url, NULL };
    json_t *j;
    json_error_t e;
    long t0 = now_ms(), dt;

    CHECK(spawn(&p, cli_path, argv) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":7}\n");
    CHECK_EQ_INT(finish(&p, 5000), 0);     /* stdin ends: waits 1 s for replies, exits 0 */
    dt = now_ms() - t0;
    CHECK(dt >= 900 && dt < 4000);
    CHECK(count_lines(p.obuf) > 3);         /* indented */
    j = json_loads(p.obuf, 0, &e);
    CHECK(j != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "type")), "pong");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "id")), 7);
    json_decref(j);
}

TEST(auth_failure_exit_3)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "-t", "bad.token.here", url, NULL };
    char *argv2[] = { "mcpgw-cli", url, NULL };

    CHECK(spawn(&p, cli_path, argv) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 3);
    CHECK(strstr(p.ebuf, "401 Unauthorized: Invalid token") != NULL);
    CHECK_EQ_INT(p.olen, 0);
    CHECK(spawn(&p, cli_path, argv2) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 3);
    CHECK(strstr(p.ebuf, "401 Unauthorized: Missing token") != NULL);
}

TEST(other_failures)
{
    proc p;
    char dead[160], notfound[160];
    char *a1[] = { "mcpgw-cli", "-t", token, dead, NULL };
    char *a2[] = { "mcpgw-cli", "-t", token, notfound, NULL };
    char *a3[] = { "mcpgw-cli", "--bogus", url, NULL };
    char *a4[] = { "mcpgw-cli", "--no-compress", "-t", token, "-n", "1", url, NULL };
    char *a5[] = { "mcpgw-cli", "-t", token, "http://x/", NULL };
    char *a6[] = { "mcpgw-cli", "--help", NULL };

    /* port 1 on loopback: nobody listens */
    snprintf(dead, sizeof(dead), "ws://127.0.0.1:1/ws");
    snprintf(notfound, sizeof(notfound), "ws://127.0.0.1:%d/nope", G.port);
    CHECK(spawn(&p, cli_path, a1) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 1);
    CHECK(strstr(p.ebuf, "Connection refused") != NULL);
    CHECK(spawn(&p, cli_path, a2) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 4);
    CHECK(strstr(p.ebuf, "404") != NULL);
    CHECK(spawn(&p, cli_path, a3) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 2);
    CHECK(spawn(&p, cli_path, a4) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":\"nc\"}\n");
    CHECK_EQ_INT(finish(&p, 5000), 0);
    CHECK(strstr(p.obuf, "\"nc\"") != NULL);
    CHECK(spawn(&p, cli_path, a5) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 2);
    CHECK(strstr(p.ebuf, "ws://") != NULL);
    CHECK(spawn(&p, cli_path, a6) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 0);
    CHECK(strstr(p.obuf, "Usage: mcpgw-cli") != NULL);
    CHECK(strstr(p.obuf, "--no-reconnect") != NULL);
}

TEST(batch_mode)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "-t", token, "--batch", "-n", "1", url, NULL };
    json_t *j;

    CHECK(spawn(&p, cli_path, argv) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":\"a\"}\n{\"type\":\"ping\",\"id\":\"b\"}\n"
             "{\"type\":\"ping\",\"id\":\"c\"}\n");
    CHECK_EQ_INT(finish(&p, 5000), 0);     /* EOF: the batcher flushes ("stop") */
    CHECK_EQ_INT(count_lines(p.obuf), 1);
    j = json_loads(p.obuf, 0, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "type")), "batch_response");
    CHECK_EQ_INT(json_array_size(json_object_get(j, "responses")), 3);
    CHECK_EQ_STR(json_string_value(json_object_get(
                     json_array_get(json_object_get(j, "responses"), 2), "id")), "c");
    json_decref(j);
}

TEST(wait_ends_an_idle_session)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "-t", token, "--wait", "300", url, NULL };
    long t0 = now_ms(), dt;

    CHECK(spawn(&p, cli_path, argv) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":\"w\"}\n");
    /* stdin stays open: only --wait can end it (pump returns at EOF) */
    pump(&p, 4000, NULL);
    dt = now_ms() - t0;
    CHECK(dt < 3900);
    CHECK_EQ_INT(finish(&p, 3000), 0);
    CHECK(strstr(p.obuf, "\"id\":\"w\"") != NULL);
}

TEST(reconnect_flag_survives_restart)
{
    proc p;
    char *argv[] = { "mcpgw-cli", "-t", token, "--reconnect", "-v", "-n", "2", url, NULL };

    CHECK(spawn(&p, cli_path, argv) == 0);
    feed(&p, "{\"type\":\"ping\",\"id\":\"before\"}\n");
    pump(&p, 3000, "\"before\"");
    gw_stop(&G, SIGTERM);
    feed(&p, "{\"type\":\"ping\",\"id\":\"after\"}\n");    /* queued meanwhile */
    CHECK(gw_start(&G) == 0);
    CHECK_EQ_INT(finish(&p, 8000), 0);
    CHECK(strstr(p.obuf, "\"before\"") != NULL);
    CHECK(strstr(p.obuf, "\"after\"") != NULL);
    CHECK(strstr(p.ebuf, "reconnecting in") != NULL);
}

TEST(readme_example_runs)
{
    proc p;
    char *argv[] = { "example", url, token, NULL };
    char *bad[] = { "example", url, "nope", NULL };

    CHECK(spawn(&p, example_path, argv) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 0);
    CHECK(strncmp(p.obuf, "{\"type\":\"pong\",\"id\":\"", 21) == 0);
    CHECK(spawn(&p, example_path, bad) == 0);
    CHECK_EQ_INT(finish(&p, 5000), 1);
    CHECK(strstr(p.ebuf, "401 Unauthorized") != NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(cli_path, sizeof(cli_path), "%s/tools/mcpgw-cli", gw_builddir());
    snprintf(example_path, sizeof(example_path), "%s/examples/client/example", gw_builddir());
    if (gw_init(&G, "[auth]\nmax_connections_per_user = 100\n") != 0 || gw_start(&G) != 0) {
        fprintf(stderr, "cannot start the gateway (MCPGW_BUILDDIR=%s)\n", gw_builddir());
        printf("0 passed, 1 failed\n");
        gw_cleanup(&G);
        return 1;
    }
    token = gw_token(&G, "cli-test");
    gw_url(&G, url, sizeof(url));
    RUN(token_subcommand);
    RUN(token_from_a_file_or_the_environment);
    RUN(pings_through_a_pipe);
    RUN(minted_token_pretty_and_eof_wait);
    RUN(auth_failure_exit_3);
    RUN(other_failures);
    RUN(batch_mode);
    RUN(wait_ends_an_idle_session);
    RUN(reconnect_flag_survives_restart);
    RUN(readme_example_runs);
    gw_cleanup(&G);
    free(token);
    return UNIT_SUMMARY();
}
