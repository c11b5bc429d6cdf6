/*
 * plugin.c - a task function in a shared library that the tests load with
 * dlopen() after the fork server and the workers have started.
 */
#include <string.h>

#include "walls.h"

__attribute__((visibility("default"))) int plugin_triple(struct walls_call *call);

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
