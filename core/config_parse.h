/*
 * config_parse.h - what the reader (config.c) and the table of keys
 * (config_keys.c) share while one file is parsed. Internal to those two.
 *
 * Ownership: the parse state borrows the configuration being built, the
 * error list and the file name; it owns its line buffer and the names it
 * copies (section, prev_name), freed when the source is done.
 */
#ifndef MCPGW_CONFIG_PARSE_H
#define MCPGW_CONFIG_PARSE_H

#include <stdarg.h>
#include <stdio.h>

#include "config.h"

typedef struct mcpgw_errbuf {
    char *buf;
    size_t len, cap;
    int oom;
} mcpgw_errbuf;

void mcpgw_errbuf_add(mcpgw_errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef enum {
    MCPGW_SEC_NONE,     /* before the first [section] of a file */
    MCPGW_SEC_IGNORED,  /* an invalid section, already reported: skip its keys */
    MCPGW_SEC_KNOWN     /* keys are looked up in the table under key_section */
} mcpgw_section_state;

typedef enum {
    MCPGW_LINE_BLANK,           /* empty or comment */
    MCPGW_LINE_SECTION,
    MCPGW_LINE_KEY,
    MCPGW_LINE_CONTINUATION,    /* indented line after a key: inih's multi-line value */
    MCPGW_LINE_SYNTAX
} mcpgw_line_kind;

typedef struct mcpgw_config_parse {
    mcpgw_config *cfg;
    mcpgw_errbuf *errs;
    const char *file;           /* name used in messages */
    /* the source: a FILE or a string */
    FILE *fp;
    const char *text;
    char *buf;                  /* getline() buffer */
    size_t buf_cap;
    /* per line */
    int lineno;
    mcpgw_line_kind kind;
    int prev_name_set;          /* inih's prev_name is non-empty */
    char *prev_name;            /* for the continuation message */
    int first_syntax_line;
    /* current section */
    mcpgw_section_state sec;
    char *section;              /* its full name */
    const char *key_section;    /* its name in the table: "server", "handler.*", ... */
    mcpgw_handler_config *handler;  /* [handler.TYPE] or [endpoint.NAME] */
} mcpgw_config_parse;

/* "file:line: message" at the current line. */
void mcpgw_config_line_error(mcpgw_config_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The table's key for the current section, or NULL (config_keys.c). */
const mcpgw_config_key *mcpgw_config_key_find(const char *key_section, const char *name);
/* Parses value into the configuration (or the current section); 0, or -1
 * after reporting it. */
int mcpgw_config_key_set(mcpgw_config_parse *p, const mcpgw_config_key *k, const char *value);
/* Sets every default of the table's keys of key_section ("*": the fixed
 * sections) into cfg / h. 0, or -1 (out of memory). */
int mcpgw_config_key_defaults(mcpgw_config *cfg, mcpgw_handler_config *h, const char *key_section);

/* Helpers config.c needs too. */
void mcpgw_config_free_list(char **list);
void mcpgw_config_free_secret(char *secret);
int mcpgw_config_all_chars_in(const char *s, const char *extra);

#endif
