/*
 * dispatch.h - the handler table and the life of one message.
 *
 * A message (a JSON object with a string "type") becomes a request; the
 * table routes it to the handler registered for its type. A request ends
 * exactly once, with a reply or a failure, synchronously or later (an
 * asynchronous handler). A top-level request's end sends the reply (or the
 * protocol's error message) to its connection; a sub-request's end (batch)
 * calls its parent's callback instead.
 *
 * Ownership: the table copies type names; requests hold a reference on their
 * connection until they end, so a handler finishing after the client left
 * is harmless (its reply is dropped).
 */
#ifndef MCPGW_DISPATCH_H
#define MCPGW_DISPATCH_H

#include <stddef.h>
#include <jansson.h>

#include "mcpgw/plugin.h"
#include "metrics.h"

typedef struct mcpgw_server mcpgw_server;

typedef struct mcpgw_handler_entry {
    char *type;
    mcpgw_handler_fn fn;
    void *data;
    mcpgw_raw_handler_fn raw_fn;    /* its raw twin (ABI 1.4), or NULL */
    void *raw_data;
    mcpgw_plugin_ctx *ctx;          /* the registering section */
    mcpgw_histogram *hist;          /* how long the handler took (until it returned):
                                       in the worker's stats, or own_hist */
    mcpgw_histogram own_hist;
    struct mcpgw_handler_entry *next;
} mcpgw_handler_entry;

typedef struct mcpgw_handler_table {
    mcpgw_handler_entry **buckets;
    size_t n_buckets;
    size_t n_entries;
    size_t n_raw;                   /* entries with a raw twin: while 0, no message
                                       is scanned for a view */
} mcpgw_handler_table;

struct mcpgw_request {
    mcpgw_conn *conn;               /* holds a reference */
    mcpgw_request *parent;          /* NULL for a top-level message */
    mcpgw_dispatch_cb cb;           /* sub-requests: where the result goes */
    void *cb_data;
    json_t *id;                     /* the message's "id" (reference) or NULL */
    mcpgw_view *view;               /* while a raw handler runs: the message (its
                                       "id" is read from here when needed) */
    int on_stack;                   /* a raw handler's request: in dispatch's frame,
                                       moved to the heap if the handler declines */
    size_t len;                     /* its size as received; 0 for a sub-message */
};

int mcpgw_handler_table_init(mcpgw_handler_table *t);
void mcpgw_handler_table_free(mcpgw_handler_table *t);
/* Adds type -> fn. Returns 0, or -1 if type is taken (or out of memory). */
int mcpgw_handler_table_add(mcpgw_handler_table *t, const char *type,
                            mcpgw_handler_fn fn, void *data, mcpgw_plugin_ctx *ctx);
/* Gives ctx's handler of type a raw twin. 0, or -1 (no such handler of
 * ctx, or it has one). */
int mcpgw_handler_table_set_raw(mcpgw_handler_table *t, const char *type,
                                const mcpgw_plugin_ctx *ctx, mcpgw_raw_handler_fn fn,
                                void *data);
/* Removes every type registered by ctx (a reload dropped its section). */
size_t mcpgw_handler_table_remove_ctx(mcpgw_handler_table *t, const mcpgw_plugin_ctx *ctx);
const mcpgw_handler_entry *mcpgw_handler_table_find(const mcpgw_handler_table *t,
                                                    const char *type);

/* Handles one complete message from a connection: parses it as JSON and
 * runs it through the table, answering errors per the protocol. A message
 * whose handler has a raw twin is served from a view instead of a tree
 * when one validating scan finds it an object with a string type. */
void mcpgw_dispatch_raw(mcpgw_conn *conn, const uint8_t *data, size_t len);

/* host->dispatch: runs msg as a sub-request of parent. 0 or -1. */
int mcpgw_dispatch_sub(mcpgw_request *parent, json_t *msg, mcpgw_dispatch_cb cb,
                       void *cb_data);
/* host->complete / host->fail. */
void mcpgw_request_complete(mcpgw_request *req, json_t *reply);
void mcpgw_request_fail(mcpgw_request *req, const char *reason);

#endif
