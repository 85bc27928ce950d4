/*
 * url.h - parsing of ws:// and wss:// URLs for the client library.
 *
 * Pure: no I/O. Ownership: mcpgw_curl_parse() fills a struct of malloc'd
 * strings that mcpgw_curl_clear() frees.
 */
#ifndef MCPGW_CLIENT_URL_H
#define MCPGW_CLIENT_URL_H

#include <stddef.h>

typedef struct mcpgw_curl {
    int tls;            /* wss */
    char *host;         /* without brackets for IPv6 literals */
    int port;
    char *host_header;  /* "host[:port]" as sent in Host: (brackets kept) */
    char *target;       /* path plus ?query, at least "/" */
} mcpgw_curl;

/* 0 on success; -1 with a message in err on a malformed URL. */
int mcpgw_curl_parse(const char *url, mcpgw_curl *u, char *err, size_t err_len);
void mcpgw_curl_clear(mcpgw_curl *u);

/* Returns a malloc'd copy of target with "token=<percent-encoded token>"
 * appended as a query parameter (? or &). NULL on allocation failure. */
char *mcpgw_curl_with_token(const char *target, const char *token);

#endif
