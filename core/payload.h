/*
 * payload.h - reference-counted, ready-to-send WebSocket frames.
 *
 * A broadcast is serialised and framed once into a payload; every recipient's
 * output buffer then references the same bytes (evbuffer_add_reference), and
 * the payload is freed when the last recipient has written it. No copy per
 * recipient.
 *
 * Ownership: mcpgw_payload_new_frame() returns a payload with one reference,
 * which the caller drops with mcpgw_payload_unref() when done handing it out;
 * mcpgw_payload_append() takes a reference that the output buffer drops.
 */
#ifndef MCPGW_PAYLOAD_H
#define MCPGW_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

typedef struct mcpgw_payload {
    unsigned refs;
    size_t len;
    size_t payload_len;     /* the message's length before compression */
    uint8_t bytes[];        /* frame header followed by the payload */
} mcpgw_payload;

/* A complete unmasked server frame (FIN set) with this opcode, RSV bits
 * (4 = RSV1: compressed) and body. */
mcpgw_payload *mcpgw_payload_new_frame(int opcode, unsigned rsv, const void *body, size_t len);
void mcpgw_payload_unref(mcpgw_payload *p);
/* Appends the payload's bytes to out without copying. 0 or -1. */
int mcpgw_payload_append(mcpgw_payload *p, struct evbuffer *out);
/* The same from byte `from` on (what a partial write left). 0 or -1. */
int mcpgw_payload_append_from(mcpgw_payload *p, struct evbuffer *out, size_t from);

#endif
