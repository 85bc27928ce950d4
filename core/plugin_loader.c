/*
 * plugin_loader.c - finds, checks and initialises the plugins named in
 * [handler.*] sections and in [endpoint.*] sections with protocol jsonrpc
 * (see plugin_loader.h for the rules).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dispatch.h"
#include "host_api.h"
#include "log.h"
#include "plugin_abi.h"
#include "plugin_loader.h"
#include "protocol.h"
#include "server.h"

/* Points ctx at section h and holds h's snapshot. The snapshot it leaves
 * stays held (until fini) only if the plugin read strings from it. */
static void ctx_set_section(mcpgw_plugin_ctx *ctx, const mcpgw_handler_config *h)
{
    mcpgw_config *old = ctx->cfg;

    ctx->section = h;
    if (h->owner == old)
        return;
    ctx->cfg = mcpgw_config_ref(h->owner);
    if (old && ctx->cfg_read) {
        mcpgw_config **grown = realloc(ctx->pinned, (ctx->n_pinned + 1) * sizeof(*grown));
        if (!grown)
            return;         /* out of memory: never freed rather than freed too early */
        ctx->pinned = grown;
        ctx->pinned[ctx->n_pinned++] = old;
    } else {
        mcpgw_config_free(old);
    }
    ctx->cfg_read = 0;
}

/* Frees a context after its fini: its snapshots are released. */
static void ctx_free(mcpgw_plugin_ctx *ctx)
{
    mcpgw_config_free(ctx->cfg);
    for (size_t i = 0; i < ctx->n_pinned; i++)
        mcpgw_config_free(ctx->pinned[i]);
    free(ctx->pinned);
    free(ctx);
}

static char *plugin_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 8;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s.so", dir, name);
    return p;
}

static void log_failure(mcpgw_server *srv, const mcpgw_handler_config *h, const char *path,
                        const char *reason)
{
    char where[512];

    srv->metrics->plugin_load_failures++;
    snprintf(where, sizeof(where), "%s:%d", h->file ? h->file : "?", h->line);
    mcpgw_server_log(srv, MCPGW_LOG_ERROR, "plugin_load_failed", "{s:s, s:s, s:s, s:s, s:s}",
                     "plugin", h->plugin, h->is_endpoint ? "endpoint" : "type", h->type, "path",
                     path ? path : "", "reason", reason, "config", where);
}

#define DESC_HAS(d, m) ((d)->size >= offsetof(mcpgw_plugin, m) + sizeof((d)->m))

/* Does the section fit the plugin: an endpoint's plugin has the connection
 * callbacks, and every key is one the plugin declares (when it declares
 * them). Returns NULL or the reason in buf. */
static const char *check_section(const mcpgw_plugin *d, const mcpgw_handler_config *h, char *buf,
                                 size_t cap)
{
    if (h->is_endpoint && !(DESC_HAS(d, conn_close) && d->conn_open && d->conn_message &&
                            d->conn_close)) {
        snprintf(buf, cap, "plugin '%s' is not a connection-level plugin (ABI 1.3 conn_open, "
                 "conn_message, conn_close): it cannot serve [endpoint.%s]", h->plugin, h->type);
        return buf;
    }
    if (DESC_HAS(d, config_keys) && d->config_keys) {
        for (const mcpgw_kv *kv = h->options; kv; kv = kv->next) {
            const char *const *k;
            for (k = d->config_keys; *k; k++) {
                size_t kl = strlen(*k);
                /* "prefix.*" takes every key under prefix. */
                if (strcmp(*k, kv->key) == 0 ||
                    (kl >= 2 && strcmp(*k + kl - 2, ".*") == 0 &&
                     strncmp(*k, kv->key, kl - 1) == 0 && kv->key[kl - 1]))
                    break;
            }
            if (!*k) {
                snprintf(buf, cap, "%s:%d: unknown key '%s' in [%s.%s] (plugin '%s' takes: ",
                         kv->file, kv->line, kv->key, h->is_endpoint ? "endpoint" : "handler",
                         h->type, h->plugin);
                for (k = d->config_keys; *k; k++) {
                    size_t used = strlen(buf);
                    snprintf(buf + used, cap - used, "%s%s", k == d->config_keys ? "" : ", ", *k);
                }
                if (strlen(buf) + 2 < cap)
                    strcat(buf, ")");
                return buf;
            }
        }
    }
    return NULL;
}

mcpgw_plugin_ctx *mcpgw_plugins_find_section(const mcpgw_plugin_set *set,
                                             const mcpgw_handler_config *section)
{
    for (mcpgw_plugin_ctx *ctx = set->contexts; ctx; ctx = ctx->next)
        if (ctx->section == section && ctx->initialised)
            return ctx;
    return NULL;
}

/* Sections that load a plugin: handlers, and endpoints speaking jsonrpc. */
static int loads_plugin(const mcpgw_handler_config *h)
{
    return !h->is_endpoint || h->protocol == MCPGW_ENDPOINT_JSONRPC;
}

/* The new configuration's section standing for ctx's, or NULL. */
static const mcpgw_handler_config *section_in(const mcpgw_config *cfg,
                                              const mcpgw_handler_config *old)
{
    if (!old->is_endpoint)
        return mcpgw_config_handler(cfg, old->type);
    for (const mcpgw_handler_config *h = cfg->endpoints; h; h = h->next)
        if (strcmp(h->type, old->type) == 0)
            return loads_plugin(h) ? h : NULL;
    return NULL;
}

/* dlopens NAME.so once; later sections naming it share the module. */
static mcpgw_module *module_get(mcpgw_server *srv, mcpgw_plugin_set *set,
                                const mcpgw_handler_config *h, const char *plugins_dir)
{
    mcpgw_module *m;
    char reason[512];
    const char *why;
    struct stat st;

    for (m = set->modules; m; m = m->next)
        if (strcmp(m->name, h->plugin) == 0)
            return m;

    m = calloc(1, sizeof(*m));
    if (!m || !(m->name = strdup(h->plugin)) ||
        !(m->path = plugin_path(plugins_dir, h->plugin))) {
        log_failure(srv, h, NULL, "out of memory");
        goto fail;
    }
    if (stat(m->path, &st) != 0) {
        snprintf(reason, sizeof(reason), "no such plugin file (check [plugins] dir)");
        log_failure(srv, h, m->path, reason);
        goto fail;
    }
    m->handle = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
    if (!m->handle) {
        snprintf(reason, sizeof(reason), "dlopen failed: %s (check its dependencies with ldd)",
                 dlerror());
        log_failure(srv, h, m->path, reason);
        goto fail;
    }
    m->desc = dlsym(m->handle, "mcpgw_plugin_descriptor");
    if (!m->desc) {
        log_failure(srv, h, m->path, "no mcpgw_plugin_descriptor symbol (use MCPGW_PLUGIN_DEFINE)");
        goto fail;
    }
    why = mcpgw_plugin_check_descriptor(m->desc, reason, sizeof(reason));
    if (why) {
        log_failure(srv, h, m->path, why);
        goto fail;
    }
    m->next = set->modules;
    set->modules = m;
    return m;

fail:
    if (m) {
        if (m->handle)
            dlclose(m->handle);
        free(m->name);
        free(m->path);
        free(m);
    }
    return NULL;
}

static int init_section_from(mcpgw_server *srv, mcpgw_plugin_set *set,
                             const mcpgw_handler_config *h, const char *plugins_dir);

static int init_section(mcpgw_server *srv, mcpgw_plugin_set *set, const mcpgw_handler_config *h)
{
    return init_section_from(srv, set, h, srv->gw->cfg->plugins_dir);
}

static int init_section_from(mcpgw_server *srv, mcpgw_plugin_set *set,
                             const mcpgw_handler_config *h, const char *plugins_dir)
{
    mcpgw_module *m = module_get(srv, set, h, plugins_dir);
    mcpgw_plugin_ctx *ctx;
    char err[256] = "";
    char why[1024];
    int rc;

    if (!m)
        return -1;
    if (check_section(m->desc, h, why, sizeof(why))) {
        log_failure(srv, h, m->path, why);
        return -1;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        log_failure(srv, h, m->path, "out of memory");
        return -1;
    }
    ctx->srv = srv;
    ctx_set_section(ctx, h);
    ctx->module = m;
    ctx->next = set->contexts;
    set->contexts = ctx;

    ctx->in_init = 1;
    rc = m->desc->init(mcpgw_host_table(), ctx, &ctx->instance, err, sizeof(err));
    ctx->in_init = 0;
    if (rc != 0) {
        char reason[320];
        snprintf(reason, sizeof(reason), "init refused: %s", err[0] ? err : "no reason given");
        log_failure(srv, h, m->path, reason);
        return -1;
    }
    ctx->initialised = 1;
    if (ctx->register_error[0]) {
        log_failure(srv, h, m->path, ctx->register_error);
        return -1;
    }
    mcpgw_server_log(srv, MCPGW_LOG_INFO, "plugin_loaded", "{s:s, s:s, s:s, s:s}", "plugin",
                     m->desc->name, h->is_endpoint ? "endpoint" : "type", h->type, "version",
                     m->desc->version, "path", m->path);
    return 0;
}

int mcpgw_plugins_load(mcpgw_server *srv, mcpgw_plugin_set *set)
{
    const mcpgw_handler_config *h;

    for (h = srv->gw->cfg->handlers; h; h = h->next)
        if (init_section(srv, set, h) != 0)
            return -1;
    for (h = srv->gw->cfg->endpoints; h; h = h->next)
        if (loads_plugin(h) && init_section(srv, set, h) != 0)
            return -1;
    return 0;
}

static int kv_equal(const mcpgw_kv *a, const mcpgw_kv *b)
{
    for (; a && b; a = a->next, b = b->next)
        if (strcmp(a->key, b->key) != 0 || strcmp(a->value, b->value) != 0)
            return 0;
    return a == b;
}

static void ctx_finalise(mcpgw_server *srv, mcpgw_plugin_set *set, mcpgw_plugin_ctx *ctx)
{
    mcpgw_plugin_ctx **pp;

    mcpgw_handler_table_remove_ctx(&srv->handlers, ctx);
    if (ctx->section->is_endpoint)
        mcpgw_jsonrpc_detach(srv, ctx);     /* its connections end first */
    if (ctx->initialised && ctx->module->desc->fini)
        ctx->module->desc->fini(ctx->instance);
    for (pp = &set->contexts; *pp; pp = &(*pp)->next)
        if (*pp == ctx) {
            *pp = ctx->next;
            break;
        }
    ctx_free(ctx);
}

int mcpgw_plugins_reload(mcpgw_server *srv, mcpgw_plugin_set *set, const mcpgw_config *new_cfg)
{
    const mcpgw_handler_config *h;
    mcpgw_plugin_ctx *ctx, *next;

    /* 1. Every plugin a new section names must open and pass the checks. */
    for (int pass = 0; pass < 2; pass++)
        for (h = pass ? new_cfg->endpoints : new_cfg->handlers; h; h = h->next) {
            const mcpgw_module *m;
            char why[1024];
            if (!loads_plugin(h))
                continue;
            if (!(m = module_get(srv, set, h, new_cfg->plugins_dir)))
                return -1;
            if (check_section(m->desc, h, why, sizeof(why))) {
                log_failure(srv, h, m->path, why);
                return -1;
            }
        }

    /* 2. Sections gone, or now naming another plugin: unregister, fini. */
    for (ctx = set->contexts; ctx; ctx = next) {
        const mcpgw_handler_config *nh = section_in(new_cfg, ctx->section);
        next = ctx->next;
        if (!nh || strcmp(nh->plugin, ctx->section->plugin) != 0) {
            mcpgw_server_log(srv, MCPGW_LOG_INFO, "plugin_unloaded", "{s:s, s:s}", "plugin",
                             ctx->section->plugin, "type", ctx->section->type);
            ctx_finalise(srv, set, ctx);
        }
    }

    /* 3. Sections kept: point at the new section; tell the plugin if its
     *    keys changed. */
    for (ctx = set->contexts; ctx; ctx = ctx->next) {
        const mcpgw_handler_config *nh = section_in(new_cfg, ctx->section);
        const mcpgw_plugin *d = ctx->module->desc;
        int changed;
        char err[256] = "";

        if (!nh)
            continue;
        changed = !kv_equal(ctx->section->options, nh->options);
        ctx_set_section(ctx, nh);
        if (!changed)
            continue;
        if (d->size >= offsetof(mcpgw_plugin, reload) + sizeof(d->reload) && d->reload) {
            if (d->reload(ctx->instance, ctx, err, sizeof(err)) != 0)
                mcpgw_server_log(srv, MCPGW_LOG_ERROR, "plugin_reload_failed", "{s:s, s:s, s:s}",
                                 "plugin", nh->plugin, "type", nh->type, "reason",
                                 err[0] ? err : "no reason given");
            else
                mcpgw_server_log(srv, MCPGW_LOG_INFO, "plugin_reloaded", "{s:s, s:s}", "plugin",
                                 nh->plugin, "type", nh->type);
        } else {
            mcpgw_server_log(srv, MCPGW_LOG_WARN, "plugin_reload_unsupported", "{s:s, s:s, s:s}",
                             "plugin", nh->plugin, "type", nh->type, "reason",
                             "the plugin has no reload callback: its changed " "keys take effect after a restart");
        }
    }

    /* 4. New sections: load and initialise. */
    for (int pass = 0; pass < 2; pass++)
    for (h = pass ? new_cfg->endpoints : new_cfg->handlers; h; h = h->next) {
        int found = 0;
        if (!loads_plugin(h))
            continue;
        for (ctx = set->contexts; ctx; ctx = ctx->next)
            found |= ctx->section == h;
        if (!found && init_section_from(srv, set, h, new_cfg->plugins_dir) != 0) {
            /* Its types stay unregistered; the rest of the reload stands. */
            for (ctx = set->contexts; ctx; ctx = ctx->next)
                if (ctx->section == h) {
                    ctx_finalise(srv, set, ctx);
                    break;
                }
        }
    }
    return 0;
}

void mcpgw_plugins_unload(mcpgw_plugin_set *set)
{
    mcpgw_plugin_ctx *ctx = set->contexts;
    mcpgw_module *m = set->modules;

    /* Every fini first, then the contexts: a fini may complete a request
     * that finishes in another plugin (a batch's sub-request), which then
     * still calls the host with its own, already finalised, context. */
    for (; ctx; ctx = ctx->next)
        if (ctx->initialised && ctx->module->desc->fini)
            ctx->module->desc->fini(ctx->instance);
    ctx = set->contexts;
    while (ctx) {
        mcpgw_plugin_ctx *next = ctx->next;
        ctx_free(ctx);
        ctx = next;
    }
    set->contexts = NULL;
    while (m) {
        mcpgw_module *next = m->next;
        /* Keep the code mapped under sanitizers so leak reports can name it. */
        if (!getenv("MCPGW_NO_DLCLOSE"))
            dlclose(m->handle);
        free(m->name);
        free(m->path);
        free(m);
        m = next;
    }
    set->modules = NULL;
}

/* mcpgw -t: opens each plugin file the way the gateway will (a plugin's
 * constructors run, its init does not) and checks its ABI and the keys of
 * the sections naming it. */
static int check_one(const mcpgw_config *cfg, const mcpgw_handler_config *h, char *errs,
                     size_t cap, size_t *used)
{
    char *path = plugin_path(cfg->plugins_dir, h->plugin);
    char reason[1024];
    const char *why = NULL;
    struct stat st;
    void *handle = NULL;
    int n;

    if (!path)
        return 0;
    if (stat(path, &st) != 0) {
        snprintf(reason, sizeof(reason), "plugin '%s' not found: %s", h->plugin, path);
        why = reason;
    } else if (!(handle = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        snprintf(reason, sizeof(reason), "plugin '%s': dlopen failed: %s", h->plugin, dlerror());
        why = reason;
    } else {
        const mcpgw_plugin *d = dlsym(handle, "mcpgw_plugin_descriptor");
        char abi[256];
        if (!d) {
            snprintf(reason, sizeof(reason), "plugin '%s' has no mcpgw_plugin_descriptor",
                     h->plugin);
            why = reason;
        } else if (mcpgw_plugin_check_descriptor(d, abi, sizeof(abi))) {
            snprintf(reason, sizeof(reason), "plugin '%s': %s", h->plugin,
                     mcpgw_plugin_check_descriptor(d, abi, sizeof(abi)));
            why = reason;
        } else {
            why = check_section(d, h, reason, sizeof(reason));
        }
    }
    if (handle && !getenv("MCPGW_NO_DLCLOSE"))
        dlclose(handle);
    free(path);
    if (!why)
        return 0;
    if (strncmp(why, h->file, strlen(h->file)) == 0)    /* already "file:line: ..." */
        n = snprintf(errs + *used, cap > *used ? cap - *used : 0, "%s\n", why);
    else
        n = snprintf(errs + *used, cap > *used ? cap - *used : 0, "%s:%d: %s\n", h->file,
                     h->line, why);
    if (n > 0 && *used + (size_t)n < cap)
        *used += (size_t)n;
    return 1;
}

int mcpgw_plugins_check_files(const mcpgw_config *cfg, char *errs, size_t cap)
{
    const mcpgw_handler_config *h;
    int problems = 0;
    size_t used = 0;

    if (cap)
        errs[0] = '\0';
    for (h = cfg->handlers; h; h = h->next)
        problems += check_one(cfg, h, errs, cap, &used);
    for (h = cfg->endpoints; h; h = h->next)
        if (loads_plugin(h))
            problems += check_one(cfg, h, errs, cap, &used);
    return problems;
}
