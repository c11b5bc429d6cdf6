/*
 * mailbox.h - the memory one worker shares with the host.
 *
 * Each worker, thread or process, owns one mailbox: a request ring the host
 * produces into and the worker consumes, and a completion ring the worker
 * produces into and the host consumes. Both are single-producer,
 * single-consumer rings of fixed slots with free-running 32-bit head and
 * tail indices, masked on access. A producer fills a slot, then publishes it
 * by storing the tail with release order; the consumer reads the tail with
 * acquire order before it reads the slot, and hands the slot back by
 * storing the head with release order.
 *
 * The same layout and code serve threads and processes; for a process
 * worker the mailbox is a memfd mapped by both sides, so it holds only
 * indices, lengths and bytes, never a pointer. The host treats everything a
 * worker can write as hostile: it keeps its own copy of every index it owns
 * and bounds-checks every index and length it reads from here.
 *
 * Sleeping: the consumer of the request ring spins briefly, then sleeps on
 * the tail word after counting itself in tail_waiters; the producer wakes
 * only when that count is non-zero. The host learns of completions either by
 * looking (while it spins) or by an eventfd the worker writes after
 * publishing: after every completion when the host set doorbell_armed
 * (somebody sleeps until any task finishes), after a completion whose slot
 * it marked in ring_want (somebody sleeps until that task finishes), or
 * when the request ring ran dry when it set refill_armed (tasks wait in the
 * host's queue or in another lane's ring).
 *
 * A process worker also holds the pool's own eventfd (walls_pool_fd), its
 * bell: when the host set event_armed (a loop watches that descriptor), it
 * rings the bell after a completion, so the loop wakes at once instead of
 * through the supervisor; having rung, it rings again only once the host
 * looked at its completions (bell_rung), so a burst rings once. It counts
 * every task completion in bell_begun before it publishes it, and in
 * bell_done once it has rung for it (or, unarmed or rung already, decided
 * not to); the host, to leave the descriptor quiet once it has taken every
 * completion, waits until bell_done reaches the number of task completions
 * it took (a bounded wait: a worker can lie) before it resets the
 * descriptor.
 */
#ifndef WALLS_MAILBOX_H
#define WALLS_MAILBOX_H

#include <stdint.h>
#include <string.h>

#include "walls.h"

#define WALLS__MAILBOX_MAGIC 0x57414c4cu /* "WALL" */
#define WALLS__MAILBOX_VERSION 6u

#define WALLS__RING_SLOTS 32u /* power of two */
#define WALLS__WANT_BELL 1u /* ring_want: ring the doorbell */
#define WALLS__WANT_WAKE 2u /* ring_want: wake cq.tail */
#define WALLS__SLOT_SIZE 512u
#define WALLS__SLOT_HEADER 32u
#define WALLS__SLOT_DATA (WALLS__SLOT_SIZE - WALLS__SLOT_HEADER)

_Static_assert(WALLS__SLOT_DATA == WALLS_INLINE_MAX, "inline size must match the slot");
_Static_assert((WALLS__RING_SLOTS & (WALLS__RING_SLOTS - 1)) == 0, "ring size is a power of two");

/* What a request slot asks for. */
enum walls__req_kind {
    WALLS__REQ_TASK = 1,   /* run fn(in) */
    WALLS__REQ_MODULE = 2, /* data holds the path of module number `module` */
    WALLS__REQ_STOP = 3,   /* leave the loop after acknowledging */
    WALLS__REQ_TASK_IO = 4, /* run fn(in) with a large input or output: data starts
                             * with a struct walls__io; an inline input follows it */
};

/*
 * Where a large input is and where the output goes, for a WALLS__REQ_TASK_IO
 * request. A thread worker gets addresses in the host's memory; a process
 * worker gets offsets in its two I/O memfds: the input one, which it may
 * only read, and the output one (see walls__worker_process_main). The host
 * gives each such request of a lane a window of its own (io.c): window k of
 * a lane starts at WALLS__IO_IN_WINDOW * k of its input space and at
 * max_output (rounded up to pages) * k of its output space. A window is
 * reused for later requests: a worker may keep its mapping.
 */
struct walls__io {
    uint64_t in_at;   /* in_len 0: the input is inline, after this struct */
    uint64_t in_len;
    uint64_t out_at;  /* out_cap 0: the output is inline, in the completion */
    uint64_t out_cap;
};
#define WALLS__IO_IN_WINDOW ((uint64_t)WALLS_IO_MAX)


/* The life of a request slot's task, moved by compare-and-swap on both
 * sides so that a cancel and a start cannot both win. */
enum walls__slot_state {
    WALLS__SLOT_QUEUED = 1,
    WALLS__SLOT_RUNNING = 2,
    WALLS__SLOT_CANCELLED = 3,
};

/* How a worker process sees the arena. */
enum walls__arena_mode {
    WALLS__ARENA_NONE = 0,
    WALLS__ARENA_DIRECT = 1, /* a writable descriptor, mapped read-only; each output
                              * is made writable (mprotect) for its task */
    WALLS__ARENA_STAGED = 2, /* a read-only descriptor, and a staging memfd of the same
                              * size where outputs are written, for the host to copy */
};

/* What a completion says. */
enum walls__cqe_kind {
    WALLS__CQE_DONE = 1,    /* the task ran; status says how it ended */
    WALLS__CQE_ACK = 2,     /* a control request or cancelled task was consumed */
    WALLS__CQE_NOFN = 3,    /* the function could not be located; code = -errno */
};

/* The module number that means "offset is the function's address": used by
 * thread workers, which share the host's address space. */
#define WALLS__MODULE_RAW 0xffffu

struct walls__req {
    uint32_t seq;    /* ring index of this request, echoed in its completion */
    uint32_t tag;    /* host's check value for this dispatch, echoed */
    uint32_t state;  /* enum walls__slot_state */
    uint16_t kind;   /* enum walls__req_kind */
    uint16_t module; /* module number, or WALLS__MODULE_RAW */
    uint64_t offset; /* function offset within the module */
    uint16_t in_len;
    uint8_t n_inputs;   /* arena buffers: struct walls__bufref at the end of data, */
    uint8_t has_output; /* the inputs, then the output */
    uint32_t out_cap;
    unsigned char data[WALLS__SLOT_DATA];
};

struct walls__cqe {
    uint32_t seq;
    uint32_t tag;
    uint16_t kind;   /* enum walls__cqe_kind */
    uint16_t status; /* CQE_DONE: WALLS_OK, WALLS_FAILED, or WALLS_PROTOCOL when the
                      * task claimed more output than out_cap (then out_len is 0) */
    int32_t code;
    uint32_t out_len;
    uint32_t reserved[3];
    unsigned char data[WALLS__SLOT_DATA];
};

_Static_assert(sizeof(struct walls__req) == WALLS__SLOT_SIZE, "request slot size");
_Static_assert(sizeof(struct walls__cqe) == WALLS__SLOT_SIZE, "completion slot size");

/* Where a task request's inline bytes start: after its struct walls__io
 * (copied to *io) in a WALLS__REQ_TASK_IO request, at 0 otherwise (*io
 * then all zero). Used by every consumer of a ring. */
static inline size_t walls__req_io(const struct walls__req *req, struct walls__io *io)
{
    *io = (struct walls__io){0, 0, 0, 0};
    if (req->kind != WALLS__REQ_TASK_IO)
        return 0;
    memcpy(io, req->data, sizeof *io);
    return sizeof *io;
}

struct walls__ring_idx {
    _Alignas(64) uint32_t tail;  /* producer publishes */
    uint32_t tail_waiters;       /* consumers asleep on tail */
    _Alignas(64) uint32_t head;  /* consumer hands back */
};

/* Worker start-up states. */
enum walls__worker_state {
    WALLS__WORKER_STARTING = 0,
    WALLS__WORKER_READY = 1,
    WALLS__WORKER_FAILED = 2,
};

struct walls__mailbox {
    uint32_t magic;
    uint32_t version;
    uint32_t worker_state;   /* written by the worker: enum walls__worker_state */
    int32_t start_error;     /* written by the worker: negative errno when FAILED */
    uint32_t doorbell_armed; /* written by the host: ring after every completion */
    uint32_t refill_armed;   /* written by the host: ring when the request ring runs dry */
    uint32_t event_armed;    /* written by the host: ring the bell after completions */
    uint32_t bell_begun;     /* written by the worker: task completions, counted before */
    uint32_t bell_done;      /* publishing, and those rung for (or passed, unarmed) */
    uint32_t bell_rung;      /* set by the worker when it rings, cleared by the host before
                              * it looks at the completions: ring again only then */
    uint32_t worker_pid;     /* written by the worker; informative only */
    uint32_t lanes;          /* lane 0, written by the host: mailboxes in this mapping */
    /* How this lane's thread ended its process, written by the worker in
     * its last moments: its own fault, or its own call of exit(). Each lane
     * writes only its own, so a fault is never blamed on a neighbour. */
    uint32_t fault_sig;      /* the fault signal this thread raised; 0 = none */
    uint32_t exited;         /* 1: this thread called exit(), with exit_code */
    int32_t exit_code;
    uint32_t memory_hit;     /* it faulted within a megabyte of its memory limit */
    uint32_t tid;            /* written by the worker: this lane's thread (host pid namespace) */
    int32_t notify_fd;       /* lane 0, written by the worker before READY: its seccomp
                              * listener, which the host takes with pidfd_getfd(); -1 = none */
    uint32_t rss_wanted;     /* written by the host: report peak_rss_kb after each task */
    uint64_t peak_rss_kb;    /* written by the worker when asked */
    uint64_t as_limit;       /* lane 0, written by the host: RLIMIT_AS to set, 0 = none */
    uint32_t sandbox;        /* lane 0, written by the host: enum walls_sandbox */
    uint32_t report_start;   /* written by the host: fill in current_seq/current_start_ns */
    uint32_t current_seq;    /* written by the worker: the request it runs now */
    uint64_t current_start_ns; /* and when it started it (CLOCK_MONOTONIC) */
    /* Lane 0, written by the host before the worker starts: the shared
     * arena and locks, whose descriptors follow the doorbell, the two I/O
     * memfds and the bell, in that order
     * (see walls__worker_process_main). */
    uint64_t arena_size;     /* 0 = no arena */
    uint32_t arena_mode;     /* enum walls__arena_mode */
    uint32_t nlocks;         /* 0 = no locks */
    uint32_t lock_token;     /* this process's holder token */
    uint64_t shared_size;    /* the writable shared region; 0 = none */
    /* Written by the host: somebody sleeps until the request in that slot
     * finishes. WALLS__WANT_BELL: the worker rings its doorbell for it
     * (the supervisor consumes the completion and wakes the sleepers);
     * WALLS__WANT_WAKE: a host thread sleeps on cq.tail itself, and the
     * worker wakes it there, sparing the supervisor's hop. The worker
     * reads the flags after publishing the completion and a full fence;
     * the host sets them, fences, then looks at the completions. A slot is
     * refilled only once its completion was consumed. */
    uint8_t ring_want[WALLS__RING_SLOTS];
    struct walls__ring_idx rq;
    struct walls__ring_idx cq;
    _Alignas(64) struct walls__req rq_slots[WALLS__RING_SLOTS];
    struct walls__cqe cq_slots[WALLS__RING_SLOTS];
};

#define WALLS__MAILBOX_SIZE ((sizeof(struct walls__mailbox) + 4095u) & ~(size_t)4095u)

#endif
