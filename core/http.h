/*
 * http.h - the HTTP/1.1 head parsers (a request's, read by the gateway; a
 * response's, read by the client library) and the plain response writer.
 *
 * mcpgw_http_parse() (and mcpgw_http_parse_response()) works on the bytes received so far (it does not keep
 * state between calls): it answers NEED_MORE until the blank line that ends
 * the head arrives. Header names are matched case-insensitively; values are
 * trimmed. Pure functions: no I/O, no allocation beyond the request struct's
 * fixed arrays pointing into the caller's buffer.
 *
 * Ownership: the parsed request (or response) points into the caller's buffer (not NUL
 * terminated: each string has a length) and is valid as long as it is.
 */
#ifndef MCPGW_HTTP_H
#define MCPGW_HTTP_H

#include <stddef.h>

#define MCPGW_HTTP_MAX_HEADERS 64

typedef struct mcpgw_str {
    const char *p;
    size_t len;
} mcpgw_str;

typedef struct mcpgw_http_header {
    mcpgw_str name;
    mcpgw_str value;
} mcpgw_http_header;

typedef struct mcpgw_http_request {
    mcpgw_str method;
    mcpgw_str target;           /* as sent: path plus optional ?query */
    mcpgw_str path;             /* target up to '?' */
    mcpgw_str query;            /* after '?', without it; len 0 if none */
    int version_minor;          /* HTTP/1.x: x */
    mcpgw_http_header headers[MCPGW_HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len;            /* bytes of the head, including the final CRLFCRLF */
} mcpgw_http_request;

typedef enum {
    MCPGW_HTTP_OK = 0,          /* request parsed; head_len bytes consumed */
    MCPGW_HTTP_NEED_MORE = 1,   /* the head is not complete yet */
    MCPGW_HTTP_BAD = -1,        /* malformed: answer 400 */
    MCPGW_HTTP_TOO_LARGE = -2,  /* head over max_head bytes, or too many headers: answer 431 */
    MCPGW_HTTP_BAD_VERSION = -3 /* not HTTP/1.x: answer 505 */
} mcpgw_http_result;

/* Parses buf[0..len). A head longer than max_head bytes (or, while
 * incomplete, len > max_head) gives TOO_LARGE, as do more than
 * MCPGW_HTTP_MAX_HEADERS headers. Accepts CRLF and bare LF line ends;
 * rejects obsolete line folding, whitespace before a header's colon, control
 * characters (HTAB allowed in values) and header names that are not tokens.
 * The request line must be "METHOD SP /target SP HTTP/1.x" (origin-form
 * target, single spaces); another HTTP version (or none, HTTP/0.9 style)
 * gives BAD_VERSION. The end of the head is looked for first, so malformed
 * bytes are only reported once it has arrived. On anything but OK the
 * contents of *req are unspecified. */
mcpgw_http_result mcpgw_http_parse(const char *buf, size_t len, size_t max_head,
                                   mcpgw_http_request *req);

typedef struct mcpgw_http_response {
    int version_minor;          /* HTTP/1.x: x */
    int status;                 /* 3 digits: 100 .. 999 */
    mcpgw_str reason;           /* the reason phrase, possibly empty */
    mcpgw_http_header headers[MCPGW_HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len;            /* bytes of the head, including the final CRLFCRLF */
} mcpgw_http_response;

/* Parses a response head buf[0..len) as mcpgw_http_parse() does a
 * request's (the same results, limits, line ends and header rules; one
 * parser of header lines for both). The status line is "HTTP/1.x SP 3DIGIT
 * SP reason" (the reason may be empty, and the SP before an empty one
 * missing); another HTTP version gives BAD_VERSION. */
mcpgw_http_result mcpgw_http_parse_response(const char *buf, size_t len, size_t max_head,
                                            mcpgw_http_response *resp);

/* Framing that a proxy in front could read differently from us (request
 * smuggling, RFC 9112 section 6.3): more than one Host header, or a
 * Content-Length that is repeated (even with the same value), a list
 * ("5, 6"), empty or not all digits. Returns NULL when the head is
 * unambiguous, else a static reason for the log ("duplicate_host",
 * "bad_content_length") with *body set to a short static text for a 400.
 * Transfer-Encoding is left to the callers (none of them takes one). */
const char *mcpgw_http_check_framing(const mcpgw_http_request *req, const char **body);

/* First header with this name (case-insensitive), or NULL. */
const mcpgw_str *mcpgw_http_header_get(const mcpgw_http_request *req, const char *name);
/* The same over any parsed head's headers[0..n) (a response's). */
const mcpgw_str *mcpgw_http_headers_get(const mcpgw_http_header *headers, size_t n,
                                        const char *name);

/* Does a comma-separated header value list (e.g. Connection) contain token,
 * case-insensitively? */
int mcpgw_http_list_has_token(const mcpgw_str *value, const char *token);

/* Does an Accept header value take the media type `type` ("text/event-stream"):
 * the type itself, its major type's wildcard range or the any-type range,
 * case-insensitively, unless that range says q=0? accept may be NULL (no
 * header: 0). */
int mcpgw_http_accepts(const mcpgw_str *accept, const char *type);

/* Case-insensitive equality of s with a NUL-terminated string. */
int mcpgw_str_eq_nocase(const mcpgw_str *s, const char *lit);

/* The value of query parameter `name` (first occurrence), percent- and
 * '+'-decoded into out (cap bytes, NUL included). Returns its length (0 for
 * "name="), -1 for a bad escape, a decoded NUL or no room, -2 if absent. */
long mcpgw_http_query_param(const mcpgw_str *query, const char *name, char *out, size_t cap);
/* Percent-decodes one path segment p[0..n) ('+' stays '+') into out (cap
 * bytes, NUL included): its length, or -1 as for a query value. */
long mcpgw_http_segment_decode(const char *p, size_t n, char *out, size_t cap);

/* The credentials of an "Authorization: Bearer <token>" header (scheme
 * case-insensitive), pointing into the request, or NULL. */
const char *mcpgw_http_bearer_token(const mcpgw_http_request *req, size_t *len);

/* Standard reason phrase for a status code ("Not Found"), or "Unknown". */
const char *mcpgw_http_reason(int status);

/* Formats a complete plain-text response with Connection: close into out
 * (at most cap bytes, including a terminating NUL that is not counted).
 * extra_headers may be NULL or "Name: value\r\n" lines; body may be NULL.
 * Returns the length written, or 0 (and out[0] = NUL) if it does not fit. */
size_t mcpgw_http_format_response(char *out, size_t cap, int status,
                                  const char *extra_headers, const char *body);

#endif
