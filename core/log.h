/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Every line has "level", "event" and "timestamp"; callers add fields as a
 * jansson object. Check mcpgw_log_enabled() before building fields on a hot
 * path, so that a disabled level costs one comparison. Tokens never go into
 * a log line: callers log what a token was (missing, expired, ...), never it.
 */
#ifndef MCPGW_LOG_H
#define MCPGW_LOG_H

#include <jansson.h>

enum {
    MCPGW_LOG_DEBUG = 0,
    MCPGW_LOG_INFO = 1,
    MCPGW_LOG_WARN = 2,
    MCPGW_LOG_ERROR = 3,
    MCPGW_LOG_OFF = 4
};

/* A gateway of several processes tags its lines: a worker's say
 * "worker": N, the supervisor's "supervisor": true. */
enum { MCPGW_LOG_TAG_NONE = 0, MCPGW_LOG_TAG_WORKER, MCPGW_LOG_TAG_SUPERVISOR };

typedef struct mcpgw_log {
    int level;          /* lines below this level are dropped */
    int tag;            /* which process writes: MCPGW_LOG_TAG_* */
    int worker;         /* with MCPGW_LOG_TAG_WORKER */
} mcpgw_log;

/* "debug", "info", "warn"/"warning", "error", "off" -> level, or -1. */
int mcpgw_log_level_from_name(const char *name);
const char *mcpgw_log_level_name(int level);

static inline int mcpgw_log_enabled(const mcpgw_log *log, int level)
{
    return level >= log->level;
}

/* Writes one line. fields may be NULL; it is consumed (decref'd) either way.
 * timestamp may be NULL (the current time is formatted then). */
void mcpgw_log_event(const mcpgw_log *log, int level, const char *event,
                     json_t *fields, const char *timestamp);

#endif
