/*
 * mcpgw/mock_host.h - a mock gateway for a plugin's own unit tests: it
 * implements the whole mcpgw_host table of <mcpgw/plugin.h> without a
 * gateway (no sockets, no event loop, no clock of its own), records what the
 * plugin does, and lets the test drive everything by hand.
 *
 *   cc $(pkg-config --cflags mcpgw-mock) test.c plugin.c $(pkg-config --libs mcpgw-mock)
 *
 * A test:
 *   mcpgw_mock *m = mcpgw_mock_new();
 *   const char *keys[] = { "reply_type", "pong2", NULL };
 *   mcpgw_mock_plugin *p = mcpgw_mock_load(m, &mcpgw_plugin_descriptor, "ping", keys,
 *                                          err, sizeof(err));   (or mcpgw_mock_load_file)
 *   mcpgw_conn *c = mcpgw_mock_conn_new(m, "alice", NULL);
 *   mcpgw_mock_message(m, c, "{\"type\":\"ping\",\"id\":1}");
 *   json_t *r = mcpgw_mock_next(m, "reply");   r = {"what":"reply","conn":1,"id":1,"message":{...}}
 *   ...
 *   json_decref(r);
 *   mcpgw_mock_free(m);                          (fini of every plugin still loaded)
 *
 * RECORDS
 *   Everything the plugin does through the host is appended, in order, to a
 *   list of JSON objects {"what": KIND, ...}; the message parts are deep
 *   copies taken at the call. Kinds and their members:
 *     reply      a request finished with a reply: conn, id (the message's
 *                id, if any), message (the reply, or null for none)
 *     fail       a request failed: conn, id, reason (the text the gateway
 *                would put in "error")
 *     dropped    a request finished after its connection ended (the
 *                gateway drops the reply): conn, id, status ("reply"|"fail")
 *     send       host->send: conn, message
 *     send_text  host->send_text: conn, text
 *     broadcast  host->broadcast: message, except (a conn id or null),
 *                recipients
 *     close      host->close: conn, code (as the gateway would send it),
 *                reason
 *     log        host->log: level ("debug"|"info"|"warn"|"error"), event,
 *                fields (object)
 *     metric     host->metric: which, label (or null), value
 *     child_spawn, child_stop   a mock child (below): child, argv / grace_ms
 *     violation  the plugin broke the contract of plugin.h: text (for
 *                example completing a request twice, registering a handler
 *                outside init, returning DONE after complete())
 *   Sub-requests (host->dispatch) end in the plugin's callback, not in a
 *   record. A top-level message whose type nobody handles is a "fail" with
 *   "Unknown message type: TYPE", as the gateway answers it.
 *
 * OWNERSHIP
 *   The mock owns everything it hands out (connections, plugins, records in
 *   the list, mock children) and frees it in mcpgw_mock_free(); a request
 *   handle stays valid (as memory) until then, so a late or double
 *   complete() is reported as a violation instead of corrupting memory.
 *   mcpgw_mock_next() returns a new reference. JSON passed in is borrowed.
 *
 * TIME, TIMERS AND THREADS
 *   The mock clock starts at 2026-01-01T00:00:00.000Z and only moves with
 *   mcpgw_mock_advance(), which fires the due timers in order of due time
 *   (a timer a timer starts fires in the same call when it falls due in
 *   it). host->timestamp() is the mock clock. host->post() may be called
 *   from any thread; the functions run when the test calls
 *   mcpgw_mock_run_posted(). Every other mock function, like every host
 *   function, belongs to the test's thread.
 *
 * WHAT THE MOCK DOES NOT DO
 *   host->event_base() returns NULL unless the test set a base with
 *   mcpgw_mock_set_event_base() (the test then runs that loop itself).
 *   host->child_spawn() starts no process: it returns a mock child that the
 *   test feeds (mcpgw_mock_child_line, _exit) and whose stdin it reads
 *   (mcpgw_mock_child_stdin); mcpgw_mock_fail_next_spawn() makes the next
 *   spawn fail. No policy ([handler] require_claim, max_message_bytes,
 *   broadcast_per_s) is applied: that is the gateway's, not the plugin's.
 *   host->json_parse() is jansson's reader (the gateway's accepts the same
 *   documents). Handlers without a tree (ABI 1.4: register_raw_handler,
 *   view_*, buf_*, broadcast_text) are not mocked: the host table's size
 *   and minor are those of ABI 1.3, so a plugin that checks
 *   MCPGW_HOST_HAS(host, broadcast_text), as ping and agent_status do, is
 *   tested with its tree handlers.
 */
#ifndef MCPGW_MOCK_HOST_H
#define MCPGW_MOCK_HOST_H

#include <mcpgw/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mcpgw_mock mcpgw_mock;               /* one mock gateway */
typedef struct mcpgw_mock_plugin mcpgw_mock_plugin; /* one initialised section */

/* --- the mock --------------------------------------------------------- */

/* A new mock gateway (NULL when out of memory), worker 0 of 1. */
mcpgw_mock *mcpgw_mock_new(void);
/* Finalises every plugin still loaded (fini in reverse order), frees
 * everything the mock handed out and unloads dlopen'ed files. */
void mcpgw_mock_free(mcpgw_mock *m);
/* The host table plugins get (the same for every plugin of the mock). */
const mcpgw_host *mcpgw_mock_host(mcpgw_mock *m);
/* host->worker() answers these. */
void mcpgw_mock_set_worker(mcpgw_mock *m, int worker, int n_workers);
/* host->event_base() answers this (borrowed; NULL by default). */
void mcpgw_mock_set_event_base(mcpgw_mock *m, struct event_base *base);

/* --- plugins ------------------------------------------------------------ */

/*
 * Checks desc as the gateway's loader does (ABI major, minor, size, init,
 * the section's keys against config_keys), then calls init() for a section
 * [handler.TYPE] (or [endpoint.TYPE]: the same here) holding `keys`, a
 * NULL-terminated list of key, value, key, value, ... (NULL: no keys;
 * copied). A plugin linked into the test passes &mcpgw_plugin_descriptor.
 * Returns the loaded section, or NULL with the reason in err (the plugin's
 * own when its init refused, or when it registered a type already taken).
 */
mcpgw_mock_plugin *mcpgw_mock_load(mcpgw_mock *m, const mcpgw_plugin *desc, const char *type,
                                   const char *const *keys, char *err, size_t err_len);
/* The same for a plugin file, dlopen'ed (RTLD_NOW | RTLD_LOCAL) from path
 * and unloaded by mcpgw_mock_free(). */
mcpgw_mock_plugin *mcpgw_mock_load_file(mcpgw_mock *m, const char *path, const char *type,
                                        const char *const *keys, char *err, size_t err_len);
/* A SIGHUP with new keys for the section: the descriptor's reload(), after
 * the key check. 0, or -1 with the reason in err (the old keys stay; also
 * when the plugin has no reload). */
int mcpgw_mock_reload(mcpgw_mock_plugin *p, const char *const *keys, char *err, size_t err_len);
/* Calls fini() now and removes the section's handlers; the handle stays
 * valid (as memory) until mcpgw_mock_free(). */
void mcpgw_mock_unload(mcpgw_mock_plugin *p);
/* What init() set *instance to. */
void *mcpgw_mock_instance(mcpgw_mock_plugin *p);
/* The descriptor (for conn_open and friends, name, version). */
const mcpgw_plugin *mcpgw_mock_descriptor(mcpgw_mock_plugin *p);
/* The context the plugin's host calls take. */
mcpgw_plugin_ctx *mcpgw_mock_ctx(mcpgw_mock_plugin *p);

/* Registers a handler from the test itself (a stand-in for another plugin,
 * for a plugin that dispatches sub-requests). 0, or -1 if type is taken. */
int mcpgw_mock_register(mcpgw_mock *m, const char *type, mcpgw_handler_fn fn, void *data);

/* --- connections and messages ------------------------------------------ */

/* A client connection of `user` whose token carries `claims` (borrowed and
 * copied; NULL: {"sub": user}). Ids count from 1. Owned by the mock. */
mcpgw_conn *mcpgw_mock_conn_new(mcpgw_mock *m, const char *user, json_t *claims);
/* host->conn_queued() answers this. */
void mcpgw_mock_conn_set_queued(mcpgw_conn *c, size_t bytes);
/* The connection has ended (the client left, or a close finished): its
 * pending requests are orphaned, send/send_text fail, and a
 * connection-level plugin that opened it gets conn_close(code). Idempotent. */
void mcpgw_mock_conn_end(mcpgw_conn *c, int code);
/* 1 while the connection is open: not ended, and not closing since the
 * plugin called host->close() (then sends fail and requests are orphaned,
 * as in the gateway). */
int mcpgw_mock_conn_open(mcpgw_conn *c);

/*
 * A message from connection c, as the gateway hands one to the handler
 * registered for its type (json: the message text). Returns the handler's
 * result (MCPGW_HANDLER_DONE, _PENDING or _FAILED); a message that is not
 * a JSON object with a string type, or whose type nobody handles, returns
 * MCPGW_HANDLER_FAILED with a "fail" record. A finished request leaves its
 * "reply" or "fail" record; a PENDING one leaves it when completed.
 */
int mcpgw_mock_message(mcpgw_mock *m, mcpgw_conn *c, const char *json);
/* The same with a parsed message (borrowed). */
int mcpgw_mock_message_json(mcpgw_mock *m, mcpgw_conn *c, json_t *msg);
/* Requests (top-level and sub-requests) not finished yet. */
size_t mcpgw_mock_pending(mcpgw_mock *m);

/* Connection-level plugins: conn_open(), conn_message() (json parsed as the
 * gateway does; the raw text is passed as received), and conn_close() is
 * called by mcpgw_mock_conn_end(). conn_open returns the plugin's result;
 * conn_message returns 0, or -1 when json does not parse (the gateway would
 * answer a JSON-RPC parse error itself) or c was not opened by p. */
int mcpgw_mock_conn_open_plugin(mcpgw_mock_plugin *p, mcpgw_conn *c);
int mcpgw_mock_conn_message(mcpgw_mock_plugin *p, mcpgw_conn *c, const char *json);

/* --- records ------------------------------------------------------------- */

/* Removes and returns (new reference) the oldest record of kind `what`
 * (NULL: of any kind), or NULL when there is none. */
json_t *mcpgw_mock_next(mcpgw_mock *m, const char *what);
/* How many records of kind `what` (NULL: all) are in the list. */
size_t mcpgw_mock_count(mcpgw_mock *m, const char *what);
/* The whole list (borrowed, oldest first), e.g. to print it. */
json_t *mcpgw_mock_records(mcpgw_mock *m);
void mcpgw_mock_clear(mcpgw_mock *m);

/* --- time, timers, posted work ------------------------------------------ */

/* Moves the clock ms forward, firing every timer that falls due, in order.
 * Returns how many fired. */
size_t mcpgw_mock_advance(mcpgw_mock *m, unsigned ms);
/* Timers started and neither fired nor cancelled. */
size_t mcpgw_mock_timers(mcpgw_mock *m);
/* Runs the functions given to host->post() so far (and those they post),
 * in order. Returns how many ran. */
size_t mcpgw_mock_run_posted(mcpgw_mock *m);

/* --- mock children ------------------------------------------------------- */

/* The child host->child_spawn() returned last (NULL: none yet); valid
 * until its exit or child_stop(). */
mcpgw_child *mcpgw_mock_child_last(mcpgw_mock *m);
/* The child wrote a stdout line (without its newline): on_line() runs.
 * -1 when its reading is paused (child_pause) or it ended. */
int mcpgw_mock_child_line(mcpgw_child *ch, const char *line);
/* The child exited with waitpid status `status`: on_exit() runs and the
 * handle ends. */
void mcpgw_mock_child_exit(mcpgw_child *ch, int status);
/* What the plugin queued for its stdin (*len bytes; borrowed, valid until
 * the next call on ch). */
const char *mcpgw_mock_child_stdin(mcpgw_child *ch, size_t *len);
/* The child read its stdin: the queue empties. */
void mcpgw_mock_child_drain(mcpgw_child *ch);
/* The next child_spawn() fails with this reason (copied). */
void mcpgw_mock_fail_next_spawn(mcpgw_mock *m, const char *reason);

#ifdef __cplusplus
}
#endif

#endif /* MCPGW_MOCK_HOST_H */
