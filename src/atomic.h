/*
 * atomic.h - the few atomic operations walls uses, by name.
 *
 * Rings and flags shared between the host and its workers are published
 * with a store-release and read with a load-acquire; the places that need a
 * full barrier (a Dekker-style "set my flag, then look at yours") use
 * walls__fence(). Every caller says what its barrier orders.
 */
#ifndef WALLS_ATOMIC_H
#define WALLS_ATOMIC_H

#include <stdint.h>

#define walls__load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define walls__store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define walls__load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define walls__store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define walls__fetch_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define walls__fetch_or(p, v) __atomic_fetch_or((p), (v), __ATOMIC_ACQ_REL)
#define walls__cas(p, expected, desired)                                                   \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_ACQ_REL,            \
                                __ATOMIC_ACQUIRE)
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer does not model fences; a seq-cst read-modify-write is a
 * full barrier on every target it runs on. */
static inline void walls__fence(void)
{
    static uint32_t word;
    __atomic_fetch_add(&word, 0, __ATOMIC_SEQ_CST);
}
#else
#define walls__fence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif

static inline void walls__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
