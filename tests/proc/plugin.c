/*
 * plugin.c - a task function in a shared library that the tests load with
 * dlopen() after the fork server and the workers have started.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "walls.h"

__attribute__((visibility("default"))) int plugin_triple(struct walls_call *call);
__attribute__((visibility("default"))) int plugin_where(struct walls_call *call);

#ifdef PLUGIN_SHIFTED
/* Leaves a mark where WALLS_TEST_PLUGIN_MARK says when a process loads
 * this build: a worker must not load it in place of the host's. */
__attribute__((constructor)) static void mark_loaded(void)
{
    const char *mark = getenv("WALLS_TEST_PLUGIN_MARK");
    if (mark) {
        int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
}

/* Built a second time with this first: every function after it moves. */
__attribute__((visibility("default"))) int plugin_pad(struct walls_call *call);
int plugin_pad(struct walls_call *call)
{
    static const char text[] = "the shifted build's pad, which moves the functions after it";
    size_t n = sizeof text - 1 < call->out_cap ? sizeof text - 1 : call->out_cap;
    for (size_t i = 0; i < n; i++)
        ((char *)call->out)[i] = text[i];
    call->out_len = n;
    return call->in_len ? 7 : 0;
}
#endif

int plugin_triple(struct walls_call *call)
{
    int v;
    if (call->in_len != sizeof v || call->out_cap < sizeof v)
        return 22;
    memcpy(&v, call->in, sizeof v);
    v = 3 * v + 1;
    memcpy(call->out, &v, sizeof v);
    call->out_len = sizeof v;
    return 0;
}

/* Answers the path of the library it runs from, as the process running it
 * loaded it. */
int plugin_where(struct walls_call *call)
{
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)plugin_where, &info) || !info.dli_fname)
        return 2;
    size_t n = strlen(info.dli_fname);
    if (n > call->out_cap)
        return 36;
    memcpy(call->out, info.dli_fname, n);
    call->out_len = n;
    return 0;
}
