/*
 * walls.h - one task API over threads, processes, or both.
 *
 * A pool runs task functions (walls_fn) on workers. The placement decides
 * where the workers live: threads of this program (fast, no isolation) or
 * worker processes (a crash, an exit() or a kill fails only the task that
 * caused it). The same task function runs unchanged in every placement.
 *
 * Conventions, for every call below:
 *  - A call that can fail returns 0 or a negative errno from the closed set
 *    listed with it. errno is never used to report.
 *  - Objects come back through out-parameters. An all-zero options struct,
 *    or NULL, means all defaults. Unknown flags and non-zero reserved fields
 *    give -EINVAL.
 *  - walls_pool_destroy(NULL) and walls_task_free(NULL) do nothing.
 *  - Timeouts are relative milliseconds: -1 waits forever, 0 polls.
 *  - Handles are checked: a handle that was destroyed or freed is detected
 *    and refused with -EBADF (or ignored by the *_free calls), never
 *    dereferenced as freed memory.
 *  - Every call that takes a pool or task handle also returns -EPERM when
 *    the handle belongs to another process (see Processes, below), before
 *    it touches anything: a parent's handle in a child of fork(), a
 *    child's sent back to its parent, or the program's given to a task in
 *    a worker process (each handle carries a 7-bit number of the process
 *    that made it, unlike those of all its ancestors, however far up, as
 *    long as fewer than 128 generations of processes use walls). Two children
 *    of one process may share that number: a handle passed from one to
 *    the other may name the receiver's own pool or task. Pass handles
 *    between processes only up and down the fork tree.
 *  - A call that fails says why in words: walls_last_error() names the
 *    argument or option at fault.
 *  - The library never prints, never exits or aborts on the caller's
 *    behalf, and installs no signal handler in the calling process.
 *
 * Thread safety: every call may be made from any thread. One task handle
 * may be waited on by several threads at once; freeing a task while another
 * thread still uses it is the caller's race to avoid. A task running on a
 * thread worker may submit to its own pool, but must not wait for a task
 * queued behind it on the same worker, and cannot destroy its own pool.
 *
 * Processes: walls never forks the calling program to make a worker (see
 * walls_init). Its children carry no exit signal, so the program's own
 * SIGCHLD handler and waitpid(-1) never see them, with one exception: a
 * fork server started by re-executing the program (a first process pool
 * made after the program started threads, without walls_init()) is an
 * ordinary child, since execve() gives it an exit signal; waitpid(-1)
 * then sees it (blocking while it lives, as for any child), and its end
 * raises SIGCHLD. A program that reaps children it does not know calls
 * walls_init() first. Pools do not survive fork(): in a child of the program every call on its
 * parent's pools and tasks fails with -EPERM at once (walls_task_free()
 * does nothing), and the parent is unaffected. The child may create pools of its own (they
 * get a fork server of their own), and a child that outlives its parent
 * does not keep the parent's workers alive. (As after any fork() of a
 * program with threads, the child may call only async-signal-safe
 * functions unless the parent had one thread.)
 * Worker processes keep descriptors 1 and 2 (a task may print) and 0 (the
 * program's standard input, or /dev/null when the fork server was
 * re-executed), and close every other descriptor of the program. One
 * of 0-2 that the program had closed, or marked close-on-exec (as every
 * descriptor walls opens is), is /dev/null in a worker.
 */
#ifndef WALLS_H
#define WALLS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WALLS_STATIC)
#define WALLS_API
#elif defined(WALLS_BUILDING)
#define WALLS_API __attribute__((visibility("default")))
#else
#define WALLS_API
#endif

#define WALLS_VERSION_MAJOR 0
#define WALLS_VERSION_MINOR 1
#define WALLS_VERSION_PATCH 0
#define WALLS_VERSION_STRING "0.1.0"

/*
 * Inputs and outputs up to WALLS_INLINE_MAX bytes travel inline in the
 * workers' rings. Larger ones, up to WALLS_IO_MAX, travel through memory
 * shared with the worker that runs the task, and with no other worker: an
 * input is copied there once when the task is dealt to a worker (process
 * placement; a thread reads the task's own copy), an output is written
 * there by the task and copied once into the result. Memory is taken for
 * the bytes an output holds, not for max_output. Past WALLS_IO_MAX, -E2BIG.
 */
#define WALLS_INLINE_MAX 480
#define WALLS_IO_MAX ((size_t)1 << 30)

typedef struct walls_pool walls_pool; /* opaque */
typedef struct walls_task walls_task; /* opaque: one submitted task */

enum walls_placement {
    WALLS_AUTO = 0,  /* chosen from opts.needs and opts.workload */
    WALLS_THREADS,   /* threads of the host: fastest, no isolation */
    WALLS_PROCESSES, /* worker processes, one task at a time each */
    WALLS_HYBRID,    /* worker processes, each with a thread pool */
};

enum walls_workload { WALLS_CPU_BOUND = 0, WALLS_IO_BOUND };

/* What the work needs; WALLS_AUTO turns these into a placement. */
#define WALLS_NEED_CRASH_ISOLATION (1u << 0) /* a crash fails only its task */
#define WALLS_NEED_UNTRUSTED (1u << 1)       /* input may be hostile: sandbox */

/*
 * Pool options. Zero everywhere means: AUTO placement, CPU-bound work, no
 * needs, sizes chosen from walls_cpu_count(), no time limit, outputs up to
 * WALLS_INLINE_MAX bytes.
 */
struct walls_pool_opts {
    enum walls_placement placement;
    enum walls_workload workload;
    unsigned needs;           /* WALLS_NEED_* */
    unsigned processes;       /* process workers; 0 = auto; at most 256 (checked in every
                               * placement); unused by THREADS otherwise */
    unsigned threads;         /* threads (THREADS, at most 1024) or per process (HYBRID, at
                               * most 64); 0 = auto */
    int64_t task_timeout_ms;  /* default per-task limit from when it starts running; 0 = none */
    size_t max_output;        /* output bytes per task, at most WALLS_IO_MAX;
                               * 0 = WALLS_INLINE_MAX */
    /* Crash-loop protection (process and hybrid placement): a worker
     * process that dies before it finished any task (at start-up, or in
     * its first task) counts as a crash-loop restart; more than
     * restart_limit of those within restart_window_ms break the pool (see
     * walls_pool_reset). Each of them may wait restart_backoff_ms, doubled
     * for every other one in the window, at most the window. A worker that
     * finished tasks and then died is replaced at once and not counted,
     * however often that happens: one task in a hundred crashing never
     * breaks a pool; nor does one the pool killed to end its task as the
     * program asked (walls_cancel() of a running task, a time limit).
     * Every replacement counts in walls_stats.restarts. */
    unsigned restart_limit;     /* 0 = 100; at most 100000 */
    int64_t restart_window_ms;  /* 0 = 1000 */
    int64_t restart_backoff_ms; /* 0 = restart at once */
    /* Hybrid placement: a task that was LOST (its process died running
     * another task) runs again, up to this many times; 0 = never. (In
     * process placement a task is LOST only when its worker was killed for
     * another task that had just finished.) */
    unsigned lost_retries;      /* at most 100 */
    /* Recycling (process and hybrid placement): a worker process is
     * replaced, once its queued tasks are done, after recycle_after tasks
     * or when its peak resident memory passes recycle_rss bytes. Recycling
     * loses no task and is not a restart. */
    unsigned recycle_after;     /* 0 = never */
    size_t recycle_rss;         /* 0 = never */
    /* Memory limit of each worker process: the address space its tasks
     * may add to what the process holds once started (its program and
     * libraries, what it inherited from the fork server, the mailbox, the
     * arena and the shared region), enforced by setting RLIMIT_AS to that
     * start size plus this (or to this alone where /proc cannot be read);
     * 0 = none. Thread stacks of hybrid workers count against it. A task
     * that hits it sees allocations fail; if it then dies of a fault with
     * its address space within 1 MiB of the limit, it ends as
     * WALLS_CRASHED (or as it died) with WALLS_RESULT_MEMORY set. An
     * allocation larger than that room fails further from the limit: a
     * death after it carries no flag (the worker cannot tell it from any
     * other crash). */
    size_t worker_memory_limit;
    /* Sandbox of process and hybrid workers: WALLS_SANDBOX_*. */
    unsigned sandbox;
    /* STRICT only: permission groups (WALLS_ALLOW_*) that widen it. */
    unsigned sandbox_allow;
    /* 0: a pool whose sandbox asks for a layer the kernel refuses is not
     * created (-ENOTSUP). WALLS_SANDBOX_FALLBACK: run STRICT without the
     * namespaces or privilege drop the kernel refuses; walls_pool_explain()
     * names what is missing. Seccomp and Landlock are never given up. */
    unsigned sandbox_fallback;
    /* WALLS_ALLOW_READ_FILES: a NULL-terminated list of at most 8 absolute
     * paths (each under 256 bytes), borrowed and copied by
     * walls_pool_create(); NULL otherwise. */
    const char *const *sandbox_read_paths;
    /* Shared arena (every placement): bytes of memory shared by the host
     * and every worker, for big inputs and outputs passed without a copy
     * (walls_arena_alloc). Rounded up to whole pages; 0 = no arena; at
     * most WALLS_ARENA_MAX. Memory is taken only as buffers are written. */
    size_t arena_size;
    /* Process-shared locks that survive their holder's death (walls_lock);
     * 0 = none; at most WALLS_LOCKS_MAX. */
    unsigned locks;
    /* Backpressure: at most this many tasks wait to start; past it,
     * walls_submit() and walls_submit_batch() return -EAGAIN. A task waits
     * from its submission until it starts; the pool counts as waiting its
     * unfinished tasks beyond one per worker (threads, or threads of all
     * its processes), so up to max_queued + workers tasks are unfinished.
     * A task that ended WALLS_TIMEOUT is finished, though in the threads
     * placement its thread runs it on (a thread cannot be stopped): until
     * it returns, that worker takes nothing, and the tasks behind it may
     * be more than max_queued. 0 = unbounded. Room comes back as tasks
     * finish: each finish makes walls_pool_fd() readable. */
    unsigned max_queued;
    /* Writable shared region (every placement): bytes of memory that the
     * host and every worker of the pool map read-write, for state several
     * processes change under the pool's locks (a table, a buffer pool).
     * Zeroed at creation; rounded up to whole pages; 0 = none; at most
     * WALLS_SHARED_MAX. Memory is taken only as pages are written. It
     * lives until walls_pool_destroy(): a worker's death changes nothing
     * in it. See walls_pool_shared() for what it means for the sandbox. */
    size_t shared_size;
    uint64_t reserved[7];     /* must be zero */
};

#define WALLS_ARENA_MAX ((size_t)1 << 40) /* 1 TiB of address space */
#define WALLS_SHARED_MAX ((size_t)1 << 40) /* 1 TiB of address space */
#define WALLS_LOCKS_MAX 4096u

/*
 * Sandbox levels (process and hybrid placement only; see docs/security.md).
 *  NONE: a plain forked worker. It keeps the program's resource limits:
 *      with a core-dump limit above 0 (ulimit -c), a task that crashes
 *      leaves its worker's core where the kernel's core_pattern says.
 *  LIMITS: no_new_privs; no core dumps (RLIMIT_CORE 0); no file growth
 *      (RLIMIT_FSIZE 0: writing past a file's end kills with SIGXFSZ); at
 *      most 32 open descriptors and no new processes (RLIMIT_NOFILE,
 *      RLIMIT_NPROC; the kernel does not apply the latter to root); every
 *      descriptor closed but the worker's doorbell, its two memfds for
 *      large inputs (read-only) and outputs, and the pool's bell (the
 *      walls_pool_fd eventfd), standard streams included;
 *      dies with the fork server.
 *  SECCOMP: LIMITS plus a system-call allow-list (seccomp-bpf, built with
 *      libseccomp): memory (never executable), futex wait and wake, clocks
 *      and sleeps, reads and writes on descriptors it has (but no read of
 *      the pool's walls_pool_fd descriptor), fstat, signal
 *      handlers and masks, signals to itself. Any other call (open,
 *      socket, exec, fork, ptrace, kill, ..., or any call through another
 *      ABI such as int 0x80) ends the task as WALLS_VIOLATION, code = the
 *      call's number (walls_syscall_name; WALLS_RESULT_FOREIGN_ABI for
 *      another ABI). The kernel stops the call and tells the host (seccomp
 *      user notification), so nothing the task does to its signals can
 *      hide or change the report. Arguments the kernel reads as an int are
 *      judged on their low 32 bits, as the kernel reads them. Starting a
 *      thread fails with EPERM instead. Needs libseccomp API level 6 and
 *      pidfd_getfd() (Linux 5.7): walls_sandbox_probe() says. The program
 *      must be dumpable to take that report's descriptor from its workers:
 *      one that changed its user (setuid() from root), which the kernel
 *      leaves undumpable, gets -ECHILD from walls_pool_create() saying so
 *      until it calls prctl(PR_SET_DUMPABLE, 1) (STRICT too).
 *      Task functions must be in the main program or a library loaded
 *      before the fork server started: loading one would need open().
 *  STRICT: SECCOMP plus new user, network, IPC, mount and UTS namespaces
 *      and, when the program runs as root, dropped privileges: uid and gid
 *      65534, no supplementary groups, no capabilities (not even in its
 *      own user namespace). WALLS_NEED_UNTRUSTED asks for it. A worker gets
 *      no PID namespace: as its namespace's init, the kernel would drop the
 *      signals it raises on itself (raise, abort) and crashes would be
 *      misreported. It sees host pids but can use none: every call that
 *      takes another process's pid is refused (docs/security.md).
 *      Permission groups widen it on purpose (sandbox_allow):
 *        WALLS_ALLOW_NETWORK: keeps the host's network namespace and allows
 *          IPv4/IPv6 sockets (socket, connect, bind, send, receive, poll).
 *        WALLS_ALLOW_READ_FILES: allows opening files read-only, and only
 *          under sandbox_read_paths, enforced by Landlock (required: no
 *          fallback); files must be readable by uid 65534 when the
 *          program runs as root. stat() of other paths is not hidden.
 * Before creating the pool, walls probes (once per process) which layers
 * the kernel allows; see walls_sandbox_probe(). A refused layer fails the
 * pool with -ENOTSUP unless sandbox_fallback allows running without it.
 * walls_pool_explain() lists the layers a pool's workers run under.
 */
enum walls_sandbox {
    WALLS_SANDBOX_NONE = 0,
    WALLS_SANDBOX_LIMITS,
    WALLS_SANDBOX_STRICT,
    WALLS_SANDBOX_SECCOMP,
};

/* Permission groups for sandbox_allow (STRICT only). */
#define WALLS_ALLOW_NETWORK (1u << 0)
#define WALLS_ALLOW_READ_FILES (1u << 1)

/* sandbox_fallback. */
#define WALLS_SANDBOX_FALLBACK 1u

/* Sandbox layers, as walls_sandbox_probe() reports them. */
#define WALLS_LAYER_LIMITS (1u << 0)   /* no_new_privs, rlimits, closed descriptors */
#define WALLS_LAYER_SECCOMP (1u << 1)  /* seccomp-bpf with TSYNC */
#define WALLS_LAYER_USER_NS (1u << 2)
#define WALLS_LAYER_NET_NS (1u << 3)
#define WALLS_LAYER_IPC_NS (1u << 4)
#define WALLS_LAYER_MOUNT_NS (1u << 5)
#define WALLS_LAYER_UTS_NS (1u << 6)
#define WALLS_LAYER_NO_ROOT (1u << 7)  /* uid/gid 65534 without capabilities */
#define WALLS_LAYER_LANDLOCK (1u << 8) /* path rules (WALLS_ALLOW_READ_FILES) */

/*
 * walls_sandbox_probe - which sandbox layers this kernel allows a worker
 * forked from this program. The first call tests them in a short-lived
 * child (namespaces, privilege drop) and with harmless queries (seccomp,
 * Landlock); later calls return the cached answer.
 * @layers: out, may be NULL; WALLS_LAYER_* bits of the allowed layers.
 * @buf: out, may be NULL when len is 0; one line naming each layer and
 *       whether it is allowed, truncated to len - 1 bytes.
 * Returns the length of the full line, or -EINVAL (buf NULL with len > 0),
 * -EAGAIN/-ENOMEM (no process or memory to probe with), -ENOSYS/-EPERM
 * (the kernel or a container refuses clone3), -ECHILD (the probe child did
 * not finish; nothing is cached, the next call probes again). Thread-safe.
 */
WALLS_API int walls_sandbox_probe(unsigned *layers, char *buf, size_t len);

/*
 * What a task sees. in/in_len is a copy of the submitted input; the task
 * may write up to out_cap bytes to out and set out_len. Both buffers belong
 * to walls and are valid only during the call.
 */
struct walls_span {
    const void *ptr;
    size_t len;
};

/* A lock of the pool (opts.locks): 64 bytes of shared memory whose
 * contents belong to walls. Index the pool's array: &call->locks[i]. */
typedef struct walls_lock {
    uint32_t opaque[16];
} walls_lock;

/* An arena buffer: a checked handle, never a pointer; 0 is never valid. */
typedef uint64_t walls_buf;

#define WALLS_TASK_INPUTS_MAX 8u

struct walls_call {
    const void *in;
    size_t in_len;
    void *out;
    size_t out_cap;
    size_t out_len;
    /* The task's arena buffers (walls_task_opts), as pointers valid in the
     * worker that runs it: inputs in the order given, read-only in process
     * and hybrid workers (a write kills the task with SIGSEGV: it ends as
     * WALLS_CRASHED and the input is unchanged); the output, writable for
     * the length of the call. NULL and 0 when the task has none. */
    const struct walls_span *inputs;
    size_t n_inputs;
    void *output;
    size_t output_len;
    /* The pool's locks (opts.locks of them), in this worker's mapping. */
    walls_lock *locks;
    size_t n_locks;
    /* The pool's writable shared region (opts.shared_size), in this
     * worker's mapping: NULL and 0 when the pool has none. Its address
     * differs from process to process: keep offsets in it, not pointers. */
    void *shared;
    size_t shared_size;
};

/* A task function: 0 = success, any other value is an application code. */
typedef int walls_fn(struct walls_call *call);

/*
 * A task's outcome. Outcomes are values, never library errors.
 *
 * Which signals count as a crash: a process killed by SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT, SIGTRAP or SIGSYS died of its own fault and ends
 * as WALLS_CRASHED. Any other signal (SIGKILL, SIGTERM, ...) ends it as
 * WALLS_KILLED: the kernel does not say who sent it, so a task that raises
 * SIGKILL on itself is reported as killed.
 *
 * Hybrid placement: each thread of a worker process records its own fault
 * or exit() before the process dies, so every task that faulted ends
 * CRASHED with the signal of its own fault, and a task that did not fault
 * ends WALLS_LOST (even when it was an instant from faulting itself: the
 * first fault stops the other threads). Worker processes use the signal
 * SIGRTMIN for this; a task must not use it.
 *
 * What a task leaves in its worker process (globals, descriptors, signal
 * handlers, armed timers) is there for the tasks that run in it after it.
 * Worker processes start with SIGALRM, SIGVTALRM and SIGPROF ignored, so
 * that a timer a task left armed (alarm(), setitimer()) does not kill a
 * later task; a task that sets a handler for one of them, or counts on
 * its default action, must put things back before it returns. Bound a
 * task's time with timeout_ms, not alarm(). Ignored signals stay ignored
 * across execve(): a task that runs a program which counts on their
 * default action (a watchdog alarm) must set them back to SIG_DFL in the
 * child first (posix_spawnattr_setsigdefault(), say). What no thread records (a
 * fault in a thread the task started, _exit()) is shared: every task
 * running in the process ends with it. The threads of a hybrid worker
 * share its memory: a task that writes where it may not (past out_cap,
 * say) without faulting can change what the other tasks of its process
 * write or record, and so their results (WALLS_PROTOCOL, a wrong
 * WALLS_EXITED); only separate processes keep such a task from its
 * neighbours.
 *
 * A task that ends its worker's thread (pthread_exit(), or the raw exit
 * system call) ends WALLS_EXITED in process and hybrid placement, as a
 * one-thread process would, at every sandbox level: code 0 for
 * pthread_exit(); for the raw call, the code it passed when the thread was
 * its process's only one, else 0 (the kernel tells no one else). In hybrid
 * placement the process goes with it and its other tasks are LOST. A
 * task that ends a one-thread worker's thread while threads it started run
 * on is still running: it ends as they end, or at its time limit. A LOST
 * task's code is 0. On threads it ends a thread of the program: its task ends only
 * at its time limit and the pool runs one thread short (its destroy joins
 * that thread and returns as usual); a task on threads must not end its
 * thread.
 */
enum walls_status {
    WALLS_OK,        /* fn returned 0; code = 0 */
    WALLS_FAILED,    /* fn returned non-zero; code = that value (or a negative errno:
                      * -ENOENT, fn not found in the worker; -ESTALE, the worker
                      * found another build of fn's library under its path (the
                      * file was replaced after the program loaded it: the ELF
                      * build-ids differ); -ENOMEM, no memory in the host for
                      * its output) */
    WALLS_CRASHED,   /* killed by a signal it raised; code = signal */
    WALLS_EXITED,    /* called exit(); code = exit status */
    WALLS_TIMEOUT,   /* overran its time limit */
    WALLS_KILLED,    /* killed from outside (memory limit, operator); code = signal */
    WALLS_VIOLATION, /* sandbox stopped it; code = syscall number */
    WALLS_LOST,      /* its process died running another task (hybrid) */
    WALLS_CANCELLED, /* cancelled before or while running */
    WALLS_PROTOCOL,  /* its worker broke the mailbox protocol and was killed */
    WALLS_BROKEN,    /* the pool stopped restarting workers (crash loop) */
};

struct walls_result {
    enum walls_status status;
    int code;          /* see enum walls_status */
    const void *out;   /* borrowed: valid until walls_task_free() */
    size_t out_len;
    unsigned attempts; /* times it was started: more than 1 when it was run again
                        * after being LOST (hybrid, lost_retries); 0 if it never ran */
    unsigned flags;    /* WALLS_RESULT_* */
};

/* Result flags. */
#define WALLS_RESULT_MEMORY (1u << 0) /* its worker was within 1 MiB of worker_memory_limit when it died */
/* WALLS_VIOLATION through another system-call ABI than the program's own
 * (on x86-64: int 0x80, or an x32 call): code is the call's number in that
 * ABI (x32 numbers keep their 0x40000000 bit), not one walls_syscall_name()
 * knows. */
#define WALLS_RESULT_FOREIGN_ABI (1u << 1)

/* Flags for walls_pool_destroy(). */
#define WALLS_CANCEL (1u << 0) /* cancel queued tasks, kill running process tasks */

/*
 * walls_init - start the fork server now.
 *
 * Process workers are forked from a small single-threaded fork server, so
 * that starting a worker never forks a multi-threaded program. Call this at
 * the top of main(), before the program starts threads: the fork server is
 * then a copy of the program as it is at that moment (cheap, and workers see
 * the globals set so far). Without it, the first process pool starts the
 * fork server itself: by forking if the program is still single-threaded,
 * otherwise by re-executing the program (/proc/self/exe) in fork-server
 * mode, before main() runs; task functions are then located by (module,
 * offset) and work all the same. A re-executed fork server first loads
 * every shared library the program has loaded by then (dlopen() included,
 * by path; their constructors run in it), as a forked one would hold
 * them: sandboxed workers, which cannot open a library, find their task
 * functions there. A constructor that starts a thread leaves that thread
 * running in the fork server; each worker still holds only the thread that
 * forked it. Such a fork server forks with fork() rather than a bare
 * _Fork(), so the C library's allocator and stdio locks are free in the
 * worker, but a lock of the library's own that the other thread held at
 * that moment stays held there for ever. A fork server that died and is started again this way
 * (the program has threads by then) so still holds the program's
 * plugins.
 *
 * Re-executing needs libwalls linked into the program (statically or as a
 * shared library it was linked against): a program that loads libwalls
 * with dlopen() must call walls_init() before it starts threads.
 *
 * The fork server started here stays until walls_fini(); one started by a
 * pool goes away with the last process pool.
 *
 * Returns 0, or -EAGAIN/-ENOMEM (no process or memory for it), -ENOSYS (the
 * kernel lacks pidfds), -ECHILD (the fork server died while starting).
 * Calling it again while a fork server runs takes one more reference.
 */
WALLS_API int walls_init(void);

/*
 * walls_fini - drop the reference walls_init() took. When no process pool
 * uses the fork server either, it is stopped and reaped before this
 * returns. Without a matching walls_init() it does nothing. Never fails.
 */
WALLS_API void walls_fini(void);

/*
 * walls_cpu_count - usable CPUs: the CPUs in this thread's affinity mask,
 * capped by a cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us) CPU quota,
 * rounded up: the tightest of the program's cgroup and its ancestors.
 * Always at least 1.
 */
WALLS_API int walls_cpu_count(void);

/*
 * walls_cpu_source - where walls_cpu_count()'s figure came from: writes a
 * short text ("affinity mask", "cgroup v2 cpu.max quota", ...) to buf,
 * truncating to len - 1 bytes. Returns the count, or -EINVAL if buf is NULL
 * or len is 0.
 */
WALLS_API int walls_cpu_source(char *buf, size_t len);

/*
 * walls_pool_create - start a pool of workers.
 * @pool: out; the new pool.
 * @opts: borrowed; NULL means all defaults.
 *
 * Placement WALLS_AUTO applies the seed's rules: no isolation asked for
 * gives threads; WALLS_NEED_CRASH_ISOLATION or WALLS_NEED_UNTRUSTED gives
 * processes for CPU-bound work and hybrid (processes each with threads)
 * for IO-bound work. So do options only worker processes have (a sandbox
 * or its settings, recycling, worker_memory_limit): AUTO never drops them
 * by choosing threads. Sizes
 * of 0 mean one thread per usable CPU (four for IO-bound work), one process
 * per usable CPU, and one thread per hybrid process (four for IO-bound
 * work). walls_pool_explain() says what was chosen and why. All workers
 * are running when this returns: a worker that cannot start makes the call
 * fail with the reason it reported.
 *
 * An explicit WALLS_THREADS placement with anything only worker processes
 * give (WALLS_NEED_CRASH_ISOLATION, WALLS_NEED_UNTRUSTED, a sandbox or its
 * settings, recycling, worker_memory_limit) is refused with -EINVAL: a
 * thread cannot give it, and walls never drops it silently.
 *
 * A pool holds descriptors of its own (close-on-exec): a process pool's
 * sockets, memfds, pidfds and eventfds, and walls_pool_fd(). They belong
 * to the pool until walls_pool_destroy(): a program that closes them
 * behind its back (close_range(), closefrom(), a loop over /proc/self/fd)
 * breaks the pool, and may have its own files, opened at those numbers
 * since, written by it.
 *
 * Errors (walls_last_error() names the option): -EINVAL (pool NULL,
 * unknown placement, workload or needs bits; more than 256 processes, 1024
 * threads, or 64 threads per hybrid process; max_output above
 * WALLS_IO_MAX; a negative timeout, restart window or backoff; a
 * restart limit above 100000; more than 100 lost_retries; placement
 * WALLS_THREADS with a process-only need or option, as above; an unknown
 * sandbox level; WALLS_NEED_UNTRUSTED with a sandbox level other than
 * STRICT; unknown sandbox_allow bits, or any with a level other than
 * STRICT; sandbox_fallback other than 0 or 1; sandbox_read_paths missing,
 * empty, longer than 8, relative or too long with WALLS_ALLOW_READ_FILES,
 * or given without it; reserved fields not zero); -ENOENT (a
 * sandbox_read_paths entry does not exist); -ENOTSUP (the kernel refuses a
 * sandbox layer the pool asked for: seccomp, Landlock, or without
 * sandbox_fallback a namespace or the privilege drop;
 * walls_sandbox_probe() says which); -ENOMEM; -EAGAIN (no threads or
 * processes left); -EMFILE/-ENFILE (out of descriptors); -ENOSYS (the
 * kernel lacks pidfds); -ECHILD (a worker or the fork server could not
 * start, or died while starting: walls_last_error() gives the reason it
 * reported); -ENOEXEC (the fork server could not be started by
 * re-executing the program).
 */
WALLS_API int walls_pool_create(walls_pool **pool, const struct walls_pool_opts *opts);

/*
 * walls_pool_destroy - stop a pool and everything it started.
 * @flags: 0 drains: every submitted task runs to its end first.
 *         WALLS_CANCEL: queued tasks end as WALLS_CANCELLED, running process
 *         tasks are killed and end as WALLS_CANCELLED; running thread tasks
 *         cannot be stopped and are waited for.
 *
 * When it returns, every worker thread is joined, every worker process is
 * reaped, and the pool's descriptors and mappings are closed. Task handles
 * stay valid: wait on them for their results, then free them.
 *
 * Returns 0 (also for NULL, with known flags); -EINVAL (unknown flags,
 * whatever the pool); -EBADF (pool already
 * destroyed, or being destroyed by another thread); -EDEADLK (called from
 * one of the pool's own worker threads).
 */
WALLS_API int walls_pool_destroy(walls_pool *pool, unsigned flags);

/*
 * walls_pool_reset - bring a broken pool back. A pool breaks when its
 * workers restart more often than restart_limit allows: from then on,
 * queued and new tasks end as WALLS_BROKEN at once and no worker is
 * forked. After fixing the cause, reset forgets the restart history and
 * starts the missing workers again. Resetting a pool that is not broken
 * does nothing. A pool whose fork server died (killed from outside) is
 * broken for good: destroy it and create another.
 * Returns 0, or -EINVAL (NULL), -EBADF (destroyed pool, or one another
 * thread is destroying), -ECHILD (its fork server is gone; for a pool
 * across MPI ranks: every rank it gave up stopped answering, none broke
 * in a way a reset mends).
 */
WALLS_API int walls_pool_reset(walls_pool *pool);

/*
 * walls_pool_fd - a descriptor that becomes readable when a task of the
 * pool completes, for an epoll, poll or libuv loop. It is an eventfd owned
 * by the pool (do not close it, and do not read it: walls_pool_collect
 * resets it, and the pool writes it once until then, so a read elsewhere
 * hides completions until the next collect; it is non-blocking). From
 * the first call on, the pool also keeps a list of completed tasks for
 * walls_pool_collect(), which resets the descriptor. Process and hybrid
 * workers write it themselves when they finish a task, so the loop wakes
 * without a hop through a host thread; once walls_pool_collect() has taken
 * every finished task the descriptor is quiet again (but for a worker that
 * rang too late, see walls_pool_collect). A worker can write it for
 * nothing, a wake-up with nothing to collect; under WALLS_SANDBOX_SECCOMP
 * and STRICT it cannot read it or change its flags. Under the other levels
 * a process task that clears O_NONBLOCK on its descriptors clears it on
 * this one too (they share it): the pool never reads it in a way that
 * could wait, but a read of the program's own would.
 * Returns the descriptor, or -EINVAL (NULL), -EBADF (destroyed pool).
 */
WALLS_API int walls_pool_fd(walls_pool *pool);

/*
 * walls_pool_collect - without sleeping, take up to max tasks of the pool
 * that completed since walls_pool_fd() was first called and were not
 * collected yet, oldest first. Each task is reported once; get its result
 * with walls_wait(task, 0, &res). A task freed before it is collected is
 * not reported. The descriptor is reset, and becomes readable again when
 * more tasks complete (or at once if some are left). Having taken every
 * finished task, it waits for process workers' rings of the descriptor
 * for those tasks to land (a write's time), so that they do not leave it
 * readable; a worker that rings late costs at most 5 ms, and, waited for
 * in vain 8 times, is not waited for again until it is replaced (its late
 * rings may then wake the loop for nothing).
 * @tasks: out; room for max handles (borrowed: the caller still owns them).
 * @n: out; how many were written.
 * Errors: -EINVAL (pool, tasks or n NULL, max 0); -EBADF (destroyed pool);
 * -ENOTCONN (walls_pool_fd() was never called on this pool).
 */
WALLS_API int walls_pool_collect(walls_pool *pool, walls_task **tasks, size_t max, size_t *n);

/*
 * walls_pool_explain - one line saying which placement and sizes the pool
 * has and why, with the CPU count and where it came from. Truncates to
 * len - 1 bytes. Returns the length of the full line, or -EINVAL (NULL
 * pool or buf, len 0), -EBADF (destroyed pool).
 */
WALLS_API int walls_pool_explain(walls_pool *pool, char *buf, size_t len);

/*
 * walls_submit - queue one call of fn with a copy of in.
 * @fn: the task function; in process placement it must live in the main
 *      program or in a shared library with a path (loaded at start or by
 *      dlopen() later: the worker loads it too).
 * @in: copied before the call returns; may be NULL when in_len is 0.
 * @task: out; the task handle, owned by the caller until walls_task_free().
 *
 * Tasks are dealt to workers in submission order. A task that has
 * not started may move to another worker of the pool: none waits behind a
 * running task, nor on a worker that leaves it unstarted (one stopped, or
 * starved of the CPU, for 100 us or more), while another worker of its
 * pool idles (the host decides where a task runs and believes one result
 * for it; docs/design.md).
 *
 * Errors: -EINVAL (pool, fn or task NULL; in NULL with in_len > 0);
 * -E2BIG (in_len above WALLS_IO_MAX); -EBADF (destroyed pool);
 * -ESHUTDOWN (the pool is being destroyed); -ENOMEM; -ENOENT (process
 * placement: fn lies in no loaded module, one unloaded with dlclose()
 * included); -ENAMETOOLONG (its module's path does not fit a ring slot);
 * -ESTALE (process placement: fn's library was replaced at its path and
 * loaded again, and the workers would find another file under that path:
 * the old one, which this pool's workers loaded (a new pool runs the new
 * one) or the fork server holds (it started while the
 * old one was loaded: a fork server started after walls_fini(), or after
 * the last process pool went, runs the new one)); -EAGAIN
 * (opts.max_queued tasks wait already). A library replaced on disk after
 * the program loaded it, before a worker loaded it by its path, is caught
 * by the worker instead: the task ends WALLS_FAILED with code -ESTALE
 * (the worker reads the file's build-id without loading it: the other
 * build's constructors do not run).
 */
WALLS_API int walls_submit(walls_pool *pool, walls_fn *fn, const void *in, size_t in_len,
                           walls_task **task);

/* Per-task options for walls_submit_ex(). All zero: the pool's defaults. */
struct walls_task_opts {
    int64_t timeout_ms;    /* 0: the pool's task_timeout_ms; -1: no limit; else the limit */
    /* Arena buffers of the pool (walls_arena_alloc) the task reads, at most
     * WALLS_TASK_INPUTS_MAX, and the one it may write (0 = none). Each is
     * pinned from submission until the task can no longer touch it. */
    const walls_buf *inputs;
    unsigned n_inputs;
    walls_buf output;
    /* The caller's own pointer, given back by walls_task_user() whatever
     * becomes of the task; walls never looks at it. */
    void *user;
    uint64_t reserved[3];  /* must be zero */
};

/*
 * walls_submit_ex - walls_submit() with per-task options (NULL: defaults).
 *
 * Time limits count from the moment the task starts running in a worker.
 * A task its worker has not started when its limit, counted from when it
 * was handed to that worker, has passed (the worker is stopped, or starved
 * of CPU) is not charged: it is taken back and dealt again (a process
 * worker is replaced first); a process worker's word that it never took
 * the task is believed once a task. A worker that says it started the
 * task later than that is believed once, up to one limit after the task
 * was handed to it. (Pools across MPI nodes end such a task WALLS_TIMEOUT.)
 * A process task that overruns has its worker killed and replaced and ends
 * as WALLS_TIMEOUT a few milliseconds after its deadline. A thread task
 * cannot be stopped: at its deadline it ends as WALLS_TIMEOUT for its
 * waiters, but its thread keeps running it until it returns, and that
 * thread takes no other task meanwhile (the tasks queued behind it move to
 * other threads).
 *
 * Arena buffers (inputs, output) must be live buffers of this pool. Their
 * references travel in the request slot beside an inline input, 16 bytes
 * each of its WALLS_INLINE_MAX; an input too large to share the slot
 * travels as any large input does. A buffer may be the input of any
 * number of unfinished tasks, but
 * the output of only one; it cannot be freed while a task that names it
 * may still touch it.
 *
 * Errors: those of walls_submit(); -EINVAL for a timeout below -1,
 * reserved fields not zero, more than WALLS_TASK_INPUTS_MAX inputs, inputs
 * NULL with n_inputs > 0, or buffers given to a pool without an arena;
 * -E2BIG (in_len over WALLS_IO_MAX);
 * -ENOENT (a buffer that is not live in this pool: freed, never allocated,
 * or garbage); -EXDEV (a buffer of another pool); -EBUSY (the output is
 * already the output of an unfinished task).
 */
WALLS_API int walls_submit_ex(walls_pool *pool, walls_fn *fn, const void *in, size_t in_len,
                              const struct walls_task_opts *opts, walls_task **task);

/* One input of walls_submit_batch(): len bytes at data (NULL when len is 0). */
struct walls_input {
    const void *data;
    size_t len;
};

/*
 * walls_submit_batch - n calls of fn, one per input, submitted at once:
 * either all of them or none. Each input is copied before the call
 * returns. tasks[i] gets the handle of in[i]'s task, owned by the caller as
 * from walls_submit(); on an error tasks is left as it was. One lock and
 * one wake-up serve the whole batch, so it costs less per task than n
 * walls_submit() calls. Thread-safe, as walls_submit().
 *
 * Errors: -EINVAL (pool, fn, in or tasks NULL; n 0; in[i].data NULL with
 * in[i].len above 0: walls_last_error() names i); -E2BIG (an in[i].len
 * above WALLS_IO_MAX); -EAGAIN (the batch would take the pool past
 * opts.max_queued: nothing was submitted; a batch of more than max_queued
 * plus one per worker never fits, and is refused before any input is
 * copied); and those of walls_submit()
 * (-EBADF, -ESHUTDOWN, -ENOMEM, -ENOENT, -ENAMETOOLONG).
 */
WALLS_API int walls_submit_batch(walls_pool *pool, walls_fn *fn, const struct walls_input *in,
                                 size_t n, walls_task **tasks);

/*
 * walls_task_user - the user pointer given in walls_task_opts.user at
 * submission (NULL if none): the same after the task succeeded, failed,
 * crashed or timed out, until walls_task_free(). NULL, with the reason in
 * walls_last_error(), for a NULL or freed handle.
 */
WALLS_API void *walls_task_user(walls_task *task);

/*
 * The shared arena (opts.arena_size): one memory-backed file mapped by the
 * host and by every worker of the pool, so big data reaches process
 * workers without a copy.
 *
 * Only the host allocates; the bookkeeping lives in the host's private
 * memory, where no worker can write. Buffers are whole pages (4 KiB), so
 * no two buffers share a page.
 *  - Threads use the host's mapping: no protection.
 *  - Process and hybrid workers without a sandbox map the arena read-only,
 *    and each task's output buffer writable while the task runs (in hybrid
 *    placement, also while other tasks of the same process run beside it).
 *    A write anywhere else kills the task with SIGSEGV (WALLS_CRASHED).
 *    This stops mistakes: such a worker holds a writable descriptor and
 *    could mprotect() its mapping.
 *  - Under any sandbox level a worker never holds a writable descriptor
 *    of the arena (mprotect fails with EACCES). Its output buffer is a
 *    private staging copy: the host fills it from the arena buffer when it
 *    hands the task over, and copies it back into the buffer when the task
 *    returns (both under the pool's lock, so they cost about a memcpy of
 *    the buffer each). Other tasks see a staged output's new contents only
 *    after it returns.
 *  - Under SECCOMP and STRICT a hostile worker can thus change nothing of
 *    the arena but its own task's output. LIMITS confines resources, not
 *    malice: its worker may still open files, and one running as the
 *    host's user can reopen the arena writable through /proc (as root,
 *    /proc/self/map_files; as any user, the host's /proc/<pid>/fd) or
 *    write the host's memory. Against a hostile task, use SECCOMP or
 *    STRICT.
 * A buffer may be both an input and the output of one task (read-modify-
 * write). A worker that dies mid-task loses only its task's output: in
 * place, that holds what it wrote before dying; staged, it is unchanged.
 * A buffer's pins (walls_task_opts) are dropped when no worker can touch
 * it any more: at the task's end, at the reaping of the process that ran
 * it, or when the thread that ran a timed-out thread task returns (should
 * memory for that note run out, the buffer stays pinned for good).
 *
 * Thread safety: these calls may be made from any thread of the host, not
 * from tasks.
 */

/*
 * walls_arena_alloc - take size bytes of the pool's arena.
 * @buf: out; the buffer's handle.
 * The memory is zeroed (freeing a buffer gives its pages back to the
 * system).
 * Errors: -EINVAL (pool or buf NULL, size 0, a pool without an arena);
 * -EBADF (destroyed pool); -ENOSPC (no free run of pages that large is
 * left); -ENOMEM (the host's bookkeeping could not grow).
 */
WALLS_API int walls_arena_alloc(walls_pool *pool, size_t size, walls_buf *buf);

/*
 * walls_arena_free - give a buffer back.
 * Errors: -EINVAL (pool NULL, a pool without an arena); -EBADF (destroyed
 * pool); -ENOENT (not a live buffer of this pool: freed already, never
 * allocated, 0 or garbage); -EXDEV (a buffer of another pool); -EBUSY (an
 * unfinished task names it; free it once the task is done); -ENOMEM (the
 * host's bookkeeping could not grow; the buffer stays allocated).
 * Handles carry a 20-bit generation: a freed buffer's handle is refused
 * unless 2^20 buffers were allocated in the arena since.
 */
WALLS_API int walls_arena_free(walls_pool *pool, walls_buf buf);

/*
 * walls_arena_ptr - where a buffer is in the host's mapping.
 * @ptr: out; valid until the buffer is freed or the pool destroyed.
 * @size: out, may be NULL; the size it was allocated with.
 * Errors: -EINVAL (pool or ptr NULL, a pool without an arena); -EBADF;
 * -ENOENT; -EXDEV.
 */
WALLS_API int walls_arena_ptr(walls_pool *pool, walls_buf buf, void **ptr, size_t *size);

/*
 * Locks that survive their holder's death (opts.locks), for data the
 * program keeps in shared memory. They live in a small mapping of their
 * own, writable by every worker of the pool (sandboxed ones included: a
 * hostile worker can hold or corrupt a lock, never the arena) and by the
 * host: a task finds them at call->locks, the host with walls_pool_locks.
 *
 * The holder is recorded as its worker process; when the supervisor
 * reaps a process that held a lock, it releases the lock, and the next
 * holder is told by -EOWNERDEAD that the data it guards may be
 * half-updated. Only the thread that took a lock may release it. The
 * host's threads never die alone, so a lock they hold is never recovered.
 * The locks are not recursive: taking one twice waits for ever (or until
 * the timeout). A child of fork() must not take its parent's locks: it
 * would hold them in its parent's name, and its death would free nothing.
 */

/*
 * walls_pool_locks - the pool's locks in the host's mapping.
 * @locks: out; an array of *n locks, valid until the pool is destroyed.
 * Errors: -EINVAL (pool, locks or n NULL); -EBADF (destroyed pool);
 * -ENOENT (the pool has no locks).
 */
WALLS_API int walls_pool_locks(walls_pool *pool, walls_lock **locks, size_t *n);

/*
 * walls_pool_shared - the pool's writable shared region (opts.shared_size)
 * in the host's mapping.
 * @base: out; valid until the pool is destroyed.
 * @size: out; the region's size, whole pages.
 *
 * Unlike the arena, the region is writable by every worker of the pool,
 * in every placement and under every sandbox level, and no task owns any
 * part of it: it is for workers that trust each other with its contents,
 * such as the backends of one database. Each worker maps it before its
 * sandbox closes and keeps no descriptor of it. What the sandbox still
 * holds: a worker can write nothing else shared (not the arena, not
 * another task's input or output), and its system calls stay filtered.
 * What it cannot hold: a hostile task can write anything into the region,
 * so whatever reads it must check what it reads, as it would a file.
 *
 * The region is a memory-backed file mapped shared: at a different
 * address in each process (keep offsets in it, not pointers), and shared
 * too with a child the host fork()s. Writes are plain stores: no copy, no
 * staging, visible to every process at once. A worker that dies leaves
 * what it wrote: guard each change with one of the pool's locks and keep
 * enough beside it (an undo or redo record) for the next holder, told
 * -EOWNERDEAD, to finish or roll back the change.
 *
 * Errors: -EINVAL (pool, base or size NULL); -EBADF (destroyed pool);
 * -ENOENT (the pool has no region: opts.shared_size 0).
 * Thread safety: any thread of the host, not from tasks (they have
 * call->shared).
 */
WALLS_API int walls_pool_shared(walls_pool *pool, void **base, size_t *size);

/*
 * walls_lock_acquire - take a lock, waiting at most timeout_ms.
 * Returns 0 (taken); -EOWNERDEAD (taken, but its last holder died holding
 * it: check what it guards; the lock is healthy again from this holder on);
 * -ETIMEDOUT; -EINVAL (lock NULL, timeout below -1, or not a lock: its
 * memory holds garbage).
 */
WALLS_API int walls_lock_acquire(walls_lock *lock, int64_t timeout_ms);

/*
 * walls_lock_release - give a lock back. Returns 0; -EINVAL (lock NULL or
 * garbage); -EPERM (the calling thread does not hold it).
 */
WALLS_API int walls_lock_release(walls_lock *lock);

/*
 * walls_wait - wait for a task's result.
 * @res: out; filled when the call returns 0. res->out is borrowed from the
 *       task and valid until walls_task_free().
 * Waiting again on a finished task returns the same result.
 *
 * Errors: -EINVAL (task or res NULL, timeout below -1); -EBADF (freed
 * task); -ETIMEDOUT (not finished within timeout_ms; 0 polls, taking the
 * pool's lock once to look at the workers' rings).
 */
WALLS_API int walls_wait(walls_task *task, int64_t timeout_ms, struct walls_result *res);

/*
 * walls_wait_any - wait until one of n tasks is finished.
 * @index: out; the lowest index among the finished tasks.
 * Tasks may belong to different pools. Errors: -EINVAL (tasks or index
 * NULL, n 0, an element NULL, timeout below -1); -EBADF (an element freed);
 * -ETIMEDOUT.
 */
WALLS_API int walls_wait_any(walls_task **tasks, size_t n, int64_t timeout_ms, size_t *index);

/*
 * walls_wait_all - wait until every one of n tasks is finished (then
 * walls_wait(task, 0, &res) gives each result at once). Tasks may belong to
 * different pools; timeout_ms bounds the whole wait. Errors: -EINVAL (tasks
 * NULL, n 0, an element NULL, timeout below -1); -EBADF (an element freed);
 * -ETIMEDOUT (some task not finished in time).
 */
WALLS_API int walls_wait_all(walls_task **tasks, size_t n, int64_t timeout_ms);

/*
 * walls_cancel - cancel a task. One that has not started ends as
 * WALLS_CANCELLED at once. A running process task has its worker killed
 * (and replaced) and ends as WALLS_CANCELLED when the worker is reaped,
 * within milliseconds: 0 means it ends so, even when it finished in the
 * moment before the kill landed (its output is dropped), ran out of its
 * time limit meanwhile, or its worker was already being killed for
 * another task. A running thread task cannot be stopped: -EBUSY.
 * Errors: -EINVAL (NULL); -EBADF (freed task); -EALREADY (finished
 * already); -EBUSY (running in a thread).
 */
WALLS_API int walls_cancel(walls_task *task);

/* Flags for walls_cancel_ex(). */
#define WALLS_CANCEL_QUEUED (1u << 0) /* only a task that has not started: never a kill */

/*
 * walls_cancel_ex - walls_cancel() with flags. With WALLS_CANCEL_QUEUED a
 * task that has not started ends as WALLS_CANCELLED at once, as with
 * walls_cancel(), but a running one is left to finish, in every placement:
 * -EBUSY, and no worker is killed (for a server whose client went away:
 * what waits is dropped, what runs is not paid for twice by a restart).
 * flags 0 is walls_cancel(). Errors: those of walls_cancel(); -EINVAL
 * (unknown flags).
 */
WALLS_API int walls_cancel_ex(walls_task *task, unsigned flags);

/*
 * walls_task_free - release a task handle, cancelling the task if it has
 * not started. A running task finishes in the background and its result is
 * dropped. Freeing NULL, or a handle already freed, does nothing.
 * Memory of freed tasks is kept for reuse while it was in use within the
 * last second (submitting a million tasks again then faults nothing in);
 * past that, and at walls_pool_destroy(), it goes back to the system.
 */
WALLS_API void walls_task_free(walls_task *task);

struct walls_stats {
    enum walls_placement placement;
    unsigned processes, threads;
    uint64_t submitted, completed, by_status[WALLS_BROKEN + 1];
    uint64_t restarts;
    /* Unfinished tasks: in_flight were handed to workers (running, or
     * waiting in a worker's own queue, from where they may still move to
     * a worker that idles); queued wait in the pool for a worker to take
     * them. A thread task that timed out counts in neither (it has ended)
     * though its thread runs on. submitted = completed + in_flight +
     * queued in every snapshot. */
    uint64_t in_flight, queued;
    uint64_t latency_p50_ns, latency_p99_ns; /* submit to completion */
    unsigned broken; /* 1 while the pool is broken (walls_pool_reset) */
    uint64_t recycled; /* worker processes replaced by recycling */
};

/*
 * walls_pool_stats - a consistent snapshot of the pool's counters. Latency
 * percentiles come from a log-scale histogram and are exact to within 1/16
 * (6.25%). Errors: -EINVAL (NULL), -EBADF (destroyed pool).
 */
WALLS_API int walls_pool_stats(walls_pool *pool, struct walls_stats *stats);

/* "ok", "failed", "crashed", ...; "unknown" for values outside the enum. */
WALLS_API const char *walls_status_name(enum walls_status status);

/* A description of a negative errno returned by walls; never NULL. */
WALLS_API const char *walls_strerror(int err);

/*
 * walls_last_error - why the last call of walls that failed on this thread
 * failed, in words, naming the argument or option at fault, e.g.
 * "walls_pool_create: opts.max_output 2147483648 is over WALLS_IO_MAX 1073741824".
 * Calls that succeed leave it as it was, so read it right after the
 * failure; so does -ETIMEDOUT from walls_wait() and walls_wait_any(), which
 * is an answer rather than a failure. The string is the calling thread's,
 * valid until its next call of walls; never NULL. Thread-safe.
 */
WALLS_API const char *walls_last_error(void);

/* The name of system call nr on this machine ("openat"), for the code of
 * a WALLS_VIOLATION; "unknown" if it has none. The string stays valid until
 * the calling thread's next call. */
WALLS_API const char *walls_syscall_name(int nr);

/* The library's version, e.g. "0.1.0". */
WALLS_API const char *walls_version(void);

#ifdef __cplusplus
}
#endif

#endif /* WALLS_H */
