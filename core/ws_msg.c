/*
 * ws_msg.c - the message assembler of both ends (RFC 6455 5.4, RFC 7692):
 * continuation rules, the size limit, incremental UTF-8 over uncompressed
 * text, the bounded inflate of a compressed message. See ws_msg.h.
 */
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "ws_msg.h"

/* Above this, the buffer of a message's last frame is sized exactly. */
#define MSG_EXACT_ABOVE 65536
#define MSG_FIRST_CAP 256

#define FAIL(code, text) (*why = (text), (code))

int mcpgw_ws_msg_check(const mcpgw_ws_msg *m, const mcpgw_ws_frame_header *h, size_t max,
                       const char **why)
{
    size_t have = m ? m->len : 0;

    if (h->opcode == MCPGW_WS_OP_CONT && !m)
        return FAIL(MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Unexpected continuation frame");
    if (h->opcode != MCPGW_WS_OP_CONT && m)
        return FAIL(MCPGW_WS_CLOSE_PROTOCOL_ERROR, "Expected continuation frame");
    if (have > max || h->payload_len > max - have)
        return FAIL(MCPGW_WS_CLOSE_TOO_BIG, "Message too big");
    return 0;
}

void mcpgw_ws_msg_init(mcpgw_ws_msg *m, const mcpgw_ws_frame_header *h)
{
    memset(m, 0, sizeof(*m));
    m->opcode = (uint8_t)h->opcode;
    m->compressed = (h->rsv & 4) != 0;
    m->utf8 = MCPGW_UTF8_ACCEPT;
}

void mcpgw_ws_msg_clear(mcpgw_ws_msg *m)
{
    free(m->data);
    memset(m, 0, sizeof(*m));
}

mcpgw_ws_msg *mcpgw_ws_msg_open(const mcpgw_ws_frame_header *h)
{
    mcpgw_ws_msg *m = malloc(sizeof(*m));

    if (m)
        mcpgw_ws_msg_init(m, h);
    return m;
}

uint8_t *mcpgw_ws_msg_reserve(mcpgw_ws_msg *m, size_t n, size_t end)
{
    size_t need = m->len + n;

    if (need < m->len)
        return NULL;
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : MSG_FIRST_CAP;
        uint8_t *d;

        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        /* a large message's last frame: no more than it will take */
        if (end >= need && end > MSG_EXACT_ABOVE && cap > end)
            cap = end;
        if (!(d = realloc(m->data, cap)))
            return NULL;
        m->data = d;
        m->cap = cap;
    }
    return m->data + m->len;
}

int mcpgw_ws_msg_commit(mcpgw_ws_msg *m, size_t n, const char **why)
{
    const uint8_t *p = m->data + m->len;

    m->len += n;
    if (m->opcode == MCPGW_WS_OP_TEXT && !m->compressed && n &&
        (m->utf8 = mcpgw_utf8_feed(m->utf8, p, n)) == MCPGW_UTF8_REJECT)
        return FAIL(MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
    return 0;
}

int mcpgw_ws_msg_append(mcpgw_ws_msg *m, const uint8_t *p, size_t n, const char **why)
{
    uint8_t *dst;

    if (!n)
        return 0;
    if (!(dst = mcpgw_ws_msg_reserve(m, n, 0)))
        return FAIL(MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
    memcpy(dst, p, n);
    return mcpgw_ws_msg_commit(m, n, why);
}

/* The one completion step of an assembled and of a whole message:
 * p[0..len) as received; utf8_left says its uncompressed text is still to
 * be checked whole (else it was checked as it came: state utf8). */
static int complete(int opcode, int compressed, const uint8_t *p, size_t len, int utf8_left,
                    uint32_t utf8, const mcpgw_ws_msg_ctx *ctx, mcpgw_ws_message *out,
                    const char **why)
{
    int text = opcode == MCPGW_WS_OP_TEXT;

    memset(out, 0, sizeof(*out));
    out->binary = !text;
    out->wire_len = len;
    out->data = len ? p : (const uint8_t *)"";
    out->len = len;
    if (compressed) {
        uint8_t *z = NULL;
        size_t zlen = 0;

        if (!ctx->params || !ctx->params->enabled)
            return FAIL(MCPGW_WS_CLOSE_PROTOCOL_ERROR, "RSV1 set without permessage-deflate");
        switch (mcpgw_pmd_inflate(ctx->pool, ctx->state, ctx->params, p, len, ctx->max, &z,
                                  &zlen)) {
        case MCPGW_PMD_OK:
            break;
        case MCPGW_PMD_TOO_BIG:     /* inflated up to max, then freed */
            return FAIL(MCPGW_WS_CLOSE_TOO_BIG, "Message too big");
        case MCPGW_PMD_CORRUPT:
            return FAIL(MCPGW_WS_CLOSE_INVALID_DATA, "Invalid compressed data");
        default:
            return FAIL(MCPGW_WS_CLOSE_INTERNAL, "Out of memory");
        }
        out->owned = z;
        out->data = zlen ? z : (const uint8_t *)"";
        out->len = zlen;
        /* compressed text can only be checked once inflated: whole */
        if (text && !mcpgw_utf8_valid(out->data, zlen)) {
            mcpgw_ws_message_release(out);
            return FAIL(MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
        }
        return 0;
    }
    if (text && (utf8_left ? !mcpgw_utf8_valid(out->data, len) : utf8 != MCPGW_UTF8_ACCEPT))
        return FAIL(MCPGW_WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
    return 0;
}

int mcpgw_ws_msg_finish(mcpgw_ws_msg *m, const mcpgw_ws_msg_ctx *ctx, mcpgw_ws_message *out,
                        const char **why)
{
    /* every byte of uncompressed text was checked as it came: only a cut
     * sequence is left to find */
    return complete(m->opcode, m->compressed, m->data, m->len, 0, m->utf8, ctx, out, why);
}

int mcpgw_ws_msg_whole(const mcpgw_ws_frame_header *h, const uint8_t *p, size_t len,
                       const mcpgw_ws_msg_ctx *ctx, mcpgw_ws_message *out, const char **why)
{
    return complete(h->opcode, (h->rsv & 4) != 0, p, len, 1, MCPGW_UTF8_ACCEPT, ctx, out, why);
}

void mcpgw_ws_message_release(mcpgw_ws_message *out)
{
    if (out) {
        free(out->owned);
        out->owned = NULL;
    }
}

void mcpgw_ws_msg_free(mcpgw_ws_msg *m)
{
    if (m) {
        mcpgw_ws_msg_clear(m);
        free(m);
    }
}
