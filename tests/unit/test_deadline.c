/*
 * test_deadline.c - unit tests for core/deadline.c, one worker's deadlines
 * in a min-heap under one libevent timer: they fire once each, in order,
 * not before their time; cancelled and re-armed ones do not fire at their
 * old time; a callback that re-arms itself for "now" fires on the next
 * turn; the heap keeps its order through arbitrary arms and cancels.
 */
#include "deadline.h"
#include "unit.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>

#define N 64

typedef struct {
    mcpgw_deadline d;
    int fired;
    int64_t fired_at;
    int rearm;                      /* re-arm itself with 0 ms this many times */
} item;

static int64_t order[N * 4];
static unsigned n_order, passes;
static int64_t pass_seen = -1;

static void on_fire(mcpgw_deadline *d, void *arg)
{
    mcpgw_deadlines *ds = arg;
    item *it = (item *)d;

    it->fired++;
    it->fired_at = mcpgw_deadline_now();
    if (ds->pass_now != pass_seen) {
        pass_seen = ds->pass_now;
        passes++;
    }
    if (n_order < N * 4)
        order[n_order++] = d->at;
    if (it->rearm > 0) {
        it->rearm--;
        mcpgw_deadline_arm(ds, d, 0);
    }
}

/* Every parent comes no later than its children; slots are indexes + 1. */
static int heap_ok(const mcpgw_deadlines *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        if (ds->heap[i]->slot != i + 1)
            return 0;
        if (i > 0 && ds->heap[(i - 1) / 2]->at > ds->heap[i]->at)
            return 0;
    }
    return 1;
}

static void run_until_empty(struct event_base *base, mcpgw_deadlines *ds)
{
    for (int i = 0; i < 1000 && ds->n > 0; i++)
        event_base_loop(base, EVLOOP_ONCE);
}

TEST(deadlines_fire_once_in_order_and_not_early)
{
    struct event_base *base = event_base_new();
    mcpgw_deadlines ds;
    static item it[N];
    int64_t t0;
    int want = 0;

    REQUIRE(base && mcpgw_deadlines_init(&ds, base, on_fire, &ds) == 0);
    n_order = 0;
    srand(18);
    t0 = mcpgw_deadline_now();
    for (int i = 0; i < N; i++) {
        it[i] = (item){ { 0, 0 }, 0, 0, 0 };
        CHECK(mcpgw_deadline_arm(&ds, &it[i].d, rand() % 40) == 0);
        CHECK(heap_ok(&ds));
    }
    /* every third one is cancelled, every fifth one moved later */
    for (int i = 0; i < N; i += 3) {
        mcpgw_deadline_cancel(&ds, &it[i].d);
        CHECK(!mcpgw_deadline_armed(&it[i].d));
        CHECK(heap_ok(&ds));
    }
    for (int i = 1; i < N; i += 5) {
        CHECK(mcpgw_deadline_arm(&ds, &it[i].d, 60) == 0);
        CHECK(heap_ok(&ds));
    }
    for (int i = 0; i < N; i++)
        want += i % 3 != 0 || i % 5 == 1;               /* a cancelled one armed again counts */
    CHECK_EQ_INT(ds.n, want);
    run_until_empty(base, &ds);
    CHECK_EQ_INT(ds.n, 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(it[i].fired, i % 3 != 0 || i % 5 == 1);
        if (it[i].fired)
            CHECK(it[i].fired_at >= it[i].d.at);          /* never early */
        if (i % 5 == 1)
            CHECK(it[i].fired_at >= t0 + 60);
    }
    CHECK_EQ_INT(n_order, want);
    for (unsigned k = 1; k < n_order; k++)
        CHECK(order[k - 1] <= order[k]);
    mcpgw_deadlines_free(&ds);
    event_base_free(base);
}

TEST(a_callback_rearming_for_now_fires_on_the_next_turn)
{
    struct event_base *base = event_base_new();
    mcpgw_deadlines ds;
    item a = { { 0, 0 }, 0, 0, 3 }, b = { { 0, 0 }, 0, 0, 0 };

    REQUIRE(base && mcpgw_deadlines_init(&ds, base, on_fire, &ds) == 0);
    passes = 0;
    pass_seen = -1;
    CHECK(mcpgw_deadline_arm(&ds, &a.d, 0) == 0);
    CHECK(mcpgw_deadline_arm(&ds, &b.d, 0) == 0);
    event_base_loop(base, EVLOOP_ONCE);
    CHECK_EQ_INT(b.fired, 1);
    CHECK_EQ_INT(a.fired, 1);               /* not three times in that pass */
    CHECK(mcpgw_deadline_armed(&a.d));
    run_until_empty(base, &ds);
    CHECK_EQ_INT(a.fired, 4);
    CHECK(passes >= 4);
    mcpgw_deadlines_free(&ds);
    event_base_free(base);
}

TEST(the_heap_keeps_its_order_through_random_arms_and_cancels)
{
    struct event_base *base = event_base_new();
    mcpgw_deadlines ds;
    static item it[1000];
    int armed = 0;

    REQUIRE(base && mcpgw_deadlines_init(&ds, base, on_fire, &ds) == 0);
    srand(1806);
    for (int i = 0; i < 1000; i++)
        it[i] = (item){ { 0, 0 }, 0, 0, 0 };
    for (int step = 0; step < 20000; step++) {
        item *x = &it[rand() % 1000];

        if (rand() % 3 == 0) {
            mcpgw_deadline_cancel(&ds, &x->d);
        } else {
            CHECK(mcpgw_deadline_arm(&ds, &x->d, 100000 + rand() % 100000) == 0);
        }
        if (step % 997 == 0)
            CHECK(heap_ok(&ds));
    }
    CHECK(heap_ok(&ds));
    for (int i = 0; i < 1000; i++)
        armed += mcpgw_deadline_armed(&it[i].d);
    CHECK_EQ_INT(ds.n, armed);
    mcpgw_deadlines_free(&ds);
    for (int i = 0; i < 1000; i++)
        CHECK(!mcpgw_deadline_armed(&it[i].d));
    event_base_free(base);
}

int main(void)
{
    RUN(deadlines_fire_once_in_order_and_not_early);
    RUN(a_callback_rearming_for_now_fires_on_the_next_turn);
    RUN(the_heap_keeps_its_order_through_random_arms_and_cancels);
    return UNIT_SUMMARY();
}
