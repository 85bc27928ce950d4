/*
 * agent_status.c - the `agent_status` handler plugin: an agent reports
 * {"type":"agent_status","id":X,"agentId":A,"status":S}; every open
 * connection receives {"type":"agent_status_update","agentId":A,"status":S,
 * "timestamp":...} (serialised once for all of them by the host), and the
 * sender gets {"type":"agent_status_ack","id":X,"agentId":A,"timestamp":...}.
 *
 * The update names its sender: "from" is the sender's authenticated user
 * id (no one can speak for another).
 *
 * Options: include_sender (default true: the sender also gets the update,
 * as in the reference protocol); agent_id_claim = CLAIM (a sender may only
 * report the agentId its token's CLAIM names: equal, or in the list);
 * require_status (default false: as in the reference, a report without
 * status is broadcast without one, and any status value is passed on;
 * true refuses a missing, null or empty status).
 *
 * Two handlers of the same behaviour: agent_status_raw (ABI 1.4, no JSON
 * tree: the update and the ack are written as text, the update once for
 * all recipients) for top-level messages on a gateway that has it, and
 * agent_status_handle (the tree) for messages inside a batch and older
 * gateways.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mcpgw/plugin.h>

/* a string literal and its length, for buf_append */
#define LIT(s) (s), sizeof(s) - 1

typedef struct agent_status_instance {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    int include_sender;
    int require_status;
    const char *agent_id_claim;     /* NULL: any agentId */
    mcpgw_buf update;               /* the raw handler's update text, reused */
} agent_status_instance;

static int usable(const json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return v && !json_is_null(v);
}

static int agent_status_handle(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    agent_status_instance *ai = data;
    const mcpgw_host *host = ai->host;
    json_t *agent = json_object_get(msg, "agentId");
    json_t *status = json_object_get(msg, "status");
    json_t *id = json_object_get(msg, "id");
    json_t *update, *ack;
    const char *ts = host->timestamp(ai->ctx);
    mcpgw_conn *sender = host->request_conn(req);

    if (ai->require_status && (!usable(agent) || !usable(status))) {
        *out = json_string("agent_status requires agentId and status");
        return MCPGW_HANDLER_FAILED;
    }
    if (!usable(agent)) {
        *out = json_string("agent_status requires agentId");
        return MCPGW_HANDLER_FAILED;
    }
    if (!json_is_string(agent) && !json_is_integer(agent)) {
        *out = json_string("agentId must be a string or an integer");
        return MCPGW_HANDLER_FAILED;
    }
    if (ai->agent_id_claim) {
        char num[32];
        const char *want = json_string_value(agent);
        if (!want) {    /* an integer agentId compares as its decimal text */
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(agent));
            want = num;
        }
        if (!host->claim_matches(sender, ai->agent_id_claim, want)) {
        char why[160];
            snprintf(why, sizeof(why), "agentId is not yours: your token's %s does not name it",
                     ai->agent_id_claim);
            *out = json_string(why);
            return MCPGW_HANDLER_FAILED;
        }
    }

    update = json_object();
    json_object_set_new(update, "type", json_string("agent_status_update"));
    json_object_set(update, "agentId", agent);
    if (status)
        json_object_set(update, "status", status);
    json_object_set_new(update, "from", json_string(host->conn_user(sender)));
    json_object_set_new(update, "timestamp", json_string(ts));
    host->broadcast(ai->ctx, update, ai->include_sender ? NULL : sender);
    json_decref(update);

    ack = json_object();
    json_object_set_new(ack, "type", json_string("agent_status_ack"));
    if (id)
        json_object_set(ack, "id", id);
    json_object_set(ack, "agentId", agent);
    json_object_set_new(ack, "timestamp", json_string(ts));
    *out = ack;
    return MCPGW_HANDLER_DONE;
}

/* usable() of a viewed member. */
static int member_usable(const mcpgw_member *m)
{
    if (m->kind == MCPGW_JSON_STRING)
        return m->len > 2;          /* more than its quotes */
    return m->kind != MCPGW_JSON_ABSENT && m->kind != MCPGW_JSON_NULL;
}

/* Writes a failure's reason into reply. */
static int raw_failed(const mcpgw_host *host, mcpgw_buf *reply, const char *why)
{
    reply->len = 0;
    host->buf_append(reply, why, strlen(why));
    return MCPGW_HANDLER_FAILED;
}

/* agent_status_handle without a tree: the same checks in the same order,
 * the same texts, byte for byte (members written with buf_member). */
static int agent_status_raw(mcpgw_request *req, mcpgw_view *msg, mcpgw_buf *reply, void *data)
{
    agent_status_instance *ai = data;
    const mcpgw_host *host = ai->host;
    mcpgw_member agent, status, id;
    const char *ts = host->timestamp(ai->ctx), *user;
    mcpgw_conn *sender = host->request_conn(req);
    mcpgw_buf *u = &ai->update;
    size_t mark;

    host->view_get(msg, "agentId", &agent);
    host->view_get(msg, "status", &status);
    host->view_get(msg, "id", &id);
    if (ai->require_status && (!member_usable(&agent) || !member_usable(&status)))
        return raw_failed(host, reply, "agent_status requires agentId and status");
    if (!member_usable(&agent))
        return raw_failed(host, reply, "agent_status requires agentId");
    if (agent.kind != MCPGW_JSON_STRING && agent.kind != MCPGW_JSON_INTEGER)
        return raw_failed(host, reply, "agentId must be a string or an integer");
    if (ai->agent_id_claim) {
        char num[32];
        const char *want = host->view_string(msg, &agent, NULL);
        if (agent.kind == MCPGW_JSON_INTEGER) {
            snprintf(num, sizeof(num), "%lld", (long long)agent.integer);
            want = num;
        }
        if (!want)
            return MCPGW_HANDLER_DECLINED;
        if (!host->claim_matches(sender, ai->agent_id_claim, want)) {
            char why[160];
            snprintf(why, sizeof(why), "agentId is not yours: your token's %s does not name it",
                     ai->agent_id_claim);
            return raw_failed(host, reply, why);
        }
    }

    /* {"type":"agent_status_update","agentId":A[,"status":S],"from":U,"timestamp":T} */
    u->len = 0;
    if (host->buf_append(u, LIT("{\"type\":\"agent_status_update\",\"agentId\":")) != 0 ||
        host->buf_member(u, &agent) != 0)
        return MCPGW_HANDLER_DECLINED;
    if (status.kind != MCPGW_JSON_ABSENT &&
        (host->buf_append(u, LIT(",\"status\":")) != 0 || host->buf_member(u, &status) != 0))
        return MCPGW_HANDLER_DECLINED;
    /* the tree leaves "from" out when the user id is not UTF-8 */
    mark = u->len;
    user = host->conn_user(sender);
    if (host->buf_append(u, LIT(",\"from\":")) != 0)
        return MCPGW_HANDLER_DECLINED;
    if (host->buf_string(u, user, strlen(user)) != 0)
        u->len = mark;
    if (host->buf_append(u, LIT(",\"timestamp\":\"")) != 0 ||
        host->buf_append(u, ts, strlen(ts)) != 0 || host->buf_append(u, LIT("\"}")) != 0)
        return MCPGW_HANDLER_DECLINED;

    /* {"type":"agent_status_ack"[,"id":X],"agentId":A,"timestamp":T}, made
     * before the broadcast so that nothing can decline after it */
    if (host->buf_append(reply, LIT("{\"type\":\"agent_status_ack\"")) != 0 ||
        (id.kind != MCPGW_JSON_ABSENT &&
         (host->buf_append(reply, LIT(",\"id\":")) != 0 || host->buf_member(reply, &id) != 0)) ||
        host->buf_append(reply, LIT(",\"agentId\":")) != 0 || host->buf_member(reply, &agent) != 0 ||
        host->buf_append(reply, LIT(",\"timestamp\":\"")) != 0 ||
        host->buf_append(reply, ts, strlen(ts)) != 0 || host->buf_append(reply, LIT("\"}")) != 0)
        return MCPGW_HANDLER_DECLINED;
    host->broadcast_text(ai->ctx, u->data, u->len, ai->include_sender ? NULL : sender);
    if (u->cap > 65536)             /* one huge status does not stay */
        host->buf_free(u);
    return MCPGW_HANDLER_DONE;
}

/* Reads the boolean key `key` into *out (left alone when unset). 0 or -1. */
static int bool_key(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, const char *key, int *out,
                    char *err, size_t err_len)
{
    const char *v = host->config_get(ctx, key);

    if (!v)
        return 0;
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
        *out = 0;
    else {
        snprintf(err, err_len, "%s must be true or false, not '%s'", key, v);
        return -1;
    }
    return 0;
}

static int agent_status_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance,
                             char *err, size_t err_len)
{
    agent_status_instance *ai = calloc(1, sizeof(*ai));

    if (!ai) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    ai->host = host;
    ai->ctx = ctx;
    ai->include_sender = 1;
    ai->require_status = 0;
    ai->agent_id_claim = host->config_get(ctx, "agent_id_claim");
    if (bool_key(host, ctx, "include_sender", &ai->include_sender, err, err_len) != 0 ||
        bool_key(host, ctx, "require_status", &ai->require_status, err, err_len) != 0) {
        free(ai);           /* fini() only runs after a successful init() */
        return -1;
    }
    if (host->register_handler(ctx, host->handler_type(ctx), agent_status_handle, ai) != 0) {
        snprintf(err, err_len, "cannot register type '%s'", host->handler_type(ctx));
        free(ai);
        return -1;
    }
    /* the raw twin where the gateway has ABI 1.4 (else the tree alone) */
    if (MCPGW_HOST_HAS(host, broadcast_text))
        host->register_raw_handler(ctx, host->handler_type(ctx), agent_status_raw, ai);
    *instance = ai;
    return 0;
}

static void agent_status_fini(void *instance)
{
    agent_status_instance *ai = instance;

    if (ai && ai->update.data)
        ai->host->buf_free(&ai->update);
    free(ai);
}

static const char *const agent_status_keys[] = { "include_sender", "agent_id_claim",
                                                  "require_status", NULL };

MCPGW_PLUGIN_DEFINE_KEYS("agent_status", "1.1.0",
                         "broadcasts agent status updates to every connection",
                         agent_status_init, agent_status_fini, NULL, agent_status_keys);
