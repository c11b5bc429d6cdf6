/*
 * throttle.h - crash-loop protection: how many restarts a pool allows in a
 * window, and how long each waits.
 *
 * A ring of the times of the last limit + 1 restarts: a restart trips the
 * throttle when more than limit of them fall within the window. With a
 * backoff, the n-th restart within the window waits backoff x 2^(n-1),
 * at most the window.
 */
#ifndef WALLS_THROTTLE_H
#define WALLS_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct walls__throttle {
    int64_t *times;    /* limit + 1 slots */
    unsigned limit;    /* restarts allowed within the window */
    int64_t window_ns;
    int64_t backoff_ns; /* 0: restart at once */
    unsigned next;     /* the slot the next restart goes in */
    uint64_t count;    /* restarts counted since the last reset */
};

/* Makes the ring for limit restarts within window_ns. Returns 0 or -ENOMEM. */
int walls__throttle_init(struct walls__throttle *t, unsigned limit, int64_t window_ns,
                         int64_t backoff_ns);
void walls__throttle_fini(struct walls__throttle *t);
/* Forgets every restart counted. */
void walls__throttle_reset(struct walls__throttle *t);
/* Counts a restart at now. Returns -1 when it is one too many for the
 * window (the pool should break), else how long it should wait, in ns. */
int64_t walls__throttle_restart(struct walls__throttle *t, int64_t now);

#endif
