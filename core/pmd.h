/*
 * pmd.h - permessage-deflate (RFC 7692) for both ends of a connection:
 * negotiating the extension from a client's Sec-WebSocket-Extensions offers
 * (server), the offer and checking the server's answer (client), and
 * compressing and inflating messages with zlib.
 *
 * Memory model: with server_no_context_takeover (the default) no connection
 * owns a deflate stream; messages are compressed with a stream borrowed from
 * the server's pool (one per window size in use, reset after each message),
 * so an idle connection costs nothing for compression. The same holds for
 * inflating with client_no_context_takeover. Only when context takeover is
 * negotiated does a connection keep its own stream, allocated on first use,
 * and then only for the messages sent to it alone: a broadcast is compressed
 * once, from an empty window, for every recipient (mcpgw_pmd_state_restart).
 * The client role (the client library, mcpgw-bench) uses the same streams
 * with the sides swapped: it deflates as the client and inflates what the
 * server sent.
 *
 * Ownership: a pool owns its streams; mcpgw_pmd_state owns the streams of
 * one connection; output buffers are the caller's.
 */
#ifndef MCPGW_PMD_H
#define MCPGW_PMD_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* [compression] settings. */
typedef struct mcpgw_pmd_config {
    int enabled;                    /* 1 */
    int level;                      /* 6 */
    int mem_level;                  /* 8 */
    size_t threshold;               /* 1024: smaller messages go uncompressed */
    int server_max_window_bits;     /* 10 */
    int client_max_window_bits;     /* 15: what we ask the client to use (when it may be asked) */
    int server_no_context_takeover; /* 1 */
    int client_no_context_takeover; /* 1 */
} mcpgw_pmd_config;

/* Which end of the connection we are. */
typedef enum {
    MCPGW_PMD_SERVER = 0,           /* we deflate with server_*, inflate with client_* */
    MCPGW_PMD_CLIENT = 1            /* we deflate with client_*, inflate with server_* */
} mcpgw_pmd_role;

/* The parameters in force on one connection, named as in RFC 7692 (the
 * server's and the client's side); role says which side is ours. Bytes:
 * every connection holds one (6 bytes, 24 as ints). */
typedef struct mcpgw_pmd_params {
    uint8_t enabled;
    uint8_t server_no_context_takeover;
    uint8_t client_no_context_takeover;
    uint8_t server_window_bits;     /* 8..15: the server's deflate window */
    uint8_t client_window_bits;     /* 8..15: the client's deflate window */
    uint8_t role;                   /* an mcpgw_pmd_role: MCPGW_PMD_SERVER unless set */
} mcpgw_pmd_params;

/* Parses the Sec-WebSocket-Extensions value (all offers, in order: several
 * offers, parameters with and without values, quoted values) and picks the
 * first permessage-deflate offer we can honour under cfg. On success fills
 * *out and writes the response header value ("permessage-deflate; ...")
 * into resp (cap bytes) and returns 1; returns 0 when nothing is accepted
 * (the connection goes uncompressed). Malformed offers are declined. */
int mcpgw_pmd_negotiate(const mcpgw_pmd_config *cfg, const char *value, size_t len,
                        mcpgw_pmd_params *out, char *resp, size_t cap);

/* The client's offer: the default parameters, and the server may choose our
 * window (client_max_window_bits without a value). */
#define MCPGW_PMD_CLIENT_OFFER "permessage-deflate; client_max_window_bits"

/* Client side: checks the server's Sec-WebSocket-Extensions answer to
 * MCPGW_PMD_CLIENT_OFFER. Returns 0 with *out filled (enabled, role
 * MCPGW_PMD_CLIENT, window bits 15 where not given) when value is exactly
 * one valid permessage-deflate answer: each parameter at most once,
 * *_no_context_takeover without a value, *_max_window_bits with one (8..15,
 * quoted or not). Otherwise -1 with a static reason in *why ("server
 * selected an extension that was not offered", "... more than one
 * extension", "invalid permessage-deflate parameters from the server") and
 * *out zeroed. */
int mcpgw_pmd_accept_response(const char *value, size_t len, mcpgw_pmd_params *out,
                              const char **why);

/* A small pool of reusable streams, shared by every connection of a loop. */
#define MCPGW_PMD_WINDOWS 8         /* window bits 8..15 */
typedef struct mcpgw_pmd_pool {
    z_stream *deflaters[MCPGW_PMD_WINDOWS];   /* by window bits, lazily */
    z_stream *inflaters[MCPGW_PMD_WINDOWS];
    int level, mem_level;
} mcpgw_pmd_pool;

void mcpgw_pmd_pool_init(mcpgw_pmd_pool *pool, int level, int mem_level);
void mcpgw_pmd_pool_free(mcpgw_pmd_pool *pool);

/* One connection's own streams (context takeover only). */
typedef struct mcpgw_pmd_state {
    z_stream *deflater;
    z_stream *inflater;
    int deflater_stale;             /* restart from an empty window before the next message */
} mcpgw_pmd_state;

void mcpgw_pmd_state_free(mcpgw_pmd_state *st);

/* The connection was sent a compressed message that its own deflater did
 * not produce (a broadcast frame shared by every recipient, compressed once
 * from an empty window): the peer's inflater window now holds that message,
 * so the deflater's next message starts from an empty window too (a
 * deflateReset, done lazily: nothing happens unless another message is
 * compressed for this connection). RFC 7692 7.2.1: with context takeover
 * the sender MAY reuse the window; it need not. */
void mcpgw_pmd_state_restart(mcpgw_pmd_state *st);

/* Compresses in[0..len) as one message for a connection with params p:
 * returns a malloc'd buffer (*out_len bytes, the trailing 00 00 ff ff
 * removed) that the caller frees, or NULL on failure (then send it
 * uncompressed), also when our window is 8 bits, which zlib cannot produce.
 * Our side's no_context_takeover, or st NULL, compresses with the pool's
 * stream reset for this message (always allowed); otherwise st's stream
 * keeps its window. */
uint8_t *mcpgw_pmd_deflate(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                           const mcpgw_pmd_params *p, const uint8_t *in, size_t len,
                           size_t *out_len);

typedef enum {
    MCPGW_PMD_OK = 0,
    MCPGW_PMD_TOO_BIG = 1,          /* would inflate past the limit: close 1009 */
    MCPGW_PMD_CORRUPT = 2,          /* not a valid deflate stream: close 1007 */
    MCPGW_PMD_NOMEM = 3
} mcpgw_pmd_result;

/* Inflates one compressed message in[0..len) into a malloc'd buffer of at
 * most limit bytes (*out, *out_len; the caller frees). Stops as soon as the
 * output would pass limit, before spending the memory (zip bombs). The
 * peer's no_context_takeover, or st NULL, inflates with the pool's stream
 * reset for this message; otherwise with st's, which keeps the window. A
 * peer's 8-bit window is inflated with a 9-bit one (always safe). */
mcpgw_pmd_result mcpgw_pmd_inflate(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                                   const mcpgw_pmd_params *p, const uint8_t *in, size_t len,
                                   size_t limit, uint8_t **out, size_t *out_len);

/* The same into the caller's buffer out[0..cap), without allocating: OK
 * with the whole message in out (*out_len <= cap), or MCPGW_PMD_TOO_BIG
 * when it does not fit (a message of exactly cap bytes may be either):
 * then *out_len = cap and out holds its first cap bytes, a prefix (the
 * stream is reset, as after any TOO_BIG). */
mcpgw_pmd_result mcpgw_pmd_inflate_into(mcpgw_pmd_pool *pool, mcpgw_pmd_state *st,
                                        const mcpgw_pmd_params *p, const uint8_t *in,
                                        size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif
