/*
 * test_config.c - unit tests of core/config.c (loading *.ini files and
 * strings, every key, every class of bad value, file:line in messages,
 * override order across files, the environment) and of core/log.c.
 */
#define _GNU_SOURCE
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* By path: a bare "config.h" could pick up autoconf's generated header. */
#include "../../core/config.h"
#include "../../core/log.h"
#include "unit.h"

/* ------------------------------------------------------------ helpers */

/* Loads text; returns the config (NULL on errors) and the error text. */
static mcpgw_config *load(const char *text, char **errors)
{
    return mcpgw_config_load_string("t.ini", text, errors);
}

/* The error text for text (which must fail), or NULL if it loaded. */
static char *errors_of(const char *text)
{
    char *errors = NULL;
    mcpgw_config *cfg = load(text, &errors);

    if (cfg) {
        mcpgw_config_free(cfg);
        free(errors);
        return NULL;
    }
    return errors;
}

/* 1 if errors has a line equal to line. */
static int has_line(const char *errors, const char *line)
{
    size_t len = strlen(line);
    const char *s = errors;

    while (s && *s) {
        const char *nl = strchr(s, '\n');
        size_t l = nl ? (size_t)(nl - s) : strlen(s);
        if (l == len && memcmp(s, line, len) == 0)
            return 1;
        s = nl ? nl + 1 : NULL;
    }
    return 0;
}

static int count_lines(const char *errors)
{
    int n = 0;
    if (!errors || !*errors)
        return 0;
    for (n = 1; *errors; errors++)
        n += *errors == '\n';
    return n;
}

/* Checks that text fails with exactly the line expected among its errors. */
#define CHECK_ERROR(text, expected) do { \
    char *e_ = errors_of(text); \
    CHECK(e_ != NULL); \
    if (e_ && !has_line(e_, expected)) { \
        fprintf(stderr, "  %s:%d: expected error \"%s\" in:\n%s\n", __FILE__, __LINE__, \
                expected, e_); \
        unit_current_failed = 1; \
    } \
    free(e_); \
    } while (0)

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (!f) {
        perror(path);
        abort();
    }
    fputs(text, f);
    fclose(f);
}

static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/mcpgw-test-config-XXXXXX");
    if (!dir || !mkdtemp(dir))
        abort();
    return dir;
}

static void remove_tree(const char *dir)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0 && system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    free(cmd);
}

/* ------------------------------------------------------------ tests */

TEST(test_defaults)
{
    char *errors = (char *)"unset";
    mcpgw_config *cfg = load("", &errors);

    CHECK(cfg != NULL);
    CHECK(errors == NULL);
    if (!cfg)
        return;
    CHECK_EQ_STR(cfg->listen_host, "127.0.0.1");
    CHECK_EQ_INT(cfg->listen_port, 8080);
    CHECK_EQ_STR(cfg->path, "/ws");
    CHECK_EQ_INT(cfg->max_payload, 1048576);
    CHECK_EQ_INT(cfg->shutdown_timeout_ms, 10000);
    CHECK_EQ_INT(cfg->max_header_bytes, 8192);
    CHECK(cfg->jwt_secret == NULL);
    CHECK_EQ_INT(cfg->n_algorithms, 1);
    CHECK_EQ_INT(cfg->algorithms[0], JWT_ALG_HS256);
    CHECK_EQ_INT(cfg->max_connections_per_user, 5);
    CHECK_EQ_STR(cfg->user_claim, "id");
    CHECK_EQ_INT(cfg->leeway_s, 30);
    CHECK_EQ_INT(cfg->heartbeat_interval_ms, 30000);
    CHECK_EQ_INT(cfg->log_level, MCPGW_LOG_INFO);
    CHECK(cfg->plugins_dir != NULL && cfg->plugins_dir[0] != '\0');
    CHECK(cfg->handlers == NULL);
    CHECK(mcpgw_config_handler(cfg, "ping") == NULL);
    mcpgw_config_free(cfg);
}

TEST(test_every_key)
{
    char *errors = NULL;
    mcpgw_config *cfg = load(
        "; a comment\n"
        "# another\n"
        "[server]\n"
        "listen = 0.0.0.0:9000\n"
        "path = /gateway/ws\n"
        "max_payload = 4096\n"
        "shutdown_timeout_ms = 0\n"
        "max_header_bytes = 16384\n"
        "[auth]\n"
        "jwt_secret = s3cret ; inline comment\n"
        "algorithms = HS512, HS256 HS384,HS256\n"
        "max_connections_per_user = 1000000\n"
        "user_claim = sub\n"
        "leeway_s = 0\n"
        "[heartbeat]\n"
        "interval_ms = 100\n"
        "[log]\n"
        "level = debug\n"
        "[plugins]\n"
        "dir = /opt/mcpgw/plugins/\n", &errors);

    CHECK(cfg != NULL);
    CHECK(errors == NULL);
    free(errors);
    if (!cfg)
        return;
    CHECK_EQ_STR(cfg->listen_host, "0.0.0.0");
    CHECK_EQ_INT(cfg->listen_port, 9000);
    CHECK_EQ_STR(cfg->path, "/gateway/ws");
    CHECK_EQ_INT(cfg->max_payload, 4096);
    CHECK_EQ_INT(cfg->shutdown_timeout_ms, 0);
    CHECK_EQ_INT(cfg->max_header_bytes, 16384);
    CHECK_EQ_STR(cfg->jwt_secret, "s3cret");
    CHECK_EQ_INT(cfg->n_algorithms, 3);
    CHECK_EQ_INT(cfg->algorithms[0], JWT_ALG_HS512);
    CHECK_EQ_INT(cfg->algorithms[1], JWT_ALG_HS256);
    CHECK_EQ_INT(cfg->algorithms[2], JWT_ALG_HS384);
    CHECK_EQ_INT(cfg->max_connections_per_user, 1000000);
    CHECK_EQ_STR(cfg->user_claim, "sub");
    CHECK_EQ_INT(cfg->leeway_s, 0);
    CHECK_EQ_INT(cfg->heartbeat_interval_ms, 100);
    CHECK_EQ_INT(cfg->log_level, MCPGW_LOG_DEBUG);
    CHECK_EQ_STR(cfg->plugins_dir, "/opt/mcpgw/plugins");
    mcpgw_config_free(cfg);
}

TEST(test_listen_forms)
{
    char *errors = NULL;
    mcpgw_config *cfg = load("[server]\nlisten = [::1]:8443\n", &errors);

    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_EQ_STR(cfg->listen_host, "::1");
        CHECK_EQ_INT(cfg->listen_port, 8443);
        mcpgw_config_free(cfg);
    }
    free(errors);
    cfg = load("[server]\nlisten = localhost:0\n", &errors);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_EQ_STR(cfg->listen_host, "localhost");
        CHECK_EQ_INT(cfg->listen_port, 0);
        mcpgw_config_free(cfg);
    }
    free(errors);
    cfg = load("[server]\nlisten = 10.0.0.1:65535\n", &errors);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_EQ_INT(cfg->listen_port, 65535);
        mcpgw_config_free(cfg);
    }
    free(errors);
}

TEST(test_bad_listen)
{
    static const char *const bad[] = {
        "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:80x", "::1:8080", "[::1]8080", "[::1]:", "[]:80", "[1.2.3.4]:80",
        "127.0.0.1:+80", "127.0.0.1:123456",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], line[256];
        snprintf(text, sizeof text, "[server]\nlisten = %s\n", bad[i]);
        snprintf(line, sizeof line, "t.ini:2: bad value for [server] listen: '%s' "
                 "(expected HOST:PORT or [IPV6]:PORT with a port 0..65535)", bad[i]);
        CHECK_ERROR(text, line);
    }
}

TEST(test_payload_suffixes)
{
    static const struct { const char *text; long long want; } cases[] = {
        { "1", 1 }, { "64k", 65536 }, { "64K", 65536 }, { "2m", 2097152 },
        { "2M", 2097152 }, { "1024m", 1073741824 }, { "1048576k", 1073741824 },
        { "1073741824", 1073741824 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128], *errors = NULL;
        mcpgw_config *cfg;

        snprintf(text, sizeof text, "[server]\nmax_payload = %s\n", cases[i].text);
        cfg = load(text, &errors);
        CHECK(cfg != NULL);
        if (cfg)
            CHECK_EQ_INT(cfg->max_payload, cases[i].want);
        mcpgw_config_free(cfg);
        free(errors);
    }
}

TEST(test_bad_payload)
{
    static const char *const bad[] = {
        "abc", "0", "0k", "1025m", "1073741825", "-1", "1g", "k", "12kb", "1.5m",
        "99999999999999999999", "4 k",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], line[256];
        snprintf(text, sizeof text, "\n[server]\n\nmax_payload = %s\n", bad[i]);
        snprintf(line, sizeof line, "t.ini:4: bad value for [server] max_payload: '%s' "
                 "(expected bytes 1..1073741824, optionally with suffix k or m)", bad[i]);
        CHECK_ERROR(text, line);
    }
}

TEST(test_bad_integers)
{
    CHECK_ERROR("[server]\nshutdown_timeout_ms = 3600001\n",
                "t.ini:2: bad value for [server] shutdown_timeout_ms: '3600001' "
                "(expected an integer 0..3600000)");
    CHECK_ERROR("[server]\nshutdown_timeout_ms = -1\n",
                "t.ini:2: bad value for [server] shutdown_timeout_ms: '-1' "
                "(expected an integer 0..3600000)");
    CHECK_ERROR("[server]\nmax_header_bytes = 1023\n",
                "t.ini:2: bad value for [server] max_header_bytes: '1023' "
                "(expected an integer 1024..1048576)");
    CHECK_ERROR("[server]\nmax_header_bytes = 1048577\n",
                "t.ini:2: bad value for [server] max_header_bytes: '1048577' "
                "(expected an integer 1024..1048576)");
    CHECK_ERROR("[auth]\nmax_connections_per_user = 0\n",
                "t.ini:2: bad value for [auth] max_connections_per_user: '0' "
                "(expected an integer 1..1000000)");
    CHECK_ERROR("[auth]\nmax_connections_per_user = 5x\n",
                "t.ini:2: bad value for [auth] max_connections_per_user: '5x' "
                "(expected an integer 1..1000000)");
    CHECK_ERROR("[auth]\nleeway_s = 3601\n",
                "t.ini:2: bad value for [auth] leeway_s: '3601' (expected an integer 0..3600)");
    CHECK_ERROR("[heartbeat]\ninterval_ms = 99\n",
                "t.ini:2: bad value for [heartbeat] interval_ms: '99' "
                "(expected an integer 100..86400000)");
    CHECK_ERROR("[heartbeat]\ninterval_ms = 86400001\n",
                "t.ini:2: bad value for [heartbeat] interval_ms: '86400001' "
                "(expected an integer 100..86400000)");
    CHECK_ERROR("[heartbeat]\ninterval_ms =\n",
                "t.ini:2: bad value for [heartbeat] interval_ms: '' "
                "(expected an integer 100..86400000)");
}

TEST(test_bad_strings)
{
    CHECK_ERROR("[server]\npath = ws\n",
                "t.ini:2: bad value for [server] path: 'ws' (expected a path starting with '/')");
    CHECK_ERROR("[server]\npath =\n",
                "t.ini:2: bad value for [server] path: '' (expected a path starting with '/')");
    CHECK_ERROR("[auth]\njwt_secret =\n",
                "t.ini:2: bad value for [auth] jwt_secret: '' (expected a non-empty secret)");
    CHECK_ERROR("[auth]\nuser_claim =\n",
                "t.ini:2: bad value for [auth] user_claim: '' (expected a claim name)");
    CHECK_ERROR("[log]\nlevel = loud\n",
                "t.ini:2: bad value for [log] level: 'loud' "
                "(expected debug, info, warn, error or off)");
    CHECK_ERROR("[plugins]\ndir =\n",
                "t.ini:2: bad value for [plugins] dir: '' (expected a directory path)");
}

TEST(test_log_levels)
{
    static const struct { const char *name; int level; } cases[] = {
        { "debug", MCPGW_LOG_DEBUG }, { "info", MCPGW_LOG_INFO }, { "warn", MCPGW_LOG_WARN },
        { "warning", MCPGW_LOG_WARN }, { "error", MCPGW_LOG_ERROR }, { "off", MCPGW_LOG_OFF },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64], *errors = NULL;
        mcpgw_config *cfg;

        snprintf(text, sizeof text, "[log]\nlevel = %s\n", cases[i].name);
        cfg = load(text, &errors);
        CHECK(cfg != NULL);
        if (cfg)
            CHECK_EQ_INT(cfg->log_level, cases[i].level);
        mcpgw_config_free(cfg);
        free(errors);
    }
    CHECK_EQ_INT(mcpgw_log_level_from_name("nope"), -1);
    CHECK_EQ_INT(mcpgw_log_level_from_name(NULL), -1);
    CHECK_EQ_STR(mcpgw_log_level_name(MCPGW_LOG_WARN), "warn");
    CHECK_EQ_STR(mcpgw_log_level_name(MCPGW_LOG_ERROR), "error");
}

TEST(test_algorithms)
{
    CHECK_ERROR("[auth]\nalgorithms = none\n", "t.ini:2: algorithm 'none' is never accepted");
    CHECK_ERROR("[auth]\nalgorithms = HS256, none\n",
                "t.ini:2: algorithm 'none' is never accepted");
    CHECK_ERROR("[auth]\nalgorithms = NONE\n", "t.ini:2: algorithm 'none' is never accepted");
    CHECK_ERROR("[auth]\nalgorithms = RS256\n",
                "t.ini: [auth] algorithms lists RS256 but public_key_file is not set");
    CHECK_ERROR("[auth]\nalgorithms = ES512\n",
                "t.ini:2: bad value for [auth] algorithms: 'ES512' (expected HS256, HS384, HS512, RS256, RS384, RS512, ES256 or ES384)");
    CHECK_ERROR("[auth]\nalgorithms = HS256 HS1024\n",
                "t.ini:2: bad value for [auth] algorithms: 'HS1024' (expected HS256, HS384, HS512, RS256, RS384, RS512, ES256 or ES384)");
    CHECK_ERROR("[auth]\nalgorithms = , ,\n",
                "t.ini:2: bad value for [auth] algorithms: ', ,' "
                "(expected a list of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384)");
}

TEST(test_unknown_section_and_key)
{
    CHECK_ERROR("[server]\nlisten = 127.0.0.1:1\nport = 80\n",
                "t.ini:3: unknown key 'port' in [server]");
    CHECK_ERROR("[auth]\nsecret = x\n", "t.ini:2: unknown key 'secret' in [auth]");
    CHECK_ERROR("[heartbeat]\ninterval = 5\n", "t.ini:2: unknown key 'interval' in [heartbeat]");
    CHECK_ERROR("[log]\nfile = x\n", "t.ini:2: unknown key 'file' in [log]");
    CHECK_ERROR("[plugins]\npath = x\n", "t.ini:2: unknown key 'path' in [plugins]");
    CHECK_ERROR("[server]\n= 5\n", "t.ini:2: unknown key '' in [server]");
    CHECK_ERROR("\n\n[servers]\nlisten = 1\n", "t.ini:3: unknown section [servers]");
    CHECK_ERROR("[]\n", "t.ini:1: unknown section []");
    CHECK_ERROR("[handler]\nplugin = x\n", "t.ini:1: unknown section [handler]");
    CHECK_ERROR("listen = 1\n", "t.ini:1: key 'listen' outside any section");
    CHECK_ERROR("[handler.]\nplugin = x\n",
                "t.ini:1: bad handler type in [handler.] "
                "(expected [handler.TYPE] with TYPE of [A-Za-z0-9_.:-])");
    CHECK_ERROR("[handler.a b]\nplugin = x\n",
                "t.ini:1: bad handler type in [handler.a b] "
                "(expected [handler.TYPE] with TYPE of [A-Za-z0-9_.:-])");

    /* The keys of an unknown section are not reported one by one. */
    char *e = errors_of("[nope]\na = 1\nb = 2\n");
    CHECK_EQ_INT(count_lines(e), 1);
    free(e);
}

TEST(test_endpoints)
{
    char *errors = NULL;
    mcpgw_config *cfg = load(
        "[endpoint.everything]\n"
        "path = /mcp/everything\n"
        "plugin = mcp_stdio\n"
        "command = node server.js\n"
        "require_claim = role:a:b\n"
        "[endpoint.legacy]\n"
        "path = /v1\n"
        "protocol = mcpgw\n"
        "subprotocol = v1.example\n", &errors);
    const mcpgw_handler_config *e;

    CHECK(cfg != NULL);
    CHECK(errors == NULL);
    free(errors);
    if (!cfg)
        return;
    CHECK(cfg->handlers == NULL);       /* endpoints are not message types */
    e = mcpgw_config_endpoint(cfg, "/mcp/everything", 15);
    CHECK(e != NULL);
    if (e) {
        CHECK(e->is_endpoint);
        CHECK_EQ_STR(e->type, "everything");
        CHECK_EQ_INT(e->protocol, MCPGW_ENDPOINT_JSONRPC);
        CHECK_EQ_STR(e->plugin, "mcp_stdio");
        CHECK(e->subprotocol == NULL);
        CHECK_EQ_STR(e->claim_name, "role");
        CHECK_EQ_STR(e->claim_value, "a:b");
        /* only the plugin's keys are options */
        CHECK(e->options && strcmp(e->options->key, "command") == 0 && !e->options->next);
        /* Streamable HTTP's defaults */
        CHECK_EQ_INT(e->http, 1);
        CHECK_EQ_INT(e->http_response, MCPGW_HTTP_RESPONSE_AUTO);
        CHECK_EQ_INT(e->session_idle_ms, 600000);
        CHECK(e->replay_bytes == 262144);
    }
    CHECK(mcpgw_config_endpoint(cfg, "/mcp/everythin", 14) == NULL);
    e = mcpgw_config_endpoint(cfg, "/v1", 3);
    CHECK(e && e->protocol == MCPGW_ENDPOINT_MCPGW && strcmp(e->subprotocol, "v1.example") == 0);
    mcpgw_config_free(cfg);

    CHECK_ERROR("[endpoint.a]\nplugin = p\n", "t.ini:2: missing key 'path' in [endpoint.a]");
    CHECK_ERROR("[endpoint.a]\npath = /a\n",
                "t.ini:1: missing key 'plugin' in [endpoint.a] (a jsonrpc endpoint hands its "
                "messages to a plugin)");
    CHECK_ERROR("[endpoint.a]\npath = /a?x=1\nplugin = p\n",
                "t.ini:2: bad value for [endpoint.a] path: '/a?x=1' (expected a path starting "
                "with '/', without query or fragment)");
    CHECK_ERROR("[endpoint.a]\npath = /ws\nplugin = p\n",
                "t.ini:3: [endpoint.a] path /ws is already [server] path");
    CHECK_ERROR("[endpoint.a]\npath = /x\nplugin = p\n[endpoint.b]\npath = /x\nplugin = q\n",
                "t.ini:6: [endpoint.b] path /x is already used by [endpoint.a]");
    CHECK_ERROR("[endpoint.a]\npath = /api/x\nplugin = p\n",
                "t.ini:3: [endpoint.a] path /api/x is taken by the gateway's own HTTP endpoints");
    CHECK_ERROR("[endpoint.a]\npath = /a\nplugin = p\nrequire_claim = role\n",
                "t.ini:4: bad value for [endpoint.a] require_claim: 'role' (expected CLAIM:VALUE)");
    CHECK_ERROR("[endpoint.a]\npath = /a\nplugin = p\nhttp_response = xml\n",
                "t.ini:4: bad value for [endpoint.a] http_response: 'xml' (expected auto, json "
                "or sse)");
    CHECK_ERROR("[endpoint.a]\npath = /a\nplugin = p\nsession_idle_ms = 10\n",
                "t.ini:4: bad value for [endpoint.a] session_idle_ms: '10' (expected an integer "
                "1000..86400000)");
    CHECK_ERROR("[endpoint.a]\npath = /a\nplugin = p\nhttp = maybe\n",
                "t.ini:4: bad value for [endpoint.a] http: 'maybe' (expected on or off)");
    cfg = load("[endpoint.a]\npath = /a\nplugin = p\nhttp = off\nhttp_response = sse\n"
               "session_idle_ms = 5000\nreplay_bytes = 1m\n", &errors);
    CHECK(cfg && !errors);
    free(errors);
    errors = NULL;
    if (cfg) {
        e = mcpgw_config_endpoint(cfg, "/a", 2);
        CHECK(e && !e->http && e->http_response == MCPGW_HTTP_RESPONSE_SSE &&
              e->session_idle_ms == 5000 && e->replay_bytes == 1048576 && !e->options);
        mcpgw_config_free(cfg);
    }
    CHECK_ERROR("[endpoint.a b]\npath = /a\n",
                "t.ini:1: bad endpoint name in [endpoint.a b] (expected [endpoint.NAME] with "
                "NAME of [A-Za-z0-9_-])");
}

TEST(test_handlers)
{
    char *errors = NULL;
    mcpgw_config *cfg = load(
        "[handler.ping]\n"
        "plugin = ping\n"
        "[handler.agent.status:v1-x_y]\n"
        "zeta = 1\n"
        "plugin = agent_status\n"
        "alpha = two words\n"
        "mid = 3\n"
        "[handler.ping]\n"
        "reply = pong\n"
        "[handler.agent.status:v1-x_y]\n"
        "zeta = 10\n", &errors);
    const mcpgw_handler_config *h;
    const mcpgw_kv *kv;

    CHECK(cfg != NULL);
    CHECK(errors == NULL);
    free(errors);
    if (!cfg)
        return;
    /* order of first appearance */
    CHECK(cfg->handlers != NULL);
    if (cfg->handlers) {
        CHECK_EQ_STR(cfg->handlers->type, "ping");
        CHECK(cfg->handlers->next != NULL);
        if (cfg->handlers->next) {
            CHECK_EQ_STR(cfg->handlers->next->type, "agent.status:v1-x_y");
            CHECK(cfg->handlers->next->next == NULL);
        }
    }
    h = mcpgw_config_handler(cfg, "ping");
    CHECK(h != NULL);
    if (h) {
        CHECK_EQ_STR(h->plugin, "ping");
        CHECK_EQ_STR(h->file, "t.ini");
        CHECK_EQ_INT(h->line, 2);
        CHECK(h->options != NULL);
        if (h->options) {
            CHECK_EQ_STR(h->options->key, "reply");
            CHECK_EQ_STR(h->options->value, "pong");
            CHECK_EQ_INT(h->options->line, 9);
            CHECK(h->options->next == NULL);
        }
    }
    h = mcpgw_config_handler(cfg, "agent.status:v1-x_y");
    CHECK(h != NULL);
    if (h) {
        CHECK_EQ_STR(h->plugin, "agent_status");
        CHECK_EQ_INT(h->line, 5);
        kv = h->options;
        /* zeta keeps its first position but takes the later value and line */
        CHECK(kv && strcmp(kv->key, "zeta") == 0 && strcmp(kv->value, "10") == 0 &&
              kv->line == 11);
        kv = kv ? kv->next : NULL;
        CHECK(kv && strcmp(kv->key, "alpha") == 0 && strcmp(kv->value, "two words") == 0);
        kv = kv ? kv->next : NULL;
        CHECK(kv && strcmp(kv->key, "mid") == 0 && strcmp(kv->value, "3") == 0);
        CHECK(kv && kv->next == NULL);
    }
    CHECK(mcpgw_config_handler(cfg, "agent") == NULL);
    mcpgw_config_free(cfg);
}

TEST(test_handler_errors)
{
    CHECK_ERROR("[log]\nlevel = info\n[handler.ping]\nreply = pong\n",
                "t.ini:3: missing key 'plugin' in [handler.ping]");
    CHECK_ERROR("[handler.ping]\n", "t.ini:1: missing key 'plugin' in [handler.ping]");
    CHECK_ERROR("[handler.ping]\nplugin = ../evil\n",
                "t.ini:2: bad value for [handler.ping] plugin: '../evil' "
                "(expected a plugin name of [A-Za-z0-9_-])");
    CHECK_ERROR("[handler.ping]\nplugin =\n",
                "t.ini:2: bad value for [handler.ping] plugin: '' "
                "(expected a plugin name of [A-Za-z0-9_-])");
    CHECK_ERROR("[handler.ping]\nplugin = ping\n= x\n", "t.ini:3: empty key in [handler.ping]");
}

TEST(test_syntax_errors)
{
    CHECK_ERROR("[server]\nlisten = 127.0.0.1:1\njust some words\n",
                "t.ini:3: syntax error (expected [section], key = value or a comment)");
    CHECK_ERROR("[server\n", "t.ini:1: syntax error (section header without ']')");
    /* ';' after whitespace starts a comment, so the ']' is never seen */
    CHECK_ERROR("\n[server ;]\n", "t.ini:2: syntax error (section header without ']')");
    CHECK_ERROR("[server]\nlisten = 127.0.0.1:1\n    path = /x\n",
                "t.ini:3: indented line continues the value of 'listen'; multi-line values "
                "are not supported (remove the indentation)");

    /* every syntax error is reported, not only inih's first one */
    char *e = errors_of("[log]\noops\nlevel = info\nagain\n[x\n");
    CHECK(e != NULL);
    CHECK(has_line(e, "t.ini:2: syntax error (expected [section], key = value or a comment)"));
    CHECK(has_line(e, "t.ini:4: syntax error (expected [section], key = value or a comment)"));
    CHECK(has_line(e, "t.ini:5: syntax error (section header without ']')"));
    CHECK_EQ_INT(count_lines(e), 3);
    free(e);
}

TEST(test_long_lines_and_oddities)
{
    char text[1024], *errors = NULL;
    mcpgw_config *cfg;

    /* a line longer than inih's buffer is an error on its own line only */
    memset(text, 0, sizeof text);
    strcpy(text, "[auth]\njwt_secret = ");
    memset(text + strlen(text), 'x', 400);
    strcat(text, "\nuser_claim = sub\n");
    errors = errors_of(text);
    CHECK(errors != NULL);
    CHECK(errors && strncmp(errors, "t.ini:2: line too long", 22) == 0);
    CHECK_EQ_INT(count_lines(errors), 1);
    free(errors);

    /* CRLF line ends, a UTF-8 BOM, no newline at the end, ':' separators */
    cfg = load("\xEF\xBB\xBF[log]\r\nlevel: warn\r\n[server]\r\npath=/x", &errors);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_EQ_INT(cfg->log_level, MCPGW_LOG_WARN);
        CHECK_EQ_STR(cfg->path, "/x");
    }
    mcpgw_config_free(cfg);
    free(errors);

    /* later keys in the same text win */
    cfg = load("[log]\nlevel = error\n[log]\nlevel = debug\n", &errors);
    CHECK(cfg && cfg->log_level == MCPGW_LOG_DEBUG);
    mcpgw_config_free(cfg);
    free(errors);
}

TEST(test_multiple_errors)
{
    char *e = errors_of(
        "[server]\n"                    /* 1 */
        "listen = nowhere\n"            /* 2 */
        "max_payload = huge\n"          /* 3 */
        "[auth]\n"                      /* 4 */
        "algorithms = none\n"           /* 5 */
        "[bogus]\n"                     /* 6 */
        "[handler.x]\n"                 /* 7 */
        "opt = 1\n");                   /* 8 */

    CHECK(e != NULL);
    CHECK_EQ_INT(count_lines(e), 5);
    CHECK(e && strncmp(e, "t.ini:2: bad value for [server] listen: 'nowhere'", 49) == 0);
    CHECK(has_line(e, "t.ini:3: bad value for [server] max_payload: 'huge' "
                   "(expected bytes 1..1073741824, optionally with suffix k or m)"));
    CHECK(has_line(e, "t.ini:5: algorithm 'none' is never accepted"));
    CHECK(has_line(e, "t.ini:6: unknown section [bogus]"));
    CHECK(has_line(e, "t.ini:7: missing key 'plugin' in [handler.x]"));
    free(e);
}

TEST(test_env_secret)
{
    char *errors = NULL;
    mcpgw_config *cfg;

    setenv("MCPGW_JWT_SECRET", "from-env", 1);
    cfg = load("[auth]\njwt_secret = from-file\n", &errors);
    CHECK(cfg && cfg->jwt_secret && strcmp(cfg->jwt_secret, "from-env") == 0);
    mcpgw_config_free(cfg);
    free(errors);

    cfg = load("", &errors);
    CHECK(cfg && cfg->jwt_secret && strcmp(cfg->jwt_secret, "from-env") == 0);
    mcpgw_config_free(cfg);
    free(errors);

    /* the empty variable does not count */
    setenv("MCPGW_JWT_SECRET", "", 1);
    cfg = load("[auth]\njwt_secret = from-file\n", &errors);
    CHECK(cfg && cfg->jwt_secret && strcmp(cfg->jwt_secret, "from-file") == 0);
    mcpgw_config_free(cfg);
    free(errors);

    unsetenv("MCPGW_JWT_SECRET");
    cfg = load("[auth]\njwt_secret = from-file\n", &errors);
    CHECK(cfg && cfg->jwt_secret && strcmp(cfg->jwt_secret, "from-file") == 0);
    mcpgw_config_free(cfg);
    free(errors);
}

TEST(test_plugins_dir_resolution)
{
    char *errors = NULL, *cwd = getcwd(NULL, 0), want[4096];
    mcpgw_config *cfg;

    cfg = mcpgw_config_load_string("/etc/mcpgw/conf.d/10.ini", "[plugins]\ndir = plugins\n",
                                   &errors);
    CHECK(cfg && strcmp(cfg->plugins_dir, "/etc/mcpgw/conf.d/plugins") == 0);
    mcpgw_config_free(cfg);
    free(errors);

    cfg = mcpgw_config_load_string("/etc/mcpgw/conf.d/10.ini", "[plugins]\ndir = ./p/./q/\n",
                                   &errors);
    CHECK(cfg && strcmp(cfg->plugins_dir, "/etc/mcpgw/conf.d/p/q") == 0);
    mcpgw_config_free(cfg);
    free(errors);

    cfg = mcpgw_config_load_string("/etc/mcpgw/conf.d/10.ini", "[plugins]\ndir = ../lib\n",
                                   &errors);
    CHECK(cfg && strcmp(cfg->plugins_dir, "/etc/mcpgw/conf.d/../lib") == 0);
    mcpgw_config_free(cfg);
    free(errors);

    /* a relative file name resolves against the working directory */
    cfg = mcpgw_config_load_string("conf/x.ini", "[plugins]\ndir = p\n", &errors);
    snprintf(want, sizeof want, "%s/conf/p", cwd && strcmp(cwd, "/") ? cwd : "");
    CHECK(cfg != NULL);
    if (cfg)
        CHECK_EQ_STR(cfg->plugins_dir, want);
    mcpgw_config_free(cfg);
    free(errors);

    cfg = mcpgw_config_load_string("x.ini", "[plugins]\ndir = p\n", &errors);
    snprintf(want, sizeof want, "%s/p", cwd && strcmp(cwd, "/") ? cwd : "");
    CHECK(cfg != NULL);
    if (cfg)
        CHECK_EQ_STR(cfg->plugins_dir, want);
    mcpgw_config_free(cfg);
    free(errors);
    free(cwd);
}

TEST(test_directory)
{
    char *dir = make_tmpdir(), *errors = NULL, sub[512], want[600];
    mcpgw_config *cfg;

    write_file(dir, "20-b.ini",
               "[log]\nlevel = warn\n"
               "[handler.ping]\nextra = 2\nplugin = ping2\n");
    write_file(dir, "10-a.ini",
               "[log]\nlevel = debug\n"
               "[server]\npath = /a\n"
               "[plugins]\ndir = plugins\n"
               "[handler.ping]\nplugin = ping\nmode = a\n"
               "[handler.echo]\nplugin = echo\n");
    write_file(dir, "30-c.ini.disabled", "[log]\nlevel = error\n");
    write_file(dir, "README", "not an ini file\n");
    write_file(dir, ".hidden.ini", "[log]\nlevel = error\n");
    snprintf(sub, sizeof sub, "%s/40-sub.ini", dir);
    CHECK(mkdir(sub, 0700) == 0);
    write_file(sub, "50-deep.ini", "[log]\nlevel = error\n");

    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg != NULL);
    CHECK(errors == NULL);
    if (errors)
        fprintf(stderr, "  unexpected errors:\n%s\n", errors);
    free(errors);
    if (cfg) {
        const mcpgw_handler_config *h = mcpgw_config_handler(cfg, "ping");

        CHECK_EQ_INT(cfg->log_level, MCPGW_LOG_WARN);
        CHECK_EQ_STR(cfg->path, "/a");
        snprintf(want, sizeof want, "%s/plugins", dir);
        CHECK_EQ_STR(cfg->plugins_dir, want);
        CHECK(cfg->handlers && strcmp(cfg->handlers->type, "ping") == 0);
        CHECK(h != NULL);
        if (h) {
            snprintf(want, sizeof want, "%s/20-b.ini", dir);
            CHECK_EQ_STR(h->plugin, "ping2");
            CHECK_EQ_STR(h->file, want);
            CHECK_EQ_INT(h->line, 5);
            CHECK(h->options && strcmp(h->options->key, "mode") == 0);
            CHECK(h->options && h->options->next &&
                  strcmp(h->options->next->key, "extra") == 0 &&
                  strcmp(h->options->next->value, "2") == 0);
        }
        CHECK(mcpgw_config_handler(cfg, "echo") != NULL);
    }
    mcpgw_config_free(cfg);

    /* errors in several files: all of them, with the file's path */
    write_file(dir, "15-bad.ini", "[log]\nlevel = chatty\n");
    write_file(dir, "25-bad.ini", "\n[server]\nport = 1\n");
    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg == NULL);
    CHECK_EQ_INT(count_lines(errors), 2);
    snprintf(want, sizeof want, "%s/15-bad.ini:2: bad value for [log] level: 'chatty' "
             "(expected debug, info, warn, error or off)", dir);
    CHECK(errors && has_line(errors, want));
    snprintf(want, sizeof want, "%s/25-bad.ini:3: unknown key 'port' in [server]", dir);
    CHECK(errors && has_line(errors, want));
    free(errors);

    /* a handler missing its plugin is reported at its first header */
    unlink(strcat(strcpy(want, dir), "/15-bad.ini"));
    unlink(strcat(strcpy(want, dir), "/25-bad.ini"));
    write_file(dir, "05-first.ini", "[log]\nlevel = info\n\n[handler.lonely]\nx = 1\n");
    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s/05-first.ini:4: missing key 'plugin' in [handler.lonely]",
             dir);
    CHECK(errors && has_line(errors, want));
    mcpgw_config_free(cfg);
    free(errors);

    /* ... and a later file may supply it */
    write_file(dir, "99-late.ini", "[handler.lonely]\nplugin = lonely\n");
    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg != NULL);
    CHECK(errors == NULL);
    free(errors);
    mcpgw_config_free(cfg);

    remove_tree(dir);
    free(dir);
}

TEST(test_directory_errors)
{
    char *dir = make_tmpdir(), *errors = NULL, want[600], slashed[600];
    mcpgw_config *cfg;

    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s: no *.ini files", dir);
    CHECK(errors && strcmp(errors, want) == 0);
    free(errors);

    write_file(dir, "notes.txt", "[log]\n");
    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg == NULL);
    CHECK(errors && strcmp(errors, want) == 0);
    free(errors);

    /* a trailing slash does not double in the file names */
    write_file(dir, "a.ini", "[log]\nlevel = nope\n");
    snprintf(slashed, sizeof slashed, "%s/", dir);
    cfg = mcpgw_config_load(slashed, &errors);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s/a.ini:2: bad value for [log] level: 'nope' "
             "(expected debug, info, warn, error or off)", dir);
    CHECK(errors && strcmp(errors, want) == 0);
    free(errors);

    remove_tree(dir);
    cfg = mcpgw_config_load(dir, &errors);
    CHECK(cfg == NULL);
    snprintf(want, sizeof want, "%s: cannot open directory: ", dir);
    CHECK(errors && strncmp(errors, want, strlen(want)) == 0);
    free(errors);
    free(dir);
}

TEST(test_log_event)
{
    char path[] = "/tmp/mcpgw-test-log-XXXXXX", buf[1024];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    mcpgw_log log = { .level = MCPGW_LOG_INFO };
    json_t *fields;
    FILE *f;
    size_t n;

    CHECK(fd >= 0 && saved >= 0);
    if (fd < 0 || saved < 0)
        return;
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    fields = json_pack("{s:s, s:i}", "user", "alice", "conn", 7);
    mcpgw_log_event(&log, MCPGW_LOG_INFO, "connected", fields, "2026-11-25T16:00:00.123Z");
    mcpgw_log_event(&log, MCPGW_LOG_DEBUG, "dropped", json_pack("{s:i}", "x", 1), NULL);
    mcpgw_log_event(&log, MCPGW_LOG_ERROR, "own_ts",
                    json_pack("{s:s, s:s}", "timestamp", "T", "after", "a"), NULL);
    mcpgw_log_event(&log, MCPGW_LOG_WARN, "now", NULL, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);

    f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    {
        static const char want[] =
            "{\"level\":\"info\",\"event\":\"connected\",\"user\":\"alice\",\"conn\":7,"
            "\"timestamp\":\"2026-11-25T16:00:00.123Z\"}\n"
            "{\"level\":\"error\",\"event\":\"own_ts\",\"timestamp\":\"T\",\"after\":\"a\"}\n"
            "{\"level\":\"warn\",\"event\":\"now\",\"timestamp\":\"";
        CHECK(strncmp(buf, want, sizeof want - 1) == 0);
    }
    {
        /* ...T..:..:..\.[0-9]{3}Z"}\n at the end */
        const char *ts = strstr(buf, "\"event\":\"now\",\"timestamp\":\"");
        CHECK(ts != NULL);
        if (ts) {
            ts += strlen("\"event\":\"now\",\"timestamp\":\"");
            CHECK_EQ_INT(strlen(ts), 24 + 3);
            CHECK(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
            CHECK(strcmp(ts + 24, "\"}\n") == 0);
        }
    }
}

int main(void)
{
    unsetenv("MCPGW_JWT_SECRET");
    RUN(test_defaults);
    RUN(test_every_key);
    RUN(test_listen_forms);
    RUN(test_bad_listen);
    RUN(test_payload_suffixes);
    RUN(test_bad_payload);
    RUN(test_bad_integers);
    RUN(test_bad_strings);
    RUN(test_log_levels);
    RUN(test_algorithms);
    RUN(test_unknown_section_and_key);
    RUN(test_handlers);
    RUN(test_endpoints);
    RUN(test_handler_errors);
    RUN(test_syntax_errors);
    RUN(test_long_lines_and_oddities);
    RUN(test_multiple_errors);
    RUN(test_env_secret);
    RUN(test_plugins_dir_resolution);
    RUN(test_directory);
    RUN(test_directory_errors);
    RUN(test_log_event);
    return UNIT_SUMMARY();
}
