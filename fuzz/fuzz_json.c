/*
 * fuzz_json.c - libFuzzer target for the JSON reader and writer
 * (core/json_read.c, core/json_write.c), differential against jansson.
 *
 * The input is parsed by mcpgw_json_read and by json_loadb(JSON_DECODE_ANY).
 * They must agree on whether it is JSON and, when it is, on the value
 * (json_equal), except where json_read.h documents a difference: an integer
 * beyond json_int_t (a real for us, an error for jansson), nesting at the
 * depth limit, and a NUL byte after the value (jansson stops reading there;
 * we refuse it, as JSON.parse does). A failure must come with an error text and a position inside
 * the input. A value we read is then written and read back: the same value
 * again (reals included: the writer's text reads back exactly).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "json_read.h"
#include "json_write.h"

/* Deepest nesting of brackets in the input, strings ignored roughly (an
 * upper bound is all that is needed). */
static size_t max_nesting(const uint8_t *data, size_t size)
{
    size_t depth = 0, deepest = 0;

    for (size_t i = 0; i < size; i++) {
        if (data[i] == '[' || data[i] == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if ((data[i] == ']' || data[i] == '}') && depth) {
            depth--;
        }
    }
    return deepest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mcpgw_json_read_error err;
    json_error_t jerr;
    json_t *ours = mcpgw_json_read((const char *)data, size, &err);
    json_t *theirs = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    /* jansson takes a NUL byte outside a string as the end of the input
     * ("null\0" is null to it); JSON.parse and we refuse the NUL. */
    int comparable = max_nesting(data, size) < MCPGW_JSON_READ_MAX_DEPTH - 8 &&
                     memchr(data, 0, size) == NULL;

    if (!ours) {
        FUZZ_ASSERT(err.text[0] != '\0');
        FUZZ_ASSERT(err.position <= size);
    }
    if (comparable) {
        /* jansson accepts nothing we refuse */
        FUZZ_ASSERT(ours || !theirs);
        /* the one documented acceptance jansson lacks */
        if (ours && !theirs)
            FUZZ_ASSERT(strstr(jerr.text, "too big") != NULL);
        if (ours && theirs)
            FUZZ_ASSERT(json_equal(ours, theirs));
    }
    if (ours) {
        mcpgw_jbuf b = { NULL, 0, 0 };
        if (mcpgw_json_write(&b, ours) == 0) {
            json_t *again = mcpgw_json_read(b.data, b.len, NULL);
            FUZZ_ASSERT(again != NULL);
            FUZZ_ASSERT(json_equal(ours, again));
            json_decref(again);
        } else {
            /* only nesting at the limit can make the writer refuse */
            FUZZ_ASSERT(!comparable);
        }
        mcpgw_jbuf_free(&b);
    }
    json_decref(ours);
    json_decref(theirs);
    return 0;
}
