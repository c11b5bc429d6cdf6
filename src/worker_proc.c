/*
 * worker_proc.c - a worker process, from its start to its loop; runs in
 * the worker.
 *
 * It maps its mailbox (one per lane), the arena and the locks from the
 * descriptors the fork server handed it, applies its sandbox (the limits,
 * and the filter built and loaded in sandbox_worker.c), starts one thread
 * per extra lane, says it is ready, and runs the loop (worker_loop.c) on
 * each lane. Task functions are located by (module, offset): the main
 * program's, or a shared library's, loaded with dlopen() when the host
 * loaded it after the fork server started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "module.h"
#include "sandbox.h"
#include "worker.h"

static struct walls__mailbox *lane_mb[WALLS__MAX_LANES];

struct module_slot {
    char *path;
    uintptr_t base;
    bool resolved;
    unsigned char build_id[WALLS__BUILD_ID_MAX]; /* the host's (build_id_len 0: unknown) */
    size_t build_id_len;
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

int walls__module_define(void *ctx, uint16_t module, const char *path, const unsigned char *id,
                         size_t id_len)
{
    struct proc_ctx *pc = ctx;
    if (module >= WALLS__MAX_MODULES || id_len > WALLS__BUILD_ID_MAX)
        return -EINVAL;
    struct module_slot *slot = &pc->modules[module];
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    free(slot->path);
    slot->path = copy;
    slot->resolved = false;
    if (id_len)
        memcpy(slot->build_id, id, id_len);
    slot->build_id_len = id_len;
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
        unsigned char id[WALLS__BUILD_ID_MAX];
        size_t id_len = 0;
        int rc = walls__module_find(slot->path, &slot->base, slot->build_id,
                                    slot->build_id_len, id, &id_len);
        /* Another build than the host's under that path (the file was
         * replaced after the host loaded it): its code at the host's
         * offsets is not the function asked for. */
        if (rc == 0 && slot->build_id_len &&
            (id_len != slot->build_id_len || memcmp(id, slot->build_id, id_len) != 0))
            rc = -ESTALE;
        if (rc) {
            *err = rc;
            return NULL;
        }
        slot->resolved = true;
    }
    return (walls_fn *)(slot->base + (uintptr_t)offset);
}

/* The seccomp listener's number while this worker still holds it: -1
 * once closed (or when it has none). */
static int own_listener = -1;

static walls_fn *proc_resolve(void *ctx, uint16_t module, uint64_t offset, int *err)
{
    /* A task is dealt only to a worker the host counts as started, which
     * it does once it holds its own copy of the listener: ours goes before
     * the first task runs, so that no task holds a descriptor of the
     * sandbox's machinery. */
    if (walls__load_acquire(&own_listener) >= 0) {
        int fd = __atomic_exchange_n(&own_listener, -1, __ATOMIC_ACQ_REL);
        if (fd >= 0)
            close(fd);
    }
    return walls__module_resolve(ctx, module, offset, err);
}

/* The two I/O memfds (struct walls__io): large inputs, which this process
 * may only read, and outputs. Kept open for the worker's life, right after
 * the doorbell. Each is mapped whole at the start (sparse, and reserving
 * nothing), before the memory limit is taken: the windows are the
 * library's, and a task's worker_memory_limit is for the task alone. */
static int io_in_fd = -1, io_out_fd = -1;

struct io_space {
    unsigned char *p; /* NULL: not mapped whole; each window is mapped for its task */
    uint64_t size;
};
static struct io_space io_in, io_out;

static void map_io_space(struct io_space *space, int fd, int prot)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0)
        return;
    void *p = mmap(NULL, (size_t)st.st_size, prot, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (p != MAP_FAILED)
        *space = (struct io_space){p, (uint64_t)st.st_size};
}

static void *proc_io_map(void *ctx, uint64_t at, uint64_t len, bool out, int *err)
{
    (void)ctx;
    const struct io_space *space = out ? &io_out : &io_in;
    if (at % WALLS__PAGE || len == 0) {
        *err = -EPROTO;
        return NULL;
    }
    if (space->p) {
        if (at > space->size || len > space->size - at) {
            *err = -EPROTO;
            return NULL;
        }
        return space->p + at;
    }
    int prot = out ? PROT_READ | PROT_WRITE : PROT_READ;
    void *p = mmap(NULL, (size_t)len, prot, MAP_SHARED, out ? io_out_fd : io_in_fd, (off_t)at);
    if (p == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    return p;
}

static void proc_io_unmap(void *ctx, void *p, uint64_t len)
{
    (void)ctx;
    unsigned char *c = p;
    if ((io_in.p && c >= io_in.p && c < io_in.p + io_in.size) ||
        (io_out.p && c >= io_out.p && c < io_out.p + io_out.size))
        return; /* part of a whole mapping */
    munmap(p, (size_t)len);
}

/* The pool's eventfd, which a loop watches: kept open for the worker's
 * life after the two I/O memfds. Never read here (under SECCOMP and STRICT
 * the filter refuses it): reading would swallow other workers' rings. */
static int bell_fd = -1;

static void proc_published(void *ctx, bool more, uint32_t slot)
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
    /* A task completion the loop counted in bell_begun: ring for it when
     * a loop watches the descriptor, and count it rung either way. */
    uint32_t begun = walls__load_relaxed(&pc->mb->bell_begun);
    if (begun != walls__load_relaxed(&pc->mb->bell_done)) {
        /* Once rung, not again until the host has looked at this lane's
         * completions (it clears bell_rung, fences, then looks): a burst
         * of completions the host has not reached yet rings once. */
        if (walls__load_relaxed(&pc->mb->event_armed) &&
            __atomic_exchange_n(&pc->mb->bell_rung, 1u, __ATOMIC_SEQ_CST) == 0) {
            uint64_t one = 1;
            ssize_t rc = write(bell_fd, &one, sizeof one);
            (void)rc;
        }
        /* Release: the ring happened before the host sees it counted. */
        walls__store_release(&pc->mb->bell_done, begun);
    }
    uint8_t want = walls__load_relaxed(&pc->mb->ring_want[slot]);
    if (want & WALLS__WANT_WAKE)
        walls__futex_wake(&pc->mb->cq.tail, INT_MAX, true);
    if (walls__load_relaxed(&pc->mb->doorbell_armed) || (want & WALLS__WANT_BELL) ||
        (!more && walls__load_relaxed(&pc->mb->refill_armed))) {
        uint64_t one = 1;
        ssize_t rc = write(pc->doorbell, &one, sizeof one);
        (void)rc;
    }
}

/* ---- hybrid processes: one thread per lane ------------------------------ */

static struct walls__mailbox *lane0;
static struct walls__arena_view proc_arena;
static bool proc_has_arena;
static uint32_t lanes_running; /* lane threads past their start-up */

static void *lane_main(void *arg)
{
    unsigned lane = (unsigned)(uintptr_t)arg;
    struct proc_ctx *pc = lane_ctx(lane);
    walls__faults_become_lane(lane);
    /* Past glibc's start-up of this thread (set_robust_list, rseq, with
     * every signal blocked): the filter may load now. */
    walls__fetch_add(&lanes_running, 1);
    walls__futex_wake(&lanes_running, 1, false);
    struct walls__worker_hooks hooks = {
        .resolve = proc_resolve,
        .define_module = walls__module_define,
        .published = proc_published,
        .io_map = proc_io_map,
        .io_unmap = proc_io_unmap,
        .thread_ended = walls__faults_thread_ended,
        .ctx = pc,
        .arena = proc_has_arena ? &proc_arena : NULL,
    };
    walls__worker_loop(pc->mb, &hooks, true);
    walls__faults_leave_lane();
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
    /* Everything but the mailbox (already mapped and closed), the doorbell
     * and the two I/O memfds and the bell after it, standard streams
     * included. */
    for (int fd = 0; fd < 3; fd++)
        if (fd < doorbell_fd || fd > doorbell_fd + 3)
            close(fd);
    close_range(doorbell_fd + 4, ~0U, 0);
    return 0;
}

/* This process's address space in bytes (VmSize), or 0 if /proc cannot
 * be read: the limit is then absolute, as RLIMIT_AS itself is. */
static uint64_t address_space_size(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    uint64_t pages = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (uint64_t)(buf[i] - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
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
    uint64_t shared = lane0->shared_size;
    int want = (size ? 1 : 0) + (mode == WALLS__ARENA_STAGED ? 1 : 0) + (nlocks ? 1 : 0) +
               (shared ? 1 : 0);
    if (want != extra || (size && mode != WALLS__ARENA_DIRECT && mode != WALLS__ARENA_STAGED) ||
        (!size && mode) || size % WALLS__PAGE || size > WALLS_ARENA_MAX ||
        nlocks > WALLS_LOCKS_MAX || shared % WALLS__PAGE || shared > WALLS_SHARED_MAX)
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
    if (shared) {
        /* Read-write under every sandbox level: the pool asked for workers
         * that share it (walls_pool_shared). Mapped now, before any
         * filter, and the descriptor closed below. */
        void *map = map_fd(fd++, shared, PROT_READ | PROT_WRITE);
        if (map == MAP_FAILED)
            return errno ? errno : EPROTO;
        proc_arena.shared = map;
        proc_arena.shared_size = shared;
    }
    for (int i = first; i < first + extra; i++)
        close(i);
    walls__locks_set_token(lane0->lock_token);
    proc_has_arena = size || nlocks || shared;
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
    for (unsigned i = 0; i < lanes; i++) {
        struct proc_ctx *pc = lane_ctx(i);
        if (!pc)
            return ENOMEM;
        pc->mb = (struct walls__mailbox *)((char *)map + (size_t)i * WALLS__MAILBOX_SIZE);
        pc->doorbell = doorbell_fd;
        lane_mb[i] = pc->mb;
    }
    pthread_t threads[WALLS__MAX_LANES];
    if (extra < 3)
        return start_failed(EPROTO);
    io_in_fd = doorbell_fd + 1;
    io_out_fd = doorbell_fd + 2;
    bell_fd = doorbell_fd + 3;
    int err = map_arena(doorbell_fd + 4, extra - 3);
    if (err)
        return start_failed(err);
    map_io_space(&io_in, io_in_fd, PROT_READ);
    map_io_space(&io_out, io_out_fd, PROT_READ | PROT_WRITE);
    if (lane0->as_limit) {
        /* The limit is what tasks may add to the address space the worker
         * starts with: its program, what it inherited from the fork server
         * (forked from a host with thread stacks and malloc arenas, that
         * can be hundreds of megabytes of reservations), the mailbox, the
         * arena, the shared region and the I/O spaces. */
        uint64_t base = address_space_size();
        uint64_t limit = lane0->as_limit;
        walls__as_limit = base > UINT64_MAX - limit ? UINT64_MAX : base + limit;
        struct rlimit as = {walls__as_limit, walls__as_limit};
        if (setrlimit(RLIMIT_AS, &as) != 0)
            return errno > 0 && errno < 120 ? errno : EINVAL;
    }
    /* The filter is built now, while this process has one thread, and
     * loaded once its threads exist. */
    void *filter = NULL;
    bool strict = lane0->sandbox == WALLS_SANDBOX_STRICT;
    if (lane0->sandbox == WALLS_SANDBOX_SECCOMP || strict) {
        struct walls__sandbox_conf conf = *walls__sandbox_conf_of(lane0);
        filter = walls__sandbox_build(strict ? conf.allow : 0, doorbell_fd + 3, &err);
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
    walls__faults_watch(lane_mb, lanes);
    walls__faults_become_lane(0);
    /* Detached: the stop waits for them through the ids the kernel clears
     * (walls__faults_join_lanes), never with pthread_join(). */
    pthread_attr_t detached;
    err = pthread_attr_init(&detached);
    if (err)
        return start_failed(err);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (unsigned i = 1; i < lanes && !err; i++)
        err = pthread_create(&threads[i], &detached, lane_main, (void *)(uintptr_t)i);
    pthread_attr_destroy(&detached);
    if (err)
        return start_failed(err);
    /* The filter must not reach a thread still inside glibc's start-up: a
     * call it refuses there, with every signal blocked, could not be told
     * from the worker's own. */
    for (uint32_t n; (n = walls__load_acquire(&lanes_running)) < lanes - 1;)
        walls__futex_wait(&lanes_running, n, -1, false);
    err = walls__faults_watch_lanes();
    if (err)
        return start_failed(err);
    /* After the lane threads exist: RLIMIT_NPROC counts threads too. */
    if (lane0->sandbox == WALLS_SANDBOX_LIMITS || lane0->sandbox == WALLS_SANDBOX_SECCOMP ||
        strict) {
        err = enter_limits(doorbell_fd);
        int listener = -1;
        if (err == 0 && filter) {
            err = walls__sandbox_load(filter, &listener);
            filter = NULL;
            /* Building the filter took a few hundred KiB of heap, which
             * would stay in every sandboxed worker. */
            malloc_trim(0);
        }
        if (err)
            return start_failed(err);
        /* The host takes its own copy of the listener before it calls us
         * started; ours is closed before the first task (proc_resolve). */
        lane0->notify_fd = listener;
        /* Atomic: the lanes already run, and what orders this before
         * their first task (READY, the host, the task) passes through
         * another process, where a race detector cannot follow. */
        walls__store_release(&own_listener, listener);
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
        .io_map = proc_io_map,
        .io_unmap = proc_io_unmap,
        .thread_ended = walls__faults_thread_ended,
        .ctx = lane_ctx(0),
        .arena = proc_has_arena ? &proc_arena : NULL,
    };
    walls__worker_loop(lane0, &hooks, true);
    walls__faults_leave_lane();
    walls__faults_join_lanes();
    return 0;
}
