/*
 * mcpgw-cli.c - the command-line client of the mcpgw gateway, built on
 * libmcpgw-client: reads JSON messages from stdin (one per line), sends
 * each (directly or through the batcher), prints incoming messages one per
 * line on stdout; status and errors go to stderr. Also mints development
 * tokens (`mcpgw-cli token`). Scriptable: --count / --wait end it, and the
 * exit status says how it ended.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jwt.h>

#include <mcpgw/client.h>

#include "auth.h"

enum {
    EXIT_OK = 0,
    EXIT_CONN = 1,      /* could not connect, connection lost, reconnect failed */
    EXIT_USAGE = 2,
    EXIT_AUTH = 3,      /* the gateway refused the token (HTTP 401/403) */
    EXIT_HTTP = 4,      /* the gateway refused the upgrade otherwise (404, 429, 503...) */
    EXIT_SIGNAL = 130
};

#define DEFAULT_EOF_WAIT_MS 1000

typedef struct cli {
    struct event_base *base;
    mcpgw_client *client;
    mcpgw_batcher *batcher;
    struct event *stdin_ev;         /* fd 0 readable (pipe, tty, socket) */
    struct event *stdin_timer;      /* regular-file stdin: read in slices */
    struct event *idle_ev;
    struct event *sigint_ev, *sigterm_ev;
    struct evbuffer *inbuf;
    int pretty, verbose, quiet;
    long count;                     /* exit after this many messages (0: no limit) */
    long wait_ms;                   /* exit after this long without a message (0: none) */
    long received;
    long line_no;
    int stdin_eof;
    int stdin_started;
    int interactive;                /* stdin and stderr are terminals: a prompt */
    int finishing;
    int exit_code;
    int last_http_status;
    int ever_connected;
} cli;

static const char *prog = "mcpgw-cli";

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: mcpgw-cli [OPTIONS] URL\n"
            "       mcpgw-cli token --secret SECRET --user USER [--ttl SECONDS]\n"
            "\n"
            "Connects to an mcpgw gateway (ws://HOST:PORT/ws or wss://...), sends each JSON\n"
            "line read from stdin, and prints each incoming message on one line of stdout.\n"
            "The welcome message (connection_established) is not printed (see -v). On a\n"
            "terminal it shows a prompt (\"> \", on stderr) when it waits for a line.\n"
            "\n"
            "Authentication:\n"
            "  -t, --token JWT         token to present (?token=... in the URL); visible in\n"
            "                          ps: prefer --token-file or $MCPGW_TOKEN\n"
            "      --token-file FILE   read the token from FILE (\"-\" is not stdin: stdin\n"
            "                          carries the messages)\n"
            "                          (default without -t/-u: $MCPGW_TOKEN when set)\n"
            "  -s, --secret SECRET     with --user: mint an HS256 development token locally\n"
            "                          (default: $MCPGW_JWT_SECRET)\n"
            "  -u, --user USER         user id of the minted token\n"
            "      --ttl SECONDS       lifetime of a minted token (default 3600)\n"
            "      --auth-header       send the token as Authorization: Bearer instead\n"
            "Behaviour:\n"
            "  -p, --pretty            print messages indented over several lines\n"
            "  -b, --batch             send stdin messages through the batcher (envelopes of\n"
            "                          type \"batch\": --batch-size N (10), --batch-interval MS\n"
            "                          (1000), --batch-age MS (5000))\n"
            "  -r, --reconnect         reconnect with backoff after a lost connection\n"
            "  -R, --no-reconnect      exit when the connection ends (default)\n"
            "  -n, --count N           exit 0 after printing N messages\n"
            "  -w, --wait MS           exit 0 after MS without an incoming message; at the end\n"
            "                          of stdin without -n or -w, waits %d ms for replies\n"
            "      --cafile FILE       trust this PEM bundle for wss:// (default: system store)\n"
            "  -k, --insecure          wss:// without certificate checks (testing only)\n"
            "      --no-compress       do not offer permessage-deflate (offered by default)\n"
            "  -v, --verbose           connection events on stderr\n"
            "  -q, --quiet             no warnings on stderr (errors still)\n"
            "  -h, --help, -V, --version\n"
            "\n"
            "Exit status: 0 done, 1 connection failed or lost, 2 usage, 3 token refused\n"
            "(HTTP 401/403), 4 upgrade refused otherwise (404, 429, 503...), 130 interrupted.\n",
            DEFAULT_EOF_WAIT_MS);
}

/* An HS256 development token (libmcpgw-proto's minter, core/auth.c). */
static char *mint_token(const char *secret, const char *user, long ttl)
{
    return mcpgw_auth_mint(JWT_ALG_HS256, (const unsigned char *)secret, strlen(secret), user,
                           ttl, time(NULL));
}

/* ------------------------------------------------------------ ending */

static void finish(cli *c, int code)
{
    if (c->finishing)
        return;
    c->finishing = 1;
    c->exit_code = code;
    if (c->stdin_ev)
        event_del(c->stdin_ev);
    if (c->stdin_timer)
        event_del(c->stdin_timer);
    event_del(c->idle_ev);
    if (c->batcher)
        mcpgw_batcher_stop(c->batcher);     /* flushes what is waiting */
    /* The close frame goes after everything already written; the
     * DISCONNECTED event ends the loop (a safety exit follows anyway). */
    mcpgw_client_close(c->client);
    {
        struct timeval tv = { 3, 0 };
        event_base_loopexit(c->base, &tv);
    }
}

static void arm_idle(cli *c)
{
    long ms = c->wait_ms;
    struct timeval tv;

    if (!ms && c->stdin_eof && !c->count)
        ms = DEFAULT_EOF_WAIT_MS;
    if (!ms || c->finishing)
        return;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(c->idle_ev, &tv);
}

static void idle_fire(evutil_socket_t fd, short what, void *arg)
{
    cli *c = arg;
    (void)fd;
    (void)what;

    if (!mcpgw_client_is_connected(c->client) && mcpgw_client_queue_size(c->client)) {
        arm_idle(c);                /* still waiting to deliver: not idle */
        return;
    }
    finish(c, EXIT_OK);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    cli *c = arg;
    (void)what;
    (void)sig;
    if (c->finishing)
        event_base_loopbreak(c->base);
    finish(c, EXIT_SIGNAL);
}

/* ------------------------------------------------------------ stdin */

static void prompt(cli *c)
{
    if (c->interactive && !c->stdin_eof && !c->finishing) {
        fputs("> ", stderr);
        fflush(stderr);
    }
}

static void send_line(cli *c, char *line, size_t len)
{
    json_error_t jerr;
    json_t *msg;
    int rc;

    c->line_no++;
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 0)
        return;
    msg = json_loadb(line, len, 0, &jerr);
    if (!msg) {
        fprintf(stderr, "%s: stdin line %ld: invalid JSON (%s), not sent\n", prog, c->line_no,
                jerr.text);
        return;
    }
    if (c->batcher)
        rc = mcpgw_batcher_add(c->batcher, msg) == 0 ? MCPGW_SEND_OK : MCPGW_SEND_ERR_INVALID;
    else
        rc = mcpgw_client_send(c->client, msg);
    if (rc < 0 && !c->quiet)
        fprintf(stderr, "%s: stdin line %ld: not sent (%d)\n", prog, c->line_no, rc);
    json_decref(msg);
}

static void drain_lines(cli *c, int at_eof)
{
    char *line;
    size_t n;

    while ((line = evbuffer_readln(c->inbuf, &n, EVBUFFER_EOL_LF)) != NULL) {
        send_line(c, line, n);
        free(line);
    }
    if (at_eof && evbuffer_get_length(c->inbuf)) {
        n = evbuffer_get_length(c->inbuf);
        line = malloc(n + 1);
        if (line) {
            evbuffer_remove(c->inbuf, line, n);
            line[n] = '\0';
            send_line(c, line, n);
            free(line);
        }
    }
}

static void stdin_ended(cli *c)
{
    c->stdin_eof = 1;
    drain_lines(c, 1);
    if (c->stdin_ev)
        event_del(c->stdin_ev);
    if (c->stdin_timer)
        event_del(c->stdin_timer);
    if (c->batcher)
        mcpgw_batcher_stop(c->batcher);
    if (c->count && c->received >= c->count)
        finish(c, EXIT_OK);
    else
        arm_idle(c);
}

static void stdin_read(evutil_socket_t fd, short what, void *arg)
{
    cli *c = arg;
    int r;
    (void)what;

    r = evbuffer_read(c->inbuf, fd, 65536);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        if (c->interactive)
            fputc('\n', stderr);
        stdin_ended(c);
        return;
    }
    drain_lines(c, 0);
    prompt(c);
}

static void stdin_file_slice(evutil_socket_t fd, short what, void *arg)
{
    cli *c = arg;
    (void)fd;
    stdin_read(0, what, arg);
    if (!c->stdin_eof && !c->finishing) {
        struct timeval tv = { 0, 0 };
        event_add(c->stdin_timer, &tv);
    }
}

static int start_stdin(cli *c)
{
    struct stat st;
    struct timeval tv = { 0, 0 };

    if (c->stdin_started)
        return 0;
    c->stdin_started = 1;
    if (fstat(0, &st) == 0 && S_ISREG(st.st_mode)) {
        /* epoll cannot watch regular files: read them in slices instead */
        c->stdin_timer = evtimer_new(c->base, stdin_file_slice, c);
        return c->stdin_timer ? event_add(c->stdin_timer, &tv) : -1;
    }
    evutil_make_socket_nonblocking(0);
    c->stdin_ev = event_new(c->base, 0, EV_READ | EV_PERSIST, stdin_read, c);
    return c->stdin_ev ? event_add(c->stdin_ev, NULL) : -1;
}

/* ------------------------------------------------------------ client events */

static void print_message(cli *c, json_t *msg)
{
    char *s = json_dumps(msg, c->pretty ? JSON_INDENT(2) : JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        if (c->interactive)
            fputs("\r", stderr);        /* over the prompt */
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(s);
        prompt(c);
    }
}

static void on_event(mcpgw_client *cl, const mcpgw_client_event *ev, void *arg)
{
    cli *c = arg;
    const char *type;
    (void)cl;

    switch (ev->type) {
    case MCPGW_CLIENT_EV_CONNECTED:
        c->ever_connected = 1;
        if (c->verbose)
            fprintf(stderr, "%s: connected%s\n", prog,
                    mcpgw_client_compression_active(cl) ? " (permessage-deflate)" : "");
        if (start_stdin(c) != 0) {
            fprintf(stderr, "%s: cannot read stdin\n", prog);
            finish(c, EXIT_USAGE);
            return;
        }
        prompt(c);
        arm_idle(c);
        break;
    case MCPGW_CLIENT_EV_MESSAGE:
        type = json_string_value(json_object_get(ev->message, "type"));
        if (type && strcmp(type, "connection_established") == 0) {
            if (c->verbose)
                fprintf(stderr, "%s: %.*s\n", prog, (int)ev->len, ev->text);
            break;
        }
        if (c->finishing && c->count && c->received >= c->count)
            break;
        print_message(c, ev->message);
        c->received++;
        if (c->count && c->received >= c->count) {
            finish(c, EXIT_OK);
            break;
        }
        if (event_pending(c->idle_ev, EV_TIMEOUT, NULL))
            arm_idle(c);
        break;
    case MCPGW_CLIENT_EV_ERROR:
        if (ev->http_status) {
            c->last_http_status = ev->http_status;
            fprintf(stderr, "%s: %s\n", prog, ev->error);
        } else if (ev->text) {
            if (!c->quiet)
                fprintf(stderr, "%s: %s: %.*s\n", prog, ev->error, (int)ev->len, ev->text);
        } else if (!c->quiet || !c->finishing) {
            fprintf(stderr, "%s: %s\n", prog, ev->error);
        }
        break;
    case MCPGW_CLIENT_EV_DISCONNECTED:
        if (ev->will_reconnect) {
            if (c->verbose)
                fprintf(stderr, "%s: disconnected (%d %s)\n", prog, ev->code, ev->reason);
            break;
        }
        if (!c->finishing) {
            int code = EXIT_CONN;
            if (c->last_http_status == 401 || c->last_http_status == 403)
                code = EXIT_AUTH;
            else if (c->last_http_status)
                code = EXIT_HTTP;
            else if (c->ever_connected)
                fprintf(stderr, "%s: disconnected: %d%s%s\n", prog, ev->code,
                        *ev->reason ? " " : "", ev->reason);
            c->finishing = 1;
            c->exit_code = code;
        } else if (c->verbose) {
            fprintf(stderr, "%s: closed\n", prog);
        }
        event_base_loopexit(c->base, NULL);
        break;
    case MCPGW_CLIENT_EV_RECONNECTING:
        if (c->verbose)
            fprintf(stderr, "%s: reconnecting in %u ms (attempt %d)\n", prog, ev->delay_ms,
                    ev->attempt);
        break;
    case MCPGW_CLIENT_EV_RECONNECT_FAILED:
        fprintf(stderr, "%s: giving up after %d reconnect attempts\n", prog, ev->attempt);
        c->finishing = 1;
        c->exit_code = c->last_http_status == 401 || c->last_http_status == 403 ? EXIT_AUTH
                                                                                : EXIT_CONN;
        event_base_loopexit(c->base, NULL);
        break;
    case MCPGW_CLIENT_EV_QUEUE_FULL:
    case MCPGW_CLIENT_EV_QUEUE_DROPPED:
        if (!c->quiet)
            fprintf(stderr, "%s: offline queue full: message %s\n", prog,
                    ev->type == MCPGW_CLIENT_EV_QUEUE_FULL ? "refused" : "dropped");
        break;
    case MCPGW_CLIENT_EV_PING:
    case MCPGW_CLIENT_EV_PONG:
        break;
    }
}

/* ------------------------------------------------------------ main */

static long parse_long(const char *s, const char *what, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "%s: bad %s: %s (%ld .. %ld)\n", prog, what, s, min, max);
        exit(EXIT_USAGE);
    }
    return v;
}

enum { OPT_TTL = 256, OPT_CAFILE, OPT_AUTH_HEADER, OPT_BATCH_SIZE, OPT_BATCH_INTERVAL,
       OPT_BATCH_AGE, OPT_COMPRESS, OPT_NO_COMPRESS, OPT_TOKEN_FILE };

/* The token from a file (its first line, surrounding blanks dropped); NULL
 * after saying why. */
static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char *line = NULL, *start;
    size_t cap = 0;
    ssize_t n;

    if (!f) {
        fprintf(stderr, "%s: --token-file %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    n = getline(&line, &cap, f);
    fclose(f);
    if (n <= 0) {
        fprintf(stderr, "%s: --token-file %s: empty\n", prog, path);
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\t'))
        line[--n] = '\0';
    for (start = line; *start == ' ' || *start == '\t'; start++)
        ;
    if (!*start) {
        fprintf(stderr, "%s: --token-file %s: empty\n", prog, path);
        free(line);
        return NULL;
    }
    memmove(line, start, strlen(start) + 1);
    return line;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "token", required_argument, NULL, 't' },
        { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
        { "secret", required_argument, NULL, 's' },
        { "user", required_argument, NULL, 'u' },
        { "ttl", required_argument, NULL, OPT_TTL },
        { "auth-header", no_argument, NULL, OPT_AUTH_HEADER },
        { "pretty", no_argument, NULL, 'p' },
        { "batch", no_argument, NULL, 'b' },
        { "batch-size", required_argument, NULL, OPT_BATCH_SIZE },
        { "batch-interval", required_argument, NULL, OPT_BATCH_INTERVAL },
        { "batch-age", required_argument, NULL, OPT_BATCH_AGE },
        { "reconnect", no_argument, NULL, 'r' },
        { "no-reconnect", no_argument, NULL, 'R' },
        { "count", required_argument, NULL, 'n' },
        { "wait", required_argument, NULL, 'w' },
        { "cafile", required_argument, NULL, OPT_CAFILE },
        { "insecure", no_argument, NULL, 'k' },
        { "compress", no_argument, NULL, OPT_COMPRESS },
        { "no-compress", no_argument, NULL, OPT_NO_COMPRESS },
        { "verbose", no_argument, NULL, 'v' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    cli c;
    mcpgw_client_opts o;
    mcpgw_batcher_opts bo;
    const char *token = NULL, *secret = NULL, *user = NULL, *url, *token_file = NULL;
    char *minted = NULL, *read_token = NULL, err[256];
    long ttl = 3600;
    int batch = 0, token_mode = 0, opt;

    memset(&c, 0, sizeof(c));
    mcpgw_client_opts_init(&o);
    mcpgw_batcher_opts_init(&bo);
    o.reconnect = 0;
    o.queue_max_messages = 100000;
    o.queue_max_bytes = 256u << 20;
    if (argc > 1 && strcmp(argv[1], "token") == 0) {
        token_mode = 1;
        argv++;
        argc--;
    }
    while ((opt = getopt_long(argc, argv, "t:s:u:pbrRn:w:kvqhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 't': token = optarg; break;
        case OPT_TOKEN_FILE: token_file = optarg; break;
        case 's': secret = optarg; break;
        case 'u': user = optarg; break;
        case OPT_TTL: ttl = parse_long(optarg, "--ttl", 1, 10L * 365 * 86400); break;
        case OPT_AUTH_HEADER: o.token_in_header = 1; break;
        case 'p': c.pretty = 1; break;
        case 'b': batch = 1; break;
        case OPT_BATCH_SIZE: bo.batch_size = (size_t)parse_long(optarg, "--batch-size", 1, 1000000); break;
        case OPT_BATCH_INTERVAL: bo.flush_interval_ms = (unsigned)parse_long(optarg, "--batch-interval", 1, 86400000); break;
        case OPT_BATCH_AGE: bo.max_batch_age_ms = (unsigned)parse_long(optarg, "--batch-age", 1, 86400000); break;
        case 'r': o.reconnect = 1; break;
        case 'R': o.reconnect = 0; break;
        case 'n': c.count = parse_long(optarg, "--count", 1, 2147483647L); break;
        case 'w': c.wait_ms = parse_long(optarg, "--wait", 1, 86400000L); break;
        case OPT_CAFILE: o.ca_file = optarg; break;
        case 'k': o.tls_insecure = 1; break;
        case OPT_COMPRESS: o.compression = 1; break;
        case OPT_NO_COMPRESS: o.compression = 0; break;
        case 'v': c.verbose = 1; break;
        case 'q': c.quiet = 1; break;
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': printf("mcpgw-cli %s\n", MCPGW_CLIENT_VERSION); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!secret && user)
        secret = getenv("MCPGW_JWT_SECRET");
    if (token_mode) {
        if (optind != argc || !user || !secret || !*secret) {
            fprintf(stderr, "%s: usage: mcpgw-cli token --secret SECRET --user USER [--ttl SECONDS]\n",
                    prog);
            return EXIT_USAGE;
        }
        minted = mint_token(secret, user, ttl);
        if (!minted) {
            fprintf(stderr, "%s: could not mint a token\n", prog);
            return 1;
        }
        printf("%s\n", minted);
        free(minted);
        return EXIT_OK;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    url = argv[optind];
    if (token_file) {
        if (token) {
            fprintf(stderr, "%s: give either --token or --token-file, not both\n", prog);
            return EXIT_USAGE;
        }
        read_token = read_token_file(token_file);
        if (!read_token)
            return EXIT_USAGE;
        token = read_token;
    }
    if (!token && !user && !secret && getenv("MCPGW_TOKEN") && *getenv("MCPGW_TOKEN"))
        token = getenv("MCPGW_TOKEN");
    if (token && (user || secret)) {
        fprintf(stderr, "%s: give either --token or --secret/--user, not both\n", prog);
        return EXIT_USAGE;
    }
    if (!token && (user || secret)) {
        if (!user || !secret || !*secret) {
            fprintf(stderr, "%s: minting a token needs --user and --secret (or MCPGW_JWT_SECRET)\n",
                    prog);
            return EXIT_USAGE;
        }
        minted = mint_token(secret, user, ttl);
        if (!minted) {
            fprintf(stderr, "%s: could not mint a token\n", prog);
            return 1;
        }
        token = minted;
    }
    o.token = token;
    signal(SIGPIPE, SIG_IGN);
    c.interactive = isatty(0) && isatty(2);

    c.exit_code = EXIT_CONN;
    c.base = event_base_new();
    c.inbuf = evbuffer_new();
    if (!c.base || !c.inbuf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    c.client = mcpgw_client_new(c.base, url, &o, on_event, &c, err, sizeof(err));
    if (!c.client) {
        fprintf(stderr, "%s: %s\n", prog, err);
        free(minted);
        evbuffer_free(c.inbuf);
        event_base_free(c.base);
        return EXIT_USAGE;
    }
    if (batch)
        c.batcher = mcpgw_batcher_new(c.base, &bo, mcpgw_batcher_sink_client, c.client);
    c.idle_ev = evtimer_new(c.base, idle_fire, &c);
    c.sigint_ev = evsignal_new(c.base, SIGINT, on_signal, &c);
    c.sigterm_ev = evsignal_new(c.base, SIGTERM, on_signal, &c);
    event_add(c.sigint_ev, NULL);
    event_add(c.sigterm_ev, NULL);

    mcpgw_client_connect(c.client);
    event_base_dispatch(c.base);
    fflush(stdout);

    if (c.batcher)
        mcpgw_batcher_free(c.batcher);
    mcpgw_client_free(c.client);
    if (c.stdin_ev)
        event_free(c.stdin_ev);
    if (c.stdin_timer)
        event_free(c.stdin_timer);
    event_free(c.idle_ev);
    event_free(c.sigint_ev);
    event_free(c.sigterm_ev);
    evbuffer_free(c.inbuf);
    event_base_free(c.base);
    free(minted);
    if (read_token) {
        memset(read_token, 0, strlen(read_token));
        free(read_token);
    }
    return c.exit_code;
}
