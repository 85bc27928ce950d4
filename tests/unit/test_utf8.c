/*
 * test_utf8.c - unit tests for core/utf8.c: RFC 3629 validity (overlongs,
 * surrogates, range, continuation, truncation), Markus Kuhn style stress
 * cases, the incremental feed across every split point, and an exhaustive /
 * randomized comparison with a straightforward reference decoder.
 */
#include "utf8.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reference validator: decodes code points the obvious way. */
static int ref_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t b = s[i];
        uint32_t cp, min;
        size_t n, k;

        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            n = 1; cp = b & 0x1Fu; min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 2; cp = b & 0x0Fu; min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 3; cp = b & 0x07u; min = 0x10000;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Encodes cp (any value < 2^21) in the 1-4 byte pattern; returns length. */
static size_t enc(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Validity on an exact-size heap copy, so ASan catches any over-read. */
static int valid_exact(const uint8_t *s, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    int r;

    if (!p)
        abort();
    memcpy(p, s, len);
    r = mcpgw_utf8_valid(p, len);
    free(p);
    return r;
}

/* Feeds s in pieces split at every position (and every pair of positions
 * for short strings, and byte by byte); each must end in the same state as
 * one whole feed. Returns 1 if all agree. */
static int splits_agree(const uint8_t *s, size_t len)
{
    uint32_t whole = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, s, len);
    uint32_t st;
    size_t i, j;

    for (i = 0; i <= len; i++) {
        st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, s, i);
        st = mcpgw_utf8_feed(st, s + i, len - i);
        if (st != whole)
            return 0;
    }
    if (len <= 64) {
        for (i = 0; i <= len; i++) {
            for (j = i; j <= len; j++) {
                st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, s, i);
                st = mcpgw_utf8_feed(st, s + i, j - i);
                st = mcpgw_utf8_feed(st, s + j, len - j);
                if (st != whole)
                    return 0;
            }
        }
    }
    st = MCPGW_UTF8_ACCEPT;
    for (i = 0; i < len; i++)
        st = mcpgw_utf8_feed(st, s + i, 1);
    return st == whole;
}

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static int v(const uint8_t *s, size_t len)
{
    int r = valid_exact(s, len);

    /* Every test vector also cross-checks the reference and the splits. */
    CHECK_EQ_INT(r, ref_valid(s, len));
    CHECK(splits_agree(s, len));
    return r;
}

/* ------------------------------------------------------------- valid */

TEST(valid_basic)
{
    CHECK_EQ_INT(mcpgw_utf8_valid(NULL, 0), 1);
    CHECK_EQ_INT(v((const uint8_t *)"", 0), 1);
    CHECK_EQ_INT(v(B('a')), 1);
    CHECK_EQ_INT(v(B(0x00)), 1);                    /* NUL is a character */
    CHECK_EQ_INT(v(B(0x7F)), 1);
    CHECK_EQ_INT(v((const uint8_t *)"Hello, world", 12), 1);
}

TEST(valid_multibyte_samples)
{
    /* "κόσμε" (Kuhn 1) */
    CHECK_EQ_INT(v(B(0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5)), 1);
    /* "€" */
    CHECK_EQ_INT(v(B(0xE2, 0x82, 0xAC)), 1);
    /* "日本語" */
    CHECK_EQ_INT(v(B(0xE6, 0x97, 0xA5, 0xE6, 0x9C, 0xAC, 0xE8, 0xAA, 0x9E)), 1);
    /* U+1F600 grinning face, mixed with ASCII */
    CHECK_EQ_INT(v(B('h', 'i', 0xF0, 0x9F, 0x98, 0x80, '!')), 1);
    /* "Ünïcödé" */
    CHECK_EQ_INT(v(B(0xC3, 0x9C, 'n', 0xC3, 0xAF, 'c', 0xC3, 0xB6, 'd', 0xC3, 0xA9)), 1);
}

TEST(valid_boundaries)
{
    /* Kuhn 2.1 / 2.2 / 2.3: first and last of each length, and others. */
    CHECK_EQ_INT(v(B(0xC2, 0x80)), 1);                    /* U+0080 */
    CHECK_EQ_INT(v(B(0xDF, 0xBF)), 1);                    /* U+07FF */
    CHECK_EQ_INT(v(B(0xE0, 0xA0, 0x80)), 1);              /* U+0800 */
    CHECK_EQ_INT(v(B(0xED, 0x9F, 0xBF)), 1);              /* U+D7FF */
    CHECK_EQ_INT(v(B(0xEE, 0x80, 0x80)), 1);              /* U+E000 */
    CHECK_EQ_INT(v(B(0xEF, 0xBF, 0xBD)), 1);              /* U+FFFD */
    CHECK_EQ_INT(v(B(0xEF, 0xBF, 0xBE)), 1);              /* U+FFFE */
    CHECK_EQ_INT(v(B(0xEF, 0xBF, 0xBF)), 1);              /* U+FFFF */
    CHECK_EQ_INT(v(B(0xF0, 0x90, 0x80, 0x80)), 1);        /* U+10000 */
    CHECK_EQ_INT(v(B(0xF1, 0x80, 0x80, 0x80)), 1);        /* U+40000 */
    CHECK_EQ_INT(v(B(0xF3, 0xBF, 0xBF, 0xBF)), 1);        /* U+FFFFF */
    CHECK_EQ_INT(v(B(0xF4, 0x80, 0x80, 0x80)), 1);        /* U+100000 */
    CHECK_EQ_INT(v(B(0xF4, 0x8F, 0xBF, 0xBF)), 1);        /* U+10FFFF */
}

/* ------------------------------------------------------------- invalid */

TEST(invalid_overlongs)
{
    /* Kuhn 4.1: overlong '/' */
    CHECK_EQ_INT(v(B(0xC0, 0xAF)), 0);
    CHECK_EQ_INT(v(B(0xE0, 0x80, 0xAF)), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x80, 0x80, 0xAF)), 0);
    CHECK_EQ_INT(v(B(0xF8, 0x80, 0x80, 0x80, 0xAF)), 0);
    CHECK_EQ_INT(v(B(0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF)), 0);
    /* Kuhn 4.2: maximum overlongs */
    CHECK_EQ_INT(v(B(0xC1, 0xBF)), 0);
    CHECK_EQ_INT(v(B(0xE0, 0x9F, 0xBF)), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x8F, 0xBF, 0xBF)), 0);
    /* Kuhn 4.3: overlong NUL */
    CHECK_EQ_INT(v(B(0xC0, 0x80)), 0);
    CHECK_EQ_INT(v(B(0xE0, 0x80, 0x80)), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x80, 0x80, 0x80)), 0);
}

TEST(invalid_surrogates)
{
    /* Kuhn 5.1: single UTF-16 surrogates */
    CHECK_EQ_INT(v(B(0xED, 0xA0, 0x80)), 0);              /* U+D800 */
    CHECK_EQ_INT(v(B(0xED, 0xAD, 0xBF)), 0);              /* U+DB7F */
    CHECK_EQ_INT(v(B(0xED, 0xAE, 0x80)), 0);              /* U+DB80 */
    CHECK_EQ_INT(v(B(0xED, 0xAF, 0xBF)), 0);              /* U+DBFF */
    CHECK_EQ_INT(v(B(0xED, 0xB0, 0x80)), 0);              /* U+DC00 */
    CHECK_EQ_INT(v(B(0xED, 0xBE, 0x80)), 0);              /* U+DF80 */
    CHECK_EQ_INT(v(B(0xED, 0xBF, 0xBF)), 0);              /* U+DFFF */
    /* Kuhn 5.2: paired surrogates (CESU-8) */
    CHECK_EQ_INT(v(B(0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80)), 0);
    CHECK_EQ_INT(v(B(0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF)), 0);
}

TEST(invalid_above_max)
{
    CHECK_EQ_INT(v(B(0xF4, 0x90, 0x80, 0x80)), 0);        /* U+110000 */
    CHECK_EQ_INT(v(B(0xF4, 0xBF, 0xBF, 0xBF)), 0);        /* U+13FFFF */
    CHECK_EQ_INT(v(B(0xF5, 0x80, 0x80, 0x80)), 0);
    CHECK_EQ_INT(v(B(0xF7, 0xBF, 0xBF, 0xBF)), 0);        /* U+1FFFFF */
    CHECK_EQ_INT(v(B(0xF8, 0x88, 0x80, 0x80, 0x80)), 0);  /* 5-byte form */
    CHECK_EQ_INT(v(B(0xFC, 0x84, 0x80, 0x80, 0x80, 0x80)), 0); /* 6-byte form */
}

TEST(invalid_never_bytes)
{
    unsigned b;

    /* C0, C1 and F5..FF can never appear, alone or with continuations. */
    for (b = 0; b < 256; b++) {
        int never = b == 0xC0 || b == 0xC1 || b >= 0xF5;
        uint8_t s[4] = {(uint8_t)b, 0x80, 0x80, 0x80};

        if (!never)
            continue;
        CHECK_EQ_INT(v(s, 1), 0);
        CHECK_EQ_INT(v(s, 2), 0);
        CHECK_EQ_INT(v(s, 4), 0);
    }
    CHECK_EQ_INT(v(B(0xFE)), 0);
    CHECK_EQ_INT(v(B(0xFF)), 0);
    CHECK_EQ_INT(v(B(0xFE, 0xFE, 0xFF, 0xFF)), 0);
}

TEST(invalid_continuation)
{
    unsigned b;

    /* Kuhn 3.1: lone continuation bytes */
    for (b = 0x80; b <= 0xBF; b++) {
        uint8_t s[3] = {'a', (uint8_t)b, 'a'};

        CHECK_EQ_INT(v(s + 1, 1), 0);
        CHECK_EQ_INT(v(s, 3), 0);
    }
    CHECK_EQ_INT(v(B(0x80, 0xBF)), 0);
    CHECK_EQ_INT(v(B(0x80, 0xBF, 0x80)), 0);
    /* One continuation too many */
    CHECK_EQ_INT(v(B(0xC2, 0x80, 0x80)), 0);
    CHECK_EQ_INT(v(B(0xE2, 0x82, 0xAC, 0xAC)), 0);
    /* Kuhn 3.2: lead bytes followed by a space */
    CHECK_EQ_INT(v(B(0xC2, ' ')), 0);
    CHECK_EQ_INT(v(B(0xDF, ' ')), 0);
    CHECK_EQ_INT(v(B(0xE0, ' ')), 0);
    CHECK_EQ_INT(v(B(0xEF, ' ')), 0);
    CHECK_EQ_INT(v(B(0xF0, ' ')), 0);
    CHECK_EQ_INT(v(B(0xF4, ' ')), 0);
    /* Bad continuation in the middle or end */
    CHECK_EQ_INT(v(B(0xE2, 0x82, 'x')), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x9F, 0x98, 'x')), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x9F, 0xC3, 0xA9)), 0);
    /* A lead byte where a continuation is due */
    CHECK_EQ_INT(v(B(0xC3, 0xC3, 0xA9)), 0);
}

TEST(invalid_truncated)
{
    /* Kuhn 3.3: sequences with the last byte missing */
    CHECK_EQ_INT(v(B(0xC2)), 0);
    CHECK_EQ_INT(v(B(0xDF)), 0);
    CHECK_EQ_INT(v(B(0xE0, 0xA0)), 0);
    CHECK_EQ_INT(v(B(0xE2, 0x82)), 0);
    CHECK_EQ_INT(v(B(0xEF, 0xBF)), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x90, 0x80)), 0);
    CHECK_EQ_INT(v(B(0xF4, 0x8F, 0xBF)), 0);
    CHECK_EQ_INT(v(B(0xF0)), 0);
    CHECK_EQ_INT(v(B(0xF0, 0x9F)), 0);
    CHECK_EQ_INT(v(B('o', 'k', 0xE2, 0x82)), 0);
    /* Kuhn 3.4: concatenation of incomplete sequences */
    CHECK_EQ_INT(v(B(0xC0, 0xE0, 0x80, 0xF0, 0x80, 0x80, 0xF8, 0x80, 0x80, 0x80,
                     0xFC, 0x80, 0x80, 0x80, 0x80, 0xDF, 0xEF, 0xBF, 0xF7, 0xBF,
                     0xBF, 0xFB, 0xBF, 0xBF, 0xBF, 0xFD, 0xBF, 0xBF, 0xBF, 0xBF)), 0);
}

/* ------------------------------------------------------------- incremental */

TEST(feed_states)
{
    static const uint8_t euro[] = {0xE2, 0x82, 0xAC};
    uint32_t st;

    /* A partial sequence is neither accept nor reject, and completes. */
    st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, euro, 1);
    CHECK(st != MCPGW_UTF8_ACCEPT && st != MCPGW_UTF8_REJECT);
    st = mcpgw_utf8_feed(st, euro + 1, 1);
    CHECK(st != MCPGW_UTF8_ACCEPT && st != MCPGW_UTF8_REJECT);
    st = mcpgw_utf8_feed(st, NULL, 0);              /* empty feed keeps state */
    CHECK(st != MCPGW_UTF8_ACCEPT && st != MCPGW_UTF8_REJECT);
    st = mcpgw_utf8_feed(st, euro + 2, 1);
    CHECK_EQ_INT(st, MCPGW_UTF8_ACCEPT);

    /* Restricted second bytes are remembered across a split. */
    st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xED));
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0xA0, 0x80)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0x9F, 0xBF)), MCPGW_UTF8_ACCEPT);
    st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xE0));
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0x9F, 0xBF)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0xA0, 0x80)), MCPGW_UTF8_ACCEPT);
    st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xF0));
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0x8F, 0xBF, 0xBF)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0x90, 0x80, 0x80)), MCPGW_UTF8_ACCEPT);
    st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xF4));
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0x90, 0x80, 0x80)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0x8F, 0xBF, 0xBF)), MCPGW_UTF8_ACCEPT);
    /* A fragment may not end the message mid-sequence and restart ASCII. */
    st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B('a', 0xC3));
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B('b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j')),
                 MCPGW_UTF8_REJECT);
}

TEST(feed_reject_is_sticky)
{
    uint32_t st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xFF));

    CHECK_EQ_INT(st, MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, NULL, 0), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, (const uint8_t *)"abcdefghijklmnop", 16),
                 MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(st, B(0xC3, 0xA9)), MCPGW_UTF8_REJECT);
    /* Rejection mid-buffer stops there and stays. */
    CHECK_EQ_INT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B('a', 0x80, 'b', 'c', 'd', 'e',
                                                      'f', 'g', 'h', 'i')),
                 MCPGW_UTF8_REJECT);
}

TEST(feed_split_every_position)
{
    /* A long mixed string: ASCII runs (fast path), all sequence lengths,
     * restricted lead bytes; valid, then corrupted at each byte. */
    static const uint8_t good[] = {
        'T', 'h', 'e', ' ', 'q', 'u', 'i', 'c', 'k', ' ', 0xCE, 0xBA, 0xE1, 0xBD,
        0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, ' ', 'b', 'r', 'o', 'w', 'n',
        ' ', 'f', 'o', 'x', 0xF0, 0x9F, 0xA6, 0x8A, 0xE0, 0xA0, 0x80, 0xED, 0x9F,
        0xBF, 0xF4, 0x8F, 0xBF, 0xBF, 0xF0, 0x90, 0x80, 0x80, 'j', 'u', 'm', 'p',
        's', ' ', 'o', 'v', 'e', 'r', 0xC2, 0x80, 0xDF, 0xBF, 0xEF, 0xBF, 0xBF,
    };
    uint8_t bad[sizeof good];
    size_t i;

    CHECK_EQ_INT(v(good, sizeof good), 1);
    for (i = 0; i < sizeof good; i++) {
        static const uint8_t repl[] = {0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF, 'a'};
        size_t r;

        for (r = 0; r < sizeof repl; r++) {
            memcpy(bad, good, sizeof good);
            bad[i] = repl[r];
            (void)v(bad, sizeof bad);               /* checks ref + splits */
        }
        /* Every prefix: valid iff it ends on a character boundary. */
        (void)v(good, i);
    }
}

TEST(ascii_fast_path_positions)
{
    uint8_t buf[80];
    size_t start, len, pos;

    /* A bad byte at every position of ASCII runs, at every alignment, so
     * the 8-byte path must hand over to the byte path at the right spot. */
    for (start = 0; start < 8; start++) {
        for (len = 0; len + start <= sizeof buf; len += 3) {
            memset(buf, 'x', sizeof buf);
            CHECK_EQ_INT(valid_exact(buf + start, len), 1);
            for (pos = 0; pos < len; pos++) {
                memset(buf, 'x', sizeof buf);
                buf[start + pos] = 0x80;
                CHECK_EQ_INT(valid_exact(buf + start, len), 0);
                buf[start + pos] = 0xC3;             /* truncated at the end? */
                CHECK_EQ_INT(valid_exact(buf + start, len), 0);
                if (pos + 1 < len) {
                    buf[start + pos + 1] = 0xA9;     /* é: valid again */
                    CHECK_EQ_INT(valid_exact(buf + start, len), 1);
                }
            }
        }
    }
}

/* ------------------------------------------------------------- exhaustive */

TEST(exhaustive_short_sequences)
{
    uint8_t s[4];
    unsigned a, b, c, d;
    unsigned long mismatches = 0;
    static const uint8_t thirds[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                     0xA0, 0xBF, 0xC0, 0xC2, 0xF0, 0xFF};
    size_t t;

    for (a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        if (mcpgw_utf8_valid(s, 1) != ref_valid(s, 1))
            mismatches++;
        for (b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            if (mcpgw_utf8_valid(s, 2) != ref_valid(s, 2))
                mismatches++;
            if (a < 0xC0)
                continue;               /* ASCII/continuation leads: covered above */
            for (c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                if (mcpgw_utf8_valid(s, 3) != ref_valid(s, 3))
                    mismatches++;
            }
        }
    }
    for (a = 0xF0; a <= 0xF7; a++) {
        for (b = 0; b < 256; b++) {
            for (t = 0; t < sizeof thirds; t++) {
                for (d = 0; d < 256; d++) {
                    s[0] = (uint8_t)a;
                    s[1] = (uint8_t)b;
                    s[2] = thirds[t];
                    s[3] = (uint8_t)d;
                    if (mcpgw_utf8_valid(s, 4) != ref_valid(s, 4))
                        mismatches++;
                }
            }
        }
    }
    CHECK_EQ_INT(mismatches, 0);
}

TEST(every_code_point)
{
    uint8_t s[4];
    uint32_t cp;
    unsigned long mismatches = 0;

    /* Encode every value below 2^21 in its natural length: valid exactly
     * for scalar values (not surrogates, not above U+10FFFF). */
    for (cp = 0; cp < 0x200000; cp++) {
        size_t n = enc(s, cp);
        int want = cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);

        if (mcpgw_utf8_valid(s, n) != want)
            mismatches++;
    }
    CHECK_EQ_INT(mismatches, 0);
}

/* Can s[0..len) (len <= 8) still become valid UTF-8 with more bytes? The
 * reference tries the completions that meet every second-byte restriction:
 * 1 to 3 bytes, the first 80, 90 or A0 (in 80..8F, 80..9F, 90..BF, A0..BF
 * or 80..BF, whichever is due), the others 80. */
static int ref_prefix_ok(const uint8_t *s, size_t len)
{
    static const uint8_t firsts[] = {0x80, 0x90, 0xA0};
    uint8_t buf[16];
    size_t f, k;

    if (ref_valid(s, len))
        return 1;
    memcpy(buf, s, len);
    for (f = 0; f < sizeof firsts; f++) {
        for (k = 1; k <= 3; k++) {
            buf[len] = firsts[f];
            memset(buf + len + 1, 0x80, k - 1);
            if (ref_valid(buf, len + k))
                return 1;
        }
    }
    return 0;
}

/* What fail-fast (RFC 6455 8.1) relies on: the feed rejects at the first
 * byte after which no continuation could make the text valid, and never
 * earlier; every string of 1 to 4 bytes over the bytes where the rules
 * change. */
TEST(feed_rejects_as_soon_as_a_prefix_cannot_be_valid)
{
    static const uint8_t alpha[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    const size_t n = sizeof alpha;
    unsigned long mismatches = 0, rejected = 0, total = 0;
    size_t len, i, idx[4];
    uint8_t s[4];

    for (len = 1; len <= 4; len++) {
        memset(idx, 0, sizeof idx);
        for (;;) {
            uint32_t st;

            for (i = 0; i < len; i++)
                s[i] = alpha[idx[i]];
            st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, s, len);
            if ((st == MCPGW_UTF8_REJECT) != !ref_prefix_ok(s, len))
                mismatches++;
            rejected += st == MCPGW_UTF8_REJECT;
            total++;
            for (i = 0; i < len && ++idx[i] == n; i++)
                idx[i] = 0;
            if (i == len)
                break;
        }
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(rejected > total / 4 && rejected < total);
    /* The cases of the fail-fast tests: rejected at the offending byte. */
    CHECK_EQ_INT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xC0)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xE0, 0x9F)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xED, 0xA0)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xF0, 0x8F)), MCPGW_UTF8_REJECT);
    CHECK_EQ_INT(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xF4, 0x90)), MCPGW_UTF8_REJECT);
    CHECK(mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, B(0xF4, 0x8F, 0xBF)) != MCPGW_UTF8_REJECT);
}

static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

TEST(random_against_reference)
{
    uint8_t buf[256] = { 0 };
    int iter;
    unsigned long mismatches = 0, valid_seen = 0;

    for (iter = 0; iter < 20000; iter++) {
        size_t len = 0, cut;
        uint32_t st;

        while (len + 4 <= sizeof buf && (rng() % 64) != 0) {
            uint32_t r = rng() % 100;

            if (r < 40)
                buf[len++] = (uint8_t)(rng() % 0x80);
            else if (r < 97)
                len += enc(buf + len, rng() % 0x110000);
            else
                buf[len++] = (uint8_t)rng();    /* noise */
        }
        if (ref_valid(buf, len))
            valid_seen++;
        if (mcpgw_utf8_valid(buf, len) != ref_valid(buf, len))
            mismatches++;
        cut = len ? rng() % (len + 1) : 0;
        st = mcpgw_utf8_feed(MCPGW_UTF8_ACCEPT, buf, cut);
        st = mcpgw_utf8_feed(st, buf + cut, len - cut);
        if ((st == MCPGW_UTF8_ACCEPT) != ref_valid(buf, len))
            mismatches++;
    }
    CHECK_EQ_INT(mismatches, 0);
    /* The generator must exercise both verdicts. */
    CHECK(valid_seen > 1000 && valid_seen < 19000);
}

int main(void)
{
    RUN(valid_basic);
    RUN(valid_multibyte_samples);
    RUN(valid_boundaries);
    RUN(invalid_overlongs);
    RUN(invalid_surrogates);
    RUN(invalid_above_max);
    RUN(invalid_never_bytes);
    RUN(invalid_continuation);
    RUN(invalid_truncated);
    RUN(feed_states);
    RUN(feed_reject_is_sticky);
    RUN(feed_split_every_position);
    RUN(ascii_fast_path_positions);
    RUN(feed_rejects_as_soon_as_a_prefix_cannot_be_valid);
    RUN(exhaustive_short_sequences);
    RUN(every_code_point);
    RUN(random_against_reference);
    return UNIT_SUMMARY();
}
