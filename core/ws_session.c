/*
 * ws_session.c - the WebSocket session of an upgraded connection (RFC 6455,
 * RFC 7692): frames in (checks, control frames; messages assembled, inflated
 * and checked by ws_msg.c, a whole single frame where it lies),
 * the inbound rate limit, frames out (replies, shared broadcast frames,
 * heartbeat pings, the outbound cap), and the closing handshake. Complete
 * messages go to the connection's protocol (protocol.h); bytes come from
 * and go to its transport (transport.h). See ws_session.h.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conn.h"
#include "json_write.h"
#include "log.h"
#include "mcp_http.h"
#include "metrics.h"
#include "payload.h"
#include "pmd.h"
#include "protocol.h"
#include "server.h"
#include "transport.h"
#include "utf8.h"
#include "ws_frame.h"
#include "ws_msg.h"
#include "ws_session.h"

/* The reply scratch buffer keeps up to this much capacity between replies. */
#define MCPGW_REPLY_TEXT_KEEP 65536

/* What reading a data frame in pieces and assembling a message need, kept
 * only while there is one (c->ws_in): an idle connection holds a NULL
 * pointer. */
typedef struct mcpgw_ws_in {
    mcpgw_ws_msg msg;               /* the open message (msg.opcode 0: none) */
    mcpgw_ws_frame_header frame;    /* the data frame whose payload is arriving */
    uint64_t frame_got;             /* payload bytes of it read so far */
    int frame_open;                 /* 1 while that payload is still arriving */
} mcpgw_ws_in;

static void conn_fail(mcpgw_conn *c, unsigned code, const char *why);
static int handle_control(mcpgw_conn *c, const mcpgw_ws_frame_header *h, uint8_t *p);

void mcpgw_ws_session_start(mcpgw_conn *c)
{
    c->state = MCPGW_CONN_OPEN;
    c->alive = 1;
    c->srv->stats->ws_open = ++c->srv->n_open;
    c->rate_tat = 0;                /* the bucket starts full */
}

/* -------------------------------------------------------------- sending */

/* Past max_outbound_bytes is a slow reader only once its socket has been
 * offered what it holds: the flush list writes a fan-out a slice at a
 * time, and a connection late in it may hold several broadcasts its reader
 * has never been offered. Then they are written now, and what the socket
 * does not take is what counts. */
static int output_over_cap(mcpgw_conn *c)
{
    size_t cap = c->srv->gw->cfg->max_outbound_bytes;

    if (mcpgw_transport_queued(c->transport) <= cap)
        return 0;
    mcpgw_transport_flush_now(c->transport);
    /* (a write that failed is no slow reader: the list closes it) */
    return !c->transport->close_pending && mcpgw_transport_queued(c->transport) > cap;
}

/* A reader so slow that its queue passed the cap: stop queueing for it. */
static void conn_slow_consumer(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;

    srv->metrics->slow_consumer_closes++;
    mcpgw_server_log(srv, MCPGW_LOG_WARN, "websocket_slow_consumer", "{s:s, s:I, s:I}", "user",
                     c->user ? c->user : "", "connection", (json_int_t)c->id, "queued",
                     (json_int_t)mcpgw_transport_queued(c->transport));
    mcpgw_conn_close(c, MCPGW_WS_CLOSE_POLICY, "Slow consumer");
}

static inline void count_out(mcpgw_conn *c, size_t payload, size_t wire)
{
    mcpgw_server *srv = c->srv;

    srv->metrics->messages[MCPGW_DIR_OUT]++;
    srv->metrics->payload_bytes[MCPGW_DIR_OUT] += payload;
    srv->metrics->wire_bytes[MCPGW_DIR_OUT] += wire;
    c->messages[MCPGW_DIR_OUT]++;
    c->wire_bytes[MCPGW_DIR_OUT] += wire;
}

static void free_dumped(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* Queues a frame: a body that lies in the pool block of the message being
 * delivered (an echo) is referenced where it is, any other is copied once. */
static int send_frame(mcpgw_conn *c, int opcode, const void *body, size_t len)
{
    uint8_t header[MCPGW_WS_MAX_HEADER];
    size_t hlen = mcpgw_ws_encode_header(header, opcode, 0, len);
    mcpgw_block *b = c->srv->msg_buf;

    if (len && mcpgw_block_holds(b, body, len))
        return mcpgw_transport_queue_ref(c->transport, header, hlen, body, len, b);
    return mcpgw_transport_queue_copy(c->transport, header, hlen, body, len);
}

int mcpgw_conn_send_text(mcpgw_conn *c, const char *text, size_t len)
{
    if (c->state != MCPGW_CONN_OPEN)
        return -1;
    if (c->mcp_session)             /* a Streamable HTTP session: routed there */
        return mcpgw_mcp_session_emit(c, text, len);
    return mcpgw_conn_send_message(c, MCPGW_WS_OP_TEXT, text, len);
}

int mcpgw_conn_send_message(mcpgw_conn *c, int opcode, const void *data, size_t len)
{
    uint8_t header[MCPGW_WS_MAX_HEADER];
    const char *text = data;
    struct evbuffer *out;
    size_t hlen;

    if (c->state != MCPGW_CONN_OPEN || !c->transport)
        return -1;
    if (c->pmd.enabled && len >= c->srv->gw->cfg->compression.threshold) {
        size_t zlen;
        uint8_t *z = mcpgw_pmd_deflate(&c->srv->pmd_pool, &c->pmd_state, &c->pmd,
                                       (const uint8_t *)text, len, &zlen);
        if (!z)
            return -1;
        hlen = mcpgw_ws_encode_header(header, opcode, 4, zlen);
        out = mcpgw_transport_out(c->transport);
        if (evbuffer_add(out, header, hlen) != 0 ||
            evbuffer_add_reference(out, z, zlen, free_dumped, NULL) != 0) {
            free(z);
            return -1;
        }
        count_out(c, len, hlen + zlen);
    } else if (send_frame(c, opcode, text, len) != 0) {
        return -1;
    } else {
        count_out(c, len, len + (len < 126 ? 2 : len < 65536 ? 4 : 10));
    }
    if (output_over_cap(c))
        conn_slow_consumer(c);
    return 0;
}

int mcpgw_conn_send_json(mcpgw_conn *c, json_t *msg)
{
    mcpgw_jbuf *b = &c->srv->reply_text;
    int rc;

    if (c->state != MCPGW_CONN_OPEN)
        return -1;
    /* The text goes to the server's scratch buffer, is copied into the
     * output buffer (or compressed from it) and the scratch is free again
     * before anything else can run. */
    b->len = 0;
    if (mcpgw_json_write(b, msg) != 0)
        return -1;
    rc = mcpgw_conn_send_text(c, b->data, b->len);
    mcpgw_jbuf_reset(b, MCPGW_REPLY_TEXT_KEEP);
    return rc;
}

int mcpgw_conn_send_payload(mcpgw_conn *c, mcpgw_payload *p)
{
    if (c->state != MCPGW_CONN_OPEN)
        return -1;
    if (mcpgw_transport_queue_frame(c->transport, p) != 0)
        return -1;
    count_out(c, p->payload_len, p->len);
    if (output_over_cap(c))
        conn_slow_consumer(c);
    return 0;
}

void mcpgw_conn_send_ping(mcpgw_conn *c)
{
    static const uint8_t ping[2] = { 0x80 | MCPGW_WS_OP_PING, 0 };

    if (c->state == MCPGW_CONN_OPEN)
        evbuffer_add_reference(mcpgw_transport_out(c->transport), ping, sizeof(ping), NULL, NULL);
}

/* Sends a close frame with code and reason[0..rlen) (cut to what fits). */
static void send_close_frame_n(mcpgw_conn *c, unsigned code, const void *reason, size_t rlen)
{
    uint8_t body[MCPGW_WS_MAX_CONTROL];

    if (c->close_sent)
        return;
    if (rlen > sizeof(body) - 2)
        rlen = sizeof(body) - 2;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)(code & 0xff);
    if (rlen)
        memcpy(body + 2, reason, rlen);
    send_frame(c, MCPGW_WS_OP_CLOSE, body, 2 + rlen);
    c->close_sent = 1;
    c->close_code_sent = code;
    mcpgw_metrics_close(c->srv->metrics->close_sent, code);
}

static void send_close_frame(mcpgw_conn *c, unsigned code, const char *reason)
{
    send_close_frame_n(c, code, reason, reason ? strlen(reason) : 0);
}

void mcpgw_conn_close(mcpgw_conn *c, unsigned code, const char *reason)
{
    if (c->state != MCPGW_CONN_OPEN)
        return;
    if (c->mcp_session) {
        mcpgw_mcp_session_close(c, code, reason);
        return;
    }
    send_close_frame(c, code, reason);
    c->state = MCPGW_CONN_CLOSING;
    mcpgw_conn_start_linger(c, mcpgw_conn_linger_ms(c));
}

/* A protocol violation: send the close frame, then drop the connection
 * once it has left (RFC 6455 7.1.7). */
static void conn_fail(mcpgw_conn *c, unsigned code, const char *why)
{
    mcpgw_server *srv = c->srv;

    srv->metrics->errors[code == MCPGW_WS_CLOSE_INTERNAL ? MCPGW_ERR_SERVER : MCPGW_ERR_PROTOCOL]++;
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_protocol_error", "{s:s, s:I, s:i, s:s}",
                     "user", c->user ? c->user : "", "connection", (json_int_t)c->id, "code",
                     (int)code, "reason", why);
    send_close_frame(c, code, why);
    mcpgw_conn_drain(c);
}

/* -------------------------------------------------------------- frames */

static void handle_close_frame(mcpgw_conn *c, const uint8_t *p, size_t len)
{
    unsigned code = MCPGW_WS_CLOSE_NO_STATUS;

    if (len == 1) {
        conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Invalid close frame");
        return;
    }
    if (len >= 2) {
        code = ((unsigned)p[0] << 8) | p[1];
        if (!mcpgw_ws_close_code_valid(code)) {
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Invalid close code");
            return;
        }
        if (!mcpgw_utf8_valid(p + 2, len - 2)) {
            conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in close reason");
            return;
        }
    }
    c->close_code_received = code;
    mcpgw_metrics_close(c->srv->metrics->close_received, code);
    if (!c->close_sent) {
        /* Echo the code and the reason (RFC 6455 5.5.1, as Node's ws does);
         * an empty close gets an empty one. */
        if (len >= 2)
            send_close_frame_n(c, code, p + 2, len - 2);
        else {
            send_frame(c, MCPGW_WS_OP_CLOSE, NULL, 0);
            c->close_sent = 1;
        }
    }
    mcpgw_conn_drain(c);
}

static int handle_control(mcpgw_conn *c, const mcpgw_ws_frame_header *h, uint8_t *p)
{
    switch (h->opcode) {
    case MCPGW_WS_OP_PING:
        if (c->state == MCPGW_CONN_OPEN)
            send_frame(c, MCPGW_WS_OP_PONG, p, (size_t)h->payload_len);
        return 0;
    case MCPGW_WS_OP_PONG:
        c->alive = 1;
        return 0;
    case MCPGW_WS_OP_CLOSE:
        handle_close_frame(c, p, (size_t)h->payload_len);
        return -1;
    }
    return 0;
}

/* The inbound rate limit: a token bucket per connection (rate_limit_per_s,
 * burst tokens), kept as its theoretical arrival time (GCRA): the bucket
 * holds burst - (tat - now) * rate tokens, full once tat <= now, and a
 * message takes one by moving tat 1/rate on. One double, not a count and a
 * time; seconds since the accept, so that the steps of 1/rate are not lost
 * in the epoch's magnitude. Returns 1 when the message may be handled, 0
 * when it was refused (answered, or the connection closed for sustained
 * abuse). */
static int rate_limit_admit(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    const mcpgw_config *cfg = srv->gw->cfg;
    double now, age, burst, rate = cfg->rate_limit_per_s;

    if (rate <= 0)
        return 1;
    now = mcpgw_clock_seconds(&srv->clock);
    burst = cfg->rate_limit_burst > 0 ? cfg->rate_limit_burst : (rate > 1 ? rate : 1);
    age = now - c->accepted_at;
    if (c->rate_tat < age)
        c->rate_tat = age;
    /* at least one token (with a little slack for the sum of 1/rate steps) */
    if ((c->rate_tat - age) * rate <= burst - 1 + 1e-6) {
        c->rate_tat += 1 / rate;
        return 1;
    }
    if (now - c->violations_since > 10.0) {
        c->violations_since = now;
        c->violations = 0;
    }
    if (++c->violations > cfg->rate_limit_max_violations) {
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "websocket_rate_limited", "{s:s, s:I, s:i}", "user",
                         c->user ? c->user : "", "connection", (json_int_t)c->id, "violations",
                         c->violations);
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_POLICY, "Rate limit exceeded");
        return 0;
    }
    c->protocol->refused(c, "Rate limit exceeded", "Too many messages: slow down");
    return 0;
}

/* The message context of connection c: its size limit and its inflater. */
static inline mcpgw_ws_msg_ctx msg_ctx(mcpgw_conn *c)
{
    mcpgw_ws_msg_ctx ctx;

    ctx.max = c->srv->gw->cfg->max_payload;
    ctx.pool = &c->srv->pmd_pool;
    ctx.state = &c->pmd_state;
    ctx.params = &c->pmd;
    return ctx;
}

/* A message could not be completed (ws_msg.h's close code): fails the
 * connection; an inflate stopped at a large limit gives its memory back. */
static void message_fail(mcpgw_conn *c, int code, const char *why)
{
    if (code == MCPGW_WS_CLOSE_TOO_BIG && c->srv->gw->cfg->max_payload >= MCPGW_RELEASE_AFTER)
        mcpgw_server_release_memory(c->srv);
    conn_fail(c, (unsigned)code, why);
}

/* The message being assembled, or NULL. */
static inline mcpgw_ws_msg *open_msg(const mcpgw_conn *c)
{
    return c->ws_in && c->ws_in->msg.opcode ? &c->ws_in->msg : NULL;
}

void mcpgw_ws_session_free_input(mcpgw_conn *c)
{
    mcpgw_ws_in *w = c->ws_in;

    if (!w)
        return;
    c->ws_in = NULL;
    if (w->msg.cap >= MCPGW_RELEASE_AFTER)
        mcpgw_server_release_memory(c->srv);
    mcpgw_ws_msg_clear(&w->msg);
    free(w);
}

/* A whole, checked message has arrived: counts and delivers it. Returns -1
 * when the connection was failed or closed. */
static int message_deliver(mcpgw_conn *c, const mcpgw_ws_message *m)
{
    c->srv->metrics->messages[MCPGW_DIR_IN]++;
    c->srv->metrics->payload_bytes[MCPGW_DIR_IN] += m->len;
    c->srv->metrics->wire_bytes[MCPGW_DIR_IN] += m->wire_len;
    c->messages[MCPGW_DIR_IN]++;
    c->wire_bytes[MCPGW_DIR_IN] += m->wire_len;
    if (c->state == MCPGW_CONN_OPEN && rate_limit_admit(c)) {
        int gone;
        mcpgw_conn_ref(c);
        c->protocol->message(c, m->data, m->len, m->binary);
        gone = c->state == MCPGW_CONN_GONE;
        mcpgw_conn_unref(c);
        if (gone)
            return -1;
    }
    return 0;
}

/* The last frame of the assembled message has arrived: finishes (inflates,
 * checks) and delivers it, and frees the assembly: an idle connection
 * keeps none. */
static int message_complete(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;     /* c may be gone after the delivery */
    mcpgw_ws_msg_ctx ctx = msg_ctx(c);
    mcpgw_ws_msg m = c->ws_in->msg; /* its frame is over: the input goes */
    mcpgw_ws_message msg;
    const char *why;
    size_t big = m.cap;
    int code, rc;

    free(c->ws_in);
    c->ws_in = NULL;
    if ((code = mcpgw_ws_msg_finish(&m, &ctx, &msg, &why)) != 0) {
        mcpgw_ws_msg_clear(&m);
        message_fail(c, code, why);
        return -1;
    }
    rc = message_deliver(c, &msg);
    if (msg.len > big)
        big = msg.len;
    mcpgw_ws_message_release(&msg);
    mcpgw_ws_msg_clear(&m);
    /* give a large message's memory back (its JSON parse, too, is freed by now) */
    if (big >= MCPGW_RELEASE_AFTER)
        mcpgw_server_release_memory(srv);
    return rc;
}

/* A whole single-frame message lies in one piece of the input, in the pool
 * block the transport read last: unmasked where it lies and delivered from
 * there (inflated from there when compressed), without a copy and without
 * an assembly; a reply that echoes it references the same block
 * (send_frame). Returns 1 when it was handled, 0 when it must take the
 * assembling path, -1 when the connection was failed or closed. */
static int frame_in_place(mcpgw_conn *c, struct evbuffer *in, const mcpgw_ws_frame_header *h)
{
    mcpgw_server *srv = c->srv;
    size_t total = h->header_len + (size_t)h->payload_len, len = (size_t)h->payload_len;
    mcpgw_ws_msg_ctx ctx = msg_ctx(c);
    mcpgw_ws_message m;
    mcpgw_block *b, *outer;
    const char *why;
    uint8_t *p;
    int rc;

    if (evbuffer_get_contiguous_space(in) < total ||
        !(p = evbuffer_pullup(in, (ev_ssize_t)total)) ||
        !(b = mcpgw_transport_in_buf(c->transport, p, total)))
        return 0;
    mcpgw_block_ref(b);               /* the input lets go of the frame now */
    evbuffer_drain(in, total);
    p += h->header_len;
    mcpgw_ws_unmask(p, len, h->mask, 0);
    if ((rc = mcpgw_ws_msg_whole(h, p, len, &ctx, &m, &why)) != 0) {
        mcpgw_block_unref(b);
        message_fail(c, rc, why);
        return -1;
    }
    outer = srv->msg_buf;           /* (a message delivered inside another's delivery) */
    srv->msg_buf = b;
    rc = message_deliver(c, &m);
    srv->msg_buf = outer;
    mcpgw_block_unref(b);
    mcpgw_ws_message_release(&m);
    if (m.len >= MCPGW_RELEASE_AFTER || len >= MCPGW_RELEASE_AFTER)
        mcpgw_server_release_memory(srv);
    return rc < 0 ? -1 : 1;
}

/* Reads what has arrived of the open data frame's payload into the message
 * being assembled: unmasked, and for uncompressed text checked as UTF-8 at
 * once (ws_msg.h), so that a message is failed (1007) as soon as its bytes
 * so far cannot begin valid text, without waiting for the rest of the frame
 * or for its other fragments (RFC 6455 8.1, Autobahn 6.4.x). Delivers the
 * message after its last byte. After our close (CLOSING) the payload is
 * dropped. Returns -1 when the connection was failed or closed. */
static int data_frame_read(mcpgw_conn *c, struct evbuffer *in)
{
    mcpgw_ws_in *w = c->ws_in;
    uint64_t left = w->frame.payload_len - w->frame_got;
    size_t avail = evbuffer_get_length(in);
    size_t n = avail < left ? avail : (size_t)left;

    if (c->state != MCPGW_CONN_OPEN || !w->msg.opcode) {
        evbuffer_drain(in, n);
        w->frame_got += n;
        if (w->frame_got == w->frame.payload_len) {
            w->frame_open = 0;
            if (!w->msg.opcode)
                mcpgw_ws_session_free_input(c);
        }
        return 0;
    }
    if (n) {
        size_t end = w->frame.fin ? w->msg.len + (size_t)left : 0;
        uint8_t *p = mcpgw_ws_msg_reserve(&w->msg, n, end);
        const char *why;
        int code;

        if (!p) {
            conn_fail(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
            return -1;
        }
        evbuffer_remove(in, p, n);
        mcpgw_ws_unmask(p, n, w->frame.mask, (size_t)w->frame_got);
        if ((code = mcpgw_ws_msg_commit(&w->msg, n, &why)) != 0) {
            conn_fail(c, (unsigned)code, why);
            return -1;
        }
        w->frame_got += n;
    }
    if (w->frame_got < w->frame.payload_len)
        return 0;                   /* the rest of the frame is still to come */
    w->frame_open = 0;
    return w->frame.fin ? message_complete(c) : 0;
}

/* Processes every frame in the input buffer: control frames once whole,
 * data frames as their payload arrives. */
void mcpgw_ws_read_frames(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    struct evbuffer *in = mcpgw_transport_in(c->transport);

    while (c->state == MCPGW_CONN_OPEN || c->state == MCPGW_CONN_CLOSING) {
        uint8_t hbuf[MCPGW_WS_MAX_HEADER];
        uint8_t control[MCPGW_WS_MAX_CONTROL];
        mcpgw_ws_frame_header h;
        size_t avail;
        ev_ssize_t got;
        const char *why = NULL;
        int code;

        if (c->ws_in && c->ws_in->frame_open) {
            if (data_frame_read(c, in) < 0 || (c->ws_in && c->ws_in->frame_open))
                return;             /* failed, or waiting for more payload */
            continue;
        }
        avail = evbuffer_get_length(in);
        if (avail < 2)
            return;
        got = evbuffer_copyout(in, hbuf, avail < sizeof(hbuf) ? avail : sizeof(hbuf));
        if (got < 2)
            return;
        switch (mcpgw_ws_parse_header(hbuf, (size_t)got, &h)) {
        case MCPGW_WS_PARSE_NEED_MORE:
            return;
        case MCPGW_WS_PARSE_ERROR:
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Invalid frame length");
            return;
        case MCPGW_WS_PARSE_OK:
            break;
        }
        code = mcpgw_ws_frame_check(&h, c->pmd.enabled ? 4u : 0u, &why);
        if (!code && (h.rsv & 4) && (h.opcode >= MCPGW_WS_OP_CLOSE || h.opcode == MCPGW_WS_OP_CONT)) {
            /* RFC 7692 6.1: RSV1 only on the first frame of a data message. */
            code = MCPGW_WS_CLOSE_PROTOCOL_ERROR;
            why = h.opcode == MCPGW_WS_OP_CONT ? "RSV1 set on a continuation frame"
                                               : "RSV1 set on a control frame";
        }
        if (code) {
            conn_fail(c, (unsigned)code, why);
            return;
        }
        if (h.opcode < MCPGW_WS_OP_CLOSE) {
            /* a data frame: its place in the message and the size limit
             * (after our close only the limit: its payload is dropped) */
            if (c->state == MCPGW_CONN_OPEN)
                code = mcpgw_ws_msg_check(open_msg(c), &h, srv->gw->cfg->max_payload, &why);
            else if (h.payload_len > srv->gw->cfg->max_payload) {
                code = MCPGW_WS_CLOSE_TOO_BIG;
                why = "Message too big";
            }
            if (code) {
                conn_fail(c, (unsigned)code, why);
                return;
            }
        }

        if (h.opcode >= MCPGW_WS_OP_CLOSE) {
            if (avail < h.header_len + h.payload_len)
                return;             /* a control frame is handled whole */
            evbuffer_drain(in, h.header_len);
            evbuffer_remove(in, control, (size_t)h.payload_len);
            mcpgw_ws_unmask(control, (size_t)h.payload_len, h.mask, 0);
            if (handle_control(c, &h, control) < 0)
                return;
            continue;
        }
        if (c->state == MCPGW_CONN_OPEN && h.fin && h.opcode != MCPGW_WS_OP_CONT &&
            !open_msg(c) && avail >= h.header_len + h.payload_len) {
            int rc = frame_in_place(c, in, &h);

            if (rc < 0)
                return;
            if (rc > 0)
                continue;
        }
        evbuffer_drain(in, h.header_len);
        if (!c->ws_in && !(c->ws_in = calloc(1, sizeof(*c->ws_in)))) {
            conn_fail(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
            return;
        }
        if (c->state == MCPGW_CONN_OPEN && h.opcode != MCPGW_WS_OP_CONT)
            mcpgw_ws_msg_init(&c->ws_in->msg, &h);
        c->ws_in->frame = h;        /* after our close its payload is dropped */
        c->ws_in->frame_got = 0;
        c->ws_in->frame_open = 1;
    }
}
