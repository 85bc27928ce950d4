/*
 * http.c - owns the HTTP/1.1 head parsers (a request's for the gateway, a
 * response's for the client), the header lookup helpers and the plain-text
 * response formatter declared in http.h.
 *
 * Stateless and allocation-free: every call re-parses the bytes received so
 * far, and the parsed head points into the caller's buffer.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

/* RFC 7230 section 3.2.6 tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

/* A request-target byte: visible ASCII. Rejects controls, SP, DEL and
 * bytes >= 0x80 (a URI is ASCII; anything else must be percent-encoded). */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int mem_eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Length of the head in buf[0..n): up to and including the empty line
 * ("\n\n" or "\n\r\n") that ends it, or 0 if that line is not there yet. */
static size_t find_head_end(const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n;

    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            return 0;
        size_t after = (size_t)(lf - buf) + 1;
        if (after < n && buf[after] == '\n')
            return after + 1;
        if (after + 1 < n && buf[after] == '\r' && buf[after + 1] == '\n')
            return after + 2;
        p = lf + 1;
    }
    return 0;
}

/* "HTTP/1.x" gives OK; another HTTP-version-looking string ("HTTP/2.0",
 * "HTTP/0.9", "HTTP/2", "HTTP/1.10") gives BAD_VERSION; anything else BAD.
 * The protocol name is case-sensitive (RFC 7230 section 2.6). */
static mcpgw_http_result parse_version(const char *v, size_t n, int *minor)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && is_digit((unsigned char)v[7])) {
        *minor = v[7] - '0';
        return MCPGW_HTTP_OK;
    }
    if (n <= 5 || memcmp(v, "HTTP/", 5) != 0)
        return MCPGW_HTTP_BAD;

    size_t i = 5, digits = 0;
    while (i < n && is_digit((unsigned char)v[i])) {
        i++;
        digits++;
    }
    if (digits == 0)
        return MCPGW_HTTP_BAD;
    if (i == n)
        return MCPGW_HTTP_BAD_VERSION;
    if (v[i] != '.')
        return MCPGW_HTTP_BAD;
    i++;
    digits = 0;
    while (i < n && is_digit((unsigned char)v[i])) {
        i++;
        digits++;
    }
    return (digits > 0 && i == n) ? MCPGW_HTTP_BAD_VERSION : MCPGW_HTTP_BAD;
}

/* request-line = method SP request-target SP HTTP-version, single spaces.
 * Only origin-form targets ("/...") are accepted. */
static mcpgw_http_result parse_request_line(const char *p, size_t n,
                                            mcpgw_http_request *req)
{
    size_t i = 0;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return MCPGW_HTTP_BAD;
    req->method.p = p;
    req->method.len = i;

    size_t t = ++i;
    while (i < n && p[i] != ' ') {
        if (!is_target_char((unsigned char)p[i]))
            return MCPGW_HTTP_BAD;
        i++;
    }
    if (i == t || p[t] != '/')
        return MCPGW_HTTP_BAD;
    req->target.p = p + t;
    req->target.len = i - t;

    /* "GET /path" with no version: an HTTP/0.9 simple request. */
    if (i == n)
        return MCPGW_HTTP_BAD_VERSION;
    i++;
    return parse_version(p + i, n - i, &req->version_minor);
}

/* header-field = field-name ":" OWS field-value OWS; no obs-fold. */
static mcpgw_http_result parse_header_line(const char *p, size_t n,
                                           mcpgw_http_header *h)
{
    size_t i = 0;

    /* A line starting with whitespace is obs-fold (or whitespace between
     * the request line and the first header): both are rejected. */
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return MCPGW_HTTP_BAD;
    h->name.p = p;
    h->name.len = i;

    size_t v = i + 1, e = n;
    for (size_t k = v; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return MCPGW_HTTP_BAD;
    }
    while (v < e && is_ows((unsigned char)p[v]))
        v++;
    while (e > v && is_ows((unsigned char)p[e - 1]))
        e--;
    h->value.p = p + v;
    h->value.len = e - v;
    return MCPGW_HTTP_OK;
}

/* status-line = HTTP-version SP 3DIGIT SP [reason-phrase]; the SP before
 * an empty reason may be missing (as some servers send it). The reason is
 * HTAB, SP, visible ASCII or obs-text. */
static mcpgw_http_result parse_status_line(const char *p, size_t n, void *out)
{
    mcpgw_http_response *resp = out;
    size_t v = 0;
    mcpgw_http_result r;

    while (v < n && p[v] != ' ')
        v++;
    if ((r = parse_version(p, v, &resp->version_minor)) != MCPGW_HTTP_OK)
        return r;
    if (n < v + 4 || !is_digit((unsigned char)p[v + 1]) || !is_digit((unsigned char)p[v + 2]) ||
        !is_digit((unsigned char)p[v + 3]))
        return MCPGW_HTTP_BAD;
    resp->status = (p[v + 1] - '0') * 100 + (p[v + 2] - '0') * 10 + (p[v + 3] - '0');
    if (n == v + 4) {
        resp->reason.p = p + n;
        resp->reason.len = 0;
        return MCPGW_HTTP_OK;
    }
    if (p[v + 4] != ' ')
        return MCPGW_HTTP_BAD;
    for (size_t k = v + 5; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return MCPGW_HTTP_BAD;
    }
    resp->reason.p = p + v + 5;
    resp->reason.len = n - (v + 5);
    return MCPGW_HTTP_OK;
}

static mcpgw_http_result parse_request_line_cb(const char *p, size_t n, void *out)
{
    return parse_request_line(p, n, out);
}

/* The head of a request or a response in buf[0..len): its first line goes
 * to first_line(out), its headers to headers[] (*n_headers of them);
 * *head_len is its length. The one parser of header lines and head limits
 * for both. */
static mcpgw_http_result parse_head(const char *buf, size_t len, size_t max_head,
                                    mcpgw_http_result (*first_line)(const char *, size_t, void *),
                                    void *out, mcpgw_http_header *headers, size_t *n_headers,
                                    size_t *head_len_out)
{
    /* The head must end within the first max_head bytes. */
    size_t head_len = find_head_end(buf, len < max_head ? len : max_head);
    if (head_len == 0)
        return len > max_head ? MCPGW_HTTP_TOO_LARGE : MCPGW_HTTP_NEED_MORE;

    const char *p = buf, *end = buf + head_len;
    int first = 1;

    for (;;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        /* find_head_end guarantees every line up to the empty one ends in LF. */
        if (!lf)
            return MCPGW_HTTP_BAD;
        size_t n = (size_t)(lf - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;

        if (first) {
            mcpgw_http_result r = first_line(p, n, out);
            if (r != MCPGW_HTTP_OK)
                return r;
            first = 0;
        } else if (n == 0) {
            break;                  /* the empty line ending the head */
        } else {
            mcpgw_http_header h;
            mcpgw_http_result r = parse_header_line(p, n, &h);
            if (r != MCPGW_HTTP_OK)
                return r;
            if (*n_headers == MCPGW_HTTP_MAX_HEADERS)
                return MCPGW_HTTP_TOO_LARGE;
            headers[(*n_headers)++] = h;
        }
        p = lf + 1;
    }
    *head_len_out = head_len;
    return MCPGW_HTTP_OK;
}

mcpgw_http_result mcpgw_http_parse(const char *buf, size_t len, size_t max_head,
                                   mcpgw_http_request *req)
{
    mcpgw_http_result r;

    req->method.p = req->target.p = req->path.p = req->query.p = NULL;
    req->method.len = req->target.len = req->path.len = req->query.len = 0;
    req->version_minor = 0;
    req->n_headers = 0;
    req->head_len = 0;

    size_t head_len = 0;
    r = parse_head(buf, len, max_head, parse_request_line_cb, req, req->headers, &req->n_headers,
                   &head_len);
    if (r != MCPGW_HTTP_OK)
        return r;

    const char *q = memchr(req->target.p, '?', req->target.len);
    req->path.p = req->target.p;
    if (q) {
        req->path.len = (size_t)(q - req->target.p);
        req->query.p = q + 1;
        req->query.len = req->target.len - req->path.len - 1;
    } else {
        req->path.len = req->target.len;
        req->query.p = req->target.p + req->target.len;
        req->query.len = 0;
    }
    req->head_len = head_len;
    return MCPGW_HTTP_OK;
}

mcpgw_http_result mcpgw_http_parse_response(const char *buf, size_t len, size_t max_head,
                                            mcpgw_http_response *resp)
{
    resp->version_minor = 0;
    resp->status = 0;
    resp->reason.p = NULL;
    resp->reason.len = 0;
    resp->n_headers = 0;
    resp->head_len = 0;
    return parse_head(buf, len, max_head, parse_status_line, resp, resp->headers,
                      &resp->n_headers, &resp->head_len);
}

const mcpgw_str *mcpgw_http_headers_get(const mcpgw_http_header *headers, size_t n,
                                        const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (mcpgw_str_eq_nocase(&headers[i].name, name))
            return &headers[i].value;
    return NULL;
}

const char *mcpgw_http_check_framing(const mcpgw_http_request *req, const char **body)
{
    size_t hosts = 0, lengths = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const mcpgw_http_header *h = &req->headers[i];

        if (mcpgw_str_eq_nocase(&h->name, "Host")) {
            if (++hosts > 1) {
                *body = "Bad Request: more than one Host header";
                return "duplicate_host";
            }
        } else if (mcpgw_str_eq_nocase(&h->name, "Content-Length")) {
            int digits_only = h->value.len > 0;
            for (size_t k = 0; k < h->value.len; k++)
                if (!is_digit((unsigned char)h->value.p[k]))
                    digits_only = 0;
            if (++lengths > 1 || !digits_only) {
                *body = "Bad Request: Content-Length must be one header with one number";
                return "bad_content_length";
            }
        }
    }
    *body = NULL;
    return NULL;
}

const mcpgw_str *mcpgw_http_header_get(const mcpgw_http_request *req, const char *name)
{
    return mcpgw_http_headers_get(req->headers, req->n_headers, name);
}

/* Does the parameter list p[0..end) (after a media range: ";a=b; q=0")
 * give q as zero? */
static int q_is_zero(const char *p, const char *end)
{
    while (p < end) {
        const char *v, *stop;
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        stop = p;
        while (stop < end && *stop != ';')
            stop++;
        if (stop - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            v = p + 2;
            while (stop > v && (stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
            if (v == stop || *v != '0')
                return 0;
            if (++v == stop)
                return 1;
            if (*v++ != '.')
                return 0;
            while (v < stop && *v == '0')
                v++;
            return v == stop;
        }
        p = stop;
    }
    return 0;
}

int mcpgw_http_accepts(const mcpgw_str *accept, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t tlen = strlen(type), major = slash ? (size_t)(slash - type) : tlen;
    const char *p, *end;

    if (!accept || !accept->p)
        return 0;
    p = accept->p;
    end = p + accept->len;
    while (p < end) {
        const char *next = memchr(p, ',', (size_t)(end - p));
        const char *r = p, *rend;
        size_t n;
        int match;

        if (!next)
            next = end;
        while (r < next && (*r == ' ' || *r == '\t'))
            r++;
        rend = r;
        while (rend < next && *rend != ';' && *rend != ' ' && *rend != '\t')
            rend++;
        n = (size_t)(rend - r);
        match = (n == 3 && memcmp(r, "*/*", 3) == 0) ||
                (n == tlen && strncasecmp(r, type, n) == 0) ||
                (slash && n == major + 2 && strncasecmp(r, type, major + 1) == 0 &&
                 r[n - 1] == '*');
        if (match && !q_is_zero(rend, next))
            return 1;
        p = next + 1;
    }
    return 0;
}

int mcpgw_http_list_has_token(const mcpgw_str *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = value->p, *end;

    if (!p)
        return 0;
    end = p + value->len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *s = p;
        while (s < e && is_ows((unsigned char)*s))
            s++;
        while (e > s && is_ows((unsigned char)e[-1]))
            e--;
        if ((size_t)(e - s) == tlen && mem_eq_nocase(s, token, tlen))
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

int mcpgw_str_eq_nocase(const mcpgw_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && (n == 0 || mem_eq_nocase(s->p, lit, n));
}

const char *mcpgw_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

size_t mcpgw_http_format_response(char *out, size_t cap, int status,
                                  const char *extra_headers, const char *body)
{
    if (!extra_headers)
        extra_headers = "";
    if (!body)
        body = "";
    if (!out || cap == 0)
        return 0;

    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Connection: close\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "%s\r\n"
                     "%s",
                     status, mcpgw_http_reason(status), strlen(body),
                     extra_headers, body);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* ------------------------------------------------- query and credentials */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a query value (%XY escapes, '+' as space unless in a path) into
 * out (cap bytes, NUL included). Returns the length, or -1 for a bad
 * escape, a decoded NUL (which a C string would silently cut) or no room. */
static long percent_decode(const char *p, size_t n, char *out, size_t cap, int plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (n - i < 3 || (hi = hex_value((unsigned char)p[i + 1])) < 0 ||
                (lo = hex_value((unsigned char)p[i + 2])) < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

long mcpgw_http_segment_decode(const char *p, size_t n, char *out, size_t cap)
{
    return percent_decode(p, n, out, cap, 0);
}

/* The raw value of the first "name=" pair of query, or NULL. */
static const char *query_raw(const mcpgw_str *query, const char *name, size_t *len)
{
    const char *p = query->p, *end;
    size_t nlen = strlen(name);

    if (!p)
        return NULL;
    end = p + query->len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *len = (size_t)(e - p) - nlen - 1;
            return p + nlen + 1;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return NULL;
}

long mcpgw_http_query_param(const mcpgw_str *query, const char *name, char *out, size_t cap)
{
    size_t len = 0;
    const char *raw = query_raw(query, name, &len);

    if (!raw)
        return -2;
    if (len == 0) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    return percent_decode(raw, len, out, cap, 1);
}

const char *mcpgw_http_bearer_token(const mcpgw_http_request *req, size_t *len)
{
    const mcpgw_str *auth = mcpgw_http_header_get(req, "Authorization");
    mcpgw_str scheme;

    if (!auth || auth->len < 6)
        return NULL;
    scheme.p = auth->p;
    scheme.len = 6;
    if (!mcpgw_str_eq_nocase(&scheme, "Bearer"))
        return NULL;
    if (auth->len > 6 && auth->p[6] != ' ' && auth->p[6] != '\t')
        return NULL;                /* "Bearerish ..." */
    size_t i = 6;
    while (i < auth->len && (auth->p[i] == ' ' || auth->p[i] == '\t'))
        i++;
    *len = auth->len - i;          /* the parser already trimmed the end */
    return auth->p + i;
}
