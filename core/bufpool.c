/*
 * bufpool.c - a worker's pool of fixed-size I/O blocks (see bufpool.h).
 */
#include <stdlib.h>

#include "bufpool.h"

void mcpgw_bufpool_init(mcpgw_bufpool *pool)
{
    pool->free = NULL;
    pool->n_free = 0;
    pool->n_live = 0;
    pool->closed = 0;
}

void mcpgw_bufpool_close(mcpgw_bufpool *pool)
{
    while (pool->free) {
        mcpgw_block *b = pool->free;

        pool->free = b->next;
        free(b);
    }
    pool->n_free = 0;
    pool->closed = 1;
}

mcpgw_block *mcpgw_block_get(mcpgw_bufpool *pool)
{
    mcpgw_block *b = pool->free;

    if (b) {
        pool->free = b->next;
        pool->n_free--;
    } else if (!(b = malloc(sizeof(*b)))) {
        return NULL;
    }
    b->pool = pool;
    b->refs = 1;
    b->next = NULL;
    b->used = 0;
    pool->n_live++;
    return b;
}

void mcpgw_block_unref(mcpgw_block *b)
{
    mcpgw_bufpool *pool;

    if (!b || --b->refs)
        return;
    pool = b->pool;
    pool->n_live--;
    if (pool->closed || pool->n_free >= MCPGW_BUFPOOL_KEEP) {
        free(b);
        return;
    }
    b->next = pool->free;
    pool->free = b;
    pool->n_free++;
}

void mcpgw_block_release_cb(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    mcpgw_block_unref(arg);
}
