/*
 * pool.h - a pool as the host keeps it: its tasks, its lanes and the pool
 * itself, with a note on each field saying who may touch it.
 *
 * A lane is one mailbox and the worker that consumes it: a thread of the
 * host, or one thread of a worker process (one lane per process in process
 * placement, several in hybrid placement). The engine (engine.h) moves
 * tasks through lanes; the backend of the pool's placement (backend.h)
 * starts, stops and kills what consumes them.
 *
 * Field notes:
 *   [create]  set while the pool is created, before any worker starts;
 *             read-only afterwards.
 *   [lock]    the pool's lock guards it.
 *   [atomic]  read and written with the helpers of atomic.h, lock or not.
 *   [backend] the backend's: set and read by the placement's backend only.
 *
 * Lock order: a pool's lock, then the task table's lock. The fork server's
 * lock and walls' other global locks (handle tables, arena serials, sandbox
 * probe) are never taken while a pool's lock is held, except the task
 * table's. Tasks are completed under the pool's lock; their waiters are
 * woken after it is dropped (walls__engine_signal).
 */
#ifndef WALLS_POOL_H
#define WALLS_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "handle.h"
#include "mailbox.h"
#include "walls.h"

#ifndef NDEBUG
#include <assert.h>
#endif

#define WALLS__MAX_PROCESSES 256u
#define WALLS__MAX_THREADS 1024u
#define WALLS__MAX_LANES 64u         /* threads per hybrid process */
#define WALLS__IO_THREADS_PER_CPU 4u /* IO-bound: threads per CPU, or per hybrid process */
#define WALLS__MAX_MODULES 256u
/* An ELF build-id (NT_GNU_BUILD_ID) kept at most this long; a longer one
 * is not kept (its object is then known by its path alone). */
#define WALLS__BUILD_ID_MAX 32u
#define WALLS__TASK_SMALL 64u /* input and output bytes kept inside the task */
#define WALLS__IO_DEPTH 8u    /* large-I/O windows of a lane at most (io.c) */

/* ---- tasks ------------------------------------------------------------------
 *
 * A task's life (its where field):
 *
 *   submit --> PENDING --dispatch--> AT_LANE --completion/death--> DONE
 *                ^  |                  |
 *                |  +--cancel, break---|--> DONE
 *                +----requeue----------+  (untaken when its lane died,
 *                                          lost and run again, moved off
 *                                          a stuck thread lane)
 *
 * and, apart from it, the caller's handle: freed (TASK_FREED) at any time;
 * the memory is recycled when it is both DONE and FREED.
 */

#define WALLS__TASK_DONE 1u
#define WALLS__TASK_FREED 2u
#define WALLS__TASK_WAITED 4u /* a thread sleeps until it finishes (wait.c): its
                               * completion wakes the pool's sleepers */

enum walls__task_where { WALLS__AT_PENDING = 1, WALLS__AT_LANE, WALLS__AT_DONE };

struct walls__pool;

struct walls__task {
    struct walls__handle_hdr hdr;
    uint32_t flags;           /* [atomic] WALLS__TASK_* */
    struct walls__pool *pool; /* set at submit */
    uint64_t offset;          /* where its function is: module and offset */
    uint16_t module;
    uint8_t where;            /* [lock] enum walls__task_where */
    unsigned lane;            /* [lock] while AT_LANE: the lane's index */
    uint32_t seq;             /* [lock] while AT_LANE: its request's ring index */
    int64_t submit_ns;
    int64_t dispatch_ns;      /* [lock] */
    unsigned attempts;        /* [lock] runs started for it (LOST ones run again) */
    unsigned result_flags;    /* [lock] WALLS_RESULT_* */
    int64_t limit_ns;         /* time limit; 0 = none */
    void *user;               /* walls_task_opts.user: the caller's, never looked at */
    struct walls__task *next; /* [lock] pending queue, then the collect list */
    struct walls__task *prev;
    bool collectable;         /* [atomic] on the pool's collect list */
    /* [lock] Requeued once, uncharged, from the head of a dead worker's
     * ring whose slot said the worker had not taken it: that word of a
     * worker is believed once a task. */
    bool untaken;
    /* Result, written under the lock before DONE is set with release order. */
    enum walls_status status;
    int code;
    uint32_t out_len;
    uint32_t in_len;
    /* Arena buffers: refs[0..n_inputs) in, refs[n_inputs] out; pinned
     * while arena_held. [lock] */
    uint8_t n_inputs;
    bool has_output;
    bool arena_held;
    /* [lock] walls_cancel() returned 0 for it running: it ends
     * WALLS_CANCELLED, whatever else happens to it first. */
    bool cancel_asked;
    struct walls__bufref refs[WALLS_TASK_INPUTS_MAX + 1];
    unsigned char *in;  /* small_in or heap; dropped when it is DONE */
    unsigned char *out; /* small_out or heap, as long as what it wrote */
    unsigned char small_in[WALLS__TASK_SMALL];
    unsigned char small_out[WALLS__TASK_SMALL];
};

/* A doubly linked list of tasks through their next and prev fields; a task
 * is on at most one (pending, then collect). */
struct walls__task_list {
    struct walls__task *head, *tail;
};

/* ---- lanes ------------------------------------------------------------------ */

/* One request the host put in a lane's ring: which task went into which
 * slot, with a check tag. This record, not anything the worker says, is
 * what ties a completion or a death to its task. */
struct walls__inflight {
    struct walls__task *task; /* NULL for control requests and cancelled tasks */
    uint32_t tag;
    uint8_t kind;      /* enum walls__req_kind */
    uint8_t retired;   /* its completion was consumed */
    uint8_t cancelled;
    uint8_t abandoned; /* its task ended (timed out) while a thread still runs it */
    uint8_t io;        /* a WALLS__REQ_TASK_IO request (struct walls__io) */
    uint32_t io_window;    /* io: the lane's window it has (io.c) */
    struct walls__task_hold *held; /* abandoned: the arena buffers its thread may still use */
    uint64_t io_in_len;    /* process lanes: bytes of input written to its window */
    unsigned char *io_in;  /* thread lanes, abandoned: the task's large input, kept until
                            * its thread returns, */
    uint32_t io_in_keep;   /* and its length */
    int64_t start_ns;      /* a start its worker claimed later than the host's bound,
                            * believed once, at that bound's deadline; 0: none */
};

/* Arena pins that outlive their task's result. */
struct walls__task_hold {
    uint8_t n_inputs;
    bool has_output;
    struct walls__bufref refs[WALLS_TASK_INPUTS_MAX + 1];
};

struct walls__lane {
    struct walls__pool *pool;   /* [create] */
    unsigned index;             /* [create] */
    bool shared;                /* [create] its mailbox is shared with a worker process:
                                 * futexes on it are not private */
    bool killable;              /* [create] its worker can be killed (process lanes) */
    bool relayed;               /* [create] a relay writes its completions (relay.h): any
                                 * status in them is believed */
    void *backend;              /* [create] the backend's record of its worker */
    struct walls__mailbox *mb;  /* [backend] */
    /* What the backend says of it [lock]: */
    bool live;                  /* its worker may publish: consume its completions */
    bool open;                  /* it takes new tasks */
    bool watch;                 /* ask for attention whenever its completions are consumed */
    uint32_t *quota;            /* tasks its process may still be given; NULL = no limit */
    int staging_fd;             /* staged arena outputs (sandboxed processes); -1 = none */
    /* Large inputs and outputs (io.c) [create]: depth windows; a process
     * lane's are ranges of its process's two I/O memfds, from these
     * offsets; a thread lane's output windows are in io_out_map (its
     * memfds are -1). A process lane whose output windows are small
     * enough (io.c) has them mapped read-only in io_out_view too, read
     * there instead of with pread(). */
    int io_in_fd;
    int io_out_fd;
    uint64_t io_in_base;
    uint64_t io_out_base;
    unsigned char *io_out_map;
    const unsigned char *io_out_view;
    unsigned depth;             /* at most WALLS__IO_DEPTH */
    uint32_t io_used;           /* [lock] the windows given to outstanding requests */
    /* The host's side of its rings, never read back from the mailbox [lock]: */
    uint32_t rq_tail;           /* next request index to publish */
    uint32_t oldest;            /* oldest request not yet retired */
    uint32_t cq_head;           /* next completion to consume */
    uint32_t next_tag;
    uint32_t modules_sent;
    uint32_t seen_done;         /* its completion tail when last looked at */
    int64_t seen_ns;            /* when that tail last moved */
    int64_t last_turn_ns;       /* its last finished task: dispatch to harvest */
    int64_t retire_ns;          /* when the host last retired one of its requests */
    bool ran_dry;               /* it finished all it had, since the engine last balanced */
    bool served;                /* its current worker finished a task: its death is no
                                 * crash loop (proc_state.c) */
    /* The pool's bell (harvest.c) [lock]: */
    uint32_t bells_taken;       /* task completions consumed: the rings they are owed */
    unsigned bell_strikes;      /* waits for its rings given up */
    bool bell_unsure;           /* its rings are not waited for (too slow, or lied) */
    struct walls__inflight inflight[WALLS__RING_SLOTS];
    bool broke;                 /* its worker broke the protocol: nothing it says counts */
    bool stuck;                 /* a thread still running a timed-out task */
    bool attention;             /* since last asked: it broke, a kill is asked for it, or
                                 * (watched) its completions were consumed */
    /* Why its worker was killed, for the task it runs [lock]: */
    int kill_reason;            /* -1, or the status that task gets */
    int kill_code;              /* and its code (the call, for WALLS_VIOLATION) */
    unsigned kill_flags;        /* and its result flags (WALLS_RESULT_FOREIGN_ABI) */
    bool kill_targeted;         /* the reason is for request kill_seq only */
    bool target_untaken;        /* that request, untaken, went back to the queue: its kill
                                 * was no progress (proc_state.c, replace()) */
    uint32_t kill_seq;
};

/* ---- the pool --------------------------------------------------------------
 *
 * Its life (state):
 *
 *   create --> ALIVE --destroy--> CLOSING --drained, workers gone--> DEAD
 *
 * broken is apart from it: set when the backend stops restarting workers
 * (a crash loop, or the fork server gone), cleared by walls_pool_reset.
 */

enum walls__pool_state { WALLS__POOL_ALIVE = 1, WALLS__POOL_CLOSING, WALLS__POOL_DEAD };

#define WALLS__HIST_BUCKETS (64 * 16)

struct walls__backend;

struct walls__pool {
    struct walls__handle_hdr hdr;
    pthread_mutex_t lock;       /* initialised once per entry, never destroyed */
#ifndef NDEBUG
    pthread_t holder;           /* [lock] the thread that holds the lock */
    bool held;                  /* [lock] */
#endif
    pid_t owner;                /* [atomic] the process that made it (walls__self()) */
    int state;                  /* [lock] enum walls__pool_state */
    /* Shape and settings [create]: */
    enum walls_placement placement;
    const struct walls__backend *backend;
    void *backend_state;        /* [backend] */
    struct walls__lane *lanes;  /* processes: process i runs lanes [i*T, i*T+T) */
    unsigned nlanes;
    unsigned nprocs;            /* worker processes; 0 for threads */
    unsigned lanes_per;         /* lanes per process (1 in process placement) */
    unsigned cpus;              /* usable CPUs when it was made */
    unsigned threads_shown;     /* walls_stats.threads */
    size_t max_output;
    uint64_t out_window;        /* max_output rounded up to pages when above WALLS_INLINE_MAX
                                 * (outputs go through memory, struct walls__io); else 0 */
    char explain[2048];
    unsigned lost_retries;
    unsigned max_queued;        /* 0 = unbounded (walls_pool_opts.max_queued) */
    unsigned recycle_after;
    uint64_t recycle_rss_kb;
    uint64_t memory_limit;
    unsigned sandbox;           /* enum walls_sandbox */
    struct walls__sandbox_conf *sandbox_conf; /* what its workers apply; NULL for threads */
    unsigned restart_limit;
    int64_t restart_window_ns;
    int64_t restart_backoff_ns;
    int64_t default_limit_ns;
    int event_fd;               /* readable when tasks complete (walls_pool_fd) */
    /* The modules task functions live in, as workers learn of them
     * (process lanes: sent in ring order before a task that needs one).
     * [lock] */
    struct walls__module {
        char *path;             /* "" for the main program */
        uint64_t dev, ino;      /* the file at path when it was added */
        /* The build-id of the object fn lay in here (id_len 0: none), sent
         * with the path: a worker that loads another file under it says
         * so instead of running it. */
        unsigned char build_id[WALLS__BUILD_ID_MAX];
        uint8_t build_id_len;
    } modules[WALLS__MAX_MODULES];
    unsigned nmodules;
    uint64_t dl_subs;           /* the loader's count of unloads when the fn cache was valid */
    struct walls__arena arena;  /* [lock] */
    /* The queue and the rings [lock]: */
    struct walls__task_list pending; /* submitted, not yet in any ring */
    uint64_t npending;          /* [lock] tasks on the pending list */
    uint64_t in_rings;          /* [lock; atomic reads] tasks in rings, not done */
    unsigned next_lane;         /* where the next dispatch starts looking */
    /* Balance between lanes [lock] (dispatch.c): */
    bool rebalance;             /* a lane ran dry: move to it tasks waiting elsewhere */
    int64_t balance_at;         /* when to look for tasks stuck behind a long task while a
                                 * lane idles; 0 = nothing to look for */
    bool want_clock;            /* the engine asks for its clock (walls__engine_expire) to run:
                                 * the API layer tells the backend's timekeeper */
    bool attention;             /* some lane has attention set */
    /* What thread workers read without the lock after each task they
     * finish: a cache line of its own, which a submit does not write, so
     * that those reads do not pull away the line the submitting thread
     * writes next. */
    _Alignas(64) uint64_t pending_seen; /* [atomic] npending as the lock was last let go,
                                 * free of the counts a dispatch passes through while
                                 * it holds the lock */
    uint32_t any_waiters;       /* [atomic] waiters woken by any bump of done_seq; the
                                 * others wait for tasks they marked WALLS__TASK_WAITED */
    bool doorbells_armed;       /* [lock; atomic reads] workers report every completion */
    bool refill_armed;          /* [lock; atomic reads] workers report a ring run dry */
    /* Completions, to host waiters: */
    _Alignas(64) uint32_t done_seq; /* [atomic] bumped at each completion; waiters sleep on it */
    uint32_t done_waiters;      /* [atomic] threads asleep on done_seq */
    uint32_t wake_due;          /* [atomic] a marked task finished, or the pool changed, since
                                 * sleepers were last woken */
    bool wake_owed;             /* [lock] a marked task finished under this hold of the lock:
                                 * walls__pool_unlock() wakes the sleepers */
    uint32_t unsignalled;       /* [atomic] completions not yet counted on event_fd */
    bool fd_raised;             /* the host wrote event_fd since it was last reset */
    struct walls__task_list collect; /* [lock] completed, not collected */
    bool fd_armed;              /* [lock; atomic reads] walls_pool_fd was called */
    bool event_armed;           /* [lock] process workers ring event_fd themselves */
    /* Time limits [lock]: */
    bool timed_ever;            /* a task with a limit was submitted: workers report starts */
    uint64_t ntimed;            /* unfinished tasks with a limit */
    int64_t clock_next;         /* when the timekeeper runs walls__engine_expire next, at
                                 * the latest; INT64_MAX: when woken (want_clock) */
    /* Health and statistics [lock]: */
    bool broken;
    bool cancelling;            /* walls_pool_destroy(WALLS_CANCEL) under way: a task a
                                 * killed worker held ends CANCELLED, never LOST or again */
    uint64_t submitted, completed, by_status[WALLS_BROKEN + 1], restarts, recycled;
    uint64_t hist[WALLS__HIST_BUCKETS];
};

static inline void walls__pool_lock(struct walls__pool *pool)
{
    pthread_mutex_lock(&pool->lock);
#ifndef NDEBUG
    pool->holder = pthread_self();
    pool->held = true;
#endif
}

static inline bool walls__pool_trylock(struct walls__pool *pool)
{
    if (pthread_mutex_trylock(&pool->lock) != 0)
        return false;
#ifndef NDEBUG
    pool->holder = pthread_self();
    pool->held = true;
#endif
    return true;
}

/* engine.h, which includes this file: the unlock below needs it. */
void walls__engine_signal(struct walls__pool *pool);

/* Unlocks, and wakes the threads asleep on a task that finished while the
 * lock was held: whichever path consumed its completion (a submit making
 * room in a ring, a stop, a cancel), its waiter hears of it. */
static inline void walls__pool_unlock(struct walls__pool *pool)
{
    bool owed = pool->wake_owed;
    pool->wake_owed = false;
    if (pool->pending_seen != pool->npending)
        __atomic_store_n(&pool->pending_seen, pool->npending, __ATOMIC_RELAXED);
#ifndef NDEBUG
    pool->held = false;
#endif
    pthread_mutex_unlock(&pool->lock);
    if (owed)
        walls__engine_signal(pool);
}

/* In debug builds, that the calling thread holds the pool's lock (as SQLite
 * asserts sqlite3_mutex_held where a function requires it). */
#ifndef NDEBUG
#define WALLS__LOCKED(pool) assert((pool)->held && pthread_equal((pool)->holder, pthread_self()))
#else
#define WALLS__LOCKED(pool) ((void)(pool))
#endif

/* How the pool's worker processes see its arena: a sandboxed worker never
 * gets a writable descriptor of it (it could map any of it writable), so
 * its outputs are staged. */
static inline enum walls__arena_mode walls__arena_mode_of(const struct walls__pool *pool)
{
    return !pool->arena.base                      ? WALLS__ARENA_NONE
           : pool->sandbox != WALLS_SANDBOX_NONE ? WALLS__ARENA_STAGED
                                                  : WALLS__ARENA_DIRECT;
}

#endif
