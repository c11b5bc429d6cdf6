/*
 * log.c - the error log and the access log (the combined format), one
 * line each, written whole under one lock and flushed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

static void stamp(char *buf, size_t len, bool access)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    if (access)
        strftime(buf, len, "%d/%b/%Y:%H:%M:%S %z", &tm);
    else
        strftime(buf, len, "%Y/%m/%d %H:%M:%S", &tm);
}

static void log_line(struct server *srv, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void log_line(struct server *srv, const char *level, const char *fmt, va_list ap)
{
    if (!httpd_peek(&srv->error_log))
        return;
    char when[64];
    stamp(when, sizeof when, false);
    pthread_mutex_lock(&srv->log_lock);
    fprintf(srv->error_log, "%s [%s] ", when, level);
    vfprintf(srv->error_log, fmt, ap);
    fputc('\n', srv->error_log);
    fflush(srv->error_log);
    pthread_mutex_unlock(&srv->log_lock);
}

void httpd_log_error(struct server *srv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(srv, "error", fmt, ap);
    va_end(ap);
}

void httpd_log_notice(struct server *srv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(srv, "notice", fmt, ap);
    va_end(ap);
}

static bool needs_escape(unsigned char ch)
{
    return ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x7f;
}

const char *httpd_log_escape(const char *s, char *buf, size_t len)
{
    size_t at = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        size_t need = needs_escape(ch) ? 4 : 1;
        if (at + need + 4 > len) { /* room for "..." and the NUL */
            memcpy(buf + at, "...", 4);
            return buf;
        }
        if (need == 4)
            snprintf(buf + at, 5, "\\x%02X", ch);
        else
            buf[at] = (char)ch;
        at += need;
    }
    buf[at] = '\0';
    return buf;
}

/* A quoted field: quotes and control bytes escaped as \xHH. */
static void quoted(FILE *f, const char *s)
{
    fputc('"', f);
    if (!s)
        s = "-";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (needs_escape(ch))
            fprintf(f, "\\x%02X", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void httpd_log_access(struct server *srv, const char *peer, const char *request_line,
                      int status, uint64_t bytes, const char *referer, const char *agent)
{
    char when[64];
    stamp(when, sizeof when, true);
    pthread_mutex_lock(&srv->log_lock);
    FILE *f = srv->access_log;
    fprintf(f, "%s - - [%s] ", peer, when);
    quoted(f, request_line);
    fprintf(f, " %d %llu ", status, (unsigned long long)bytes);
    quoted(f, referer);
    fputc(' ', f);
    quoted(f, agent);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&srv->log_lock);
}

FILE *httpd_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0)
        return NULL;
    /* Written as any log is: the flag was for the open alone. */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    FILE *f = fdopen(fd, "a");
    if (!f) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return f;
}

/* Opens the log at path again (it was moved away) and swaps it in under
 * the log lock; on failure the old one stays, and says why. */
static void reopen_log(struct server *srv, FILE **log, const char *path)
{
    if (!*path)
        return;
    FILE *f = httpd_log_open(path);
    if (!f) {
        httpd_log_error(srv, "cannot open log %s again: %s; writing on to the old one", path,
                        errno == ENXIO ? "a FIFO that nothing reads" : strerror(errno));
        return;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&srv->log_lock);
    FILE *old = *log;
    httpd_store(log, f);
    pthread_mutex_unlock(&srv->log_lock);
    fclose(old);
}

void httpd_logs_reopen(struct server *srv)
{
    reopen_log(srv, &srv->access_log, srv->access_log_path);
    reopen_log(srv, &srv->error_log, srv->error_log_path);
    httpd_log_notice(srv, "logs opened again");
}
