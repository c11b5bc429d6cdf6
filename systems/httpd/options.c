/*
 * options.c - walls-httpd's settings, from the command line and from a
 * configuration file (config.c): one table of options, each with its
 * checks, so that a flag and its directive mean the same and are refused
 * for the same reasons.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "httpd.h"

const char *httpd_where;      /* "FILE:LINE" while a configuration file is read */
struct server *httpd_running; /* once serving: failures go to its error log */

int httpd_fail(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (httpd_running)
        httpd_log_error(httpd_running, "%s%s%s", httpd_where ? httpd_where : "",
                        httpd_where ? ": " : "", line);
    else
        fprintf(stderr, "walls-httpd: %s%s%s\n", httpd_where ? httpd_where : "",
                httpd_where ? ": " : "", line);
    return 2;
}

void httpd_usage(FILE *to)
{
    fprintf(to,
            "usage: walls-httpd [-t] [-c FILE] [--listen HOST:PORT] [options]\n"
            "  -c FILE                  read the configuration file FILE (flags after it\n"
            "                           override it)\n"
            "  -t                       check the configuration (and load the plugins), then exit\n"
            "  --listen HOST:PORT       IPv4 address and port (port 0: any free one)\n"
            "  --root DIR               serve static files from DIR\n"
            "  --route PREFIX=PLUGIN.so:FUNCTION[:PLACEMENT[:TIMEOUT_MS]]\n"
            "                           requests whose path starts with PREFIX go to FUNCTION;\n"
            "                           PLACEMENT: threads, processes (default), hybrid, strict\n"
            "  --return PREFIX=STATUS[:TEXT]\n"
            "                           requests whose path starts with PREFIX get STATUS\n"
            "                           with TEXT as body (\\n, \\t: escapes), answered by the\n"
            "                           loops; for 301, 302, 303, 307, 308 TEXT is the Location\n"
            "  --workers N              workers per route (default: usable CPUs)\n"
            "  --loops N                event-loop threads (default: usable CPUs)\n"
            "  --max-header BYTES       request line and headers (default 8192)\n"
            "  --max-body BYTES         request body (default 1048576)\n"
            "  --max-output BYTES       a handler's response (default --max-body + 65536)\n"
            "  --max-conns N            open connections (default 4096)\n"
            "  --header-timeout MS      408 for headers slower than this (default 10000)\n"
            "  --shutdown-timeout MS    graceful stop bound (default 10000)\n"
            "  --restart-limit N        deaths within a second of workers that finished\n"
            "                           no request, that break a route's pool (503 until\n"
            "                           it is reset; default 100)\n"
            "  --access-log FILE        combined-format access log (default: none)\n"
            "  --error-log FILE         error log (default: standard error)\n"
            "  --user NAME              once listening, run as NAME (and its groups): the\n"
            "                           loops, the fork server and every worker; needs root\n"
            "  --help, --version\n");
}

static int parse_number(const char *s, unsigned long long min, unsigned long long max,
                        unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const struct {
    const char *name; /* PLACEMENT in a route */
    enum walls_placement placement;
    unsigned sandbox;
} kinds[] = {{"threads", WALLS_THREADS, WALLS_SANDBOX_NONE},
             {"processes", WALLS_PROCESSES, WALLS_SANDBOX_NONE},
             {"hybrid", WALLS_HYBRID, WALLS_SANDBOX_NONE},
             {"strict", WALLS_PROCESSES, WALLS_SANDBOX_STRICT}};

int httpd_route_placement(struct route *r, const char *placement)
{
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (strcmp(kinds[k].name, placement) == 0) {
            r->placement_name = kinds[k].name;
            r->placement = kinds[k].placement;
            r->sandbox = kinds[k].sandbox;
            return 0;
        }
    return httpd_fail("unknown placement %s (threads, processes, hybrid or strict)", placement);
}

int httpd_route_timeout(struct route *r, const char *ms)
{
    unsigned long long v;
    if (parse_number(ms, 1, 86400000ULL, &v) != 0)
        return httpd_fail("time limit %s is not a number of milliseconds (1-86400000)", ms);
    r->timeout_ms = (int64_t)v;
    return 0;
}

int httpd_route_workers(struct route *r, const char *n)
{
    unsigned long long v;
    if (parse_number(n, 1, 1024, &v) != 0)
        return httpd_fail("workers %s is not a count from 1 to 1024", n);
    r->workers = (unsigned)v;
    return 0;
}

int httpd_route_handler(struct route *r, const char *plugin, const char *function)
{
    if (r->ret_status)
        return httpd_fail("route %s has a return already: a handler or a return, not both",
                          r->prefix);
    if (!realpath(plugin, r->plugin))
        return httpd_fail("plugin %s not found", plugin);
    if (!*function || strlen(function) >= sizeof r->function)
        return httpd_fail("function name \"%s\" is empty or too long", function);
    strcpy(r->function, function);
    return 0;
}

int httpd_route_return(struct route *r, const char *status, const char *text)
{
    unsigned long long v;
    if (r->plugin[0])
        return httpd_fail("route %s has a handler already: a handler or a return, not both",
                          r->prefix);
    if (r->ret_status)
        return httpd_fail("route %s: return given twice", r->prefix);
    if (parse_number(status, 200, 599, &v) != 0)
        return httpd_fail("return %s: want a status from 200 to 599", status);
    size_t n = 0;
    for (const char *p = text; *p; p++) {
        char ch = *p;
        if (ch == '\\') {
            switch (*++p) {
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            default:
                return httpd_fail("return %s: unknown escape \\%.1s in its text (\\n, \\r, "
                                  "\\t, \\\", \\\\)", status, p);
            }
        }
        if (n == sizeof r->ret_text - 1)
            return httpd_fail("return %s: text longer than %d bytes", status,
                              HTTPD_RETURN_MAX - 1);
        r->ret_text[n++] = ch;
    }
    r->ret_text[n] = '\0';
    r->ret_len = n;
    if ((v == 204 || v == 205 || v == 304) && n)
        return httpd_fail("return %llu: such a response has no body, so no text", v);
    if (httpd_is_redirect((int)v)) {
        if (!n)
            return httpd_fail("return %llu: a redirect wants its Location as text", v);
        /* A URI reference: printable ASCII, no blank (no header injection). */
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)r->ret_text[i] <= 0x20 || (unsigned char)r->ret_text[i] >= 0x7f)
                return httpd_fail("return %llu: a blank, control or non-ASCII byte in the "
                                  "Location (percent-encode it)", v);
    }
    r->ret_status = (int)v;
    snprintf(r->function, sizeof r->function, "return %d", r->ret_status);
    r->placement_name = "loop";
    return 0;
}

struct route *httpd_route_new(struct server *srv, const char *prefix, size_t len)
{
    if (srv->nroutes == HTTPD_ROUTES_MAX) {
        httpd_fail("too many routes (at most %d)", HTTPD_ROUTES_MAX);
        return NULL;
    }
    if (len == 0 || prefix[0] != '/') {
        httpd_fail("route prefix %.*s: want a path starting with /", (int)len, prefix);
        return NULL;
    }
    if (len >= sizeof srv->routes[0].prefix) {
        httpd_fail("route prefix %.40s...: longer than %zu bytes", prefix,
                   sizeof srv->routes[0].prefix - 1);
        return NULL;
    }
    /* Requests are matched on their path decoded and normalized: a prefix
     * written any other way would match nothing a client means by it. */
    if (memchr(prefix, '%', len) || memchr(prefix, '?', len) || memchr(prefix, '#', len) ||
        memchr(prefix, '\0', len)) {
        httpd_fail("route prefix %.*s: write the path as requests are matched, decoded "
                   "(no %%, ? or #)", (int)len, prefix);
        return NULL;
    }
    char given[sizeof srv->routes[0].prefix], norm[sizeof srv->routes[0].prefix + 2];
    memcpy(given, prefix, len);
    given[len] = '\0';
    bool normal = httpd_normalize_path(given, len, norm) == 0;
    if (!normal || strcmp(norm, given) != 0) {
        httpd_fail("route prefix %s: not a normalized path (no //, /./ or /..)%s%s", given,
                   normal ? ": write " : "", normal ? norm : "");
        return NULL;
    }
    /* /_status and /_status.html are answered before any route. */
    if (len >= 8 && memcmp(prefix, "/_status", 8) == 0) {
        httpd_fail("route prefix %.*s: /_status is the server's own", (int)len, prefix);
        return NULL;
    }
    for (unsigned i = 0; i < srv->nroutes; i++)
        if (srv->routes[i].prefix_len == len && memcmp(srv->routes[i].prefix, prefix, len) == 0) {
            httpd_fail("route prefix %.*s given twice", (int)len, prefix);
            return NULL;
        }
    struct route *r = &srv->routes[srv->nroutes];
    memset(r, 0, sizeof *r);
    memcpy(r->prefix, prefix, len);
    r->prefix_len = len;
    r->pool_fd = -1;
    if (httpd_where)
        snprintf(r->where, sizeof r->where, "%s", httpd_where);
    httpd_route_placement(r, "processes");
    return r;
}

/* PREFIX=PLUGIN.so:FUNCTION[:PLACEMENT[:TIMEOUT_MS]] */
static int parse_route(struct server *srv, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return httpd_fail("route %s: want PREFIX=PLUGIN.so:FUNCTION[:PLACEMENT[:TIMEOUT_MS]]",
                          spec);
    struct route *r = httpd_route_new(srv, spec, (size_t)(eq - spec));
    if (!r)
        return 2;
    char rest[PATH_MAX + 256];
    if (strlen(eq + 1) >= sizeof rest)
        return httpd_fail("route %s: too long", spec);
    strcpy(rest, eq + 1);
    char *fields[4] = {NULL};
    int n = 0;
    for (char *p = rest; p; n++) {
        if (n == 4)
            return httpd_fail("route %s: too many fields", spec);
        fields[n] = p;
        char *colon = strchr(p, ':');
        if (colon)
            *colon++ = '\0';
        p = colon;
    }
    if (n < 2 || !*fields[0])
        return httpd_fail("route %s: want PLUGIN.so:FUNCTION after the =", spec);
    int rc = httpd_route_handler(r, fields[0], fields[1]);
    if (!rc && n > 2 && *fields[2])
        rc = httpd_route_placement(r, fields[2]);
    if (!rc && n > 3)
        rc = httpd_route_timeout(r, fields[3]);
    if (rc)
        return rc;
    srv->nroutes++;
    return 0;
}

/* PREFIX=STATUS[:TEXT] */
static int parse_return(struct server *srv, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return httpd_fail("return %s: want PREFIX=STATUS[:TEXT]", spec);
    struct route *r = httpd_route_new(srv, spec, (size_t)(eq - spec));
    if (!r)
        return 2;
    char status[16];
    const char *colon = strchr(eq + 1, ':');
    size_t len = colon ? (size_t)(colon - eq - 1) : strlen(eq + 1);
    if (len >= sizeof status)
        return httpd_fail("return %s: want a status from 200 to 599 after the =", spec);
    memcpy(status, eq + 1, len);
    status[len] = '\0';
    int rc = httpd_route_return(r, status, colon ? colon + 1 : "");
    if (rc)
        return rc;
    srv->nroutes++;
    return 0;
}

static int parse_listen(struct server *srv, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    unsigned long long port;
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof srv->host ||
        parse_number(colon + 1, 0, 65535, &port) != 0)
        return httpd_fail("listen %s: want an IPv4 HOST:PORT", spec);
    memcpy(srv->host, spec, (size_t)(colon - spec));
    srv->host[colon - spec] = '\0';
    /* A dotted IPv4 address, as the loops will bind it: "localhost" or
     * "::1" would pass -t and then fail to start. */
    struct in_addr addr;
    if (inet_pton(AF_INET, srv->host, &addr) != 1)
        return httpd_fail("listen %s: want an IPv4 HOST:PORT (a dotted address)", spec);
    srv->port = (int)port;
    srv->listening = true;
    return 0;
}

static int open_log(FILE **to, char *saved, const char *path)
{
    if (strlen(path) >= PATH_MAX)
        return httpd_fail("log %.40s...: the path is too long", path);
    FILE *f = httpd_log_open(path);
    if (!f)
        return httpd_fail("cannot open log %s: %s", path,
                          errno == ENXIO ? "a FIFO that nothing reads" : strerror(errno));
    setvbuf(f, NULL, _IOLBF, 0);
    if (*to && *to != stderr)
        fclose(*to);
    *to = f;
    strcpy(saved, path);
    return 0;
}

int httpd_option(struct server *srv, const char *name, const char *value)
{
    unsigned long long v;
    if (!value)
        return httpd_fail("%s needs a value", name);
    if (strcmp(name, "listen") == 0)
        return parse_listen(srv, value);
    if (strcmp(name, "root") == 0) {
        struct stat st;
        if (!realpath(value, srv->root))
            return httpd_fail("root %s: no such directory", value);
        if (stat(srv->root, &st) != 0 || !S_ISDIR(st.st_mode))
            return httpd_fail("root %s: not a directory", value);
        return 0;
    }
    if (strcmp(name, "route") == 0)
        return parse_route(srv, value);
    if (strcmp(name, "return") == 0)
        return parse_return(srv, value);
    if (strcmp(name, "access-log") == 0)
        return open_log(&srv->access_log, srv->access_log_path, value);
    if (strcmp(name, "error-log") == 0)
        return open_log(&srv->error_log, srv->error_log_path, value);
    if (strcmp(name, "user") == 0) {
        if (strlen(value) >= sizeof srv->user || !getpwnam(value))
            return httpd_fail("user %s: no such user", value);
        strcpy(srv->user, value);
        return 0;
    }
    static const struct {
        const char *name;
        unsigned long long min, max;
        const char *unit;
    } numbers[] = {
        {"workers", 1, 1024, "workers"},
        {"loops", 1, 1024, "loops"},
        {"max-conns", 1, 1000000, "connections"},
        {"max-header", 256, 65536, "bytes"},
        {"max-body", 0, WALLS_IO_MAX - 65536, "bytes"},
        {"max-output", 64, WALLS_IO_MAX - 65536, "bytes"},
        {"header-timeout", 1, 3600000, "milliseconds"},
        {"shutdown-timeout", 1, 3600000, "milliseconds"},
        {"restart-limit", 1, 100000, "restarts"},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (strcmp(name, numbers[i].name) != 0)
            continue;
        if (parse_number(value, numbers[i].min, numbers[i].max, &v) != 0)
            return httpd_fail("%s %s: want %llu to %llu %s", name, value, numbers[i].min,
                              numbers[i].max, numbers[i].unit);
        switch (i) {
        case 0: srv->workers = (unsigned)v; break;
        case 1: srv->nloops = (unsigned)v; break;
        case 2: srv->max_conns = (unsigned)v; break;
        case 3: srv->max_header = (size_t)v; break;
        case 4: srv->max_body = (size_t)v; break;
        case 5: srv->max_output = (size_t)v; break;
        case 6: srv->header_timeout_ms = (int)v; break;
        case 7: srv->shutdown_ms = (int)v; break;
        default: srv->restart_limit = (unsigned)v; break;
        }
        return 0;
    }
    return httpd_fail("unknown setting %s", name);
}

int httpd_parse_args(struct server *srv, int argc, char **argv, bool *check_only)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 0},
        {"root", required_argument, NULL, 0},
        {"route", required_argument, NULL, 0},
        {"return", required_argument, NULL, 0},
        {"workers", required_argument, NULL, 0},
        {"loops", required_argument, NULL, 0},
        {"max-header", required_argument, NULL, 0},
        {"max-body", required_argument, NULL, 0},
        {"max-output", required_argument, NULL, 0},
        {"max-conns", required_argument, NULL, 0},
        {"header-timeout", required_argument, NULL, 0},
        {"shutdown-timeout", required_argument, NULL, 0},
        {"restart-limit", required_argument, NULL, 0},
        {"access-log", required_argument, NULL, 0},
        {"error-log", required_argument, NULL, 0},
        {"user", required_argument, NULL, 0},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int ch, index;
    opterr = 0;
    /* -t first, wherever it stands: a check's exit status (1 for a bad
     * configuration) must not depend on what came before it. */
    while ((ch = getopt_long(argc, argv, ":c:t", opts, &index)) != -1)
        if (ch == 't')
            *check_only = true;
    optind = 0;
    while ((ch = getopt_long(argc, argv, ":c:t", opts, &index)) != -1) {
        int rc = 0;
        switch (ch) {
        case 0:
            rc = httpd_option(srv, opts[index].name, optarg);
            break;
        case 'c':
            rc = httpd_config_load(srv, optarg);
            break;
        case 't':
            *check_only = true;
            break;
        case 'h':
            httpd_usage(stdout);
            exit(0);
        case 'V':
            printf("walls-httpd (walls %s)\n", walls_version());
            exit(0);
        case ':':
            return httpd_fail("%s needs a value", argv[optind - 1]);
        default:
            httpd_usage(stderr);
            return httpd_fail("unknown option %s", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return httpd_fail("unexpected argument %s", argv[optind]);
    if (!srv->listening)
        return httpd_fail("no address to listen on: give --listen HOST:PORT, or listen in the "
                          "configuration file");
    /* Unset: room for a response as large as the largest request body,
     * with 64 KiB for its headers (a handler that echoes its body). */
    if (!srv->max_output)
        srv->max_output = srv->max_body < WALLS_IO_MAX - 131072 ? srv->max_body + 65536
                                                               : WALLS_IO_MAX - 65536;
    return 0;
}
