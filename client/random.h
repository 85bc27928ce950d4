/*
 * random.h - randomness for the client: frame masking keys (RFC 6455 5.3),
 * UUID v4 identifiers and jitter, all from OpenSSL's CSPRNG.
 */
#ifndef MCPGW_CLIENT_RANDOM_H
#define MCPGW_CLIENT_RANDOM_H

#include <stddef.h>

void mcpgw_crand_bytes(void *buf, size_t len);
double mcpgw_crand_01(void);         /* uniform in [0, 1) */

#endif
