/*
 * policy.c - the per-handler rules of [handler.TYPE] sections (see
 * policy.h): claim, size and per-user rate, checked in dispatch before a
 * handler runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "plugin_abi.h"
#include "config.h"
#include "conn.h"
#include "policy.h"

#define POLICY_PRUNE_AT 4096        /* buckets kept before idle ones are dropped */

struct mcpgw_policy_bucket {
    char *type;                     /* the section's type (a copy: a reload frees the
                                       configuration, the bucket stays) */
    char *user;
    double tokens, stamp;
    mcpgw_policy_bucket *next;
};

static size_t hash(const char *type, const char *user)
{
    size_t h = 5381;
    for (; *type; type++)
        h = h * 33 + (unsigned char)*type;
    h = h * 33 + 1;
    for (; *user; user++)
        h = h * 33 + (unsigned char)*user;
    return h;
}

void mcpgw_policy_free(mcpgw_policy *p)
{
    for (size_t i = 0; i < p->n_slots; i++)
        while (p->slots[i]) {
            mcpgw_policy_bucket *b = p->slots[i];
            p->slots[i] = b->next;
            free(b->type);
            free(b->user);
            free(b);
        }
    free(p->slots);
    p->slots = NULL;
    p->n_slots = p->count = 0;
}

/* Buckets refilled to the brim since are forgotten: such a user starts
 * afresh anyway. */
static void prune(mcpgw_policy *p, double now, double rate)
{
    for (size_t i = 0; i < p->n_slots; i++)
        for (mcpgw_policy_bucket **pp = &p->slots[i]; *pp;) {
            mcpgw_policy_bucket *b = *pp;
            if ((now - b->stamp) * rate + b->tokens >= rate) {
                *pp = b->next;
                free(b->type);
                free(b->user);
                free(b);
                p->count--;
            } else {
                pp = &b->next;
            }
        }
}

/* 1 when the user may send one more, 0 when over, -1 out of memory. */
static int take(mcpgw_policy *p, const char *type, const char *user, double rate, double now)
{
    double burst = rate < 1 ? 1 : rate;
    mcpgw_policy_bucket *b;
    size_t i;

    if (!p->slots) {
        p->slots = calloc(256, sizeof(*p->slots));
        if (!p->slots)
            return -1;
        p->n_slots = 256;
    }
    i = hash(type, user) % p->n_slots;
    for (b = p->slots[i]; b; b = b->next)
        if (strcmp(b->type, type) == 0 && strcmp(b->user, user) == 0)
            break;
    if (!b) {
        if (p->count >= POLICY_PRUNE_AT)
            prune(p, now, rate);
        b = calloc(1, sizeof(*b));
        if (!b || !(b->user = strdup(user)) || !(b->type = strdup(type))) {
            if (b)
                free(b->user);
            free(b);
            return -1;
        }
        b->tokens = burst;
        b->stamp = now;
        b->next = p->slots[i];
        p->slots[i] = b;
        p->count++;
    }
    b->tokens += (now - b->stamp) * rate;
    if (b->tokens > burst)
        b->tokens = burst;
    b->stamp = now;
    if (b->tokens < 1)
        return 0;
    b->tokens -= 1;
    return 1;
}

const char *mcpgw_policy_check(mcpgw_policy *p, const mcpgw_handler_config *sec,
                               const mcpgw_conn *c, json_t *msg, size_t len, double now,
                               char *why, size_t why_len)
{
    const char *user = c->user ? c->user : "";

    if (!sec)
        return NULL;
    if (sec->claim_name && !mcpgw_claims_match(mcpgw_conn_claims(c), sec->claim_name,
                                                     sec->claim_value)) {
        snprintf(why, why_len, "%s requires the claim %s=%s", sec->type, sec->claim_name,
                 sec->claim_value);
        return "Forbidden";
    }
    if (sec->max_message_bytes) {
        if (!len)           /* a sub-message (batch): its own size */
            len = json_dumpb(msg, NULL, 0, JSON_COMPACT);
        if (len > sec->max_message_bytes) {
            snprintf(why, why_len, "%s messages are limited to %zu bytes", sec->type,
                     sec->max_message_bytes);
            return "Message too large";
        }
    }
    if (sec->rate_per_user > 0) {
        int r = take(p, sec->type, user, sec->rate_per_user, now);
        if (r == 0) {
            snprintf(why, why_len, "at most %g %s messages per second per user", sec->rate_per_user,
                     sec->type);
            return "Rate limit exceeded";
        }
    }
    return NULL;
}
