/*
 * batcher.c - the reference MessageBatcher on an event_base: messages are
 * collected and handed to a sink as one envelope
 * {"type":"batch","id":UUIDv4,"messages":[...],"count":N,"timestamp":ISO8601}
 * when batch_size is reached ("batch_full"), when the oldest waiting message
 * reaches max_batch_age ("batch_age"), on the periodic timer ("timer"), on
 * mcpgw_batcher_force_flush() ("force") and on mcpgw_batcher_stop() ("stop").
 *
 * One deliberate difference from the reference: the age counts from the
 * first message of the batch (the reference counts from the previous flush,
 * so a lone message after a quiet spell is flushed at once), and an age
 * timer fires even when no further message arrives.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include <mcpgw/client.h>

struct mcpgw_batcher {
    struct event_base *base;
    mcpgw_batcher_opts o;
    mcpgw_batcher_sink sink;
    void *arg;
    json_t *messages;               /* array we own */
    struct event *interval_ev;
    struct event *age_ev;
    struct timeval first;           /* when the first waiting message came */
    int stopped;
};

void mcpgw_batcher_opts_init(mcpgw_batcher_opts *o)
{
    o->batch_size = 10;
    o->flush_interval_ms = 1000;
    o->max_batch_age_ms = 5000;
}

static void iso_now(char out[32])
{
    struct timeval tv;
    struct tm tm;
    char base[24];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(tv.tv_usec / 1000));
}

static void tv_of_ms(struct timeval *tv, unsigned ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

static void flush(mcpgw_batcher *b, const char *reason)
{
    json_t *batch, *msgs;
    char id[37], ts[32];
    size_t n = json_array_size(b->messages);

    if (n == 0)
        return;
    msgs = b->messages;
    b->messages = json_array();
    event_del(b->age_ev);
    mcpgw_client_uuid4(id);
    iso_now(ts);
    batch = json_pack("{s:s, s:s, s:o, s:I, s:s}", "type", "batch", "id", id, "messages", msgs,
                      "count", (json_int_t)n, "timestamp", ts);
    if (batch && b->sink)
        b->sink(batch, reason, b->arg);
    json_decref(batch);
}

static void interval_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg, "timer");
}

static void age_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg, "batch_age");
}

mcpgw_batcher *mcpgw_batcher_new(struct event_base *base, const mcpgw_batcher_opts *opts,
                                 mcpgw_batcher_sink sink, void *arg)
{
    mcpgw_batcher *b = calloc(1, sizeof(*b));
    struct timeval tv;

    if (!b)
        return NULL;
    if (opts)
        b->o = *opts;
    else
        mcpgw_batcher_opts_init(&b->o);
    /* The reference treats 0 as "use the default" (options.x || default). */
    if (!b->o.batch_size)
        b->o.batch_size = 10;
    if (!b->o.flush_interval_ms)
        b->o.flush_interval_ms = 1000;
    if (!b->o.max_batch_age_ms)
        b->o.max_batch_age_ms = 5000;
    b->base = base;
    b->sink = sink;
    b->arg = arg;
    b->messages = json_array();
    b->interval_ev = event_new(base, -1, EV_PERSIST, interval_fire, b);
    b->age_ev = evtimer_new(base, age_fire, b);
    if (!b->messages || !b->interval_ev || !b->age_ev) {
        mcpgw_batcher_free(b);
        return NULL;
    }
    tv_of_ms(&tv, b->o.flush_interval_ms);
    event_add(b->interval_ev, &tv);
    return b;
}

void mcpgw_batcher_free(mcpgw_batcher *b)
{
    if (!b)
        return;
    if (b->interval_ev)
        event_free(b->interval_ev);
    if (b->age_ev)
        event_free(b->age_ev);
    json_decref(b->messages);
    free(b);
}

int mcpgw_batcher_add(mcpgw_batcher *b, json_t *msg)
{
    struct timeval now, age;

    if (!b || !msg || b->stopped)
        return -1;
    gettimeofday(&now, NULL);
    if (json_array_size(b->messages) == 0) {
        struct timeval tv;
        b->first = now;
        tv_of_ms(&tv, b->o.max_batch_age_ms);
        event_add(b->age_ev, &tv);
    }
    if (json_array_append(b->messages, msg) != 0)
        return -1;
    if (json_array_size(b->messages) >= b->o.batch_size) {
        flush(b, "batch_full");
        return 0;
    }
    timersub(&now, &b->first, &age);
    if ((unsigned long)age.tv_sec * 1000 + (unsigned long)age.tv_usec / 1000
        >= b->o.max_batch_age_ms)
        flush(b, "batch_age");
    return 0;
}

void mcpgw_batcher_force_flush(mcpgw_batcher *b)
{
    if (b)
        flush(b, "force");
}

void mcpgw_batcher_clear(mcpgw_batcher *b)
{
    if (!b)
        return;
    json_array_clear(b->messages);
    event_del(b->age_ev);
}

void mcpgw_batcher_stop(mcpgw_batcher *b)
{
    if (!b || b->stopped)
        return;
    b->stopped = 1;
    event_del(b->interval_ev);
    event_del(b->age_ev);
    flush(b, "stop");
}

size_t mcpgw_batcher_count(const mcpgw_batcher *b)
{
    return b ? json_array_size(b->messages) : 0;
}

void mcpgw_batcher_sink_client(json_t *batch, const char *reason, void *client)
{
    (void)reason;
    mcpgw_client_send(client, batch);
}

void mcpgw_batcher_sink_pool(json_t *batch, const char *reason, void *pool)
{
    (void)reason;
    mcpgw_pool_send(pool, batch, NULL);
}
