/*
 * transport_plain.c - a plain TCP socket with its own read and write events
 * and its own two evbuffers (see transport.h).
 *
 * Reading: one recv per readable event, of at most what the read limit
 * leaves room for, without libevent's FIONREAD ioctl before every read,
 * straight into the loop's read block (bufpool.h), which the input then
 * references (no staging copy, no malloc). A small remainder of the
 * previous read (a frame the read cut) moves in front of it first, so that
 * a frame is one piece as often as possible.
 * Writing: at the end of the iteration that queued output (the loop's flush
 * list), one writev of the queued frames (headers and bodies where they
 * lie) when they are all there is, else one evbuffer_write; the write event
 * is armed only after a partial write and disarmed once the output is
 * empty.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "payload.h"
#include "transport.h"

/* A remainder of the input up to this size moves to where the next read
 * goes, in front of it. */
#define PLAIN_CARRY_MAX 4096
/* At most this much is read from a socket at once: with the carry above,
 * a whole pool block (MCPGW_BUF_SIZE). 16 KiB cut a client's window of
 * 16 in-flight 1 KiB frames in two, so each such burst took two recv and
 * two writev calls and its last reply waited a loop iteration: echo 1 KiB
 * 100 x 16 made 0.107 recv per message, 0.065 now, as the raw TCP echo. */
#define PLAIN_READ_MAX (MCPGW_BUF_SIZE - PLAIN_CARRY_MAX)

typedef struct plain_transport {
    mcpgw_transport base;           /* first: a plain_transport is a transport */
    struct event *write_ev;         /* made on the first partial write */
    unsigned reading : 1;           /* the read event is wanted */
    unsigned write_armed : 1;       /* a partial write left output to the write event */
    unsigned read_assigned : 1;     /* read_ev is set up (until released) */
    struct event read_ev;           /* held here: no malloc, no pointer to it */
} plain_transport;

static void plain_write_cb(evutil_socket_t fd, short what, void *arg);

static size_t out_len(const mcpgw_transport *t)
{
    return t->out ? evbuffer_get_length(t->out) : 0;
}

/* A partial write: the write event (made on the first one) takes over. */
static int arm_write(plain_transport *p)
{
    mcpgw_transport *t = &p->base;

    if (!p->write_ev &&
        !(p->write_ev = event_new(t->io->base, t->fd, EV_WRITE | EV_PERSIST, plain_write_cb, t)))
        return -1;
    p->write_armed = 1;
    return event_add(p->write_ev, NULL);
}

static void plain_closed(mcpgw_transport *t, int eof)
{
    plain_transport *p = (plain_transport *)t;

    event_del(&p->read_ev);
    if (p->write_ev)
        event_del(p->write_ev);
    p->reading = p->write_armed = 0;
    if (t->cbs)
        t->cbs->closed(t->owner, eof);
}

static void plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_transport *t = arg;
    size_t len = mcpgw_transport_in_len(t), carry = 0, room = PLAIN_READ_MAX;
    mcpgw_block *b;
    ssize_t n;

    (void)what;
    if (t->read_limit) {
        if (len >= t->read_limit) {
            /* nothing consumes until more is read: cannot happen while the
             * limit is above the largest acceptable frame or head */
            event_del(&((plain_transport *)t)->read_ev);
            return;
        }
        if (t->read_limit - len < room)
            room = t->read_limit - len;
    }
    if (len && len <= PLAIN_CARRY_MAX)
        carry = len;
    if (!(b = mcpgw_io_read_block(t->io, carry + room))) {
        plain_closed(t, 0);
        return;
    }
    if (carry)
        evbuffer_remove(t->in, b->data + b->used, carry);
    n = recv(fd, b->data + b->used + carry, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (carry && mcpgw_transport_in_add(t, b, carry) != 0)
            plain_closed(t, 0);
        return;
    }
    if (n <= 0) {
        plain_closed(t, n == 0);
        return;
    }
    if (mcpgw_transport_in_add(t, b, carry + (size_t)n) != 0) {
        plain_closed(t, 0);
        return;
    }
    t->cbs->readable(t->owner);
}

static void plain_set_reading(mcpgw_transport *t, int on)
{
    plain_transport *p = (plain_transport *)t;

    p->reading = on != 0;
    if (on)
        event_add(&p->read_ev, NULL);
    else
        event_del(&p->read_ev);
}

static void plain_set_read_limit(mcpgw_transport *t, size_t limit)
{
    plain_transport *p = (plain_transport *)t;

    t->read_limit = limit;
    if (p->reading)
        event_add(&p->read_ev, NULL);    /* in case the old limit had paused it */
}

/* Only frames are queued: one writev of their headers and bodies; what
 * the socket does not take goes to the output buffer. Returns 0 when
 * everything left, 1 when something is left, -1 on an error. */
static int frames_write(mcpgw_transport *t)
{
    struct iovec iov[2 * MCPGW_TRANSPORT_SEGS];
    mcpgw_segq *q = t->segs;
    unsigned i, n = 0;
    ssize_t w;
    size_t done;

    for (i = 0; i < q->n; i++) {
        mcpgw_seg *s = &q->s[i];

        if (s->hlen) {
            iov[n].iov_base = s->hdr;
            iov[n++].iov_len = s->hlen;
        }
        if (s->len) {
            iov[n].iov_base = (void *)s->body;
            iov[n++].iov_len = s->len;
        }
    }
    do
        w = writev(t->fd, iov, (int)n);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        mcpgw_transport_frames_spill(t);
        return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
    }
    done = (size_t)w;
    for (i = 0; i < q->n; i++) {
        mcpgw_seg *s = &q->s[i];
        size_t all = s->hlen + s->len;

        if (done >= all) {
            done -= all;
        } else {
            mcpgw_transport_seg_append(s, mcpgw_transport_out_buf(t), done);
            done = 0;
        }
    }
    mcpgw_transport_segs_release(t);
    return out_len(t) ? 1 : 0;
}

/* One write of the output buffer: 0 when it is empty now, 1 when something
 * is left, -1 on an error. */
static int out_write(mcpgw_transport *t)
{
    int n;

    if (!out_len(t))
        return 0;
    n = evbuffer_write(t->out, t->fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    return out_len(t) ? 1 : 0;
}

static void plain_flush(mcpgw_transport *t)
{
    plain_transport *p = (plain_transport *)t;
    int rc = 0;

    if (p->write_armed) {           /* the write event writes, in order */
        mcpgw_transport_frames_spill(t);
        return;
    }
    if (t->segs) {
        if (out_len(t) == 0)
            rc = frames_write(t);
        else
            mcpgw_transport_frames_spill(t);    /* behind what is already there */
    }
    if (rc == 0 && out_len(t))
        rc = out_write(t);
    if (rc > 0 && arm_write(p) != 0)
        rc = -1;
    if (rc < 0) {
        plain_closed(t, 0);
    } else if (rc == 0) {
        mcpgw_transport_out_idle(t);            /* all has left: no buffer while idle */
        if (t->cbs)
            t->cbs->written(t->owner);
    }
}

/* The socket takes more after a partial write. */
static void plain_write_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_transport *t = arg;
    plain_transport *p = arg;
    int rc;

    (void)fd;
    (void)what;
    if (t->segs)
        mcpgw_transport_frames_spill(t);        /* queued meanwhile: behind the rest */
    rc = out_write(t);
    if (rc < 0) {
        plain_closed(t, 0);
        return;
    }
    if (rc > 0)
        return;
    p->write_armed = 0;
    event_del(p->write_ev);
    mcpgw_transport_out_idle(t);
    t->cbs->written(t->owner);
}

static int plain_shutdown_write(mcpgw_transport *t)
{
    return shutdown(t->fd, SHUT_WR);
}

static void plain_release(mcpgw_transport *t)
{
    plain_transport *p = (plain_transport *)t;

    if (p->read_assigned)
        event_del(&p->read_ev);
    if (p->write_ev)
        event_free(p->write_ev);
    p->read_assigned = 0;
    p->write_ev = NULL;
    mcpgw_transport_close_io(t);
}

const mcpgw_transport_type mcpgw_transport_plain = {
    .name = "plain",
    .set_reading = plain_set_reading,
    .set_read_limit = plain_set_read_limit,
    .flush = plain_flush,
    .shutdown_write = plain_shutdown_write,
    .release = plain_release,
};

mcpgw_transport *mcpgw_transport_plain_new(mcpgw_io *io, evutil_socket_t fd,
                                           const mcpgw_transport_cbs *cbs, void *owner)
{
    plain_transport *p = malloc(sizeof(*p));
    mcpgw_transport *t = &p->base;

    if (!p) {
        evutil_closesocket(fd);
        return NULL;
    }
    mcpgw_transport_setup(t, &mcpgw_transport_plain, io, fd, cbs, owner);
    p->reading = p->write_armed = p->read_assigned = 0;
    /* the buffers and the write event come when needed */
    p->write_ev = NULL;
    if (event_assign(&p->read_ev, io->base, fd, EV_READ | EV_PERSIST, plain_read_cb, t) != 0) {
        plain_release(t);
        free(p);
        return NULL;
    }
    p->read_assigned = 1;
    plain_set_reading(t, 1);
    return t;
}
