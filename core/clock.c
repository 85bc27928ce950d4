/*
 * clock.c - per-iteration cached ISO 8601 timestamps (see clock.h).
 */
#include <stdio.h>
#include <string.h>
#include <event2/event.h>
#include "clock.h"

void mcpgw_format_iso8601(const struct timeval *tv, char *out, size_t cap)
{
    struct tm tm;
    time_t secs = tv->tv_sec;

    gmtime_r(&secs, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (long)(tv->tv_usec / 1000));
}

void mcpgw_clock_init(mcpgw_clock *c, struct event_base *base)
{
    memset(c, 0, sizeof(*c));
    c->base = base;
}

static void clock_now_tv(mcpgw_clock *c, struct timeval *tv)
{
    if (!c->base || event_base_gettimeofday_cached(c->base, tv) != 0)
        gettimeofday(tv, NULL);
}

const char *mcpgw_clock_iso(mcpgw_clock *c)
{
    struct timeval tv;

    clock_now_tv(c, &tv);
    /* Never step back: the loop's cached time can lag a fresh reading. */
    if (c->iso[0] != '\0' &&
        (tv.tv_sec < c->formatted_tv.tv_sec ||
         (tv.tv_sec == c->formatted_tv.tv_sec && tv.tv_usec < c->formatted_tv.tv_usec)))
        return c->iso;
    if (c->iso[0] == '\0' || tv.tv_sec != c->formatted_tv.tv_sec ||
        tv.tv_usec / 1000 != c->formatted_tv.tv_usec / 1000) {
        mcpgw_format_iso8601(&tv, c->iso, sizeof(c->iso));
        c->formatted_tv = tv;
    }
    return c->iso;
}

time_t mcpgw_clock_now(mcpgw_clock *c)
{
    struct timeval tv;

    clock_now_tv(c, &tv);
    return tv.tv_sec;
}

double mcpgw_clock_seconds(mcpgw_clock *c)
{
    struct timeval tv;

    clock_now_tv(c, &tv);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
