/*
 * task.h - the one task function every row submits, in every placement,
 * and the ways rows run it: a pool opened with a few options, one task
 * waited for, or a batch of tasks submitted together and waited for in
 * order.
 */
#ifndef WALLS_TOOLS_BENCH_TASK_H
#define WALLS_TOOLS_BENCH_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "walls.h"

enum task_kind { T_EMPTY, T_SPIN, T_SLEEP, T_CRASH, T_SUM, T_PROBE };

/* A task's input, copied into the task. */
struct task_in {
    uint32_t kind;
    uint32_t reserved;
    uint64_t amount;  /* spin iterations, sleep ns, or bytes to sum */
    uint64_t addr;    /* T_SUM: the buffer (thread placement only) */
    uint64_t counter; /* if set: a uint32_t bumped when the task ends (threads only) */
};

/* What T_PROBE found it could do. */
struct probe_out {
    int64_t read_bytes; /* -1 if open failed */
    int32_t open_err;
    int32_t socket_err; /* 0 = got a socket */
};

/* The task function: runs one struct task_in. */
int bench_task(struct walls_call *call);

/* A task of kind with its amount. */
struct task_in task(enum task_kind kind, uint64_t amount);


/* Sums bytes of 64-bit words one by one: T_SUM's work. */
uint64_t sum_words(const uint64_t *p, size_t bytes);

void sleep_ns(uint64_t ns);

int pool_open(walls_pool **pool, enum walls_placement placement, unsigned procs,
              unsigned threads, unsigned needs);

/* How a batch went. */
struct batch {
    double ns;
    unsigned by_status[WALLS_BROKEN + 1];
    int crash_code;       /* code of the last WALLS_CRASHED task */
    uint64_t bad_outputs; /* tasks whose 8-byte output differed from expect */
};

/*
 * Submits n tasks with the same task options (opts may be NULL), waits for
 * all in order, frees them. If expect is not NULL, every OK task's 8-byte
 * output must equal *expect.
 */
int run_batch(walls_pool *pool, const struct task_in *in, size_t n, const uint64_t *expect,
              const struct walls_task_opts *opts, struct batch *out);

/* Runs one task; copies up to cap output bytes to out (which may be NULL). */
int run_one(walls_pool *pool, struct task_in in, struct walls_result *res, void *out, size_t cap);

/* Each sample: submit one empty task, wait for it, free it, after n / 10 untimed. */
int round_trips(walls_pool *pool, int n, struct summary *s);

#endif
