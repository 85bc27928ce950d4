/*
 * random.c - random bytes (OpenSSL RAND_bytes), [0,1) doubles and UUID v4.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/rand.h>

#include <mcpgw/client.h>
#include "random.h"

void mcpgw_crand_bytes(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        /* Only if the OpenSSL RNG cannot seed: fall back to arc4random. */
        arc4random_buf(buf, len);
    }
}

double mcpgw_crand_01(void)
{
    uint64_t v;

    mcpgw_crand_bytes(&v, sizeof(v));
    return (double)(v >> 11) / 9007199254740992.0;     /* 53 bits / 2^53 */
}

void mcpgw_client_uuid4(char out[37])
{
    unsigned char b[16];

    mcpgw_crand_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);      /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);      /* variant 10 */
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
}
