/*
 * plugin_loader.h - loads the handler plugins named in [handler.*] sections.
 *
 * For each section, in configuration order: dlopen PLUGINS_DIR/NAME.so
 * (RTLD_NOW | RTLD_LOCAL, once per file), find `mcpgw_plugin_descriptor`,
 * check the ABI (major equal, minor not newer than ours, descriptor at least
 * the 1.0 size, init present), then call init with the section's context.
 * Any failure is one log line (plugin_load_failed) and a -1: the gateway
 * does not start half-configured.
 *
 * Ownership: the set owns the contexts and the dlopen handles; fini runs in
 * reverse order of init in mcpgw_plugins_unload(). A context holds a
 * reference on its section's configuration snapshot, and on every earlier
 * one the plugin read strings from (host->config_get() promises them until
 * fini); a reload releases the others.
 */
#ifndef MCPGW_PLUGIN_LOADER_H
#define MCPGW_PLUGIN_LOADER_H

#include <stddef.h>
#include "mcpgw/plugin.h"
#include "config.h"

typedef struct mcpgw_server mcpgw_server;

typedef struct mcpgw_module {
    char *name;
    char *path;
    void *handle;                   /* dlopen handle */
    const mcpgw_plugin *desc;
    struct mcpgw_module *next;
} mcpgw_module;

struct mcpgw_plugin_ctx {
    mcpgw_server *srv;
    const mcpgw_handler_config *section;
    mcpgw_config *cfg;              /* a reference on section's snapshot */
    int cfg_read;                   /* config_get/foreach answered from cfg */
    mcpgw_config **pinned;          /* earlier snapshots it read strings from: */
    size_t n_pinned;                /* kept until fini (config_get's promise) */
    mcpgw_module *module;
    void *instance;                 /* what init() returned */
    int initialised;                /* init() succeeded: fini() is due */
    int in_init;                    /* register_handler is allowed */
    char register_error[256];       /* first register_handler failure */
    struct mcpgw_plugin_ctx *next;
};

typedef struct mcpgw_plugin_set {
    mcpgw_module *modules;
    mcpgw_plugin_ctx *contexts;     /* newest first: the fini order */
} mcpgw_plugin_set;

/* Loads every configured plugin. 0, or -1 after logging plugin_load_failed. */
int mcpgw_plugins_load(mcpgw_server *srv, mcpgw_plugin_set *set);
/* Calls fini for each initialised context (reverse order) and dlcloses. */
void mcpgw_plugins_unload(mcpgw_plugin_set *set);

/* Applies the [handler.*] sections of new_cfg (reload): sections gone are
 * unregistered and finalised, new ones loaded and initialised, changed ones
 * get the plugin's reload callback. Every new plugin file is opened and
 * checked first: if any fails, nothing changes and -1 is returned. */
int mcpgw_plugins_reload(mcpgw_server *srv, mcpgw_plugin_set *set, const mcpgw_config *new_cfg);

/* The context serving a section (an endpoint's plugin), or NULL. */
mcpgw_plugin_ctx *mcpgw_plugins_find_section(const mcpgw_plugin_set *set,
                                             const mcpgw_handler_config *section);

/* Checks, without loading, that every configured plugin file exists
 * (for mcpgw -t). Writes problems as lines into errs. Returns the count. */
int mcpgw_plugins_check_files(const mcpgw_config *cfg, char *errs, size_t cap);

#endif
