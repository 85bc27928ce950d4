/*
 * conn_limits.c - the shared-memory connection accounting of all workers
 * (see conn_limits.h): one mapping holding a robust process-shared mutex,
 * the totals, a fixed array of bucket heads and a dense array of
 * (user, worker, count) entries chained from them, with a free list.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "conn_limits.h"
#include "shm_lock.h"

#define NIL UINT32_MAX
#define LIMITS_BUCKETS_MAX 65536u

typedef struct {
    uint64_t hash;
    uint32_t next;              /* in the bucket's chain, or the free list */
    int16_t worker;
    int32_t count;              /* >= 1 while in a chain */
    char user[MCPGW_LIMITS_USER_MAX];
} limits_entry;

struct mcpgw_limits {
    size_t map_len;
    pthread_mutex_t lock;
    uint64_t next_conn_id;      /* atomic, outside the lock */
    long total;
    long per_worker[MCPGW_LIMITS_MAX_WORKERS];
    size_t users;
    uint32_t n_buckets;         /* power of two */
    uint32_t capacity;
    uint32_t free_head;         /* entries never used start at used_top */
    uint32_t used_top;
    uint32_t *buckets;          /* inside the mapping */
    limits_entry *entries;      /* inside the mapping */
};

/* 64-bit FNV-1a. User ids come from verified tokens. */
static uint64_t limits_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

mcpgw_limits *mcpgw_limits_new(size_t capacity)
{
    mcpgw_limits *l;
    size_t head, len;
    uint32_t nb = 16;
    void *map;

    if (capacity < 16)
        capacity = 16;
    if (capacity > UINT32_MAX - 1)
        return NULL;
    while (nb < capacity && nb < LIMITS_BUCKETS_MAX)
        nb <<= 1;
    head = (sizeof(*l) + 63) & ~(size_t)63;
    len = head + (size_t)nb * sizeof(uint32_t) + capacity * sizeof(limits_entry);
    /* Pages are touched (and so become resident) only as entries are used. */
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
               -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    l = map;
    l->map_len = len;
    l->n_buckets = nb;
    l->capacity = (uint32_t)capacity;
    l->free_head = NIL;
    l->buckets = (uint32_t *)((char *)map + head);
    l->entries = (limits_entry *)(l->buckets + nb);
    memset(l->buckets, 0xff, (size_t)nb * sizeof(uint32_t));      /* NIL */
    if (mcpgw_shm_lock_init(&l->lock) != 0)
        goto fail;
    return l;
fail:
    munmap(map, len);
    return NULL;
}

void mcpgw_limits_free(mcpgw_limits *l)
{
    if (l)
        munmap(l, l->map_len);
}

/* A worker that died holding the lock leaves it to the next taker: what it
 * was changing is at worst one count off, and the supervisor releases that
 * worker's entries anyway. */
static void limits_lock(mcpgw_limits *l)
{
    mcpgw_shm_lock(&l->lock);
}

static void limits_unlock(mcpgw_limits *l)
{
    mcpgw_shm_unlock(&l->lock);
}

static uint32_t *bucket_of(mcpgw_limits *l, uint64_t h)
{
    return &l->buckets[h & (l->n_buckets - 1)];
}

/* The user's count over all workers, and its entry on worker (or NULL). */
static int user_sum(mcpgw_limits *l, const char *user, uint64_t h, int worker,
                    limits_entry **mine)
{
    int sum = 0;

    if (mine)
        *mine = NULL;
    for (uint32_t i = *bucket_of(l, h); i != NIL; i = l->entries[i].next) {
        limits_entry *e = &l->entries[i];
        if (e->hash != h || strcmp(e->user, user) != 0)
            continue;
        sum += e->count;
        if (mine && e->worker == worker)
            *mine = e;
    }
    return sum;
}

static uint32_t entry_alloc(mcpgw_limits *l)
{
    uint32_t i = l->free_head;

    if (i != NIL) {
        l->free_head = l->entries[i].next;
        return i;
    }
    if (l->used_top < l->capacity)
        return l->used_top++;
    return NIL;
}

mcpgw_limit_result mcpgw_limits_acquire(mcpgw_limits *l, const char *user, int worker,
                                        int per_user_limit, long max_total, int *count)
{
    uint64_t h;
    limits_entry *mine;
    mcpgw_limit_result r = MCPGW_LIMIT_OK;
    int sum;

    if (count)
        *count = 0;
    if (!user || strlen(user) >= MCPGW_LIMITS_USER_MAX || worker < 0 ||
        worker >= MCPGW_LIMITS_MAX_WORKERS)
        return MCPGW_LIMIT_ERROR;
    h = limits_hash(user);
    limits_lock(l);
    sum = user_sum(l, user, h, worker, &mine);
    if (sum >= per_user_limit) {
        r = MCPGW_LIMIT_USER;
    } else if (l->total >= max_total) {
        r = MCPGW_LIMIT_SERVER;
    } else if (mine) {
        mine->count++;
    } else {
        uint32_t i = entry_alloc(l), *b;
        if (i == NIL) {
            r = MCPGW_LIMIT_SERVER;
        } else {
            limits_entry *e = &l->entries[i];
            b = bucket_of(l, h);
            e->hash = h;
            e->worker = (int16_t)worker;
            e->count = 1;
            strcpy(e->user, user);      /* length checked above */
            e->next = *b;
            *b = i;
            if (sum == 0)
                l->users++;
        }
    }
    if (r == MCPGW_LIMIT_OK) {
        l->total++;
        l->per_worker[worker]++;
        sum++;
    }
    limits_unlock(l);
    if (count)
        *count = sum;
    return r;
}

/* Unlinks entry i (in the chain at *link) and frees it. */
static void entry_remove(mcpgw_limits *l, uint32_t *link, uint32_t i)
{
    *link = l->entries[i].next;
    l->entries[i].count = 0;
    l->entries[i].next = l->free_head;
    l->free_head = i;
}

int mcpgw_limits_release(mcpgw_limits *l, const char *user, int worker)
{
    uint64_t h;
    int left = -1;

    if (!user || worker < 0 || worker >= MCPGW_LIMITS_MAX_WORKERS)
        return -1;
    h = limits_hash(user);
    limits_lock(l);
    for (uint32_t *link = bucket_of(l, h); *link != NIL; link = &l->entries[*link].next) {
        uint32_t i = *link;
        limits_entry *e = &l->entries[i];
        if (e->hash != h || e->worker != worker || strcmp(e->user, user) != 0)
            continue;
        l->total--;
        l->per_worker[worker]--;
        if (--e->count == 0)
            entry_remove(l, link, i);
        left = user_sum(l, user, h, -1, NULL);
        if (left == 0)
            l->users--;
        break;
    }
    limits_unlock(l);
    return left;
}

size_t mcpgw_limits_release_worker(mcpgw_limits *l, int worker)
{
    size_t freed = 0;

    if (worker < 0 || worker >= MCPGW_LIMITS_MAX_WORKERS)
        return 0;
    limits_lock(l);
    for (uint32_t b = 0; b < l->n_buckets; b++) {
        uint32_t *link = &l->buckets[b];
        while (*link != NIL) {
            uint32_t i = *link;
            limits_entry *e = &l->entries[i];
            if (e->worker != worker) {
                link = &e->next;
                continue;
            }
            freed += (size_t)e->count;
            l->total -= e->count;
            entry_remove(l, link, i);       /* *link is the next one now */
            if (user_sum(l, e->user, e->hash, -1, NULL) == 0)
                l->users--;
        }
    }
    l->per_worker[worker] = 0;
    limits_unlock(l);
    return freed;
}

long mcpgw_limits_total(mcpgw_limits *l)
{
    long n;

    limits_lock(l);
    n = l->total;
    limits_unlock(l);
    return n;
}

long mcpgw_limits_worker_total(mcpgw_limits *l, int worker)
{
    long n;

    if (worker < 0 || worker >= MCPGW_LIMITS_MAX_WORKERS)
        return 0;
    limits_lock(l);
    n = l->per_worker[worker];
    limits_unlock(l);
    return n;
}

int mcpgw_limits_user_count(mcpgw_limits *l, const char *user)
{
    int n;

    if (!user)
        return 0;
    limits_lock(l);
    n = user_sum(l, user, limits_hash(user), -1, NULL);
    limits_unlock(l);
    return n;
}

int mcpgw_limits_user_count_on(mcpgw_limits *l, const char *user, int worker)
{
    limits_entry *mine;
    int n = 0;

    if (!user)
        return 0;
    limits_lock(l);
    user_sum(l, user, limits_hash(user), worker, &mine);
    if (mine)
        n = mine->count;
    limits_unlock(l);
    return n;
}

size_t mcpgw_limits_users(mcpgw_limits *l)
{
    size_t n;

    limits_lock(l);
    n = l->users;
    limits_unlock(l);
    return n;
}

void mcpgw_limits_foreach_user(mcpgw_limits *l, void (*fn)(const char *user, int count, void *arg),
                               void *arg)
{
    limits_lock(l);
    for (uint32_t b = 0; b < l->n_buckets; b++) {
        for (uint32_t i = l->buckets[b]; i != NIL; i = l->entries[i].next) {
            const limits_entry *e = &l->entries[i];
            int first = 1;
            /* once per user: at its first entry in the chain */
            for (uint32_t j = l->buckets[b]; j != i; j = l->entries[j].next)
                if (l->entries[j].hash == e->hash && strcmp(l->entries[j].user, e->user) == 0) {
                    first = 0;
                    break;
                }
            if (first)
                fn(e->user, user_sum(l, e->user, e->hash, -1, NULL), arg);
        }
    }
    limits_unlock(l);
}

uint64_t mcpgw_limits_next_conn_id(mcpgw_limits *l)
{
    return __atomic_add_fetch(&l->next_conn_id, 1, __ATOMIC_RELAXED);
}
