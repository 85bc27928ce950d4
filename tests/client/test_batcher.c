/*
 * test_batcher.c - the message batcher: flush by size, by timer, by age
 * (from the age timer and on add), forced and on stop, clear, and the
 * envelope field by field; then a batcher feeding a real client and a pool
 * (the gateway's batch handler answers batch_response).
 */
#define _GNU_SOURCE 1
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "gw.h"

static struct event_base *base;

#define MAX_FLUSH 64
typedef struct {
    int n;
    json_t *batch[MAX_FLUSH];
    char reason[MAX_FLUSH][16];
} sinklog;

static void sink(json_t *batch, const char *reason, void *arg)
{
    sinklog *s = arg;
    if (s->n >= MAX_FLUSH)
        return;
    s->batch[s->n] = json_incref(batch);
    snprintf(s->reason[s->n], sizeof(s->reason[0]), "%s", reason);
    s->n++;
}

static void sink_free(sinklog *s)
{
    int i;
    for (i = 0; i < s->n; i++)
        json_decref(s->batch[i]);
    s->n = 0;
}

static int sink_has(void *arg)
{
    return ((sinklog *)arg)->n > 0;
}

static json_t *msg(int i)
{
    return json_pack("{s:s, s:i}", "type", "ping", "seq", i);
}

static void add(mcpgw_batcher *b, int i)
{
    json_t *m = msg(i);
    CHECK_EQ_INT(mcpgw_batcher_add(b, m), 0);
    json_decref(m);
}

static int is_uuid4(const char *s)
{
    int i;
    if (!s || strlen(s) != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* The envelope of the reference: exactly type, id, messages, count,
 * timestamp; messages in order first..first+n-1. */
static void check_envelope(json_t *b, int first, int n)
{
    const char *ts = json_string_value(json_object_get(b, "timestamp"));
    json_t *msgs = json_object_get(b, "messages");
    struct tm tm;
    time_t t, now = time(NULL);
    int i;

    CHECK_EQ_INT(json_object_size(b), 5);
    CHECK_EQ_STR(json_string_value(json_object_get(b, "type")), "batch");
    CHECK(is_uuid4(json_string_value(json_object_get(b, "id"))));
    CHECK(json_is_integer(json_object_get(b, "count")));
    CHECK_EQ_INT(json_integer_value(json_object_get(b, "count")), n);
    CHECK(json_is_array(msgs));
    CHECK_EQ_INT(json_array_size(msgs), n);
    for (i = 0; i < n && i < (int)json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, (size_t)i);
        CHECK_EQ_INT(json_integer_value(json_object_get(m, "seq")), first + i);
        CHECK_EQ_STR(json_string_value(json_object_get(m, "type")), "ping");
    }
    /* YYYY-MM-DDTHH:MM:SS.mmmZ, UTC, close to now */
    CHECK(ts && strlen(ts) == 24);
    if (ts && strlen(ts) == 24) {
        CHECK(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':'
              && ts[19] == '.' && ts[23] == 'Z');
        CHECK(isdigit((unsigned char)ts[20]) && isdigit((unsigned char)ts[21])
              && isdigit((unsigned char)ts[22]));
        memset(&tm, 0, sizeof(tm));
        CHECK(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) != NULL);
        t = timegm(&tm);
        CHECK(t >= now - 5 && t <= now + 1);
    }
}

TEST(defaults_are_the_reference)
{
    mcpgw_batcher_opts o;
    mcpgw_batcher_opts_init(&o);
    CHECK_EQ_INT(o.batch_size, 10);
    CHECK_EQ_INT(o.flush_interval_ms, 1000);
    CHECK_EQ_INT(o.max_batch_age_ms, 5000);
}

TEST(flush_by_size)
{
    sinklog s = { 0 };
    mcpgw_batcher *b = mcpgw_batcher_new(base, NULL, sink, &s);
    int i;

    for (i = 1; i <= 9; i++)
        add(b, i);
    CHECK_EQ_INT(s.n, 0);
    CHECK_EQ_INT(mcpgw_batcher_count(b), 9);
    add(b, 10);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.reason[0], "batch_full");
    check_envelope(s.batch[0], 1, 10);
    CHECK_EQ_INT(mcpgw_batcher_count(b), 0);
    for (i = 11; i <= 20; i++)
        add(b, i);
    CHECK_EQ_INT(s.n, 2);
    check_envelope(s.batch[1], 11, 10);
    CHECK(strcmp(json_string_value(json_object_get(s.batch[0], "id")),
                 json_string_value(json_object_get(s.batch[1], "id"))) != 0);
    mcpgw_batcher_free(b);
    sink_free(&s);
}

TEST(flush_by_timer)
{
    sinklog s = { 0 };
    mcpgw_batcher_opts o;
    mcpgw_batcher *b;

    mcpgw_batcher_opts_init(&o);
    o.flush_interval_ms = 100;
    b = mcpgw_batcher_new(base, &o, sink, &s);
    run_for(base, 150);
    CHECK_EQ_INT(s.n, 0);           /* an empty batch is never flushed */
    add(b, 1);
    add(b, 2);
    CHECK(run_until(base, sink_has, &s, 1000));
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.reason[0], "timer");
    check_envelope(s.batch[0], 1, 2);
    mcpgw_batcher_free(b);
    sink_free(&s);
}

TEST(flush_by_age)
{
    sinklog s = { 0 };
    mcpgw_batcher_opts o;
    mcpgw_batcher *b;

    mcpgw_batcher_opts_init(&o);
    o.flush_interval_ms = 60000;
    o.max_batch_age_ms = 120;
    b = mcpgw_batcher_new(base, &o, sink, &s);
    /* the age timer flushes a batch nobody adds to */
    add(b, 1);
    CHECK(run_until(base, sink_has, &s, 1000));
    CHECK_EQ_STR(s.reason[0], "batch_age");
    check_envelope(s.batch[0], 1, 1);
    sink_free(&s);
    /* the check on add (the reference's): the loop does not run meanwhile */
    add(b, 2);
    usleep(150 * 1000);
    add(b, 3);
    CHECK_EQ_INT(s.n, 1);
    if (s.n == 1) {
        CHECK_EQ_STR(s.reason[0], "batch_age");
        check_envelope(s.batch[0], 2, 2);
    }
    mcpgw_batcher_free(b);
    sink_free(&s);
}

TEST(force_stop_and_clear)
{
    sinklog s = { 0 };
    mcpgw_batcher *b = mcpgw_batcher_new(base, NULL, sink, &s);

    mcpgw_batcher_force_flush(b);
    CHECK_EQ_INT(s.n, 0);
    add(b, 1);
    add(b, 2);
    add(b, 3);
    mcpgw_batcher_force_flush(b);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.reason[0], "force");
    check_envelope(s.batch[0], 1, 3);

    add(b, 4);
    mcpgw_batcher_clear(b);
    CHECK_EQ_INT(mcpgw_batcher_count(b), 0);
    add(b, 5);
    add(b, 6);
    mcpgw_batcher_stop(b);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_STR(s.reason[1], "stop");
    check_envelope(s.batch[1], 5, 2);
    {
        json_t *m = msg(7);
        CHECK_EQ_INT(mcpgw_batcher_add(b, m), -1);
        json_decref(m);
    }
    mcpgw_batcher_stop(b);
    CHECK_EQ_INT(s.n, 2);
    mcpgw_batcher_free(b);
    sink_free(&s);
}

/* ---------------------------------------------------------------- live */

static gw G;
static json_t *responses;

static void record(mcpgw_client *c, const mcpgw_client_event *ev, void *arg)
{
    (void)c;
    (void)arg;
    if (ev->type == MCPGW_CLIENT_EV_MESSAGE
        && strcmp(json_string_value(json_object_get(ev->message, "type")) ?: "",
                  "batch_response") == 0)
        json_array_append(responses, ev->message);
}

static void record_pool(mcpgw_pool *p, int i, const mcpgw_client_event *ev, void *arg)
{
    (void)p;
    (void)i;
    record(NULL, ev, arg);
}

static int n_responses_ge(void *arg)
{
    return (int)json_array_size(responses) >= *(int *)arg;
}

static int all_connected(void *arg)
{
    return mcpgw_pool_connected(arg) == mcpgw_pool_size(arg);
}

TEST(batcher_feeds_client_and_pool)
{
    char url[128];
    char *token = gw_token(&G, "batcher-test");
    mcpgw_client_opts o;
    mcpgw_client *c;
    mcpgw_pool *p;
    mcpgw_batcher *b;
    mcpgw_batcher_opts bo;
    sinklog dummy = { 0 };
    int i, want;
    json_t *r;

    (void)dummy;
    responses = json_array();
    gw_url(&G, url, sizeof(url));
    mcpgw_client_opts_init(&o);
    o.token = token;
    c = mcpgw_client_new(base, url, &o, record, NULL, NULL, 0);
    mcpgw_client_connect(c);
    mcpgw_batcher_opts_init(&bo);
    bo.batch_size = 4;
    b = mcpgw_batcher_new(base, &bo, mcpgw_batcher_sink_client, c);
    for (i = 1; i <= 6; i++) {
        json_t *m = json_pack("{s:s, s:s+}", "type", "ping", "id", "b", i == 1 ? "1" : i == 2 ? "2"
                              : i == 3 ? "3" : i == 4 ? "4" : i == 5 ? "5" : "6");
        mcpgw_batcher_add(b, m);        /* queued until connected: order kept */
        json_decref(m);
    }
    mcpgw_batcher_stop(b);              /* 4 (batch_full) + 2 (stop) */
    want = 2;
    CHECK(run_until(base, n_responses_ge, &want, 3000));
    CHECK_EQ_INT(json_array_size(responses), 2);
    r = json_array_get(responses, 0);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "responses")), 4);
    CHECK_EQ_STR(json_string_value(json_object_get(
                     json_array_get(json_object_get(r, "responses"), 0), "id")), "b1");
    CHECK_EQ_STR(json_string_value(json_object_get(
                     json_object_get(json_array_get(json_object_get(r, "responses"), 3), "result"),
                     "type")), "pong");
    r = json_array_get(responses, 1);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "responses")), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(
                     json_array_get(json_object_get(r, "responses"), 1), "id")), "b6");
    mcpgw_batcher_free(b);
    mcpgw_client_free(c);

    /* the same through a pool */
    json_array_clear(responses);
    p = mcpgw_pool_new(base, url, 2, &o, record_pool, NULL, NULL, 0);
    CHECK(run_until(base, all_connected, p, 3000));
    b = mcpgw_batcher_new(base, &bo, mcpgw_batcher_sink_pool, p);
    for (i = 0; i < 8; i++) {
        json_t *m = json_pack("{s:s}", "type", "ping");
        mcpgw_batcher_add(b, m);
        json_decref(m);
    }
    want = 2;
    CHECK(run_until(base, n_responses_ge, &want, 3000));
    mcpgw_batcher_stop(b);
    mcpgw_batcher_free(b);
    mcpgw_pool_free(p);
    json_decref(responses);
    free(token);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    RUN(defaults_are_the_reference);
    RUN(flush_by_size);
    RUN(flush_by_timer);
    RUN(flush_by_age);
    RUN(force_stop_and_clear);
    if (gw_init(&G, NULL) == 0 && gw_start(&G) == 0) {
        RUN(batcher_feeds_client_and_pool);
    } else {
        fprintf(stderr, "cannot start the gateway (MCPGW_BUILDDIR=%s)\n", gw_builddir());
        unit_failed++;
    }
    gw_cleanup(&G);
    event_base_free(base);
    return UNIT_SUMMARY();
}
