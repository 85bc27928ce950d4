/*
 * client.c - one client connection to the gateway: TCP/TLS connect on the
 * caller's event_base, the HTTP upgrade, RFC 6455 client framing (masked
 * frames out, unmasked frames in, fragmentation, ping/pong, the close
 * handshake), the reconnect schedule and the bounded offline queue.
 *
 * Requests matched by id live in request.c. Reentrancy: every entry point
 * (libevent callback or public call that can emit events) brackets its work
 * with mcpgw_cl_enter()/mcpgw_cl_leave(), so a callback may free
 * the client; the memory goes when the outermost entry point returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "client_int.h"
#include "random.h"
#include "ws_frame.h"
#include "ws_msg.h"
#include "utf8.h"

#define CLOSE_REASON_INTENTIONAL "Client closed connection"
#define MAX_REJECT_BODY 4096
/* Smaller messages go uncompressed: deflating them gains nothing. */
#define PMD_THRESHOLD 64

static void start_attempt(mcpgw_client *c);
static void connection_over(mcpgw_client *c, int code, const char *reason, const char *error,
                            int fatal);

/* ------------------------------------------------------------ plumbing */

static void destroy(mcpgw_client *c)
{
    mcpgw_creq_fail_all_(c, MCPGW_REQUEST_CANCELLED, 0);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->reconnect_ev)
        event_free(c->reconnect_ev);
    if (c->deadline_ev)
        event_free(c->deadline_ev);
    if (c->dns)
        evdns_base_free(c->dns, 0);
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    mcpgw_ws_msg_free(c->msg);
    mcpgw_pmd_state_free(&c->pmd_state);
    mcpgw_pmd_pool_free(&c->pmd_pool);
    mcpgw_cq_clear(&c->q);
    mcpgw_curl_clear(&c->url);
    free(c->target);
    free((char *)c->o.token);
    free((char *)c->o.ca_file);
    free(c);
}

void mcpgw_cl_enter(mcpgw_client *c)
{
    c->busy++;
}

int mcpgw_cl_leave(mcpgw_client *c)
{
    if (--c->busy == 0 && c->doomed) {
        destroy(c);
        return 0;
    }
    return 1;
}

/* Emits an event; returns 0 if the client was freed meanwhile (the caller
 * stops and unwinds). */
static int emit(mcpgw_client *c, mcpgw_client_event *ev)
{
    if (c->doomed)
        return 0;
    if (c->cb)
        c->cb(c, ev, c->arg);
    return !c->doomed;
}

static int emit_error(mcpgw_client *c, const char *error)
{
    mcpgw_client_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = MCPGW_CLIENT_EV_ERROR;
    ev.error = error;
    return emit(c, &ev);
}

static void free_bev(mcpgw_client *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->deadline_ev)
        event_del(c->deadline_ev);
    mcpgw_ws_msg_free(c->msg);     /* a message cut by the connection's end */
    c->msg = NULL;
    mcpgw_pmd_state_free(&c->pmd_state);
    mcpgw_pmd_pool_free(&c->pmd_pool);
    memset(&c->pmd, 0, sizeof(c->pmd));
}

static void arm(struct event *ev, unsigned ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(ev, &tv);
}

/* ------------------------------------------------------------ writing */

/* Writes one masked frame. 0, or -1 when there is no connection. */
static int write_frame(mcpgw_client *c, int op, const void *data, size_t len)
{
    uint8_t hdr[MCPGW_WS_MAX_HEADER + 4], mask[4], *z = NULL;
    size_t hl, zlen = 0;
    unsigned rsv = 0;
    struct evbuffer *out;
    int rc = -1;

    if (!c->bev)
        return -1;
    if (c->pmd.enabled && (op == MCPGW_WS_OP_TEXT || op == MCPGW_WS_OP_BINARY)
        && len >= PMD_THRESHOLD
        && (z = mcpgw_pmd_deflate(&c->pmd_pool, NULL, &c->pmd, data, len, &zlen)) != NULL
        && zlen < len) {                            /* else no gain: send it plain */
        data = z;
        len = zlen;
        rsv = 4;                                    /* RSV1: compressed */
    }
    out = bufferevent_get_output(c->bev);
    hl = mcpgw_ws_encode_header(hdr, op, rsv, len);
    hdr[1] |= 0x80;                                 /* MASK: every client frame */
    mcpgw_crand_bytes(mask, sizeof(mask));
    memcpy(hdr + hl, mask, 4);
    hl += 4;
    if (evbuffer_add(out, hdr, hl) != 0)
        goto out;
    if (len) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1)
            goto out;
        memcpy(v.iov_base, data, len);
        mcpgw_ws_unmask(v.iov_base, len, mask, 0);  /* XOR: masking == unmasking */
        v.iov_len = len;
        if (evbuffer_commit_space(out, &v, 1) != 0)
            goto out;
    }
    rc = 0;
out:
    free(z);
    return rc;
}

static void send_close(mcpgw_client *c, int code, const char *reason)
{
    uint8_t buf[MCPGW_WS_MAX_CONTROL];
    size_t rl = reason ? strlen(reason) : 0;

    if (c->close_sent)
        return;
    if (rl > sizeof(buf) - 2)
        rl = sizeof(buf) - 2;
    buf[0] = (uint8_t)(code >> 8);
    buf[1] = (uint8_t)(code & 0xff);
    if (rl)
        memcpy(buf + 2, reason, rl);
    write_frame(c, MCPGW_WS_OP_CLOSE, buf, code ? rl + 2 : 0);
    c->close_sent = 1;
}

int mcpgw_cl_write_text(mcpgw_client *c, const char *text, size_t len)
{
    return write_frame(c, MCPGW_WS_OP_TEXT, text, len);
}

/* ------------------------------------------------------------ offline queue */

/* Reports queue trouble as events; fails the requests of dropped items. */
static void report_dropped(mcpgw_client *c, mcpgw_cq_item *dl)
{
    while (dl) {
        mcpgw_cq_item *next = dl->next;
        mcpgw_client_event ev;
        mcpgw_creq *r = dl->tag;

        memset(&ev, 0, sizeof(ev));
        ev.type = MCPGW_CLIENT_EV_QUEUE_DROPPED;
        ev.text = dl->text;
        ev.len = dl->len;
        if (r) {
            r->queued = 0;
            if (!c->doomed)
                mcpgw_creq_finish_(r, MCPGW_REQUEST_DROPPED, NULL);
        }
        emit(c, &ev);
        free(dl);
        dl = next;
    }
}

int mcpgw_cl_enqueue(mcpgw_client *c, const char *text, size_t len, mcpgw_creq *tag)
{
    mcpgw_cq_item *dl = NULL;
    mcpgw_client_event ev;
    int rc = mcpgw_cq_push(&c->q, text, len, tag, &dl);

    switch (rc) {
    case MCPGW_CQ_OK:
        return MCPGW_SEND_QUEUED;
    case MCPGW_CQ_DROPPED:
        report_dropped(c, dl);
        return MCPGW_SEND_QUEUED_DROPPED;
    case MCPGW_CQ_FULL:
        memset(&ev, 0, sizeof(ev));
        ev.type = MCPGW_CLIENT_EV_QUEUE_FULL;
        ev.text = text;
        ev.len = len;
        emit(c, &ev);
        return MCPGW_SEND_ERR_FULL;
    case MCPGW_CQ_TOO_BIG:
        return MCPGW_SEND_ERR_TOO_BIG;
    default:
        return MCPGW_SEND_ERR_NOMEM;
    }
}

static void flush_queue(mcpgw_client *c)
{
    mcpgw_cq_item *it;

    while (c->state == CS_OPEN && (it = mcpgw_cq_pop(&c->q)) != NULL) {
        if (write_frame(c, MCPGW_WS_OP_TEXT, it->text, it->len) != 0) {
            mcpgw_cq_unpop(&c->q, it);
            return;
        }
        if (it->tag)
            mcpgw_creq_sent_(it->tag);
        free(it);
    }
}

/* ------------------------------------------------------------ public: send */

int mcpgw_client_send_text(mcpgw_client *c, const char *text, size_t len)
{
    int rc;

    if (!c || (!text && len))
        return MCPGW_SEND_ERR_INVALID;
    if (!mcpgw_utf8_valid((const uint8_t *)text, len))
        return MCPGW_SEND_ERR_INVALID;
    if (c->state == CS_OPEN)
        return write_frame(c, MCPGW_WS_OP_TEXT, text, len) == 0 ? MCPGW_SEND_OK
                                                              : MCPGW_SEND_ERR_NOMEM;
    mcpgw_cl_enter(c);
    rc = mcpgw_cl_enqueue(c, text, len, NULL);
    mcpgw_cl_leave(c);
    return rc;
}

int mcpgw_client_send(mcpgw_client *c, json_t *msg)
{
    char *s;
    int rc;

    if (!c || !msg)
        return MCPGW_SEND_ERR_INVALID;
    s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return MCPGW_SEND_ERR_INVALID;
    rc = mcpgw_client_send_text(c, s, strlen(s));
    free(s);
    return rc;
}

int mcpgw_client_ping(mcpgw_client *c, const void *payload, size_t len)
{
    if (!c || c->state != CS_OPEN || len > MCPGW_WS_MAX_CONTROL)
        return -1;
    return write_frame(c, MCPGW_WS_OP_PING, payload, len);
}

/* ------------------------------------------------------------ end of a connection */

static void reconnect_fire(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_client *c = arg;
    (void)fd;
    (void)what;

    mcpgw_cl_enter(c);
    if (c->state == CS_WAITING)
        start_attempt(c);
    mcpgw_cl_leave(c);
}

/* Decides what follows a failed attempt or a lost connection: a reconnect,
 * reconnect_failed, or nothing. */
static void schedule_reconnect(mcpgw_client *c)
{
    mcpgw_client_event ev;
    unsigned delay;

    if (c->o.reconnect_max_attempts > 0 && c->attempt >= c->o.reconnect_max_attempts) {
        c->state = CS_CLOSED;
        memset(&ev, 0, sizeof(ev));
        ev.type = MCPGW_CLIENT_EV_RECONNECT_FAILED;
        ev.attempt = c->attempt;
        mcpgw_creq_fail_all_(c, MCPGW_REQUEST_CANCELLED, 1);
        if (!c->doomed)
            emit(c, &ev);
        return;
    }
    c->attempt++;
    delay = mcpgw_client_backoff_ms(&c->o, c->attempt, mcpgw_crand_01());
    c->state = CS_WAITING;
    arm(c->reconnect_ev, delay);
    memset(&ev, 0, sizeof(ev));
    ev.type = MCPGW_CLIENT_EV_RECONNECTING;
    ev.attempt = c->attempt;
    ev.delay_ms = delay;
    emit(c, &ev);
}

/* The connection (or the attempt) is over. code/reason: the close frame's,
 * or 1006. error: for an attempt that never opened, what went wrong (an
 * ERROR event has been emitted already by the caller when appropriate).
 * fatal: do not reconnect (auth refused). */
static void connection_over(mcpgw_client *c, int code, const char *reason, const char *error,
                            int fatal)
{
    mcpgw_client_event ev;
    int was_open = c->ever_open_this_attempt;
    int will = !c->intentional && c->o.reconnect && !fatal;

    free_bev(c);
    c->ever_open_this_attempt = 0;
    memset(&ev, 0, sizeof(ev));
    ev.type = MCPGW_CLIENT_EV_DISCONNECTED;
    ev.code = code;
    ev.reason = reason ? reason : "";
    if (c->intentional) {
        /* Report what we asked for (the server's echo may omit the reason). */
        ev.code = MCPGW_WS_CLOSE_NORMAL;
        ev.reason = CLOSE_REASON_INTENTIONAL;
        c->state = CS_IDLE;
        mcpgw_creq_fail_all_(c, MCPGW_REQUEST_CANCELLED, 1);
        if (!c->doomed)
            emit(c, &ev);
        return;
    }
    if (will) {
        if (c->o.reconnect_max_attempts > 0 && c->attempt >= c->o.reconnect_max_attempts
            && !was_open)
            ev.will_reconnect = 0;
        else
            ev.will_reconnect = 1;
        c->state = CS_CLOSED;       /* until the reconnect is scheduled */
        /* A failed attempt is reported by ERROR and RECONNECTING only;
         * DISCONNECTED is for connections that were open. */
        if (was_open && !emit(c, &ev))
            return;
        if (c->state != CS_CLOSED || c->intentional)  /* connect() or close() from the callback */
            return;
        schedule_reconnect(c);
        return;
    }
    c->state = CS_CLOSED;
    if (!was_open && error)
        ev.reason = error;
    mcpgw_creq_fail_all_(c, MCPGW_REQUEST_CANCELLED, 1);
    if (!c->doomed)
        emit(c, &ev);
}

static void deadline_fire(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_client *c = arg;
    (void)fd;
    (void)what;

    mcpgw_cl_enter(c);
    if (c->state == CS_CLOSING) {
        connection_over(c, c->got_close ? c->close_code : MCPGW_WS_CLOSE_ABNORMAL,
                        c->got_close ? c->close_reason : "", NULL, 0);
    } else if (c->state == CS_CONNECTING || c->state == CS_UPGRADING
               || c->state == CS_REJECTED) {
        if (emit_error(c, "connection timed out"))
            connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", "connection timed out", 0);
    }
    mcpgw_cl_leave(c);
}

/* Fails the open connection from our side (protocol error from the server). */
static void fail_connection(mcpgw_client *c, int code, const char *why)
{
    if (!emit_error(c, why))
        return;
    if (c->state != CS_OPEN && c->state != CS_CLOSING)
        return;
    send_close(c, code, why);
    c->state = CS_CLOSING;
    c->got_close = 1;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", why);
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ);
    arm(c->deadline_ev, 200);   /* let the close frame go out, then drop */
}

/* ------------------------------------------------------------ reading frames */

/* A whole, checked message from the server (ws_msg.h): parsed, then given
 * to the request waiting for it or to the caller. */
static void deliver_message(mcpgw_client *c, const mcpgw_ws_message *m)
{
    const char *text = (const char *)m->data;
    json_error_t jerr;
    json_t *msg;
    mcpgw_client_event ev;

    memset(&ev, 0, sizeof(ev));
    msg = json_loadb(text, m->len, JSON_DECODE_ANY, &jerr);
    if (!msg) {
        ev.type = MCPGW_CLIENT_EV_ERROR;
        ev.error = "a message from the server is not valid JSON";
    } else {
        ev.type = MCPGW_CLIENT_EV_MESSAGE;
        ev.message = msg;
    }
    ev.text = text;
    ev.len = m->len;
    if (!msg || !mcpgw_creq_match_(c, msg))
        emit(c, &ev);
    json_decref(msg);
}

/* The payload of data frame h lies in the input, whole: adds it to the
 * message being assembled (opened on its first frame) and delivers the
 * message after its last frame. 0, or -1 when the connection was failed. */
static int data_frame(mcpgw_client *c, struct evbuffer *in, const mcpgw_ws_frame_header *h)
{
    size_t n = (size_t)h->payload_len;
    mcpgw_ws_msg_ctx ctx;
    mcpgw_ws_message out;
    mcpgw_ws_msg *m;
    const char *why = NULL;
    uint8_t *p;
    int code;

    if (h->opcode != MCPGW_WS_OP_CONT && !(c->msg = mcpgw_ws_msg_open(h))) {
        evbuffer_drain(in, n);
        fail_connection(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
        return -1;
    }
    if (n) {
        if (!(p = mcpgw_ws_msg_reserve(c->msg, n, h->fin ? c->msg->len + n : 0))) {
            evbuffer_drain(in, n);
            fail_connection(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
            return -1;
        }
        evbuffer_remove(in, p, n);
        if ((code = mcpgw_ws_msg_commit(c->msg, n, &why)) != 0) {
            fail_connection(c, code, why);
            return -1;
        }
    }
    if (!h->fin)
        return 0;
    m = c->msg;                 /* the assembly ends with its message */
    c->msg = NULL;
    ctx.max = c->o.max_message_bytes;
    ctx.pool = &c->pmd_pool;
    ctx.state = &c->pmd_state;
    ctx.params = &c->pmd;
    code = mcpgw_ws_msg_finish(m, &ctx, &out, &why);
    if (code)
        fail_connection(c, code, why);
    else
        deliver_message(c, &out);
    mcpgw_ws_message_release(&out);
    mcpgw_ws_msg_free(m);
    return code ? -1 : 0;
}

static void handle_close_frame(mcpgw_client *c, const uint8_t *p, size_t n)
{
    c->got_close = 1;
    c->close_code = MCPGW_WS_CLOSE_NO_STATUS;
    c->close_reason[0] = '\0';
    if (n == 1) {
        fail_connection(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "one-byte close payload");
        return;
    }
    if (n >= 2) {
        unsigned code = ((unsigned)p[0] << 8) | p[1];
        if (!mcpgw_ws_close_code_valid(code)) {
            fail_connection(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
            return;
        }
        if (!mcpgw_utf8_valid(p + 2, n - 2)) {
            fail_connection(c, MCPGW_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
            return;
        }
        c->close_code = (int)code;
        snprintf(c->close_reason, sizeof(c->close_reason), "%.*s", (int)(n - 2),
                 (const char *)(p + 2));
    }
    if (!c->close_sent) {
        /* Echo the code (RFC 6455 5.5.1), then wait for the server to end TCP. */
        if (n >= 2)
            send_close(c, c->close_code, NULL);
        else
            send_close(c, 0, NULL);
    }
    c->state = CS_CLOSING;
    arm(c->deadline_ev, c->o.close_timeout_ms);
}

static void read_frames(mcpgw_client *c)
{
    struct bufferevent *bev = c->bev;

    while (c->bev == bev && !c->doomed && (c->state == CS_OPEN || c->state == CS_CLOSING)) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t avail = evbuffer_get_length(in);
        mcpgw_ws_frame_header h;
        mcpgw_ws_parse_result pr;
        uint8_t *head;
        const char *why = NULL;
        int is_control, code;

        if (avail < 2)
            return;
        head = evbuffer_pullup(in, (ev_ssize_t)(avail < MCPGW_WS_MAX_HEADER ? avail
                                                                          : MCPGW_WS_MAX_HEADER));
        pr = mcpgw_ws_parse_header(head, avail < MCPGW_WS_MAX_HEADER ? avail : MCPGW_WS_MAX_HEADER,
                                   &h);
        if (pr == MCPGW_WS_PARSE_NEED_MORE)
            return;
        if (pr == MCPGW_WS_PARSE_ERROR) {
            fail_connection(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "malformed frame length");
            return;
        }
        /* unmasked, RSV1 only with permessage-deflate on a message's first
         * frame, known opcodes, short unfragmented control frames */
        code = mcpgw_ws_frame_check_role(&h, MCPGW_WS_ROLE_CLIENT, c->pmd.enabled ? 4u : 0u,
                                         &why);
        if (code) {
            fail_connection(c, code, why);
            return;
        }
        is_control = (h.opcode & 0x8) != 0;
        /* a data frame: its place in the message, the size limit */
        if (!is_control && (code = mcpgw_ws_msg_check(c->msg, &h, c->o.max_message_bytes,
                                                      &why)) != 0) {
            fail_connection(c, code, why);
            return;
        }
        if (avail < h.header_len + h.payload_len)
            return;                                 /* wait for the whole frame */
        evbuffer_drain(in, h.header_len);
        if (c->got_close) {                         /* nothing counts after a close */
            evbuffer_drain(in, h.payload_len);
            continue;
        }
        if (is_control) {
            uint8_t p[MCPGW_WS_MAX_CONTROL];
            size_t n = (size_t)h.payload_len;
            mcpgw_client_event ev;

            evbuffer_remove(in, p, n);
            memset(&ev, 0, sizeof(ev));
            if (h.opcode == MCPGW_WS_OP_PING) {
                write_frame(c, MCPGW_WS_OP_PONG, p, n);
                ev.type = MCPGW_CLIENT_EV_PING;
                emit(c, &ev);
            } else if (h.opcode == MCPGW_WS_OP_PONG) {
                ev.type = MCPGW_CLIENT_EV_PONG;
                emit(c, &ev);
            } else {
                handle_close_frame(c, p, n);
            }
            continue;
        }
        if (data_frame(c, in, &h) < 0)
            return;
    }
}

/* ------------------------------------------------------------ upgrade */

static void finish_rejected(mcpgw_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    char body[MAX_REJECT_BODY + 1], msg[MAX_REJECT_BODY + 128];
    mcpgw_client_event ev;
    int fatal;

    if (c->resp.content_length >= 0 && (size_t)c->resp.content_length < n)
        n = (size_t)c->resp.content_length;
    if (n > MAX_REJECT_BODY)
        n = MAX_REJECT_BODY;
    evbuffer_copyout(in, body, n);
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        n--;
    body[n] = '\0';
    snprintf(msg, sizeof(msg), "%d %s", c->resp.status, n ? body : c->resp.reason);
    memset(&ev, 0, sizeof(ev));
    ev.type = MCPGW_CLIENT_EV_ERROR;
    ev.error = msg;
    ev.http_status = c->resp.status;
    ev.http_body = body;
    fatal = (c->resp.status == 401 || c->resp.status == 403) && !c->o.reconnect_on_auth_failure;
    if (!emit(c, &ev))
        return;
    if (c->state == CS_REJECTED)
        connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", msg, fatal);
}

static void read_upgrade(mcpgw_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    const char *why;
    char msg[160];
    int rc;

    if (n > MCPGW_CUP_MAX_HEAD)
        n = MCPGW_CUP_MAX_HEAD;
    rc = mcpgw_cup_parse((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, &c->resp);
    if (rc == 1)
        return;
    if (rc < 0) {
        if (emit_error(c, "malformed HTTP response to the upgrade"))
            connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", "malformed HTTP response", 0);
        return;
    }
    evbuffer_drain(in, c->resp.head_len);
    if (c->resp.status != 101) {
        c->state = CS_REJECTED;
        if (c->resp.content_length >= 0
            && evbuffer_get_length(in) >= (size_t)c->resp.content_length)
            finish_rejected(c);
        return;
    }
    if (mcpgw_cup_validate(&c->resp, c->key, c->o.compression, &c->pmd, &why) != 0) {
        snprintf(msg, sizeof(msg), "bad upgrade response: %s", why);
        if (emit_error(c, msg))
            connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", msg, 0);
        return;
    }
    {
        mcpgw_client_event ev;
        struct bufferevent *bev = c->bev;

        event_del(c->deadline_ev);
        c->state = CS_OPEN;
        c->ever_open_this_attempt = 1;
        c->attempt = 0;
        c->gen++;
        memset(&ev, 0, sizeof(ev));
        ev.type = MCPGW_CLIENT_EV_CONNECTED;
        if (!emit(c, &ev) || c->bev != bev || c->state != CS_OPEN)
            return;
        /* Unanswered requests of the previous connection first (they are
         * older), then the offline queue, in order. */
        mcpgw_creq_resend_all_(c);
        flush_queue(c);
        read_frames(c);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    mcpgw_client *c = arg;
    (void)bev;

    mcpgw_cl_enter(c);
    switch (c->state) {
    case CS_UPGRADING:
        read_upgrade(c);
        break;
    case CS_REJECTED:
        if (c->resp.content_length >= 0
            && evbuffer_get_length(bufferevent_get_input(c->bev))
                   >= (size_t)c->resp.content_length)
            finish_rejected(c);
        break;
    case CS_OPEN:
    case CS_CLOSING:
        read_frames(c);
        break;
    default:
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
    }
    mcpgw_cl_leave(c);
}

static void describe_error(mcpgw_client *c, short what, char *buf, size_t cap)
{
    int dns_err = bufferevent_socket_get_dns_error(c->bev);
    unsigned long ssl_err = c->url.tls ? bufferevent_get_openssl_error(c->bev) : 0;

    if (dns_err) {
        snprintf(buf, cap, "cannot resolve %s: %s", c->url.host, evutil_gai_strerror(dns_err));
    } else if (ssl_err) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        char e[256];
        ERR_error_string_n(ssl_err, e, sizeof(e));
        if (vr != X509_V_OK)
            snprintf(buf, cap, "TLS: certificate verification failed: %s",
                     X509_verify_cert_error_string(vr));
        else
            snprintf(buf, cap, "TLS: %s", e);
        while (bufferevent_get_openssl_error(c->bev))
            ;
    } else if (what & BEV_EVENT_EOF) {
        snprintf(buf, cap, "connection closed by the server");
    } else {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(buf, cap, "%s:%d: %s", c->url.host, c->url.port,
                 e ? evutil_socket_error_to_string(e) : "connection failed");
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    mcpgw_client *c = arg;
    char msg[512];
    (void)bev;

    mcpgw_cl_enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        char *req = mcpgw_cup_request(c->url.host_header, c->target,
                                      c->o.token_in_header ? c->o.token : NULL, c->key,
                                      c->o.compression ? MCPGW_PMD_CLIENT_OFFER : NULL);
        if (!req) {
            if (emit_error(c, "out of memory"))
                connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", "out of memory", 0);
        } else {
            c->state = CS_UPGRADING;
            bufferevent_write(c->bev, req, strlen(req));
            free(req);
        }
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        switch (c->state) {
        case CS_REJECTED:
            finish_rejected(c);
            break;
        case CS_OPEN:
        case CS_CLOSING:
            /* Frames that arrived with the EOF are still processed. */
            read_frames(c);
            if (c->doomed || !c->bev)
                break;
            connection_over(c, c->got_close ? c->close_code : MCPGW_WS_CLOSE_ABNORMAL,
                            c->got_close ? c->close_reason : "", NULL, 0);
            break;
        case CS_CONNECTING:
        case CS_UPGRADING:
            describe_error(c, what, msg, sizeof(msg));
            if (emit_error(c, msg))
                connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", msg, 0);
            break;
        default:
            break;
        }
    }
    mcpgw_cl_leave(c);
}

/* ------------------------------------------------------------ connecting */

static int is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static SSL *new_ssl(mcpgw_client *c, char *err, size_t err_len)
{
    SSL *ssl = SSL_new(c->ssl_ctx);

    if (!ssl) {
        snprintf(err, err_len, "TLS: cannot create a session");
        return NULL;
    }
    if (!is_ip_literal(c->url.host))
        SSL_set_tlsext_host_name(ssl, c->url.host);
    if (!c->o.tls_insecure) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int ok = is_ip_literal(c->url.host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, c->url.host)
                                            : X509_VERIFY_PARAM_set1_host(vp, c->url.host, 0);
        if (ok != 1) {
            SSL_free(ssl);
            snprintf(err, err_len, "TLS: cannot set the expected host name");
            return NULL;
        }
    }
    return ssl;
}

static void start_attempt(mcpgw_client *c)
{
    char err[256];
    struct evdns_base *dns = NULL;

    free_bev(c);
    c->close_sent = c->got_close = 0;
    c->close_code = MCPGW_WS_CLOSE_NO_STATUS;
    c->close_reason[0] = '\0';
    c->ever_open_this_attempt = 0;
    mcpgw_cup_key(c->key);
    if (c->url.tls) {
        SSL *ssl = new_ssl(c, err, sizeof(err));
        if (!ssl)
            goto fail;
        c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            SSL_free(ssl);
            snprintf(err, sizeof(err), "cannot create a TLS bufferevent");
            goto fail;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            snprintf(err, sizeof(err), "cannot create a bufferevent");
            goto fail;
        }
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (!is_ip_literal(c->url.host)) {
        if (!c->dns)
            c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
        dns = c->dns;
    }
    c->state = CS_CONNECTING;
    arm(c->deadline_ev, c->o.connect_timeout_ms);
    if (bufferevent_socket_connect_hostname(c->bev, dns, AF_UNSPEC, c->url.host, c->url.port)
        != 0) {
        /* A synchronous failure may already have reported itself through
         * on_event; only report if the attempt is still ours. */
        if (c->state == CS_CONNECTING && c->bev) {
            snprintf(err, sizeof(err), "cannot connect to %s:%d", c->url.host, c->url.port);
            goto fail;
        }
    }
    return;

fail:
    c->state = CS_CONNECTING;
    if (emit_error(c, err))
        connection_over(c, MCPGW_WS_CLOSE_ABNORMAL, "", err, 0);
}

/* ------------------------------------------------------------ public: lifecycle */

static int setup_tls(mcpgw_client *c, char *err, size_t err_len)
{
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx) {
        snprintf(err, err_len, "TLS: cannot create a context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    if (c->o.tls_insecure) {
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (c->o.ca_file) {
        if (SSL_CTX_load_verify_locations(c->ssl_ctx, c->o.ca_file, NULL) != 1) {
            snprintf(err, err_len, "TLS: cannot load CA file %s", c->o.ca_file);
            return -1;
        }
    } else if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
        snprintf(err, err_len, "TLS: cannot load the system CA store");
        return -1;
    }
    return 0;
}

mcpgw_client *mcpgw_client_new(struct event_base *base, const char *url,
                               const mcpgw_client_opts *opts,
                               mcpgw_client_event_cb cb, void *arg,
                               char *err, size_t err_len)
{
    mcpgw_client *c = NULL;
    char dummy[1];

    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!base) {
        snprintf(err, err_len, "no event_base");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (opts)
        c->o = *opts;
    else
        mcpgw_client_opts_init(&c->o);
    c->o.token = NULL;
    c->o.ca_file = NULL;
    mcpgw_pmd_pool_init(&c->pmd_pool, Z_DEFAULT_COMPRESSION, 8);
    if (mcpgw_curl_parse(url, &c->url, err, err_len) != 0)
        goto fail;
    if (c->o.reconnect_factor < 1.0 || c->o.reconnect_jitter < 0 || c->o.reconnect_jitter > 10
        || c->o.reconnect_base_ms == 0 || c->o.max_message_bytes == 0
        || c->o.reconnect_max_attempts < 0 || c->o.connect_timeout_ms == 0) {
        snprintf(err, err_len, "invalid reconnect or size option");
        goto fail;
    }
    c->base = base;
    c->cb = cb;
    c->arg = arg;
    c->close_code = MCPGW_WS_CLOSE_NO_STATUS;
    if ((opts && opts->token && !(c->o.token = strdup(opts->token)))
        || (opts && opts->ca_file && !(c->o.ca_file = strdup(opts->ca_file)))) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    if (c->o.token && !c->o.token_in_header)
        c->target = mcpgw_curl_with_token(c->url.target, c->o.token);
    else
        c->target = strdup(c->url.target);
    c->reconnect_ev = evtimer_new(base, reconnect_fire, c);
    c->deadline_ev = evtimer_new(base, deadline_fire, c);
    if (!c->target || !c->reconnect_ev || !c->deadline_ev) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    mcpgw_cq_init(&c->q, c->o.queue_max_messages, c->o.queue_max_bytes,
                  c->o.queue_policy == MCPGW_QUEUE_DROP_OLDEST);
    if (c->url.tls && setup_tls(c, err, err_len) != 0)
        goto fail;
    return c;

fail:
    destroy(c);
    return NULL;
}

int mcpgw_client_connect(mcpgw_client *c)
{
    int rc = 0;

    if (!c)
        return -1;
    if (c->state != CS_IDLE && c->state != CS_CLOSED && c->state != CS_WAITING)
        return 0;                   /* connecting or connected already */
    mcpgw_cl_enter(c);
    c->intentional = 0;
    c->attempt = 0;
    event_del(c->reconnect_ev);
    start_attempt(c);
    if (!c->doomed && c->state != CS_CONNECTING && c->state != CS_UPGRADING)
        rc = -1;
    mcpgw_cl_leave(c);
    return rc;
}

void mcpgw_client_close(mcpgw_client *c)
{
    if (!c || c->doomed || c->intentional)
        return;
    mcpgw_cl_enter(c);
    c->intentional = 1;
    event_del(c->reconnect_ev);
    switch (c->state) {
    case CS_OPEN:
        send_close(c, MCPGW_WS_CLOSE_NORMAL, CLOSE_REASON_INTENTIONAL);
        c->state = CS_CLOSING;
        arm(c->deadline_ev, c->o.close_timeout_ms);
        break;
    case CS_CLOSING:
        break;                      /* already closing: it ends as intentional */
    case CS_CONNECTING:
    case CS_UPGRADING:
    case CS_REJECTED:
    case CS_WAITING:
        c->ever_open_this_attempt = 0;
        connection_over(c, MCPGW_WS_CLOSE_NORMAL, CLOSE_REASON_INTENTIONAL, NULL, 0);
        break;
    default:
        c->state = CS_IDLE;
        break;
    }
    mcpgw_cl_leave(c);
}

void mcpgw_client_free(mcpgw_client *c)
{
    if (!c)
        return;
    c->cb = NULL;
    if (c->busy) {
        c->doomed = 1;
        return;
    }
    destroy(c);
}

/* ------------------------------------------------------------ public: state */

int mcpgw_client_is_connected(const mcpgw_client *c)
{
    return c && c->state == CS_OPEN;
}

size_t mcpgw_client_queue_size(const mcpgw_client *c)
{
    return c ? c->q.count : 0;
}

size_t mcpgw_client_queue_bytes(const mcpgw_client *c)
{
    return c ? c->q.bytes : 0;
}

size_t mcpgw_client_pending_requests(const mcpgw_client *c)
{
    return c ? c->n_req : 0;
}

size_t mcpgw_client_outbound_bytes(const mcpgw_client *c)
{
    return c && c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

int mcpgw_client_compression_active(const mcpgw_client *c)
{
    return c && c->state == CS_OPEN && c->pmd.enabled;
}

int mcpgw_client_reconnect_attempt(const mcpgw_client *c)
{
    return c ? c->attempt : 0;
}
