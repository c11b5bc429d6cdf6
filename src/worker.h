/*
 * worker.h - the loop that runs tasks out of a mailbox, in a thread of the
 * host or in a worker process. It is the consumer of the request ring and
 * the producer of the completion ring; everything else about a worker
 * (how it started, how it tells the host) comes in through the hooks.
 */
#ifndef WALLS_WORKER_H
#define WALLS_WORKER_H

#include <stdbool.h>

#include "mailbox.h"

struct walls__arena_view;

struct walls__worker_hooks {
    /* Locates the function for (module, offset); NULL with *err set when it
     * cannot. */
    walls_fn *(*resolve)(void *ctx, uint16_t module, uint64_t offset, int *err);
    /* Records the path of module number `module`, and the build-id the
     * host found there (id_len 0: none known). Returns 0 or -errno. */
    int (*define_module)(void *ctx, uint16_t module, const char *path, const unsigned char *id,
                         size_t id_len);
    /* Called after each published completion; more: requests are waiting
     * in the ring; slot: the ring slot of the request it completed (whose
     * mb->ring_want says whether somebody sleeps until it finishes). */
    void (*published)(void *ctx, bool more, uint32_t slot);
    /* Called while the worker spins for its next request, after each turn
     * of the spin (last: it is about to sleep); NULL: nothing to do. */
    void (*idle)(void *ctx, bool last);
    /* Large inputs and outputs (WALLS__REQ_TASK_IO): the len bytes at `at`
     * (struct walls__io), readable, or writable when out; NULL with *err
     * set when they cannot be had. Each is given back with io_unmap once
     * the task returned. */
    void *(*io_map)(void *ctx, uint64_t at, uint64_t len, bool out, int *err);
    void (*io_unmap)(void *ctx, void *p, uint64_t len);
    /* Process workers: called, never to return, when a task ends its
     * thread with pthread_exit() (NULL: the thread just ends). */
    void (*thread_ended)(void);
    void *ctx;
    const struct walls__arena_view *arena; /* NULL: no arena, no locks */
};

/* The arena and locks as this worker maps them. */
struct walls__arena_view {
    unsigned char *base;    /* the arena */
    uint64_t size;
    unsigned char *staging; /* STAGED: outputs go here, at their offsets */
    bool windows;           /* DIRECT: outputs are made writable for the call */
    walls_lock *locks;
    uint32_t nlocks;
    unsigned char *shared;  /* the writable shared region; NULL = none */
    uint64_t shared_size;
};

/* Runs until a STOP request. Never returns an error: a bad request is
 * answered with a completion that says so. shared: the mailbox is shared
 * with another process (futexes must not be private). */
void walls__worker_loop(struct walls__mailbox *mb, const struct walls__worker_hooks *hooks,
                        bool shared);

/* How long a worker spins for its next request, given how long it spun
 * last (window) and how long that request took to come (idle_ns): see
 * worker_loop.c. */
#define WALLS__WORKER_SPIN_FLOOR_NS 2000
int64_t walls__worker_spin_next(int64_t window, int64_t idle_ns);

/* Process workers: the main of a worker process whose mailbox is mapped
 * from mailbox_fd and whose doorbell is doorbell_fd; the extra descriptors
 * after the doorbell are its two I/O memfds (large inputs, read-only, and
 * outputs), the pool's bell (its eventfd), then the arena's, as its
 * mailbox says. Returns the exit code. */
int walls__worker_process_main(int mailbox_fd, int doorbell_fd, int extra);

/* Process workers: locate and record modules (worker side). */
walls_fn *walls__module_resolve(void *ctx, uint16_t module, uint64_t offset, int *err);
int walls__module_define(void *ctx, uint16_t module, const char *path, const unsigned char *id,
                         size_t id_len);

/* Process workers (worker_faults.c): catch this process's faults for its
 * lanes' mailboxes mbs[0..n) (lane 0's also holds the settings), and have
 * a freeze signal stop the other lanes when one faults. */
void walls__faults_watch(struct walls__mailbox *const *mbs, unsigned n);
/* The RLIMIT_AS this worker process runs under (worker_memory_limit on top
 * of its address space at start); 0 = none. Set before any task runs. */
extern uint64_t walls__as_limit;
/* The calling thread serves lane (0-based) from now on. */
void walls__faults_become_lane(unsigned lane);
/* The calling lane thread's loop has ended: its thread may end too. */
void walls__faults_leave_lane(void);
/* The calling lane's task called pthread_exit(): ends the process as the
 * task's exit(0) would. */
_Noreturn void walls__faults_thread_ended(void);
/* With several lanes: start the thread that ends the process when a lane's
 * thread ends before its loop (0 or an errno), and wait for lanes 1.. to
 * end at the stop. (Their glibc thread ids are not cleared: never join
 * them with pthread_join().) */
int walls__faults_watch_lanes(void);
void walls__faults_join_lanes(void);

#endif
