/*
 * transport_tls.c - a TLS connection on its own socket, SSL object, events
 * and evbuffers (see transport.h), like the plain transport.
 *
 * Reading: the handshake (SSL_accept) and then SSL_read straight into the
 * loop's read block, which the input then references (as the plain
 * transport: no staging copy, no malloc; the owner may use a frame in
 * place), at most the read limit, draining what OpenSSL has already
 * decrypted.
 * Writing: output queued during a loop iteration is encrypted at its end
 * (the loop's flush list) by one SSL_write per 16 KiB record, instead of a
 * record per evbuffer chain. Queued frames (segments) are gathered into
 * the record from where they lie, without passing through the output
 * evbuffer. A write OpenSSL cannot finish moves its bytes, and what is
 * queued behind them, into the output buffer, arms the write event and is
 * retried with the same bytes (SSL_MODE_ENABLE_PARTIAL_WRITE,
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). Where the kernel and OpenSSL offer
 * kernel TLS (SSL_OP_ENABLE_KTLS on the context) the records go through it.
 * A peer that closes without close_notify is an EOF, not an error.
 *
 * Plain HTTP sent to a TLS port: before the handshake the first byte is
 * peeked at. A TLS record starts with its type (0x16 for the ClientHello);
 * an HTTP request with an ASCII method. On an uppercase letter the
 * transport gives up on TLS (base.not_tls): bytes pass unencrypted both
 * ways, so that the owner can answer a plain "400 Bad Request" and close,
 * instead of OpenSSL's failed handshake resetting the connection. Anything
 * else goes to SSL_accept as before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "payload.h"
#include "transport.h"

#define TLS_READ_MAX 16384
#define TLS_RECORD 16384
/* At most this much is decrypted per readable event before the owner runs. */
#define TLS_READ_BUDGET (4 * TLS_READ_MAX)

typedef struct tls_transport {
    mcpgw_transport base;           /* first: a tls_transport is a transport */
    SSL *ssl;
    struct event *read_ev;
    struct event *write_ev;
    unsigned reading : 1;           /* the owner wants input */
    unsigned handshaken : 1;
    unsigned write_armed : 1;       /* a write waits for the socket */
    unsigned read_needs_write : 1;  /* SSL_read (or the handshake) wants to write */
    unsigned write_needs_read : 1;  /* SSL_write wants to read first */
    unsigned sniffed : 1;           /* the first byte was looked at */
    unsigned plain : 1;             /* not TLS after all: raw bytes (base.not_tls) */
} tls_transport;

static void tls_update_events(tls_transport *s)
{
    if (s->plain ? s->reading : s->reading || s->write_needs_read || !s->handshaken)
        event_add(s->read_ev, NULL);
    else
        event_del(s->read_ev);
    if (s->write_armed || s->read_needs_write)
        event_add(s->write_ev, NULL);
    else
        event_del(s->write_ev);
}

static void tls_closed(mcpgw_transport *t, int eof)
{
    tls_transport *s = (tls_transport *)t;

    event_del(s->read_ev);
    event_del(s->write_ev);
    s->reading = s->write_armed = s->read_needs_write = s->write_needs_read = 0;
    ERR_clear_error();
    if (t->cbs)
        t->cbs->closed(t->owner, eof);
}

/* What an SSL call's failure means: 0 to wait (the events are set), 1 for
 * an EOF, -1 for an error. */
static int tls_failure(tls_transport *s, int rc, int writing)
{
    switch (SSL_get_error(s->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        if (writing)
            s->write_needs_read = 1;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        if (writing)
            s->write_armed = 1;
        else
            s->read_needs_write = 1;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return 1;
    case SSL_ERROR_SYSCALL:
        /* no close_notify: a dirty shutdown is an EOF */
        return ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET || errno == EPIPE)
                   ? 1
                   : -1;
    default:
        return -1;
    }
}

/* Encrypts and sends the frames queued behind an empty output buffer: each
 * record gathered from the segments into one buffer and given to one
 * SSL_write. When OpenSSL cannot finish a record, its bytes and the frames
 * not yet taken go to the output buffer, in order, and the write is
 * retried from there (the same bytes first, as OpenSSL requires). 0 when
 * it is all gone, 1 when it waits, -1 (EOF or error: closed is due). */
static int tls_frames_write(tls_transport *s, int *eof)
{
    mcpgw_transport *t = &s->base;
    mcpgw_segq *q = t->segs;
    unsigned i = 0;
    size_t from = 0;                /* bytes of segment i already taken */

    while (i < q->n) {
        unsigned char rec[TLS_RECORD];
        size_t fill = 0;
        int n, r;

        while (i < q->n && fill < sizeof(rec)) {
            mcpgw_seg *g = &q->s[i];
            size_t k;

            if (from < g->hlen) {
                k = g->hlen - from;
                if (k > sizeof(rec) - fill)
                    k = sizeof(rec) - fill;
                memcpy(rec + fill, g->hdr + from, k);
            } else {
                k = g->hlen + g->len - from;
                if (k > sizeof(rec) - fill)
                    k = sizeof(rec) - fill;
                memcpy(rec + fill, g->body + (from - g->hlen), k);
            }
            fill += k;
            from += k;
            if (from == (size_t)g->hlen + g->len) {
                i++;
                from = 0;
            }
        }
        ERR_clear_error();
        n = SSL_write(s->ssl, rec, (int)fill);
        if (n > 0 && (size_t)n == fill)
            continue;
        if (n > 0) {                /* not with one record a call; kept for safety */
            r = 0;
            s->write_armed = 1;
        } else {
            r = tls_failure(s, n, 1);
        }
        if (r == 0) {               /* retry from the output buffer */
            struct evbuffer *out = mcpgw_transport_out_buf(t);

            if (evbuffer_add(out, rec + (n > 0 ? n : 0), fill - (size_t)(n > 0 ? n : 0)) != 0)
                r = -1;
            for (; r == 0 && i < q->n; i++, from = 0)
                if (mcpgw_transport_seg_append(&q->s[i], out, from) != 0)
                    r = -1;
            if (r == 0) {
                mcpgw_transport_segs_release(t);
                return 1;
            }
        }
        mcpgw_transport_segs_release(t);
        *eof = r > 0;
        return -1;
    }
    mcpgw_transport_segs_release(t);
    return 0;
}

/* Encrypts and sends what is queued; 0 when it is all gone, 1 when it
 * waits, -1 (EOF or error: closed is due) otherwise. */
static int tls_write_out(tls_transport *s, int *eof)
{
    mcpgw_transport *t = &s->base;

    s->write_armed = s->write_needs_read = 0;
    if (t->segs) {
        if (evbuffer_get_length(t->out) == 0)
            return tls_frames_write(s, eof);
        mcpgw_transport_frames_spill(t);
    }
    while (evbuffer_get_length(t->out)) {
        size_t len = evbuffer_get_length(t->out);
        unsigned char *p;
        int n, r;

        if (len > TLS_RECORD)
            len = TLS_RECORD;
        p = evbuffer_pullup(t->out, (ev_ssize_t)len);
        if (!p)
            return -1;
        ERR_clear_error();
        n = SSL_write(s->ssl, p, (int)len);
        if (n > 0) {
            evbuffer_drain(t->out, (size_t)n);
            continue;
        }
        r = tls_failure(s, n, 1);
        if (r == 0)
            return 1;
        *eof = r > 0;
        return -1;
    }
    return 0;
}

/* ------------------------------------------- plain text on a TLS port */

/* Looks at the first byte before SSL_accept: 1 when it is there (s->plain
 * set if it starts plain text), 0 to wait, -1 when closed (done). */
static int tls_sniff(tls_transport *s)
{
    unsigned char b;
    ssize_t n = recv(s->base.fd, &b, 1, MSG_PEEK);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        tls_closed(&s->base, n == 0);
        return -1;
    }
    s->sniffed = 1;
    if (b >= 'A' && b <= 'Z') {
        s->plain = 1;
        s->base.not_tls = 1;
        s->read_needs_write = s->write_needs_read = 0;
    }
    return 1;
}

/* Plain mode: one recv into the input, within the read limit. */
static void plain_read(tls_transport *s)
{
    mcpgw_transport *t = &s->base;
    char buf[TLS_READ_MAX];
    size_t len = mcpgw_transport_in_len(t), room = sizeof(buf);
    ssize_t n;

    if (t->read_limit) {
        if (len >= t->read_limit) {
            event_del(s->read_ev);
            return;
        }
        if (t->read_limit - len < room)
            room = t->read_limit - len;
    }
    n = recv(t->fd, buf, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0 || evbuffer_add(mcpgw_transport_in(t), buf, (size_t)n) != 0) {
        tls_closed(t, n == 0);
        return;
    }
    t->cbs->readable(t->owner);
}

/* Plain mode: writes the output as it is; then as tls_flush. */
static void plain_write(tls_transport *s)
{
    mcpgw_transport *t = &s->base;

    if (t->segs)
        mcpgw_transport_frames_spill(t);
    if (evbuffer_get_length(t->out) &&
        evbuffer_write(t->out, t->fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
        errno != EINTR) {
        tls_closed(t, 0);
        return;
    }
    s->write_armed = evbuffer_get_length(t->out) > 0;
    tls_update_events(s);
    if (!s->write_armed && t->cbs)
        t->cbs->written(t->owner);
}

/* ------------------------------------------------------------------ TLS */

static void tls_flush(mcpgw_transport *t)
{
    tls_transport *s = (tls_transport *)t;
    int eof = 0, rc;

    if (s->plain) {
        if (s->write_armed)         /* the write event writes, in order */
            mcpgw_transport_frames_spill(t);
        else
            plain_write(s);
        return;
    }
    if (!s->handshaken || s->write_armed || s->write_needs_read) {
        if (t->segs)        /* the write waits: keep the order behind it */
            mcpgw_transport_frames_spill(t);
        return;
    }
    rc = tls_write_out(s, &eof);
    if (rc < 0) {
        tls_closed(t, eof);
        return;
    }
    tls_update_events(s);
    if (rc == 0 && t->cbs)
        t->cbs->written(t->owner);
}

/* The handshake, then what can be read. */
static void tls_read_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_transport *t = arg;
    tls_transport *s = arg;
    size_t got = 0;
    int r;

    (void)fd;
    (void)what;
    s->read_needs_write = 0;
    if (!s->handshaken && !s->sniffed && tls_sniff(s) <= 0)
        return;
    if (s->plain) {
        plain_read(s);
        return;
    }
    if (!s->handshaken) {
        ERR_clear_error();
        r = SSL_accept(s->ssl);
        if (r != 1) {
            r = tls_failure(s, r, 0);
            if (r != 0) {
                tls_closed(t, r > 0);
                return;
            }
            tls_update_events(s);
            return;
        }
        s->handshaken = 1;
    }
    if (s->write_needs_read) {      /* a write waited for this */
        int eof = 0, rc = tls_write_out(s, &eof);
        if (rc < 0) {
            tls_closed(t, eof);
            return;
        }
    }
    while (s->reading && got < TLS_READ_BUDGET) {
        size_t len = mcpgw_transport_in_len(t), room = TLS_READ_MAX;
        mcpgw_block *b;
        int n;

        if (t->read_limit) {
            if (len >= t->read_limit) {
                /* nothing consumes until more is read: cannot happen while
                 * the limit is above the largest frame or head */
                if (!got) {
                    event_del(s->read_ev);
                    return;
                }
                break;
            }
            if (t->read_limit - len < room)
                room = t->read_limit - len;
        }
        if (!(b = mcpgw_io_read_block(t->io, room))) {
            tls_closed(t, 0);
            return;
        }
        ERR_clear_error();
        n = SSL_read(s->ssl, b->data + b->used, (int)room);
        if (n <= 0) {
            r = tls_failure(s, n, 0);
            if (r != 0) {
                if (got)    /* what came before the close first */
                    break;
                tls_closed(t, r > 0);
                return;
            }
            break;
        }
        if (mcpgw_transport_in_add(t, b, (size_t)n) != 0) {
            tls_closed(t, 0);
            return;
        }
        got += (size_t)n;
        /* Nothing left in OpenSSL: another SSL_read would only meet EAGAIN
         * on the socket (its read event is level-triggered: more bytes
         * bring us back). */
        if (!SSL_has_pending(s->ssl))
            break;
    }
    tls_update_events(s);
    if (s->reading && SSL_has_pending(s->ssl))
        event_active(s->read_ev, EV_READ, 0);     /* read (ahead) or decrypted, not yet taken */
    if (got)
        t->cbs->readable(t->owner);
}

static void tls_write_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_transport *t = arg;
    tls_transport *s = arg;
    int eof = 0, rc;

    (void)fd;
    (void)what;
    if (s->plain) {
        plain_write(s);
        return;
    }
    if (s->read_needs_write || !s->handshaken) {
        s->read_needs_write = 0;
        tls_read_cb(fd, EV_READ, arg);  /* the read side wanted to write */
        return;
    }
    rc = tls_write_out(s, &eof);
    if (rc < 0) {
        tls_closed(t, eof);
        return;
    }
    tls_update_events(s);
    if (rc == 0)
        t->cbs->written(t->owner);
}

static void tls_set_reading(mcpgw_transport *t, int on)
{
    tls_transport *s = (tls_transport *)t;

    s->reading = on != 0;
    tls_update_events(s);
    if (on && s->handshaken && SSL_has_pending(s->ssl))
        event_active(s->read_ev, EV_READ, 0);
}

static void tls_set_read_limit(mcpgw_transport *t, size_t limit)
{
    t->read_limit = limit;
    tls_update_events((tls_transport *)t);  /* in case the old limit had paused it */
}

static int tls_shutdown_write(mcpgw_transport *t)
{
    if (((tls_transport *)t)->plain)
        return shutdown(t->fd, SHUT_WR);
    return -1;      /* a TLS close_notify ends the stream both ways */
}

static void tls_release(mcpgw_transport *t)
{
    tls_transport *s = (tls_transport *)t;

    if (s->read_ev)
        event_free(s->read_ev);
    if (s->write_ev)
        event_free(s->write_ev);
    s->read_ev = s->write_ev = NULL;
    if (s->ssl) {
        if (s->handshaken)
            SSL_shutdown(s->ssl);       /* one close_notify, not waited for */
        SSL_free(s->ssl);
        ERR_clear_error();
    }
    s->ssl = NULL;
    mcpgw_transport_close_io(t);
}

const mcpgw_transport_type mcpgw_transport_tls = {
    .name = "tls",
    .set_reading = tls_set_reading,
    .set_read_limit = tls_set_read_limit,
    .flush = tls_flush,
    .shutdown_write = tls_shutdown_write,
    .release = tls_release,
};

mcpgw_transport *mcpgw_transport_tls_new(mcpgw_io *io, evutil_socket_t fd, SSL *ssl,
                                         const mcpgw_transport_cbs *cbs, void *owner)
{
    tls_transport *s = malloc(sizeof(*s));
    mcpgw_transport *t = &s->base;

    if (!s) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    mcpgw_transport_setup(t, &mcpgw_transport_tls, io, fd, cbs, owner);
    s->ssl = ssl;
    s->reading = 1;
    s->handshaken = s->write_armed = s->read_needs_write = s->write_needs_read = 0;
    s->sniffed = s->plain = 0;
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    t->out = evbuffer_new();
    s->read_ev = event_new(io->base, fd, EV_READ | EV_PERSIST, tls_read_cb, t);
    s->write_ev = event_new(io->base, fd, EV_WRITE | EV_PERSIST, tls_write_cb, t);
    if (!t->out || !s->read_ev || !s->write_ev || SSL_set_fd(ssl, fd) != 1) {
        tls_release(t);
        free(s);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    tls_update_events(s);
    return t;
}
