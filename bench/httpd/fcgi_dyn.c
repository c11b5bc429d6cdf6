/*
 * fcgi_dyn.c - the benchmark's FastCGI peer of walls-httpd's dyn handler:
 * {"n":K,"sq":K*K} for ?n=K, and a segfault for crash=1, with libfcgi.
 * Run by spawn-fcgi -F 2 behind nginx (bench/httpd/run.sh).
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long param(const char *query, const char *name, long long def)
{
    size_t n = strlen(name);
    for (const char *q = query; q && *q;) {
        if (strncmp(q, name, n) == 0 && q[n] == '=')
            return strtoll(q + n + 1, NULL, 10);
        q = strchr(q, '&');
        if (q)
            q++;
    }
    return def;
}

int main(void)
{
    FCGX_Request req;
    FCGX_Init();
    FCGX_InitRequest(&req, 0, 0);
    while (FCGX_Accept_r(&req) == 0) {
        const char *query = FCGX_GetParam("QUERY_STRING", req.envp);
        long long k = param(query, "n", 0);
        if (param(query, "crash", 0) == 1)
            *(volatile int *)0 = 1;
        char body[96];
        int len = snprintf(body, sizeof body, "{\"n\":%lld,\"sq\":%lld}", k, k * k);
        FCGX_FPrintF(req.out, "Status: 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\n\r\n%s", len, body);
        FCGX_Finish_r(&req);
    }
    return 0;
}
