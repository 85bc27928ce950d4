/*
 * transport.c - what every transport shares: the output with its queue of
 * frames queued as segments (a shared payload or a pool block referenced,
 * a small frame copied once into the loop's write block), input read into
 * pool blocks, the loop's end-of-iteration flush list, and freeing (which
 * waits for a flush in progress). See transport.h; the kinds live in
 * transport_plain.c and transport_tls.c.
 */
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "payload.h"
#include "transport.h"

void mcpgw_transport_setup(mcpgw_transport *t, const mcpgw_transport_type *type, mcpgw_io *io,
                           evutil_socket_t fd, const mcpgw_transport_cbs *cbs, void *owner)
{
    /* Replies are coalesced per loop iteration already; don't let Nagle
     * hold the last small frame back (bench/: p50 -10 % at low load). */
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->io = io;
    t->fd = fd;
    t->cbs = cbs;
    t->owner = owner;
}

/* ------------------------------------------------------------ buffers */

static struct evbuffer *evb_get(mcpgw_io *io)
{
    struct evbuffer *b = io->n_free_evb ? io->free_evb[--io->n_free_evb] : evbuffer_new();

    if (!b) {
        fputs("mcpgw: out of memory\n", stderr);
        abort();
    }
    return b;
}

static void evb_put(mcpgw_io *io, struct evbuffer *b)
{
    if (io->n_free_evb < MCPGW_IO_EVBUFFERS)
        io->free_evb[io->n_free_evb++] = b;
    else
        evbuffer_free(b);
}

struct evbuffer *mcpgw_transport_in(mcpgw_transport *t)
{
    if (!t->in)
        t->in = evb_get(t->io);
    return t->in;
}

struct evbuffer *mcpgw_transport_out_buf(mcpgw_transport *t)
{
    if (!t->out)
        t->out = evb_get(t->io);
    return t->out;
}

void mcpgw_transport_out_idle(mcpgw_transport *t)
{
    if (t->out && !t->segs && !mcpgw_transport_is_tls(t) && evbuffer_get_length(t->out) == 0) {
        evb_put(t->io, t->out);
        t->out = NULL;
    }
}

/* ------------------------------------------------------------ segments */

int mcpgw_transport_seg_append(mcpgw_seg *s, struct evbuffer *out, size_t from)
{
    if (from < s->hlen) {
        if (evbuffer_add(out, s->hdr + from, s->hlen - from) != 0)
            return -1;
        from = 0;
    } else {
        from -= s->hlen;
    }
    if (from >= s->len)
        return 0;
    if (s->payload)
        return mcpgw_payload_append_from(s->payload, out, from);
    /* A body in a pool block is copied: what waits in the output buffer
     * (behind a partial write, a slow reader) must not pin a 64 KiB block
     * shared with other connections. */
    return evbuffer_add(out, s->body + from, s->len - from);
}

static void seg_release(mcpgw_seg *s)
{
    if (s->payload)
        mcpgw_payload_unref(s->payload);
    else
        mcpgw_block_unref(s->buf);
    s->payload = NULL;
    s->buf = NULL;
}

static mcpgw_segq *segq_get(mcpgw_io *io, unsigned cap)
{
    int k = cap > MCPGW_SEGQ_SMALL;
    mcpgw_segq *q = io->free_segq[k];

    if (q) {
        io->free_segq[k] = q->next_free;
        io->n_free_segq[k]--;
    } else if (!(q = malloc(sizeof(*q) + cap * sizeof(q->s[0])))) {
        return NULL;
    }
    q->n = 0;
    q->cap = cap;
    q->next_free = NULL;
    return q;
}

static void segq_put(mcpgw_io *io, mcpgw_segq *q)
{
    int k = q->cap > MCPGW_SEGQ_SMALL;

    if (io->n_free_segq[k] < (k ? MCPGW_IO_FREE_LARGE : MCPGW_IO_FREE_SMALL)) {
        q->next_free = io->free_segq[k];
        io->free_segq[k] = q;
        io->n_free_segq[k]++;
    } else {
        free(q);
    }
}

void mcpgw_transport_segs_release(mcpgw_transport *t)
{
    mcpgw_segq *q = t->segs;

    if (!q)
        return;
    for (unsigned i = 0; i < q->n; i++)
        seg_release(&q->s[i]);
    q->n = 0;
    segq_put(t->io, q);
    t->segs = NULL;
    t->segs_bytes = 0;
}

void mcpgw_transport_frames_spill(mcpgw_transport *t)
{
    mcpgw_segq *q = t->segs;

    if (!q)
        return;
    mcpgw_transport_out_buf(t);
    for (unsigned i = 0; i < q->n; i++)
        mcpgw_transport_seg_append(&q->s[i], t->out, 0);   /* takes its own reference */
    mcpgw_transport_segs_release(t);
}

static mcpgw_block *io_block(mcpgw_io *io, mcpgw_block **slot, size_t want);

/* A free slot at the end of the queue, or NULL when the frame must go
 * into the output buffer (a full queue, or a transport without a flush). */
static mcpgw_seg *seg_slot(mcpgw_transport *t)
{
    mcpgw_segq *q = t->segs;

    if (!t->type->flush)
        return NULL;
    if (!q) {
        if (!(q = segq_get(t->io, MCPGW_SEGQ_SMALL)))
            return NULL;
        t->segs = q;
    } else if (q->n == q->cap) {
        mcpgw_segq *big;

        if (q->cap == MCPGW_TRANSPORT_SEGS || !(big = segq_get(t->io, MCPGW_TRANSPORT_SEGS)))
            return NULL;
        memcpy(big->s, q->s, q->n * sizeof(q->s[0]));  /* the references move along */
        big->n = q->n;
        q->n = 0;
        segq_put(t->io, q);
        t->segs = q = big;
    }
    return &q->s[q->n];
}

/* Queues the filled slot s (seg_slot's): one more segment. */
static void seg_push(mcpgw_transport *t, mcpgw_seg *s)
{
    t->segs->n++;
    t->segs_bytes += s->hlen + s->len;
    mcpgw_transport_flush_enqueue(t);
}

void mcpgw_transport_close_io(mcpgw_transport *t)
{
    if (t->in)
        evbuffer_free(t->in);       /* its pool blocks' cleanups run now */
    if (t->out)
        evbuffer_free(t->out);
    t->in = t->out = NULL;
    if (t->fd >= 0)
        evutil_closesocket(t->fd);
    t->fd = -1;
}

struct evbuffer *mcpgw_transport_out(mcpgw_transport *t)
{
    if (t->segs)
        mcpgw_transport_frames_spill(t);
    if (t->type->flush)
        mcpgw_transport_flush_enqueue(t);
    return mcpgw_transport_out_buf(t);
}

int mcpgw_transport_queue_frame(mcpgw_transport *t, mcpgw_payload *p)
{
    mcpgw_seg *s = seg_slot(t);

    if (!s)
        return mcpgw_payload_append(p, mcpgw_transport_out(t));
    /* behind whatever the output buffer holds; the flush writes both */
    p->refs++;
    s->payload = p;
    s->buf = NULL;
    s->body = p->bytes;
    s->len = p->len;
    s->hlen = 0;
    seg_push(t, s);
    return 0;
}

int mcpgw_transport_queue_ref(mcpgw_transport *t, const uint8_t *hdr, size_t hlen,
                              const void *body, size_t len, mcpgw_block *b)
{
    mcpgw_seg *s = seg_slot(t), tmp;
    int rc;

    if (hlen > MCPGW_SEG_HEADER)
        return -1;
    if (!s)
        s = &tmp;
    s->payload = NULL;
    s->buf = b;
    s->body = body;
    s->len = len;
    s->hlen = (uint8_t)hlen;
    memcpy(s->hdr, hdr, hlen);
    mcpgw_block_ref(b);
    if (s != &tmp) {
        seg_push(t, s);
        return 0;
    }
    rc = mcpgw_transport_seg_append(s, mcpgw_transport_out(t), 0);
    seg_release(s);
    return rc;
}

int mcpgw_transport_queue_copy(mcpgw_transport *t, const uint8_t *hdr, size_t hlen,
                               const void *body, size_t len)
{
    struct evbuffer *out;
    mcpgw_block *w;

    if (t->type->flush && len <= MCPGW_BUF_SIZE / 4 && hlen <= MCPGW_SEG_HEADER &&
        (!t->segs || t->segs->n < MCPGW_TRANSPORT_SEGS) &&
        (w = io_block(t->io, &t->io->wbuf, len)) != NULL) {
        uint8_t *p = w->data + w->used;

        if (len)
            memcpy(p, body, len);
        w->used += len;
        return mcpgw_transport_queue_ref(t, hdr, hlen, p, len, w);
    }
    /* header and body land in the same chain */
    out = mcpgw_transport_out(t);
    if (evbuffer_expand(out, hlen + len) != 0 || evbuffer_add(out, hdr, hlen) != 0)
        return -1;
    if (len && evbuffer_add(out, body, len) != 0)
        return -1;
    return 0;
}

size_t mcpgw_transport_queued(const mcpgw_transport *t)
{
    return (t->out ? evbuffer_get_length(t->out) : 0) + t->segs_bytes;
}

/* ------------------------------------------------------------ input */

/* The loop's block, or a fresh one when nothing else references it, can
 * take `want` more bytes; else a new one. */
static mcpgw_block *io_block(mcpgw_io *io, mcpgw_block **slot, size_t want)
{
    mcpgw_block *b = *slot;

    if (b && b->refs == 1)
        b->used = 0;                /* everything handed out of it has gone */
    if (!b || MCPGW_BUF_SIZE - b->used < want) {
        mcpgw_block *n = mcpgw_block_get(&io->pool);

        if (!n)
            return NULL;
        mcpgw_block_unref(b);
        *slot = b = n;
    }
    return b;
}

mcpgw_block *mcpgw_io_read_block(mcpgw_io *io, size_t want)
{
    return io_block(io, &io->rbuf, want);
}

int mcpgw_transport_in_add(mcpgw_transport *t, mcpgw_block *b, size_t len)
{
    mcpgw_block_ref(b);
    if (evbuffer_add_reference(mcpgw_transport_in(t), b->data + b->used, len, mcpgw_block_release_cb, b) != 0) {
        mcpgw_block_unref(b);
        return -1;
    }
    b->used += len;
    return 0;
}

void mcpgw_transport_settle_in(mcpgw_transport *t)
{
    uint8_t tmp[MCPGW_SETTLE_MAX];
    size_t len;

    if (!t->in)
        return;
    len = evbuffer_get_length(t->in);
    if (len == 0) {
        evb_put(t->io, t->in);      /* nothing waits: an idle connection holds none */
        t->in = NULL;
        return;
    }
    if (len > sizeof(tmp))
        return;
    evbuffer_remove(t->in, tmp, len);       /* the block's reference goes */
    evbuffer_add(t->in, tmp, len);
}

void mcpgw_transport_free(mcpgw_transport *t)
{
    if (!t)
        return;
    mcpgw_transport_segs_release(t);
    t->type->release(t);    /* events, socket and buffers go now */
    t->cbs = NULL;
    t->in = t->out = NULL;
    if (t->flush_queued || t->flushing)
        t->dead = 1;        /* the flush list frees the struct when it gets there */
    else
        free(t);
}

/* ------------------------------------------------------------ flush list */

void mcpgw_transport_flush_enqueue(mcpgw_transport *t)
{
    mcpgw_io *io = t->io;

    if (t->flush_queued || t->dead)
        return;
    t->flush_queued = 1;
    t->flush_next = NULL;
    if (io->flush_tail) {
        io->flush_tail->flush_next = t;
    } else {
        io->flush_head = t;         /* (the slice timer is armed only while it is not) */
        event_active(io->flush_ev, EV_WRITE, 0);
    }
    io->flush_tail = t;
}

/* What a transport written out of turn tells: nothing now (its owner may
 * be in the middle of reading this very connection); a close waits for
 * the list (flush_cb), which tells it in place of a write. */
static void deferred_nothing(void *arg)
{
    (void)arg;
}

static void deferred_closed(void *arg, int eof)
{
    mcpgw_transport *t = arg;

    t->close_pending = 1;
    t->close_eof = eof != 0;
}

static const mcpgw_transport_cbs deferred_cbs = { deferred_nothing, deferred_nothing,
                                                  deferred_closed };

void mcpgw_transport_flush_now(mcpgw_transport *t)
{
    const mcpgw_transport_cbs *cbs = t->cbs;
    void *owner = t->owner;

    if (!t->flush_queued || t->flushing || t->dead || t->close_pending || !cbs)
        return;
    t->cbs = &deferred_cbs;
    t->owner = t;
    t->type->flush(t);
    t->cbs = cbs;
    t->owner = owner;
}

/* Writes the flush list, in order, MCPGW_FLUSH_SLICE transports at a time.
 * Activated by the first transport that queues output when the list is
 * empty: runs after the callbacks already active in this iteration. When
 * more are left (a broadcast's fan-out to thousands), the rest goes after
 * the loop has looked for input once more (a timer due at once: epoll
 * without waiting, then the callbacks it found, then this). A client's
 * request is not kept waiting behind the whole fan-out, and a broadcast
 * read meanwhile joins the output of every connection not written yet:
 * both go in one write. A transport queueing output again after it was
 * written goes to the end of the list. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval now = { 0, 0 };
    mcpgw_io *io = arg;
    unsigned n = 0;

    (void)fd;
    (void)what;
    while (io->flush_head && n++ < MCPGW_FLUSH_SLICE) {
        mcpgw_transport *t = io->flush_head;

        io->flush_head = t->flush_next;
        if (!io->flush_head)
            io->flush_tail = NULL;
        t->flush_next = NULL;
        t->flush_queued = 0;
        if (!t->dead) {
            t->flushing = 1;
            if (t->close_pending) {     /* written out of turn, and that failed */
                t->close_pending = 0;
                if (t->cbs)
                    t->cbs->closed(t->owner, t->close_eof);
            } else {
                t->type->flush(t);  /* may call the owner, who may free t; may queue t again */
            }
            t->flushing = 0;
        }
        if (t->dead && !t->flush_queued)
            free(t);
    }
    if (io->flush_head)
        evtimer_add(io->flush_ev, &now);
}

int mcpgw_io_init(mcpgw_io *io, struct event_base *base)
{
    memset(io, 0, sizeof(*io));
    io->base = base;
    mcpgw_bufpool_init(&io->pool);
    io->flush_ev = event_new(base, -1, 0, flush_cb, io);
    return io->flush_ev ? 0 : -1;
}

void mcpgw_io_free(mcpgw_io *io)
{
    io->flush_tail = NULL;
    while (io->flush_head) {
        mcpgw_transport *t = io->flush_head;

        io->flush_head = t->flush_next;
        t->flush_next = NULL;
        t->flush_queued = 0;
        if (t->dead)
            free(t);
    }
    if (io->flush_ev)
        event_free(io->flush_ev);
    io->flush_ev = NULL;
    mcpgw_block_unref(io->wbuf);
    mcpgw_block_unref(io->rbuf);
    io->wbuf = io->rbuf = NULL;
    for (int k = 0; k < 2; k++) {
        while (io->free_segq[k]) {
            mcpgw_segq *q = io->free_segq[k];

            io->free_segq[k] = q->next_free;
            free(q);
        }
        io->n_free_segq[k] = 0;
    }
    while (io->n_free_evb)
        evbuffer_free(io->free_evb[--io->n_free_evb]);
    mcpgw_bufpool_close(&io->pool);
}
