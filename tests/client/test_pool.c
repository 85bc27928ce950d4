/*
 * test_pool.c - the connection pool against the real gateway: every member
 * connects, sends spread over members, failover when one member's
 * connection is killed by the gateway (a message over max_payload gets close
 * 1009) while the others carry the traffic, the member's own reconnect, and
 * queueing when every member is down.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "gw.h"

#define N 3

static struct event_base *base;
static gw G;
static char url[128];
static char *token;
static evlog logs[N];

static void on_event(mcpgw_pool *p, int i, const mcpgw_client_event *ev, void *arg)
{
    (void)p;
    (void)arg;
    if (i >= 0 && i < N)
        evlog_cb(NULL, ev, &logs[i]);
}

static int pongs(void)
{
    int i, n = 0;
    size_t k;
    json_t *m;
    for (i = 0; i < N; i++)
        json_array_foreach(logs[i].messages, k, m)
            n += strcmp(json_string_value(json_object_get(m, "type")) ?: "", "pong") == 0;
    return n;
}

static int pongs_ge(void *arg)
{
    return pongs() >= *(int *)arg;
}

static int all_connected(void *arg)
{
    return mcpgw_pool_connected(arg) == N;
}

static int all_connected2(void *arg)
{
    return mcpgw_pool_connected(arg) == mcpgw_pool_size(arg);
}

static int member0_down(void *arg)
{
    (void)arg;
    return evlog_count(&logs[0], MCPGW_CLIENT_EV_DISCONNECTED) >= 1;
}

static int member0_back(void *arg)
{
    (void)arg;
    return evlog_count(&logs[0], MCPGW_CLIENT_EV_CONNECTED) >= 2;
}

static int ping(mcpgw_pool *p, int seq, int *idx)
{
    json_t *m = json_pack("{s:s, s:i}", "type", "ping", "id", seq);
    int rc = mcpgw_pool_send(p, m, idx);
    json_decref(m);
    return rc;
}

TEST(pool_spreads_and_fails_over)
{
    mcpgw_client_opts o;
    mcpgw_pool *p;
    int i, used[N] = { 0 }, want, idx, d;
    char *big;

    for (i = 0; i < N; i++)
        evlog_init(&logs[i]);
    mcpgw_client_opts_init(&o);
    o.token = token;
    o.reconnect_base_ms = 400;      /* member 0 stays away long enough to see failover */
    o.reconnect_jitter = 0;
    p = mcpgw_pool_new(base, url, N, &o, on_event, NULL, NULL, 0);
    CHECK(p != NULL);
    CHECK_EQ_INT(mcpgw_pool_size(p), N);
    CHECK(run_until(base, all_connected, p, 3000));
    CHECK_EQ_INT(mcpgw_pool_connected(p), N);

    for (i = 0; i < 30; i++) {
        CHECK_EQ_INT(ping(p, i, &idx), MCPGW_SEND_OK);
        if (idx >= 0 && idx < N)
            used[idx]++;
    }
    for (i = 0; i < N; i++)
        CHECK(used[i] > 0);
    want = 30;
    CHECK(run_until(base, pongs_ge, &want, 3000));

    /* The gateway kills member 0: a message over max_payload closes it 1009. */
    big = malloc(5000);
    memset(big, 'x', 5000);
    big[0] = '"';
    big[4999] = '"';
    CHECK_EQ_INT(mcpgw_client_send_text(mcpgw_pool_member(p, 0), big, 5000), MCPGW_SEND_OK);
    free(big);
    CHECK(run_until(base, member0_down, NULL, 3000));
    d = evlog_last(&logs[0], MCPGW_CLIENT_EV_DISCONNECTED);
    CHECK_EQ_INT(logs[0].e[d].code, 1009);
    CHECK_EQ_INT(logs[0].e[d].will_reconnect, 1);
    CHECK_EQ_INT(mcpgw_pool_connected(p), N - 1);

    memset(used, 0, sizeof(used));
    for (i = 100; i < 120; i++) {
        CHECK_EQ_INT(ping(p, i, &idx), MCPGW_SEND_OK);
        if (idx >= 0 && idx < N)
            used[idx]++;
    }
    CHECK_EQ_INT(used[0], 0);
    CHECK(used[1] > 0 && used[2] > 0);
    want = 50;
    CHECK(run_until(base, pongs_ge, &want, 3000));
    CHECK_EQ_INT(mcpgw_client_queue_size(mcpgw_pool_member(p, 0)), 0);

    /* member 0 comes back on its own schedule */
    CHECK(run_until(base, member0_back, NULL, 3000));
    CHECK(run_until(base, all_connected, p, 1000));
    CHECK(evlog_count(&logs[1], MCPGW_CLIENT_EV_DISCONNECTED) == 0);

    /* every member down: sends are queued (spread by queue size), then delivered */
    gw_stop(&G, SIGKILL);
    run_for(base, 100);
    CHECK_EQ_INT(mcpgw_pool_connected(p), 0);
    memset(used, 0, sizeof(used));
    for (i = 200; i < 206; i++) {
        CHECK_EQ_INT(ping(p, i, &idx), MCPGW_SEND_QUEUED);
        if (idx >= 0 && idx < N)
            used[idx]++;
    }
    for (i = 0; i < N; i++)
        CHECK_EQ_INT(used[i], 2);
    CHECK(gw_start(&G) == 0);
    want = 56;
    CHECK(run_until(base, pongs_ge, &want, 4000));
    run_for(base, 100);
    CHECK_EQ_INT(pongs(), 56);

    mcpgw_pool_close(p);
    run_for(base, 200);
    CHECK_EQ_INT(mcpgw_pool_connected(p), 0);
    mcpgw_pool_free(p);
    for (i = 0; i < N; i++)
        evlog_free(&logs[i]);
}

static int replies;
static mcpgw_client *replied_by;

static void on_reply(mcpgw_client *c, mcpgw_request_status st, json_t *reply, void *arg)
{
    (void)arg;
    if (st == MCPGW_REQUEST_OK && reply
        && strcmp(json_string_value(json_object_get(reply, "type")) ?: "", "pong") == 0) {
        replies++;
        replied_by = c;
    }
}

static int replied(void *arg)
{
    (void)arg;
    return replies > 0;
}

TEST(pool_request_goes_to_a_member)
{
    mcpgw_client_opts o;
    mcpgw_pool *p;
    json_t *m;
    int idx = -1;
    char err[128];

    mcpgw_client_opts_init(&o);
    o.token = token;
    CHECK(mcpgw_pool_new(base, url, 0, &o, NULL, NULL, err, sizeof(err)) == NULL);
    CHECK(mcpgw_pool_new(base, "http://x/", 2, &o, NULL, NULL, err, sizeof(err)) == NULL);
    p = mcpgw_pool_new(base, url, 2, &o, NULL, NULL, NULL, 0);
    CHECK(run_until(base, all_connected2, p, 3000));
    m = json_pack("{s:s}", "type", "ping");
    CHECK(mcpgw_pool_request(p, m, 1000, NULL, NULL, &idx) == MCPGW_SEND_ERR_INVALID);
    CHECK_EQ_INT(mcpgw_pool_request(p, m, 1000, on_reply, NULL, &idx), MCPGW_SEND_OK);
    json_decref(m);
    CHECK(run_until(base, replied, NULL, 2000));
    CHECK(idx >= 0 && idx < 2);
    CHECK(replied_by == mcpgw_pool_member(p, idx));
    mcpgw_pool_free(p);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (gw_init(&G, "[server]\nmax_payload = 4096\n[auth]\nmax_connections_per_user = 100\n") != 0
        || gw_start(&G) != 0) {
        fprintf(stderr, "cannot start the gateway (MCPGW_BUILDDIR=%s)\n", gw_builddir());
        printf("0 passed, 1 failed\n");
        gw_cleanup(&G);
        return 1;
    }
    token = gw_token(&G, "pool-test");
    gw_url(&G, url, sizeof(url));
    RUN(pool_spreads_and_fails_over);
    RUN(pool_request_goes_to_a_member);
    gw_cleanup(&G);
    free(token);
    event_base_free(base);
    return UNIT_SUMMARY();
}
