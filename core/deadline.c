/*
 * deadline.c - one worker's deadlines in a binary min-heap under one
 * libevent timer (see deadline.h).
 */
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "deadline.h"

int64_t mcpgw_deadline_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ the heap */

static void place(mcpgw_deadlines *ds, mcpgw_deadline *d, size_t i)
{
    ds->heap[i] = d;
    d->slot = (uint32_t)i + 1;
}

static void sift_up(mcpgw_deadlines *ds, size_t i)
{
    mcpgw_deadline *d = ds->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (ds->heap[parent]->at <= d->at)
            break;
        place(ds, ds->heap[parent], i);
        i = parent;
    }
    place(ds, d, i);
}

static void sift_down(mcpgw_deadlines *ds, size_t i)
{
    mcpgw_deadline *d = ds->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= ds->n)
            break;
        if (child + 1 < ds->n && ds->heap[child + 1]->at < ds->heap[child]->at)
            child++;
        if (ds->heap[child]->at >= d->at)
            break;
        place(ds, ds->heap[child], i);
        i = child;
    }
    place(ds, d, i);
}

static void heap_remove(mcpgw_deadlines *ds, mcpgw_deadline *d)
{
    size_t i = d->slot - 1;
    mcpgw_deadline *last = ds->heap[--ds->n];

    d->slot = 0;
    if (last == d)
        return;
    place(ds, last, i);
    if (i > 0 && ds->heap[(i - 1) / 2]->at > last->at)
        sift_up(ds, i);
    else
        sift_down(ds, i);
}

/* ------------------------------------------------------------ the timer */

/* Arms the timer for heap[0] unless it already fires at or before it (a
 * timer that fires early for a cancelled deadline just re-arms). Inside a
 * pass nothing is armed: the pass arms once at its end. */
static void timer_sync(mcpgw_deadlines *ds)
{
    int64_t at, now;
    struct timeval tv;

    if (ds->pass_now != INT64_MIN || ds->n == 0)
        return;
    at = ds->heap[0]->at;
    if (at >= ds->ev_at)
        return;
    now = mcpgw_deadline_now();
    at = at > now ? at - now : 0;
    tv.tv_sec = (time_t)(at / 1000);
    tv.tv_usec = (suseconds_t)(at % 1000) * 1000;
    if (event_add(ds->ev, &tv) == 0)
        ds->ev_at = ds->heap[0]->at;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    mcpgw_deadlines *ds = arg;

    (void)fd;
    (void)what;
    ds->ev_at = INT64_MAX;
    ds->pass_now = mcpgw_deadline_now();
    while (ds->n > 0 && ds->heap[0]->at <= ds->pass_now) {
        mcpgw_deadline *d = ds->heap[0];

        heap_remove(ds, d);
        ds->fire(d, ds->arg);       /* may arm and cancel others, or d again */
    }
    ds->pass_now = INT64_MIN;
    timer_sync(ds);
}

/* ------------------------------------------------------------ the API */

int mcpgw_deadlines_init(mcpgw_deadlines *ds, struct event_base *base,
                         void (*fire)(mcpgw_deadline *d, void *arg), void *arg)
{
    ds->heap = NULL;
    ds->n = ds->cap = 0;
    ds->ev_at = INT64_MAX;
    ds->pass_now = INT64_MIN;
    ds->fire = fire;
    ds->arg = arg;
    ds->ev = evtimer_new(base, timer_cb, ds);
    return ds->ev ? 0 : -1;
}

void mcpgw_deadlines_free(mcpgw_deadlines *ds)
{
    while (ds->n > 0)
        ds->heap[--ds->n]->slot = 0;
    free(ds->heap);
    ds->heap = NULL;
    ds->cap = 0;
    if (ds->ev)
        event_free(ds->ev);
    ds->ev = NULL;
}

int mcpgw_deadline_arm(mcpgw_deadlines *ds, mcpgw_deadline *d, long long ms)
{
    int64_t now = mcpgw_deadline_now();

    if (ms < 0)
        ms = 0;
    if (d->slot)
        heap_remove(ds, d);
    d->at = now + ms;
    if (ds->pass_now != INT64_MIN && d->at <= ds->pass_now)
        d->at = ds->pass_now + 1;   /* due already: on the next turn */
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? 2 * ds->cap : 64;
        mcpgw_deadline **h;

        if (cap > UINT32_MAX || !(h = realloc(ds->heap, cap * sizeof(*h))))
            return -1;
        ds->heap = h;
        ds->cap = cap;
    }
    ds->heap[ds->n++] = d;
    sift_up(ds, ds->n - 1);
    timer_sync(ds);
    return 0;
}

void mcpgw_deadline_cancel(mcpgw_deadlines *ds, mcpgw_deadline *d)
{
    if (d->slot)
        heap_remove(ds, d);
}
