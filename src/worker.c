/*
 * worker.c - the consumer side of a mailbox, shared by thread and process
 * workers.
 *
 * The loop takes requests in ring order, runs each task with its input read
 * in place from the request slot and its output written in place into the
 * next completion slot, then hands the request slot back and publishes the
 * completion. The host never has more requests outstanding than the
 * completion ring holds, so publishing never waits.
 *
 * A process worker also lives here: it maps its mailbox, says it is ready,
 * and locates task functions by (module, offset), loading a module with
 * dlopen() when the host loaded it after the fork server started.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "sandbox.h"
#include "arena.h"

#define MASK (WALLS__RING_SLOTS - 1)

static uint32_t wait_for_request(struct walls__mailbox *mb, uint32_t head, bool shared)
{
    /* Acquire: the slot contents are visible once the tail is. */
    uint32_t tail = walls__load_acquire(&mb->rq.tail);
    if (tail != head)
        return tail;
    int64_t until = walls__now_ns() + WALLS__WORKER_SPIN_NS;
    do {
        for (int i = 0; i < 64; i++) {
            walls__cpu_relax();
            tail = walls__load_acquire(&mb->rq.tail);
            if (tail != head)
                return tail;
        }
        /* With more runnable threads than CPUs, let the producer run. */
        sched_yield();
    } while (walls__now_ns() < until);
    for (;;) {
        /* Seq-cst add: the host reads this count after its full fence, so
         * either it sees us counted or we see its new tail below. */
        walls__fetch_add(&mb->rq.tail_waiters, 1);
        tail = walls__load_acquire(&mb->rq.tail);
        if (tail == head)
            walls__futex_wait(&mb->rq.tail, head, -1, shared);
        walls__fetch_add(&mb->rq.tail_waiters, (uint32_t)-1);
        tail = walls__load_acquire(&mb->rq.tail);
        if (tail != head)
            return tail;
    }
}

/* Points the call at its arena buffers, whose references end the request's
 * data; in DIRECT mode makes its output writable (*window). Returns 0 or
 * -errno: the host wrote something it never writes. */
static int arena_call(const struct walls__arena_view *av, const struct walls__req *req,
                      struct walls_call *call, struct walls_span *spans, unsigned char **window,
                      size_t *window_len)
{
    unsigned n = req->n_inputs, refs = n + (req->has_output ? 1u : 0u);
    size_t room = (size_t)refs * sizeof(struct walls__bufref);
    if (!av || !av->base || n > WALLS_TASK_INPUTS_MAX || req->has_output > 1 ||
        room + req->in_len > WALLS__SLOT_DATA)
        return -EPROTO;
    struct walls__bufref ref[WALLS_TASK_INPUTS_MAX + 1];
    memcpy(ref, req->data + WALLS__SLOT_DATA - room, room);
    for (unsigned i = 0; i < refs; i++)
        if (ref[i].offset % WALLS__PAGE || ref[i].offset > av->size ||
            ref[i].len > av->size - ref[i].offset)
            return -EPROTO;
    for (unsigned i = 0; i < n; i++)
        spans[i] = (struct walls_span){av->base + ref[i].offset, ref[i].len};
    call->inputs = n ? spans : NULL;
    call->n_inputs = n;
    if (req->has_output) {
        uint64_t off = ref[n].offset, len = ref[n].len;
        if (av->staging) {
            call->output = av->staging + off;
        } else {
            call->output = av->base + off;
            if (av->windows) {
                size_t span = (len + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
                if (mprotect(av->base + off, span, PROT_READ | PROT_WRITE) != 0)
                    return -errno;
                *window = av->base + off;
                *window_len = span;
            }
        }
        call->output_len = len;
    }
    return 0;
}

static void run_task(struct walls__mailbox *mb, struct walls__req *req, struct walls__cqe *cqe,
                     const struct walls__worker_hooks *hooks)
{
    uint32_t expected = WALLS__SLOT_QUEUED;
    if (!walls__cas(&req->state, &expected, WALLS__SLOT_RUNNING)) {
        cqe->kind = WALLS__CQE_ACK; /* cancelled by the host before it started */
        return;
    }
    int err = 0;
    walls_fn *fn = hooks->resolve(hooks->ctx, req->module, req->offset, &err);
    /* When the clock of a time limit starts; the host bounds this claim by
     * what it saw itself. */
    if (walls__load_relaxed(&mb->report_start)) {
        walls__store_relaxed(&mb->current_start_ns, (uint64_t)walls__now_ns());
        walls__store_release(&mb->current_seq, req->seq);
    }
    if (!fn) {
        cqe->kind = WALLS__CQE_NOFN;
        cqe->code = err;
        return;
    }
    uint32_t in_len = req->in_len < WALLS__SLOT_DATA ? req->in_len : WALLS__SLOT_DATA;
    uint32_t out_cap = req->out_cap < WALLS__SLOT_DATA ? req->out_cap : WALLS__SLOT_DATA;
    struct walls_call call = {
        .in = req->data, .in_len = in_len, .out = cqe->data, .out_cap = out_cap, .out_len = 0};
    struct walls_span spans[WALLS_TASK_INPUTS_MAX];
    unsigned char *window = NULL;
    size_t window_len = 0;
    const struct walls__arena_view *av = hooks->arena;
    if (av) {
        call.locks = av->locks;
        call.n_locks = av->nlocks;
    }
    if (req->n_inputs || req->has_output) {
        err = arena_call(av, req, &call, spans, &window, &window_len);
        if (err) {
            cqe->kind = WALLS__CQE_NOFN;
            cqe->code = err;
            return;
        }
    }
    int rc = fn(&call);
    if (window && mprotect(window, window_len, PROT_READ) != 0)
        abort(); /* the output would stay writable for the next task */
    cqe->kind = WALLS__CQE_DONE;
    if (call.out_len > out_cap) {
        /* The task broke its side of the contract, not this loop: say so,
         * and keep the worker. */
        cqe->status = WALLS_PROTOCOL;
        cqe->code = 0;
        cqe->out_len = 0;
        return;
    }
    cqe->status = rc == 0 ? WALLS_OK : WALLS_FAILED;
    cqe->code = rc;
    cqe->out_len = (uint32_t)call.out_len;
}

void walls__worker_loop(struct walls__mailbox *mb, const struct walls__worker_hooks *hooks,
                        bool shared)
{
    uint32_t head = walls__load_relaxed(&mb->rq.head);
    uint32_t ctail = walls__load_relaxed(&mb->cq.tail);
    for (;;) {
        uint32_t tail = wait_for_request(mb, head, shared);
        while (head != tail) {
            struct walls__req *req = &mb->rq_slots[head & MASK];
            struct walls__cqe *cqe = &mb->cq_slots[ctail & MASK];
            bool stop = false;
            cqe->seq = req->seq;
            cqe->tag = req->tag;
            cqe->status = 0;
            cqe->code = 0;
            cqe->out_len = 0;
            switch (req->kind) {
            case WALLS__REQ_TASK:
                run_task(mb, req, cqe, hooks);
                break;
            case WALLS__REQ_MODULE: {
                char path[WALLS__SLOT_DATA];
                uint32_t n = req->in_len < WALLS__SLOT_DATA ? req->in_len : WALLS__SLOT_DATA - 1;
                memcpy(path, req->data, n);
                path[n] = '\0';
                cqe->kind = WALLS__CQE_ACK;
                cqe->code = hooks->define_module ? hooks->define_module(hooks->ctx, req->module, path)
                                                 : 0;
                break;
            }
            case WALLS__REQ_STOP:
            default:
                cqe->kind = WALLS__CQE_ACK;
                stop = true;
                break;
            }
            head++;
            ctail++;
            /* Release: the task is done with the request slot before the
             * host may refill it, and the completion's bytes are written
             * before the host can see the new tail. */
            walls__store_release(&mb->rq.head, head);
            walls__store_release(&mb->cq.tail, ctail);
            hooks->published(hooks->ctx, head != tail);
            if (stop)
                return;
        }
    }
}

/* ---- process workers ---------------------------------------------------- */

struct module_slot {
    char *path;
    uintptr_t base;
    bool resolved;
};

struct proc_ctx {
    struct walls__mailbox *mb;
    int doorbell;
    struct module_slot modules[WALLS__MAX_MODULES];
};

/* One context per lane, made on first use (a process worker has one). */
static struct proc_ctx *lane_ctx(unsigned lane)
{
    static struct proc_ctx *ctx[WALLS__MAX_LANES];
    if (lane >= WALLS__MAX_LANES)
        return NULL;
    if (!ctx[lane])
        ctx[lane] = calloc(1, sizeof *ctx[lane]);
    return ctx[lane];
}

static int main_program_base(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    /* The first object reported is the main program. */
    *(uintptr_t *)data = (uintptr_t)info->dlpi_addr;
    return 1;
}

int walls__module_define(void *ctx, uint16_t module, const char *path)
{
    struct proc_ctx *pc = ctx;
    if (module >= WALLS__MAX_MODULES)
        return -EINVAL;
    struct module_slot *slot = &pc->modules[module];
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    free(slot->path);
    slot->path = copy;
    slot->resolved = false;
    return 0;
}

walls_fn *walls__module_resolve(void *ctx, uint16_t module, uint64_t offset, int *err)
{
    struct proc_ctx *pc = ctx;
    if (module >= WALLS__MAX_MODULES || !pc->modules[module].path) {
        *err = -ENOENT;
        return NULL;
    }
    struct module_slot *slot = &pc->modules[module];
    if (!slot->resolved) {
        if (slot->path[0] == '\0') {
            dl_iterate_phdr(main_program_base, &slot->base);
        } else {
            void *handle = dlopen(slot->path, RTLD_NOW | RTLD_NOLOAD);
            if (!handle)
                handle = dlopen(slot->path, RTLD_NOW | RTLD_LOCAL);
            struct link_map *lm = NULL;
            if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
                *err = -ENOENT;
                return NULL;
            }
            slot->base = (uintptr_t)lm->l_addr; /* the handle stays open */
        }
        slot->resolved = true;
    }
    return (walls_fn *)(slot->base + (uintptr_t)offset);
}

static walls_fn *proc_resolve(void *ctx, uint16_t module, uint64_t offset, int *err)
{
    return walls__module_resolve(ctx, module, offset, err);
}

static void proc_published(void *ctx, bool more)
{
    struct proc_ctx *pc = ctx;
    if (walls__load_relaxed(&pc->mb->rss_wanted)) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            walls__store_relaxed(&pc->mb->peak_rss_kb, (uint64_t)ru.ru_maxrss);
    }
    /* Full fence: the completion tail is stored before we look at the
     * host's flags; the host stores a flag before it looks at our tail. */
    walls__fence();
    if (walls__load_relaxed(&pc->mb->doorbell_armed) ||
        (!more && walls__load_relaxed(&pc->mb->refill_armed))) {
        uint64_t one = 1;
        ssize_t rc = write(pc->doorbell, &one, sizeof one);
        (void)rc;
    }
}

/* ---- faults --------------------------------------------------------------
 *
 * A process worker catches the fault signals of its own threads, so that
 * each thread can say in its own lane's mailbox what it died of before the
 * process goes: the host then gives every task the cause its own thread
 * recorded (and LOST to tasks whose threads recorded nothing).
 *
 * In a process with several lanes, two threads may fault at about the same
 * moment. The first one into the handler leads the death: it stops every
 * other lane with a freeze signal and waits (a bounded time) until each has
 * either recorded a fault of its own or parked, and only then dies of its
 * signal. A thread whose fault is pending runs its fault handler before
 * the freeze handler (the kernel delivers synchronous faults, and lower
 * signal numbers, first), so a fault that happened is never lost to a
 * neighbour's quicker death. Everything here is async-signal-safe.
 */

static struct walls__mailbox *lane0;
static struct walls__mailbox *lane_mb[WALLS__MAX_LANES];
static pid_t lane_tid[WALLS__MAX_LANES]; /* set by each lane thread at its start */
static unsigned nlanes;
static pid_t self_pid;
static int freeze_signal;
static uint32_t dying;       /* 1 once a thread leads the process's death */
static uint64_t parked;      /* bit per lane: stopped, or recorded its own fault */
static __thread unsigned my_lane; /* 1 + this thread's lane; 0 for other threads */

/* How long the leader waits for the other lanes: a lane with every signal
 * blocked never answers. */
#define FREEZE_WAIT_NS 250000000

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};

/* AddressSanitizer calls its no-return hook before each call of a
 * _Noreturn function; on the alternate signal stack that hook reads
 * /proc/self/maps, which the sandbox refuses. The handlers that end in
 * park() or die_of() are left uninstrumented. */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ASAN_HOOK __attribute__((no_sanitize("address")))
#else
#define NO_ASAN_HOOK
#endif

/* Whether the address space is within a megabyte of its limit: read with
 * raw system calls, since this runs in a signal handler. */
static bool near_memory_limit(void)
{
    uint64_t limit = lane0->as_limit;
    if (!limit || lane0->sandbox == WALLS_SANDBOX_SECCOMP ||
        lane0->sandbox == WALLS_SANDBOX_STRICT) /* no open() allowed there */
        return false;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[64];
    long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return false;
    uint64_t pages = 0;
    for (long i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (uint64_t)(buf[i] - '0');
    return pages * 4096 + (1u << 20) >= limit;
}

static _Noreturn void park(void)
{
    for (;;)
        walls__futex_wait(&dying, 1, -1, false);
}

/* The leader: freeze every other lane, and wait until each is parked. */
static void stop_other_lanes(void)
{
    uint64_t want = 0;
    for (unsigned i = 0; i < nlanes; i++) {
        pid_t tid = walls__load_relaxed(&lane_tid[i]);
        if (i + 1 == my_lane || tid == 0)
            continue;
        want |= (uint64_t)1 << i;
        syscall(SYS_tgkill, self_pid, tid, freeze_signal);
    }
    int64_t until = walls__now_ns() + FREEZE_WAIT_NS;
    struct timespec nap = {0, 20000};
    while ((walls__load_acquire(&parked) & want) != want && walls__now_ns() < until)
        nanosleep(&nap, NULL);
}

static _Noreturn void die_of(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    /* Not reached: the signal's default action ends the process. */
    syscall(SYS_exit_group, 128 + sig);
    __builtin_unreachable();
}

NO_ASAN_HOOK static void on_fault(int sig)
{
    unsigned lane = my_lane;
    if (lane) {
        struct walls__mailbox *mb = lane_mb[lane - 1];
        if (near_memory_limit())
            walls__store_relaxed(&mb->memory_hit, 1u);
        /* Release: the host reads the record once the process is gone. */
        walls__store_release(&mb->fault_sig, (uint32_t)sig);
    }
    if (nlanes > 1) {
        uint32_t none = 0;
        if (!walls__cas(&dying, &none, 1u)) {
            /* Another thread leads the death: report in, and wait for it. */
            if (lane)
                walls__fetch_or(&parked, (uint64_t)1 << (lane - 1));
            park();
        }
        stop_other_lanes();
    }
    die_of(sig);
}

NO_ASAN_HOOK static void on_freeze(int sig)
{
    (void)sig;
    if (!walls__load_acquire(&dying))
        return; /* not ours: nobody is dying */
    if (my_lane)
        walls__fetch_or(&parked, (uint64_t)1 << (my_lane - 1));
    park();
}

static void on_exit_call(int status, void *arg)
{
    (void)arg;
    if (!my_lane)
        return;
    struct walls__mailbox *mb = lane_mb[my_lane - 1];
    walls__store_relaxed(&mb->exit_code, status);
    walls__store_release(&mb->exited, 1u);
}

/* A stack overflow must still reach on_fault(). Mapped, not allocated: it
 * lives as long as its thread, which lives as long as the process. */
static void use_alt_stack(void)
{
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return;
    stack_t alt = {.ss_sp = stack, .ss_size = size};
    sigaltstack(&alt, NULL);
}

/* This thread serves lane (0-based) from now on. */
static void become_lane(unsigned lane)
{
    my_lane = lane + 1;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    walls__store_relaxed(&lane_tid[lane], tid);
    walls__store_relaxed(&lane_mb[lane]->tid, (uint32_t)tid);
    use_alt_stack();
}

static void watch_faults(void)
{
    self_pid = getpid();
    freeze_signal = SIGRTMIN;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    /* No SA_RESETHAND: a second thread's fault of the same kind must reach
     * the handler too. The leader restores the default itself. */
    sa.sa_flags = SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++)
        sigaction(fault_signals[i], &sa, NULL);
    sa.sa_handler = on_freeze;
    sa.sa_flags = SA_ONSTACK;
    sigaction(freeze_signal, &sa, NULL);
    on_exit(on_exit_call, NULL);
}

/* ---- hybrid processes: one thread per lane ------------------------------ */

static struct walls__arena_view proc_arena;
static bool proc_has_arena;
static uint32_t lanes_running; /* lane threads past their start-up */

static void *lane_main(void *arg)
{
    unsigned lane = (unsigned)(uintptr_t)arg;
    struct proc_ctx *pc = lane_ctx(lane);
    become_lane(lane);
    /* Past glibc's start-up of this thread (set_robust_list, rseq, with
     * every signal blocked): the filter may load now. */
    walls__fetch_add(&lanes_running, 1);
    walls__futex_wake(&lanes_running, 1, false);
    struct walls__worker_hooks hooks = {
        .resolve = proc_resolve,
        .define_module = walls__module_define,
        .published = proc_published,
        .ctx = pc,
        .arena = proc_has_arena ? &proc_arena : NULL,
    };
    walls__worker_loop(pc->mb, &hooks, true);
    return NULL;
}

/* The LIMITS sandbox: what a worker may no longer do. Returns 0 or an
 * errno to exit with (the host reports it as the start error). */
static int enter_limits(int doorbell_fd)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return errno;
    static const struct {
        int resource;
        rlim_t value;
    } limits[] = {
        {RLIMIT_CORE, 0}, {RLIMIT_FSIZE, 0}, {RLIMIT_NOFILE, 32}, {RLIMIT_NPROC, 0},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit rl = {limits[i].value, limits[i].value};
        if (setrlimit(limits[i].resource, &rl) != 0)
            return errno;
    }
    /* Everything but the mailbox (already mapped and closed) and the
     * doorbell, standard streams included. */
    for (int fd = 0; fd < 3; fd++)
        if (fd != doorbell_fd)
            close(fd);
    close_range(doorbell_fd + 1, ~0U, 0);
    return 0;
}

static void *map_fd(int fd, size_t size, int prot)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != size)
        return MAP_FAILED;
    return mmap(NULL, size, prot, MAP_SHARED | MAP_NORESERVE, fd, 0);
}

/* Maps the arena and locks from the descriptors after the doorbell, then
 * closes them: the mappings are all the worker keeps. Returns 0 or an errno. */
static int map_arena(int first, int extra)
{
    uint64_t size = lane0->arena_size;
    uint32_t mode = lane0->arena_mode, nlocks = lane0->nlocks;
    int want = (size ? 1 : 0) + (mode == WALLS__ARENA_STAGED ? 1 : 0) + (nlocks ? 1 : 0);
    if (want != extra || (size && mode != WALLS__ARENA_DIRECT && mode != WALLS__ARENA_STAGED) ||
        (!size && mode) || size % WALLS__PAGE || size > WALLS_ARENA_MAX ||
        nlocks > WALLS_LOCKS_MAX)
        return EPROTO;
    int fd = first;
    if (size) {
        /* DIRECT: mapped read-only from a writable descriptor, so that an
         * output can be made writable for its call. STAGED: the
         * descriptor is read-only, and so is every mapping made from it. */
        void *map = map_fd(fd++, size, PROT_READ);
        if (map == MAP_FAILED)
            return errno ? errno : EPROTO;
        proc_arena.base = map;
        proc_arena.size = size;
        proc_arena.windows = mode == WALLS__ARENA_DIRECT;
        if (mode == WALLS__ARENA_STAGED) {
            map = map_fd(fd++, size, PROT_READ | PROT_WRITE);
            if (map == MAP_FAILED)
                return errno ? errno : EPROTO;
            proc_arena.staging = map;
        }
    }
    if (nlocks) {
        size_t bytes = ((size_t)nlocks * sizeof(walls_lock) + WALLS__PAGE - 1) &
                       ~(size_t)(WALLS__PAGE - 1);
        void *map = map_fd(fd++, bytes, PROT_READ | PROT_WRITE);
        if (map == MAP_FAILED)
            return errno ? errno : EPROTO;
        proc_arena.locks = map;
        proc_arena.nlocks = nlocks;
    }
    for (int i = first; i < first + extra; i++)
        close(i);
    walls__locks_set_token(lane0->lock_token);
    proc_has_arena = size || nlocks;
    return 0;
}

/* Says why this worker cannot serve, where the host looks before READY,
 * and gives the errno to exit with. */
static int start_failed(int err)
{
    lane0->start_error = -err;
    walls__store_release(&lane0->worker_state, WALLS__WORKER_FAILED);
    return err;
}

int walls__worker_process_main(int mailbox_fd, int doorbell_fd, int extra)
{
    struct stat st;
    if (fstat(mailbox_fd, &st) != 0)
        return errno > 0 && errno < 120 ? errno : EIO;
    size_t size = (size_t)st.st_size;
    if (size < WALLS__MAILBOX_SIZE || size % WALLS__MAILBOX_SIZE ||
        size / WALLS__MAILBOX_SIZE > WALLS__MAX_LANES)
        return EPROTO;
    unsigned lanes = (unsigned)(size / WALLS__MAILBOX_SIZE);
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mailbox_fd, 0);
    if (map == MAP_FAILED)
        return errno > 0 && errno < 120 ? errno : EIO;
    close(mailbox_fd);
    lane0 = map;
    if (lane0->magic != WALLS__MAILBOX_MAGIC || lane0->version != WALLS__MAILBOX_VERSION ||
        lane0->lanes != lanes)
        return EPROTO;
    nlanes = lanes;
    for (unsigned i = 0; i < lanes; i++) {
        struct proc_ctx *pc = lane_ctx(i);
        if (!pc)
            return ENOMEM;
        pc->mb = (struct walls__mailbox *)((char *)map + (size_t)i * WALLS__MAILBOX_SIZE);
        pc->doorbell = doorbell_fd;
        lane_mb[i] = pc->mb;
    }
    pthread_t threads[WALLS__MAX_LANES];
    int err = map_arena(doorbell_fd + 1, extra);
    if (err)
        return start_failed(err);
    if (lane0->as_limit) {
        struct rlimit as = {lane0->as_limit, lane0->as_limit};
        if (setrlimit(RLIMIT_AS, &as) != 0)
            return errno > 0 && errno < 120 ? errno : EINVAL;
    }
    /* The filter is built now, while this process has one thread, and
     * loaded once its threads exist. */
    void *filter = NULL;
    bool strict = lane0->sandbox == WALLS_SANDBOX_STRICT;
    if (lane0->sandbox == WALLS_SANDBOX_SECCOMP || strict) {
        struct walls__sandbox_conf conf = *walls__sandbox_conf_of(lane0);
        filter = walls__sandbox_build(strict ? conf.allow : 0, &err);
        /* Namespaces, privileges and Landlock need a single thread too. */
        if (filter && strict)
            err = walls__sandbox_enter_strict(&conf);
        if (!filter || err) {
            if (filter)
                walls__sandbox_release(filter);
            return start_failed(err);
        }
    }
    /* Always catch faults: besides naming the thread, a handled fault
     * spares the kernel's report of an unhandled one, which on a slow
     * console costs more than a fork. */
    watch_faults();
    become_lane(0);
    for (unsigned i = 1; i < lanes; i++) {
        err = pthread_create(&threads[i], NULL, lane_main, (void *)(uintptr_t)i);
        if (err)
            return start_failed(err);
    }
    /* The filter must not reach a thread still inside glibc's start-up: a
     * call it refuses there, with every signal blocked, could not be told
     * from the worker's own. */
    for (uint32_t n; (n = walls__load_acquire(&lanes_running)) < lanes - 1;)
        walls__futex_wait(&lanes_running, n, -1, false);
    /* After the lane threads exist: RLIMIT_NPROC counts threads too. */
    if (lane0->sandbox == WALLS_SANDBOX_LIMITS || lane0->sandbox == WALLS_SANDBOX_SECCOMP ||
        strict) {
        err = enter_limits(doorbell_fd);
        int listener = -1;
        if (err == 0 && filter) {
            err = walls__sandbox_load(filter, &listener);
            filter = NULL;
        }
        if (err)
            return start_failed(err);
        /* The host takes its own copy of the listener before it calls us
         * started; ours stays open (tasks cannot use it: ioctl is refused). */
        lane0->notify_fd = listener;
    }
    lane0->worker_pid = (uint32_t)getpid();
    /* Release: the host sees our pid and listener before it sees READY. */
    walls__store_release(&lane0->worker_state, WALLS__WORKER_READY);
    uint64_t one = 1;
    ssize_t rc = write(doorbell_fd, &one, sizeof one);
    (void)rc;
    struct walls__worker_hooks hooks = {
        .resolve = proc_resolve,
        .define_module = walls__module_define,
        .published = proc_published,
        .ctx = lane_ctx(0),
        .arena = proc_has_arena ? &proc_arena : NULL,
    };
    walls__worker_loop(lane0, &hooks, true);
    for (unsigned i = 1; i < lanes; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
