/*
 * policy.h - who may send what to a handler: the gateway's own keys of a
 * [handler.TYPE] section, checked before the handler runs:
 *   require_claim = CLAIM:VALUE   the sender's token must carry it;
 *   max_message_bytes = N         a larger message of this type is refused;
 *   broadcast_per_s = R           at most R messages of this type per second
 *                                 per user (a token bucket of R, per worker).
 * A refusal names the rule; the handler never sees the message.
 *
 * Ownership: the per-user buckets belong to the worker (mcpgw_policy) and
 * are pruned when idle; the sections are the configuration's.
 */
#ifndef MCPGW_POLICY_H
#define MCPGW_POLICY_H

#include <stddef.h>
#include <jansson.h>

typedef struct mcpgw_conn mcpgw_conn;
struct mcpgw_handler_config;

typedef struct mcpgw_policy_bucket mcpgw_policy_bucket;

typedef struct mcpgw_policy {
    mcpgw_policy_bucket **slots;
    size_t n_slots, count;
} mcpgw_policy;

void mcpgw_policy_free(mcpgw_policy *p);

/* NULL when c may send msg (len bytes, or 0 when unknown) to the handler of
 * sec at time now (s); else the refusal's message ("Forbidden", "Message
 * too large", "Rate limit exceeded"), with the reason written to why. */
const char *mcpgw_policy_check(mcpgw_policy *p, const struct mcpgw_handler_config *sec,
                               const mcpgw_conn *c, json_t *msg, size_t len, double now,
                               char *why, size_t why_len);

#endif
