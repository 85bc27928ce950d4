/*
 * cluster.h - one worker's part of a cluster of gateways over Redis
 * ([cluster] in the configuration).
 *
 * Each worker owns two hiredis asynchronous connections on its own loop:
 * one for commands (publishing broadcasts, per-user leases, their refresh)
 * and one that reads the broadcast stream (XREAD BLOCK). Nothing here ever
 * waits for Redis: commands are pipelined, a connection that does not
 * answer within MCPGW_CLUSTER_TIMEOUT_MS is dropped and reconnected with
 * backoff, broadcasts wait in a bounded queue until Redis took them.
 *
 * Keys (PREFIX is [cluster] key_prefix, "mcpgw:" by default):
 *   PREFIX broadcasts        a stream, one entry per broadcast or send-to-user
 *                            (n node, o origin, s sequence, [u user], t text),
 *                            trimmed to about MCPGW_CLUSTER_STREAM_MAX entries
 *   PREFIX user:U            a sorted set: U's connection leases
 *                            ("node|worker|epoch|conn" scored by expiry, ms)
 *   PREFIX held:NODE|W       the users worker W of NODE holds leases for
 *   PREFIX nodes             a hash: "NODE|W" -> "at_ms connections users"
 *
 * Ownership: mcpgw_cluster_new() returns NULL without [cluster]; the server
 * owns what it returns and frees it with mcpgw_cluster_free().
 */
#ifndef MCPGW_CLUSTER_H
#define MCPGW_CLUSTER_H

#include <stddef.h>
#include <jansson.h>

typedef struct mcpgw_server mcpgw_server;
typedef struct mcpgw_conn mcpgw_conn;
typedef struct mcpgw_cluster mcpgw_cluster;

#define MCPGW_CLUSTER_TIMEOUT_MS 1500       /* a command unanswered this long: reconnect */
#define MCPGW_CLUSTER_STREAM_MAX 100000     /* MAXLEN ~ of the broadcast stream */
#define MCPGW_CLUSTER_QUEUE_MAX 100000      /* broadcasts waiting for Redis, at most */
#define MCPGW_CLUSTER_QUEUE_BYTES ((size_t)64 << 20)

/* What the cluster said about an upgrade (mcpgw_conn.cluster_verdict). */
enum {
    MCPGW_CLUSTER_UNDECIDED = 0,
    MCPGW_CLUSTER_GRANTED,          /* a lease is held */
    MCPGW_CLUSTER_FULL,             /* the user is at the limit, cluster-wide */
    MCPGW_CLUSTER_DOWN              /* Redis did not answer: on_redis_down decides */
};

/* Starts connecting (NULL without [cluster], or out of memory). */
mcpgw_cluster *mcpgw_cluster_new(mcpgw_server *srv);
void mcpgw_cluster_free(mcpgw_cluster *cl);

/* 1 when the command connection is up (answered its handshake). */
int mcpgw_cluster_up(const mcpgw_cluster *cl);

/* Hands a broadcast (user NULL) or a send-to-user, serialised once, to the
 * other nodes. Never waits: queued while Redis is away. */
void mcpgw_cluster_publish(mcpgw_cluster *cl, const char *user, const char *text, size_t len);

/* Asks for a lease for c (user, not yet upgraded). 0: asked; the answer
 * sets c->cluster_verdict and reads c's request again. -1: Redis is down
 * (the caller applies on_redis_down at once). */
int mcpgw_cluster_acquire(mcpgw_cluster *cl, mcpgw_conn *c, const char *user);
/* c had a lease counted locally (granted, or taken while Redis was down):
 * it is refreshed from now on. */
void mcpgw_cluster_hold(mcpgw_cluster *cl, mcpgw_conn *c, const char *user);
/* c closes (or its upgrade failed after a grant): gives its lease back.
 * user: whose it is (NULL: c->user, set once upgraded). */
void mcpgw_cluster_release(mcpgw_cluster *cl, mcpgw_conn *c, const char *user);

/* GET /api/connections?scope=cluster: answers c later (admin). */
void mcpgw_cluster_connections(mcpgw_cluster *cl, mcpgw_conn *c, json_t *local);

/* For /readyz: {"redis":"up"|"down","node":...}. */
json_t *mcpgw_cluster_status(const mcpgw_cluster *cl);

#endif
