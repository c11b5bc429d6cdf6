/*
 * spin.h - pure computation for CPU-bound benchmark tasks, inline: for the
 * programs that share bench_common and for bench/mpi, which links libwalls
 * itself (shared) and so not bench_common.
 */
#ifndef WALLS_BENCH_SPIN_H
#define WALLS_BENCH_SPIN_H

#include <stdint.h>

/* n rounds of a xorshift chain the compiler cannot shorten. */
static inline uint64_t spin(uint64_t n)
{
    uint64_t x = 88172645463325252ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

#endif
