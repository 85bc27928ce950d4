/*
 * main.c - the mcpgw command line: parse options, load the configuration,
 * then either check it (-t), check and print it (-T), mint a development
 * token, or run the server.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/thread.h>
#include <jwt.h>

#include "config.h"
#include "auth.h"
#include "log.h"
#include "plugin_loader.h"
#include "server.h"
#include "supervisor.h"

#ifndef MCPGW_CONF_DIR
#define MCPGW_CONF_DIR "/etc/mcpgw/conf.d"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mcpgw [-c DIR] [-t | -T] [--mint-token USER [--ttl SECONDS] [--claim NAME=VALUE]]\n"
            "\n"
            "A WebSocket gateway for AI-agent servers: JWT auth, heartbeat, and\n"
            "message handlers loaded from plugins, configured by DIR/*.ini.\n"
            "\n"
            "  -c, --config DIR      configuration directory (default %s)\n"
            "  -t, --test            check the configuration and exit (0 = valid)\n"
            "  -T, --test-dump       check it, then print the effective configuration,\n"
            "                        each value with its file:line (secrets redacted)\n"
            "      --mint-token USER print a development token for USER, signed with\n"
            "                        the configured HS secret, and exit\n"
            "      --ttl SECONDS     lifetime of a minted token (default 3600)\n"
            "      --claim NAME=VALUE  add a claim to the minted token (e.g. role=admin)\n"
            "  -h, --help            show this help\n"
            "  -V, --version         show the version\n"
            "\n"
            "Signals: SIGTERM/SIGINT close every client with 1001 and exit; a second\n"
            "one exits at once. SIGHUP reloads the configuration.\n",
            MCPGW_CONF_DIR);
}

static int mint_token(const mcpgw_config *cfg, const char *user, long ttl, const char *claim)
{
    char name[128] = "";
    const char *value = NULL;
    int alg = -1;
    char *token;

    for (int i = 0; i < cfg->n_algorithms; i++)
        if (cfg->algorithms[i] >= JWT_ALG_HS256 && cfg->algorithms[i] <= JWT_ALG_HS512) {
            alg = cfg->algorithms[i];
            break;
        }
    if (alg < 0 || !cfg->jwt_secret || !*cfg->jwt_secret) {
        fprintf(stderr, "mcpgw: minting needs an HS algorithm and a jwt_secret in the configuration\n");
        return 1;
    }
    if (claim) {
        const char *eq = strchr(claim, '=');
        if (!eq || eq == claim || (size_t)(eq - claim) >= sizeof(name)) {
            fprintf(stderr, "mcpgw: --claim needs NAME=VALUE\n");
            return 2;
        }
        memcpy(name, claim, (size_t)(eq - claim));
        name[eq - claim] = '\0';
        value = eq + 1;
    }
    token = mcpgw_auth_mint_claim(alg, (const unsigned char *)cfg->jwt_secret,
                                  strlen(cfg->jwt_secret), user, ttl, time(NULL),
                                  claim ? name : NULL, value);
    if (!token) {
        fprintf(stderr, "mcpgw: could not mint a token\n");
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "test", no_argument, NULL, 't' },
        { "test-dump", no_argument, NULL, 'T' },
        { "mint-token", required_argument, NULL, 'm' },
        { "ttl", required_argument, NULL, 'L' },
        { "claim", required_argument, NULL, 'C' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = MCPGW_CONF_DIR;
    const char *mint_user = NULL;
    const char *mint_claim = NULL;
    long ttl = 3600;
    int test_only = 0, dump = 0;
    int opt, rc = 1;
    char *errors = NULL;
    mcpgw_config *cfg = NULL;
    mcpgw_gateway gw;

    while ((opt = getopt_long(argc, argv, "c:tThV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': dir = optarg; break;
        case 't': test_only = 1; break;
        case 'T': test_only = dump = 1; break;
        case 'm': mint_user = optarg; break;
        case 'C': mint_claim = optarg; break;
        case 'L': {
            char *end;
            ttl = strtol(optarg, &end, 10);
            if (*end || ttl <= 0) {
                fprintf(stderr, "mcpgw: --ttl needs a positive number of seconds\n");
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("mcpgw %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
                         MCPGW_PLUGIN_ABI_MAJOR, MCPGW_PLUGIN_ABI_MINOR);
                  return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    cfg = mcpgw_config_load(dir, &errors);
    if (!cfg) {
        fprintf(stderr, "%s", errors ? errors : "mcpgw: cannot load the configuration\n");
        if (errors && errors[0] && errors[strlen(errors) - 1] != '\n')
            fputc('\n', stderr);
        free(errors);
        return 1;
    }

    if (test_only) {
        char errs[4096];
        int problems = mcpgw_plugins_check_files(cfg, errs, sizeof(errs));
        /* the files are fine: let each plugin judge its section's values */
        if (problems == 0 && mcpgw_server_check_plugins(cfg) != 0)
            problems++;
        if (mcpgw_config_needs_secret(cfg) && (!cfg->jwt_secret || !*cfg->jwt_secret)) {
            fprintf(stderr, "%s: no JWT secret: set [auth] jwt_secret or MCPGW_JWT_SECRET\n", dir);
            problems++;
        }
        fputs(errs, stderr);
        if (problems == 0 && dump) {
            /* as nginx -T: the verdict on stderr, the configuration on stdout */
            fprintf(stderr, "mcpgw: configuration %s is valid\n", dir);
            if (mcpgw_config_dump(cfg, stdout) != 0) {
                fprintf(stderr, "mcpgw: cannot write the configuration\n");
                problems++;
            }
        } else if (problems == 0) {
            printf("mcpgw: configuration %s is valid\n", dir);
        }
        rc = problems ? 1 : 0;
        goto out;
    }
    if (mint_user) {
        rc = mint_token(cfg, mint_user, ttl, mint_claim);
        goto out;
    }

    /* host->post() may be called from plugin threads. */
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "mcpgw: libevent has no pthreads support\n");
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    mcpgw_config_scrub_env();
    /* The gateway owns the configuration from here on (a reload replaces
     * it); the supervisor runs it with [server] workers processes. */
    if (mcpgw_gateway_init(&gw, cfg, dir) != 0) {
        mcpgw_gateway_free(&gw);
        return 1;
    }
    rc = mcpgw_supervisor_run(&gw, argv);
    mcpgw_gateway_free(&gw);
    return rc;
out:
    mcpgw_config_free(cfg);
    return rc;
}
