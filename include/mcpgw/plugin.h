/*
 * mcpgw/plugin.h - the whole contract between the mcpgw gateway and a
 * message-handler plugin. A plugin author reads this file and nothing else.
 *
 * TWO KINDS OF PLUGIN
 *   A message-handler plugin serves [handler.TYPE] sections of the gateway
 *   protocol ({"type": ...} messages). A connection-level plugin (ABI 1.3)
 *   serves an [endpoint.NAME] section with protocol = jsonrpc: it sees the
 *   endpoint's connections open and close and gets every message of them
 *   whole (a JSON-RPC object or batch array), with per-connection data, and
 *   answers with host->send_text() whenever it likes. See CONNECTION-LEVEL
 *   PLUGINS below. One .so may be both.
 *
 * WHAT A PLUGIN IS
 *   A shared object (NAME.so in the [plugins] dir) that exports one const
 *   object named `mcpgw_plugin_descriptor` of type mcpgw_plugin; use the
 *   MCPGW_PLUGIN_DEFINE() macro. The gateway loads it (dlopen RTLD_NOW |
 *   RTLD_LOCAL) for every [handler.TYPE] section whose `plugin = NAME`, and
 *   calls init() once per such section with that section's context. init()
 *   registers handlers, normally for the section's own type:
 *       host->register_handler(ctx, host->handler_type(ctx), fn, data);
 *   A plugin never links against the gateway: every service it needs comes
 *   through the `mcpgw_host` table handed to init(). It links only against
 *   the libraries it uses itself (jansson, and libevent if it sets timers).
 *
 * THREADING
 *   Every callback (init, fini, handlers, dispatch callbacks, posted
 *   functions) runs on the gateway's event-loop thread, and every host
 *   function must be called from that thread, with one exception:
 *   host->post(), which any thread may call to have a function run on the
 *   loop thread (to finish work done elsewhere). A handler must not block:
 *   no sleeping, no synchronous network or disk I/O.
 *
 * PROCESSES
 *   The gateway runs [server] workers processes under a supervisor. Each
 *   worker loads every plugin itself: init() runs once per section in each
 *   worker, and a plugin's globals and instances are per worker, as is its
 *   event loop. Nothing a plugin holds is shared with another worker (use a
 *   file, a database or another service for that). host->worker() (ABI
 *   1.2) tells which worker this is. A worker that crashes, or whose
 *   handler runs past [server] handler_watchdog_ms, is replaced by a fresh
 *   one (its plugins are initialised anew); the other workers are not
 *   touched.
 *
 * OWNERSHIP (jansson reference counts)
 *   - The message passed to a handler is borrowed: valid until the handler
 *     returns. To keep it (for an asynchronous answer), json_incref() it.
 *   - A reply returned through *out is a new reference the gateway takes.
 *   - host->complete() steals the reply; host->send() and host->broadcast()
 *     borrow the message (it is serialised before they return).
 *   - host->log() steals its fields object.
 *   - Strings returned by the host (user id, option values, timestamp) are
 *     owned by the gateway; the comment of each function says how long they
 *     stay valid. Copy what you keep.
 *   - A raw handler's view (ABI 1.4), the member texts it gives and the
 *     strings view_string() decodes are valid until the handler returns;
 *     the reply buffer is the gateway's (fill it, do not keep it); a
 *     mcpgw_buf the plugin keeps itself is freed with host->buf_free().
 *     broadcast_text() copies its text.
 *   - A mcpgw_request stays valid until the plugin completes or fails it;
 *     the mcpgw_conn it names stays valid (as memory) just as long, even if
 *     the client has gone (see host->request_orphaned()).
 *
 * CONNECTION-LEVEL PLUGINS (ABI 1.3)
 *   For each [endpoint.NAME] section naming it, the plugin's init() runs
 *   once (host->handler_type() returns NAME) and registers no handler.
 *   Then, for each WebSocket connection upgraded on the endpoint's path:
 *     conn_open(instance, conn, &conn_data)   once, after the 101;
 *     conn_message(instance, conn, conn_data, msg, text, len)   per message;
 *     conn_close(instance, conn, conn_data, code)   exactly once, when the
 *       connection has ended (also at shutdown and when a reload removes the
 *       endpoint); free conn_data here.
 *   The conn handle is valid from conn_open until conn_close returns; do not
 *   keep it past that. host->send_text() and host->close() may be called at
 *   any time in between (from a timer, a child's output, ...).
 *   The same endpoint also serves MCP Streamable HTTP: then a conn is an
 *   HTTP session (from initialize, or the gateway's own hidden session of
 *   a 2026-07-28 client, to DELETE, idleness or host->close()), not one
 *   TCP connection; the calls and their order are the same, and what
 *   send_text() sends is routed by the gateway to the HTTP answer of its
 *   request (host->conn_queued() then sums the bytes queued on those
 *   answers). For a hidden session, conn_message() may run from inside the
 *   plugin's own send_text() (the answer to the initialize the gateway
 *   sent releases the requests that waited for it).
 *   A message is a JSON object or a non-empty JSON array (a batch) that
 *   parsed; the gateway answers everything else itself with the JSON-RPC
 *   errors -32700 (parse error) and -32600 (invalid request), and closes a
 *   binary message with 1003. The plugin checks the members.
 *
 *   Services for them: one-shot timers (host->timer_start), and child
 *   processes (host->child_spawn) whose pipes the loop services: stdout is
 *   cut into lines for a callback, stdin is a bounded queue, stderr lines
 *   go to the gateway's log (rate limited). A child gets exactly the
 *   environment the plugin lists (never the gateway's), its own process
 *   group, default signal dispositions and no descriptor but its three
 *   pipes; stopping it signals the whole group.
 *
 * TESTING
 *   <mcpgw/mock_host.h> (libmcpgw-mock, pkg-config mcpgw-mock) is a mock
 *   gateway implementing this whole host table, for a plugin's own unit
 *   tests without a gateway: load the plugin, send it messages, drive its
 *   timers and asynchronous completions by hand, and check what it did.
 *
 * VERSIONING
 *   The descriptor carries the ABI major and minor the plugin was built
 *   against and its own size. The loader refuses a plugin whose major
 *   differs, whose minor is newer than the gateway's, or whose descriptor
 *   is smaller than the 1.0 layout. Minor versions only append members to
 *   the descriptor and the host table; the host table's `size` tells a
 *   plugin which members exist (MCPGW_HOST_HAS()), so a plugin built for a
 *   newer minor can still run on an older gateway when it checks.
 *   1.1: reload. 1.2: worker(). 1.3: connection-level plugins, config_keys.
 *   1.4: handlers without a tree (register_raw_handler, view_*, buf_*,
 *   broadcast_text); the shipped ping and agent_status use them when
 *   MCPGW_HOST_HAS(host, broadcast_text) and still declare 1.3, so they
 *   load on 1.3 gateways with their tree handlers alone.
 */
#ifndef MCPGW_PLUGIN_H
#define MCPGW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCPGW_PLUGIN_ABI_MAJOR 1
#define MCPGW_PLUGIN_ABI_MINOR 4

/* Opaque handles. */
typedef struct mcpgw_plugin_ctx mcpgw_plugin_ctx; /* one [handler.TYPE] section */
typedef struct mcpgw_conn mcpgw_conn;             /* one WebSocket client */
typedef struct mcpgw_request mcpgw_request;       /* one message being handled */
typedef struct mcpgw_timer mcpgw_timer;           /* a pending one-shot timer (1.3) */
typedef struct mcpgw_child mcpgw_child;           /* a child process (1.3) */
typedef struct mcpgw_view mcpgw_view;             /* a message read without a tree (1.4) */
struct event_base;

/* What a handler returns. */
enum {
    MCPGW_HANDLER_DONE = 0,     /* *out = the reply (new reference), or NULL for none */
    MCPGW_HANDLER_PENDING = 1,  /* the plugin will call host->complete() or host->fail() later */
    MCPGW_HANDLER_FAILED = -1,  /* *out = a JSON string with the reason (new reference), or NULL */
    MCPGW_HANDLER_DECLINED = 2  /* raw handlers only (1.4): run the type's tree handler instead */
};

/* Log levels for host->log(). */
enum {
    MCPGW_PLUGIN_LOG_DEBUG = 0,
    MCPGW_PLUGIN_LOG_INFO = 1,
    MCPGW_PLUGIN_LOG_WARN = 2,
    MCPGW_PLUGIN_LOG_ERROR = 3
};

/*
 * A message handler. `msg` is the parsed message (a JSON object with a
 * string "type"), borrowed. `handler_data` is what was registered.
 *
 * For a top-level message the gateway sends a DONE reply to the client as
 * is; a FAILED result becomes {"type":"error","message":"Failed to process
 * message","error":<reason>,...}. Inside a batch the result becomes the
 * sub-message's {"status":"success","result":<reply>} or
 * {"status":"error","error":<reason>}.
 *
 * A handler may call host->complete()/host->fail() on its request before it
 * returns PENDING (for example when a dispatched sub-request finished at
 * once); it must not return DONE or FAILED after doing so.
 */
typedef int (*mcpgw_handler_fn)(mcpgw_request *req, json_t *msg, json_t **out,
                                void *handler_data);

/*
 * Called when a message given to host->dispatch() has its result. status is
 * MCPGW_HANDLER_DONE (result = the reply, possibly NULL) or
 * MCPGW_HANDLER_FAILED (result = a JSON string with the reason). `result` is
 * borrowed: json_incref() it to keep it. Runs exactly once per successful
 * dispatch() call, possibly before dispatch() returns.
 */
typedef void (*mcpgw_dispatch_cb)(void *cb_data, int status, json_t *result);

/*
 * HANDLERS WITHOUT A TREE (ABI 1.4)
 *   A type's handler may have a raw twin (host->register_raw_handler) that
 *   the gateway calls instead for a top-level message of that type: it gets
 *   the message as received, behind a view that finds a top-level member by
 *   key without building a jansson tree, and writes its reply as JSON text
 *   itself. No value is allocated for the message nor for the reply. The
 *   tree handler stays: it serves the messages of a batch (host->dispatch),
 *   and whatever the raw handler declines.
 *
 *   The gateway has already checked, in its one pass over the text, that
 *   the message is exactly what the tree handler would have been given: one
 *   JSON object that its parser accepts (so an invalid message is refused
 *   with the same error as ever), with a string "type", passing the
 *   section's require_claim, max_message_bytes and broadcast_per_s. A
 *   member the view finds is the one the tree would hold: for a duplicate
 *   key the last, with keys compared after their escapes are decoded.
 */

/* A top-level member of a viewed message (host->view_get). */
typedef struct mcpgw_member {
    int kind;                   /* MCPGW_JSON_*; MCPGW_JSON_ABSENT: no such member */
    const char *text;           /* its JSON text as received, text[0..len) (not
                                   NUL-terminated): valid until the handler returns */
    size_t len;
    int64_t integer;            /* the value, when kind is MCPGW_JSON_INTEGER */
} mcpgw_member;

/* Member kinds: what the tree would hold (json_typeof). An integer that
 * does not fit json_int_t is a REAL there, and so here. */
enum {
    MCPGW_JSON_ABSENT = 0,
    MCPGW_JSON_OBJECT,
    MCPGW_JSON_ARRAY,
    MCPGW_JSON_STRING,
    MCPGW_JSON_INTEGER,
    MCPGW_JSON_REAL,
    MCPGW_JSON_TRUE,
    MCPGW_JSON_FALSE,
    MCPGW_JSON_NULL
};

/* A growable text buffer the host's buf_* functions append to. A plugin
 * may read data[0..len) and set len to a smaller value (0 empties it), and
 * must leave data and cap alone: the host allocates. One the plugin keeps
 * itself starts as { NULL, 0, 0 } and ends with host->buf_free(). */
typedef struct mcpgw_buf {
    char *data;
    size_t len;
    size_t cap;
} mcpgw_buf;

/*
 * A raw handler (ABI 1.4). `msg` is the message's view, valid until the
 * handler returns; `reply` is an empty buffer of the gateway's. It returns:
 *   MCPGW_HANDLER_DONE      reply holds the reply, one JSON object as
 *                           compact UTF-8 text the gateway sends as is (the
 *                           handler wrote it; the buf_* functions write
 *                           strings and members as the gateway's own writer
 *                           does, byte for byte); empty: no reply;
 *   MCPGW_HANDLER_FAILED    reply holds the reason as plain UTF-8 text (not
 *                           JSON); empty: "Handler failed";
 *   MCPGW_HANDLER_DECLINED  nothing was done: the gateway builds the tree and
 *                           runs the type's tree handler (no policy is
 *                           checked twice). Whatever was written is dropped.
 * It answers at once: never PENDING (taken as FAILED), and it must not call
 * host->complete() or host->fail() on req; return DECLINED to answer
 * later from the tree handler.
 */
typedef int (*mcpgw_raw_handler_fn)(mcpgw_request *req, mcpgw_view *msg, mcpgw_buf *reply,
                                    void *handler_data);

/*
 * A child process to start (host->child_spawn, ABI 1.3). Everything is
 * copied before child_spawn returns.
 */
typedef struct mcpgw_child_spec {
    /* argv[0] is an absolute path, or a name looked up in the gateway's
     * PATH. NULL-terminated. No shell is involved. */
    const char *const *argv;
    /* The child's whole environment, "KEY=VALUE" strings, NULL-terminated;
     * NULL means an empty environment. Nothing else is passed. */
    const char *const *envp;
    const char *cwd;            /* NULL: the gateway's working directory */
    size_t max_line;            /* longest stdout line (0: 4 MiB); past it the child is killed */
    size_t max_queue;           /* stdin bytes child_write may queue (0: 4 MiB) */
    /* One stdout line, without its newline; `line` is valid until return. */
    void (*on_line)(void *arg, const char *line, size_t len);
    /* The child ended (`status` as from waitpid) and every line it wrote was
     * delivered (up to 1 s after its exit, for a descendant that kept the
     * pipe open). Runs exactly once unless child_stop() came first; the
     * handle is freed when it returns. When the child exits, whatever is
     * left in its process group is killed. */
    void (*on_exit)(void *arg, int status);
    void *arg;
} mcpgw_child_spec;

/* Metrics a connection-level plugin reports for its endpoint (host->metric). */
enum {
    MCPGW_METRIC_CHILDREN = 0,      /* gauge delta: children running (+1 / -1) */
    MCPGW_METRIC_CHILD_RESTART,     /* counter: label = reason ("crash", "exit",
                                       "timeout", "line_too_long") */
    MCPGW_METRIC_REQUEST,           /* a request finished: label = method, value =
                                       seconds it took */
    MCPGW_METRIC_REQUEST_ERROR      /* a request ended with a JSON-RPC error: label = method */
};

typedef struct mcpgw_host {
    uint32_t size;              /* sizeof(mcpgw_host) in the gateway */
    uint16_t abi_major;
    uint16_t abi_minor;

    /* --- registration and configuration --------------------------------- */

    /* Routes messages of `type` to fn. Only during init(). Returns 0, or -1
     * when the type is already handled (the loader then refuses the plugin)
     * or the arguments are invalid. */
    int (*register_handler)(mcpgw_plugin_ctx *ctx, const char *type,
                            mcpgw_handler_fn fn, void *handler_data);
    /* The TYPE of the [handler.TYPE] section this ctx stands for; valid for
     * the plugin's lifetime. */
    const char *(*handler_type)(mcpgw_plugin_ctx *ctx);
    /* The value of `key` in the section, or NULL. Valid until fini(). */
    const char *(*config_get)(mcpgw_plugin_ctx *ctx, const char *key);
    /* Calls fn for every key of the section except `plugin`, in file order;
     * stops early when fn returns non-zero and returns that value. */
    int (*config_foreach)(mcpgw_plugin_ctx *ctx,
                          int (*fn)(const char *key, const char *value, void *arg),
                          void *arg);

    /* --- services ---------------------------------------------------------- */

    /* Writes a structured log line {"level","event",fields...,"plugin",
     * "timestamp"}. fields may be NULL; it is stolen. Never log tokens. */
    void (*log)(mcpgw_plugin_ctx *ctx, int level, const char *event, json_t *fields);
    /* ISO 8601 UTC time with milliseconds ("2026-11-25T16:00:00.123Z") of
     * the current loop iteration. Valid until the callback returns. */
    const char *(*timestamp)(mcpgw_plugin_ctx *ctx);
    /* The gateway's event loop, for plugins that set their own timers. */
    struct event_base *(*event_base)(mcpgw_plugin_ctx *ctx);
    /* Thread-safe: runs fn(arg) on the loop thread soon. Returns 0 or -1. */
    int (*post)(mcpgw_plugin_ctx *ctx, void (*fn)(void *arg), void *arg);

    /* --- requests ---------------------------------------------------------- */

    /* The connection the request came from. */
    mcpgw_conn *(*request_conn)(mcpgw_request *req);
    /* 1 when the connection has closed since the request arrived: a reply
     * would go nowhere (complete() still must be called, to free it). */
    int (*request_orphaned)(mcpgw_request *req);
    /* Finishes a PENDING request with a reply (stolen; NULL for none). */
    void (*complete)(mcpgw_request *req, json_t *reply);
    /* Finishes a PENDING request as failed with a reason (copied). */
    void (*fail)(mcpgw_request *req, const char *reason);
    /* Runs msg (borrowed) through the handler table as a sub-request of
     * parent, on parent's connection; cb receives its result exactly once.
     * An unknown type yields FAILED "Unknown message type: X". Returns 0,
     * or -1 (cb not called) when msg is not an object with a string type. */
    int (*dispatch)(mcpgw_request *parent, json_t *msg, mcpgw_dispatch_cb cb,
                    void *cb_data);

    /* --- connections ------------------------------------------------------- */

    /* The authenticated user id. Valid while the conn is. */
    const char *(*conn_user)(mcpgw_conn *conn);
    /* The token's claims object (borrowed, read-only). */
    json_t *(*conn_claims)(mcpgw_conn *conn);
    /* A number unique among the connections of every worker of this
     * gateway since it started. */
    uint64_t (*conn_id)(mcpgw_conn *conn);
    /* Sends msg (borrowed) to one client. 0, or -1 if it has closed. */
    int (*send)(mcpgw_conn *conn, json_t *msg);
    /* Sends msg (borrowed) to every open connection of every worker except
     * `except` (may be NULL), serialising it once (the other workers get it
     * through the gateway's bus). Returns the number of recipients: here,
     * plus those open on the other workers. */
    size_t (*broadcast)(mcpgw_plugin_ctx *ctx, json_t *msg, mcpgw_conn *except);

    /* --- ABI 1.2 ------------------------------------------------------- */
    /* This worker's number, 0 .. workers - 1 (a replacement keeps the number
     * of the worker it replaces); *n_workers (may be NULL) gets how many
     * workers run. */
    int (*worker)(mcpgw_plugin_ctx *ctx, int *n_workers);

    /* --- ABI 1.3: connection-level plugins --------------------------- */
    /* Sends text[0..len) (valid UTF-8, copied) as one text message. 0, or
     * -1 when the connection is not open. */
    int (*send_text)(mcpgw_conn *conn, const char *text, size_t len);
    /* Starts the closing handshake with an RFC 6455 code a server may send
     * (1000, 1001, 1003, 1007, 1008, 1009, 1011-1014, 3000-4999; any other
     * becomes 1011) and a UTF-8 reason (copied; cut to 123 bytes at a
     * character boundary). Never calls conn_close itself: that comes when
     * the connection has ended, from the loop. */
    void (*close)(mcpgw_conn *conn, int code, const char *reason);
    /* Bytes queued for the client and not yet written: a plugin that
     * produces faster than the client reads pauses above its own mark. */
    size_t (*conn_queued)(mcpgw_conn *conn);
    /* Calls fn(arg) once, ms milliseconds from now, on the loop thread.
     * The handle is valid until fn is called or timer_cancel(); NULL when
     * out of memory. */
    mcpgw_timer *(*timer_start)(mcpgw_plugin_ctx *ctx, unsigned ms, void (*fn)(void *arg),
                                void *arg);
    void (*timer_cancel)(mcpgw_timer *t);
    /* Starts a child process (see mcpgw_child_spec). NULL on failure, with
     * the reason in err. */
    mcpgw_child *(*child_spawn)(mcpgw_plugin_ctx *ctx, const mcpgw_child_spec *spec,
                                char *err, size_t err_len);
    /* Queues data for the child's stdin (copied). 0, or -1 when the queue
     * would pass max_queue or stdin is closed (nothing is queued). */
    int (*child_write)(mcpgw_child *ch, const char *data, size_t len);
    /* Bytes queued for the child's stdin. */
    size_t (*child_queued)(mcpgw_child *ch);
    /* Stops (1) or resumes (0) reading the child's stdout. */
    void (*child_pause)(mcpgw_child *ch, int paused);
    /* Ends the child: what is queued for stdin is written, stdin closed,
     * then the process group gets SIGTERM after grace_ms / 2 and SIGKILL
     * after grace_ms if it is still there. No callback runs for ch after
     * this call and the handle is invalid; the gateway reaps the child. */
    void (*child_stop)(mcpgw_child *ch, unsigned grace_ms);
    /* The child's process id (also its process group id). */
    long (*child_pid)(mcpgw_child *ch);
    /* Reports a metric of the endpoint (MCPGW_METRIC_*): shows in /metrics
     * with endpoint="NAME". label may be NULL where none is needed. */
    void (*metric)(mcpgw_plugin_ctx *ctx, int which, const char *label, double value);
    /* The gateway's own JSON reader (several times faster than
     * json_loadb, same limits as for client messages): a new reference,
     * or NULL when text[0..len) is not one JSON value. */
    json_t *(*json_parse)(mcpgw_plugin_ctx *ctx, const char *text, size_t len);
    /* Serialises msg (borrowed) compactly with the gateway's writer and
     * queues it, plus a newline, for the child's stdin: child_write() of a
     * JSON line without the plugin's serialising. 0, or -1 as child_write. */
    int (*child_write_json)(mcpgw_child *ch, json_t *msg);
    /* Does the connection's token carry claim = value? A string claim
     * equals it, a list holds it, a number or boolean prints as it ("3",
     * "true"): the rule require_claim applies everywhere in the gateway. */
    int (*claim_matches)(mcpgw_conn *conn, const char *claim, const char *value);

    /* --- ABI 1.4: handlers without a tree (see HANDLERS WITHOUT A TREE) -- */
    /* Gives the handler this ctx registered for `type` a raw twin. Only
     * during init(), after register_handler() for the same type. 0, or -1
     * (no such handler of this ctx, one twin already, bad arguments). */
    int (*register_raw_handler)(mcpgw_plugin_ctx *ctx, const char *type,
                                mcpgw_raw_handler_fn fn, void *handler_data);
    /* Finds the top-level member `key` (a C string, compared with the
     * decoded keys; the last of duplicates). Fills *m and returns its kind,
     * MCPGW_JSON_ABSENT (0) when there is none. */
    int (*view_get)(mcpgw_view *msg, const char *key, mcpgw_member *m);
    /* The decoded text of a string member (escapes resolved; no NUL inside),
     * NUL-terminated, *len (may be NULL) its length; NULL when m is not a
     * string (or out of memory). Valid until the handler returns. */
    const char *(*view_string)(mcpgw_view *msg, const mcpgw_member *m, size_t *len);
    /* The whole message as received; valid until the handler returns. */
    const char *(*view_text)(mcpgw_view *msg, size_t *len);
    /* Appends bytes[0..len) as they are. 0, or -1 (out of memory). */
    int (*buf_append)(mcpgw_buf *b, const char *bytes, size_t len);
    /* Appends s[0..len) as a JSON string, quoted and escaped as the
     * gateway's writer does. 0, or -1 (invalid UTF-8, out of memory:
     * then nothing is appended). */
    int (*buf_string)(mcpgw_buf *b, const char *s, size_t len);
    /* Appends a member's value as the gateway would write the tree's
     * value: not its text as received ("\u0041" is written "A", -0 is 0,
     * 1e2 is 100.0), so a reply that echoes a member is byte for byte the
     * tree handler's. 0, or -1 (absent member, out of memory: nothing is
     * appended). */
    int (*buf_member)(mcpgw_buf *b, const mcpgw_member *m);
    /* Frees a buffer's memory and empties it. */
    void (*buf_free)(mcpgw_buf *b);
    /* broadcast() of a message the plugin serialised itself: text[0..len)
     * (one JSON object, valid UTF-8; copied) goes to every open connection
     * of every worker except `except`. Returns the number of recipients as
     * broadcast() does. */
    size_t (*broadcast_text)(mcpgw_plugin_ctx *ctx, const char *text, size_t len,
                             mcpgw_conn *except);
} mcpgw_host;

/* Does this host table have member `m`? For members added after 1.0. */
#define MCPGW_HOST_HAS(host, m) \
    ((host)->size >= offsetof(mcpgw_host, m) + sizeof((host)->m))

/* The descriptor a plugin exports as `mcpgw_plugin_descriptor`. */
typedef struct mcpgw_plugin {
    uint16_t abi_major;         /* MCPGW_PLUGIN_ABI_MAJOR at build time */
    uint16_t abi_minor;         /* MCPGW_PLUGIN_ABI_MINOR at build time */
    uint32_t size;              /* sizeof(mcpgw_plugin) at build time */
    const char *name;           /* short name, e.g. "ping" */
    const char *version;        /* the plugin's own version, e.g. "1.0.0" */
    const char *description;    /* one line, may be NULL */
    /*
     * Mandatory. Called once per [handler.TYPE] section naming this plugin.
     * Register handlers here. *instance may be set to per-section state that
     * fini() gets back. Return 0, or non-zero to refuse with a reason written
     * to err (err_len bytes): the gateway then stops with that message.
     */
    int (*init)(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                char *err, size_t err_len);
    /* Optional. Called at shutdown (or when a reload removes the section)
     * once per successful init(), in reverse order, after the loop has
     * stopped. It must cancel the plugin's timers and stop its children:
     * the code may be unloaded after it returns. The gateway waits (up to
     * shutdown_timeout_ms) for every connection to go and every pending
     * request to finish first; a request still pending when that time ran
     * out must be completed (host->complete) here or it leaks. */
    void (*fini)(void *instance);

    /* --- ABI 1.1 ------------------------------------------------------- */
    /*
     * Optional. Called on a configuration reload (SIGHUP) when the plugin's
     * [handler.TYPE] section still exists and its keys changed; host->
     * config_get() now answers from the new section. Return 0, or non-zero
     * with a reason in err to keep running with the old settings. Strings
     * from config_get() of the previous configuration stay valid until
     * fini() (the gateway keeps a configuration a plugin read from; the
     * others a reload frees). Handlers cannot be (un)registered here.
     */
    int (*reload)(void *instance, mcpgw_plugin_ctx *ctx, char *err, size_t err_len);

    /* --- ABI 1.3 ------------------------------------------------------- */
    /* Optional: the keys the plugin's sections accept besides `plugin`,
     * NULL-terminated; "name.*" accepts every key starting "name.". With
     * it the gateway refuses any other key at start, at reload and in
     * `mcpgw -t`; without it every key is passed. */
    const char *const *config_keys;
    /* Connection-level plugins (see CONNECTION-LEVEL PLUGINS): mandatory for
     * a plugin named by an [endpoint.NAME] section with protocol jsonrpc.
     * conn_open returns 0, or non-zero to refuse (the gateway then closes
     * the connection 1011 unless the plugin closed it already). */
    int (*conn_open)(void *instance, mcpgw_conn *conn, void **conn_data);
    /* msg is borrowed (json_incref() to keep it; the plugin may change it
     * in place, the gateway does not look at it again); text[0..len) is
     * the message as received, valid until return. send_text() and close()
     * may be called from here. */
    void (*conn_message)(void *instance, mcpgw_conn *conn, void *conn_data, json_t *msg,
                         const char *text, size_t len);
    /* code: the close code the client sent, else the one the gateway sent
     * (1001 when it is stopping), else 1006 (the connection just ended). */
    void (*conn_close)(void *instance, mcpgw_conn *conn, void *conn_data, int code);
} mcpgw_plugin;

/* Size of the 1.0 descriptor: the smallest the loader accepts. */
#define MCPGW_PLUGIN_SIZE_1_0 (offsetof(mcpgw_plugin, fini) + sizeof(void (*)(void *)))

#if defined(__GNUC__)
#define MCPGW_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MCPGW_PLUGIN_EXPORT
#endif

/* Defines the exported descriptor; fini may be NULL. A plugin defined
 * this way asks for ABI 1.0 only, so it also loads in 1.0 gateways. */
#define MCPGW_PLUGIN_DEFINE(name_, version_, description_, init_, fini_) \
    MCPGW_PLUGIN_EXPORT const mcpgw_plugin mcpgw_plugin_descriptor = {   \
        .abi_major = MCPGW_PLUGIN_ABI_MAJOR,                             \
        .abi_minor = 0,                                                  \
        .size = (uint32_t)MCPGW_PLUGIN_SIZE_1_0,                         \
        .name = (name_),                                                 \
        .version = (version_),                                           \
        .description = (description_),                                   \
        .init = (init_),                                                 \
        .fini = (fini_),                                                 \
    }

/* The same with a reload callback (ABI 1.1). */
#define MCPGW_PLUGIN_DEFINE_RELOADABLE(name_, version_, description_, init_, fini_, reload_) \
    MCPGW_PLUGIN_EXPORT const mcpgw_plugin mcpgw_plugin_descriptor = {   \
        .abi_major = MCPGW_PLUGIN_ABI_MAJOR,                             \
        .abi_minor = 1,                                                  \
        .size = sizeof(mcpgw_plugin),                                    \
        .name = (name_),                                                 \
        .version = (version_),                                           \
        .description = (description_),                                   \
        .init = (init_),                                                 \
        .fini = (fini_),                                                 \
        .reload = (reload_),                                             \
    }

/* The same with the keys the plugin's sections accept (ABI 1.3): any
 * other key is a configuration error. keys_ is a NULL-terminated array;
 * reload_ may be NULL. */
#define MCPGW_PLUGIN_DEFINE_KEYS(name_, version_, description_, init_, fini_, reload_, keys_) \
    MCPGW_PLUGIN_EXPORT const mcpgw_plugin mcpgw_plugin_descriptor = {   \
        .abi_major = MCPGW_PLUGIN_ABI_MAJOR,                             \
        .abi_minor = 3,                                                  \
        .size = sizeof(mcpgw_plugin),                                    \
        .name = (name_),                                                 \
        .version = (version_),                                           \
        .description = (description_),                                   \
        .init = (init_),                                                 \
        .fini = (fini_),                                                 \
        .reload = (reload_),                                             \
        .config_keys = (keys_),                                          \
    }

#ifdef __cplusplus
}
#endif

#endif /* MCPGW_PLUGIN_H */
