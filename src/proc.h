/*
 * proc.h - the process backend's own objects, shared by its three files:
 * proc_backend.c (the backend's operations, the mailboxes, the modules),
 * proc_state.c (one worker process's life, as a state machine) and
 * supervisor.c (the thread that turns descriptors into events).
 *
 * Every function here takes the pool's lock held unless it says otherwise.
 */
#ifndef WALLS_PROC_H
#define WALLS_PROC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "module.h"
#include "pool.h"
#include "throttle.h"

/*
 * The life of a worker process:
 *
 *             START/TIMER         READY (pidfd held, listener taken)
 *    DOWN -------------> STARTING ----------------> UP
 *     ^  ^                  |                      |  HARVESTED: due for recycling
 *     |  |  died early:    |                      v
 *     |  +-- a start error-+                   DRAINING --lanes idle, STOP sent--> RETIRING
 *     |      (or a restart)                       |                                 |
 *     |                     KILL (from UP, DRAINING, RETIRING)                      |
 *     |                              v                                              |
 *     +---- DIED: restart, --- KILLING                   DIED, clean: a new process (STARTING)
 *           throttled              |                    <-------------------------- +
 *           (or broken)            +-- DIED
 *
 *    STOP (the pool stops): any state --> STOPPING --DIED--> STOPPED; DOWN --> STOPPED.
 *
 * The lanes of a process follow its state: live (their completions are
 * consumed) from UP until its death is settled, open (they take tasks) in
 * UP only. proc_state.c holds the transition table.
 */
enum walls__proc_state {
    WALLS__PROC_DOWN,     /* no process; maybe a start planned (respawn_at) */
    WALLS__PROC_STARTING, /* spawn asked of the fork server, not ready yet */
    WALLS__PROC_UP,       /* serving */
    WALLS__PROC_DRAINING, /* to be recycled: takes no tasks, finishes its own */
    WALLS__PROC_RETIRING, /* told to stop for recycling: exits cleanly */
    WALLS__PROC_KILLING,  /* killed by us (a time limit, a cancel, a protocol break,
                           * a sandbox violation): dying */
    WALLS__PROC_STOPPING, /* the pool stops: told to stop, or killed */
    WALLS__PROC_STOPPED,  /* gone for good */
    WALLS__PROC_NSTATES,
};

enum walls__proc_event {
    WALLS__EV_START,        /* a process is wanted now: the first, or after a reset */
    WALLS__EV_TIMER,        /* time passed: a planned start may be due */
    WALLS__EV_SPAWNED,      /* the fork server forked it: its pidfd (arg.fd) */
    WALLS__EV_SPAWN_FAILED, /* the fork server could not (arg.err) */
    WALLS__EV_READY,        /* its doorbell rang: it may say READY */
    WALLS__EV_HARVESTED,    /* its lanes' completions were consumed */
    WALLS__EV_KILL,         /* kill it, for lane arg.lane's task (arg.reason, ...) */
    WALLS__EV_DIED,         /* the fork server reaped it (arg.how, arg.status) */
    WALLS__EV_STOP,         /* the pool stops: drain, or kill (arg.cancel) */
    WALLS__EV_LOST,         /* the fork server is gone: kill, wait, settle */
    WALLS__PROC_NEVENTS,
};

struct walls__proc_arg {
    int fd;                    /* SPAWNED */
    int err;                   /* SPAWN_FAILED */
    int how, status;           /* DIED: CLD_* and the exit status or signal */
    struct walls__lane *lane;  /* KILL: the lane whose task it is for */
    enum walls_status reason;  /* KILL: the status that task gets */
    int code;                  /* KILL: its code (a violation's call) */
    unsigned flags;            /* KILL: its result flags */
    bool targeted;             /* KILL: for request seq only (else whatever it runs) */
    uint32_t seq;
    bool cancel;               /* STOP: kill rather than drain */
    int64_t now;               /* TIMER */
};

struct walls__proc {
    unsigned index;
    struct walls__lane *lanes;
    unsigned nlanes;
    enum walls__proc_state state;
    void *map;           /* the lanes' mailboxes, one after another */
    int memfd;           /* their memfd, and its doorbell: made once, reused */
    int doorbell;
    int staging_fd;      /* staged arena: where its outputs are written; -1 = none */
    int io_in_fd;        /* its lanes' large inputs (struct walls__io): the host's descriptor, */
    int io_in_ro;        /* and a read-only one for the worker */
    int io_out_fd;       /* its lanes' large outputs */
    int pidfd;           /* the current process; -1 = none */
    pid_t pid;
    int notify_fd;       /* seccomp: the listener its refused calls go to; -1 = none */
    bool killed;         /* its death is ours: tasks not named end as WALLS_LOST */
    uint32_t quota;      /* tasks it may still be given (recycle_after) */
    int start_error;     /* why it failed before READY */
    int64_t respawn_at;  /* DOWN: when to start it; 0 = not planned */
    uint32_t lock_token; /* the holder token of its current process */
};

/* The backend's state (pool->backend_state). */
struct walls__procs {
    struct walls__proc *procs;
    struct walls__fn_cache fn_cache[64];
    int sock;                /* [create] to the fork server */
    int epfd;                /* [create] the supervisor's */
    int cmd_fd;              /* [create] eventfd: wakes the supervisor */
    pthread_t supervisor;
    bool supervisor_started;
    bool quit;               /* the supervisor leaves at its next wake-up */
    bool creating;           /* walls_pool_create waits for its workers */
    unsigned starting;       /* workers not yet ready while creating */
    int start_error;         /* while creating: the first worker's start error */
    bool stopping;           /* no more starts */
    bool server_lost;        /* the fork server died under this pool */
    uint32_t next_token;     /* lock holder tokens of worker processes */
    struct walls__throttle restarts; /* crash-loop protection */
};

static inline struct walls__procs *walls__procs_of(struct walls__pool *pool)
{
    return pool->backend_state;
}

/* proc_state.c */

/* Applies an event to a process: the transition table's action, then its
 * new state (the lanes follow). arg may be NULL for events that take none. */
void walls__proc_event(struct walls__pool *pool, struct walls__proc *proc,
                       enum walls__proc_event ev, const struct walls__proc_arg *arg);
/* Acts on the lanes that ask for it (walls__engine_take_attention): a
 * protocol break kills the process, completions may make it due for
 * recycling. */
void walls__procs_attend(struct walls__pool *pool);
/* Wakes the supervisor: a planned start or a deadline changed. Lock held
 * or not. */
void walls__procs_wake(struct walls__pool *pool);
/* The supervisor's epoll tags: a kind and a process's index. */
enum { WALLS__TAG_SOCK = 1, WALLS__TAG_CMD = 2, WALLS__TAG_DOORBELL = 16,
       WALLS__TAG_NOTIFY = WALLS__TAG_DOORBELL + 256 };
/* Adds fd to the supervisor's epoll set under tag. Returns 0 or -errno. */
int walls__procs_watch(struct walls__pool *pool, int fd, uint64_t tag);

/* supervisor.c */

/* Starts the supervisor thread. Lock NOT held. Returns 0 or -errno. */
int walls__supervisor_start(struct walls__pool *pool);
/* Tells it to leave and joins it. Lock NOT held. */
void walls__supervisor_stop(struct walls__pool *pool);

#endif
