/*
 * test_ws_frame.c - unit tests for core/ws_frame.c: header parsing (every
 * length form, truncation, malformed lengths), client-frame policy checks,
 * unmasking with offsets, header encoding and close-code validity.
 */
#include "ws_frame.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Builds a client frame header by hand (independent of the encoder). */
static size_t build_header(uint8_t *out, int fin, unsigned rsv, int opcode,
                           int masked, uint64_t len)
{
    size_t n = 0;
    int i;

    out[n++] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7u) << 4) | (opcode & 0xF));
    if (len < 126) {
        out[n++] = (uint8_t)((masked ? 0x80 : 0) | len);
    } else if (len <= 0xFFFF) {
        out[n++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = (uint8_t)((masked ? 0x80 : 0) | 127);
        for (i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, MASK, 4);
        n += 4;
    }
    return n;
}

static mcpgw_ws_frame_header parse_ok(const uint8_t *buf, size_t len)
{
    mcpgw_ws_frame_header h;

    memset(&h, 0xAA, sizeof h);
    CHECK_EQ_INT(mcpgw_ws_parse_header(buf, len, &h), MCPGW_WS_PARSE_OK);
    return h;
}

/* Client frame with check result, for policy tests. */
static int check_frame(int fin, unsigned rsv, int opcode, int masked,
                       uint64_t len, unsigned allowed, const char **why)
{
    uint8_t buf[MCPGW_WS_MAX_HEADER];
    mcpgw_ws_frame_header h;
    size_t n = build_header(buf, fin, rsv, opcode, masked, len);

    if (mcpgw_ws_parse_header(buf, n, &h) != MCPGW_WS_PARSE_OK)
        return -12345;
    *why = NULL;
    return mcpgw_ws_frame_check(&h, allowed, why);
}

/* ------------------------------------------------------------- parsing */

TEST(parse_minimal_unmasked)
{
    const uint8_t buf[] = {0x81, 0x05};
    mcpgw_ws_frame_header h = parse_ok(buf, sizeof buf);

    CHECK_EQ_INT(h.fin, 1);
    CHECK_EQ_INT(h.rsv, 0);
    CHECK_EQ_INT(h.opcode, MCPGW_WS_OP_TEXT);
    CHECK_EQ_INT(h.masked, 0);
    CHECK_EQ_INT(h.payload_len, 5);
    CHECK_EQ_INT(h.header_len, 2);
}

TEST(parse_rfc_examples)
{
    /* RFC 6455 5.7: masked "Hello" from a client. */
    const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                             0x7f, 0x9f, 0x4d, 0x51, 0x58};
    /* First fragment of an unmasked text message: "Hel". */
    const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    /* Unmasked ping with "Hello". */
    const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    /* 256 bytes binary, unmasked. */
    const uint8_t b256[] = {0x82, 0x7E, 0x01, 0x00};
    /* 64 KiB binary, unmasked. */
    const uint8_t b64k[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    mcpgw_ws_frame_header h;
    uint8_t payload[5];

    h = parse_ok(hello, sizeof hello);
    CHECK_EQ_INT(h.fin, 1);
    CHECK_EQ_INT(h.opcode, 1);
    CHECK_EQ_INT(h.masked, 1);
    CHECK_EQ_INT(h.payload_len, 5);
    CHECK_EQ_INT(h.header_len, 6);
    CHECK(memcmp(h.mask, MASK, 4) == 0);
    memcpy(payload, hello + h.header_len, 5);
    mcpgw_ws_unmask(payload, 5, h.mask, 0);
    CHECK(memcmp(payload, "Hello", 5) == 0);

    h = parse_ok(frag, sizeof frag);
    CHECK_EQ_INT(h.fin, 0);
    CHECK_EQ_INT(h.opcode, MCPGW_WS_OP_TEXT);
    CHECK_EQ_INT(h.payload_len, 3);

    h = parse_ok(ping, sizeof ping);
    CHECK_EQ_INT(h.opcode, MCPGW_WS_OP_PING);
    CHECK_EQ_INT(h.payload_len, 5);

    h = parse_ok(b256, sizeof b256);
    CHECK_EQ_INT(h.payload_len, 256);
    CHECK_EQ_INT(h.header_len, 4);

    h = parse_ok(b64k, sizeof b64k);
    CHECK_EQ_INT(h.payload_len, 65536);
    CHECK_EQ_INT(h.header_len, 10);
}

TEST(parse_length_boundaries)
{
    static const struct { uint64_t len; size_t hdr; } cases[] = {
        {0, 2}, {1, 2}, {125, 2},
        {126, 4}, {127, 4}, {255, 4}, {256, 4}, {65535, 4},
        {65536, 10}, {65537, 10}, {UINT64_C(0xFFFFFFFF), 10},
        {UINT64_C(0x100000000), 10}, {UINT64_C(0x7FFFFFFFFFFFFFFF), 10},
    };
    size_t i;
    int masked;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (masked = 0; masked <= 1; masked++) {
            uint8_t buf[MCPGW_WS_MAX_HEADER];
            size_t n = build_header(buf, 1, 0, MCPGW_WS_OP_BINARY, masked, cases[i].len);
            mcpgw_ws_frame_header h = parse_ok(buf, n);

            CHECK_EQ_INT(n, cases[i].hdr + (masked ? 4 : 0));
            CHECK_EQ_INT(h.header_len, n);
            CHECK(h.payload_len == cases[i].len);
            CHECK_EQ_INT(h.masked, masked);
            if (masked)
                CHECK(memcmp(h.mask, MASK, 4) == 0);
        }
    }
}

TEST(parse_extra_bytes_ignored)
{
    uint8_t buf[64];
    size_t n = build_header(buf, 1, 0, MCPGW_WS_OP_TEXT, 1, 300);
    mcpgw_ws_frame_header h;

    memset(buf + n, 0xEE, sizeof buf - n);
    h = parse_ok(buf, sizeof buf);
    CHECK_EQ_INT(h.header_len, n);
    CHECK_EQ_INT(h.payload_len, 300);
}

TEST(parse_need_more_every_truncation)
{
    static const uint64_t lens[] = {0, 5, 125, 126, 65535, 65536, UINT64_C(1) << 40};
    size_t i, cut;
    int masked;

    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (masked = 0; masked <= 1; masked++) {
            uint8_t buf[MCPGW_WS_MAX_HEADER];
            size_t n = build_header(buf, 1, 0, MCPGW_WS_OP_BINARY, masked, lens[i]);

            for (cut = 0; cut < n; cut++) {
                mcpgw_ws_frame_header h;
                /* An exact-size heap copy, so ASan catches any over-read. */
                uint8_t *part = malloc(cut ? cut : 1);

                CHECK(part != NULL);
                if (!part)
                    return;
                memcpy(part, buf, cut);
                memset(&h, 0x5A, sizeof h);
                CHECK_EQ_INT(mcpgw_ws_parse_header(part, cut, &h),
                             MCPGW_WS_PARSE_NEED_MORE);
                /* *h is untouched unless the parse succeeded. */
                CHECK(h.header_len == (size_t)UINT64_C(0x5A5A5A5A5A5A5A5A));
                free(part);
            }
            (void)parse_ok(buf, n);
        }
    }
}

TEST(parse_need_more_null_buffer)
{
    mcpgw_ws_frame_header h;

    CHECK_EQ_INT(mcpgw_ws_parse_header(NULL, 0, &h), MCPGW_WS_PARSE_NEED_MORE);
}

TEST(parse_non_minimal_16)
{
    unsigned v;

    /* 16-bit form carrying 0..125 is non-minimal. */
    for (v = 0; v < 126; v++) {
        uint8_t buf[] = {0x82, 0xFE, (uint8_t)(v >> 8), (uint8_t)v, 1, 2, 3, 4};
        mcpgw_ws_frame_header h;

        CHECK_EQ_INT(mcpgw_ws_parse_header(buf, sizeof buf, &h), MCPGW_WS_PARSE_ERROR);
        /* The error is known before the mask arrives. */
        CHECK_EQ_INT(mcpgw_ws_parse_header(buf, 4, &h), MCPGW_WS_PARSE_ERROR);
    }
    {
        const uint8_t buf[] = {0x82, 0x7E, 0x00, 0x7E};
        mcpgw_ws_frame_header h = parse_ok(buf, sizeof buf);

        CHECK_EQ_INT(h.payload_len, 126);
    }
}

TEST(parse_non_minimal_64)
{
    static const uint64_t bad[] = {0, 1, 125, 126, 127, 256, 65534, 65535};
    size_t i;
    int b;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[14] = {0x82, 0xFF};
        mcpgw_ws_frame_header h;

        for (b = 0; b < 8; b++)
            buf[2 + b] = (uint8_t)(bad[i] >> (56 - 8 * b));
        memcpy(buf + 10, MASK, 4);
        CHECK_EQ_INT(mcpgw_ws_parse_header(buf, sizeof buf, &h), MCPGW_WS_PARSE_ERROR);
        CHECK_EQ_INT(mcpgw_ws_parse_header(buf, 10, &h), MCPGW_WS_PARSE_ERROR);
    }
}

TEST(parse_64_msb_set)
{
    static const uint64_t bad[] = {
        UINT64_C(0x8000000000000000), UINT64_C(0x8000000000010000),
        UINT64_C(0xFFFFFFFFFFFFFFFF), UINT64_C(0x8000000000000001),
    };
    size_t i;
    int b;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[10] = {0x82, 0x7F};
        mcpgw_ws_frame_header h;

        for (b = 0; b < 8; b++)
            buf[2 + b] = (uint8_t)(bad[i] >> (56 - 8 * b));
        CHECK_EQ_INT(mcpgw_ws_parse_header(buf, sizeof buf, &h), MCPGW_WS_PARSE_ERROR);
    }
}

TEST(parse_fields_all_bits)
{
    unsigned b0;

    /* Every first byte decodes to the matching fin/rsv/opcode. */
    for (b0 = 0; b0 < 256; b0++) {
        const uint8_t buf[] = {(uint8_t)b0, 0x80 | 7, 1, 2, 3, 4};
        mcpgw_ws_frame_header h = parse_ok(buf, sizeof buf);

        CHECK_EQ_INT(h.fin, b0 >> 7);
        CHECK_EQ_INT(h.rsv, (b0 >> 4) & 7);
        CHECK_EQ_INT(h.opcode, b0 & 0xF);
        CHECK_EQ_INT(h.masked, 1);
        CHECK_EQ_INT(h.payload_len, 7);
    }
}

/* ------------------------------------------------------------- policy */

TEST(check_ok_frames)
{
    static const int ops[] = {MCPGW_WS_OP_CONT, MCPGW_WS_OP_TEXT, MCPGW_WS_OP_BINARY,
                              MCPGW_WS_OP_CLOSE, MCPGW_WS_OP_PING, MCPGW_WS_OP_PONG};
    const char *why;
    size_t i;

    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        CHECK_EQ_INT(check_frame(1, 0, ops[i], 1, 0, 0, &why), 0);
        CHECK_EQ_INT(check_frame(1, 0, ops[i], 1, 125, 0, &why), 0);
        CHECK(why == NULL);
    }
    /* Data frames may be unfinished and large. */
    CHECK_EQ_INT(check_frame(0, 0, MCPGW_WS_OP_TEXT, 1, 1u << 20, 0, &why), 0);
    CHECK_EQ_INT(check_frame(0, 0, MCPGW_WS_OP_CONT, 1, 65536, 0, &why), 0);
    CHECK_EQ_INT(check_frame(1, 0, MCPGW_WS_OP_BINARY, 1, 126, 0, &why), 0);
}

TEST(check_unmasked_rejected)
{
    const char *why;

    CHECK_EQ_INT(check_frame(1, 0, MCPGW_WS_OP_TEXT, 0, 5, 0, &why), 1002);
    CHECK(why != NULL && strstr(why, "mask") != NULL);
    CHECK_EQ_INT(check_frame(1, 0, MCPGW_WS_OP_PING, 0, 0, 7, &why), 1002);
    CHECK(why != NULL);
}

TEST(check_rsv_bits)
{
    const char *why;
    unsigned rsv, allowed;

    for (rsv = 0; rsv < 8; rsv++) {
        for (allowed = 0; allowed < 8; allowed++) {
            int expect = (rsv & ~allowed) ? 1002 : 0;

            CHECK_EQ_INT(check_frame(1, rsv, MCPGW_WS_OP_TEXT, 1, 10, allowed, &why), expect);
            if (expect)
                CHECK(why != NULL && strstr(why, "RSV") != NULL);
            else
                CHECK(why == NULL);
        }
    }
    /* Each bit alone, nothing negotiated. */
    CHECK_EQ_INT(check_frame(1, 4, MCPGW_WS_OP_TEXT, 1, 1, 0, &why), 1002);
    CHECK_EQ_STR(why, "RSV1 set without a negotiated extension");
    CHECK_EQ_INT(check_frame(1, 2, MCPGW_WS_OP_TEXT, 1, 1, 0, &why), 1002);
    CHECK_EQ_STR(why, "RSV2 set without a negotiated extension");
    CHECK_EQ_INT(check_frame(1, 1, MCPGW_WS_OP_TEXT, 1, 1, 0, &why), 1002);
    CHECK_EQ_STR(why, "RSV3 set without a negotiated extension");
    /* permessage-deflate style: RSV1 allowed, others not. */
    CHECK_EQ_INT(check_frame(1, 4, MCPGW_WS_OP_TEXT, 1, 1, 4, &why), 0);
    CHECK_EQ_INT(check_frame(1, 6, MCPGW_WS_OP_TEXT, 1, 1, 4, &why), 1002);
    CHECK_EQ_STR(why, "RSV2 set without a negotiated extension");
}

TEST(check_unknown_opcodes)
{
    const char *why;
    int op;

    for (op = 0; op < 16; op++) {
        int known = op <= 2 || (op >= 8 && op <= 0xA);

        CHECK_EQ_INT(check_frame(1, 0, op, 1, 0, 0, &why), known ? 0 : 1002);
        if (!known)
            CHECK(why != NULL && strstr(why, "opcode") != NULL);
    }
}

TEST(check_fragmented_control)
{
    const char *why;
    int op;

    for (op = 8; op <= 0xA; op++) {
        CHECK_EQ_INT(check_frame(0, 0, op, 1, 0, 0, &why), 1002);
        CHECK(why != NULL && strstr(why, "fragmented") != NULL);
    }
}

TEST(check_control_too_long)
{
    static const uint64_t lens[] = {126, 127, 65535, 65536, UINT64_C(1) << 62};
    const char *why;
    size_t i;
    int op;

    for (op = 8; op <= 0xA; op++) {
        CHECK_EQ_INT(check_frame(1, 0, op, 1, 125, 0, &why), 0);
        for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            CHECK_EQ_INT(check_frame(1, 0, op, 1, lens[i], 0, &why), 1002);
            CHECK(why != NULL && strstr(why, "125") != NULL);
        }
    }
}

TEST(check_why_may_be_null)
{
    mcpgw_ws_frame_header h;
    const uint8_t buf[] = {0x81, 0x05};

    CHECK_EQ_INT(mcpgw_ws_parse_header(buf, sizeof buf, &h), MCPGW_WS_PARSE_OK);
    CHECK_EQ_INT(mcpgw_ws_frame_check(&h, 0, NULL), 1002);
}

/* A frame checked by the given role. */
static int check_frame_role(mcpgw_ws_role role, int fin, unsigned rsv, int opcode, int masked,
                            uint64_t len, unsigned allowed, const char **why)
{
    uint8_t buf[MCPGW_WS_MAX_HEADER];
    mcpgw_ws_frame_header h;
    size_t n = build_header(buf, fin, rsv, opcode, masked, len);

    if (mcpgw_ws_parse_header(buf, n, &h) != MCPGW_WS_PARSE_OK)
        return -12345;
    *why = NULL;
    return mcpgw_ws_frame_check_role(&h, role, allowed, why);
}

/* The client checks server frames: unmasked, otherwise the same rules. */
TEST(check_client_role)
{
    static const int ops[] = {MCPGW_WS_OP_CONT, MCPGW_WS_OP_TEXT, MCPGW_WS_OP_BINARY,
                              MCPGW_WS_OP_CLOSE, MCPGW_WS_OP_PING, MCPGW_WS_OP_PONG};
    const mcpgw_ws_role C = MCPGW_WS_ROLE_CLIENT;
    const char *why;
    size_t i;
    int op;

    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        CHECK_EQ_INT(check_frame_role(C, 1, 0, ops[i], 0, 125, 0, &why), 0);
        CHECK(why == NULL);
        CHECK_EQ_INT(check_frame_role(C, 1, 0, ops[i], 1, 0, 0, &why), 1002);
        CHECK_EQ_STR(why, "masked frame from the server");
        /* the server role refuses the very frames the client accepts */
        CHECK_EQ_INT(check_frame_role(MCPGW_WS_ROLE_SERVER, 1, 0, ops[i], 0, 0, 0, &why), 1002);
        CHECK_EQ_STR(why, "client frame is not masked");
    }
    CHECK_EQ_INT(check_frame_role(C, 0, 0, MCPGW_WS_OP_TEXT, 0, 1u << 20, 0, &why), 0);
    for (op = 0; op < 16; op++) {
        int known = op <= 2 || (op >= 8 && op <= 0xA);
        CHECK_EQ_INT(check_frame_role(C, 1, 0, op, 0, 0, 0, &why), known ? 0 : 1002);
        if (!known)
            CHECK_EQ_STR(why, "unknown opcode");
    }
    CHECK_EQ_INT(check_frame_role(C, 0, 0, MCPGW_WS_OP_PING, 0, 0, 0, &why), 1002);
    CHECK_EQ_STR(why, "fragmented control frame");
    CHECK_EQ_INT(check_frame_role(C, 1, 0, MCPGW_WS_OP_CLOSE, 0, 126, 0, &why), 1002);
    CHECK_EQ_STR(why, "control frame payload longer than 125 bytes");
    CHECK_EQ_INT(check_frame_role(C, 1, 4, MCPGW_WS_OP_TEXT, 0, 1, 0, &why), 1002);
    CHECK_EQ_STR(why, "RSV1 set without a negotiated extension");
    CHECK_EQ_INT(check_frame_role(C, 1, 2, MCPGW_WS_OP_TEXT, 0, 1, 4, &why), 1002);
    CHECK_EQ_STR(why, "RSV2 set without a negotiated extension");
    CHECK_EQ_INT(mcpgw_ws_frame_check_role(&(mcpgw_ws_frame_header){.fin = 1, .masked = 1}, C,
                                           0, NULL), 1002);
}

/* RFC 7692 6.1: with permessage-deflate (RSV1 allowed) the bit marks the
 * first frame of a data message only, in both roles. */
TEST(check_rsv1_first_frame_only)
{
    const char *why;
    int r;

    for (r = 0; r < 2; r++) {
        mcpgw_ws_role role = r ? MCPGW_WS_ROLE_CLIENT : MCPGW_WS_ROLE_SERVER;
        int masked = !r;
        int op;

        CHECK_EQ_INT(check_frame_role(role, 0, 4, MCPGW_WS_OP_TEXT, masked, 10, 4, &why), 0);
        CHECK_EQ_INT(check_frame_role(role, 1, 4, MCPGW_WS_OP_BINARY, masked, 10, 4, &why), 0);
        CHECK_EQ_INT(check_frame_role(role, 1, 0, MCPGW_WS_OP_CONT, masked, 10, 4, &why), 0);
        CHECK_EQ_INT(check_frame_role(role, 1, 4, MCPGW_WS_OP_CONT, masked, 10, 4, &why), 1002);
        CHECK_EQ_STR(why, "RSV1 set on a continuation frame");
        for (op = 8; op <= 0xA; op++) {
            CHECK_EQ_INT(check_frame_role(role, 1, 4, op, masked, 0, 4, &why), 1002);
            CHECK_EQ_STR(why, "RSV1 set on a control frame");
            CHECK_EQ_INT(check_frame_role(role, 1, 0, op, masked, 0, 4, &why), 0);
        }
    }
}

/* ------------------------------------------------------------- masking */

static void ref_unmask(uint8_t *d, size_t len, const uint8_t m[4], size_t off)
{
    size_t i;

    for (i = 0; i < len; i++)
        d[i] ^= m[(off + i) % 4];
}

TEST(unmask_matches_reference)
{
    uint8_t a[300], b[300];
    size_t len, off, start, i;

    for (i = 0; i < sizeof a; i++)
        a[i] = (uint8_t)(i * 131u + 7u);
    /* Every length 0..40 and some larger; every offset 0..7; misaligned
     * starting addresses too. */
    for (start = 0; start < 8; start++) {
        for (len = 0; len + start <= sizeof a; len += (len < 40 ? 1 : 37)) {
            for (off = 0; off < 8; off++) {
                memcpy(b, a, sizeof a);
                mcpgw_ws_unmask(b + start, len, MASK, off);
                ref_unmask(b + start, len, MASK, off);
                CHECK(memcmp(a, b, sizeof a) == 0);
            }
        }
    }
}

TEST(unmask_split_equals_whole)
{
    uint8_t orig[123], whole[123], split[123];
    size_t i, cut, cut2;

    for (i = 0; i < sizeof orig; i++)
        orig[i] = (uint8_t)(i ^ 0x5C);
    memcpy(whole, orig, sizeof orig);
    mcpgw_ws_unmask(whole, sizeof whole, MASK, 0);

    /* Split into two pieces at every point (covers every offset 0..7 and
     * beyond); and into three pieces for small first cuts. */
    for (cut = 0; cut <= sizeof orig; cut++) {
        memcpy(split, orig, sizeof orig);
        mcpgw_ws_unmask(split, cut, MASK, 0);
        mcpgw_ws_unmask(split + cut, sizeof split - cut, MASK, cut);
        CHECK(memcmp(split, whole, sizeof whole) == 0);
    }
    for (cut = 0; cut <= 8; cut++) {
        for (cut2 = cut; cut2 <= cut + 20; cut2++) {
            memcpy(split, orig, sizeof orig);
            mcpgw_ws_unmask(split, cut, MASK, 0);
            mcpgw_ws_unmask(split + cut, cut2 - cut, MASK, cut);
            mcpgw_ws_unmask(split + cut2, sizeof split - cut2, MASK, cut2);
            CHECK(memcmp(split, whole, sizeof whole) == 0);
        }
    }
    /* A large offset behaves like offset % 4. */
    memcpy(split, orig, sizeof orig);
    mcpgw_ws_unmask(split, 3, MASK, 0);
    mcpgw_ws_unmask(split + 3, sizeof split - 3, MASK, (size_t)1000003);
    CHECK(memcmp(split, whole, sizeof whole) == 0);
}

TEST(unmask_involution)
{
    uint8_t a[77], b[77];
    size_t i;

    for (i = 0; i < sizeof a; i++)
        a[i] = (uint8_t)(255 - i);
    memcpy(b, a, sizeof a);
    mcpgw_ws_unmask(b, sizeof b, MASK, 2);
    CHECK(memcmp(a, b, sizeof a) != 0);
    mcpgw_ws_unmask(b, sizeof b, MASK, 2);
    CHECK(memcmp(a, b, sizeof a) == 0);
    mcpgw_ws_unmask(NULL, 0, MASK, 0);      /* empty is a no-op */
}

/* ------------------------------------------------------------- encoding */

TEST(encode_lengths)
{
    uint8_t out[MCPGW_WS_MAX_HEADER];

    CHECK_EQ_INT(mcpgw_ws_encode_header(out, MCPGW_WS_OP_TEXT, 0, 0), 2);
    CHECK_EQ_INT(out[0], 0x81);
    CHECK_EQ_INT(out[1], 0x00);

    CHECK_EQ_INT(mcpgw_ws_encode_header(out, MCPGW_WS_OP_TEXT, 0, 125), 2);
    CHECK_EQ_INT(out[1], 125);

    CHECK_EQ_INT(mcpgw_ws_encode_header(out, MCPGW_WS_OP_BINARY, 0, 126), 4);
    CHECK_EQ_INT(out[0], 0x82);
    CHECK_EQ_INT(out[1], 126);
    CHECK_EQ_INT(out[2], 0x00);
    CHECK_EQ_INT(out[3], 126);

    CHECK_EQ_INT(mcpgw_ws_encode_header(out, MCPGW_WS_OP_BINARY, 0, 65535), 4);
    CHECK_EQ_INT(out[2], 0xFF);
    CHECK_EQ_INT(out[3], 0xFF);

    CHECK_EQ_INT(mcpgw_ws_encode_header(out, MCPGW_WS_OP_BINARY, 0, 65536), 10);
    CHECK_EQ_INT(out[1], 127);
    {
        const uint8_t want[] = {0, 0, 0, 0, 0, 1, 0, 0};
        CHECK(memcmp(out + 2, want, 8) == 0);
    }
    CHECK_EQ_INT(mcpgw_ws_encode_header(out, MCPGW_WS_OP_BINARY, 0,
                                        UINT64_C(0x0102030405060708)), 10);
    {
        const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8};
        CHECK(memcmp(out + 2, want, 8) == 0);
    }
}

TEST(encode_opcode_rsv_bits)
{
    uint8_t out[MCPGW_WS_MAX_HEADER];

    mcpgw_ws_encode_header(out, MCPGW_WS_OP_TEXT, 4, 1);
    CHECK_EQ_INT(out[0], 0xC1);         /* FIN | RSV1 | text */
    mcpgw_ws_encode_header(out, MCPGW_WS_OP_BINARY, 2, 1);
    CHECK_EQ_INT(out[0], 0xA2);
    mcpgw_ws_encode_header(out, MCPGW_WS_OP_CLOSE, 1, 2);
    CHECK_EQ_INT(out[0], 0x98);
    mcpgw_ws_encode_header(out, MCPGW_WS_OP_PONG, 7, 0);
    CHECK_EQ_INT(out[0], 0xFA);
    mcpgw_ws_encode_header(out, MCPGW_WS_OP_PING, 0, 0);
    CHECK_EQ_INT(out[0], 0x89);
    CHECK_EQ_INT(out[1] & 0x80, 0);     /* server frames are never masked */
}

TEST(encode_parse_round_trip)
{
    static const uint64_t lens[] = {
        0, 1, 2, 100, 124, 125, 126, 127, 128, 255, 256, 1000, 65534, 65535,
        65536, 65537, 1u << 20, UINT64_C(0xFFFFFFFF), UINT64_C(0x100000000),
        UINT64_C(0x7FFFFFFFFFFFFFFF),
    };
    static const int ops[] = {MCPGW_WS_OP_CONT, MCPGW_WS_OP_TEXT, MCPGW_WS_OP_BINARY,
                              MCPGW_WS_OP_CLOSE, MCPGW_WS_OP_PING, MCPGW_WS_OP_PONG};
    size_t i, j, cut;
    unsigned rsv;

    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (j = 0; j < sizeof ops / sizeof ops[0]; j++) {
            for (rsv = 0; rsv < 8; rsv++) {
                uint8_t out[MCPGW_WS_MAX_HEADER];
                mcpgw_ws_frame_header h;
                size_t n = mcpgw_ws_encode_header(out, ops[j], rsv, lens[i]);

                CHECK(n == 2 || n == 4 || n == 10);
                CHECK_EQ_INT(n, lens[i] < 126 ? 2 : lens[i] <= 65535 ? 4 : 10);
                for (cut = 0; cut < n; cut++)
                    CHECK_EQ_INT(mcpgw_ws_parse_header(out, cut, &h),
                                 MCPGW_WS_PARSE_NEED_MORE);
                h = parse_ok(out, n);
                CHECK_EQ_INT(h.header_len, n);
                CHECK_EQ_INT(h.fin, 1);
                CHECK_EQ_INT(h.rsv, rsv);
                CHECK_EQ_INT(h.opcode, ops[j]);
                CHECK_EQ_INT(h.masked, 0);
                CHECK(h.payload_len == lens[i]);
                /* A server frame fails the client policy: it is unmasked. */
                {
                    const char *why = NULL;
                    CHECK_EQ_INT(mcpgw_ws_frame_check(&h, 7, &why), 1002);
                }
            }
        }
    }
}

/* ------------------------------------------------------------- close codes */

TEST(close_code_table)
{
    unsigned c;

    for (c = 0; c < 70000; c++) {
        int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
                   (c >= 3000 && c <= 4999);

        if (mcpgw_ws_close_code_valid(c) != want) {
            fprintf(stderr, "  close code %u: expected %d\n", c, want);
            CHECK(0);
            break;
        }
    }
}

TEST(close_code_spot_checks)
{
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100,
                                       2000, 2999, 5000, 65535, 65536, 0xFFFFFFFFu};
    size_t i;

    for (i = 0; i < sizeof valid / sizeof valid[0]; i++)
        CHECK_EQ_INT(mcpgw_ws_close_code_valid(valid[i]), 1);
    for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        CHECK_EQ_INT(mcpgw_ws_close_code_valid(invalid[i]), 0);
    CHECK_EQ_INT(mcpgw_ws_close_code_valid(MCPGW_WS_CLOSE_NO_STATUS), 0);
    CHECK_EQ_INT(mcpgw_ws_close_code_valid(MCPGW_WS_CLOSE_ABNORMAL), 0);
    CHECK_EQ_INT(mcpgw_ws_close_code_valid(MCPGW_WS_CLOSE_INTERNAL), 1);
}

int main(void)
{
    RUN(parse_minimal_unmasked);
    RUN(parse_rfc_examples);
    RUN(parse_length_boundaries);
    RUN(parse_extra_bytes_ignored);
    RUN(parse_need_more_every_truncation);
    RUN(parse_need_more_null_buffer);
    RUN(parse_non_minimal_16);
    RUN(parse_non_minimal_64);
    RUN(parse_64_msb_set);
    RUN(parse_fields_all_bits);
    RUN(check_ok_frames);
    RUN(check_unmasked_rejected);
    RUN(check_rsv_bits);
    RUN(check_unknown_opcodes);
    RUN(check_fragmented_control);
    RUN(check_control_too_long);
    RUN(check_why_may_be_null);
    RUN(check_client_role);
    RUN(check_rsv1_first_frame_only);
    RUN(unmask_matches_reference);
    RUN(unmask_split_equals_whole);
    RUN(unmask_involution);
    RUN(encode_lengths);
    RUN(encode_opcode_rsv_bits);
    RUN(encode_parse_round_trip);
    RUN(close_code_table);
    RUN(close_code_spot_checks);
    return UNIT_SUMMARY();
}
