/*
 * access_log.h - [log] access = true: one "access" line per HTTP request
 * and per WebSocket upgrade (accepted or refused), with the method, the
 * path (never the query: it may carry a token), the status, how long the
 * request took from the TCP accept, the bytes of the answer, the user when
 * known, and the refusal's reason. Written whatever [log] level is.
 */
#ifndef MCPGW_ACCESS_LOG_H
#define MCPGW_ACCESS_LOG_H

#include <stddef.h>

typedef struct mcpgw_conn mcpgw_conn;
struct mcpgw_http_request;

/* req may be NULL (the head did not parse); user and reason may be NULL. */
void mcpgw_access_log(mcpgw_conn *c, const struct mcpgw_http_request *req, int status,
                      size_t bytes_out, const char *user, const char *reason);

#endif
