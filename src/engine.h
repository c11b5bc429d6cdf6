/*
 * engine.h - the pool engine: how tasks move between the pending queue,
 * the lanes' rings and completion, the same for every placement.
 *
 * The producer side (dispatch.c) queues tasks, picks a lane, pushes and
 * publishes requests, stages outputs in, completes tasks and wakes their
 * waiters; balance.c moves tasks that have not started to lanes that idle;
 * io.c places large inputs and outputs. The consumer side (harvest.c)
 * consumes completions, checking each against the lane's in-flight table,
 * marks lanes that break the protocol, stages outputs out, and finds tasks
 * past their time limit.
 *
 * The engine calls neither the public API nor a backend. What only a
 * backend can do (kill a worker, recycle it) the engine asks for with data:
 * a lane's broke, kill_reason and attention flags
 * (walls__engine_take_attention); the caller then tells the backend.
 *
 * Every function takes the pool's lock held unless it says otherwise.
 */
#ifndef WALLS_ENGINE_H
#define WALLS_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

/* ---- dispatch.c: producer side ---------------------------------------------- */

/* Appends a submitted task to the pending queue and dispatches. */
void walls__engine_queue(struct walls__pool *pool, struct walls__task *task);
/* The same for n tasks (n > 0), in order, with one dispatch. */
void walls__engine_queue_many(struct walls__pool *pool, struct walls__task *const *tasks,
                              size_t n);
/* Moves pending tasks into lanes with room (breaks them if the pool is),
 * and tasks waiting in rings to lanes that ran dry. */
void walls__engine_dispatch(struct walls__pool *pool);
/* Ends a task with a result: copies out (memory for the bytes written
 * only), updates the statistics, puts it on the collect list, and marks it
 * DONE. Its waiters are woken by walls__engine_signal() after unlocking. */
void walls__engine_complete(struct walls__pool *pool, struct walls__task *task,
                            enum walls_status status, int code, const void *out, uint32_t out_len);
/* The same, with the time of completion given (the harvest has it). */
void walls__engine_complete_at(struct walls__pool *pool, struct walls__task *task,
                               enum walls_status status, int code, const void *out,
                               uint32_t out_len, int64_t now);
/* The same, adopting out: a buffer of exactly out_len bytes from
 * walls__buf_alloc (NULL when out_len is 0) that becomes the result, or is
 * freed. */
void walls__engine_complete_owned(struct walls__pool *pool, struct walls__task *task,
                                  enum walls_status status, int code, unsigned char *out,
                                  uint32_t out_len, int64_t now);
/* Takes a completed task off the collect list (walls_pool_collect). */
void walls__engine_uncollect(struct walls__pool *pool, struct walls__task *task);
/* The pct-th percentile of submit-to-completion latency, in ns (exact to
 * 1/16). */
uint64_t walls__engine_percentile(const struct walls__pool *pool, unsigned pct);
/* A latency histogram of WALLS__HIST_BUCKETS counts: adds one of ns, and
 * the pct-th percentile of total counted (exact to 1/16). No lock. */
void walls__hist_add(uint64_t *hist, int64_t ns);
uint64_t walls__hist_percentile(const uint64_t *hist, uint64_t total, unsigned pct);
/* Copies a staged output buffer between the arena and a staging memfd (in:
 * into the memfd). Returns 0 or -errno. */
int walls__engine_stage_copy(struct walls__pool *pool, int fd, const struct walls__bufref *ref,
                             bool in);
/* Lock NOT held: wakes the threads that wait on completions (those that
 * wait for particular tasks only when one of them finished or the pool
 * changed), and counts completions on the pool's descriptor. */
void walls__engine_signal(struct walls__pool *pool);
/* Bumps done_seq for a change other than a completion (a process came up
 * or went): every sleeper is woken at the next walls__engine_signal(). */
void walls__engine_bump(struct walls__pool *pool);
/* Puts a task that has not run back at the front of the queue. */
void walls__engine_requeue_front(struct walls__pool *pool, struct walls__task *task);
/* The pool stops taking work: queued tasks, and those queued later, end as
 * WALLS_BROKEN. */
void walls__engine_break(struct walls__pool *pool);
/* Cancels a task that has not started: 0, -EALREADY (finished) or -EBUSY
 * (it runs, or is about to: only its backend can stop it). */
int walls__engine_cancel(struct walls__pool *pool, struct walls__task *task);
/* A task that runs this long (dispatch to harvest) is a long one: packing
 * stops behind it, and tasks waiting behind it move (balance.c). */
#define WALLS__LONG_TASK_NS 100000

/* Whether lane may be given a task now: open, alive, not stuck, with quota. */
bool walls__engine_takes(const struct walls__lane *lane);
/* Puts task into lane's ring (not published): 0; -ENOSPC when the lane has
 * no room for it (slots, large-I/O windows); or -errno when its staged
 * output or large input could not be placed there. */
int walls__engine_deal(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task,
                       int64_t now);
/* Publishes what was pushed into lane's ring, waking its worker if asleep. */
void walls__engine_publish(struct walls__lane *lane);

/* ---- balance.c: moving tasks that have not started ---------------------------- */

/* Takes back, newest first, up to max tasks of lane queued after request
 * after that have not started (each slot's QUEUED -> CANCELLED exchange
 * won against the worker's); stops at the first that has. They are put in
 * out oldest first, still counted in the rings; the caller places them.
 * Returns how many. */
unsigned walls__engine_take_back(struct walls__pool *pool, struct walls__lane *lane, uint32_t after,
                                 unsigned max, struct walls__task **out);
/* Whether lane's worker has been running its current task for
 * WALLS__LONG_TASK_NS or more: a task dealt to it now would wait. */
bool walls__engine_runs_long(const struct walls__lane *lane, int64_t now);
/* Moves waiting tasks into idle lanes: a lane that ran dry (ran_dry) takes
 * half of the longest backlog, all of it behind a long runner; any idle
 * lane takes all of a backlog behind a long runner. */
void walls__engine_rebalance(struct walls__pool *pool, int64_t now);
/* Asks for the engine's clock (balance_at, want_clock) while tasks wait
 * beside an idle lane. */
void walls__engine_watch_balance(struct walls__pool *pool, int64_t now);
/* The engine's clock for balancing: when due, moves tasks that wait behind
 * a long-running one into idle lanes. Returns when to call again, or
 * INT64_MAX. (walls__engine_expire calls it.) */
int64_t walls__engine_balance(struct walls__pool *pool, int64_t now);
/* Whether lanes should report running dry (WALLS__ARM_REFILL): tasks wait
 * in the queue, or behind others in the rings. */
bool walls__engine_wants_refill(const struct walls__pool *pool);

/* What workers report through their doorbells (walls__engine_arm). */
#define WALLS__ARM_EVERY 1u  /* every completion: an internal waiter needs them all
                              * (a waiter for particular tasks marks them instead) */
#define WALLS__ARM_REFILL 2u /* a ring that ran dry: tasks wait elsewhere */
#define WALLS__ARM_EVENT 4u  /* completions, on the pool's own eventfd, once until the
                              * host looks (process lanes): a loop watches
                              * walls_pool_fd() */
/* Sets what the lanes report; fences after a change. */
void walls__engine_arm(struct walls__pool *pool, unsigned what);
/* What the lanes report now: WALLS__ARM_* bits. */
unsigned walls__engine_armed(const struct walls__pool *pool);
/* Lock held, nothing left to collect: waits (briefly, bounded) until the
 * process lanes have rung the pool's bell for every task completion taken
 * from them, then resets the pool's descriptor and harvests again, so that
 * a ring for a completion already taken does not leave the descriptor
 * readable with nothing to collect. */
void walls__engine_settle_bells(struct walls__pool *pool);

/* A lane of the pool as created: no worker, no descriptors, full depth. */
void walls__engine_lane_init(struct walls__pool *pool, struct walls__lane *lane, unsigned index);
/* A lane's rings and host state, as new: for a new worker of the lane. */
void walls__engine_lane_reset(struct walls__lane *lane);
/* A lane whose worker is in the host (a thread, a relay): its mailbox in
 * private memory, its output windows mapped, as new, live and open.
 * Returns 0 or -errno (then what it took is freed by the next call). */
int walls__engine_lane_private(struct walls__lane *lane);
/* Frees what walls__engine_lane_private() took. */
void walls__engine_lane_private_free(struct walls__lane *lane);
/* Asks the lane's worker to leave its loop (acknowledged like a task). */
void walls__engine_push_stop(struct walls__lane *lane);

/* ---- io.c: large inputs and outputs ----------------------------------------- */

/* Writes (or reads) all len bytes at p to (from) offset off of fd, going
 * on after a signal. Returns 0 or -errno (-EIO at the file's end). */
int walls__io_file(int fd, unsigned char *p, uint64_t len, uint64_t off, bool write);
/* The windows each lane of the pool has. */
unsigned walls__io_depth(const struct walls__pool *pool);
/* Whether task travels as a WALLS__REQ_TASK_IO request. */
bool walls__io_wanted(const struct walls__pool *pool, const struct walls__task *task);
/* Whether every window of lane is taken. */
bool walls__io_full(const struct walls__lane *lane);
/* Gives the request e (about to be pushed for task) a window of lane and
 * fills in io; writes a process lane's large input (big_in) into it.
 * Returns 0 or -errno (then nothing was taken). */
int walls__io_place(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task,
                    bool big_in, struct walls__inflight *e, struct walls__io *io);
/* A copy of the out_len bytes request e wrote in its window (out_len
 * checked against max_output); NULL with *err set when memory or the read
 * fails, or when out_len is 0. */
unsigned char *walls__io_output(struct walls__lane *lane, const struct walls__inflight *e,
                                uint32_t out_len, int *err);
/* Request e is over: its window goes back (its pages past what is kept). */
void walls__io_release(struct walls__lane *lane, struct walls__inflight *e);
/* A new worker takes the lane over: every window free and wiped. */
void walls__io_lane_reset(struct walls__lane *lane);
/* Thread lanes: sets the depth and maps the output windows; unmaps them. */
int walls__io_lane_map(struct walls__lane *lane);
void walls__io_lane_unmap(struct walls__lane *lane);
/* Process lanes, their memfds set: maps the output windows read-only in
 * the host when they are small enough (else leaves io_out_view NULL);
 * unmaps them. Returns 0 or -errno. */
int walls__io_view_map(struct walls__lane *lane);
void walls__io_view_unmap(struct walls__lane *lane);

/* ---- harvest.c: consumer side ---------------------------------------------- */

/* Consumes lane's completions, each checked against its in-flight table. A
 * break of the protocol marks the lane broke (and, for a lane whose worker
 * cannot be killed, fails the task named); see take_attention. */
void walls__engine_harvest(struct walls__pool *pool, struct walls__lane *lane);
/* The same, with the clock read by the caller under the lock (0: read it
 * here): the completions count as finished at now. */
void walls__engine_harvest_at(struct walls__pool *pool, struct walls__lane *lane, int64_t now);
/* Harvests every live lane, then dispatches. */
void walls__engine_harvest_all(struct walls__pool *pool);
/* The next lane that needs its backend (it broke the protocol, or
 * completed tasks while watched), from index *from on, its attention
 * cleared; NULL when there is none. */
struct walls__lane *walls__engine_take_attention(struct walls__pool *pool, unsigned *from);
/* Drops the arena pins of an abandoned request, if any. */
void walls__engine_unhold(struct walls__pool *pool, struct walls__inflight *e);

/* Time limits: ends what ran past its limit at now. A thread task ends as
 * WALLS_TIMEOUT for its waiters while its thread runs on (the lane is
 * stuck until it returns, and the tasks queued behind it move); a lane
 * whose worker can be killed gets kill_reason WALLS_TIMEOUT for that
 * request and asks for attention, for its backend to kill it. Then
 * dispatches. Returns when to look again, at the latest (kept in
 * pool->clock_next): the earliest deadline ahead of a running task, now
 * plus the limit of a task queued behind one (a start is not announced,
 * and none can start before now: the caller has just harvested), or
 * INT64_MAX; balancing's clock (walls__engine_balance) runs here too.
 * Nothing ticks while limits are far. A limited task dealt to a ring
 * later lowers pool->clock_next to its dispatch time plus its limit when
 * that is earlier, and sets pool->want_clock: when the engine wants this
 * called and nobody may be calling it, the API layer tells the backend
 * (its timed op). A timekeeper never sleeps past what this returned. */
int64_t walls__engine_expire(struct walls__pool *pool, int64_t now);

#endif
