/*
 * child.h - child processes for plugins (host->child_spawn, plugin.h ABI
 * 1.3): spawned without a shell into their own process group, with exactly
 * the environment the plugin lists, default signal dispositions and only
 * their three pipes; the worker's loop services the pipes (stdout cut into
 * lines, stdin a bounded queue written at the end of the loop iteration,
 * stderr lines logged with a rate limit) and learns of the exit through a
 * pidfd.
 *
 * Ownership: the worker (mcpgw_server) owns every child on its list. The
 * plugin's handle is valid until on_exit returns or until child_stop(); a
 * stopped child stays on the list until it is reaped.
 * mcpgw_children_free_all() ends whatever is left at shutdown.
 */
#ifndef MCPGW_CHILD_H
#define MCPGW_CHILD_H

#include <stddef.h>
#include "mcpgw/plugin.h"

typedef struct mcpgw_server mcpgw_server;

mcpgw_child *mcpgw_child_spawn(mcpgw_server *srv, const char *owner,
                               const mcpgw_child_spec *spec, char *err, size_t err_len);
int mcpgw_child_write(mcpgw_child *ch, const char *data, size_t len);
/* msg serialised (json_write.h) and a newline, as one write. */
int mcpgw_child_write_json(mcpgw_child *ch, json_t *msg);
size_t mcpgw_child_queued(mcpgw_child *ch);
void mcpgw_child_pause(mcpgw_child *ch, int paused);
void mcpgw_child_stop(mcpgw_child *ch, unsigned grace_ms);
long mcpgw_child_pid(mcpgw_child *ch);

/* Shutdown: every child left gets its stdin closed and SIGTERM, then
 * SIGKILL after a short wait, and is reaped. No callback runs. */
void mcpgw_children_free_all(mcpgw_server *srv);

#endif
