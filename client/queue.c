/*
 * queue.c - the bounded offline queue (a singly linked FIFO with counters).
 */
#include <stdlib.h>
#include <string.h>

#include "queue.h"

void mcpgw_cq_init(mcpgw_cqueue *q, size_t max_count, size_t max_bytes, int drop_oldest)
{
    memset(q, 0, sizeof(*q));
    q->max_count = max_count;
    q->max_bytes = max_bytes;
    q->drop_oldest = drop_oldest;
}

static int fits(const mcpgw_cqueue *q, size_t len)
{
    if (q->max_count && q->count + 1 > q->max_count)
        return 0;
    if (q->max_bytes && q->bytes + len > q->max_bytes)
        return 0;
    return 1;
}

mcpgw_cq_item *mcpgw_cq_pop(mcpgw_cqueue *q)
{
    mcpgw_cq_item *it = q->head;

    if (!it)
        return NULL;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    q->bytes -= it->len;
    it->next = NULL;
    return it;
}

void mcpgw_cq_unpop(mcpgw_cqueue *q, mcpgw_cq_item *it)
{
    it->next = q->head;
    q->head = it;
    if (!q->tail)
        q->tail = it;
    q->count++;
    q->bytes += it->len;
}

int mcpgw_cq_push(mcpgw_cqueue *q, const char *text, size_t len, void *tag,
                  mcpgw_cq_item **dropped)
{
    mcpgw_cq_item *it, *dl = NULL, **dtail = &dl;
    int rc = MCPGW_CQ_OK;

    *dropped = NULL;
    if (q->max_bytes && len > q->max_bytes)
        return MCPGW_CQ_TOO_BIG;
    if (!fits(q, len)) {
        if (!q->drop_oldest)
            return MCPGW_CQ_FULL;
    }
    it = malloc(sizeof(*it) + len + 1);
    if (!it)
        return MCPGW_CQ_NOMEM;
    while (!fits(q, len)) {
        mcpgw_cq_item *old = mcpgw_cq_pop(q);
        *dtail = old;
        dtail = &old->next;
        rc = MCPGW_CQ_DROPPED;
    }
    it->next = NULL;
    it->tag = tag;
    it->len = len;
    memcpy(it->text, text, len);
    it->text[len] = '\0';
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->count++;
    q->bytes += len;
    *dropped = dl;
    return rc;
}

int mcpgw_cq_remove_tag(mcpgw_cqueue *q, const void *tag)
{
    mcpgw_cq_item **pp, *prev = NULL;

    for (pp = &q->head; *pp; prev = *pp, pp = &(*pp)->next) {
        mcpgw_cq_item *it = *pp;
        if (it->tag != tag)
            continue;
        *pp = it->next;
        if (q->tail == it)
            q->tail = prev;
        q->count--;
        q->bytes -= it->len;
        free(it);
        return 1;
    }
    return 0;
}

void mcpgw_cq_clear(mcpgw_cqueue *q)
{
    mcpgw_cq_item *it;

    while ((it = mcpgw_cq_pop(q)) != NULL)
        free(it);
}
