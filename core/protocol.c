/*
 * protocol.c - the gateway protocol on an upgraded connection: the welcome
 * message, the shape of a refusal, and handing each message to dispatch
 * (which routes it by `type`). See protocol.h.
 */
#include <string.h>

#include <jansson.h>

#include "auth.h"

#include "conn.h"
#include "dispatch.h"
#include "protocol.h"
#include "log.h"
#include "server.h"

static void gateway_opened(mcpgw_conn *c)
{
    json_t *welcome = json_pack("{s:s, s:s, s:s}", "type", "connection_established", "message",
                                "Connected to MCP Server", "timestamp",
                                mcpgw_clock_iso(&c->srv->clock));

    if (welcome)
        mcpgw_conn_send_json(c, welcome);
    json_decref(welcome);
}

static void gateway_message(mcpgw_conn *c, const uint8_t *data, size_t len, int binary)
{
    (void)binary;       /* binary JSON is accepted as the reference server does */
    mcpgw_dispatch_raw(c, data, len);
}

static void gateway_refused(mcpgw_conn *c, const char *message, const char *error)
{
    json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "message", message, "error",
                            error, "timestamp", mcpgw_clock_iso(&c->srv->clock));

    if (err)
        mcpgw_conn_send_json(c, err);
    json_decref(err);
}

static void refresh_refused(mcpgw_conn *c, json_t *id, const char *why)
{
    json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "message",
                            "Authentication failed", "error", why, "timestamp",
                            mcpgw_clock_iso(&c->srv->clock));

    if (err && id)
        json_object_set(err, "id", id);
    if (err)
        mcpgw_conn_send_json(c, err);
    json_decref(err);
}

void mcpgw_protocol_refresh(mcpgw_conn *c, json_t *msg)
{
    mcpgw_server *srv = c->srv;
    json_t *id = json_object_get(msg, "id");
    json_t *tok = json_object_get(msg, "token");
    json_t *claims = NULL, *ok;
    char user[256];
    mcpgw_auth_result ar;

    if (!json_is_string(tok) || json_string_length(tok) == 0) {
        refresh_refused(c, id, "auth requires a token");
        return;
    }
    ar = mcpgw_auth_verify(&srv->gw->auth, json_string_value(tok), mcpgw_clock_now(&srv->clock),
                           &claims, user, sizeof(user));
    if (ar != MCPGW_AUTH_OK || !c->user || strcmp(user, c->user) != 0) {
        const char *why = ar != MCPGW_AUTH_OK ? mcpgw_auth_result_name(ar) : "another_user";
        json_decref(claims);
        srv->metrics->errors[MCPGW_ERR_AUTH]++;
        mcpgw_server_log(srv, MCPGW_LOG_WARN, "websocket_refresh_failed", "{s:s, s:s, s:I}",
                         "reason", why, "user", c->user, "connection", (json_int_t)c->id);
        refresh_refused(c, id, ar != MCPGW_AUTH_OK ? "Invalid token" : "Token is for another user");
        return;
    }
    json_decref(c->claims);
    c->claims = claims;                 /* packed below, once its exp is read */
    c->valid_until = mcpgw_auth_valid_until(claims, srv->gw->cfg->leeway_s);
    mcpgw_conn_arm_expiry(c);
    ok = json_pack("{s:s, s:s}", "type", "auth_ok", "timestamp", mcpgw_clock_iso(&srv->clock));
    if (ok) {
        json_t *exp = json_object_get(claims, "exp");
        json_object_set(ok, "exp", exp ? exp : json_null());
        if (id)
            json_object_set(ok, "id", id);
        mcpgw_conn_send_json(c, ok);
    }
    json_decref(ok);
    mcpgw_conn_pack_claims(c);
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "websocket_token_refreshed", "{s:s, s:I, s:I}", "user",
                     c->user, "connection", (json_int_t)c->id, "valid_until",
                     (json_int_t)c->valid_until);
}

const mcpgw_protocol mcpgw_protocol_gateway = {
    .name = "mcpgw",
    .subprotocol = "mcpgw",
    .opened = gateway_opened,
    .message = gateway_message,
    .refused = gateway_refused,
};
