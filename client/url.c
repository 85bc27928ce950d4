/*
 * url.c - parsing of ws:// and wss:// URLs, and adding the token query
 * parameter the reference client sends. Pure string work.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#include "url.h"

static char *dup_n(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

void mcpgw_curl_clear(mcpgw_curl *u)
{
    free(u->host);
    free(u->host_header);
    free(u->target);
    memset(u, 0, sizeof(*u));
}

int mcpgw_curl_parse(const char *url, mcpgw_curl *u, char *err, size_t err_len)
{
    const char *p, *auth_end, *host_b, *host_e, *port_s = NULL;
    char dummy[1];
    long port;

    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    memset(u, 0, sizeof(*u));
    if (!url) {
        snprintf(err, err_len, "no URL");
        return -1;
    }
    if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        p = url + 6;
        u->tls = 1;
    } else {
        snprintf(err, err_len, "URL must start with ws:// or wss://");
        return -1;
    }
    auth_end = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(auth_end - p))) {
        snprintf(err, err_len, "user information in the URL is not supported");
        return -1;
    }
    if (*p == '[') {
        host_b = p + 1;
        host_e = memchr(host_b, ']', (size_t)(auth_end - host_b));
        if (!host_e) {
            snprintf(err, err_len, "unterminated IPv6 address in URL");
            return -1;
        }
        if (host_e + 1 < auth_end) {
            if (host_e[1] != ':') {
                snprintf(err, err_len, "junk after IPv6 address in URL");
                return -1;
            }
            port_s = host_e + 2;
        }
    } else {
        host_b = p;
        host_e = memchr(p, ':', (size_t)(auth_end - p));
        if (host_e)
            port_s = host_e + 1;
        else
            host_e = auth_end;
    }
    if (host_e == host_b) {
        snprintf(err, err_len, "no host in URL");
        return -1;
    }
    port = u->tls ? 443 : 80;
    if (port_s) {
        const char *q;
        if (port_s == auth_end) {
            snprintf(err, err_len, "empty port in URL");
            return -1;
        }
        port = 0;
        for (q = port_s; q < auth_end; q++) {
            if (!isdigit((unsigned char)*q) || port > 65535) {
                snprintf(err, err_len, "bad port in URL");
                return -1;
            }
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535) {
            snprintf(err, err_len, "bad port in URL");
            return -1;
        }
    }
    u->port = (int)port;
    u->host = dup_n(host_b, (size_t)(host_e - host_b));
    u->host_header = dup_n(p, (size_t)(auth_end - p));
    {
        const char *t = auth_end;
        size_t tl = strcspn(t, "#");
        if (tl == 0 || *t != '/') {
            /* "ws://h?x" -> "/?x" */
            u->target = malloc(tl + 2);
            if (u->target) {
                u->target[0] = '/';
                memcpy(u->target + 1, t, tl);
                u->target[tl + 1] = '\0';
            }
        } else {
            u->target = dup_n(t, tl);
        }
    }
    if (!u->host || !u->host_header || !u->target) {
        mcpgw_curl_clear(u);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (p = u->target; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            mcpgw_curl_clear(u);
            snprintf(err, err_len, "space or control character in URL");
            return -1;
        }
    }
    return 0;
}

char *mcpgw_curl_with_token(const char *target, const char *token)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t tl = strlen(target), n = strlen(token), i, o;
    char *r = malloc(tl + 7 + 3 * n + 1);

    if (!r)
        return NULL;
    memcpy(r, target, tl);
    o = tl;
    r[o++] = strchr(target, '?') ? '&' : '?';
    memcpy(r + o, "token=", 6);
    o += 6;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)token[i];
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            r[o++] = (char)ch;
        } else {
            r[o++] = '%';
            r[o++] = hex[ch >> 4];
            r[o++] = hex[ch & 15];
        }
    }
    r[o] = '\0';
    return r;
}
