/*
 * config.c - walls-httpd's configuration file.
 *
 *     # comments run to the end of the line
 *     listen 127.0.0.1:8080
 *     root www                      # relative paths: from the file's directory
 *     workers 2
 *     access_log logs/access.log
 *
 *     route /hello {
 *         handler walls-httpd-examples.so:hello
 *         placement threads         # threads, processes (default), hybrid, strict
 *         timeout 1000              # milliseconds; none by default
 *         workers 4                 # this route's; the global one by default
 *     }
 *     route /dyn=walls-httpd-examples.so:dyn:processes   # or the flag's form
 *     route /ping {
 *         return 200 "pong\n"     # a fixed response, answered by the loops
 *     }
 *     return /old=301:/new          # the flag's form of that
 *
 * Every other directive is a command-line option without its dashes
 * (max_body, header_timeout, ...: '_' and '-' alike) and one value. A
 * mistake is reported as FILE:LINE: what is wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

/* path made absolute against dir when relative, into out (PATH_MAX); a
 * result too long for a path is left as it is, to be refused later. */
static const char *against(const char *dir, const char *path, char *out)
{
    if (path[0] == '/' || !dir[0] || strlen(dir) + strlen(path) + 2 > PATH_MAX)
        return path;
    strcpy(out, dir);
    strcat(out, "/");
    strcat(out, path);
    return out;
}

static bool is_path_setting(const char *name)
{
    return strcmp(name, "root") == 0 || strcmp(name, "access-log") == 0 ||
           strcmp(name, "error-log") == 0;
}

/* Splits line into at most max words (max + 1: more), in place: blanks
 * part them, '#' outside quotes ends the line, and "..." is one word
 * without its quotes (a backslash keeps the next byte in it: \" does not
 * end it, and stays for the setting to read, as it would from a flag).
 * -1 when a quote is not closed, -2 when a quote touches a word. */
static int words(char *line, char **tok, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p || *p == '#')
            return n;
        if (n == max)
            return max + 1;
        char *end;
        if (*p == '"') {
            tok[n++] = ++p;
            for (end = p; *end && *end != '"'; end++)
                if (*end == '\\' && end[1])
                    end++;
            if (*end != '"')
                return -1;
            *end++ = '\0';
            if (*end && !strchr(" \t\r\n#", *end))
                return -2; /* "a"b */
            if (*end == '#' || !*end)
                return n;
        } else {
            tok[n++] = p;
            end = p + strcspn(p, " \t\r\n#\"");
            if (*end == '"')
                return -2; /* a"b */
            if (*end == '#') {
                *end = '\0';
                return n;
            }
        }
        if (!*end)
            return n;
        *end = '\0';
        p = end + 1;
    }
}

/* Whether a route block's directive says how its handler runs. */
static bool tunes_handler(const char *key)
{
    return strcmp(key, "placement") == 0 || strcmp(key, "timeout") == 0 ||
           strcmp(key, "workers") == 0;
}

/* A route block's directive: text is a return's third word (NULL: none). */
static int route_line(struct route *r, const char *dir, const char *key, const char *value,
                      const char *text)
{
    char abs[PATH_MAX];
    if (strcmp(key, "return") == 0)
        return httpd_route_return(r, value, text ? text : "");
    if (text)
        return httpd_fail("want one setting and its value, or }");
    if (strcmp(key, "handler") == 0) {
        const char *colon = strrchr(value, ':');
        if (!colon || colon == value || !colon[1])
            return httpd_fail("handler %s: want PLUGIN.so:FUNCTION", value);
        char plugin[PATH_MAX];
        snprintf(plugin, sizeof plugin, "%.*s", (int)(colon - value), value);
        return httpd_route_handler(r, against(dir, plugin, abs), colon + 1);
    }
    if (strcmp(key, "placement") == 0)
        return httpd_route_placement(r, value);
    if (strcmp(key, "timeout") == 0)
        return httpd_route_timeout(r, value);
    if (strcmp(key, "workers") == 0)
        return httpd_route_workers(r, value);
    return httpd_fail("unknown route setting %s (handler, return, placement, timeout, workers)",
                      key);
}

/* The settings a file or a route block gave so far, with their lines: a
 * second one is a mistake (which would win?), not an override. */
struct seen {
    char name[24][24]; /* every setting there is, and more */
    int line[24];
    unsigned n;
};

static int once(struct seen *s, const char *name, int lineno, const char *path)
{
    for (unsigned i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return httpd_fail("%s given twice (first at %s:%d)", name, path, s->line[i]);
    if (strlen(name) < sizeof s->name[0] && s->n < sizeof s->line / sizeof s->line[0]) {
        strcpy(s->name[s->n], name);
        s->line[s->n++] = lineno;
    }
    return 0;
}

int httpd_config_load(struct server *srv, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return httpd_fail("cannot read the configuration file %s: %s", path, strerror(errno));
    char dir[PATH_MAX] = "";
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (slash && slash == path)
        strcpy(dir, "/");
    char where[PATH_MAX + 32], line[4096], abs[PATH_MAX];
    struct route *block = NULL;
    bool has_handler = false, tuned = false;
    int rc = 0, lineno = 0, block_line = 0;
    struct seen top = {0}, inner = {0};
    char *text = NULL;
    size_t text_cap = 0;
    ssize_t got;
    while (!rc && (got = getline(&text, &text_cap, f)) >= 0) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        httpd_where = where;
        if (memchr(text, '\0', (size_t)got)) {
            rc = httpd_fail("a NUL byte in the line");
            break;
        }
        if ((size_t)got >= sizeof line) {
            rc = httpd_fail("line too long (%zu bytes at most)", sizeof line - 1);
            break;
        }
        memcpy(line, text, (size_t)got + 1);
        char *tok[4];
        int n = words(line, tok, 4);
        if (n < 0) {
            rc = httpd_fail(n == -1 ? "a quoted word is not closed with \""
                                    : "a quote inside a word: quote the whole word, apart");
            break;
        }
        if (n == 0)
            continue;
        if (n > 3) {
            rc = httpd_fail("too many words");
            break;
        }
        for (char *p = tok[0]; *p; p++)
            if (*p == '_')
                *p = '-';
        if (block) {
            if (n == 1 && strcmp(tok[0], "}") == 0) {
                if (!has_handler && !block->ret_status) {
                    rc = httpd_fail("route %s has no handler or return", block->prefix);
                    break;
                }
                if (block->ret_status && tuned) {
                    rc = httpd_fail("route %s: placement, timeout and workers are a handler's; "
                                    "a return has none", block->prefix);
                    break;
                }
                srv->nroutes++;
                block = NULL;
            } else if (n == 2 || (n == 3 && strcmp(tok[0], "return") == 0)) {
                if ((rc = once(&inner, tok[0], lineno, path)) != 0)
                    break;
                has_handler |= strcmp(tok[0], "handler") == 0;
                tuned |= tunes_handler(tok[0]);
                rc = route_line(block, dir, tok[0], tok[1], n == 3 ? tok[2] : NULL);
            } else {
                rc = httpd_fail("want one setting and its value, or }");
            }
            continue;
        }
        if (strcmp(tok[0], "route") == 0 && n == 3 && strcmp(tok[2], "{") == 0) {
            block = httpd_route_new(srv, tok[1], strlen(tok[1]));
            block_line = lineno;
            has_handler = tuned = false;
            inner.n = 0;
            rc = block ? 0 : 2;
        } else if (strcmp(tok[0], "route") == 0 && n == 2 && strchr(tok[1], '=')) {
            /* The flag's form; a relative plugin path is the file's. */
            char spec[2 * PATH_MAX];
            const char *eq = strchr(tok[1], '=');
            snprintf(spec, sizeof spec, "%.*s=%s", (int)(eq - tok[1]), tok[1],
                     against(dir, eq + 1, abs));
            rc = httpd_option(srv, "route", spec);
        } else if (n == 2 && strcmp(tok[0], "return") != 0 &&
                   (rc = once(&top, tok[0], lineno, path)) != 0) {
            break;
        } else if (n == 2) {
            rc = httpd_option(srv, tok[0], is_path_setting(tok[0]) ? against(dir, tok[1], abs)
                                                                  : tok[1]);
        } else {
            rc = httpd_fail("want a setting and one value, or route PREFIX {");
        }
    }
    if (!rc && block) {
        snprintf(where, sizeof where, "%s:%d", path, block_line);
        rc = httpd_fail("route %s is not closed with }", block->prefix);
    }
    if (!rc && ferror(f))
        rc = httpd_fail("cannot read the configuration file %s: %s", path, strerror(errno));
    httpd_where = NULL;
    free(text);
    fclose(f);
    return rc;
}
