/*
 * mock_host.c - libmcpgw-mock: a mock gateway that implements the whole
 * mcpgw_host table for a plugin's unit tests (see include/mcpgw/mock_host.h).
 * It owns the mock's handler table, connections, requests, timers, posted
 * work, mock children and the list of records; it never touches a socket,
 * a process or a clock.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mcpgw/mock_host.h>

#include "plugin_abi.h"      /* the host's rules, shared with the gateway */

#define DESC_HAS(d, m) ((d)->size >= offsetof(mcpgw_plugin, m) + sizeof((d)->m))
#define EPOCH_MS 1767225600000ULL      /* 2026-01-01T00:00:00.000Z */
#define DEFAULT_QUEUE (4u << 20)

/* One set of section keys: pairs key, value. Kept until the mock is freed,
 * so strings from config_get() of an earlier reload stay valid. */
typedef struct keyset {
    char **kv;
    size_t n;                           /* pairs */
    struct keyset *next;
} keyset;

typedef struct handler {
    char *type;
    mcpgw_handler_fn fn;
    void *data;
    mcpgw_mock_plugin *owner;           /* NULL: registered by the test */
    struct handler *next;
} handler;

struct mcpgw_plugin_ctx {
    mcpgw_mock_plugin *p;
};

struct mcpgw_mock_plugin {
    mcpgw_mock *m;
    mcpgw_plugin_ctx ctx;
    const mcpgw_plugin *desc;
    void *dl;                           /* dlopen handle, or NULL when linked in */
    char *type;
    keyset *keys;                       /* current */
    keyset *all_keys;                   /* every set ever given */
    void *instance;
    int loaded;                         /* init succeeded, fini not run */
    int in_init;
    char register_error[256];
    mcpgw_mock_plugin *next;
};

struct mcpgw_conn {
    mcpgw_mock *m;
    uint64_t id;
    char *user;
    json_t *claims;
    int ended, closing;
    size_t queued;
    mcpgw_mock_plugin *level;           /* the connection-level plugin that opened it */
    void *conn_data;
    mcpgw_conn *next;
};

struct mcpgw_request {
    mcpgw_conn *conn;
    mcpgw_request *parent;
    mcpgw_dispatch_cb cb;
    void *cb_data;
    json_t *id;
    int finished;
    mcpgw_request *next;
};

struct mcpgw_timer {
    unsigned long long due, seq;
    void (*fn)(void *arg);
    void *arg;
    mcpgw_timer *next;
};

typedef struct posted {
    void (*fn)(void *arg);
    void *arg;
    struct posted *next;
} posted;

struct mcpgw_child {
    mcpgw_mock *m;
    long pid;
    int paused, ended;
    void (*on_line)(void *arg, const char *line, size_t len);
    void (*on_exit)(void *arg, int status);
    void *arg;
    size_t max_queue;
    char *in;
    size_t in_len;
    mcpgw_child *next;
};

struct mcpgw_mock {
    mcpgw_host host;
    mcpgw_mock_plugin *plugins;         /* newest first */
    handler *handlers;
    mcpgw_conn *conns;
    uint64_t next_conn_id;
    mcpgw_request *requests;            /* every request, until the mock is freed */
    size_t pending;
    mcpgw_timer *timers;
    unsigned long long now_ms, timer_seq;
    pthread_mutex_t post_lock;
    posted *post_head, *post_tail;
    mcpgw_child *children;
    mcpgw_child *last_child;
    long next_pid;
    char *spawn_failure;
    json_t *records;
    int worker, n_workers;
    struct event_base *base;
    char ts[32];
};

/* ------------------------------------------------------------- records */

static void record(mcpgw_mock *m, json_t *rec)
{
    if (rec)
        json_array_append_new(m->records, rec);
}

static void violation(mcpgw_mock *m, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    fprintf(stderr, "mcpgw-mock: contract violation: %s\n", text);
    record(m, json_pack("{s:s, s:s}", "what", "violation", "text", text));
}

static json_t *copy_or_null(json_t *v)
{
    json_t *c = v ? json_deep_copy(v) : NULL;

    return c ? c : json_null();
}

static json_t *conn_rec(const char *what, mcpgw_conn *c)
{
    return json_pack("{s:s, s:I}", "what", what, "conn", (json_int_t)c->id);
}

json_t *mcpgw_mock_next(mcpgw_mock *m, const char *what)
{
    size_t i;
    json_t *r;

    json_array_foreach(m->records, i, r) {
        if (!what || strcmp(json_string_value(json_object_get(r, "what")), what) == 0) {
            json_incref(r);
            json_array_remove(m->records, i);
            return r;
        }
    }
    return NULL;
}

size_t mcpgw_mock_count(mcpgw_mock *m, const char *what)
{
    size_t i, n = 0;
    json_t *r;

    json_array_foreach(m->records, i, r)
        if (!what || strcmp(json_string_value(json_object_get(r, "what")), what) == 0)
            n++;
    return n;
}

json_t *mcpgw_mock_records(mcpgw_mock *m)
{
    return m->records;
}

void mcpgw_mock_clear(mcpgw_mock *m)
{
    json_array_clear(m->records);
}

/* ------------------------------------------------------------- keys */

static keyset *keyset_new(mcpgw_mock_plugin *p, const char *const *keys)
{
    keyset *ks = calloc(1, sizeof(*ks));
    size_t n = 0;

    if (!ks)
        return NULL;
    while (keys && keys[n] && keys[n + 1])
        n += 2;
    ks->kv = calloc(n + 1, sizeof(char *));
    if (!ks->kv) {
        free(ks);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(ks->kv[i] = strdup(keys[i]))) {
            while (i--)
                free(ks->kv[i]);
            free(ks->kv);
            free(ks);
            return NULL;
        }
    }
    ks->n = n / 2;
    ks->next = p->all_keys;
    p->all_keys = ks;
    return ks;
}

/* The loader's rule: every key is one the plugin declares (when it does). */
static int keys_fit(const mcpgw_plugin *d, const char *const *keys, const char *type, char *err,
                    size_t err_len)
{
    if (!DESC_HAS(d, config_keys) || !d->config_keys)
        return 0;
    for (size_t i = 0; keys && keys[i] && keys[i + 1]; i += 2) {
        const char *const *k;
        if (strcmp(keys[i], "plugin") == 0)
            continue;
        for (k = d->config_keys; *k; k++) {
            size_t kl = strlen(*k);
            if (strcmp(*k, keys[i]) == 0 ||
                (kl >= 2 && strcmp(*k + kl - 2, ".*") == 0 && strncmp(*k, keys[i], kl - 1) == 0 &&
                 keys[i][kl - 1]))
                break;
        }
        if (!*k) {
            snprintf(err, err_len, "unknown key '%s' in [handler.%s] (plugin '%s')", keys[i],
                     type, d->name ? d->name : "?");
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- handlers */

static handler *handler_find(mcpgw_mock *m, const char *type)
{
    for (handler *h = m->handlers; h; h = h->next)
        if (strcmp(h->type, type) == 0)
            return h;
    return NULL;
}

static int handler_add(mcpgw_mock *m, const char *type, mcpgw_handler_fn fn, void *data,
                       mcpgw_mock_plugin *owner)
{
    handler *h;

    if (!type || !*type || !fn || handler_find(m, type))
        return -1;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->type = strdup(type))) {
        free(h);
        return -1;
    }
    h->fn = fn;
    h->data = data;
    h->owner = owner;
    h->next = m->handlers;
    m->handlers = h;
    return 0;
}

static void handlers_remove_owner(mcpgw_mock *m, mcpgw_mock_plugin *owner)
{
    handler **pp = &m->handlers;

    while (*pp) {
        handler *h = *pp;
        if (h->owner == owner) {
            *pp = h->next;
            free(h->type);
            free(h);
        } else {
            pp = &h->next;
        }
    }
}

int mcpgw_mock_register(mcpgw_mock *m, const char *type, mcpgw_handler_fn fn, void *data)
{
    return handler_add(m, type, fn, data, NULL);
}

/* ------------------------------------------------------------- requests */

static mcpgw_request *request_new(mcpgw_mock *m, mcpgw_conn *c, mcpgw_request *parent,
                                  json_t *msg)
{
    mcpgw_request *req = calloc(1, sizeof(*req));

    if (!req)
        return NULL;
    req->conn = c;
    req->parent = parent;
    req->id = json_incref(json_object_get(msg, "id"));
    req->next = m->requests;
    m->requests = req;
    m->pending++;
    return req;
}

static void id_into(json_t *rec, json_t *id)
{
    if (rec && id)
        json_object_set_new(rec, "id", json_deep_copy(id));
}

/* Ends a request once; result is borrowed. */
static void request_finish(mcpgw_request *req, int status, json_t *result)
{
    mcpgw_conn *c = req->conn;
    mcpgw_mock *m = c->m;
    json_t *rec;

    req->finished = 1;
    m->pending--;
    if (req->parent) {
        req->cb(req->cb_data, status, result);
        return;
    }
    if (c->ended || c->closing) {
        rec = conn_rec("dropped", c);
        json_object_set_new(rec, "status", json_string(status == MCPGW_HANDLER_DONE ? "reply"
                                                                                     : "fail"));
    } else if (status == MCPGW_HANDLER_DONE) {
        rec = conn_rec("reply", c);
        json_object_set_new(rec, "message", copy_or_null(result));
    } else {
        rec = conn_rec("fail", c);
        json_object_set_new(rec, "reason", json_string(json_string_value(result)));
    }
    id_into(rec, req->id);
    record(m, rec);
}

static void host_complete(mcpgw_request *req, json_t *reply)
{
    if (!req) {
        json_decref(reply);
        return;
    }
    if (req->finished)
        violation(req->conn->m, "complete() on a request that has already finished");
    else
        request_finish(req, MCPGW_HANDLER_DONE, reply);
    json_decref(reply);
}

static void host_fail(mcpgw_request *req, const char *reason)
{
    json_t *r;

    if (!req)
        return;
    if (req->finished) {
        violation(req->conn->m, "fail() on a request that has already finished");
        return;
    }
    r = json_string(reason && *reason ? reason : "Handler failed");
    if (!r)
        r = json_string("Handler failed");
    request_finish(req, MCPGW_HANDLER_FAILED, r);
    json_decref(r);
}

/* Routes msg to its handler as dispatch.c does. Returns DONE, PENDING or FAILED. */
static int request_run(mcpgw_mock *m, mcpgw_request *req, json_t *msg, const char *type)
{
    handler *h = handler_find(m, type);
    json_t *out = NULL;
    int rc;

    if (!h) {
        char text[320];
        snprintf(text, sizeof(text), "Unknown message type: %.256s", type);
        host_fail(req, text);
        return MCPGW_HANDLER_FAILED;
    }
    rc = h->fn(req, msg, &out, h->data);
    if (rc == MCPGW_HANDLER_PENDING) {
        if (out) {
            violation(m, "handler for '%s' set *out and returned PENDING", type);
            json_decref(out);
        }
        return rc;
    }
    if (req->finished) {
        violation(m, "handler for '%s' finished its request and returned %s", type,
                  rc == MCPGW_HANDLER_DONE ? "DONE" : "FAILED");
        json_decref(out);
        return rc == MCPGW_HANDLER_DONE ? rc : MCPGW_HANDLER_FAILED;
    }
    if (rc == MCPGW_HANDLER_DONE) {
        request_finish(req, rc, out);
    } else {
        if (rc != MCPGW_HANDLER_FAILED)
            violation(m, "handler for '%s' returned %d", type, rc);
        if (!json_is_string(out)) {
            json_decref(out);
            out = json_string("Handler failed");
        }
        request_finish(req, MCPGW_HANDLER_FAILED, out);
        rc = MCPGW_HANDLER_FAILED;
    }
    json_decref(out);
    return rc;
}

static int host_dispatch(mcpgw_request *parent, json_t *msg, mcpgw_dispatch_cb cb,
                         void *cb_data)
{
    json_t *type = json_object_get(msg, "type");
    mcpgw_request *req;

    if (!parent || !cb || !json_is_object(msg) || !json_is_string(type))
        return -1;
    if (parent->finished) {
        violation(parent->conn->m, "dispatch() under a request that has already finished");
        return -1;
    }
    req = request_new(parent->conn->m, parent->conn, parent, msg);
    if (!req)
        return -1;
    req->cb = cb;
    req->cb_data = cb_data;
    request_run(parent->conn->m, req, msg, json_string_value(type));
    return 0;
}

int mcpgw_mock_message_json(mcpgw_mock *m, mcpgw_conn *c, json_t *msg)
{
    json_t *type = json_object_get(msg, "type");
    mcpgw_request *req;

    if (c->ended || c->closing) {
        violation(m, "a message on connection %llu, which has closed", (unsigned long long)c->id);
        return MCPGW_HANDLER_FAILED;
    }
    if (!json_is_object(msg) || !json_is_string(type)) {
        json_t *rec = conn_rec("fail", c);
        json_object_set_new(rec, "reason", json_string("Unknown message type: undefined"));
        id_into(rec, json_object_get(msg, "id"));
        record(m, rec);
        return MCPGW_HANDLER_FAILED;
    }
    req = request_new(m, c, NULL, msg);
    if (!req)
        return MCPGW_HANDLER_FAILED;
    return request_run(m, req, msg, json_string_value(type));
}

int mcpgw_mock_message(mcpgw_mock *m, mcpgw_conn *c, const char *json)
{
    json_error_t jerr;
    json_t *msg = json_loads(json, JSON_DECODE_ANY, &jerr);
    int rc;

    if (!msg) {
        json_t *rec = conn_rec("fail", c);
        json_object_set_new(rec, "reason", json_string(jerr.text));
        record(m, rec);
        return MCPGW_HANDLER_FAILED;
    }
    rc = mcpgw_mock_message_json(m, c, msg);
    json_decref(msg);
    return rc;
}

size_t mcpgw_mock_pending(mcpgw_mock *m)
{
    return m->pending;
}

/* ------------------------------------------------------------- connections */

mcpgw_conn *mcpgw_mock_conn_new(mcpgw_mock *m, const char *user, json_t *claims)
{
    mcpgw_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->m = m;
    c->id = ++m->next_conn_id;
    c->user = strdup(user ? user : "");
    c->claims = claims ? json_deep_copy(claims) : json_pack("{s:s}", "sub", user ? user : "");
    if (!c->user || !c->claims) {
        free(c->user);
        json_decref(c->claims);
        free(c);
        return NULL;
    }
    c->next = m->conns;
    m->conns = c;
    return c;
}

void mcpgw_mock_conn_set_queued(mcpgw_conn *c, size_t bytes)
{
    c->queued = bytes;
}

int mcpgw_mock_conn_open(mcpgw_conn *c)
{
    return !c->ended && !c->closing;
}

void mcpgw_mock_conn_end(mcpgw_conn *c, int code)
{
    mcpgw_mock_plugin *p = c->level;

    if (c->ended)
        return;
    c->ended = 1;
    c->level = NULL;
    if (p && p->loaded)
        p->desc->conn_close(p->instance, c, c->conn_data, code);
}

int mcpgw_mock_conn_open_plugin(mcpgw_mock_plugin *p, mcpgw_conn *c)
{
    const mcpgw_plugin *d = p->desc;
    int rc;

    if (!p->loaded || !DESC_HAS(d, conn_close) || !d->conn_open || !d->conn_message ||
        !d->conn_close || c->level || c->ended)
        return -1;
    c->level = p;
    rc = d->conn_open(p->instance, c, &c->conn_data);
    if (rc != 0) {
        /* refused: the gateway closes it 1011 (unless the plugin did) */
        c->level = NULL;
        if (!c->closing) {
            json_t *rec = conn_rec("close", c);
            json_object_set_new(rec, "code", json_integer(1011));
            json_object_set_new(rec, "reason", json_string(""));
            record(p->m, rec);
        }
        c->ended = 1;
    }
    return rc;
}

int mcpgw_mock_conn_message(mcpgw_mock_plugin *p, mcpgw_conn *c, const char *json)
{
    size_t len = strlen(json);
    json_t *msg;

    if (c->level != p || c->ended || !p->loaded)
        return -1;
    msg = json_loadb(json, len, 0, NULL);       /* an object or an array */
    if (!msg || (json_is_array(msg) && json_array_size(msg) == 0)) {
        json_decref(msg);
        return -1;
    }
    p->desc->conn_message(p->instance, c, c->conn_data, msg, json, len);
    json_decref(msg);
    return 0;
}

/* ------------------------------------------------------------- the host table */

static int host_register_handler(mcpgw_plugin_ctx *ctx, const char *type, mcpgw_handler_fn fn,
                                 void *handler_data)
{
    mcpgw_mock_plugin *p = ctx ? ctx->p : NULL;

    if (!p || !type || !*type || !fn)
        return -1;
    if (!p->in_init) {
        violation(p->m, "register_handler('%s') outside init", type);
        return -1;
    }
    if (handler_add(p->m, type, fn, handler_data, p) != 0) {
        if (!p->register_error[0])
            snprintf(p->register_error, sizeof(p->register_error),
                     "message type '%s' is already handled", type);
        return -1;
    }
    return 0;
}

static const char *host_handler_type(mcpgw_plugin_ctx *ctx)
{
    return ctx->p->type;
}

static const char *host_config_get(mcpgw_plugin_ctx *ctx, const char *key)
{
    keyset *ks = ctx->p->keys;

    for (size_t i = 0; key && i < ks->n; i++)
        if (strcmp(ks->kv[2 * i], key) == 0)
            return ks->kv[2 * i + 1];
    return NULL;
}

static int host_config_foreach(mcpgw_plugin_ctx *ctx,
                               int (*fn)(const char *key, const char *value, void *arg), void *arg)
{
    keyset *ks = ctx->p->keys;

    for (size_t i = 0; i < ks->n; i++) {
        int rc;
        if (strcmp(ks->kv[2 * i], "plugin") == 0)
            continue;
        if ((rc = fn(ks->kv[2 * i], ks->kv[2 * i + 1], arg)) != 0)
            return rc;
    }
    return 0;
}

static void host_log(mcpgw_plugin_ctx *ctx, int level, const char *event, json_t *fields)
{
    static const char *names[] = { "debug", "info", "warn", "error" };
    json_t *rec;

    if (!json_is_object(fields)) {
        json_decref(fields);
        fields = json_object();
    }
    rec = json_pack("{s:s, s:s, s:s, s:o, s:s}", "what", "log", "level",
                    level >= 0 && level <= 3 ? names[level] : "error", "event",
                    event ? event : "plugin_event", "fields", fields, "plugin",
                    ctx->p->desc->name ? ctx->p->desc->name : "");
    record(ctx->p->m, rec);
}

static const char *host_timestamp(mcpgw_plugin_ctx *ctx)
{
    mcpgw_mock *m = ctx->p->m;
    unsigned long long ms = EPOCH_MS + m->now_ms;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char day[24];

    gmtime_r(&s, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(m->ts, sizeof(m->ts), "%s.%03uZ", day, (unsigned)(ms % 1000));
    return m->ts;
}

static struct event_base *host_event_base(mcpgw_plugin_ctx *ctx)
{
    return ctx->p->m->base;
}

static int host_post(mcpgw_plugin_ctx *ctx, void (*fn)(void *arg), void *arg)
{
    mcpgw_mock *m = ctx->p->m;
    posted *w;

    if (!fn || !(w = calloc(1, sizeof(*w))))
        return -1;
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&m->post_lock);
    if (m->post_tail)
        m->post_tail->next = w;
    else
        m->post_head = w;
    m->post_tail = w;
    pthread_mutex_unlock(&m->post_lock);
    return 0;
}

static mcpgw_conn *host_request_conn(mcpgw_request *req)
{
    return req->conn;
}

static int host_request_orphaned(mcpgw_request *req)
{
    return req->conn->ended || req->conn->closing;
}

static const char *host_conn_user(mcpgw_conn *c)
{
    return c->user;
}

static json_t *host_conn_claims(mcpgw_conn *c)
{
    return c->claims;
}

static uint64_t host_conn_id(mcpgw_conn *c)
{
    return c->id;
}

static int host_send(mcpgw_conn *c, json_t *msg)
{
    json_t *rec;

    if (!c || !msg || c->ended || c->closing)
        return -1;
    rec = conn_rec("send", c);
    json_object_set_new(rec, "message", copy_or_null(msg));
    record(c->m, rec);
    return 0;
}

static size_t host_broadcast(mcpgw_plugin_ctx *ctx, json_t *msg, mcpgw_conn *except)
{
    mcpgw_mock *m = ctx->p->m;
    size_t n = 0;

    for (mcpgw_conn *c = m->conns; c; c = c->next)
        if (c != except && !c->ended && !c->closing)
            n++;
    record(m, json_pack("{s:s, s:o, s:o, s:I}", "what", "broadcast", "message",
                        copy_or_null(msg), "except",
                        except ? json_integer((json_int_t)except->id) : json_null(),
                        "recipients", (json_int_t)n));
    return n;
}

static int host_worker(mcpgw_plugin_ctx *ctx, int *n_workers)
{
    if (n_workers)
        *n_workers = ctx->p->m->n_workers;
    return ctx->p->m->worker;
}

static int host_send_text(mcpgw_conn *c, const char *text, size_t len)
{
    json_t *s, *rec;

    if (!c || c->ended || c->closing)
        return -1;
    s = json_stringn(text, len);
    if (!s) {
        violation(c->m, "send_text() with text that is not UTF-8");
        return -1;
    }
    rec = conn_rec("send_text", c);
    json_object_set_new(rec, "text", s);
    record(c->m, rec);
    return 0;
}

static void host_close(mcpgw_conn *c, int code, const char *reason)
{
    char r[124];
    size_t n = reason ? strlen(reason) : 0;
    json_t *rec;

    if (!c || c->ended || c->closing)
        return;
    if (!(code == 1000 || code == 1001 || code == 1003 || code == 1007 || code == 1008 ||
          code == 1009 || code == 1011 || code == 1012 || code == 1013 || code == 1014 ||
          (code >= 3000 && code <= 4999)))
        code = 1011;
    if (n > sizeof(r) - 1) {
        n = sizeof(r) - 1;
        while (n && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(r, reason ? reason : "", n);
    r[n] = '\0';
    c->closing = 1;
    rec = conn_rec("close", c);
    json_object_set_new(rec, "code", json_integer(code));
    json_object_set_new(rec, "reason", json_string(r));  /* NULL (not UTF-8): no reason */
    record(c->m, rec);
}

static size_t host_conn_queued(mcpgw_conn *c)
{
    return c ? c->queued : 0;
}

static mcpgw_timer *host_timer_start(mcpgw_plugin_ctx *ctx, unsigned ms, void (*fn)(void *arg),
                                     void *arg)
{
    mcpgw_mock *m = ctx->p->m;
    mcpgw_timer *t;

    if (!fn || !(t = calloc(1, sizeof(*t))))
        return NULL;
    t->due = m->now_ms + ms;
    t->seq = ++m->timer_seq;
    t->fn = fn;
    t->arg = arg;
    t->next = m->timers;
    m->timers = t;
    return t;
}

/* Unlinks t from the mock that holds it; 0, or -1 when no mock holds it. */
static int timer_unlink(mcpgw_mock *m, mcpgw_timer *t)
{
    for (mcpgw_timer **pp = &m->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return 0;
        }
    }
    return -1;
}

/* timer_cancel has no ctx: the mock that holds the handle is found through
 * the list of every live mock (tests rarely have more than one). */
static pthread_mutex_t mocks_lock = PTHREAD_MUTEX_INITIALIZER;
typedef struct mock_list { mcpgw_mock *m; struct mock_list *next; } mock_list;
static mock_list *mocks;

static void host_timer_cancel(mcpgw_timer *t)
{
    mcpgw_mock *last = NULL;
    int found = 0;

    if (!t)
        return;
    pthread_mutex_lock(&mocks_lock);
    for (mock_list *l = mocks; l && !found; l = l->next) {
        last = l->m;
        found = timer_unlink(l->m, t) == 0;
    }
    pthread_mutex_unlock(&mocks_lock);
    if (found)
        free(t);
    else if (last)
        violation(last, "timer_cancel() of a timer that has fired or was cancelled");
}

static mcpgw_child *host_child_spawn(mcpgw_plugin_ctx *ctx, const mcpgw_child_spec *spec,
                                     char *err, size_t err_len)
{
    mcpgw_mock *m = ctx->p->m;
    mcpgw_child *ch;
    json_t *argv, *env, *rec;

    if (err && err_len)
        err[0] = '\0';
    if (m->spawn_failure) {
        if (err && err_len)
            snprintf(err, err_len, "%s", m->spawn_failure);
        free(m->spawn_failure);
        m->spawn_failure = NULL;
        return NULL;
    }
    if (!spec || !spec->argv || !spec->argv[0] || !spec->on_line || !spec->on_exit) {
        if (err && err_len)
            snprintf(err, err_len, "invalid child spec");
        return NULL;
    }
    if (!(ch = calloc(1, sizeof(*ch)))) {
        if (err && err_len)
            snprintf(err, err_len, "out of memory");
        return NULL;
    }
    ch->m = m;
    ch->pid = ++m->next_pid;
    ch->on_line = spec->on_line;
    ch->on_exit = spec->on_exit;
    ch->arg = spec->arg;
    ch->max_queue = spec->max_queue ? spec->max_queue : DEFAULT_QUEUE;
    ch->next = m->children;
    m->children = ch;
    m->last_child = ch;

    argv = json_array();
    for (size_t i = 0; spec->argv[i]; i++)
        json_array_append_new(argv, json_string(spec->argv[i]));
    env = json_array();
    for (size_t i = 0; spec->envp && spec->envp[i]; i++)
        json_array_append_new(env, json_string(spec->envp[i]));
    rec = json_pack("{s:s, s:I, s:o, s:o}", "what", "child_spawn", "child", (json_int_t)ch->pid,
                    "argv", argv, "env", env);
    if (rec && spec->cwd)
        json_object_set_new(rec, "cwd", json_string(spec->cwd));
    record(m, rec);
    return ch;
}

static int host_child_write(mcpgw_child *ch, const char *data, size_t len)
{
    char *grown;

    if (!ch || ch->ended || len > ch->max_queue - ch->in_len)
        return -1;
    grown = realloc(ch->in, ch->in_len + len + 1);
    if (!grown)
        return -1;
    memcpy(grown + ch->in_len, data, len);
    ch->in = grown;
    ch->in_len += len;
    ch->in[ch->in_len] = '\0';
    return 0;
}

static size_t host_child_queued(mcpgw_child *ch)
{
    return ch ? ch->in_len : 0;
}

static void host_child_pause(mcpgw_child *ch, int paused)
{
    if (ch)
        ch->paused = paused;
}

static void host_child_stop(mcpgw_child *ch, unsigned grace_ms)
{
    if (!ch)
        return;
    if (ch->ended) {
        violation(ch->m, "child_stop() of a child that has ended");
        return;
    }
    ch->ended = 1;
    if (ch->m->last_child == ch)
        ch->m->last_child = NULL;
    record(ch->m, json_pack("{s:s, s:I, s:I}", "what", "child_stop", "child",
                            (json_int_t)ch->pid, "grace_ms", (json_int_t)grace_ms));
}

static long host_child_pid(mcpgw_child *ch)
{
    return ch ? ch->pid : -1;
}

static void host_metric(mcpgw_plugin_ctx *ctx, int which, const char *label, double value)
{
    record(ctx->p->m, json_pack("{s:s, s:i, s:o, s:f}", "what", "metric", "which", which,
                                "label", label ? json_string(label) : json_null(), "value",
                                value));
}

static json_t *host_json_parse(mcpgw_plugin_ctx *ctx, const char *text, size_t len)
{
    (void)ctx;
    return text ? json_loadb(text, len, JSON_DECODE_ANY, NULL) : NULL;
}

static int host_child_write_json(mcpgw_child *ch, json_t *msg)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    size_t n;
    int rc;

    if (!s)
        return -1;
    n = strlen(s);
    s[n] = '\n';                        /* json_dumps leaves room for the NUL */
    rc = host_child_write(ch, s, n + 1);
    free(s);
    return rc;
}

static int host_claim_matches(mcpgw_conn *c, const char *claim, const char *value)
{
    return c && mcpgw_claims_match(c->claims, claim, value);
}

/* The table as far as ABI 1.3: handlers without a tree (1.4) are not
 * mocked, so a plugin that checks MCPGW_HOST_HAS() runs its tree handlers
 * here (the ones a batch and a 1.3 gateway use). */
static const mcpgw_host host_template = {
    .size = (uint32_t)offsetof(mcpgw_host, register_raw_handler),
    .abi_major = MCPGW_PLUGIN_ABI_MAJOR,
    .abi_minor = 3,
    .register_handler = host_register_handler,
    .handler_type = host_handler_type,
    .config_get = host_config_get,
    .config_foreach = host_config_foreach,
    .log = host_log,
    .timestamp = host_timestamp,
    .event_base = host_event_base,
    .post = host_post,
    .request_conn = host_request_conn,
    .request_orphaned = host_request_orphaned,
    .complete = host_complete,
    .fail = host_fail,
    .dispatch = host_dispatch,
    .conn_user = host_conn_user,
    .conn_claims = host_conn_claims,
    .conn_id = host_conn_id,
    .send = host_send,
    .broadcast = host_broadcast,
    .worker = host_worker,
    .send_text = host_send_text,
    .close = host_close,
    .conn_queued = host_conn_queued,
    .timer_start = host_timer_start,
    .timer_cancel = host_timer_cancel,
    .child_spawn = host_child_spawn,
    .child_write = host_child_write,
    .child_queued = host_child_queued,
    .child_pause = host_child_pause,
    .child_stop = host_child_stop,
    .child_pid = host_child_pid,
    .metric = host_metric,
    .json_parse = host_json_parse,
    .child_write_json = host_child_write_json,
    .claim_matches = host_claim_matches,
};

/* ------------------------------------------------------------- plugins */

static void plugin_free(mcpgw_mock_plugin *p)
{
    while (p->all_keys) {
        keyset *ks = p->all_keys;
        p->all_keys = ks->next;
        for (size_t i = 0; i < 2 * ks->n; i++)
            free(ks->kv[i]);
        free(ks->kv);
        free(ks);
    }
    if (p->dl)
        dlclose(p->dl);
    free(p->type);
    free(p);
}

/* Loads desc (from dl, which it then owns, or linked in). */
static mcpgw_mock_plugin *load(mcpgw_mock *m, const mcpgw_plugin *desc, void *dl,
                               const char *type, const char *const *keys, char *err,
                               size_t err_len)
{
    char buf[512], local[256];
    const char *why;
    mcpgw_mock_plugin *p = NULL;
    int rc;

    if (!err || !err_len) {
        err = local;
        err_len = sizeof(local);
    }
    err[0] = '\0';
    if (!desc || !type || !*type) {
        snprintf(err, err_len, "no descriptor or type");
        goto fail;
    }
    if ((why = mcpgw_plugin_check_descriptor(desc, buf, sizeof(buf))) != NULL ||
        (keys_fit(desc, keys, type, buf, sizeof(buf)) != 0 && (why = buf))) {
        snprintf(err, err_len, "%s", why);
        goto fail;
    }
    if (!(p = calloc(1, sizeof(*p))) || !(p->type = strdup(type))) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    p->m = m;
    p->ctx.p = p;
    p->desc = desc;
    p->dl = dl;
    dl = NULL;
    if (!(p->keys = keyset_new(p, keys))) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    p->in_init = 1;
    rc = desc->init(&m->host, &p->ctx, &p->instance, err, err_len);
    p->in_init = 0;
    if (rc != 0) {
        if (!err[0])
            snprintf(err, err_len, "init refused (returned %d)", rc);
        handlers_remove_owner(m, p);
        goto fail;
    }
    if (p->register_error[0]) {
        /* init succeeded though a registration failed: the loader refuses it */
        snprintf(err, err_len, "%s", p->register_error);
        if (desc->fini)
            desc->fini(p->instance);
        handlers_remove_owner(m, p);
        goto fail;
    }
    p->loaded = 1;
    p->next = m->plugins;
    m->plugins = p;
    return p;

fail:
    if (p)
        plugin_free(p);
    if (dl)
        dlclose(dl);
    return NULL;
}

mcpgw_mock_plugin *mcpgw_mock_load(mcpgw_mock *m, const mcpgw_plugin *desc, const char *type,
                                   const char *const *keys, char *err, size_t err_len)
{
    return load(m, desc, NULL, type, keys, err, err_len);
}

mcpgw_mock_plugin *mcpgw_mock_load_file(mcpgw_mock *m, const char *path, const char *type,
                                        const char *const *keys, char *err, size_t err_len)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const mcpgw_plugin *desc;

    if (!dl) {
        if (err && err_len)
            snprintf(err, err_len, "dlopen failed: %s", dlerror());
        return NULL;
    }
    desc = dlsym(dl, "mcpgw_plugin_descriptor");
    if (!desc) {
        if (err && err_len)
            snprintf(err, err_len, "no mcpgw_plugin_descriptor symbol (use MCPGW_PLUGIN_DEFINE)");
        dlclose(dl);
        return NULL;
    }
    return load(m, desc, dl, type, keys, err, err_len);
}

int mcpgw_mock_reload(mcpgw_mock_plugin *p, const char *const *keys, char *err, size_t err_len)
{
    const mcpgw_plugin *d = p->desc;
    keyset *old = p->keys;
    char local[256];

    if (!err || !err_len) {
        err = local;
        err_len = sizeof(local);
    }
    err[0] = '\0';
    if (!p->loaded || !DESC_HAS(d, reload) || !d->reload) {
        snprintf(err, err_len, "plugin '%s' has no reload (the gateway restarts it)", d->name);
        return -1;
    }
    if (keys_fit(d, keys, p->type, err, err_len) != 0)
        return -1;
    if (!(p->keys = keyset_new(p, keys))) {
        p->keys = old;
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (d->reload(p->instance, &p->ctx, err, err_len) != 0) {
        p->keys = old;
        if (!err[0])
            snprintf(err, err_len, "reload refused");
        return -1;
    }
    return 0;
}

void mcpgw_mock_unload(mcpgw_mock_plugin *p)
{
    if (!p->loaded)
        return;
    for (mcpgw_conn *c = p->m->conns; c; c = c->next)
        if (c->level == p)
            mcpgw_mock_conn_end(c, 1001);
    p->loaded = 0;
    if (p->desc->fini)
        p->desc->fini(p->instance);
    handlers_remove_owner(p->m, p);
}

void *mcpgw_mock_instance(mcpgw_mock_plugin *p)
{
    return p ? p->instance : NULL;
}

const mcpgw_plugin *mcpgw_mock_descriptor(mcpgw_mock_plugin *p)
{
    return p ? p->desc : NULL;
}

mcpgw_plugin_ctx *mcpgw_mock_ctx(mcpgw_mock_plugin *p)
{
    return &p->ctx;
}

/* ------------------------------------------------------------- time and posts */

size_t mcpgw_mock_advance(mcpgw_mock *m, unsigned ms)
{
    unsigned long long target = m->now_ms + ms;
    size_t fired = 0;

    for (;;) {
        mcpgw_timer *next = NULL;
        for (mcpgw_timer *t = m->timers; t; t = t->next)
            if (t->due <= target &&
                (!next || t->due < next->due || (t->due == next->due && t->seq < next->seq)))
                next = t;
        if (!next)
            break;
        timer_unlink(m, next);
        m->now_ms = next->due;
        {
            void (*fn)(void *) = next->fn;
            void *arg = next->arg;
            free(next);                 /* the handle is gone before fn runs */
            fn(arg);
        }
        fired++;
    }
    m->now_ms = target;
    return fired;
}

size_t mcpgw_mock_timers(mcpgw_mock *m)
{
    size_t n = 0;

    for (mcpgw_timer *t = m->timers; t; t = t->next)
        n++;
    return n;
}

size_t mcpgw_mock_run_posted(mcpgw_mock *m)
{
    size_t ran = 0;

    for (;;) {
        posted *w;
        pthread_mutex_lock(&m->post_lock);
        w = m->post_head;
        if (w) {
            m->post_head = w->next;
            if (!m->post_head)
                m->post_tail = NULL;
        }
        pthread_mutex_unlock(&m->post_lock);
        if (!w)
            break;
        w->fn(w->arg);
        free(w);
        ran++;
    }
    return ran;
}

/* ------------------------------------------------------------- mock children */

mcpgw_child *mcpgw_mock_child_last(mcpgw_mock *m)
{
    return m->last_child;
}

int mcpgw_mock_child_line(mcpgw_child *ch, const char *line)
{
    if (!ch || ch->ended || ch->paused)
        return -1;
    ch->on_line(ch->arg, line, strlen(line));
    return 0;
}

void mcpgw_mock_child_exit(mcpgw_child *ch, int status)
{
    if (!ch || ch->ended)
        return;
    ch->ended = 1;
    if (ch->m->last_child == ch)
        ch->m->last_child = NULL;
    ch->on_exit(ch->arg, status);
}

const char *mcpgw_mock_child_stdin(mcpgw_child *ch, size_t *len)
{
    if (len)
        *len = ch->in_len;
    return ch->in ? ch->in : "";
}

void mcpgw_mock_child_drain(mcpgw_child *ch)
{
    free(ch->in);
    ch->in = NULL;
    ch->in_len = 0;
}

void mcpgw_mock_fail_next_spawn(mcpgw_mock *m, const char *reason)
{
    free(m->spawn_failure);
    m->spawn_failure = strdup(reason && *reason ? reason : "spawn failed");
}

/* ------------------------------------------------------------- the mock */

mcpgw_mock *mcpgw_mock_new(void)
{
    mcpgw_mock *m = calloc(1, sizeof(*m));
    mock_list *l = calloc(1, sizeof(*l));

    if (!m || !l || !(m->records = json_array())) {
        free(m);
        free(l);
        return NULL;
    }
    m->host = host_template;
    m->n_workers = 1;
    m->next_pid = 1000;
    pthread_mutex_init(&m->post_lock, NULL);
    l->m = m;
    pthread_mutex_lock(&mocks_lock);
    l->next = mocks;
    mocks = l;
    pthread_mutex_unlock(&mocks_lock);
    return m;
}

const mcpgw_host *mcpgw_mock_host(mcpgw_mock *m)
{
    return &m->host;
}

void mcpgw_mock_set_worker(mcpgw_mock *m, int worker, int n_workers)
{
    m->worker = worker;
    m->n_workers = n_workers;
}

void mcpgw_mock_set_event_base(mcpgw_mock *m, struct event_base *base)
{
    m->base = base;
}

void mcpgw_mock_free(mcpgw_mock *m)
{
    if (!m)
        return;
    /* as at shutdown: connections end, then fini in reverse order */
    for (mcpgw_conn *c = m->conns; c; c = c->next)
        mcpgw_mock_conn_end(c, 1001);
    for (mcpgw_mock_plugin *p = m->plugins; p; p = p->next)
        mcpgw_mock_unload(p);

    pthread_mutex_lock(&mocks_lock);
    for (mock_list **pp = &mocks; *pp; pp = &(*pp)->next) {
        if ((*pp)->m == m) {
            mock_list *l = *pp;
            *pp = l->next;
            free(l);
            break;
        }
    }
    pthread_mutex_unlock(&mocks_lock);

    while (m->requests) {
        mcpgw_request *r = m->requests;
        m->requests = r->next;
        json_decref(r->id);
        free(r);
    }
    while (m->timers) {
        mcpgw_timer *t = m->timers;
        m->timers = t->next;
        free(t);
    }
    while (m->post_head) {
        posted *w = m->post_head;
        m->post_head = w->next;
        free(w);
    }
    while (m->children) {
        mcpgw_child *ch = m->children;
        m->children = ch->next;
        free(ch->in);
        free(ch);
    }
    while (m->conns) {
        mcpgw_conn *c = m->conns;
        m->conns = c->next;
        free(c->user);
        json_decref(c->claims);
        free(c);
    }
    while (m->handlers) {
        handler *h = m->handlers;
        m->handlers = h->next;
        free(h->type);
        free(h);
    }
    while (m->plugins) {
        mcpgw_mock_plugin *p = m->plugins;
        m->plugins = p->next;
        plugin_free(p);
    }
    free(m->spawn_failure);
    json_decref(m->records);
    pthread_mutex_destroy(&m->post_lock);
    free(m);
}
