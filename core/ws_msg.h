/*
 * ws_msg.h - one data message received over WebSocket (RFC 6455 5.4,
 * RFC 7692): the continuation rules, the size limit, UTF-8 checked as the
 * bytes arrive, and the inflate step of a compressed message. Both ends use
 * it: the gateway's ws_session.c (frames from a client) and the client
 * library (frames from the server). Control frames stay the caller's: they
 * may arrive between the fragments of a message and do not touch it.
 *
 * No I/O and no event loop: the caller parses and checks frame headers
 * (ws_frame.h), unmasks payload bytes and feeds them here. Every check
 * returns 0 or the close code to fail the connection with (1002 protocol,
 * 1007 invalid data, 1009 too big, 1011 out of memory) and a static reason.
 *
 * Memory: an assembly (mcpgw_ws_msg) exists only while a fragmented or
 * piecewise-read message is open: the caller keeps a NULL pointer between
 * messages, mcpgw_ws_msg_open() allocates one on a message's first frame
 * and mcpgw_ws_msg_free() releases it (and its buffer) once the message is
 * delivered (or, embedded in a structure of the caller's that lives as
 * long, mcpgw_ws_msg_init() and mcpgw_ws_msg_clear()). A whole single-frame message lying in the caller's buffer
 * needs no assembly at all: mcpgw_ws_msg_whole() checks (or inflates) it
 * where it lies.
 *
 * Ownership: the caller owns the mcpgw_ws_msg; a finished message
 * (mcpgw_ws_message) points into the assembly's buffer, into the caller's
 * buffer (whole) or into its own inflated buffer, which
 * mcpgw_ws_message_release() frees.
 */
#ifndef MCPGW_WS_MSG_H
#define MCPGW_WS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "pmd.h"
#include "ws_frame.h"

/* A message being assembled from its frames. */
typedef struct mcpgw_ws_msg {
    uint8_t *data;                  /* the payload so far (as received: compressed or not) */
    size_t len, cap;
    uint32_t utf8;                  /* validator state over uncompressed text so far */
    uint8_t opcode;                 /* MCPGW_WS_OP_TEXT or _BINARY (0: closed) */
    uint8_t compressed;             /* RSV1 was set on its first frame */
} mcpgw_ws_msg;

/* What a connection's messages are checked and inflated with. */
typedef struct mcpgw_ws_msg_ctx {
    size_t max;                     /* largest message: its payload as received,
                                       and again once inflated */
    mcpgw_pmd_pool *pool;           /* permessage-deflate (params->enabled): */
    mcpgw_pmd_state *state;         /*   see mcpgw_pmd_inflate */
    const mcpgw_pmd_params *params; /* NULL: no compression negotiated */
} mcpgw_ws_msg_ctx;

/* A complete, checked message. */
typedef struct mcpgw_ws_message {
    const uint8_t *data;            /* never NULL (an empty message is "") */
    size_t len;
    size_t wire_len;                /* its payload as received (before inflating) */
    int binary;                     /* else text, valid UTF-8 */
    uint8_t *owned;                 /* the inflated buffer, or NULL */
} mcpgw_ws_message;

/* A data frame's header h (opcode TEXT, BINARY or CONT; its frame-level
 * checks done by the caller) has arrived while m is the open message (NULL:
 * none). Checks its place in the message (a continuation needs an open
 * message, a first frame needs none: 1002) and the size limit (the message
 * so far plus this payload at most max: 1009). Allocates nothing. */
int mcpgw_ws_msg_check(const mcpgw_ws_msg *m, const mcpgw_ws_frame_header *h, size_t max,
                       const char **why);

/* Opens a message on its first frame h (checked): a new assembly, or NULL
 * when out of memory. */
mcpgw_ws_msg *mcpgw_ws_msg_open(const mcpgw_ws_frame_header *h);

/* The same for an assembly the caller embeds in its own structure: opens
 * *m (zeroed or cleared) on first frame h. mcpgw_ws_msg_clear() frees its
 * buffer and leaves it closed (opcode 0). */
void mcpgw_ws_msg_init(mcpgw_ws_msg *m, const mcpgw_ws_frame_header *h);
void mcpgw_ws_msg_clear(mcpgw_ws_msg *m);

/* Room for the next n payload bytes at the end of m (growing it), or NULL
 * when out of memory. end, when not 0, is the length the message will have
 * once its frame is in and that frame is its last: a large message's
 * buffer is then grown to exactly that. Write (and unmask) the bytes there,
 * then mcpgw_ws_msg_commit(). */
uint8_t *mcpgw_ws_msg_reserve(mcpgw_ws_msg *m, size_t n, size_t end);

/* Takes the n bytes written at mcpgw_ws_msg_reserve()'s pointer into the
 * message. Uncompressed text is checked as it comes: 1007 as soon as the
 * bytes so far cannot begin valid UTF-8 (RFC 6455 8.1), without waiting
 * for the rest of the message. */
int mcpgw_ws_msg_commit(mcpgw_ws_msg *m, size_t n, const char **why);

/* mcpgw_ws_msg_reserve + copy + mcpgw_ws_msg_commit (1011 when out of
 * memory). */
int mcpgw_ws_msg_append(mcpgw_ws_msg *m, const uint8_t *p, size_t n, const char **why);

/* The last frame of m is in: inflates it when compressed (bounded by
 * ctx->max before the memory is spent: 1009; corrupt: 1007; 1011), checks
 * what is left to check of its UTF-8 (1007) and fills *out. *out may point
 * into m: keep m until done with it, then mcpgw_ws_message_release(out)
 * and mcpgw_ws_msg_free(m). */
int mcpgw_ws_msg_finish(mcpgw_ws_msg *m, const mcpgw_ws_msg_ctx *ctx, mcpgw_ws_message *out,
                        const char **why);

/* A whole single-frame message (header h, checked as by mcpgw_ws_msg_check
 * with no message open; payload p[0..len), unmasked) where it lies: checks
 * its UTF-8, or inflates it when compressed, as mcpgw_ws_msg_finish does,
 * without copying it. *out points into p unless inflated. */
int mcpgw_ws_msg_whole(const mcpgw_ws_frame_header *h, const uint8_t *p, size_t len,
                       const mcpgw_ws_msg_ctx *ctx, mcpgw_ws_message *out, const char **why);

/* Frees what *out owns (an inflated buffer); NULL-safe. */
void mcpgw_ws_message_release(mcpgw_ws_message *out);

/* Frees an assembly and its buffer; NULL-safe. */
void mcpgw_ws_msg_free(mcpgw_ws_msg *m);

#endif
