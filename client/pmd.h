/*
 * pmd.h - the client side of permessage-deflate (RFC 7692): the offer,
 * checking the server's answer, and compressing/inflating messages with
 * zlib.
 *
 * Policy: we offer "permessage-deflate; client_max_window_bits". Incoming
 * messages are inflated with one stream kept for the connection (correct
 * whether or not the server takes over context). Outgoing messages of at
 * least MCPGW_CPMD_THRESHOLD bytes are compressed with a stream reset for
 * every message (always allowed), with the window the server asked for;
 * when it asks for 8 bits (which zlib cannot produce) we send uncompressed,
 * which RFC 7692 also allows.
 *
 * Ownership: mcpgw_cpmd owns its two z_streams (mcpgw_cpmd_free); the
 * buffers returned by deflate/inflate are malloc'd and the caller's.
 */
#ifndef MCPGW_CLIENT_PMD_H
#define MCPGW_CLIENT_PMD_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#define MCPGW_CPMD_OFFER "permessage-deflate; client_max_window_bits"
#define MCPGW_CPMD_THRESHOLD 64

typedef struct mcpgw_cpmd {
    int active;
    int server_no_context_takeover;
    int client_no_context_takeover;
    int server_window_bits;     /* 8..15 (15 when not given) */
    int client_window_bits;     /* 8..15 (15 when not given) */
    z_stream *inflater;
    z_stream *deflater;
} mcpgw_cpmd;

/* Parses the server's Sec-WebSocket-Extensions value. 0 and *p filled
 * (active) when it is exactly one valid permessage-deflate answer to our
 * offer; -1 with a static reason otherwise. */
int mcpgw_cpmd_accept(const char *value, size_t len, mcpgw_cpmd *p, const char **why);

/* Compresses one message: malloc'd payload (trailing 00 00 ff ff removed),
 * or NULL (send it uncompressed). */
uint8_t *mcpgw_cpmd_deflate(mcpgw_cpmd *p, const uint8_t *in, size_t len, size_t *out_len);

/* Inflates one message into a malloc'd buffer of at most limit bytes.
 * 0 ok, 1 over the limit, 2 corrupt, 3 out of memory. */
int mcpgw_cpmd_inflate(mcpgw_cpmd *p, const uint8_t *in, size_t len, size_t limit,
                       uint8_t **out, size_t *out_len);

/* Frees the streams and resets *p to inactive. */
void mcpgw_cpmd_free(mcpgw_cpmd *p);

#endif
