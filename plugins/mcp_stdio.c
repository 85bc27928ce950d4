/*
 * mcp_stdio.c - the `mcp_stdio` connection-level plugin: fronts a stdio MCP
 * server (newline-delimited JSON-RPC on its stdin and stdout) for the
 * WebSocket sessions of an [endpoint.NAME] with protocol = jsonrpc.
 *
 *   sessions = per-connection   a child per session, its process group
 *                               stopped when the session ends;
 *   sessions = shared:N         N children shared by the endpoint's
 *                               sessions (of this worker).
 *
 * Every request a client sends gets a fresh id on the child's side (its
 * "wire" id) and is mapped back on the answer, so sessions cannot collide
 * and a cancelled or timed-out request's late answer is dropped; progress
 * tokens are rewritten the same way. In shared mode the gateway initialises
 * each child once (with the first session's initialize parameters, replayed
 * after a restart) and answers the other sessions' initialize from that
 * result. Tool rules (tools_allow / tools_deny, optionally per claim) and a
 * per-user tool_calls_per_s limit refuse tools/call with a JSON-RPC error
 * that says why, and hide refused tools from tools/list.
 *
 * Ownership: the instance owns its kids (children) and sessions; a session
 * owns its in-flight requests; a kid's table points at them (borrowed). All
 * of it runs on the worker's loop thread.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <mcpgw/plugin.h>

/* JSON-RPC errors this plugin answers with (server-defined range) */
#define ERR_INVALID_REQUEST -32600
#define ERR_TOOL_REFUSED -32001
#define ERR_RATE_LIMITED -32002
#define ERR_BUSY -32003
#define ERR_TIMEOUT -32004
#define ERR_UNAVAILABLE -32005

#define INFLIGHT_BUCKETS 256
#define PAUSE_HIGH (1024 * 1024)    /* per-connection: stop reading the child above this */
#define PAUSE_LOW (256 * 1024)
#define STOP_GRACE_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define HEALTHY_MS 30000            /* a child up this long resets the backoff */

extern char **environ;

typedef struct inst inst;
typedef struct kid kid;
typedef struct session session;
typedef struct batch batch;

/* One request of a client, sent to a child and not yet answered. */
typedef struct inflight {
    session *s;
    kid *k;
    long long wire_id;
    json_t *client_id;              /* the client's id (reference) */
    json_t *client_token;           /* the client's progressToken, or NULL */
    long long wire_token;
    char method[48];
    int tools_list;                 /* filter the answer by the session's rules */
    double started;
    mcpgw_timer *timer;
    batch *b;                       /* part of a batch, or NULL */
    struct inflight *s_next, *s_prev;   /* the session's list */
    struct inflight *k_next;            /* the kid's table bucket */
} inflight;

/* A batch from a client: answered as one array when each request has its
 * answer. Owned by its in-flight requests (refs). */
struct batch {
    json_t *answers;
    int refs;
    session *s;                     /* NULL once the session ended */
};

/* A server-to-client request waiting for the client's answer. */
typedef struct server_req {
    char *key;                      /* the id as JSON text (owned) */
    session *s;
    struct server_req *next;
} server_req;

#define MAX_SERVER_REQS 256         /* per child: requests of the server awaiting a client */

struct kid {
    inst *in;
    mcpgw_child *ch;                /* NULL while down */
    int slot;                       /* shared: 0..N-1; per-connection: -1 */
    int ready;                      /* initialised (shared) / running (per-connection) */
    int n_sessions;
    long long next_id;
    long long init_wire_id;         /* shared: our initialize in flight (0: none) */
    json_t *init_params;            /* shared: the first session's initialize params,
                                       replayed to a restarted child */
    json_t *init_result;            /* shared: the child's InitializeResult */
    session *owner;                 /* per-connection: its session */
    json_t *held;                   /* shared: lines waiting for ready (array of strings) */
    size_t held_bytes;
    inflight *table[INFLIGHT_BUCKETS];
    server_req *sreqs;
    int n_sreqs;
    mcpgw_timer *init_timer;        /* shared: bounds the gateway's initialize */
    double started;
    unsigned backoff_ms;
    mcpgw_timer *restart_timer;
    mcpgw_timer *resume_timer;      /* per-connection flow control */
    double idle_since;              /* shared: last session left (0: has sessions) */
};

typedef struct user_bucket {
    char *user;
    double tokens, stamp;
    int refs;
    struct user_bucket *next;
} user_bucket;

typedef struct rule_set {
    char *claim, *value;            /* NULL for the base rules */
    char **allow;                   /* NULL: no allow-list */
    char **deny;
    struct rule_set *next;
} rule_set;

struct session {
    inst *in;
    mcpgw_conn *conn;
    kid *k;
    char user[128];
    inflight *inflight;
    int n_inflight;
    const rule_set *scoped[8];      /* the claim rules that apply to this user */
    int n_scoped;
    user_bucket *bucket;
    int initialized;                /* shared: initialize answered */
    double last_active;
    int closing;
    session *prev, *next;
};

struct inst {
    const mcpgw_host *host;
    mcpgw_plugin_ctx *ctx;
    char name[64];
    char **argv;
    char **envp;
    char *cwd;
    int shared;                     /* 0: per-connection; N: shared:N */
    int max_children, max_children_per_user;
    unsigned idle_timeout_ms, request_timeout_ms;
    size_t max_queue_bytes;
    int max_inflight;
    size_t max_line;
    double tool_calls_per_s;
    rule_set *rules;                /* base first, then per claim */
    kid **kids;                     /* shared: N of them */
    int n_children;                 /* per-connection children running */
    session *sessions;
    user_bucket *buckets;
    mcpgw_timer *sweep;
    int stopping;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void logf_(inst *in, int level, const char *event, json_t *fields)
{
    if (!fields)
        fields = json_object();
    json_object_set_new(fields, "endpoint", json_string(in->name));
    in->host->log(in->ctx, level, event, fields);
}

/* ------------------------------------------------------------ config */

/* Splits a command line into words, without a shell: whitespace separates,
 * '...' and "..." quote, a backslash escapes the next character outside
 * single quotes. Returns a NULL-terminated array or NULL on an unbalanced
 * quote. */
static char **split_words(const char *s)
{
    size_t cap = 8, n = 0, len = strlen(s);
    char **v = calloc(cap, sizeof(*v));
    char *word = malloc(len + 1);

    if (!v || !word)
        goto fail;
    while (*s) {
        size_t w = 0;
        int have = 0;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        while (*s && *s != ' ' && *s != '\t') {
            if (*s == '\'') {
                const char *e = strchr(s + 1, '\'');
                if (!e)
                    goto fail;
                memcpy(word + w, s + 1, (size_t)(e - s - 1));
                w += (size_t)(e - s - 1);
                s = e + 1;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"') {
                    if (*s == '\\' && s[1])
                        s++;
                    word[w++] = *s++;
                }
                if (*s != '"')
                    goto fail;
                s++;
            } else {
                if (*s == '\\' && s[1])
                    s++;
                word[w++] = *s++;
            }
            have = 1;
        }
        if (!have)
            continue;
        if (n + 2 > cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof(*v));
            if (!nv)
                goto fail;
            v = nv;
        }
        if (!(v[n] = strndup(word, w)))
            goto fail;
        v[++n] = NULL;
    }
    free(word);
    if (n == 0)
        v[0] = NULL;
    return v;
fail:
    if (v)
        for (size_t i = 0; i < n; i++)
            free(v[i]);
    free(v);
    free(word);
    return NULL;
}

static void free_words(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* A list of names: separated by spaces or commas. */
static char **split_list(const char *s)
{
    char *copy = strdup(s), *tok, *save = NULL;
    size_t n = 0, cap = 8;
    char **v = calloc(cap, sizeof(*v));

    if (!copy || !v) {
        free(copy);
        free(v);
        return NULL;
    }
    for (tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
        if (n + 2 > cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        v[n] = strdup(tok);
        if (v[n])
            v[++n] = NULL;
    }
    free(copy);
    return v;
}

/* env = KEY=VALUE ... (set) or KEY (the gateway's value, when it has one). */
static char **build_env(const char *spec, char *err, size_t err_len)
{
    char **words = spec ? split_words(spec) : calloc(1, sizeof(char *));
    size_t n = 0;
    char **env;

    if (!words) {
        snprintf(err, err_len, "env: unbalanced quote");
        return NULL;
    }
    while (words[n])
        n++;
    env = calloc(n + 1, sizeof(*env));
    if (!env) {
        free_words(words);
        return NULL;
    }
    n = 0;
    for (char **w = words; *w; w++) {
        const char *eq = strchr(*w, '=');
        if (eq == *w) {
            snprintf(err, err_len, "env: '%s' has no name", *w);
            goto fail;
        }
        if (eq) {
            env[n++] = strdup(*w);
        } else {
            const char *v = getenv(*w);
            if (v) {
                size_t l = strlen(*w) + strlen(v) + 2;
                if ((env[n] = malloc(l)))
                    snprintf(env[n++], l, "%s=%s", *w, v);
            }
        }
    }
    free_words(words);
    return env;
fail:
    free_words(words);
    free_words(env);
    return NULL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (!s || !*s || *s == '-')
        return -1;
    v = strtoul(s, &end, 10);
    if (*end || v > max)
        return -1;
    *out = v;
    return 0;
}

typedef struct rule_parse {
    inst *in;
    char *err;
    size_t err_len;
    int bad;
} rule_parse;

static rule_set *rule_for(inst *in, const char *claim, const char *value)
{
    rule_set *r, **tail = &in->rules;

    for (r = in->rules; r; tail = &r->next, r = r->next)
        if ((!claim && !r->claim) ||
            (claim && r->claim && strcmp(claim, r->claim) == 0 && strcmp(value, r->value) == 0))
            return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (claim && (!(r->claim = strdup(claim)) || !(r->value = strdup(value)))) {
        free(r->claim);
        free(r);
        return NULL;
    }
    *tail = r;
    return r;
}

/* tools_allow / tools_deny, and tools_allow.CLAIM.VALUE / tools_deny.CLAIM.VALUE */
static int rule_key(const char *key, const char *value, void *arg)
{
    rule_parse *rp = arg;
    int allow;
    const char *rest;
    char claim[64];
    rule_set *r;
    char ***slot;

    if (strncmp(key, "tools_allow", 11) == 0) {
        allow = 1;
        rest = key + 11;
    } else if (strncmp(key, "tools_deny", 10) == 0) {
        allow = 0;
        rest = key + 10;
    } else {
        return 0;
    }
    if (*rest == '.') {
        const char *dot = strchr(rest + 1, '.');
        if (!dot || dot == rest + 1 || !dot[1] || (size_t)(dot - rest - 1) >= sizeof(claim)) {
            snprintf(rp->err, rp->err_len, "%s: expected %s.CLAIM.VALUE", key,
                     allow ? "tools_allow" : "tools_deny");
            rp->bad = 1;
            return 1;
        }
        memcpy(claim, rest + 1, (size_t)(dot - rest - 1));
        claim[dot - rest - 1] = '\0';
        r = rule_for(rp->in, claim, dot + 1);
    } else if (*rest) {
        return 0;
    } else {
        r = rule_for(rp->in, NULL, NULL);
    }
    if (!r) {
        snprintf(rp->err, rp->err_len, "out of memory");
        rp->bad = 1;
        return 1;
    }
    slot = allow ? &r->allow : &r->deny;
    free_words(*slot);
    *slot = split_list(value);
    return 0;
}

static void free_rules(rule_set *r)
{
    while (r) {
        rule_set *next = r->next;
        free(r->claim);
        free(r->value);
        free_words(r->allow);
        free_words(r->deny);
        free(r);
        r = next;
    }
}

static int list_matches(char **list, const char *name)
{
    for (char **p = list; p && *p; p++)
        if (fnmatch(*p, name, 0) == 0)
            return 1;
    return 0;
}

/* NULL when the session may call `tool`, else why not (static text in buf). */
static const char *tool_refusal(const session *s, const char *tool, char *buf, size_t cap)
{
    const rule_set *base = NULL;

    for (int i = 0; i < s->n_scoped; i++)
        if (list_matches(s->scoped[i]->deny, tool)) {
            snprintf(buf, cap, "tool '%s' is denied for %s=%s (tools_deny.%s.%s)", tool,
                     s->scoped[i]->claim, s->scoped[i]->value, s->scoped[i]->claim,
                     s->scoped[i]->value);
            return buf;
        }
    for (int i = 0; i < s->n_scoped; i++)
        if (list_matches(s->scoped[i]->allow, tool))
            return NULL;
    for (const rule_set *r = s->in->rules; r; r = r->next)
        if (!r->claim)
            base = r;
    if (!base)
        return NULL;
    if (list_matches(base->deny, tool)) {
        snprintf(buf, cap, "tool '%s' is denied on this endpoint (tools_deny)", tool);
        return buf;
    }
    if (base->allow && !list_matches(base->allow, tool)) {
        snprintf(buf, cap, "tool '%s' is not in this endpoint's tools_allow", tool);
        return buf;
    }
    return NULL;
}

/* ------------------------------------------------------------ sending */

static json_t *error_obj(json_t *id, int code, const char *message, const char *data)
{
    json_t *e = json_pack("{s:s, s:O?, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
                          "code", code, "message", message);
    if (e && !id)
        json_object_set_new(e, "id", json_null());
    if (e && data)
        json_object_set_new(json_object_get(e, "error"), "data", json_string(data));
    return e;
}

static void kid_flow_check(kid *k, session *s);

/* Everything to a client goes through here: a per-connection child that
 * writes faster than its client reads is paused (kid_flow_check). */
static void session_send_json(session *s, json_t *msg)
{
    if (!s->conn || s->closing || !msg)
        return;
    s->in->host->send(s->conn, msg);        /* the gateway's writer, no copy */
    if (s->k)
        kid_flow_check(s->k, s);
}

/* An answer for a request of s: alone, or into its batch. Steals msg. */
static void deliver_answer(session *s, batch *b, json_t *msg)
{
    if (!msg)
        return;
    if (b) {
        json_array_append_new(b->answers, msg);
        return;
    }
    if (s)
        session_send_json(s, msg);
    json_decref(msg);
}

static void batch_unref(batch *b)
{
    if (!b || --b->refs > 0)
        return;
    if (b->s && json_array_size(b->answers))
        session_send_json(b->s, b->answers);
    json_decref(b->answers);
    free(b);
}

/* ------------------------------------------------------------ kids */

static void kid_write_line(kid *k, json_t *msg, int *queued_ok);
static void kid_spawn(kid *k);

static unsigned bucket_of(long long id)
{
    return (unsigned)((unsigned long long)id % INFLIGHT_BUCKETS);
}

static inflight *kid_find(kid *k, long long wire)
{
    for (inflight *f = k->table[bucket_of(wire)]; f; f = f->k_next)
        if (f->wire_id == wire)
            return f;
    return NULL;
}

/* A progress token on the child's side is its request's wire id. */
static inflight *kid_find_token(kid *k, long long token)
{
    inflight *f = kid_find(k, token);
    return f && f->client_token ? f : NULL;
}

static void kid_unlink(kid *k, inflight *f)
{
    inflight **pp = &k->table[bucket_of(f->wire_id)];

    while (*pp && *pp != f)
        pp = &(*pp)->k_next;
    if (*pp)
        *pp = f->k_next;
    f->k = NULL;
}

/* Frees an in-flight request: out of its session's list, its kid's table,
 * its batch. */
static void inflight_free(inflight *f)
{
    session *s = f->s;

    if (f->timer)
        s->in->host->timer_cancel(f->timer);
    if (f->k)
        kid_unlink(f->k, f);
    if (f->s_prev)
        f->s_prev->s_next = f->s_next;
    else
        s->inflight = f->s_next;
    if (f->s_next)
        f->s_next->s_prev = f->s_prev;
    s->n_inflight--;
    json_decref(f->client_id);
    json_decref(f->client_token);
    batch_unref(f->b);
    free(f);
}

/* Answers f with an error and forgets it. */
static void inflight_fail(inflight *f, int code, const char *message, const char *data)
{
    session *s = f->s;
    inst *in = s->in;

    in->host->metric(in->ctx, MCPGW_METRIC_REQUEST_ERROR, f->method, 0);
    in->host->metric(in->ctx, MCPGW_METRIC_REQUEST, f->method, now_s() - f->started);
    deliver_answer(s, f->b, error_obj(f->client_id, code, message, data));
    inflight_free(f);
}

static void send_cancel(kid *k, long long wire, const char *reason)
{
    json_t *n = json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method",
                          "notifications/cancelled", "params", "requestId", (json_int_t)wire,
                          "reason", reason);
    kid_write_line(k, n, NULL);
    json_decref(n);
}

/* Writes one message as a line to the kid (or holds it until the kid is
 * ready, shared mode). *queued_ok (may be NULL) tells whether it went. */
static void kid_write_line(kid *k, json_t *msg, int *queued_ok)
{
    inst *in = k->in;
    char *text;
    size_t len;
    int ok = 0;

    if (queued_ok)
        *queued_ok = 0;
    if (!msg)
        return;
    if (k->ch && (k->ready || k->slot < 0)) {
        /* serialised by the gateway straight into the child's queue */
        ok = in->host->child_write_json(k->ch, msg) == 0;
        if (queued_ok)
            *queued_ok = ok;
        return;
    }
    if (!(text = json_dumps(msg, JSON_COMPACT)))
        return;
    len = strlen(text);
    text[len] = '\n';   /* json_dumps leaves room for its NUL: replaced, length + 1 below */
    if (k->held && k->held_bytes + len + 1 <= in->max_queue_bytes) {
        json_t *line = json_stringn(text, len + 1);
        ok = line && json_array_append_new(k->held, line) == 0;
        if (ok)
            k->held_bytes += len + 1;
    }
    free(text);
    if (queued_ok)
        *queued_ok = ok;
}

static void kid_flush_held(kid *k)
{
    if (!k->held)
        return;
    for (size_t i = 0; i < json_array_size(k->held); i++) {
        json_t *line = json_array_get(k->held, i);
        k->in->host->child_write(k->ch, json_string_value(line), json_string_length(line));
    }
    json_array_clear(k->held);
    k->held_bytes = 0;
}

static void session_close(session *s, int code, const char *reason)
{
    if (s->conn && !s->closing) {
        s->closing = 1;
        s->in->host->close(s->conn, code, reason);
    }
}

static void resume_check(void *arg)
{
    kid *k = arg;
    session *s = k->owner;

    k->resume_timer = NULL;
    if (!k->ch)
        return;
    if (!s || !s->conn || k->in->host->conn_queued(s->conn) < PAUSE_LOW) {
        k->in->host->child_pause(k->ch, 0);
        return;
    }
    k->resume_timer = k->in->host->timer_start(k->in->ctx, 20, resume_check, k);
}

/* Per-connection: a client that reads slower than its child writes pauses
 * the child's stdout (the child then blocks on its own pipe). */
static void kid_flow_check(kid *k, session *s)
{
    if (k->slot >= 0 || !k->ch || k->resume_timer || !s->conn)
        return;
    if (k->in->host->conn_queued(s->conn) > PAUSE_HIGH) {
        k->in->host->child_pause(k->ch, 1);
        k->resume_timer = k->in->host->timer_start(k->in->ctx, 20, resume_check, k);
    }
}

/* Rewrites what the child sent back for f and hands it to the session. */
static void answer_from_kid(kid *k, inflight *f, json_t *msg)
{
    inst *in = k->in;
    session *s = f->s;
    json_t *err = json_object_get(msg, "error");

    json_object_set(msg, "id", f->client_id);
    if (f->tools_list && (s->n_scoped || in->rules)) {
        json_t *tools = json_object_get(json_object_get(msg, "result"), "tools");
        char why[256];
        for (size_t i = 0; json_is_array(tools) && i < json_array_size(tools);) {
            const char *name = json_string_value(json_object_get(json_array_get(tools, i), "name"));
            if (name && tool_refusal(s, name, why, sizeof(why)))
                json_array_remove(tools, i);
            else
                i++;
        }
    }
    if (err)
        in->host->metric(in->ctx, MCPGW_METRIC_REQUEST_ERROR, f->method, 0);
    in->host->metric(in->ctx, MCPGW_METRIC_REQUEST, f->method, now_s() - f->started);
    json_incref(msg);
    deliver_answer(s, f->b, msg);
    f->k = NULL;            /* unlinked by the caller */
    inflight_free(f);
}

static void kid_init_timeout(void *arg);

static json_t *init_answer(kid *k, json_t *id)
{
    return json_pack("{s:s, s:O, s:O}", "jsonrpc", "2.0", "id", id, "result", k->init_result);
}

/* Shared: the child answered the gateway's initialize. The sessions
 * waiting for it get the result (or the error), each with its own id. */
static void kid_init_answered(kid *k, json_t *msg)
{
    inst *in = k->in;
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");

    k->init_wire_id = 0;
    if (k->init_timer) {
        in->host->timer_cancel(k->init_timer);
        k->init_timer = NULL;
    }
    if (json_is_object(result)) {
        json_t *note = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
                                 "notifications/initialized");
        json_decref(k->init_result);
        k->init_result = json_incref(result);
        k->ready = 1;
        kid_write_line(k, note, NULL);
        json_decref(note);
        kid_flush_held(k);
    } else {
        logf_(in, MCPGW_PLUGIN_LOG_WARN, "mcp_initialize_failed",
              json_pack("{s:O?}", "error", error));
        json_decref(k->init_params);        /* the next initialize tries its own */
        k->init_params = NULL;
        json_array_clear(k->held);          /* what waited for it fails below */
        k->held_bytes = 0;
    }
    for (session *s = in->sessions; s; s = s->next) {
        if (s->k != k)
            continue;
        for (inflight *f = s->inflight, *next; f; f = next) {
            next = f->s_next;
            int is_init = strcmp(f->method, "initialize") == 0;
            if (f->k != k || (k->ready && !is_init))
                continue;
            if (k->ready) {
                s->initialized = 1;
                in->host->metric(in->ctx, MCPGW_METRIC_REQUEST, "initialize",
                                 now_s() - f->started);
                deliver_answer(s, f->b, init_answer(k, f->client_id));
                inflight_free(f);
            } else if (!is_init) {
                inflight_fail(f, ERR_UNAVAILABLE, "MCP server failed to initialize", NULL);
            } else {
                inflight_fail(f, json_is_integer(json_object_get(error, "code"))
                                     ? (int)json_integer_value(json_object_get(error, "code"))
                                     : ERR_UNAVAILABLE,
                              json_string_value(json_object_get(error, "message"))
                                  ? json_string_value(json_object_get(error, "message"))
                                  : "MCP server failed to initialize", NULL);
            }
        }
    }
}

/* Shared: sends the initialize (the first session's parameters) to a
 * started or restarted child. Written directly: the child is not ready. */
static void kid_send_initialize(kid *k)
{
    json_t *req;

    if (!k->ch || !k->init_params)
        return;
    k->init_wire_id = ++k->next_id;
    if (!k->init_timer)
        k->init_timer = k->in->host->timer_start(
            k->in->ctx, k->in->request_timeout_ms ? k->in->request_timeout_ms : 30000,
            kid_init_timeout, k);
    req = json_pack("{s:s, s:I, s:s, s:O}", "jsonrpc", "2.0", "id", (json_int_t)k->init_wire_id,
                    "method", "initialize", "params", k->init_params);
    if (req)
        k->in->host->child_write_json(k->ch, req);
    json_decref(req);
}

/* Per-connection only: a shared child's requests (sampling, elicitation,
 * roots) could carry one user's data to another, so they are refused. */
static session *session_for_server_request(kid *k)
{
    return k->slot < 0 && k->owner && !k->owner->closing ? k->owner : NULL;
}

static char *id_key(json_t *id)
{
    return json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void sreq_free(kid *k, server_req **pp)
{
    server_req *r = *pp;

    *pp = r->next;
    k->n_sreqs--;
    free(r->key);
    free(r);
}

/* Refuses a request of the server that no session can answer. */
static void refuse_server_request(kid *k, json_t *id, const char *why)
{
    json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
                          "code", -32601, "message", why);
    kid_write_line(k, e, NULL);
    json_decref(e);
}

static void to_sessions_of(kid *k, json_t *msg)
{
    for (session *s = k->in->sessions; s; s = s->next)
        if (s->k == k && (k->slot < 0 || s->initialized))
            session_send_json(s, msg);
}

/* One line from a child's stdout. */
static void kid_line(void *arg, const char *line, size_t len)
{
    kid *k = arg;
    inst *in = k->in;
    json_t *msg = in->host->json_parse(in->ctx, line, len);
    json_t *id, *method;

    if (!json_is_object(msg)) {
        logf_(in, MCPGW_PLUGIN_LOG_DEBUG, "mcp_child_bad_line",
              json_pack("{s:i}", "bytes", (int)len));
        json_decref(msg);
        return;
    }
    id = json_object_get(msg, "id");
    method = json_object_get(msg, "method");
    if (!method && id) {                            /* an answer to a client request */
        if (json_is_integer(id)) {
            long long wire = json_integer_value(id);
            inflight *f;
            if (k->init_wire_id && wire == k->init_wire_id) {
                kid_init_answered(k, msg);
            } else if ((f = kid_find(k, wire))) {
                kid_unlink(k, f);
                answer_from_kid(k, f, msg);
            }
        }
    } else if (json_is_string(method) && id) {      /* a request from the server */
        session *s;
        server_req *r = NULL;
        if (k->slot >= 0 && strcmp(json_string_value(method), "ping") == 0) {
            json_t *pong = json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id", id, "result");
            kid_write_line(k, pong, NULL);
            json_decref(pong);
        } else if (!(s = session_for_server_request(k))) {
            refuse_server_request(k, id, "requests to the client are not available on a "
                                         "shared MCP server");
        } else if (k->n_sreqs >= MAX_SERVER_REQS || !(r = calloc(1, sizeof(*r))) ||
                   !(r->key = id_key(id))) {
            free(r);
            refuse_server_request(k, id, "too many requests to the client pending");
        } else {
            r->s = s;
            r->next = k->sreqs;
            k->sreqs = r;
            k->n_sreqs++;
            session_send_json(s, msg);
        }
    } else if (json_is_string(method)) {            /* a notification */
        const char *m = json_string_value(method);
        json_t *params = json_object_get(msg, "params");
        if (strcmp(m, "notifications/progress") == 0) {
            json_t *tok = json_object_get(params, "progressToken");
            inflight *f = json_is_integer(tok) ? kid_find_token(k, json_integer_value(tok)) : NULL;
            if (f) {
                json_object_set(params, "progressToken", f->client_token);
                session_send_json(f->s, msg);
            }
        } else if (strcmp(m, "notifications/cancelled") == 0) {
            /* the server cancels its own request to a client */
            char *key = id_key(json_object_get(params, "requestId"));
            for (server_req **pp = &k->sreqs; key && *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                    session_send_json((*pp)->s, msg);
                    sreq_free(k, pp);
                    break;
                }
            free(key);
        } else {
            /* list_changed, resources/updated, logging messages: every
             * session of this child */
            to_sessions_of(k, msg);
        }
    }
    json_decref(msg);
}

static void kid_restart_cb(void *arg)
{
    kid *k = arg;

    k->restart_timer = NULL;
    if (!k->in->stopping)
        kid_spawn(k);
}

/* A child ended unasked. */
static void kid_down(kid *k, const char *reason, const char *why);

/* A child ended unasked. */
static void kid_exit(void *arg, int status)
{
    kid *k = arg;
    const char *reason = WIFSIGNALED(status) ? "crash" : WEXITSTATUS(status) ? "crash" : "exit";
    char why[96];

    k->ch = NULL;       /* the host frees it when this returns */
    if (WIFSIGNALED(status))
        snprintf(why, sizeof(why), "MCP server killed by signal %d", WTERMSIG(status));
    else
        snprintf(why, sizeof(why), "MCP server exited with code %d", WEXITSTATUS(status));
    kid_down(k, reason, why);
}

/* The gateway's own initialize of a shared child got no answer in time:
 * the child is replaced. */
static void kid_init_timeout(void *arg)
{
    kid *k = arg;

    k->init_timer = NULL;
    if (!k->ch)
        return;
    k->in->host->child_stop(k->ch, 0);
    k->ch = NULL;
    kid_down(k, "timeout", "MCP server did not answer initialize");
}

/* A child is gone (k->ch already NULL): per-connection, its session ends;
 * shared, what was in flight fails and a new child starts after a backoff. */
static void kid_down(kid *k, const char *reason, const char *why)
{
    inst *in = k->in;

    k->ready = 0;
    k->init_wire_id = 0;
    if (k->resume_timer) {
        in->host->timer_cancel(k->resume_timer);
        k->resume_timer = NULL;
    }
    if (k->init_timer) {
        in->host->timer_cancel(k->init_timer);
        k->init_timer = NULL;
    }
    in->host->metric(in->ctx, MCPGW_METRIC_CHILDREN, NULL, -1);
    in->host->metric(in->ctx, MCPGW_METRIC_CHILD_RESTART, reason, 1);
    logf_(in, MCPGW_PLUGIN_LOG_WARN, "mcp_child_exited",
          json_pack("{s:s, s:s, s:i}", "reason", why, "sessions",
                    k->slot < 0 ? "per-connection" : "shared", "slot", k->slot));
    json_array_clear(k->held);      /* their requests fail below */
    k->held_bytes = 0;
    json_decref(k->init_result);    /* the restarted child is initialised anew */
    k->init_result = NULL;
    while (k->sreqs)
        sreq_free(k, &k->sreqs);
    if (k->slot < 0) {
        /* per-connection: its session ends with it */
        for (session *s = in->sessions; s; s = s->next)
            if (s->k == k) {
                while (s->inflight)
                    inflight_free(s->inflight);
                session_close(s, 1011, why);
            }
        in->n_children--;
        return;
    }
    /* shared: fail what was in flight, restart with backoff */
    for (unsigned b = 0; b < INFLIGHT_BUCKETS; b++)
        while (k->table[b])
            inflight_fail(k->table[b], ERR_UNAVAILABLE, "MCP server restarting", why);
    if (now_s() - k->started > HEALTHY_MS / 1000.0)
        k->backoff_ms = 0;
    k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (k->backoff_ms > BACKOFF_MAX_MS)
        k->backoff_ms = BACKOFF_MAX_MS;
    if (!in->stopping)
        k->restart_timer = in->host->timer_start(in->ctx, k->backoff_ms, kid_restart_cb, k);
}

static void kid_spawn(kid *k)
{
    inst *in = k->in;
    char err[256];
    mcpgw_child_spec spec = {
        .argv = (const char *const *)in->argv,
        .envp = (const char *const *)in->envp,
        .cwd = in->cwd,
        .max_line = in->max_line,
        .max_queue = in->max_queue_bytes,
        .on_line = kid_line,
        .on_exit = kid_exit,
        .arg = k,
    };

    k->ch = in->host->child_spawn(in->ctx, &spec, err, sizeof(err));
    k->started = now_s();
    if (!k->ch) {
        logf_(in, MCPGW_PLUGIN_LOG_ERROR, "mcp_child_spawn_failed", json_pack("{s:s}", "reason", err));
        if (k->slot >= 0 && !in->stopping) {
            k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
            if (k->backoff_ms > BACKOFF_MAX_MS)
                k->backoff_ms = BACKOFF_MAX_MS;
            k->restart_timer = in->host->timer_start(in->ctx, k->backoff_ms, kid_restart_cb, k);
        }
        return;
    }
    in->host->metric(in->ctx, MCPGW_METRIC_CHILDREN, NULL, 1);
    k->ready = k->slot < 0;     /* per-connection: the client initialises it */
    if (k->slot >= 0)
        kid_send_initialize(k); /* a restart: replay the first session's initialize */
}

static kid *kid_new(inst *in, int slot)
{
    kid *k = calloc(1, sizeof(*k));

    if (!k)
        return NULL;
    k->in = in;
    k->slot = slot;
    k->held = slot >= 0 ? json_array() : NULL;
    return k;
}

/* Ends a kid for good (per-connection session over, or shutdown). */
static void kid_free(kid *k)
{
    inst *in = k->in;

    if (k->ch) {
        in->host->child_stop(k->ch, STOP_GRACE_MS);
        in->host->metric(in->ctx, MCPGW_METRIC_CHILDREN, NULL, -1);
        if (k->slot < 0)
            in->n_children--;
    }
    if (k->restart_timer)
        in->host->timer_cancel(k->restart_timer);
    if (k->resume_timer)
        in->host->timer_cancel(k->resume_timer);
    while (k->sreqs)
        sreq_free(k, &k->sreqs);
    if (k->init_timer)
        in->host->timer_cancel(k->init_timer);
    for (unsigned b = 0; b < INFLIGHT_BUCKETS; b++)
        for (inflight *f = k->table[b]; f; f = f->k_next)
            f->k = NULL;
    json_decref(k->init_result);
    json_decref(k->init_params);
    json_decref(k->held);
    free(k);
}

/* ------------------------------------------------------------ requests */

static void request_timeout(void *arg)
{
    inflight *f = arg;
    char data[96];

    f->timer = NULL;
    snprintf(data, sizeof(data), "no answer from the MCP server within %u ms",
             f->s->in->request_timeout_ms);
    if (f->k)
        send_cancel(f->k, f->wire_id, "timeout");
    inflight_fail(f, ERR_TIMEOUT, "Request timed out", data);
}

static int rate_admit(session *s)
{
    user_bucket *b = s->bucket;
    double t, rate = s->in->tool_calls_per_s;

    if (!b || rate <= 0)
        return 1;
    t = now_s();
    b->tokens += (t - b->stamp) * rate;
    if (b->tokens > rate)
        b->tokens = rate < 1 ? 1 : rate;
    b->stamp = t;
    if (b->tokens < 1)
        return 0;
    b->tokens -= 1;
    return 1;
}

/* A request (method + id) from the client. */
static void client_request(session *s, json_t *msg, json_t *id, const char *method, batch *b)
{
    inst *in = s->in;
    kid *k = s->k;
    json_t *params = json_object_get(msg, "params");
    json_t *meta = json_object_get(params, "_meta");
    json_t *tok = json_object_get(meta, "progressToken");
    inflight *f;
    int ok;

    s->last_active = now_s();
    if (strcmp(method, "tools/call") == 0) {
        const char *tool = json_string_value(json_object_get(params, "name"));
        char why[256];
        const char *refusal = tool ? tool_refusal(s, tool, why, sizeof(why)) : NULL;
        if (refusal) {
            in->host->metric(in->ctx, MCPGW_METRIC_REQUEST_ERROR, method, 0);
            deliver_answer(s, b, error_obj(id, ERR_TOOL_REFUSED, "Tool not allowed", refusal));
            return;
        }
        if (!rate_admit(s)) {
            char data[128];
            snprintf(data, sizeof(data), "at most %g tool calls per second per user",
                     in->tool_calls_per_s);
            in->host->metric(in->ctx, MCPGW_METRIC_REQUEST_ERROR, method, 0);
            deliver_answer(s, b, error_obj(id, ERR_RATE_LIMITED, "Rate limit exceeded", data));
            return;
        }
    }
    if (!k || (!k->ch && k->slot < 0)) {
        deliver_answer(s, b, error_obj(id, ERR_UNAVAILABLE, "MCP server unavailable", NULL));
        return;
    }
    if (k->slot >= 0 && strcmp(method, "initialize") == 0 && k->ready && k->init_result) {
        /* shared: the child was initialised once; every session gets that */
        s->initialized = 1;
        in->host->metric(in->ctx, MCPGW_METRIC_REQUEST, method, 0);
        deliver_answer(s, b, init_answer(k, id));
        return;
    }
    if (s->n_inflight >= in->max_inflight) {
        deliver_answer(s, b, error_obj(id, ERR_BUSY, "Server busy",
                                       "too many requests in flight on this session"));
        return;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        deliver_answer(s, b, error_obj(id, ERR_BUSY, "Server busy", "out of memory"));
        return;
    }
    f->s = s;
    f->k = k;
    f->wire_id = ++k->next_id;
    f->client_id = json_incref(id);
    snprintf(f->method, sizeof(f->method), "%s", method);
    f->tools_list = strcmp(method, "tools/list") == 0;
    f->started = now_s();
    f->b = b;
    if (b)
        b->refs++;
    f->s_next = s->inflight;
    if (s->inflight)
        s->inflight->s_prev = f;
    s->inflight = f;
    s->n_inflight++;
    f->k_next = k->table[bucket_of(f->wire_id)];
    k->table[bucket_of(f->wire_id)] = f;

    if (k->slot >= 0 && strcmp(method, "initialize") == 0) {
        /* shared, child not initialised yet: this request waits for the
         * gateway's initialize (the first one's parameters start it) */
        if (!k->init_params) {
            json_t *caps;
            k->init_params = json_is_object(params) ? json_deep_copy(params) : json_object();
            /* a shared child cannot ask one client for sampling, elicitation
             * or roots (see session_for_server_request): it is not told they
             * exist */
            caps = json_object_get(k->init_params, "capabilities");
            json_object_del(caps, "sampling");
            json_object_del(caps, "elicitation");
            json_object_del(caps, "roots");
            if (!k->init_wire_id)
                kid_send_initialize(k);
        }
        if (in->request_timeout_ms)
            f->timer = in->host->timer_start(in->ctx, in->request_timeout_ms, request_timeout, f);
        return;
    }
    json_object_set_new(msg, "id", json_integer(f->wire_id));
    if (tok && meta) {
        f->client_token = json_incref(tok);
        f->wire_token = f->wire_id;
        json_object_set_new(meta, "progressToken", json_integer(f->wire_token));
    }
    kid_write_line(k, msg, &ok);
    if (!ok) {
        inflight_fail(f, ERR_BUSY, "Server busy", "the MCP server's input queue is full");
        return;
    }
    if (in->request_timeout_ms)
        f->timer = in->host->timer_start(in->ctx, in->request_timeout_ms, request_timeout, f);
}

static void client_notification(session *s, json_t *msg, const char *method)
{
    kid *k = s->k;
    json_t *params = json_object_get(msg, "params");

    s->last_active = now_s();
    if (!k || !k->ch)
        return;
    if (strcmp(method, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(params, "requestId");
        for (inflight *f = s->inflight; f; f = f->s_next)
            if (json_equal(f->client_id, rid)) {
                if (f->k)
                    send_cancel(f->k, f->wire_id,
                                json_string_value(json_object_get(params, "reason"))
                                    ? json_string_value(json_object_get(params, "reason"))
                                    : "cancelled by the client");
                inflight_free(f);   /* a late answer is dropped */
                break;
            }
        return;
    }
    if (k->slot >= 0 && strcmp(method, "notifications/initialized") == 0)
        return;             /* shared: the gateway sent it for the child */
    kid_write_line(k, msg, NULL);
}

/* The client answers a request of the server. */
static void client_response(session *s, json_t *msg, json_t *id)
{
    kid *k = s->k;
    char *key;

    if (!k || !(key = id_key(id)))
        return;
    for (server_req **pp = &k->sreqs; *pp; pp = &(*pp)->next)
        if ((*pp)->s == s && strcmp((*pp)->key, key) == 0) {
            sreq_free(k, pp);
            kid_write_line(k, msg, NULL);
            break;
        }
    free(key);
}

static void client_one(session *s, json_t *msg, batch *b)
{
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *ver = json_object_get(msg, "jsonrpc");
    int id_ok = !id || json_is_string(id) || json_is_integer(id);

    if (!json_is_object(msg) || !json_is_string(ver) || strcmp(json_string_value(ver), "2.0") ||
        !id_ok || (method && !json_is_string(method))) {
        deliver_answer(s, b, error_obj(id_ok ? id : NULL, ERR_INVALID_REQUEST, "Invalid Request",
                                       "expected a JSON-RPC 2.0 request, notification or response"));
        return;
    }
    if (method && id)
        client_request(s, msg, id, json_string_value(method), b);
    else if (method)
        client_notification(s, msg, json_string_value(method));
    else if (id && (json_object_get(msg, "result") || json_object_get(msg, "error")))
        client_response(s, msg, id);
    else
        deliver_answer(s, b, error_obj(id, ERR_INVALID_REQUEST, "Invalid Request",
                                       "a message needs a method, or an id with a result or error"));
}

/* ------------------------------------------------------------ sessions */

static int mcp_conn_open(void *instance, mcpgw_conn *conn, void **conn_data)
{
    inst *in = instance;
    session *s;
    const char *user = in->host->conn_user(conn);

    if (in->shared == 0) {
        int mine = 0;
        for (session *it = in->sessions; it; it = it->next)
            mine += it->k && it->k->ch && strcmp(it->user, user) == 0;
        if (in->max_children && in->n_children >= in->max_children) {
            in->host->close(conn, 1013, "Try again later: MCP server limit reached");
            return -1;
        }
        if (in->max_children_per_user && mine >= in->max_children_per_user) {
            in->host->close(conn, 1013, "Try again later: per-user MCP server limit reached");
            return -1;
        }
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->in = in;
    s->conn = conn;
    snprintf(s->user, sizeof(s->user), "%s", user);
    s->last_active = now_s();
    for (rule_set *r = in->rules; r; r = r->next) {
        if (!r->claim || s->n_scoped >= (int)(sizeof(s->scoped) / sizeof(s->scoped[0])))
            continue;
        if (in->host->claim_matches(conn, r->claim, r->value))
            s->scoped[s->n_scoped++] = r;
    }
    if (in->tool_calls_per_s > 0) {
        user_bucket *b;
        for (b = in->buckets; b; b = b->next)
            if (strcmp(b->user, user) == 0)
                break;
        if (!b && (b = calloc(1, sizeof(*b))) && (b->user = strdup(user))) {
            b->tokens = in->tool_calls_per_s < 1 ? 1 : in->tool_calls_per_s;
            b->stamp = now_s();
            b->next = in->buckets;
            in->buckets = b;
        } else if (b && !b->user) {
            free(b);
            b = NULL;
        }
        if (b)
            b->refs++;
        s->bucket = b;
    }
    if (in->shared) {
        /* the shared child with the fewest sessions */
        kid *best = NULL;
        for (int i = 0; i < in->shared; i++)
            if (!best || in->kids[i]->n_sessions < best->n_sessions)
                best = in->kids[i];
        s->k = best;
        if (!best) {            /* shared >= 1: cannot happen */
            in->host->close(conn, 1011, "no MCP server");
        } else {
            best->n_sessions++;
            best->idle_since = 0;
            if (!best->ch && !best->restart_timer)
                kid_spawn(best);
        }
    } else {
        s->k = kid_new(in, -1);
        if (s->k) {
            s->k->owner = s;
            kid_spawn(s->k);
            if (s->k->ch)
                in->n_children++;
        }
        if (!s->k || !s->k->ch) {
            if (s->k)
                kid_free(s->k);
            s->k = NULL;
            in->host->close(conn, 1011, "MCP server could not be started");
        }
    }
    s->next = in->sessions;
    if (in->sessions)
        in->sessions->prev = s;
    in->sessions = s;
    *conn_data = s;
    return 0;
}

static void mcp_conn_message(void *instance, mcpgw_conn *conn, void *conn_data, json_t *msg,
                             const char *text, size_t len)
{
    session *s = conn_data;

    (void)instance;
    (void)conn;
    (void)text;
    (void)len;
    if (s->closing)
        return;
    if (json_is_array(msg)) {
        batch *b = calloc(1, sizeof(*b));
        size_t i;
        if (!b)
            return;
        b->answers = json_array();
        b->s = s;
        b->refs = 1;
        for (i = 0; i < json_array_size(msg); i++)
            client_one(s, json_array_get(msg, i), b);
        batch_unref(b);
    } else {
        client_one(s, msg, NULL);
    }
}

static void session_gone_kid(session *s)
{
    kid *k = s->k;

    if (!k)
        return;
    for (server_req **pp = &k->sreqs; *pp;) {
        if ((*pp)->s == s)
            sreq_free(k, pp);
        else
            pp = &(*pp)->next;
    }
    if (k->slot < 0) {
        kid_free(k);
    } else {
        k->n_sessions--;
        if (k->n_sessions == 0)
            k->idle_since = now_s();
    }
    s->k = NULL;
}

static void mcp_conn_close(void *instance, mcpgw_conn *conn, void *conn_data, int code)
{
    inst *in = instance;
    session *s = conn_data;

    (void)conn;
    (void)code;
    s->closing = 1;
    s->conn = NULL;
    /* in-flight requests: the server hears they are cancelled, then (per
     * connection) stops */
    while (s->inflight) {
        inflight *f = s->inflight;
        if (f->k && f->k->ch)
            send_cancel(f->k, f->wire_id, "client disconnected");
        if (f->b)
            f->b->s = NULL;
        inflight_free(f);
    }
    session_gone_kid(s);
    if (s->bucket && --s->bucket->refs == 0) {
        for (user_bucket **pp = &in->buckets; *pp; pp = &(*pp)->next)
            if (*pp == s->bucket) {
                *pp = s->bucket->next;
                break;
            }
        free(s->bucket->user);
        free(s->bucket);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        in->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

/* ------------------------------------------------------------ idle sweep */

static void sweep(void *arg)
{
    inst *in = arg;
    double t = now_s(), idle = in->idle_timeout_ms / 1000.0;
    unsigned every = in->idle_timeout_ms / 4 < 1000 ? in->idle_timeout_ms / 4 : 1000;

    in->sweep = NULL;
    for (session *s = in->sessions; s; s = s->next)
        if (!s->closing && t - s->last_active >= idle && !s->n_inflight)
            session_close(s, 1000, "Idle timeout");
    for (int i = 0; i < in->shared; i++) {
        kid *k = in->kids[i];
        if (k->ch && k->n_sessions == 0 && k->idle_since && t - k->idle_since >= idle) {
            in->host->child_stop(k->ch, STOP_GRACE_MS);
            in->host->metric(in->ctx, MCPGW_METRIC_CHILDREN, NULL, -1);
            k->ch = NULL;
            k->ready = 0;
            json_decref(k->init_result);    /* the next session initialises anew */
            k->init_result = NULL;
            json_decref(k->init_params);
            k->init_params = NULL;
            k->init_wire_id = 0;
            json_array_clear(k->held);
            k->held_bytes = 0;
            if (k->init_timer) {
                in->host->timer_cancel(k->init_timer);
                k->init_timer = NULL;
            }
        }
    }
    in->sweep = in->host->timer_start(in->ctx, every ? every : 1, sweep, in);
}

/* ------------------------------------------------------------ init */

static const char *const mcp_keys[] = {
    "command", "env", "cwd", "sessions", "max_children", "max_children_per_user",
    "idle_timeout_ms", "request_timeout_ms", "max_queue_bytes", "max_inflight",
    "max_line_bytes", "tools_allow", "tools_deny", "tools_allow.*", "tools_deny.*",
    "tool_calls_per_s", NULL
};

static void inst_free(inst *in)
{
    if (!in)
        return;
    in->stopping = 1;
    if (in->sweep)
        in->host->timer_cancel(in->sweep);
    for (int i = 0; in->kids && i < in->shared; i++)
        if (in->kids[i])
            kid_free(in->kids[i]);
    free(in->kids);
    free_words(in->argv);
    free_words(in->envp);
    free(in->cwd);
    free_rules(in->rules);
    while (in->buckets) {
        user_bucket *b = in->buckets;
        in->buckets = b->next;
        free(b->user);
        free(b);
    }
    free(in);
}

static int mcp_init(const mcpgw_host *host, mcpgw_plugin_ctx *ctx, void **instance, char *err,
                    size_t err_len)
{
    inst *in;
    const char *v;
    unsigned long n;
    rule_parse rp;

    if (!MCPGW_HOST_HAS(host, claim_matches)) {
        snprintf(err, err_len, "mcp_stdio needs a gateway with plugin ABI 1.3");
        return -1;
    }
    in = calloc(1, sizeof(*in));
    if (!in) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    in->host = host;
    in->ctx = ctx;
    snprintf(in->name, sizeof(in->name), "%s", host->handler_type(ctx));
    in->max_queue_bytes = 4 * 1024 * 1024;
    in->max_line = 16 * 1024 * 1024;
    in->max_inflight = 256;
    in->request_timeout_ms = 60000;

    v = host->config_get(ctx, "command");
    if (!v || !(in->argv = split_words(v)) || !in->argv[0]) {
        snprintf(err, err_len, v ? "command: empty or unbalanced quote" :
                                   "missing key 'command' (the stdio MCP server to run)");
        goto fail;
    }
    if (!(in->envp = build_env(host->config_get(ctx, "env"), err, err_len)))
        goto fail;
    if ((v = host->config_get(ctx, "cwd")) && !(in->cwd = strdup(v)))
        goto fail;
    v = host->config_get(ctx, "sessions");
    if (!v || strcmp(v, "per-connection") == 0) {
        in->shared = 0;
    } else if (strncmp(v, "shared:", 7) == 0 && parse_uint(v + 7, 64, &n) == 0 && n >= 1) {
        in->shared = (int)n;
    } else if (strcmp(v, "shared") == 0) {
        in->shared = 1;
    } else {
        snprintf(err, err_len, "sessions = %s: expected per-connection or shared:N (N 1..64)", v);
        goto fail;
    }
#define UINT_KEY(key, max, field, cast)                                                   \
    if ((v = host->config_get(ctx, key))) {                                               \
        if (parse_uint(v, max, &n) != 0) {                                                \
            snprintf(err, err_len, "%s = %s: expected an integer 0..%lu", key, v,         \
                     (unsigned long)(max));                                               \
            goto fail;                                                                    \
        }                                                                                 \
        in->field = (cast)n;                                                              \
    }
    UINT_KEY("max_children", 1000000, max_children, int)
    UINT_KEY("max_children_per_user", 1000000, max_children_per_user, int)
    UINT_KEY("idle_timeout_ms", 86400000, idle_timeout_ms, unsigned)
    UINT_KEY("request_timeout_ms", 86400000, request_timeout_ms, unsigned)
    UINT_KEY("max_queue_bytes", 1073741824, max_queue_bytes, size_t)
    UINT_KEY("max_inflight", 1000000, max_inflight, int)
    UINT_KEY("max_line_bytes", 1073741824, max_line, size_t)
#undef UINT_KEY
    if (in->max_queue_bytes < 1024 || in->max_line < 1024 || in->max_inflight < 1) {
        snprintf(err, err_len, "max_queue_bytes and max_line_bytes need at least 1024, "
                 "max_inflight at least 1");
        goto fail;
    }
    if ((v = host->config_get(ctx, "tool_calls_per_s"))) {
        char *end;
        in->tool_calls_per_s = strtod(v, &end);
        if (*end || in->tool_calls_per_s < 0 || in->tool_calls_per_s > 1e6) {
            snprintf(err, err_len, "tool_calls_per_s = %s: expected a number 0..1000000", v);
            goto fail;
        }
    }
    rp.in = in;
    rp.err = err;
    rp.err_len = err_len;
    rp.bad = 0;
    host->config_foreach(ctx, rule_key, &rp);
    if (rp.bad)
        goto fail;
    if (in->shared) {
        in->kids = calloc((size_t)in->shared, sizeof(*in->kids));
        if (!in->kids)
            goto fail;
        for (int i = 0; i < in->shared; i++)
            if (!(in->kids[i] = kid_new(in, i)))
                goto fail;
    }
    if (in->idle_timeout_ms)
        in->sweep = host->timer_start(ctx, in->idle_timeout_ms / 4 < 1000 ?
                                               (in->idle_timeout_ms / 4 ? in->idle_timeout_ms / 4 : 1)
                                               : 1000, sweep, in);
    *instance = in;
    return 0;
fail:
    if (!err[0])
        snprintf(err, err_len, "out of memory");
    inst_free(in);
    return -1;
}

static void mcp_fini(void *instance)
{
    inst_free(instance);
}

MCPGW_PLUGIN_EXPORT const mcpgw_plugin mcpgw_plugin_descriptor = {
    .abi_major = MCPGW_PLUGIN_ABI_MAJOR,
    .abi_minor = 3,
    .size = sizeof(mcpgw_plugin),
    .name = "mcp_stdio",
    .version = "1.0.0",
    .description = "fronts a stdio MCP server for the sessions of a jsonrpc endpoint",
    .init = mcp_init,
    .fini = mcp_fini,
    .config_keys = mcp_keys,
    .conn_open = mcp_conn_open,
    .conn_message = mcp_conn_message,
    .conn_close = mcp_conn_close,
};
