/*
 * config.c - loads and validates the gateway configuration (config.h):
 * every *.ini file of a directory in lexical order, parsed with inih through
 * our own line reader.
 *
 * inih (as Debian builds it) does not pass line numbers to the handler, so
 * the reader counts lines; inih calls the handler right after the reader has
 * returned the line, so ctx->lineno is the handler's line. The reader also
 * classifies each line exactly as inih will (comment, [section], key=value,
 * indented continuation, syntax error): that is how we learn where sections
 * start (inih does not call the handler for a section line), and how every
 * syntax error is reported, not only the first. Over-long lines and NUL
 * bytes are reported by the reader and handed to inih as blank lines, so
 * inih's line count always equals ours.
 *
 * All errors are collected as "file:line: message" lines; nothing stops at
 * the first one.
 */
#define _GNU_SOURCE     /* asprintf, vasprintf, strndup, getline, explicit_bzero */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <jwt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MCPGW_PLUGIN_DIR
#define MCPGW_PLUGIN_DIR "/usr/local/lib/mcpgw/plugins"
#endif

#define MAX_PAYLOAD_LIMIT 1073741824LL

/* ------------------------------------------------------------ error text */

typedef struct errbuf {
    char *buf;
    size_t len, cap;
    int oom;
} errbuf;

static void errbuf_vadd(errbuf *e, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    size_t need;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        goto fail;
    need = e->len + (e->len ? 1 : 0) + (size_t)n + 1;
    if (need > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        char *grown;
        while (cap < need)
            cap *= 2;
        grown = realloc(e->buf, cap);
        if (!grown)
            goto fail;
        e->buf = grown;
        e->cap = cap;
    }
    if (e->len)
        e->buf[e->len++] = '\n';
    vsnprintf(e->buf + e->len, e->cap - e->len, fmt, ap);
    e->len += (size_t)n;
    return;
fail:
    e->oom = 1;
}

static void errbuf_add(errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errbuf_add(errbuf *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vadd(e, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ parse state */

typedef enum {
    SEC_NONE,       /* before the first [section] of a file */
    SEC_IGNORED,    /* an invalid section, already reported: skip its keys */
    SEC_SERVER,
    SEC_AUTH,
    SEC_HEARTBEAT,
    SEC_LOG,
    SEC_PLUGINS,
    SEC_HANDLER,
    SEC_ENDPOINT,
    SEC_TLS,
    SEC_COMPRESSION,
    SEC_ADMIN,
    SEC_CLUSTER
} section_kind;

typedef enum {
    LINE_BLANK,         /* empty or comment */
    LINE_SECTION,
    LINE_KEY,
    LINE_CONTINUATION,  /* indented line after a key: inih's multi-line value */
    LINE_SYNTAX
} line_kind;

typedef struct parse_ctx {
    mcpgw_config *cfg;
    errbuf *errs;
    const char *file;           /* name used in messages */
    /* the source: a FILE or a string */
    FILE *fp;
    const char *text;
    char *buf;                  /* getline() buffer */
    size_t buf_cap;
    /* per line */
    int lineno;
    line_kind kind;
    int prev_name_set;          /* inih's prev_name is non-empty */
    char *prev_name;            /* for the continuation message */
    int first_syntax_line;
    /* current section */
    section_kind sec;
    char *section;              /* its full name */
    mcpgw_handler_config *handler;
} parse_ctx;

static void line_error(parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_error(parse_ctx *p, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        p->errs->oom = 1;
        return;
    }
    errbuf_add(p->errs, "%s:%d: %s", p->file, p->lineno, msg);
    free(msg);
}

static void bad_value(parse_ctx *p, const char *key, const char *value, const char *expected)
{
    line_error(p, "bad value for [%s] %s: '%s' (expected %s)", p->section, key, value, expected);
}

static char *xstrdup(parse_ctx *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        p->errs->oom = 1;
    return d;
}

static void free_secret(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* Replaces *slot with a copy of value; keeps the old one if out of memory. */
static void set_string(parse_ctx *p, char **slot, const char *value)
{
    char *d = xstrdup(p, value);
    if (!d)
        return;
    free(*slot);
    *slot = d;
}

/* "true"/"yes"/"on"/"1" -> 1, "false"/"no"/"off"/"0" -> 0, else -1. */
static int parse_bool(const char *s)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") || !strcmp(s, "1"))
        return 1;
    if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") || !strcmp(s, "0"))
        return 0;
    return -1;
}

static char *resolve_dir(const char *file, const char *value);

/* Resolves a path relative to the .ini file and reads the whole file
 * (at most max bytes). Reports problems at the current line. */
static char *read_config_file(parse_ctx *p, const char *value, size_t max, size_t *len,
                              char **resolved)
{
    char *path = resolve_dir(p->file, value);
    char *buf = NULL;
    FILE *f = NULL;
    size_t n = 0;

    if (!path) {
        line_error(p, "cannot resolve '%s': %s", value, strerror(errno));
        return NULL;
    }
    f = fopen(path, "rb");
    if (!f) {
        line_error(p, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    buf = malloc(max + 1);
    if (!buf) {
        p->errs->oom = 1;
        goto out;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f) || n > max) {
        line_error(p, "cannot read '%s': %s", path, n > max ? "file too large" : strerror(errno));
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len = n;
out:
    if (f)
        fclose(f);
    if (resolved && buf)
        *resolved = path;
    else
        free(path);
    return buf;
}

/* Sets *slot to the resolved path of a file that must be readable. */
static void set_readable_path(parse_ctx *p, char **slot, const char *value)
{
    size_t len;
    char *path = NULL;
    char *content = read_config_file(p, value, 1 << 20, &len, &path);

    if (!content)
        return;
    explicit_bzero(content, len);
    free(content);
    free(*slot);
    *slot = path;
}

/* A comma/space separated list into a NULL-terminated array. */
static char **parse_list(parse_ctx *p, const char *value)
{
    char *copy = xstrdup(p, value), *save = NULL, *tok;
    char **list;
    size_t n = 0;

    if (!copy)
        return NULL;
    list = calloc(strlen(value) / 2 + 2, sizeof(*list));
    if (!list) {
        p->errs->oom = 1;
        free(copy);
        return NULL;
    }
    for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
        if (!(list[n++] = strdup(tok)))
            p->errs->oom = 1;
    free(copy);
    return list;
}

static void free_list(char **list)
{
    if (!list)
        return;
    for (char **l = list; *l; l++)
        free(*l);
    free(list);
}

/* ------------------------------------------------------------ value parsers */

/* A decimal integer (optional '-') with nothing after it. */
static int parse_ll(const char *s, long long *out)
{
    char *end;
    long long v;

    if (!*s || !(isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))))
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

static int parse_int_range(const char *s, long long min, long long max, long long *out)
{
    long long v;
    if (!parse_ll(s, &v) || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

/* An integer byte count with an optional k/K (KiB) or m/M (MiB) suffix. */
static int parse_size_range(const char *s, long long min, long long max, long long *out)
{
    char tmp[32];
    size_t len = strlen(s);
    long long mult = 1, v;

    if (len == 0 || len >= sizeof tmp)
        return 0;
    memcpy(tmp, s, len + 1);
    switch (tmp[len - 1]) {
    case 'k': case 'K': mult = 1024; break;
    case 'm': case 'M': mult = 1024 * 1024; break;
    default: break;
    }
    if (mult != 1)
        tmp[len - 1] = '\0';
    if (!parse_ll(tmp, &v) || v < 0 || v > max / mult)
        return 0;
    v *= mult;
    if (v < min)
        return 0;
    *out = v;
    return 1;
}

static int has_space_or_ctl(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
            return 1;
    return 0;
}

static int all_chars_in(const char *s, const char *extra)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

/* "host:port" or "[v6]:port"; port 0..65535. */
static int parse_listen(parse_ctx *p, const char *value, char **host, int *port)
{
    const char *host_start, *host_end, *port_str;
    long long v;

    if (value[0] == '[') {
        host_start = value + 1;
        host_end = strchr(host_start, ']');
        if (!host_end || host_end[1] != ':')
            return 0;
        port_str = host_end + 2;
        if (!memchr(host_start, ':', (size_t)(host_end - host_start)))
            return 0;
    } else {
        host_start = value;
        host_end = strchr(value, ':');
        if (!host_end || strchr(host_end + 1, ':'))
            return 0;
        port_str = host_end + 1;
    }
    if (host_end == host_start)
        return 0;
    for (const char *c = host_start; c < host_end; c++)
        if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c) || *c == '[' || *c == ']')
            return 0;
    if (!*port_str || strlen(port_str) > 5)
        return 0;
    for (const char *c = port_str; *c; c++)
        if (!isdigit((unsigned char)*c))
            return 0;
    if (!parse_int_range(port_str, 0, 65535, &v))
        return 0;
    *host = strndup(host_start, (size_t)(host_end - host_start));
    if (!*host) {
        p->errs->oom = 1;
        return -1;
    }
    *port = (int)v;
    return 1;
}

/* Joins base and rel, dropping empty and "." components. */
static char *join_normalized(const char *base, const char *rel)
{
    size_t cap = strlen(base) + strlen(rel) + 3;
    char *out = malloc(cap), *copy = NULL, *save = NULL, *comp;
    size_t len = 0;
    int absolute = base[0] == '/';

    if (!out)
        goto fail;
    if (asprintf(&copy, "%s/%s", base, rel) < 0) {
        copy = NULL;
        goto fail;
    }
    for (comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        if (strcmp(comp, ".") == 0)
            continue;
        if (len || absolute)
            out[len++] = '/';
        memcpy(out + len, comp, strlen(comp));
        len += strlen(comp);
    }
    if (len == 0)
        out[len++] = absolute ? '/' : '.';
    out[len] = '\0';
    free(copy);
    return out;
fail:
    free(copy);
    free(out);
    return NULL;
}

/* value relative to the directory of file (made absolute with the cwd). */
static char *resolve_dir(const char *file, const char *value)
{
    char *dir = NULL, *cwd = NULL, *base = NULL, *out = NULL;
    const char *slash = strrchr(file, '/');

    if (value[0] == '/')
        return join_normalized("/", value);
    if (slash)
        dir = slash == file ? strdup("/") : strndup(file, (size_t)(slash - file));
    else
        dir = strdup(".");
    if (!dir)
        goto done;
    if (dir[0] == '/') {
        base = dir;
        dir = NULL;
    } else {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            goto done;
        base = join_normalized(cwd, dir);
        if (!base)
            goto done;
    }
    out = join_normalized(base, value);
done:
    free(dir);
    free(cwd);
    free(base);
    return out;
}

/* ------------------------------------------------------------ keys */

static void set_server(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_config *cfg = p->cfg;
    long long v;

    if (strcmp(name, "listen") == 0) {
        char *host = NULL;
        int port = 0, r = parse_listen(p, value, &host, &port);
        if (r == 0)
            bad_value(p, name, value, "HOST:PORT or [IPV6]:PORT with a port 0..65535");
        if (r <= 0)
            return;
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
    } else if (strcmp(name, "path") == 0) {
        if (value[0] != '/' || has_space_or_ctl(value))
            bad_value(p, name, value, "a path starting with '/'");
        else
            set_string(p, &cfg->path, value);
    } else if (strcmp(name, "max_payload") == 0) {
        if (!parse_size_range(value, 1, MAX_PAYLOAD_LIMIT, &v))
            bad_value(p, name, value, "bytes 1..1073741824, optionally with suffix k or m");
        else
            cfg->max_payload = (size_t)v;
    } else if (strcmp(name, "shutdown_timeout_ms") == 0) {
        if (!parse_int_range(value, 0, 3600000, &v))
            bad_value(p, name, value, "an integer 0..3600000");
        else
            cfg->shutdown_timeout_ms = (int)v;
    } else if (strcmp(name, "max_header_bytes") == 0) {
        if (!parse_int_range(value, 1024, 1048576, &v))
            bad_value(p, name, value, "an integer 1024..1048576");
        else
            cfg->max_header_bytes = (size_t)v;
    } else if (strcmp(name, "max_outbound_bytes") == 0) {
        if (!parse_size_range(value, 4096, MAX_PAYLOAD_LIMIT, &v))
            bad_value(p, name, value, "bytes 4096..1073741824, optionally with suffix k or m");
        else
            cfg->max_outbound_bytes = (size_t)v;
    } else if (strcmp(name, "handshake_timeout_ms") == 0) {
        if (!parse_int_range(value, 100, 3600000, &v))
            bad_value(p, name, value, "an integer 100..3600000");
        else
            cfg->handshake_timeout_ms = (int)v;
    } else if (strcmp(name, "workers") == 0) {
        if (strcmp(value, "auto") == 0)
            cfg->workers = 0;
        else if (!parse_int_range(value, 1, 64, &v))
            bad_value(p, name, value, "auto or an integer 1..64");
        else
            cfg->workers = (int)v;
    } else if (strcmp(name, "drain_timeout_ms") == 0) {
        if (!parse_int_range(value, 0, 3600000, &v))
            bad_value(p, name, value, "an integer 0..3600000");
        else
            cfg->drain_timeout_ms = (int)v;
    } else if (strcmp(name, "handler_watchdog_ms") == 0) {
        if (!parse_int_range(value, 0, 3600000, &v))
            bad_value(p, name, value, "an integer 0..3600000 (0: off)");
        else
            cfg->handler_watchdog_ms = (int)v;
    } else if (strcmp(name, "max_connections") == 0) {
        if (!parse_int_range(value, 1, 10000000, &v))
            bad_value(p, name, value, "an integer 1..10000000");
        else
            cfg->max_connections = (int)v;
    } else if (strcmp(name, "allowed_origins") == 0) {
        char **list = parse_list(p, value);
        if (list) {
            free_list(cfg->allowed_origins);
            cfg->allowed_origins = list[0] ? list : NULL;
            if (!list[0])
                free(list);
        }
    } else if (strcmp(name, "require_origin") == 0) {
        int b = parse_bool(value);
        if (b < 0)
            bad_value(p, name, value, "true or false");
        else
            cfg->require_origin = b;
    } else if (strcmp(name, "plain_listen") == 0) {
        char *host = NULL;
        int port = 0, r;
        if (!*value) {
            free(cfg->plain_listen_host);
            cfg->plain_listen_host = NULL;
            return;
        }
        r = parse_listen(p, value, &host, &port);
        if (r == 0)
            bad_value(p, name, value, "HOST:PORT or [IPV6]:PORT with a port 0..65535");
        if (r <= 0)
            return;
        free(cfg->plain_listen_host);
        cfg->plain_listen_host = host;
        cfg->plain_listen_port = port;
    } else if (strcmp(name, "rate_limit_per_s") == 0) {
        char *end;
        double d = strtod(value, &end);
        if (!*value || *end || !(d >= 0 && d <= 1e6))
            bad_value(p, name, value, "messages per second, 0 (off) .. 1000000");
        else
            cfg->rate_limit_per_s = d;
    } else if (strcmp(name, "rate_limit_burst") == 0) {
        if (!parse_int_range(value, 0, 1000000, &v))
            bad_value(p, name, value, "an integer 0..1000000");
        else
            cfg->rate_limit_burst = (int)v;
    } else if (strcmp(name, "rate_limit_max_violations") == 0) {
        if (!parse_int_range(value, 1, 1000000, &v))
            bad_value(p, name, value, "an integer 1..1000000");
        else
            cfg->rate_limit_max_violations = (int)v;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_compression(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_pmd_config *c = &p->cfg->compression;
    long long v;
    int b;

    if (strcmp(name, "enabled") == 0 || strcmp(name, "server_no_context_takeover") == 0 ||
        strcmp(name, "client_no_context_takeover") == 0) {
        b = parse_bool(value);
        if (b < 0)
            bad_value(p, name, value, "true or false");
        else if (name[0] == 'e')
            c->enabled = b;
        else if (name[0] == 's')
            c->server_no_context_takeover = b;
        else
            c->client_no_context_takeover = b;
    } else if (strcmp(name, "level") == 0) {
        if (!parse_int_range(value, 0, 9, &v))
            bad_value(p, name, value, "an integer 0..9");
        else
            c->level = (int)v;
    } else if (strcmp(name, "mem_level") == 0) {
        if (!parse_int_range(value, 1, 9, &v))
            bad_value(p, name, value, "an integer 1..9");
        else
            c->mem_level = (int)v;
    } else if (strcmp(name, "threshold") == 0) {
        if (!parse_size_range(value, 0, MAX_PAYLOAD_LIMIT, &v))
            bad_value(p, name, value, "bytes 0..1073741824, optionally with suffix k or m");
        else
            c->threshold = (size_t)v;
    } else if (strcmp(name, "server_max_window_bits") == 0) {
        if (!parse_int_range(value, 9, 15, &v))
            bad_value(p, name, value, "an integer 9..15");
        else
            c->server_max_window_bits = (int)v;
    } else if (strcmp(name, "client_max_window_bits") == 0) {
        if (!parse_int_range(value, 8, 15, &v))
            bad_value(p, name, value, "an integer 8..15");
        else
            c->client_max_window_bits = (int)v;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_claim(parse_ctx *p, const char *name, const char *value, char **claim_slot,
                      char **value_slot);

static void set_admin(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_config *cfg = p->cfg;
    long long v;

    if (strcmp(name, "claim") == 0 || strcmp(name, "value") == 0) {
        if (!*value)
            bad_value(p, name, value, "a non-empty string");
        else
            set_string(p, name[0] == 'c' ? &cfg->admin_claim : &cfg->admin_value, value);
    } else if (strcmp(name, "require_claim") == 0) {
        /* the handlers' spelling of claim + value */
        set_claim(p, name, value, &cfg->admin_claim, &cfg->admin_value);
    } else if (strcmp(name, "max_body_bytes") == 0) {
        if (!parse_size_range(value, 1, MAX_PAYLOAD_LIMIT, &v))
            bad_value(p, name, value, "bytes 1..1073741824, optionally with suffix k or m");
        else
            cfg->admin_max_body_bytes = (size_t)v;
    } else if (strcmp(name, "agent_silence_s") == 0) {
        if (!parse_int_range(value, 0, 86400, &v))
            bad_value(p, name, value, "seconds 0..86400 (0: never)");
        else
            cfg->admin_agent_silence_s = (int)v;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

/* A secret read from the file named by value (a trailing newline dropped)
 * into *slot; a bad one is reported by the file's name, never its text. */
static void set_secret_file(parse_ctx *p, const char *name, const char *value, size_t max,
                            char **slot)
{
    size_t len = 0;
    char *secret = *value ? read_config_file(p, value, max, &len, NULL) : NULL;

    if (!*value)
        bad_value(p, name, value, "a file path");
    if (!secret)
        return;
    while (len && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
        secret[--len] = '\0';
    if (!len || strlen(secret) != len) {
        bad_value(p, name, value, "a file holding a non-empty secret without NUL bytes");
        free_secret(secret);
        return;
    }
    free_secret(*slot);
    *slot = secret;
}

/* redis://HOST:PORT[/DB] (PORT defaults to 6379) or unix:PATH. 0 or -1. */
static int parse_redis_address(mcpgw_config *cfg, const char *v)
{
    const char *hp, *end, *colon, *slash;
    long long port = 6379, db = 0;
    char *host;

    if (strncmp(v, "unix:", 5) == 0) {
        if (v[5] != '/' || strlen(v + 5) > 100)
            return -1;
        if (!(host = strdup(v + 5)))
            return -1;
        free(cfg->cluster_host);
        cfg->cluster_host = host;
        cfg->cluster_unix = 1;
        cfg->cluster_port = 0;
        cfg->cluster_db = 0;
        return 0;
    }
    if (strncmp(v, "redis://", 8) != 0)
        return -1;
    hp = v + 8;
    slash = strchr(hp, '/');
    end = slash ? slash : hp + strlen(hp);
    colon = memchr(hp, ':', (size_t)(end - hp));
    if (strchr(hp, '@'))
        return -1;                  /* credentials go in password_file */
    if (colon) {
        char buf[16];
        size_t n = (size_t)(end - colon - 1);
        if (n == 0 || n >= sizeof(buf))
            return -1;
        memcpy(buf, colon + 1, n);
        buf[n] = '\0';
        if (!parse_int_range(buf, 1, 65535, &port))
            return -1;
    }
    if (slash && slash[1] && !parse_int_range(slash + 1, 0, 1000, &db))
        return -1;
    if ((colon ? colon : end) == hp)
        return -1;
    if (!(host = strndup(hp, (size_t)((colon ? colon : end) - hp))))
        return -1;
    free(cfg->cluster_host);
    cfg->cluster_host = host;
    cfg->cluster_unix = 0;
    cfg->cluster_port = (int)port;
    cfg->cluster_db = (int)db;
    return 0;
}

static void set_cluster(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_config *cfg = p->cfg;
    long long v;

    if (strcmp(name, "redis") == 0) {
        if (parse_redis_address(cfg, value) != 0)
            bad_value(p, name, value, "redis://HOST:PORT[/DB] or unix:/PATH (no password: "
                      "use password_file)");
        else
            set_string(p, &cfg->cluster_redis, value);
    } else if (strcmp(name, "password_file") == 0) {
        set_secret_file(p, name, value, 4096, &cfg->cluster_password);
    } else if (strcmp(name, "node_id") == 0) {
        if (!*value || strlen(value) > 128 || strchr(value, '|') || strchr(value, ' '))
            bad_value(p, name, value, "1..128 characters without '|' or spaces");
        else
            set_string(p, &cfg->cluster_node_id, value);
    } else if (strcmp(name, "key_prefix") == 0) {
        if (strlen(value) > 64)
            bad_value(p, name, value, "at most 64 characters");
        else
            set_string(p, &cfg->cluster_key_prefix, value);
    } else if (strcmp(name, "lease_ms") == 0) {
        if (!parse_int_range(value, 300, 3600000, &v))
            bad_value(p, name, value, "milliseconds 300..3600000");
        else
            cfg->cluster_lease_ms = (int)v;
    } else if (strcmp(name, "on_redis_down") == 0) {
        if (strcmp(value, "local") == 0)
            cfg->cluster_reject_when_down = 0;
        else if (strcmp(value, "reject") == 0)
            cfg->cluster_reject_when_down = 1;
        else
            bad_value(p, name, value, "local or reject");
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_tls(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_config *cfg = p->cfg;

    if (!*value) {
        bad_value(p, name, value, "a PEM file path");
    } else if (strcmp(name, "cert") == 0) {
        set_readable_path(p, &cfg->tls_cert, value);
    } else if (strcmp(name, "key") == 0) {
        set_readable_path(p, &cfg->tls_key, value);
    } else if (strcmp(name, "chain") == 0) {
        set_readable_path(p, &cfg->tls_chain, value);
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_algorithms(parse_ctx *p, const char *name, const char *value)
{
    int algs[MCPGW_MAX_ALGORITHMS];
    int n = 0, ok = 1;
    char *copy = xstrdup(p, value), *save = NULL, *tok;

    if (!copy)
        return;
    for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        jwt_alg_t alg;
        int dup = 0;

        if (strcasecmp(tok, "none") == 0) {
            line_error(p, "algorithm 'none' is never accepted");
            ok = 0;
            continue;
        }
        alg = jwt_str_alg(tok);
        if (alg != JWT_ALG_HS256 && alg != JWT_ALG_HS384 && alg != JWT_ALG_HS512 &&
            alg != JWT_ALG_RS256 && alg != JWT_ALG_RS384 && alg != JWT_ALG_RS512 &&
            alg != JWT_ALG_ES256 && alg != JWT_ALG_ES384) {
            bad_value(p, name, tok, "HS256, HS384, HS512, RS256, RS384, RS512, ES256 or ES384");
            ok = 0;
            continue;
        }
        for (int i = 0; i < n; i++)
            dup |= algs[i] == (int)alg;
        if (!dup && n < MCPGW_MAX_ALGORITHMS)
            algs[n++] = (int)alg;
    }
    if (ok && n == 0) {
        bad_value(p, name, value, "a list of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384");
        ok = 0;
    }
    if (ok) {
        memcpy(p->cfg->algorithms, algs, sizeof algs[0] * (size_t)n);
        p->cfg->n_algorithms = n;
    }
    free(copy);
}

static void set_auth(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_config *cfg = p->cfg;
    long long v;

    if (strcmp(name, "jwt_secret") == 0) {
        char *copy;
        if (!*value) {
            bad_value(p, name, value, "a non-empty secret");
        } else if ((copy = xstrdup(p, value)) != NULL) {
            free_secret(cfg->jwt_secret);
            cfg->jwt_secret = copy;
        }
    } else if (strcmp(name, "jwt_secret_file") == 0) {
        set_secret_file(p, name, value, 65536, &cfg->jwt_secret);
    } else if (strcmp(name, "public_key_file") == 0) {
        size_t len = 0;
        char *pem = *value ? read_config_file(p, value, 65536, &len, NULL) : NULL;
        if (!*value)
            bad_value(p, name, value, "a PEM file path");
        if (pem) {
            if (!strstr(pem, "-----BEGIN PUBLIC KEY-----") &&
                !strstr(pem, "-----BEGIN RSA PUBLIC KEY-----")) {
                bad_value(p, name, value, "a PEM public key (-----BEGIN PUBLIC KEY-----)");
                free(pem);
            } else {
                free(cfg->public_key_pem);
                cfg->public_key_pem = pem;
                cfg->public_key_len = len;
            }
        }
    } else if (strcmp(name, "issuer") == 0) {
        set_string(p, &cfg->issuer, value);
    } else if (strcmp(name, "audience") == 0) {
        set_string(p, &cfg->audience, value);
    } else if (strcmp(name, "algorithms") == 0) {
        set_algorithms(p, name, value);
    } else if (strcmp(name, "max_connections_per_user") == 0) {
        if (!parse_int_range(value, 1, 1000000, &v))
            bad_value(p, name, value, "an integer 1..1000000");
        else
            cfg->max_connections_per_user = (int)v;
    } else if (strcmp(name, "user_claim") == 0) {
        if (!*value)
            bad_value(p, name, value, "a claim name");
        else
            set_string(p, &cfg->user_claim, value);
    } else if (strcmp(name, "leeway_s") == 0) {
        if (!parse_int_range(value, 0, 3600, &v))
            bad_value(p, name, value, "an integer 0..3600");
        else
            cfg->leeway_s = (int)v;
    } else if (strcmp(name, "require_exp") == 0) {
        int b = parse_bool(value);
        if (b < 0)
            bad_value(p, name, value, "true or false");
        else
            cfg->require_exp = b;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_heartbeat(parse_ctx *p, const char *name, const char *value)
{
    long long v;

    if (strcmp(name, "interval_ms") == 0) {
        if (!parse_int_range(value, 100, 86400000, &v))
            bad_value(p, name, value, "an integer 100..86400000");
        else
            p->cfg->heartbeat_interval_ms = (int)v;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_log(parse_ctx *p, const char *name, const char *value)
{
    int level;

    if (strcmp(name, "level") == 0) {
        level = mcpgw_log_level_from_name(value);
        if (level < 0)
            bad_value(p, name, value, "debug, info, warn, error or off");
        else
            p->cfg->log_level = level;
    } else if (strcmp(name, "access") == 0) {
        int b = parse_bool(value);
        if (b < 0)
            bad_value(p, name, value, "true or false");
        else
            p->cfg->log_access = b;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_plugins(parse_ctx *p, const char *name, const char *value)
{
    char *dir;

    if (strcmp(name, "dir") == 0) {
        if (!*value) {
            bad_value(p, name, value, "a directory path");
            return;
        }
        dir = resolve_dir(p->file, value);
        if (!dir) {
            line_error(p, "cannot resolve [plugins] dir '%s': %s", value, strerror(errno));
            return;
        }
        free(p->cfg->plugins_dir);
        p->cfg->plugins_dir = dir;
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
    }
}

static void set_claim(parse_ctx *p, const char *name, const char *value, char **claim_slot,
                      char **value_slot)
{
    const char *colon = strchr(value, ':');
    char *claim;

    if (!colon || colon == value || !colon[1]) {
        bad_value(p, name, value, "CLAIM:VALUE");
        return;
    }
    claim = strndup(value, (size_t)(colon - value));
    if (!claim) {
        p->errs->oom = 1;
        return;
    }
    free(*claim_slot);
    *claim_slot = claim;
    set_string(p, value_slot, colon + 1);
}

/* [handler.TYPE] keys the gateway keeps for itself (policy.h). */
static void set_handler_policy(parse_ctx *p, mcpgw_handler_config *h, const char *name,
                               const char *value)
{
    long long v;

    if (strcmp(name, "require_claim") == 0) {
        set_claim(p, name, value, &h->claim_name, &h->claim_value);
    } else if (strcmp(name, "max_message_bytes") == 0) {
        if (!parse_size_range(value, 1, MAX_PAYLOAD_LIMIT, &v))
            bad_value(p, name, value, "bytes 1..1073741824, optionally with suffix k or m");
        else
            h->max_message_bytes = (size_t)v;
    } else {
        char *end;
        double r = strtod(value, &end);
        if (!*value || *end || !(r >= 0 && r <= 1e6))
            bad_value(p, name, value, "messages per second 0..1000000 (0: no limit)");
        else
            h->rate_per_user = r;
    }
}

static void set_handler(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_handler_config *h = p->handler;
    mcpgw_kv *kv, **tail;
    char *file;

    if (!*name) {
        line_error(p, "empty key in [%s]", p->section);
        return;
    }
    if (!h->is_endpoint && (strcmp(name, "require_claim") == 0 ||
                            strcmp(name, "max_message_bytes") == 0 ||
                            strcmp(name, "broadcast_per_s") == 0)) {
        set_handler_policy(p, h, name, value);
        return;
    }
    if (strcmp(name, "plugin") == 0) {
        if (!all_chars_in(value, "_-")) {
            bad_value(p, name, value, "a plugin name of [A-Za-z0-9_-]");
            return;
        }
        file = xstrdup(p, p->file);
        if (!file)
            return;
        set_string(p, &h->plugin, value);
        free(h->file);
        h->file = file;
        h->line = p->lineno;
        return;
    }
    for (tail = &h->options; *tail; tail = &(*tail)->next)
        if (strcmp((*tail)->key, name) == 0)
            break;
    if (*tail) {
        kv = *tail;
        file = xstrdup(p, p->file);
        if (!file)
            return;
        set_string(p, &kv->value, value);
        free(kv->file);
        kv->file = file;
        kv->line = p->lineno;
        return;
    }
    kv = calloc(1, sizeof *kv);
    if (!kv || !(kv->key = strdup(name)) || !(kv->value = strdup(value)) ||
        !(kv->file = strdup(p->file))) {
        p->errs->oom = 1;
        goto fail;
    }
    kv->line = p->lineno;
    *tail = kv;
    return;
fail:
    if (kv) {
        free(kv->key);
        free(kv->value);
        free(kv->file);
        free(kv);
    }
}

/* [endpoint.NAME]: the endpoint's own keys; every other key (plugin, the
 * plugin's keys) is kept like a handler section's. */
static void set_endpoint(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_handler_config *h = p->handler;

    if (strcmp(name, "path") == 0) {
        if (value[0] != '/' || has_space_or_ctl(value) || strchr(value, '?') ||
            strchr(value, '#'))
            bad_value(p, name, value, "a path starting with '/', without query or fragment");
        else
            set_string(p, &h->path, value);
    } else if (strcmp(name, "protocol") == 0) {
        if (strcmp(value, "jsonrpc") == 0)
            h->protocol = MCPGW_ENDPOINT_JSONRPC;
        else if (strcmp(value, "mcpgw") == 0)
            h->protocol = MCPGW_ENDPOINT_MCPGW;
        else if (strcmp(value, "echo") == 0)
            h->protocol = MCPGW_ENDPOINT_ECHO;
        else
            bad_value(p, name, value, "jsonrpc, mcpgw or echo");
    } else if (strcmp(name, "subprotocol") == 0) {
        /* an RFC 7230 token, as Sec-WebSocket-Protocol needs */
        if (!*value || !all_chars_in(value, "!#$%&'*+-.^_`|~"))
            bad_value(p, name, value, "a token such as mcp");
        else
            set_string(p, &h->subprotocol, value);
    } else if (strcmp(name, "require_claim") == 0) {
        set_claim(p, name, value, &h->claim_name, &h->claim_value);
    } else if (strcmp(name, "http") == 0) {
        int b = parse_bool(value);
        if (b < 0)
            bad_value(p, name, value, "on or off");
        else
            h->http = b;
    } else if (strcmp(name, "http_response") == 0) {
        if (strcmp(value, "auto") == 0)
            h->http_response = MCPGW_HTTP_RESPONSE_AUTO;
        else if (strcmp(value, "json") == 0)
            h->http_response = MCPGW_HTTP_RESPONSE_JSON;
        else if (strcmp(value, "sse") == 0)
            h->http_response = MCPGW_HTTP_RESPONSE_SSE;
        else
            bad_value(p, name, value, "auto, json or sse");
    } else if (strcmp(name, "session_idle_ms") == 0) {
        long long v;
        if (!parse_int_range(value, 1000, 86400000, &v))
            bad_value(p, name, value, "an integer 1000..86400000");
        else
            h->session_idle_ms = (int)v;
    } else if (strcmp(name, "replay_bytes") == 0) {
        long long v;
        if (!parse_size_range(value, 0, 64 * 1048576, &v))
            bad_value(p, name, value, "bytes 0..67108864, optionally with suffix k or m");
        else
            h->replay_bytes = (size_t)v;
    } else {
        set_handler(p, name, value);
    }
}

/* The inih handler: called right after our reader returned the line. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;

    (void)section;      /* inih truncates it; we track the full name */
    if (p->kind == LINE_CONTINUATION) {
        if (p->sec == SEC_IGNORED)
            return 1;
        line_error(p, "indented line continues the value of '%s'; multi-line values "
                   "are not supported (remove the indentation)",
                   p->prev_name ? p->prev_name : name);
        return 1;
    }
    switch (p->sec) {
    case SEC_NONE:
        line_error(p, "key '%s' outside any section", name);
        break;
    case SEC_IGNORED:
        break;
    case SEC_SERVER:
        set_server(p, name, value);
        break;
    case SEC_AUTH:
        set_auth(p, name, value);
        break;
    case SEC_HEARTBEAT:
        set_heartbeat(p, name, value);
        break;
    case SEC_LOG:
        set_log(p, name, value);
        break;
    case SEC_PLUGINS:
        set_plugins(p, name, value);
        break;
    case SEC_HANDLER:
        set_handler(p, name, value);
        break;
    case SEC_ENDPOINT:
        set_endpoint(p, name, value);
        break;
    case SEC_TLS:
        set_tls(p, name, value);
        break;
    case SEC_COMPRESSION:
        set_compression(p, name, value);
        break;
    case SEC_ADMIN:
        set_admin(p, name, value);
        break;
    case SEC_CLUSTER:
        set_cluster(p, name, value);
        break;
    }
    return 1;   /* errors are collected here, never reported through inih */
}

/* ------------------------------------------------------------ sections */

static mcpgw_handler_config *handler_for(parse_ctx *p, const char *type, int endpoint)
{
    mcpgw_handler_config *h, **tail;

    for (tail = endpoint ? &p->cfg->endpoints : &p->cfg->handlers; *tail; tail = &(*tail)->next)
        if (strcmp((*tail)->type, type) == 0)
            return *tail;
    h = calloc(1, sizeof *h);
    if (!h || !(h->type = strdup(type)) || !(h->file = strdup(p->file)))
        goto fail;
    h->is_endpoint = endpoint;
    h->owner = p->cfg;
    h->protocol = MCPGW_ENDPOINT_JSONRPC;
    h->http = 1;
    h->session_idle_ms = 600000;
    h->replay_bytes = 262144;
    h->line = p->lineno;    /* the first header, until a plugin key is seen */
    *tail = h;
    return h;
fail:
    p->errs->oom = 1;
    if (h) {
        free(h->type);
        free(h);
    }
    return NULL;
}

static void enter_section(parse_ctx *p, const char *name, size_t len)
{
    static const struct { const char *name; section_kind kind; } fixed[] = {
        { "server", SEC_SERVER }, { "auth", SEC_AUTH }, { "heartbeat", SEC_HEARTBEAT },
        { "log", SEC_LOG }, { "plugins", SEC_PLUGINS }, { "tls", SEC_TLS },
        { "compression", SEC_COMPRESSION }, { "admin", SEC_ADMIN },
        { "cluster", SEC_CLUSTER },
    };
    char *copy = strndup(name, len);

    free(p->section);
    p->section = copy;
    p->sec = SEC_IGNORED;
    p->handler = NULL;
    if (!copy) {
        p->errs->oom = 1;
        return;
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (strcmp(copy, fixed[i].name) == 0) {
            p->sec = fixed[i].kind;
            return;
        }
    }
    if (strncmp(copy, "handler.", 8) == 0) {
        if (!all_chars_in(copy + 8, "_.:-")) {
            line_error(p, "bad handler type in [%s] (expected [handler.TYPE] with TYPE of "
                       "[A-Za-z0-9_.:-])", copy);
            return;
        }
        p->handler = handler_for(p, copy + 8, 0);
        if (p->handler)
            p->sec = SEC_HANDLER;
        return;
    }
    if (strncmp(copy, "endpoint.", 9) == 0) {
        if (!copy[9] || !all_chars_in(copy + 9, "_-")) {
            line_error(p, "bad endpoint name in [%s] (expected [endpoint.NAME] with NAME of "
                       "[A-Za-z0-9_-])", copy);
            return;
        }
        p->handler = handler_for(p, copy + 9, 1);
        if (p->handler)
            p->sec = SEC_ENDPOINT;
        return;
    }
    line_error(p, "unknown section [%s]", copy);
}

/* ------------------------------------------------------------ the reader */

/* Like inih's find_chars_or_comment: the first of chars, or an inline ';'
 * comment (one preceded by whitespace), or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    int was_space = 0;

    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Classifies line (NUL-terminated, no newline) the way inih will parse it. */
static void classify(parse_ctx *p, const char *line)
{
    const char *start = line, *end;

    if (p->lineno == 1 && (unsigned char)start[0] == 0xEF &&
        (unsigned char)start[1] == 0xBB && (unsigned char)start[2] == 0xBF)
        start += 3;
    while (*start && isspace((unsigned char)*start))
        start++;
    if (*start == '\0' || *start == ';' || *start == '#') {
        p->kind = LINE_BLANK;
    } else if (p->prev_name_set && start > line) {
        p->kind = LINE_CONTINUATION;
    } else if (*start == '[') {
        end = find_chars_or_comment(start + 1, "]");
        if (*end == ']') {
            p->kind = LINE_SECTION;
            p->prev_name_set = 0;
            enter_section(p, start + 1, (size_t)(end - start - 1));
        } else {
            p->kind = LINE_SYNTAX;
            line_error(p, "syntax error (section header without ']')");
        }
    } else {
        end = find_chars_or_comment(start, "=:");
        if (*end == '=' || *end == ':') {
            const char *name_end = end;
            p->kind = LINE_KEY;
            while (name_end > start && isspace((unsigned char)name_end[-1]))
                name_end--;
            p->prev_name_set = name_end > start;
            free(p->prev_name);
            p->prev_name = strndup(start, (size_t)(name_end - start));
        } else {
            p->kind = LINE_SYNTAX;
            line_error(p, "syntax error (expected [section], key = value or a comment)");
        }
    }
    if (p->kind == LINE_SYNTAX && !p->first_syntax_line)
        p->first_syntax_line = p->lineno;
}

/* Next raw line of the source into *line / *len (newline included). */
static int next_line(parse_ctx *p, const char **line, size_t *len)
{
    if (p->fp) {
        ssize_t n = getline(&p->buf, &p->buf_cap, p->fp);
        if (n < 0)
            return 0;
        *line = p->buf;
        *len = (size_t)n;
        return 1;
    }
    if (!*p->text)
        return 0;
    {
        const char *nl = strchr(p->text, '\n');
        *line = p->text;
        *len = nl ? (size_t)(nl - p->text) + 1 : strlen(p->text);
        p->text += *len;
    }
    return 1;
}

/* inih's reader: fgets-like, one whole line per call, counted. */
static char *reader(char *str, int num, void *stream)
{
    parse_ctx *p = stream;
    const char *line;
    size_t len;

    if (num < 3 || !next_line(p, &line, &len))
        return NULL;
    p->lineno++;
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    if (memchr(line, '\0', len)) {
        line_error(p, "NUL byte in line");
        len = 0;
    } else if (len > (size_t)num - 2) {
        line_error(p, "line too long (the limit is %d characters)", num - 2);
        len = 0;
    }
    memcpy(str, line, len);
    str[len] = '\0';
    classify(p, str);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

/* Parses one source (p->fp or p->text) into p->cfg. */
static void parse_source(parse_ctx *p)
{
    int r;

    p->lineno = 0;
    p->kind = LINE_BLANK;
    p->prev_name_set = 0;
    p->first_syntax_line = 0;
    p->sec = SEC_NONE;
    p->handler = NULL;
    r = ini_parse_stream(reader, p, on_key, p);
    if (r > 0 && r != p->first_syntax_line) {
        /* A syntax error classify() did not foresee: report inih's word. */
        errbuf_add(p->errs, "%s:%d: syntax error", p->file, r);
    } else if (r == -2) {
        p->errs->oom = 1;
    }
    free(p->section);
    p->section = NULL;
    free(p->prev_name);
    p->prev_name = NULL;
}

/* ------------------------------------------------------------ load */

static mcpgw_config *config_new(void)
{
    mcpgw_config *cfg = calloc(1, sizeof *cfg);

    if (!cfg)
        return NULL;
    cfg->refs = 1;
    cfg->listen_port = 8080;
    cfg->max_payload = 1048576;
    cfg->shutdown_timeout_ms = 10000;
    cfg->max_header_bytes = 8192;
    cfg->max_outbound_bytes = 4194304;
    cfg->handshake_timeout_ms = 10000;
    cfg->max_connections = 10000;
    cfg->workers = 0;            /* auto: one per online CPU */
    cfg->handler_watchdog_ms = 5000;
    cfg->drain_timeout_ms = 30000;
    cfg->rate_limit_max_violations = 20;
    cfg->admin_max_body_bytes = 1048576;
    cfg->admin_agent_silence_s = 60;
    cfg->cluster_lease_ms = 15000;
    /* The reference server's perMessageDeflate settings. */
    cfg->compression.enabled = 1;
    cfg->compression.level = 6;
    cfg->compression.mem_level = 8;
    cfg->compression.threshold = 1024;
    cfg->compression.server_max_window_bits = 10;
    cfg->compression.client_max_window_bits = 15;
    cfg->compression.server_no_context_takeover = 1;
    cfg->compression.client_no_context_takeover = 1;
    cfg->algorithms[0] = JWT_ALG_HS256;
    cfg->n_algorithms = 1;
    cfg->max_connections_per_user = 5;
    cfg->leeway_s = 30;
    cfg->heartbeat_interval_ms = 30000;
    cfg->log_level = MCPGW_LOG_INFO;
    if (!(cfg->listen_host = strdup("127.0.0.1")) || !(cfg->path = strdup("/ws")) ||
        !(cfg->user_claim = strdup("id")) || !(cfg->admin_claim = strdup("role")) ||
        !(cfg->admin_value = strdup("admin")) || !(cfg->plugins_dir = strdup(MCPGW_PLUGIN_DIR)))
        goto fail;
    return cfg;
fail:
    mcpgw_config_free(cfg);
    return NULL;
}

/* Paths the plain HTTP endpoints answer (http_api.c): an endpoint may not
 * take one. */
static const char *const reserved_paths[] = {
    "/healthz", "/readyz", "/metrics", "/status", "/api", NULL
};

static int path_reserved(const char *path)
{
    for (const char *const *r = reserved_paths; *r; r++) {
        size_t n = strlen(*r);
        if (strncmp(path, *r, n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return 1;
    }
    return 0;
}

static void check_endpoints(mcpgw_config *cfg, errbuf *errs)
{
    int n = 0;

    for (mcpgw_handler_config *h = cfg->endpoints; h; h = h->next) {
        if (++n == MCPGW_CONFIG_MAX_ENDPOINTS + 1)
            errbuf_add(errs, "%s:%d: [endpoint.%s]: at most %d endpoints", h->file, h->line,
                       h->type, MCPGW_CONFIG_MAX_ENDPOINTS);
        if (strlen(h->type) > MCPGW_CONFIG_MAX_ENDPOINT_NAME)
            errbuf_add(errs, "%s:%d: [endpoint.%s]: the name is longer than %d characters",
                       h->file, h->line, h->type, MCPGW_CONFIG_MAX_ENDPOINT_NAME);
        if (!h->path) {
            errbuf_add(errs, "%s:%d: missing key 'path' in [endpoint.%s]", h->file, h->line,
                       h->type);
            continue;
        }
        if (h->protocol == MCPGW_ENDPOINT_JSONRPC && !h->plugin)
            errbuf_add(errs, "%s:%d: missing key 'plugin' in [endpoint.%s] (a jsonrpc "
                       "endpoint hands its messages to a plugin)", h->file, h->line, h->type);
        if (h->protocol == MCPGW_ENDPOINT_ECHO && (h->plugin || h->options))
            errbuf_add(errs, "%s:%d: [endpoint.%s] speaks protocol echo: it sends every "
                       "message back, so it takes no plugin and no plugin keys "
                       "(only path, protocol, subprotocol, require_claim)",
                       h->file, h->line, h->type);
        if (h->protocol == MCPGW_ENDPOINT_MCPGW && (h->plugin || h->options))
            errbuf_add(errs, "%s:%d: [endpoint.%s] speaks protocol mcpgw: its messages go "
                       "to the [handler.*] table, so it takes no plugin and no plugin keys "
                       "(only path, protocol, subprotocol, require_claim)",
                       h->file, h->line, h->type);
        if (strcmp(h->path, cfg->path) == 0)
            errbuf_add(errs, "%s:%d: [endpoint.%s] path %s is already [server] path",
                       h->file, h->line, h->type, h->path);
        if (path_reserved(h->path))
            errbuf_add(errs, "%s:%d: [endpoint.%s] path %s is taken by the gateway's own "
                       "HTTP endpoints", h->file, h->line, h->type, h->path);
        for (mcpgw_handler_config *o = cfg->endpoints; o != h; o = o->next)
            if (o->path && strcmp(o->path, h->path) == 0)
                errbuf_add(errs, "%s:%d: [endpoint.%s] path %s is already used by "
                           "[endpoint.%s]", h->file, h->line, h->type, h->path, o->type);
    }
}

/* Environment, final validation, and the result. */
/* MCPGW_JWT_SECRET, once mcpgw_config_scrub_env() took it out of the
 * environment (reloads still see it; nothing the gateway starts does). */
static char *env_secret;

void mcpgw_config_scrub_env(void)
{
    char *v = getenv("MCPGW_JWT_SECRET");

    if (!v || env_secret)
        return;
    env_secret = strdup(v);
    /* the bytes too: /proc/PID/environ shows the original block */
    memset(v, 0, strlen(v));
    unsetenv("MCPGW_JWT_SECRET");
}

const char *mcpgw_config_env_secret(void)
{
    return env_secret;
}

static mcpgw_config *finish(mcpgw_config *cfg, errbuf *errs, const char *name, char **errors)
{
    const char *secret = env_secret ? env_secret : getenv("MCPGW_JWT_SECRET");

    if (cfg) {
        if (secret && *secret) {
            char *copy = strdup(secret);
            if (copy) {
                free_secret(cfg->jwt_secret);
                cfg->jwt_secret = copy;
            } else {
                errs->oom = 1;
            }
        }
        if (cfg->n_algorithms == 0)
            errbuf_add(errs, "%s: [auth] algorithms: no algorithm configured", name);
        for (int i = 0; i < cfg->n_algorithms; i++)
            if (cfg->algorithms[i] >= JWT_ALG_RS256 && !cfg->public_key_pem) {
                errbuf_add(errs, "%s: [auth] algorithms lists %s but public_key_file is not set",
                           name, jwt_alg_str((jwt_alg_t)cfg->algorithms[i]));
                break;
            }
        if ((cfg->cluster_password || cfg->cluster_node_id || cfg->cluster_key_prefix) &&
            !cfg->cluster_redis)
            errbuf_add(errs, "%s: [cluster] needs redis = redis://HOST:PORT[/DB] or unix:PATH",
                       name);
        if (cfg->cluster_redis && !cfg->cluster_key_prefix &&
            !(cfg->cluster_key_prefix = strdup("mcpgw:")))
            errs->oom = 1;
        if (cfg->cluster_redis && !cfg->cluster_node_id) {
            char id[300], host[256];
            if (gethostname(host, sizeof(host)) != 0)
                snprintf(host, sizeof(host), "%s", cfg->listen_host);
            host[sizeof(host) - 1] = '\0';
            snprintf(id, sizeof(id), "%.120s:%d", host, cfg->listen_port);
            if (!(cfg->cluster_node_id = strdup(id)))
                errs->oom = 1;
        }
        if (!cfg->tls_cert != !cfg->tls_key)
            errbuf_add(errs, "%s: [tls] needs both cert and key", name);
        if (cfg->tls_chain && !cfg->tls_cert)
            errbuf_add(errs, "%s: [tls] chain needs cert and key", name);
        for (mcpgw_handler_config *h = cfg->handlers; h; h = h->next) {
            if (!h->plugin)
                errbuf_add(errs, "%s:%d: missing key 'plugin' in [handler.%s]",
                           h->file, h->line, h->type);
            if (strcmp(h->type, "auth") == 0)
                errbuf_add(errs, "%s:%d: [handler.auth]: the message type auth is the "
                           "gateway's own (token refresh)", h->file, h->line);
        }
        check_endpoints(cfg, errs);
    }
    if (errs->oom) {
        free(errs->buf);
        errs->buf = strdup("out of memory");
        errs->len = errs->buf ? strlen(errs->buf) : 0;
    }
    if (errs->len || errs->oom || !cfg) {
        mcpgw_config_free(cfg);
        *errors = errs->buf;
        return NULL;
    }
    free(errs->buf);
    *errors = NULL;
    return cfg;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_ini_name(const char *name)
{
    size_t len = strlen(name);
    return name[0] != '.' && len > 4 && strcmp(name + len - 4, ".ini") == 0;
}

mcpgw_config *mcpgw_config_load(const char *dir, char **errors)
{
    errbuf errs = { 0 };
    mcpgw_config *cfg = NULL;
    DIR *d = NULL;
    struct dirent *de;
    char **paths = NULL;
    size_t n = 0, cap = 0;
    size_t dlen = strlen(dir);
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";

    d = opendir(dir);
    if (!d) {
        errbuf_add(&errs, "%s: cannot open directory: %s", dir, strerror(errno));
        goto done;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        char *path;

        if (!is_ini_name(de->d_name))
            continue;
        if (asprintf(&path, "%s%s%s", dir, sep, de->d_name) < 0) {
            errs.oom = 1;
            goto done;
        }
        if (stat(path, &st) != 0) {
            errbuf_add(&errs, "%s: cannot stat: %s", path, strerror(errno));
            free(path);
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **grown = realloc(paths, ncap * sizeof *paths);
            if (!grown) {
                free(path);
                errs.oom = 1;
                goto done;
            }
            paths = grown;
            cap = ncap;
        }
        paths[n++] = path;
    }
    if (n == 0) {
        errbuf_add(&errs, "%s: no *.ini files", dir);
        goto done;
    }
    qsort(paths, n, sizeof *paths, cmp_names);
    cfg = config_new();
    if (!cfg) {
        errs.oom = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        parse_ctx p = { .cfg = cfg, .errs = &errs, .file = paths[i] };

        p.fp = fopen(paths[i], "r");
        if (!p.fp) {
            errbuf_add(&errs, "%s: cannot open: %s", paths[i], strerror(errno));
            continue;
        }
        parse_source(&p);
        if (ferror(p.fp))
            errbuf_add(&errs, "%s: read error", paths[i]);
        fclose(p.fp);
        free(p.buf);
    }
done:
    if (d)
        closedir(d);
    cfg = finish(cfg, &errs, dir, errors);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    return cfg;
}

mcpgw_config *mcpgw_config_load_string(const char *name, const char *text, char **errors)
{
    errbuf errs = { 0 };
    mcpgw_config *cfg = config_new();
    parse_ctx p = { .cfg = cfg, .errs = &errs, .file = name, .text = text };

    if (!cfg)
        errs.oom = 1;
    else
        parse_source(&p);
    return finish(cfg, &errs, name, errors);
}

static void free_kvs(mcpgw_kv *kv)
{
    while (kv) {
        mcpgw_kv *next = kv->next;
        free(kv->key);
        free(kv->value);
        free(kv->file);
        free(kv);
        kv = next;
    }
}

static void free_sections(mcpgw_handler_config *h)
{
    mcpgw_handler_config *next;

    for (; h; h = next) {
        next = h->next;
        free(h->type);
        free(h->plugin);
        free(h->file);
        free_kvs(h->options);
        free(h->path);
        free(h->subprotocol);
        free(h->claim_name);
        free(h->claim_value);
        free(h);
    }
}

mcpgw_config *mcpgw_config_ref(mcpgw_config *cfg)
{
    if (cfg)
        cfg->refs++;
    return cfg;
}

void mcpgw_config_free(mcpgw_config *cfg)
{
    if (!cfg || --cfg->refs > 0)
        return;
    free(cfg->listen_host);
    free(cfg->path);
    free_secret(cfg->jwt_secret);
    free(cfg->user_claim);
    free(cfg->plugins_dir);
    free_list(cfg->allowed_origins);
    free(cfg->plain_listen_host);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_chain);
    free(cfg->public_key_pem);
    free(cfg->issuer);
    free(cfg->audience);
    free(cfg->admin_claim);
    free(cfg->admin_value);
    free(cfg->cluster_redis);
    free(cfg->cluster_host);
    free_secret(cfg->cluster_password);
    free(cfg->cluster_node_id);
    free(cfg->cluster_key_prefix);
    free_sections(cfg->handlers);
    free_sections(cfg->endpoints);
    free(cfg);
}

const mcpgw_handler_config *mcpgw_config_endpoint(const mcpgw_config *cfg, const char *path,
                                                  size_t path_len)
{
    if (!cfg)
        return NULL;
    for (const mcpgw_handler_config *h = cfg->endpoints; h; h = h->next)
        if (h->path && strlen(h->path) == path_len && memcmp(h->path, path, path_len) == 0)
            return h;
    return NULL;
}

const mcpgw_handler_config *mcpgw_config_handler(const mcpgw_config *cfg, const char *type)
{
    if (!cfg || !type)
        return NULL;
    for (const mcpgw_handler_config *h = cfg->handlers; h; h = h->next)
        if (strcmp(h->type, type) == 0)
            return h;
    return NULL;
}

int mcpgw_config_needs_secret(const mcpgw_config *cfg)
{
    for (int i = 0; i < cfg->n_algorithms; i++)
        if (cfg->algorithms[i] >= JWT_ALG_HS256 && cfg->algorithms[i] <= JWT_ALG_HS512)
            return 1;
    return 0;
}
