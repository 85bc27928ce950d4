/*
 * test_wss.c - wss:// against the real gateway's TLS listener, with a
 * throw-away self-signed certificate made by the openssl command: trusted
 * through ca_file, refused by default (not in the system store), refused on
 * a host name mismatch, accepted with tls_insecure; and mcpgw-cli --cafile.
 * Skipped (and said so) when the openssl command or gateway TLS is missing.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "unit.h"
#include "gw.h"

static struct event_base *base;
static gw G;
static char *token;
static char dir[256], cert[320], key[320], wrong_cert[320], wrong_key[320];

static int sh(const char *cmd)
{
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

static int make_cert(const char *crt, const char *k, const char *cn, const char *san)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj '/CN=%s' -addext 'subjectAltName=%s' -keyout '%s' -out '%s' "
             ">/dev/null 2>&1", cn, san, k, crt);
    return sh(cmd);
}

static int settled(void *arg)
{
    evlog *l = arg;
    return evlog_count(l, MCPGW_CLIENT_EV_CONNECTED) > 0
        || evlog_count(l, MCPGW_CLIENT_EV_DISCONNECTED) > 0;
}

static int got_pong(void *arg)
{
    evlog *l = arg;
    size_t i;
    json_t *m;
    json_array_foreach(l->messages, i, m)
        if (strcmp(json_string_value(json_object_get(m, "type")) ?: "", "pong") == 0)
            return 1;
    return 0;
}

/* Connects with the given options; returns the evlog state after settling. */
static void attempt(const char *url, mcpgw_client_opts *o, evlog *l, int ping)
{
    mcpgw_client *c;
    char err[256];

    evlog_init(l);
    o->token = token;
    o->reconnect = 0;
    c = mcpgw_client_new(base, url, o, evlog_cb, l, err, sizeof(err));
    CHECK(c != NULL);
    if (!c)
        return;
    mcpgw_client_connect(c);
    CHECK(run_until(base, settled, l, 5000));
    if (ping && mcpgw_client_is_connected(c)) {
        json_t *m = json_pack("{s:s, s:s}", "type", "ping", "id", "tls");
        mcpgw_client_send(c, m);
        json_decref(m);
        CHECK(run_until(base, got_pong, l, 3000));
    }
    mcpgw_client_free(c);
}

static int error_has(const evlog *l, const char *what)
{
    int i;
    for (i = 0; i < l->n; i++)
        if (l->e[i].type == MCPGW_CLIENT_EV_DISCONNECTED && strstr(l->e[i].reason, what))
            return 1;
    return 0;
}

static char url_ip[128];

TEST(wss_with_ca_file)
{
    mcpgw_client_opts o;
    evlog l;

    mcpgw_client_opts_init(&o);
    o.ca_file = cert;
    attempt(url_ip, &o, &l, 1);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_CONNECTED), 1);
    evlog_free(&l);
}

TEST(wss_verifies_by_default)
{
    mcpgw_client_opts o;
    evlog l;

    mcpgw_client_opts_init(&o);         /* system store: our self-signed cert is unknown */
    attempt(url_ip, &o, &l, 0);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_CONNECTED), 0);
    CHECK(error_has(&l, "certificate verification failed"));
    evlog_free(&l);
}

TEST(wss_checks_the_host_name)
{
    mcpgw_client_opts o;
    evlog l;

    /* trusted, but issued for other.example, not 127.0.0.1 */
    mcpgw_client_opts_init(&o);
    o.ca_file = wrong_cert;
    gw_stop(&G, SIGTERM);
    snprintf(G.extra, sizeof(G.extra), "[tls]\ncert = %s\nkey = %s\n", wrong_cert, wrong_key);
    CHECK(gw_start(&G) == 0);
    attempt(url_ip, &o, &l, 0);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_CONNECTED), 0);
    CHECK(error_has(&l, "certificate verification failed"));
    evlog_free(&l);
    /* tls_insecure skips the checks */
    mcpgw_client_opts_init(&o);
    o.tls_insecure = 1;
    attempt(url_ip, &o, &l, 1);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_CONNECTED), 1);
    evlog_free(&l);
    gw_stop(&G, SIGTERM);
    snprintf(G.extra, sizeof(G.extra), "[tls]\ncert = %s\nkey = %s\n", cert, key);
    CHECK(gw_start(&G) == 0);
    snprintf(url_ip, sizeof(url_ip), "wss://127.0.0.1:%d/ws", G.port);
}

TEST(cli_with_cafile)
{
    char cmd[2048], out[512] = "";
    FILE *p;
    size_t n;

    snprintf(cmd, sizeof(cmd),
             "echo '{\"type\":\"ping\",\"id\":\"c\"}' | '%s/tools/mcpgw-cli' -t '%s' --cafile '%s' "
             "-n 1 '%s'", gw_builddir(), token, cert, url_ip);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p)
        return;
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(p), 0);
    CHECK(strstr(out, "\"type\":\"pong\",\"id\":\"c\"") != NULL);
    snprintf(cmd, sizeof(cmd),
             "echo '{}' | '%s/tools/mcpgw-cli' -t '%s' -n 1 '%s' 2>/dev/null", gw_builddir(), token,
             url_ip);
    CHECK(WEXITSTATUS(system(cmd)) == 1);
}

int main(void)
{
    char cmd[1200];

    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    snprintf(dir, sizeof(dir), "/tmp/mcpgw-client-tls-XXXXXX");
    if (!mkdtemp(dir) || sh("openssl version >/dev/null 2>&1") != 0) {
        printf("  (skipped: no openssl command to make a test certificate)\n");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(wrong_cert, sizeof(wrong_cert), "%s/wrong.pem", dir);
    snprintf(wrong_key, sizeof(wrong_key), "%s/wrong-key.pem", dir);
    if (make_cert(cert, key, "localhost", "DNS:localhost,IP:127.0.0.1") != 0
        || make_cert(wrong_cert, wrong_key, "other.example", "DNS:other.example") != 0) {
        printf("  (skipped: could not make a test certificate)\n");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    snprintf(cmd, sizeof(cmd), "[tls]\ncert = %s\nkey = %s\n", cert, key);
    if (gw_init(&G, cmd) != 0 || gw_start(&G) != 0) {
        /* A gateway without [tls] support refuses the configuration. */
        printf("  (skipped: the gateway does not start with [tls] cert/key)\n");
        gw_cleanup(&G);
        printf("0 passed, 0 failed\n");
        return 0;
    }
    token = gw_token(&G, "tls-test");
    snprintf(url_ip, sizeof(url_ip), "wss://127.0.0.1:%d/ws", G.port);
    RUN(wss_with_ca_file);
    RUN(wss_verifies_by_default);
    RUN(wss_checks_the_host_name);
    RUN(cli_with_cafile);
    gw_cleanup(&G);
    free(token);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    event_base_free(base);
    return UNIT_SUMMARY();
}
