/*
 * test_dispatch.c - unit tests of core/dispatch.c: the handler table,
 * routing by type, the protocol's answers (unknown type, bad JSON, failed
 * handlers), asynchronous completion, sub-requests and orphaned requests.
 *
 * A real mcpgw_gateway and mcpgw_server are made from a config written here
 * (no plugin sections; the listener is never used) and the test's own
 * handlers are put into srv.handlers directly. Connections are real
 * mcpgw_conn objects from mcpgw_conn_accept() on one end of a socketpair,
 * upgraded through the real HTTP/JWT path, as fuzz/fuzz_dispatch.c does;
 * what the gateway sends is read back from the other end. No seam in core
 * is needed.
 */
#define _GNU_SOURCE 1   /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jwt.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "host_api.h"
#include "server.h"
#include "transport.h"
#include "ws_frame.h"

#include "unit.h"

#define SECRET "dispatch-test-secret"

static mcpgw_gateway gw;
static mcpgw_server srv;
static const mcpgw_host *host;

typedef struct client {
    mcpgw_conn *conn;
    int peer;
    uint8_t buf[65536];
    size_t len;
} client;

/* ------------------------------------------------------------ plumbing */

static void spin(void)
{
    for (int i = 0; i < 5; i++)
        event_base_loop(srv.base, EVLOOP_NONBLOCK);
}

static int listed(const mcpgw_conn *c)
{
    for (const mcpgw_conn *x = srv.conns; x; x = x->next)
        if (x == c)
            return 1;
    return 0;
}

/* The next frame the gateway sent to cl: its opcode, and its payload in
 * *text (malloc'ed, NUL-terminated), or -1 when none arrived. */
static int next_frame(client *cl, char **text)
{
    mcpgw_ws_frame_header h;
    ssize_t n;

    spin();
    while (cl->len < sizeof(cl->buf) &&
           (n = read(cl->peer, cl->buf + cl->len, sizeof(cl->buf) - cl->len)) > 0)
        cl->len += (size_t)n;
    if (mcpgw_ws_parse_header(cl->buf, cl->len, &h) != MCPGW_WS_PARSE_OK ||
        h.header_len + h.payload_len > cl->len)
        return -1;
    *text = malloc((size_t)h.payload_len + 1);
    memcpy(*text, cl->buf + h.header_len, (size_t)h.payload_len);
    (*text)[h.payload_len] = '\0';
    cl->len -= h.header_len + (size_t)h.payload_len;
    memmove(cl->buf, cl->buf + h.header_len + h.payload_len, cl->len);
    return h.opcode;
}

/* The next text message to cl, parsed (new reference), or NULL. */
static json_t *next_msg(client *cl)
{
    char *text = NULL;
    int op = next_frame(cl, &text);
    json_t *msg = op == MCPGW_WS_OP_TEXT ? json_loads(text, 0, NULL) : NULL;

    free(text);
    return msg;
}

static int nothing_sent(client *cl)
{
    char *text = NULL;
    int op = next_frame(cl, &text);

    free(text);
    return op == -1;
}

static void connect_client(client *cl, const char *user)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    struct sockaddr_in sin;
    char req[1024], *token, *text = NULL;
    int sv[2], n;

    memset(cl, 0, sizeof(*cl));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    mcpgw_conn_accept(&srv, sv[0], (struct sockaddr *)&sin, (int)sizeof(sin), NULL);
    cl->conn = srv.conns;
    cl->peer = sv[1];
    token = mcpgw_auth_mint(JWT_ALG_HS256, (const unsigned char *)SECRET, sizeof(SECRET) - 1,
                            user, 3600, time(NULL));
    n = snprintf(req, sizeof(req),
                 "GET /ws?token=%s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n", token, key);
    free(token);
    if (write(cl->peer, req, (size_t)n) != n)
        abort();
    for (int i = 0; i < 50 && cl->conn->state == MCPGW_CONN_HTTP; i++)
        event_base_loop(srv.base, EVLOOP_NONBLOCK);
    if (cl->conn->state != MCPGW_CONN_OPEN)
        abort();
    /* skip the 101 head and the welcome message */
    spin();
    n = (int)read(cl->peer, cl->buf, sizeof(cl->buf));
    if (n <= 0)
        abort();
    cl->len = (size_t)n;
    {
        uint8_t *end = memmem(cl->buf, cl->len, "\r\n\r\n", 4);
        if (!end)
            abort();
        end += 4;
        cl->len -= (size_t)(end - cl->buf);
        memmove(cl->buf, end, cl->len);
    }
    if (next_frame(cl, &text) != MCPGW_WS_OP_TEXT)
        abort();
    free(text);
}

static void disconnect(client *cl)
{
    if (cl->conn && listed(cl->conn))
        mcpgw_conn_terminate(cl->conn, "test_done");
    cl->conn = NULL;
    close(cl->peer);
    spin();
}

/* A message from cl, as conn.c hands a complete one over. */
static void say(client *cl, const char *text)
{
    mcpgw_conn_ref(cl->conn);
    mcpgw_dispatch_raw(cl->conn, (const uint8_t *)text, strlen(text));
    mcpgw_conn_unref(cl->conn);
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ------------------------------------------------------------ test handlers */

static struct {
    int calls;
    void *data;
    char type[64];
} last;

static mcpgw_request *held[8];
static size_t n_held;

/* Replies {"type":"<type>_reply","id":id,"data":<its tag>}. */
static int h_reply(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)req;
    last.calls++;
    last.data = data;
    snprintf(last.type, sizeof(last.type), "%s", str(msg, "type"));
    *out = json_pack("{s:s+, s:O?, s:s}", "type", str(msg, "type"), "_reply", "id",
                     json_object_get(msg, "id"), "tag", (const char *)data);
    return MCPGW_HANDLER_DONE;
}

static int h_fail(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)req, (void)data;
    last.calls++;
    if (json_object_get(msg, "plain"))
        *out = json_integer(1);         /* not a string: "Handler failed" */
    else
        *out = json_string("it broke");
    return MCPGW_HANDLER_FAILED;
}

static int h_silent(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)req, (void)msg, (void)data;
    last.calls++;
    *out = NULL;
    return MCPGW_HANDLER_DONE;
}

static int h_hold(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    (void)msg, (void)out, (void)data;
    last.calls++;
    held[n_held++] = req;
    return MCPGW_HANDLER_PENDING;
}

/* Sub-request results, in the order the callbacks ran. */
static struct {
    int status;
    char text[128];
} sub_results[8];
static size_t n_sub;
static mcpgw_request *fanout_req;
static int fanout_rc[8];

static void sub_cb(void *cb_data, int status, json_t *result)
{
    size_t *left = cb_data;

    sub_results[n_sub].status = status;
    if (json_is_string(result))
        snprintf(sub_results[n_sub].text, sizeof(sub_results[0].text), "%s",
                 json_string_value(result));
    else
        snprintf(sub_results[n_sub].text, sizeof(sub_results[0].text), "%s",
                 result ? str(result, "type") : "(none)");
    n_sub++;
    if (--*left == 0)
        host->complete(fanout_req, json_pack("{s:s, s:i}", "type", "fanout_done", "n",
                                              (int)n_sub));
}

/* Dispatches every entry of "messages" as a sub-request; completes when
 * they all have their results. */
static int h_fanout(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    static size_t left;
    json_t *subs = json_object_get(msg, "messages"), *m;
    size_t i;

    (void)out, (void)data;
    fanout_req = req;
    left = 1;                           /* a guard until every dispatch returned */
    json_array_foreach(subs, i, m) {
        left++;
        fanout_rc[i] = host->dispatch(req, m, sub_cb, &left);
        if (fanout_rc[i] != 0)
            left--;
    }
    if (--left == 0)
        host->complete(req, json_pack("{s:s, s:i}", "type", "fanout_done", "n", (int)n_sub));
    return MCPGW_HANDLER_PENDING;
}

static char TAG_A[] = "a", TAG_B[] = "b";

static void setup(void)
{
    char text[1024], *errors = NULL;
    mcpgw_config *cfg;

    snprintf(text, sizeof(text),
             "[server]\nlisten = 127.0.0.1:0\npath = /ws\nshutdown_timeout_ms = 0\n"
             "[auth]\njwt_secret = %s\nalgorithms = HS256\n"
             "[heartbeat]\ninterval_ms = 86400000\n[log]\nlevel = off\n", SECRET);
    cfg = mcpgw_config_load_string("test_dispatch.ini", text, &errors);
    if (!cfg || mcpgw_gateway_init(&gw, cfg, ".") != 0 || mcpgw_server_init(&srv, &gw, NULL) != 0) {
        fprintf(stderr, "setup failed: %s\n", errors ? errors : "?");
        exit(1);
    }
    host = mcpgw_host_table();
    if (mcpgw_handler_table_add(&srv.handlers, "a", h_reply, TAG_A, NULL) ||
        mcpgw_handler_table_add(&srv.handlers, "b", h_reply, TAG_B, NULL) ||
        mcpgw_handler_table_add(&srv.handlers, "fail", h_fail, NULL, NULL) ||
        mcpgw_handler_table_add(&srv.handlers, "silent", h_silent, NULL, NULL) ||
        mcpgw_handler_table_add(&srv.handlers, "hold", h_hold, NULL, NULL) ||
        mcpgw_handler_table_add(&srv.handlers, "fanout", h_fanout, NULL, NULL) ||
        mcpgw_handler_table_add(&srv.handlers, "auth", h_reply, TAG_A, NULL))
        exit(1);
}

/* ------------------------------------------------------------ tests */

TEST(table_add_find_remove)
{
    mcpgw_handler_table t;
    char type[32];

    CHECK_EQ_INT(mcpgw_handler_table_init(&t), 0);
    CHECK(mcpgw_handler_table_find(&t, "x") == NULL);
    /* more types than buckets: chains */
    for (int i = 0; i < 300; i++) {
        snprintf(type, sizeof(type), "type-%d", i);
        CHECK_EQ_INT(mcpgw_handler_table_add(&t, type, h_reply, (void *)(long)(i + 1), NULL), 0);
    }
    CHECK_EQ_INT(t.n_entries, 300);
    CHECK_EQ_INT(mcpgw_handler_table_add(&t, "type-7", h_fail, NULL, NULL), -1);   /* taken */
    for (int i = 0; i < 300; i++) {
        const mcpgw_handler_entry *e;
        snprintf(type, sizeof(type), "type-%d", i);
        e = mcpgw_handler_table_find(&t, type);
        CHECK(e && e->fn == h_reply && e->data == (void *)(long)(i + 1));
        CHECK(e && strcmp(e->type, type) == 0);
    }
    CHECK(mcpgw_handler_table_find(&t, "type-300") == NULL);
    CHECK(mcpgw_handler_table_find(&t, "type-") == NULL);
    CHECK_EQ_INT(mcpgw_handler_table_remove_ctx(&t, NULL), 300);
    CHECK_EQ_INT(t.n_entries, 0);
    CHECK(mcpgw_handler_table_find(&t, "type-1") == NULL);
    mcpgw_handler_table_free(&t);
    CHECK(mcpgw_handler_table_find(&t, "type-1") == NULL);     /* freed: finds nothing */
}

TEST(routes_by_type)
{
    client cl;
    json_t *r;

    connect_client(&cl, "alice");
    memset(&last, 0, sizeof(last));
    say(&cl, "{\"type\":\"a\",\"id\":1}");
    CHECK_EQ_INT(last.calls, 1);
    CHECK(last.data == TAG_A);
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "a_reply");
    CHECK_EQ_STR(str(r, "tag"), "a");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);
    say(&cl, "{\"type\":\"b\",\"id\":\"x\"}");
    CHECK(last.data == TAG_B);
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "tag"), "b");
    CHECK_EQ_STR(str(r, "id"), "x");
    json_decref(r);
    /* a reply without a reply: nothing is sent */
    say(&cl, "{\"type\":\"silent\"}");
    CHECK(nothing_sent(&cl));
    /* "auth" is the gateway's own (a token refresh), never a handler's */
    last.calls = 0;
    say(&cl, "{\"type\":\"auth\",\"id\":2}");
    CHECK_EQ_INT(last.calls, 0);
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "error");
    CHECK_EQ_STR(str(r, "message"), "Authentication failed");
    json_decref(r);
    CHECK_EQ_INT(srv.n_requests, 0);
    disconnect(&cl);
}

TEST(unknown_type_and_bad_messages)
{
    client cl;
    json_t *r;
    char big[600];

    connect_client(&cl, "bob");
    say(&cl, "{\"type\":\"nope\",\"id\":5}");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "error");
    CHECK_EQ_STR(str(r, "message"), "Unknown message type: nope");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 5);
    CHECK(json_is_string(json_object_get(r, "timestamp")));
    CHECK(!json_object_get(r, "error"));
    json_decref(r);
    /* a type that is not a string reads as JavaScript prints it */
    say(&cl, "{\"id\":1}");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "message"), "Unknown message type: undefined");
    json_decref(r);
    say(&cl, "{\"type\":1.5}");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "message"), "Unknown message type: 1.5");
    json_decref(r);
    say(&cl, "{\"type\":[1,null,\"x\"]}");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "message"), "Unknown message type: 1,,x");
    json_decref(r);
    say(&cl, "[1]");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "message"), "Unknown message type: undefined");
    json_decref(r);
    /* a long type is cut to 256 bytes */
    memset(big, 'q', sizeof(big));
    memcpy(big, "{\"type\":\"", 9);
    memcpy(big + 9 + 400, "\"}", 3);
    say(&cl, big);
    r = next_msg(&cl);
    CHECK_EQ_INT(strlen(str(r, "message")), strlen("Unknown message type: ") + 256);
    json_decref(r);
    /* not JSON, and null */
    say(&cl, "{\"type\":");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "message"), "Failed to process message");
    CHECK(json_is_string(json_object_get(r, "error")));
    json_decref(r);
    say(&cl, "null");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "error"), "Cannot read properties of null (reading 'type')");
    json_decref(r);
    CHECK_EQ_INT(srv.n_requests, 0);
    disconnect(&cl);
}

TEST(failed_handlers)
{
    client cl;
    json_t *r;

    connect_client(&cl, "carol");
    say(&cl, "{\"type\":\"fail\",\"id\":\"f\"}");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "error");
    CHECK_EQ_STR(str(r, "message"), "Failed to process message");
    CHECK_EQ_STR(str(r, "error"), "it broke");
    CHECK_EQ_STR(str(r, "id"), "f");
    json_decref(r);
    say(&cl, "{\"type\":\"fail\",\"plain\":1}");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "error"), "Handler failed");
    CHECK(!json_object_get(r, "id"));
    json_decref(r);
    disconnect(&cl);
}

TEST(async_completion)
{
    client cl;
    json_t *r;

    connect_client(&cl, "dave");
    n_held = 0;
    say(&cl, "{\"type\":\"hold\",\"id\":1}");
    say(&cl, "{\"type\":\"hold\",\"id\":2}");
    say(&cl, "{\"type\":\"a\",\"id\":3}");          /* others go on meanwhile */
    r = next_msg(&cl);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 3);
    json_decref(r);
    CHECK_EQ_INT(n_held, 2);
    CHECK_EQ_INT(srv.n_requests, 2);
    CHECK_EQ_INT(cl.conn->n_pending, 2);
    CHECK(host->request_conn(held[0]) == cl.conn);
    CHECK(!host->request_orphaned(held[0]));
    host->fail(held[1], "later failure");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "error"), "later failure");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "id")), 2);
    json_decref(r);
    host->complete(held[0], json_pack("{s:s}", "type", "held_reply"));
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "held_reply");
    json_decref(r);
    CHECK_EQ_INT(srv.n_requests, 0);
    CHECK_EQ_INT(cl.conn->n_pending, 0);
    CHECK_EQ_INT(cl.conn->refs, 1);         /* the requests' references are gone */
    disconnect(&cl);
}

TEST(sub_requests)
{
    client cl;
    json_t *r;

    connect_client(&cl, "erin");
    n_held = 0;
    n_sub = 0;
    say(&cl, "{\"type\":\"fanout\",\"id\":\"F\",\"messages\":[{\"type\":\"a\",\"id\":1},"
             "{\"type\":\"zzz\"},{\"type\":\"hold\"},42,{\"type\":\"fail\"},{\"id\":2}]}");
    /* synchronous ones have their results at once; the held one waits */
    CHECK_EQ_INT(n_sub, 3);
    CHECK_EQ_INT(sub_results[0].status, MCPGW_HANDLER_DONE);
    CHECK_EQ_STR(sub_results[0].text, "a_reply");
    CHECK_EQ_INT(sub_results[1].status, MCPGW_HANDLER_FAILED);
    CHECK_EQ_STR(sub_results[1].text, "Unknown message type: zzz");
    CHECK_EQ_INT(sub_results[2].status, MCPGW_HANDLER_FAILED);
    CHECK_EQ_STR(sub_results[2].text, "it broke");
    /* not an object with a string type: -1 and no callback */
    CHECK_EQ_INT(fanout_rc[3], -1);
    CHECK_EQ_INT(fanout_rc[5], -1);
    CHECK_EQ_INT(fanout_rc[0] | fanout_rc[1] | fanout_rc[2] | fanout_rc[4], 0);
    CHECK(nothing_sent(&cl));
    CHECK_EQ_INT(srv.n_requests, 2);       /* the fanout and its held sub-request */
    CHECK_EQ_INT(cl.conn->n_pending, 1);   /* sub-requests are not the client's */
    CHECK(host->request_conn(held[0]) == cl.conn);
    host->complete(held[0], json_pack("{s:s}", "type", "late_sub"));
    CHECK_EQ_INT(n_sub, 4);
    CHECK_EQ_STR(sub_results[3].text, "late_sub");
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "fanout_done");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "n")), 4);
    json_decref(r);
    CHECK_EQ_INT(srv.n_requests, 0);
    r = json_pack("{s:s}", "type", "a");
    CHECK_EQ_INT(host->dispatch(NULL, r, sub_cb, NULL), -1);     /* no parent */
    json_decref(r);
    disconnect(&cl);
}

TEST(orphaned_requests)
{
    client cl;
    mcpgw_conn *c;

    connect_client(&cl, "frank");
    c = cl.conn;
    n_held = 0;
    say(&cl, "{\"type\":\"hold\",\"id\":1}");
    CHECK_EQ_INT(n_held, 1);
    mcpgw_conn_terminate(c, "client_left");
    spin();
    /* the request keeps the connection (as memory) until it ends */
    CHECK(host->request_orphaned(held[0]));
    CHECK(host->request_conn(held[0]) == c);
    CHECK_EQ_INT(srv.n_requests, 1);
    host->complete(held[0], json_pack("{s:s}", "type", "nobody_reads_this"));
    spin();
    CHECK_EQ_INT(srv.n_requests, 0);
    CHECK(!listed(c));
    cl.conn = NULL;
    disconnect(&cl);

    /* failing one is the same */
    connect_client(&cl, "frank");
    n_held = 0;
    say(&cl, "{\"type\":\"hold\"}");
    mcpgw_conn_terminate(cl.conn, "client_left");
    spin();
    host->fail(held[0], "too late");
    CHECK_EQ_INT(srv.n_requests, 0);
    cl.conn = NULL;
    disconnect(&cl);
}

TEST(shutdown_closes_after_the_last_reply)
{
    client cl;
    char *text = NULL;
    json_t *r;

    connect_client(&cl, "grace");
    n_held = 0;
    say(&cl, "{\"type\":\"hold\",\"id\":9}");
    cl.conn->close_when_done = 1;           /* as the server's shutdown sets it */
    CHECK(nothing_sent(&cl));
    host->complete(held[0], json_pack("{s:s}", "type", "last"));
    r = next_msg(&cl);
    CHECK_EQ_STR(str(r, "type"), "last");
    json_decref(r);
    CHECK_EQ_INT(next_frame(&cl, &text), MCPGW_WS_OP_CLOSE);
    CHECK(text && ((unsigned char)text[0] << 8 | (unsigned char)text[1]) == 1001);
    free(text);
    disconnect(&cl);
}

/* A connection keeps its peer as 20 bytes and formats it only for a log
 * line, as it was formatted at the accept before (issue 18). */
TEST(peer_address_formats_as_before)
{
    client cl;
    mcpgw_peer_addr p;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun;
    char buf[MCPGW_PEER_STRLEN];

    connect_client(&cl, "alice");
    CHECK_EQ_STR(mcpgw_conn_peer(cl.conn), "127.0.0.1:40000");
    disconnect(&cl);
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(65535);
    inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
    mcpgw_peer_set(&p, (struct sockaddr *)&sin6);
    CHECK_EQ_STR(mcpgw_peer_format(&p, buf), "::1:65535");
    inet_pton(AF_INET6, "2001:db8:ffff:ffff:ffff:ffff:255.255.255.255", &sin6.sin6_addr);
    mcpgw_peer_set(&p, (struct sockaddr *)&sin6);
    CHECK_EQ_STR(mcpgw_peer_format(&p, buf), "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff:65535");
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &sin6.sin6_addr);
    mcpgw_peer_set(&p, (struct sockaddr *)&sin6);
    CHECK_EQ_STR(mcpgw_peer_format(&p, buf), "::ffff:10.1.2.3:65535");
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    mcpgw_peer_set(&p, (struct sockaddr *)&sun);
    CHECK_EQ_STR(mcpgw_peer_format(&p, buf), "?:0");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    setup();
    RUN(table_add_find_remove);
    RUN(routes_by_type);
    RUN(peer_address_formats_as_before);
    RUN(unknown_type_and_bad_messages);
    RUN(failed_handlers);
    RUN(async_completion);
    RUN(sub_requests);
    RUN(orphaned_requests);
    RUN(shutdown_closes_after_the_last_reply);
    mcpgw_server_free(&srv);
    mcpgw_gateway_free(&gw);
    return UNIT_SUMMARY();
}
