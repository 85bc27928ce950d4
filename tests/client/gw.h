/*
 * gw.h - helpers for the client library's live tests: run the real gateway
 * binary ($MCPGW_BUILDDIR/core/mcpgw, default ./core/mcpgw) on a temporary
 * configuration directory, mint tokens, drive an event_base until a
 * condition holds (always bounded by a timeout), and record client events.
 *
 * Ownership: a gw owns its temporary directory (removed by gw_cleanup) and
 * its child process (stopped by gw_stop / gw_cleanup).
 */
#ifndef MCPGW_TEST_GW_H
#define MCPGW_TEST_GW_H

#include <sys/types.h>
#include <event2/event.h>
#include <mcpgw/client.h>

#define GW_SECRET "test-secret"

typedef struct gw {
    pid_t pid;
    int port;
    int starts;
    char dir[256];          /* temporary conf dir (also holds logs and plugin links) */
    char extra[4096];       /* extra INI text appended to the configuration */
} gw;

const char *gw_builddir(void);
/* Creates the conf dir; extra_ini (may be NULL) is appended to the defaults
 * (listen 127.0.0.1:0, ping/batch/agent_status handlers, async_echo as type
 * "slow" when the test plugin is built, heartbeat 30 s, log info). */
int gw_init(gw *g, const char *extra_ini);
/* Starts the gateway (on g->port if non-zero, else any) and waits for its
 * server_listening line; 0 or -1. */
int gw_start(gw *g);
void gw_stop(gw *g, int sig);       /* SIGTERM (graceful) or SIGKILL */
void gw_cleanup(gw *g);
int gw_has_async_echo(void);
void gw_url(const gw *g, char *buf, size_t cap);
/* A token for user, minted by `mcpgw --mint-token` (malloc'd). */
char *gw_token(gw *g, const char *user);

/* Runs the loop until pred(arg) is true or timeout_ms pass; 1 if pred held. */
int run_until(struct event_base *base, int (*pred)(void *), void *arg, int timeout_ms);
void run_for(struct event_base *base, int ms);

/* An event recorder usable as a client's event callback (arg = evlog *). */
#define EVLOG_MAX 1024
typedef struct evlog {
    int n;
    struct {
        mcpgw_client_event_type type;
        int code, will_reconnect, attempt, http_status;
        unsigned delay_ms;
        char reason[128];
        char body[256];
        char text[512];
    } e[EVLOG_MAX];
    json_t *messages;       /* every MESSAGE, in order */
} evlog;

void evlog_init(evlog *l);
void evlog_free(evlog *l);
void evlog_cb(mcpgw_client *c, const mcpgw_client_event *ev, void *arg);
int evlog_count(const evlog *l, mcpgw_client_event_type t);
int evlog_last(const evlog *l, mcpgw_client_event_type t);     /* index or -1 */
/* Messages of this "type" whose "id" field values, in order, joined by ','. */
void evlog_ids(const evlog *l, const char *type, char *out, size_t cap);

#endif
