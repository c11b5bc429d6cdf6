/*
 * futex.h - sleeping on a 32-bit word, in private or shared memory.
 *
 * Words in shared mappings are waited on without FUTEX_PRIVATE_FLAG, since
 * the waker may be another process; words in host memory use the private
 * form. Callers count their sleepers next to the word and wake only when
 * the count is non-zero, so a hand-off with nobody asleep costs no syscall.
 */
#ifndef WALLS_FUTEX_H
#define WALLS_FUTEX_H

#include <stdbool.h>
#include <stdint.h>

/* Sleep while *word == expected, for at most timeout_ns (-1: forever).
 * Returns 0 when woken or the word differed, -ETIMEDOUT, or -EINTR. */
int walls__futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns, bool shared);

/* Wake up to n sleepers on word. */
void walls__futex_wake(uint32_t *word, int n, bool shared);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t walls__now_ns(void);

#endif
