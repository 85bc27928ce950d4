/*
 * fuzz_ws_frame.c - libFuzzer target for the RFC 6455 frame layer:
 * core/ws_frame.c (header parse, policy check, unmask, header encode, close
 * codes) and core/utf8.c (whole-buffer and incremental validation).
 *
 * The input is read as a stream of frames, as ws_session.c (the server role:
 * client frames) or the client library (the client role) reads them; the
 * first byte's bits choose RSV1 allowed (1) and the role (2).
 * For each frame it checks, and traps on a mismatch:
 *  - a parsed header is self-consistent (header_len matches the length form
 *    and mask bit, the length form is minimal) and every shorter prefix of
 *    it gives NEED_MORE; a PARSE_ERROR is exactly a non-minimal length or a
 *    64-bit length with the MSB set;
 *  - the server encoder round-trips through the parser;
 *  - mcpgw_ws_frame_check_role() agrees with an independent reading of
 *    RFC 6455 (and RFC 7692 6.1), and mcpgw_ws_frame_check() with it;
 *  - unmasking in random pieces equals unmasking at once, and twice is the
 *    identity;
 *  - mcpgw_utf8_feed() over random splits of the unmasked payload gives the
 *    same verdict as mcpgw_utf8_valid() on the whole and as a reference
 *    decoder written from RFC 3629;
 *  - mcpgw_ws_close_code_valid() agrees with RFC 6455 7.4 for close frames.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "utf8.h"
#include "ws_frame.h"

/* RFC 3629 decoder, written for clarity rather than speed. */
static int ref_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp, min;
        size_t need;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1; cp = c & 0x1F; min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2; cp = c & 0x0F; min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3; cp = c & 0x07; min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int ref_close_code_valid(unsigned code)
{
    switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
        return 1;
    default:
        return code >= 3000 && code <= 4999;
    }
}

/* What RFC 6455 5.1-5.5 says of a frame received by `role` (no extension
 * negotiated beyond allowed_rsv), with RFC 7692 6.1 when RSV1 is allowed:
 * RSV1 on the first frame of a data message only. */
static int ref_frame_ok(const mcpgw_ws_frame_header *h, mcpgw_ws_role role, unsigned allowed_rsv)
{
    int control = h->opcode >= 0x8;

    if (h->masked != (role == MCPGW_WS_ROLE_SERVER))
        return 0;
    if (h->rsv & ~allowed_rsv & 7u)
        return 0;
    switch (h->opcode) {
    case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA:
        break;
    default:
        return 0;
    }
    if (control && (!h->fin || h->payload_len > 125))
        return 0;
    if ((h->rsv & 4u) && (control || h->opcode == 0x0))
        return 0;
    return 1;
}

static void check_utf8(const uint8_t *p, size_t n, fuzz_rng *rng)
{
    int whole = mcpgw_utf8_valid(p, n);
    uint32_t st = MCPGW_UTF8_ACCEPT;
    size_t pos = 0;

    FUZZ_ASSERT(whole == ref_utf8_valid(p, n));
    /* The same bytes fed in random pieces (empty pieces included). */
    while (pos < n) {
        size_t piece = fuzz_rng_below(rng, n - pos + 1);
        uint8_t *copy = malloc(piece ? piece : 1);  /* exact size: ASan sees over-reads */

        FUZZ_ASSERT(copy);
        memcpy(copy, p + pos, piece);
        st = mcpgw_utf8_feed(st, copy, piece);
        free(copy);
        pos += piece;
        if (st == MCPGW_UTF8_REJECT)
            break;
    }
    FUZZ_ASSERT((st == MCPGW_UTF8_ACCEPT) == (whole != 0));
    /* REJECT is sticky. */
    if (st == MCPGW_UTF8_REJECT)
        FUZZ_ASSERT(mcpgw_utf8_feed(st, (const uint8_t *)"a", 1) == MCPGW_UTF8_REJECT);
}

static void check_unmask(const uint8_t *p, size_t n, const uint8_t mask[4], fuzz_rng *rng)
{
    uint8_t *whole = malloc(n ? n : 1), *pieces = malloc(n ? n : 1);
    size_t pos = 0;

    FUZZ_ASSERT(whole && pieces);
    memcpy(whole, p, n);
    memcpy(pieces, p, n);
    mcpgw_ws_unmask(whole, n, mask, 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(whole[i] == (uint8_t)(p[i] ^ mask[i & 3]));
    while (pos < n) {
        size_t piece = 1 + fuzz_rng_below(rng, n - pos);
        mcpgw_ws_unmask(pieces + pos, piece, mask, pos);
        pos += piece;
    }
    FUZZ_ASSERT(memcmp(whole, pieces, n) == 0);
    mcpgw_ws_unmask(pieces, n, mask, 0);
    FUZZ_ASSERT(memcmp(pieces, p, n) == 0);
    free(pieces);
    free(whole);
}

/* Checks one header parse at buf[0..len); returns the result. */
static mcpgw_ws_parse_result check_header(const uint8_t *buf, size_t len,
                                          mcpgw_ws_frame_header *h)
{
    mcpgw_ws_parse_result r;
    mcpgw_ws_frame_header probe;
    size_t lenbytes, need;
    unsigned len7;

    memset(h, 0xA5, sizeof(*h));
    r = mcpgw_ws_parse_header(buf, len, h);
    if (len < 2) {
        FUZZ_ASSERT(r == MCPGW_WS_PARSE_NEED_MORE);
        return r;
    }
    len7 = buf[1] & 0x7Fu;
    lenbytes = len7 < 126 ? 0 : len7 == 126 ? 2 : 8;
    need = 2 + lenbytes + ((buf[1] & 0x80) ? 4 : 0);

    if (len < 2 + lenbytes) {
        FUZZ_ASSERT(r == MCPGW_WS_PARSE_NEED_MORE);
        return r;
    }
    /* The length bytes are there: decide minimality independently. */
    {
        uint64_t v = 0;
        int bad;

        for (size_t i = 0; i < lenbytes; i++)
            v = (v << 8) | buf[2 + i];
        if (lenbytes == 0)
            v = len7;
        bad = (lenbytes == 2 && v < 126) ||
              (lenbytes == 8 && ((v >> 63) || v <= 0xFFFF));
        if (bad) {
            FUZZ_ASSERT(r == MCPGW_WS_PARSE_ERROR);
            return r;
        }
        if (len < need) {
            FUZZ_ASSERT(r == MCPGW_WS_PARSE_NEED_MORE);
            return r;
        }
        FUZZ_ASSERT(r == MCPGW_WS_PARSE_OK);
        FUZZ_ASSERT(h->payload_len == v);
    }
    FUZZ_ASSERT(h->header_len == need);
    FUZZ_ASSERT(h->fin == (buf[0] >> 7));
    FUZZ_ASSERT(h->rsv == ((buf[0] >> 4) & 7u));
    FUZZ_ASSERT(h->opcode == (buf[0] & 0xFu));
    FUZZ_ASSERT(h->masked == (buf[1] >> 7));
    if (h->masked)
        FUZZ_ASSERT(memcmp(h->mask, buf + need - 4, 4) == 0);

    /* Every shorter prefix (copied to an exact-size buffer) needs more. */
    for (size_t k = 0; k < need; k++) {
        uint8_t *pre = malloc(k ? k : 1);
        FUZZ_ASSERT(pre);
        memcpy(pre, buf, k);
        FUZZ_ASSERT(mcpgw_ws_parse_header(pre, k, &probe) == MCPGW_WS_PARSE_NEED_MORE);
        free(pre);
    }
    return r;
}

static void check_encode(const mcpgw_ws_frame_header *h)
{
    uint8_t out[MCPGW_WS_MAX_HEADER];
    mcpgw_ws_frame_header back;
    size_t n = mcpgw_ws_encode_header(out, h->opcode, h->rsv, h->payload_len);

    FUZZ_ASSERT(n == 2 || n == 4 || n == 10);
    FUZZ_ASSERT(mcpgw_ws_parse_header(out, n, &back) == MCPGW_WS_PARSE_OK);
    FUZZ_ASSERT(back.header_len == n);
    FUZZ_ASSERT(back.fin == 1 && back.masked == 0);
    FUZZ_ASSERT(back.opcode == h->opcode && back.rsv == h->rsv);
    FUZZ_ASSERT(back.payload_len == h->payload_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_rng rng;
    size_t pos = 0;
    /* The first byte chooses which RSV bits count as negotiated (as a
     * permessage-deflate connection would allow RSV1). */
    unsigned allowed_rsv = size ? (data[0] & 1u ? 4u : 0u) : 0u;
    /* The second bit, which end reads the frames (the client: unmasked). */
    mcpgw_ws_role role = size && (data[0] & 2u) ? MCPGW_WS_ROLE_CLIENT : MCPGW_WS_ROLE_SERVER;

    fuzz_rng_seed(&rng, data, size);
    if (size)
        pos = 1;

    while (pos < size) {
        mcpgw_ws_frame_header h;
        const char *why = NULL;
        size_t avail = size - pos, plen;
        int code;
        uint8_t *payload;

        if (check_header(data + pos, avail, &h) != MCPGW_WS_PARSE_OK)
            break;
        check_encode(&h);

        code = mcpgw_ws_frame_check_role(&h, role, allowed_rsv, &why);
        FUZZ_ASSERT(code == 0 || code == MCPGW_WS_CLOSE_PROTOCOL_ERROR);
        FUZZ_ASSERT((code == 0) == ref_frame_ok(&h, role, allowed_rsv));
        if (role == MCPGW_WS_ROLE_SERVER)
            FUZZ_ASSERT(mcpgw_ws_frame_check(&h, allowed_rsv, NULL) == code);
        if (code)
            FUZZ_ASSERT(why && *why);

        pos += h.header_len;
        plen = h.payload_len < size - pos ? (size_t)h.payload_len : size - pos;

        payload = malloc(plen ? plen : 1);
        FUZZ_ASSERT(payload);
        memcpy(payload, data + pos, plen);
        if (h.masked)
            check_unmask(payload, plen, h.mask, &rng);
        if (h.masked)
            mcpgw_ws_unmask(payload, plen, h.mask, 0);
        check_utf8(payload, plen, &rng);
        if (h.opcode == MCPGW_WS_OP_CLOSE && plen >= 2) {
            unsigned cc = ((unsigned)payload[0] << 8) | payload[1];
            FUZZ_ASSERT(mcpgw_ws_close_code_valid(cc) == ref_close_code_valid(cc));
        }
        free(payload);
        pos += plen;
    }
    /* The whole input as one text message, split at random. */
    check_utf8(data, size, &rng);
    return 0;
}
