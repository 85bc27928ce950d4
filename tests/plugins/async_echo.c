/*
 * async_echo.c - a test plugin that answers asynchronously.
 *
 * [handler.TYPE] plugin = async_echo, option delay_ms (default 100).
 * A message {"type":TYPE,"id":ID,"payload":P} is answered after delay_ms
 * with {"type":"async_echo_reply","id":ID,"payload":P,"timestamp":...}
 * through host->complete(); the handler itself returns PENDING at once, so
 * the event loop keeps serving other messages meanwhile. When the client
 * has gone before the timer fires, the request is orphaned: the plugin logs
 * "async_echo_orphaned" and completes it with no reply, to free it. A
 * request still pending at fini (the gateway's shutdown_timeout_ms ran out)
 * is completed there the same way, as plugin.h asks.
 *
 * With option raw = true (ABI 1.4) the type also gets a raw twin: a
 * top-level message whose payload is "now" is answered at once with the
 * same reply written as text, "fail" fails with "raw refused", anything
 * else is declined (the tree handler above then answers it later).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <event2/event.h>
#include <mcpgw/plugin.h>

typedef struct echo_instance {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    long delay_ms;
    struct echo_pending *pending;   /* every request not completed yet */
} echo_instance;

typedef struct echo_pending {
    echo_instance *inst;
    mcpgw_request *req;
    json_t *msg;            /* our reference to the message */
    struct event *timer;
    struct echo_pending *prev, *next;
} echo_pending;

static void pending_unlink(echo_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->inst->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void complete_orphaned(echo_pending *p)
{
    const mcpgw_host *host = p->inst->host;
    json_t *id = json_object_get(p->msg, "id");
    json_t *fields = json_object();

    if (fields && id)
        json_object_set(fields, "id", id);
    host->log(p->inst->ctx, MCPGW_PLUGIN_LOG_INFO, "async_echo_orphaned", fields);
    host->complete(p->req, NULL);
}

static void echo_fire(evutil_socket_t fd, short what, void *arg)
{
    echo_pending *p = arg;
    echo_instance *inst = p->inst;
    const mcpgw_host *host = inst->host;
    (void)fd;
    (void)what;

    pending_unlink(p);
    if (host->request_orphaned(p->req)) {
        complete_orphaned(p);
    } else {
        json_t *reply = json_object();
        json_t *id = json_object_get(p->msg, "id");
        json_t *payload = json_object_get(p->msg, "payload");
        json_object_set_new(reply, "type", json_string("async_echo_reply"));
        json_object_set(reply, "id", id ? id : json_null());
        json_object_set(reply, "payload", payload ? payload : json_null());
        json_object_set_new(reply, "timestamp", json_string(host->timestamp(inst->ctx)));
        host->complete(p->req, reply);
    }

    event_free(p->timer);
    json_decref(p->msg);
    free(p);
}

static int echo_handler(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    echo_instance *inst = data;
    const mcpgw_host *host = inst->host;
    echo_pending *p = calloc(1, sizeof *p);
    struct timeval tv;

    if (!p) {
        *out = json_string("out of memory");
        return MCPGW_HANDLER_FAILED;
    }
    p->inst = inst;
    p->req = req;
    p->timer = evtimer_new(host->event_base(inst->ctx), echo_fire, p);
    if (!p->timer) {
        free(p);
        *out = json_string("cannot create timer");
        return MCPGW_HANDLER_FAILED;
    }
    tv.tv_sec = inst->delay_ms / 1000;
    tv.tv_usec = (inst->delay_ms % 1000) * 1000;
    if (evtimer_add(p->timer, &tv) != 0) {
        event_free(p->timer);
        free(p);
        *out = json_string("cannot arm timer");
        return MCPGW_HANDLER_FAILED;
    }
    p->msg = json_incref(msg);
    p->next = inst->pending;
    if (inst->pending)
        inst->pending->prev = p;
    inst->pending = p;
    return MCPGW_HANDLER_PENDING;
}

/* The raw twin (raw = true). */
static int echo_raw(mcpgw_request *req, mcpgw_view *msg, mcpgw_buf *reply, void *data)
{
    echo_instance *inst = data;
    const mcpgw_host *host = inst->host;
    const char *ts = host->timestamp(inst->ctx), *payload;
    mcpgw_member id, p;

    (void)req;
    host->view_get(msg, "payload", &p);
    payload = host->view_string(msg, &p, NULL);
    if (payload && strcmp(payload, "fail") == 0) {
        host->buf_append(reply, "raw refused", 11);
        return MCPGW_HANDLER_FAILED;
    }
    if (!payload || strcmp(payload, "now") != 0)
        return MCPGW_HANDLER_DECLINED;
    host->buf_append(reply, "{\"type\":\"async_echo_reply\",\"id\":", 32);
    if (host->view_get(msg, "id", &id) != MCPGW_JSON_ABSENT)
        host->buf_member(reply, &id);
    else
        host->buf_append(reply, "null", 4);
    host->buf_append(reply, ",\"payload\":", 11);
    host->buf_member(reply, &p);
    host->buf_append(reply, ",\"timestamp\":", 13);
    host->buf_string(reply, ts, strlen(ts));
    host->buf_append(reply, "}", 1);
    return MCPGW_HANDLER_DONE;
}

static int echo_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                     char *err, size_t err_len)
{
    echo_instance *inst;
    const char *delay = host->config_get(ctx, "delay_ms");
    long delay_ms = 100;

    if (delay) {
        char *end;
        errno = 0;
        delay_ms = strtol(delay, &end, 10);
        if (errno || end == delay || *end || delay_ms < 0 || delay_ms > 3600000) {
            snprintf(err, err_len, "delay_ms: not a number of milliseconds: %s", delay);
            return -1;
        }
    }
    inst = calloc(1, sizeof *inst);
    if (!inst) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    inst->host = host;
    inst->ctx = ctx;
    inst->delay_ms = delay_ms;
    if (host->register_handler(ctx, host->handler_type(ctx), echo_handler, inst) != 0) {
        snprintf(err, err_len, "cannot register message type %s", host->handler_type(ctx));
        free(inst);
        return -1;
    }
    if (host->config_get(ctx, "raw") && strcmp(host->config_get(ctx, "raw"), "true") == 0 &&
        (!MCPGW_HOST_HAS(host, register_raw_handler) ||
         host->register_raw_handler(ctx, host->handler_type(ctx), echo_raw, inst) != 0)) {
        snprintf(err, err_len, "cannot register a raw handler");
        free(inst);
        return -1;
    }
    *instance = inst;
    return 0;
}

static void echo_fini(void *instance)
{
    echo_instance *inst = instance;

    while (inst->pending) {
        echo_pending *p = inst->pending;
        pending_unlink(p);
        complete_orphaned(p);
        event_free(p->timer);
        json_decref(p->msg);
        free(p);
    }
    free(inst);
}

MCPGW_PLUGIN_DEFINE("async_echo", "0.0.1", "test: answers after delay_ms through a timer",
                    echo_init, echo_fini);
