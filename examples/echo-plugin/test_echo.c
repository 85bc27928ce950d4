/*
 * test_echo.c - the echo plugin's unit test, with the mock gateway of the
 * SDK (<mcpgw/mock_host.h>, pkg-config mcpgw-mock): no gateway runs. It
 * loads the built echo.so as the gateway would (a test may instead link
 * echo.c in and pass &mcpgw_plugin_descriptor to mcpgw_mock_load), sends
 * messages from a mock connection and checks what the plugin replied.
 *
 * Build and run: make check
 */
#include <stdio.h>
#include <string.h>
#include <mcpgw/mock_host.h>

static int failed;

#define CHECK(expr) do { \
    if (!(expr)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
                   failed = 1; } } while (0)

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "(none)";
}

int main(void)
{
    const char *keys[] = { "prefix", "echo:", NULL };
    char err[256];
    mcpgw_mock *m = mcpgw_mock_new();
    mcpgw_mock_plugin *p = mcpgw_mock_load_file(m, "./echo.so", "echo", keys, err, sizeof(err));
    mcpgw_conn *alice = mcpgw_mock_conn_new(m, "alice", NULL);
    json_t *rec, *reply;

    if (!p) {
        fprintf(stderr, "cannot load ./echo.so: %s\n", err);
        return 1;
    }

    /* a string payload gets the prefix; id, user and time come back */
    CHECK(mcpgw_mock_message(m, alice, "{\"type\":\"echo\",\"id\":7,\"payload\":\"hi\"}") ==
          MCPGW_HANDLER_DONE);
    rec = mcpgw_mock_next(m, "reply");
    reply = json_object_get(rec, "message");
    CHECK(strcmp(str(reply, "type"), "echo_reply") == 0);
    CHECK(json_integer_value(json_object_get(reply, "id")) == 7);
    CHECK(strcmp(str(reply, "payload"), "echo:hi") == 0);
    CHECK(strcmp(str(reply, "user"), "alice") == 0);
    CHECK(strcmp(str(reply, "timestamp"), "2026-01-01T00:00:00.000Z") == 0);
    json_decref(rec);

    /* any other payload comes back as it is; none is null */
    mcpgw_mock_message(m, alice, "{\"type\":\"echo\",\"payload\":{\"n\":[1,2]}}");
    rec = mcpgw_mock_next(m, "reply");
    reply = json_object_get(rec, "message");
    CHECK(json_array_size(json_object_get(json_object_get(reply, "payload"), "n")) == 2);
    CHECK(!json_object_get(reply, "id"));
    json_decref(rec);
    mcpgw_mock_message(m, alice, "{\"type\":\"echo\"}");
    rec = mcpgw_mock_next(m, "reply");
    CHECK(json_is_null(json_object_get(json_object_get(rec, "message"), "payload")));
    json_decref(rec);

    /* nothing else happened: no broadcast, no log line, nothing pending */
    CHECK(mcpgw_mock_count(m, NULL) == 0);
    CHECK(mcpgw_mock_pending(m) == 0);
    mcpgw_mock_free(m);
    printf("%s\n", failed ? "test_echo: FAILED" : "test_echo: ok");
    return failed;
}
