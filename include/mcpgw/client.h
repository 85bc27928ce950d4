/*
 * mcpgw/client.h - libmcpgw-client: the C client of the mcpgw gateway.
 *
 * Three objects, all running on the caller's libevent event_base (every
 * callback runs on the thread that runs that base; none of these objects is
 * thread-safe):
 *
 *  - mcpgw_client: one WebSocket connection (ws:// or wss://) to a gateway,
 *    with the reference client's behaviour: token in the URL (or an
 *    Authorization header), reconnect with exponential backoff and jitter,
 *    an offline queue flushed in order on reconnect (bounded here), events
 *    connected / disconnected / reconnecting / reconnect_failed / message /
 *    error / ping / pong, plus request/reply matching by "id".
 *  - mcpgw_pool: N clients to one gateway behind one send call that picks a
 *    connected, least-loaded member.
 *  - mcpgw_batcher: the reference MessageBatcher (size, interval and age
 *    flushes; envelope {type:"batch",id,messages,count,timestamp}) feeding a
 *    sink callback (a client, a pool or anything else).
 *
 * Ownership, everywhere: a json_t passed *to* a function is borrowed (the
 * library takes its own reference or copy); a json_t or string passed to a
 * callback is borrowed for the duration of the call (json_incref() it to
 * keep it). Objects returned by *_new() are owned by the caller and released
 * with the matching *_free(), which never invokes callbacks (pending
 * requests are dropped silently). Calling *_free() from inside one of the
 * object's own callbacks is allowed; the memory goes when the callback
 * returns.
 *
 * Compression: permessage-deflate (RFC 7692) is offered by default and used
 * when the server accepts it: compressed messages are inflated (bounded by
 * max_message_bytes), and messages of 64 bytes or more are sent compressed.
 */
#ifndef MCPGW_CLIENT_H
#define MCPGW_CLIENT_H

#include <stddef.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

#define MCPGW_CLIENT_VERSION "0.1.0"

/* ------------------------------------------------------------------ options */

typedef enum {
    MCPGW_QUEUE_REFUSE_NEW = 0,     /* a full queue refuses the new message */
    MCPGW_QUEUE_DROP_OLDEST = 1     /* a full queue drops its oldest message */
} mcpgw_queue_policy;

typedef struct mcpgw_client_opts {
    const char *token;              /* JWT, or NULL for none (copied) */
    int token_in_header;            /* 0: ?token=... in the URL (reference); 1: Authorization: Bearer */

    int reconnect;                  /* reconnect after an unintended close (default 1) */
    unsigned reconnect_base_ms;     /* first delay (default 1000) */
    double reconnect_factor;        /* growth per attempt (default 1.5) */
    unsigned reconnect_max_ms;      /* cap before jitter (default 30000) */
    double reconnect_jitter;        /* up to this fraction is added (default 0.3) */
    int reconnect_max_attempts;     /* then reconnect_failed (default 10; 0 = unlimited) */
    int reconnect_on_auth_failure;  /* retry after HTTP 401/403 (default 0: give up at once) */

    size_t queue_max_messages;      /* offline queue bound (default 1000; 0 = unbounded) */
    size_t queue_max_bytes;         /* offline queue bound in bytes (default 16 MiB; 0 = unbounded) */
    mcpgw_queue_policy queue_policy;/* default MCPGW_QUEUE_REFUSE_NEW */

    unsigned connect_timeout_ms;    /* TCP + TLS + HTTP upgrade (default 10000) */
    unsigned close_timeout_ms;      /* wait for the server's close echo (default 2000) */
    size_t max_message_bytes;       /* largest incoming message (default 16 MiB); over: close 1009 */

    /* wss:// only. Verification (chain and host name) is on by default. */
    const char *ca_file;            /* PEM bundle to trust instead of the system store */
    int tls_insecure;               /* 1: skip certificate and host name checks (testing only) */

    int compression;                /* offer permessage-deflate (default 1) */
} mcpgw_client_opts;

/* Fills *o with the defaults above (the reference client's constants). */
void mcpgw_client_opts_init(mcpgw_client_opts *o);

/* The reconnect delay in milliseconds before attempt `attempt` (1-based):
 * min(max_ms, base_ms * factor^(attempt-1)) plus jitter * random01 of that,
 * random01 in [0,1). Pure: the caller supplies the randomness. */
unsigned mcpgw_client_backoff_ms(const mcpgw_client_opts *o, int attempt, double random01);

/* --------------------------------------------------------------- events */

typedef enum {
    MCPGW_CLIENT_EV_CONNECTED = 1,      /* the upgrade succeeded */
    MCPGW_CLIENT_EV_DISCONNECTED,       /* code, reason, will_reconnect */
    MCPGW_CLIENT_EV_RECONNECTING,       /* attempt, delay_ms */
    MCPGW_CLIENT_EV_RECONNECT_FAILED,   /* attempts exhausted (attempt = how many) */
    MCPGW_CLIENT_EV_MESSAGE,            /* message (parsed), text/len (raw) */
    MCPGW_CLIENT_EV_ERROR,              /* error; http_status/http_body when the upgrade was refused */
    MCPGW_CLIENT_EV_PING,               /* the server pinged (answered automatically) */
    MCPGW_CLIENT_EV_PONG,               /* a pong arrived */
    MCPGW_CLIENT_EV_QUEUE_FULL,         /* text/len: a message refused by a full queue */
    MCPGW_CLIENT_EV_QUEUE_DROPPED       /* text/len: the oldest message dropped from a full queue */
} mcpgw_client_event_type;

typedef struct mcpgw_client_event {
    mcpgw_client_event_type type;
    int code;                   /* DISCONNECTED: close code (1006: no close frame) */
    const char *reason;         /* DISCONNECTED: close reason ("" if none) */
    int will_reconnect;         /* DISCONNECTED: 1 if a reconnect follows */
    int attempt;                /* RECONNECTING, RECONNECT_FAILED */
    unsigned delay_ms;          /* RECONNECTING */
    json_t *message;            /* MESSAGE: the parsed message */
    const char *text;           /* MESSAGE, ERROR (unparsable message), QUEUE_*: raw text */
    size_t len;                 /* length of text */
    const char *error;          /* ERROR: what went wrong */
    int http_status;            /* ERROR: status of a refused upgrade, else 0 */
    const char *http_body;      /* ERROR: its body ("" if none), else NULL */
} mcpgw_client_event;

typedef struct mcpgw_client mcpgw_client;

typedef void (*mcpgw_client_event_cb)(mcpgw_client *c, const mcpgw_client_event *ev, void *arg);

/* ------------------------------------------------------------------ client */

/* Creates a client for url ("ws://host[:port]/path[?query]" or "wss://...").
 * opts may be NULL for the defaults; it is copied. Returns NULL on a bad
 * URL or options (with a message in err when err is not NULL). Does not
 * connect yet. */
mcpgw_client *mcpgw_client_new(struct event_base *base, const char *url,
                               const mcpgw_client_opts *opts,
                               mcpgw_client_event_cb cb, void *arg,
                               char *err, size_t err_len);

/* Starts connecting (or reconnecting, after mcpgw_client_close(): this
 * clears the intentional-close state and the attempt counter). 0, or -1 if
 * a connection attempt could not even be started (an ERROR event says why,
 * and the reconnect schedule takes over). */
int mcpgw_client_connect(mcpgw_client *c);

/* Intentional close: sends close 1000 "Client closed connection", waits
 * (up to close_timeout_ms) for the echo, then reports DISCONNECTED with
 * will_reconnect 0. Cancels any reconnect timer; queued messages stay
 * queued (sent on the next mcpgw_client_connect()). Idempotent. */
void mcpgw_client_close(mcpgw_client *c);

/* Frees the client at once (no callbacks). NULL is fine. */
void mcpgw_client_free(mcpgw_client *c);

/* Results of the send calls. */
enum {
    MCPGW_SEND_OK = 0,              /* written to the connection */
    MCPGW_SEND_QUEUED = 1,          /* queued while disconnected */
    MCPGW_SEND_QUEUED_DROPPED = 2,  /* queued; the oldest queued message was dropped (QUEUE_DROPPED event) */
    MCPGW_SEND_ERR_FULL = -1,       /* refused: the queue is full (QUEUE_FULL event) */
    MCPGW_SEND_ERR_INVALID = -2,    /* not serialisable, or not valid UTF-8 */
    MCPGW_SEND_ERR_NOMEM = -3,
    MCPGW_SEND_ERR_TOO_BIG = -4     /* larger than queue_max_bytes */
};

/* Sends a JSON message (serialised compactly), or queues it while
 * disconnected. Returns one of MCPGW_SEND_*. */
int mcpgw_client_send(mcpgw_client *c, json_t *msg);

/* Sends a text message as is (must be valid UTF-8). Same results. */
int mcpgw_client_send_text(mcpgw_client *c, const char *text, size_t len);

/* Sends a ping control frame (payload up to 125 bytes, may be NULL) when
 * connected; 0, or -1 when not connected. */
int mcpgw_client_ping(mcpgw_client *c, const void *payload, size_t len);

typedef enum {
    MCPGW_REQUEST_OK = 0,           /* reply is the matching message */
    MCPGW_REQUEST_TIMEOUT = 1,      /* no reply within timeout_ms */
    MCPGW_REQUEST_CANCELLED = 2,    /* the client gave up (intentional close, reconnect_failed) */
    MCPGW_REQUEST_DROPPED = 3       /* dropped from a full offline queue */
} mcpgw_request_status;

typedef void (*mcpgw_request_cb)(mcpgw_client *c, mcpgw_request_status status,
                                 json_t *reply, void *arg);

/* Sends msg (an object; borrowed) as a request: adds "id" (a UUID v4) when
 * it has none, then delivers the first incoming message with an equal "id"
 * to cb (instead of a MESSAGE event) exactly once, or TIMEOUT after
 * timeout_ms (0: none). A request sent on a connection that dropped before
 * the reply is sent again after the reconnect (at-least-once). If id_out is
 * not NULL it receives a new reference to the id. Returns MCPGW_SEND_* like
 * mcpgw_client_send() (cb is never called when the result is < 0). */
int mcpgw_client_request(mcpgw_client *c, json_t *msg, unsigned timeout_ms,
                         mcpgw_request_cb cb, void *arg, json_t **id_out);

int mcpgw_client_is_connected(const mcpgw_client *c);
size_t mcpgw_client_queue_size(const mcpgw_client *c);      /* messages */
size_t mcpgw_client_queue_bytes(const mcpgw_client *c);
size_t mcpgw_client_pending_requests(const mcpgw_client *c);
size_t mcpgw_client_outbound_bytes(const mcpgw_client *c);  /* written, not yet on the socket */
int mcpgw_client_reconnect_attempt(const mcpgw_client *c);  /* 0 when connected */
int mcpgw_client_compression_active(const mcpgw_client *c); /* permessage-deflate in use now */

/* Writes a fresh random UUID v4 (36 characters + NUL) into out[37]. */
void mcpgw_client_uuid4(char out[37]);

/* -------------------------------------------------------------------- pool */

typedef struct mcpgw_pool mcpgw_pool;

/* Events of member `index`, as the member's client would report them. */
typedef void (*mcpgw_pool_event_cb)(mcpgw_pool *p, int index, const mcpgw_client_event *ev,
                                    void *arg);

/* n clients (1 .. 1024) to url with the same options; connects them all. */
mcpgw_pool *mcpgw_pool_new(struct event_base *base, const char *url, int n,
                           const mcpgw_client_opts *opts, mcpgw_pool_event_cb cb,
                           void *arg, char *err, size_t err_len);
void mcpgw_pool_free(mcpgw_pool *p);
void mcpgw_pool_close(mcpgw_pool *p);       /* intentional close of every member */

/* Picks the connected member with the fewest outbound bytes plus pending
 * requests (ties: round robin); when none is connected, the member with the
 * shortest offline queue. *index_out (may be NULL) tells which. */
int mcpgw_pool_send(mcpgw_pool *p, json_t *msg, int *index_out);
int mcpgw_pool_send_text(mcpgw_pool *p, const char *text, size_t len, int *index_out);
/* As mcpgw_client_request() on the picked member (cb gets that member). */
int mcpgw_pool_request(mcpgw_pool *p, json_t *msg, unsigned timeout_ms,
                       mcpgw_request_cb cb, void *arg, int *index_out);

int mcpgw_pool_size(const mcpgw_pool *p);
int mcpgw_pool_connected(const mcpgw_pool *p);              /* members connected now */
mcpgw_client *mcpgw_pool_member(mcpgw_pool *p, int index);  /* borrowed */

/* ----------------------------------------------------------------- batcher */

typedef struct mcpgw_batcher mcpgw_batcher;

typedef struct mcpgw_batcher_opts {
    size_t batch_size;              /* flush when this many are waiting (default 10) */
    unsigned flush_interval_ms;     /* periodic flush (default 1000) */
    unsigned max_batch_age_ms;      /* flush when the oldest waiting message is this old (default 5000) */
} mcpgw_batcher_opts;

void mcpgw_batcher_opts_init(mcpgw_batcher_opts *o);

/* Receives each batch envelope (borrowed) and the flush reason: "batch_full",
 * "batch_age", "timer", "force" or "stop". */
typedef void (*mcpgw_batcher_sink)(json_t *batch, const char *reason, void *arg);

/* Starts the periodic timer at once, as the reference does. opts may be NULL. */
mcpgw_batcher *mcpgw_batcher_new(struct event_base *base, const mcpgw_batcher_opts *opts,
                                 mcpgw_batcher_sink sink, void *arg);
/* Frees without flushing (call mcpgw_batcher_stop() first to flush). */
void mcpgw_batcher_free(mcpgw_batcher *b);

/* Adds msg (borrowed: a reference is taken). 0, or -1 after stop / on error. */
int mcpgw_batcher_add(mcpgw_batcher *b, json_t *msg);
void mcpgw_batcher_force_flush(mcpgw_batcher *b);   /* reason "force" (nothing if empty) */
void mcpgw_batcher_clear(mcpgw_batcher *b);         /* drops waiting messages */
void mcpgw_batcher_stop(mcpgw_batcher *b);          /* stops the timers, flushes ("stop") */
size_t mcpgw_batcher_count(const mcpgw_batcher *b);

/* Ready-made sinks: arg is the mcpgw_client * or mcpgw_pool *. */
void mcpgw_batcher_sink_client(json_t *batch, const char *reason, void *client);
void mcpgw_batcher_sink_pool(json_t *batch, const char *reason, void *pool);

#ifdef __cplusplus
}
#endif

#endif
