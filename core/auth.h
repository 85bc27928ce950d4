/*
 * auth.h - JWT verification with libjwt, algorithm pinned by configuration.
 *
 * The token's header "alg" is read before any signature work and must be
 * one of the configured algorithms ("none" never is); then libjwt verifies
 * the signature with the key of that algorithm's family (the HMAC secret for
 * HS*, the PEM public key for RS* and ES*: a public key is never used as an
 * HMAC secret, which defeats the key-confusion attack), and this module checks exp and nbf
 * with a leeway (libjwt 1.10 does not). The user id is the configured claim
 * (a string, or an integer rendered in decimal), falling back to "sub".
 *
 * Never logs or returns the token text.
 */
#ifndef MCPGW_AUTH_H
#define MCPGW_AUTH_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>

typedef enum {
    MCPGW_AUTH_OK = 0,
    MCPGW_AUTH_MALFORMED,           /* not three base64url parts, header or claims not JSON objects */
    MCPGW_AUTH_ALG_NONE,            /* alg "none" */
    MCPGW_AUTH_ALG_NOT_ALLOWED,     /* alg not in the configured list */
    MCPGW_AUTH_BAD_SIGNATURE,
    MCPGW_AUTH_EXPIRED,
    MCPGW_AUTH_NOT_YET_VALID,
    MCPGW_AUTH_NO_USER,             /* neither the user claim nor sub is usable */
    MCPGW_AUTH_NO_KEY,              /* no key configured for the token's algorithm */
    MCPGW_AUTH_BAD_ISSUER,          /* "iss" is not the configured issuer */
    MCPGW_AUTH_BAD_AUDIENCE,        /* "aud" does not name the configured audience */
    MCPGW_AUTH_NO_EXP               /* require_exp, and the token has no "exp" */
} mcpgw_auth_result;

/* Keyed HMAC contexts and the parsed public key, kept between
 * verifications (OpenSSL's one-shot HMAC fetches the algorithm and keys a
 * new context on every call: a sixth of a handshake; parsing a PEM key is
 * most of an RS/ES one). A changed secret or key is noticed. Owned by
 * whoever creates it; one per thread. */
typedef struct mcpgw_hmac_cache mcpgw_hmac_cache;
mcpgw_hmac_cache *mcpgw_hmac_cache_new(void);
void mcpgw_hmac_cache_free(mcpgw_hmac_cache *cache);

typedef struct mcpgw_auth_config {
    const unsigned char *secret;    /* borrowed; the HMAC key for HS* */
    size_t secret_len;
    const unsigned char *public_key; /* borrowed PEM; the key for RS* and ES* */
    size_t public_key_len;
    const char *issuer;             /* borrowed; NULL: "iss" not checked */
    const char *audience;           /* borrowed; NULL: "aud" not checked */
    const int *algorithms;          /* jwt_alg_t values, borrowed */
    int n_algorithms;
    const char *user_claim;         /* borrowed; "id" by default */
    int leeway_s;
    int require_exp;                /* a token without "exp" is refused */
    mcpgw_hmac_cache *hmac_cache;   /* borrowed, optional (NULL: no reuse) */
} mcpgw_auth_config;

/* Verifies token at time now. On OK, *claims gets a new reference to the
 * claims object (caller decrefs) and user_id (cap bytes) the user id. */
mcpgw_auth_result mcpgw_auth_verify(const mcpgw_auth_config *cfg, const char *token,
                                    time_t now, json_t **claims,
                                    char *user_id, size_t user_id_cap);

/* Matching a claim against CLAIM:VALUE: mcpgw_claims_match (plugin_abi.h). */

/* When a verified token stops being valid: its integer "exp" plus the
 * leeway, or 0 when it has none (or a real one past year 2^62). */
long long mcpgw_auth_valid_until(const json_t *claims, int leeway_s);

/* The time claims of verified claims (borrowed) at now: "exp" and "nbf",
 * each with leeway_s, as mcpgw_auth_verify checks them: MCPGW_AUTH_OK,
 * _EXPIRED, _NOT_YET_VALID or _MALFORMED. For a token verified a moment
 * ago and used again (an upgrade that waited for the cluster). */
mcpgw_auth_result mcpgw_auth_check_times(const json_t *claims, time_t now, int leeway_s);

/* Short snake_case name of a result for logs ("expired", "bad_signature"...). */
const char *mcpgw_auth_result_name(mcpgw_auth_result r);

/* Mints an HS* token for development: {"id": user, "sub": user, "iat": now,
 * "exp": now + ttl_s}. Returns a malloc'd string (caller frees), or NULL. */
char *mcpgw_auth_mint(int alg, const unsigned char *secret, size_t secret_len,
                      const char *user, long ttl_s, time_t now);

/* The same with one more string claim (for example role=admin). */
char *mcpgw_auth_mint_claim(int alg, const unsigned char *secret, size_t secret_len,
                            const char *user, long ttl_s, time_t now, const char *claim,
                            const char *value);

#endif
