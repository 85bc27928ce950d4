/*
 * config_keys.c - the table of configuration keys (config.h) and what
 * goes with it: how each key's value is parsed into mcpgw_config, its
 * default, how mcpgw -T shows it (mcpgw_config_dump).
 *
 * One row per key, as nginx keeps its directives: section, key, type,
 * range, default, whether a change needs a restart, one line of doc, the
 * "(expected ...)" text of a bad value, and where the value goes. Generic
 * setters handle the types (an int at an offset, a size, a bool, ...);
 * the few keys with their own syntax (listen, algorithms, redis, the
 * secret files) have their own. tests/unit/test_config_keys.c holds the
 * man page mcpgw.conf(5) to this table.
 */
#define _GNU_SOURCE     /* asprintf, strndup, explicit_bzero */
#include "config_parse.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef MCPGW_PLUGIN_DIR
#define MCPGW_PLUGIN_DIR "/usr/local/lib/mcpgw/plugins"
#endif

#define MAX_PAYLOAD_LIMIT 1073741824LL

typedef mcpgw_config_parse parse_ctx;

/* ------------------------------------------------------------ helpers */

static void bad_value(parse_ctx *p, const char *key, const char *value, const char *expected)
{
    mcpgw_config_line_error(p, "bad value for [%s] %s: '%s' (expected %s)", p->section, key, value,
                            expected);
}

static char *xstrdup(parse_ctx *p, const char *s)
{
    char *d = strdup(s);
    if (!d)
        p->errs->oom = 1;
    return d;
}

void mcpgw_config_free_secret(char *secret)
{
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

/* Replaces *slot with a copy of value; keeps the old one if out of memory. */
static int set_string_slot(parse_ctx *p, char **slot, const char *value)
{
    char *d = xstrdup(p, value);
    if (!d)
        return -1;
    free(*slot);
    *slot = d;
    return 0;
}

/* The field a key sets: in the configuration or in the current section. */
static void *field(parse_ctx *p, const mcpgw_config_key *k, size_t offset)
{
    char *base = k->flags & MCPGW_CONFIG_IN_SECTION ? (char *)p->handler : (char *)p->cfg;
    return base + offset;
}

static const void *cfield(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                          const mcpgw_config_key *k, size_t offset)
{
    const char *base = k->flags & MCPGW_CONFIG_IN_SECTION ? (const char *)h : (const char *)cfg;
    return base + offset;
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

int mcpgw_config_all_chars_in(const char *s, const char *extra)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

/* "host:port" or "[v6]:port"; port 0..65535. 1, 0 (bad) or -1 (no memory). */
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

void mcpgw_config_free_list(char **list)
{
    if (!list)
        return;
    for (char **l = list; *l; l++)
        free(*l);
    free(list);
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
        mcpgw_config_line_error(p, "cannot resolve '%s': %s", value, strerror(errno));
        return NULL;
    }
    f = fopen(path, "rb");
    if (!f) {
        mcpgw_config_line_error(p, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    buf = malloc(max + 1);
    if (!buf) {
        p->errs->oom = 1;
        goto out;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f) || n > max) {
        mcpgw_config_line_error(p, "cannot read '%s': %s", path,
                                n > max ? "file too large" : strerror(errno));
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

/* ------------------------------------------------------------ generic setters */

static int bad(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    bad_value(p, k->name, value, k->expected);
    return -1;
}

static int set_int(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    long long v;

    if (!parse_int_range(value, k->min, k->max, &v))
        return bad(p, k, value);
    *(int *)field(p, k, k->offset) = (int)v;
    return 0;
}

/* An integer without suffix kept in a size_t (max_header_bytes). */
static int set_int_size(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    long long v;

    if (!parse_int_range(value, k->min, k->max, &v))
        return bad(p, k, value);
    *(size_t *)field(p, k, k->offset) = (size_t)v;
    return 0;
}

static int set_size(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    long long v;

    if (!parse_size_range(value, k->min, k->max, &v))
        return bad(p, k, value);
    *(size_t *)field(p, k, k->offset) = (size_t)v;
    return 0;
}

static int set_bool(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    int b = parse_bool(value);

    if (b < 0)
        return bad(p, k, value);
    *(int *)field(p, k, k->offset) = b;
    return 0;
}

static int set_rate(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    char *end;
    double d = strtod(value, &end);

    if (!*value || *end || !(d >= (double)k->min && d <= (double)k->max))
        return bad(p, k, value);
    *(double *)field(p, k, k->offset) = d;
    return 0;
}

/* A STRING's extra: returns non-zero when the value is acceptable. */
typedef int (*string_check)(const char *value);

static int set_str(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    string_check check = (string_check)(uintptr_t)k->extra;

    if (check && !check(value))
        return bad(p, k, value);
    return set_string_slot(p, (char **)field(p, k, k->offset), value);
}

typedef struct word {
    const char *name;
    int value;
} word;

static int set_enum(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    for (const word *w = k->extra; w->name; w++)
        if (strcmp(value, w->name) == 0) {
            *(int *)field(p, k, k->offset) = w->value;
            return 0;
        }
    return bad(p, k, value);
}

static int set_list(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    char **list = parse_list(p, value), ***slot = (char ***)field(p, k, k->offset);

    if (!list)
        return -1;
    mcpgw_config_free_list(*slot);
    *slot = list[0] ? list : NULL;
    if (!list[0])
        free(list);
    return 0;
}

/* ------------------------------------------------------------ own setters */

static int set_address(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    char *host = NULL, **slot = (char **)field(p, k, k->offset);
    int port = 0, r;

    if (!*value && k->def == NULL) {            /* plain_listen = : none */
        free(*slot);
        *slot = NULL;
        return 0;
    }
    r = parse_listen(p, value, &host, &port);
    if (r == 0)
        bad(p, k, value);
    if (r <= 0)
        return -1;
    free(*slot);
    *slot = host;
    *(int *)field(p, k, k->offset2) = port;
    return 0;
}

static int set_workers(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    if (strcmp(value, "auto") == 0) {
        p->cfg->workers = 0;
        return 0;
    }
    return set_int(p, k, value);
}

static int set_log_level(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    int level = mcpgw_log_level_from_name(value);

    if (level < 0)
        return bad(p, k, value);
    p->cfg->log_level = level;
    return 0;
}

static int set_claim(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    const char *colon = strchr(value, ':');
    char *claim, **claim_slot = (char **)field(p, k, k->offset);

    if (!colon || colon == value || !colon[1])
        return bad(p, k, value);
    claim = strndup(value, (size_t)(colon - value));
    if (!claim) {
        p->errs->oom = 1;
        return -1;
    }
    free(*claim_slot);
    *claim_slot = claim;
    return set_string_slot(p, (char **)field(p, k, k->offset2), colon + 1);
}

/* [tls]: the resolved path of a file that must be readable. */
static int set_pem_path(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    size_t len;
    char *path = NULL, *content, **slot = (char **)field(p, k, k->offset);

    if (!*value)
        return bad(p, k, value);
    content = read_config_file(p, value, 1 << 20, &len, &path);
    if (!content)
        return -1;
    explicit_bzero(content, len);
    free(content);
    free(*slot);
    *slot = path;
    return 0;
}

static int set_dir(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    char *dir, **slot = (char **)field(p, k, k->offset);

    if (!*value)
        return bad(p, k, value);
    dir = resolve_dir(p->file, value);
    if (!dir) {
        mcpgw_config_line_error(p, "cannot resolve [plugins] dir '%s': %s", value, strerror(errno));
        return -1;
    }
    free(*slot);
    *slot = dir;
    return 0;
}

static int set_jwt_secret(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    char *copy;

    if (!*value)
        return bad(p, k, value);
    if (!(copy = xstrdup(p, value)))
        return -1;
    mcpgw_config_free_secret(p->cfg->jwt_secret);
    p->cfg->jwt_secret = copy;
    return 0;
}

/* A secret read from the file named by value (a trailing newline dropped,
 * at most k->max bytes); a bad one is reported by the file's name, never
 * its text. */
static int set_secret_file(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    size_t len = 0;
    char *secret, **slot = (char **)field(p, k, k->offset);

    if (!*value) {
        bad_value(p, k->name, value, "a file path");
        return -1;
    }
    secret = read_config_file(p, value, (size_t)k->max, &len, NULL);
    if (!secret)
        return -1;
    while (len && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
        secret[--len] = '\0';
    if (!len || strlen(secret) != len) {
        mcpgw_config_free_secret(secret);
        return bad(p, k, value);
    }
    mcpgw_config_free_secret(*slot);
    *slot = secret;
    return 0;
}

static int set_public_key(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    size_t len = 0;
    char *pem;

    if (!*value) {
        bad_value(p, k->name, value, "a PEM file path");
        return -1;
    }
    if (!(pem = read_config_file(p, value, (size_t)k->max, &len, NULL)))
        return -1;
    if (!strstr(pem, "-----BEGIN PUBLIC KEY-----") &&
        !strstr(pem, "-----BEGIN RSA PUBLIC KEY-----")) {
        free(pem);
        return bad(p, k, value);
    }
    free(p->cfg->public_key_pem);
    p->cfg->public_key_pem = pem;
    p->cfg->public_key_len = len;
    return 0;
}

static int set_algorithms(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    int algs[MCPGW_MAX_ALGORITHMS];
    int n = 0, ok = 1;
    char *copy = xstrdup(p, value), *save = NULL, *tok;

    if (!copy)
        return -1;
    for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        jwt_alg_t alg;
        int dup = 0;

        if (strcasecmp(tok, "none") == 0) {
            mcpgw_config_line_error(p, "algorithm 'none' is never accepted");
            ok = 0;
            continue;
        }
        alg = jwt_str_alg(tok);
        if (alg != JWT_ALG_HS256 && alg != JWT_ALG_HS384 && alg != JWT_ALG_HS512 &&
            alg != JWT_ALG_RS256 && alg != JWT_ALG_RS384 && alg != JWT_ALG_RS512 &&
            alg != JWT_ALG_ES256 && alg != JWT_ALG_ES384) {
            bad_value(p, k->name, tok, "HS256, HS384, HS512, RS256, RS384, RS512, ES256 or ES384");
            ok = 0;
            continue;
        }
        for (int i = 0; i < n; i++)
            dup |= algs[i] == (int)alg;
        if (!dup && n < MCPGW_MAX_ALGORITHMS)
            algs[n++] = (int)alg;
    }
    if (ok && n == 0) {
        bad(p, k, value);
        ok = 0;
    }
    if (ok) {
        memcpy(p->cfg->algorithms, algs, sizeof algs[0] * (size_t)n);
        p->cfg->n_algorithms = n;
    }
    free(copy);
    return ok ? 0 : -1;
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

static int set_redis(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    if (parse_redis_address(p->cfg, value) != 0)
        return bad(p, k, value);
    return set_string_slot(p, &p->cfg->cluster_redis, value);
}

static int set_plugin(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    mcpgw_handler_config *h = p->handler;
    char *file;

    if (!mcpgw_config_all_chars_in(value, "_-"))
        return bad(p, k, value);
    if (!(file = xstrdup(p, p->file)))
        return -1;
    if (set_string_slot(p, &h->plugin, value) != 0) {
        free(file);
        return -1;
    }
    free(h->file);
    h->file = file;
    h->line = p->lineno;
    return 0;
}

/* STRING checks */
static int nonempty(const char *v) { return *v != '\0'; }
static int server_path(const char *v) { return v[0] == '/' && !has_space_or_ctl(v); }
static int endpoint_path(const char *v)
{
    return v[0] == '/' && !has_space_or_ctl(v) && !strchr(v, '?') && !strchr(v, '#');
}
static int node_id(const char *v)
{
    return *v && strlen(v) <= 128 && !strchr(v, '|') && !strchr(v, ' ');
}
static int key_prefix(const char *v) { return strlen(v) <= 64; }
/* an RFC 7230 token, as Sec-WebSocket-Protocol needs */
static int token(const char *v) { return mcpgw_config_all_chars_in(v, "!#$%&'*+-.^_`|~"); }

#define CHECK(fn) ((const void *)(uintptr_t)(fn))

static const word protocols[] = {
    { "jsonrpc", MCPGW_ENDPOINT_JSONRPC }, { "mcpgw", MCPGW_ENDPOINT_MCPGW },
    { "echo", MCPGW_ENDPOINT_ECHO }, { NULL, 0 }
};
static const word http_responses[] = {
    { "auto", MCPGW_HTTP_RESPONSE_AUTO }, { "json", MCPGW_HTTP_RESPONSE_JSON },
    { "sse", MCPGW_HTTP_RESPONSE_SSE }, { NULL, 0 }
};
static const word redis_down[] = { { "local", 0 }, { "reject", 1 }, { NULL, 0 } };

/* ------------------------------------------------------------ show */

static char *show_int(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                      const mcpgw_config_key *k)
{
    char *s = NULL;
    return asprintf(&s, "%d", *(const int *)cfield(cfg, h, k, k->offset)) < 0 ? NULL : s;
}

static char *show_size(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                       const mcpgw_config_key *k)
{
    char *s = NULL;
    return asprintf(&s, "%zu", *(const size_t *)cfield(cfg, h, k, k->offset)) < 0 ? NULL : s;
}

static char *show_bool(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                       const mcpgw_config_key *k)
{
    int b = *(const int *)cfield(cfg, h, k, k->offset);
    int on_off = strncmp(k->expected, "on ", 3) == 0;
    return strdup(on_off ? (b ? "on" : "off") : (b ? "true" : "false"));
}

static char *show_rate(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                       const mcpgw_config_key *k)
{
    char *s = NULL;
    return asprintf(&s, "%g", *(const double *)cfield(cfg, h, k, k->offset)) < 0 ? NULL : s;
}

static char *show_str(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                      const mcpgw_config_key *k)
{
    const char *v = *(char *const *)cfield(cfg, h, k, k->offset);
    return v ? strdup(v) : NULL;
}

static char *show_enum(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                       const mcpgw_config_key *k)
{
    int v = *(const int *)cfield(cfg, h, k, k->offset);
    for (const word *w = k->extra; w->name; w++)
        if (w->value == v)
            return strdup(w->name);
    return NULL;
}

static char *show_list(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                       const mcpgw_config_key *k)
{
    char *const *list = *(char **const *)cfield(cfg, h, k, k->offset);
    char *s = NULL, *t;

    for (; list && *list; list++) {
        if (asprintf(&t, "%s%s%s", s ? s : "", s ? ", " : "", *list) < 0)
            t = NULL;
        free(s);
        if (!(s = t))
            return NULL;
    }
    return s;
}

static char *show_address(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                          const mcpgw_config_key *k)
{
    const char *host = *(char *const *)cfield(cfg, h, k, k->offset);
    int port = *(const int *)cfield(cfg, h, k, k->offset2);
    char *s = NULL;

    if (!host)
        return NULL;
    return asprintf(&s, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port) < 0 ? NULL : s;
}

static char *show_message_bytes(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                                const mcpgw_config_key *k)
{
    char *s = NULL;

    (void)k;
    return asprintf(&s, "%zu", h->max_message_bytes ? h->max_message_bytes : cfg->max_payload) < 0
               ? NULL : s;
}

static char *show_workers(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                          const mcpgw_config_key *k)
{
    return cfg->workers == 0 ? strdup("auto") : show_int(cfg, h, k);
}

static char *show_log_level(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                            const mcpgw_config_key *k)
{
    (void)h;
    (void)k;
    return strdup(mcpgw_log_level_name(cfg->log_level));
}

static char *show_claim(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                        const mcpgw_config_key *k)
{
    const char *claim = *(char *const *)cfield(cfg, h, k, k->offset);
    const char *value = *(char *const *)cfield(cfg, h, k, k->offset2);
    char *s = NULL;

    if (!claim || !value)
        return NULL;
    return asprintf(&s, "%s:%s", claim, value) < 0 ? NULL : s;
}

static char *show_algorithms(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                             const mcpgw_config_key *k)
{
    char *s = NULL, *t;

    (void)h;
    (void)k;
    for (int i = 0; i < cfg->n_algorithms; i++) {
        if (asprintf(&t, "%s%s%s", s ? s : "", s ? ", " : "",
                     jwt_alg_str((jwt_alg_t)cfg->algorithms[i])) < 0)
            t = NULL;
        free(s);
        if (!(s = t))
            return NULL;
    }
    return s;
}

static const mcpgw_config_src *source_of(const mcpgw_config *cfg, const mcpgw_config_key *k,
                                         const char *section)
{
    for (const mcpgw_config_src *s = cfg->sources; s; s = s->next)
        if (s->key == k && strcmp(s->section, section) == 0)
            return s;
    return NULL;
}

/* A key whose value the configuration does not keep as written (a file it
 * read): the path as written. */
static char *show_as_written(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                             const mcpgw_config_key *k)
{
    const mcpgw_config_src *s = source_of(cfg, k, k->section);

    (void)h;
    return s && s->raw ? strdup(s->raw) : NULL;
}

static char *show_jwt_secret(const mcpgw_config *cfg, const mcpgw_handler_config *h,
                             const mcpgw_config_key *k)
{
    (void)h;
    return cfg->secret_from_env || source_of(cfg, k, k->section) ? strdup("(redacted)") : NULL;
}

/* ------------------------------------------------------------ the table */

#define CFG(f) offsetof(mcpgw_config, f)
#define SEC(f) offsetof(mcpgw_handler_config, f)
#define IN MCPGW_CONFIG_IN_SECTION
#define RESTART MCPGW_CONFIG_RESTART

#define INT_KEY(sec, name, min, max, def, flags, expected, off, doc) \
    { sec, name, MCPGW_CONFIG_INT, min, max, def, flags, doc, expected, off, 0, NULL, set_int, show_int }
#define SIZE_KEY(sec, name, min, max, def, flags, expected, off, doc) \
    { sec, name, MCPGW_CONFIG_SIZE, min, max, def, flags, doc, expected, off, 0, NULL, set_size, show_size }
#define BOOL_KEY(sec, name, def, flags, expected, off, doc) \
    { sec, name, MCPGW_CONFIG_BOOL, 0, 1, def, flags, doc, expected, off, 0, NULL, set_bool, show_bool }
#define RATE_KEY(sec, name, min, max, def, flags, expected, off, doc) \
    { sec, name, MCPGW_CONFIG_RATE, min, max, def, flags, doc, expected, off, 0, NULL, set_rate, show_rate }
#define STR_KEY(sec, name, def, flags, check, expected, off, doc) \
    { sec, name, MCPGW_CONFIG_STRING, 0, 0, def, flags, doc, expected, off, 0, CHECK(check), set_str, show_str }
#define ENUM_KEY(sec, name, def, flags, words, expected, off, doc) \
    { sec, name, MCPGW_CONFIG_ENUM, 0, 0, def, flags, doc, expected, off, 0, words, set_enum, show_enum }

const mcpgw_config_key mcpgw_config_keys[] = {
    /* [server] */
    { "server", "listen", MCPGW_CONFIG_ADDRESS, 0, 65535, "127.0.0.1:8080", RESTART,
      "where clients connect (HOST:PORT or [IPV6]:PORT)",
      "HOST:PORT or [IPV6]:PORT with a port 0..65535", CFG(listen_host), CFG(listen_port), NULL,
      set_address, show_address },
    STR_KEY("server", "path", "/ws", RESTART, server_path, "a path starting with '/'", CFG(path),
            "the WebSocket endpoint's path"),
    SIZE_KEY("server", "max_payload", 1, MAX_PAYLOAD_LIMIT, "1048576", 0,
             "bytes 1..1073741824, optionally with suffix k or m", CFG(max_payload),
             "the largest message, in bytes"),
    INT_KEY("server", "shutdown_timeout_ms", 0, 3600000, "10000", 0, "an integer 0..3600000",
            CFG(shutdown_timeout_ms), "how long a graceful shutdown waits for clients"),
    { "server", "max_header_bytes", MCPGW_CONFIG_INT, 1024, 1048576, "8192", 0,
      "the largest HTTP request head; larger ones get 431", "an integer 1024..1048576",
      CFG(max_header_bytes), 0, NULL, set_int_size, show_size },
    SIZE_KEY("server", "max_outbound_bytes", 4096, MAX_PAYLOAD_LIMIT, "4194304", 0,
             "bytes 4096..1073741824, optionally with suffix k or m", CFG(max_outbound_bytes),
             "a reader with more queued than this is closed 1008"),
    INT_KEY("server", "handshake_timeout_ms", 100, 3600000, "10000", 0, "an integer 100..3600000",
            CFG(handshake_timeout_ms), "a connection not upgraded by then is closed"),
    INT_KEY("server", "max_connections", 1, 10000000, "10000", 0, "an integer 1..10000000",
            CFG(max_connections), "open WebSockets; the next upgrade gets 503"),
    { "server", "workers", MCPGW_CONFIG_INT, 1, 64, "auto", RESTART,
      "worker processes (auto: one per online CPU)", "auto or an integer 1..64", CFG(workers), 0,
      NULL, set_workers, show_workers },
    INT_KEY("server", "drain_timeout_ms", 0, 3600000, "30000", 0, "an integer 0..3600000",
            CFG(drain_timeout_ms), "after a binary upgrade, how long old workers keep clients"),
    INT_KEY("server", "handler_watchdog_ms", 0, 3600000, "5000", 0,
            "an integer 0..3600000 (0: off)", CFG(handler_watchdog_ms),
            "a handler running longer aborts its worker (0: off)"),
    { "server", "allowed_origins", MCPGW_CONFIG_LIST, 0, 0, NULL, 0,
      "the Origins an upgrade may come from (none: any)", "a list", CFG(allowed_origins), 0, NULL,
      set_list, show_list },
    BOOL_KEY("server", "require_origin", "false", 0, "true or false", CFG(require_origin),
             "refuse requests without an Origin header"),
    { "server", "plain_listen", MCPGW_CONFIG_ADDRESS, 0, 65535, NULL, RESTART,
      "a second, plain listener beside a TLS one",
      "HOST:PORT or [IPV6]:PORT with a port 0..65535", CFG(plain_listen_host),
      CFG(plain_listen_port), NULL, set_address, show_address },
    RATE_KEY("server", "rate_limit_per_s", 0, 1000000, "0", 0,
             "messages per second, 0 (off) .. 1000000", CFG(rate_limit_per_s),
             "inbound messages per second per connection (0: off)"),
    INT_KEY("server", "rate_limit_burst", 0, 1000000, "0", 0, "an integer 0..1000000",
            CFG(rate_limit_burst), "the rate limit's bucket (0: max(1, rate))"),
    INT_KEY("server", "rate_limit_max_violations", 1, 1000000, "20", 0, "an integer 1..1000000",
            CFG(rate_limit_max_violations), "refused messages within 10 s before closing 1008"),

    /* [tls] */
    { "tls", "cert", MCPGW_CONFIG_PATH, 0, 0, NULL, RESTART,
      "the PEM certificate: with key, [server] listen serves wss://", "a PEM file path",
      CFG(tls_cert), 0, NULL, set_pem_path, show_str },
    { "tls", "key", MCPGW_CONFIG_PATH, 0, 0, NULL, RESTART, "the certificate's PEM private key",
      "a PEM file path", CFG(tls_key), 0, NULL, set_pem_path, show_str },
    { "tls", "chain", MCPGW_CONFIG_PATH, 0, 0, NULL, RESTART,
      "a PEM file of intermediate certificates", "a PEM file path", CFG(tls_chain), 0, NULL,
      set_pem_path, show_str },

    /* [auth] */
    { "auth", "jwt_secret", MCPGW_CONFIG_SECRET, 0, 0, NULL, MCPGW_CONFIG_HIDDEN,
      "the HS* secret (MCPGW_JWT_SECRET wins)", "a non-empty secret", CFG(jwt_secret), 0, NULL,
      set_jwt_secret, show_jwt_secret },
    { "auth", "jwt_secret_file", MCPGW_CONFIG_SECRET, 0, 65536, NULL, 0,
      "a file holding the HS* secret", "a file holding a non-empty secret without NUL bytes",
      CFG(jwt_secret), 0, NULL, set_secret_file, show_as_written },
    { "auth", "public_key_file", MCPGW_CONFIG_PATH, 0, 65536, NULL, 0,
      "the PEM public key for RS* and ES*", "a PEM public key (-----BEGIN PUBLIC KEY-----)",
      CFG(public_key_pem), 0, NULL, set_public_key, show_as_written },
    { "auth", "algorithms", MCPGW_CONFIG_LIST, 0, 0, "HS256", 0, "the accepted JWT algorithms",
      "a list of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384", CFG(algorithms), 0, NULL,
      set_algorithms, show_algorithms },
    STR_KEY("auth", "issuer", NULL, 0, NULL, "a string", CFG(issuer),
            "the required iss claim (none: any)"),
    STR_KEY("auth", "audience", NULL, 0, NULL, "a string", CFG(audience),
            "a value the aud claim must hold (none: any)"),
    INT_KEY("auth", "max_connections_per_user", 1, 1000000, "5", 0, "an integer 1..1000000",
            CFG(max_connections_per_user), "open connections per user"),
    STR_KEY("auth", "user_claim", "id", 0, nonempty, "a claim name", CFG(user_claim),
            "the claim naming the user (falls back to sub)"),
    INT_KEY("auth", "leeway_s", 0, 3600, "30", 0, "an integer 0..3600", CFG(leeway_s),
            "clock leeway for exp and nbf"),
    BOOL_KEY("auth", "require_exp", "false", 0, "true or false", CFG(require_exp),
             "refuse tokens without exp"),

    /* [compression] */
    BOOL_KEY("compression", "enabled", "true", 0, "true or false", CFG(compression.enabled),
             "offer permessage-deflate"),
    INT_KEY("compression", "level", 0, 9, "6", 0, "an integer 0..9", CFG(compression.level),
            "zlib level"),
    INT_KEY("compression", "mem_level", 1, 9, "8", 0, "an integer 1..9",
            CFG(compression.mem_level), "zlib memLevel"),
    SIZE_KEY("compression", "threshold", 0, MAX_PAYLOAD_LIMIT, "1024", 0,
             "bytes 0..1073741824, optionally with suffix k or m", CFG(compression.threshold),
             "smaller messages go uncompressed"),
    INT_KEY("compression", "server_max_window_bits", 9, 15, "10", 0, "an integer 9..15",
            CFG(compression.server_max_window_bits), "the server's deflate window"),
    INT_KEY("compression", "client_max_window_bits", 8, 15, "15", 0, "an integer 8..15",
            CFG(compression.client_max_window_bits), "the window asked of clients"),
    BOOL_KEY("compression", "server_no_context_takeover", "true", 0, "true or false",
             CFG(compression.server_no_context_takeover), "a fresh deflate context per message"),
    BOOL_KEY("compression", "client_no_context_takeover", "true", 0, "true or false",
             CFG(compression.client_no_context_takeover),
             "ask clients for a fresh context per message"),

    /* [heartbeat] */
    INT_KEY("heartbeat", "interval_ms", 100, 86400000, "30000", 0, "an integer 100..86400000",
            CFG(heartbeat_interval_ms), "ping period; a client silent for two is closed"),

    /* [log] */
    { "log", "level", MCPGW_CONFIG_ENUM, 0, 0, "info", 0, "debug, info, warn, error or off",
      "debug, info, warn, error or off", CFG(log_level), 0, NULL, set_log_level, show_log_level },
    BOOL_KEY("log", "access", "false", 0, "true or false", CFG(log_access),
             "one line per HTTP request and upgrade"),

    /* [admin] */
    STR_KEY("admin", "claim", "role", 0, nonempty, "a non-empty string", CFG(admin_claim),
            "the claim an administrator's token carries"),
    STR_KEY("admin", "value", "admin", 0, nonempty, "a non-empty string", CFG(admin_value),
            "the value it must have (or hold)"),
    SIZE_KEY("admin", "max_body_bytes", 1, MAX_PAYLOAD_LIMIT, "1048576", 0,
             "bytes 1..1073741824, optionally with suffix k or m", CFG(admin_max_body_bytes),
             "the largest /api request body"),
    INT_KEY("admin", "agent_silence_s", 0, 86400, "60", 0, "seconds 0..86400 (0: never)",
            CFG(admin_agent_silence_s), "the status page greys an agent silent this long"),
    { "admin", "require_claim", MCPGW_CONFIG_CLAIM, 0, 0, "role:admin", MCPGW_CONFIG_DEF_TEXT,
      "claim and value together", "CLAIM:VALUE", CFG(admin_claim), CFG(admin_value), NULL,
      set_claim, show_claim },

    /* [cluster] */
    { "cluster", "redis", MCPGW_CONFIG_STRING, 0, 0, NULL, RESTART,
      "the Redis shared by the nodes",
      "redis://HOST:PORT[/DB] or unix:/PATH (no password: use password_file)", CFG(cluster_redis),
      0, NULL, set_redis, show_str },
    { "cluster", "password_file", MCPGW_CONFIG_SECRET, 0, 4096, NULL, RESTART,
      "a file holding Redis's password", "a file holding a non-empty secret without NUL bytes",
      CFG(cluster_password), 0, NULL, set_secret_file, show_as_written },
    STR_KEY("cluster", "node_id", "HOSTNAME:PORT", RESTART | MCPGW_CONFIG_DEF_TEXT, node_id,
            "1..128 characters without '|' or spaces", CFG(cluster_node_id),
            "this node's name in Redis"),
    STR_KEY("cluster", "key_prefix", "mcpgw:", RESTART | MCPGW_CONFIG_DEF_TEXT, key_prefix,
            "at most 64 characters", CFG(cluster_key_prefix), "the prefix of every Redis key"),
    INT_KEY("cluster", "lease_ms", 300, 3600000, "15000", RESTART, "milliseconds 300..3600000",
            CFG(cluster_lease_ms), "how long a node's connections count without it"),
    INT_KEY("cluster", "read_linger_ms", 0, 1000, "1", RESTART, "milliseconds 0..1000",
            CFG(cluster_read_linger_ms),
            "while stream reads bring entries, read at most once this often"),
    ENUM_KEY("cluster", "on_redis_down", "local", 0, redis_down, "local or reject",
             CFG(cluster_reject_when_down), "what upgrades do while Redis is away"),

    /* [plugins] */
    { "plugins", "dir", MCPGW_CONFIG_PATH, 0, 0, MCPGW_PLUGIN_DIR, 0,
      "where NAME.so plugins are", "a directory path", CFG(plugins_dir), 0, NULL, set_dir,
      show_str },

    /* [handler.TYPE]: besides these, the plugin's own keys */
    { "handler.*", "plugin", MCPGW_CONFIG_STRING, 0, 0, NULL, IN, "the plugin serving TYPE",
      "a plugin name of [A-Za-z0-9_-]", SEC(plugin), 0, NULL, set_plugin, show_str },
    { "handler.*", "require_claim", MCPGW_CONFIG_CLAIM, 0, 0, NULL, IN,
      "senders' tokens must carry this claim", "CLAIM:VALUE", SEC(claim_name), SEC(claim_value),
      NULL, set_claim, show_claim },
    { "handler.*", "max_message_bytes", MCPGW_CONFIG_SIZE, 1, MAX_PAYLOAD_LIMIT, "max_payload",
      IN | MCPGW_CONFIG_DEF_TEXT, "larger messages of TYPE are refused",
      "bytes 1..1073741824, optionally with suffix k or m", SEC(max_message_bytes), 0, NULL,
      set_size, show_message_bytes },
    RATE_KEY("handler.*", "broadcast_per_s", 0, 1000000, "0", IN,
             "messages per second 0..1000000 (0: no limit)", SEC(rate_per_user),
             "messages of TYPE per second per user"),

    /* [endpoint.NAME]: besides these, the plugin's own keys */
    STR_KEY("endpoint.*", "path", NULL, IN, endpoint_path,
            "a path starting with '/', without query or fragment", SEC(path),
            "the endpoint's request path"),
    ENUM_KEY("endpoint.*", "protocol", "jsonrpc", IN, protocols, "jsonrpc, mcpgw or echo",
             SEC(protocol), "what it speaks"),
    STR_KEY("endpoint.*", "subprotocol", NULL, IN, token, "a token such as mcp", SEC(subprotocol),
            "the WebSocket subprotocol answered when offered"),
    { "endpoint.*", "plugin", MCPGW_CONFIG_STRING, 0, 0, NULL, IN,
      "the connection-level plugin of a jsonrpc endpoint", "a plugin name of [A-Za-z0-9_-]",
      SEC(plugin), 0, NULL, set_plugin, show_str },
    { "endpoint.*", "require_claim", MCPGW_CONFIG_CLAIM, 0, 0, NULL, IN,
      "tokens must carry this claim", "CLAIM:VALUE", SEC(claim_name), SEC(claim_value), NULL,
      set_claim, show_claim },
    BOOL_KEY("endpoint.*", "http", "on", IN, "on or off", SEC(http),
             "serve MCP Streamable HTTP on the same path"),
    ENUM_KEY("endpoint.*", "http_response", "auto", IN, http_responses, "auto, json or sse",
             SEC(http_response), "how a POST with requests is answered"),
    INT_KEY("endpoint.*", "session_idle_ms", 1000, 86400000, "600000", IN,
            "an integer 1000..86400000", SEC(session_idle_ms),
            "an HTTP session unused this long ends"),
    SIZE_KEY("endpoint.*", "replay_bytes", 0, 64 * 1048576, "262144", IN,
             "bytes 0..67108864, optionally with suffix k or m", SEC(replay_bytes),
             "events kept per SSE stream for Last-Event-ID"),
    { NULL, NULL, 0, 0, 0, NULL, 0, NULL, NULL, 0, 0, NULL, NULL, NULL }
};

const mcpgw_config_key *mcpgw_config_key_find(const char *key_section, const char *name)
{
    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++)
        if (strcmp(k->section, key_section) == 0 && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

int mcpgw_config_key_set(mcpgw_config_parse *p, const mcpgw_config_key *k, const char *value)
{
    return k->set(p, k, value);
}

int mcpgw_config_key_defaults(mcpgw_config *cfg, mcpgw_handler_config *h, const char *key_section)
{
    mcpgw_errbuf errs = { 0 };
    parse_ctx p = { .cfg = cfg, .errs = &errs, .file = "(default)", .handler = h };
    int rc = 0;

    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++) {
        int templated = (k->flags & MCPGW_CONFIG_IN_SECTION) != 0;
        if (!k->def || (k->flags & MCPGW_CONFIG_DEF_TEXT) ||
            (strcmp(key_section, "*") == 0 ? templated : strcmp(k->section, key_section) != 0))
            continue;
        p.section = (char *)k->section;
        if (k->set(&p, k, k->def) != 0)
            rc = -1;
    }
    free(errs.buf);
    return errs.oom || errs.len ? -1 : rc;
}

/* ------------------------------------------------------------ mcpgw -T */

/* Plugin keys are the plugin's: their values are shown unless the name
 * says it may hold a secret (or environment variables). */
static int secret_name(const char *key)
{
    static const char *const words[] = { "secret", "password", "passwd", "token", "credential",
                                         "apikey", "api_key", "private", NULL };
    size_t n = strlen(key);

    if (strcmp(key, "env") == 0 || strncmp(key, "env.", 4) == 0)
        return 1;
    if ((n > 5 && strcmp(key + n - 5, "_file") == 0) || (n > 5 && strcmp(key + n - 5, "_path") == 0))
        return 0;
    for (const char *const *w = words; *w; w++)
        if (strcasestr(key, *w))
            return 1;
    return n >= 3 && strcasecmp(key + n - 3, "key") == 0;
}

static int dump_line(FILE *out, const char *name, const char *value, const char *file, int line,
                     const char *other)
{
    if (!value)
        return fprintf(out, ";%s =  ; %s (not set)\n", name, other) < 0 ? -1 : 0;
    if (file)
        return fprintf(out, "%s = %s  ; %s:%d\n", name, value, file, line) < 0 ? -1 : 0;
    return fprintf(out, "%s = %s  ; %s\n", name, value, other) < 0 ? -1 : 0;
}

static int dump_key(FILE *out, const mcpgw_config *cfg, const mcpgw_handler_config *h,
                    const mcpgw_config_key *k, const char *section)
{
    const mcpgw_config_src *s = source_of(cfg, k, section);
    char *value = k->show(cfg, h, k);
    const char *other = "default";
    int rc;

    if (k->set == set_jwt_secret && cfg->secret_from_env) {
        s = NULL;
        other = "environment MCPGW_JWT_SECRET";
    }
    if (value && (k->flags & MCPGW_CONFIG_HIDDEN)) {
        free(value);
        value = strdup("(redacted)");
    }
    /* A key that set a field another key shares (jwt_secret, require_claim)
     * shows where the value came from only when it did. */
    rc = dump_line(out, k->name, value, s ? s->file : NULL, s ? s->line : 0, other);
    free(value);
    return rc;
}

static int dump_section(FILE *out, const mcpgw_config *cfg, const mcpgw_handler_config *h,
                        const char *key_section)
{
    char name[256];
    int rc = 0;

    snprintf(name, sizeof(name), "%s%s", h ? (h->is_endpoint ? "endpoint." : "handler.") : "",
             h ? h->type : key_section);
    if (fprintf(out, "\n[%s]\n", name) < 0)
        return -1;
    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++)
        if (strcmp(k->section, key_section) == 0)
            rc |= dump_key(out, cfg, h, k, name);
    if (h)
        for (const mcpgw_kv *kv = h->options; kv; kv = kv->next)
            rc |= dump_line(out, kv->key, secret_name(kv->key) ? "(redacted)" : kv->value,
                            kv->file, kv->line, "");
    return rc;
}

int mcpgw_config_dump(const mcpgw_config *cfg, FILE *out)
{
    const char *done[32];
    size_t n_done = 0;
    int rc = 0;

    if (fprintf(out, "; the effective configuration: each value with where it was set "
                "(file:line), or default; secrets are (redacted)\n") < 0)
        return -1;
    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++) {
        int seen = 0;
        if (k->flags & MCPGW_CONFIG_IN_SECTION)
            continue;
        for (size_t i = 0; i < n_done; i++)
            seen |= strcmp(done[i], k->section) == 0;
        if (seen || n_done == sizeof(done) / sizeof(done[0]))
            continue;
        done[n_done++] = k->section;
        rc |= dump_section(out, cfg, NULL, k->section);
    }
    for (const mcpgw_handler_config *h = cfg->handlers; h; h = h->next)
        rc |= dump_section(out, cfg, h, "handler.*");
    for (const mcpgw_handler_config *h = cfg->endpoints; h; h = h->next)
        rc |= dump_section(out, cfg, h, "endpoint.*");
    return rc || fflush(out) != 0 ? -1 : 0;
}
