/*
 * internal.h - the host-side objects shared by the files of libwalls.
 *
 * Lock order: a pool's lock, then the task table's lock. The fork server's
 * lock is never held together with a pool's lock.
 *
 * The pool lock guards the pending queue, every worker's host-side ring
 * state (the private indices and the in-flight table), the statistics and
 * the pool's state. Tasks are completed under it; their waiters are woken
 * after it is dropped.
 */
#ifndef WALLS_INTERNAL_H
#define WALLS_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "forkserver.h"
#include "handle.h"
#include "mailbox.h"
#include "walls.h"
#include "worker.h"

#define WALLS__MAX_PROCESSES 256u
#define WALLS__MAX_THREADS 1024u
#define WALLS__MAX_LANES 64u /* threads per hybrid process */
#define WALLS__IO_THREADS_PER_CPU 4u /* IO-bound: threads per CPU, or per hybrid process */
#define WALLS__MAX_MODULES 256u
#define WALLS__TASK_SMALL 64u /* input and output bytes kept inside the task */

/* How long each side spins before it sleeps. */
#define WALLS__WORKER_SPIN_NS 50000
#define WALLS__HOST_SPIN_NS 50000

/* Dispatch packs onto the last worker used while its backlog stays under
 * this and it completed something this recently (pick_worker()). */
#define WALLS__PACK_BACKLOG 8u
#define WALLS__PACK_RECENT_NS 20000
/* ... but not when its last task took this long from dispatch to harvest:
 * waking an idle worker costs little beside such tasks, and packing them
 * would leave the other workers idle. */
#define WALLS__PACK_LONG_NS 100000

/* While tasks with time limits are out, deadlines are looked at at least
 * this often (a task's start is not announced). */
#define WALLS__DEADLINE_TICK_NS 2000000

/* How long the supervisor and the fork server poll rather than sleep
 * while a replacement worker is on its way. */
#define WALLS__RESTART_SPIN_NS 1000000

/* Task flag bits (struct walls__task.flags). */
#define WALLS__TASK_DONE 1u
#define WALLS__TASK_FREED 2u

enum walls__task_where { WALLS__AT_PENDING = 1, WALLS__AT_WORKER, WALLS__AT_DONE };

struct walls__pool;

struct walls__task {
    struct walls__handle_hdr hdr;
    uint32_t flags; /* WALLS__TASK_*: atomic */
    struct walls__pool *pool;
    uint64_t offset;
    uint16_t module;
    uint8_t where; /* enum walls__task_where, under the pool lock */
    int worker;    /* while AT_WORKER */
    uint32_t seq;  /* while AT_WORKER */
    int64_t submit_ns;
    int64_t dispatch_ns;
    unsigned attempts;        /* runs started for it (LOST ones are run again) */
    unsigned result_flags;    /* WALLS_RESULT_* */
    int64_t limit_ns;         /* time limit; 0 = none */
    struct walls__task *next; /* pending queue, then the collect list */
    struct walls__task *prev;
    bool collectable;         /* on the pool's collect list */
    /* Result, written before DONE is set with release order. */
    enum walls_status status;
    int code;
    uint32_t out_len;
    uint32_t in_len;
    /* Arena buffers: refs[0..n_inputs) in, refs[n_inputs] out; pinned
     * while arena_held. */
    uint8_t n_inputs;
    bool has_output;
    bool arena_held;
    struct walls__bufref refs[WALLS_TASK_INPUTS_MAX + 1];
    unsigned char *in;  /* small_in or heap */
    unsigned char *out; /* small_out or heap */
    unsigned char small_in[WALLS__TASK_SMALL];
    unsigned char small_out[WALLS__TASK_SMALL];
};

/* A doubly linked list of tasks through their next and prev fields; a task
 * is on at most one (pending, then collect). */
struct walls__task_list {
    struct walls__task *head, *tail;
};

enum walls__worker_run {
    WALLS__W_DOWN = 0, /* not running; may be respawned */
    WALLS__W_STARTING, /* spawn requested, not ready yet */
    WALLS__W_UP,       /* serving */
    WALLS__W_STOPPING, /* told to stop */
    WALLS__W_STOPPED,  /* gone for good */
};

struct walls__inflight {
    struct walls__task *task; /* NULL for control requests and cancelled tasks */
    uint32_t tag;
    uint8_t kind;     /* enum walls__req_kind */
    uint8_t retired;  /* its completion was consumed */
    uint8_t cancelled;
    uint8_t abandoned; /* its task ended (timed out) while a thread still runs it */
    struct walls__task_hold *held; /* abandoned: the arena buffers its thread may still use */
};

/* Arena pins that outlive their task's result. */
struct walls__task_hold {
    uint8_t n_inputs;
    bool has_output;
    struct walls__bufref refs[WALLS_TASK_INPUTS_MAX + 1];
};

struct walls__worker {
    struct walls__pool *pool;
    unsigned index;
    struct walls__mailbox *mb;
    int state; /* enum walls__worker_run */
    /* Host-private ring state: never read back from the mailbox. */
    uint32_t rq_tail;   /* next request index to publish */
    uint32_t oldest;    /* oldest request not yet retired */
    uint32_t cq_head;   /* next completion to consume */
    uint32_t next_tag;
    uint32_t modules_sent;
    uint32_t seen_done;  /* its completion tail when last looked at */
    int64_t seen_ns;     /* when that tail last moved */
    int64_t last_turn_ns; /* its last finished task: dispatch to harvest */
    struct walls__inflight inflight[WALLS__RING_SLOTS];
    bool broke;         /* its process broke the protocol: nothing it says counts */
    int kill_reason;    /* -1, or the status its task gets: we killed its process for it */
    int kill_code;      /* and the code (the call, for WALLS_VIOLATION) */
    unsigned kill_flags; /* and the result flags (WALLS_RESULT_FOREIGN_ABI) */
    bool kill_targeted; /* the reason is for request kill_seq only */
    uint32_t kill_seq;
    bool stuck;         /* a thread still running a timed-out task */
    int64_t retire_ns;  /* when the host last retired one of its requests */
    /* Threads. */
    pthread_t thread;
    bool thread_started;
    /* Processes: the process this mailbox (lane) belongs to. */
    struct walls__proc *proc;
};

/* A worker process: one lane (mailbox and thread) per thread it runs, one
 * in process placement, several in hybrid placement. The lanes' states
 * follow the process's. */
struct walls__proc {
    unsigned index;
    struct walls__worker *lanes;
    unsigned nlanes;
    int state;          /* enum walls__worker_run */
    void *map;          /* the lanes' mailboxes, one after another */
    int memfd;
    int doorbell;
    int pidfd;
    pid_t pid;
    bool killed;        /* we killed it */
    bool recycling;     /* to be replaced once its lanes are idle */
    bool stop_sent;
    uint64_t tasks_given;
    int start_error;    /* set when it failed before READY */
    int64_t respawn_at; /* DOWN: when to start it again; 0 = not planned */
    uint32_t lock_token; /* the holder token of its current process */
    int staging_fd;      /* staged arena: where its outputs are written; -1 = none */
    int notify_fd;       /* seccomp: the listener its refused calls are reported to; -1 = none */
};

struct walls__module {
    char *path; /* "" for the main program */
};

struct walls__fn_cache {
    walls_fn *fn;
    uint64_t offset;
    uint16_t module;
};

enum walls__pool_state { WALLS__POOL_ALIVE = 1, WALLS__POOL_CLOSING, WALLS__POOL_DEAD };

#define WALLS__HIST_BUCKETS (64 * 16)

struct walls__pool {
    struct walls__handle_hdr hdr;
    pthread_mutex_t lock; /* initialised once per entry, never destroyed */
    pid_t owner;          /* the process that made it (walls__self()); atomic */
    int state;            /* enum walls__pool_state */
    enum walls_placement placement;
    unsigned nworkers;
    size_t max_output;
    char explain[768];
    struct walls__worker *workers; /* lanes, for processes: proc i owns [i*T, i*T+T) */
    struct walls__proc *procs;
    unsigned nprocs;
    unsigned lanes_per;            /* threads per process (1 in process placement) */
    unsigned lost_retries;
    unsigned recycle_after;
    uint64_t recycle_rss_kb;
    uint64_t memory_limit;
    unsigned sandbox;        /* enum walls_sandbox */
    struct walls__arena arena;
    uint32_t next_token;     /* lock holder tokens of worker processes */
    struct walls__sandbox_conf *sandbox_conf; /* what its workers apply; NULL for threads */
    uint64_t recycled;
    unsigned rr; /* where the next dispatch starts looking */
    /* Pending queue: submitted, not yet in any ring. */
    struct walls__task_list pending;
    uint64_t npending;
    uint64_t in_rings; /* tasks in rings, not done */
    /* Completion signalling to host waiters (private futex). */
    uint32_t done_seq;
    uint32_t done_waiters;
    uint32_t unsignalled; /* completions not yet counted on event_fd */
    struct walls__task_list collect; /* completed, not collected */
    int event_fd;
    bool fd_armed;
    bool doorbells_armed;
    bool refill_armed;
    /* Time limits. */
    int64_t default_limit_ns;
    bool timed_ever;     /* a task with a limit was submitted: workers report starts */
    uint64_t ntimed;     /* unfinished tasks with a limit */
    uint32_t timer_word; /* thread pools: wakes the timer thread */
    pthread_t timer;
    bool timer_started;
    bool timer_stop;
    /* Crash-loop protection. */
    bool broken;
    bool stopping;   /* procs_stop began: no more replacements */
    bool fs_lost;    /* the fork server died under this pool */
    unsigned restart_limit;
    int64_t restart_window_ns;
    int64_t restart_backoff_ns;
    int64_t *restart_times; /* ring of the last restart_limit + 1 restarts */
    unsigned restart_next;
    uint64_t restart_count;
    /* Statistics. */
    uint64_t submitted, completed, by_status[WALLS_BROKEN + 1], restarts;
    uint64_t hist[WALLS__HIST_BUCKETS];
    /* Process placement. */
    struct walls__module modules[WALLS__MAX_MODULES];
    unsigned nmodules;
    struct walls__fn_cache fn_cache[64];
    int sock;        /* to the fork server */
    int epfd;
    int cmd_fd;      /* eventfd: wakes the supervisor */
    pthread_t supervisor;
    bool supervisor_started;
    unsigned starting; /* workers not yet ready at creation */
    int start_error;
    bool creating;
};

/* pool.c: the core shared by the backends. All take the pool lock held. */
void walls__pool_harvest(struct walls__pool *pool, struct walls__worker *w);
void walls__pool_dispatch(struct walls__pool *pool);
void walls__pool_harvest_all(struct walls__pool *pool); /* and dispatch */
void walls__pool_complete(struct walls__pool *pool, struct walls__task *task,
                          enum walls_status status, int code, const void *out, uint32_t out_len);
void walls__pool_requeue_front(struct walls__pool *pool, struct walls__task *task);
void walls__pool_signal(struct walls__pool *pool); /* lock NOT held: wake waiters */
/* Lock held. every: workers report each completion (somebody sleeps);
 * refill: they report a ring run dry (tasks wait in the queue). Fences
 * after a change. */
void walls__pool_arm(struct walls__pool *pool, bool every, bool refill);
/* Lock held: the pool stops restarting workers; queued tasks end BROKEN. */
void walls__pool_break(struct walls__pool *pool);
/* Lock held: ends overrun tasks; returns when to look again (INT64_MAX:
 * no limit pending). */
int64_t walls__pool_check_deadlines(struct walls__pool *pool, int64_t now);
void walls__ring_reset(struct walls__worker *w);
/* How the pool's worker processes see its arena: a sandboxed worker never
 * gets a writable descriptor of it (it could map any of it writable), so
 * its outputs are staged. */
static inline enum walls__arena_mode walls__arena_mode_of(const struct walls__pool *pool)
{
    return !pool->arena.base                      ? WALLS__ARENA_NONE
           : pool->sandbox != WALLS_SANDBOX_NONE ? WALLS__ARENA_STAGED
                                                  : WALLS__ARENA_DIRECT;
}

/* Lock held: drops the arena pins of an abandoned request, if any. */
void walls__inflight_unhold(struct walls__pool *pool, struct walls__inflight *e);
void walls__ring_push_stop(struct walls__worker *w);

/* thread_backend.c */
int walls__threads_start(struct walls__pool *pool);
void walls__threads_stop(struct walls__pool *pool);
bool walls__threads_is_worker(struct walls__pool *pool);
int walls__threads_start_timer(struct walls__pool *pool); /* lock NOT held */

/* proc_backend.c */
int walls__procs_start(struct walls__pool *pool);
void walls__procs_stop(struct walls__pool *pool, bool cancel);
/* Kills the process of lane w for the task in its request seq (or, with
 * targeted false, for whatever it runs): that task ends with reason (a
 * status). Pool lock held. */
void walls__procs_kill(struct walls__worker *w, enum walls_status reason, bool targeted,
                       uint32_t seq);
/* Starts again the processes a broken pool left down. Pool lock held;
 * returns whether the supervisor must be woken. */
bool walls__procs_reset(struct walls__pool *pool);
/* After harvesting lane w: recycle its process when due. Pool lock held. */
void walls__procs_harvested(struct walls__pool *pool, struct walls__worker *w);

int walls__procs_locate(struct walls__pool *pool, walls_fn *fn, uint16_t *module,
                        uint64_t *offset);

/* child.c: code run in a child between its creation and its main loop. */
/* fds: mailbox, doorbell, then the arena's (walls__worker_process_main). */
_Noreturn void walls__worker_child(const int *fds, int nfds, pid_t parent);

/* thread_backend.c */
void walls__block_async_signals(sigset_t *old);

/* errors.c: records why a public call failed, for walls_last_error(), and
 * returns err. */
int walls__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fork.c: this process's id, cheap: a page that a fork() wipes, so that a
 * child sees 0 there and learns its own. Pools carry their owner's. */
pid_t walls__self(void);
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

#endif
