/*
 * ws_frame.c - RFC 6455 section 5 frame headers: parse, policy check,
 * (un)masking, server header encoding, and close-code validity (7.4).
 *
 * Owns only byte-level framing, for both roles (server and client); no I/O,
 * no allocation, no connection state. Message-level rules (continuation
 * sequencing, size limits, UTF-8) belong to the connection code.
 */
#include "ws_frame.h"

#include <string.h>

/* Reads a big-endian 16- or 64-bit integer from p. */
static uint64_t be_read(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

mcpgw_ws_parse_result mcpgw_ws_parse_header(const uint8_t *buf, size_t len,
                                            mcpgw_ws_frame_header *h)
{
    mcpgw_ws_frame_header f;
    size_t pos = 2;
    unsigned len7;

    if (len < 2)
        return MCPGW_WS_PARSE_NEED_MORE;

    memset(&f, 0, sizeof f);
    f.fin = (buf[0] >> 7) & 1u;
    f.rsv = (buf[0] >> 4) & 7u;
    f.opcode = buf[0] & 0x0Fu;
    f.masked = (buf[1] >> 7) & 1u;
    len7 = buf[1] & 0x7Fu;

    if (len7 < 126) {
        f.payload_len = len7;
    } else if (len7 == 126) {
        if (len < pos + 2)
            return MCPGW_WS_PARSE_NEED_MORE;
        f.payload_len = be_read(buf + pos, 2);
        pos += 2;
        if (f.payload_len < 126)            /* should have used the 7-bit form */
            return MCPGW_WS_PARSE_ERROR;
    } else {
        if (len < pos + 8)
            return MCPGW_WS_PARSE_NEED_MORE;
        f.payload_len = be_read(buf + pos, 8);
        pos += 8;
        if (f.payload_len >> 63)            /* RFC 6455 5.2: MSB must be 0 */
            return MCPGW_WS_PARSE_ERROR;
        if (f.payload_len <= 0xFFFFu)       /* should have used the 16-bit form */
            return MCPGW_WS_PARSE_ERROR;
    }

    if (f.masked) {
        if (len < pos + 4)
            return MCPGW_WS_PARSE_NEED_MORE;
        memcpy(f.mask, buf + pos, 4);
        pos += 4;
    }

    f.header_len = pos;
    *h = f;
    return MCPGW_WS_PARSE_OK;
}

int mcpgw_ws_frame_check_role(const mcpgw_ws_frame_header *h, mcpgw_ws_role role,
                              unsigned allowed_rsv, const char **why)
{
    const char *reason = NULL;

    if (role == MCPGW_WS_ROLE_SERVER && !h->masked)
        reason = "client frame is not masked";
    else if (role == MCPGW_WS_ROLE_CLIENT && h->masked)
        reason = "masked frame from the server";
    else if (h->rsv & ~allowed_rsv & 4u)
        reason = "RSV1 set without a negotiated extension";
    else if (h->rsv & ~allowed_rsv & 2u)
        reason = "RSV2 set without a negotiated extension";
    else if (h->rsv & ~allowed_rsv & 1u)
        reason = "RSV3 set without a negotiated extension";
    else if ((h->opcode >= 0x3 && h->opcode <= 0x7) || h->opcode >= 0xB)
        reason = "unknown opcode";
    else if (h->opcode >= 0x8 && !h->fin)
        reason = "fragmented control frame";
    else if (h->opcode >= 0x8 && h->payload_len > MCPGW_WS_MAX_CONTROL)
        reason = "control frame payload longer than 125 bytes";
    else if ((h->rsv & 4u) && h->opcode == MCPGW_WS_OP_CONT)
        reason = "RSV1 set on a continuation frame";
    else if ((h->rsv & 4u) && h->opcode >= 0x8)
        reason = "RSV1 set on a control frame";

    if (!reason)
        return 0;
    if (why)
        *why = reason;
    return MCPGW_WS_CLOSE_PROTOCOL_ERROR;
}

int mcpgw_ws_frame_check(const mcpgw_ws_frame_header *h, unsigned allowed_rsv,
                         const char **why)
{
    return mcpgw_ws_frame_check_role(h, MCPGW_WS_ROLE_SERVER, allowed_rsv, why);
}

void mcpgw_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t m8[8];
    uint64_t mw, w;
    size_t i = 0, k;

    /* The mask rotated so that m8[0] applies to data[0]; repeated twice so
     * one 64-bit word covers 8 bytes. memcpy keeps it byte-order neutral
     * and alignment safe. */
    for (k = 0; k < 8; k++)
        m8[k] = mask[(offset + k) & 3u];
    memcpy(&mw, m8, sizeof mw);

    for (; len - i >= 8; i += 8) {
        memcpy(&w, data + i, sizeof w);
        w ^= mw;
        memcpy(data + i, &w, sizeof w);
    }
    for (k = 0; i < len; i++, k++)
        data[i] ^= m8[k];
}

size_t mcpgw_ws_encode_header(uint8_t *out, int opcode, unsigned rsv, uint64_t len)
{
    size_t i;

    /* len must be < 2^63 (RFC 6455 5.2); larger values are not encodable. */
    out[0] = (uint8_t)(0x80u | ((rsv & 7u) << 4) | ((unsigned)opcode & 0x0Fu));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFFu) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int mcpgw_ws_close_code_valid(unsigned code)
{
    /* 1000-1003 and 1007-1014 are defined (1012-1014 registered with IANA
     * after RFC 6455); 1004-1006 and 1015 must never appear on the wire;
     * 1016-2999 are reserved; 3000-4999 are for libraries and applications. */
    if (code >= 1000 && code <= 1003)
        return 1;
    if (code >= 1007 && code <= 1014)
        return 1;
    if (code >= 3000 && code <= 4999)
        return 1;
    return 0;
}
