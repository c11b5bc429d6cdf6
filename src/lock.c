/*
 * lock.c - locks in shared memory that survive their holder's death.
 *
 * The lock word holds the holder's token shifted left by one, and a
 * "somebody sleeps" bit: 0 is free. The holding thread is noted beside it,
 * so that only the holder may let go. A token names a process (the host is
 * 1, for the locks of its own pools even when it is also a worker of
 * another pool; each worker process gets a fresh one from its pool when
 * it starts), so
 * when the supervisor reaps a worker it can find and release every lock
 * that worker held, marking it so that the next holder hears of the death.
 * Waiters sleep on the word with a shared futex, since holders and waiters
 * may be different processes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define LOCK_MAGIC 0x4c4f434bu /* "LOCK" */

struct lock_impl {
    uint32_t word;  /* token << 1 | sleepers; 0 = free */
    uint32_t magic; /* written by the host once */
    uint32_t died;  /* its last holder died holding it */
    uint32_t tid;   /* the holding thread, within its process */
    uint32_t host;  /* the pool's host process, written by it once */
    uint32_t pad[11];
};

_Static_assert(sizeof(struct lock_impl) == sizeof(walls_lock), "lock layout");

static uint32_t my_token = 1;

/* The calling thread's id, asked of the kernel once per thread and
 * process: gettid() is a system call, and a lock is taken and let go
 * around every change to shared state. The process id (cheap, see
 * fork.c) tells a child of fork() that the cached id is its parent's;
 * where the kernel cannot wipe the page it is read from in a raw clone()
 * (workers and the fork server start so), nothing is cached. */
static __thread uint32_t tid_cached;
static __thread pid_t tid_pid;

static uint32_t my_tid(void)
{
    if (!walls__self_exact())
        return (uint32_t)gettid();
    pid_t pid = walls__self();
    if (tid_pid != pid) {
        tid_cached = (uint32_t)gettid();
        tid_pid = pid;
    }
    return tid_cached;
}

static uint32_t token_pid; /* the worker process my_token was given to */

void walls__locks_set_token(uint32_t token)
{
    my_token = token;
    token_pid = (uint32_t)getpid();
}

/* The caller's token for a lock: 1 in the process that made its pool,
 * whatever token that process holds as a worker of another pool (a task
 * that made a pool of its own is both), whose numbers its own workers'
 * tokens repeat. A process that is no worker is the host of every pool it
 * can reach, and asks nothing. */
static uint32_t token_for(const struct lock_impl *l)
{
    if (my_token == 1)
        return 1;
    return walls__load_relaxed(&l->host) == token_pid ? 1u : my_token;
}

void walls__locks_init(walls_lock *locks, unsigned n)
{
    memset(locks, 0, (size_t)n * sizeof *locks);
    uint32_t pid = (uint32_t)getpid();
    for (unsigned i = 0; i < n; i++) {
        ((struct lock_impl *)&locks[i])->magic = LOCK_MAGIC;
        ((struct lock_impl *)&locks[i])->host = pid;
    }
}

void walls__locks_recover(walls_lock *locks, unsigned n, uint32_t token)
{
    for (unsigned i = 0; i < n; i++) {
        struct lock_impl *l = (struct lock_impl *)&locks[i];
        uint32_t v = walls__load_acquire(&l->word);
        while (v && v >> 1 == token) {
            /* Release: the mark is seen by whoever takes the lock next. */
            walls__store_release(&l->died, 1u);
            if (walls__cas(&l->word, &v, 0u)) {
                walls__futex_wake(&l->word, INT_MAX, true);
                break;
            }
        }
    }
}

WALLS_API int walls_lock_acquire(walls_lock *lock, int64_t timeout_ms)
{
    if (!lock || timeout_ms < -1)
        return walls__fail(-EINVAL, "walls_lock_acquire: %s",
                           !lock ? "lock is NULL" : "timeout_ms is below -1");
    struct lock_impl *l = (struct lock_impl *)lock;
    if (walls__load_relaxed(&l->magic) != LOCK_MAGIC)
        return walls__fail(-EINVAL, "walls_lock_acquire: not a lock of walls_pool_locks()");
    uint32_t me = token_for(l) << 1;
    int64_t deadline = timeout_ms < 0 || timeout_ms > INT64_MAX / 4000000
                           ? INT64_MAX
                           : walls__now_ns() + timeout_ms * 1000000;
    bool slept = false;
    for (;;) {
        uint32_t v = 0;
        /* Having slept, keep the sleepers bit: others may still sleep. */
        if (walls__cas(&l->word, &v, me | (slept ? 1u : 0u)))
            break;
        if (!(v & 1u)) {
            if (!walls__cas(&l->word, &v, v | 1u))
                continue;
            v |= 1u;
        }
        int64_t left = deadline == INT64_MAX ? -1 : deadline - walls__now_ns();
        if (deadline != INT64_MAX && left <= 0)
            return -ETIMEDOUT;
        walls__futex_wait(&l->word, v, left, true);
        slept = true;
    }
    walls__store_relaxed(&l->tid, my_tid());
    if (__atomic_exchange_n(&l->died, 0u, __ATOMIC_ACQ_REL))
        return -EOWNERDEAD;
    return 0;
}

WALLS_API int walls_lock_release(walls_lock *lock)
{
    if (!lock)
        return walls__fail(-EINVAL, "walls_lock_release: lock is NULL");
    struct lock_impl *l = (struct lock_impl *)lock;
    if (walls__load_relaxed(&l->magic) != LOCK_MAGIC)
        return walls__fail(-EINVAL, "walls_lock_release: not a lock of walls_pool_locks()");
    uint32_t v = walls__load_relaxed(&l->word);
    if (!v || v >> 1 != token_for(l) || walls__load_relaxed(&l->tid) != my_tid())
        return walls__fail(-EPERM, "walls_lock_release: this thread does not hold the lock");
    walls__store_relaxed(&l->tid, 0u);
    /* Release: what the holder wrote is seen by the next one. */
    uint32_t old = __atomic_exchange_n(&l->word, 0u, __ATOMIC_RELEASE);
    if (old & 1u)
        walls__futex_wake(&l->word, 1, true);
    return 0;
}
