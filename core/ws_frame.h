/*
 * ws_frame.h - RFC 6455 section 5 frame headers: parse and encode.
 *
 * Pure functions over byte buffers: no I/O, no allocation, so they can be
 * unit-tested and fuzzed alone. Both ends use them: the gateway's
 * ws_session.c and the client library feed bytes; the message-level rules
 * (continuation, size limits, UTF-8, inflate) are ws_msg.h's.
 */
#ifndef MCPGW_WS_FRAME_H
#define MCPGW_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    MCPGW_WS_OP_CONT = 0x0,
    MCPGW_WS_OP_TEXT = 0x1,
    MCPGW_WS_OP_BINARY = 0x2,
    MCPGW_WS_OP_CLOSE = 0x8,
    MCPGW_WS_OP_PING = 0x9,
    MCPGW_WS_OP_PONG = 0xA
};

/* Close codes of RFC 6455 section 7.4.1 that the gateway sends. */
enum {
    MCPGW_WS_CLOSE_NORMAL = 1000,
    MCPGW_WS_CLOSE_GOING_AWAY = 1001,
    MCPGW_WS_CLOSE_PROTOCOL_ERROR = 1002,
    MCPGW_WS_CLOSE_UNSUPPORTED = 1003,
    MCPGW_WS_CLOSE_NO_STATUS = 1005,     /* never sent on the wire */
    MCPGW_WS_CLOSE_ABNORMAL = 1006,      /* never sent on the wire */
    MCPGW_WS_CLOSE_INVALID_DATA = 1007,
    MCPGW_WS_CLOSE_POLICY = 1008,
    MCPGW_WS_CLOSE_TOO_BIG = 1009,
    MCPGW_WS_CLOSE_INTERNAL = 1011,
    MCPGW_WS_CLOSE_TOKEN_EXPIRED = 4001  /* the gateway's: the token's exp has passed */
};

#define MCPGW_WS_MAX_HEADER 14      /* 2 + 8 (length) + 4 (mask) */
#define MCPGW_WS_MAX_CONTROL 125

typedef struct mcpgw_ws_frame_header {
    unsigned fin : 1;
    unsigned rsv : 3;               /* RSV1..RSV3 as bits 2..0 (RSV1 = 4) */
    unsigned opcode : 4;
    unsigned masked : 1;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len;              /* bytes the header took */
} mcpgw_ws_frame_header;

typedef enum {
    MCPGW_WS_PARSE_OK = 0,          /* *h is filled */
    MCPGW_WS_PARSE_NEED_MORE = 1,   /* not enough bytes yet */
    MCPGW_WS_PARSE_ERROR = -1       /* malformed: non-minimal length or 64-bit length with MSB set */
} mcpgw_ws_parse_result;

/* Parses a frame header from buf[0..len). Checks only what the header alone
 * decides (length encoding); policy (masking, opcodes, RSV, control frame
 * rules) is checked by mcpgw_ws_frame_check(). *h is written only when the
 * result is MCPGW_WS_PARSE_OK. A malformed length is reported as soon as its
 * bytes are present, even if the mask bytes have not arrived yet. */
mcpgw_ws_parse_result mcpgw_ws_parse_header(const uint8_t *buf, size_t len,
                                            mcpgw_ws_frame_header *h);

/* Which end of the connection checks the frame: the server reads client
 * frames (masked), the client reads server frames (unmasked). */
typedef enum {
    MCPGW_WS_ROLE_SERVER = 0,
    MCPGW_WS_ROLE_CLIENT = 1
} mcpgw_ws_role;

/* Policy checks for a received frame (RFC 6455 5.1-5.5) by the end `role`:
 * masked exactly when it comes from a client (to a server), RSV bits zero
 * unless allowed_rsv has them, known opcode, control frames FIN and <= 125
 * bytes, and when RSV1 is allowed (permessage-deflate) it is set only on
 * the first frame of a data message (RFC 7692 6.1). Returns 0 if
 * acceptable, else the close code to fail the connection with (1002) and
 * sets *why (if not NULL) to a static description. */
int mcpgw_ws_frame_check_role(const mcpgw_ws_frame_header *h, mcpgw_ws_role role,
                              unsigned allowed_rsv, const char **why);

/* mcpgw_ws_frame_check_role for the server: a frame from a client. */
int mcpgw_ws_frame_check(const mcpgw_ws_frame_header *h, unsigned allowed_rsv,
                         const char **why);

/* XORs data with the mask, starting at mask offset `offset` (for payloads
 * unmasked in pieces: pass the number of payload bytes already unmasked;
 * only offset % 4 matters). */
void mcpgw_ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);

/* Writes a server frame header (FIN set, unmasked) for a payload of len
 * bytes into out (>= MCPGW_WS_MAX_HEADER bytes). rsv as in the header struct.
 * Uses the shortest length form; len must be < 2^63. Returns the header
 * length (2, 4 or 10). */
size_t mcpgw_ws_encode_header(uint8_t *out, int opcode, unsigned rsv, uint64_t len);

/* Is this close code acceptable in a received close frame (RFC 6455 7.4)?
 * 1 for 1000-1003, 1007-1014 (1012-1014 registered with IANA) and
 * 3000-4999; 0 otherwise. */
int mcpgw_ws_close_code_valid(unsigned code);

#endif
