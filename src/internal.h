/*
 * internal.h - what the files of libwalls share beyond the pool's objects
 * (pool.h): the worker and host spin times, errors in words, fork(), the
 * library's own threads, and the machine's size.
 */
#ifndef WALLS_INTERNAL_H
#define WALLS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pool.h"
#include "walls.h"

/* How long each side spins before it sleeps (a worker: at most; see
 * worker_loop.c). */
#define WALLS__WORKER_SPIN_NS 50000
#define WALLS__HOST_SPIN_NS 50000
/* After a worker's death, the supervisor and the fork server poll for a
 * millisecond rather than sleep only with this many usable CPUs: on 2
 * (the only size measured) the polling slowed the replacement it waited
 * for (docs/benchmarks.md). */
#define WALLS__RESTART_SPIN_NS 1000000
#define WALLS__RESTART_SPIN_MIN_CPUS 4

/* child.c: code run in a child between its creation and its main loop. */
/* fds: mailbox, doorbell, then the arena's (walls__worker_process_main). */
_Noreturn void walls__worker_child(const int *fds, int nfds, pid_t parent);

/* hostthread.c: starts one of walls' own threads in the program, with the
 * program's asynchronous signals blocked. Returns 0 or -errno. */
int walls__thread_start(pthread_t *thread, void *(*main)(void *), void *arg);

/* errors.c: records why a public call failed, for walls_last_error(), and
 * returns err. */
int walls__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fork.c: this process's id, cheap: a page that a fork() wipes, so that a
 * child sees 0 there and learns its own. Pools carry their owner's. */
pid_t walls__self(void);
/* This process's handle epoch (1-127, in every handle it makes): none of
 * its ancestors' (while fewer than 127 generations use walls), and most
 * likely not a sibling's, so that a handle another process made (a worker
 * given its host's, a descendant's passed up) is told apart from any of
 * this process's own. Learned once per process, as walls__self(). */
uint32_t walls__epoch(void);
/* What a child of this process must avoid: this process's epoch and the
 * set of its ancestors' (bit e of ancestry[e / 64]). A re-executed fork
 * server is told them, and adopts them as a forked child finds them. */
void walls__epoch_lineage(uint32_t *epoch, uint64_t ancestry[2]);
void walls__epoch_adopt(uint32_t epoch, const uint64_t ancestry[2]);
/* Whether walls__self() is right in every child, raw clone() included
 * (the kernel wipes its page); else only across fork(). */
bool walls__self_exact(void);
/* Registers the fork handlers (once): walls' global locks are taken across
 * a fork(), and a child forgets its parent's fork server. */
void walls__fork_handlers(void);
/* A child made by clone() rather than fork() (the fork server in fork mode,
 * and so its workers) may hold copies of walls' global locks taken by a
 * host thread it does not have: it resets them, and forgets the host's
 * fork server, before anything else (async-signal-safe). */
void walls__fork_reset(void);
enum walls__fork_phase {
    WALLS__FORK_PREPARE,
    WALLS__FORK_PARENT,
    WALLS__FORK_CHILD,
    WALLS__FORK_RESET,
};
/* Each module's part: PREPARE takes its global lock, PARENT and CHILD give
 * it back (CHILD also forgets what belongs to the parent), RESET makes the
 * lock new and forgets the parent's state. */
void walls__forkserver_at_fork(enum walls__fork_phase phase);
void walls__tables_at_fork(enum walls__fork_phase phase);
void walls__arena_at_fork(enum walls__fork_phase phase);
void walls__sandbox_at_fork(enum walls__fork_phase phase);

/* sizing.c */
int walls__cpu_count_source(const char **source);

/* Threads of this process (/proc/self/status), or -1 if it cannot say. */
int walls__thread_count(void);

/* Resets an eventfd that worker processes share with the host (the pool's
 * bell, a worker's doorbell), never sleeping: its file description is the
 * workers' too, and a task that cleared O_NONBLOCK on it ("its" descriptors)
 * must not make the host's read wait. Only the host reads these. */
void walls__eventfd_take(int fd);

#endif
