/*
 * json_text.h - the pieces of JSON text that the reader (json_read.c) and
 * the message view (json_view.c) share: the four hex digits of a \uXXXX
 * escape, a code point's UTF-8 bytes, and the number scanner
 * (json_text.c). Both must decode a string to the same bytes and judge a
 * number the same way (fuzz_json_view checks it), so there is one copy of
 * each. Pure; only a long number's terminated copy is allocated.
 */
#ifndef MCPGW_JSON_TEXT_H
#define MCPGW_JSON_TEXT_H

#include <stddef.h>

/* The value of the four hex digits at s (upper or lower case) into *out:
 * 0, or -1 if one is not a hex digit (s must have 4 readable bytes). */
static inline int mcpgw_json_hex4(const char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Code point cp (at most 0x10FFFF, not a surrogate: the caller checked) as
 * UTF-8 into out (room for 4); returns its length. */
static inline size_t mcpgw_json_utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON number (RFC 8259 section 6) as scanned. */
typedef struct mcpgw_json_number {
    const char *end;                /* after it (OK) */
    int is_int;                     /* an integer within long long; else a real */
    long long integer;              /* is_int: its value */
    double real;                    /* !is_int: its value (finite) */
    const char *err;                /* !OK: a static reason, as jansson words it */
    const char *err_at;             /*      and where */
} mcpgw_json_number;

typedef enum {
    MCPGW_JSON_NUMBER_OK = 0,
    MCPGW_JSON_NUMBER_BAD = -1,     /* malformed, or a real out of range */
    MCPGW_JSON_NUMBER_NOMEM = -2    /* no memory for a long number's copy */
} mcpgw_json_number_result;

/* Scans the number at p (p < end; it starts with '-' or a digit): the
 * grammar (no leading zero, digits after '.' and after the exponent), then
 * its value: an integer of up to 18 digits directly, a longer one with
 * strtoll (beyond long long it is a real, as JSON.parse would give), a
 * real with strtod (an infinite one is BAD: "Number out of range"). */
mcpgw_json_number_result mcpgw_json_scan_number(const char *p, const char *end,
                                                mcpgw_json_number *n);

#endif
