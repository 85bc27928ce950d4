/*
 * deadline.h - one worker's deadlines: a binary min-heap of them, driven by
 * a single libevent timer, instead of one libevent timer (a 128-byte event
 * and a malloc) per connection (issue 18). A deadline is embedded in what
 * it times (16 bytes) and fires once; what it times finds itself from it
 * (the heap's fire callback gets the deadline).
 *
 * Times are milliseconds of CLOCK_MONOTONIC. Deadlines due together fire
 * in deadline order, those armed with the same time in no set order. A fire
 * callback may arm, re-arm or cancel any deadline, its own included; one
 * armed from inside a callback for a time that has already come fires on
 * the timer's next turn, not in the same pass (so a callback re-arming
 * itself with 0 ms cannot hold the loop).
 *
 * Ownership: the heap holds pointers to deadlines it does not own; the
 * owner of a deadline must cancel it before freeing it.
 */
#ifndef MCPGW_DEADLINE_H
#define MCPGW_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;

typedef struct mcpgw_deadline {
    int64_t at;                     /* monotonic ms */
    uint32_t slot;                  /* its index in the heap + 1; 0: not armed */
} mcpgw_deadline;

typedef struct mcpgw_deadlines {
    mcpgw_deadline **heap;
    size_t n, cap;
    struct event *ev;               /* the one timer: armed for heap[0] */
    int64_t ev_at;                  /* what ev is armed for; INT64_MAX: not armed */
    int64_t pass_now;               /* inside a pass: its time, else INT64_MIN */
    void (*fire)(mcpgw_deadline *d, void *arg);
    void *arg;
} mcpgw_deadlines;

/* 0, or -1 when the timer cannot be made. fire(d, arg) runs for each
 * deadline that comes (d is no longer armed then). */
int mcpgw_deadlines_init(mcpgw_deadlines *ds, struct event_base *base,
                         void (*fire)(mcpgw_deadline *d, void *arg), void *arg);
/* Frees the heap and the timer (the deadlines stay with their owners,
 * unarmed). */
void mcpgw_deadlines_free(mcpgw_deadlines *ds);

/* Arms d to fire ms milliseconds from now (a negative ms as 0), re-arming
 * it when it was armed. 0, or -1 when out of memory (d is then not armed). */
int mcpgw_deadline_arm(mcpgw_deadlines *ds, mcpgw_deadline *d, long long ms);
/* Cancels d (nothing when it is not armed). */
void mcpgw_deadline_cancel(mcpgw_deadlines *ds, mcpgw_deadline *d);

static inline int mcpgw_deadline_armed(const mcpgw_deadline *d)
{
    return d->slot != 0;
}

/* Monotonic milliseconds (what `at` is counted in). */
int64_t mcpgw_deadline_now(void);

#endif
