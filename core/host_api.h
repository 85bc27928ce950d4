/*
 * host_api.h - the table of host services handed to every plugin's init().
 */
#ifndef MCPGW_HOST_API_H
#define MCPGW_HOST_API_H

#include "mcpgw/plugin.h"

/* The one, immutable host table (it holds only function pointers). */
const mcpgw_host *mcpgw_host_table(void);

/* Frees the timers plugins left pending (shutdown, after every fini). */
typedef struct mcpgw_server mcpgw_server;
void mcpgw_host_timers_free(mcpgw_server *srv);

#endif
