/*
 * json_write.h - the gateway's JSON serialiser: compact text of a json_t,
 * appended to a growable byte buffer the caller reuses.
 *
 * It replaces json_dumps on the send paths. json_dumps builds its text in a
 * string buffer that starts at 16 bytes and grows by realloc, and keeps a
 * table of the containers it is inside to detect cycles; per message that
 * was most of the reply cost. Here the caller's buffer keeps its capacity
 * from one message to the next, and a depth limit stands in for the cycle
 * check (a cyclic value fails at that depth).
 *
 * The text matches json_dumps(v, JSON_COMPACT) except for reals, which are
 * written in the shortest form that reads back to the same double (0.6, not
 * 0.59999999999999998), still with a '.' or an exponent so they stay reals.
 * Strings are checked for UTF-8; invalid UTF-8 fails, as in jansson.
 *
 * Ownership: the buffer's data belongs to the buffer; mcpgw_jbuf_free()
 * releases it. Not thread-safe: one buffer per thread.
 */
#ifndef MCPGW_JSON_WRITE_H
#define MCPGW_JSON_WRITE_H

#include <stddef.h>
#include <jansson.h>

typedef struct mcpgw_jbuf {
    char *data;
    size_t len;
    size_t cap;
} mcpgw_jbuf;

/* Containers nested deeper than this fail to serialise (and so do cycles). */
#define MCPGW_JSON_WRITE_MAX_DEPTH 2048

/* Appends the compact text of v to b (b->len grows; no NUL is added).
 * 0, or -1 (out of memory, invalid UTF-8, too deep, NULL v); on -1 b->len
 * is back where it was. */
int mcpgw_json_write(mcpgw_jbuf *b, const json_t *v);

/* Appends s[0..n) as a JSON string, as the writer writes a string value.
 * 0, or -1 (invalid UTF-8, out of memory); on -1 b->len is back where it
 * was. */
int mcpgw_json_write_string(mcpgw_jbuf *b, const char *s, size_t n);

/* Makes room for n more bytes. 0 or -1. */
int mcpgw_jbuf_reserve(mcpgw_jbuf *b, size_t n);
/* Empties b, and gives back its memory when it grew past keep bytes (so one
 * huge message does not pin its buffer for the process's life). */
void mcpgw_jbuf_reset(mcpgw_jbuf *b, size_t keep);
void mcpgw_jbuf_free(mcpgw_jbuf *b);

#endif
