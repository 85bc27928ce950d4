/*
 * test_batch.c - unit tests of plugins/batch.c with the mock host: the
 * plugin is linked in; the sub-handlers are the built ping.so (loaded as
 * the gateway loads it) and handlers of the test's own (a failing one, an
 * asynchronous one whose requests the test completes by hand).
 */
#include <stdlib.h>
#include <string.h>
#include <mcpgw/mock_host.h>

#include "unit.h"

extern const mcpgw_plugin mcpgw_plugin_descriptor;

#ifndef MCPGW_MOCK_PLUGIN_DIR
#define MCPGW_MOCK_PLUGIN_DIR "plugins/.libs"
#endif

static mcpgw_request *slow[8];
static size_t n_slow;
static const mcpgw_host *host;

static int bad_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)req, (void)msg, (void)data;
    *out = json_string("broken on purpose");
    return MCPGW_HANDLER_FAILED;
}

static int slow_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)msg, (void)out, (void)data;
    slow[n_slow++] = req;
    return MCPGW_HANDLER_PENDING;
}

static void slow_complete(size_t i, const char *text)
{
    host->complete(slow[i], json_pack("{s:s, s:s}", "type", "slow_done", "text", text));
}

/* A mock with batch ([handler.batch], keys), ping.so and the test's handlers. */
static mcpgw_mock *setup(const char *const *keys, mcpgw_conn **c, mcpgw_mock_plugin **batch)
{
    mcpgw_mock *m = mcpgw_mock_new();
    char err[256] = "";
    mcpgw_mock_plugin *p;

    n_slow = 0;
    host = mcpgw_mock_host(m);
    p = mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "batch", keys, err, sizeof(err));
    if (batch)
        *batch = p;
    if (!p ||
        !mcpgw_mock_load_file(m, MCPGW_MOCK_PLUGIN_DIR "/ping.so", "ping", NULL, err,
                              sizeof(err))) {
        fprintf(stderr, "  setup: %s\n", err);
        unit_current_failed = 1;
    }
    mcpgw_mock_register(m, "bad", bad_handle, NULL);
    mcpgw_mock_register(m, "slow", slow_handle, NULL);
    *c = mcpgw_mock_conn_new(m, "alice", NULL);
    return m;
}

/* The "message" of the oldest reply (new reference), after checking it is
 * a batch_response for connection conn. */
static json_t *batch_reply(mcpgw_mock *m)
{
    json_t *rec = mcpgw_mock_next(m, "reply");
    json_t *msg = json_incref(json_object_get(rec, "message"));

    CHECK_EQ_STR(json_string_value(json_object_get(msg, "type")), "batch_response");
    json_decref(rec);
    return msg;
}

static json_t *entry(json_t *reply, size_t i)
{
    return json_array_get(json_object_get(reply, "responses"), i);
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

TEST(batch_runs_sub_messages_in_order)
{
    mcpgw_conn *c;
    mcpgw_mock *m = setup(NULL, &c, NULL);
    json_t *r;

    CHECK_EQ_INT(mcpgw_mock_message(m, c,
                 "{\"type\":\"batch\",\"id\":\"b1\",\"messages\":["
                 "{\"type\":\"ping\",\"id\":1},{\"type\":\"ping\",\"id\":2}]}"),
                 MCPGW_HANDLER_DONE);
    r = batch_reply(m);
    CHECK_EQ_STR(str(r, "id"), "b1");
    CHECK_EQ_STR(str(r, "timestamp"), "2026-01-01T00:00:00.000Z");
    CHECK_EQ_INT(json_array_size(json_object_get(r, "responses")), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = entry(r, i);
        CHECK_EQ_INT(json_integer_value(json_object_get(e, "id")), (long long)i + 1);
        CHECK_EQ_STR(str(e, "type"), "response");
        CHECK_EQ_STR(str(e, "status"), "success");
        CHECK_EQ_STR(str(json_object_get(e, "result"), "type"), "pong");
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(e, "result"), "id")),
                     (long long)i + 1);
    }
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_count(m, NULL), 0);
    CHECK_EQ_INT(mcpgw_mock_pending(m), 0);
    mcpgw_mock_free(m);
}

TEST(batch_entry_errors)
{
    mcpgw_conn *c;
    mcpgw_mock *m = setup(NULL, &c, NULL);
    json_t *r;

    mcpgw_mock_message(m, c,
                       "{\"type\":\"batch\",\"messages\":[42,{\"id\":\"n\"},"
                       "{\"type\":\"batch\",\"id\":\"nest\",\"messages\":[]},"
                       "{\"type\":\"nope\",\"id\":\"u\"},{\"type\":\"bad\",\"id\":\"b\"}]}");
    r = batch_reply(m);
    CHECK(!json_object_get(r, "id"));
    CHECK_EQ_INT(json_array_size(json_object_get(r, "responses")), 5);
    CHECK_EQ_STR(str(entry(r, 0), "error"), "Message must be a JSON object with a string type");
    CHECK(!json_object_get(entry(r, 0), "id"));
    CHECK_EQ_STR(str(entry(r, 1), "error"), "Message must be a JSON object with a string type");
    CHECK_EQ_STR(str(entry(r, 1), "id"), "n");
    CHECK_EQ_STR(str(entry(r, 2), "error"), "Nested batches are not allowed");
    CHECK_EQ_STR(str(entry(r, 3), "error"), "Unknown message type: nope");
    CHECK_EQ_STR(str(entry(r, 3), "id"), "u");
    CHECK_EQ_STR(str(entry(r, 4), "error"), "broken on purpose");
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ_STR(str(entry(r, i), "status"), "error");
    json_decref(r);

    /* not a list at all: the whole batch fails */
    CHECK_EQ_INT(mcpgw_mock_message(m, c, "{\"type\":\"batch\",\"id\":9,\"messages\":{}}"),
                 MCPGW_HANDLER_FAILED);
    r = mcpgw_mock_next(m, "fail");
    CHECK_EQ_STR(str(r, "reason"), "Invalid batch message format");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 9);
    json_decref(r);
    mcpgw_mock_free(m);
}

TEST(batch_waits_for_async_sub_requests)
{
    mcpgw_conn *c;
    mcpgw_mock *m = setup(NULL, &c, NULL);
    json_t *r;

    CHECK_EQ_INT(mcpgw_mock_message(m, c,
                 "{\"type\":\"batch\",\"id\":1,\"messages\":[{\"type\":\"slow\",\"id\":\"s1\"},"
                 "{\"type\":\"ping\",\"id\":\"p\"},{\"type\":\"slow\",\"id\":\"s2\"}]}"),
                 MCPGW_HANDLER_PENDING);
    CHECK_EQ_INT(n_slow, 2);
    CHECK_EQ_INT(mcpgw_mock_pending(m), 3);         /* the batch and its two slow ones */
    slow_complete(1, "second");
    CHECK_EQ_INT(mcpgw_mock_count(m, "reply"), 0);  /* still one to go */
    mcpgw_mock_advance(m, 250);
    slow_complete(0, "first");
    CHECK_EQ_INT(mcpgw_mock_pending(m), 0);
    r = batch_reply(m);
    CHECK_EQ_STR(str(json_object_get(entry(r, 0), "result"), "text"), "first");
    CHECK_EQ_STR(str(entry(r, 0), "id"), "s1");
    CHECK_EQ_STR(str(json_object_get(entry(r, 1), "result"), "type"), "pong");
    CHECK_EQ_STR(str(json_object_get(entry(r, 2), "result"), "text"), "second");
    CHECK_EQ_STR(str(r, "timestamp"), "2026-01-01T00:00:00.250Z");  /* when it finished */
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_count(m, "violation"), 0);
    mcpgw_mock_free(m);
}

TEST(batch_orphaned_when_the_client_left)
{
    mcpgw_conn *c;
    mcpgw_mock *m = setup(NULL, &c, NULL);
    json_t *r;

    mcpgw_mock_message(m, c, "{\"type\":\"batch\",\"id\":1,\"messages\":[{\"type\":\"slow\"}]}");
    mcpgw_mock_conn_end(c, 1006);
    CHECK(host->request_orphaned(slow[0]));
    slow_complete(0, "late");
    CHECK_EQ_INT(mcpgw_mock_count(m, "reply"), 0);
    r = mcpgw_mock_next(m, "dropped");
    CHECK(r != NULL);
    CHECK_EQ_STR(str(r, "status"), "reply");
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_pending(m), 0);
    mcpgw_mock_free(m);
}

TEST(batch_max_messages_and_reload)
{
    const char *keys[] = { "max_messages", "2", NULL };
    const char *bigger[] = { "max_messages", "3", NULL };
    const char *bad[] = { "max_messages", "0", NULL };
    const char *three = "{\"type\":\"batch\",\"messages\":[{\"type\":\"ping\"},"
                        "{\"type\":\"ping\"},{\"type\":\"ping\"}]}";
    mcpgw_conn *c;
    mcpgw_mock_plugin *p;
    mcpgw_mock *m = setup(keys, &c, &p);
    char err[256];
    json_t *r;

    CHECK_EQ_INT(mcpgw_mock_message(m, c, three), MCPGW_HANDLER_FAILED);
    r = mcpgw_mock_next(m, "fail");
    CHECK_EQ_STR(str(r, "reason"), "Batch too large: 3 messages (limit 2)");
    json_decref(r);

    /* a bad value is refused on reload (the old limit stays), a good one taken */
    CHECK_EQ_INT(mcpgw_mock_reload(p, bad, err, sizeof(err)), -1);
    CHECK_EQ_STR(err, "max_messages must be an integer from 1 to 100000, not '0'");
    CHECK_EQ_INT(mcpgw_mock_message(m, c, three), MCPGW_HANDLER_FAILED);
    json_decref(mcpgw_mock_next(m, "fail"));
    CHECK_EQ_INT(mcpgw_mock_reload(p, bigger, err, sizeof(err)), 0);
    CHECK_EQ_INT(mcpgw_mock_message(m, c, three), MCPGW_HANDLER_DONE);
    r = batch_reply(m);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "responses")), 3);
    json_decref(r);
    mcpgw_mock_free(m);

    /* and at init, with the plugin's reason */
    m = mcpgw_mock_new();
    CHECK(mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "batch", bad, err, sizeof(err)) == NULL);
    CHECK_EQ_STR(err, "max_messages must be an integer from 1 to 100000, not '0'");
    mcpgw_mock_free(m);
}

TEST(batch_in_flight_survives_fini)
{
    mcpgw_mock *m = mcpgw_mock_new();
    char err[256];
    mcpgw_mock_plugin *p;
    mcpgw_conn *c;
    json_t *r;

    n_slow = 0;
    host = mcpgw_mock_host(m);
    p = mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "batch", NULL, err, sizeof(err));
    mcpgw_mock_register(m, "slow", slow_handle, NULL);
    c = mcpgw_mock_conn_new(m, "alice", NULL);
    mcpgw_mock_message(m, c, "{\"type\":\"batch\",\"messages\":[{\"type\":\"slow\"}]}");
    mcpgw_mock_unload(p);           /* fini while the batch waits */
    slow_complete(0, "after fini");
    r = batch_reply(m);
    CHECK_EQ_STR(str(json_object_get(entry(r, 0), "result"), "text"), "after fini");
    json_decref(r);
    mcpgw_mock_free(m);
}

int main(void)
{
    RUN(batch_runs_sub_messages_in_order);
    RUN(batch_entry_errors);
    RUN(batch_waits_for_async_sub_requests);
    RUN(batch_orphaned_when_the_client_left);
    RUN(batch_max_messages_and_reload);
    RUN(batch_in_flight_survives_fini);
    return UNIT_SUMMARY();
}
