/*
 * status_page.h - the live status page (web/status.html), embedded into the
 * gateway at build time by web/embed.sh (generated web/status_page.c).
 * Served at GET /status.
 */
#ifndef MCPGW_WEB_STATUS_PAGE_H
#define MCPGW_WEB_STATUS_PAGE_H

/* The page's bytes, followed by a NUL that mcpgw_status_page_len excludes. */
extern const char mcpgw_status_page[];
extern const unsigned long mcpgw_status_page_len;

#endif
