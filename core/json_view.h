/*
 * json_view.h - a message read without a JSON tree (plugin ABI 1.4): one
 * validating pass over the text that accepts exactly what mcpgw_json_read
 * accepts, and notes where the members of a top-level object are, so that
 * a raw handler finds a member by key and the gateway never builds a
 * jansson value for the message.
 *
 * The verdict is the reader's: a text the scan calls valid parses with
 * mcpgw_json_read, and one it calls invalid does not (then the caller
 * parses it anyway, for the reader's error text). A valid text the view
 * cannot serve (not an object, more than MCPGW_JSON_VIEW_MAX_MEMBERS
 * members, out of memory) is MCPGW_JSON_VIEW_OTHER: the caller takes the
 * tree path. A member found is the one the tree would hold: the last of
 * duplicate keys, keys compared after decoding their escapes.
 *
 * Ownership: the view points into the caller's text, which must outlive
 * it; strings it decodes (mcpgw_json_view_string) live in the view until
 * mcpgw_json_view_release(). Not thread-safe; one view per message.
 */
#ifndef MCPGW_JSON_VIEW_H
#define MCPGW_JSON_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "mcpgw/plugin.h"
#include "json_write.h"

#define MCPGW_JSON_VIEW_MAX_MEMBERS 32

enum {
    MCPGW_JSON_VIEW_OK = 0,         /* an object the view serves */
    MCPGW_JSON_VIEW_INVALID = -1,   /* mcpgw_json_read refuses the text */
    MCPGW_JSON_VIEW_OTHER = 1       /* valid, but take the tree path */
};

typedef struct mcpgw_json_view_member {
    const char *key;                /* the key's text between its quotes */
    size_t key_len;
    int key_escaped;                /* has a backslash: compare decoded */
    mcpgw_member value;
} mcpgw_json_view_member;

typedef struct mcpgw_json_view_chunk mcpgw_json_view_chunk;

struct mcpgw_view {
    const char *text;
    size_t len;
    size_t n_members;
    mcpgw_json_view_member members[MCPGW_JSON_VIEW_MAX_MEMBERS];
    /* decoded strings: the inline arena first, then heap chunks */
    char arena[256];
    size_t arena_used;
    mcpgw_json_view_chunk *chunks;
};

/* Scans text[0..len) into v (which needs no initialisation). Returns
 * MCPGW_JSON_VIEW_OK, _INVALID or _OTHER. Call mcpgw_json_view_release()
 * after any result. */
int mcpgw_json_view_scan(mcpgw_view *v, const char *text, size_t len);
/* Frees what the view decoded. */
void mcpgw_json_view_release(mcpgw_view *v);

/* host->view_get: fills *m and returns its kind (MCPGW_JSON_ABSENT: none). */
int mcpgw_json_view_get(const mcpgw_view *v, const char *key, mcpgw_member *m);
/* host->view_string: the decoded, NUL-terminated text of a string member,
 * stored in v; NULL when m is not a string or out of memory. */
const char *mcpgw_json_view_string(mcpgw_view *v, const mcpgw_member *m, size_t *len);
/* host->buf_member: appends m's value as mcpgw_json_write writes the value
 * mcpgw_json_read gives for it. 0 or -1 (b->len unchanged). */
int mcpgw_json_view_write_member(mcpgw_jbuf *b, const mcpgw_member *m);

#endif
