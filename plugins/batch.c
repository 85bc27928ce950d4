/*
 * batch.c - the `batch` handler plugin: {"type":"batch","id":B,"messages":[...]}
 * runs every sub-message through the gateway's handler table (so a batch of
 * pings yields their pongs) and answers once all have finished, in order:
 *   {"type":"batch_response","id":B,"responses":[
 *      {"id":X,"type":"response","status":"success","result":<reply>} |
 *      {"id":X,"type":"response","status":"error","error":"..."} ...],
 *    "timestamp":...}
 * Sub-handlers may finish asynchronously; the batch then finishes later.
 *
 * Options: max_messages (default 100): larger batches are refused whole.
 * Nested batches (a sub-message of this handler's own type) are refused
 * per entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/plugin.h>

typedef struct batch_instance {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    size_t max_messages;
    size_t runs;                /* batches in flight */
    int finished;               /* fini() ran: the last batch in flight frees it */
} batch_instance;

/* One batch in flight. */
typedef struct batch_run {
    batch_instance *bi;
    mcpgw_request *req;
    json_t *id;                 /* the batch's id (reference) or NULL */
    json_t *responses;          /* array, one slot per sub-message */
    size_t pending;             /* sub-requests not finished, plus one guard */
} batch_run;

/* Where one sub-request's result goes. */
typedef struct batch_slot {
    batch_run *run;
    size_t index;
    json_t *id;                 /* the sub-message's id (reference) or NULL */
} batch_slot;

static json_t *entry_new(json_t *id, const char *status)
{
    json_t *e = json_object();

    if (id)
        json_object_set(e, "id", id);
    json_object_set_new(e, "type", json_string("response"));
    json_object_set_new(e, "status", json_string(status));
    return e;
}

static json_t *error_entry(json_t *id, const char *reason)
{
    json_t *e = entry_new(id, "error");

    json_object_set_new(e, "error", json_string(reason));
    return e;
}

static json_t *run_reply(batch_run *run)
{
    json_t *reply = json_object();

    json_object_set_new(reply, "type", json_string("batch_response"));
    if (run->id)
        json_object_set(reply, "id", run->id);
    json_object_set(reply, "responses", run->responses);
    json_object_set_new(reply, "timestamp", json_string(run->bi->host->timestamp(run->bi->ctx)));
    return reply;
}

static void run_free(batch_run *run)
{
    batch_instance *bi = run->bi;

    json_decref(run->id);
    json_decref(run->responses);
    free(run);
    if (--bi->runs == 0 && bi->finished)
        free(bi);
}

static void sub_done(void *cb_data, int status, json_t *result)
{
    batch_slot *slot = cb_data;
    batch_run *run = slot->run;
    json_t *e;

    if (status == MCPGW_HANDLER_DONE) {
        e = entry_new(slot->id, "success");
        json_object_set(e, "result", result ? result : json_null());
    } else {
        e = error_entry(slot->id, json_is_string(result) ? json_string_value(result)
                                                          : "Handler failed");
    }
    json_array_set_new(run->responses, slot->index, e);
    json_decref(slot->id);
    free(slot);

    if (--run->pending == 0) {
        run->bi->host->complete(run->req, run_reply(run));
        run_free(run);
    }
}

static int batch_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    batch_instance *bi = data;
    const mcpgw_host *host = bi->host;
    const char *own_type = host->handler_type(bi->ctx);
    json_t *messages = json_object_get(msg, "messages");
    batch_run *run;
    size_t i, n;
    char text[128];

    if (!json_is_array(messages)) {
        *out = json_string("Invalid batch message format");
        return MCPGW_HANDLER_FAILED;
    }
    n = json_array_size(messages);
    if (n > bi->max_messages) {
        snprintf(text, sizeof(text), "Batch too large: %zu messages (limit %zu)", n,
                 bi->max_messages);
        *out = json_string(text);
        return MCPGW_HANDLER_FAILED;
    }
    run = calloc(1, sizeof(*run));
    if (!run || !(run->responses = json_array())) {
        free(run);
        *out = json_string("Out of memory");
        return MCPGW_HANDLER_FAILED;
    }
    run->bi = bi;
    bi->runs++;
    run->req = req;
    run->id = json_incref(json_object_get(msg, "id"));
    run->pending = 1;           /* the guard: dropped after the loop */
    for (i = 0; i < n; i++)
        json_array_append_new(run->responses, json_null());

    for (i = 0; i < n; i++) {
        json_t *sub = json_array_get(messages, i);
        json_t *sub_id = json_is_object(sub) ? json_object_get(sub, "id") : NULL;
        json_t *type = json_is_object(sub) ? json_object_get(sub, "type") : NULL;
        batch_slot *slot;

        if (!json_is_string(type)) {
            json_array_set_new(run->responses, i,
                               error_entry(sub_id, "Message must be a JSON object with a string type"));
            continue;
        }
        if (strcmp(json_string_value(type), own_type) == 0) {
            json_array_set_new(run->responses, i,
                               error_entry(sub_id, "Nested batches are not allowed"));
            continue;
        }
        slot = calloc(1, sizeof(*slot));
        if (!slot) {
            json_array_set_new(run->responses, i, error_entry(sub_id, "Out of memory"));
            continue;
        }
        slot->run = run;
        slot->index = i;
        slot->id = json_incref(sub_id);
        run->pending++;
        if (host->dispatch(req, sub, sub_done, slot) != 0) {
            run->pending--;
            json_decref(slot->id);
            free(slot);
            json_array_set_new(run->responses, i, error_entry(sub_id, "Cannot dispatch message"));
        }
    }

    if (--run->pending == 0) {
        /* Every sub-message finished synchronously. */
        *out = run_reply(run);
        run_free(run);
        return MCPGW_HANDLER_DONE;
    }
    return MCPGW_HANDLER_PENDING;   /* the last sub_done() completes req */
}

/* max_messages from the section: 0 and *out set, or -1 with err. */
static int read_max_messages(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, size_t *out,
                             char *err, size_t err_len)
{
    const char *max = host->config_get(ctx, "max_messages");
    char *end;
    long v;

    *out = 100;
    if (!max)
        return 0;
    v = strtol(max, &end, 10);
    if (*max == '\0' || *end || v < 1 || v > 100000) {
        snprintf(err, err_len, "max_messages must be an integer from 1 to 100000, not '%s'", max);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

static int batch_reload(void *instance, mcpgw_plugin_ctx *ctx, char *err, size_t err_len)
{
    batch_instance *bi = instance;
    size_t max;

    if (read_max_messages(bi->host, ctx, &max, err, err_len) != 0)
        return -1;
    bi->max_messages = max;
    return 0;
}

static int batch_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                      char *err, size_t err_len)
{
    batch_instance *bi = calloc(1, sizeof(*bi));

    if (!bi) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    bi->host = host;
    bi->ctx = ctx;
    if (read_max_messages(host, ctx, &bi->max_messages, err, err_len) != 0) {
        free(bi);           /* fini() only runs after a successful init() */
        return -1;
    }
    if (host->register_handler(ctx, host->handler_type(ctx), batch_handle, bi) != 0) {
        snprintf(err, err_len, "cannot register type '%s'", host->handler_type(ctx));
        free(bi);
        return -1;
    }
    *instance = bi;
    return 0;
}

/* A batch may still be in flight: a sub-request pending in a plugin whose
 * fini() runs after ours finishes it from there (the contract says fini()
 * completes what is pending), and that batch then completes through bi. */
static void batch_fini(void *instance)
{
    batch_instance *bi = instance;

    if (bi->runs)
        bi->finished = 1;
    else
        free(bi);
}

static const char *const batch_keys[] = { "max_messages", NULL };

MCPGW_PLUGIN_DEFINE_KEYS("batch", "1.2.0", "runs a list of messages through the handler table",
                         batch_init, batch_fini, batch_reload, batch_keys);
