/*
 * http_api.h - the plain HTTP endpoints beside the WebSocket path:
 * GET /healthz, GET /readyz, GET /metrics, GET /status and, with an admin
 * token ([admin] claim and value), POST /api/broadcast[?user=U],
 * GET /api/connections[?detail=1&limit=N], DELETE /api/connections/ID and
 * POST /api/users/USER/disconnect.
 */
#ifndef MCPGW_HTTP_API_H
#define MCPGW_HTTP_API_H

#include <stddef.h>
#include <jansson.h>
#include "http.h"

typedef struct mcpgw_conn mcpgw_conn;
typedef struct mcpgw_server mcpgw_server;

/* Is this one of our endpoints (else 404)? */
int mcpgw_http_api_is_endpoint(const mcpgw_http_request *req);
/* How many body bytes follow the head: 0 (sets *len), -1 malformed (400),
 * -2 over [admin] max_body_bytes (413). */
int mcpgw_http_api_body_needed(const mcpgw_server *srv, const mcpgw_http_request *req,
                               size_t *len);
/* Answers with {"error": msg} and this status. */
void mcpgw_http_api_error(mcpgw_conn *c, int status, const char *msg);
/* Answers with body (stolen) as JSON and this status. */
void mcpgw_http_api_answer(mcpgw_conn *c, int status, json_t *body);
/* Answers a request whose answer was deferred (c->api_pending), then
 * drains c; method and path are its own, for the access log. When the
 * client left meanwhile, body is dropped. body is stolen. */
void mcpgw_http_api_answer_deferred(mcpgw_conn *c, const char *method, const char *path,
                                    int status, json_t *body);
/* Answers the request (the caller then drains and closes). */
void mcpgw_http_api_handle(mcpgw_conn *c, const mcpgw_http_request *req, const char *body,
                           size_t body_len);

#endif
