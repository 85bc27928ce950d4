/*
 * request.c - requests matched to replies by "id": the id (a UUID v4 when
 * the caller gave none), the timeout, at-least-once resending after a
 * reconnect, and delivering the reply to the request's callback once.
 *
 * A request is in the client's list from mcpgw_client_request() until it
 * finishes (reply, timeout, drop, cancel); while disconnected its text sits
 * in the offline queue tagged with the request, so it keeps its place in
 * the order of messages.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "client_int.h"

static void unlink_req(mcpgw_client *c, mcpgw_creq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->req_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        c->req_tail = r->prev;
    r->next = r->prev = NULL;
    c->n_req--;
}

static void free_req(mcpgw_creq *r)
{
    if (r->timeout)
        event_free(r->timeout);
    json_decref(r->id);
    free(r->text);
    free(r);
}

/* Finishes r: takes it out of the list (and the queue), calls its callback
 * unless the client is being freed, frees it. */
void mcpgw_creq_finish_(mcpgw_creq *r, mcpgw_request_status st, json_t *reply)
{
    mcpgw_client *c = r->c;

    unlink_req(c, r);
    if (r->queued)
        mcpgw_cq_remove_tag(&c->q, r);
    if (!c->doomed && r->cb)
        r->cb(c, st, reply, r->arg);
    free_req(r);
}

void mcpgw_creq_fail_all_(mcpgw_client *c, mcpgw_request_status st, int notify)
{
    while (c->req_head) {
        mcpgw_creq *r = c->req_head;
        if (!notify)
            r->cb = NULL;
        mcpgw_creq_finish_(r, st, NULL);
    }
}

void mcpgw_creq_sent_(mcpgw_creq *r)
{
    r->queued = 0;
    r->sent_gen = r->c->gen;
}

void mcpgw_creq_resend_all_(mcpgw_client *c)
{
    mcpgw_creq *r;

    for (r = c->req_head; r; r = r->next) {
        if (r->queued || r->sent_gen == 0 || r->sent_gen == c->gen)
            continue;
        if (mcpgw_cl_write_text(c, r->text, r->len) != 0)
            return;
        r->sent_gen = c->gen;
    }
}

int mcpgw_creq_match_(mcpgw_client *c, json_t *msg)
{
    json_t *id;
    mcpgw_creq *r;

    if (!json_is_object(msg) || !(id = json_object_get(msg, "id")))
        return 0;
    for (r = c->req_head; r; r = r->next) {
        if (json_equal(r->id, id)) {
            mcpgw_creq_finish_(r, MCPGW_REQUEST_OK, msg);
            return 1;
        }
    }
    return 0;
}

static void timeout_fire(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_creq *r = arg;
    mcpgw_client *c = r->c;
    (void)fd;
    (void)what;

    mcpgw_cl_enter(c);
    mcpgw_creq_finish_(r, MCPGW_REQUEST_TIMEOUT, NULL);
    mcpgw_cl_leave(c);
}

int mcpgw_client_request(mcpgw_client *c, json_t *msg, unsigned timeout_ms,
                         mcpgw_request_cb cb, void *arg, json_t **id_out)
{
    mcpgw_creq *r = NULL;
    json_t *copy = NULL, *id;
    int rc = MCPGW_SEND_ERR_NOMEM;

    if (id_out)
        *id_out = NULL;
    if (!c || !json_is_object(msg) || !cb)
        return MCPGW_SEND_ERR_INVALID;
    copy = json_copy(msg);              /* shallow: only "id" is added */
    r = calloc(1, sizeof(*r));
    if (!copy || !r)
        goto fail;
    id = json_object_get(copy, "id");
    if (!id || json_is_null(id)) {
        char u[37];
        mcpgw_client_uuid4(u);
        if (json_object_set_new(copy, "id", json_string(u)) != 0)
            goto fail;
        id = json_object_get(copy, "id");
    }
    r->id = json_incref(id);
    r->text = json_dumps(copy, JSON_COMPACT);
    if (!r->text) {
        rc = MCPGW_SEND_ERR_INVALID;
        goto fail;
    }
    r->len = strlen(r->text);
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    if (timeout_ms) {
        struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000) };
        r->timeout = evtimer_new(c->base, timeout_fire, r);
        if (!r->timeout || event_add(r->timeout, &tv) != 0)
            goto fail;
    }

    /* In the list before sending, so queue events see a consistent state. */
    r->prev = c->req_tail;
    if (c->req_tail)
        c->req_tail->next = r;
    else
        c->req_head = r;
    c->req_tail = r;
    c->n_req++;
    if (id_out)
        *id_out = json_incref(r->id);

    if (c->state == CS_OPEN && mcpgw_cl_write_text(c, r->text, r->len) == 0) {
        r->sent_gen = c->gen;
        rc = MCPGW_SEND_OK;
    } else {
        mcpgw_cl_enter(c);
        r->queued = 1;
        rc = mcpgw_cl_enqueue(c, r->text, r->len, r);
        if (rc < 0) {
            r->queued = 0;
            r->cb = NULL;
            if (id_out) {
                json_decref(*id_out);
                *id_out = NULL;
            }
            unlink_req(c, r);
            free_req(r);
        }
        mcpgw_cl_leave(c);
    }
    json_decref(copy);
    return rc;

fail:
    json_decref(copy);
    if (r)
        free_req(r);
    return rc;
}
