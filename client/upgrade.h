/*
 * upgrade.h - the client side of the HTTP/1.1 WebSocket upgrade (RFC 6455
 * section 4.1): the request, and the server's response head read and
 * checked (the head's parser, the accept key and the permessage-deflate
 * answer are libmcpgw-proto's: core/http.c, core/handshake.c, core/pmd.c).
 *
 * Pure functions (the key generator reads OpenSSL's RNG). Ownership:
 * mcpgw_cup_request() returns a malloc'd string; the response struct holds
 * copies, nothing points into the caller's buffer.
 */
#ifndef MCPGW_CLIENT_UPGRADE_H
#define MCPGW_CLIENT_UPGRADE_H

#include <stddef.h>

#include "pmd.h"            /* core/pmd.h */

#define MCPGW_CUP_MAX_HEAD 16384

typedef struct mcpgw_cup_response {
    int status;                 /* e.g. 101, 401 */
    char reason[64];            /* reason phrase, truncated */
    size_t head_len;            /* bytes of the head including the blank line */
    long content_length;        /* -1 when absent */
    int upgrade_websocket;      /* Upgrade: websocket */
    int connection_upgrade;     /* Connection contains "upgrade" */
    char accept[64];            /* Sec-WebSocket-Accept ("" if absent) */
    int has_extensions;         /* Sec-WebSocket-Extensions present */
    char extensions[256];       /* its value (truncated) */
    int has_protocol;           /* Sec-WebSocket-Protocol present */
} mcpgw_cup_response;

/* A fresh Sec-WebSocket-Key: 16 random bytes in base64 (24 chars + NUL). */
void mcpgw_cup_key(char key[25]);

/* The request head. target is path + query as sent; bearer (may be NULL)
 * adds Authorization: Bearer; extensions (may be NULL) is offered in
 * Sec-WebSocket-Extensions. NULL on allocation failure. */
char *mcpgw_cup_request(const char *host_header, const char *target,
                        const char *bearer, const char *key, const char *extensions);

/* Parses a response head from buf[0..len) (mcpgw_http_parse_response) and
 * keeps what the upgrade needs: 1 = incomplete (and within
 * MCPGW_CUP_MAX_HEAD), 0 = parsed into *r, -1 = malformed (also a
 * Content-Length that is not one number, a second Sec-WebSocket-Extensions)
 * or too large. */
int mcpgw_cup_parse(const char *buf, size_t len, mcpgw_cup_response *r);

/* For a 101: checks Upgrade, Connection, the accept value
 * (mcpgw_handshake_accept_key), that no subprotocol was selected (none is
 * offered), and that an extension was selected only if permessage-deflate
 * was offered (offered_pmd) and is a valid answer (mcpgw_pmd_accept_response),
 * which fills *pmd (pmd->enabled stays 0 when none was selected). 0, or -1
 * with a static reason in *why. */
int mcpgw_cup_validate(const mcpgw_cup_response *r, const char *key, int offered_pmd,
                       mcpgw_pmd_params *pmd, const char **why);

#endif
