/*
 * bufpool.h - a worker's pool of fixed-size I/O blocks, reference counted.
 *
 * The plain transports of a loop read into its current read block, one
 * after the other (no staging copy, no malloc per read, a compact working
 * set), a complete frame is unmasked where it lies and a reply that echoes
 * it references the same block; small frames the gateway composes itself
 * (pongs, close frames, JSON replies) are copied once into the loop's
 * current write block. Once nothing but the loop references its block,
 * the block is filled again from its start. A block goes back to the pool's free list
 * when its last reference goes; the list keeps at most MCPGW_BUFPOOL_KEEP
 * blocks, so a burst costs no malloc/free churn (and no heap trimming)
 * and an idle worker holds at most that much.
 *
 * Ownership: mcpgw_block_get() returns a block with one reference; each
 * holder drops its own with mcpgw_block_unref(). One loop thread per pool.
 */
#ifndef MCPGW_BUFPOOL_H
#define MCPGW_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#define MCPGW_BUF_SIZE 65536        /* the bytes a block holds */
#define MCPGW_BUFPOOL_KEEP 32       /* free blocks kept (2 MiB) */

typedef struct mcpgw_bufpool mcpgw_bufpool;

typedef struct mcpgw_block {
    mcpgw_bufpool *pool;
    unsigned refs;
    struct mcpgw_block *next;         /* the free list */
    size_t used;                    /* bytes handed out so far (the loop's read or write block) */
    uint8_t data[MCPGW_BUF_SIZE];
} mcpgw_block;

struct mcpgw_bufpool {
    mcpgw_block *free;
    unsigned n_free;
    size_t n_live;                  /* blocks out of the free list */
    int closed;                     /* the loop is gone: blocks are freed as released */
};

void mcpgw_bufpool_init(mcpgw_bufpool *pool);
/* Frees the free list; blocks still referenced are freed when released. */
void mcpgw_bufpool_close(mcpgw_bufpool *pool);

/* A block with one reference, or NULL (out of memory). */
mcpgw_block *mcpgw_block_get(mcpgw_bufpool *pool);
void mcpgw_block_unref(mcpgw_block *b);

static inline void mcpgw_block_ref(mcpgw_block *b)
{
    b->refs++;
}

/* Does [p, p + len) lie in block b? */
static inline int mcpgw_block_holds(const mcpgw_block *b, const void *p, size_t len)
{
    const uint8_t *q = p;

    return b && q >= b->data && len <= MCPGW_BUF_SIZE && q + len <= b->data + MCPGW_BUF_SIZE;
}

/* An evbuffer_add_reference() cleanup: drops the reference in arg. */
void mcpgw_block_release_cb(const void *data, size_t len, void *arg);

#endif
