/*
 * test_client_live.c - the client library against the real gateway: events,
 * auth failures, intentional close, reconnect across a gateway restart with
 * the offline queue flushed in order exactly once, reconnect_failed, both
 * queue policies, request/reply matching, timeouts and at-least-once resend.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "gw.h"

static struct event_base *base;
static gw G;
static char *token;
static char url[128];

typedef struct {
    evlog *l;
    mcpgw_client_event_type t;
    int n;
} wait_ev;

static int has_events(void *arg)
{
    wait_ev *w = arg;
    return evlog_count(w->l, w->t) >= w->n;
}

static int wait_for(evlog *l, mcpgw_client_event_type t, int n, int ms)
{
    wait_ev w = { l, t, n };
    return run_until(base, has_events, &w, ms);
}

typedef struct {
    evlog *l;
    const char *type;
    int n;
} wait_msg;

static int count_type(evlog *l, const char *type)
{
    size_t i;
    json_t *m;
    int n = 0;
    json_array_foreach(l->messages, i, m) {
        const char *t = json_string_value(json_object_get(m, "type"));
        n += t && strcmp(t, type) == 0;
    }
    return n;
}

static int has_msgs(void *arg)
{
    wait_msg *w = arg;
    return count_type(w->l, w->type) >= w->n;
}

static int wait_msgs(evlog *l, const char *type, int n, int ms)
{
    wait_msg w = { l, type, n };
    return run_until(base, has_msgs, &w, ms);
}

static mcpgw_client_opts fast_opts(void)
{
    mcpgw_client_opts o;
    mcpgw_client_opts_init(&o);
    o.token = token;
    o.reconnect_base_ms = 50;
    o.reconnect_max_ms = 200;
    o.reconnect_max_attempts = 100;
    return o;
}

static int send_ping(mcpgw_client *c, const char *id)
{
    json_t *m = json_pack("{s:s, s:s}", "type", "ping", "id", id);
    int rc = mcpgw_client_send(c, m);
    json_decref(m);
    return rc;
}

/* ------------------------------------------------------------------ tests */

TEST(connect_events_and_close)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    char ids[256];
    int i;

    evlog_init(&l);
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    CHECK(c != NULL);
    CHECK_EQ_INT(mcpgw_client_is_connected(c), 0);
    CHECK_EQ_INT(mcpgw_client_connect(c), 0);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_CONNECTED, 1, 3000));
    CHECK_EQ_INT(mcpgw_client_is_connected(c), 1);
    CHECK(wait_msgs(&l, "connection_established", 1, 2000));
    CHECK_EQ_INT(l.e[0].type, MCPGW_CLIENT_EV_CONNECTED);

    CHECK_EQ_INT(send_ping(c, "p1"), MCPGW_SEND_OK);
    CHECK_EQ_INT(mcpgw_client_send_text(c, "{\"type\":\"ping\",\"id\":\"p2\"}", 25), MCPGW_SEND_OK);
    CHECK(wait_msgs(&l, "pong", 2, 2000));
    evlog_ids(&l, "pong", ids, sizeof(ids));
    CHECK_EQ_STR(ids, "p1,p2");
    CHECK_EQ_INT(mcpgw_client_send_text(c, "\xff", 1), MCPGW_SEND_ERR_INVALID);

    /* a broadcast reaches us too */
    {
        json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "agent_status", "id", "a1",
                              "agentId", "ag", "status", "busy");
        CHECK_EQ_INT(mcpgw_client_send(c, m), MCPGW_SEND_OK);
        json_decref(m);
        CHECK(wait_msgs(&l, "agent_status_update", 1, 2000));
        CHECK(wait_msgs(&l, "agent_status_ack", 1, 2000));
    }

    /* invalid JSON from us: the gateway answers an error message */
    CHECK_EQ_INT(mcpgw_client_send_text(c, "nope", 4), MCPGW_SEND_OK);
    CHECK(wait_msgs(&l, "error", 1, 2000));

    /* pong for our ping; the gateway's heartbeat (200 ms here) pings us */
    CHECK_EQ_INT(mcpgw_client_ping(c, "hi", 2), 0);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_PONG, 1, 2000));
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_PING, 1, 2000));

    mcpgw_client_close(c);
    CHECK_EQ_INT(mcpgw_client_is_connected(c), 0);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_DISCONNECTED, 1, 3000));
    i = evlog_last(&l, MCPGW_CLIENT_EV_DISCONNECTED);
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK_EQ_INT(l.e[i].code, 1000);
        CHECK_EQ_STR(l.e[i].reason, "Client closed connection");
        CHECK_EQ_INT(l.e[i].will_reconnect, 0);
    }
    run_for(base, 300);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_RECONNECTING), 0);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_DISCONNECTED), 1);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_ERROR), 0);
    /* sends after an intentional close are queued for the next connect() */
    CHECK_EQ_INT(send_ping(c, "later"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(mcpgw_client_connect(c), 0);
    CHECK(wait_msgs(&l, "pong", 3, 3000));
    evlog_ids(&l, "pong", ids, sizeof(ids));
    CHECK_EQ_STR(ids, "p1,p2,later");
    mcpgw_client_free(c);
    evlog_free(&l);
}

TEST(auth_failures_do_not_reconnect)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    int i;

    evlog_init(&l);
    o.token = "not.a.token";
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_DISCONNECTED, 1, 3000));
    i = evlog_last(&l, MCPGW_CLIENT_EV_ERROR);
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK_EQ_INT(l.e[i].http_status, 401);
        CHECK_EQ_STR(l.e[i].body, "Unauthorized: Invalid token");
    }
    i = evlog_last(&l, MCPGW_CLIENT_EV_DISCONNECTED);
    CHECK_EQ_INT(l.e[i].will_reconnect, 0);
    run_for(base, 200);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_RECONNECTING), 0);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_CONNECTED), 0);
    mcpgw_client_free(c);
    evlog_free(&l);

    evlog_init(&l);
    o.token = NULL;
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_DISCONNECTED, 1, 3000));
    i = evlog_last(&l, MCPGW_CLIENT_EV_ERROR);
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK_EQ_INT(l.e[i].http_status, 401);
        CHECK_EQ_STR(l.e[i].body, "Unauthorized: Missing token");
    }
    mcpgw_client_free(c);
    evlog_free(&l);
}

TEST(token_in_authorization_header)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;

    evlog_init(&l);
    o.token_in_header = 1;
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_CONNECTED, 1, 3000));
    mcpgw_client_free(c);       /* free while connected: no callbacks */
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_DISCONNECTED), 0);
    evlog_free(&l);
}

TEST(reconnect_after_restart_flushes_queue_in_order_once)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    char ids[512];
    int i, d;

    evlog_init(&l);
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_CONNECTED, 1, 3000));
    CHECK(wait_msgs(&l, "connection_established", 1, 2000));

    gw_stop(&G, SIGTERM);       /* graceful: close 1001 to every client */
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_DISCONNECTED, 1, 3000));
    d = evlog_last(&l, MCPGW_CLIENT_EV_DISCONNECTED);
    CHECK_EQ_INT(l.e[d].code, 1001);
    CHECK_EQ_INT(l.e[d].will_reconnect, 1);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_RECONNECTING, 2, 3000));
    i = evlog_last(&l, MCPGW_CLIENT_EV_RECONNECTING);
    CHECK(l.e[i].attempt >= 2);
    CHECK(l.e[i].delay_ms >= 50 && l.e[i].delay_ms <= 260);
    CHECK(evlog_count(&l, MCPGW_CLIENT_EV_ERROR) >= 1);    /* connection refused */

    for (i = 1; i <= 5; i++) {
        char id[8];
        snprintf(id, sizeof(id), "q%d", i);
        CHECK_EQ_INT(send_ping(c, id), MCPGW_SEND_QUEUED);
    }
    CHECK_EQ_INT(mcpgw_client_queue_size(c), 5);
    CHECK(gw_start(&G) == 0);   /* same port */
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_CONNECTED, 2, 3000));
    CHECK(wait_msgs(&l, "pong", 5, 3000));
    CHECK_EQ_INT(mcpgw_client_queue_size(c), 0);
    CHECK_EQ_INT(mcpgw_client_reconnect_attempt(c), 0);
    run_for(base, 200);
    evlog_ids(&l, "pong", ids, sizeof(ids));
    CHECK_EQ_STR(ids, "q1,q2,q3,q4,q5");

    /* a hard kill: 1006, then back again */
    gw_stop(&G, SIGKILL);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_DISCONNECTED, 2, 3000));
    d = evlog_last(&l, MCPGW_CLIENT_EV_DISCONNECTED);
    CHECK_EQ_INT(l.e[d].code, 1006);
    CHECK_EQ_INT(send_ping(c, "q6"), MCPGW_SEND_QUEUED);
    CHECK(gw_start(&G) == 0);
    CHECK(wait_msgs(&l, "pong", 6, 3000));
    evlog_ids(&l, "pong", ids, sizeof(ids));
    CHECK_EQ_STR(ids, "q1,q2,q3,q4,q5,q6");
    mcpgw_client_free(c);
    evlog_free(&l);
}

TEST(reconnect_failed_after_max_attempts)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    char dead[128];
    int i, k = 0;

    /* a port nobody listens on: the gateway's, while it is stopped */
    gw_stop(&G, SIGKILL);
    snprintf(dead, sizeof(dead), "%s", url);
    evlog_init(&l);
    o.reconnect_base_ms = 20;
    o.reconnect_max_attempts = 3;
    c = mcpgw_client_new(base, dead, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_RECONNECT_FAILED, 1, 3000));
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_RECONNECTING), 3);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_ERROR), 4);     /* first try + 3 */
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_DISCONNECTED), 0);
    for (i = 0; i < l.n; i++)
        if (l.e[i].type == MCPGW_CLIENT_EV_RECONNECTING)
            CHECK_EQ_INT(l.e[i].attempt, ++k);
    run_for(base, 200);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_RECONNECTING), 3);
    mcpgw_client_free(c);
    evlog_free(&l);
    CHECK(gw_start(&G) == 0);
}

TEST(queue_refuse_new_policy)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    char ids[256];
    int i;

    evlog_init(&l);
    o.queue_max_messages = 3;
    o.queue_policy = MCPGW_QUEUE_REFUSE_NEW;
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    CHECK_EQ_INT(send_ping(c, "r1"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(send_ping(c, "r2"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(send_ping(c, "r3"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(send_ping(c, "r4"), MCPGW_SEND_ERR_FULL);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_QUEUE_FULL), 1);
    i = evlog_last(&l, MCPGW_CLIENT_EV_QUEUE_FULL);
    CHECK(strstr(l.e[i].text, "\"r4\"") != NULL);
    CHECK_EQ_INT(mcpgw_client_queue_size(c), 3);
    mcpgw_client_connect(c);
    CHECK(wait_msgs(&l, "pong", 3, 3000));
    run_for(base, 150);
    evlog_ids(&l, "pong", ids, sizeof(ids));
    CHECK_EQ_STR(ids, "r1,r2,r3");
    mcpgw_client_free(c);
    evlog_free(&l);
}

TEST(queue_drop_oldest_policy)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    char ids[256];
    int i, k = 0;

    evlog_init(&l);
    o.queue_max_messages = 3;
    o.queue_policy = MCPGW_QUEUE_DROP_OLDEST;
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    CHECK_EQ_INT(send_ping(c, "d1"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(send_ping(c, "d2"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(send_ping(c, "d3"), MCPGW_SEND_QUEUED);
    CHECK_EQ_INT(send_ping(c, "d4"), MCPGW_SEND_QUEUED_DROPPED);
    CHECK_EQ_INT(send_ping(c, "d5"), MCPGW_SEND_QUEUED_DROPPED);
    CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_QUEUE_DROPPED), 2);
    for (i = 0; i < l.n; i++) {
        if (l.e[i].type != MCPGW_CLIENT_EV_QUEUE_DROPPED)
            continue;
        k++;
        CHECK(strstr(l.e[i].text, k == 1 ? "\"d1\"" : "\"d2\"") != NULL);
    }
    mcpgw_client_connect(c);
    CHECK(wait_msgs(&l, "pong", 3, 3000));
    run_for(base, 150);
    evlog_ids(&l, "pong", ids, sizeof(ids));
    CHECK_EQ_STR(ids, "d3,d4,d5");
    mcpgw_client_free(c);
    evlog_free(&l);
}

/* ------------------------------------------------------------ requests */

typedef struct {
    int calls;
    mcpgw_request_status st;
    char type[64];
    char id[64];
} req_result;

static void on_reply(mcpgw_client *c, mcpgw_request_status st, json_t *reply, void *arg)
{
    req_result *r = arg;
    (void)c;
    r->calls++;
    r->st = st;
    if (reply) {
        snprintf(r->type, sizeof(r->type), "%s",
                 json_string_value(json_object_get(reply, "type")) ?: "");
        snprintf(r->id, sizeof(r->id), "%s", json_string_value(json_object_get(reply, "id")) ?: "");
    }
}

static int req_done(void *arg)
{
    return ((req_result *)arg)->calls > 0;
}

TEST(request_reply_matching_and_timeout)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    req_result a = { 0 }, b = { 0 }, t = { 0 };
    json_t *m, *id = NULL;

    evlog_init(&l);
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_msgs(&l, "connection_established", 1, 3000));

    m = json_pack("{s:s}", "type", "ping");
    CHECK_EQ_INT(mcpgw_client_request(c, m, 2000, on_reply, &a, &id), MCPGW_SEND_OK);
    CHECK(json_object_get(m, "id") == NULL);        /* the caller's object is untouched */
    json_decref(m);
    CHECK(json_is_string(id) && strlen(json_string_value(id)) == 36);
    m = json_pack("{s:s, s:s}", "type", "ping", "id", "mine");
    CHECK_EQ_INT(mcpgw_client_request(c, m, 2000, on_reply, &b, NULL), MCPGW_SEND_OK);
    json_decref(m);
    CHECK_EQ_INT(mcpgw_client_pending_requests(c), 2);
    CHECK(run_until(base, req_done, &a, 2000));
    CHECK(run_until(base, req_done, &b, 2000));
    CHECK_EQ_INT(a.st, MCPGW_REQUEST_OK);
    CHECK_EQ_STR(a.type, "pong");
    CHECK_EQ_STR(a.id, json_string_value(id));
    CHECK_EQ_STR(b.id, "mine");
    CHECK_EQ_INT(count_type(&l, "pong"), 0);        /* replies went to the callbacks */
    CHECK_EQ_INT(mcpgw_client_pending_requests(c), 0);
    json_decref(id);

    if (gw_has_async_echo()) {
        /* "slow" answers after 400 ms; a 100 ms timeout fires first */
        m = json_pack("{s:s, s:s}", "type", "slow", "payload", "x");
        CHECK_EQ_INT(mcpgw_client_request(c, m, 100, on_reply, &t, NULL), MCPGW_SEND_OK);
        json_decref(m);
        CHECK(run_until(base, req_done, &t, 2000));
        CHECK_EQ_INT(t.st, MCPGW_REQUEST_TIMEOUT);
        /* the late reply is an ordinary message then */
        CHECK(wait_msgs(&l, "async_echo_reply", 1, 2000));
        CHECK_EQ_INT(t.calls, 1);
    }
    mcpgw_client_free(c);
    evlog_free(&l);
}

TEST(request_resent_after_reconnect)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    req_result a = { 0 }, q = { 0 };
    json_t *m;

    if (!gw_has_async_echo()) {
        printf("  (skipped: tests/plugins/async_echo.so not built)\n");
        return;
    }
    evlog_init(&l);
    c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
    mcpgw_client_connect(c);
    CHECK(wait_msgs(&l, "connection_established", 1, 3000));
    m = json_pack("{s:s, s:s, s:s}", "type", "slow", "id", "r-1", "payload", "hello");
    CHECK_EQ_INT(mcpgw_client_request(c, m, 5000, on_reply, &a, NULL), MCPGW_SEND_OK);
    json_decref(m);
    run_for(base, 100);             /* the gateway has it; its reply is 300 ms away */
    gw_stop(&G, SIGKILL);
    CHECK(wait_for(&l, MCPGW_CLIENT_EV_DISCONNECTED, 1, 3000));
    CHECK_EQ_INT(a.calls, 0);
    CHECK_EQ_INT(mcpgw_client_pending_requests(c), 1);
    /* a request made while disconnected waits in the queue */
    m = json_pack("{s:s, s:s}", "type", "ping", "id", "r-2");
    CHECK_EQ_INT(mcpgw_client_request(c, m, 5000, on_reply, &q, NULL), MCPGW_SEND_QUEUED);
    json_decref(m);
    CHECK(gw_start(&G) == 0);
    CHECK(run_until(base, req_done, &a, 4000));
    CHECK(run_until(base, req_done, &q, 2000));
    CHECK_EQ_INT(a.st, MCPGW_REQUEST_OK);
    CHECK_EQ_STR(a.type, "async_echo_reply");
    CHECK_EQ_STR(a.id, "r-1");
    CHECK_EQ_STR(q.type, "pong");
    run_for(base, 600);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(q.calls, 1);
    CHECK_EQ_INT(mcpgw_client_pending_requests(c), 0);

    /* an intentional close cancels what is still pending */
    {
        req_result z = { 0 };
        m = json_pack("{s:s, s:s}", "type", "slow", "payload", "z");
        mcpgw_client_request(c, m, 5000, on_reply, &z, NULL);
        json_decref(m);
        mcpgw_client_close(c);
        CHECK(run_until(base, req_done, &z, 3000));
        CHECK_EQ_INT(z.st, MCPGW_REQUEST_CANCELLED);
    }
    mcpgw_client_free(c);
    evlog_free(&l);
}

TEST(compression_negotiated_and_used)
{
    evlog l;
    mcpgw_client_opts o = fast_opts();
    mcpgw_client *c;
    char *id = malloc(3001);
    int round;

    memset(id, 'z', 3000);
    id[3000] = '\0';
    for (round = 0; round < 2; round++) {
        evlog_init(&l);
        o.compression = round == 0;
        c = mcpgw_client_new(base, url, &o, evlog_cb, &l, NULL, 0);
        mcpgw_client_connect(c);
        CHECK(wait_for(&l, MCPGW_CLIENT_EV_CONNECTED, 1, 3000));
        if (round == 0 && !mcpgw_client_compression_active(c))
            printf("  (the gateway did not accept permessage-deflate: compression untested)\n");
        if (round == 1)
            CHECK_EQ_INT(mcpgw_client_compression_active(c), 0);
        /* 3 KB each way: we send it compressed, the gateway answers compressed */
        CHECK_EQ_INT(send_ping(c, id), MCPGW_SEND_OK);
        CHECK_EQ_INT(send_ping(c, "small"), MCPGW_SEND_OK);
        CHECK(wait_msgs(&l, "pong", 2, 3000));
        {
            json_t *m = json_array_get(l.messages, json_array_size(l.messages) - 2);
            CHECK_EQ_STR(json_string_value(json_object_get(m, "id")), id);
        }
        CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_ERROR), 0);
        CHECK_EQ_INT(evlog_count(&l, MCPGW_CLIENT_EV_DISCONNECTED), 0);
        mcpgw_client_free(c);
        evlog_free(&l);
    }
    free(id);
}

/* Freeing the client from inside its own callback is allowed. */
static void free_on_connect(mcpgw_client *c, const mcpgw_client_event *ev, void *arg)
{
    int *n = arg;
    if (ev->type == MCPGW_CLIENT_EV_CONNECTED) {
        (*n)++;
        mcpgw_client_free(c);
    }
}

static int positive(void *arg)
{
    return *(int *)arg > 0;
}

TEST(free_inside_callback)
{
    mcpgw_client_opts o = fast_opts();
    int n = 0;
    mcpgw_client *c = mcpgw_client_new(base, url, &o, free_on_connect, &n, NULL, 0);

    mcpgw_client_connect(c);
    CHECK(run_until(base, positive, &n, 3000));
    run_for(base, 100);
    CHECK_EQ_INT(n, 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (gw_init(&G, "[heartbeat]\ninterval_ms = 200\n[auth]\nmax_connections_per_user = 100\n") != 0 || gw_start(&G) != 0) {
        fprintf(stderr, "cannot start the gateway (MCPGW_BUILDDIR=%s)\n", gw_builddir());
        printf("0 passed, 1 failed\n");
        gw_cleanup(&G);
        return 1;
    }
    token = gw_token(&G, "client-test");
    gw_url(&G, url, sizeof(url));
    RUN(connect_events_and_close);
    RUN(auth_failures_do_not_reconnect);
    RUN(token_in_authorization_header);
    RUN(reconnect_after_restart_flushes_queue_in_order_once);
    RUN(reconnect_failed_after_max_attempts);
    RUN(queue_refuse_new_policy);
    RUN(queue_drop_oldest_policy);
    RUN(request_reply_matching_and_timeout);
    RUN(request_resent_after_reconnect);
    RUN(compression_negotiated_and_used);
    RUN(free_inside_callback);
    gw_cleanup(&G);
    free(token);
    event_base_free(base);
    return UNIT_SUMMARY();
}
