/*
 * utf8.c - strict, incremental UTF-8 validation (RFC 3629) for WebSocket
 * text messages and close reasons (RFC 6455 5.6, 8.1).
 *
 * A small DFA: each byte is mapped to a class, and (state, class) gives the
 * next state. The state remembers how much of a multi-byte sequence is still
 * owed and, right after a lead byte with a restricted second byte (E0, ED,
 * F0, F4), which range that second byte must fall in. That is what rejects
 * overlongs, surrogates and code points above U+10FFFF, and it lets a message
 * be validated across fragment boundaries.
 *
 *   Well-formed sequences (RFC 3629 section 4):
 *     00..7F
 *     C2..DF 80..BF
 *     E0     A0..BF 80..BF
 *     E1..EC 80..BF 80..BF
 *     ED     80..9F 80..BF
 *     EE..EF 80..BF 80..BF
 *     F0     90..BF 80..BF 80..BF
 *     F1..F3 80..BF 80..BF 80..BF
 *     F4     80..8F 80..BF 80..BF
 */
#include "utf8.h"

#include <string.h>

/* Byte classes. */
enum {
    C_ASC,      /* 00..7F */
    C_CLO,      /* 80..8F continuation */
    C_CMI,      /* 90..9F continuation */
    C_CHI,      /* A0..BF continuation */
    C_BAD,      /* C0, C1, F5..FF: never valid */
    C_L2,       /* C2..DF: lead of 2 */
    C_E0,       /* E0: lead of 3, second byte A0..BF */
    C_L3,       /* E1..EC, EE..EF: lead of 3 */
    C_ED,       /* ED: lead of 3, second byte 80..9F */
    C_F0,       /* F0: lead of 4, second byte 90..BF */
    C_L4,       /* F1..F3: lead of 4 */
    C_F4,       /* F4: lead of 4, second byte 80..8F */
    C_COUNT
};

/* States. ACCEPT and REJECT are the public values 0 and 1. */
enum {
    S_OK = MCPGW_UTF8_ACCEPT,   /* between characters */
    S_BAD = MCPGW_UTF8_REJECT,  /* invalid; sticky */
    S_NEED1,    /* one continuation byte owed (any 80..BF) */
    S_NEED2,    /* two owed, next any 80..BF */
    S_E0,       /* two owed, next A0..BF */
    S_ED,       /* two owed, next 80..9F */
    S_NEED3,    /* three owed, next any 80..BF */
    S_F0,       /* three owed, next 90..BF */
    S_F4,       /* three owed, next 80..8F */
    S_COUNT
};

static const uint8_t byte_class[256] = {
    /* 00..7F */
#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
    R16(C_ASC), R16(C_ASC), R16(C_ASC), R16(C_ASC),
    R16(C_ASC), R16(C_ASC), R16(C_ASC), R16(C_ASC),
    /* 80..8F, 90..9F, A0..BF */
    R16(C_CLO), R16(C_CMI), R16(C_CHI), R16(C_CHI),
    /* C0..CF, D0..DF */
    C_BAD, C_BAD, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
    C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
    R16(C_L2),
    /* E0..EF */
    C_E0, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3,
    C_L3, C_L3, C_L3, C_L3, C_L3, C_ED, C_L3, C_L3,
    /* F0..FF */
    C_F0, C_L4, C_L4, C_L4, C_F4, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD
#undef R16
};

#define X S_BAD
static const uint8_t next_state[S_COUNT][C_COUNT] = {
    /*            ASC   CLO      CMI      CHI      BAD L2       E0    L3       ED    F0    L4       F4 */
    /* S_OK    */ {S_OK, X,       X,       X,       X, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
    /* S_BAD   */ {X,    X,       X,       X,       X, X,       X,    X,       X,    X,    X,       X},
    /* S_NEED1 */ {X,    S_OK,    S_OK,    S_OK,    X, X,       X,    X,       X,    X,    X,       X},
    /* S_NEED2 */ {X,    S_NEED1, S_NEED1, S_NEED1, X, X,       X,    X,       X,    X,    X,       X},
    /* S_E0    */ {X,    X,       X,       S_NEED1, X, X,       X,    X,       X,    X,    X,       X},
    /* S_ED    */ {X,    S_NEED1, S_NEED1, X,       X, X,       X,    X,       X,    X,    X,       X},
    /* S_NEED3 */ {X,    S_NEED2, S_NEED2, S_NEED2, X, X,       X,    X,       X,    X,    X,       X},
    /* S_F0    */ {X,    X,       S_NEED2, S_NEED2, X, X,       X,    X,       X,    X,    X,       X},
    /* S_F4    */ {X,    S_NEED2, X,       X,       X, X,       X,    X,       X,    X,    X,       X},
};
#undef X

#define HIGH_BITS UINT64_C(0x8080808080808080)

uint32_t mcpgw_utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
    size_t i = 0;
    uint64_t w;

    if (state >= S_COUNT)       /* not a state we hand out: treat as invalid */
        return MCPGW_UTF8_REJECT;

    while (i < len) {
        if (state == S_OK) {
            /* ASCII fast path: 32 bytes at a time, then 8, while none
             * has bit 7. */
            while (len - i >= 32) {
                uint64_t w1, w2, w3;

                memcpy(&w, s + i, sizeof w);
                memcpy(&w1, s + i + 8, sizeof w1);
                memcpy(&w2, s + i + 16, sizeof w2);
                memcpy(&w3, s + i + 24, sizeof w3);
                if ((w | w1 | w2 | w3) & HIGH_BITS)
                    break;
                i += 32;
            }
            while (len - i >= 8) {
                memcpy(&w, s + i, sizeof w);
                if (w & HIGH_BITS)
                    break;
                i += 8;
            }
            while (i < len && s[i] < 0x80)
                i++;
            if (i == len)
                break;
        }
        state = next_state[state][byte_class[s[i]]];
        if (state == S_BAD)
            return MCPGW_UTF8_REJECT;
        i++;
    }
    return state;
}

int mcpgw_utf8_valid(const uint8_t *s, size_t len)
{
    return mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, s, len) == MCPGW_UTF8_ACCEPT;
}
