/*
 * helpers.h - what several walls tests need: task functions, pools made or
 * the test failed, and checks on the process's children, descriptors and
 * shared-memory names. Built once, linked into every test program.
 */
#ifndef WALLS_TEST_HELPERS_H
#define WALLS_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "walls.h"

/* Task functions. */
int t_echo(struct walls_call *call);      /* out = in */
int t_add(struct walls_call *call);       /* in: two ints; out: their sum */
int t_fail(struct walls_call *call);      /* returns 7 */
int t_segv(struct walls_call *call);
int t_abort(struct walls_call *call);
int t_exit3(struct walls_call *call);
int t_stack(struct walls_call *call);     /* overflows its stack */
int t_sigkill(struct walls_call *call);
int t_sleep_ms(struct walls_call *call);  /* in: an int of milliseconds */
int t_pid(struct walls_call *call);       /* out: the worker's pid */
int t_fds(struct walls_call *call);       /* out: the worker's open descriptors, as ints */
int t_overclaim(struct walls_call *call); /* claims more output than out_cap */

/* Naps: in is a struct nap; the task sleeps ms, then answers id (an int);
 * id -2 crashes it (SIGSEGV) instead. */
struct nap {
    int ms;
    int id;
};
int t_nap(struct walls_call *call);
/* Submits a nap; the test fails if walls_submit does. */
walls_task *submit_nap(walls_pool *pool, int ms, int id);
/* Waits up to ms for t; it must have answered id, or the test fails. */
void expect_answer(walls_task *t, int64_t ms, int id);
/* A pool of two workers: two threads, two processes, or (HYBRID) one
 * process of two threads. */
walls_pool *two_workers(enum walls_placement placement);

/* The placements loop tests run in: _i = 0 threads, 1 processes. */
extern const enum walls_placement placements[2];
/* A pool of the placement with that many workers; the test fails if it
 * cannot be created. */
walls_pool *make_pool(enum walls_placement placement, unsigned workers);
/* A process pool of n workers, likewise. */
walls_pool *proc_pool(unsigned n);
/* Runs fn, whose output is a pid (t_pid: its worker's), on pool, checks it
 * ended WALLS_OK within 30 s, and returns the pid. */
pid_t pid_from(walls_pool *pool, walls_fn *fn);

/* Children of this process (from /proc), or -1. */
int count_children(void);
/* Wait up to ms for this process to have no children left; returns count. */
int wait_no_children(int ms);
/* Open descriptors of this process. */
int count_fds(void);
/* Entries in /dev/shm whose name contains "walls". */
int count_shm(void);
/* Threads of this process. */
int count_threads(void);
/* In a worker process: the mapping of its mailbox (struct walls__mailbox,
 * src/mailbox.h), found in /proc/self/maps; NULL if none. */
void *worker_mailbox(void);
/* Resident memory of this process in KiB (from /proc/self/statm), or 0. */
long rss_kb(void);

/* Runs a Check suite; the exit status for main(). */
struct Suite;
int run_suite(struct Suite *suite);

#endif
