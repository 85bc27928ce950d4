/*
 * null_init.c - a test plugin whose descriptor has no init function. The
 * loader must refuse it (init is mandatory).
 */
#include <mcpgw/plugin.h>

MCPGW_PLUGIN_DEFINE("null_init", "0.0.1", "test: init is NULL", NULL, NULL);
