/*
 * throttle.c - crash-loop protection (see throttle.h).
 */
#include "throttle.h"

#include <errno.h>
#include <stdlib.h>

int walls__throttle_init(struct walls__throttle *t, unsigned limit, int64_t window_ns,
                         int64_t backoff_ns)
{
    t->times = calloc((size_t)limit + 1, sizeof *t->times);
    t->limit = limit;
    t->window_ns = window_ns;
    t->backoff_ns = backoff_ns;
    t->first = 0;
    t->held = 0;
    return t->times ? 0 : -ENOMEM;
}

void walls__throttle_fini(struct walls__throttle *t)
{
    free(t->times);
    t->times = NULL;
}

void walls__throttle_reset(struct walls__throttle *t)
{
    t->first = 0;
    t->held = 0;
}

int64_t walls__throttle_restart(struct walls__throttle *t, int64_t now)
{
    unsigned size = t->limit + 1;
    if (t->held) {
        int64_t last = t->times[(t->first + t->held - 1) % size];
        if (now < last)
            now = last;
    }
    /* The oldest first: once one is inside the window, so are the rest. */
    while (t->held && now - t->times[t->first] > t->window_ns) {
        t->first = (t->first + 1) % size;
        t->held--;
    }
    if (t->held == size) { /* tripped already and called again: drop the oldest */
        t->first = (t->first + 1) % size;
        t->held--;
    }
    t->times[(t->first + t->held) % size] = now;
    t->held++;
    unsigned recent = t->held;
    if (recent > t->limit)
        return -1;
    int64_t delay = t->backoff_ns;
    for (unsigned i = 1; delay && i < recent && delay < t->window_ns; i++)
        delay *= 2;
    return delay > t->window_ns ? t->window_ns : delay;
}
