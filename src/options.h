/*
 * options.h - a pool's options turned into its shape: every option
 * checked, the placement chosen (WALLS_AUTO applies the seed's rules), the
 * pool sized to the machine, the backend picked, and the line that
 * explains it all.
 */
#ifndef WALLS_OPTIONS_H
#define WALLS_OPTIONS_H

#include <stdint.h>

#include "walls.h"

struct walls__backend;
struct walls__sandbox_conf;

struct walls__plan {
    enum walls_placement placement;         /* never WALLS_AUTO */
    const struct walls__backend *backend;
    unsigned nlanes;                        /* threads, or processes x lanes_per */
    unsigned nprocs;                        /* 0 for threads */
    unsigned lanes_per;                     /* lanes per process; 1 for threads */
    unsigned cpus;                          /* usable CPUs when it was planned */
    unsigned threads_shown;                 /* walls_stats.threads: a thread pool's threads,
                                             * a hybrid process's, 0 for processes */
    unsigned sandbox;                       /* the level its workers apply */
    struct walls__sandbox_conf *conf;       /* processes: what they apply; the caller
                                             * frees it; NULL for threads */
    char explain[2048];                      /* walls_pool_explain()'s line */
};

/* Checks opts and plans the pool. Returns 0, or what walls_pool_create()
 * returns for bad options (-EINVAL, -ENOENT, -ENOTSUP), or -ENOMEM, each
 * with its reason kept for walls_last_error(). */
int walls__plan_pool(const struct walls_pool_opts *opts, struct walls__plan *plan);

/* Creates a pool of plan's shape from checked opts (pool.c); the backend
 * finds backend_state in pool->backend_state when it starts. Takes plan's
 * conf. Returns what walls_pool_create() returns. */
int walls__pool_create_planned(walls_pool **pool, const struct walls_pool_opts *opts,
                               struct walls__plan *plan, void *backend_state);

/* Milliseconds as nanoseconds, capped far from overflow. */
int64_t walls__ms_to_ns(int64_t ms);

#endif
