/*
 * ws_session.c - the WebSocket session of an upgraded connection (RFC 6455,
 * RFC 7692): frames in (checks, control frames, reassembly, inflate, UTF-8),
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
#include "ws_session.h"

/* The reply scratch buffer keeps up to this much capacity between replies. */
#define MCPGW_REPLY_TEXT_KEEP 65536
/* A connection's reassembly buffer keeps up to this much between messages. */
#define MCPGW_MSG_KEEP 65536

static void conn_fail(mcpgw_conn *c, unsigned code, const char *why);
static int handle_control(mcpgw_conn *c, const mcpgw_ws_frame_header *h, uint8_t *p);

void mcpgw_ws_session_start(mcpgw_conn *c)
{
    const mcpgw_config *cfg = c->srv->gw->cfg;

    c->state = MCPGW_CONN_OPEN;
    c->alive = 1;
    c->srv->stats->ws_open = ++c->srv->n_open;
    c->rate_tokens = cfg->rate_limit_burst > 0
                         ? cfg->rate_limit_burst
                         : (cfg->rate_limit_per_s > 1 ? cfg->rate_limit_per_s : 1);
    c->rate_stamp = mcpgw_clock_seconds(&c->srv->clock);
}

/* -------------------------------------------------------------- sending */

static int output_over_cap(mcpgw_conn *c)
{
    return mcpgw_transport_queued(c->transport) > c->srv->gw->cfg->max_outbound_bytes;
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

/* The inbound rate limit (a token bucket per connection). Returns 1 when
 * the message may be handled, 0 when it was refused (answered, or the
 * connection closed for sustained abuse). */
static int rate_limit_admit(mcpgw_conn *c)
{
    mcpgw_server *srv = c->srv;
    const mcpgw_config *cfg = srv->gw->cfg;
    double now, burst;

    if (cfg->rate_limit_per_s <= 0)
        return 1;
    now = mcpgw_clock_seconds(&srv->clock);
    burst = cfg->rate_limit_burst > 0 ? cfg->rate_limit_burst
                                      : (cfg->rate_limit_per_s > 1 ? cfg->rate_limit_per_s : 1);
    c->rate_tokens += (now - c->rate_stamp) * cfg->rate_limit_per_s;
    if (c->rate_tokens > burst)
        c->rate_tokens = burst;
    c->rate_stamp = now;
    if (c->rate_tokens >= 1) {
        c->rate_tokens -= 1;
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

/* A data frame's header has arrived: checks where it stands in the message
 * (a first frame or a continuation) and opens the message on a first frame.
 * Returns -1 when the connection was failed. */
static int data_frame_begin(mcpgw_conn *c, const mcpgw_ws_frame_header *h)
{
    if (h->opcode == MCPGW_WS_OP_CONT) {
        if (!c->msg_opcode) {
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Unexpected continuation frame");
            return -1;
        }
    } else {
        if (c->msg_opcode) {
            conn_fail(c, MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Expected continuation frame");
            return -1;
        }
        c->msg_opcode = h->opcode;
        c->msg_compressed = (h->rsv & 4) != 0;
        c->msg_utf8 = MCPGW_UTF8_ACCEPT;
        c->msg_len = 0;
    }
    return 0;
}

/* A whole message has arrived, wire[0..wire_len) as received (unmasked):
 * inflates it when compressed, checks what is left to check of its UTF-8,
 * counts and delivers it. Returns -1 when the connection was failed or
 * closed. */
static int message_deliver(mcpgw_conn *c, const uint8_t *wire, size_t wire_len)
{
    const uint8_t *data = wire ? wire : (const uint8_t *)"";
    size_t data_len = wire_len;
    uint8_t *inflated = NULL;
    int binary = c->msg_opcode == MCPGW_WS_OP_BINARY;

    if (c->msg_compressed) {
        switch (mcpgw_pmd_inflate(&c->srv->pmd_pool, &c->pmd_state, &c->pmd, wire, wire_len,
                                  c->srv->gw->cfg->max_payload, &inflated, &data_len)) {
        case MCPGW_PMD_OK:
            data = inflated;
            break;
        case MCPGW_PMD_TOO_BIG:     /* inflated up to max_payload, then freed */
            if (c->srv->gw->cfg->max_payload >= MCPGW_RELEASE_AFTER)
                mcpgw_server_release_memory(c->srv);
            conn_fail(c, MCPGW_WS_CLOSE_TOO_BIG, "Message too big");
            return -1;
        case MCPGW_PMD_CORRUPT:
            conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid compressed data");
            return -1;
        case MCPGW_PMD_NOMEM:
            conn_fail(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
            return -1;
        }
        /* Compressed text can only be checked once inflated: whole. */
        if (!binary && !mcpgw_utf8_valid(data, data_len)) {
            free(inflated);
            conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
            return -1;
        }
    } else if (!binary && c->msg_utf8 != MCPGW_UTF8_ACCEPT) {
        /* every byte was checked as it came: only a cut sequence is left */
        conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
        return -1;
    }
    c->msg_opcode = 0;
    c->msg_compressed = 0;
    c->srv->metrics->messages[MCPGW_DIR_IN]++;
    c->srv->metrics->payload_bytes[MCPGW_DIR_IN] += data_len;
    c->srv->metrics->wire_bytes[MCPGW_DIR_IN] += wire_len;
    c->messages[MCPGW_DIR_IN]++;
    c->wire_bytes[MCPGW_DIR_IN] += wire_len;
    if (c->state == MCPGW_CONN_OPEN && rate_limit_admit(c)) {
        int gone;
        mcpgw_conn_ref(c);
        c->protocol->message(c, data, data_len, binary);
        gone = c->state == MCPGW_CONN_GONE;
        mcpgw_conn_unref(c);
        if (gone) {
            free(inflated);
            return -1;
        }
    }
    free(inflated);
    if (data_len >= MCPGW_RELEASE_AFTER || wire_len >= MCPGW_RELEASE_AFTER)
        mcpgw_server_release_memory(c->srv);
    return 0;
}

/* The last frame of an assembled message has arrived: delivers it. */
static int message_complete(mcpgw_conn *c)
{
    if (message_deliver(c, c->msg, c->msg_len) < 0)
        return -1;
    /* Do not keep a large buffer for an idle connection, and give a large
     * message's memory back (its JSON parse, too, is freed by now). */
    if (c->msg_cap > MCPGW_MSG_KEEP) {
        free(c->msg);
        c->msg = NULL;
        c->msg_cap = 0;
    }
    c->msg_len = 0;
    return 0;
}

/* A whole single-frame message lies in one piece of the input, in the pool
 * block the transport read last: unmasked where it lies and delivered from
 * there (inflated from there when compressed), without a copy; a reply
 * that echoes it references the same block (send_frame). Returns 1 when
 * it was handled, 0 when it must take the assembling path, -1 when the
 * connection was failed or closed. */
static int frame_in_place(mcpgw_conn *c, struct evbuffer *in, const mcpgw_ws_frame_header *h)
{
    mcpgw_server *srv = c->srv;
    size_t total = h->header_len + (size_t)h->payload_len, len = (size_t)h->payload_len;
    mcpgw_block *b, *outer;
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
    c->msg_opcode = h->opcode;
    c->msg_compressed = (h->rsv & 4) != 0;
    c->msg_utf8 = MCPGW_UTF8_ACCEPT;
    if (h->opcode == MCPGW_WS_OP_TEXT && !c->msg_compressed && !mcpgw_utf8_valid(p, len)) {
        mcpgw_block_unref(b);
        conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
        return -1;
    }
    outer = srv->msg_buf;           /* (a message delivered inside another's delivery) */
    srv->msg_buf = b;
    rc = message_deliver(c, len ? p : NULL, len);
    srv->msg_buf = outer;
    mcpgw_block_unref(b);
    return rc < 0 ? -1 : 1;
}

/* Reads what has arrived of the open data frame's payload into the message
 * being assembled: unmasked, and for uncompressed text checked as UTF-8 at
 * once, so that a message is failed (1007) as soon as its bytes so far
 * cannot begin valid text, without waiting for the rest of the frame or for
 * its other fragments (RFC 6455 8.1, Autobahn 6.4.x). Delivers the message
 * after its last byte. After our close (CLOSING) the payload is dropped.
 * Returns -1 when the connection was failed or closed. */
static int data_frame_read(mcpgw_conn *c, struct evbuffer *in)
{
    uint64_t left = c->frame.payload_len - c->frame_got;
    size_t avail = evbuffer_get_length(in);
    size_t n = avail < left ? avail : (size_t)left;

    if (c->state != MCPGW_CONN_OPEN) {
        evbuffer_drain(in, n);
        c->frame_got += n;
        if (c->frame_got == c->frame.payload_len)
            c->frame_open = 0;
        return 0;
    }
    if (c->msg_len + n > c->msg_cap) {
        size_t need = c->msg_len + n, end = c->msg_len + (size_t)left;
        size_t cap = c->msg_cap ? c->msg_cap : 256;
        uint8_t *m;

        while (cap < need)
            cap *= 2;
        /* a large message's last frame: no more than it will take */
        if (c->frame.fin && end > MCPGW_MSG_KEEP && cap > end)
            cap = end;
        m = realloc(c->msg, cap);
        if (!m) {
            conn_fail(c, MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
            return -1;
        }
        c->msg = m;
        c->msg_cap = cap;
    }
    if (n) {        /* an empty first frame leaves c->msg NULL */
        uint8_t *p = c->msg + c->msg_len;

        evbuffer_remove(in, p, n);
        mcpgw_ws_unmask(p, n, c->frame.mask, (size_t)c->frame_got);
        if (c->msg_opcode == MCPGW_WS_OP_TEXT && !c->msg_compressed &&
            (c->msg_utf8 = mcpgw_utf8_feed(c->msg_utf8, p, n)) == MCPGW_UTF8_REJECT) {
            conn_fail(c, MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
            return -1;
        }
        c->msg_len += n;
        c->frame_got += n;
    }
    if (c->frame_got < c->frame.payload_len)
        return 0;                   /* the rest of the frame is still to come */
    c->frame_open = 0;
    return c->frame.fin ? message_complete(c) : 0;
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

        if (c->frame_open) {
            if (data_frame_read(c, in) < 0 || c->frame_open)
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
        if (h.opcode < MCPGW_WS_OP_CLOSE &&
            (h.payload_len > srv->gw->cfg->max_payload ||
             c->msg_len + h.payload_len > srv->gw->cfg->max_payload)) {
            conn_fail(c, MCPGW_WS_CLOSE_TOO_BIG, "Message too big");
            return;
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
            !c->msg_opcode && avail >= h.header_len + h.payload_len) {
            int rc = frame_in_place(c, in, &h);

            if (rc < 0)
                return;
            if (rc > 0)
                continue;
        }
        evbuffer_drain(in, h.header_len);
        if (c->state == MCPGW_CONN_OPEN && data_frame_begin(c, &h) < 0)
            return;
        c->frame = h;               /* after our close its payload is dropped */
        c->frame_got = 0;
        c->frame_open = 1;
    }
}
