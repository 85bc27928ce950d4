/*
 * clock.h - the loop's notion of "now": an ISO 8601 UTC timestamp with
 * milliseconds, formatted at most once per event-loop iteration.
 *
 * libevent caches the time at the start of each loop iteration
 * (event_base_gettimeofday_cached); the string is re-formatted only when that
 * cached time changes, so every message of one iteration shares it.
 */
#ifndef MCPGW_CLOCK_H
#define MCPGW_CLOCK_H

#include <sys/time.h>
#include <time.h>

struct event_base;

typedef struct mcpgw_clock {
    struct event_base *base;
    struct timeval formatted_tv;    /* the time iso[] shows */
    char iso[32];                   /* "2026-11-25T16:00:00.123Z" */
} mcpgw_clock;

void mcpgw_clock_init(mcpgw_clock *c, struct event_base *base);
/* The timestamp of the current loop iteration; valid until the next call. */
const char *mcpgw_clock_iso(mcpgw_clock *c);
/* Seconds since the epoch, as of this loop iteration. */
time_t mcpgw_clock_now(mcpgw_clock *c);
/* The same with microseconds, as a double (for rate limits). */
double mcpgw_clock_seconds(mcpgw_clock *c);
/* Formats tv into out (>= 25 bytes). */
void mcpgw_format_iso8601(const struct timeval *tv, char *out, size_t cap);

#endif
