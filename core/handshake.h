/*
 * handshake.h - the WebSocket opening handshake (RFC 6455 section 4.2) and
 * token extraction, decided on a parsed request head.
 *
 * Pure functions: they decide; conn.c writes the answer.
 */
#ifndef MCPGW_HANDSHAKE_H
#define MCPGW_HANDSHAKE_H

#include <stddef.h>
#include "http.h"

#define MCPGW_WS_ACCEPT_LEN 28      /* base64 of a SHA-1 digest */

typedef struct mcpgw_handshake_verdict {
    int status;                 /* 0 if the upgrade is valid, else the HTTP status to answer */
    const char *body;           /* static text for the response body when status != 0 */
    const char *extra_headers;  /* static "Name: value\r\n" lines, or NULL */
    const char *reason;         /* static short reason for the log ("bad_key", ...) */
} mcpgw_handshake_verdict;

/* Validates an upgrade request for the WebSocket path, checking in this
 * order: method GET (else 405 with Allow: GET), HTTP/1.1 or later (400),
 * no body announced: no Transfer-Encoding and no Content-Length but 0
 * (400, "upgrade_with_body"; what follows the head are frames to us, a body
 * to a proxy), Host present (400), Upgrade listing "websocket" (426 with
 * Upgrade/Sec-WebSocket-Version headers), Connection listing "upgrade" (400),
 * a single Sec-WebSocket-Key that base64-decodes to exactly 16 bytes (400),
 * a single Sec-WebSocket-Version of exactly 13 (426 with
 * Sec-WebSocket-Version: 13). List tokens match case-insensitively, in any
 * of the headers of that name. On success status is 0, body and
 * extra_headers NULL and reason "ok". */
void mcpgw_handshake_check(const mcpgw_http_request *req, mcpgw_handshake_verdict *v);

/* Computes Sec-WebSocket-Accept for a key: base64(SHA1(key + GUID)).
 * out gets MCPGW_WS_ACCEPT_LEN chars plus a NUL. */
void mcpgw_handshake_accept_key(const char *key, size_t key_len,
                                char out[MCPGW_WS_ACCEPT_LEN + 1]);

/* Extracts the client's token: the first `token=` query parameter (percent-
 * and '+'-decoded), else the first "Authorization: Bearer <token>" header
 * (scheme case-insensitive). A present but empty query token counts as no
 * token (the header is then not consulted). Writes a NUL-terminated copy
 * into out (cap bytes, NUL included). Returns the token length, 0 if there
 * is none (or it is empty), -1 if it does not fit or is malformed (bad
 * percent escape, or an escape decoding to NUL); out is "" unless the
 * result is positive (and cap > 0). */
long mcpgw_extract_token(const mcpgw_http_request *req, char *out, size_t cap);

/* Where mcpgw_extract_token found the token. */
typedef enum mcpgw_token_source {
    MCPGW_TOKEN_NONE = 0,       /* no token (result 0) */
    MCPGW_TOKEN_QUERY,          /* ?token= */
    MCPGW_TOKEN_HEADER,         /* Authorization: Bearer */
    MCPGW_TOKEN_SUBPROTOCOL     /* Sec-WebSocket-Protocol: mcpgw.bearer.<token> */
} mcpgw_token_source;

/* mcpgw_extract_token, telling in *source where the token came from (also
 * for a token that is malformed or does not fit: result -1). A client that
 * sends it as a subprotocol is a browser, which fails the connection unless
 * the 101 names one of its offers: it must offer the subprotocol the path
 * answers too. */
long mcpgw_extract_token_from(const mcpgw_http_request *req, char *out, size_t cap,
                              mcpgw_token_source *source);

/* Did the client offer the subprotocol `name` (e.g. "mcpgw", answered when
 * it did)? The token itself may come as "mcpgw.bearer.<token>" (see
 * mcpgw_extract_token). */
int mcpgw_handshake_offers_subprotocol(const mcpgw_http_request *req, const char *name);

#endif
