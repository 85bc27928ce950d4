/*
 * plugin_abi.c - the descriptor check and the claim rule (see plugin_abi.h).
 */
#include <stdio.h>
#include <string.h>

#include "plugin_abi.h"

const char *mcpgw_plugin_check_descriptor(const mcpgw_plugin *d, char *buf, size_t cap)
{
    if (d->abi_major != MCPGW_PLUGIN_ABI_MAJOR) {
        snprintf(buf, cap, "plugin ABI major %u, gateway ABI major %u: rebuild the plugin",
                 (unsigned)d->abi_major, (unsigned)MCPGW_PLUGIN_ABI_MAJOR);
        return buf;
    }
    if (d->abi_minor > MCPGW_PLUGIN_ABI_MINOR) {
        snprintf(buf, cap, "plugin needs ABI %u.%u, gateway has %u.%u: upgrade mcpgw",
                 (unsigned)d->abi_major, (unsigned)d->abi_minor,
                 (unsigned)MCPGW_PLUGIN_ABI_MAJOR, (unsigned)MCPGW_PLUGIN_ABI_MINOR);
        return buf;
    }
    if (d->size < MCPGW_PLUGIN_SIZE_1_0) {
        snprintf(buf, cap, "descriptor size %u is smaller than the ABI 1.0 descriptor (%zu)",
                 (unsigned)d->size, (size_t)MCPGW_PLUGIN_SIZE_1_0);
        return buf;
    }
    if (!d->name || !d->version)
        return "descriptor has no name or version";
    if (!d->init)
        return "descriptor has no init function";
    return NULL;
}

static int claim_value_is(const json_t *v, const char *value)
{
    char num[64];

    if (json_is_string(v))
        return strcmp(json_string_value(v), value) == 0;
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strcmp(num, value) == 0;
    }
    if (json_is_boolean(v))
        return strcmp(json_is_true(v) ? "true" : "false", value) == 0;
    return 0;
}

int mcpgw_claims_match(const json_t *claims, const char *name, const char *value)
{
    const json_t *v = claims && name ? json_object_get(claims, name) : NULL;
    size_t i;

    if (!v || !value)
        return 0;
    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++)
            if (claim_value_is(json_array_get(v, i), value))
                return 1;
        return 0;
    }
    return claim_value_is(v, value);
}
