/*
 * transport.h - bytes in and out of one client socket, plain or TLS, behind
 * one small function table (as Redis's connection types).
 *
 * A transport owns its socket and its two buffers: the input, which the
 * owner reads and drains, and the output, which the owner appends to through
 * mcpgw_transport_out(). Nothing above this layer touches a socket or a
 * bufferevent, and nothing here knows about HTTP, WebSocket or JSON.
 *
 * Both kinds are driven by our own read and write events: output queued
 * during one loop iteration is written at its end (the loop's flush list,
 * mcpgw_io): one write on a plain socket, one SSL_write per 16 KiB record
 * on a TLS one; the write event is armed only when the socket (or OpenSSL)
 * could not take it all. Frames can wait behind the output buffer as
 * segments, a header held inline and a body referenced where it lies (a
 * shared broadcast frame, payload.h, or a block of the loop's buffer pool,
 * bufpool.h): on a plain socket they go out with one writev, without an
 * evbuffer chain or a copy per frame.
 *
 * Input of a plain transport lands in the loop's read block (referenced by
 * the input evbuffer, no staging copy); mcpgw_transport_in_buf() tells
 * whether some bytes of the input lie there, so that the owner may use
 * them in place, and mcpgw_transport_settle_in() lets a small remainder go
 * of the block, so that a connection waiting for the rest of a frame does
 * not pin it.
 *
 * The owner learns of events through mcpgw_transport_cbs; each callback is
 * the last thing the transport does in that turn, so the owner may free the
 * transport from inside it.
 *
 * Ownership: mcpgw_transport_free() closes the socket and releases the
 * buffers and queued frames (the struct itself may outlive the call while a
 * flush in progress still holds it; the owner must not use it again).
 */
#ifndef MCPGW_TRANSPORT_H
#define MCPGW_TRANSPORT_H

#include <stddef.h>
#include <event2/buffer.h>
#include <event2/util.h>

#include "bufpool.h"

struct event_base;
struct event;
struct evbuffer;
struct ssl_st;
typedef struct mcpgw_payload mcpgw_payload;
typedef struct mcpgw_block mcpgw_block;
typedef struct mcpgw_transport mcpgw_transport;

typedef struct mcpgw_transport_cbs {
    void (*readable)(void *owner);          /* new bytes are in the input */
    void (*written)(void *owner);           /* everything queued has left */
    void (*closed)(void *owner, int eof);   /* EOF (1) or an error (0) */
} mcpgw_transport_cbs;

#define MCPGW_SEG_HEADER 14         /* the longest inline header (a WebSocket frame's) */
#define MCPGW_TRANSPORT_SEGS 32     /* segments queued behind the output at most */
#define MCPGW_SEGQ_SMALL 2          /* a first queue's room (a broadcast needs one) */
#define MCPGW_IO_FREE_SMALL 4096    /* free small segment queues a loop keeps (~450 KiB) */
#define MCPGW_IO_FREE_LARGE 64      /* free large ones (~100 KiB) */
#define MCPGW_IO_EVBUFFERS 64       /* free evbuffers a loop keeps */
#ifndef MCPGW_FLUSH_SLICE           /* (-D: for measuring other sizes) */
#define MCPGW_FLUSH_SLICE 64        /* transports the flush list writes before the loop
                                       looks for input again (a broadcast's fan-out):
                                       about 1 ms of writes */
#endif

/* One frame queued behind the output buffer: hlen header bytes held here,
 * then len body bytes referenced where they lie, owned by payload or buf
 * (one reference, dropped when written or moved into the output). */
typedef struct mcpgw_seg {
    const uint8_t *body;
    size_t len;
    mcpgw_payload *payload;
    mcpgw_block *buf;
    uint8_t hlen;
    uint8_t hdr[MCPGW_SEG_HEADER];
} mcpgw_seg;

/* A transport's queue of segments, taken from the loop's free lists when
 * the first one is queued (room for MCPGW_SEGQ_SMALL, then for
 * MCPGW_TRANSPORT_SEGS) and given back once they have left. */
typedef struct mcpgw_segq {
    struct mcpgw_segq *next_free;
    unsigned n, cap;
    mcpgw_seg s[];
} mcpgw_segq;

/* What one event loop keeps for its transports: the list of plain
 * transports with output to write at the end of this iteration, the
 * buffer pool with the block being filled with copied frames, and the free
 * segment queues. */
typedef struct mcpgw_io {
    struct event_base *base;
    struct event *flush_ev;
    mcpgw_transport *flush_head, *flush_tail; /* in order: the first queued is written first */
    mcpgw_bufpool pool;
    mcpgw_block *rbuf;                /* plain transports read into this */
    mcpgw_block *wbuf;                /* copies of small outgoing frames go here */
    mcpgw_segq *free_segq[2];       /* [0]: small queues, [1]: large */
    unsigned n_free_segq[2];
    struct evbuffer *free_evb[MCPGW_IO_EVBUFFERS]; /* idle transports' buffers, for reuse */
    unsigned n_free_evb;
} mcpgw_io;

int mcpgw_io_init(mcpgw_io *io, struct event_base *base);
/* Drops the flush list (at exit) and frees what is left on it. */
void mcpgw_io_free(mcpgw_io *io);

/* The function table of one kind of transport. */
typedef struct mcpgw_transport_type {
    const char *name;                               /* "plain", "tls" */
    void (*set_reading)(mcpgw_transport *t, int on);
    void (*set_read_limit)(mcpgw_transport *t, size_t limit);
    /* Writes what is queued; run by the loop's flush list at the end of
     * the iteration that queued it. */
    void (*flush)(mcpgw_transport *t);
    int (*shutdown_write)(mcpgw_transport *t);      /* 0, or -1: unsupported */
    void (*release)(mcpgw_transport *t);            /* socket and buffers */
} mcpgw_transport_type;

struct mcpgw_transport {
    const mcpgw_transport_type *type;
    mcpgw_io *io;
    const mcpgw_transport_cbs *cbs;
    void *owner;
    evutil_socket_t fd;
    /* A TLS transport whose client spoke plain text (its first byte was an
     * ASCII letter, an HTTP method, not a TLS record): from then on its
     * bytes pass unencrypted both ways, so that the owner can answer a
     * plain-text refusal and close. The owner must send nothing else. */
    unsigned not_tls : 1;
    unsigned flush_queued : 1;          /* on the loop's flush list */
    unsigned flushing : 1;              /* the flush list is writing it now */
    unsigned dead : 1;                  /* freed by its owner; the flush frees it */
    unsigned close_pending : 1;         /* written out of turn (flush_now), it closed: the
                                           flush list tells the owner */
    unsigned close_eof : 1;
    /* Owned. A plain transport holds them only while they hold bytes: an
     * idle one has none (mcpgw_transport_in/_out take one from the loop). */
    struct evbuffer *in;
    struct evbuffer *out;
    size_t read_limit;                  /* the input never holds more; 0: none */

    /* Frames queued behind the output buffer (NULL while none is). */
    mcpgw_segq *segs;
    size_t segs_bytes;

    mcpgw_transport *flush_next;        /* the loop's flush list */
};

/* A plain or a TLS transport on an accepted socket (ssl is owned from the
 * call on, even on failure). NULL on failure, with fd closed. Reading
 * starts at once. */
mcpgw_transport *mcpgw_transport_plain_new(mcpgw_io *io, evutil_socket_t fd,
                                           const mcpgw_transport_cbs *cbs, void *owner);
mcpgw_transport *mcpgw_transport_tls_new(mcpgw_io *io, evutil_socket_t fd, struct ssl_st *ssl,
                                         const mcpgw_transport_cbs *cbs, void *owner);
void mcpgw_transport_free(mcpgw_transport *t);

/* The input buffer (taken from the loop when the transport has none).
 * Out of memory aborts, as for any allocation of a few bytes. */
struct evbuffer *mcpgw_transport_in(mcpgw_transport *t);
static inline size_t mcpgw_transport_in_len(const mcpgw_transport *t)
{
    return t->in ? evbuffer_get_length(t->in) : 0;
}
/* The output buffer, for appending: queued frames move into it first, so
 * that order holds. The transport writes what is appended. */
struct evbuffer *mcpgw_transport_out(mcpgw_transport *t);
/* Queues a shared frame (takes its own reference). 0 or -1. */
int mcpgw_transport_queue_frame(mcpgw_transport *t, mcpgw_payload *p);
/* Queues a frame of header hdr[0..hlen) (hlen <= MCPGW_SEG_HEADER) and
 * body[0..len), which lies in pool block b (takes its own reference): the
 * body is written from where it is. 0 or -1. */
int mcpgw_transport_queue_ref(mcpgw_transport *t, const uint8_t *hdr, size_t hlen,
                              const void *body, size_t len, mcpgw_block *b);
/* Queues a frame of header and body copied once: a small body into the
 * loop's write block, a large one into the output buffer. 0 or -1. */
int mcpgw_transport_queue_copy(mcpgw_transport *t, const uint8_t *hdr, size_t hlen,
                               const void *body, size_t len);
/* Everything not yet written: the output buffer and the frames behind it. */
size_t mcpgw_transport_queued(const mcpgw_transport *t);
/* The pool block that holds bytes [p, p + len) of the input (p from
 * evbuffer_pullup of the input), or NULL when they are not all in the
 * loop's read block. */
static inline mcpgw_block *mcpgw_transport_in_buf(const mcpgw_transport *t, const void *p, size_t len)
{
    return mcpgw_block_holds(t->io->rbuf, p, len) ? t->io->rbuf : NULL;
}
/* After the owner has read what it could: a remainder of the input of at
 * most MCPGW_SETTLE_MAX bytes is copied out of the loop's read block, and
 * an empty input buffer goes back to the loop. */
#define MCPGW_SETTLE_MAX 16384
void mcpgw_transport_settle_in(mcpgw_transport *t);

static inline void mcpgw_transport_set_reading(mcpgw_transport *t, int on)
{
    t->type->set_reading(t, on);
}

static inline void mcpgw_transport_set_read_limit(mcpgw_transport *t, size_t limit)
{
    t->type->set_read_limit(t, limit);
}

/* Half-closes a plain socket (no more output; input still readable).
 * 0, or -1 where the transport cannot (TLS). */
static inline int mcpgw_transport_shutdown_write(mcpgw_transport *t)
{
    return t->type->shutdown_write(t);
}

extern const mcpgw_transport_type mcpgw_transport_plain, mcpgw_transport_tls;

static inline int mcpgw_transport_is_tls(const mcpgw_transport *t)
{
    return t->type == &mcpgw_transport_tls;
}

/* For the transport implementations (transport.c): common set-up, moving
 * the queued frames into the output, the loop's flush list, and input read
 * into a pool block. */
void mcpgw_transport_setup(mcpgw_transport *t, const mcpgw_transport_type *type, mcpgw_io *io,
                           evutil_socket_t fd, const mcpgw_transport_cbs *cbs, void *owner);
void mcpgw_transport_frames_spill(mcpgw_transport *t);
/* Appends segment s from byte `from` on (header included) to out: a
 * shared payload by reference, a body in a pool block copied (output that
 * waits must not pin a block). 0 or -1. Its own reference stays with s. */
int mcpgw_transport_seg_append(mcpgw_seg *s, struct evbuffer *out, size_t from);
/* Drops the segments' references and gives the queue back. */
void mcpgw_transport_segs_release(mcpgw_transport *t);
/* Where the next read goes: the loop's read block, with at least want
 * bytes of room from b->data + b->used on (a fresh block when the current
 * one has less). NULL when out of memory. */
mcpgw_block *mcpgw_io_read_block(mcpgw_io *io, size_t want);
/* Bytes b->data[b->used .. b->used + len) join the input (b keeps them). 0 or -1. */
int mcpgw_transport_in_add(mcpgw_transport *t, mcpgw_block *b, size_t len);
/* The output buffer without moving frames into it. */
struct evbuffer *mcpgw_transport_out_buf(mcpgw_transport *t);
/* A plain transport whose output has all left gives its buffer back. */
void mcpgw_transport_out_idle(mcpgw_transport *t);
/* Frees both buffers and closes the socket (the end of each release). */
void mcpgw_transport_close_io(mcpgw_transport *t);
void mcpgw_transport_flush_enqueue(mcpgw_transport *t);
/* Writes t's output at once when it waits on the flush list (a no-op
 * otherwise): before a connection is judged by how much it holds, its
 * socket gets the chance the list has not given it yet. t stays on the
 * list, and its owner is not called now: if the write failed, the list
 * tells it (closed) when it gets to t. */
void mcpgw_transport_flush_now(mcpgw_transport *t);

#endif
