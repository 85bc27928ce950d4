/*
 * queue.h - the client's bounded offline queue: serialized messages waiting
 * for a connection, in order, bounded by count and bytes, with the policy
 * "refuse new" or "drop oldest".
 *
 * Ownership: the queue owns its items; mcpgw_cq_pop() and the dropped list
 * of mcpgw_cq_push() hand items to the caller, who frees them with free().
 * `tag` is an opaque pointer the caller attaches (the client uses it for
 * the request a message belongs to); the queue never dereferences it.
 */
#ifndef MCPGW_CLIENT_QUEUE_H
#define MCPGW_CLIENT_QUEUE_H

#include <stddef.h>

typedef struct mcpgw_cq_item {
    struct mcpgw_cq_item *next;
    void *tag;
    size_t len;
    char text[];                /* len bytes plus a NUL */
} mcpgw_cq_item;

typedef struct mcpgw_cqueue {
    mcpgw_cq_item *head, *tail;
    size_t count, bytes;
    size_t max_count, max_bytes;    /* 0 = unbounded */
    int drop_oldest;
} mcpgw_cqueue;

enum {
    MCPGW_CQ_OK = 0,
    MCPGW_CQ_DROPPED = 1,       /* queued; *dropped lists the evicted items (oldest first) */
    MCPGW_CQ_FULL = -1,         /* refused (refuse-new policy) */
    MCPGW_CQ_TOO_BIG = -2,      /* the item alone exceeds max_bytes */
    MCPGW_CQ_NOMEM = -3
};

void mcpgw_cq_init(mcpgw_cqueue *q, size_t max_count, size_t max_bytes, int drop_oldest);
int mcpgw_cq_push(mcpgw_cqueue *q, const char *text, size_t len, void *tag,
                  mcpgw_cq_item **dropped);
/* Puts an item back at the front (it was popped but could not be sent). */
void mcpgw_cq_unpop(mcpgw_cqueue *q, mcpgw_cq_item *it);
mcpgw_cq_item *mcpgw_cq_pop(mcpgw_cqueue *q);
/* Removes and frees the first item with this tag; 1 if one was found. */
int mcpgw_cq_remove_tag(mcpgw_cqueue *q, const void *tag);
/* Frees everything. */
void mcpgw_cq_clear(mcpgw_cqueue *q);

#endif
