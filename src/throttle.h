/*
 * throttle.h - crash-loop protection: how many restarts a pool allows in a
 * window, and how long each waits.
 *
 * A ring of the times of the last limit + 1 restarts that fall within the
 * window, oldest first: a restart drops those that left the window from
 * the front and adds itself at the back, and trips the throttle when more
 * than limit remain. Each restart costs the same however large the limit.
 * With a backoff, the n-th restart within the window waits
 * backoff x 2^(n-1), at most the window.
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
    unsigned first;    /* the slot of the oldest restart held */
    unsigned held;     /* restarts held, at most limit + 1 */
};

/* Makes the ring for limit restarts within window_ns. Returns 0 or -ENOMEM. */
int walls__throttle_init(struct walls__throttle *t, unsigned limit, int64_t window_ns,
                         int64_t backoff_ns);
void walls__throttle_fini(struct walls__throttle *t);
/* Forgets every restart counted. */
void walls__throttle_reset(struct walls__throttle *t);
/* Counts a restart at now (a time before the last restart's counts as
 * the last restart's). Returns -1 when it is one too many for the
 * window (the pool should break), else how long it should wait, in ns. */
int64_t walls__throttle_restart(struct walls__throttle *t, int64_t now);

#endif
