/*
 * pool.c - N clients to one gateway behind one send call. Each member is an
 * ordinary mcpgw_client with its own reconnect schedule and offline queue;
 * the pool only picks a member per send and forwards member events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mcpgw/client.h>

typedef struct pool_member {
    struct mcpgw_pool *pool;
    int index;
    mcpgw_client *client;
} pool_member;

struct mcpgw_pool {
    int n;
    pool_member *m;
    int next;                       /* round-robin start for ties */
    mcpgw_pool_event_cb cb;
    void *arg;
};

static void member_event(mcpgw_client *c, const mcpgw_client_event *ev, void *arg)
{
    pool_member *m = arg;
    (void)c;

    if (m->pool->cb)
        m->pool->cb(m->pool, m->index, ev, m->pool->arg);
}

void mcpgw_pool_free(mcpgw_pool *p)
{
    int i;

    if (!p)
        return;
    for (i = 0; i < p->n; i++)
        mcpgw_client_free(p->m[i].client);
    free(p->m);
    free(p);
}

mcpgw_pool *mcpgw_pool_new(struct event_base *base, const char *url, int n,
                           const mcpgw_client_opts *opts, mcpgw_pool_event_cb cb,
                           void *arg, char *err, size_t err_len)
{
    mcpgw_pool *p;
    int i;

    if (n < 1 || n > 1024) {
        if (err)
            snprintf(err, err_len, "pool size must be 1 .. 1024");
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (!p || !(p->m = calloc((size_t)n, sizeof(*p->m)))) {
        free(p);
        if (err)
            snprintf(err, err_len, "out of memory");
        return NULL;
    }
    p->n = n;
    p->cb = cb;
    p->arg = arg;
    for (i = 0; i < n; i++) {
        p->m[i].pool = p;
        p->m[i].index = i;
        p->m[i].client = mcpgw_client_new(base, url, opts, member_event, &p->m[i], err, err_len);
        if (!p->m[i].client)
            goto fail;
    }
    for (i = 0; i < n; i++)
        mcpgw_client_connect(p->m[i].client);
    return p;

fail:
    mcpgw_pool_free(p);
    return NULL;
}

void mcpgw_pool_close(mcpgw_pool *p)
{
    int i;

    for (i = 0; p && i < p->n; i++)
        mcpgw_client_close(p->m[i].client);
}

/* The connected member with the least load (outbound bytes + a weight per
 * pending request), ties broken round robin; else the shortest queue. */
static int pick(mcpgw_pool *p)
{
    int i, best = -1;
    size_t best_load = 0;

    for (i = 0; i < p->n; i++) {
        int k = (p->next + i) % p->n;
        mcpgw_client *c = p->m[k].client;
        size_t load;
        if (!mcpgw_client_is_connected(c))
            continue;
        load = mcpgw_client_outbound_bytes(c) + 256 * mcpgw_client_pending_requests(c);
        if (best < 0 || load < best_load) {
            best = k;
            best_load = load;
        }
    }
    if (best < 0) {
        for (i = 0; i < p->n; i++) {
            int k = (p->next + i) % p->n;
            size_t load = mcpgw_client_queue_bytes(p->m[k].client);
            if (best < 0 || load < best_load) {
                best = k;
                best_load = load;
            }
        }
    }
    p->next = (best + 1) % p->n;
    return best;
}

int mcpgw_pool_send(mcpgw_pool *p, json_t *msg, int *index_out)
{
    int k;

    if (!p)
        return MCPGW_SEND_ERR_INVALID;
    k = pick(p);
    if (index_out)
        *index_out = k;
    return mcpgw_client_send(p->m[k].client, msg);
}

int mcpgw_pool_send_text(mcpgw_pool *p, const char *text, size_t len, int *index_out)
{
    int k;

    if (!p)
        return MCPGW_SEND_ERR_INVALID;
    k = pick(p);
    if (index_out)
        *index_out = k;
    return mcpgw_client_send_text(p->m[k].client, text, len);
}

int mcpgw_pool_request(mcpgw_pool *p, json_t *msg, unsigned timeout_ms,
                       mcpgw_request_cb cb, void *arg, int *index_out)
{
    int k;

    if (!p)
        return MCPGW_SEND_ERR_INVALID;
    k = pick(p);
    if (index_out)
        *index_out = k;
    return mcpgw_client_request(p->m[k].client, msg, timeout_ms, cb, arg, NULL);
}

int mcpgw_pool_size(const mcpgw_pool *p)
{
    return p ? p->n : 0;
}

int mcpgw_pool_connected(const mcpgw_pool *p)
{
    int i, n = 0;

    for (i = 0; p && i < p->n; i++)
        n += mcpgw_client_is_connected(p->m[i].client);
    return n;
}

mcpgw_client *mcpgw_pool_member(mcpgw_pool *p, int index)
{
    return p && index >= 0 && index < p->n ? p->m[index].client : NULL;
}
