/*
 * conn_limits.h - connection accounting shared by every worker process:
 * the per-user slots (max_connections_per_user), the open-connection total
 * (max_connections), which worker holds what, and connection ids that are
 * unique across the process tree.
 *
 * One shared anonymous mapping, made before the workers are forked, guarded
 * by a process-shared robust mutex (a worker that dies holding it does not
 * wedge the others). Each (user, worker) pair with open connections has one
 * entry, so a dead worker's slots can be released by the supervisor
 * (mcpgw_limits_release_worker). Entries live in a dense array with a free
 * list, chained from a fixed bucket array: the memory touched grows with the
 * pairs in use, not with the capacity. Only upgrades and closes lock it,
 * never a message.
 *
 * Ownership: mcpgw_limits_new() maps it; mcpgw_limits_free() unmaps it in the
 * calling process. User strings are copied in (at most
 * MCPGW_LIMITS_USER_MAX - 1 bytes; longer ids are refused).
 */
#ifndef MCPGW_CONN_LIMITS_H
#define MCPGW_CONN_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#define MCPGW_LIMITS_USER_MAX 256
#define MCPGW_LIMITS_MAX_WORKERS 64

typedef struct mcpgw_limits mcpgw_limits;

typedef enum {
    MCPGW_LIMIT_OK = 0,
    MCPGW_LIMIT_USER,           /* the user is at max_connections_per_user */
    MCPGW_LIMIT_SERVER,         /* max_connections open, or no entry left */
    MCPGW_LIMIT_ERROR           /* a bad argument (user too long, worker out of range) */
} mcpgw_limit_result;

/* Room for `capacity` (user, worker) pairs (at least max_connections: each
 * open connection needs at most one). NULL if the mapping fails. */
mcpgw_limits *mcpgw_limits_new(size_t capacity);
void mcpgw_limits_free(mcpgw_limits *l);

/* Takes a slot for user on worker when the user holds fewer than
 * per_user_limit and all workers together fewer than max_total. On OK,
 * *count is the user's new count over all workers; on MCPGW_LIMIT_USER, the
 * count it holds. */
mcpgw_limit_result mcpgw_limits_acquire(mcpgw_limits *l, const char *user, int worker,
                                        int per_user_limit, long max_total, int *count);
/* Gives one slot back; -1 when (user, worker) held none (a bug: log it),
 * else the user's remaining count over all workers. */
int mcpgw_limits_release(mcpgw_limits *l, const char *user, int worker);
/* Everything worker held (it died): returns the number of slots freed. */
size_t mcpgw_limits_release_worker(mcpgw_limits *l, int worker);

/* Open connections, all workers; those of one worker. */
long mcpgw_limits_total(mcpgw_limits *l);
long mcpgw_limits_worker_total(mcpgw_limits *l, int worker);
/* Slots the user holds, all workers. */
int mcpgw_limits_user_count(mcpgw_limits *l, const char *user);
/* Slots the user holds on one worker. */
int mcpgw_limits_user_count_on(mcpgw_limits *l, const char *user, int worker);
/* Distinct users holding a slot. */
size_t mcpgw_limits_users(mcpgw_limits *l);
/* Calls fn once per user with its count over all workers, under the lock:
 * fn must not call back into the table. */
void mcpgw_limits_foreach_user(mcpgw_limits *l, void (*fn)(const char *user, int count, void *arg),
                               void *arg);

/* A connection id never handed out before by any worker of this gateway. */
uint64_t mcpgw_limits_next_conn_id(mcpgw_limits *l);

#endif
