/*
 * json_text.c - the number scanner that the JSON reader and the message
 * view share (json_text.h): one judgement of what a number is and holds.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

static mcpgw_json_number_result bad(mcpgw_json_number *n, const char *at, const char *why)
{
    n->err = why;
    n->err_at = at;
    return MCPGW_JSON_NUMBER_BAD;
}

mcpgw_json_number_result mcpgw_json_scan_number(const char *p, const char *end,
                                                mcpgw_json_number *n)
{
    const char *start = p, *q = p;
    int digits = 0;
    char stackbuf[64], *copy;
    size_t len;
    mcpgw_json_number_result rc = MCPGW_JSON_NUMBER_OK;

    memset(n, 0, sizeof(*n));
    n->is_int = 1;
    if (*q == '-')
        q++;
    if (q >= end || !IS_DIGIT(*q))
        return bad(n, q, "No number after minus sign");     /* only '-' gets here */
    if (*q == '0') {
        q++;
        digits = 1;
        if (q < end && IS_DIGIT(*q))
            return bad(n, q, "Unexpected number");          /* a leading zero */
    } else {
        while (q < end && IS_DIGIT(*q)) {
            q++;
            digits++;
        }
    }
    if (q < end && *q == '.') {
        n->is_int = 0;
        q++;
        if (q >= end || !IS_DIGIT(*q))
            return bad(n, q, "Unterminated fractional number");
        while (q < end && IS_DIGIT(*q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        n->is_int = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !IS_DIGIT(*q))
            return bad(n, q, "Exponent part is missing a number");
        while (q < end && IS_DIGIT(*q))
            q++;
    }
    n->end = q;
    if (n->is_int && digits <= 18) {
        const char *r = start + (*start == '-');
        long long i = 0;

        while (r < q)
            i = i * 10 + (*r++ - '0');
        n->integer = *start == '-' ? -i : i;
        return MCPGW_JSON_NUMBER_OK;
    }
    /* strtoll/strtod want a terminated copy */
    len = (size_t)(q - start);
    copy = len < sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    if (!copy) {
        n->err = "Out of memory";
        n->err_at = start;
        return MCPGW_JSON_NUMBER_NOMEM;
    }
    memcpy(copy, start, len);
    copy[len] = '\0';
    if (n->is_int) {
        errno = 0;
        n->integer = strtoll(copy, NULL, 10);
        if (errno != ERANGE)
            goto out;
        n->is_int = 0;          /* beyond long long: a real, as JSON.parse would give */
    }
    n->real = strtod(copy, NULL);
    if (!isfinite(n->real))
        rc = bad(n, start, "Number out of range");
out:
    if (copy != stackbuf)
        free(copy);
    return rc;
}
