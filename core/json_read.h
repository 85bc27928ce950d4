/*
 * json_read.h - the gateway's JSON parser: one complete JSON text (RFC 8259)
 * in, a jansson value out.
 *
 * It replaces json_loadb on the message path, where jansson's reader (one
 * callback per character, every token copied twice) was the largest single
 * cost of a small message. Values are built with jansson's constructors, so
 * handlers see exactly what json_loadb would give them, with these choices:
 *
 *   - any value is accepted at the top level (the dispatcher then says
 *     "Message must be a JSON object"), surrounded by optional whitespace;
 *   - a duplicate key keeps the last value (as JSON.parse and jansson do);
 *   - an integer outside json_int_t becomes a real (as in JSON.parse) rather
 *     than an error; a number outside double's range is an error;
 *   - strings must be valid UTF-8 and may not contain U+0000 (jansson's
 *     rule, which the handler API's C strings rely on); an unpaired
 *     surrogate escape is an error;
 *   - containers nest at most MCPGW_JSON_READ_MAX_DEPTH deep.
 *
 * Error texts are JSON.parse's in Node 20 and later ("Unexpected token 'o',
 * \"not json\" is not valid JSON", "Unexpected end of JSON input",
 * "Expected ',' or '}' after property value in JSON at position 12",
 * positions in UTF-16 code units), which clients of the reference server
 * see. JSON.parse accepts what this parser refuses (\u0000, a lone
 * surrogate, a number beyond double's range, deeper nesting); those texts
 * are the gateway's own, in the same "... in JSON at position N" form.
 *
 * Ownership: the returned value is a new reference the caller decrefs.
 * Thread-safe (no shared state).
 */
#ifndef MCPGW_JSON_READ_H
#define MCPGW_JSON_READ_H

#include <stddef.h>
#include <jansson.h>

#define MCPGW_JSON_READ_MAX_DEPTH 2048

typedef struct mcpgw_json_read_error {
    char text[160];         /* what was wrong, for the client's error reply */
    size_t position;        /* byte offset where it was found */
} mcpgw_json_read_error;

/* Parses text[0..len). Returns a new reference, or NULL with *err filled in
 * (err may be NULL). */
json_t *mcpgw_json_read(const char *text, size_t len, mcpgw_json_read_error *err);

#endif
