/*
 * host_api.c - the host services table plugins receive at init (the
 * functions behind include/mcpgw/plugin.h's mcpgw_host). Each function only
 * translates the plugin's handles to the core's objects and delegates.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth.h"
#include "plugin_abi.h"
#include "child.h"
#include "conn.h"
#include "metrics.h"
#include "transport.h"
#include "utf8.h"
#include "ws_frame.h"
#include "dispatch.h"
#include "host_api.h"
#include "json_read.h"
#include "json_view.h"
#include "json_write.h"
#include "log.h"
#include "mcp_http.h"
#include "plugin_loader.h"
#include "server.h"
#include "worker_board.h"

static int host_register_handler(mcpgw_plugin_ctx *ctx, const char *type,
                                 mcpgw_handler_fn fn, void *handler_data)
{
    mcpgw_server *srv;
    const mcpgw_handler_entry *taken;

    if (!ctx || !type || !*type || !fn)
        return -1;
    srv = ctx->srv;
    if (!ctx->in_init) {
        mcpgw_server_log(srv, MCPGW_LOG_ERROR, "plugin_register_refused", "{s:s, s:s}", "plugin",
                         ctx->section->plugin, "reason", "register_handler called outside init");
        return -1;
    }
    taken = mcpgw_handler_table_find(&srv->handlers, type);
    if (taken || mcpgw_handler_table_add(&srv->handlers, type, fn, handler_data, ctx) != 0) {
        if (!ctx->register_error[0]) {
            if (taken)
                snprintf(ctx->register_error, sizeof(ctx->register_error),
                         "message type '%s' is already handled by plugin '%s' ([handler.%s])",
                         type, taken->ctx->section->plugin, taken->ctx->section->type);
            else
                snprintf(ctx->register_error, sizeof(ctx->register_error),
                         "cannot register message type '%s'", type);
        }
        return -1;
    }
    return 0;
}

static const char *host_handler_type(mcpgw_plugin_ctx *ctx)
{
    ctx->cfg_read = 1;      /* "valid for the plugin's lifetime" */
    return ctx->section->type;
}

static const char *host_config_get(mcpgw_plugin_ctx *ctx, const char *key)
{
    const mcpgw_kv *kv;

    ctx->cfg_read = 1;      /* the snapshot stays until fini (plugin_loader.h) */
    for (kv = ctx->section->options; kv; kv = kv->next)
        if (strcmp(kv->key, key) == 0)
            return kv->value;
    return NULL;
}

static int host_config_foreach(mcpgw_plugin_ctx *ctx,
                               int (*fn)(const char *key, const char *value, void *arg),
                               void *arg)
{
    const mcpgw_kv *kv;

    ctx->cfg_read = 1;
    for (kv = ctx->section->options; kv; kv = kv->next) {
        int rc = fn(kv->key, kv->value, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static void host_log(mcpgw_plugin_ctx *ctx, int level, const char *event, json_t *fields)
{
    mcpgw_server *srv = ctx->srv;

    if (!mcpgw_log_enabled(&srv->gw->log, level)) {
        json_decref(fields);
        return;
    }
    if (!json_is_object(fields)) {
        json_decref(fields);
        fields = json_object();
    }
    json_object_set_new(fields, "plugin", json_string(ctx->section->plugin));
    mcpgw_log_event(&srv->gw->log, level, event ? event : "plugin_event", fields,
                    mcpgw_clock_iso(&srv->clock));
}

static const char *host_timestamp(mcpgw_plugin_ctx *ctx)
{
    return mcpgw_clock_iso(&ctx->srv->clock);
}

static struct event_base *host_event_base(mcpgw_plugin_ctx *ctx)
{
    return ctx->srv->base;
}

static int host_post(mcpgw_plugin_ctx *ctx, void (*fn)(void *arg), void *arg)
{
    return mcpgw_server_post(ctx->srv, fn, arg);
}

static mcpgw_conn *host_request_conn(mcpgw_request *req)
{
    return req->conn;
}

static int host_request_orphaned(mcpgw_request *req)
{
    return !mcpgw_conn_is_open(req->conn);
}

static const char *host_conn_user(mcpgw_conn *conn)
{
    return conn->user ? conn->user : "";
}

static json_t *host_conn_claims(mcpgw_conn *conn)
{
    return mcpgw_conn_claims(conn);
}

static uint64_t host_conn_id(mcpgw_conn *conn)
{
    return conn->id;
}

static int host_send(mcpgw_conn *conn, json_t *msg)
{
    return mcpgw_conn_send_json(conn, msg);
}

static size_t host_broadcast(mcpgw_plugin_ctx *ctx, json_t *msg, mcpgw_conn *except)
{
    return mcpgw_server_broadcast(ctx->srv, msg, except);
}

static int host_worker(mcpgw_plugin_ctx *ctx, int *n_workers)
{
    const mcpgw_gateway *gw = ctx->srv->gw;

    if (n_workers)
        *n_workers = gw->board ? gw->board->n_workers : 1;
    return ctx->srv->worker_id;
}

/* --- ABI 1.3 ------------------------------------------------------------ */

static int host_send_text(mcpgw_conn *conn, const char *text, size_t len)
{
    if (!conn || !mcpgw_conn_is_open(conn))
        return -1;
    return mcpgw_conn_send_text(conn, text, len);
}

static void host_close(mcpgw_conn *conn, int code, const char *reason)
{
    char r[124];

    if (!conn || !mcpgw_conn_is_open(conn))
        return;
    size_t n = reason ? strlen(reason) : 0;

    /* a code a server may send (RFC 6455 7.4): anything else becomes 1011 */
    if (!(code == 1000 || code == 1001 || code == 1003 || code == 1007 || code == 1008 ||
          code == 1009 || code == 1011 || code == 1012 || code == 1013 || code == 1014 ||
          (code >= 3000 && code <= 4999)))
        code = MCPGW_WS_CLOSE_INTERNAL;
    /* at most 123 bytes, cut at a character boundary; never invalid UTF-8 */
    if (n > sizeof(r) - 1) {
        n = sizeof(r) - 1;
        while (n && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n && !mcpgw_utf8_valid((const uint8_t *)reason, n))
        n = 0;
    memcpy(r, reason ? reason : "", n);
    r[n] = '\0';
    mcpgw_conn_close(conn, (unsigned)code, r);
}

static size_t host_conn_queued(mcpgw_conn *conn)
{
    if (conn && conn->mcp_session)
        return mcpgw_mcp_session_queued(conn);
    return conn && conn->transport ? mcpgw_transport_queued(conn->transport) : 0;
}

struct mcpgw_timer {
    mcpgw_server *srv;
    const char *owner;              /* the plugin's name, for the watchdog */
    struct event *ev;
    void (*fn)(void *arg);
    void *arg;
    struct mcpgw_timer *prev, *next;
};

static void timer_unlink_free(mcpgw_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        t->srv->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    event_free(t->ev);
    free(t);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_timer *t = arg;
    void (*fn)(void *) = t->fn;
    void *fn_arg = t->arg;
    const char *outer = mcpgw_watch_enter_now(t->owner);

    (void)fd;
    (void)what;
    timer_unlink_free(t);       /* the handle is gone before fn runs */
    fn(fn_arg);
    mcpgw_watch_leave(outer);
}

static mcpgw_timer *host_timer_start(mcpgw_plugin_ctx *ctx, unsigned ms, void (*fn)(void *arg),
                                     void *arg)
{
    mcpgw_server *srv = ctx->srv;
    mcpgw_timer *t;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

    if (!fn || !(t = calloc(1, sizeof(*t))))
        return NULL;
    t->ev = evtimer_new(srv->base, timer_cb, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    t->srv = srv;
    t->owner = ctx->module->name;  /* lives until unload, unlike a configuration */
    t->fn = fn;
    t->arg = arg;
    t->next = srv->timers;
    if (srv->timers)
        srv->timers->prev = t;
    srv->timers = t;
    evtimer_add(t->ev, &tv);
    return t;
}

static void host_timer_cancel(mcpgw_timer *t)
{
    if (t)
        timer_unlink_free(t);
}

void mcpgw_host_timers_free(mcpgw_server *srv)
{
    while (srv->timers)
        timer_unlink_free(srv->timers);
}

static mcpgw_child *host_child_spawn(mcpgw_plugin_ctx *ctx, const mcpgw_child_spec *spec,
                                     char *err, size_t err_len)
{
    char dummy[8];

    if (!err || !err_len) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = '\0';
    return mcpgw_child_spawn(ctx->srv, ctx->section->plugin, spec, err, err_len);
}

static json_t *host_json_parse(mcpgw_plugin_ctx *ctx, const char *text, size_t len)
{
    (void)ctx;
    return text ? mcpgw_json_read(text, len, NULL) : NULL;
}

static int host_claim_matches(mcpgw_conn *conn, const char *claim, const char *value)
{
    return conn && claim && value && mcpgw_claims_match(mcpgw_conn_claims(conn), claim, value);
}

static void host_metric(mcpgw_plugin_ctx *ctx, int which, const char *label, double value)
{
    mcpgw_endpoint_metric(ctx->srv, ctx->section, which, label, value);
}

/* --- ABI 1.4: handlers without a tree ------------------------------------ */

static int host_register_raw_handler(mcpgw_plugin_ctx *ctx, const char *type,
                                     mcpgw_raw_handler_fn fn, void *handler_data)
{
    if (!ctx || !type || !fn || !ctx->in_init)
        return -1;
    return mcpgw_handler_table_set_raw(&ctx->srv->handlers, type, ctx, fn, handler_data);
}

static int host_view_get(mcpgw_view *msg, const char *key, mcpgw_member *m)
{
    mcpgw_member dummy;

    return msg ? mcpgw_json_view_get(msg, key, m ? m : &dummy) : MCPGW_JSON_ABSENT;
}

static const char *host_view_string(mcpgw_view *msg, const mcpgw_member *m, size_t *len)
{
    return msg ? mcpgw_json_view_string(msg, m, len) : NULL;
}

static const char *host_view_text(mcpgw_view *msg, size_t *len)
{
    if (len)
        *len = msg ? msg->len : 0;
    return msg ? msg->text : NULL;
}

/* The plugin's mcpgw_buf is the writer's mcpgw_jbuf under another name
 * (same members): these move it across and back. */
#define BUF_IN(b) { (b)->data, (b)->len, (b)->cap }
#define BUF_OUT(b, j) ((b)->data = (j).data, (b)->len = (j).len, (b)->cap = (j).cap)

static int host_buf_append(mcpgw_buf *b, const char *bytes, size_t len)
{
    if (!len)
        return 0;
    if (!bytes)
        return -1;
    if (b->cap - b->len < len) {
        mcpgw_jbuf j = BUF_IN(b);
        int rc = mcpgw_jbuf_reserve(&j, len);

        BUF_OUT(b, j);
        if (rc != 0)
            return -1;
    }
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    return 0;
}

static int host_buf_string(mcpgw_buf *b, const char *s, size_t len)
{
    mcpgw_jbuf j = BUF_IN(b);
    int rc = s || !len ? mcpgw_json_write_string(&j, s ? s : "", len) : -1;

    BUF_OUT(b, j);
    return rc;
}

static int host_buf_member(mcpgw_buf *b, const mcpgw_member *m)
{
    mcpgw_jbuf j = BUF_IN(b);
    int rc = mcpgw_json_view_write_member(&j, m);

    BUF_OUT(b, j);
    return rc;
}

static void host_buf_free(mcpgw_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static size_t host_broadcast_text(mcpgw_plugin_ctx *ctx, const char *text, size_t len,
                                  mcpgw_conn *except)
{
    return mcpgw_server_broadcast_text(ctx->srv, text, len, except);
}

static const mcpgw_host host_table = {
    .size = sizeof(mcpgw_host),
    .abi_major = MCPGW_PLUGIN_ABI_MAJOR,
    .abi_minor = MCPGW_PLUGIN_ABI_MINOR,
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
    .complete = mcpgw_request_complete,
    .fail = mcpgw_request_fail,
    .dispatch = mcpgw_dispatch_sub,
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
    .child_write = mcpgw_child_write,
    .child_queued = mcpgw_child_queued,
    .child_pause = mcpgw_child_pause,
    .child_stop = mcpgw_child_stop,
    .child_pid = mcpgw_child_pid,
    .metric = host_metric,
    .json_parse = host_json_parse,
    .child_write_json = mcpgw_child_write_json,
    .claim_matches = host_claim_matches,
    .register_raw_handler = host_register_raw_handler,
    .view_get = host_view_get,
    .view_string = host_view_string,
    .view_text = host_view_text,
    .buf_append = host_buf_append,
    .buf_string = host_buf_string,
    .buf_member = host_buf_member,
    .buf_free = host_buf_free,
    .broadcast_text = host_broadcast_text,
};

const mcpgw_host *mcpgw_host_table(void)
{
    return &host_table;
}
