/*
 * test_transport.c - unit tests for core/bufpool.c and the plain transport
 * (core/transport.c, core/transport_plain.c) over a socketpair: frames
 * queued as segments (copied into the loop's write block, referenced in a
 * pool block, a shared payload) leave in order with one flush; input lands
 * in the loop's read block where the owner can use it in place; an idle
 * transport holds no buffer (issue 18); the loop's flush list writes in
 * order, a slice at a time, and looks for input between slices.
 */
#include "bufpool.h"
#include "payload.h"
#include "transport.h"
#include "unit.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TEST(pool_reuses_and_bounds_its_free_list)
{
    mcpgw_bufpool pool;
    mcpgw_block *b[MCPGW_BUFPOOL_KEEP + 4], *again;
    unsigned i;

    mcpgw_bufpool_init(&pool);
    for (i = 0; i < MCPGW_BUFPOOL_KEEP + 4; i++)
        CHECK((b[i] = mcpgw_block_get(&pool)) != NULL);
    CHECK_EQ_INT(pool.n_live, MCPGW_BUFPOOL_KEEP + 4);
    mcpgw_block_ref(b[0]);
    mcpgw_block_unref(b[0]);
    CHECK_EQ_INT(pool.n_free, 0);           /* one reference is left */
    for (i = 0; i < MCPGW_BUFPOOL_KEEP + 4; i++)
        mcpgw_block_unref(b[i]);
    CHECK_EQ_INT(pool.n_live, 0);
    CHECK_EQ_INT(pool.n_free, MCPGW_BUFPOOL_KEEP);   /* the rest was freed */
    again = mcpgw_block_get(&pool);
    CHECK(again == b[MCPGW_BUFPOOL_KEEP - 1]);       /* the last one back comes first */
    CHECK(mcpgw_block_holds(again, again->data, MCPGW_BUF_SIZE));
    CHECK(!mcpgw_block_holds(again, again->data + 1, MCPGW_BUF_SIZE));
    CHECK(!mcpgw_block_holds(again, again, 1));
    CHECK(!mcpgw_block_holds(NULL, again->data, 1));
    mcpgw_block_unref(again);
    mcpgw_bufpool_close(&pool);
}

/* ------------------------------------------------------ a plain transport */

static struct {
    int readable, written, closed;
    int in_place;                   /* the input was in the loop's read block */
    size_t in_len;
} seen;

static mcpgw_transport *cur;

static void on_readable(void *owner)
{
    struct evbuffer *in = mcpgw_transport_in(cur);
    size_t len = evbuffer_get_length(in);
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)len);

    (void)owner;
    seen.readable++;
    seen.in_len = len;
    seen.in_place = mcpgw_transport_in_buf(cur, p, len) != NULL;
    evbuffer_drain(in, len - 3 < len ? len - 3 : 0);   /* leave a remainder */
}

static void on_written(void *owner)
{
    (void)owner;
    seen.written++;
}

static void on_closed(void *owner, int eof)
{
    (void)owner;
    (void)eof;
    seen.closed++;
}

static const mcpgw_transport_cbs cbs = { on_readable, on_written, on_closed };

static size_t read_all(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap && (n = recv(fd, buf + got, cap - got, MSG_DONTWAIT)) > 0)
        got += (size_t)n;
    return got;
}

TEST(frames_leave_in_order_and_an_idle_transport_holds_no_buffer)
{
    struct event_base *base = event_base_new();
    mcpgw_io io;
    int sv[2];
    mcpgw_transport *t;
    mcpgw_payload *shared;
    mcpgw_block *blk;
    uint8_t got[256], want[256];
    size_t n, w = 0;
    const uint8_t h1[2] = { 0x81, 5 }, h2[2] = { 0x82, 3 };

    CHECK(base && mcpgw_io_init(&io, base) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    evutil_make_socket_nonblocking(sv[0]);
    memset(&seen, 0, sizeof(seen));
    cur = t = mcpgw_transport_plain_new(&io, sv[0], &cbs, NULL);
    REQUIRE(t != NULL);
    CHECK(t->in == NULL && t->out == NULL);         /* nothing held before a byte moves */

    /* a copied frame, a referenced one, a shared payload, a copied one */
    blk = mcpgw_block_get(&io.pool);
    memcpy(blk->data, "abc", 3);
    shared = mcpgw_payload_new_frame(1, 0, "shared", 6);
    CHECK(shared != NULL);
    CHECK(mcpgw_transport_queue_copy(t, h1, 2, "hello", 5) == 0);
    CHECK(mcpgw_transport_queue_ref(t, h2, 2, blk->data, 3, blk) == 0);
    CHECK(mcpgw_transport_queue_frame(t, shared) == 0);
    CHECK(mcpgw_transport_queue_copy(t, h1, 2, "world", 5) == 0);
    CHECK(t->segs && t->segs->n == 4);
    CHECK(t->out == NULL);                          /* no staging copy in an evbuffer */
    CHECK_EQ_INT(mcpgw_transport_queued(t), 2 + 5 + 2 + 3 + shared->len + 2 + 5);
    memcpy(want + w, h1, 2), w += 2, memcpy(want + w, "hello", 5), w += 5;
    memcpy(want + w, h2, 2), w += 2, memcpy(want + w, "abc", 3), w += 3;
    memcpy(want + w, shared->bytes, shared->len), w += shared->len;
    memcpy(want + w, h1, 2), w += 2, memcpy(want + w, "world", 5), w += 5;
    mcpgw_payload_unref(shared);
    mcpgw_block_unref(blk);                           /* the queue keeps its own */

    event_base_loop(base, EVLOOP_NONBLOCK);         /* the end-of-iteration flush */
    n = read_all(sv[1], got, sizeof(got));
    CHECK_EQ_INT(n, w);
    CHECK(n == w && memcmp(got, want, w) == 0);
    CHECK_EQ_INT(seen.written, 1);
    CHECK(t->segs == NULL && t->out == NULL);       /* written: idle again, no buffer */
    CHECK_EQ_INT(io.pool.n_live, 1);                /* the loop's write block alone */

    /* bytes appended to the output buffer, a frame behind them: both leave,
     * in order, and the buffer goes back once written */
    evbuffer_add(mcpgw_transport_out(t), "P", 1);
    CHECK(t->out != NULL);
    CHECK(mcpgw_transport_queue_copy(t, h1, 2, "again", 5) == 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    n = read_all(sv[1], got, sizeof(got));
    CHECK(n == 8 && memcmp(got, "P\x81\x05" "again", 8) == 0);
    CHECK_EQ_INT(seen.written, 2);
    CHECK(t->segs == NULL && t->out == NULL);

    /* more frames than a queue holds: the rest follow in the output
     * buffer, in order */
    for (int i = 0; i < MCPGW_TRANSPORT_SEGS + 8; i++) {
        uint8_t one = (uint8_t)i;

        CHECK(mcpgw_transport_queue_copy(t, h1, 1, &one, 1) == 0);
        if (i == 0)
            CHECK(t->segs && t->segs->cap == MCPGW_SEGQ_SMALL);
        if (i == MCPGW_SEGQ_SMALL)
            CHECK(t->segs && t->segs->cap == MCPGW_TRANSPORT_SEGS);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    n = read_all(sv[1], got, sizeof(got));
    CHECK_EQ_INT(n, 2 * (MCPGW_TRANSPORT_SEGS + 8));
    for (size_t i = 0; i + 1 < n; i += 2)
        CHECK(got[i] == 0x81 && got[i + 1] == (uint8_t)(i / 2));
    CHECK(t->segs == NULL && t->out == NULL);

    /* input: read into the loop's read block, usable in place; a small
     * remainder is copied out of it and an empty input goes back */
    CHECK(send(sv[1], "0123456789", 10, 0) == 10);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK_EQ_INT(seen.readable, 1);
    CHECK_EQ_INT(seen.in_len, 10);
    CHECK(seen.in_place);
    mcpgw_transport_settle_in(t);
    CHECK(t->in && evbuffer_get_length(t->in) == 3);
    CHECK(!mcpgw_transport_in_buf(t, evbuffer_pullup(t->in, 3), 3));    /* copied out */
    CHECK(send(sv[1], "ab", 2, 0) == 2);
    event_base_loop(base, EVLOOP_NONBLOCK);
    CHECK_EQ_INT(seen.readable, 2);
    CHECK_EQ_INT(seen.in_len, 5);                   /* "789" + "ab", in one piece */
    CHECK(seen.in_place);
    evbuffer_drain(t->in, 3);
    mcpgw_transport_settle_in(t);
    CHECK(t->in == NULL);

    mcpgw_transport_free(t);
    CHECK_EQ_INT(seen.closed, 0);
    close(sv[1]);
    mcpgw_io_free(&io);
    event_base_free(base);
}

/* ------------------------------------------------------ the flush list */

#define N_FAKE (2 * MCPGW_FLUSH_SLICE + 10)
#define MARK_INPUT (-1)             /* the log's entry for the input callback */

static struct {
    int log[4 * N_FAKE];            /* the fake ids flushed, in order, and MARK_INPUT */
    int n;
    mcpgw_transport *again;         /* queues itself again while flushed, once */
    mcpgw_transport *late;          /* queued by the input callback */
} fl;

static mcpgw_transport *fakes[N_FAKE + 1];

static int fake_id(const mcpgw_transport *t)
{
    for (int i = 0; i <= N_FAKE; i++)
        if (fakes[i] == t)
            return i;
    return -2;
}

static void fake_flush(mcpgw_transport *t)
{
    if (fl.n < (int)(sizeof(fl.log) / sizeof(fl.log[0])))
        fl.log[fl.n++] = fake_id(t);
    if (t == fl.again) {
        fl.again = NULL;
        mcpgw_transport_flush_enqueue(t);   /* more output meanwhile: to the end */
    }
}

static void fake_release(mcpgw_transport *t)
{
    (void)t;
}

static const mcpgw_transport_type fake_type = { "fake", NULL, NULL, fake_flush, NULL, fake_release };

static void input_cb(evutil_socket_t fd, short what, void *arg)
{
    char b[8];

    (void)what;
    (void)arg;
    while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
        ;
    fl.log[fl.n++] = MARK_INPUT;
    mcpgw_transport_flush_enqueue(fakes[0]);        /* already written: to the end */
    mcpgw_transport_flush_enqueue(fakes[N_FAKE - 1]); /* still queued: stays where it is */
}

static int pos(int id, int from)
{
    for (int i = from; i < fl.n; i++)
        if (fl.log[i] == id)
            return i;
    return -1;
}

TEST(the_flush_list_writes_in_order_a_slice_at_a_time_with_input_between)
{
    struct event_base *base = event_base_new();
    struct event *in_ev;
    mcpgw_io io;
    int sv[2], ok = 1;

    CHECK(base && mcpgw_io_init(&io, base) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    evutil_make_socket_nonblocking(sv[1]);
    in_ev = event_new(base, sv[1], EV_READ | EV_PERSIST, input_cb, NULL);
    REQUIRE(in_ev != NULL);
    event_add(in_ev, NULL);
    memset(&fl, 0, sizeof(fl));
    for (int i = 0; i <= N_FAKE; i++) {
        fakes[i] = calloc(1, sizeof(mcpgw_transport));
        REQUIRE(fakes[i] != NULL);
        fakes[i]->type = &fake_type;
        fakes[i]->io = &io;
        fakes[i]->fd = -1;
    }
    fl.again = fakes[5];
    for (int i = 0; i <= N_FAKE; i++)
        mcpgw_transport_flush_enqueue(fakes[i]);
    mcpgw_transport_flush_enqueue(fakes[3]);        /* queued once only */
    mcpgw_transport_free(fakes[N_FAKE]);            /* freed while queued: the list frees it */
    fakes[N_FAKE] = NULL;
    CHECK(send(sv[0], "x", 1, 0) == 1);             /* input waits behind the first slice */

    for (int k = 0; k < 10 && io.flush_head; k++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    CHECK(io.flush_head == NULL && io.flush_tail == NULL);

    /* the first slice in the order queued (5 queued itself again) */
    for (int i = 0; i < MCPGW_FLUSH_SLICE; i++)
        ok &= fl.log[i] == i;
    CHECK(ok);
    /* then the input, before the rest */
    CHECK_EQ_INT(pos(MARK_INPUT, 0), MCPGW_FLUSH_SLICE);
    ok = 1;
    for (int i = MCPGW_FLUSH_SLICE; i < N_FAKE; i++)
        ok &= pos(i, 0) == i + 1;
    CHECK(ok);
    /* written again, in the order they queued themselves again: 5 while
     * it was written, 0 from the input callback; N_FAKE - 1 was still on
     * the list and is written once */
    CHECK_EQ_INT(fl.log[N_FAKE + 1], 5);
    CHECK_EQ_INT(fl.log[N_FAKE + 2], 0);
    CHECK_EQ_INT(fl.n, N_FAKE + 3);
    CHECK_EQ_INT(pos(N_FAKE - 1, pos(N_FAKE - 1, 0) + 1), -1);
    CHECK_EQ_INT(pos(-2, 0), -1);                   /* the freed one was never written */

    for (int i = 0; i < N_FAKE; i++)
        free(fakes[i]);
    event_free(in_ev);
    close(sv[0]);
    close(sv[1]);
    mcpgw_io_free(&io);
    event_base_free(base);
}

/* A connection written out of turn (mcpgw_transport_flush_now): its owner
 * hears nothing then; a failed write is told by the list, once, in place
 * of a write. */
static int owner_closed, owner_written;

static void own_readable(void *o)
{
    (void)o;
}

static void own_written(void *o)
{
    (void)o;
    owner_written++;
}

static void own_closed(void *o, int eof)
{
    CHECK(o == (void *)&owner_closed);
    CHECK_EQ_INT(eof, 1);
    owner_closed++;
}

static const mcpgw_transport_cbs own_cbs = { own_readable, own_written, own_closed };

static void failing_flush(mcpgw_transport *t)
{
    fl.log[fl.n++] = 7;
    t->cbs->closed(t->owner, 1);    /* the peer is gone */
}

static const mcpgw_transport_type failing_type = { "failing", NULL, NULL, failing_flush, NULL,
                                                   fake_release };

TEST(a_transport_written_out_of_turn_tells_its_owner_through_the_list)
{
    struct event_base *base = event_base_new();
    mcpgw_io io;
    mcpgw_transport *t = calloc(1, sizeof(*t));

    CHECK(base && mcpgw_io_init(&io, base) == 0);
    REQUIRE(t != NULL);
    memset(&fl, 0, sizeof(fl));
    owner_closed = owner_written = 0;
    t->type = &failing_type;
    t->io = &io;
    t->fd = -1;
    t->cbs = &own_cbs;
    t->owner = &owner_closed;
    mcpgw_transport_flush_now(t);               /* not on the list: nothing */
    CHECK_EQ_INT(fl.n, 0);
    mcpgw_transport_flush_enqueue(t);
    mcpgw_transport_flush_now(t);
    CHECK_EQ_INT(fl.n, 1);                      /* written */
    CHECK_EQ_INT(owner_closed, 0);              /* but not told yet */
    CHECK(t->cbs == &own_cbs && t->owner == (void *)&owner_closed);
    mcpgw_transport_flush_now(t);               /* closed already: not again */
    CHECK_EQ_INT(fl.n, 1);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    CHECK_EQ_INT(owner_closed, 1);              /* told by the list, once */
    CHECK_EQ_INT(fl.n, 1);                      /* in place of a second write */
    CHECK_EQ_INT(owner_written, 0);
    CHECK(io.flush_head == NULL);
    free(t);
    mcpgw_io_free(&io);
    event_base_free(base);
}

int main(void)
{
    RUN(pool_reuses_and_bounds_its_free_list);
    RUN(frames_leave_in_order_and_an_idle_transport_holds_no_buffer);
    RUN(the_flush_list_writes_in_order_a_slice_at_a_time_with_input_between);
    RUN(a_transport_written_out_of_turn_tells_its_owner_through_the_list);
    return UNIT_SUMMARY();
}
