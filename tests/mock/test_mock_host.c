/*
 * test_mock_host.c - tests of the mock host itself (mock/mock_host.c) with a
 * small plugin defined here: timers, posted work from another thread,
 * connection-level calls, mock children, records and the contract checks.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/mock_host.h>

#include "unit.h"

typedef struct inst {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    mcpgw_request *held;
    mcpgw_timer *timer;
    mcpgw_child *child;
    int exited, closed_code, keys_seen;
    char line[64];
} inst;

static void fire(void *arg)
{
    inst *in = arg;

    in->timer = NULL;
    in->host->complete(in->held, json_pack("{s:s}", "type", "late"));
    in->held = NULL;
}

static int t_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    inst *in = data;
    const char *what = json_string_value(json_object_get(msg, "do"));

    if (what && !strcmp(what, "later")) {
        in->held = req;
        in->timer = in->host->timer_start(in->ctx, 100, fire, in);
        return MCPGW_HANDLER_PENDING;
    }
    if (what && !strcmp(what, "twice")) {
        in->host->complete(req, NULL);
        return MCPGW_HANDLER_DONE;          /* a violation */
    }
    in->host->log(in->ctx, MCPGW_PLUGIN_LOG_WARN, "t_event", json_pack("{s:i}", "n", 1));
    in->host->metric(in->ctx, MCPGW_METRIC_REQUEST, "m", 0.5);
    in->host->send(in->host->request_conn(req), msg);
    *out = NULL;
    return MCPGW_HANDLER_DONE;
}

static int count_key(const char *key, const char *value, void *arg)
{
    (void)key, (void)value;
    ++*(int *)arg;
    return 0;
}

static int t_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance, char *err,
                  size_t err_len)
{
    inst *in = calloc(1, sizeof(*in));

    (void)err, (void)err_len;
    in->host = host;
    in->ctx = ctx;
    host->config_foreach(ctx, count_key, &in->keys_seen);
    *instance = in;
    if (host->config_get(ctx, "conn_level"))
        return 0;
    return host->register_handler(ctx, host->handler_type(ctx), t_handle, in);
}

static void t_fini(void *instance)
{
    inst *in = instance;

    if (in->timer)
        in->host->timer_cancel(in->timer);
    if (in->child)
        in->host->child_stop(in->child, 1000);
    free(in);
}

static void on_line(void *arg, const char *line, size_t len)
{
    inst *in = arg;

    snprintf(in->line, sizeof(in->line), "%.*s", (int)len, line);
}

static void on_exit_cb(void *arg, int status)
{
    inst *in = arg;

    in->exited = status;
    in->child = NULL;
}

static int t_open(void *instance, mcpgw_conn *conn, void **conn_data)
{
    inst *in = instance;
    const char *argv[] = { "/bin/server", "--stdio", NULL };
    const char *envp[] = { "A=1", NULL };
    mcpgw_child_spec spec = { .argv = argv, .envp = envp, .max_queue = 8, .on_line = on_line,
                              .on_exit = on_exit_cb, .arg = in };
    char err[128];

    *conn_data = conn;
    in->child = in->host->child_spawn(in->ctx, &spec, err, sizeof(err));
    return in->child ? 0 : -1;
}

static void t_message(void *instance, mcpgw_conn *conn, void *conn_data, json_t *msg,
                      const char *text, size_t len)
{
    inst *in = instance;

    (void)conn_data, (void)text, (void)len;
    in->host->child_write_json(in->child, msg);
    in->host->send_text(conn, "{\"ok\":1}", 8);
    if (json_object_get(msg, "bye"))
        in->host->close(conn, 1002, "bye");    /* not a code a server sends: 1011 */
}

static void t_close(void *instance, mcpgw_conn *conn, void *conn_data, int code)
{
    inst *in = instance;

    (void)conn, (void)conn_data;
    in->closed_code = code;
}

static const char *const t_keys[] = { "opt.*", "conn_level", NULL };

static const mcpgw_plugin t_plugin = {
    .abi_major = MCPGW_PLUGIN_ABI_MAJOR, .abi_minor = 3, .size = sizeof(mcpgw_plugin),
    .name = "t", .version = "1", .init = t_init, .fini = t_fini, .config_keys = t_keys,
    .conn_open = t_open, .conn_message = t_message, .conn_close = t_close,
};

TEST(mock_timers_and_async_completion)
{
    mcpgw_mock *m = mcpgw_mock_new();
    const char *keys[] = { "opt.a", "1", "opt.b", "2", NULL };
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &t_plugin, "t", keys, NULL, 0);
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "u", NULL);
    inst *in = mcpgw_mock_instance(p);
    json_t *r;

    CHECK(p && in);
    CHECK_EQ_INT(in->keys_seen, 2);
    CHECK_EQ_INT(mcpgw_mock_message(m, c, "{\"type\":\"t\",\"do\":\"later\",\"id\":5}"),
                 MCPGW_HANDLER_PENDING);
    CHECK_EQ_INT(mcpgw_mock_timers(m), 1);
    CHECK_EQ_INT(mcpgw_mock_advance(m, 99), 0);
    CHECK_EQ_INT(mcpgw_mock_advance(m, 1), 1);
    CHECK_EQ_INT(mcpgw_mock_pending(m), 0);
    r = mcpgw_mock_next(m, "reply");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 5);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(r, "message"), "type")),
                 "late");
    json_decref(r);

    /* the client leaves before the timer: the late reply is dropped */
    mcpgw_mock_message(m, c, "{\"type\":\"t\",\"do\":\"later\"}");
    mcpgw_mock_conn_end(c, 1006);
    mcpgw_mock_advance(m, 100);
    r = mcpgw_mock_next(m, "dropped");
    CHECK(r != NULL);
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_count(m, "violation"), 0);
    mcpgw_mock_free(m);
}

TEST(mock_records_and_violations)
{
    mcpgw_mock *m = mcpgw_mock_new();
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &t_plugin, "t", NULL, NULL, 0);
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "u", NULL);
    const char *unknown[] = { "other", "1", NULL };
    char err[256];
    json_t *r;

    CHECK(p != NULL);
    mcpgw_mock_message(m, c, "{\"type\":\"t\",\"n\":1}");
    r = mcpgw_mock_next(m, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "what")), "log");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "level")), "warn");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "event")), "t_event");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "fields"), "n")), 1);
    json_decref(r);
    r = mcpgw_mock_next(m, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "what")), "metric");
    json_decref(r);
    r = mcpgw_mock_next(m, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "what")), "send");
    json_decref(r);
    r = mcpgw_mock_next(m, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "what")), "reply");
    CHECK(json_is_null(json_object_get(r, "message")));
    json_decref(r);

    mcpgw_mock_message(m, c, "{\"type\":\"t\",\"do\":\"twice\"}");
    CHECK_EQ_INT(mcpgw_mock_count(m, "violation"), 1);
    CHECK_EQ_INT(mcpgw_mock_count(m, "reply"), 1);
    CHECK(!mcpgw_mock_load(m, &t_plugin, "t2", unknown, err, sizeof(err)));
    CHECK(strstr(err, "unknown key 'other'") != NULL);
    CHECK_EQ_INT(mcpgw_mock_reload(p, NULL, err, sizeof(err)), -1);    /* no reload */
    CHECK(mcpgw_mock_host(m)->event_base(mcpgw_mock_ctx(p)) == NULL);
    mcpgw_mock_free(m);
}

static void *poster(void *arg)
{
    mcpgw_mock_plugin *p = arg;
    inst *in = mcpgw_mock_instance(p);

    for (int i = 0; i < 100; i++)
        in->host->post(in->ctx, free, malloc(8));
    return NULL;
}

TEST(mock_post_from_threads)
{
    mcpgw_mock *m = mcpgw_mock_new();
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &t_plugin, "t", NULL, NULL, 0);
    pthread_t th[2];

    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, poster, p);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(mcpgw_mock_run_posted(m), 200);
    CHECK_EQ_INT(mcpgw_mock_run_posted(m), 0);
    mcpgw_mock_free(m);
}

TEST(mock_connection_level_and_children)
{
    mcpgw_mock *m = mcpgw_mock_new();
    const char *keys[] = { "conn_level", "1", NULL };
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &t_plugin, "ep", keys, NULL, 0);
    inst *in = mcpgw_mock_instance(p);
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "u", NULL);
    mcpgw_child *ch;
    const char *stdin_text;
    size_t len;
    json_t *r;

    CHECK_EQ_INT(mcpgw_mock_conn_open_plugin(p, c), 0);
    ch = mcpgw_mock_child_last(m);
    CHECK(ch && ch == in->child);
    r = mcpgw_mock_next(m, "child_spawn");
    CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(r, "argv"), 1)), "--stdio");
    CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(r, "env"), 0)), "A=1");
    json_decref(r);

    CHECK_EQ_INT(mcpgw_mock_conn_message(p, c, "{\"a\":1}"), 0);
    stdin_text = mcpgw_mock_child_stdin(ch, &len);
    CHECK_EQ_INT(len, 8);
    CHECK(memcmp(stdin_text, "{\"a\":1}\n", 8) == 0);
    r = mcpgw_mock_next(m, "send_text");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "text")), "{\"ok\":1}");
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_conn_message(p, c, "not json"), -1);
    CHECK_EQ_INT(mcpgw_mock_conn_message(p, c, "[]"), -1);
    /* max_queue 8: a second line does not fit until the child reads */
    CHECK_EQ_INT(in->host->child_write(ch, "x", 1), -1);
    mcpgw_mock_child_drain(ch);
    CHECK_EQ_INT(in->host->child_queued(ch), 0);

    CHECK_EQ_INT(mcpgw_mock_child_line(ch, "hello"), 0);
    CHECK_EQ_STR(in->line, "hello");
    in->host->child_pause(ch, 1);
    CHECK_EQ_INT(mcpgw_mock_child_line(ch, "held"), -1);
    mcpgw_mock_child_exit(ch, 3 << 8);
    CHECK_EQ_INT(in->exited, 3 << 8);
    CHECK(mcpgw_mock_child_last(m) == NULL);

    mcpgw_mock_conn_message(p, c, "{\"bye\":true}");
    r = mcpgw_mock_next(m, "close");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "code")), 1011);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "reason")), "bye");
    json_decref(r);
    CHECK_EQ_INT(in->host->send_text(c, "x", 1), -1);   /* closing */
    CHECK_EQ_INT(in->closed_code, 0);                   /* conn_close comes at the end */
    mcpgw_mock_conn_end(c, 1000);
    CHECK_EQ_INT(in->closed_code, 1000);

    /* a failing spawn refuses the next connection: closed 1011 by the gateway */
    c = mcpgw_mock_conn_new(m, "v", NULL);
    mcpgw_mock_fail_next_spawn(m, "no such file");
    CHECK(mcpgw_mock_conn_open_plugin(p, c) != 0);
    r = mcpgw_mock_next(m, "close");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "code")), 1011);
    json_decref(r);
    CHECK(!mcpgw_mock_conn_open(c));
    mcpgw_mock_free(m);
}

TEST(mock_claims_and_worker)
{
    mcpgw_mock *m = mcpgw_mock_new();
    const mcpgw_host *h = mcpgw_mock_host(m);
    json_t *claims = json_pack("{s:s, s:b, s:[s, i]}", "sub", "u", "admin", 1, "teams", "a", 4);
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "u", claims);
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &t_plugin, "t", NULL, NULL, 0);
    int n = 0;

    json_decref(claims);
    CHECK(h->claim_matches(c, "admin", "true"));
    CHECK(h->claim_matches(c, "teams", "4"));
    CHECK(h->claim_matches(c, "teams", "a"));
    CHECK(!h->claim_matches(c, "teams", "b"));
    CHECK(!h->claim_matches(c, "missing", "x"));
    CHECK_EQ_STR(h->conn_user(c), "u");
    CHECK_EQ_INT(h->conn_id(c), 1);
    mcpgw_mock_set_worker(m, 2, 4);
    CHECK_EQ_INT(h->worker(mcpgw_mock_ctx(p), &n), 2);
    CHECK_EQ_INT(n, 4);
    CHECK(MCPGW_HOST_HAS(h, claim_matches));
    mcpgw_mock_free(m);
}

int main(void)
{
    RUN(mock_timers_and_async_completion);
    RUN(mock_records_and_violations);
    RUN(mock_post_from_threads);
    RUN(mock_connection_level_and_children);
    RUN(mock_claims_and_worker);
    return UNIT_SUMMARY();
}
