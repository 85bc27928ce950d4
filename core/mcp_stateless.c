/*
 * mcp_stateless.c - the 2026-07-28 revision of MCP Streamable HTTP: no
 * session and no initialize; each request says its version, capabilities
 * and client in _meta, and MCP-Protocol-Version, Mcp-Method and Mcp-Name
 * headers that must agree with the body. The gateway serves a user's
 * requests with one hidden session per endpoint and worker, which it
 * initializes itself for the 2025 server behind it, rewriting ids and
 * progress tokens so that several clients of the user can share it;
 * server/discover is answered from that initialize, subscriptions/listen
 * is the stream of what the server says on its own. See mcp_internal.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "access_log.h"
#include "mcp_internal.h"
#include "protocol.h"
#include "server.h"

const char *mcpgw_mcp_meta_string(const json_t *m, const char *name)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(m, "params"), "_meta"), name));
}

/* Hands one (rewritten) request to the hidden session's plugin, or answers
 * server/discover from what the server said at initialize. */
static void modern_forward(mcpgw_mcp_session *s, json_t *m)
{
    const char *method = json_string_value(json_object_get(m, "method"));
    char *text;

    if (method && strcmp(method, "server/discover") == 0) {
        json_t *r = s->init_result;
        json_t *res = json_pack(
            "{s:s, s:[s,s,s,s], s:O?, s:O?}", "resultType", "complete", "supportedVersions",
            MCPGW_MCP_STATELESS, "2025-11-25", "2025-06-18", "2025-03-26", "capabilities",
            json_object_get(r, "capabilities"), "serverInfo", json_object_get(r, "serverInfo"));
        json_t *reply;
        if (res && json_object_get(r, "instructions"))
            json_object_set(res, "instructions", json_object_get(r, "instructions"));
        reply = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", json_object_get(m, "id"),
                          "result", res);
        text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
        if (text)
            mcpgw_mcp_route(s, reply, text, strlen(text));
        free(text);
        json_decref(reply);
        return;
    }
    text = json_dumps(m, JSON_COMPACT);
    if (text)
        mcpgw_jsonrpc_deliver(s->vc, m, text, strlen(text));
    free(text);
}

/* The hidden session's initialize was answered: the requests that waited
 * go on (or, if the server refused, are answered with its error). */
void mcpgw_mcp_stateless_ready(mcpgw_mcp_session *s, json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    json_t *queue = s->queue;
    size_t i;
    json_t *item;

    s->queue = json_array();
    if (json_is_object(res)) {
        json_t *n =
            json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
        char *t = n ? json_dumps(n, JSON_COMPACT) : NULL;
        s->init_result = json_incref(res);
        s->ready = 1;
        if (t)
            mcpgw_jsonrpc_deliver(s->vc, n, t, strlen(t));
        free(t);
        json_decref(n);
    }
    json_array_foreach(queue, i, item)
    {
        json_t *m = json_array_get(item, 1);
        if (s->ended)
            break;
        if (s->ready) {
            modern_forward(s, m);
        } else {
            json_t *err = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                                    json_object_get(m, "id"), "error", "code", -32603, "message",
                                    "The MCP server refused to initialize");
            char *t = err ? json_dumps(err, JSON_COMPACT) : NULL;
            if (t)
                mcpgw_mcp_route(s, err, t, strlen(t));
            free(t);
            json_decref(err);
        }
    }
    json_decref(queue);
    if (!s->ready && s->vc)
        mcpgw_mcp_session_close(s->vc, MCPGW_WS_CLOSE_INTERNAL, "initialize refused");
}

/* The user's hidden session on this endpoint (this worker), made and
 * initialized on first use with the client's capabilities and identity. */
static mcpgw_mcp_session *modern_session(mcpgw_conn *c, const mcpgw_handler_config *ep,
                                         mcpgw_plugin_ctx *ctx, const char *user, json_t *claims,
                                         const json_t *first, int *status, const char **why)
{
    mcpgw_mcp_session *s;
    json_t *meta = json_object_get(json_object_get(first, "params"), "_meta");
    json_t *init;
    char *text;

    for (s = c->srv->mcp_sessions; s; s = s->next)
        if (s->stateless && !s->ended && s->ep == ep && strcmp(s->vc->user, user) == 0) {
            json_decref(claims);
            mcpgw_mcp_session_touch(s);
            return s;
        }
    *status = mcpgw_mcp_session_new(c, ep, ctx, user, claims, &s, why);
    if (*status)
        return NULL;
    s->stateless = 1;
    if (!(s->queue = json_array()) || !(s->orig = json_object()) ||
        !(s->orig_tok = json_object())) {
        mcpgw_mcp_session_end(s, "out_of_memory");
        *status = 500;
        *why = "out_of_memory";
        return NULL;
    }
    init = json_pack("{s:s, s:s, s:s, s:{s:s, s:O?, s:O?}}", "jsonrpc", "2.0", "id",
                     MCPGW_MCP_INIT_KEY + 1, "method", "initialize", "params", "protocolVersion",
                     "2025-11-25", "capabilities",
                     json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"),
                     "clientInfo", json_object_get(meta, "io.modelcontextprotocol/clientInfo"));
    if (init) {
        json_t *p = json_object_get(init, "params");
        if (!json_is_object(json_object_get(p, "capabilities")))
            json_object_set_new(p, "capabilities", json_object());
        if (!json_is_object(json_object_get(p, "clientInfo")))
            json_object_set_new(
                p, "clientInfo",
                json_pack("{s:s, s:s}", "name", "mcpgw", "version", PACKAGE_VERSION));
    }
    text = init ? json_dumps(init, JSON_COMPACT) : NULL;
    if (!text) {
        json_decref(init);
        mcpgw_mcp_session_end(s, "out_of_memory");
        *status = 500;
        *why = "out_of_memory";
        return NULL;
    }
    json_object_set_new(s->pending, MCPGW_MCP_INIT_KEY, json_integer(0));
    mcpgw_jsonrpc_deliver(s->vc, init, text, strlen(text));
    free(text);
    json_decref(init);
    return s->ended ? NULL : s;
}

/* The name a 2026-07-28 request carries in Mcp-Name, or NULL. */
static const char *request_name(const json_t *m)
{
    const char *method = json_string_value(json_object_get(m, "method"));
    json_t *params = json_object_get(m, "params");

    if (!method)
        return NULL;
    if (!strcmp(method, "tools/call") || !strcmp(method, "prompts/get"))
        return json_string_value(json_object_get(params, "name"));
    if (!strcmp(method, "resources/read") || !strcmp(method, "resources/subscribe") ||
        !strcmp(method, "resources/unsubscribe"))
        return json_string_value(json_object_get(params, "uri"));
    return NULL;
}

/* A 2026-07-28 POST: no session, no initialize; the headers name what the
 * body does, for proxies that route without reading it, and must say the
 * same as the body. */
int mcpgw_mcp_stateless_post(mcpgw_conn *c, const mcpgw_http_request *req,
                              const mcpgw_handler_config *ep, mcpgw_plugin_ctx *ctx,
                              const char *user, json_t *claims, json_t *m, int acc_json,
                              int acc_sse, int keep)
{
    const mcpgw_str *pv = mcpgw_http_header_get(req, "MCP-Protocol-Version");
    const mcpgw_str *hm = mcpgw_http_header_get(req, "Mcp-Method");
    const mcpgw_str *hn = mcpgw_http_header_get(req, "Mcp-Name");
    const char *method = json_string_value(json_object_get(m, "method"));
    const char *name = request_name(m);
    const char *mv = mcpgw_mcp_meta_string(m, "io.modelcontextprotocol/protocolVersion");
    const char *why = NULL, *mismatch = NULL;
    int kind = mcpgw_mcp_classify(m), status = 0, sse;
    mcpgw_mcp_session *s;
    mcpgw_mcp_stream *st;
    json_t *tok;
    char key[1024], our[48];

    if (!json_is_object(m)) {
        json_decref(claims);
        mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_INVALID_REQUEST,
                                "Invalid Request: 2026-07-28 has no batches", "bad_jsonrpc", NULL,
                                keep);
        return 0;
    }
    if (!mcpgw_mcp_header_is(pv, MCPGW_MCP_STATELESS) ||
        (mv && strcmp(mv, MCPGW_MCP_STATELESS) != 0))
        mismatch = "HeaderMismatch: MCP-Protocol-Version and _meta disagree";
    else if (method && !mcpgw_mcp_header_is(hm, method))
        mismatch = "HeaderMismatch: Mcp-Method must name the body's method";
    else if ((name && !mcpgw_mcp_header_is(hn, name)) || (!name && hn))
        mismatch = "HeaderMismatch: Mcp-Name must name the body's tool, prompt or resource";
    if (mismatch) {
        json_decref(claims);
        mcpgw_mcp_respond_error(c, req, 400, MCPGW_JSONRPC_HEADER_MISMATCH, mismatch,
                                "header_mismatch", NULL, keep);
        return 0;
    }
    s = modern_session(c, ep, ctx, user, claims, m, &status, &why);
    if (!s && status == MCPGW_MCP_WAIT)
        return 1; /* the cluster decides on the user's limit: read again later */
    if (!s) {
        mcpgw_mcp_respond_error(c, req, status ? status : 503, MCPGW_JSONRPC_SERVER_ERROR,
                                status == 429 ? "Too Many Connections" : "Service Unavailable",
                                why ? why : "endpoint_unavailable", NULL, keep);
        return 0;
    }

    if (kind != 1) { /* notifications (and stray responses): 202 */
        json_t *rid = json_object_get(json_object_get(m, "params"), "requestId");
        if (method && !strcmp(method, "notifications/cancelled") && rid) {
            const char *k;
            json_t *v;
            json_object_foreach(s->orig, k, v)
            {
                json_t *pend = json_object_get(s->pending, k);
                if (json_equal(v, rid) && pend && json_integer_value(pend) > 0) {
                    mcpgw_mcp_stream *o =
                        mcpgw_mcp_stream_find(s, (unsigned)json_integer_value(pend));
                    json_object_set_new(json_object_get(m, "params"), "requestId",
                                        json_string(k + 1));
                    json_object_set_new(s->pending, k, json_integer(-json_integer_value(pend)));
                    if (o)
                        o->cancelled++;
                    break;
                }
            }
        }
        mcpgw_access_log(c, req, 202, 0, user, NULL);
        mcpgw_mcp_respond(c, 202, NULL, NULL, NULL, 0, keep);
        if (s->ready)
            modern_forward(s, m);
        mcpgw_mcp_finish_cancelled(s);
        return 0;
    }
    if (!strcmp(method, "subscriptions/listen")) {
        /* what the server says on its own, as one SSE answer that lasts */
        if (!acc_sse) {
            mcpgw_mcp_respond_error(
                c, req, 406, MCPGW_JSONRPC_SERVER_ERROR,
                "Not Acceptable: subscriptions/listen answers text/event-stream", "not_acceptable",
                NULL, keep);
            return 0;
        }
        st = s->standalone ? s->standalone : mcpgw_mcp_stream_new(s, 1, 1);
        if (!st || st->conn) {
            mcpgw_mcp_respond_error(c, req, 409, MCPGW_JSONRPC_SERVER_ERROR,
                                    "Conflict: this user already listens on this worker",
                                    "stream_busy", NULL, keep);
            return 0;
        }
        mcpgw_access_log(c, req, 200, 0, user, NULL);
        mcpgw_mcp_stream_open(st, c, keep, st->sent_seq);
        mcpgw_mcp_stream_replay(st, st->sent_seq);
        return 0;
    }

    /* a request: our id (and progress token) for it, the client's back in
     * the answer */
    sse = acc_sse && (!acc_json || ep->http_response == MCPGW_HTTP_RESPONSE_SSE);
    tok = json_object_get(json_object_get(json_object_get(m, "params"), "_meta"), "progressToken");
    if (!sse && acc_sse && ep->http_response == MCPGW_HTTP_RESPONSE_AUTO && tok)
        sse = 1;
    st = mcpgw_mcp_stream_new(s, sse, 0);
    if (!st) {
        mcpgw_mcp_respond_error(c, req, 500, MCPGW_JSONRPC_SERVER_ERROR, "Internal Server Error",
                                "out_of_memory", NULL, keep);
        return 0;
    }
    snprintf(our, sizeof(our), "mcpgw-%llu", (unsigned long long)++s->next_gid);
    snprintf(key, sizeof(key), "s%s", our);
    json_object_set(s->orig, key, json_object_get(m, "id"));
    json_object_set_new(m, "id", json_string(our));
    json_object_set_new(s->pending, key, json_integer(st->no));
    st->pending = 1;
    if (tok) {
        snprintf(our, sizeof(our), "mcpgw-p%llu", (unsigned long long)s->next_gid);
        snprintf(key, sizeof(key), "s%s", our);
        json_object_set(s->orig_tok, key, tok);
        json_object_set_new(json_object_get(json_object_get(m, "params"), "_meta"), "progressToken",
                            json_string(our));
        json_object_set_new(s->progress, key, json_integer(st->no));
    }
    mcpgw_access_log(c, req, 200, 0, user, NULL);
    mcpgw_mcp_stream_open(st, c, keep, 0);
    if (s->ready)
        modern_forward(s, m); /* st may be gone when this returns */
    else
        json_array_append_new(s->queue, json_pack("[I, O]", (json_int_t)st->no, m));
    return 0;
}
