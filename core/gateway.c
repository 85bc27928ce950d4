/*
 * gateway.c - the state the whole gateway shares (see gateway.h): the
 * configuration in force and its reload, the token verifier, TLS, the user
 * table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway.h"

/* ----------------------------------------------------------------- TLS */

/* ALPN: we speak HTTP/1.1 (the WebSocket upgrade) and nothing else. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, http11, sizeof(http11) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static int tls_fail(mcpgw_gateway *gw, const char *what, const char *path)
{
    char err[256];

    ERR_error_string_n(ERR_get_error(), err, sizeof(err));
    mcpgw_log_event(&gw->log, MCPGW_LOG_ERROR, "tls_setup_failed",
                    json_pack("{s:s, s:s, s:s}", "step", what, "path", path ? path : "",
                              "error", err),
                    mcpgw_clock_iso(&gw->clock));
    return -1;
}

/* OpenSSL's secure defaults (cipher list, security level), TLS 1.2 at
 * least, no compression or renegotiation, buffers released when idle. */
static int tls_setup(mcpgw_gateway *gw)
{
    const mcpgw_config *cfg = gw->cfg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx)
        return tls_fail(gw, "SSL_CTX_new", NULL);
    gw->ssl_ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections keep no record buffers: OpenSSL frees its 16 KiB
     * read and write buffers whenever they are empty (without this mode an
     * idle TLS connection holds ~48 KiB of heap instead of ~16 KiB). What
     * remains per connection (~13.5 KiB with OpenSSL 3.0, measured by
     * scripts/measure-idle-memory) is live state: the SSL object (~7.4 KiB),
     * the two AEAD cipher contexts (~2.2 KiB), the SSL_SESSION and the
     * per-SSL CERT copy, plus for TLS 1.3 the ECDHE key pair and transcript
     * hash OpenSSL 3.0 keeps until SSL_free. SSL_free_buffers(), disabling
     * tickets and malloc tuning were measured and change nothing. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Read what the socket has in one read(), not a 5-byte record header
     * and then its body (three reads per record with the final EAGAIN);
     * the transport drains with SSL_has_pending(), which sees records read
     * ahead but not yet decrypted. */
    SSL_CTX_set_read_ahead(ctx, 1);
#ifdef SSL_OP_ENABLE_KTLS
    /* Kernel TLS where this OpenSSL and kernel have it; else nothing changes. */
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
#endif
    /* Resumption uses stateless tickets; a server-side session cache would
     * hold a session per connection in memory for nothing. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1)
        return tls_fail(gw, "certificate", cfg->tls_cert);
    if (cfg->tls_chain) {
        X509 *extra;
        FILE *f = fopen(cfg->tls_chain, "r");
        if (!f)
            return tls_fail(gw, "chain", cfg->tls_chain);
        while ((extra = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
            if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
                X509_free(extra);
                fclose(f);
                return tls_fail(gw, "chain", cfg->tls_chain);
            }
        ERR_clear_error();      /* the end of the file */
        fclose(f);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1)
        return tls_fail(gw, "private key", cfg->tls_key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_fail(gw, "key does not match certificate", cfg->tls_key);
    return 0;
}

static void set_auth(mcpgw_gateway *gw)
{
    const mcpgw_config *cfg = gw->cfg;

    gw->auth.secret = (const unsigned char *)cfg->jwt_secret;
    gw->auth.secret_len = cfg->jwt_secret ? strlen(cfg->jwt_secret) : 0;
    gw->auth.public_key = (const unsigned char *)cfg->public_key_pem;
    gw->auth.public_key_len = cfg->public_key_len;
    gw->auth.issuer = cfg->issuer;
    gw->auth.audience = cfg->audience;
    gw->auth.algorithms = cfg->algorithms;
    gw->auth.n_algorithms = cfg->n_algorithms;
    gw->auth.user_claim = cfg->user_claim;
    gw->auth.leeway_s = cfg->leeway_s;
    gw->auth.require_exp = cfg->require_exp;
    if (!gw->auth.hmac_cache)
        gw->auth.hmac_cache = mcpgw_hmac_cache_new();  /* NULL: one-shot HMAC */
}

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* Logs the errors of a refused configuration, one line each. */
static void log_reload_errors(mcpgw_gateway *gw, char *errors)
{
    char *save = NULL;

    for (char *line = strtok_r(errors, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        mcpgw_log_event(&gw->log, MCPGW_LOG_ERROR, "config_reload_error",
                        json_pack("{s:s}", "error", line), mcpgw_clock_iso(&gw->clock));
}

/* --------------------------------------------------------- life cycle */

static int need_secret(mcpgw_gateway *gw, const mcpgw_config *cfg)
{
    if (mcpgw_config_needs_secret(cfg) && (!cfg->jwt_secret || !*cfg->jwt_secret)) {
        mcpgw_log_event(&gw->log, MCPGW_LOG_ERROR, "config_error",
                        json_pack("{s:s}", "reason",
                                  "no JWT secret: set [auth] jwt_secret, jwt_secret_file or "
                                  "MCPGW_JWT_SECRET"),
                        mcpgw_clock_iso(&gw->clock));
        return -1;
    }
    return 0;
}

int mcpgw_gateway_init(mcpgw_gateway *gw, mcpgw_config *cfg, const char *conf_dir)
{
    memset(gw, 0, sizeof(*gw));
    gw->cfg = cfg;
    gw->conf_dir = conf_dir;
    gw->log.level = cfg->log_level;
    gw->handler_watchdog_ms = cfg->handler_watchdog_ms;
    mcpgw_clock_init(&gw->clock, NULL);
    gw->started = mcpgw_clock_now(&gw->clock);
    if (need_secret(gw, cfg) != 0)
        return -1;
    set_auth(gw);
    /* Each open connection needs at most one (user, worker) entry. A reload
     * that raises max_connections past this needs a restart to use it all. */
    gw->limits = mcpgw_limits_new(cfg->max_connections > 1024 ? (size_t)cfg->max_connections : 1024);
    if (!gw->limits)
        return -1;
    if (cfg->tls_cert && tls_setup(gw) != 0)
        return -1;
    return 0;
}

void mcpgw_gateway_free(mcpgw_gateway *gw)
{
    mcpgw_limits_free(gw->limits);
    if (gw->ssl_ctx)
        SSL_CTX_free(gw->ssl_ctx);
    mcpgw_config_free(gw->cfg);
    mcpgw_hmac_cache_free(gw->auth.hmac_cache);
    memset(gw, 0, sizeof(*gw));
}

/* ----------------------------------------------------------- listening */

int mcpgw_gateway_listen(mcpgw_gateway *gw, const char *host, int port, int reuseport,
                         mcpgw_listen_addr *bound)
{
    char err[256];
    int fd = mcpgw_listen_open(host, port, reuseport, bound, err, sizeof(err));

    if (fd < 0)
        mcpgw_log_event(&gw->log, MCPGW_LOG_ERROR, "server_listen_failed",
                        json_pack("{s:s, s:i, s:s}", "host", host, "port", port, "reason", err),
                        mcpgw_clock_iso(&gw->clock));
    return fd;
}

void mcpgw_gateway_log_listening(mcpgw_gateway *gw, const mcpgw_listen_addr *bound, int tls)
{
    mcpgw_log_event(&gw->log, MCPGW_LOG_INFO, "server_listening",
                    json_pack("{s:s, s:i, s:s, s:b}", "address", bound->ip, "port", bound->port,
                              "path", gw->cfg->path, "tls", tls),
                    mcpgw_clock_iso(&gw->clock));
}

/* -------------------------------------------------------------- reload */

static void reload_failed(mcpgw_gateway *gw)
{
    mcpgw_log_event(&gw->log, MCPGW_LOG_ERROR, "config_reload_failed",
                    json_pack("{s:s, s:s}", "dir", gw->conf_dir, "result",
                              "the running configuration stays in force"),
                    mcpgw_clock_iso(&gw->clock));
}

mcpgw_config *mcpgw_gateway_reload_read(mcpgw_gateway *gw)
{
    char *errors = NULL;
    mcpgw_config *next = mcpgw_config_load(gw->conf_dir, &errors);

    if (next && mcpgw_config_needs_secret(next) && (!next->jwt_secret || !*next->jwt_secret)) {
        mcpgw_config_free(next);
        next = NULL;
        free(errors);
        errors = strdup("no JWT secret: set [auth] jwt_secret, jwt_secret_file or MCPGW_JWT_SECRET");
    }
    if (next && next->tls_cert && !gw->ssl_ctx) {
        mcpgw_config_free(next);
        next = NULL;
        free(errors);
        errors = strdup("[tls] cannot be turned on by a reload: restart the gateway");
    }
    if (!next) {
        if (errors)
            log_reload_errors(gw, errors);
        reload_failed(gw);
    }
    free(errors);
    return next;
}

void mcpgw_gateway_reload_abandon(mcpgw_gateway *gw, mcpgw_config *next)
{
    reload_failed(gw);
    mcpgw_config_free(next);
}

void mcpgw_gateway_reload_commit(mcpgw_gateway *gw, mcpgw_config *next)
{
    mcpgw_config *old = gw->cfg;

    /* What only a restart can change: say so, keep serving as we are. */
    if (str_differs(old->listen_host, next->listen_host) || old->listen_port != next->listen_port ||
        str_differs(old->plain_listen_host, next->plain_listen_host) ||
        old->plain_listen_port != next->plain_listen_port ||
        str_differs(old->tls_cert, next->tls_cert) || str_differs(old->tls_key, next->tls_key) ||
        str_differs(old->path, next->path))
        mcpgw_log_event(&gw->log, MCPGW_LOG_WARN, "config_restart_required",
                        json_pack("{s:s}", "reason",
                                  "listen, plain_listen, path and [tls] changes take effect after "
                                  "a restart"),
                        mcpgw_clock_iso(&gw->clock));
    if (str_differs(old->cluster_redis, next->cluster_redis) ||
        str_differs(old->cluster_node_id, next->cluster_node_id) ||
        str_differs(old->cluster_key_prefix, next->cluster_key_prefix) ||
        str_differs(old->cluster_password, next->cluster_password) ||
        old->cluster_lease_ms != next->cluster_lease_ms ||
        old->cluster_read_linger_ms != next->cluster_read_linger_ms)
        mcpgw_log_event(&gw->log, MCPGW_LOG_WARN, "config_restart_required",
                        json_pack("{s:s}", "reason",
                                  "[cluster] redis, password_file, node_id, key_prefix, "
                                  "lease_ms and read_linger_ms take effect after a restart "
                                  "(on_redis_down now)"),
                        mcpgw_clock_iso(&gw->clock));
    if (str_differs(old->path, next->path)) {
        free(next->path);
        next->path = strdup(old->path);
    }
    gw->cfg = next;
    gw->log.level = next->log_level;
    __atomic_store_n(&gw->handler_watchdog_ms, next->handler_watchdog_ms, __ATOMIC_RELEASE);
    set_auth(gw);
    /* Our reference: connections, sessions and plugins still using the old
     * snapshot hold their own (config.h), the last one frees it. */
    mcpgw_config_free(old);
}
