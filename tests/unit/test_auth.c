/*
 * test_auth.c - unit tests for core/auth.c: minting, verification results
 * for good, forged, mis-algorithmed, stale and malformed tokens, user ids.
 *
 * Tokens are built with libjwt and by hand (own base64url encoder plus
 * OpenSSL HMAC) so that headers libjwt would never emit can be tested.
 */
#include "unit.h"
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/hmac.h>

#define NOW ((time_t)1700000000)

static const unsigned char SECRET[] = "test-secret-0123456789abcdef";
#define SECRET_LEN (sizeof SECRET - 1)
static const unsigned char OTHER[] = "another-secret";
#define OTHER_LEN (sizeof OTHER - 1)

static const int HS256_ONLY[] = { JWT_ALG_HS256 };
static const int HS_ALL[] = { JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512 };

static mcpgw_auth_config config(void)
{
    mcpgw_auth_config c;

    memset(&c, 0, sizeof c);
    c.secret = SECRET;
    c.secret_len = SECRET_LEN;
    c.algorithms = HS256_ONLY;
    c.n_algorithms = 1;
    c.user_claim = NULL;
    c.leeway_s = 30;
    return c;
}

/* Unpadded base64url of p[0..n), malloc'd. */
static char *b64url(const void *p, size_t n)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = p;
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *o++ = abc[s[i] >> 2];
        *o++ = abc[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *o++ = abc[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        *o++ = abc[s[i + 2] & 63];
    }
    if (n - i == 1) {
        *o++ = abc[s[i] >> 2];
        *o++ = abc[(s[i] & 3) << 4];
    } else if (n - i == 2) {
        *o++ = abc[s[i] >> 2];
        *o++ = abc[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *o++ = abc[(s[i + 1] & 15) << 2];
    }
    *o = '\0';
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url(s, strlen(s));
}

/* "b64(header).b64(payload).sig": sig is the HMAC with md and key, or empty
 * when md is NULL. malloc'd. */
static char *craft(const char *header, const char *payload, const EVP_MD *md,
                   const unsigned char *key, size_t key_len)
{
    char *h = b64url_str(header), *p = b64url_str(payload), *sig = NULL, *tok;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t n = strlen(h) + strlen(p) + 2;
    char *input = malloc(n);

    snprintf(input, n, "%s.%s", h, p);
    if (md) {
        HMAC(md, key, (int)key_len, (const unsigned char *)input, strlen(input), mac, &mac_len);
        sig = b64url(mac, mac_len);
    } else {
        sig = strdup("");
    }
    n = strlen(input) + strlen(sig) + 2;
    tok = malloc(n);
    snprintf(tok, n, "%s.%s", input, sig);
    free(input);
    free(h);
    free(p);
    free(sig);
    return tok;
}

static char *craft_hs256(const char *payload)
{
    return craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, EVP_sha256(), SECRET, SECRET_LEN);
}

/* Verifies with cfg, dropping the claims; user (optional, 64 bytes) gets the id. */
static mcpgw_auth_result verify(const mcpgw_auth_config *cfg, const char *tok, char *user)
{
    char buf[64];
    json_t *claims = NULL;
    mcpgw_auth_result r = mcpgw_auth_verify(cfg, tok, NOW, &claims, user ? user : buf, 64);

    if (r == MCPGW_AUTH_OK) {
        if (!json_is_object(claims))
            unit_current_failed = 1;
    } else if (claims) {
        unit_current_failed = 1;
    }
    json_decref(claims);
    return r;
}

static mcpgw_auth_result verify_payload(const mcpgw_auth_config *cfg, const char *payload, char *user)
{
    char *tok = craft_hs256(payload);
    mcpgw_auth_result r = verify(cfg, tok, user);

    free(tok);
    return r;
}

/* A libjwt-built HS256 token with one string grant and one int grant. */
static char *libjwt_token(jwt_alg_t alg, const unsigned char *key, size_t key_len,
                          const char *sname, const char *sval, const char *iname, long ival)
{
    jwt_t *jwt = NULL;
    char *enc, *tok = NULL;

    if (jwt_new(&jwt) != 0)
        return NULL;
    if (sname)
        jwt_add_grant(jwt, sname, sval);
    if (iname)
        jwt_add_grant_int(jwt, iname, ival);
    jwt_set_alg(jwt, alg, key, (int)key_len);
    enc = jwt_encode_str(jwt);
    if (enc)
        tok = strdup(enc);
    free(enc);
    jwt_free(jwt);
    return tok;
}

TEST(mint_then_verify)
{
    mcpgw_auth_config cfg = config();
    char user[64];
    json_t *claims = NULL;
    char *tok = mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, "alice", 3600, NOW);

    CHECK(tok != NULL);
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW, &claims, user, sizeof user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "alice");
    CHECK(json_is_object(claims));
    CHECK_EQ_STR(json_string_value(json_object_get(claims, "sub")), "alice");
    CHECK_EQ_INT(json_integer_value(json_object_get(claims, "iat")), NOW);
    CHECK_EQ_INT(json_integer_value(json_object_get(claims, "exp")), NOW + 3600);
    json_decref(claims);
    /* claims may be NULL */
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW, NULL, user, sizeof user), MCPGW_AUTH_OK);
    /* expired an hour later (beyond the leeway) */
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW + 3600 + 31, NULL, user, sizeof user),
                 MCPGW_AUTH_EXPIRED);
    CHECK_EQ_STR(user, "");
    free(tok);

    cfg.algorithms = HS_ALL;
    cfg.n_algorithms = 3;
    tok = mcpgw_auth_mint(JWT_ALG_HS512, SECRET, SECRET_LEN, "bob", 60, NOW);
    CHECK(tok != NULL);
    CHECK_EQ_INT(verify(&cfg, tok, user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "bob");
    free(tok);
    tok = mcpgw_auth_mint(JWT_ALG_HS384, SECRET, SECRET_LEN, "carol", 60, NOW);
    CHECK_EQ_INT(verify(&cfg, tok, user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "carol");
    free(tok);
}

TEST(mint_refuses)
{
    CHECK(mcpgw_auth_mint(JWT_ALG_RS256, SECRET, SECRET_LEN, "a", 60, NOW) == NULL);
    CHECK(mcpgw_auth_mint(JWT_ALG_NONE, SECRET, SECRET_LEN, "a", 60, NOW) == NULL);
    CHECK(mcpgw_auth_mint(JWT_ALG_HS256, NULL, 0, "a", 60, NOW) == NULL);
    CHECK(mcpgw_auth_mint(JWT_ALG_HS256, SECRET, 0, "a", 60, NOW) == NULL);
    CHECK(mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, NULL, 60, NOW) == NULL);
    CHECK(mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, "", 60, NOW) == NULL);
    CHECK(mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, "a", __LONG_MAX__, NOW) == NULL);
}

TEST(integer_id)
{
    mcpgw_auth_config cfg = config();
    char user[64];
    char *tok = libjwt_token(JWT_ALG_HS256, SECRET, SECRET_LEN, "sub", "ignored", "id", 12345);

    CHECK_EQ_INT(verify(&cfg, tok, user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "12345");
    free(tok);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":-7}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "-7");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":0}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "0");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":9223372036854775807}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "9223372036854775807");
}

TEST(fallback_to_sub)
{
    mcpgw_auth_config cfg = config();
    char user[64];
    char *tok = libjwt_token(JWT_ALG_HS256, SECRET, SECRET_LEN, "sub", "bob", NULL, 0);

    CHECK_EQ_INT(verify(&cfg, tok, user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "bob");
    free(tok);
    /* id present but unusable: empty, boolean, real, null, object */
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"\",\"sub\":\"bob\"}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "bob");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":true,\"sub\":\"bob\"}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "bob");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":1.5,\"sub\":\"bob\"}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "bob");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":null,\"sub\":42}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "42");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":{\"a\":1},\"sub\":\"bob\"}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "bob");
    /* id wins over sub when usable */
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"alice\",\"sub\":\"bob\"}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "alice");
}

TEST(custom_user_claim)
{
    mcpgw_auth_config cfg = config();
    char user[64];

    cfg.user_claim = "uid";
    CHECK_EQ_INT(verify_payload(&cfg, "{\"uid\":\"carol\",\"id\":\"x\",\"sub\":\"y\"}", user),
                 MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "carol");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"uid\":77}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "77");
    /* "id" is not consulted when another claim is configured */
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"x\",\"sub\":\"y\"}", user), MCPGW_AUTH_OK);
    CHECK_EQ_STR(user, "y");
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"x\"}", user), MCPGW_AUTH_NO_USER);
}

TEST(no_user)
{
    mcpgw_auth_config cfg = config();
    char small[4];
    char *tok;
    json_t *claims = (json_t *)&cfg;    /* must be reset to NULL */

    CHECK_EQ_INT(verify_payload(&cfg, "{}", NULL), MCPGW_AUTH_NO_USER);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"\",\"sub\":\"\"}", NULL), MCPGW_AUTH_NO_USER);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":false,\"sub\":[\"a\"]}", NULL), MCPGW_AUTH_NO_USER);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"sub\":2.5}", NULL), MCPGW_AUTH_NO_USER);
    /* control characters: C0, DEL, C1 (U+0085) */
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\\nb\"}", NULL), MCPGW_AUTH_NO_USER);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\\u007fb\"}", NULL), MCPGW_AUTH_NO_USER);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\\u0085b\"}", NULL), MCPGW_AUTH_NO_USER);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"\\u001b[31m\",\"sub\":\"ok\"}", NULL),
                 MCPGW_AUTH_NO_USER);
    /* non-ASCII without controls is fine */
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"J\\u00fcrgen\"}", NULL), MCPGW_AUTH_OK);

    /* does not fit: no truncation */
    tok = craft_hs256("{\"id\":\"alice\"}");
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW, &claims, small, sizeof small),
                 MCPGW_AUTH_NO_USER);
    CHECK(claims == NULL);
    CHECK_EQ_STR(small, "");
    free(tok);
    tok = craft_hs256("{\"id\":\"abc\"}");
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW, NULL, small, sizeof small), MCPGW_AUTH_OK);
    CHECK_EQ_STR(small, "abc");
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW, NULL, small, 0), MCPGW_AUTH_NO_USER);
    free(tok);
    tok = craft_hs256("{\"id\":12345}");
    CHECK_EQ_INT(mcpgw_auth_verify(&cfg, tok, NOW, NULL, small, sizeof small), MCPGW_AUTH_NO_USER);
    free(tok);
}

TEST(bad_signature)
{
    mcpgw_auth_config cfg = config();
    char *tok = mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, "alice", 3600, NOW);
    char *other = mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, "mallory", 3600, NOW);
    char *forged, *p, *d1, *d2, *od1, *od2;
    size_t n;

    /* wrong secret */
    cfg.secret = OTHER;
    cfg.secret_len = OTHER_LEN;
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    cfg = config();
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_OK);

    /* tampered payload: alice's header and signature around mallory's payload */
    d1 = strchr(tok, '.');
    d2 = strchr(d1 + 1, '.');
    od1 = strchr(other, '.');
    od2 = strchr(od1 + 1, '.');
    n = strlen(tok) + strlen(other) + 1;
    forged = malloc(n);
    snprintf(forged, n, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(od2 - od1), od1, d2);
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    free(forged);

    /* tampered signature: flip one character, truncate, drop, extend */
    forged = strdup(tok);
    p = forged + strlen(forged) - 5;
    *p = *p == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    strcpy(forged, tok);
    forged[strlen(forged) - 1] = '\0';
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    strcpy(forged, tok);
    strrchr(forged, '.')[1] = '\0';
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    strcpy(forged, tok);
    strrchr(forged, '.')[3] = '!';
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    free(forged);
    n = strlen(tok) + 3;
    forged = malloc(n);
    snprintf(forged, n, "%sAA", tok);
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    free(forged);

    /* HS256 header, signed with HS512 */
    forged = craft("{\"alg\":\"HS256\"}", "{\"id\":\"a\"}", EVP_sha512(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_BAD_SIGNATURE);
    free(forged);
    /* hand-built with the right key is fine (no typ header) */
    forged = craft("{\"alg\":\"HS256\"}", "{\"id\":\"a\"}", EVP_sha256(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, forged, NULL), MCPGW_AUTH_OK);
    free(forged);

    free(tok);
    free(other);
}

TEST(alg_none)
{
    mcpgw_auth_config cfg = config();
    char *p = b64url_str("{\"id\":\"admin\",\"sub\":\"admin\"}");
    char tok[256];
    char *crafted;

    /* {"alg":"none"} */
    snprintf(tok, sizeof tok, "eyJhbGciOiJub25lIn0.%s.", p);
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_ALG_NONE);
    crafted = craft("{\"alg\":\"NONE\"}", "{\"id\":\"admin\"}", NULL, NULL, 0);
    CHECK_EQ_INT(verify(&cfg, crafted, NULL), MCPGW_AUTH_ALG_NONE);
    free(crafted);
    crafted = craft("{\"alg\":\"None\",\"typ\":\"JWT\"}", "{\"id\":\"admin\"}",
                    EVP_sha256(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, crafted, NULL), MCPGW_AUTH_ALG_NONE);
    free(crafted);
    /* even if configuration (wrongly) lists it */
    {
        static const int with_none[] = { JWT_ALG_NONE, JWT_ALG_HS256 };

        cfg.algorithms = with_none;
        cfg.n_algorithms = 2;
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_ALG_NONE);
        /* and without a key */
        cfg.secret = NULL;
        cfg.secret_len = 0;
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_ALG_NONE);
    }
    free(p);
}

TEST(alg_not_allowed)
{
    mcpgw_auth_config cfg = config();
    char *tok = libjwt_token(JWT_ALG_HS512, SECRET, SECRET_LEN, "id", "alice", NULL, 0);
    char *crafted;

    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_ALG_NOT_ALLOWED);
    cfg.algorithms = HS_ALL;
    cfg.n_algorithms = 3;
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_OK);
    cfg = config();
    free(tok);

    /* RS256 header, HMAC signature with the shared secret (key confusion) */
    crafted = craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"id\":\"a\"}",
                    EVP_sha256(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, crafted, NULL), MCPGW_AUTH_ALG_NOT_ALLOWED);
    free(crafted);
    /* unknown algorithm; known one in another case */
    crafted = craft("{\"alg\":\"XS256\"}", "{\"id\":\"a\"}", EVP_sha256(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, crafted, NULL), MCPGW_AUTH_ALG_NOT_ALLOWED);
    free(crafted);
    crafted = craft("{\"alg\":\"hs256\"}", "{\"id\":\"a\"}", EVP_sha256(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, crafted, NULL), MCPGW_AUTH_ALG_NOT_ALLOWED);
    free(crafted);
    /* empty configured list */
    cfg.n_algorithms = 0;
    crafted = craft_hs256("{\"id\":\"a\"}");
    CHECK_EQ_INT(verify(&cfg, crafted, NULL), MCPGW_AUTH_ALG_NOT_ALLOWED);
    free(crafted);
}

TEST(expiry)
{
    mcpgw_auth_config cfg = config();
    char buf[128];

    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld}", (long long)NOW - 100);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_EXPIRED);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld}", (long long)NOW - 31);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_EXPIRED);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld}", (long long)NOW - 30);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_OK);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld}", (long long)NOW - 10);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_OK);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld.5}", (long long)NOW - 31);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_EXPIRED);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld.5}", (long long)NOW - 30);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_OK);
    /* no leeway */
    cfg.leeway_s = 0;
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld}", (long long)NOW - 1);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_EXPIRED);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":%lld}", (long long)NOW);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_OK);
    cfg.leeway_s = 30;
    /* extremes do not overflow */
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"exp\":9223372036854775807}", NULL),
                 MCPGW_AUTH_OK);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"exp\":-9223372036854775807}", NULL),
                 MCPGW_AUTH_EXPIRED);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"exp\":1e300}", NULL), MCPGW_AUTH_OK);
    /* expired wins over a missing user */
    snprintf(buf, sizeof buf, "{\"exp\":%lld}", (long long)NOW - 100);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_EXPIRED);
}

TEST(not_before)
{
    mcpgw_auth_config cfg = config();
    char buf[128];

    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"nbf\":%lld}", (long long)NOW + 100);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_NOT_YET_VALID);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"nbf\":%lld}", (long long)NOW + 31);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_NOT_YET_VALID);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"nbf\":%lld}", (long long)NOW + 30);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_OK);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"nbf\":%lld}", (long long)NOW - 1000);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_OK);
    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"nbf\":%lld.0}", (long long)NOW + 100);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_NOT_YET_VALID);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"nbf\":9223372036854775807}", NULL),
                 MCPGW_AUTH_NOT_YET_VALID);
}

TEST(bad_time_claims)
{
    mcpgw_auth_config cfg = config();
    char buf[128];

    snprintf(buf, sizeof buf, "{\"id\":\"a\",\"exp\":\"%lld\"}", (long long)NOW + 100);
    CHECK_EQ_INT(verify_payload(&cfg, buf, NULL), MCPGW_AUTH_MALFORMED);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"exp\":null}", NULL), MCPGW_AUTH_MALFORMED);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"exp\":true}", NULL), MCPGW_AUTH_MALFORMED);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"nbf\":\"0\"}", NULL), MCPGW_AUTH_MALFORMED);
    CHECK_EQ_INT(verify_payload(&cfg, "{\"id\":\"a\",\"nbf\":[0]}", NULL), MCPGW_AUTH_MALFORMED);
}

TEST(garbage)
{
    mcpgw_auth_config cfg = config();
    static const char *const bad[] = {
        "", ".", "..", "...", "abc", "a.b", "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9..sig",            /* empty payload */
        ".eyJpZCI6ImEifQ.sig",                  /* empty header */
        "!!!.eyJpZCI6ImEifQ.sig",               /* not base64url */
        "eyJhbGciOiJIUzI1NiJ9=.eyJpZCI6ImEifQ.sig",   /* padding */
        "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6ImEifQ=.sig",
        "eyJhbGciOiJIUzI1NiJ9A.eyJpZCI6ImEifQ.sig",   /* length 4n+1 */
        "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6I+EifQ.sig",    /* '+' is not base64url */
        "eyJhbGciOiJIUzI1NiJ9 .eyJpZCI6ImEifQ.sig",
    };
    static const char *const headers[] = {
        "hello",                                /* not JSON */
        "[\"HS256\"]",                          /* array */
        "\"HS256\"",                            /* string */
        "{}",                                   /* no alg */
        "{\"alg\":256}",                        /* alg not a string */
        "{\"alg\":null}",
        "{\"alg\":\"HS256\",\"alg\":\"none\"}", /* duplicate key */
        "{\"alg\":\"HS256\"} x",                /* trailing garbage */
        "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", /* libjwt refuses other typs */
        "{\"alg\":\"HS256\",\"crit\":[\"b64\"]}",
    };
    static const char *const payloads[] = {
        "hello", "[1,2]", "42", "{\"id\":\"a\",\"id\":\"b\"}", "{\"id\":\"a\"",
    };
    size_t i;
    char *tok, *big;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (verify(&cfg, bad[i], NULL) != MCPGW_AUTH_MALFORMED) {
            fprintf(stderr, "  bad[%zu] not malformed\n", i);
            unit_current_failed = 1;
        }
    }
    for (i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        tok = craft(headers[i], "{\"id\":\"a\"}", EVP_sha256(), SECRET, SECRET_LEN);
        if (verify(&cfg, tok, NULL) != MCPGW_AUTH_MALFORMED) {
            fprintf(stderr, "  headers[%zu] not malformed\n", i);
            unit_current_failed = 1;
        }
        free(tok);
    }
    for (i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        tok = craft("{\"alg\":\"HS256\"}", payloads[i], EVP_sha256(), SECRET, SECRET_LEN);
        if (verify(&cfg, tok, NULL) != MCPGW_AUTH_MALFORMED) {
            fprintf(stderr, "  payloads[%zu] not malformed\n", i);
            unit_current_failed = 1;
        }
        free(tok);
    }
    CHECK_EQ_INT(verify(&cfg, NULL, NULL), MCPGW_AUTH_MALFORMED);
    /* typ "jwt" in any case is accepted, as by libjwt */
    tok = craft("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{\"id\":\"a\"}", EVP_sha256(), SECRET, SECRET_LEN);
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_OK);
    free(tok);
    /* oversized token */
    big = malloc(40001);
    memset(big, 'A', 40000);
    big[40000] = '\0';
    big[100] = '.';
    big[200] = '.';
    CHECK_EQ_INT(verify(&cfg, big, NULL), MCPGW_AUTH_MALFORMED);
    free(big);
}

TEST(no_key)
{
    mcpgw_auth_config cfg = config();
    char *tok = mcpgw_auth_mint(JWT_ALG_HS256, SECRET, SECRET_LEN, "alice", 3600, NOW);

    cfg.secret = NULL;
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_NO_KEY);
    cfg = config();
    cfg.secret_len = 0;
    CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_NO_KEY);
    CHECK_EQ_INT(verify(NULL, tok, NULL), MCPGW_AUTH_NO_KEY);
    free(tok);
}

TEST(result_names)
{
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_OK), "ok");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_MALFORMED), "malformed");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_ALG_NONE), "alg_none");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_ALG_NOT_ALLOWED), "alg_not_allowed");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_BAD_SIGNATURE), "bad_signature");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_EXPIRED), "expired");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_NOT_YET_VALID), "not_yet_valid");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_NO_USER), "no_user");
    CHECK_EQ_STR(mcpgw_auth_result_name(MCPGW_AUTH_NO_KEY), "no_key");
}

/* The cached keyed HMAC contexts give the same answers as the one-shot
 * path, for each HS size, and follow a changed secret (a reload). */
TEST(hmac_cache_follows_the_key)
{
    static const unsigned char other[] = "another-secret-of-some-length";
    mcpgw_auth_config cfg = config();
    mcpgw_hmac_cache *cache = mcpgw_hmac_cache_new();
    static const int algs[] = { JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512 };
    char user[64];

    CHECK(cache != NULL);
    cfg.hmac_cache = cache;
    cfg.algorithms = algs;
    cfg.n_algorithms = 3;
    for (int round = 0; round < 2; round++) {          /* first keys, then reuses */
        for (size_t a = 0; a < 3; a++) {
            char *good = mcpgw_auth_mint(algs[a], SECRET, SECRET_LEN, "carol", 3600, NOW);
            char *bad = mcpgw_auth_mint(algs[a], other, sizeof(other) - 1, "carol", 3600, NOW);

            CHECK_EQ_INT(verify(&cfg, good, user), MCPGW_AUTH_OK);
            CHECK_EQ_STR(user, "carol");
            CHECK_EQ_INT(verify(&cfg, bad, NULL), MCPGW_AUTH_BAD_SIGNATURE);
            /* the secret changes under the cache: the other token is now good */
            cfg.secret = other;
            cfg.secret_len = sizeof(other) - 1;
            CHECK_EQ_INT(verify(&cfg, bad, NULL), MCPGW_AUTH_OK);
            CHECK_EQ_INT(verify(&cfg, good, NULL), MCPGW_AUTH_BAD_SIGNATURE);
            cfg.secret = SECRET;
            cfg.secret_len = SECRET_LEN;
            CHECK_EQ_INT(verify(&cfg, good, NULL), MCPGW_AUTH_OK);
            free(good);
            free(bad);
        }
    }
    mcpgw_hmac_cache_free(cache);
    mcpgw_hmac_cache_free(NULL);
}

/* ------------------------------------------------- RS and ES, cached key */

/* A fresh key pair: "EC" with a curve name, or "RSA". */
static EVP_PKEY *new_key(const char *type, const char *curve)
{
    return strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                    : EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

/* The public half as PEM, malloc'd (*len bytes). */
static unsigned char *public_pem(EVP_PKEY *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    unsigned char *out;

    PEM_write_bio_PUBKEY(b, k);
    *len = (size_t)BIO_get_mem_data(b, &p);
    out = malloc(*len);
    memcpy(out, p, *len);
    BIO_free(b);
    return out;
}

/* header.payload signed with k and md: RS as is, ES as r || s of `half`
 * bytes each (raw = 0: the DER form JWS does not allow). malloc'd. */
static char *craft_asym(const char *header, const char *payload, EVP_PKEY *k, const EVP_MD *md,
                        int half, int raw)
{
    char *h = b64url_str(header), *p = b64url_str(payload), *sig, *tok;
    size_t in_len = strlen(h) + 1 + strlen(p), sig_len = 0;
    char *in = malloc(in_len + 1);
    unsigned char der[1024], rs[132];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    snprintf(in, in_len + 1, "%s.%s", h, p);
    sig_len = sizeof(der);
    EVP_DigestSignInit(ctx, NULL, md, NULL, k);
    EVP_DigestSign(ctx, der, &sig_len, (unsigned char *)in, in_len);
    EVP_MD_CTX_free(ctx);
    if (half && raw) {
        const unsigned char *q = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + half, half);
        ECDSA_SIG_free(es);
        sig = b64url(rs, (size_t)half * 2);
    } else {
        sig = b64url(der, sig_len);
    }
    tok = malloc(in_len + strlen(sig) + 2);
    sprintf(tok, "%s.%s", in, sig);
    free(h);
    free(p);
    free(in);
    free(sig);
    return tok;
}

TEST(public_key_algorithms_with_the_cached_key)
{
    static const int es256[] = { JWT_ALG_ES256 }, es384[] = { JWT_ALG_ES384 },
                     rs256[] = { JWT_ALG_RS256 };
    EVP_PKEY *p256 = new_key("EC", "P-256"), *p256b = new_key("EC", "P-256"),
             *p384 = new_key("EC", "P-384"), *rsa = new_key("RSA", NULL);
    size_t l256, l256b, l384, lrsa;
    unsigned char *pem256 = public_pem(p256, &l256), *pem256b = public_pem(p256b, &l256b),
                  *pem384 = public_pem(p384, &l384), *pemrsa = public_pem(rsa, &lrsa);
    mcpgw_hmac_cache *cache = mcpgw_hmac_cache_new();
    mcpgw_auth_config cfg = config();
    const char *es256h = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
    const char *claims = "{\"id\":\"dora\",\"exp\":4102444800}";
    char user[64], *tok;

    cfg.hmac_cache = cache;
    for (int pass = 0; pass < 2; pass++) {       /* with the cache, then libjwt's path */
        cfg.hmac_cache = pass ? NULL : cache;
        cfg.algorithms = es256;
        cfg.public_key = pem256;
        cfg.public_key_len = l256;
        tok = craft_asym(es256h, claims, p256, EVP_sha256(), 32, 1);
        CHECK_EQ_INT(verify(&cfg, tok, user), MCPGW_AUTH_OK);
        CHECK_EQ_STR(user, "dora");
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_OK);          /* again: cached */
        /* another key of the same curve: the cache notices the change */
        cfg.public_key = pem256b;
        cfg.public_key_len = l256b;
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_BAD_SIGNATURE);
        cfg.public_key = pem256;
        cfg.public_key_len = l256;
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_OK);
        tok[strlen(tok) - 3] ^= 1;                                      /* a flipped bit */
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_BAD_SIGNATURE);
        free(tok);
        /* the DER form of the signature is not JWS */
        tok = craft_asym(es256h, claims, p256, EVP_sha256(), 32, 0);
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_BAD_SIGNATURE);
        free(tok);
        /* ES256 with a P-384 key, and with an RSA key */
        cfg.public_key = pem384;
        cfg.public_key_len = l384;
        tok = craft_asym(es256h, claims, p384, EVP_sha256(), 48, 1);
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_BAD_SIGNATURE);
        free(tok);
        cfg.algorithms = es384;
        tok = craft_asym("{\"alg\":\"ES384\",\"typ\":\"JWT\"}", claims, p384, EVP_sha384(), 48, 1);
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_OK);
        free(tok);
        cfg.algorithms = es256;
        cfg.public_key = pemrsa;
        cfg.public_key_len = lrsa;
        tok = craft_asym(es256h, claims, rsa, EVP_sha256(), 0, 0);
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_BAD_SIGNATURE);
        free(tok);
        cfg.algorithms = rs256;
        tok = craft_asym("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims, rsa, EVP_sha256(), 0, 0);
        CHECK_EQ_INT(verify(&cfg, tok, user), MCPGW_AUTH_OK);
        CHECK_EQ_STR(user, "dora");
        /* expiry is still checked */
        free(tok);
        tok = craft_asym("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"id\":\"dora\",\"exp\":1}", rsa,
                         EVP_sha256(), 0, 0);
        CHECK_EQ_INT(verify(&cfg, tok, NULL), MCPGW_AUTH_EXPIRED);
        free(tok);
    }
    mcpgw_hmac_cache_free(cache);
    free(pem256);
    free(pem256b);
    free(pem384);
    free(pemrsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p256b);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
}

int main(void)
{
    RUN(mint_then_verify);
    RUN(mint_refuses);
    RUN(integer_id);
    RUN(fallback_to_sub);
    RUN(custom_user_claim);
    RUN(no_user);
    RUN(bad_signature);
    RUN(alg_none);
    RUN(alg_not_allowed);
    RUN(expiry);
    RUN(not_before);
    RUN(bad_time_claims);
    RUN(garbage);
    RUN(no_key);
    RUN(result_names);
    RUN(hmac_cache_follows_the_key);
    RUN(public_key_algorithms_with_the_cached_key);
    return UNIT_SUMMARY();
}
