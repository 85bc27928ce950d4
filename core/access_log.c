/*
 * access_log.c - the optional access log (see access_log.h).
 */
#include <jansson.h>

#include "access_log.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "server.h"

void mcpgw_access_log(mcpgw_conn *c, const mcpgw_http_request *req, int status,
                      size_t bytes_out, const char *user, const char *reason)
{
    mcpgw_server *srv = c->srv;
    json_t *f;

    if (!srv->gw->cfg->log_access)
        return;
    f = json_pack("{s:i, s:s, s:f, s:I}", "status", status, "ip", mcpgw_conn_peer(c), "duration_ms",
                  (mcpgw_clock_seconds(&srv->clock) - c->accepted_at) * 1000.0, "bytes",
                  (json_int_t)bytes_out);
    if (!f)
        return;
    if (req) {
        json_object_set_new(f, "method", json_stringn(req->method.p, req->method.len));
        json_object_set_new(f, "path", json_stringn(req->path.p, req->path.len));
    }
    if (user)
        json_object_set_new(f, "user", json_string(user));
    if (reason)
        json_object_set_new(f, "reason", json_string(reason));
    {
        /* whatever the level: asking for the access log is asking for these */
        mcpgw_log all = srv->gw->log;
        all.level = MCPGW_LOG_DEBUG;
        mcpgw_log_event(&all, MCPGW_LOG_INFO, "access", f, mcpgw_clock_iso(&srv->clock));
    }
}
