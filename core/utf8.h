/*
 * utf8.h - strict UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), as RFC 6455 requires for text and close reasons.
 */
#ifndef MCPGW_UTF8_H
#define MCPGW_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 if s[0..len) is valid UTF-8, else 0. */
int mcpgw_utf8_valid(const uint8_t *s, size_t len);

/* Incremental form, for validating a fragmented message frame by frame.
 * state starts at 0 (MCPGW_UTF8_ACCEPT). Feed returns the new state;
 * MCPGW_UTF8_REJECT is final. Any other value is an opaque "inside a
 * multi-byte sequence" state to pass to the next call. A message is valid
 * when, after its last byte, the state is MCPGW_UTF8_ACCEPT. */
#define MCPGW_UTF8_ACCEPT 0u
#define MCPGW_UTF8_REJECT 1u
uint32_t mcpgw_utf8_feed(uint32_t state, const uint8_t *s, size_t len);

#endif
