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

/* Sleep while *a == a_expected (a private word) and *b == b_expected (a
 * word of a shared mapping), whichever is woken first, for at most
 * timeout_ns (-1: forever). Returns 0 when woken or a word differed,
 * -ETIMEDOUT, -EINTR, or -ENOSYS, at once, when the kernel (or a filter
 * the program runs under) refuses futex_waitv(2): from then on
 * walls__futex_wait2_works() says no. */
int walls__futex_wait2(uint32_t *a, uint32_t a_expected, uint32_t *b, uint32_t b_expected,
                       int64_t timeout_ns);

/* Whether walls__futex_wait2() works here (asked of the kernel once). */
bool walls__futex_wait2_works(void);

/* Wake up to n sleepers on word. */
void walls__futex_wake(uint32_t *word, int n, bool shared);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t walls__now_ns(void);

#endif
