/*
 * fuzz_dispatch.c - libFuzzer target for JSON dispatch through the handler
 * table with the shipped plugins: core/dispatch.c (mcpgw_dispatch_raw,
 * sub-requests), core/host_api.c, core/conn.c (sending, closing), the
 * broadcast in core/server.c, and plugins/ping, batch and agent_status.
 *
 * Set-up (once): a real mcpgw_gateway and mcpgw_server (mcpgw_server_init()) from a
 * config written here (listener on 127.0.0.1:0, never used), which loads
 * the real plugins with the real loader from MCPGW_FUZZ_PLUGIN_DIR
 * (default: this build's plugins/.libs). Handler sections: ping, ping2
 * (ping with reply_type), batch, batch2 (max_messages 3), agent_status and,
 * when this build has the test plugin tests/plugins/.libs/async_echo.so
 * (`make fuzz` builds it), async (async_echo, delay_ms 0) so that
 * asynchronous completion, batches of pending requests and orphaned
 * requests are reached too. Two client connections are real mcpgw_conn
 * objects made by mcpgw_conn_accept() on one end of a socketpair and
 * upgraded through the real HTTP/JWT path; no test hook in core is needed.
 *
 * Per input: the message is handed to mcpgw_dispatch_raw() on connection 0
 * (as conn.c does for a complete text or binary message), then the event
 * loop runs until no request is pending. An optional first byte in
 * 0x01..0x08 or 0x0e..0x1f (never the start of JSON) holds flags:
 *   0x01  split the rest at '\n' and dispatch each line as a message;
 *   0x02  terminate connection 0 (as a heartbeat timeout does) right after
 *         dispatching, before asynchronous handlers finish;
 *   0x04  close connection 0 (close handshake, 1000) instead;
 *   0x08  send from connection 1 (so connection 0 only sees broadcasts);
 *   0x10  wire mode: the rest is raw bytes from the client, written to the
 *         socket and read by conn.c (frame parsing, masking, control frames,
 *         fragmentation and reassembly, UTF-8, max_payload = 4096, close
 *         handshake) before messages reach dispatch. A zero mask key makes
 *         masked payloads plain text, which the seeds use. A connection
 *         left with a partial frame or message is replaced afterwards, so
 *         each wire input starts from a clean connection.
 *
 * Checks (trap on failure): no request is left pending and every connection
 * still listed holds only the server's reference; everything the gateway
 * sent is a well-formed server frame (unmasked, FIN, no RSV) and every text
 * frame is one JSON object with a string "type" and "timestamp", an
 * "error" reply has a string "message", a "batch_response" has a
 * "responses" array of {"type":"response","status":"success"|"error"}
 * entries (an "error" one with a string "error"); an open sender got at
 * least one frame per message.
 *
 * Environment: MCPGW_FUZZ_PLUGIN_DIR, MCPGW_FUZZ_TEST_PLUGIN_DIR,
 * MCPGW_FUZZ_LOG_LEVEL (default "off"; scripts/fuzz and `make fuzz` use
 * "debug" with -close_fd_mask=2 so the logging paths run too).
 */
#define _GNU_SOURCE 1   /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jwt.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "fuzz_common.h"
#include "server.h"
#include "transport.h"
#include "utf8.h"
#include "ws_frame.h"

#ifndef MCPGW_FUZZ_PLUGIN_DIR
#define MCPGW_FUZZ_PLUGIN_DIR "plugins/.libs"
#endif
#ifndef MCPGW_FUZZ_TEST_PLUGIN_DIR
#define MCPGW_FUZZ_TEST_PLUGIN_DIR "tests/plugins/.libs"
#endif

#define SECRET "fuzz-secret"
#define N_CONNS 2

typedef struct client {
    mcpgw_conn *conn;       /* NULL when not connected */
    int peer;               /* our end of the socketpair */
    char user[32];
} client;

static mcpgw_gateway gw;
static mcpgw_server srv;
static mcpgw_config *cfg;
static client clients[N_CONNS];
static int have_async;
static uint8_t *rx;         /* frames received by one client */
static size_t rx_len, rx_cap;

static void rx_append(const void *p, size_t n)
{
    if (rx_len + n > rx_cap) {
        size_t cap = rx_cap ? rx_cap : 65536;
        while (cap < rx_len + n)
            cap *= 2;
        uint8_t *grown = realloc(rx, cap);
        FUZZ_ASSERT(grown);
        rx = grown;
        rx_cap = cap;
    }
    memcpy(rx + rx_len, p, n);
    rx_len += n;
}

/* Runs the loop until nothing is pending (async handlers with delay 0 fire
 * on the next iteration). */
static void settle(void)
{
    for (int i = 0; i < 200 && srv.n_requests > 0; i++)
        event_base_loop(srv.base, EVLOOP_NONBLOCK);
    event_base_loop(srv.base, EVLOOP_NONBLOCK);
}

/* Is this connection still in the server's list (not freed)? */
static int listed(const mcpgw_conn *c)
{
    for (const mcpgw_conn *x = srv.conns; x; x = x->next)
        if (x == c)
            return 1;
    return 0;
}

/* Everything sent to client cl so far: what reached the socket, then what
 * is still queued. Leaves it in rx. */
static void collect(client *cl)
{
    uint8_t buf[16384];
    ssize_t n;

    rx_len = 0;
    while ((n = read(cl->peer, buf, sizeof(buf))) > 0)
        rx_append(buf, (size_t)n);
    if (cl->conn && listed(cl->conn) && cl->conn->transport) {
        struct evbuffer *out;
        size_t left;

        mcpgw_transport_frames_spill(cl->conn->transport);
        out = mcpgw_transport_out_buf(cl->conn->transport);
        left = evbuffer_get_length(out);
        if (left) {
            const uint8_t *p = evbuffer_pullup(out, (ev_ssize_t)left);
            FUZZ_ASSERT(p);
            rx_append(p, left);
            evbuffer_drain(out, left);
        }
    }
}

static void check_reply(const uint8_t *p, size_t n)
{
    json_error_t err;
    json_t *msg, *type;
    const char *t;

    FUZZ_ASSERT(mcpgw_utf8_valid(p, n));
    msg = json_loadb((const char *)p, n, 0, &err);
    FUZZ_ASSERT(json_is_object(msg));
    type = json_object_get(msg, "type");
    FUZZ_ASSERT(json_is_string(type));
    t = json_string_value(type);
    if (strcmp(t, "async_echo_reply") != 0)
        FUZZ_ASSERT(json_is_string(json_object_get(msg, "timestamp")));
    if (strcmp(t, "error") == 0)
        FUZZ_ASSERT(json_is_string(json_object_get(msg, "message")));
    if (strcmp(t, "batch_response") == 0) {
        json_t *resp = json_object_get(msg, "responses"), *e;
        size_t i;

        FUZZ_ASSERT(json_is_array(resp));
        json_array_foreach(resp, i, e) {
            const char *st = json_string_value(json_object_get(e, "status"));
            FUZZ_ASSERT(json_is_object(e));
            FUZZ_ASSERT(json_is_string(json_object_get(e, "type")) &&
                        strcmp(json_string_value(json_object_get(e, "type")), "response") == 0);
            FUZZ_ASSERT(st && (strcmp(st, "success") == 0 || strcmp(st, "error") == 0));
            if (strcmp(st, "error") == 0)
                FUZZ_ASSERT(json_is_string(json_object_get(e, "error")));
        }
    }
    json_decref(msg);
}

/* Parses rx as server frames; returns the number of data frames. */
static size_t check_frames(void)
{
    size_t pos = 0, frames = 0;

    while (pos < rx_len) {
        mcpgw_ws_frame_header h;
        mcpgw_ws_parse_result r = mcpgw_ws_parse_header(rx + pos, rx_len - pos, &h);

        FUZZ_ASSERT(r == MCPGW_WS_PARSE_OK);
        FUZZ_ASSERT(h.fin && !h.masked && h.rsv == 0);
        FUZZ_ASSERT(h.header_len + h.payload_len <= rx_len - pos);
        pos += h.header_len;
        switch (h.opcode) {
        case MCPGW_WS_OP_TEXT:
            check_reply(rx + pos, (size_t)h.payload_len);
            frames++;
            break;
        case MCPGW_WS_OP_CLOSE:
            /* Empty (the echo of an empty close), or a valid code and UTF-8. */
            FUZZ_ASSERT(h.payload_len != 1 && h.payload_len <= MCPGW_WS_MAX_CONTROL);
            if (h.payload_len >= 2) {
                FUZZ_ASSERT(mcpgw_ws_close_code_valid(((unsigned)rx[pos] << 8) | rx[pos + 1]));
                FUZZ_ASSERT(mcpgw_utf8_valid(rx + pos + 2, (size_t)h.payload_len - 2));
            }
            break;
        case MCPGW_WS_OP_PING:
        case MCPGW_WS_OP_PONG:
            break;
        default:
            FUZZ_ASSERT(!"unexpected opcode from the gateway");
        }
        pos += (size_t)h.payload_len;
    }
    return frames;
}

static void disconnect(client *cl)
{
    if (cl->conn && listed(cl->conn))
        mcpgw_conn_terminate(cl->conn, "fuzz_reset");
    cl->conn = NULL;
    if (cl->peer >= 0)
        close(cl->peer);
    cl->peer = -1;
}

/* A new upgraded connection for cl, through the real accept/HTTP/JWT path. */
static void connect_client(client *cl, int index)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    struct sockaddr_in sin;
    char req[1024];
    char *token;
    int sv[2], n;

    disconnect(cl);
    FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)(40000 + index));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    mcpgw_conn_accept(&srv, sv[0], (struct sockaddr *)&sin, (int)sizeof(sin), NULL);
    FUZZ_ASSERT(srv.conns && srv.conns->transport->fd == sv[0]);
    cl->conn = srv.conns;
    cl->peer = sv[1];

    token = mcpgw_auth_mint(JWT_ALG_HS256, (const unsigned char *)SECRET, sizeof(SECRET) - 1,
                            cl->user, 10L * 365 * 86400, time(NULL));
    FUZZ_ASSERT(token);
    n = snprintf(req, sizeof(req),
                 "GET /ws?token=%s HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n", token, key);
    free(token);
    FUZZ_ASSERT(n > 0 && (size_t)n < sizeof(req));
    FUZZ_ASSERT(write(cl->peer, req, (size_t)n) == n);
    for (int i = 0; i < 50 && cl->conn->state == MCPGW_CONN_HTTP; i++)
        event_base_loop(srv.base, EVLOOP_NONBLOCK);
    FUZZ_ASSERT(cl->conn->state == MCPGW_CONN_OPEN);
    /* Skip the 101 response and the welcome message. */
    settle();
    collect(cl);
    {
        const uint8_t *end = memmem(rx, rx_len, "\r\n\r\n", 4);
        FUZZ_ASSERT(end && memcmp(rx, "HTTP/1.1 101 ", 13) == 0);
        end += 4;
        memmove(rx, end, rx_len - (size_t)(end - rx));
        rx_len -= (size_t)(end - rx);
        FUZZ_ASSERT(check_frames() == 1);
    }
}

static char plugin_dir[256];

static void remove_plugin_dir(void)
{
    static const char *names[] = { "ping", "batch", "agent_status", "async_echo" };
    char path[512];

    if (!plugin_dir[0])
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, names[i]);
        unlink(path);
    }
    rmdir(plugin_dir);
}

/* A temporary plugins dir with symlinks to the shipped plugins and, when
 * built, the asynchronous test plugin (the loader reads DIR/NAME.so). */
static void make_plugin_dir(const char *pdir, const char *tdir)
{
    static const char *shipped[] = { "ping", "batch", "agent_status" };
    const char *tmp = getenv("TMPDIR");
    char src[4096], dst[512];

    snprintf(plugin_dir, sizeof(plugin_dir), "%s/mcpgw-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_ASSERT(mkdtemp(plugin_dir));
    atexit(remove_plugin_dir);
    for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
        snprintf(src, sizeof(src), "%s/%s.so", pdir, shipped[i]);
        snprintf(dst, sizeof(dst), "%s/%s.so", plugin_dir, shipped[i]);
        if (access(src, R_OK) != 0) {
            fprintf(stderr, "fuzz_dispatch: %s not found: build the plugins first "
                    "(make), or set MCPGW_FUZZ_PLUGIN_DIR\n", src);
            abort();
        }
        FUZZ_ASSERT(symlink(src, dst) == 0);
    }
    snprintf(src, sizeof(src), "%s/async_echo.so", tdir);
    snprintf(dst, sizeof(dst), "%s/async_echo.so", plugin_dir);
    have_async = access(src, R_OK) == 0 && symlink(src, dst) == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *pdir = getenv("MCPGW_FUZZ_PLUGIN_DIR");
    const char *tdir = getenv("MCPGW_FUZZ_TEST_PLUGIN_DIR");
    const char *level = getenv("MCPGW_FUZZ_LOG_LEVEL");
    char text[8192], *errors = NULL;
    int n;

    (void)argc;
    (void)argv;
    if (!pdir)
        pdir = MCPGW_FUZZ_PLUGIN_DIR;
    if (!tdir)
        tdir = MCPGW_FUZZ_TEST_PLUGIN_DIR;
    if (!level)
        level = "off";
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    make_plugin_dir(pdir, tdir);

    n = snprintf(text, sizeof(text),
                 "[server]\nlisten = 127.0.0.1:0\npath = /ws\nshutdown_timeout_ms = 0\n"
                 "max_payload = 4096\n"
                 "[auth]\njwt_secret = %s\nalgorithms = HS256\nmax_connections_per_user = 1000\n"
                 "[heartbeat]\ninterval_ms = 86400000\n"
                 "[log]\nlevel = %s\n"
                 "[plugins]\ndir = %s\n"
                 "[handler.ping]\nplugin = ping\n"
                 "[handler.ping2]\nplugin = ping\nreply_type = pong2\n"
                 "[handler.batch]\nplugin = batch\nmax_messages = 100\n"
                 "[handler.batch2]\nplugin = batch\nmax_messages = 3\n"
                 "[handler.agent_status]\nplugin = agent_status\n%s",
                 SECRET, level, plugin_dir,
                 have_async ? "[handler.async]\nplugin = async_echo\ndelay_ms = 0\n" : "");
    FUZZ_ASSERT(n > 0 && (size_t)n < sizeof(text));
    cfg = mcpgw_config_load_string("fuzz_dispatch.ini", text, &errors);
    if (!cfg) {
        fprintf(stderr, "fuzz_dispatch: bad config:\n%s\n", errors ? errors : "?");
        abort();
    }
    /* conf_dir (read again on SIGHUP, never sent here): the plugin dir. */
    if (mcpgw_gateway_init(&gw, cfg, plugin_dir) != 0 || mcpgw_server_init(&srv, &gw, NULL) != 0) {
        fprintf(stderr, "fuzz_dispatch: mcpgw_server_init failed (plugins in %s)\n", pdir);
        abort();
    }
    /* Leave SIGINT/SIGTERM to libFuzzer. */
    if (srv.sigint_ev)
        event_del(srv.sigint_ev);
    if (srv.sigterm_ev)
        event_del(srv.sigterm_ev);
    for (int i = 0; i < N_CONNS; i++) {
        clients[i].peer = -1;
        snprintf(clients[i].user, sizeof(clients[i].user), "fuzz-user-%d", i);
    }
    return 0;
}

static void dispatch_one(mcpgw_conn *c, const uint8_t *p, size_t n)
{
    /* An exact-size copy, as conn.c's reassembly buffer may be. */
    uint8_t *copy = malloc(n ? n : 1);

    FUZZ_ASSERT(copy);
    memcpy(copy, p, n);
    mcpgw_conn_ref(c);
    mcpgw_dispatch_raw(c, copy, n);
    mcpgw_conn_unref(c);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags = 0;
    size_t messages = 0, frames[N_CONNS];
    int sender, sender_open;
    client *from;

    if (size && ((data[0] >= 0x01 && data[0] <= 0x08) || (data[0] >= 0x0e && data[0] <= 0x1f))) {
        flags = data[0];
        data++;
        size--;
    }
    sender = (flags & 0x08) ? 1 : 0;

    for (int i = 0; i < N_CONNS; i++)
        if (!clients[i].conn || !listed(clients[i].conn) ||
            clients[i].conn->state != MCPGW_CONN_OPEN)
            connect_client(&clients[i], i);
    from = &clients[sender];

    if (flags & 0x10) {
        /* The socket buffer takes any input libFuzzer makes (-max_len). */
        size_t off = 0;
        for (int i = 0; off < size && i < 1000; i++) {
            ssize_t w = write(from->peer, data + off, size - off);
            if (w > 0)
                off += (size_t)w;
            else
                FUZZ_ASSERT(errno == EAGAIN || errno == EWOULDBLOCK || errno == EPIPE ||
                            errno == ECONNRESET);
            if (w <= 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                break;
            event_base_loop(srv.base, EVLOOP_NONBLOCK);
        }
        for (int i = 0; i < 3; i++)
            event_base_loop(srv.base, EVLOOP_NONBLOCK);
    } else if (flags & 0x01) {
        const uint8_t *p = data, *end = data + size;
        while (p <= end && listed(from->conn) && from->conn->state == MCPGW_CONN_OPEN) {
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            const uint8_t *e = nl ? nl : end;
            dispatch_one(from->conn, p, (size_t)(e - p));
            messages++;
            if (!nl)
                break;
            p = nl + 1;
        }
    } else {
        dispatch_one(from->conn, data, size);
        messages = 1;
    }

    /* In wire mode the gateway may have dropped the connection already. */
    if (!listed(from->conn))
        ;
    else if (flags & 0x02)
        mcpgw_conn_terminate(from->conn, "fuzz_terminate");
    else if (flags & 0x04)
        mcpgw_conn_close(from->conn, MCPGW_WS_CLOSE_NORMAL, "fuzz close");
    settle();

    FUZZ_ASSERT(srv.n_requests == 0);
    for (mcpgw_conn *c = srv.conns; c; c = c->next)
        FUZZ_ASSERT(c->refs == 1);

    sender_open = from->conn && listed(from->conn) && from->conn->state == MCPGW_CONN_OPEN;
    for (int i = 0; i < N_CONNS; i++) {
        collect(&clients[i]);
        frames[i] = check_frames();
    }
    if (sender_open && !(flags & 0x16))
        FUZZ_ASSERT(frames[sender] >= messages);
    /* A partial frame or an unfinished fragmented message would carry over
     * to the next input: then the next input starts on a fresh connection,
     * so that a crash input reproduces alone. */
    if ((flags & 0x10) && listed(from->conn) &&
        (from->conn->state != MCPGW_CONN_OPEN || from->conn->ws_in ||
         mcpgw_transport_in_len(from->conn->transport) > 0))
        disconnect(from);
    (void)frames;
    return 0;
}
