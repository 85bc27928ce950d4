/*
 * auth.c - JWT verification: structural checks and algorithm pinning, the
 * signature (HS* with a keyed HMAC context, RS* and ES* with the public key
 * parsed once; OpenSSL either way), exp/nbf with leeway, issuer, audience
 * and the user id. Also mints HS* tokens for development (with libjwt,
 * which is otherwise only asked for algorithm names).
 *
 * Owns no state: every call works on the caller's config and token (and
 * the config's optional cache of keyed HMAC contexts and the parsed public
 * key). The token text is never logged, copied into an error or returned.
 *
 * Why not libjwt's jwt_decode() (1.10): it parses the PEM key for every
 * token (most of an RS/ES handshake), takes an ES256 signature made with a
 * key of another curve, compares HMAC signatures with strcmp(), writes past
 * a malloc(0) buffer on an empty header or payload, and returns an
 * unverified "none" object when copying the key fails. Here every token
 * part is decoded strictly (base64url alphabet, one JSON object, no
 * duplicate keys), the header's algorithm must be configured (matched
 * case-sensitively, RFC 7515), "none" never is, an ES* signature is r || s
 * of the curve's size (RFC 7518 3.4) and the key must be of the algorithm's
 * family and curve.
 */
#include "auth.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

/* Longest token accepted, in bytes. Far above any sane bearer token, well
 * below what libjwt's stack copies could make dangerous. */
#define AUTH_MAX_TOKEN 16384

/* Value of one base64url character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url s[0..n) into a malloc'd buffer (NUL-terminated
 * for convenience, the NUL not counted in *out_len). Returns 0, or -1 on a
 * character outside the alphabet ('=' included), an impossible length, or
 * allocation failure. Unused trailing bits are ignored, as libjwt does. */
static int b64url_decode(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
    unsigned char *buf = NULL;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t i, o = 0;
    int ret = -1;

    if (n % 4 == 1)
        goto out;
    buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        goto out;
    for (i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);

        if (v < 0)
            goto out;
        acc = ((acc << 6) | (uint32_t)v) & 0xFFFFFFu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    return ret;
}

/* Decodes a base64url part holding a JSON object. Duplicate keys are
 * refused, so no two parsers can disagree on which "alg" or "exp" counts.
 * Returns a new reference, or NULL. */
static json_t *decode_json_object(const char *s, size_t n)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    json_t *js = NULL;

    if (b64url_decode(s, n, &raw, &raw_len) != 0)
        goto out;
    js = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    if (js && !json_is_object(js)) {
        json_decref(js);
        js = NULL;
    }
out:
    free(raw);
    return js;
}

static int alg_configured(const mcpgw_auth_config *cfg, int alg)
{
    int i;

    if (!cfg->algorithms)
        return 0;
    for (i = 0; i < cfg->n_algorithms; i++)
        if (cfg->algorithms[i] == alg)
            return 1;
    return 0;
}

static const EVP_MD *hmac_md(int alg)
{
    switch (alg) {
    case JWT_ALG_HS256: return EVP_sha256();
    case JWT_ALG_HS384: return EVP_sha384();
    case JWT_ALG_HS512: return EVP_sha512();
    default: return NULL;
    }
}

/* ------------------------------------------------------------ HMAC cache */

struct mcpgw_hmac_cache {
    struct {
        const EVP_MD *md;
        unsigned char *key;         /* a copy, to notice a changed secret */
        size_t key_len;
        EVP_MAC_CTX *ctx;           /* keyed with key for md */
    } slot[3];                      /* HS256, HS384, HS512 */
    /* The public key for RS* and ES*, parsed once from its PEM (a copy of
     * which notices a changed key): libjwt parses the PEM for every token,
     * most of the cost of an RS or ES handshake. */
    unsigned char *pem;
    size_t pem_len;
    EVP_PKEY *pkey;
};

mcpgw_hmac_cache *mcpgw_hmac_cache_new(void)
{
    return calloc(1, sizeof(mcpgw_hmac_cache));
}

static void hmac_slot_clear(mcpgw_hmac_cache *cache, int i)
{
    EVP_MAC_CTX_free(cache->slot[i].ctx);
    if (cache->slot[i].key)
        OPENSSL_clear_free(cache->slot[i].key, cache->slot[i].key_len);
    memset(&cache->slot[i], 0, sizeof(cache->slot[i]));
}

static void pkey_clear(mcpgw_hmac_cache *cache)
{
    EVP_PKEY_free(cache->pkey);
    free(cache->pem);
    cache->pkey = NULL;
    cache->pem = NULL;
    cache->pem_len = 0;
}

void mcpgw_hmac_cache_free(mcpgw_hmac_cache *cache)
{
    if (!cache)
        return;
    for (int i = 0; i < 3; i++)
        hmac_slot_clear(cache, i);
    pkey_clear(cache);
    free(cache);
}

/* The public key of pem, parsed on first use and kept while pem is the
 * same. NULL if it does not parse. */
static EVP_PKEY *cached_pkey(mcpgw_hmac_cache *cache, const unsigned char *pem, size_t pem_len)
{
    BIO *bio;

    if (cache->pkey && cache->pem_len == pem_len && memcmp(cache->pem, pem, pem_len) == 0)
        return cache->pkey;
    pkey_clear(cache);
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    cache->pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    cache->pem = cache->pkey ? malloc(pem_len) : NULL;
    if (!cache->pem) {
        pkey_clear(cache);
        ERR_clear_error();
        return NULL;
    }
    memcpy(cache->pem, pem, pem_len);
    cache->pem_len = pem_len;
    return cache->pkey;
}

/* An RS* or ES* signature over input[0..input_len) with pkey; sig is the
 * base64url part. The key must be of the algorithm's family (and curve for
 * ES*); an ES* signature is r || s, fixed length (RFC 7518 3.4). 1 if
 * valid. */
static int pkey_valid(EVP_PKEY *pkey, int alg, const char *input, size_t input_len,
                      const char *sig, size_t sig_len)
{
    const EVP_MD *md;
    unsigned char *raw = NULL, *der = NULL;
    size_t raw_len = 0;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    int ok = 0, der_len = 0, half = 0;
    char group[64];

    switch (alg) {
    case JWT_ALG_RS256: md = EVP_sha256(); break;
    case JWT_ALG_RS384: md = EVP_sha384(); break;
    case JWT_ALG_RS512: md = EVP_sha512(); break;
    case JWT_ALG_ES256: md = EVP_sha256(); half = 32; break;
    case JWT_ALG_ES384: md = EVP_sha384(); half = 48; break;
    default: return 0;
    }
    if (half) {
        const char *want = half == 32 ? "prime256v1" : "secp384r1";
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
            EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof(group), NULL) != 1 ||
            strcmp(group, want) != 0)
            goto out;
    } else if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        goto out;
    }
    if (b64url_decode(sig, sig_len, &raw, &raw_len) != 0)
        goto out;
    if (half) {
        BIGNUM *r, *s;
        if (raw_len != (size_t)half * 2 || !(es = ECDSA_SIG_new()))
            goto out;
        r = BN_bin2bn(raw, half, NULL);
        s = BN_bin2bn(raw + half, half, NULL);
        if (!r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto out;
        }
        der_len = i2d_ECDSA_SIG(es, &der);
        if (der_len <= 0)
            goto out;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) != 1)
        goto out;
    ok = EVP_DigestVerify(ctx, half ? der : raw, half ? (size_t)der_len : raw_len,
                          (const unsigned char *)input, input_len) == 1;
out:
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    free(raw);
    ERR_clear_error();
    return ok;
}

/* The cached context for (md, key), re-initialised for a new message, or
 * NULL (then the caller uses the one-shot HMAC). */
static EVP_MAC_CTX *hmac_cached_ctx(mcpgw_hmac_cache *cache, const EVP_MD *md,
                                    const unsigned char *key, size_t key_len)
{
    int i = md == EVP_sha256() ? 0 : md == EVP_sha384() ? 1 : 2;
    OSSL_PARAM params[2];
    EVP_MAC *mac;

    if (!cache)
        return NULL;
    if (cache->slot[i].ctx && cache->slot[i].md == md && cache->slot[i].key_len == key_len &&
        CRYPTO_memcmp(cache->slot[i].key, key, key_len) == 0)
        return EVP_MAC_init(cache->slot[i].ctx, NULL, 0, NULL) == 1 ? cache->slot[i].ctx : NULL;

    hmac_slot_clear(cache, i);
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    cache->slot[i].ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    cache->slot[i].key = OPENSSL_memdup(key, key_len);
    params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)EVP_MD_get0_name(md), 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!cache->slot[i].ctx || !cache->slot[i].key ||
        EVP_MAC_init(cache->slot[i].ctx, key, key_len, params) != 1) {
        hmac_slot_clear(cache, i);
        return NULL;
    }
    cache->slot[i].md = md;
    cache->slot[i].key_len = key_len;
    return cache->slot[i].ctx;
}

/* Constant-time HMAC check of an HS* token: input is "header.payload"
 * (input_len bytes), sig the base64url signature part. Returns 1 if valid. */
static int hmac_valid(mcpgw_hmac_cache *cache, const EVP_MD *md, const unsigned char *key,
                      size_t key_len, const char *input, size_t input_len, const char *sig,
                      size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    unsigned char *given = NULL;
    size_t given_len = 0, out_len = 0;
    EVP_MAC_CTX *ctx = hmac_cached_ctx(cache, md, key, key_len);
    int ok = 0;

    if (ctx) {
        if (EVP_MAC_update(ctx, (const unsigned char *)input, input_len) != 1 ||
            EVP_MAC_final(ctx, mac, &out_len, sizeof(mac)) != 1)
            goto out;
        mac_len = (unsigned int)out_len;
    } else if (!HMAC(md, key, (int)key_len, (const unsigned char *)input, input_len, mac,
                     &mac_len)) {
        goto out;
    }
    if (b64url_decode(sig, sig_len, &given, &given_len) != 0)
        goto out;
    if (given_len != mac_len)
        goto out;
    ok = CRYPTO_memcmp(mac, given, mac_len) == 0;
out:
    OPENSSL_cleanse(mac, sizeof mac);
    free(given);
    return ok;
}

long long mcpgw_auth_valid_until(const json_t *claims, int leeway_s)
{
    const json_t *exp = json_object_get(claims, "exp");
    long long lim;

    if (json_is_integer(exp))
        return __builtin_add_overflow((long long)json_integer_value(exp), leeway_s, &lim) ? 0
                                                                                          : lim;
    if (json_is_real(exp) && json_real_value(exp) < 4.6e18)
        return (long long)json_real_value(exp) + leeway_s;
    return 0;
}

/* exp and nbf: each, if present, must be a number. */
mcpgw_auth_result mcpgw_auth_check_times(const json_t *claims, time_t now, int leeway)
{
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    long long t = (long long)now, lim;

    if (leeway < 0)
        leeway = 0;
    if (exp) {
        if (json_is_integer(exp)) {
            /* now > exp + leeway; an exp too large to add to never expires */
            if (!__builtin_add_overflow((long long)json_integer_value(exp), leeway, &lim)
                && t > lim)
                return MCPGW_AUTH_EXPIRED;
        } else if (json_is_real(exp)) {
            if ((double)t > json_real_value(exp) + (double)leeway)
                return MCPGW_AUTH_EXPIRED;
        } else {
            return MCPGW_AUTH_MALFORMED;
        }
    }
    if (nbf) {
        if (json_is_integer(nbf)) {
            /* now + leeway < nbf; a now too large to add to is past any nbf */
            if (!__builtin_add_overflow(t, leeway, &lim)
                && lim < (long long)json_integer_value(nbf))
                return MCPGW_AUTH_NOT_YET_VALID;
        } else if (json_is_real(nbf)) {
            if ((double)t + (double)leeway < json_real_value(nbf))
                return MCPGW_AUTH_NOT_YET_VALID;
        } else {
            return MCPGW_AUTH_MALFORMED;
        }
    }
    return MCPGW_AUTH_OK;
}

/* 1 if the NUL-terminated UTF-8 string s holds a C0 or C1 control or DEL. */
static int has_control(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return 1;
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)   /* U+0080..U+009F */
            return 1;
    }
    return 0;
}

/* A claim usable as a user id: a non-empty string or an integer. */
static int user_candidate(json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return json_is_integer(v);
}

/* Copies the chosen claim into out; 0 if it fits and is clean, else -1. */
static int user_copy(json_t *v, char *out, size_t cap)
{
    char num[32];
    const char *s;
    size_t len;

    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
        if (strlen(s) != len)           /* embedded NUL: never with jansson's defaults */
            return -1;
    } else {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
        len = strlen(num);
    }
    if (!out || len >= cap || has_control(s))
        return -1;
    memcpy(out, s, len + 1);
    return 0;
}

mcpgw_auth_result mcpgw_auth_verify(const mcpgw_auth_config *cfg, const char *token,
                                    time_t now, json_t **claims,
                                    char *user_id, size_t user_id_cap)
{
    mcpgw_auth_result r = MCPGW_AUTH_MALFORMED;
    const char *dot1, *dot2, *alg_name;
    json_t *header = NULL, *payload = NULL, *grants = NULL, *typ, *v;
    EVP_PKEY *pkey;
    const EVP_MD *md;
    const unsigned char *key;
    size_t key_len;
    size_t token_len;
    int alg;

    if (claims)
        *claims = NULL;
    if (user_id && user_id_cap > 0)
        user_id[0] = '\0';
    if (!cfg) {
        r = MCPGW_AUTH_NO_KEY;
        goto out;
    }

    /* Structure: header.payload.signature, header and payload non-empty. */
    if (!token)
        goto out;
    token_len = strnlen(token, AUTH_MAX_TOKEN + 1);
    if (token_len > AUTH_MAX_TOKEN)
        goto out;
    dot1 = memchr(token, '.', token_len);
    if (!dot1)
        goto out;
    dot2 = memchr(dot1 + 1, '.', token_len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', token_len - (size_t)(dot2 + 1 - token)))
        goto out;
    if (dot1 == token || dot2 == dot1 + 1)
        goto out;
    header = decode_json_object(token, (size_t)(dot1 - token));
    if (!header)
        goto out;
    payload = decode_json_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload)
        goto out;

    /* Algorithm, pinned by configuration before any signature work. */
    alg_name = json_string_value(json_object_get(header, "alg"));
    if (!alg_name)
        goto out;
    if (strcasecmp(alg_name, "none") == 0) {
        r = MCPGW_AUTH_ALG_NONE;
        goto out;
    }
    alg = (int)jwt_str_alg(alg_name);
    if (alg == JWT_ALG_NONE) {
        r = MCPGW_AUTH_ALG_NONE;
        goto out;
    }
    if (alg == JWT_ALG_INVAL || strcmp(jwt_alg_str((jwt_alg_t)alg), alg_name) != 0
        || !alg_configured(cfg, alg)) {
        r = MCPGW_AUTH_ALG_NOT_ALLOWED;
        goto out;
    }
    /* What libjwt would refuse after the fact, and "crit" (RFC 7515 4.1.11:
     * no extension is understood here, so any listed one fails). */
    typ = json_object_get(header, "typ");
    if (json_is_string(typ) && strcasecmp(json_string_value(typ), "JWT") != 0)
        goto out;
    if (json_object_get(header, "crit"))
        goto out;

    /* The key of the algorithm's family, never the other one. */
    md = hmac_md(alg);
    key = md ? cfg->secret : cfg->public_key;
    key_len = md ? cfg->secret_len : cfg->public_key_len;
    if (!key || key_len == 0 || key_len > INT_MAX) {
        r = MCPGW_AUTH_NO_KEY;
        goto out;
    }

    /* Signature. */
    r = MCPGW_AUTH_BAD_SIGNATURE;
    if (md) {
        /* HS*: the constant-time HMAC check above is the whole signature
         * verification; the claims are the payload decoded above (strictly:
         * base64url alphabet, one JSON object, no duplicate keys). Skipping
         * libjwt here halves the cost of a handshake (bench/ profile). */
        if (!hmac_valid(cfg->hmac_cache, md, cfg->secret, cfg->secret_len, token, (size_t)(dot2 - token),
                        dot2 + 1, token_len - (size_t)(dot2 + 1 - token)))
            goto out;
        r = MCPGW_AUTH_MALFORMED;
        grants = json_incref(payload);
    } else {
        /* RS*, ES*: our own check too, with the public key parsed once
         * (libjwt parses the PEM for every token, and takes an ES256
         * signature made with a key of another curve). Without a cache the
         * key is parsed for this token alone. */
        mcpgw_hmac_cache once;
        mcpgw_hmac_cache *kc = cfg->hmac_cache;
        int valid;

        if (!kc) {
            memset(&once, 0, sizeof(once));
            kc = &once;
        }
        pkey = cached_pkey(kc, key, key_len);
        valid = pkey && pkey_valid(pkey, alg, token, (size_t)(dot2 - token), dot2 + 1,
                                   token_len - (size_t)(dot2 + 1 - token));
        if (kc == &once)
            pkey_clear(&once);
        if (!valid)
            goto out;
        r = MCPGW_AUTH_MALFORMED;
        grants = json_incref(payload);
    }
    r = mcpgw_auth_check_times(grants, now, cfg->leeway_s);
    if (r != MCPGW_AUTH_OK)
        goto out;
    if (cfg->require_exp && !json_object_get(grants, "exp")) {
        r = MCPGW_AUTH_NO_EXP;
        goto out;
    }
    if (cfg->issuer) {
        v = json_object_get(grants, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), cfg->issuer) != 0) {
            r = MCPGW_AUTH_BAD_ISSUER;
            goto out;
        }
    }
    if (cfg->audience) {
        int found = 0;
        v = json_object_get(grants, "aud");
        if (json_is_string(v)) {
            found = strcmp(json_string_value(v), cfg->audience) == 0;
        } else if (json_is_array(v)) {
            size_t i;
            json_t *a;
            json_array_foreach(v, i, a)
                found |= json_is_string(a) && strcmp(json_string_value(a), cfg->audience) == 0;
        }
        if (!found) {
            r = MCPGW_AUTH_BAD_AUDIENCE;
            goto out;
        }
    }

    /* User id: the configured claim, else "sub". */
    r = MCPGW_AUTH_NO_USER;
    v = json_object_get(grants, cfg->user_claim && *cfg->user_claim ? cfg->user_claim : "id");
    if (!user_candidate(v))
        v = json_object_get(grants, "sub");
    if (!user_candidate(v) || user_copy(v, user_id, user_id_cap) != 0)
        goto out;

    r = MCPGW_AUTH_OK;
    if (claims) {
        *claims = grants;
        grants = NULL;
    }
out:
    if (r != MCPGW_AUTH_OK && user_id && user_id_cap > 0)
        user_id[0] = '\0';
    json_decref(grants);
    json_decref(payload);
    json_decref(header);
    return r;
}

const char *mcpgw_auth_result_name(mcpgw_auth_result r)
{
    switch (r) {
    case MCPGW_AUTH_OK: return "ok";
    case MCPGW_AUTH_MALFORMED: return "malformed";
    case MCPGW_AUTH_ALG_NONE: return "alg_none";
    case MCPGW_AUTH_ALG_NOT_ALLOWED: return "alg_not_allowed";
    case MCPGW_AUTH_BAD_SIGNATURE: return "bad_signature";
    case MCPGW_AUTH_EXPIRED: return "expired";
    case MCPGW_AUTH_NO_EXP: return "missing_exp";
    case MCPGW_AUTH_NOT_YET_VALID: return "not_yet_valid";
    case MCPGW_AUTH_NO_USER: return "no_user";
    case MCPGW_AUTH_NO_KEY: return "no_key";
    case MCPGW_AUTH_BAD_ISSUER: return "bad_issuer";
    case MCPGW_AUTH_BAD_AUDIENCE: return "bad_audience";
    }
    return "unknown";
}

char *mcpgw_auth_mint(int alg, const unsigned char *secret, size_t secret_len,
                      const char *user, long ttl_s, time_t now)
{
    return mcpgw_auth_mint_claim(alg, secret, secret_len, user, ttl_s, now, NULL, NULL);
}

char *mcpgw_auth_mint_claim(int alg, const unsigned char *secret, size_t secret_len,
                            const char *user, long ttl_s, time_t now, const char *claim,
                            const char *value)
{
    jwt_t *jwt = NULL;
    char *encoded = NULL, *result = NULL;
    long iat, exp;

    if (alg != JWT_ALG_HS256 && alg != JWT_ALG_HS384 && alg != JWT_ALG_HS512)
        goto out;
    if (!secret || secret_len == 0 || secret_len > INT_MAX || !user || !*user)
        goto out;
    if ((time_t)(long)now != now)
        goto out;
    iat = (long)now;
    if (__builtin_add_overflow(iat, ttl_s, &exp))
        goto out;
    if (jwt_new(&jwt) != 0)
        goto out;
    if (jwt_add_grant(jwt, "id", user) != 0 || jwt_add_grant(jwt, "sub", user) != 0
        || jwt_add_grant_int(jwt, "iat", iat) != 0 || jwt_add_grant_int(jwt, "exp", exp) != 0)
        goto out;
    if (claim && value && jwt_add_grant(jwt, claim, value) != 0)
        goto out;
    if (jwt_set_alg(jwt, (jwt_alg_t)alg, secret, (int)secret_len) != 0)
        goto out;
    encoded = jwt_encode_str(jwt);
    if (!encoded)
        goto out;
    result = strdup(encoded);
out:
    free(encoded);                      /* libjwt 1.10 has no jwt_free_str() */
    jwt_free(jwt);
    return result;
}
