/*
 * transport.c - what every transport shares: the output with its queue of
 * shared frames, the loop's end-of-iteration flush list, and freeing (which
 * waits for a flush in progress). See transport.h; the kinds live in
 * transport_plain.c and transport_tls.c.
 */
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

void mcpgw_transport_frames_spill(mcpgw_transport *t)
{
    for (unsigned i = 0; i < t->n_frames; i++) {
        mcpgw_payload_append(t->frames[i], t->out);    /* takes its own reference */
        mcpgw_payload_unref(t->frames[i]);
        t->frames[i] = NULL;
    }
    t->n_frames = 0;
    t->frames_bytes = 0;
}

void mcpgw_transport_close_io(mcpgw_transport *t)
{
    if (t->in)
        evbuffer_free(t->in);
    if (t->out)
        evbuffer_free(t->out);
    t->in = t->out = NULL;
    if (t->fd >= 0)
        evutil_closesocket(t->fd);
    t->fd = -1;
}

static void frames_release(mcpgw_transport *t)
{
    for (unsigned i = 0; i < t->n_frames; i++) {
        mcpgw_payload_unref(t->frames[i]);
        t->frames[i] = NULL;
    }
    t->n_frames = 0;
    t->frames_bytes = 0;
}

struct evbuffer *mcpgw_transport_out(mcpgw_transport *t)
{
    if (t->n_frames)
        mcpgw_transport_frames_spill(t);
    if (t->type->flush)
        mcpgw_transport_flush_enqueue(t);
    return t->out;
}

int mcpgw_transport_queue_frame(mcpgw_transport *t, mcpgw_payload *p)
{
    if (t->type->flush && t->n_frames < MCPGW_TRANSPORT_FRAMES) {
        /* behind whatever the output buffer holds; the flush writes both */
        p->refs++;
        t->frames[t->n_frames++] = p;
        t->frames_bytes += p->len;
        mcpgw_transport_flush_enqueue(t);
        return 0;
    }
    return mcpgw_payload_append(p, mcpgw_transport_out(t));
}

size_t mcpgw_transport_queued(const mcpgw_transport *t)
{
    return evbuffer_get_length(t->out) + t->frames_bytes;
}

void mcpgw_transport_free(mcpgw_transport *t)
{
    if (!t)
        return;
    frames_release(t);
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
    t->flush_next = io->flush_head;
    if (!io->flush_head)
        event_active(io->flush_ev, EV_WRITE, 0);
    io->flush_head = t;
}

/* Activated by the first transport that queues output in an iteration;
 * runs after the callbacks already active in it. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_io *io = arg;
    mcpgw_transport *list = io->flush_head;

    (void)fd;
    (void)what;
    io->flush_head = NULL;          /* output queued from here on starts a new round */
    while (list) {
        mcpgw_transport *t = list;

        list = t->flush_next;
        t->flush_next = NULL;
        t->flush_queued = 0;
        if (!t->dead) {
            t->flushing = 1;
            t->type->flush(t);      /* may call the owner, who may free t */
            t->flushing = 0;
        }
        if (t->dead && !t->flush_queued)
            free(t);
    }
}

int mcpgw_io_init(mcpgw_io *io, struct event_base *base)
{
    memset(io, 0, sizeof(*io));
    io->base = base;
    io->flush_ev = event_new(base, -1, 0, flush_cb, io);
    return io->flush_ev ? 0 : -1;
}

void mcpgw_io_free(mcpgw_io *io)
{
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
}
