/*
 * config.c - loads and validates the gateway configuration (config.h):
 * every *.ini file of a directory in lexical order, parsed with inih through
 * our own line reader; each key goes through the table of keys
 * (config_keys.c), which parses it into the configuration.
 *
 * Why a reader of our own beside inih: inih as Debian builds it (libinih
 * 55) passes no line numbers to the handler (INI_HANDLER_LINENO is 0), does
 * not call it for a [section] line (INI_CALL_HANDLER_ON_NEW_SECTION is 0),
 * truncates section names to 50 bytes, and reports only its first syntax
 * error. These are build-time options of the shared library, not ours to
 * change. So the reader counts lines (inih calls the handler right after
 * the reader has returned the line, so ctx->lineno is the handler's line)
 * and classifies each line exactly as inih will (comment, [section],
 * key=value, indented continuation, syntax error): that is how we learn
 * where sections start and their full names, and how every syntax error is
 * reported, not only the first. Over-long lines and NUL bytes are reported
 * by the reader and handed to inih as blank lines, so inih's line count
 * always equals ours.
 *
 * All errors are collected as "file:line: message" lines; nothing stops at
 * the first one.
 */
#define _GNU_SOURCE     /* asprintf, vasprintf, strndup, getline */
#include "config.h"
#include "config_parse.h"
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

typedef mcpgw_config_parse parse_ctx;
typedef mcpgw_errbuf errbuf;

/* ------------------------------------------------------------ error text */

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

void mcpgw_errbuf_add(errbuf *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vadd(e, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ keys */

void mcpgw_config_line_error(parse_ctx *p, const char *fmt, ...)
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
    mcpgw_errbuf_add(p->errs, "%s:%d: %s", p->file, p->lineno, msg);
    free(msg);
}

#define line_error mcpgw_config_line_error

/* Remembers where a key got its value (mcpgw -T); secrets are not copied. */
static void add_source(parse_ctx *p, const mcpgw_config_key *k, const char *value)
{
    mcpgw_config_src *s = calloc(1, sizeof(*s));

    if (!s || !(s->section = strdup(p->section)) || !(s->file = strdup(p->file)) ||
        (!(k->flags & MCPGW_CONFIG_HIDDEN) && !(s->raw = strdup(value)))) {
        p->errs->oom = 1;
        if (s) {
            free(s->section);
            free(s->file);
            free(s);
        }
        return;
    }
    s->key = k;
    s->line = p->lineno;
    s->next = p->cfg->sources;
    p->cfg->sources = s;
}

/* A key the table does not know in a [handler.TYPE] or [endpoint.NAME]
 * section: the plugin's, kept in order for it. */
static void set_option(parse_ctx *p, const char *name, const char *value)
{
    mcpgw_handler_config *h = p->handler;
    mcpgw_kv *kv, **tail;
    char *file, *copy;

    for (tail = &h->options; *tail; tail = &(*tail)->next)
        if (strcmp((*tail)->key, name) == 0)
            break;
    if (*tail) {
        kv = *tail;
        if (!(file = strdup(p->file)) || !(copy = strdup(value))) {
            free(file);
            p->errs->oom = 1;
            return;
        }
        free(kv->value);
        kv->value = copy;
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

/* The inih handler: called right after our reader returned the line. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;
    const mcpgw_config_key *k;

    (void)section;      /* inih truncates it; we track the full name */
    if (p->kind == MCPGW_LINE_CONTINUATION) {
        if (p->sec == MCPGW_SEC_IGNORED)
            return 1;
        line_error(p, "indented line continues the value of '%s'; multi-line values "
                   "are not supported (remove the indentation)",
                   p->prev_name ? p->prev_name : name);
        return 1;
    }
    if (p->sec == MCPGW_SEC_NONE) {
        line_error(p, "key '%s' outside any section", name);
        return 1;
    }
    if (p->sec == MCPGW_SEC_IGNORED)
        return 1;
    if (p->handler && !*name) {
        line_error(p, "empty key in [%s]", p->section);
        return 1;
    }
    if ((k = mcpgw_config_key_find(p->key_section, name)) != NULL) {
        if (mcpgw_config_key_set(p, k, value) == 0)
            add_source(p, k, value);
    } else if (p->handler) {
        set_option(p, name, value);
    } else {
        line_error(p, "unknown key '%s' in [%s]", name, p->section);
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
    h->line = p->lineno;    /* the first header, until a plugin key is seen */
    *tail = h;
    if (mcpgw_config_key_defaults(p->cfg, h, endpoint ? "endpoint.*" : "handler.*") != 0)
        p->errs->oom = 1;
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
    char *copy = strndup(name, len);

    free(p->section);
    p->section = copy;
    p->sec = MCPGW_SEC_IGNORED;
    p->key_section = NULL;
    p->handler = NULL;
    if (!copy) {
        p->errs->oom = 1;
        return;
    }
    if (strncmp(copy, "handler.", 8) == 0) {
        if (!mcpgw_config_all_chars_in(copy + 8, "_.:-")) {
            line_error(p, "bad handler type in [%s] (expected [handler.TYPE] with TYPE of "
                       "[A-Za-z0-9_.:-])", copy);
            return;
        }
        p->handler = handler_for(p, copy + 8, 0);
        p->key_section = "handler.*";
    } else if (strncmp(copy, "endpoint.", 9) == 0) {
        if (!copy[9] || !mcpgw_config_all_chars_in(copy + 9, "_-")) {
            line_error(p, "bad endpoint name in [%s] (expected [endpoint.NAME] with NAME of "
                       "[A-Za-z0-9_-])", copy);
            return;
        }
        p->handler = handler_for(p, copy + 9, 1);
        p->key_section = "endpoint.*";
    } else {
        /* a fixed section is one the table has keys for */
        for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++)
            if (!(k->flags & MCPGW_CONFIG_IN_SECTION) && strcmp(k->section, copy) == 0) {
                p->key_section = k->section;
                break;
            }
        if (!p->key_section) {
            line_error(p, "unknown section [%s]", copy);
            return;
        }
    }
    if (p->key_section && (p->handler || !strchr(p->key_section, '*')))
        p->sec = MCPGW_SEC_KNOWN;
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
        p->kind = MCPGW_LINE_BLANK;
    } else if (p->prev_name_set && start > line) {
        p->kind = MCPGW_LINE_CONTINUATION;
    } else if (*start == '[') {
        end = find_chars_or_comment(start + 1, "]");
        if (*end == ']') {
            p->kind = MCPGW_LINE_SECTION;
            p->prev_name_set = 0;
            enter_section(p, start + 1, (size_t)(end - start - 1));
        } else {
            p->kind = MCPGW_LINE_SYNTAX;
            line_error(p, "syntax error (section header without ']')");
        }
    } else {
        end = find_chars_or_comment(start, "=:");
        if (*end == '=' || *end == ':') {
            const char *name_end = end;
            p->kind = MCPGW_LINE_KEY;
            while (name_end > start && isspace((unsigned char)name_end[-1]))
                name_end--;
            p->prev_name_set = name_end > start;
            free(p->prev_name);
            p->prev_name = strndup(start, (size_t)(name_end - start));
        } else {
            p->kind = MCPGW_LINE_SYNTAX;
            line_error(p, "syntax error (expected [section], key = value or a comment)");
        }
    }
    if (p->kind == MCPGW_LINE_SYNTAX && !p->first_syntax_line)
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
    p->kind = MCPGW_LINE_BLANK;
    p->prev_name_set = 0;
    p->first_syntax_line = 0;
    p->sec = MCPGW_SEC_NONE;
    p->key_section = NULL;
    p->handler = NULL;
    r = ini_parse_stream(reader, p, on_key, p);
    if (r > 0 && r != p->first_syntax_line) {
        /* A syntax error classify() did not foresee: report inih's word. */
        mcpgw_errbuf_add(p->errs, "%s:%d: syntax error", p->file, r);
    } else if (r == -2) {
        p->errs->oom = 1;
    }
    free(p->section);
    p->section = NULL;
    free(p->prev_name);
    p->prev_name = NULL;
}

/* ------------------------------------------------------------ load */

/* A configuration holding every default of the table. */
static mcpgw_config *config_new(void)
{
    mcpgw_config *cfg = calloc(1, sizeof *cfg);

    if (!cfg)
        return NULL;
    cfg->refs = 1;
    if (mcpgw_config_key_defaults(cfg, NULL, "*") != 0) {
        mcpgw_config_free(cfg);
        return NULL;
    }
    return cfg;
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
            mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s]: at most %d endpoints", h->file, h->line,
                       h->type, MCPGW_CONFIG_MAX_ENDPOINTS);
        if (strlen(h->type) > MCPGW_CONFIG_MAX_ENDPOINT_NAME)
            mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s]: the name is longer than %d characters",
                       h->file, h->line, h->type, MCPGW_CONFIG_MAX_ENDPOINT_NAME);
        if (!h->path) {
            mcpgw_errbuf_add(errs, "%s:%d: missing key 'path' in [endpoint.%s]", h->file, h->line,
                       h->type);
            continue;
        }
        if (h->protocol == MCPGW_ENDPOINT_JSONRPC && !h->plugin)
            mcpgw_errbuf_add(errs, "%s:%d: missing key 'plugin' in [endpoint.%s] (a jsonrpc "
                       "endpoint hands its messages to a plugin)", h->file, h->line, h->type);
        if (h->protocol == MCPGW_ENDPOINT_ECHO && (h->plugin || h->options))
            mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s] speaks protocol echo: it sends every "
                       "message back, so it takes no plugin and no plugin keys "
                       "(only path, protocol, subprotocol, require_claim)",
                       h->file, h->line, h->type);
        if (h->protocol == MCPGW_ENDPOINT_MCPGW && (h->plugin || h->options))
            mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s] speaks protocol mcpgw: its messages go "
                       "to the [handler.*] table, so it takes no plugin and no plugin keys "
                       "(only path, protocol, subprotocol, require_claim)",
                       h->file, h->line, h->type);
        if (strcmp(h->path, cfg->path) == 0)
            mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s] path %s is already [server] path",
                       h->file, h->line, h->type, h->path);
        if (path_reserved(h->path))
            mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s] path %s is taken by the gateway's own "
                       "HTTP endpoints", h->file, h->line, h->type, h->path);
        for (mcpgw_handler_config *o = cfg->endpoints; o != h; o = o->next)
            if (o->path && strcmp(o->path, h->path) == 0)
                mcpgw_errbuf_add(errs, "%s:%d: [endpoint.%s] path %s is already used by "
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
                mcpgw_config_free_secret(cfg->jwt_secret);
                cfg->jwt_secret = copy;
                cfg->secret_from_env = 1;
            } else {
                errs->oom = 1;
            }
        }
        if (cfg->n_algorithms == 0)
            mcpgw_errbuf_add(errs, "%s: [auth] algorithms: no algorithm configured", name);
        for (int i = 0; i < cfg->n_algorithms; i++)
            if (cfg->algorithms[i] >= JWT_ALG_RS256 && !cfg->public_key_pem) {
                mcpgw_errbuf_add(errs, "%s: [auth] algorithms lists %s but public_key_file is not set",
                           name, jwt_alg_str((jwt_alg_t)cfg->algorithms[i]));
                break;
            }
        if ((cfg->cluster_password || cfg->cluster_node_id || cfg->cluster_key_prefix) &&
            !cfg->cluster_redis)
            mcpgw_errbuf_add(errs, "%s: [cluster] needs redis = redis://HOST:PORT[/DB] or unix:PATH",
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
            mcpgw_errbuf_add(errs, "%s: [tls] needs both cert and key", name);
        if (cfg->tls_chain && !cfg->tls_cert)
            mcpgw_errbuf_add(errs, "%s: [tls] chain needs cert and key", name);
        for (mcpgw_handler_config *h = cfg->handlers; h; h = h->next) {
            if (!h->plugin)
                mcpgw_errbuf_add(errs, "%s:%d: missing key 'plugin' in [handler.%s]",
                           h->file, h->line, h->type);
            if (strcmp(h->type, "auth") == 0)
                mcpgw_errbuf_add(errs, "%s:%d: [handler.auth]: the message type auth is the "
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
        mcpgw_errbuf_add(&errs, "%s: cannot open directory: %s", dir, strerror(errno));
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
            mcpgw_errbuf_add(&errs, "%s: cannot stat: %s", path, strerror(errno));
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
        mcpgw_errbuf_add(&errs, "%s: no *.ini files", dir);
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
            mcpgw_errbuf_add(&errs, "%s: cannot open: %s", paths[i], strerror(errno));
            continue;
        }
        parse_source(&p);
        if (ferror(p.fp))
            mcpgw_errbuf_add(&errs, "%s: read error", paths[i]);
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
    mcpgw_config_free_secret(cfg->jwt_secret);
    free(cfg->user_claim);
    free(cfg->plugins_dir);
    mcpgw_config_free_list(cfg->allowed_origins);
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
    mcpgw_config_free_secret(cfg->cluster_password);
    free(cfg->cluster_node_id);
    free(cfg->cluster_key_prefix);
    free_sections(cfg->handlers);
    free_sections(cfg->endpoints);
    while (cfg->sources) {
        mcpgw_config_src *next = cfg->sources->next;
        free(cfg->sources->section);
        free(cfg->sources->file);
        free(cfg->sources->raw);
        free(cfg->sources);
        cfg->sources = next;
    }
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
