/*
 * transport_tls.c - a TLS connection through libevent's OpenSSL bufferevent
 * (see transport.h). The bufferevent owns the SSL object, the socket and
 * the two buffers; it reads and writes by itself, so this transport has no
 * end-of-iteration flush and queues no shared frames behind its output.
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "transport.h"

typedef struct tls_transport {
    mcpgw_transport base;           /* first: a tls_transport is a transport */
    struct bufferevent *bev;
} tls_transport;

static void tls_read_cb(struct bufferevent *bev, void *arg)
{
    mcpgw_transport *t = arg;

    (void)bev;
    t->cbs->readable(t->owner);
}

static void tls_write_cb(struct bufferevent *bev, void *arg)
{
    mcpgw_transport *t = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        t->cbs->written(t->owner);
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    mcpgw_transport *t = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        t->cbs->closed(t->owner, (what & BEV_EVENT_EOF) != 0);
    }
}

static void tls_set_reading(mcpgw_transport *t, int on)
{
    struct bufferevent *bev = ((tls_transport *)t)->bev;

    if (on)
        bufferevent_enable(bev, EV_READ);
    else
        bufferevent_disable(bev, EV_READ);
}

static void tls_set_read_limit(mcpgw_transport *t, size_t limit)
{
    t->read_limit = limit;
    bufferevent_setwatermark(((tls_transport *)t)->bev, EV_READ, 0, limit);
}

static int tls_shutdown_write(mcpgw_transport *t)
{
    (void)t;
    return -1;      /* a TLS close_notify ends the stream both ways */
}

static void tls_release(mcpgw_transport *t)
{
    tls_transport *s = (tls_transport *)t;

    if (s->bev)
        bufferevent_free(s->bev);   /* closes the socket, frees the SSL */
    s->bev = NULL;
    t->fd = -1;
}

const mcpgw_transport_type mcpgw_transport_tls = {
    .name = "tls",
    .set_reading = tls_set_reading,
    .set_read_limit = tls_set_read_limit,
    .flush = NULL,
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
    s->bev = bufferevent_openssl_socket_new(io->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {      /* it owns ssl even on failure; the socket is ours */
        evutil_closesocket(fd);
        free(s);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
    t->in = bufferevent_get_input(s->bev);
    t->out = bufferevent_get_output(s->bev);
    bufferevent_setcb(s->bev, tls_read_cb, tls_write_cb, tls_event_cb, t);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    return t;
}
