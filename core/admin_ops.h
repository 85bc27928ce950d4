/*
 * admin_ops.h - the admin API's actions on connections, over every worker:
 * the list of connections (GET /api/connections?detail=1), closing one
 * (DELETE /api/connections/ID) and closing all of a user's
 * (POST /api/users/USER/disconnect).
 *
 * The worker that got the request does its own part at once and asks every
 * other live worker over the bus (mcpgw_bus_send control messages); each
 * does its part on its own loop and answers the same way. The HTTP answer
 * goes out when every worker asked has answered (or, for a close by id,
 * when one found it), and at the latest after MCPGW_ADMIN_WAIT_MS, saying
 * which part is missing. Meanwhile the request's connection is marked
 * api_pending and its further input is ignored. Without other workers
 * (a lone server, or workers = 1) the answer goes out before the call
 * returns.
 *
 * Ownership: a pending operation holds a reference on its HTTP connection
 * and lives in the server's list until answered or until
 * mcpgw_admin_ops_free().
 */
#ifndef MCPGW_ADMIN_OPS_H
#define MCPGW_ADMIN_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct mcpgw_conn mcpgw_conn;
typedef struct mcpgw_server mcpgw_server;

#define MCPGW_ADMIN_WAIT_MS 1000    /* longest wait for the other workers */
#define MCPGW_ADMIN_LIST_DEFAULT 100
#define MCPGW_ADMIN_LIST_MAX 1000

/* The WebSocket close every admin disconnect sends: 1008 and this reason. */
#define MCPGW_ADMIN_CLOSE_REASON "Closed by an administrator"

/* Answers c with base (stolen: the counts of /api/connections) plus "list":
 * up to limit connections of every worker, newest first, "truncated" when
 * there were more. */
void mcpgw_admin_list(mcpgw_conn *c, json_t *base, size_t limit);
/* Closes connection id wherever it is (1008): 200 {"closed":1,...}, or 404. */
void mcpgw_admin_close_conn(mcpgw_conn *c, uint64_t id, const char *admin);
/* Closes every connection of user on every worker (1008):
 * 200 {"user":U,"closed":N,...}. */
void mcpgw_admin_close_user(mcpgw_conn *c, const char *user, const char *admin);

/* A control message from another worker (bus.h), on this worker's loop. */
void mcpgw_admin_bus_message(mcpgw_server *srv, const char *text, size_t len);

/* Drops the pending operations without answering (server teardown). */
void mcpgw_admin_ops_free(mcpgw_server *srv);

#endif
