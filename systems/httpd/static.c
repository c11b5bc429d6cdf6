/*
 * static.c - static files under the root: a request path becomes a file
 * opened beneath the root directory, never above it.
 *
 * The path is percent-decoded (a decoded NUL is refused), and the file is
 * opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) relative to
 * the root's descriptor: "..", absolute symlinks and symlinks that lead
 * out are refused by the kernel, whatever the path looks like. A directory
 * is served as its index.html when it has one; it is never listed.
 *
 * A file of up to 16 KiB is read and written with its headers in one
 * send; a larger one follows its headers with sendfile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css"},                  {"js", "text/javascript"},
    {"json", "application/json"},         {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},           {"svg", "image/svg+xml"},
    {"png", "image/png"},                 {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},               {"gif", "image/gif"},
    {"webp", "image/webp"},               {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},         {"pdf", "application/pdf"},
    {"woff2", "font/woff2"},              {"mp4", "video/mp4"},
};

const char *httpd_mime_type(const char *path)
{
    const char *end = strchr(path, '?');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    const char *dot = NULL;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '.')
            dot = path + i + 1;
        else if (path[i] == '/')
            dot = NULL;
    if (dot) {
        size_t n = (size_t)(path + len - dot);
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strlen(types[i].ext) == n && strncasecmp(types[i].ext, dot, n) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the path part of url into out (room for len + 1): 0, or -1 when
 * malformed (a bad escape, an encoded NUL). */
static int decode_path(const char *url, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len && url[i] != '?' && url[i] != '#'; i++) {
        int ch = (unsigned char)url[i];
        if (ch == '%') {
            int a = i + 2 < len ? hex(url[i + 1]) : -1, b = i + 2 < len ? hex(url[i + 2]) : -1;
            if (a < 0 || b < 0)
                return -1;
            ch = a * 16 + b;
            i += 2;
        }
        if (ch == '\0')
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

static int open_beneath(int root, const char *rel, int flags)
{
    /* Non-blocking: opening a FIFO someone put under the root must not
     * stop the loop (it is refused below: not a regular file). */
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | O_NONBLOCK),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
}

int httpd_normalize_path(const char *url, size_t len, char *out)
{
    if (decode_path(url, len, out) != 0 || out[0] != '/')
        return -1;
    /* In place: the output never outruns the input. */
    size_t o = 0;
    const char *s = out;
    while (*s) {
        while (*s == '/')
            s++;
        const char *seg = s;
        while (*s && *s != '/')
            s++;
        size_t n = (size_t)(s - seg);
        bool last = *s == '\0';
        if (n == 0 || (n == 1 && seg[0] == '.')) {
            /* "//" and "/./": nothing. */
        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            if (o == 0)
                return -1; /* above the root */
            while (o > 0 && out[o - 1] != '/')
                o--;
            o--; /* its slash */
        } else {
            out[o++] = '/';
            memmove(out + o, seg, n);
            o += n;
        }
        /* A path that ended in a directory keeps its slash. */
        if (last && (n == 0 || (n <= 2 && seg[0] == '.' && (n == 1 || seg[1] == '.'))))
            out[o++] = '/';
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return 0;
}

int httpd_static_open(struct server *srv, const char *path, int *fd, struct stat *st,
                      const char **type)
{
    size_t plen = strlen(path);
    *type = httpd_mime_type(path);
    /* Relative to the root: the leading slash goes ("" is the root itself).
     * The path is opened as normalized, not as sent: "/x/../a.txt" is
     * a.txt whether or not x exists, and no ".." is left for the kernel to
     * resolve through a symlink. */
    const char *rel = path + 1;
    if (!*rel)
        rel = ".";
    int f = open_beneath(srv->root_fd, rel, O_RDONLY);
    int err = errno;
    bool stated = f >= 0 && fstat(f, st) == 0;
    if (stated && S_ISDIR(st->st_mode)) {
        if (path[plen - 1] != '/') {
            /* "/sub": to "/sub/", or the index's relative links would
             * resolve against the parent. */
            close(f);
            return 301;
        }
        *type = httpd_mime_type("index.html");
        close(f);
        /* Beneath the root, not the directory: an index that is a symlink
         * to elsewhere in the root is followed, as any other file is. */
        char *index = malloc(plen + sizeof "index.html");
        if (!index)
            return 500;
        snprintf(index, plen + sizeof "index.html", "%sindex.html", path + 1);
        f = open_beneath(srv->root_fd, index, O_RDONLY);
        err = errno;
        free(index);
        stated = false;
        if (f < 0 && err == ENOENT)
            err = EACCES; /* a directory without an index is not listed */
    }
    if (f < 0 && (err == EMFILE || err == ENFILE || err == ENOMEM)) {
        /* The server's trouble, not the file's: 503, not 403. */
        httpd_log_error(srv, "open %s: %s", path, strerror(err));
        return 503;
    }
    if (f < 0)
        /* A name longer than a file's may be: no such file. */
        return err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG ? 404 : 403;
    /* A file opened first was looked at already: one fstat a request. */
    if ((!stated && fstat(f, st) != 0) || !S_ISREG(st->st_mode)) {
        close(f);
        return 403;
    }
    *fd = f;
    return 200;
}

/* ---- answering ---------------------------------------------------------------------- */

/* Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against size: 0 with the
 * range, -1 when not one satisfiable single range of this form, -2 when
 * a well-formed range lies outside the file. The unit is compared without
 * case, and blanks after the '=' are allowed (RFC 9110, 14.1 and 5.6);
 * a range whose end is before its start is not well formed, and the
 * header is then ignored (14.1.1). */
static int parse_range(const char *v, off_t size, off_t *from, off_t *to)
{
    if (strncasecmp(v, "bytes", 5) != 0 || strchr(v, ','))
        return -1;
    const char *s = v + 5;
    if (*s++ != '=')
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    /* The value's trailing blanks were dropped with the header's. */
    char *end;
    /* Digits only: strtoll would take blanks and signs too. */
    if (*s == '-') {
        if (s[1] < '0' || s[1] > '9')
            return -1;
        long long n = strtoll(s + 1, &end, 10);
        if (end == s + 1 || *end || n < 0)
            return -1;
        if (n == 0)
            return -2; /* "bytes=-0": no byte satisfies it */
        /* Satisfiable by RFC 9110 14.1.1 even on an empty file, which has
         * no byte to send: the whole of it, 200 (as nginx answers). */
        if (size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 0;
    }
    if (*s < '0' || *s > '9')
        return -1;
    long long a = strtoll(s, &end, 10);
    if (end == s || *end != '-' || a < 0)
        return -1;
    s = end + 1;
    long long b = size - 1;
    if (*s) {
        if (*s < '0' || *s > '9')
            return -1;
        b = strtoll(s, &end, 10);
        if (end == s || *end || b < a)
            return -1;
    }
    if (a >= size)
        return -2;
    *from = a;
    *to = b >= size ? size - 1 : b;
    return 0;
}

/* Files up to this size are read and sent with their headers; larger
 * ones go with sendfile. */
#define SMALL_FILE 16384

/* Appends len bytes of fd from off to b: 0, or -1 (b as it was) when the
 * file gave fewer (it shrank meanwhile: then sendfile tells the truth). */
static int read_into(struct buf *b, int fd, off_t off, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return -1;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, b->p + b->len + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    b->len += len;
    return 0;
}

/* 301 to the same path and query with the directory's slash. One
 * leading slash ("//host/" would name another host), no fragment, and any
 * byte that is not printable ASCII escaped, the backslash too (browsers
 * read "/\\host/" as "//host/"). */
static void redirect_to_directory(struct conn *c)
{
    const char *u = c->url.p, *end = u + c->url.len;
    while (u + 1 < end && u[1] == '/')
        u++;
    struct buf loc = {0};
    bool ok = buf_add(&loc, "Location: ", 10) == 0;
    bool slash = false;
    for (const char *p = u; ok && p < end && *p != '#'; p++) {
        if (*p == '?' && !slash) {
            ok = buf_add(&loc, "/", 1) == 0;
            slash = true;
        }
        unsigned char ch = (unsigned char)*p;
        ok = ok && (ch > ' ' && ch < 0x7f && ch != '\\' ? buf_add(&loc, p, 1)
                                            : buf_printf(&loc, "%%%02X", ch)) == 0;
    }
    ok = ok && (slash || buf_add(&loc, "/", 1) == 0) && buf_add(&loc, "\r\n", 3) == 0;
    if (ok)
        conn_respond(c, 301, "text/plain", loc.p, "301 Moved Permanently\n", 22);
    else
        conn_respond_error(c, 500);
    buf_free(&loc);
}

void static_serve(struct conn *c, const char *path)
{
    struct server *srv = c->loop->srv;
    int fd = -1;
    struct stat st;
    const char *type = NULL;
    int status =
        srv->root_fd < 0 ? 404 : httpd_static_open(srv, path, &fd, &st, &type);
    /* What is not there (404, 403, or a directory named without its
     * slash: 301) is said first, whatever the method, as nginx does; a
     * file that is there takes GET and HEAD only. */
    if (status == 301) {
        redirect_to_directory(c);
        return;
    }
    if (status != 200) {
        conn_respond_error(c, status);
        return;
    }
    if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) {
        close(fd);
        conn_respond(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "405 Method Not Allowed\n", 23);
        return;
    }
    char last[64];
    httpd_date(st.st_mtime, last, sizeof last);
    /* The preconditions in the order of RFC 9110, 13.2.2. This server
     * sends no ETag, so If-Match and If-None-Match match only "*" (the
     * file exists); If-Unmodified-Since is looked at only without
     * If-Match, If-Modified-Since only without If-None-Match. A date that
     * is no HTTP-date, or (If-Modified-Since) one later than now, is
     * ignored. */
    const char *im = conn_header(c, "If-Match");
    const char *ius = im ? NULL : conn_header(c, "If-Unmodified-Since");
    if (im || ius) {
        time_t t = ius ? httpd_parse_date(ius) : (time_t)-1;
        if (im ? strcmp(im, "*") != 0 : t != (time_t)-1 && st.st_mtime > t) {
            close(fd);
            char extra[96];
            snprintf(extra, sizeof extra, "Last-Modified: %s\r\n", last);
            conn_respond(c, 412, "text/plain", extra, "412 Precondition Failed\n", 24);
            return;
        }
    }
    const char *inm = conn_header(c, "If-None-Match");
    const char *ims = inm ? NULL : conn_header(c, "If-Modified-Since");
    if (inm || ims) {
        time_t t = ims ? httpd_parse_date(ims) : (time_t)-1;
        if (t != (time_t)-1 && t > time(NULL))
            t = (time_t)-1;
        if (inm ? strcmp(inm, "*") == 0 : t != (time_t)-1 && st.st_mtime <= t) {
            close(fd);
            char extra[96];
            snprintf(extra, sizeof extra, "Last-Modified: %s\r\n", last);
            conn_respond(c, 304, NULL, extra, NULL, 0);
            return;
        }
    }
    off_t from = 0, to = st.st_size - 1;
    int status_code = 200;
    /* An empty file is sent whole whatever the range (RFC 9110 lets a
     * server ignore Range): players ask for bytes=0- by default, which
     * no byte of it satisfies; nginx answers 200 too. */
    const char *range = st.st_size > 0 ? conn_header(c, "Range") : NULL;
    /* If-Range: the range only if the file is still the one the client
     * has, by its date, in any of the three HTTP-date forms (this server
     * sends no ETag: a tag is no match); otherwise all of it. */
    const char *if_range = range ? conn_header(c, "If-Range") : NULL;
    time_t if_date = if_range ? httpd_parse_date(if_range) : (time_t)-1;
    if (if_range && (if_date == (time_t)-1 || if_date != st.st_mtime))
        range = NULL;
    if (range) {
        int r = parse_range(range, st.st_size, &from, &to);
        if (r == -2) {
            close(fd);
            char extra[96];
            snprintf(extra, sizeof extra, "Content-Range: bytes */%lld\r\n", (long long)st.st_size);
            conn_respond(c, 416, "text/plain", extra, "416 Range Not Satisfiable\n", 26);
            return;
        }
        if (r == 0)
            status_code = 206;
        else
            from = 0, to = st.st_size - 1;
    }
    off_t len = st.st_size == 0 ? 0 : to - from + 1;
    c->out.len = c->out_sent = 0;
    if (conn_head(c, status_code, (uint64_t)len) ||
        buf_printf(&c->out, "Content-Type: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                   type, last) ||
        (status_code == 206 &&
         buf_printf(&c->out, "Content-Range: bytes %lld-%lld/%lld\r\n", (long long)from,
                    (long long)to, (long long)st.st_size)) ||
        buf_add(&c->out, "\r\n", 2)) {
        close(fd);
        conn_close(c);
        return;
    }
    if (conn_is_head(c) || len == 0) {
        close(fd);
    } else if (len <= SMALL_FILE && read_into(&c->out, fd, from, (size_t)len) == 0) {
        /* A small file goes out with its headers in one write. */
        close(fd);
        c->sent_bytes = (uint64_t)len;
    } else {
        c->file_fd = fd;
        c->file_off = from;
        c->file_left = len;
        c->sent_bytes = (uint64_t)len;
    }
    c->state = WRITING;
    c->deadline_ms = 0; /* set again if the client is slow to take it */
}
