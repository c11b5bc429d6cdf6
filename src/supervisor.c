/*
 * supervisor.c - a process pool's supervisor thread: descriptors in,
 * events of the process state machine out.
 *
 * It is a small loop over epoll (signals never reach it: the fork server
 * turns deaths into messages): the pool's socket to the fork server
 * (SPAWNED, EXIT), one doorbell per process (a completion while somebody
 * sleeps, or a process that became ready), each sandboxed process's
 * seccomp listener (a refused call), and a command eventfd (a new deadline
 * or planned start, or the order to leave). After each wake-up it consumes
 * completions, lets processes that ask for it act (recycling, protocol
 * breaks), arms the doorbells for what the host waits on, ends tasks past
 * their time limits and starts processes whose backoff is over.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "atomic.h"
#include "engine.h"
#include "forkserver.h"
#include "futex.h"
#include "internal.h"
#include "proc.h"

static void on_message(struct walls__pool *pool, const struct walls__msg *msg, int fd)
{
    if (msg->worker >= pool->nprocs) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct walls__proc *proc = &walls__procs_of(pool)->procs[msg->worker];
    struct walls__proc_arg arg = {.fd = fd};
    if (msg->type == WALLS__MSG_SPAWNED && !msg->err && fd >= 0) {
        walls__proc_event(pool, proc, WALLS__EV_SPAWNED, &arg);
        return;
    }
    if (fd >= 0)
        close(fd);
    if (msg->type == WALLS__MSG_SPAWNED) {
        arg.err = msg->err ? msg->err : -ECHILD;
        walls__proc_event(pool, proc, WALLS__EV_SPAWN_FAILED, &arg);
    } else if (msg->type == WALLS__MSG_EXIT) {
        arg.how = msg->exit_how;
        arg.status = msg->exit_status;
        walls__proc_event(pool, proc, WALLS__EV_DIED, &arg);
    }
}

/* Reads what the fork server sent. Returns false when its socket says it
 * is gone. */
static bool read_socket(struct walls__pool *pool)
{
    for (;;) {
        struct walls__msg msg;
        int fd = -1, nfds = 1;
        int rc = walls__msg_recv(walls__procs_of(pool)->sock, &msg, &fd, &nfds, false);
        if (rc == -EAGAIN)
            return true;
        /* A new worker's pidfd the program had no descriptor for: that
         * start failed, for that reason; the fork server is still there. */
        if (rc == -EMFILE && msg.type == WALLS__MSG_SPAWNED && !msg.err)
            msg.err = -EMFILE;
        else if (rc < 0)
            return false;
        on_message(pool, &msg, nfds > 0 ? fd : -1);
    }
}

/* The fork server is gone: every process of the pool with it, and nothing
 * can run the rest, or anything submitted later. */
static void server_lost(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    epoll_ctl(ps->epfd, EPOLL_CTL_DEL, ps->sock, NULL);
    for (unsigned i = 0; i < pool->nprocs; i++)
        walls__proc_event(pool, &ps->procs[i], WALLS__EV_LOST, NULL);
    ps->server_lost = true;
    walls__engine_break(pool);
    if (ps->creating && !ps->start_error)
        ps->start_error = -ECHILD;
}

/* The kernel stopped threads of proc in calls its filter refuses: each is
 * a violation of the task that thread runs, and the process goes. The
 * report comes from the kernel, so it is believed; which lane the thread
 * serves is the worker's word (a lie misplaces only its own tasks). */
static void on_refused(struct walls__pool *pool, struct walls__proc *proc)
{
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    if (proc->notify_fd < 0 || seccomp_notify_alloc(&req, &resp) != 0)
        return;
    for (;;) {
        /* Receive only what is there: the call blocks otherwise. */
        struct pollfd p = {.fd = proc->notify_fd, .events = POLLIN};
        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN) ||
            seccomp_notify_receive(proc->notify_fd, req) != 0)
            break;
        struct walls__proc_arg arg = {.lane = &proc->lanes[0], .reason = WALLS_VIOLATION,
                                      .code = (int)req->data.nr};
        for (unsigned i = 0; i < proc->nlanes; i++)
            if (walls__load_relaxed(&proc->lanes[i].mb->tid) == req->pid)
                arg.lane = &proc->lanes[i];
        if (req->data.arch != seccomp_arch_native())
            arg.flags = WALLS_RESULT_FOREIGN_ABI;
#if defined(__x86_64__)
        if (req->data.nr & 0x40000000) /* x32 */
            arg.flags = WALLS_RESULT_FOREIGN_ABI;
#endif
        walls__proc_event(pool, proc, WALLS__EV_KILL, &arg);
    }
    seccomp_notify_free(req, resp);
}

/* Lock held: one round of work after a wake-up. Returns when to look
 * again (INT64_MAX: only when woken). */
static int64_t work(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    walls__engine_harvest_all(pool);
    walls__procs_attend(pool);
    /* A loop watching the pool's descriptor is rung by the workers
     * themselves; this thread hears of completions only for sleepers. */
    unsigned what = walls__load_relaxed(&pool->any_waiters) > 0 ? WALLS__ARM_EVERY : 0u;
    if (walls__load_relaxed(&pool->fd_armed))
        what |= WALLS__ARM_EVENT;
    /* A lane that runs dry says so while tasks wait, in the queue or in
     * another lane's ring (they may move to it): the same test as
     * dispatch's. */
    if (walls__engine_wants_refill(pool))
        what |= WALLS__ARM_REFILL;
    walls__engine_arm(pool, what);
    /* Armed and fenced: completions published before the arming are
     * caught here, later ones ring. */
    if (what & (WALLS__ARM_EVERY | WALLS__ARM_REFILL))
        walls__engine_harvest_all(pool);
    int64_t now = walls__now_ns();
    int64_t next = walls__engine_expire(pool, now);
    walls__procs_attend(pool);
    struct walls__proc_arg tick = {.now = now};
    for (unsigned i = 0; i < pool->nprocs && !ps->server_lost; i++) {
        struct walls__proc *proc = &ps->procs[i];
        walls__proc_event(pool, proc, WALLS__EV_TIMER, &tick);
        if (proc->state == WALLS__PROC_DOWN && proc->respawn_at && proc->respawn_at < next)
            next = proc->respawn_at;
    }
    /* What was dealt since the clock looked (a process came back): a
     * limited task's deadline, or a balancing tick. */
    if (pool->clock_next < next)
        next = pool->clock_next;
    if (pool->balance_at && pool->balance_at < next)
        next = pool->balance_at;
    return next;
}

static void *supervisor_main(void *arg)
{
    struct walls__pool *pool = arg;
    struct walls__procs *ps = walls__procs_of(pool);
    bool lost = false;
    int timeout_ms = -1;
    int64_t spin_until = 0;
    for (;;) {
        struct epoll_event evs[32];
        /* While a replacement starts, poll instead of sleeping: its
         * messages come within a fork's time, and each wake-up from sleep
         * costs as much again. */
        int n = epoll_wait(ps->epfd, evs, 32, lost ? 100 : 0);
        bool idle_turn = false;
        if (n == 0 && !lost && walls__now_ns() >= spin_until) {
            n = epoll_wait(ps->epfd, evs, 32, timeout_ms);
        } else if (n == 0) {
            sched_yield();
            idle_turn = true;
        }
        walls__pool_lock(pool);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == WALLS__TAG_SOCK) {
                if (!lost &&
                    (!read_socket(pool) || (evs[i].events & (EPOLLHUP | EPOLLERR)))) {
                    lost = true;
                    server_lost(pool);
                }
            } else if (tag == WALLS__TAG_CMD) {
                uint64_t v;
                ssize_t rc = read(ps->cmd_fd, &v, sizeof v);
                (void)rc;
            } else if (tag >= WALLS__TAG_NOTIFY && tag - WALLS__TAG_NOTIFY < pool->nprocs) {
                on_refused(pool, &ps->procs[tag - WALLS__TAG_NOTIFY]);
            } else if (tag >= WALLS__TAG_DOORBELL && tag - WALLS__TAG_DOORBELL < pool->nprocs) {
                struct walls__proc *proc = &ps->procs[tag - WALLS__TAG_DOORBELL];
                walls__eventfd_take(proc->doorbell);
                walls__proc_event(pool, proc, WALLS__EV_READY, NULL);
            }
        }
        bool quit = ps->quit;
        int64_t next = work(pool);
        int64_t now = walls__now_ns();
        /* Round up: waking a little late is the lesser evil than spinning.
         * A time already past (this turn ran long: preempted, or slowed by
         * a sanitizer) is a look at once, never a negative timeout, which
         * epoll_wait() takes as "until woken". */
        int64_t left = next - now;
        timeout_ms = next == INT64_MAX ? -1 : left > 0 ? (int)((left + 999999) / 1000000) : 0;
        /* While a replacement starts, with CPUs to spare for it (with
         * fewer, the process that starts, the fork server forking its
         * spare and the waiting thread already want every CPU). */
        if (pool->cpus >= WALLS__RESTART_SPIN_MIN_CPUS)
            for (unsigned i = 0; i < pool->nprocs; i++)
                if (ps->procs[i].state == WALLS__PROC_STARTING)
                    spin_until = now + WALLS__RESTART_SPIN_NS;
        /* Sleepers look again after anything happened (a process came up
         * or went, a deadline passed); a turn of polling that found nothing
         * wakes nobody: they would only take the CPUs a starting process
         * needs. Completions wake them on their own. */
        if (!idle_turn)
            walls__engine_bump(pool);
        walls__pool_unlock(pool);
        walls__engine_signal(pool);
        if (quit)
            return NULL;
    }
}

int walls__supervisor_start(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    int rc = walls__thread_start(&ps->supervisor, supervisor_main, pool);
    ps->supervisor_started = rc == 0;
    return rc;
}

void walls__supervisor_stop(struct walls__pool *pool)
{
    struct walls__procs *ps = walls__procs_of(pool);
    if (!ps->supervisor_started)
        return;
    walls__pool_lock(pool);
    ps->quit = true;
    walls__procs_wake(pool);
    walls__pool_unlock(pool);
    pthread_join(ps->supervisor, NULL);
    ps->supervisor_started = false;
}
