/*
 * user_table.c - the per-user connection counter: an open-addressing hash
 * table (linear probing, power-of-two capacity, backward-shift deletion so
 * there are no tombstones) from copied user ids to slot counts.
 *
 * Owns the table's slot array and the key copies in it. Grows past 3/4
 * load, shrinks below 1/8 (never under the initial capacity).
 */
#include "user_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UT_MIN_CAP 16u

typedef struct {
    char *key;                  /* owned; NULL marks an empty slot */
    uint64_t hash;
    int count;                  /* >= 1 while key is set */
} ut_entry;

struct mcpgw_user_table {
    ut_entry *slots;
    size_t cap;                 /* power of two */
    size_t used;
};

/* 64-bit FNV-1a. */
static uint64_t ut_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Index of key's slot, or of the empty slot where it would go. The table
 * always has an empty slot, so the probe ends. */
static size_t ut_find(const mcpgw_user_table *t, const char *key, uint64_t h)
{
    size_t mask = t->cap - 1, i = (size_t)h & mask;

    while (t->slots[i].key) {
        if (t->slots[i].hash == h && strcmp(t->slots[i].key, key) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

/* Moves every entry into a new array of new_cap slots. Returns 0, or -1
 * (table unchanged) on allocation failure. */
static int ut_resize(mcpgw_user_table *t, size_t new_cap)
{
    ut_entry *slots = calloc(new_cap, sizeof *slots);
    size_t i, j, mask = new_cap - 1;

    if (!slots)
        return -1;
    for (i = 0; i < t->cap; i++) {
        if (!t->slots[i].key)
            continue;
        j = (size_t)t->slots[i].hash & mask;
        while (slots[j].key)
            j = (j + 1) & mask;
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = new_cap;
    return 0;
}

/* Empties slot i, shifting later entries of the probe run back so every
 * entry stays reachable from its home slot. */
static void ut_remove_at(mcpgw_user_table *t, size_t i)
{
    size_t mask = t->cap - 1, j = i, home;

    free(t->slots[i].key);
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j].key)
            break;
        home = (size_t)t->slots[j].hash & mask;
        /* The entry at j may move to i if i lies on its probe path [home, j). */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].key = NULL;
    t->slots[i].hash = 0;
    t->slots[i].count = 0;
    t->used--;
}

mcpgw_user_table *mcpgw_user_table_new(void)
{
    mcpgw_user_table *t = calloc(1, sizeof *t);

    if (!t)
        goto out;
    t->slots = calloc(UT_MIN_CAP, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        t = NULL;
        goto out;
    }
    t->cap = UT_MIN_CAP;
out:
    return t;
}

void mcpgw_user_table_free(mcpgw_user_table *t)
{
    size_t i;

    if (!t)
        return;
    for (i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    free(t);
}

int mcpgw_user_table_acquire(mcpgw_user_table *t, const char *user, int limit)
{
    uint64_t h;
    size_t i;
    char *key = NULL;
    int ret = -1;

    if (!t || !user)
        goto out;
    h = ut_hash(user);
    i = ut_find(t, user, h);
    if (t->slots[i].key) {
        if (t->slots[i].count >= limit) {
            ret = 0;
            goto out;
        }
        ret = ++t->slots[i].count;
        goto out;
    }
    if (limit <= 0) {
        ret = 0;
        goto out;
    }
    /* New user: keep the load at or below 3/4. */
    if ((t->used + 1) * 4 > t->cap * 3) {
        if (t->cap > SIZE_MAX / 2 / sizeof *t->slots || ut_resize(t, t->cap * 2) != 0)
            goto out;
        i = ut_find(t, user, h);
    }
    key = strdup(user);
    if (!key)
        goto out;
    t->slots[i].key = key;
    t->slots[i].hash = h;
    t->slots[i].count = 1;
    t->used++;
    ret = 1;
out:
    return ret;
}

int mcpgw_user_table_release(mcpgw_user_table *t, const char *user)
{
    size_t i;
    int ret = -1;

    if (!t || !user)
        goto out;
    i = ut_find(t, user, ut_hash(user));
    if (!t->slots[i].key)
        goto out;
    ret = --t->slots[i].count;
    if (ret > 0)
        goto out;
    ut_remove_at(t, i);
    /* Shrinking is best effort: on failure the table just stays large. */
    if (t->cap > UT_MIN_CAP && t->used * 8 < t->cap)
        (void)ut_resize(t, t->cap / 2);
out:
    return ret;
}

int mcpgw_user_table_count(const mcpgw_user_table *t, const char *user)
{
    size_t i;

    if (!t || !user)
        return 0;
    i = ut_find(t, user, ut_hash(user));
    return t->slots[i].key ? t->slots[i].count : 0;
}

size_t mcpgw_user_table_users(const mcpgw_user_table *t)
{
    return t ? t->used : 0;
}

void mcpgw_user_table_foreach(const mcpgw_user_table *t,
                              void (*fn)(const char *user, int count, void *arg),
                              void *arg)
{
    size_t i;

    if (!t || !fn)
        return;
    for (i = 0; i < t->cap; i++)
        if (t->slots[i].key)
            fn(t->slots[i].key, t->slots[i].count, arg);
}
