/*
 * walls-httpd.h - writing handlers for walls-httpd.
 *
 * A handler is a walls task function exported by a shared library (a
 * plugin): int fn(struct walls_call *call). walls-httpd runs it on the
 * placement its route names (threads, processes, hybrid, or strictly
 * sandboxed processes), with the request encoded in call->in, and reads the
 * response the handler encodes into call->out. Everything here is static
 * inline over walls.h: a plugin links against nothing but libc.
 *
 *     #include <walls-httpd.h>
 *
 *     int hello(struct walls_call *call)
 *     {
 *         return whttpd_respond(call, 200, "text/plain", "hello\n", 6);
 *     }
 *
 * A handler that returns non-zero gets 500; one that crashes gets 502; one
 * that overruns its route's time limit gets 504; one stopped by the sandbox
 * gets 502. See docs/httpd.md.
 *
 * The request's bytes are read-only and live as long as the call. The
 * encoding is walls-httpd's own and may change between versions: use these
 * functions, not the layout.
 */
#ifndef WALLS_HTTPD_H
#define WALLS_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <walls.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WHTTPD_REQUEST_MAGIC 0x51485457u  /* "WTHQ" */
#define WHTTPD_RESPONSE_MAGIC 0x53485457u /* "WTHS" */
#define WHTTPD_RESPONSE_HEADERS_MAX 100u /* a response's headers at most */
#define WHTTPD_HEADERS_MAX 64u /* request headers passed to a handler at most */

struct whttpd_header {
    const char *name;  /* as the client sent it; compare without case */
    const char *value; /* leading and trailing blanks removed */
};

struct whttpd_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* decoded of nothing: as sent, without the query */
    const char *query;  /* after '?', "" when none */
    unsigned nheaders;
    struct whttpd_header headers[WHTTPD_HEADERS_MAX];
    const void *body;
    size_t body_len;
};

/* ---- reading the request ------------------------------------------------- */

/* The next NUL-terminated string at *at within [base, base + len). */
static inline const char *whttpd__str(const unsigned char *base, size_t len, size_t *at)
{
    if (*at >= len)
        return NULL;
    const unsigned char *end = (const unsigned char *)memchr(base + *at, '\0', len - *at);
    if (!end)
        return NULL;
    const char *s = (const char *)base + *at;
    *at = (size_t)(end - base) + 1;
    return s;
}

/*
 * whttpd_request_read - the request this call was given. Returns 0, or -1
 * when call->in is not a request walls-httpd encoded.
 */
static inline int whttpd_request_read(const struct walls_call *call, struct whttpd_request *req)
{
    const unsigned char *p = (const unsigned char *)call->in;
    size_t len = call->in_len, at = 12;
    uint32_t magic, nheaders, body_len;
    if (!p || len < 12)
        return -1;
    memcpy(&magic, p, 4);
    memcpy(&nheaders, p + 4, 4);
    memcpy(&body_len, p + 8, 4);
    if (magic != WHTTPD_REQUEST_MAGIC || nheaders > WHTTPD_HEADERS_MAX)
        return -1;
    if (!(req->method = whttpd__str(p, len, &at)) || !(req->path = whttpd__str(p, len, &at)) ||
        !(req->query = whttpd__str(p, len, &at)))
        return -1;
    req->nheaders = nheaders;
    for (uint32_t i = 0; i < nheaders; i++)
        if (!(req->headers[i].name = whttpd__str(p, len, &at)) ||
            !(req->headers[i].value = whttpd__str(p, len, &at)))
            return -1;
    if (len - at != body_len)
        return -1;
    req->body = p + at;
    req->body_len = body_len;
    return 0;
}

/* The value of the first header called name (any case), or NULL. */
static inline const char *whttpd_header(const struct whttpd_request *req, const char *name)
{
    for (unsigned i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/*
 * whttpd_query_param - copies the value of query parameter name (the first
 * one) into buf, NUL-terminated, without decoding it. Returns its length,
 * or -1 when absent or longer than len - 1.
 */
static inline int whttpd_query_param(const struct whttpd_request *req, const char *name,
                                     char *buf, size_t len)
{
    size_t n = strlen(name);
    for (const char *q = req->query; q && *q;) {
        const char *amp = strchr(q, '&');
        size_t seg = amp ? (size_t)(amp - q) : strlen(q);
        if (seg >= n && strncmp(q, name, n) == 0 && (seg == n || q[n] == '=')) {
            size_t vlen = seg == n ? 0 : seg - n - 1;
            if (vlen + 1 > len)
                return -1;
            memcpy(buf, q + (seg == n ? n : n + 1), vlen);
            buf[vlen] = '\0';
            return (int)vlen;
        }
        q = amp ? amp + 1 : NULL;
    }
    return -1;
}

/* ---- writing the response ------------------------------------------------- */

/*
 * Response layout in call->out: magic, status, header count, body length
 * (4 bytes each), then each header as name NUL value NUL, then the body.
 */

/*
 * whttpd_respond_headers - writes the response: status (200-599; a 1xx is
 * not a final response), optional extra headers (at most
 * WHTTPD_RESPONSE_HEADERS_MAX with the Content-Type; names are tokens
 * (RFC 9110: letters, digits and !#$%&'*+-.^_`|~), values without CR, LF
 * or other control characters but tab; walls-httpd adds Content-Length,
 * Date, Server and Connection itself, and a handler that sets any of
 * Content-Length, Connection or Transfer-Encoding, or writes more
 * headers or other names than these, gets 502), and the body. Responses
 * 204 and 304 go out without a body, 205 with an empty one.
 * content_type NULL sends none. Returns 0, or -1 when it does not fit
 * call->out_cap (the route's max_output) or is malformed: return that from
 * the handler and the client gets 500.
 */
static inline int whttpd_respond_headers(struct walls_call *call, int status,
                                         const char *content_type,
                                         const struct whttpd_header *extra, unsigned nextra,
                                         const void *body, size_t len)
{
    unsigned char *out = (unsigned char *)call->out;
    size_t cap = call->out_cap, at = 16;
    uint32_t head[4] = {WHTTPD_RESPONSE_MAGIC, (uint32_t)status, 0, (uint32_t)len};
    if (status < 200 || status > 599 || len > UINT32_MAX || cap < 16)
        return -1;
    for (unsigned i = 0; i <= nextra; i++) {
        const char *name = i == 0 ? "Content-Type" : extra[i - 1].name;
        const char *value = i == 0 ? content_type : extra[i - 1].value;
        if (!name || !value)
            continue;
        if (head[2] == WHTTPD_RESPONSE_HEADERS_MAX)
            return -1;
        size_t a = strlen(name) + 1, b = strlen(value) + 1;
        if (cap - at < a + b)
            return -1;
        memcpy(out + at, name, a);
        memcpy(out + at + a, value, b);
        at += a + b;
        head[2]++;
    }
    if (cap - at < len)
        return -1;
    if (len)
        memcpy(out + at, body, len);
    memcpy(out, head, sizeof head);
    call->out_len = at + len;
    return 0;
}

/* whttpd_respond - the same without extra headers. */
static inline int whttpd_respond(struct walls_call *call, int status, const char *content_type,
                                 const void *body, size_t len)
{
    return whttpd_respond_headers(call, status, content_type, NULL, 0, body, len);
}

#ifdef __cplusplus
}
#endif

#endif
