/*
 * examples.c - walls-httpd's example handlers, built into
 * walls-httpd-examples.so:
 *
 *   hello  200 "hello\n"
 *   dyn    the JSON of /dyn?n=K: {"n":K,"sq":K*K}; segfaults when the query has crash=1
 *   crash  segfaults when the query has crash=1, else 200
 *   nap    sleeps for the query's ms= milliseconds (at most 60000), then 200
 *   echo   200 with the request body as its body
 *   heavy  CPU work: the query's n= rounds (at most 10^9) of a hash, then 200
 *   fail   returns 1 (the client gets 500)
 *   opener tries to open /etc/passwd: a strict route stops it (502)
 *   forge  writes the request body as its output, as it is: a handler that
 *          lays out its own response, or lies (the server checks it)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "walls-httpd.h"

/* The handlers: walls task functions, exported. */
walls_fn hello, dyn, crash, nap, echo, heavy, fail, opener, forge;

/* The query's integer parameter name, or def when absent or malformed. */
static long long param(const struct whttpd_request *req, const char *name, long long def)
{
    char buf[32];
    if (whttpd_query_param(req, name, buf, sizeof buf) <= 0)
        return def;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return *end ? def : v;
}

int hello(struct walls_call *call)
{
    return whttpd_respond(call, 200, "text/plain", "hello\n", 6);
}

int dyn(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    long long n = param(&req, "n", 0);
    if (param(&req, "crash", 0) == 1) /* the benchmark's one request in a hundred */
        *(volatile int *)0 = 1;
    if (n > 3037000499LL || n < -3037000499LL) /* n * n fits */
        return whttpd_respond(call, 400, "text/plain", "n is too large\n", 15);
    char body[96];
    int len = snprintf(body, sizeof body, "{\"n\":%lld,\"sq\":%lld}", n, n * n);
    return whttpd_respond(call, 200, "application/json", body, (size_t)len);
}

int crash(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    if (param(&req, "crash", 0) == 1)
        *(volatile int *)0 = 1;
    return whttpd_respond(call, 200, "text/plain", "alive\n", 6);
}

int nap(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    long long ms = param(&req, "ms", 0);
    if (ms < 0 || ms > 60000)
        return whttpd_respond(call, 400, "text/plain", "ms: 0 to 60000\n", 15);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return whttpd_respond(call, 200, "text/plain", "rested\n", 7);
}

int echo(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    const char *type = whttpd_header(&req, "Content-Type");
    return whttpd_respond(call, 200, type ? type : "application/octet-stream", req.body,
                          req.body_len);
}

int heavy(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0)
        return 1;
    long long n = param(&req, "n", 1000000);
    if (n < 0 || n > 1000000000LL)
        return whttpd_respond(call, 400, "text/plain", "n: 0 to 10^9\n", 13);
    uint64_t h = 1469598103934665603ULL;
    for (long long i = 0; i < n; i++)
        h = (h ^ (uint64_t)i) * 1099511628211ULL;
    char body[32];
    int len = snprintf(body, sizeof body, "%016llx\n", (unsigned long long)h);
    return whttpd_respond(call, 200, "text/plain", body, (size_t)len);
}

int fail(struct walls_call *call)
{
    (void)call;
    return 1;
}

int opener(struct walls_call *call)
{
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    return whttpd_respond(call, 200, "text/plain", fd >= 0 ? "opened\n" : "refused\n",
                          fd >= 0 ? 7 : 8);
}

int forge(struct walls_call *call)
{
    struct whttpd_request req;
    if (whttpd_request_read(call, &req) != 0 || req.body_len > call->out_cap)
        return 1;
    memcpy(call->out, req.body, req.body_len);
    call->out_len = req.body_len;
    return 0;
}
