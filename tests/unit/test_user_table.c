/*
 * test_user_table.c - unit tests for core/user_table.c: limits, release and
 * removal, key ownership, growth and shrinking with many users, deletion
 * correctness against a reference model, foreach.
 */
#include "unit.h"
#include "user_table.h"

#include <stdlib.h>
#include <string.h>

TEST(acquire_to_limit)
{
    mcpgw_user_table *t = mcpgw_user_table_new();

    CHECK(t != NULL);
    CHECK_EQ_INT(mcpgw_user_table_users(t), 0);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 3), 1);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 3), 2);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 3), 3);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 3), 0);     /* refused */
    CHECK_EQ_INT(mcpgw_user_table_count(t, "alice"), 3);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "bob", 3), 1);        /* others unaffected */
    CHECK_EQ_INT(mcpgw_user_table_users(t), 2);
    /* a lower limit (config reload) refuses without changing the count */
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 2), 0);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "alice"), 3);
    /* limit <= 0 refuses everyone, new users are not added */
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "carol", 0), 0);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "carol", -1), 0);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "carol"), 0);
    CHECK_EQ_INT(mcpgw_user_table_users(t), 2);
    mcpgw_user_table_free(t);
}

TEST(release_and_removal)
{
    mcpgw_user_table *t = mcpgw_user_table_new();

    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 2), 1);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 2), 2);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 2), 0);
    CHECK_EQ_INT(mcpgw_user_table_release(t, "alice"), 1);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 2), 2);     /* slot freed */
    CHECK_EQ_INT(mcpgw_user_table_release(t, "alice"), 1);
    CHECK_EQ_INT(mcpgw_user_table_release(t, "alice"), 0);
    CHECK_EQ_INT(mcpgw_user_table_users(t), 0);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "alice"), 0);
    CHECK_EQ_INT(mcpgw_user_table_release(t, "alice"), -1);       /* removed */
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 2), 1);     /* back again */
    CHECK_EQ_INT(mcpgw_user_table_users(t), 1);
    mcpgw_user_table_free(t);
}

TEST(release_unknown)
{
    mcpgw_user_table *t = mcpgw_user_table_new();

    CHECK_EQ_INT(mcpgw_user_table_release(t, "nobody"), -1);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "alice", 1), 1);
    CHECK_EQ_INT(mcpgw_user_table_release(t, "alicE"), -1);
    CHECK_EQ_INT(mcpgw_user_table_release(t, "alic"), -1);
    CHECK_EQ_INT(mcpgw_user_table_release(t, ""), -1);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "alice"), 1);
    CHECK_EQ_INT(mcpgw_user_table_users(t), 1);
    /* NULLs are refused, not crashes */
    CHECK_EQ_INT(mcpgw_user_table_release(t, NULL), -1);
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, NULL, 5), -1);
    CHECK_EQ_INT(mcpgw_user_table_count(t, NULL), 0);
    CHECK_EQ_INT(mcpgw_user_table_users(NULL), 0);
    mcpgw_user_table_free(t);
    mcpgw_user_table_free(NULL);
}

TEST(keys_are_copied)
{
    mcpgw_user_table *t = mcpgw_user_table_new();
    char *name = strdup("transient");

    CHECK_EQ_INT(mcpgw_user_table_acquire(t, name, 4), 1);
    strcpy(name, "scribbled");
    free(name);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "transient"), 1);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "scribbled"), 0);
    /* the empty string is a key like any other */
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "", 4), 1);
    CHECK_EQ_INT(mcpgw_user_table_count(t, ""), 1);
    mcpgw_user_table_free(t);                   /* frees remaining keys */
}

#define MANY 100000

static void name_of(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "user-%d", i);
}

TEST(many_users)
{
    mcpgw_user_table *t = mcpgw_user_table_new();
    char name[32];
    int i, bad = 0;

    for (i = 0; i < MANY; i++) {
        name_of(name, sizeof name, i);
        if (mcpgw_user_table_acquire(t, name, 2) != 1)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mcpgw_user_table_users(t), MANY);
    for (i = 0; i < MANY; i += 2) {             /* evens get a second slot */
        name_of(name, sizeof name, i);
        if (mcpgw_user_table_acquire(t, name, 2) != 2)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    for (i = 0; i < MANY; i++) {
        name_of(name, sizeof name, i);
        if (mcpgw_user_table_count(t, name) != (i % 2 ? 1 : 2))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "user-100000"), 0);
    /* release everything: odds go at once, evens after two releases */
    for (i = 0; i < MANY; i++) {
        name_of(name, sizeof name, i);
        if (mcpgw_user_table_release(t, name) != (i % 2 ? 0 : 1))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mcpgw_user_table_users(t), MANY / 2);
    for (i = 0; i < MANY; i += 2) {
        name_of(name, sizeof name, i);
        if (mcpgw_user_table_release(t, name) != 0)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(mcpgw_user_table_users(t), 0);
    /* shrunk table still works */
    CHECK_EQ_INT(mcpgw_user_table_acquire(t, "again", 1), 1);
    CHECK_EQ_INT(mcpgw_user_table_count(t, "again"), 1);
    mcpgw_user_table_free(t);
}

/* Random acquire/release over a small key space, checked against an array:
 * exercises probe chains and backward-shift deletion across resizes. */
TEST(random_against_model)
{
    enum { KEYS = 3000, STEPS = 300000, LIMIT = 3 };
    mcpgw_user_table *t = mcpgw_user_table_new();
    int *model = calloc(KEYS, sizeof *model);
    unsigned long long x = 88172645463325252ull;
    size_t users = 0;
    char name[32];
    int step, k, got, want, bad = 0;

    for (step = 0; step < STEPS; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = (int)(x % KEYS);
        /* bias phases towards filling, then draining */
        name_of(name, sizeof name, k);
        if ((x >> 32) % 100 < (unsigned)((step / 50000) % 2 ? 30 : 70)) {
            got = mcpgw_user_table_acquire(t, name, LIMIT);
            want = model[k] < LIMIT ? model[k] + 1 : 0;
            if (want) {
                if (model[k] == 0)
                    users++;
                model[k]++;
            }
        } else {
            got = mcpgw_user_table_release(t, name);
            want = model[k] > 0 ? model[k] - 1 : -1;
            if (model[k] > 0) {
                model[k]--;
                if (model[k] == 0)
                    users--;
            }
        }
        if (got != want)
            bad++;
        if (mcpgw_user_table_users(t) != users)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    for (k = 0; k < KEYS; k++) {
        name_of(name, sizeof name, k);
        if (mcpgw_user_table_count(t, name) != model[k])
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    free(model);
    mcpgw_user_table_free(t);
}

struct tally {
    int calls;
    long total;
    int alice, bob, carol;
};

static void count_cb(const char *user, int count, void *arg)
{
    struct tally *ta = arg;

    ta->calls++;
    ta->total += count;
    if (strcmp(user, "alice") == 0)
        ta->alice = count;
    else if (strcmp(user, "bob") == 0)
        ta->bob = count;
    else if (strcmp(user, "carol") == 0)
        ta->carol = count;
}

TEST(foreach_counts)
{
    mcpgw_user_table *t = mcpgw_user_table_new();
    struct tally ta;
    char name[32];
    int i;

    memset(&ta, 0, sizeof ta);
    mcpgw_user_table_foreach(t, count_cb, &ta);
    CHECK_EQ_INT(ta.calls, 0);

    mcpgw_user_table_acquire(t, "alice", 10);
    mcpgw_user_table_acquire(t, "alice", 10);
    mcpgw_user_table_acquire(t, "bob", 10);
    mcpgw_user_table_acquire(t, "carol", 10);
    mcpgw_user_table_release(t, "carol");       /* gone: not visited */
    for (i = 0; i < 50; i++) {                  /* force a resize */
        name_of(name, sizeof name, i);
        mcpgw_user_table_acquire(t, name, 10);
    }
    mcpgw_user_table_foreach(t, count_cb, &ta);
    CHECK_EQ_INT(ta.calls, 52);
    CHECK_EQ_INT(ta.total, 53);
    CHECK_EQ_INT(ta.alice, 2);
    CHECK_EQ_INT(ta.bob, 1);
    CHECK_EQ_INT(ta.carol, 0);
    mcpgw_user_table_foreach(t, NULL, NULL);    /* no-op */
    mcpgw_user_table_free(t);
}

int main(void)
{
    RUN(acquire_to_limit);
    RUN(release_and_removal);
    RUN(release_unknown);
    RUN(keys_are_copied);
    RUN(many_users);
    RUN(random_against_model);
    RUN(foreach_counts);
    return UNIT_SUMMARY();
}
