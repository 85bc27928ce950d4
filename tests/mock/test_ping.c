/*
 * test_ping.c - unit tests of plugins/ping.c with the mock host
 * (<mcpgw/mock_host.h>): the plugin is linked in, and loaded once more
 * from the built ping.so the way the gateway loads it.
 */
#include <stdlib.h>
#include <string.h>
#include <mcpgw/mock_host.h>

#include "unit.h"

extern const mcpgw_plugin mcpgw_plugin_descriptor;

#ifndef MCPGW_MOCK_PLUGIN_DIR
#define MCPGW_MOCK_PLUGIN_DIR "plugins/.libs"
#endif

/* The reply of the last message, its "message" member (new reference). */
static json_t *reply_of(mcpgw_mock *m)
{
    json_t *rec = mcpgw_mock_next(m, "reply");
    json_t *msg = json_incref(json_object_get(rec, "message"));

    json_decref(rec);
    return msg;
}

TEST(ping_answers_pong_with_id_and_timestamp)
{
    mcpgw_mock *m = mcpgw_mock_new();
    char err[256];
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "ping", NULL, err,
                                           sizeof(err));
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "alice", NULL);
    json_t *r;

    CHECK(p != NULL);
    CHECK_EQ_INT(mcpgw_mock_message(m, c, "{\"type\":\"ping\",\"id\":\"42\"}"),
                 MCPGW_HANDLER_DONE);
    r = reply_of(m);
    CHECK(json_object_size(r) == 3);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "type")), "pong");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "id")), "42");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "timestamp")), "2026-01-01T00:00:00.000Z");
    json_decref(r);

    /* the id comes back as sent, whatever its JSON type; none: no id */
    mcpgw_mock_advance(m, 1500);
    mcpgw_mock_message(m, c, "{\"type\":\"ping\",\"id\":{\"n\":[1,2]}}");
    r = reply_of(m);
    CHECK(json_is_object(json_object_get(r, "id")) &&
          json_array_size(json_object_get(json_object_get(r, "id"), "n")) == 2);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "timestamp")), "2026-01-01T00:00:01.500Z");
    json_decref(r);
    mcpgw_mock_message(m, c, "{\"type\":\"ping\"}");
    r = reply_of(m);
    CHECK(r && !json_object_get(r, "id"));
    json_decref(r);

    CHECK_EQ_INT(mcpgw_mock_count(m, NULL), 0);       /* nothing else: no log, no broadcast */
    CHECK_EQ_INT(mcpgw_mock_pending(m), 0);
    mcpgw_mock_free(m);
}

TEST(ping_reply_type_option)
{
    mcpgw_mock *m = mcpgw_mock_new();
    const char *keys[] = { "reply_type", "pong2", NULL };
    char err[256];
    mcpgw_mock_plugin *p = mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "ping2", keys, err,
                                           sizeof(err));
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "bob", NULL);
    json_t *r;

    CHECK(p != NULL);
    /* registered for its section's type, not for "ping" */
    CHECK_EQ_INT(mcpgw_mock_message(m, c, "{\"type\":\"ping\",\"id\":1}"), MCPGW_HANDLER_FAILED);
    r = mcpgw_mock_next(m, "fail");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "reason")), "Unknown message type: ping");
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_message(m, c, "{\"type\":\"ping2\",\"id\":1}"), MCPGW_HANDLER_DONE);
    r = reply_of(m);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "type")), "pong2");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);
    mcpgw_mock_free(m);
}

TEST(ping_refuses_unknown_keys)
{
    mcpgw_mock *m = mcpgw_mock_new();
    const char *keys[] = { "reply_typo", "x", NULL };
    char err[256] = "";

    CHECK(mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "ping", keys, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "unknown key 'reply_typo'") != NULL);
    mcpgw_mock_free(m);
}

TEST(ping_second_section_for_a_taken_type_is_refused)
{
    mcpgw_mock *m = mcpgw_mock_new();
    char err[256] = "";

    CHECK(mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "ping", NULL, err, sizeof(err)) != NULL);
    CHECK(mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "ping", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "cannot register type 'ping'") != NULL);
    CHECK_EQ_INT(mcpgw_mock_count(m, "violation"), 0);
    mcpgw_mock_free(m);
}

TEST(ping_so_loads_like_in_the_gateway)
{
    mcpgw_mock *m = mcpgw_mock_new();
    char err[256] = "";
    mcpgw_mock_plugin *p = mcpgw_mock_load_file(m, MCPGW_MOCK_PLUGIN_DIR "/ping.so", "ping",
                                                NULL, err, sizeof(err));
    mcpgw_conn *c = mcpgw_mock_conn_new(m, "carol", NULL);
    json_t *r;

    if (!p)
        fprintf(stderr, "  %s\n", err);
    REQUIRE(p != NULL);
    CHECK_EQ_STR(mcpgw_mock_descriptor(p)->name, "ping");
    CHECK(mcpgw_mock_descriptor(p) != &mcpgw_plugin_descriptor);
    mcpgw_mock_message(m, c, "{\"type\":\"ping\",\"id\":3}");
    r = reply_of(m);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "type")), "pong");
    json_decref(r);
    mcpgw_mock_free(m);
}

int main(void)
{
    RUN(ping_answers_pong_with_id_and_timestamp);
    RUN(ping_reply_type_option);
    RUN(ping_refuses_unknown_keys);
    RUN(ping_second_section_for_a_taken_type_is_refused);
    RUN(ping_so_loads_like_in_the_gateway);
    return UNIT_SUMMARY();
}
