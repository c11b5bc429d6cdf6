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

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE FUTEX_PRIVATE_FLAG
#endif

/* The kernel's struct futex_waitv (5.16 and later), spelled out so that
 * older headers build too. */
struct wait2_entry {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

/* Whether futex_waitv works: 0 not asked yet, 1 yes, 2 no. */
static int wait2_known;

int walls__futex_wait2(uint32_t *a, uint32_t a_expected, uint32_t *b, uint32_t b_expected,
                       int64_t timeout_ns)
{
    struct wait2_entry w[2] = {
        {a_expected, (uint64_t)(uintptr_t)a, FUTEX2_SIZE_U32 | FUTEX2_PRIVATE, 0},
        {b_expected, (uint64_t)(uintptr_t)b, FUTEX2_SIZE_U32, 0},
    };
    /* futex_waitv takes an absolute time on the clock it is given. */
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        int64_t until = walls__now_ns() + timeout_ns;
        ts.tv_sec = until / 1000000000;
        ts.tv_nsec = until % 1000000000;
        tsp = &ts;
    }
    long rc = syscall(SYS_futex_waitv, w, 2, 0, tsp, CLOCK_MONOTONIC);
    if (rc >= 0)
        return 0;
    if (errno == ETIMEDOUT)
        return -ETIMEDOUT;
    if (errno == EINTR)
        return -EINTR;
    if (errno == ENOSYS || errno == EPERM) {
        /* Refused after all (a filter loaded since the question was
         * asked): not again in this process. */
        __atomic_store_n(&wait2_known, 2, __ATOMIC_RELAXED);
        return -ENOSYS;
    }
    return 0; /* EAGAIN: a word already differed; EFAULT: b was unmapped meanwhile */
}

bool walls__futex_wait2_works(void)
{
    /* Asked with no words: a kernel that has the call refuses that with
     * EINVAL. */
    int k = __atomic_load_n(&wait2_known, __ATOMIC_RELAXED);
    if (!k) {
        long rc = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0);
        k = rc < 0 && errno == EINVAL ? 1 : 2;
        __atomic_store_n(&wait2_known, k, __ATOMIC_RELAXED);
    }
    return k == 1;
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
