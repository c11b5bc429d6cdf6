/*
 * futex.c - thin wrappers over futex(2) and the monotonic clock.
 */
#include "futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int walls__futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns, bool shared)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int op = FUTEX_WAIT | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long rc = syscall(SYS_futex, word, op, expected, tsp, NULL, 0);
    if (rc == 0)
        return 0;
    if (errno == ETIMEDOUT)
        return -ETIMEDOUT;
    if (errno == EINTR)
        return -EINTR;
    return 0; /* EAGAIN: the word already differed */
}

void walls__futex_wake(uint32_t *word, int n, bool shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    syscall(SYS_futex, word, op, n, NULL, NULL, 0);
}

int64_t walls__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
