/*
 * cluster.c - one worker's Redis side of a cluster (cluster.h): its two
 * hiredis connections and their reconnection, the queue of broadcasts
 * waiting for Redis, the reader of the broadcast stream with its last-seen
 * id and its duplicate filter, and the per-user leases with their refresh.
 *
 * Exactly once, in order: a worker numbers what it publishes (origin =
 * worker and a random epoch, sequence from 1). An XADD stays queued until
 * Redis answered it; after a reconnection the unanswered ones are sent
 * again, so one may land twice: readers drop any sequence of an origin not
 * above the last one they delivered. Readers resume from the last id they
 * read, so a reader that was away catches up from the stream.
 *
 * Coalescing: a reader delivers every entry of an answer at once (each
 * serialised frame shared by its recipients, all flushed together at the
 * end of the loop iteration: one write per connection per answer). While
 * answers bring entries it reads at most once every [cluster]
 * read_linger_ms (the timer starts at the answer: when writing the
 * deliveries out took longer, the next read goes at once), so entries
 * landing in between come in one answer rather than one each. Nothing is
 * held back: the linger only delays the next read, so a lost connection
 * loses nothing (the reconnect reads from the last id delivered at once,
 * and cancels the timer: one read at a time).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "cluster.h"
#include "conn.h"
#include "http_api.h"
#include "mcp_http.h"
#include "server.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>

#define TICK_MS 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define XREAD_BLOCK_MS 500
#define XREAD_COUNT 64   /* entries per read: a catch-up is delivered in steps, as the bus does */
#define REFRESH_BATCH 200
#define MAX_ORIGINS 256
#define DOWN_LOG_EVERY_S 30.0
#define STR_(x) #x
#define STR(x) STR_(x)

/* The lease scripts. Redis's own clock decides every expiry. */
#define LUA_NOW "local t = redis.call('TIME') " \
                "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

/* KEYS: user key, held key. ARGV: member, limit, lease_ms, user.
 * {1, count} granted, {0, count} at the limit. */
static const char LUA_ACQUIRE[] =
    LUA_NOW
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
    "local n = redis.call('ZCARD', KEYS[1]) "
    "if n >= tonumber(ARGV[2]) then return {0, n} end "
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3])) "
    "redis.call('SADD', KEYS[2], ARGV[4]) "
    "redis.call('PEXPIRE', KEYS[2], 2 * tonumber(ARGV[3])) "
    "return {1, n + 1}";

/* KEYS: held key, nodes hash, user keys... ARGV: lease_ms, first batch
 * (1/0), node field, "connections users", then member, user per key. */
static const char LUA_REFRESH[] =
    LUA_NOW
    "local lease = tonumber(ARGV[1]) "
    "if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) "
    "  redis.call('HSET', KEYS[2], ARGV[3], now .. ' ' .. ARGV[4]) end "
    "for i = 3, #KEYS do "
    "  redis.call('ZADD', KEYS[i], now + lease, ARGV[2 * i - 1]) "
    "  redis.call('PEXPIRE', KEYS[i], 2 * lease) "
    "  redis.call('SADD', KEYS[1], ARGV[2 * i]) end "
    "redis.call('PEXPIRE', KEYS[1], 2 * lease) "
    "return #KEYS - 2";

/* A worker starting in its slot: the leases of the process it replaces.
 * KEYS: held key. ARGV: "node|w|", "node|w|epoch|", user key prefix. */
static const char LUA_CLEAN[] =
    "local removed = 0 "
    "for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  local k = ARGV[3] .. u "
    "  for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do "
    "    if string.sub(m, 1, #ARGV[1]) == ARGV[1] and string.sub(m, 1, #ARGV[2]) ~= ARGV[2] then "
    "      redis.call('ZREM', k, m) removed = removed + 1 end end end "
    "redis.call('DEL', KEYS[1]) "
    "return removed";

/* A worker that exits: every lease of this process (its epoch) goes, so
 * that its users need not wait lease_ms (a new generation of the same
 * slot, in a binary upgrade, keeps its own). KEYS: held key. ARGV:
 * "node|w|epoch|", user key prefix. */
static const char LUA_DROP_MINE[] =
    "local removed = 0 "
    "for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  local k = ARGV[2] .. u "
    "  for _, m in ipairs(redis.call('ZRANGE', k, 0, -1)) do "
    "    if string.sub(m, 1, #ARGV[1]) == ARGV[1] then "
    "      redis.call('ZREM', k, m) removed = removed + 1 end end end "
    "return removed";

/* KEYS: nodes hash. ARGV: lease_ms. The fresh entries (stale ones go). */
static const char LUA_NODES[] =
    LUA_NOW
    "local h = redis.call('HGETALL', KEYS[1]) local out = {} "
    "for i = 1, #h, 2 do "
    "  local at = tonumber(string.match(h[i + 1], '^(%d+)')) "
    "  if at and at + tonumber(ARGV[1]) >= now then out[#out + 1] = h[i] out[#out + 1] = h[i + 1] "
    "  else redis.call('HDEL', KEYS[1], h[i]) end end "
    "return out";

/* The scripts run by their SHA-1 (EVALSHA): each connection of ours loads
 * them once (SCRIPT LOAD, pipelined behind its handshake), so a lease
 * request carries its arguments, not the script's ~500 bytes. Redis keeps
 * them until a restart (a new connection: loaded again) or SCRIPT FLUSH (a
 * NOSCRIPT answer drops the connection, and the reconnect loads them). The
 * exit script (LUA_DROP_MINE) is sent whole: it gets no second chance. */
enum { S_ACQUIRE, S_REFRESH, S_CLEAN, S_NODES, S_COUNT };
static const char *const SCRIPTS[S_COUNT] = { LUA_ACQUIRE, LUA_REFRESH, LUA_CLEAN, LUA_NODES };

typedef struct rconn {
    struct mcpgw_cluster *cl;
    const char *role;               /* "command" | "stream": log lines, client names */
    redisAsyncContext *ac;          /* NULL: not connected */
    int up;                         /* its handshake was answered */
    unsigned outstanding;           /* commands sent, not answered */
    double busy_since;              /* last answer, or first send since idle (s) */
    int timeout_ms;
    double retry_at;                /* when to connect again (s) */
    int backoff_ms;
    int was_up;                     /* for the log: lost vs never reached */
    int read_failed;                /* the stream's last XREAD was refused: a new
                                       connection does not reset the backoff */
    double down_logged_at;
} rconn;

typedef struct pub {
    struct pub *next;
    char *cmd;                      /* the XADD in RESP, formatted once */
    size_t len;
} pub;

typedef struct {
    char key[200];                  /* "node/origin" */
    uint64_t seq;                   /* the last delivered */
    uint64_t used;                  /* for replacing the least recent */
} seen;

typedef struct acq {
    mcpgw_cluster *cl;
    mcpgw_conn *conn;               /* referenced until the answer */
    char user[256];                 /* c->user is set only once upgraded */
} acq;

typedef struct nodes_req {
    mcpgw_cluster *cl;
    mcpgw_conn *conn;               /* referenced until the answer */
    json_t *local;
    char method[16], path[64];
} nodes_req;

struct mcpgw_cluster {
    mcpgw_server *srv;
    char *host;
    int port, db, is_unix;
    char *password;                 /* a copy, wiped at free */
    char *node;
    char *prefix;
    char *k_stream, *k_held, *k_nodes, *k_user;     /* k_user: "PREFIX user:" */
    char field[160];                /* "node|w" */
    char member_pfx[168];           /* "node|w|" */
    char my_pfx[200];               /* "node|w|epoch|" */
    char origin[64];                /* "w:epoch" */
    char sha[S_COUNT][41];          /* SCRIPTS' SHA-1, in hex */
    uint64_t lease_seq;             /* this worker's leases so far (their names) */
    char *ip;                       /* host's address, resolved once at start (or NULL) */
    double read_error_logged_at;    /* error lines that could repeat: one in a while */
    double publish_error_logged_at;
    int lease_ms;
    int linger_ms;                  /* [cluster] read_linger_ms */

    rconn cmd, rd;
    struct event *linger_ev;        /* armed: the next XREAD waits for it */
    struct event *tick_ev;
    double next_refresh;
    int cleaned;                    /* the stale leases of our slot are gone */

    pub *q_head, *q_tail, *q_unsent;
    size_t q_n, q_bytes;
    uint64_t seq;

    char last_id[48];               /* the stream: last entry read */
    int have_last;

    seen seen[MAX_ORIGINS];
    uint64_t seen_clock;
};

static void rc_connect(rconn *r);

static char *cat(const char *a, const char *b)
{
    char *s = malloc(strlen(a) + strlen(b) + 1);
    if (s) {
        strcpy(s, a);
        strcat(s, b);
    }
    return s;
}

static double now_s(mcpgw_cluster *cl)
{
    return mcpgw_clock_seconds(&cl->srv->clock);
}

static void log_line(mcpgw_cluster *cl, int level, const char *event, json_t *fields)
{
    if (mcpgw_log_enabled(&cl->srv->gw->log, level))
        mcpgw_log_event(&cl->srv->gw->log, level, event, fields, mcpgw_clock_iso(&cl->srv->clock));
    else
        json_decref(fields);
}

static void set_gauges(mcpgw_cluster *cl)
{
    cl->srv->stats->cluster_up = cl->cmd.up && cl->rd.up;
    cl->srv->stats->cluster_queued = cl->q_n;
}

/* ------------------------------------------------------------ connections */

static const char *address(mcpgw_cluster *cl, char *buf, size_t cap)
{
    if (cl->is_unix)
        snprintf(buf, cap, "unix:%s", cl->host);
    else
        snprintf(buf, cap, "%s:%d", cl->host, cl->port);
    return buf;
}

/* Connecting again after backoff: 0.1 s, doubling, at most 5 s. */
static void rc_schedule(rconn *r)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    r->retry_at = now_s(r->cl) + r->backoff_ms / 1000.0;
}

static void rc_lost(rconn *r, const char *why)
{
    mcpgw_cluster *cl = r->cl;
    char addr[160];
    int was_up = r->up;

    r->ac = NULL;
    r->up = 0;
    r->outstanding = 0;
    if (r == &cl->cmd)              /* what it did not answer goes again */
        cl->q_unsent = cl->q_head;
    set_gauges(cl);
    if (r == &cl->rd && cl->linger_ev)  /* the reconnect reads at once */
        evtimer_del(cl->linger_ev);
    rc_schedule(r);
    if (was_up) {
        r->backoff_ms = 0;          /* the first retry comes quickly */
        r->retry_at = now_s(cl) + BACKOFF_MIN_MS / 1000.0;
        cl->srv->metrics->cluster_disconnects++;
        log_line(cl, MCPGW_LOG_WARN, "cluster_redis_disconnected",
                 json_pack("{s:s, s:s, s:s}", "redis", address(cl, addr, sizeof(addr)),
                           "connection", r->role, "reason", why));
        r->down_logged_at = now_s(cl);
    } else if (now_s(cl) - r->down_logged_at >= DOWN_LOG_EVERY_S) {
        log_line(cl, MCPGW_LOG_ERROR, "cluster_redis_unreachable",
                 json_pack("{s:s, s:s, s:s, s:i}", "redis", address(cl, addr, sizeof(addr)),
                           "connection", r->role, "reason", why, "retry_ms", r->backoff_ms));
        r->down_logged_at = now_s(cl);
    }
}

/* Drops a connection (a timeout, a refused handshake). Pending callbacks
 * run with no reply. */
static void rc_drop(rconn *r, const char *why)
{
    redisAsyncContext *ac = r->ac;

    if (!ac)
        return;
    rc_lost(r, why);
    redisAsyncFree(ac);
}

static void rc_sent(rconn *r)
{
    if (r->outstanding++ == 0)
        r->busy_since = now_s(r->cl);
}

static void rc_answered(rconn *r)
{
    if (r->outstanding)
        r->outstanding--;
    r->busy_since = now_s(r->cl);
}

/* Sends a command on r; counts it only if hiredis took it (it refuses
 * while the connection closes). */
static int rc_cmd(rconn *r, redisCallbackFn *fn, void *priv, const char *fmt, ...)
{
    va_list ap;
    int rc;

    if (!r->ac)
        return REDIS_ERR;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(r->ac, fn, priv, fmt, ap);
    va_end(ap);
    if (rc == REDIS_OK)
        rc_sent(r);
    return rc;
}

/* Sends argv as one command, in RESP built here: the commands of every
 * upgrade and close (a lease asked for, given back) skip hiredis's format
 * parser and its allocation per argument, which cost more than the rest
 * of the cluster's work on an upgrade. The bytes built are wiped (AUTH
 * carries the password). */
static int rc_send(rconn *r, redisCallbackFn *fn, void *priv, int argc, const char *const *argv,
                   const size_t *len)
{
    char stack[1024], *buf = stack, *w;
    size_t need = 16;
    int rc = REDIS_ERR;

    if (!r->ac)
        return REDIS_ERR;
    for (int i = 0; i < argc; i++)
        need += len[i] + 32;
    if (need > sizeof(stack) && !(buf = malloc(need)))
        return REDIS_ERR;
    w = buf + sprintf(buf, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        w += sprintf(w, "$%zu\r\n", len[i]);
        memcpy(w, argv[i], len[i]);
        w += len[i];
        *w++ = '\r';
        *w++ = '\n';
    }
    if (redisAsyncFormattedCommand(r->ac, fn, priv, buf, (size_t)(w - buf)) == REDIS_OK) {
        rc_sent(r);
        rc = REDIS_OK;
    }
    OPENSSL_cleanse(buf, (size_t)(w - buf));
    if (buf != stack)
        free(buf);
    return rc;
}

/* An error answer to EVALSHA: NOSCRIPT means Redis lost our scripts (SCRIPT
 * FLUSH); the connection is dropped and its reconnect loads them again. */
static void script_error(rconn *r, const redisReply *reply)
{
    if (r && reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0)
        rc_drop(r, "scripts flushed");
}

/* Our callbacks run for r's current connection only: a reply on one we
 * dropped (always NULL) changes nothing. */
static rconn *rc_of(redisAsyncContext *ac)
{
    rconn *r = ac->data;
    return r && r->ac == ac ? r : NULL;
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    rconn *r = ac->data;

    if (status != REDIS_OK && r && r->ac == ac)
        rc_lost(r, ac->errstr[0] ? ac->errstr : "connect failed");   /* hiredis frees ac */
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    rconn *r = ac->data;

    if (r && r->ac == ac)
        rc_lost(r, status == REDIS_OK ? "closed" : ac->errstr[0] ? ac->errstr : "connection lost");
}

static void flush_queue(mcpgw_cluster *cl);
static void read_next(mcpgw_cluster *cl);
static void start_reading(mcpgw_cluster *cl);
static void clean_stale(mcpgw_cluster *cl);

/* AUTH, SELECT and CLIENT SETNAME: an error is fatal for this attempt. */
static void handshake_step_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    char addr[160];

    (void)priv;
    if (!r || !reply)
        return;
    rc_answered(r);
    if (reply->type == REDIS_REPLY_ERROR) {
        mcpgw_cluster *cl = r->cl;
        int auth = strncmp(reply->str, "WRONGPASS", 9) == 0 || strncmp(reply->str, "NOAUTH", 6) == 0 ||
                   strstr(reply->str, "password") != NULL || strstr(reply->str, "AUTH") != NULL;
        /* Redis's message names no password; ours neither */
        if (now_s(cl) - r->down_logged_at >= DOWN_LOG_EVERY_S || r->was_up) {
            log_line(cl, MCPGW_LOG_ERROR, auth ? "cluster_redis_auth_failed" : "cluster_redis_refused",
                     json_pack("{s:s, s:s, s:s}", "redis", address(cl, addr, sizeof(addr)),
                               "connection", r->role, "error", reply->str));
            r->down_logged_at = now_s(cl);
        }
        r->was_up = 0;
        rc_drop(r, auth ? "authentication failed" : "handshake refused");
    }
}

static void handshake_done_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    mcpgw_cluster *cl;
    char addr[160];

    (void)priv;
    if (!r || !reply)
        return;
    rc_answered(r);
    if (reply->type == REDIS_REPLY_ERROR) {
        rc_drop(r, "ping refused");
        return;
    }
    cl = r->cl;
    r->up = 1;
    if (!r->read_failed) {
        r->backoff_ms = 0;
        log_line(cl, MCPGW_LOG_INFO, "cluster_redis_connected",
                 json_pack("{s:s, s:s, s:s}", "redis", address(cl, addr, sizeof(addr)),
                           "connection", r->role, "node", cl->node));
        r->down_logged_at = 0;
    }
    r->was_up = 1;
    set_gauges(cl);
    if (r == &cl->cmd) {
        if (!cl->cleaned)
            clean_stale(cl);
        cl->next_refresh = 0;       /* leases (again) at the next tick */
        flush_queue(cl);
    } else {
        start_reading(cl);
    }
}

static void rc_connect(rconn *r)
{
    mcpgw_cluster *cl = r->cl;
    redisAsyncContext *ac;
    char name[300];
    const char *argv[3];
    size_t argvlen[3];

    /* hiredis resolves a host name with a blocking getaddrinfo(): connect
     * to the address found at start instead (resolve_once) */
    ac = cl->is_unix ? redisAsyncConnectUnix(cl->host)
                     : redisAsyncConnect(cl->ip ? cl->ip : cl->host, cl->port);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        r->ac = NULL;
        r->up = 0;
        rc_lost(r, why);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->up = 0;
    r->outstanding = 0;
    if (redisLibeventAttach(ac, cl->srv->base) != REDIS_OK) {
        rc_drop(r, "cannot attach to the loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    /* pipelined behind the connect: sent once it completes */
    if (cl->password) {
        argv[0] = "AUTH";
        argv[1] = cl->password;
        argvlen[0] = 4;
        argvlen[1] = strlen(cl->password);
        rc_send(r, handshake_step_cb, NULL, 2, argv, argvlen);
    }
    if (cl->db) {
        rc_cmd(r, handshake_step_cb, NULL, "SELECT %d", cl->db);
    }
    snprintf(name, sizeof(name), "mcpgw-%s-w%d-%s", cl->node, cl->srv->worker_id, r->role);
    for (char *p = name; *p; p++)
        if (*p == ' ')
            *p = '_';
    rc_cmd(r, handshake_step_cb, NULL, "CLIENT SETNAME %s", name);
    if (r == &cl->cmd)
        for (int i = 0; i < S_COUNT; i++)
            rc_cmd(r, handshake_step_cb, NULL, "SCRIPT LOAD %s", SCRIPTS[i]);
    rc_cmd(r, handshake_done_cb, NULL, "PING");
}

/* ------------------------------------------------------------ publishing */

static void pub_free(pub *p)
{
    redisFreeCommand(p->cmd);
    free(p);
}

static void pub_pop(mcpgw_cluster *cl)
{
    pub *p = cl->q_head;

    if (!p)
        return;
    cl->q_head = p->next;
    if (!cl->q_head)
        cl->q_tail = NULL;
    if (cl->q_unsent == p)
        cl->q_unsent = cl->q_head;
    cl->q_n--;
    cl->q_bytes -= p->len;
    pub_free(p);
}

static void pub_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    mcpgw_cluster *cl = priv;

    if (!r || !reply)
        return;                     /* the connection went: it is sent again */
    rc_answered(r);
    if (reply->type == REDIS_REPLY_ERROR) {
        cl->srv->metrics->cluster_publish_errors++; /* counted each; logged once in a while */
        if (now_s(cl) - cl->publish_error_logged_at >= DOWN_LOG_EVERY_S) {
            log_line(cl, MCPGW_LOG_ERROR, "cluster_publish_failed",
                     json_pack("{s:s}", "error", reply->str));
            cl->publish_error_logged_at = now_s(cl);
        }
    } else {
        cl->srv->metrics->cluster_published++;
    }
    pub_pop(cl);                    /* replies come in order: it is the head */
    set_gauges(cl);
}

static void flush_queue(mcpgw_cluster *cl)
{
    rconn *r = &cl->cmd;

    while (r->up && r->ac && cl->q_unsent) {
        pub *p = cl->q_unsent;
        if (redisAsyncFormattedCommand(r->ac, pub_cb, cl, p->cmd, p->len) != REDIS_OK)
            break;
        rc_sent(r);
        cl->q_unsent = p->next;
    }
}

void mcpgw_cluster_publish(mcpgw_cluster *cl, const char *user, const char *text, size_t len)
{
    char seqs[24];
    const char *argv[16];
    size_t argvlen[16];
    int argc = 0;
    pub *p;
    long long n;

#define ARG(s, l) (argv[argc] = (s), argvlen[argc] = (l), argc++)
    ARG("XADD", 4);
    ARG(cl->k_stream, strlen(cl->k_stream));
    ARG("MAXLEN", 6);
    ARG("~", 1);
    ARG(STR(MCPGW_CLUSTER_STREAM_MAX), strlen(STR(MCPGW_CLUSTER_STREAM_MAX)));
    ARG("*", 1);
    ARG("n", 1);
    ARG(cl->node, strlen(cl->node));
    ARG("o", 1);
    ARG(cl->origin, strlen(cl->origin));
    snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)++cl->seq);
    ARG("s", 1);
    ARG(seqs, strlen(seqs));
    if (user) {
        ARG("u", 1);
        ARG(user, strlen(user));
    }
    ARG("t", 1);
    ARG(text, len);
#undef ARG
    if (!(p = calloc(1, sizeof(*p))))
        goto dropped;
    n = redisFormatCommandArgv(&p->cmd, argc, argv, argvlen);
    if (n < 0) {
        free(p);
        goto dropped;
    }
    p->len = (size_t)n;
    /* bounded: while Redis is away the oldest go (nothing of them was
     * sent); while it answers, but slowly, the newest */
    while ((cl->q_n >= MCPGW_CLUSTER_QUEUE_MAX || cl->q_bytes + p->len > MCPGW_CLUSTER_QUEUE_BYTES) &&
           cl->q_head && !cl->cmd.up) {
        pub_pop(cl);
        cl->srv->metrics->cluster_publish_dropped++;
    }
    if (cl->q_n >= MCPGW_CLUSTER_QUEUE_MAX || cl->q_bytes + p->len > MCPGW_CLUSTER_QUEUE_BYTES) {
        pub_free(p);
        goto dropped;
    }
    if (cl->q_tail)
        cl->q_tail->next = p;
    else
        cl->q_head = p;
    cl->q_tail = p;
    if (!cl->q_unsent)
        cl->q_unsent = p;
    cl->q_n++;
    cl->q_bytes += p->len;
    flush_queue(cl);
    set_gauges(cl);
    return;
dropped:
    cl->srv->metrics->cluster_publish_dropped++;
}

/* ------------------------------------------------------------ reading */

/* 1 when (node, origin, seq) is new; remembers it. */
static int first_time(mcpgw_cluster *cl, const char *node, size_t nlen, const char *origin,
                      size_t olen, uint64_t seq)
{
    char key[200];
    seen *slot = NULL, *oldest = &cl->seen[0];

    if (nlen + olen + 2 > sizeof(key))
        return 1;
    memcpy(key, node, nlen);
    key[nlen] = '/';
    memcpy(key + nlen + 1, origin, olen);
    key[nlen + 1 + olen] = '\0';
    for (int i = 0; i < MAX_ORIGINS; i++) {
        seen *s = &cl->seen[i];
        if (s->used && strcmp(s->key, key) == 0) {
            slot = s;
            break;
        }
        if (s->used < oldest->used)
            oldest = s;
    }
    if (!slot) {
        slot = oldest;
        snprintf(slot->key, sizeof(slot->key), "%s", key);
        slot->seq = 0;
    }
    slot->used = ++cl->seen_clock;
    if (seq <= slot->seq)
        return 0;
    slot->seq = seq;
    return 1;
}

static void entry(mcpgw_cluster *cl, redisReply *e)
{
    redisReply *id, *kv;
    const char *node = NULL, *origin = NULL, *user = NULL, *text = NULL;
    size_t nlen = 0, olen = 0, tlen = 0;
    uint64_t seq = 0;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
        return;
    id = e->element[0];
    kv = e->element[1];
    if (id->type != REDIS_REPLY_STRING || id->len >= sizeof(cl->last_id))
        return;
    memcpy(cl->last_id, id->str, id->len);
    cl->last_id[id->len] = '\0';
    if (kv->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            continue;
        switch (k->str[0]) {
        case 'n': node = v->str; nlen = v->len; break;
        case 'o': origin = v->str; olen = v->len; break;
        case 's': seq = strtoull(v->str, NULL, 10); break;
        case 'u': user = v->str; break;
        case 't': text = v->str; tlen = v->len; break;
        }
    }
    if (!node || !origin || !text)
        return;
    /* our own node delivered it already (at once, and through the local bus) */
    if (nlen == strlen(cl->node) && memcmp(node, cl->node, nlen) == 0)
        return;
    if (!first_time(cl, node, nlen, origin, olen, seq)) {
        cl->srv->metrics->cluster_duplicates++;
        return;
    }
    {
        struct timeval tv;
        long long ms = strtoll(cl->last_id, NULL, 10);
        gettimeofday(&tv, NULL);
        ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000 - ms;
        cl->srv->stats->cluster_lag_ms = ms > 0 ? (uint64_t)ms : 0;
    }
    cl->srv->metrics->cluster_received++;
    mcpgw_server_deliver_remote(cl->srv, user, text, tlen);
}

static void xread_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    mcpgw_cluster *cl = priv;
    size_t n = 0;

    if (!r || !reply)
        return;
    rc_answered(r);
    if (reply->type == REDIS_REPLY_ERROR) {
        /* the key is not a stream (or Redis refuses): it will not heal by
         * reconnecting at once, so this counts as a failed connection:
         * backoff goes on growing, one log line in a while */
        if (now_s(cl) - cl->read_error_logged_at >= DOWN_LOG_EVERY_S) {
            log_line(cl, MCPGW_LOG_ERROR, "cluster_stream_read_failed",
                     json_pack("{s:s}", "error", reply->str));
            cl->read_error_logged_at = now_s(cl);
        }
        r->up = 0;                  /* rc_lost: not "was up", the backoff stays */
        r->read_failed = 1;
        r->down_logged_at = now_s(cl); /* and no "unreachable" line: it was reached */
        rc_drop(r, "XREAD refused");
        return;
    }
    r->read_failed = 0;
    /* [[stream, [entry...]]], or nil when the block ran out */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *entries = reply->element[0]->element[1];
        uint64_t before = cl->srv->metrics->cluster_received;
        for (size_t i = 0; i < entries->elements; i++)
            entry(cl, entries->element[i]);
        if (cl->srv->metrics->cluster_received != before)
            cl->srv->metrics->cluster_batches++;
        n = entries->elements;
    }
    /* a full answer: a backlog, read on at once; some entries: linger */
    if (n > 0 && n < XREAD_COUNT && cl->linger_ms > 0) {
        struct timeval tv = { cl->linger_ms / 1000, (cl->linger_ms % 1000) * 1000 };
        evtimer_add(cl->linger_ev, &tv);
        return;
    }
    read_next(cl);
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_next(arg);
}

static void read_next(mcpgw_cluster *cl)
{
    rconn *r = &cl->rd;

    evtimer_del(cl->linger_ev);     /* one read at a time: a reconnect may come first */
    if (!r->up || !r->ac)
        return;
    rc_cmd(r, xread_cb, cl, "XREAD COUNT %d BLOCK %d STREAMS %s %s", XREAD_COUNT, XREAD_BLOCK_MS,
           cl->k_stream, cl->last_id);
}

/* The first time: from the stream's last entry (what came before this
 * worker had no client of ours). Later: from where we were. */
static void last_id_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    mcpgw_cluster *cl = priv;

    if (!r || !reply)
        return;
    rc_answered(r);
    snprintf(cl->last_id, sizeof(cl->last_id), "0-0");
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[0]->element[0]->len < sizeof(cl->last_id))
        snprintf(cl->last_id, sizeof(cl->last_id), "%s", reply->element[0]->element[0]->str);
    cl->have_last = 1;
    read_next(cl);
}

static void start_reading(mcpgw_cluster *cl)
{
    rconn *r = &cl->rd;

    if (cl->have_last) {
        read_next(cl);
        return;
    }
    rc_cmd(r, last_id_cb, cl, "XREVRANGE %s + - COUNT 1", cl->k_stream);
}

/* ------------------------------------------------------------ leases */

static void drop_lease(mcpgw_conn *c);

static void clean_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    mcpgw_cluster *cl = priv;

    if (!r || !reply)
        return;
    rc_answered(r);
    if (reply->type == REDIS_REPLY_INTEGER) {
        cl->cleaned = 1;
        if (reply->integer > 0)
            log_line(cl, MCPGW_LOG_INFO, "cluster_stale_leases_cleared",
                     json_pack("{s:I}", "leases", (json_int_t)reply->integer));
    }
    script_error(r, reply);
}

static void clean_stale(mcpgw_cluster *cl)
{
    rc_cmd(&cl->cmd, clean_cb, cl, "EVALSHA %s 1 %s %s %s %s", cl->sha[S_CLEAN], cl->k_held,
           cl->member_pfx, cl->my_pfx, cl->k_user);
}

static void acquire_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    acq *a = priv;
    mcpgw_cluster *cl = a->cl;
    mcpgw_conn *c = a->conn;
    rconn *r = rc_of(ac);
    int verdict = MCPGW_CLUSTER_DOWN;
    char user[256];

    memcpy(user, a->user, sizeof(user));
    free(a);
    if (r && reply)
        rc_answered(r);
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER)
        verdict = reply->element[0]->integer == 1 ? MCPGW_CLUSTER_GRANTED : MCPGW_CLUSTER_FULL;
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        log_line(cl, MCPGW_LOG_ERROR, "cluster_lease_failed", json_pack("{s:s}", "error", reply->str));
    script_error(r, reply);
    c->cluster_wait = 0;
    c->cluster_verdict = verdict;
    if (verdict != MCPGW_CLUSTER_GRANTED)
        drop_lease(c);              /* none was written */
    if (c->state != MCPGW_CONN_HTTP || !c->transport) {
        /* the client left meanwhile */
        if (verdict == MCPGW_CLUSTER_GRANTED)
            mcpgw_cluster_release(cl, c, user);
    } else {
        /* the request is still buffered: read it again, with the verdict */
        c->transport->cbs->readable(c->transport->owner);
    }
    mcpgw_conn_unref(c);
}

/* A lease member of its own for c ("node|w|epoch|n", n counting this
 * worker's leases: a TCP connection may ask for several, one per Streamable
 * HTTP session) and whose it is. */
static int make_lease(mcpgw_cluster *cl, mcpgw_conn *c, const char *user)
{
    char m[300];

    if (c->lease)
        return 0;
    snprintf(m, sizeof(m), "%s%llu", cl->my_pfx, (unsigned long long)++cl->lease_seq);
    c->lease = strdup(m);
    c->lease_user = user ? strdup(user) : NULL;
    if (!c->lease || !c->lease_user) {
        free(c->lease);
        free(c->lease_user);
        c->lease = c->lease_user = NULL;
        return -1;
    }
    return 0;
}

static void drop_lease(mcpgw_conn *c)
{
    free(c->lease);
    free(c->lease_user);
    c->lease = c->lease_user = NULL;
}

int mcpgw_cluster_acquire(mcpgw_cluster *cl, mcpgw_conn *c, const char *user)
{
    rconn *r = &cl->cmd;
    acq *a;
    char limit[16], lease[16], ukey[512];
    size_t ukey_len;
    int rc;

    if (!r->up || !r->ac || strlen(user) >= sizeof(a->user) || make_lease(cl, c, user) != 0)
        return -1;
    if (!(a = calloc(1, sizeof(*a))))
        return -1;
    a->cl = cl;
    a->conn = c;
    memcpy(a->user, user, strlen(user) + 1);
    snprintf(limit, sizeof(limit), "%d", cl->srv->gw->cfg->max_connections_per_user);
    snprintf(lease, sizeof(lease), "%d", cl->lease_ms);
    ukey_len = (size_t)snprintf(ukey, sizeof(ukey), "%s%s", cl->k_user, user);
    {
        const char *argv[] = { "EVALSHA", cl->sha[S_ACQUIRE], "2", ukey, cl->k_held, c->lease,
                               limit, lease, user };
        const size_t len[] = { 7, 40, 1, ukey_len, strlen(cl->k_held), strlen(c->lease),
                               strlen(limit), strlen(lease), strlen(user) };

        rc = ukey_len < sizeof(ukey) ? rc_send(r, acquire_cb, a, 9, argv, len) : REDIS_ERR;
    }
    if (rc != REDIS_OK) {
        free(a);
        return -1;
    }
    mcpgw_conn_ref(c);
    c->cluster_wait = 1;
    return 0;
}

void mcpgw_cluster_hold(mcpgw_cluster *cl, mcpgw_conn *c, const char *user)
{
    (void)make_lease(cl, c, user); /* without one it is refreshed never: local only */
}

static void ignore_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    rconn *r = rc_of(ac);

    (void)priv;
    if (r && reply_)
        rc_answered(r);
}

void mcpgw_cluster_release(mcpgw_cluster *cl, mcpgw_conn *c, const char *user)
{
    rconn *r = &cl->cmd;

    if (!c->lease)
        return;
    if (!user)
        user = c->lease_user ? c->lease_user : c->user;
    /* while Redis is away the lease runs out by itself */
    if (r->up && r->ac && user) {
        char ukey[512];
        size_t ukey_len = (size_t)snprintf(ukey, sizeof(ukey), "%s%s", cl->k_user, user);
        const char *argv[] = { "ZREM", ukey, c->lease };
        const size_t len[] = { 4, ukey_len, strlen(c->lease) };

        if (ukey_len < sizeof(ukey))
            rc_send(r, ignore_cb, cl, 3, argv, len);
    }
    drop_lease(c);
}

static void refresh_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    rconn *r = rc_of(ac);
    mcpgw_cluster *cl = priv;

    if (!r || !reply) {
        cl->srv->metrics->cluster_lease_refresh_failures++;
        return;
    }
    rc_answered(r);
    if (reply->type == REDIS_REPLY_ERROR) {
        cl->srv->metrics->cluster_lease_refresh_failures++;
        log_line(cl, MCPGW_LOG_ERROR, "cluster_lease_refresh_failed",
                 json_pack("{s:s}", "error", reply->str));
        script_error(r, reply);
    }
}

static int holds_lease(const mcpgw_conn *c)
{
    return c->lease && c->user && c->state == MCPGW_CONN_OPEN;
}

/* One script for n leases; the first batch also rewrites the held set and
 * this worker's entry in the nodes hash. */
static void refresh_send(mcpgw_cluster *cl, mcpgw_conn **batch, int n, int first)
{
    const char *argv[9 + 3 * REFRESH_BATCH];
    size_t argvlen[9 + 3 * REFRESH_BATCH];
    char *keys[REFRESH_BATCH];
    char lease[16], info[32], nkeys[16];
    int argc = 0, nk;

#define ARG(s, l) (argv[argc] = (s), argvlen[argc] = (l), argc++)
    snprintf(nkeys, sizeof(nkeys), "%d", n + 2);
    snprintf(lease, sizeof(lease), "%d", cl->lease_ms);
    snprintf(info, sizeof(info), "%llu",
             (unsigned long long)(cl->srv->n_open + cl->srv->n_mcp_sessions));
    ARG("EVALSHA", 7);
    ARG(cl->sha[S_REFRESH], 40);
    ARG(nkeys, strlen(nkeys));
    ARG(cl->k_held, strlen(cl->k_held));
    ARG(cl->k_nodes, strlen(cl->k_nodes));
    for (nk = 0; nk < n; nk++) {
        if (!(keys[nk] = cat(cl->k_user, batch[nk]->user)))
            goto out;
        ARG(keys[nk], strlen(keys[nk]));
    }
    ARG(lease, strlen(lease));
    ARG(first ? "1" : "0", 1);
    ARG(cl->field, strlen(cl->field));
    ARG(info, strlen(info));
    for (int i = 0; i < n; i++) {
        ARG(batch[i]->lease, strlen(batch[i]->lease));
        ARG(batch[i]->user, strlen(batch[i]->user));
    }
#undef ARG
    rc_send(&cl->cmd, refresh_cb, cl, argc, argv, argvlen);
out:
    for (int i = 0; i < nk; i++)
        free(keys[i]);
}

/* Every lease of this worker, REFRESH_BATCH per script (ZADD without XX:
 * leases taken while Redis was away, or lost with a restarted Redis, are
 * written again). */
static void refresh(mcpgw_cluster *cl)
{
    mcpgw_conn *batch[REFRESH_BATCH];
    int n = 0, first = 1;

    /* the WebSocket connections, then the Streamable HTTP sessions */
    mcpgw_conn *c = cl->srv->conns, *v = NULL;

    for (;;) {
        mcpgw_conn *h = c ? c : (v = mcpgw_mcp_http_next(cl->srv, v));
        if (!h)
            break;
        c = c ? c->next : NULL;
        if (!holds_lease(h))
            continue;
        batch[n++] = h;
        if (n == REFRESH_BATCH) {
            refresh_send(cl, batch, n, first);
            first = 0;
            n = 0;
        }
    }
    if (n || first)
        refresh_send(cl, batch, n, first);
}

/* ------------------------------------------------------------ tick */

static void rc_check(rconn *r, double now)
{
    if (!r->ac) {
        if (now >= r->retry_at)
            rc_connect(r);
        return;
    }
    if (r->outstanding && (now - r->busy_since) * 1000.0 > r->timeout_ms)
        rc_drop(r, "timeout");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_cluster *cl = arg;
    double now = now_s(cl);

    (void)fd;
    (void)what;
    rc_check(&cl->cmd, now);
    rc_check(&cl->rd, now);
    if (now >= cl->next_refresh) {
        cl->next_refresh = now + cl->lease_ms / 3000.0;
        if (cl->cmd.up && cl->cmd.ac)
            refresh(cl);
        else if (cl->srv->n_open || cl->srv->n_mcp_sessions)
            cl->srv->metrics->cluster_lease_refresh_failures++;
    }
    set_gauges(cl);
}

/* ------------------------------------------------------------ admin */

static void nodes_cb(redisAsyncContext *ac, void *reply_, void *priv)
{
    redisReply *reply = reply_;
    nodes_req *q = priv;
    mcpgw_conn *c = q->conn;
    rconn *r = rc_of(ac);
    json_t *answer = q->local, *nodes = json_object();
    json_int_t total = 0;
    int status = 200;

    if (r && reply)
        rc_answered(r);
    if (reply && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            redisReply *f = reply->element[i], *v = reply->element[i + 1];
            char node[200];
            const char *bar;
            long long at = 0, conns = 0;
            json_t *o;
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            bar = strrchr(f->str, '|');
            snprintf(node, sizeof(node), "%.*s", bar ? (int)(bar - f->str) : (int)f->len, f->str);
            if (sscanf(v->str, "%lld %lld", &at, &conns) != 2)
                continue;
            if (!(o = json_object_get(nodes, node))) {
                o = json_pack("{s:I, s:I}", "connections", (json_int_t)0, "workers", (json_int_t)0);
                json_object_set_new(nodes, node, o);
            }
            json_object_set_new(o, "connections",
                                json_integer(json_integer_value(json_object_get(o, "connections")) + conns));
            json_object_set_new(o, "workers",
                                json_integer(json_integer_value(json_object_get(o, "workers")) + 1));
            total += conns;
        }
        json_object_set_new(answer, "scope", json_string("cluster"));
        json_object_set_new(answer, "cluster_connections", json_integer(total));
        json_object_set_new(answer, "nodes", nodes);
    } else {
        script_error(r, reply);
        json_decref(nodes);
        status = 503;
        json_decref(answer);
        answer = json_pack("{s:s}", "error", "Redis did not answer: the cluster view is unavailable");
    }
    mcpgw_http_api_answer_deferred(c, q->method, q->path, status, answer);
    mcpgw_conn_unref(c);
    free(q);
}

void mcpgw_cluster_connections(mcpgw_cluster *cl, mcpgw_conn *c, json_t *local)
{
    rconn *r = &cl->cmd;
    nodes_req *q;
    char lease[16];

    if (!r->up || !r->ac || !(q = calloc(1, sizeof(*q)))) {
        json_decref(local);
        mcpgw_http_api_answer(c, 503, json_pack("{s:s}", "error",
                                                 "Redis is unreachable: the cluster view is unavailable"));
        return;
    }
    q->cl = cl;
    q->conn = c;
    q->local = local;
    if (c->http_req) {
        snprintf(q->method, sizeof(q->method), "%.*s", (int)c->http_req->method.len,
                 c->http_req->method.p);
        snprintf(q->path, sizeof(q->path), "%.*s", (int)c->http_req->path.len, c->http_req->path.p);
    }
    snprintf(lease, sizeof(lease), "%d", cl->lease_ms);
    if (rc_cmd(r, nodes_cb, q, "EVALSHA %s 1 %s %s", cl->sha[S_NODES], cl->k_nodes, lease) !=
        REDIS_OK) {
        /* hiredis is closing the connection: no answer would ever come */
        free(q);
        json_decref(local);
        mcpgw_http_api_answer(c, 503, json_pack("{s:s}", "error",
                                                 "Redis is unreachable: the cluster view is unavailable"));
        return;
    }
    c->api_pending = 1;
    mcpgw_conn_ref(c);
}

json_t *mcpgw_cluster_status(const mcpgw_cluster *cl)
{
    return json_pack("{s:s, s:s, s:I}", "redis", cl->cmd.up && cl->rd.up ? "up" : "down", "node",
                     cl->node, "queued", (json_int_t)cl->q_n);
}

int mcpgw_cluster_up(const mcpgw_cluster *cl)
{
    return cl && cl->cmd.up;
}

/* ------------------------------------------------------------ life */

/* A host name is resolved here, once, before the loop serves anyone: the
 * reconnects then never wait for DNS in the loop (hiredis 0.14 resolves
 * synchronously). A name that does not resolve now is tried as it is. */
static void resolve_once(mcpgw_cluster *cl)
{
    struct addrinfo hints, *res = NULL;
    char ip[INET6_ADDRSTRLEN];

    if (cl->is_unix)
        return;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(cl->host, NULL, &hints, &res) != 0 || !res)
        return;
    if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) == 0)
        cl->ip = strdup(ip);
    freeaddrinfo(res);
}

mcpgw_cluster *mcpgw_cluster_new(mcpgw_server *srv)
{
    const mcpgw_config *cfg = srv->gw->cfg;
    mcpgw_cluster *cl;
    uint64_t epoch = 0;
    char held[300];
    struct timeval tv = { 0, TICK_MS * 1000 };

    if (!cfg->cluster_redis)
        return NULL;
    if (!(cl = calloc(1, sizeof(*cl))))
        return NULL;
    cl->srv = srv;
    cl->port = cfg->cluster_port;
    cl->db = cfg->cluster_db;
    cl->is_unix = cfg->cluster_unix;
    cl->lease_ms = cfg->cluster_lease_ms;
    cl->linger_ms = cfg->cluster_read_linger_ms;
    if (getrandom(&epoch, sizeof(epoch), 0) != sizeof(epoch))
        epoch = (uint64_t)getpid() * 2654435761u ^ (uint64_t)time(NULL);
    epoch &= 0xffffffffffffull;
    snprintf(cl->origin, sizeof(cl->origin), "%d:%llx", srv->worker_id, (unsigned long long)epoch);
    snprintf(cl->field, sizeof(cl->field), "%s|%d", cfg->cluster_node_id, srv->worker_id);
    snprintf(cl->member_pfx, sizeof(cl->member_pfx), "%s|", cl->field);
    snprintf(cl->my_pfx, sizeof(cl->my_pfx), "%s|%llx|", cl->field, (unsigned long long)epoch);
    snprintf(held, sizeof(held), "held:%s", cl->field);
    if (!(cl->host = strdup(cfg->cluster_host)) || !(cl->node = strdup(cfg->cluster_node_id)) ||
        !(cl->prefix = strdup(cfg->cluster_key_prefix)) ||
        (cfg->cluster_password && !(cl->password = strdup(cfg->cluster_password))) ||
        !(cl->k_stream = cat(cl->prefix, "broadcasts")) || !(cl->k_held = cat(cl->prefix, held)) ||
        !(cl->k_nodes = cat(cl->prefix, "nodes")) || !(cl->k_user = cat(cl->prefix, "user:")))
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)SCRIPTS[i], strlen(SCRIPTS[i]), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
            snprintf(cl->sha[i] + 2 * j, 3, "%02x", md[j]);
    }
    resolve_once(cl);
    cl->cmd.cl = cl->rd.cl = cl;
    cl->cmd.role = "command";
    cl->rd.role = "stream";
    cl->cmd.timeout_ms = MCPGW_CLUSTER_TIMEOUT_MS;
    cl->rd.timeout_ms = MCPGW_CLUSTER_TIMEOUT_MS + XREAD_BLOCK_MS;
    if (!(cl->tick_ev = event_new(srv->base, -1, EV_PERSIST, tick_cb, cl)) ||
        event_add(cl->tick_ev, &tv) != 0 ||
        !(cl->linger_ev = evtimer_new(srv->base, linger_cb, cl)))
        goto fail;
    rc_connect(&cl->cmd);
    rc_connect(&cl->rd);
    return cl;
fail:
    mcpgw_cluster_free(cl);
    return NULL;
}

void mcpgw_cluster_free(mcpgw_cluster *cl)
{
    if (!cl)
        return;
    if (cl->tick_ev)
        event_free(cl->tick_ev);
    cl->tick_ev = NULL;
    if (cl->linger_ev)
        event_free(cl->linger_ev);
    cl->linger_ev = NULL;
    /* this process's leases go with it: one script, written out now (the
     * socket takes it without waiting; no answer is awaited) */
    if (cl->cmd.up && cl->cmd.ac &&
        redisAsyncCommand(cl->cmd.ac, NULL, NULL, "EVAL %s 1 %s %s %s", LUA_DROP_MINE, cl->k_held,
                          cl->my_pfx, cl->k_user) == REDIS_OK)
        redisAsyncHandleWrite(cl->cmd.ac);
    /* pending callbacks run with no reply (acquires answer "down") */
    for (rconn *r = &cl->cmd; r; r = r == &cl->cmd ? &cl->rd : NULL) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->up = 0;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
    }
    while (cl->q_head)
        pub_pop(cl);
    if (cl->password) {
        explicit_bzero(cl->password, strlen(cl->password));
        free(cl->password);
    }
    free(cl->host);
    free(cl->ip);
    free(cl->node);
    free(cl->prefix);
    free(cl->k_stream);
    free(cl->k_held);
    free(cl->k_nodes);
    free(cl->k_user);
    free(cl);
}
