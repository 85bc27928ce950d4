/*
 * plugin_abi.h - the rules a host applies to a plugin, shared by the
 * gateway's plugin loader and host table (plugin_loader.c, host_api.c) and
 * by the mock host (mock/mock_host.c): the descriptor check against this
 * build's plugin ABI, and the claim rule of `require_claim`, handler claims
 * and the host's claim_matches call.
 *
 * Pure functions of their arguments: no I/O, no libevent, no state. The
 * only core header the mock host includes (it sees include/ otherwise).
 */
#ifndef MCPGW_PLUGIN_ABI_H
#define MCPGW_PLUGIN_ABI_H

#include <stddef.h>
#include <jansson.h>
#include <mcpgw/plugin.h>

/* NULL when descriptor d can be loaded by this build (ABI major equal,
 * minor not newer, size at least the 1.0 descriptor's, name, version and
 * init present); else why not, a static text or one written into buf. */
const char *mcpgw_plugin_check_descriptor(const mcpgw_plugin *d, char *buf, size_t cap);

/* 1 when claim `name` of claims (an object; NULL: none) is `value`: a
 * string equal to it, an integer or a boolean whose text is it, or an
 * array holding one of those; else 0. */
int mcpgw_claims_match(const json_t *claims, const char *name, const char *value);

#endif
