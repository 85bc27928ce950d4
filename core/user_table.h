/*
 * user_table.h - per-user connection counter: user id -> number of slots
 * (open connections) held, enforcing a per-user limit.
 *
 * Ownership: the table owns its keys. acquire() copies the user string the
 * first time a user takes a slot, and the copy is freed when that user's
 * count returns to 0 (or with the table). Callers keep ownership of the
 * strings they pass in and may free them right after the call.
 *
 * Not thread-safe: one table per event loop. Hashing is FNV-1a (unseeded);
 * keys are user ids from verified tokens, so they are not attacker-chosen.
 */
#ifndef MCPGW_USER_TABLE_H
#define MCPGW_USER_TABLE_H

#include <stddef.h>

typedef struct mcpgw_user_table mcpgw_user_table;

/* Returns an empty table, or NULL on allocation failure. */
mcpgw_user_table *mcpgw_user_table_new(void);

/* Frees the table and every key it holds. NULL is a no-op. */
void mcpgw_user_table_free(mcpgw_user_table *t);

/* Takes a slot for user if the count is below limit: returns the new count
 * (>= 1), or 0 if the user is at the limit (count unchanged; a limit <= 0
 * refuses everyone), -1 on allocation failure (or a NULL user). */
int mcpgw_user_table_acquire(mcpgw_user_table *t, const char *user, int limit);

/* Releases one slot; the entry is removed when its count reaches 0. Returns
 * the remaining count, or -1 if the user had no slot (a bug: caller logs it). */
int mcpgw_user_table_release(mcpgw_user_table *t, const char *user);

/* Slots held by user (0 if none). */
int mcpgw_user_table_count(const mcpgw_user_table *t, const char *user);

/* Number of users holding at least one slot. */
size_t mcpgw_user_table_users(const mcpgw_user_table *t);

/* Calls fn for each user with a slot, in no particular order. fn must not
 * acquire or release on this table; user is valid only during the call. */
void mcpgw_user_table_foreach(const mcpgw_user_table *t,
                              void (*fn)(const char *user, int count, void *arg),
                              void *arg);

#endif
