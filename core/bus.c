/*
 * bus.c - the local bus between workers (see bus.h): per worker a byte ring
 * of records in shared memory, written under a robust process-shared lock,
 * read lock-free by its one reader, with an eventfd to wake a sleeping
 * reader.
 *
 * Positions are byte counts that only grow (their low bits index the ring).
 * A record is a 16-byte head, the user id with its NUL (if any) and the
 * text, padded to 16 bytes; one that would cross the end of the ring is
 * preceded by a pad record that fills the rest.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus.h"
#include "shm_lock.h"

#define BUS_MAX_WORKERS 64
#define REC_PAD 1u
#define REC_CTL 2u                  /* a control message (mcpgw_bus_send) */
#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

typedef struct {
    uint32_t size;              /* the whole record, a multiple of 16 */
    uint32_t flags;
    uint32_t user_len;          /* 0: every connection; else strlen(user) + 1 */
    uint32_t text_len;
} rec_head;

typedef struct {
    pthread_mutex_t lock;       /* writers */
    uint64_t tail;              /* next write; published with release */
    uint64_t dropped;           /* under the lock */
    char pad1[64];
    uint64_t head;              /* next read; the reader's */
    uint64_t peeked;            /* size of the record the reader holds */
    int waiting;                /* the reader sleeps: wake it */
    char pad2[64];
} ring_head;

struct mcpgw_bus {
    size_t map_len;
    int n;
    size_t ring_bytes;          /* a power of two */
    size_t stride;              /* one ring and its head */
    int efd[BUS_MAX_WORKERS];   /* inherited by every worker at the same numbers */
    int hand[BUS_MAX_WORKERS][2];   /* handover: [0] worker w reads, [1] the others write */
};

static ring_head *ring_of(const mcpgw_bus *b, int w)
{
    return (ring_head *)((char *)b + 4096 + (size_t)w * b->stride);
}

static unsigned char *data_of(const mcpgw_bus *b, int w)
{
    return (unsigned char *)ring_of(b, w) + 4096;
}

mcpgw_bus *mcpgw_bus_new(int n_workers, size_t ring_bytes)
{
    size_t rb = 65536, stride, len;
    mcpgw_bus *b;
    void *map;

    if (n_workers < 1 || n_workers > BUS_MAX_WORKERS)
        return NULL;
    while (rb < ring_bytes && rb < ((size_t)1 << 30))
        rb <<= 1;
    stride = 4096 + rb;
    len = 4096 + (size_t)n_workers * stride;
    /* pages become resident as the rings are used */
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
               -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    b = map;
    b->map_len = len;
    b->n = n_workers;
    b->ring_bytes = rb;
    b->stride = stride;
    for (int w = 0; w < BUS_MAX_WORKERS; w++)
        b->efd[w] = b->hand[w][0] = b->hand[w][1] = -1;
    for (int w = 0; w < n_workers; w++) {
        b->efd[w] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (b->efd[w] < 0 || mcpgw_shm_lock_init(&ring_of(b, w)->lock) != 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b->hand[w]) != 0)
            goto fail;
    }
    return b;
fail:
    mcpgw_bus_free(b);
    return NULL;
}

void mcpgw_bus_free(mcpgw_bus *b)
{
    if (!b)
        return;
    for (int w = 0; w < b->n; w++) {
        if (b->efd[w] >= 0)
            close(b->efd[w]);
        for (int k = 0; k < 2; k++)
            if (b->hand[w][k] >= 0)
                close(b->hand[w][k]);
    }
    munmap(b, b->map_len);
}

/* ------------------------------------------------------------ handover */

int mcpgw_bus_handover_fd(const mcpgw_bus *b, int worker)
{
    return worker >= 0 && worker < b->n ? b->hand[worker][0] : -1;
}

int mcpgw_bus_handover(mcpgw_bus *b, int to, int fd, const void *bytes, size_t len)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { (void *)bytes, len };
    struct msghdr m = { 0 };
    struct cmsghdr *cm;

    if (to < 0 || to >= b->n || !len || len > MCPGW_BUS_HANDOVER_MAX)
        return -1;
    memset(&ctl, 0, sizeof(ctl));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof(ctl.buf);
    cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(b->hand[to][1], &m, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)iov.iov_len ? 0 : -1;
}

long mcpgw_bus_handover_recv(mcpgw_bus *b, int worker, int *fd, void *buf, size_t cap)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { buf, cap };
    struct msghdr m = { 0 };
    struct cmsghdr *cm;
    ssize_t n;

    *fd = -1;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof(ctl.buf);
    n = recvmsg(b->hand[worker][0], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -1;
    for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(fd, CMSG_DATA(cm), sizeof(int));
    if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || *fd < 0) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        return -2;              /* not one we can use: skip it */
    }
    return (long)n;
}

/* A writer that died holding the lock published nothing (see ring_put). */
static void ring_lock(ring_head *r)
{
    mcpgw_shm_lock(&r->lock);
}

void mcpgw_bus_reset(mcpgw_bus *b, int w)
{
    ring_head *r;
    uint64_t v;

    if (w < 0 || w >= b->n)
        return;
    r = ring_of(b, w);
    ring_lock(r);
    __atomic_store_n(&r->head, __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    r->peeked = 0;
    __atomic_store_n(&r->waiting, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&r->lock);
    while (read(b->efd[w], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
}

int mcpgw_bus_fd(const mcpgw_bus *b, int w)
{
    return w >= 0 && w < b->n ? b->efd[w] : -1;
}

size_t mcpgw_bus_max_message(const mcpgw_bus *b)
{
    return b->ring_bytes / 2 - sizeof(rec_head) - 512;
}

/* Appends one record to worker w's ring; 1, or 0 when it does not fit. */
static int ring_put(mcpgw_bus *b, int w, uint32_t flags, const char *user, size_t ulen,
                    const char *text, size_t tlen)
{
    ring_head *r = ring_of(b, w);
    unsigned char *data = data_of(b, w);
    size_t mask = b->ring_bytes - 1;
    size_t need = ALIGN16(sizeof(rec_head) + ulen + tlen);
    uint64_t head, tail;
    size_t off, room_to_end;
    rec_head h;
    int wake = 0;

    if (need > b->ring_bytes / 2) {
        ring_lock(r);
        r->dropped++;
        pthread_mutex_unlock(&r->lock);
        return 0;
    }
    ring_lock(r);
    head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    tail = r->tail;
    off = (size_t)(tail & mask);
    room_to_end = b->ring_bytes - off;
    if (b->ring_bytes - (size_t)(tail - head) < need + (room_to_end < need ? room_to_end : 0)) {
        r->dropped++;
        pthread_mutex_unlock(&r->lock);
        return 0;
    }
    if (room_to_end < need) {           /* pad to the end, start over at 0 */
        h.size = (uint32_t)room_to_end;
        h.flags = REC_PAD;
        h.user_len = h.text_len = 0;
        memcpy(data + off, &h, sizeof(h));
        tail += room_to_end;
        off = 0;
    }
    h.size = (uint32_t)need;
    h.flags = flags;
    h.user_len = (uint32_t)ulen;
    h.text_len = (uint32_t)tlen;
    memcpy(data + off, &h, sizeof(h));
    if (ulen)
        memcpy(data + off + sizeof(h), user, ulen);
    memcpy(data + off + sizeof(h) + ulen, text, tlen);
    /* Published only now: a writer that dies before this leaves nothing. */
    __atomic_store_n(&r->tail, tail + need, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&r->lock);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->waiting, __ATOMIC_SEQ_CST))
        wake = __atomic_exchange_n(&r->waiting, 0, __ATOMIC_SEQ_CST);
    if (wake) {
        uint64_t one = 1;
        if (write(b->efd[w], &one, sizeof(one)) != (ssize_t)sizeof(one)) {
            /* the counter cannot overflow at 1 per sleep */
        }
    }
    return 1;
}

int mcpgw_bus_publish(mcpgw_bus *b, int from, const char *user, const char *text, size_t len,
                      uint64_t *took)
{
    size_t ulen = user ? strlen(user) + 1 : 0;
    int reached = 0;

    if (took)
        *took = 0;
    for (int w = 0; w < b->n; w++)
        if (w != from && ring_put(b, w, 0, user, ulen, text, len)) {
            reached++;
            if (took)
                *took |= (uint64_t)1 << w;
        }
    return reached;
}

int mcpgw_bus_send(mcpgw_bus *b, int to, const char *text, size_t len)
{
    if (to < 0 || to >= b->n)
        return 0;
    return ring_put(b, to, REC_CTL, NULL, 0, text, len);
}

int mcpgw_bus_workers(const mcpgw_bus *b)
{
    return b->n;
}

int mcpgw_bus_peek(mcpgw_bus *b, int w, const char **user, const char **text, size_t *len,
                   int *control)
{
    ring_head *r = ring_of(b, w);
    unsigned char *data = data_of(b, w);
    size_t mask = b->ring_bytes - 1;
    uint64_t head = r->head, tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);

    while (head != tail) {
        const unsigned char *p = data + (size_t)(head & mask);
        rec_head h;

        memcpy(&h, p, sizeof(h));
        if (h.flags & REC_PAD) {
            head += h.size;
            __atomic_store_n(&r->head, head, __ATOMIC_RELEASE);
            continue;
        }
        *user = h.user_len ? (const char *)p + sizeof(h) : NULL;
        *text = (const char *)p + sizeof(h) + h.user_len;
        *len = h.text_len;
        *control = (h.flags & REC_CTL) != 0;
        r->peeked = h.size;
        return 1;
    }
    return 0;
}

void mcpgw_bus_done(mcpgw_bus *b, int w)
{
    ring_head *r = ring_of(b, w);

    __atomic_store_n(&r->head, r->head + r->peeked, __ATOMIC_RELEASE);
    r->peeked = 0;
}

int mcpgw_bus_sleep(mcpgw_bus *b, int w)
{
    ring_head *r = ring_of(b, w);
    uint64_t v;

    while (read(b->efd[w], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
    __atomic_store_n(&r->waiting, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->tail, __ATOMIC_SEQ_CST) != r->head) {
        __atomic_store_n(&r->waiting, 0, __ATOMIC_SEQ_CST);
        return 0;
    }
    return 1;
}

uint64_t mcpgw_bus_dropped(const mcpgw_bus *b, int w)
{
    ring_head *r;

    if (w < 0 || w >= b->n)
        return 0;
    r = ring_of(b, w);
    return __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
}
