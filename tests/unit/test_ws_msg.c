/*
 * test_ws_msg.c - unit tests for core/ws_msg.c, the message assembler of
 * both ends: fragments, control frames between them (the caller's), the
 * continuation rules, UTF-8 split across fragments and failed early, the
 * size limit, a whole frame checked where it lies, and the inflate step
 * with and without context takeover, bounded.
 */
#include "ws_msg.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static mcpgw_ws_frame_header hdr(int fin, int opcode, int rsv1, size_t len)
{
    mcpgw_ws_frame_header h;

    memset(&h, 0, sizeof(h));
    h.fin = fin ? 1 : 0;
    h.opcode = (unsigned)opcode;
    h.rsv = rsv1 ? 4 : 0;
    h.payload_len = len;
    return h;
}

static const mcpgw_ws_msg_ctx plain_ctx = { 1000, NULL, NULL, NULL };

/* One frame as a connection sees it: control frames are answered aside
 * (counted in *controls) and never touch the message; a data frame is
 * checked, opens the message or adds to it, and its last one finishes it
 * into *out. Returns 0, 1 when a message is complete, or a close code. */
static int feed(mcpgw_ws_msg **m, int fin, int opcode, int rsv1, const char *p, size_t n,
                const mcpgw_ws_msg_ctx *ctx, mcpgw_ws_message *out, int *controls)
{
    mcpgw_ws_frame_header h = hdr(fin, opcode, rsv1, n);
    const char *why = NULL;
    int code;

    if (opcode >= MCPGW_WS_OP_CLOSE) {
        (*controls)++;
        return 0;
    }
    if ((code = mcpgw_ws_msg_check(*m, &h, ctx->max, &why)) != 0)
        return why ? code : -1;
    if (opcode != MCPGW_WS_OP_CONT && !(*m = mcpgw_ws_msg_open(&h)))
        return -1;
    if ((code = mcpgw_ws_msg_append(*m, (const uint8_t *)p, n, &why)) != 0)
        return why ? code : -1;
    if (!fin)
        return 0;
    code = mcpgw_ws_msg_finish(*m, ctx, out, &why);
    return code ? (why ? code : -1) : 1;
}

TEST(test_fragments_with_controls_between)
{
    mcpgw_ws_msg *m = NULL;
    mcpgw_ws_message out;
    int controls = 0;

    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_TEXT, 0, "Hel", 3, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_PING, 0, "p", 1, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_CONT, 0, "", 0, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_CONT, 0, "lo", 2, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_PONG, 0, "", 0, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_CONT, 0, " you", 4, &plain_ctx, &out, &controls), 1);
    CHECK_EQ_INT(controls, 2);
    CHECK_EQ_INT(out.len, 9);
    CHECK(memcmp(out.data, "Hello you", 9) == 0);
    CHECK_EQ_INT(out.wire_len, 9);
    CHECK(!out.binary && out.owned == NULL);
    mcpgw_ws_message_release(&out);
    mcpgw_ws_msg_free(m);

    /* binary is not checked as text; an empty message is "" */
    m = NULL;
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_BINARY, 0, "\xff", 1, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_CONT, 0, "\xfe", 1, &plain_ctx, &out, &controls), 1);
    CHECK(out.binary && out.len == 2 && memcmp(out.data, "\xff\xfe", 2) == 0);
    mcpgw_ws_msg_free(m);
    m = NULL;
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_TEXT, 0, "", 0, &plain_ctx, &out, &controls), 1);
    CHECK(out.data != NULL && out.len == 0 && !out.binary);
    mcpgw_ws_msg_free(m);
}

TEST(test_continuation_rules)
{
    mcpgw_ws_frame_header cont = hdr(1, MCPGW_WS_OP_CONT, 0, 1);
    mcpgw_ws_frame_header text = hdr(0, MCPGW_WS_OP_TEXT, 0, 1);
    mcpgw_ws_frame_header bin = hdr(1, MCPGW_WS_OP_BINARY, 0, 1);
    mcpgw_ws_msg *m;
    const char *why = NULL;

    /* a continuation with no message open */
    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &cont, 100, &why), MCPGW_WS_CLOSE_PROTOCOL_ERROR);
    CHECK_EQ_STR(why, "Unexpected continuation frame");
    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &text, 100, &why), 0);
    m = mcpgw_ws_msg_open(&text);
    REQUIRE(m != NULL);
    /* a new message inside an open one */
    why = NULL;
    CHECK_EQ_INT(mcpgw_ws_msg_check(m, &bin, 100, &why), MCPGW_WS_CLOSE_PROTOCOL_ERROR);
    CHECK_EQ_STR(why, "Expected continuation frame");
    CHECK_EQ_INT(mcpgw_ws_msg_check(m, &text, 100, &why), MCPGW_WS_CLOSE_PROTOCOL_ERROR);
    CHECK_EQ_INT(mcpgw_ws_msg_check(m, &cont, 100, &why), 0);
    mcpgw_ws_msg_free(m);
}

TEST(test_utf8_across_fragments)
{
    mcpgw_ws_msg *m = NULL;
    mcpgw_ws_message out;
    int controls = 0;

    /* U+20AC (E2 82 AC) and U+1F600 (F0 9F 98 80) cut between fragments */
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_TEXT, 0, "a\xe2", 2, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_CONT, 0, "\x82", 1, &plain_ctx, &out, &controls), 0);
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_CONT, 0, "\xac\xf0\x9f", 3, &plain_ctx, &out,
                      &controls), 0);
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_CONT, 0, "\x98\x80", 2, &plain_ctx, &out, &controls),
                 1);
    CHECK(out.len == 8 && memcmp(out.data, "a\xe2\x82\xac\xf0\x9f\x98\x80", 8) == 0);
    mcpgw_ws_msg_free(m);

    /* a sequence cut by the message's end: found when it finishes */
    m = NULL;
    CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_TEXT, 0, "ok\xe2\x82", 4, &plain_ctx, &out, &controls),
                 0);
    CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_CONT, 0, "", 0, &plain_ctx, &out, &controls),
                 MCPGW_WS_CLOSE_INVALID_DATA);
    mcpgw_ws_msg_free(m);
}

/* Bytes that cannot begin valid text fail the message at once (1007) in
 * its first fragment, before its end has arrived (RFC 6455 8.1). */
TEST(test_invalid_utf8_fails_early)
{
    mcpgw_ws_frame_header h = hdr(0, MCPGW_WS_OP_TEXT, 0, 6);
    mcpgw_ws_msg *m = mcpgw_ws_msg_open(&h);
    const char *why = NULL;
    uint8_t *p;

    REQUIRE(m != NULL);
    CHECK_EQ_INT(mcpgw_ws_msg_append(m, (const uint8_t *)"abc", 3, &why), 0);
    /* an overlong encoding and a surrogate, each in the middle of a fragment */
    p = mcpgw_ws_msg_reserve(m, 3, 0);
    REQUIRE(p != NULL);
    memcpy(p, "x\xc0\xaf", 3);
    CHECK_EQ_INT(mcpgw_ws_msg_commit(m, 3, &why), MCPGW_WS_CLOSE_INVALID_DATA);
    CHECK_EQ_STR(why, "Invalid UTF-8 in text message");
    mcpgw_ws_msg_free(m);

    m = mcpgw_ws_msg_open(&h);
    REQUIRE(m != NULL);
    CHECK_EQ_INT(mcpgw_ws_msg_append(m, (const uint8_t *)"\xed\xa0", 2, &why),
                 MCPGW_WS_CLOSE_INVALID_DATA);
    mcpgw_ws_msg_free(m);

    /* a whole frame: checked where it lies */
    {
        mcpgw_ws_frame_header w = hdr(1, MCPGW_WS_OP_TEXT, 0, 3);
        mcpgw_ws_message out;

        CHECK_EQ_INT(mcpgw_ws_msg_whole(&w, (const uint8_t *)"a\xff" "b", 3, &plain_ctx, &out,
                                        &why), MCPGW_WS_CLOSE_INVALID_DATA);
        CHECK_EQ_INT(mcpgw_ws_msg_whole(&w, (const uint8_t *)"a\xe2\x82", 3, &plain_ctx, &out,
                                        &why), MCPGW_WS_CLOSE_INVALID_DATA);
        w.opcode = MCPGW_WS_OP_BINARY;
        CHECK_EQ_INT(mcpgw_ws_msg_whole(&w, (const uint8_t *)"a\xff" "b", 3, &plain_ctx, &out,
                                        &why), 0);
    }
}

TEST(test_size_limit)
{
    mcpgw_ws_frame_header big = hdr(1, MCPGW_WS_OP_TEXT, 0, 101);
    mcpgw_ws_frame_header first = hdr(0, MCPGW_WS_OP_BINARY, 0, 60);
    mcpgw_ws_frame_header more = hdr(1, MCPGW_WS_OP_CONT, 0, 40);
    mcpgw_ws_msg *m;
    const char *why = NULL;
    uint8_t buf[60];

    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &big, 100, &why), MCPGW_WS_CLOSE_TOO_BIG);
    CHECK_EQ_STR(why, "Message too big");
    big.payload_len = UINT64_MAX >> 1;
    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &big, 100, &why), MCPGW_WS_CLOSE_TOO_BIG);
    big.payload_len = 100;
    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &big, 100, &why), 0);
    /* the message so far counts: 60 + 40 fits 100, 60 + 41 does not */
    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &first, 100, &why), 0);
    m = mcpgw_ws_msg_open(&first);
    REQUIRE(m != NULL);
    memset(buf, 'x', sizeof(buf));
    CHECK_EQ_INT(mcpgw_ws_msg_append(m, buf, sizeof(buf), &why), 0);
    CHECK_EQ_INT(mcpgw_ws_msg_check(m, &more, 100, &why), 0);
    more.payload_len = 41;
    CHECK_EQ_INT(mcpgw_ws_msg_check(m, &more, 100, &why), MCPGW_WS_CLOSE_TOO_BIG);
    more.payload_len = UINT64_MAX;
    CHECK_EQ_INT(mcpgw_ws_msg_check(m, &more, 100, &why), MCPGW_WS_CLOSE_TOO_BIG);
    mcpgw_ws_msg_free(m);
}

/* A large message's last frame sizes its buffer exactly. */
TEST(test_reserve_exact_last_frame)
{
    mcpgw_ws_frame_header h = hdr(0, MCPGW_WS_OP_BINARY, 0, 1000);
    mcpgw_ws_msg *m = mcpgw_ws_msg_open(&h);
    uint8_t *p;
    const char *why;

    REQUIRE(m != NULL);
    REQUIRE((p = mcpgw_ws_msg_reserve(m, 1000, 0)) != NULL);
    memset(p, 1, 1000);
    CHECK_EQ_INT(mcpgw_ws_msg_commit(m, 1000, &why), 0);
    CHECK_EQ_INT(m->cap, 1024);
    REQUIRE((p = mcpgw_ws_msg_reserve(m, 200000, 201000)) != NULL);
    CHECK_EQ_INT(m->cap, 201000);
    mcpgw_ws_msg_free(m);
}

/* A whole frame is handed on where it lies: no copy. */
TEST(test_whole_in_place)
{
    mcpgw_ws_frame_header h = hdr(1, MCPGW_WS_OP_TEXT, 0, 5);
    const uint8_t *p = (const uint8_t *)"h\xc3\xa9llo";
    mcpgw_ws_message out;
    const char *why;

    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, p, 6, &plain_ctx, &out, &why), 0);
    CHECK(out.data == p && out.len == 6 && out.owned == NULL && !out.binary);
    mcpgw_ws_message_release(&out);
    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, NULL, 0, &plain_ctx, &out, &why), 0);
    CHECK(out.data != NULL && out.len == 0);
}

static uint8_t *make_text(size_t n, unsigned seed)
{
    uint8_t *t = malloc(n);

    for (size_t i = 0; t && i < n; i++)
        t[i] = (uint8_t)("{\"type\":\"ping\",\"id\":"[(i * seed) % 20]);
    return t;
}

/* A compressed message in fragments (RSV1 on the first only) is inflated
 * once whole; with context takeover the connection's own inflater keeps
 * the window from one message to the next, without it each message is
 * inflated alone. */
TEST(test_compressed_takeover_and_not)
{
    for (int takeover = 0; takeover < 2; takeover++) {
        mcpgw_pmd_pool pool;
        mcpgw_pmd_state peer = { NULL, NULL, 0 }, ours = { NULL, NULL, 0 };
        mcpgw_pmd_params p = { 1, !takeover, !takeover, 15, 15, MCPGW_PMD_SERVER };
        mcpgw_ws_msg_ctx ctx = { 100000, &pool, &ours, &p };
        size_t n = 3000, zlen[2];
        uint8_t *text = make_text(n, 7), *z[2];

        mcpgw_pmd_pool_init(&pool, 6, 8);
        REQUIRE(text != NULL);
        z[0] = mcpgw_pmd_deflate(&pool, &peer, &p, text, n, &zlen[0]);
        z[1] = mcpgw_pmd_deflate(&pool, &peer, &p, text, n, &zlen[1]);
        REQUIRE(z[0] && z[1] && zlen[0] > 4);
        if (takeover)
            CHECK(zlen[1] < zlen[0]);   /* the second refers to the first */
        for (int k = 0; k < 2; k++) {
            mcpgw_ws_msg *m = NULL;
            mcpgw_ws_message out;
            int controls = 0;
            size_t cut = zlen[k] / 2;

            CHECK_EQ_INT(feed(&m, 0, MCPGW_WS_OP_TEXT, 1, (const char *)z[k], cut, &ctx, &out,
                              &controls), 0);
            CHECK_EQ_INT(feed(&m, 1, MCPGW_WS_OP_CONT, 0, (const char *)z[k] + cut,
                              zlen[k] - cut, &ctx, &out, &controls), 1);
            CHECK_EQ_INT(out.len, n);
            CHECK(out.owned != NULL && memcmp(out.data, text, n) == 0);
            CHECK_EQ_INT(out.wire_len, zlen[k]);
            mcpgw_ws_message_release(&out);
            mcpgw_ws_msg_free(m);
        }
        CHECK(takeover ? ours.inflater != NULL : ours.inflater == NULL);
        /* a whole compressed frame: inflated from where it lies */
        {
            mcpgw_pmd_state fresh = { NULL, NULL, 0 };
            mcpgw_ws_frame_header h = hdr(1, MCPGW_WS_OP_TEXT, 1, zlen[0]);
            mcpgw_ws_message out;
            const char *why;

            ctx.state = &fresh;
            CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, z[0], zlen[0], &ctx, &out, &why), 0);
            CHECK(out.len == n && memcmp(out.data, text, n) == 0);
            mcpgw_ws_message_release(&out);
            mcpgw_pmd_state_free(&fresh);
        }
        free(z[0]);
        free(z[1]);
        free(text);
        mcpgw_pmd_state_free(&peer);
        mcpgw_pmd_state_free(&ours);
        mcpgw_pmd_pool_free(&pool);
    }
}

/* The inflate is bounded by the limit (a small frame of zeros that would
 * inflate far past it: 1009), corrupt data is 1007, and compressed text is
 * checked as UTF-8 once inflated. */
TEST(test_compressed_bounded_corrupt_invalid)
{
    mcpgw_pmd_pool pool;
    mcpgw_pmd_params p = { 1, 1, 1, 15, 15, MCPGW_PMD_SERVER };
    mcpgw_ws_msg_ctx ctx = { 10000, &pool, NULL, &p };
    size_t n = 1000000, zlen;
    uint8_t *zeros = calloc(1, n), *z;
    mcpgw_ws_frame_header h;
    mcpgw_ws_message out;
    const char *why = NULL;

    mcpgw_pmd_pool_init(&pool, 6, 8);
    REQUIRE(zeros != NULL);
    z = mcpgw_pmd_deflate(&pool, NULL, &p, zeros, n, &zlen);
    REQUIRE(z != NULL && zlen < 2000);
    h = hdr(1, MCPGW_WS_OP_BINARY, 1, zlen);
    CHECK_EQ_INT(mcpgw_ws_msg_check(NULL, &h, ctx.max, &why), 0);
    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, z, zlen, &ctx, &out, &why), MCPGW_WS_CLOSE_TOO_BIG);
    CHECK_EQ_STR(why, "Message too big");
    CHECK(out.owned == NULL);
    free(z);

    h = hdr(1, MCPGW_WS_OP_TEXT, 1, 3);
    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, (const uint8_t *)"\xff\xfe\xfd", 3, &ctx, &out, &why),
                 MCPGW_WS_CLOSE_INVALID_DATA);
    CHECK_EQ_STR(why, "Invalid compressed data");

    z = mcpgw_pmd_deflate(&pool, NULL, &p, (const uint8_t *)"ab\xc0\xaf", 4, &zlen);
    REQUIRE(z != NULL);
    h = hdr(1, MCPGW_WS_OP_TEXT, 1, zlen);
    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, z, zlen, &ctx, &out, &why), MCPGW_WS_CLOSE_INVALID_DATA);
    CHECK_EQ_STR(why, "Invalid UTF-8 in text message");
    h.opcode = MCPGW_WS_OP_BINARY;
    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, z, zlen, &ctx, &out, &why), 0);
    CHECK(out.len == 4 && memcmp(out.data, "ab\xc0\xaf", 4) == 0);
    mcpgw_ws_message_release(&out);
    /* RSV1 where no compression was negotiated (the frame check's job,
     * refused here too) */
    h.opcode = MCPGW_WS_OP_TEXT;
    CHECK_EQ_INT(mcpgw_ws_msg_whole(&h, z, zlen, &plain_ctx, &out, &why),
                 MCPGW_WS_CLOSE_PROTOCOL_ERROR);
    free(z);
    free(zeros);
    mcpgw_pmd_pool_free(&pool);
}

int main(void)
{
    RUN(test_fragments_with_controls_between);
    RUN(test_continuation_rules);
    RUN(test_utf8_across_fragments);
    RUN(test_invalid_utf8_fails_early);
    RUN(test_size_limit);
    RUN(test_reserve_exact_last_frame);
    RUN(test_whole_in_place);
    RUN(test_compressed_takeover_and_not);
    RUN(test_compressed_bounded_corrupt_invalid);
    return UNIT_SUMMARY();
}
