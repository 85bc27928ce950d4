/*
 * log.c - structured logging: level names and the one-JSON-object-per-line
 * writer behind mcpgw_log_event(). Each line goes out with a single write(2)
 * (looping only on a short write), so lines from several threads do not
 * interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };

int mcpgw_log_level_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return MCPGW_LOG_WARN;
    return -1;
}

const char *mcpgw_log_level_name(int level)
{
    if (level < MCPGW_LOG_DEBUG || level > MCPGW_LOG_OFF)
        return "unknown";
    return level_names[level];
}

/* "2026-11-25T16:00:00.123Z" into buf (at least 32 bytes). */
static void format_now(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm)) {
        snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void mcpgw_log_event(const mcpgw_log *log, int level, const char *event,
                     json_t *fields, const char *timestamp)
{
    json_t *line = NULL;
    char *text = NULL;
    char now[40];
    const char *key;
    json_t *value;
    size_t len;
    int min_level = log ? log->level : MCPGW_LOG_INFO;

    if (level < min_level || level >= MCPGW_LOG_OFF)
        goto done;
    line = json_object();
    if (!line)
        goto done;
    json_object_set_new(line, "level", json_string(mcpgw_log_level_name(level)));
    json_object_set_new(line, "event", json_string(event ? event : ""));
    if (json_is_object(fields)) {
        json_object_foreach(fields, key, value) {
            if (strcmp(key, "level") == 0 || strcmp(key, "event") == 0)
                continue;           /* reserved: never let a field replace them */
            json_object_set(line, key, value);
        }
    }
    if (log && log->tag == MCPGW_LOG_TAG_WORKER && !json_object_get(line, "worker"))
        json_object_set_new(line, "worker", json_integer(log->worker));
    else if (log && log->tag == MCPGW_LOG_TAG_SUPERVISOR)
        json_object_set_new(line, "supervisor", json_true());
    if (!json_object_get(line, "timestamp")) {
        if (!timestamp) {
            format_now(now, sizeof now);
            timestamp = now;
        }
        json_object_set_new(line, "timestamp", json_string(timestamp));
    }
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto done;
    len = strlen(text);
    /* json_dumps allocated exactly len + 1; make room for the newline. */
    {
        char *grown = realloc(text, len + 2);
        if (!grown)
            goto done;
        text = grown;
    }
    text[len] = '\n';
    text[len + 1] = '\0';
    write_all(STDERR_FILENO, text, len + 1);
done:
    free(text);
    json_decref(line);
    json_decref(fields);
}
