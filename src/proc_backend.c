/*
 * proc_backend.c - the host side of process workers: mailboxes, the
 * supervisor thread, deaths and replacements.
 *
 * Each worker process gets a memfd holding one mailbox per thread it runs
 * (its lanes: one in process placement, several in hybrid placement) and
 * an eventfd doorbell, made once and reused by every replacement. The fork server forks the workers and reaps
 * them; the pool talks to it over its own socket, so the fork server kills
 * the pool's workers the moment that socket closes, however the host went
 * away.
 *
 * The supervisor is a small loop over epoll: the pool socket (spawned,
 * exited), one doorbell per process (a completion while somebody sleeps, or
 * a process that became ready), and a command eventfd. A death is settled
 * from the host's own records, lane by lane: the task each lane was running
 * ends with the cause of death (or as LOST, when another lane's task caused
 * it), tasks not taken go back to the front of the queue, and the process
 * is replaced.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "sandbox.h"

#define MASK (WALLS__RING_SLOTS - 1)

/* epoll tags: one per descriptor kind, plus the process's index. */
enum { EV_SOCK = 1, EV_CMD = 2, EV_DOORBELL = 16,
       EV_NOTIFY = EV_DOORBELL + WALLS__MAX_PROCESSES };

static int pidfd_kill(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static int epoll_add(int epfd, int fd, uint64_t what)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = what};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void kill_proc(struct walls__proc *proc)
{
    proc->killed = true;
    if (proc->pidfd >= 0)
        pidfd_kill(proc->pidfd, SIGKILL);
}

void walls__procs_kill(struct walls__worker *w, enum walls_status reason, bool targeted,
                       uint32_t seq)
{
    if (w->kill_reason < 0) {
        w->kill_reason = (int)reason;
        w->kill_targeted = targeted;
        w->kill_seq = seq;
    }
    if (reason == WALLS_PROTOCOL)
        for (unsigned i = 0; i < w->proc->nlanes; i++)
            w->proc->lanes[i].broke = true;
    kill_proc(w->proc);
}

/* The object (main program or shared object) whose loaded segments hold
 * an address, as dl_iterate_phdr() reports it. */
struct object_search {
    uintptr_t addr;
    bool first;        /* the next object reported is the first one */
    bool found;
    bool too_long;     /* its name does not fit in path */
    uintptr_t base;    /* its load bias: segment addresses are base + p_vaddr */
    char path[PATH_MAX]; /* "" for the main program */
};

static int find_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct object_search *s = data;
    /* The first object reported is the main program, in dynamic and static
     * programs alike; the worker side names it "" too. */
    bool main_program = s->first;
    s->first = false;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)info->dlpi_addr + (uintptr_t)ph->p_vaddr;
        if (ph->p_type != PT_LOAD || s->addr < start || s->addr - start >= ph->p_memsz)
            continue;
        const char *name = main_program || !info->dlpi_name ? "" : info->dlpi_name;
        size_t len = strlen(name);
        s->found = true;
        s->base = (uintptr_t)info->dlpi_addr;
        s->too_long = len >= sizeof s->path;
        if (!s->too_long)
            memcpy(s->path, name, len + 1);
        return 1;
    }
    return 0;
}

/*
 * Which module fn lives in, and where in it. Pool lock held.
 *
 * The module is found by walking the loaded objects' segments, not with
 * dladdr(), which knows nothing of the main program of a static
 * executable; dl_iterate_phdr() reports it there as well.
 */
int walls__procs_locate(struct walls__pool *pool, walls_fn *fn, uint16_t *module,
                        uint64_t *offset)
{
    unsigned slot = (unsigned)(((uintptr_t)fn >> 4) & 63u);
    struct walls__fn_cache *c = &pool->fn_cache[slot];
    if (c->fn == fn) {
        *module = c->module;
        *offset = c->offset;
        return 0;
    }
    struct object_search search = {.addr = (uintptr_t)fn, .first = true};
    dl_iterate_phdr(find_object, &search);
    if (!search.found)
        return -ENOENT;
    if (search.too_long)
        return -ENAMETOOLONG;
    char resolved[PATH_MAX];
    const char *path = search.path;
    if (path[0] && realpath(path, resolved))
        path = resolved;
    if (strlen(path) >= WALLS__SLOT_DATA)
        return -ENAMETOOLONG;
    unsigned m;
    for (m = 0; m < pool->nmodules; m++)
        if (strcmp(pool->modules[m].path, path) == 0)
            break;
    if (m == pool->nmodules) {
        if (m == WALLS__MAX_MODULES)
            return -ENOMEM;
        char *copy = strdup(path);
        if (!copy)
            return -ENOMEM;
        pool->modules[m].path = copy;
        pool->nmodules++;
    }
    c->fn = fn;
    c->module = (uint16_t)m;
    c->offset = (uint64_t)((uintptr_t)fn - search.base);
    *module = c->module;
    *offset = c->offset;
    return 0;
}

static void set_state(struct walls__proc *proc, int state)
{
    proc->state = state;
    for (unsigned i = 0; i < proc->nlanes; i++)
        proc->lanes[i].state = state;
}

static int spawn(struct walls__pool *pool, struct walls__proc *proc)
{
    for (unsigned i = 0; i < proc->nlanes; i++) {
        struct walls__worker *w = &proc->lanes[i];
        walls__ring_reset(w);
        walls__store_relaxed(&w->mb->doorbell_armed, pool->doorbells_armed ? 1u : 0u);
        walls__store_relaxed(&w->mb->refill_armed, pool->refill_armed ? 1u : 0u);
    }
    proc->lanes[0].mb->lanes = proc->nlanes;
    proc->lanes[0].mb->as_limit = pool->memory_limit;
    proc->lanes[0].mb->sandbox = pool->sandbox;
    /* Rewritten for every worker: the last one may have scribbled on it. */
    *walls__sandbox_conf_of(proc->lanes[0].mb) = *pool->sandbox_conf;
    proc->lanes[0].mb->arena_size = pool->arena.base ? pool->arena.size : 0;
    proc->lanes[0].mb->arena_mode = (uint32_t)walls__arena_mode_of(pool);
    proc->lanes[0].mb->nlocks = pool->arena.nlocks;
    proc->lock_token = pool->next_token++;
    if (pool->next_token > INT32_MAX) /* tokens fill 31 bits of a lock word */
        pool->next_token = 2;
    proc->lanes[0].mb->lock_token = proc->lock_token;
    for (unsigned i = 0; i < proc->nlanes; i++)
        proc->lanes[i].mb->rss_wanted = pool->recycle_rss_kb != 0;
    walls__fence(); /* as in walls__pool_arm() */
    proc->killed = false;
    proc->start_error = 0;
    proc->recycling = false;
    proc->stop_sent = false;
    proc->tasks_given = 0;
    set_state(proc, WALLS__W_STARTING);
    struct walls__msg msg = {.type = WALLS__MSG_SPAWN, .worker = proc->index};
    int fds[WALLS__MSG_MAX_FDS] = {proc->memfd, proc->doorbell};
    int nfds = 2;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_DIRECT)
        fds[nfds++] = pool->arena.fd;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_STAGED) {
        fds[nfds++] = pool->arena.ro_fd;
        fds[nfds++] = proc->staging_fd;
    }
    if (pool->arena.locks)
        fds[nfds++] = pool->arena.lock_fd;
    int rc = walls__msg_send(pool->sock, &msg, fds, nfds);
    /* A closed socket means the fork server is gone. */
    return rc == -EPIPE || rc == -ECONNRESET ? -ECHILD : rc;
}

/* Counts a restart; true if it is one too many for the window. */
static bool restart_trips(struct walls__pool *pool, int64_t now, unsigned *recent)
{
    unsigned size = pool->restart_limit + 1;
    pool->restart_times[pool->restart_next] = now;
    pool->restart_next = (pool->restart_next + 1) % size;
    pool->restart_count++;
    *recent = 0;
    for (unsigned i = 0; i < size && i < pool->restart_count; i++)
        if (now - pool->restart_times[i] <= pool->restart_window_ns)
            (*recent)++;
    return *recent > pool->restart_limit;
}

/* A process is gone: replace it, unless the pool restarts too often, in
 * which case it breaks. Pool lock held. */
static void replace(struct walls__pool *pool, struct walls__proc *proc)
{
    proc->respawn_at = 0;
    if (pool->stopping) {
        set_state(proc, WALLS__W_STOPPED);
        return;
    }
    set_state(proc, WALLS__W_DOWN);
    if (pool->broken)
        return;
    int64_t now = walls__now_ns();
    unsigned recent;
    if (restart_trips(pool, now, &recent)) {
        walls__pool_break(pool);
        return;
    }
    pool->restarts++;
    int64_t delay = 0;
    if (pool->restart_backoff_ns) {
        delay = pool->restart_backoff_ns;
        for (unsigned i = 1; i < recent && delay < pool->restart_window_ns; i++)
            delay *= 2;
        if (delay > pool->restart_window_ns)
            delay = pool->restart_window_ns;
    }
    if (delay > 0 || spawn(pool, proc) != 0) {
        set_state(proc, WALLS__W_DOWN);
        proc->respawn_at = now + (delay > 0 ? delay : 100000000);
    }
}

void walls__procs_harvested(struct walls__pool *pool, struct walls__worker *w)
{
    struct walls__proc *proc = w->proc;
    if (proc->state != WALLS__W_UP)
        return;
    if (!proc->recycling) {
        /* Given its share (retiring() gives it no more): once the lanes are
         * idle, whatever became of those tasks, it goes. */
        bool due = pool->recycle_after && proc->tasks_given >= pool->recycle_after;
        /* The worker's word: a liar only escapes recycling, not its limits. */
        due |= pool->recycle_rss_kb &&
               walls__load_relaxed(&w->mb->peak_rss_kb) > pool->recycle_rss_kb;
        if (!due)
            return;
        proc->recycling = true; /* no more tasks for it */
    }
    for (unsigned i = 0; i < proc->nlanes; i++)
        if (proc->lanes[i].oldest != proc->lanes[i].rq_tail)
            return; /* still finishing what it was given */
    if (!proc->stop_sent) {
        proc->stop_sent = true;
        for (unsigned i = 0; i < proc->nlanes; i++)
            walls__ring_push_stop(&proc->lanes[i]);
    }
}

bool walls__procs_reset(struct walls__pool *pool)
{
    bool wake = false;
    int64_t now = walls__now_ns();
    for (unsigned i = 0; i < pool->nprocs; i++)
        if (pool->procs[i].state == WALLS__W_DOWN) {
            pool->procs[i].respawn_at = now;
            wake = true;
        }
    return wake;
}

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

/* What lane w's thread recorded of its own end (a fault or exit()), as a
 * status; WALLS_LOST when it recorded nothing. These are the worker's
 * words: a lie misplaces only the tasks of the liar's own process. */
static enum walls_status lane_record(const struct walls__worker *w, int *code)
{
    int sig = (int)walls__load_acquire(&w->mb->fault_sig);
    if (is_fault_signal(sig)) {
        *code = sig;
        return WALLS_CRASHED;
    }
    if (walls__load_acquire(&w->mb->exited)) {
        *code = walls__load_relaxed(&w->mb->exit_code) & 0xff;
        return WALLS_EXITED;
    }
    *code = 0;
    return WALLS_LOST;
}

/* How the task in request seq of lane w ends, given how its process
 * died. */
static enum walls_status lane_status(struct walls__proc *proc, struct walls__worker *w,
                                     uint32_t seq, enum walls_status died, int *code)
{
    if (w->kill_reason >= 0 && (!w->kill_targeted || w->kill_seq == seq)) {
        *code = w->kill_code;
        return (enum walls_status)w->kill_reason;
    }
    if (proc->killed) { /* for another lane's task */
        *code = 0;
        return WALLS_LOST;
    }
    if (proc->nlanes == 1 || died == WALLS_KILLED)
        return died;
    /* Each thread of a hybrid process records its own fault or exit(): a
     * task whose thread recorded nothing did not cause the death, unless
     * no thread did (a thread the task started, or _exit()): then every
     * running task shares the cause. */
    enum walls_status own = lane_record(w, code);
    if (own != WALLS_LOST)
        return own;
    for (unsigned i = 0; i < proc->nlanes; i++) {
        int ignored;
        if (lane_record(&proc->lanes[i], &ignored) != WALLS_LOST)
            return WALLS_LOST;
    }
    return died;
}

/* One lane of a dead process: finish or requeue what it held. */
static void settle_lane(struct walls__pool *pool, struct walls__proc *proc,
                        struct walls__worker *w, enum walls_status died, int died_code)
{
    walls__pool_harvest(pool, w);
    bool memory = walls__load_relaxed(&w->mb->memory_hit) != 0;
    /* A lane takes requests in ring order, one at a time: the first task
     * it had not finished is the one it died in (unless it never took
     * it). The slot states are the worker's word and count only for the
     * tasks behind that one: untaken ones run elsewhere. */
    struct walls__task *requeue[WALLS__RING_SLOTS];
    unsigned nrequeue = 0;
    bool first = true;
    for (uint32_t s = w->oldest; s != w->rq_tail; s++) {
        struct walls__inflight *e = &w->inflight[s & MASK];
        if (e->retired || e->kind != WALLS__REQ_TASK || !e->task)
            continue;
        uint32_t st = walls__load_relaxed(&w->mb->rq_slots[s & MASK].state);
        bool victim = st != WALLS__SLOT_QUEUED || (first && w->broke);
        first = false;
        struct walls__task *task = e->task;
        e->task = NULL;
        if (!victim) {
            requeue[nrequeue++] = task;
            continue;
        }
        int code = died_code;
        enum walls_status status = lane_status(proc, w, s, died, &code);
        task->attempts++;
        if (status == WALLS_LOST && task->attempts <= pool->lost_retries) {
            requeue[nrequeue++] = task;
        } else {
            if (memory && status != WALLS_LOST)
                task->result_flags |= WALLS_RESULT_MEMORY;
            if (w->kill_reason >= 0 && status == (enum walls_status)w->kill_reason)
                task->result_flags |= w->kill_flags;
            walls__pool_complete(pool, task, status, code, NULL, 0);
        }
    }
    while (nrequeue > 0)
        walls__pool_requeue_front(pool, requeue[--nrequeue]);
}

/* A process is gone. Pool lock held. */
static void settle_death(struct walls__pool *pool, struct walls__proc *proc, int how,
                         int sigstat)
{
    close_fd(&proc->pidfd);
    close_fd(&proc->notify_fd);
    proc->pid = 0;
    if (proc->state == WALLS__W_STARTING) {
        /* Died before it was ready: a start-up failure, ours (the host
         * could not take its listener) or the one it reported. */
        struct walls__mailbox *mb = proc->lanes[0].mb;
        int err = proc->start_error ? proc->start_error : -ECHILD;
        if (!proc->start_error &&
            walls__load_acquire(&mb->worker_state) == WALLS__WORKER_FAILED && mb->start_error < 0)
            err = mb->start_error;
        else if (!proc->start_error && how == CLD_EXITED && sigstat > 0 && sigstat < 126)
            err = -sigstat;
        proc->start_error = err;
        set_state(proc, WALLS__W_DOWN);
        if (pool->creating && !pool->start_error)
            pool->start_error = err;
        else if (!pool->creating && pool->state != WALLS__POOL_DEAD)
            replace(pool, proc); /* a replacement that could not start */
        return;
    }
    /* What it held is free again. */
    if (pool->arena.locks)
        walls__locks_recover(pool->arena.locks, pool->arena.nlocks, proc->lock_token);
    int code;
    enum walls_status died = death_status(how, sigstat, &code);
    for (unsigned i = 0; i < proc->nlanes; i++)
        settle_lane(pool, proc, &proc->lanes[i], died, code);
    /* Only now (its lanes' finished tasks were copied back above) is what
     * it staged dropped. */
    if (proc->staging_fd >= 0)
        fallocate(proc->staging_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  (off_t)pool->arena.size);
    if (proc->state == WALLS__W_STOPPING || pool->state == WALLS__POOL_DEAD) {
        set_state(proc, WALLS__W_STOPPED);
        return;
    }
    if (proc->recycling && proc->stop_sent && how == CLD_EXITED && sigstat == 0 &&
        !pool->stopping) {
        pool->recycled++;
        if (spawn(pool, proc) != 0) {
            set_state(proc, WALLS__W_DOWN);
            proc->respawn_at = walls__now_ns() + 100000000;
        }
        return;
    }
    replace(pool, proc);
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
    int rc = epoll_add(pool->epfd, fd, EV_NOTIFY + proc->index);
    if (rc) {
        close(fd);
        return rc;
    }
    proc->notify_fd = fd;
    return 0;
}

/* A starting process serves once it said it is ready and we hold its
 * pidfd (without it, it could not be killed), and, sandboxed, its
 * listener (without it, a refused call would wait for ever). The first
 * two arrive in either order. */
static void mark_ready(struct walls__pool *pool, struct walls__proc *proc)
{
    if (proc->state != WALLS__W_STARTING || proc->pidfd < 0 ||
        walls__load_acquire(&proc->lanes[0].mb->worker_state) != WALLS__WORKER_READY)
        return;
    if (pool->sandbox == WALLS_SANDBOX_SECCOMP || pool->sandbox == WALLS_SANDBOX_STRICT) {
        int rc = take_listener(pool, proc);
        if (rc) {
            /* It dies still STARTING: a start-up failure with this cause. */
            proc->start_error = rc;
            kill_proc(proc);
            return;
        }
    }
    set_state(proc, WALLS__W_UP);
    if (pool->creating && pool->starting > 0)
        pool->starting--;
    walls__fetch_add(&pool->done_seq, 1);
}

/* The kernel stopped threads of proc in calls its filter refuses: each is
 * a violation of the task that thread runs, and the process goes. The
 * report comes from the kernel, so it is believed; which lane the thread
 * serves is the worker's word (a lie misplaces only its own tasks). */
static void on_refused(struct walls__pool *pool, struct walls__proc *proc)
{
    (void)pool;
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
        struct walls__worker *w = &proc->lanes[0];
        for (unsigned i = 0; i < proc->nlanes; i++)
            if (walls__load_relaxed(&proc->lanes[i].mb->tid) == req->pid)
                w = &proc->lanes[i];
        if (w->kill_reason < 0) {
            w->kill_reason = WALLS_VIOLATION;
            w->kill_targeted = false;
            w->kill_code = req->data.nr;
            w->kill_flags = req->data.arch != seccomp_arch_native() ? WALLS_RESULT_FOREIGN_ABI : 0;
#if defined(__x86_64__)
            if (req->data.nr & 0x40000000) /* x32 */
                w->kill_flags = WALLS_RESULT_FOREIGN_ABI;
#endif
        }
        kill_proc(proc);
    }
    seccomp_notify_free(req, resp);
}

static void on_message(struct walls__pool *pool, const struct walls__msg *msg, int fd)
{
    if (msg->worker >= pool->nprocs) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct walls__proc *proc = &pool->procs[msg->worker];
    if (msg->type == WALLS__MSG_SPAWNED) {
        if (msg->err || fd < 0) {
            if (fd >= 0)
                close(fd);
            set_state(proc, WALLS__W_DOWN);
            proc->start_error = msg->err ? msg->err : -ECHILD;
            if (pool->creating && !pool->start_error)
                pool->start_error = proc->start_error;
            else if (!pool->creating && pool->state != WALLS__POOL_DEAD)
                replace(pool, proc);
            return;
        }
        proc->pidfd = fd;
        proc->pid = msg->pid;
        if (proc->state == WALLS__W_STOPPING)
            kill_proc(proc);
        else
            mark_ready(pool, proc); /* its doorbell may have rung first */
    } else if (msg->type == WALLS__MSG_EXIT) {
        if (fd >= 0)
            close(fd);
        settle_death(pool, proc, msg->exit_how, msg->exit_status);
    } else if (fd >= 0) {
        close(fd);
    }
}

/* The fork server is gone: its workers died with it (they hold it as
 * parent-death target). Pool lock held. */
static void fork_server_lost(struct walls__pool *pool)
{
    for (unsigned i = 0; i < pool->nprocs; i++) {
        struct walls__proc *proc = &pool->procs[i];
        if (proc->state == WALLS__W_STOPPED || proc->state == WALLS__W_DOWN)
            continue;
        if (proc->state != WALLS__W_STARTING)
            set_state(proc, WALLS__W_STOPPING);
        /* It dies with the fork server, but not at once: until it is gone
         * it may still write its output or hold a lock, so its buffers and
         * locks are settled only once its pidfd says it exited. */
        if (proc->pidfd >= 0) {
            pidfd_kill(proc->pidfd, SIGKILL);
            struct pollfd pfd = {.fd = proc->pidfd, .events = POLLIN};
            while (poll(&pfd, 1, 5000) < 0 && errno == EINTR) {
            }
        }
        settle_death(pool, proc, CLD_KILLED, SIGKILL);
        set_state(proc, WALLS__W_STOPPED);
    }
    /* Nothing can run the rest, or anything submitted later. */
    pool->fs_lost = true;
    walls__pool_break(pool);
    if (pool->creating && !pool->start_error)
        pool->start_error = -ECHILD;
}

static void read_socket(struct walls__pool *pool, bool *lost)
{
    for (;;) {
        struct walls__msg msg;
        int fd = -1, nfds = 1;
        int rc = walls__msg_recv(pool->sock, &msg, &fd, &nfds, false);
        if (rc == -EAGAIN)
            return;
        if (rc < 0) {
            *lost = true;
            return;
        }
        on_message(pool, &msg, nfds > 0 ? fd : -1);
    }
}

static bool all_stopped(struct walls__pool *pool)
{
    for (unsigned i = 0; i < pool->nprocs; i++)
        if (pool->procs[i].state != WALLS__W_STOPPED && pool->procs[i].state != WALLS__W_DOWN)
            return false;
    return true;
}

static void *supervisor_main(void *arg)
{
    struct walls__pool *pool = arg;
    bool lost = false;
    int timeout_ms = -1;
    int64_t spin_until = 0;
    for (;;) {
        struct epoll_event evs[32];
        /* While a replacement starts, poll instead of sleeping: its
         * messages come within a fork's time, and each wake-up from sleep
         * costs as much again. */
        int n = epoll_wait(pool->epfd, evs, 32, lost ? 100 : 0);
        if (n == 0 && !lost && walls__now_ns() >= spin_until)
            n = epoll_wait(pool->epfd, evs, 32, timeout_ms);
        else if (n == 0)
            sched_yield();
        pthread_mutex_lock(&pool->lock);
        bool quit = false;
        for (int i = 0; i < n; i++) {
            uint64_t what = evs[i].data.u64;
            if (what == EV_SOCK) {
                if (!lost) {
                    read_socket(pool, &lost);
                    if (!lost && (evs[i].events & (EPOLLHUP | EPOLLERR)))
                        lost = true;
                    if (lost) {
                        epoll_ctl(pool->epfd, EPOLL_CTL_DEL, pool->sock, NULL);
                        fork_server_lost(pool);
                    }
                }
            } else if (what == EV_CMD) {
                uint64_t v;
                ssize_t rc = read(pool->cmd_fd, &v, sizeof v);
                (void)rc;
                if (pool->state == WALLS__POOL_DEAD)
                    quit = true;
            } else if (what >= EV_NOTIFY && what - EV_NOTIFY < pool->nprocs) {
                on_refused(pool, &pool->procs[what - EV_NOTIFY]);
            } else if (what >= EV_DOORBELL && what - EV_DOORBELL < pool->nprocs) {
                struct walls__proc *proc = &pool->procs[what - EV_DOORBELL];
                uint64_t v;
                ssize_t rc = read(proc->doorbell, &v, sizeof v);
                (void)rc;
                mark_ready(pool, proc);
            }
        }
        walls__pool_harvest_all(pool);
        bool every = walls__load_relaxed(&pool->done_waiters) > 0 ||
                     walls__load_relaxed(&pool->fd_armed);
        bool refill = pool->npending > 0;
        walls__pool_arm(pool, every, refill);
        if (every || refill) {
            /* Armed and fenced: completions published before the arming are
             * caught here, later ones ring. */
            walls__pool_harvest_all(pool);
        }
        int64_t now = walls__now_ns();
        int64_t next = walls__pool_check_deadlines(pool, now);
        for (unsigned i = 0; i < pool->nprocs && !lost; i++) {
            struct walls__proc *proc = &pool->procs[i];
            if (proc->state != WALLS__W_DOWN || !proc->respawn_at ||
                pool->state == WALLS__POOL_DEAD || pool->broken || pool->stopping)
                continue;
            if (now >= proc->respawn_at) {
                proc->respawn_at = 0;
                if (spawn(pool, proc) != 0) {
                    set_state(proc, WALLS__W_DOWN);
                    proc->respawn_at = now + 100000000;
                }
            }
            if (proc->respawn_at && proc->respawn_at < next)
                next = proc->respawn_at;
        }
        /* Round up: waking a little late is the lesser evil than spinning. */
        timeout_ms = next == INT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
        for (unsigned i = 0; i < pool->nprocs; i++)
            if (pool->procs[i].state == WALLS__W_STARTING)
                spin_until = now + WALLS__RESTART_SPIN_NS;
        walls__fetch_add(&pool->done_seq, 1);
        pthread_mutex_unlock(&pool->lock);
        walls__pool_signal(pool);
        if (quit)
            return NULL;
    }
}

static int make_mailboxes(struct walls__proc *proc)
{
    size_t size = (size_t)proc->nlanes * WALLS__MAILBOX_SIZE;
    proc->memfd = memfd_create("walls-mailbox", MFD_CLOEXEC);
    if (proc->memfd < 0)
        return -errno;
    if (ftruncate(proc->memfd, (off_t)size) != 0)
        return -errno;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, proc->memfd, 0);
    if (map == MAP_FAILED)
        return -errno;
    proc->map = map;
    memset(map, 0, size); /* touch every page now, not per task */
    for (unsigned i = 0; i < proc->nlanes; i++) {
        struct walls__worker *w = &proc->lanes[i];
        w->mb = (struct walls__mailbox *)((char *)map + (size_t)i * WALLS__MAILBOX_SIZE);
        walls__ring_reset(w);
    }
    proc->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (proc->doorbell < 0)
        return -errno;
    if (walls__arena_mode_of(proc->lanes[0].pool) == WALLS__ARENA_STAGED) {
        size_t bytes = proc->lanes[0].pool->arena.size;
        proc->staging_fd = memfd_create("walls-staging", MFD_CLOEXEC);
        if (proc->staging_fd < 0 || ftruncate(proc->staging_fd, (off_t)bytes) != 0)
            return -errno;
    }
    return 0;
}

static void close_all(struct walls__pool *pool)
{
    for (unsigned i = 0; i < pool->nprocs; i++) {
        struct walls__proc *proc = &pool->procs[i];
        if (proc->map)
            munmap(proc->map, (size_t)proc->nlanes * WALLS__MAILBOX_SIZE);
        proc->map = NULL;
        for (unsigned k = 0; k < proc->nlanes; k++)
            proc->lanes[k].mb = NULL;
        close_fd(&proc->staging_fd);
        close_fd(&proc->memfd);
        close_fd(&proc->doorbell);
        close_fd(&proc->pidfd);
        close_fd(&proc->notify_fd);
    }
    close_fd(&pool->sock);
    close_fd(&pool->epfd);
    close_fd(&pool->cmd_fd);
    free(pool->procs);
    pool->procs = NULL;
    pool->nprocs = 0;
}

/* Wait on done_seq until cond holds, up to timeout_ns (-1: forever).
 * Returns whether it held. */
static bool wait_until(struct walls__pool *pool, bool (*cond)(struct walls__pool *),
                       int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : walls__now_ns() + timeout_ns;
    for (;;) {
        uint32_t seq = walls__load_acquire(&pool->done_seq);
        pthread_mutex_lock(&pool->lock);
        bool ok = cond(pool);
        pthread_mutex_unlock(&pool->lock);
        if (ok)
            return true;
        int64_t left = deadline - walls__now_ns();
        if (left <= 0)
            return false;
        walls__fetch_add(&pool->done_waiters, 1);
        walls__futex_wait(&pool->done_seq, seq, left > 50000000 ? 50000000 : left, false);
        walls__fetch_add(&pool->done_waiters, (uint32_t)-1);
    }
}

static bool started(struct walls__pool *pool)
{
    return pool->starting == 0 || pool->start_error != 0;
}

int walls__procs_start(struct walls__pool *pool)
{
    unsigned per = pool->lanes_per;
    pool->nprocs = pool->nworkers / per;
    pool->procs = calloc(pool->nprocs, sizeof *pool->procs);
    if (!pool->procs)
        return -ENOMEM;
    for (unsigned i = 0; i < pool->nprocs; i++) {
        struct walls__proc *proc = &pool->procs[i];
        proc->index = i;
        proc->lanes = &pool->workers[i * per];
        proc->nlanes = per;
        proc->memfd = proc->doorbell = proc->pidfd = proc->staging_fd = proc->notify_fd = -1;
        for (unsigned k = 0; k < per; k++)
            proc->lanes[k].proc = proc;
    }
    int rc = walls__forkserver_acquire(false);
    if (rc) {
        free(pool->procs);
        pool->procs = NULL;
        return rc;
    }
    rc = walls__forkserver_open_pool(&pool->sock);
    if (rc)
        goto fail;
    if (walls__arena_mode_of(pool) == WALLS__ARENA_STAGED) {
        /* A read-only open of the arena: mappings made from it can never
         * be made writable. */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", pool->arena.fd);
        pool->arena.ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (pool->arena.ro_fd < 0) {
            rc = -errno;
            goto fail;
        }
    }
    pool->epfd = epoll_create1(EPOLL_CLOEXEC);
    pool->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pool->epfd < 0 || pool->cmd_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = epoll_add(pool->epfd, pool->sock, EV_SOCK)) ||
        (rc = epoll_add(pool->epfd, pool->cmd_fd, EV_CMD)))
        goto fail;
    for (unsigned i = 0; i < pool->nprocs; i++) {
        struct walls__proc *proc = &pool->procs[i];
        if ((rc = make_mailboxes(proc)) ||
            (rc = epoll_add(pool->epfd, proc->doorbell, EV_DOORBELL + i)))
            goto fail;
    }
    pool->creating = true;
    pool->starting = pool->nprocs;
    pthread_mutex_lock(&pool->lock);
    for (unsigned i = 0; i < pool->nprocs && !rc; i++)
        rc = spawn(pool, &pool->procs[i]);
    pthread_mutex_unlock(&pool->lock);
    if (rc)
        pool->start_error = rc;
    sigset_t old;
    walls__block_async_signals(&old);
    int err = pthread_create(&pool->supervisor, NULL, supervisor_main, pool);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        rc = -err;
        pthread_mutex_lock(&pool->lock);
        for (unsigned i = 0; i < pool->nprocs; i++)
            set_state(&pool->procs[i], WALLS__W_STOPPED);
        pthread_mutex_unlock(&pool->lock);
        goto fail; /* closing the socket makes the fork server kill them */
    }
    pool->supervisor_started = true;
    wait_until(pool, started, -1);
    pthread_mutex_lock(&pool->lock);
    pool->creating = false;
    rc = pool->start_error;
    pthread_mutex_unlock(&pool->lock);
    if (rc) {
        walls__procs_stop(pool, true);
        return rc;
    }
    return 0;
fail:
    close_all(pool);
    walls__forkserver_release(false);
    return rc;
}

void walls__procs_stop(struct walls__pool *pool, bool cancel)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    for (unsigned i = 0; i < pool->nprocs; i++) {
        struct walls__proc *proc = &pool->procs[i];
        if (proc->state == WALLS__W_DOWN) {
            set_state(proc, WALLS__W_STOPPED);
        } else if (proc->state == WALLS__W_UP && !cancel) {
            set_state(proc, WALLS__W_STOPPING);
            for (unsigned k = 0; k < proc->nlanes; k++)
                walls__ring_push_stop(&proc->lanes[k]);
        } else if (proc->state == WALLS__W_UP || proc->state == WALLS__W_STARTING) {
            set_state(proc, WALLS__W_STOPPING);
            kill_proc(proc);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    /* Workers that ignore STOP for two seconds are killed. */
    if (!wait_until(pool, all_stopped, 2000000000)) {
        pthread_mutex_lock(&pool->lock);
        for (unsigned i = 0; i < pool->nprocs; i++)
            kill_proc(&pool->procs[i]);
        pthread_mutex_unlock(&pool->lock);
        wait_until(pool, all_stopped, 5000000000);
    }
    pthread_mutex_lock(&pool->lock);
    pool->state = WALLS__POOL_DEAD;
    pthread_mutex_unlock(&pool->lock);
    if (pool->supervisor_started) {
        uint64_t one = 1;
        ssize_t rc = write(pool->cmd_fd, &one, sizeof one);
        (void)rc;
        pthread_join(pool->supervisor, NULL);
        pool->supervisor_started = false;
    }
    close_all(pool);
    walls__forkserver_release(false);
}
