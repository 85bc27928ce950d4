/*
 * fuzz_ws_msg.c - libFuzzer target for the message assembler (core/ws_msg.c)
 * as both ends drive it: a sequence of frames, each checked
 * (mcpgw_ws_msg_check), opening a message or added to it in pieces
 * (reserve/commit), the last one finishing it (inflated when compressed).
 *
 * The first byte chooses the settings: bit 0 permessage-deflate, bit 1
 * context takeover, bits 2-3 the size limit (16, 200, 4096, 65536 bytes).
 * Then frames: a flags byte (bit 0 FIN, bits 1-2 opcode CONT, TEXT, BINARY
 * or PING, bit 3 RSV1, bits 4-7 how many pieces its payload is added in),
 * a length byte, and that many payload bytes (fewer at the end of input).
 *
 * Invariants: a check that passes keeps the message within the limit; an
 * error is one of 1002, 1007, 1009, 1011 with a reason; uncompressed, the
 * finished message is exactly its fragments' bytes; text is valid UTF-8;
 * a commit that fails (1007) means the bytes so far are no valid prefix;
 * and a single-frame message gives the same verdict and bytes through
 * mcpgw_ws_msg_whole() as through the assembly.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "utf8.h"
#include "ws_msg.h"

static mcpgw_pmd_pool pool;
static int pool_ready;

static int known_code(int code)
{
    return code == MCPGW_WS_CLOSE_PROTOCOL_ERROR || code == MCPGW_WS_CLOSE_INVALID_DATA ||
           code == MCPGW_WS_CLOSE_TOO_BIG || code == MCPGW_WS_CLOSE_INTERNAL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[4] = { 16, 200, 4096, 65536 };
    mcpgw_pmd_state st = { NULL, NULL, 0 }, st2 = { NULL, NULL, 0 };
    mcpgw_pmd_params params;
    mcpgw_ws_msg_ctx ctx;
    mcpgw_ws_msg *m = NULL;
    uint8_t *ref = NULL;            /* the message's bytes as fed, for the check */
    size_t ref_len = 0, frames_in_msg = 0, i;
    int failed = 0;

    if (size < 1)
        return 0;
    if (!pool_ready) {
        mcpgw_pmd_pool_init(&pool, 6, 8);
        pool_ready = 1;
    }
    memset(&params, 0, sizeof(params));
    params.enabled = data[0] & 1;
    params.server_no_context_takeover = params.client_no_context_takeover = !(data[0] & 2);
    params.server_window_bits = params.client_window_bits = 15;
    ctx.max = limits[(data[0] >> 2) & 3];
    ctx.pool = &pool;
    ctx.state = &st;
    ctx.params = &params;
    ref = malloc(ctx.max + 1);
    FUZZ_ASSERT(ref);

    for (i = 1; i + 2 <= size && !failed;) {
        static const int ops[4] = { MCPGW_WS_OP_CONT, MCPGW_WS_OP_TEXT, MCPGW_WS_OP_BINARY,
                                    MCPGW_WS_OP_PING };
        uint8_t flags = data[i];
        size_t len = data[i + 1], pieces = (size_t)(flags >> 4) + 1, done = 0;
        const uint8_t *p = data + i + 2;
        mcpgw_ws_frame_header h;
        const char *why = NULL;
        int code;

        if (len > size - i - 2)
            len = size - i - 2;
        i += 2 + len;
        memset(&h, 0, sizeof(h));
        h.fin = flags & 1;
        h.opcode = (unsigned)ops[(flags >> 1) & 3];
        h.rsv = (flags & 8) && params.enabled && h.opcode != MCPGW_WS_OP_CONT ? 4 : 0;
        h.payload_len = len;
        if (h.opcode == MCPGW_WS_OP_PING)
            continue;               /* control frames are the caller's */
        if ((code = mcpgw_ws_msg_check(m, &h, ctx.max, &why)) != 0) {
            FUZZ_ASSERT(why && (code == MCPGW_WS_CLOSE_PROTOCOL_ERROR ||
                                code == MCPGW_WS_CLOSE_TOO_BIG));
            FUZZ_ASSERT(code != MCPGW_WS_CLOSE_TOO_BIG || ref_len + len > ctx.max);
            break;
        }
        FUZZ_ASSERT((m == NULL) == (h.opcode != MCPGW_WS_OP_CONT));
        if (!m) {
            m = mcpgw_ws_msg_open(&h);
            FUZZ_ASSERT(m);
            ref_len = 0;
            frames_in_msg = 0;
        }
        frames_in_msg++;
        FUZZ_ASSERT(ref_len + len <= ctx.max);
        while (done < len) {        /* the payload in pieces, as it arrives */
            size_t n = (len - done + pieces - 1) / pieces;
            uint8_t *dst = mcpgw_ws_msg_reserve(m, n, h.fin ? ref_len + len : 0);

            FUZZ_ASSERT(dst);
            memcpy(dst, p + done, n);
            memcpy(ref + ref_len + done, p + done, n);
            done += n;
            code = mcpgw_ws_msg_commit(m, n, &why);
            if (code) {
                FUZZ_ASSERT(code == MCPGW_WS_CLOSE_INVALID_DATA && why);
                FUZZ_ASSERT(m->opcode == MCPGW_WS_OP_TEXT && !m->compressed);
                FUZZ_ASSERT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, ref, ref_len + done) ==
                            MCPGW_UTF8_REJECT);
                failed = 1;
                break;
            }
            if (pieces > 1)
                pieces--;
        }
        if (failed)
            break;
        ref_len += len;
        FUZZ_ASSERT(m->len == ref_len && (!ref_len || memcmp(m->data, ref, ref_len) == 0));
        if (h.fin) {
            mcpgw_ws_message out, whole;
            int code2 = -1;
            const char *why2 = NULL;

            /* a single frame: mcpgw_ws_msg_whole on its own inflater must
             * agree (without context takeover the pool's stream is used
             * either way; with it a fresh window is fair only for the
             * first message, so compare uncompressed ones only) */
            if (frames_in_msg == 1 && (!m->compressed || params.server_no_context_takeover)) {
                mcpgw_ws_msg_ctx c2 = ctx;
                mcpgw_ws_frame_header w = h;

                c2.state = &st2;
                w.rsv = m->compressed ? 4 : 0;
                w.opcode = m->opcode;
                code2 = mcpgw_ws_msg_whole(&w, ref, ref_len, &c2, &whole, &why2);
            }
            code = mcpgw_ws_msg_finish(m, &ctx, &out, &why);
            if (code2 >= 0) {
                FUZZ_ASSERT(code2 == code);
                if (!code)
                    FUZZ_ASSERT(whole.len == out.len && memcmp(whole.data, out.data,
                                                               out.len) == 0);
                if (!code2)
                    mcpgw_ws_message_release(&whole);
            }
            if (code) {
                FUZZ_ASSERT(why && known_code(code));
                failed = 1;
            } else {
                FUZZ_ASSERT(out.data && out.len <= ctx.max);
                FUZZ_ASSERT(out.wire_len == ref_len);
                FUZZ_ASSERT(out.binary == (m->opcode == MCPGW_WS_OP_BINARY));
                if (!out.binary)
                    FUZZ_ASSERT(mcpgw_utf8_valid(out.data, out.len));
                if (!m->compressed)
                    FUZZ_ASSERT(out.len == ref_len && !out.owned &&
                                memcmp(out.data, ref, ref_len) == 0);
                mcpgw_ws_message_release(&out);
            }
            mcpgw_ws_msg_free(m);
            m = NULL;
            ref_len = 0;
        }
    }
    mcpgw_ws_msg_free(m);
    free(ref);
    mcpgw_pmd_state_free(&st);
    mcpgw_pmd_state_free(&st2);
    return 0;
}
