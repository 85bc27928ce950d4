/*
 * test_agent_status.c - unit tests of plugins/agent_status.c with the mock
 * host (the plugin linked in): the broadcast update, the ack, the options
 * include_sender, require_status and agent_id_claim, and its refusals.
 */
#include <stdlib.h>
#include <string.h>
#include <mcpgw/mock_host.h>

#include "unit.h"

extern const mcpgw_plugin mcpgw_plugin_descriptor;

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static mcpgw_mock *setup(const char *const *keys)
{
    mcpgw_mock *m = mcpgw_mock_new();
    char err[256] = "";

    if (!mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "agent_status", keys, err, sizeof(err))) {
        fprintf(stderr, "  setup: %s\n", err);
        unit_current_failed = 1;
    }
    return m;
}

/* The reason of the oldest "fail" record (copied into a static buffer). */
static const char *fail_reason(mcpgw_mock *m)
{
    static char text[256];
    json_t *r = mcpgw_mock_next(m, "fail");

    snprintf(text, sizeof(text), "%s", r ? str(r, "reason") : "(no fail)");
    json_decref(r);
    return text;
}

TEST(agent_status_broadcasts_and_acks)
{
    mcpgw_mock *m = setup(NULL);
    mcpgw_conn *a = mcpgw_mock_conn_new(m, "alice", NULL);
    mcpgw_conn *b = mcpgw_mock_conn_new(m, "bob", NULL);
    mcpgw_conn *gone = mcpgw_mock_conn_new(m, "carol", NULL);
    json_t *r, *u;

    (void)b;
    mcpgw_mock_conn_end(gone, 1000);
    mcpgw_mock_advance(m, 7);
    CHECK_EQ_INT(mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"id\":\"x\","
                                          "\"agentId\":\"agent-1\",\"status\":\"busy\"}"),
                 MCPGW_HANDLER_DONE);
    /* the update first, to every open connection, the sender included */
    r = mcpgw_mock_next(m, NULL);
    CHECK_EQ_STR(str(r, "what"), "broadcast");
    CHECK(json_is_null(json_object_get(r, "except")));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "recipients")), 2);
    u = json_object_get(r, "message");
    CHECK_EQ_INT(json_object_size(u), 5);
    CHECK_EQ_STR(str(u, "type"), "agent_status_update");
    CHECK_EQ_STR(str(u, "agentId"), "agent-1");
    CHECK_EQ_STR(str(u, "status"), "busy");
    CHECK_EQ_STR(str(u, "from"), "alice");
    CHECK_EQ_STR(str(u, "timestamp"), "2026-01-01T00:00:00.007Z");
    json_decref(r);
    /* then the ack to the sender */
    r = mcpgw_mock_next(m, NULL);
    CHECK_EQ_STR(str(r, "what"), "reply");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "conn")), 1);
    u = json_object_get(r, "message");
    CHECK_EQ_INT(json_object_size(u), 4);
    CHECK_EQ_STR(str(u, "type"), "agent_status_ack");
    CHECK_EQ_STR(str(u, "id"), "x");
    CHECK_EQ_STR(str(u, "agentId"), "agent-1");
    CHECK_EQ_STR(str(u, "timestamp"), "2026-01-01T00:00:00.007Z");
    json_decref(r);
    CHECK_EQ_INT(mcpgw_mock_count(m, NULL), 0);

    /* any status value is passed on; none: the update has none */
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":5,\"status\":{\"cpu\":3}}");
    r = mcpgw_mock_next(m, "broadcast");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(
                 json_object_get(r, "message"), "status"), "cpu")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "message"), "agentId")), 5);
    json_decref(r);
    mcpgw_mock_clear(m);
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a\"}");
    r = mcpgw_mock_next(m, "broadcast");
    CHECK(r && !json_object_get(json_object_get(r, "message"), "status"));
    json_decref(r);
    mcpgw_mock_free(m);
}

TEST(agent_status_refusals)
{
    mcpgw_mock *m = setup(NULL);
    mcpgw_conn *a = mcpgw_mock_conn_new(m, "alice", NULL);

    CHECK_EQ_INT(mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"status\":\"up\"}"),
                 MCPGW_HANDLER_FAILED);
    CHECK_EQ_STR(fail_reason(m), "agent_status requires agentId");
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"\"}");
    CHECK_EQ_STR(fail_reason(m), "agent_status requires agentId");
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":null}");
    CHECK_EQ_STR(fail_reason(m), "agent_status requires agentId");
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":[1]}");
    CHECK_EQ_STR(fail_reason(m), "agentId must be a string or an integer");
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":1.5}");
    CHECK_EQ_STR(fail_reason(m), "agentId must be a string or an integer");
    CHECK_EQ_INT(mcpgw_mock_count(m, NULL), 0);     /* nothing broadcast */
    mcpgw_mock_free(m);
}

TEST(agent_status_options)
{
    const char *no_sender[] = { "include_sender", "false", NULL };
    const char *strict[] = { "require_status", "yes", NULL };
    const char *bad[] = { "include_sender", "maybe", NULL };
    const char *unknown[] = { "include_senders", "true", NULL };
    mcpgw_mock *m = setup(no_sender);
    mcpgw_conn *a = mcpgw_mock_conn_new(m, "alice", NULL);
    mcpgw_conn *b = mcpgw_mock_conn_new(m, "bob", NULL);
    char err[256];
    json_t *r;

    (void)b;
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a\",\"status\":\"s\"}");
    r = mcpgw_mock_next(m, "broadcast");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "except")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "recipients")), 1);
    json_decref(r);
    mcpgw_mock_free(m);

    m = setup(strict);
    a = mcpgw_mock_conn_new(m, "alice", NULL);
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a\"}");
    CHECK_EQ_STR(fail_reason(m), "agent_status requires agentId and status");
    mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a\",\"status\":\"\"}");
    CHECK_EQ_STR(fail_reason(m), "agent_status requires agentId and status");
    CHECK_EQ_INT(mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a\","
                                          "\"status\":\"s\"}"), MCPGW_HANDLER_DONE);
    mcpgw_mock_free(m);

    m = mcpgw_mock_new();
    CHECK(!mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "agent_status", bad, err, sizeof(err)));
    CHECK_EQ_STR(err, "include_sender must be true or false, not 'maybe'");
    CHECK(!mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "agent_status", unknown, err,
                           sizeof(err)));
    CHECK(strstr(err, "unknown key 'include_senders'") != NULL);
    mcpgw_mock_free(m);
}

TEST(agent_status_agent_id_claim)
{
    const char *keys[] = { "agent_id_claim", "agents", NULL };
    mcpgw_mock *m = setup(keys);
    json_t *claims = json_pack("{s:s, s:[s, i]}", "sub", "alice", "agents", "a1", 7);
    mcpgw_conn *a = mcpgw_mock_conn_new(m, "alice", claims);
    mcpgw_conn *none = mcpgw_mock_conn_new(m, "bob", NULL);

    json_decref(claims);
    CHECK_EQ_INT(mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a1\","
                                          "\"status\":\"s\"}"), MCPGW_HANDLER_DONE);
    CHECK_EQ_INT(mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":7,"
                                          "\"status\":\"s\"}"), MCPGW_HANDLER_DONE);
    CHECK_EQ_INT(mcpgw_mock_count(m, "broadcast"), 2);
    mcpgw_mock_clear(m);
    CHECK_EQ_INT(mcpgw_mock_message(m, a, "{\"type\":\"agent_status\",\"agentId\":\"a2\","
                                          "\"status\":\"s\"}"), MCPGW_HANDLER_FAILED);
    CHECK_EQ_STR(fail_reason(m), "agentId is not yours: your token's agents does not name it");
    mcpgw_mock_message(m, none, "{\"type\":\"agent_status\",\"agentId\":\"a1\",\"status\":\"s\"}");
    CHECK_EQ_STR(fail_reason(m), "agentId is not yours: your token's agents does not name it");
    CHECK_EQ_INT(mcpgw_mock_count(m, "broadcast"), 0);
    mcpgw_mock_free(m);
}

int main(void)
{
    RUN(agent_status_broadcasts_and_acks);
    RUN(agent_status_refusals);
    RUN(agent_status_options);
    RUN(agent_status_agent_id_claim);
    return UNIT_SUMMARY();
}
