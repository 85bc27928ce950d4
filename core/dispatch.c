/*
 * dispatch.c - the handler table and the life of one message: parse, route,
 * run the handler, deliver its result (now or later). See dispatch.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "dispatch.h"
#include "transport.h"
#include "ws_frame.h"
#include "protocol.h"
#include "json_read.h"
#include "json_view.h"
#include "log.h"
#include "plugin_loader.h"
#include "server.h"
#include "worker_board.h"

/* ------------------------------------------------------- handler table */

static size_t type_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

int mcpgw_handler_table_init(mcpgw_handler_table *t)
{
    t->n_buckets = 64;
    t->n_entries = 0;
    t->n_raw = 0;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    return t->buckets ? 0 : -1;
}

void mcpgw_handler_table_free(mcpgw_handler_table *t)
{
    for (size_t i = 0; i < t->n_buckets; i++) {
        mcpgw_handler_entry *e = t->buckets[i];
        while (e) {
            mcpgw_handler_entry *next = e->next;
            free(e->type);
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->n_buckets = t->n_entries = t->n_raw = 0;
}

const mcpgw_handler_entry *mcpgw_handler_table_find(const mcpgw_handler_table *t,
                                                    const char *type)
{
    const mcpgw_handler_entry *e;

    if (!t->buckets)
        return NULL;
    for (e = t->buckets[type_hash(type) % t->n_buckets]; e; e = e->next)
        if (strcmp(e->type, type) == 0)
            return e;
    return NULL;
}

int mcpgw_handler_table_add(mcpgw_handler_table *t, const char *type,
                            mcpgw_handler_fn fn, void *data, mcpgw_plugin_ctx *ctx)
{
    mcpgw_handler_entry *e;
    size_t b;

    if (mcpgw_handler_table_find(t, type))
        return -1;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->type = strdup(type))) {
        free(e);
        return -1;
    }
    e->fn = fn;
    e->data = data;
    e->ctx = ctx;
    e->hist = mcpgw_stats_histogram(ctx ? ctx->srv->stats : NULL, type);
    if (!e->hist)
        e->hist = &e->own_hist;
    b = type_hash(type) % t->n_buckets;
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->n_entries++;
    return 0;
}

int mcpgw_handler_table_set_raw(mcpgw_handler_table *t, const char *type,
                                const mcpgw_plugin_ctx *ctx, mcpgw_raw_handler_fn fn,
                                void *data)
{
    mcpgw_handler_entry *e = (mcpgw_handler_entry *)mcpgw_handler_table_find(t, type);

    if (!e || e->ctx != ctx || e->raw_fn || !fn)
        return -1;
    e->raw_fn = fn;
    e->raw_data = data;
    t->n_raw++;
    return 0;
}

size_t mcpgw_handler_table_remove_ctx(mcpgw_handler_table *t, const mcpgw_plugin_ctx *ctx)
{
    size_t removed = 0;

    for (size_t i = 0; i < t->n_buckets; i++) {
        mcpgw_handler_entry **pp = &t->buckets[i];
        while (*pp) {
            mcpgw_handler_entry *e = *pp;
            if (e->ctx == ctx) {
                *pp = e->next;
                if (e->raw_fn)
                    t->n_raw--;
                free(e->type);
                free(e);
                t->n_entries--;
                removed++;
            } else {
                pp = &e->next;
            }
        }
    }
    return removed;
}

/* ------------------------------------------------------------ requests */

/* A raw reply buffer that grew past this is given back after the message. */
#define MCPGW_RAW_REPLY_KEEP 65536

/* Fills a zeroed req: a request of conn (sub-request of parent, or NULL)
 * with msg's id, holding a reference on conn. */
static void request_init(mcpgw_request *req, mcpgw_conn *conn, mcpgw_request *parent,
                         json_t *msg)
{
    json_t *id;

    req->conn = conn;
    req->parent = parent;
    id = json_object_get(msg, "id");
    req->id = id ? json_incref(id) : NULL;
    mcpgw_conn_ref(conn);
    conn->srv->n_requests++;
    if (!parent)
        conn->n_pending++;
}

static mcpgw_request *request_new(mcpgw_conn *conn, mcpgw_request *parent, json_t *msg)
{
    mcpgw_request *req = calloc(1, sizeof(*req));

    if (req)
        request_init(req, conn, parent, msg);
    return req;
}

static void request_free(mcpgw_request *req)
{
    mcpgw_server *srv = req->conn->srv;

    mcpgw_conn *conn = req->conn;

    json_decref(req->id);
    if (!req->parent && --conn->n_pending == 0 && conn->close_when_done &&
        mcpgw_conn_is_open(conn))
    {
        /* shutting down: its last reply is queued, now the close (and
         * reading again, for the client's close frame) */
        mcpgw_conn_close(conn, MCPGW_WS_CLOSE_GOING_AWAY, "Server shutting down");
        if (conn->transport)
            mcpgw_transport_set_reading(conn->transport, 1);
    }
    mcpgw_conn_unref(conn);
    if (!req->on_stack)
        free(req);
    srv->n_requests--;
    mcpgw_server_conn_gone(srv);
}

/* The protocol's error for a message that could not be processed. */
static void send_processing_error(mcpgw_conn *conn, json_t *id, const char *reason)
{
    mcpgw_server *srv = conn->srv;
    json_t *err = json_object();

    json_object_set_new(err, "type", json_string("error"));
    if (id)
        json_object_set(err, "id", id);
    json_object_set_new(err, "message", json_string("Failed to process message"));
    json_object_set_new(err, "error", json_string(reason));
    json_object_set_new(err, "timestamp", json_string(mcpgw_clock_iso(&srv->clock)));
    mcpgw_conn_send_json(conn, err);
    json_decref(err);
}

/* Ends a request: delivers the result where it belongs and frees it.
 * result is borrowed. */
static void request_finish(mcpgw_request *req, int status, json_t *result)
{
    if (req->parent) {
        req->cb(req->cb_data, status, result);
    } else if (mcpgw_conn_is_open(req->conn)) {
        if (status == MCPGW_HANDLER_DONE) {
            if (result)
                mcpgw_conn_send_json(req->conn, result);
        } else {
            const char *reason = json_is_string(result) ? json_string_value(result) : NULL;
            req->conn->srv->metrics->errors[MCPGW_ERR_SERVER]++;
            send_processing_error(req->conn, req->id, reason && *reason ? reason : "Handler failed");
        }
    }
    request_free(req);
}

void mcpgw_request_complete(mcpgw_request *req, json_t *reply)
{
    request_finish(req, MCPGW_HANDLER_DONE, reply);
    json_decref(reply);
}

void mcpgw_request_fail(mcpgw_request *req, const char *reason)
{
    json_t *r = json_string(reason && *reason ? reason : "Handler failed");

    request_finish(req, MCPGW_HANDLER_FAILED, r);
    json_decref(r);
}

/* Logs an unknown type: the first per connection at warn, the rest at debug,
 * so a misbehaving client cannot flood the log. */
static void log_unknown_type(mcpgw_conn *conn, const char *type)
{
    mcpgw_server *srv = conn->srv;
    int level = conn->warned_unknown_type ? MCPGW_LOG_DEBUG : MCPGW_LOG_WARN;

    conn->warned_unknown_type = 1;
    mcpgw_server_log(srv, level, "unknown_message_type", "{s:s, s:s, s:I}", "type", type, "user",
                     conn->user ? conn->user : "", "connection", (json_int_t)conn->id);
}

/* "Unknown message type: TYPE", TYPE cut to at most 256 bytes on a UTF-8
 * character boundary (a cut character would make the reply invalid JSON). */
static void unknown_type_text(char *text, size_t cap, const char *type)
{
    size_t n = strlen(type);

    if (n > 256) {
        n = 256;
        while (n > 0 && ((unsigned char)type[n] & 0xC0) == 0x80)
            n--;
    }
    snprintf(text, cap, "Unknown message type: %.*s", (int)n, type);
}

/* The reference's answer to a type no handler serves (id: borrowed, may be NULL). */
static void send_unknown_type(mcpgw_conn *conn, json_t *id, const char *text)
{
    mcpgw_server *srv = conn->srv;
    json_t *err = json_object();

    json_object_set_new(err, "type", json_string("error"));
    if (id)
        json_object_set(err, "id", id);
    json_object_set_new(err, "message", json_string(text));
    json_object_set_new(err, "timestamp", json_string(mcpgw_clock_iso(&srv->clock)));
    mcpgw_conn_send_json(conn, err);
    json_decref(err);
}

/* Appends s[0..len) to out[*n..cap-1), keeping it NUL-terminated. */
static void js_put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + 1 >= cap)
        return;
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

/* JavaScript's Number.prototype.toString() of d (ECMA-262 Number::toString):
 * the shortest digits that read back to d, positional from 1e-7 up to 1e21,
 * d.ddde+N outside it. out has room for 32 bytes. */
static void js_number_text(double d, char *out)
{
    char e[40], digits[20];
    int k = 0, n, o = 0;
    const char *p;

    if (d == 0) {                   /* also -0 */
        strcpy(out, "0");
        return;
    }
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, d);
        if (prec == 16 || strtod(e, NULL) == d)
            break;
    }
    p = e;
    if (*p == '-')
        out[o++] = *p++;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    n = atoi(p + 1) + 1;            /* |d| = 0.DIGITS x 10^n */
    if (k <= n && n <= 21) {        /* an integer: the digits, then zeros */
        for (int i = 0; i < n; i++)
            out[o++] = i < k ? digits[i] : '0';
    } else if (0 < n && n <= 21) {  /* the point inside the digits */
        for (int i = 0; i < k; i++) {
            if (i == n)
                out[o++] = '.';
            out[o++] = digits[i];
        }
    } else if (-6 < n && n <= 0) {  /* 0.000DIGITS */
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        for (int i = 0; i < k; i++)
            out[o++] = digits[i];
    } else {                        /* D.DDDe+N */
        out[o++] = digits[0];
        if (k > 1)
            out[o++] = '.';
        for (int i = 1; i < k; i++)
            out[o++] = digits[i];
        o += sprintf(out + o, "e%c%d", n - 1 < 0 ? '-' : '+', n - 1 < 0 ? 1 - n : n - 1);
    }
    out[o] = '\0';
}

/* What the reference's `${message.type}` gives for a parsed JSON value
 * (NULL: undefined): numbers as JavaScript writes them, an object as
 * "[object Object]", an array as its elements' texts joined by ","
 * (null inside an array as ""). Appended to out[*n..cap). */
static void js_text(const json_t *v, char *out, size_t cap, size_t *n)
{
    char num[32];

    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        js_put(out, cap, n, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        /* beyond 2^53 JavaScript holds the nearest double */
        if (i > 9007199254740992LL || i < -9007199254740992LL)
            js_number_text((double)i, num);
        else
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, i);
        js_put(out, cap, n, num, strlen(num));
        return;
    }
    case JSON_REAL:
        js_number_text(json_real_value(v), num);
        js_put(out, cap, n, num, strlen(num));
        return;
    case JSON_TRUE:
        js_put(out, cap, n, "true", 4);
        return;
    case JSON_FALSE:
        js_put(out, cap, n, "false", 5);
        return;
    case JSON_OBJECT:
        js_put(out, cap, n, "[object Object]", 15);
        return;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v) && *n + 1 < cap; i++) {
            json_t *el = json_array_get(v, i);
            if (i)
                js_put(out, cap, n, ",", 1);
            if (!json_is_null(el))
                js_text(el, out, cap, n);
        }
        return;
    case JSON_NULL:
        if (v)
            js_put(out, cap, n, "null", 4);
        else
            js_put(out, cap, n, "undefined", 9);
        return;
    }
}

/* The request's "id" (borrowed, may be NULL). A raw handler's request
 * reads it from the view only when an error reply needs it. */
static json_t *request_id(mcpgw_request *req)
{
    mcpgw_member m;

    if (!req->id && req->view && mcpgw_json_view_get(req->view, "id", &m) != MCPGW_JSON_ABSENT)
        req->id = mcpgw_json_read(m.text, m.len, NULL);
    return req->id;
}

/* Checks the section's rules for req; 0, or -1 when refused (the refusal
 * was answered and req is gone). msg may be NULL for a top-level message
 * (its size is req->len). */
static int request_admit(mcpgw_request *req, const mcpgw_handler_entry *e, json_t *msg)
{
    mcpgw_server *srv = req->conn->srv;
    const mcpgw_handler_config *sec = e->ctx ? e->ctx->section : NULL;
    const char *refused;
    char text[320];

    /* most sections have no rule: no clock to read */
    if (!sec || (!sec->claim_name && !sec->max_message_bytes && !(sec->rate_per_user > 0)))
        return 0;
    refused = mcpgw_policy_check(&srv->policy, sec, req->conn, msg, req->len,
                                 mcpgw_clock_seconds(&srv->clock), text, sizeof(text));
    if (!refused)
        return 0;
    if (req->parent) {
        mcpgw_request_fail(req, text);
    } else {
        json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "message",
                                refused, "error", text, "timestamp",
                                mcpgw_clock_iso(&srv->clock));
        if (err && request_id(req))
            json_object_set(err, "id", req->id);
        if (err)
            mcpgw_conn_send_json(req->conn, err);
        json_decref(err);
        request_free(req);
    }
    return -1;
}

/* Runs e's tree handler on msg (admitted already). Takes req. */
static void request_call(mcpgw_request *req, const mcpgw_handler_entry *e, json_t *msg)
{
    json_t *out = NULL;
    int rc;

    {
        struct timespec t0, t1;
        mcpgw_histogram *hist = e->hist;
        const char *outer;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* the crash handler and the watchdog see what runs (worker_board.h) */
        outer = mcpgw_watch_enter(e->type, (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec);
        rc = e->fn(req, msg, &out, e->data);
        mcpgw_watch_leave(outer);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        mcpgw_histogram_observe(hist, (double)(t1.tv_sec - t0.tv_sec) +
                                          (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    /* After PENDING the request may already be finished and freed. */
    if (rc == MCPGW_HANDLER_PENDING)
        return;
    if (rc == MCPGW_HANDLER_DONE) {
        request_finish(req, MCPGW_HANDLER_DONE, out);
    } else {
        if (!json_is_string(out)) {
            json_decref(out);
            out = json_string("Handler failed");
        }
        request_finish(req, MCPGW_HANDLER_FAILED, out);
    }
    json_decref(out);
}

/* Routes msg (an object with a string type) to its handler. Takes req. */
static void request_run(mcpgw_request *req, json_t *msg, const char *type)
{
    mcpgw_server *srv = req->conn->srv;
    const mcpgw_handler_entry *e = mcpgw_handler_table_find(&srv->handlers, type);
    char text[320];

    if (!e) {
        log_unknown_type(req->conn, type);
        unknown_type_text(text, sizeof(text), type);
        if (req->parent) {
            mcpgw_request_fail(req, text);
        } else {
            send_unknown_type(req->conn, req->id, text);
            request_free(req);
        }
        return;
    }
    if (request_admit(req, e, msg) != 0)
        return;
    request_call(req, e, msg);
}

/* Runs e's raw handler on a top-level message's view (admitted already).
 * Takes req. */
static void request_call_raw(mcpgw_request *req, const mcpgw_handler_entry *e, mcpgw_view *v)
{
    mcpgw_conn *conn = req->conn;
    mcpgw_server *srv = conn->srv;
    mcpgw_buf *reply = &srv->raw_reply;
    struct timespec t0, t1;
    const char *outer;
    int rc;

    reply->len = 0;
    req->view = v;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    outer = mcpgw_watch_enter(e->type, (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec);
    rc = e->raw_fn(req, v, reply, e->raw_data);
    mcpgw_watch_leave(outer);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    mcpgw_histogram_observe(e->hist, (double)(t1.tv_sec - t0.tv_sec) +
                                         (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (rc == MCPGW_HANDLER_DECLINED) {
        /* the tree after all (the scan said it parses), and the request
         * on the heap: the tree handler may keep it */
        json_t *msg = mcpgw_json_read(v->text, v->len, NULL);
        mcpgw_request *heap = malloc(sizeof(*heap));

        req->view = NULL;
        if (!msg || !heap) {
            json_decref(msg);
            free(heap);
            mcpgw_request_fail(req, "Out of memory");
            return;
        }
        *heap = *req;
        heap->on_stack = 0;
        req = heap;
        json_decref(req->id);
        req->id = json_incref(json_object_get(msg, "id"));
        request_call(req, e, msg);
        json_decref(msg);
        return;
    }
    if (rc == MCPGW_HANDLER_DONE) {
        if (reply->len && mcpgw_conn_is_open(conn))
            mcpgw_conn_send_text(conn, reply->data, reply->len);
    } else if (mcpgw_conn_is_open(conn)) {
        /* FAILED (PENDING is not a raw handler's to return): the reason */
        json_t *why = rc == MCPGW_HANDLER_FAILED && reply->len
                          ? json_stringn(reply->data, reply->len) : NULL;
        const char *reason = json_string_length(why) ? json_string_value(why) : "Handler failed";

        srv->metrics->errors[MCPGW_ERR_SERVER]++;
        send_processing_error(conn, request_id(req), reason);
        json_decref(why);
    }
    req->view = NULL;
    if (reply->cap > MCPGW_RAW_REPLY_KEEP) {
        free(reply->data);
        *reply = (mcpgw_buf){ NULL, 0, 0 };
    }
    request_free(req);
}

/* The path without a tree: 0 when the message was served from a view, -1
 * when it takes the tree path (not valid JSON, not an object with a
 * string type, auth, no handler or no raw twin for its type). */
static int dispatch_view(mcpgw_conn *conn, const uint8_t *data, size_t len)
{
    mcpgw_server *srv = conn->srv;
    const mcpgw_handler_entry *e;
    mcpgw_request local, *req;
    mcpgw_member m;
    const char *type;
    mcpgw_view v;
    int rc = -1;

    if (mcpgw_json_view_scan(&v, (const char *)data, len) != MCPGW_JSON_VIEW_OK ||
        mcpgw_json_view_get(&v, "type", &m) != MCPGW_JSON_STRING ||
        !(type = mcpgw_json_view_string(&v, &m, NULL)) || strcmp(type, "auth") == 0 ||
        !(e = mcpgw_handler_table_find(&srv->handlers, type)) || !e->raw_fn)
        goto out;
    rc = 0;
    mcpgw_server_log(srv, MCPGW_LOG_DEBUG, "websocket_message", "{s:s, s:s, s:s, s:I}", "direction",
                     "incoming", "type", type, "user", conn->user ? conn->user : "", "bytes",
                     (json_int_t)len);
    /* on the stack: a raw handler answers before it returns */
    memset(&local, 0, sizeof(local));
    req = &local;
    request_init(req, conn, NULL, NULL);
    req->on_stack = 1;
    req->len = len;
    req->view = &v;
    if (request_admit(req, e, NULL) == 0)
        request_call_raw(req, e, &v);
out:
    mcpgw_json_view_release(&v);
    return rc;
}

void mcpgw_dispatch_raw(mcpgw_conn *conn, const uint8_t *data, size_t len)
{
    mcpgw_server *srv = conn->srv;
    mcpgw_json_read_error jerr;
    json_t *msg, *type;
    mcpgw_request *req;

    if (srv->handlers.n_raw && dispatch_view(conn, data, len) == 0)
        return;
    msg = mcpgw_json_read((const char *)data, len, &jerr);

    if (!msg) {
        mcpgw_server_log(srv, MCPGW_LOG_DEBUG, "websocket_message_processing_error", "{s:s, s:s}",
                         "user", conn->user ? conn->user : "", "error", jerr.text);
        send_processing_error(conn, NULL, jerr.text[0] ? jerr.text : "Invalid JSON");
        return;
    }
    if (json_is_null(msg)) {
        /* the reference reads null.type and reports V8's TypeError */
        send_processing_error(conn, NULL, "Cannot read properties of null (reading 'type')");
        goto out;
    }
    /* Any other value without a string type is, for the reference, a type
     * no case matches: "Unknown message type: ${message.type}" (undefined
     * for an array, a number, a string or an object without type). */
    type = json_object_get(msg, "type");
    if (!json_is_string(type)) {
        char shown[300], text[320];
        size_t n = 0;

        shown[0] = '\0';
        js_text(type, shown, sizeof(shown), &n);
        log_unknown_type(conn, shown);
        unknown_type_text(text, sizeof(text), shown);
        send_unknown_type(conn, json_object_get(msg, "id"), text);
        goto out;
    }
    mcpgw_server_log(srv, MCPGW_LOG_DEBUG, "websocket_message", "{s:s, s:s, s:s, s:I}", "direction",
                     "incoming", "type", json_string_value(type), "user",
                     conn->user ? conn->user : "", "bytes", (json_int_t)len);
    if (strcmp(json_string_value(type), "auth") == 0) {
        mcpgw_protocol_refresh(conn, msg);  /* the gateway's own: a new token */
        goto out;
    }
    req = request_new(conn, NULL, msg);
    if (!req) {
        send_processing_error(conn, NULL, "Out of memory");
        goto out;
    }
    req->len = len;
    request_run(req, msg, json_string_value(type));
out:
    json_decref(msg);
}

int mcpgw_dispatch_sub(mcpgw_request *parent, json_t *msg, mcpgw_dispatch_cb cb,
                       void *cb_data)
{
    json_t *type = json_object_get(msg, "type");
    mcpgw_request *req;

    if (!parent || !cb || !json_is_object(msg) || !json_is_string(type))
        return -1;
    req = request_new(parent->conn, parent, msg);
    if (!req)
        return -1;
    req->cb = cb;
    req->cb_data = cb_data;
    request_run(req, msg, json_string_value(type));
    return 0;
}
