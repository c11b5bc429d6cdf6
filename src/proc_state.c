/*
 * proc_state.c - the life of one worker process, as a state machine (in
 * the manner of s6-supervise): a table of states by events, each entry an
 * action that does the work and returns the next state; one function,
 * walls__proc_event(), applies an event. The states and the diagram are in
 * proc.h.
 *
 * The actions: asking the fork server for a process (spawn), killing it
 * (for the task a lane runs: a time limit, a cancel, a protocol break, a
 * sandbox violation), recycling it, settling its death lane by lane (the
 * task each lane was running ends with the cause its own thread recorded,
 * or as LOST; tasks not taken go back to the front of the queue), and
 * replacing it, throttled: more than restart_limit restarts of processes
 * that finished no task (and were not killed to end one), within
 * restart_window_ms, break the pool instead,
 * and restart_backoff_ms spaces those out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <seccomp.h>

#include "atomic.h"
#include "engine.h"
#include "forkserver.h"
#include "futex.h"
#include "internal.h"
#include "proc.h"
#include "sandbox.h"

#define MASK (WALLS__RING_SLOTS - 1)

/* When a start that could not be asked for is tried again. */
#define RETRY_NS 100000000

typedef enum walls__proc_state state_t;

void walls__procs_wake(struct walls__pool *pool)
{
    uint64_t one = 1;
    ssize_t rc = write(walls__procs_of(pool)->cmd_fd, &one, sizeof one);
    (void)rc;
}

int walls__procs_watch(struct walls__pool *pool, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(walls__procs_of(pool)->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void signal_proc(struct walls__proc *proc)
{
    if (proc->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, proc->pidfd, SIGKILL, NULL, 0);
}

/* ---- starting ---------------------------------------------------------------------- */

/* Resets the process's mailboxes and asks the fork server for a process.
 * Returns STARTING, or DOWN with a retry planned if the request could not
 * be sent (the fork server gone: the socket's end says so soon). */
static state_t spawn(struct walls__pool *pool, struct walls__proc *proc)
{
    struct walls__procs *ps = walls__procs_of(pool);
    if (ps->stopping)
        return WALLS__PROC_STOPPED;
    unsigned armed = walls__engine_armed(pool);
    for (unsigned i = 0; i < proc->nlanes; i++) {
        struct walls__lane *lane = &proc->lanes[i];
        walls__engine_lane_reset(lane);
        walls__store_relaxed(&lane->mb->doorbell_armed, armed & WALLS__ARM_EVERY ? 1u : 0u);
        walls__store_relaxed(&lane->mb->refill_armed, armed & WALLS__ARM_REFILL ? 1u : 0u);
        walls__store_relaxed(&lane->mb->event_armed, armed & WALLS__ARM_EVENT ? 1u : 0u);
        lane->mb->rss_wanted = pool->recycle_rss_kb != 0;
    }
    struct walls__mailbox *lane0 = proc->lanes[0].mb;
    lane0->lanes = proc->nlanes;
    lane0->as_limit = pool->memory_limit;
    lane0->sandbox = pool->sandbox;
    /* Rewritten for every worker: the last one may have scribbled on it. */
    *walls__sandbox_conf_of(lane0) = *pool->sandbox_conf;
    lane0->arena_size = pool->arena.base ? pool->arena.size : 0;
    lane0->arena_mode = (uint32_t)walls__arena_mode_of(pool);
    lane0->nlocks = pool->arena.nlocks;
    lane0->shared_size = pool->arena.shared_size;
    proc->lock_token = ps->next_token++;
    if (ps->next_token > INT32_MAX) /* tokens fill 31 bits of a lock word */
        ps->next_token = 2;
    lane0->lock_token = proc->lock_token;
    walls__fence(); /* as in walls__engine_arm() */
    proc->killed = false;
    proc->start_error = 0;
    proc->respawn_at = 0;
    proc->quota = pool->recycle_after ? pool->recycle_after : UINT32_MAX;
    struct walls__msg msg = {.type = WALLS__MSG_SPAWN, .worker = proc->index};
    int fds[WALLS__MSG_MAX_FDS] = {proc->memfd, proc->doorbell, proc->io_in_ro, proc->io_out_fd,
                                   pool->event_fd};
    int nfds = 5;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_DIRECT)
        fds[nfds++] = pool->arena.fd;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_STAGED) {
        fds[nfds++] = pool->arena.ro_fd;
        fds[nfds++] = proc->staging_fd;
    }
    if (pool->arena.locks)
        fds[nfds++] = pool->arena.lock_fd;
    if (pool->arena.shared)
        fds[nfds++] = pool->arena.shared_fd;
    if (walls__msg_send(ps->sock, &msg, fds, nfds) != 0) {
        proc->respawn_at = walls__now_ns() + RETRY_NS;
        return WALLS__PROC_DOWN;
    }
    return WALLS__PROC_STARTING;
}

/* A sandboxed worker's filter reports refused calls to a listener: the
 * host takes its own copy from the worker (pidfd_getfd), checks that it is
 * one, and watches it. Returns 0 or -errno. */
static int take_listener(struct walls__pool *pool, struct walls__proc *proc)
{
    int number = walls__load_relaxed(&proc->lanes[0].mb->notify_fd);
    int fd = (int)syscall(SYS_pidfd_getfd, proc->pidfd, number, 0);
    if (fd < 0)
        return -errno;
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    static const char want[] = "anon_inode:seccomp notify";
    if (n != (ssize_t)sizeof want - 1 || memcmp(link, want, sizeof want - 1) != 0) {
        close(fd);
        return -EPROTO;
    }
    int rc = walls__procs_watch(pool, fd, WALLS__TAG_NOTIFY + proc->index);
    if (rc) {
        close(fd);
        return rc;
    }
    proc->notify_fd = fd;
    return 0;
}

/* A starting process serves once it said it is ready and we hold its
 * pidfd (without it, it could not be killed) and, sandboxed, its listener
 * (without it, a refused call would wait for ever). The first two arrive
 * in either order. */
static state_t try_ready(struct walls__pool *pool, struct walls__proc *proc)
{
    if (proc->pidfd < 0 ||
        walls__load_acquire(&proc->lanes[0].mb->worker_state) != WALLS__WORKER_READY)
        return WALLS__PROC_STARTING;
    if (pool->sandbox == WALLS_SANDBOX_SECCOMP || pool->sandbox == WALLS_SANDBOX_STRICT) {
        int rc = take_listener(pool, proc);
        if (rc) {
            /* It dies still STARTING: a start-up failure with this cause. */
            proc->start_error = rc;
            signal_proc(proc);
            return WALLS__PROC_STARTING;
        }
    }
    struct walls__procs *ps = walls__procs_of(pool);
    if (ps->creating && ps->starting > 0)
        ps->starting--;
    walls__engine_bump(pool);
    return WALLS__PROC_UP;
}

/* ---- restarts ----------------------------------------------------------------------- */

/* A process is gone: replace it, unless the pool restarts too often, in
 * which case it breaks. Only a process that finished no task counts: one
 * that served and then died (one request in a hundred crashing) is no
 * crash loop, and is replaced at once however often that happens; nor is
 * one the host killed to end a task as the program asked (walls_cancel(),
 * a time limit): that task ended, which is progress too. */
static state_t replace(struct walls__pool *pool, struct walls__proc *proc)
{
    proc->respawn_at = 0;
    if (walls__procs_of(pool)->stopping)
        return WALLS__PROC_STOPPED;
    if (pool->broken)
        return WALLS__PROC_DOWN;
    bool served = false;
    for (unsigned i = 0; i < proc->nlanes; i++) {
        const struct walls__lane *lane = &proc->lanes[i];
        served |= lane->served ||
                  (lane->kill_targeted && !lane->target_untaken &&
                   (lane->kill_reason == WALLS_CANCELLED || lane->kill_reason == WALLS_TIMEOUT));
    }
    if (served) {
        pool->restarts++;
        return spawn(pool, proc);
    }
    int64_t now = walls__now_ns();
    int64_t delay = walls__throttle_restart(&walls__procs_of(pool)->restarts, now);
    if (delay < 0) {
        walls__engine_break(pool);
        return WALLS__PROC_DOWN;
    }
    pool->restarts++;
    if (delay == 0)
        return spawn(pool, proc);
    proc->respawn_at = now + delay;
    return WALLS__PROC_DOWN;
}

/* Died, or could not be made, before it was ready. */
static state_t failed_start(struct walls__pool *pool, struct walls__proc *proc, int err)
{
    struct walls__procs *ps = walls__procs_of(pool);
    proc->start_error = err;
    close_fd(&proc->pidfd);
    close_fd(&proc->notify_fd);
    proc->pid = 0;
    if (ps->creating) {
        if (!ps->start_error)
            ps->start_error = err;
        return WALLS__PROC_DOWN;
    }
    if (pool->state == WALLS__POOL_DEAD)
        return WALLS__PROC_DOWN;
    return replace(pool, proc); /* a replacement that could not start */
}

/* ---- deaths --------------------------------------------------------------------------- */

static bool is_fault_signal(int sig)
{
    switch (sig) {
    case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGABRT: case SIGTRAP:
    case SIGSYS:
        return true;
    default:
        return false;
    }
}

static enum walls_status death_status(int how, int sigstat, int *code)
{
    *code = sigstat;
    if (how == CLD_EXITED)
        return WALLS_EXITED;
    return is_fault_signal(sigstat) ? WALLS_CRASHED : WALLS_KILLED;
}

/* What the lane's thread recorded of its own end (a fault or exit()), as a
 * status; WALLS_LOST when it recorded nothing. These are the worker's
 * words: a lie misplaces only the tasks of the liar's own process. */
static enum walls_status lane_record(const struct walls__lane *lane, int *code)
{
    int sig = (int)walls__load_acquire(&lane->mb->fault_sig);
    if (is_fault_signal(sig)) {
        *code = sig;
        return WALLS_CRASHED;
    }
    if (walls__load_acquire(&lane->mb->exited)) {
        *code = walls__load_relaxed(&lane->mb->exit_code) & 0xff;
        return WALLS_EXITED;
    }
    *code = 0;
    return WALLS_LOST;
}

/* How the task in request seq of the lane ends, given how its process
 * died. */
static enum walls_status lane_status(struct walls__proc *proc, struct walls__lane *lane,
                                     uint32_t seq, enum walls_status died, int *code)
{
    if (lane->kill_reason >= 0 && (!lane->kill_targeted || lane->kill_seq == seq)) {
        /* Killed for its time limit, it may have ended itself before the
         * kill landed: a fault or an exit that its thread recorded (a
         * hybrid process, whose fault handler may wait on the other
         * threads past the deadline), or that the process died of (the
         * host's kill is SIGKILL). That is its end: a task that faulted
         * ends CRASHED with its own signal. A cancel keeps its word. */
        if (lane->kill_reason == WALLS_TIMEOUT) {
            int own_code;
            enum walls_status own = proc->nlanes > 1 ? lane_record(lane, &own_code)
                                    : died != WALLS_KILLED ? died
                                                           : WALLS_LOST;
            if (own != WALLS_LOST) {
                if (proc->nlanes > 1)
                    *code = own_code;
                return own;
            }
        }
        *code = lane->kill_code;
        return (enum walls_status)lane->kill_reason;
    }
    /* Each thread of a hybrid process records its own fault or exit(): a
     * task whose thread recorded one ends with it, even when the process
     * was killed meanwhile (for another lane's time limit, from outside)
     * while its fault was stopping the other threads. */
    int own_code;
    enum walls_status own = proc->nlanes > 1 ? lane_record(lane, &own_code) : WALLS_LOST;
    if (own != WALLS_LOST) {
        *code = own_code;
        return own;
    }
    if (proc->killed) { /* for another lane's task */
        *code = 0;
        return WALLS_LOST;
    }
    if (proc->nlanes == 1 || died == WALLS_KILLED)
        return died;
    /* A task whose thread recorded nothing did not cause the death, unless
     * no thread did (a thread the task started, or _exit()): then every
     * running task shares the cause. */
    for (unsigned i = 0; i < proc->nlanes; i++) {
        int ignored;
        if (lane_record(&proc->lanes[i], &ignored) != WALLS_LOST) {
            *code = 0;
            return WALLS_LOST;
        }
    }
    return died;
}

/* One lane of a dead process: finish or requeue what it held. */
static void settle_lane(struct walls__pool *pool, struct walls__proc *proc,
                        struct walls__lane *lane, enum walls_status died, int died_code)
{
    walls__engine_harvest(pool, lane);
    /* The worker's word, believed only where there is a limit to reach. */
    bool memory = pool->memory_limit && walls__load_relaxed(&lane->mb->memory_hit) != 0;
    /* A lane takes requests in ring order, one at a time: the first task
     * it had not finished is the one it died in (unless it never took
     * it). The slot states are the worker's word and count only for the
     * tasks behind that one: untaken ones run elsewhere. */
    struct walls__task *requeue[WALLS__RING_SLOTS];
    unsigned nrequeue = 0;
    bool first = true;
    for (uint32_t s = lane->oldest; s != lane->rq_tail; s++) {
        struct walls__inflight *e = &lane->inflight[s & MASK];
        if (e->retired || e->kind != WALLS__REQ_TASK || !e->task)
            continue;
        uint32_t st = walls__load_relaxed(&lane->mb->rq_slots[s & MASK].state);
        struct walls__task *task = e->task;
        /* The worker's word that it never took the first one is believed
         * once a task: a task that writes its slot back to QUEUED would
         * otherwise be killed and run again for ever. */
        bool victim = st != WALLS__SLOT_QUEUED || (first && (lane->broke || task->untaken));
        if (!victim && first) {
            task->untaken = true;
            if (lane->kill_targeted && lane->kill_seq == s)
                lane->target_untaken = true;
        }
        first = false;
        e->task = NULL;
        /* Being destroyed with WALLS_CANCEL: what the kill took, or had
         * not started, ends cancelled, as walls_pool_destroy() says; a
         * task that started after the kill was decided would otherwise be
         * LOST (killed for another), or run again. */
        if (!victim && (pool->cancelling || task->cancel_asked)) {
            walls__engine_complete(pool, task, WALLS_CANCELLED, 0, NULL, 0);
            continue;
        }
        if (!victim) {
            requeue[nrequeue++] = task;
            continue;
        }
        int code = died_code;
        enum walls_status status = lane_status(proc, lane, s, died, &code);
        task->attempts++;
        if (status == WALLS_LOST && (pool->cancelling || task->cancel_asked))
            status = WALLS_CANCELLED;
        if (status == WALLS_LOST && task->attempts <= pool->lost_retries) {
            requeue[nrequeue++] = task;
            continue;
        }
        if (memory && status != WALLS_LOST)
            task->result_flags |= WALLS_RESULT_MEMORY;
        if (lane->kill_reason >= 0 && status == (enum walls_status)lane->kill_reason)
            task->result_flags |= lane->kill_flags;
        walls__engine_complete(pool, task, status, code, NULL, 0);
    }
    while (nrequeue > 0)
        walls__engine_requeue_front(pool, requeue[--nrequeue]);
}

/* The process is gone: its locks are freed (the next holder hears of the
 * death), each lane's tasks end or go back to the queue, and what it
 * staged is dropped (after its lanes' finished tasks were copied back). */
static void settle(struct walls__pool *pool, struct walls__proc *proc, int how, int sigstat)
{
    close_fd(&proc->pidfd);
    close_fd(&proc->notify_fd);
    proc->pid = 0;
    if (pool->arena.locks)
        walls__locks_recover(pool->arena.locks, pool->arena.nlocks, proc->lock_token);
    int code;
    enum walls_status died = death_status(how, sigstat, &code);
    for (unsigned i = 0; i < proc->nlanes; i++)
        settle_lane(pool, proc, &proc->lanes[i], died, code);
    if (proc->staging_fd >= 0)
        fallocate(proc->staging_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  (off_t)pool->arena.size);
}

/* The error a process that died before READY reported. */
static int start_error_of(const struct walls__proc *proc, int how, int sigstat)
{
    if (proc->start_error)
        return proc->start_error;
    const struct walls__mailbox *mb = proc->lanes[0].mb;
    if (walls__load_acquire(&mb->worker_state) == WALLS__WORKER_FAILED && mb->start_error < 0)
        return mb->start_error;
    if (how == CLD_EXITED && sigstat > 0 && sigstat < 126)
        return -sigstat;
    return -ECHILD;
}

/* ---- the actions ------------------------------------------------------------------------ */

typedef state_t action_t(struct walls__pool *pool, struct walls__proc *proc,
                         const struct walls__proc_arg *arg);

static state_t stay(struct walls__pool *pool, struct walls__proc *proc,
                    const struct walls__proc_arg *arg)
{
    (void)pool, (void)arg;
    return proc->state;
}

static state_t start(struct walls__pool *pool, struct walls__proc *proc,
                     const struct walls__proc_arg *arg)
{
    (void)arg;
    return spawn(pool, proc);
}

static state_t timer(struct walls__pool *pool, struct walls__proc *proc,
                     const struct walls__proc_arg *arg)
{
    if (!proc->respawn_at || arg->now < proc->respawn_at || pool->broken)
        return WALLS__PROC_DOWN;
    return spawn(pool, proc);
}

static state_t to_stopped(struct walls__pool *pool, struct walls__proc *proc,
                          const struct walls__proc_arg *arg)
{
    (void)pool, (void)proc, (void)arg;
    return WALLS__PROC_STOPPED;
}

static state_t spawned(struct walls__pool *pool, struct walls__proc *proc,
                       const struct walls__proc_arg *arg)
{
    proc->pidfd = arg->fd;
    return try_ready(pool, proc); /* its doorbell may have rung first */
}

static state_t spawned_stopping(struct walls__pool *pool, struct walls__proc *proc,
                                const struct walls__proc_arg *arg)
{
    (void)pool;
    proc->pidfd = arg->fd;
    signal_proc(proc);
    return WALLS__PROC_STOPPING;
}

static state_t spawn_failed(struct walls__pool *pool, struct walls__proc *proc,
                            const struct walls__proc_arg *arg)
{
    return failed_start(pool, proc, arg->err ? arg->err : -ECHILD);
}

static state_t ready(struct walls__pool *pool, struct walls__proc *proc,
                     const struct walls__proc_arg *arg)
{
    (void)arg;
    return try_ready(pool, proc);
}

static state_t died_starting(struct walls__pool *pool, struct walls__proc *proc,
                             const struct walls__proc_arg *arg)
{
    return failed_start(pool, proc, start_error_of(proc, arg->how, arg->status));
}

/* Whether every lane of the process has finished what it was given. */
static bool idle(const struct walls__proc *proc)
{
    for (unsigned i = 0; i < proc->nlanes; i++)
        if (proc->lanes[i].oldest != proc->lanes[i].rq_tail)
            return false;
    return true;
}

/* Asks each lane's thread to leave its loop once its ring is done. */
static void stop_lanes(struct walls__proc *proc)
{
    for (unsigned i = 0; i < proc->nlanes; i++)
        walls__engine_push_stop(&proc->lanes[i]);
}

static state_t retire_when_idle(struct walls__proc *proc)
{
    if (!idle(proc))
        return WALLS__PROC_DRAINING;
    stop_lanes(proc);
    return WALLS__PROC_RETIRING;
}

/* UP, after its completions were consumed: recycled once it was given its
 * share of tasks, or once its peak memory passed the mark (the worker's
 * word: a liar only escapes recycling, not its limits). */
static state_t harvested(struct walls__pool *pool, struct walls__proc *proc,
                         const struct walls__proc_arg *arg)
{
    (void)arg;
    bool due = pool->recycle_after && proc->quota == 0;
    for (unsigned i = 0; i < proc->nlanes && pool->recycle_rss_kb; i++)
        due |= walls__load_relaxed(&proc->lanes[i].mb->peak_rss_kb) > pool->recycle_rss_kb;
    return due ? retire_when_idle(proc) : WALLS__PROC_UP;
}

static state_t drained(struct walls__pool *pool, struct walls__proc *proc,
                       const struct walls__proc_arg *arg)
{
    (void)pool, (void)arg;
    return retire_when_idle(proc);
}

static state_t kill_for(struct walls__pool *pool, struct walls__proc *proc,
                        const struct walls__proc_arg *arg)
{
    (void)pool;
    struct walls__lane *lane = arg->lane;
    if (lane->kill_reason < 0) {
        lane->kill_reason = (int)arg->reason;
        lane->kill_code = arg->code;
        lane->kill_flags = arg->flags;
        lane->kill_targeted = arg->targeted;
        lane->kill_seq = arg->seq;
    }
    /* A protocol break, whatever reason the lane held before it: a kill
     * the engine asked for (a time limit) comes with the protocol reason
     * as a default only, and is none. */
    if (lane->kill_reason == WALLS_PROTOCOL || lane->broke)
        for (unsigned i = 0; i < proc->nlanes; i++)
            proc->lanes[i].broke = true;
    proc->killed = true;
    signal_proc(proc);
    return proc->state == WALLS__PROC_STOPPING ? WALLS__PROC_STOPPING : WALLS__PROC_KILLING;
}

static state_t died(struct walls__pool *pool, struct walls__proc *proc,
                    const struct walls__proc_arg *arg)
{
    state_t was = proc->state;
    settle(pool, proc, arg->how, arg->status);
    if (was == WALLS__PROC_STOPPING || pool->state == WALLS__POOL_DEAD)
        return WALLS__PROC_STOPPED;
    if (was == WALLS__PROC_RETIRING && arg->how == CLD_EXITED && arg->status == 0 &&
        !walls__procs_of(pool)->stopping) {
        pool->recycled++; /* not a restart */
        return spawn(pool, proc);
    }
    return replace(pool, proc);
}

/* Told to stop: a serving process finishes what its ring holds, then
 * leaves its loop; with cancel, or one that is starting, is killed (one
 * whose pidfd has not come yet is killed when it comes). A process already
 * told to stop (retiring), or dying, needs nothing more. */
static state_t stop(struct walls__pool *pool, struct walls__proc *proc,
                    const struct walls__proc_arg *arg)
{
    (void)pool;
    if (arg->cancel || proc->state == WALLS__PROC_STARTING) {
        signal_proc(proc);
    } else if (proc->state == WALLS__PROC_UP || proc->state == WALLS__PROC_DRAINING) {
        stop_lanes(proc);
    }
    return WALLS__PROC_STOPPING;
}

/* The fork server is gone. Its workers die with it (they hold it as their
 * parent-death target), but not at once: until each is gone it may still
 * write its output or hold a lock, so it is settled only once its pidfd
 * says it exited. */
static state_t lost(struct walls__pool *pool, struct walls__proc *proc,
                    const struct walls__proc_arg *arg)
{
    (void)arg;
    if (proc->pidfd >= 0) {
        signal_proc(proc);
        struct pollfd pfd = {.fd = proc->pidfd, .events = POLLIN};
        while (poll(&pfd, 1, 5000) < 0 && errno == EINTR) {
        }
    }
    if (proc->state == WALLS__PROC_STARTING) {
        proc->start_error = -ECHILD;
        close_fd(&proc->pidfd);
        close_fd(&proc->notify_fd);
    } else {
        settle(pool, proc, CLD_KILLED, SIGKILL);
    }
    return WALLS__PROC_STOPPED;
}

/* ---- the table ------------------------------------------------------------------------- */

#define _ stay
static action_t *const table[WALLS__PROC_NSTATES][WALLS__PROC_NEVENTS] = {
    /*            START  TIMER  SPAWNED           SPAWN_FAILED  READY  HARVESTED  KILL      DIED           STOP        LOST */
    [WALLS__PROC_DOWN] =
        {start, timer, _, _, _, _, _, _, to_stopped, _},
    [WALLS__PROC_STARTING] =
        {_, _, spawned, spawn_failed, ready, _, _, died_starting, stop, lost},
    [WALLS__PROC_UP] =
        {_, _, _, _, _, harvested, kill_for, died, stop, lost},
    [WALLS__PROC_DRAINING] =
        {_, _, _, _, _, drained, kill_for, died, stop, lost},
    [WALLS__PROC_RETIRING] =
        {_, _, _, _, _, _, kill_for, died, stop, lost},
    [WALLS__PROC_KILLING] =
        {_, _, _, _, _, _, kill_for, died, stop, lost},
    [WALLS__PROC_STOPPING] =
        {_, _, spawned_stopping, to_stopped, _, _, kill_for, died, stop, lost},
    [WALLS__PROC_STOPPED] =
        {_, _, _, _, _, _, _, _, _, _},
};
#undef _

/* The lanes follow the process's state. */
static void set_state(struct walls__proc *proc, state_t state)
{
    proc->state = state;
    bool live = state == WALLS__PROC_UP || state == WALLS__PROC_DRAINING ||
                state == WALLS__PROC_RETIRING || state == WALLS__PROC_KILLING ||
                (state == WALLS__PROC_STOPPING && proc->lanes[0].live);
    for (unsigned i = 0; i < proc->nlanes; i++) {
        proc->lanes[i].live = live;
        proc->lanes[i].open = state == WALLS__PROC_UP;
        proc->lanes[i].quota = &proc->quota;
    }
}

void walls__proc_event(struct walls__pool *pool, struct walls__proc *proc,
                       enum walls__proc_event ev, const struct walls__proc_arg *arg)
{
    WALLS__LOCKED(pool);
    static const struct walls__proc_arg none;
    state_t next = table[proc->state][ev](pool, proc, arg ? arg : &none);
    if (next == WALLS__PROC_UP && proc->state != WALLS__PROC_UP && pool->nlanes > 1) {
        /* New workers idle: tasks that queued in other lanes' rings while
         * they started (behind a long task, say) may move to them, as to
         * a lane that ran dry. */
        for (unsigned i = 0; i < proc->nlanes; i++)
            proc->lanes[i].ran_dry = true;
        pool->rebalance = true;
    }
    set_state(proc, next);
}

void walls__procs_attend(struct walls__pool *pool)
{
    unsigned from = 0;
    struct walls__lane *lane;
    while ((lane = walls__engine_take_attention(pool, &from)) != NULL) {
        /* A kill the engine asked for (a time limit) names its reason in
         * the lane already; a protocol break does not. */
        struct walls__proc_arg arg = {.lane = lane, .reason = WALLS_PROTOCOL};
        bool kill = lane->broke || lane->kill_reason >= 0;
        walls__proc_event(pool, lane->backend, kill ? WALLS__EV_KILL : WALLS__EV_HARVESTED, &arg);
    }
}
