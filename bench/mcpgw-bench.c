/*
 * bench/mcpgw-bench.c - the mcpgw load generator and the raw TCP echo ceiling.
 *
 * Owns: a self-contained epoll WebSocket client (handshake, masked client
 * frames, answering server pings and closes), the benchmark modes (ping,
 * batch, broadcast, idle, raw, ratio), a log-linear latency histogram,
 * the use of permessage-deflate (offered in broadcast and idle modes; RSV1
 * messages inflated into a per-thread buffer),
 * /proc RSS sampling of the server, and `--raw-echo-server PORT`, the tiny
 * newline-delimited TCP echo server that gives the loopback ceiling. The
 * protocol is libmcpgw-proto's: frame headers (core/ws_frame.c), the
 * permessage-deflate answer and inflating (core/pmd.c), HS256 tokens
 * (core/auth.c).
 *
 * TLS (--tls or a wss:// URL): an OpenSSL client per connection on the same
 * nonblocking sockets and epoll loop: SSL_do_handshake after the TCP
 * connect, then the upgrade; SSL_write of what is queued (one record per
 * 16 KiB, retried with the same bytes), SSL_read with read-ahead until
 * OpenSSL needs the socket. No certificate verification and no SNI: a
 * loopback benchmark of the server's cost, not of its identity.
 *
 * Every run prints one JSON line of results on stdout. Responses on a
 * connection come back in order for every server measured (the gateway, the
 * Node peer and the echo server), so latency is measured with a per
 * connection FIFO of send times rather than by parsing ids.
 *
 * Threads: each worker owns an epoll set and a share of the connections; the
 * main thread only sequences the phases (connect, warm-up, measure, stop).
 * All loops are bounded by the phase flag, a deadline, or a count.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <jwt.h>

#include "auth.h"
#include "pmd.h"
#include "ws_frame.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { M_PING, M_BATCH, M_BROADCAST, M_IDLE, M_RAW, M_RATIO, M_FANOUT };
static const char *const mode_names[] = { "ping", "batch", "broadcast", "idle", "raw", "ratio", "fanout" };
#define N_MODES (int)(sizeof(mode_names) / sizeof(mode_names[0]))

enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_STOP };

/* ------------------------------------------------------------------ options */
static struct {
    enum mode mode;
    char host[64];
    int port;
    char path[256];
    const char *token;
    const char *secret;
    const char *label;
    int connections;
    int inflight;
    int size;
    int batch;
    int window;
    double rate;                    /* broadcast: sent per second (0: as the window allows) */
    int threads;
    int per_user;
    int src_addrs;
    int concurrency;            /* handshakes in flight per thread */
    double duration;
    double warmup;
    double connect_timeout;
    int server_pid;
    int more_pids[8];           /* --server-pid P1,P2,...: more servers (a cluster's nodes) */
    int n_more_pids;
    int other_pid;              /* --other-pid: CPU reported apart (e.g. redis-server) */
    int ports[16];              /* --ports: listeners spread over these ports of the host */
    int n_ports;
    int compression;
    int echo;                   /* ping mode on an echo endpoint: no welcome, replies = requests */
    int inflate_every;          /* --compression, no context takeover: inflate 1 in N in full */
    int status_size;            /* broadcast: ~bytes of the status object (0: a short string) */
    int tls;                    /* wss: TLS client, no verification */
} opt;

/* ---------------------------------------------------------------- utilities */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts;
    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void die(const char *what)
{
    fprintf(stderr, "mcpgw-bench: %s\n", what);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static double loadavg1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* The server and its child processes (a supervisor's workers). */
static int server_pids(int pid, int *out, int cap)
{
    char path[96];
    int n = 0;
    FILE *f;

    if (pid <= 0 || cap < 1)
        return 0;
    out[n++] = pid;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
    f = fopen(path, "r");
    if (f) {
        int child;
        while (n < cap && fscanf(f, "%d", &child) == 1)
            out[n++] = child;
        fclose(f);
    }
    return n;
}

static long rss_kb_one(int pid);
static double cpu_s_one(int pid);

static long rss_kb1(int pid);
static double cpu_s1(int pid);

/* VmRSS in KiB of the server(s) and their workers (with --server-pid P1,P2,...
 * the sum over all of them, for the server's first pid). */
static long rss_kb(int pid)
{
    long total = rss_kb1(pid);
    if (pid != opt.server_pid)
        return total;
    for (int i = 0; i < opt.n_more_pids && total >= 0; i++) {
        long kb = rss_kb1(opt.more_pids[i]);
        total = kb < 0 ? -1 : total + kb;
    }
    return total;
}

/* CPU seconds of the server(s) and their workers (as rss_kb). */
static double cpu_s(int pid)
{
    double total = cpu_s1(pid);
    if (pid != opt.server_pid)
        return total;
    for (int i = 0; i < opt.n_more_pids && total >= 0; i++) {
        double s = cpu_s1(opt.more_pids[i]);
        total = s < 0 ? -1 : total + s;
    }
    return total;
}

static long rss_kb1(int pid)
{
    int pids[128], n = server_pids(pid, pids, 128);
    long total = -1;

    for (int i = 0; i < n; i++) {
        long kb = rss_kb_one(pids[i]);
        if (kb >= 0)
            total = (total < 0 ? 0 : total) + kb;
    }
    return total;
}

static double cpu_s1(int pid)
{
    int pids[128], n = server_pids(pid, pids, 128);
    double total = -1;

    for (int i = 0; i < n; i++) {
        double s = cpu_s_one(pids[i]);
        if (s >= 0)
            total = (total < 0 ? 0 : total) + s;
    }
    return total;
}

static long rss_kb_one(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* CPU seconds (user + system, all threads) the process has used so far. */
static double cpu_s_one(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of every thread of pid from /proc/PID/task/T/schedstat
 * (nanoseconds: fine enough for a process that works a few milliseconds in
 * the window, e.g. redis-server); -1 if it cannot be read. */
static double cpu_s_precise(int pid)
{
    char path[96];
    double total = -1;
    DIR *d;
    struct dirent *e;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        unsigned long long ns;
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", pid, e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fscanf(f, "%llu", &ns) == 1)
            total = (total < 0 ? 0 : total) + (double)ns / 1e9;
        fclose(f);
    }
    closedir(d);
    return total;
}

/* Write system calls (syscw of /proc/PID/io) of the server(s) and their
 * workers so far; -1 if unreadable. */
static long long syscw_one(int pid)
{
    char path[64], line[128];
    long long v = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/io", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "syscw:", 6) == 0) {
            v = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static long long server_syscw(void)
{
    int pids[128], n;
    long long total = 0;
    for (int k = -1; k < opt.n_more_pids; k++) {
        n = server_pids(k < 0 ? opt.server_pid : opt.more_pids[k], pids, 128);
        for (int i = 0; i < n; i++) {
            long long v = syscw_one(pids[i]);
            if (v < 0)
                return -1;
            total += v;
        }
    }
    return opt.server_pid > 0 ? total : -1;
}

/* ------------------------------------------------------- latency histogram */
/* Log-linear buckets over nanoseconds: exact below 64 ns, then 32 buckets per
 * power of two (about 3 % resolution). */
#define H_BUCKETS 1920
typedef struct hist {
    uint64_t c[H_BUCKETS];
    uint64_t n;
    uint64_t max;
} hist;

static unsigned hist_idx(uint64_t v)
{
    int msb, sh;
    if (v < 64)
        return (unsigned)v;
    msb = 63 - __builtin_clzll(v);
    sh = msb - 5;
    return (unsigned)((sh + 1) * 32 + (int)((v >> sh) & 31));
}

static uint64_t hist_value(unsigned idx)
{
    unsigned sh, sub;
    if (idx < 64)
        return idx;
    sh = idx / 32 - 1;
    sub = idx % 32;
    return ((uint64_t)(32 + sub) << sh) + ((1ull << sh) >> 1);
}

static void hist_add(hist *h, uint64_t v)
{
    h->c[hist_idx(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(hist *dst, const hist *src)
{
    for (unsigned i = 0; i < H_BUCKETS; i++)
        dst->c[i] += src->c[i];
    dst->n += src->n;
    if (src->max > dst->max)
        dst->max = src->max;
}

static double hist_pct_us(const hist *h, double p)
{
    uint64_t want, seen = 0;
    if (h->n == 0)
        return 0;
    want = (uint64_t)((double)h->n * p);
    if (want >= h->n)
        want = h->n - 1;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->c[i];
        if (seen > want)
            return (double)hist_value(i) / 1000.0;
    }
    return (double)h->max / 1000.0;
}

/* -------------------------------------------------------------- HS256 JWT */
static char *mint_hs256(const char *secret, const char *user)
{
    char *t = mcpgw_auth_mint(JWT_ALG_HS256, (const unsigned char *)secret, strlen(secret), user,
                              7200, time(NULL));
    if (!t)
        die("could not mint a token");
    return t;
}

/* ------------------------------------------------------- representative JSON
 * Realistic agent statuses, batch responses and tool results: the payloads of
 * the compressed broadcast and of the ratio mode. Deterministic for a seed;
 * fields vary between messages the way a live agent's would (progress,
 * counters, log lines), so no message is a copy of another. */
static uint32_t lcg(uint32_t *st)
{
    *st = *st * 1103515245u + 12345u;
    return (*st >> 8) & 0xffffffu;
}

static const char *const g_tasks[] = {
    "Index repository and run the integration test suite",
    "Summarise open pull requests for the weekly report",
    "Refactor the connection pool to use a lock-free queue",
    "Answer customer ticket #48213 about webhook retries",
    "Generate migration for the orders table (add fulfilment_state)",
    "Crawl documentation site and refresh embeddings",
};
static const char *const g_steps[] = {
    "tool:read_file", "tool:run_shell", "llm:plan", "llm:generate", "tool:http_get",
    "tool:search_code", "tool:write_file", "waiting_for_approval",
};
static const char *const g_logs[] = {
    "read %u lines from src/gateway/conn.c",
    "pytest tests/integration/test_broadcast.py::test_fanout[%u] passed",
    "model call finished: %u prompt tokens, 812 completion tokens, 2.4 s",
    "HTTP GET https://api.example.com/v2/orders?page=%u -> 200 (38 KB)",
    "retrying tool call after timeout (attempt %u of 3)",
    "wrote patch to lib/pool.ts (+%u -12 lines)",
    "cache miss for embedding chunk %u, computing",
    "plan step %u: verify the migration on a copy of production data",
    "shell: npm run build exited with status 0 after %u ms",
    "found %u matches for 'bufferevent_write' in 14 files",
};

/* Appends a status object of about `target` bytes (at least ~250) to buf
 * (cap bytes, NUL-terminated); returns its length. `sent` (may be NULL)
 * goes first, as {"sent":"NNN",...}, for the fan-out latency. */
static size_t make_status(char *buf, size_t cap, size_t target, uint32_t seed, const char *sent)
{
    uint32_t st = seed * 2654435761u + 1;
    unsigned done = lcg(&st) % 120, total = 120 + lcg(&st) % 80;
    int n, i;
    size_t len = 0;
#define APP(...) do { n = snprintf(buf + len, cap - len, __VA_ARGS__); \
        if (n < 0 || (size_t)n >= cap - len) return len; else len += (size_t)n; } while (0)
    APP("{");
    if (sent)
        APP("\"sent\":\"%s\",", sent);
    APP("\"state\":\"%s\",\"agent\":{\"name\":\"agent-%02u\",\"host\":\"worker-%u.eu-west-1.internal\","
        "\"pid\":%u,\"version\":\"2.%u.%u\"},\"task\":{\"id\":\"task-%06u\",\"name\":\"%s\",\"step\":\"%s\","
        "\"progress\":{\"done\":%u,\"total\":%u,\"percent\":%.1f},\"started_at\":\"2026-11-25T17:%02u:%02u.%03uZ\"},"
        "\"metrics\":{\"cpu\":%.2f,\"rss_mb\":%u,\"tokens_in\":%u,\"tokens_out\":%u,\"tool_calls\":%u}",
        (lcg(&st) & 7) ? "running" : "waiting", lcg(&st) % 64, lcg(&st) % 16, 1000 + lcg(&st) % 60000,
        lcg(&st) % 9, lcg(&st) % 20, lcg(&st) % 1000000, g_tasks[lcg(&st) % 6], g_steps[lcg(&st) % 8],
        done, total, 100.0 * done / total, lcg(&st) % 60, lcg(&st) % 60, lcg(&st) % 1000,
        (lcg(&st) % 100) / 100.0, 100 + lcg(&st) % 900, lcg(&st) % 200000, lcg(&st) % 20000, lcg(&st) % 300);
    APP(",\"log\":[");
    for (i = 0; i < 200 && len + 140 < target; i++) {
        char msg[160];
        snprintf(msg, sizeof(msg), g_logs[lcg(&st) % 10], lcg(&st) % 5000);
        APP("%s{\"ts\":\"2026-11-25T18:%02u:%02u.%03uZ\",\"level\":\"%s\",\"msg\":\"%s\"}", i ? "," : "",
            lcg(&st) % 60, lcg(&st) % 60, lcg(&st) % 1000, (lcg(&st) % 5) ? "info" : "warn", msg);
    }
    APP("]}");
#undef APP
    return len;
}

/* ------------------------------------------------------------ connections */
enum cstate { CS_NEW, CS_CONNECTING, CS_TLS, CS_HS_SENT, CS_OPEN, CS_CLOSED };

struct thr;

typedef struct conn {
    int fd;
    enum cstate state;
    SSL *ssl;                   /* --tls: from the TCP connect on */
    int tls_more;               /* SSL_read stopped with the buffer full, not for the socket */
    int more_queued;            /* on the thread's `more` list */
    struct conn *next_more;
    struct thr *t;
    int index;                  /* global connection number */
    int is_sender;              /* broadcast: the one sending agent_status */
    int welcomed;
    mcpgw_pmd_params pmd;       /* permessage-deflate answered by the server (pmd.enabled) */
    mcpgw_pmd_state zst;        /* own inflater (context takeover only) */
    uint8_t mask[4];
    uint8_t *in;                /* unprocessed inbound bytes */
    size_t in_len, in_cap;
    uint8_t *out;               /* unsent outbound bytes */
    size_t out_off, out_len, out_cap;
    int want_out;
    uint64_t *ts;               /* FIFO of send times (ping, batch, raw) */
    unsigned ts_head, ts_n, ts_cap;
    uint64_t seq;
    uint64_t t_start;
} conn;

#define MAX_STATUS 600
#define MAX_STATUS_SIZE 60000
typedef struct thr {
    int id;
    int ep;
    pthread_t tid;
    conn **conns;
    int n_conns;
    int next_to_start;
    int handshaking;
    hist lat;
    hist hs_lat;
    uint64_t msgs;              /* responses (ping/raw/batch) or deliveries (broadcast) */
    uint64_t subs;              /* batch sub-responses */
    uint64_t sent_bcast;
    uint64_t bad;               /* unexpected replies */
    uint64_t bytes_in;
    int opened, failed, closed_early, deflate;
    int status[MAX_STATUS];
    int connect_errors;
    int tls_errors;             /* TLS handshakes that failed */
    conn *more;                 /* TLS connections with decrypted input left to read */
    uint64_t z_msgs;            /* compressed messages received (measured window) */
    uint64_t z_wire;            /* their payload bytes as received */
    uint64_t z_plain;           /* the same, inflated (fully inflated ones only) */
    uint64_t z_full;            /* messages inflated in full */
    uint64_t z_wire_full;       /* their payload bytes as received */
    uint64_t z_seen;            /* compressed messages so far (picks the full ones) */
    uint64_t plain_msgs;        /* uncompressed data messages (measured window) */
    uint64_t plain_bytes;
    uint64_t z_errors;          /* inflate failures (any phase) */
    mcpgw_pmd_pool zpool;       /* inflaters shared by no-context-takeover connections */
    uint8_t zbuf[1 << 18];      /* inflated message */
    uint8_t rbuf[65536];
} thr;

static _Atomic int g_phase;
static _Atomic int g_opened;
static _Atomic int g_done;          /* opened + failed */
static _Atomic uint64_t g_delivered;    /* broadcast deliveries, all phases */
static _Atomic uint64_t g_bcast_sent;
static char **g_tokens;
static int g_n_users;
static char *g_req_payload;         /* ping/batch/raw request payload template */
static size_t g_req_len;
static size_t g_req_id_off;         /* where the 8-digit id goes */
static struct sockaddr_in g_dst;
static SSL_CTX *g_ssl_ctx;          /* --tls: shared by every connection */
static _Atomic int g_tls_named;
static char g_tls_desc[96];         /* protocol and cipher of the first handshake */

static int measuring(void)
{
    return atomic_load_explicit(&g_phase, memory_order_relaxed) == PH_MEASURE;
}

static void out_reserve(conn *c, size_t more)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + more > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        while (cap < c->out_len + more)
            cap *= 2;
        if (cap != c->out_cap) {
            uint8_t *p = realloc(c->out, cap);
            if (!p)
                die("out of memory");
            c->out = p;
            c->out_cap = cap;
        }
    }
}

static void out_append(conn *c, const void *data, size_t len)
{
    out_reserve(c, len);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* Appends one masked client frame. */
static void out_frame(conn *c, int opcode, const uint8_t *payload, size_t len)
{
    uint8_t *p;
    size_t h = 2;
    out_reserve(c, len + 14);
    p = c->out + c->out_len;
    p[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        p[1] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        p[1] = 0x80 | 126;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        h = 4;
    } else {
        p[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            p[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(p + h, c->mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        p[h + i] = payload[i] ^ c->mask[i & 3];
    c->out_len += h + len;
}

static void conn_close(conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);       /* no close_notify: the socket goes next */
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        epoll_ctl(c->t->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = CS_CLOSED;
}

static void set_want_out(conn *c, int want)
{
    struct epoll_event ev;
    if (c->want_out == want || c->fd < 0)
        return;
    c->want_out = want;
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(c->t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* TLS: encrypts and writes what is queued, one SSL_write per 16 KiB
 * record; a write OpenSSL cannot finish is retried with the same bytes
 * (partial writes and a moving buffer are allowed on the context). The
 * thread's error queue is emptied after a failure, not before every call
 * (OpenSSL 3.0's ERR_clear_error is not free). */
static int tls_flush(conn *c)
{
    int rounds = 0;
    while (c->out_off < c->out_len && rounds++ < 64) {
        size_t len = c->out_len - c->out_off;
        int n;
        if (len > 16384)
            len = 16384;
        n = SSL_write(c->ssl, c->out + c->out_off, (int)len);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:
            set_want_out(c, 1);
            return 0;
        case SSL_ERROR_WANT_READ:
            /* the next readable event reads, then flushes again */
            set_want_out(c, 0);
            return 0;
        default:
            ERR_clear_error();
            return -1;
        }
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    set_want_out(c, c->out_len > c->out_off);
    return 0;
}

/* Writes what is queued; 0 or -1 (connection closed). */
static int conn_flush(conn *c)
{
    int rounds = 0;
    if (c->ssl)
        return tls_flush(c);
    while (c->out_off < c->out_len && rounds++ < 64) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    set_want_out(c, c->out_len > c->out_off);
    return 0;
}

static void ts_push(conn *c, uint64_t t)
{
    if (c->ts_n == c->ts_cap)
        return;             /* cannot happen: the FIFO holds inflight entries */
    c->ts[(c->ts_head + c->ts_n) % c->ts_cap] = t;
    c->ts_n++;
}

static int ts_pop(conn *c, uint64_t *t)
{
    if (c->ts_n == 0)
        return -1;
    *t = c->ts[c->ts_head];
    c->ts_head = (c->ts_head + 1) % c->ts_cap;
    c->ts_n--;
    return 0;
}

/* Queues one request of the ping/batch/raw modes. */
static void send_request(conn *c, uint64_t t)
{
    char *id = g_req_payload + g_req_id_off;
    uint64_t s = c->seq++ % 100000000ull;
    if (atomic_load_explicit(&g_phase, memory_order_relaxed) == PH_STOP)
        return;
    for (int i = 7; i >= 0; i--) {
        id[i] = (char)('0' + s % 10);
        s /= 10;
    }
    if (opt.mode == M_RAW)
        out_append(c, g_req_payload, g_req_len);
    else
        out_frame(c, MCPGW_WS_OP_TEXT, (const uint8_t *)g_req_payload, g_req_len);
    ts_push(c, t);
}

static void send_broadcast(conn *c)
{
    static char buf[MAX_STATUS_SIZE + 4096];    /* only the sender's thread gets here */
    uint64_t n = atomic_fetch_add(&g_bcast_sent, 1);
    int len;
    if (opt.status_size > 0) {
        char sent[32];
        size_t k;
        snprintf(sent, sizeof(sent), "%llu", (unsigned long long)now_ns());
        len = snprintf(buf, sizeof(buf), "{\"type\":\"agent_status\",\"id\":\"%llu\",\"agentId\":\"bench\",\"status\":",
                       (unsigned long long)n);
        k = make_status(buf + len, sizeof(buf) - (size_t)len - 2, (size_t)opt.status_size, (uint32_t)n, sent);
        len += (int)k;
        buf[len++] = '}';
    } else {
        len = snprintf(buf, sizeof(buf),
                       "{\"type\":\"agent_status\",\"id\":\"%llu\",\"agentId\":\"bench\",\"status\":\"t%llu\"}",
                       (unsigned long long)n, (unsigned long long)now_ns());
    }
    out_frame(c, MCPGW_WS_OP_TEXT, (const uint8_t *)buf, (size_t)len);
    if (measuring())
        c->t->sent_bcast++;
}

/* Broadcast: the sender keeps at most `window` broadcasts undelivered. */
static void sender_pump(conn *c)
{
    uint64_t per = (uint64_t)atomic_load(&g_opened);
    int budget = 64;
    if (c->state != CS_OPEN || !c->welcomed)
        return;
    if (atomic_load(&g_phase) < PH_WARMUP || atomic_load(&g_phase) == PH_STOP)
        return;
    if (per == 0)
        return;
    /* --rate: the schedule from the first call on (warm-up included) */
    static uint64_t rate_t0;
    uint64_t due = UINT64_MAX;
    if (opt.rate > 0) {
        uint64_t t = now_ns();
        if (!rate_t0)
            rate_t0 = t;
        due = (uint64_t)((double)(t - rate_t0) * 1e-9 * opt.rate) + 1;
    }
    while (budget-- > 0) {
        uint64_t sent = atomic_load(&g_bcast_sent);
        uint64_t done = atomic_load(&g_delivered) / per;
        if (sent - done >= (uint64_t)opt.window || sent >= due)
            break;
        send_broadcast(c);
    }
    if (conn_flush(c) < 0)
        conn_close(c);
}

static const char *find_mem(const uint8_t *p, size_t len, const char *needle)
{
    return memmem(p, len, needle, strlen(needle));
}

static void on_message(conn *c, const uint8_t *p, size_t len, uint64_t t)
{
    thr *th = c->t;
    uint64_t t0;

    if (!c->welcomed) {
        c->welcomed = 1;
        if (opt.compression || find_mem(p, len, "connection_established")) {
            if (opt.mode == M_PING || opt.mode == M_BATCH) {
                for (int i = 0; i < opt.inflight; i++)
                    send_request(c, t);
            }
            return;
        }
        th->bad++;
    }
    switch (opt.mode) {
    case M_PING:
    case M_BATCH:
        if (ts_pop(c, &t0) < 0) {
            th->bad++;
            return;
        }
        if (measuring()) {
            hist_add(&th->lat, t - t0);
            th->msgs++;
            if (opt.mode == M_BATCH)
                th->subs += (uint64_t)opt.batch;
            if (!find_mem(p, len < 40 ? len : 40,
                          opt.echo ? "\"ping\"" : opt.mode == M_PING ? "pong" : "batch_response"))
                th->bad++;
        }
        send_request(c, t);
        break;
    case M_BROADCAST: {
        /* the send time: "status":"tNNN" (short status) or
         * "status":{"sent":"NNN",... (--status-size) */
        const char *s = find_mem(p, len, "\"status\":");
        uint64_t sent = 0;
        if (!find_mem(p, len < 40 ? len : 40, "agent_status_update"))
            return;             /* the sender's ack */
        atomic_fetch_add_explicit(&g_delivered, 1, memory_order_relaxed);
        if (s && (size_t)(s - (const char *)p) + 20 < len) {
            if (s[9] == '"' && s[10] == 't')
                sent = strtoull(s + 11, NULL, 10);
            else if (s[9] == '{' && memcmp(s + 10, "\"sent\":\"", 8) == 0)
                sent = strtoull(s + 18, NULL, 10);
        }
        if (s && measuring()) {
            th->msgs++;
            if (sent && t > sent)
                hist_add(&th->lat, t - sent);
        }
        break;
    }
    default:
        break;
    }
}

/* permessage-deflate, client side: inflates into th->zbuf (at most cap
 * bytes of it). With server_no_context_takeover answered the inflater is
 * reset per message and shared by the thread's connections (no
 * per-connection zlib state); otherwise the connection keeps its own.
 * Returns the inflated length (cap when a prefix of cap bytes was asked
 * for), or -1 (corrupt, or over zbuf). */
static long inflate_msg(conn *c, const uint8_t *p, size_t len, size_t cap)
{
    thr *th = c->t;
    size_t n = 0;

    switch (mcpgw_pmd_inflate_into(&th->zpool, &c->zst, &c->pmd, p, len, th->zbuf, cap, &n)) {
    case MCPGW_PMD_OK:
        return (long)n;
    case MCPGW_PMD_TOO_BIG:     /* a prefix was asked for, or larger than zbuf */
        return cap < sizeof(th->zbuf) ? (long)cap : -1;
    default:
        return -1;
    }
}

static void data_message(conn *c, const mcpgw_ws_frame_header *h, const uint8_t *pl, uint64_t t)
{
    thr *th = c->t;
    size_t len = (size_t)h->payload_len;
    if (c->pmd.enabled && (h->rsv & 4)) {
        /* Without context takeover each message stands alone: all but one
         * in --inflate-every are inflated only as far as their type and
         * send time (the first 256 bytes), so that inflating a thousand
         * copies of every broadcast does not make this core the limit. */
        int full = !c->pmd.server_no_context_takeover || opt.inflate_every <= 1 ||
                   th->z_seen++ % (uint64_t)opt.inflate_every == 0;
        long n = inflate_msg(c, pl, len, full ? sizeof(th->zbuf) : 256);
        if (n < 0) {
            th->z_errors++;
            th->bad++;
            return;
        }
        if (measuring()) {
            th->z_msgs++;
            th->z_wire += len;
            if (full) {
                th->z_full++;
                th->z_wire_full += len;
                th->z_plain += (uint64_t)n;
            }
        }
        on_message(c, th->zbuf, (size_t)n, t);
        return;
    }
    if (h->rsv) {
        th->bad++;              /* RSV bits without an extension negotiated */
        return;
    }
    if (measuring() && c->welcomed) {
        th->plain_msgs++;
        th->plain_bytes += len;
    }
    on_message(c, pl, len, t);
}

/* Parses frames from buf; returns bytes consumed, or (size_t)-1 to close. */
static size_t process_frames(conn *c, const uint8_t *buf, size_t len, uint64_t t)
{
    size_t off = 0;
    int guard = 1 << 20;
    while (off < len && guard-- > 0) {
        mcpgw_ws_frame_header h;
        mcpgw_ws_parse_result r = mcpgw_ws_parse_header(buf + off, len - off, &h);
        const uint8_t *pl;
        if (r == MCPGW_WS_PARSE_NEED_MORE)
            break;
        if (r == MCPGW_WS_PARSE_ERROR)
            return (size_t)-1;
        if (h.payload_len > len - off - h.header_len)
            break;
        pl = buf + off + h.header_len;
        switch (h.opcode) {
        case MCPGW_WS_OP_TEXT:
        case MCPGW_WS_OP_BINARY:
        case MCPGW_WS_OP_CONT:
            /* the servers measured send broadcasts unfragmented; a
             * fragment alone is not a message (counted as unexpected) */
            if (h.fin && h.opcode != MCPGW_WS_OP_CONT)
                data_message(c, &h, pl, t);
            else
                c->t->bad++;
            break;
        case MCPGW_WS_OP_PING:
            out_frame(c, MCPGW_WS_OP_PONG, pl, (size_t)h.payload_len);
            break;
        case MCPGW_WS_OP_CLOSE:
            if (atomic_load(&g_phase) != PH_STOP)
                c->t->closed_early++;
            return (size_t)-1;
        default:
            break;
        }
        off += h.header_len + (size_t)h.payload_len;
    }
    return off;
}

/* Raw mode: one response per newline. */
static size_t process_lines(conn *c, const uint8_t *buf, size_t len, uint64_t t)
{
    const uint8_t *p = buf, *end = buf + len, *nl;
    while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        uint64_t t0;
        if (ts_pop(c, &t0) == 0 && measuring()) {
            hist_add(&c->t->lat, t - t0);
            c->t->msgs++;
        }
        send_request(c, t);
        p = nl + 1;
    }
    return (size_t)(p - buf);
}

static void handshake_done(conn *c, int status, int deflate)
{
    thr *th = c->t;
    th->handshaking--;
    if (status == 101) {
        th->opened++;
        th->deflate += deflate;
        hist_add(&th->hs_lat, now_ns() - c->t_start);
        atomic_fetch_add(&g_opened, 1);
    } else {
        th->failed++;
        if (status > 0 && status < MAX_STATUS)
            th->status[status]++;
        else
            th->connect_errors++;
    }
    atomic_fetch_add(&g_done, 1);
}

static void in_keep(conn *c, const uint8_t *p, size_t len)
{
    if (len > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 256;
        uint8_t *n;
        while (cap < len)
            cap *= 2;
        n = realloc(c->in, cap);
        if (!n)
            die("out of memory");
        c->in = n;
        c->in_cap = cap;
    }
    if (len)                    /* c->in is NULL until something is kept */
        memmove(c->in, p, len);
    c->in_len = len;
}

static void conn_fail(conn *c)
{
    if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HS_SENT)
        handshake_done(c, 0, 0);
    else if (c->state == CS_OPEN && atomic_load(&g_phase) != PH_STOP)
        c->t->closed_early++;
    conn_close(c);
}

/* The server's Sec-WebSocket-Extensions answer to our offer; an invalid one
 * leaves the connection uncompressed (its RSV1 messages count as bad). */
static void parse_extensions(conn *c, const uint8_t *head, size_t len)
{
    char buf[16385], *line, *v, *end;
    const char *why;
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, head, len);
    buf[len] = 0;
    memset(&c->pmd, 0, sizeof(c->pmd));
    line = strcasestr(buf, "\r\nSec-WebSocket-Extensions:");
    if (!line)
        return;
    v = line + 28;
    end = strstr(v, "\r\n");
    if (end)
        *end = 0;
    if (!opt.compression)
        return;                 /* not offered: a protocol error, ignore it */
    mcpgw_pmd_accept_response(v, strlen(v), &c->pmd, &why);
}

/* Reads up to cap bytes: >0, 0 at EOF, or -1 with errno (EAGAIN: nothing
 * now). TLS: decrypts records until OpenSSL needs the socket (everything it
 * read ahead is taken) or buf is full; then c->tls_more is set, as the rest
 * may wait in OpenSSL's buffer where epoll does not see it. */
static ssize_t conn_recv(conn *c, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    if (!c->ssl)
        return recv(c->fd, buf, cap, 0);
    c->tls_more = 0;
    while (got < cap) {
        int n = SSL_read(c->ssl, buf + got, (int)(cap - got));
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:      /* TLS 1.2 renegotiation, which neither server starts */
            set_want_out(c, 1);
            /* fall through */
        case SSL_ERROR_WANT_READ:
            if (got)
                return (ssize_t)got;
            errno = EAGAIN;
            return -1;
        case SSL_ERROR_ZERO_RETURN:     /* close_notify */
            return (ssize_t)got;
        default:                        /* EOF without close_notify, or an error */
            ERR_clear_error();
            if (got)
                return (ssize_t)got;    /* what came before it first */
            errno = ECONNRESET;
            return -1;
        }
    }
    c->tls_more = 1;
    return (ssize_t)got;
}

static void conn_read_some(conn *c)
{
    thr *th = c->t;
    int rounds;
    for (rounds = 0; rounds < 4 && c->fd >= 0; rounds++) {
        ssize_t n = conn_recv(c, th->rbuf, sizeof(th->rbuf));
        const uint8_t *data;
        size_t len, used;
        uint64_t t;
        if (n == 0) {
            conn_fail(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_fail(c);
            break;
        }
        th->bytes_in += (uint64_t)n;
        t = now_ns();
        if (c->in_len > 0) {
            if (c->in_len + (size_t)n > c->in_cap) {
                size_t cap = c->in_cap;
                uint8_t *nb;
                while (cap < c->in_len + (size_t)n)
                    cap *= 2;
                nb = realloc(c->in, cap);
                if (!nb)
                    die("out of memory");
                c->in = nb;
                c->in_cap = cap;
            }
            memcpy(c->in + c->in_len, th->rbuf, (size_t)n);
            c->in_len += (size_t)n;
            data = c->in;
            len = c->in_len;
        } else {
            data = th->rbuf;
            len = (size_t)n;
        }
        if (c->state == CS_HS_SENT) {
            const uint8_t *end = memmem(data, len, "\r\n\r\n", 4);
            int status = 0;
            size_t head;
            if (!end) {
                if (len > 16384) {
                    conn_fail(c);
                    return;
                }
                in_keep(c, data, len);
                continue;
            }
            head = (size_t)(end - data) + 4;
            if (len >= 12 && memcmp(data, "HTTP/1.", 7) == 0)
                status = atoi((const char *)data + 9);
            if (status != 101) {
                handshake_done(c, status ? status : 1, 0);
                conn_close(c);
                return;
            }
            parse_extensions(c, data, head);
            handshake_done(c, 101, c->pmd.enabled);
            c->state = CS_OPEN;
            data += head;
            len -= head;
            if (opt.echo) {         /* an echo endpoint sends no welcome */
                c->welcomed = 1;
                for (int i = 0; i < opt.inflight; i++)
                    send_request(c, t);
            }
        }
        if (opt.mode == M_RAW)
            used = process_lines(c, data, len, t);
        else
            used = process_frames(c, data, len, t);
        if (used == (size_t)-1) {
            conn_close(c);
            return;
        }
        in_keep(c, data + used, len - used);
        if (c->is_sender)
            sender_pump(c);
        if (conn_flush(c) < 0) {
            conn_fail(c);
            return;
        }
        if ((size_t)n < sizeof(th->rbuf))
            break;
    }
}

static void send_upgrade(conn *c);

/* The TLS handshake, driven by either event; then the upgrade request. */
static void tls_handshake(conn *c)
{
    int r;
    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        if (!atomic_exchange(&g_tls_named, 1))
            snprintf(g_tls_desc, sizeof(g_tls_desc), "%s %s", SSL_get_version(c->ssl),
                     SSL_get_cipher_name(c->ssl));
        send_upgrade(c);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_want_out(c, 0);
        break;
    case SSL_ERROR_WANT_WRITE:
        set_want_out(c, 1);
        break;
    default:
        ERR_clear_error();
        c->t->tls_errors++;
        conn_fail(c);
        break;
    }
}

static void tls_start(conn *c)
{
    c->ssl = SSL_new(g_ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        c->t->tls_errors++;
        conn_fail(c);
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = CS_TLS;
    tls_handshake(c);
}

static void conn_readable(conn *c)
{
    if (c->state == CS_TLS) {
        tls_handshake(c);
        return;
    }
    conn_read_some(c);
    /* decrypted input left in OpenSSL: read again after this epoll round */
    if (c->ssl && c->fd >= 0 && c->tls_more && !c->more_queued) {
        c->more_queued = 1;
        c->next_more = c->t->more;
        c->t->more = c;
    }
}

static void send_upgrade(conn *c)
{
    char req[1024];
    int port = opt.n_ports > 0 && !c->is_sender ? opt.ports[c->index % opt.n_ports] : opt.port;
    const char *tok = opt.token ? opt.token : g_tokens[(c->index / opt.per_user) % g_n_users];
    int n = snprintf(req, sizeof(req),
                     "GET %s%stoken=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.path, strchr(opt.path, '?') ? "&" : "?", tok, opt.host, port,
                     opt.compression ? "Sec-WebSocket-Extensions: " MCPGW_PMD_CLIENT_OFFER "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof(req))
        die("request too long");
    out_append(c, req, (size_t)n);
    c->state = CS_HS_SENT;
    if (conn_flush(c) < 0)
        conn_fail(c);
}

static void conn_writable(conn *c)
{
    if (c->state == CS_TLS) {
        tls_handshake(c);
        return;
    }
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            conn_fail(c);
            return;
        }
        if (opt.mode == M_RAW) {
            handshake_done(c, 101, 0);
            c->state = CS_OPEN;
            c->welcomed = 1;
            for (int i = 0; i < opt.inflight; i++)
                send_request(c, now_ns());
        } else if (opt.tls) {
            tls_start(c);
            return;
        } else {
            send_upgrade(c);
            return;
        }
    }
    if (conn_flush(c) < 0)
        conn_fail(c);
}

static void conn_start(conn *c)
{
    struct sockaddr_in dst;
    struct epoll_event ev;
    int one = 1;
    c->t_start = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t->handshaking++;
    c->state = CS_CONNECTING;
    if (c->fd < 0) {
        conn_fail(c);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.src_addrs > 1) {
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->index % opt.src_addrs) * 256u + 0u);
        /* 127.0.0.1, 127.0.1.1, 127.0.2.1, ...: all loopback */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        bind(c->fd, (struct sockaddr *)&src, sizeof(src));
    }
    dst = g_dst;
    /* --ports: listener i to port i mod n (the sender stays on the URL's) */
    if (opt.n_ports > 0 && !c->is_sender)
        dst.sin_port = htons((uint16_t)opt.ports[c->index % opt.n_ports]);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
        conn_fail(c);
        return;
    }
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    c->want_out = 1;
    if (epoll_ctl(c->t->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        conn_fail(c);
}

static void *worker(void *arg)
{
    thr *th = arg;
    struct epoll_event evs[256];
    conn *sender = NULL;
    for (int i = 0; i < th->n_conns; i++)
        if (th->conns[i]->is_sender)
            sender = th->conns[i];
    while (atomic_load(&g_phase) != PH_STOP) {
        int n;
        while (th->next_to_start < th->n_conns && th->handshaking < opt.concurrency)
            conn_start(th->conns[th->next_to_start++]);
        n = epoll_wait(th->ep, evs, 256, th->more ? 0 : sender ? 1 : 10);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                conn_writable(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                conn_readable(c);
        }
        /* TLS input OpenSSL holds: the connections queued before this
         * round, once each (one may queue itself again) */
        if (th->more) {
            conn *c = th->more, *next;
            th->more = NULL;
            for (; c; c = next) {
                next = c->next_more;
                c->more_queued = 0;
                c->next_more = NULL;
                if (c->fd >= 0 && c->tls_more)
                    conn_readable(c);
            }
        }
        if (sender)
            sender_pump(sender);
    }
    return NULL;
}

/* ------------------------------------------------------------ echo server */
typedef struct echo_conn {
    int fd;
    uint8_t *pend;
    size_t pend_len;
} echo_conn;

static volatile sig_atomic_t g_echo_stop;
static void on_term(int sig) { (void)sig; g_echo_stop = 1; }

static int run_echo_server(int port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in a;
    struct epoll_event ev, evs[256];
    static uint8_t buf[65536];
    unsigned long long lines = 0;

    raise_nofile();
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0) {
        perror("mcpgw-bench: echo server");
        return 1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    fprintf(stderr, "{\"event\":\"raw_echo_listening\",\"port\":%d}\n", port);
    while (!g_echo_stop) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            echo_conn *e = evs[i].data.ptr;
            if (!e) {
                for (int k = 0; k < 256; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    e = calloc(1, sizeof(*e));
                    if (!e) {
                        close(fd);
                        continue;
                    }
                    e->fd = fd;
                    ev.events = EPOLLIN;
                    ev.data.ptr = e;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT && e->pend_len) {
                ssize_t w = send(e->fd, e->pend, e->pend_len, MSG_NOSIGNAL);
                if (w > 0) {
                    memmove(e->pend, e->pend + w, e->pend_len - (size_t)w);
                    e->pend_len -= (size_t)w;
                }
                if (e->pend_len == 0) {
                    ev.events = EPOLLIN;
                    ev.data.ptr = e;
                    epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev);
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(e->fd, buf, sizeof(buf), 0);
                ssize_t w = 0;
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                    epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
                    close(e->fd);
                    free(e->pend);
                    free(e);
                    continue;
                }
                /* the per-message work of a line protocol: find each line */
                for (const uint8_t *p = buf, *end = buf + r, *nl;
                     p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL; p = nl + 1)
                    lines++;
                if (e->pend_len == 0) {
                    w = send(e->fd, buf, (size_t)r, MSG_NOSIGNAL);
                    if (w < 0)
                        w = 0;
                }
                if (w < r) {
                    uint8_t *np = realloc(e->pend, e->pend_len + (size_t)(r - w));
                    if (!np)
                        continue;
                    e->pend = np;
                    memcpy(e->pend + e->pend_len, buf + w, (size_t)(r - w));
                    e->pend_len += (size_t)(r - w);
                    ev.events = EPOLLIN | EPOLLOUT;
                    ev.data.ptr = e;
                    epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev);
                }
            }
        }
    }
    fprintf(stderr, "{\"event\":\"raw_echo_stopped\",\"lines\":%llu}\n", lines);
    return 0;
}

/* ------------------------------------------------------------------ setup */
static void build_request(void)
{
    static char buf[1 << 16];      /* built once per run */
    char head[64];
    size_t want = (size_t)opt.size, n = 0;
    if (want >= sizeof(buf) - 64)
        die("--size too large");
    if (opt.mode == M_RAW) {
        /* a line of `size` bytes including the newline: id then padding */
        memcpy(buf, "00000000 ", 9);
        n = 9;
        while (n + 1 < want)
            buf[n++] = 'x';
        buf[n++] = '\n';
        g_req_id_off = 0;
    } else if (opt.mode == M_PING) {
        /* {"type":"ping","id":"00000000","pad":"xx"} padded to `size` bytes */
        int h = snprintf(head, sizeof(head), "{\"type\":\"ping\",\"id\":\"00000000\"");
        memcpy(buf, head, (size_t)h);
        n = (size_t)h;
        g_req_id_off = 21;
        if (want > n + 11) {
            memcpy(buf + n, ",\"pad\":\"", 8);
            n += 8;
            while (n + 2 < want)
                buf[n++] = 'x';
            buf[n++] = '"';
        }
        buf[n++] = '}';
    } else if (opt.mode == M_BATCH) {
        int h = snprintf(buf, sizeof(buf), "{\"type\":\"batch\",\"id\":\"00000000\",\"messages\":[");
        n = (size_t)h;
        g_req_id_off = 22;
        for (int i = 0; i < opt.batch; i++) {
            int k = snprintf(buf + n, sizeof(buf) - n, "%s{\"type\":\"ping\",\"id\":%d}", i ? "," : "", i);
            if (k <= 0 || (size_t)k >= sizeof(buf) - n - 4)
                die("--batch too large");
            n += (size_t)k;
        }
        buf[n++] = ']';
        buf[n++] = '}';
    }
    g_req_payload = xmalloc(n + 1);
    memcpy(g_req_payload, buf, n);
    g_req_payload[n] = 0;
    g_req_len = n;
}

/* ------------------------------------------------------------- ratio mode
 * The compression ratio of representative JSON with the reference plan's
 * settings: zlib level 6, memLevel 8, 2^10-byte window, no context takeover
 * (every message compressed afresh), the 00 00 ff ff tail removed as on the
 * wire (RFC 7692 7.2.1). Each result is inflated back and compared. */
static const mcpgw_pmd_params ratio_server = { 1, 1, 1, 10, 10, MCPGW_PMD_SERVER };
static const mcpgw_pmd_params ratio_client = { 1, 1, 1, 10, 10, MCPGW_PMD_CLIENT };

/* One message as the gateway compresses it (core/pmd.c, pooled stream). */
static size_t deflate_once(mcpgw_pmd_pool *pool, const char *in, size_t len, uint8_t *out,
                           size_t cap)
{
    size_t zl = 0;
    uint8_t *z = mcpgw_pmd_deflate(pool, NULL, &ratio_server, (const uint8_t *)in, len, &zl);
    if (!z || zl > cap)
        die("deflate failed");
    memcpy(out, z, zl);
    free(z);
    return zl;
}

/* ... and inflated back as a client does. */
static void check_roundtrip(mcpgw_pmd_pool *pool, const uint8_t *z, size_t zlen, const char *orig,
                            size_t len)
{
    static uint8_t buf[1 << 17];
    size_t n = 0;
    if (mcpgw_pmd_inflate_into(pool, NULL, &ratio_client, z, zlen, buf, sizeof(buf), &n)
            != MCPGW_PMD_OK || n != len || memcmp(buf, orig, len) != 0)
        die("ratio: round trip failed");
}

static size_t make_batch_response(char *buf, size_t cap, uint32_t seed)
{
    size_t len = 0;
    int n = snprintf(buf, cap, "{\"type\":\"batch_response\",\"id\":\"req-%06u\",\"responses\":[", seed);
    len = (size_t)n;
    for (int i = 0; i < 10 && len < cap - 300; i++) {
        n = snprintf(buf + len, cap - len, "%s{\"id\":\"p%u-%d\",\"type\":\"response\",\"status\":\"success\","
                     "\"result\":{\"type\":\"pong\",\"id\":\"p%u-%d\",\"timestamp\":\"2026-11-25T18:04:%02u.%03uZ\"}}",
                     i ? "," : "", seed, i, seed, i, (seed + (unsigned)i / 7) % 60, (seed * 7 + (unsigned)i * 13) % 1000);
        len += (size_t)n;
    }
    n = snprintf(buf + len, cap - len, "],\"timestamp\":\"2026-11-25T18:04:%02u.%03uZ\"}", seed % 60, seed % 1000);
    return len + (size_t)n;
}

/* A tool result of about `target` bytes: code search hits with file paths,
 * line numbers and source lines, as an MCP tools/call result. */
static size_t make_tool_result(char *buf, size_t cap, size_t target, uint32_t seed)
{
    static const char *const files[] = { "src/gateway/conn.c", "src/gateway/server.c", "lib/pool.ts",
        "plugins/agent_status.c", "tests/integration/test_broadcast.py", "docs/architecture.md" };
    static const char *const code[] = {
        "    if (bufferevent_write(c->bev, frame, len) < 0)",
        "        return mcpgw_conn_close(c, 1011, \\\"write failed\\\");",
        "  const pending = this.queue.splice(0, this.batchSize);",
        "    json_object_set_new(update, \\\"timestamp\\\", json_string(ts));",
        "def test_fanout_reaches_every_listener(gateway, listeners):",
        "The broadcast path serialises a message once and shares the frame bytes.",
        "    evbuffer_add_reference(out, f->data, f->len, frame_unref, f);",
        "  await Promise.all(clients.map((c) => c.waitFor('agent_status_update')));",
    };
    uint32_t st = seed + 17;
    size_t len = 0;
    int n = snprintf(buf, cap, "{\"type\":\"tool_result\",\"id\":\"call-%06u\",\"tool\":\"search_code\","
                     "\"result\":{\"isError\":false,\"content\":[{\"type\":\"text\",\"text\":\"", seed);
    len = (size_t)n;
    for (int i = 0; i < 400 && len + 200 < target; i++) {
        n = snprintf(buf + len, cap - len, "%s:%u: %s\\n", files[lcg(&st) % 6], 1 + lcg(&st) % 2400,
                     code[lcg(&st) % 8]);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
    n = snprintf(buf + len, cap - len, "\"}],\"matches\":%u,\"truncated\":false}}", 40 + lcg(&st) % 100);
    return len + (size_t)n;
}

/* ------------------------------------------------------- fan-out floor */
/* Mode fanout: the kernel's floor for a serial fan-out, no gateway. One
 * process opens N loopback TCP connections to itself; a sender thread (the
 * first CPU this process may use, like the gateway's) writes one message of
 * --size bytes to each accepted socket with one send() per socket, round
 * after round; a reader thread (the second CPU, like the load generator)
 * waits in epoll_wait and reads them, recording for every message the time
 * from the round's start, which is the broadcast mode's fan-out latency
 * with nothing but the kernel between sender and receiver. */
typedef struct fanout_state {
    int ep;
    int n;
    int size;
    _Atomic uint64_t round_start;
    _Atomic long received;          /* messages read in the current round */
    _Atomic int stop;
    _Atomic int measuring;
    hist lat;
} fanout_state;

static void pin_to(int cpu)
{
    cpu_set_t set;
    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int fanout_reader_cpu = -1;

static void *fanout_reader(void *arg)
{
    fanout_state *st = arg;
    struct epoll_event evs[256];
    static char buf[65536];

    pin_to(fanout_reader_cpu);
    while (!atomic_load(&st->stop)) {
        int k = epoll_wait(st->ep, evs, 256, 10);
        for (int i = 0; i < k; i++) {
            ssize_t r = recv(evs[i].data.fd, buf, sizeof(buf), MSG_DONTWAIT);
            uint64_t t = now_ns(), t0 = atomic_load(&st->round_start);
            if (r <= 0)
                continue;
            for (ssize_t m = 0; m < r / st->size; m++)
                if (atomic_load(&st->measuring))
                    hist_add(&st->lat, t - t0);
            atomic_fetch_add(&st->received, r / st->size);
        }
    }
    return NULL;
}

static int run_fanout(void)
{
    static fanout_state st;
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    struct rlimit rl;
    cpu_set_t allowed;
    int lfd, one = 1, sender_cpu = -1, n = opt.connections, *srv_fd, *cli_fd;
    char *msg;
    pthread_t rt;
    hist send_time;
    uint64_t t_end, t_meas = 0, rounds = 0;

    memset(&send_time, 0, sizeof(send_time));
    /* two descriptors per connection, within the hard limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)n * 2 + 64 > rl.rlim_cur)
            n = (int)((rl.rlim_cur - 64) / 2);
    }
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
        for (int c = 0; c < CPU_SETSIZE; c++) {
            if (!CPU_ISSET(c, &allowed))
                continue;
            if (sender_cpu < 0)
                sender_cpu = c;
            else if (fanout_reader_cpu < 0)
                fanout_reader_cpu = c;
        }
    }
    pin_to(sender_cpu);
    st.n = n;
    st.size = opt.size;
    msg = malloc((size_t)opt.size);
    srv_fd = calloc((size_t)n, sizeof(int));
    cli_fd = calloc((size_t)n, sizeof(int));
    if (!msg || !srv_fd || !cli_fd)
        die("out of memory");
    memset(msg, 'x', (size_t)opt.size);
    st.ep = epoll_create1(EPOLL_CLOEXEC);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (st.ep < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(lfd, 4096) < 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
        die("fanout: cannot listen on loopback");
    for (int i = 0; i < n; i++) {
        struct epoll_event ev;
        cli_fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (cli_fd[i] < 0 || connect(cli_fd[i], (struct sockaddr *)&a, sizeof(a)) < 0 ||
            (srv_fd[i] = accept(lfd, NULL, NULL)) < 0)
            die("fanout: cannot open the loopback connections");
        /* as the gateway and the bench client set them */
        setsockopt(srv_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(cli_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ev.events = EPOLLIN;
        ev.data.fd = cli_fd[i];
        epoll_ctl(st.ep, EPOLL_CTL_ADD, cli_fd[i], &ev);
    }
    if (pthread_create(&rt, NULL, fanout_reader, &st) != 0)
        die("fanout: pthread_create");
    t_end = now_ns() + (uint64_t)((opt.warmup + opt.duration) * 1e9);
    while (now_ns() < t_end) {
        uint64_t t0 = now_ns(), t1, wait_until;
        int measure = t0 >= t_end - (uint64_t)(opt.duration * 1e9);

        if (measure && !t_meas)
            t_meas = t0;
        atomic_store(&st.received, 0);
        atomic_store(&st.measuring, measure);
        atomic_store(&st.round_start, t0);
        for (int i = 0; i < n; i++)
            if (send(srv_fd[i], msg, (size_t)opt.size, MSG_NOSIGNAL) != opt.size)
                die("fanout: short send");
        t1 = now_ns();
        if (measure) {
            hist_add(&send_time, t1 - t0);
            rounds++;
        }
        /* the next round starts when every message of this one was read
         * (a window of 1, as in `--mode broadcast -w 1`) */
        wait_until = t1 + 10000000000ull;
        while (atomic_load(&st.received) < n && now_ns() < wait_until)
            ;
    }
    atomic_store(&st.stop, 1);
    pthread_join(rt, NULL);
    printf("{\"mode\":\"fanout\",\"label\":\"%s\",\"connections\":%d,\"size\":%d,\"sender_cpu\":%d"
           ",\"reader_cpu\":%d,\"duration_s\":%.3f,\"rounds\":%llu,\"round_send_p50_us\":%.1f"
           ",\"send_us_per_recipient\":%.2f,\"fanout_p50_us\":%.1f,\"fanout_p99_us\":%.1f"
           ",\"fanout_max_us\":%.1f,\"loadavg1\":%.2f}\n",
           opt.label, n, opt.size, sender_cpu, fanout_reader_cpu,
           t_meas ? (double)(now_ns() - t_meas) / 1e9 : 0, (unsigned long long)rounds,
           hist_pct_us(&send_time, 0.5), hist_pct_us(&send_time, 0.5) / n,
           hist_pct_us(&st.lat, 0.5), hist_pct_us(&st.lat, 0.99), (double)st.lat.max / 1000.0,
           loadavg1());
    fflush(stdout);
    return 0;
}

static int run_ratio(void)
{
    static const struct { const char *name; size_t size; } sts[] = {
        { "agent_status_update ~500 B", 500 }, { "agent_status_update ~1 KB", 1000 },
        { "agent_status_update ~2 KB", 2000 }, { "agent_status_update ~4 KB", 4000 },
    };
    static char msg[1 << 16];
    static uint8_t zout[1 << 17];
    mcpgw_pmd_pool pool;
    uint64_t tot = 0, totz = 0, tot_above = 0, totz_above = 0;
    int first = 1;
    mcpgw_pmd_pool_init(&pool, 6, 8);
    printf("{\"mode\":\"ratio\",\"label\":\"%s\",\"level\":6,\"window_bits\":10,\"mem_level\":8,"
           "\"context_takeover\":false,\"samples\":[", opt.label);
    for (int kind = 0; kind < 6; kind++) {
        const int reps = 20;        /* messages per kind, each different */
        uint64_t b = 0, zb = 0, t0, ns[20], med;
        const char *name = kind < 4 ? sts[kind].name : kind == 4 ? "batch_response, 10 pongs" : "tool result ~4 KB";
        for (int r = 0; r < reps; r++) {
            size_t len, zl;
            if (kind < 4) {
                char ts[32];
                int h = snprintf(msg, sizeof(msg), "{\"type\":\"agent_status_update\",\"agentId\":\"agent-%02d\",\"status\":",
                                 r % 40);
                len = (size_t)h + make_status(msg + h, sizeof(msg) - (size_t)h - 64, sts[kind].size - 90 > 200 ?
                                              sts[kind].size - 90 : 200, (uint32_t)(r * 31 + kind), NULL);
                snprintf(ts, sizeof(ts), "2026-11-25T18:04:%02d.%03dZ", r % 60, (r * 37) % 1000);
                len += (size_t)snprintf(msg + len, sizeof(msg) - len, ",\"timestamp\":\"%s\"}", ts);
            } else if (kind == 4) {
                len = make_batch_response(msg, sizeof(msg), (uint32_t)r + 1);
            } else {
                len = make_tool_result(msg, sizeof(msg), 4096, (uint32_t)r + 1);
            }
            t0 = now_ns();
            zl = deflate_once(&pool, msg, len, zout, sizeof(zout));
            ns[r] = now_ns() - t0;
            check_roundtrip(&pool, zout, zl, msg, len);
            b += len;
            zb += zl;
        }
        /* the median: one preempted call must not make the figure */
        for (int i = 1; i < reps; i++)
            for (int k = i; k > 0 && ns[k - 1] > ns[k]; k--) {
                uint64_t x = ns[k];
                ns[k] = ns[k - 1];
                ns[k - 1] = x;
            }
        med = ns[reps / 2];
        tot += b;
        totz += zb;
        if (b / reps >= 1024) {
            tot_above += b;
            totz_above += zb;
        }
        printf("%s{\"name\":\"%s\",\"messages\":%d,\"avg_bytes\":%.0f,\"avg_compressed\":%.0f,\"ratio\":%.3f,"
               "\"deflate_median_us\":%.1f}", first ? "" : ",", name, reps, (double)b / reps, (double)zb / reps,
               (double)zb / (double)b, (double)med / 1000.0);
        first = 0;
    }
    mcpgw_pmd_pool_free(&pool);
    printf("],\"bytes\":%llu,\"compressed\":%llu,\"ratio\":%.3f,\"ratio_above_1k\":%.3f}\n",
           (unsigned long long)tot, (unsigned long long)totz, (double)totz / (double)tot,
           tot_above ? (double)totz_above / (double)tot_above : -1.0);
    fflush(stdout);
    return 0;
}

static int parse_url(const char *url)
{
    const char *p, *slash, *colon;
    size_t hl;
    if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        p = url + 6;
        opt.tls = 1;
    } else if (strncmp(url, "tcp://", 6) == 0) {
        p = url + 6;
    } else {
        return -1;
    }
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    if (!colon)
        return -1;
    hl = (size_t)(colon - p);
    if (hl >= sizeof(opt.host))
        return -1;
    memcpy(opt.host, p, hl);
    opt.host[hl] = 0;
    opt.port = atoi(colon + 1);
    snprintf(opt.path, sizeof(opt.path), "%s", *slash ? slash : "/ws");
    memset(&g_dst, 0, sizeof(g_dst));
    g_dst.sin_family = AF_INET;
    g_dst.sin_port = htons((uint16_t)opt.port);
    if (strcmp(opt.host, "localhost") == 0)
        return inet_pton(AF_INET, "127.0.0.1", &g_dst.sin_addr) == 1 ? 0 : -1;
    return inet_pton(AF_INET, opt.host, &g_dst.sin_addr) == 1 ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: mcpgw-bench --mode ping|batch|broadcast|idle|raw --url ws[s]://HOST:PORT/PATH [options]\n"
"       mcpgw-bench --mode ratio      (compression ratio of representative JSON, no server)\n"
"       mcpgw-bench --mode fanout -c N -s BYTES   (the kernel's floor for a serial fan-out\n"
"                     to N loopback sockets, no server; run it on two CPUs)\n"
"       mcpgw-bench --raw-echo-server PORT\n"
"  --url URL           ws://127.0.0.1:8080/ws, wss://... for TLS (raw mode: tcp://127.0.0.1:PORT)\n"
"  --token JWT         one token for every connection, or\n"
"  --secret S          mint an HS256 token per user (user ids bench-N)\n"
"  --per-user N        connections per user (default 5, the gateway's default limit)\n"
"  -c, --connections N connections (broadcast: listeners; default 100)\n"
"  -p, --inflight N    requests in flight per connection (default 16)\n"
"  -s, --size N        request size in bytes (ping, raw; default 64)\n"
"  -b, --batch N       pings per batch (default 10)\n"
"  -w, --window N      broadcast: undelivered broadcasts allowed (default 4)\n"
"      --rate R        broadcast: send R broadcasts a second, on a schedule (an open\n"
"                      loop; the window still caps what is undelivered: make it wide)\n"
"  -d, --duration S    measured seconds (idle: hold time; default 5)\n"
"  --warmup S          seconds before measuring (default 1)\n"
"  -t, --threads N     worker threads (default 1)\n"
"  --concurrency N     handshakes in flight per thread (default 256)\n"
"  --src-addrs N       spread connections over N loopback source addresses\n"
"  --server-pid PID    read the server's VmRSS before and after (idle) and its CPU time\n"
"                      (with its workers); PID,PID,...: several servers (a cluster), summed\n"
"  --other-pid PID     report another process's CPU time apart (other_cpu_s, all its threads,\n"
"                      from schedstat; e.g. redis-server)\n"
"  --ports P,P,...     spread the connections (broadcast: the listeners; the sender stays on\n"
"                      the URL's port) over these ports of the URL's host, connection i to\n"
"                      the (i mod n)th\n"
"  --compression       offer permessage-deflate (idle, broadcast); inflate RSV1 messages\n"
"  --echo              ping mode against a protocol = echo endpoint: no welcome is awaited,\n"
"                      each reply is the request echoed (the transport without JSON)\n"
"  --status-size N     broadcast: a realistic status object of ~N bytes (default: a short string)\n"
"  --inflate-every N   --compression without context takeover: inflate 1 message in N in full,\n"
"                      the others only as far as their type and send time (default 1: all)\n"
"  --tls               TLS (implied by a wss:// URL; not in raw mode): OpenSSL, TLS 1.2 or\n"
"                      later, OpenSSL's default ciphers, ALPN http/1.1, a full handshake per\n"
"                      connection. The server's certificate is NOT verified and no SNI is sent:\n"
"                      for a loopback benchmark against a server you started, never anything else\n"
"  --label NAME        a name for the JSON line\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "mode", required_argument, NULL, 'm' }, { "url", required_argument, NULL, 'u' },
        { "token", required_argument, NULL, 'T' }, { "secret", required_argument, NULL, 'S' },
        { "per-user", required_argument, NULL, 'U' }, { "connections", required_argument, NULL, 'c' },
        { "inflight", required_argument, NULL, 'p' }, { "size", required_argument, NULL, 's' },
        { "batch", required_argument, NULL, 'b' }, { "window", required_argument, NULL, 'w' },
        { "duration", required_argument, NULL, 'd' }, { "warmup", required_argument, NULL, 'W' },
        { "threads", required_argument, NULL, 't' }, { "concurrency", required_argument, NULL, 'C' },
        { "src-addrs", required_argument, NULL, 'A' }, { "server-pid", required_argument, NULL, 'P' },
        { "compression", no_argument, NULL, 'z' }, { "tls", no_argument, NULL, 'L' },
        { "label", required_argument, NULL, 'l' }, { "raw-echo-server", required_argument, NULL, 'E' },
        { "connect-timeout", required_argument, NULL, 'O' }, { "help", no_argument, NULL, 'h' },
        { "status-size", required_argument, NULL, 'Z' },
        { "inflate-every", required_argument, NULL, 'I' },
        { "echo", no_argument, NULL, 'e' },
        { "rate", required_argument, NULL, 'R' },
        { "other-pid", required_argument, NULL, 'X' }, { "ports", required_argument, NULL, 'Q' },
        { NULL, 0, NULL, 0 }
    };
    const char *url = NULL;
    int ch, total;
    thr *threads;
    conn *conns;
    hist lat, hs;
    uint64_t t_conn0, t_conn1, t_meas0 = 0, t_meas1 = 0, deadline;
    uint64_t msgs = 0, subs = 0, bad = 0, sent_b = 0;
    uint64_t z_msgs = 0, z_wire = 0, z_plain = 0, z_err = 0, p_msgs = 0, p_bytes = 0;
    uint64_t z_full = 0, z_wire_full = 0;
    int opened = 0, failed = 0, closed_early = 0, deflate = 0, conn_err = 0, tls_err = 0;
    long rss0, rss1 = -1;
    double cpu0 = -1, cpu1 = -1, scpu, lcpu0 = -1, lcpu1 = -1, ocpu0 = -1, ocpu1 = -1;
    long long w0 = -1, w1 = -1;
    double meas_s, hs_s;
    int status[MAX_STATUS];

    opt.mode = M_PING;
    opt.connections = 100;
    opt.inflight = 16;
    opt.size = 64;
    opt.batch = 10;
    opt.window = 4;
    opt.threads = 1;
    opt.per_user = 5;
    opt.src_addrs = 1;
    opt.concurrency = 256;
    opt.inflate_every = 1;
    opt.duration = 5;
    opt.warmup = 1;
    opt.connect_timeout = 60;
    opt.label = "";
    while ((ch = getopt_long(argc, argv, "m:u:c:p:s:b:w:d:t:l:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm': {
            int found = 0;
            for (int i = 0; i < N_MODES; i++)
                if (strcmp(optarg, mode_names[i]) == 0) {
                    opt.mode = (enum mode)i;
                    found = 1;
                }
            if (!found)
                die("unknown --mode");
            break;
        }
        case 'u': url = optarg; break;
        case 'T': opt.token = optarg; break;
        case 'S': opt.secret = optarg; break;
        case 'U': opt.per_user = atoi(optarg); break;
        case 'c': opt.connections = atoi(optarg); break;
        case 'p': opt.inflight = atoi(optarg); break;
        case 's': opt.size = atoi(optarg); break;
        case 'b': opt.batch = atoi(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 'R': opt.rate = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'W': opt.warmup = atof(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
        case 'C': opt.concurrency = atoi(optarg); break;
        case 'A': opt.src_addrs = atoi(optarg); break;
        case 'P': {
            char *e = optarg;
            opt.server_pid = (int)strtol(e, &e, 10);
            while (*e == ',' && opt.n_more_pids < 8)
                opt.more_pids[opt.n_more_pids++] = (int)strtol(e + 1, &e, 10);
            if (*e)
                die("bad --server-pid (PID or PID,PID,... at most 9)");
            break;
        }
        case 'X': opt.other_pid = atoi(optarg); break;
        case 'Q': {
            char *e = optarg;
            opt.n_ports = 0;
            do {
                long v = strtol(*e == ',' ? e + 1 : e, &e, 10);
                if (v < 1 || v > 65535 || opt.n_ports >= 16)
                    die("bad --ports (PORT,PORT,... at most 16)");
                opt.ports[opt.n_ports++] = (int)v;
            } while (*e == ',');
            if (*e)
                die("bad --ports (PORT,PORT,... at most 16)");
            break;
        }
        case 'z': opt.compression = 1; break;
        case 'Z': opt.status_size = atoi(optarg); break;
        case 'I': opt.inflate_every = atoi(optarg); break;
        case 'e': opt.echo = 1; break;
        case 'L': opt.tls = 1; break;
        case 'l': opt.label = optarg; break;
        case 'E': return run_echo_server(atoi(optarg));
        case 'O': opt.connect_timeout = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (opt.mode == M_RATIO)
        return run_ratio();
    if (opt.mode == M_FANOUT) {
        if (opt.connections < 1 || opt.size < 1)
            die("bad option value");
        return run_fanout();
    }
    if (!url || parse_url(url) < 0) {
        usage(stderr);
        return 2;
    }
    if (opt.connections < 1 || opt.inflight < 1 || opt.threads < 1 || opt.threads > 64 ||
        opt.per_user < 1 || opt.batch < 1 || opt.window < 1 || opt.src_addrs < 1 ||
        opt.src_addrs > 255 || opt.concurrency < 1 || opt.size < 16)
        die("bad option value");
    if (opt.mode != M_RAW && !opt.token && !opt.secret)
        die("--token or --secret is required");
    if (opt.compression && opt.mode != M_IDLE && opt.mode != M_BROADCAST)
        die("--compression is supported in idle and broadcast modes only");
    if (opt.status_size < 0 || opt.status_size > MAX_STATUS_SIZE)
        die("--status-size out of range");
    if (opt.tls && opt.mode == M_RAW)
        die("--tls is not supported in raw mode (the echo server is plain TCP)");
    if (opt.tls) {
        /* No verification (SSL_VERIFY_NONE, no SNI): the peer is the
         * loopback server this benchmark started, with a throw-away
         * self-signed certificate. Read-ahead: one recv takes what the
         * socket holds, not a record header and then its body. */
        g_ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!g_ssl_ctx || SSL_CTX_set_min_proto_version(g_ssl_ctx, TLS1_2_VERSION) != 1 ||
            SSL_CTX_set_alpn_protos(g_ssl_ctx, (const unsigned char *)"\x08http/1.1", 9) != 0)
            die("cannot set up the TLS client context");
        SSL_CTX_set_verify(g_ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(g_ssl_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_read_ahead(g_ssl_ctx, 1);
        SSL_CTX_set_mode(g_ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* idle connections keep no record buffers (many thousands of them) */
        if (opt.mode == M_IDLE)
            SSL_CTX_set_mode(g_ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    build_request();

    total = opt.connections + (opt.mode == M_BROADCAST ? 1 : 0);
    if (opt.secret && opt.mode != M_RAW) {
        char name[32];
        g_n_users = (total + opt.per_user - 1) / opt.per_user;
        g_tokens = xmalloc(sizeof(char *) * (size_t)g_n_users);
        for (int i = 0; i < g_n_users; i++) {
            snprintf(name, sizeof(name), "bench-%d", i);
            g_tokens[i] = mint_hs256(opt.secret, name);
        }
    }
    threads = calloc((size_t)opt.threads, sizeof(thr));
    conns = calloc((size_t)total, sizeof(conn));
    if (!threads || !conns)
        die("out of memory");
    for (int i = 0; i < opt.threads; i++) {
        threads[i].id = i;
        mcpgw_pmd_pool_init(&threads[i].zpool, 6, 8);  /* inflaters only */
        threads[i].ep = epoll_create1(EPOLL_CLOEXEC);
        threads[i].conns = xmalloc(sizeof(conn *) * (size_t)(total / opt.threads + 2));
    }
    srand((unsigned)now_ns());
    for (int i = 0; i < total; i++) {
        conn *c = &conns[i];
        thr *th = &threads[i % opt.threads];
        c->fd = -1;
        c->index = i;
        c->t = th;
        c->is_sender = opt.mode == M_BROADCAST && i == total - 1;
        for (int k = 0; k < 4; k++)
            c->mask[k] = (uint8_t)(rand() & 0xff);
        if (opt.mode == M_PING || opt.mode == M_BATCH || opt.mode == M_RAW) {
            c->ts_cap = (unsigned)opt.inflight + 1;
            c->ts = xmalloc(sizeof(uint64_t) * c->ts_cap);
        }
        th->conns[th->n_conns++] = c;
    }

    rss0 = rss_kb(opt.server_pid);
    atomic_store(&g_phase, PH_CONNECT);
    t_conn0 = now_ns();
    if (opt.mode == M_IDLE) {
        cpu0 = cpu_s(opt.server_pid);
        ocpu0 = cpu_s_precise(opt.other_pid);
    }
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&threads[i].tid, NULL, worker, &threads[i]) != 0)
            die("pthread_create failed");
    deadline = t_conn0 + (uint64_t)(opt.connect_timeout * 1e9);
    while (atomic_load(&g_done) < total && now_ns() < deadline)
        sleep_s(0.002);
    t_conn1 = now_ns();
    if (opt.mode == M_IDLE) {
        cpu1 = cpu_s(opt.server_pid);
        ocpu1 = cpu_s_precise(opt.other_pid);
    }
    if (opt.mode == M_IDLE) {
        atomic_store(&g_phase, PH_MEASURE);
        sleep_s(opt.duration);
        rss1 = rss_kb(opt.server_pid);
    } else {
        atomic_store(&g_phase, PH_WARMUP);
        sleep_s(opt.warmup);
        t_meas0 = now_ns();
        cpu0 = cpu_s(opt.server_pid);
        ocpu0 = cpu_s_precise(opt.other_pid);
        w0 = server_syscw();
        lcpu0 = cpu_s((int)getpid());
        atomic_store(&g_phase, PH_MEASURE);
        sleep_s(opt.duration);
        atomic_store(&g_phase, PH_STOP);
        t_meas1 = now_ns();
        cpu1 = cpu_s(opt.server_pid);
        ocpu1 = cpu_s_precise(opt.other_pid);
        w1 = server_syscw();
        lcpu1 = cpu_s((int)getpid());
    }
    atomic_store(&g_phase, PH_STOP);
    for (int i = 0; i < opt.threads; i++)
        pthread_join(threads[i].tid, NULL);

    memset(&lat, 0, sizeof(lat));
    memset(&hs, 0, sizeof(hs));
    memset(status, 0, sizeof(status));
    for (int i = 0; i < opt.threads; i++) {
        thr *th = &threads[i];
        hist_merge(&lat, &th->lat);
        hist_merge(&hs, &th->hs_lat);
        msgs += th->msgs;
        subs += th->subs;
        bad += th->bad;
        sent_b += th->sent_bcast;
        opened += th->opened;
        failed += th->failed;
        closed_early += th->closed_early;
        deflate += th->deflate;
        z_msgs += th->z_msgs;
        z_wire += th->z_wire;
        z_plain += th->z_plain;
        z_full += th->z_full;
        z_wire_full += th->z_wire_full;
        z_err += th->z_errors;
        p_msgs += th->plain_msgs;
        p_bytes += th->plain_bytes;
        conn_err += th->connect_errors;
        tls_err += th->tls_errors;
        for (int k = 0; k < MAX_STATUS; k++)
            status[k] += th->status[k];
    }
    meas_s = t_meas1 > t_meas0 ? (double)(t_meas1 - t_meas0) / 1e9 : 0;
    hs_s = (double)(t_conn1 - t_conn0) / 1e9;

    printf("{\"mode\":\"%s\",\"label\":\"%s\",\"url\":\"%s\",\"connections\":%d,\"threads\":%d",
           mode_names[opt.mode], opt.label, url, opt.connections, opt.threads);
    printf(",\"opened\":%d,\"failed\":%d,\"failures\":{", opened, failed);
    {
        int first = 1;
        for (int k = 0; k < MAX_STATUS; k++)
            if (status[k]) {
                printf("%s\"%d\":%d", first ? "" : ",", k, status[k]);
                first = 0;
            }
        if (conn_err)
            printf("%s\"connect\":%d", first ? "" : ",", conn_err);
        /* TLS handshakes that failed, also counted in "connect" */
        if (tls_err)
            printf("%s\"tls\":%d", first && !conn_err ? "" : ",", tls_err);
    }
    printf("},\"connect_s\":%.3f,\"handshakes_per_s\":%.0f,\"handshake_p50_us\":%.1f,\"handshake_p99_us\":%.1f",
           hs_s, hs_s > 0 ? opened / hs_s : 0, hist_pct_us(&hs, 0.5), hist_pct_us(&hs, 0.99));
    printf(",\"closed_early\":%d,\"unexpected\":%llu", closed_early, (unsigned long long)bad);
    if (opt.tls)
        printf(",\"tls\":\"%s\"", g_tls_named ? g_tls_desc : "no handshake");
    /* The server's CPU seconds in the measured window (idle: while connecting):
     * on a shared machine, work per server CPU second is steadier than work
     * per wall second. */
    scpu = (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
    printf(",\"server_cpu_s\":%.2f,\"loadavg1\":%.2f", scpu, loadavg1());
    if (opt.other_pid > 0)
        printf(",\"other_cpu_s\":%.3f", ocpu0 >= 0 && ocpu1 >= 0 ? ocpu1 - ocpu0 : -1.0);
    switch (opt.mode) {
    case M_PING:
    case M_RAW:
    case M_BATCH:
        printf(",\"inflight\":%d,\"size\":%d,\"duration_s\":%.3f,\"msgs\":%llu,\"msgs_per_s\":%.0f",
               opt.inflight, opt.mode == M_BATCH ? (int)g_req_len : opt.size, meas_s,
               (unsigned long long)msgs, meas_s > 0 ? (double)msgs / meas_s : 0);
        if (opt.mode == M_BATCH)
            printf(",\"batch\":%d,\"sub_msgs_per_s\":%.0f", opt.batch,
                   meas_s > 0 ? (double)subs / meas_s : 0);
        printf(",\"msgs_per_server_cpu_s\":%.0f", scpu > 0 ? (double)msgs / scpu : -1.0);
        printf(",\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f",
               hist_pct_us(&lat, 0.5), hist_pct_us(&lat, 0.99), hist_pct_us(&lat, 0.999),
               (double)lat.max / 1000.0);
        break;
    case M_BROADCAST:
        printf(",\"window\":%d,\"rate\":%.1f,\"duration_s\":%.3f,\"broadcasts\":%llu,\"broadcasts_per_s\":%.1f"
               ",\"deliveries\":%llu,\"deliveries_per_s\":%.0f,\"deliveries_per_server_cpu_s\":%.0f"
               ",\"fanout_p50_us\":%.1f,\"fanout_p99_us\":%.1f,\"fanout_p999_us\":%.1f,\"fanout_max_us\":%.1f",
               opt.window, opt.rate, meas_s, (unsigned long long)sent_b, meas_s > 0 ? (double)sent_b / meas_s : 0,
               (unsigned long long)msgs, meas_s > 0 ? (double)msgs / meas_s : 0,
               scpu > 0 ? (double)msgs / scpu : -1.0,
               hist_pct_us(&lat, 0.5), hist_pct_us(&lat, 0.99), hist_pct_us(&lat, 0.999),
               (double)lat.max / 1000.0);
        /* what came over the wire in the measured window: compressed
         * messages (payload as received, inflated) and uncompressed ones */
        /* the load generator's own CPU seconds: near duration_s, it was the limit */
        printf(",\"load_cpu_s\":%.2f", lcpu0 >= 0 && lcpu1 >= 0 ? lcpu1 - lcpu0 : -1.0);
        /* the servers' write calls (syscw) in the window: deliveries per write
         * call tells how many broadcasts one writev carried */
        printf(",\"server_write_calls\":%lld", w0 >= 0 && w1 >= 0 ? w1 - w0 : -1LL);
        printf(",\"status_size\":%d,\"compression\":%s,\"deflate_negotiated\":%d,\"compressed_msgs\":%llu"
               ",\"compressed_wire_bytes_per_msg\":%.0f,\"inflated_bytes_per_msg\":%.0f,\"wire_ratio\":%.3f"
               ",\"inflate_errors\":%llu,\"plain_msgs\":%llu,\"plain_bytes_per_msg\":%.0f"
               ",\"inflate_every\":%d,\"inflated_in_full\":%llu",
               opt.status_size, opt.compression ? "true" : "false", deflate, (unsigned long long)z_msgs,
               z_msgs ? (double)z_wire / z_msgs : 0, z_full ? (double)z_plain / z_full : 0,
               z_plain ? (double)z_wire_full / z_plain : 1.0, (unsigned long long)z_err,
               (unsigned long long)p_msgs, p_msgs ? (double)p_bytes / p_msgs : 0,
               opt.inflate_every, (unsigned long long)z_full);
        break;
    case M_RATIO:
    case M_FANOUT:
        break;
    case M_IDLE:
        printf(",\"handshakes_per_server_cpu_s\":%.0f", scpu > 0 ? opened / scpu : -1.0);
        printf(",\"compression\":%s,\"deflate_negotiated\":%d,\"hold_s\":%.1f,\"server_rss_before_kb\":%ld"
               ",\"server_rss_after_kb\":%ld,\"rss_per_conn_bytes\":%.0f",
               opt.compression ? "true" : "false", deflate, opt.duration, rss0, rss1,
               (rss0 >= 0 && rss1 >= 0 && opened > 0) ? (double)(rss1 - rss0) * 1024.0 / opened : -1.0);
        break;
    }
    printf("}\n");
    fflush(stdout);
    for (int i = 0; i < total; i++) {
        conn *c = &conns[i];
        if (c->ssl)
            SSL_free(c->ssl);
        if (c->fd >= 0)
            close(c->fd);
        mcpgw_pmd_state_free(&c->zst);
        free(c->in);
        free(c->out);
        free(c->ts);
    }
    for (int i = 0; i < opt.threads; i++) {
        close(threads[i].ep);
        mcpgw_pmd_pool_free(&threads[i].zpool);
        free(threads[i].conns);
    }
    for (int i = 0; i < g_n_users && g_tokens; i++)
        free(g_tokens[i]);
    free(g_tokens);
    free(g_req_payload);
    free(conns);
    free(threads);
    SSL_CTX_free(g_ssl_ctx);
    return 0;
}
