/*
 * sandbox.c - the layers of sandboxed process workers.
 *
 * Host side: walls_sandbox_probe() learns once per process which layers the
 * kernel allows, by asking (seccomp, Landlock) and by trying (namespaces and
 * the privilege drop, in a throw-away child that makes raw system calls
 * only, so that it is safe to start from a program with threads).
 * walls__sandbox_plan() turns a pool's options into the layers its workers
 * apply, refusing a layer the kernel refuses unless the program allowed a
 * fallback.
 *
 * Worker side: a worker builds its system-call filter itself, with
 * libseccomp, right after it was forked from the single-threaded fork
 * server and before it starts any thread of its own; a STRICT worker then
 * enters its namespaces, drops root and restricts itself with Landlock, all
 * still single-threaded (a new user namespace requires it); the filter is
 * loaded last, once its threads exist, for all of them at once (TSYNC). The
 * list holds what a computing task and the worker's own loop need: memory,
 * futexes, clocks and sleeps, reads and writes on descriptors it already
 * has, signals to itself. Everything else (opening files, sockets, exec,
 * fork, ptrace, signals to other processes, calls through another ABI, and
 * the rest) stops the calling thread inside the kernel and notifies a
 * listener (seccomp user notification) that the host holds: the host reads
 * which thread made which call from the kernel, kills the worker, and
 * reports the task as WALLS_VIOLATION with that call. Nothing the task can
 * do to its own signal handling or mask changes that report. Permission
 * groups add a few calls, narrowed by their arguments; every argument the
 * kernel reads as an int is compared on its low 32 bits only, as the kernel
 * reads it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/landlock.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "internal.h"
#include "sandbox.h"
#include "walls.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define NOBODY 65534

/* Namespaces a STRICT worker enters besides its user namespace. */
static const struct {
    unsigned layer;
    int flag;
    const char *name;
} namespaces[] = {
    {WALLS_LAYER_NET_NS, CLONE_NEWNET, "network ns"},
    {WALLS_LAYER_IPC_NS, CLONE_NEWIPC, "IPC ns"},
    {WALLS_LAYER_MOUNT_NS, CLONE_NEWNS, "mount ns"},
    {WALLS_LAYER_UTS_NS, CLONE_NEWUTS, "UTS ns"},
};
#define NNS (sizeof namespaces / sizeof namespaces[0])

static const char *layer_name(unsigned layer)
{
    switch (layer) {
    case WALLS_LAYER_LIMITS: return "limits";
    case WALLS_LAYER_SECCOMP: return "seccomp";
    case WALLS_LAYER_USER_NS: return "user ns";
    case WALLS_LAYER_NO_ROOT: return geteuid() == 0 ? "uid/gid 65534 without capabilities"
                                                    : "no capabilities";
    case WALLS_LAYER_LANDLOCK: return "landlock";
    default:
        for (size_t i = 0; i < NNS; i++)
            if (namespaces[i].layer == layer)
                return namespaces[i].name;
        return "?";
    }
}

/* ---- probing (host side) ------------------------------------------------ */

/* Bits of the probe child's exit status. */
#define P_USER 1
#define P_NOROOT 2
#define P_NS(i) (4 << (i))

/* Raw system calls only: the program may have threads. */
static _Noreturn void probe_child(bool root)
{
    int bits = 0;
    if (!root && syscall(SYS_unshare, CLONE_NEWUSER) == 0)
        bits |= P_USER | P_NOROOT;
    for (size_t i = 0; i < NNS; i++)
        if (syscall(SYS_unshare, namespaces[i].flag) == 0)
            bits |= P_NS(i);
    if (root && syscall(SYS_setgroups, 0, NULL) == 0 &&
        syscall(SYS_setresgid, NOBODY, NOBODY, NOBODY) == 0 &&
        syscall(SYS_setresuid, NOBODY, NOBODY, NOBODY) == 0) {
        bits |= P_NOROOT;
        if (syscall(SYS_unshare, CLONE_NEWUSER) == 0)
            bits |= P_USER;
    }
    syscall(SYS_exit_group, bits);
    __builtin_unreachable();
}

static int probe_namespaces(unsigned *layers)
{
    bool root = geteuid() == 0;
    int pidfd = -1;
    int clone_errno = 0;
    pid_t pid = walls__clone_pidfd(&pidfd, &clone_errno);
    if (pid == 0)
        probe_child(root);
    if (pid < 0)
        return clone_errno > 0 ? -clone_errno : -EAGAIN;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int wrc;
    while ((wrc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL)) != 0 &&
           errno == EINTR) {
    }
    close(pidfd);
    /* A probe that did not finish says nothing: not cached as "refused". */
    if (wrc != 0 || si.si_code != CLD_EXITED)
        return -ECHILD;
    int bits = si.si_status;
    if (bits & P_USER)
        *layers |= WALLS_LAYER_USER_NS;
    if ((bits & P_NOROOT) || !root)
        *layers |= WALLS_LAYER_NO_ROOT;
    for (size_t i = 0; i < NNS; i++)
        if (bits & P_NS(i))
            *layers |= namespaces[i].layer;
    return 0;
}

static int landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
}

static struct {
    pthread_mutex_t lock;
    bool done;
    unsigned layers;
} probe = {.lock = PTHREAD_MUTEX_INITIALIZER};

void walls__sandbox_at_fork(enum walls__fork_phase phase)
{
    if (phase == WALLS__FORK_PREPARE)
        pthread_mutex_lock(&probe.lock);
    else if (phase == WALLS__FORK_RESET)
        probe.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    else
        pthread_mutex_unlock(&probe.lock);
}

static int probe_cached(unsigned *layers)
{
    pthread_mutex_lock(&probe.lock);
    int rc = 0;
    if (!probe.done) {
        unsigned found = WALLS_LAYER_LIMITS;
        /* Level 6: filters load for every thread at once (TSYNC) and
         * report refused calls to a listener; the host takes that listener
         * from the worker with pidfd_getfd() (EBADF here: it exists). */
        if (seccomp_api_get() >= 6 && syscall(SYS_pidfd_getfd, -1, 0, 0) < 0 && errno == EBADF)
            found |= WALLS_LAYER_SECCOMP;
        if (landlock_abi() >= 1)
            found |= WALLS_LAYER_LANDLOCK;
        rc = probe_namespaces(&found);
        if (rc == 0) {
            probe.layers = found;
            probe.done = true;
        }
    }
    *layers = probe.layers;
    pthread_mutex_unlock(&probe.lock);
    return rc;
}

/* Appends ", name" (or "name" first) for each bit of set. */
static size_t list_layers(char *buf, size_t len, size_t at, unsigned set)
{
    bool first = true;
    for (unsigned bit = 1; bit <= WALLS_LAYER_LANDLOCK; bit <<= 1) {
        if (!(set & bit))
            continue;
        int n = snprintf(buf + (at < len ? at : len), at < len ? len - at : 0, "%s%s",
                         first ? "" : ", ", layer_name(bit));
        at += n > 0 ? (size_t)n : 0;
        first = false;
    }
    return at;
}

int walls_sandbox_probe(unsigned *layers, char *buf, size_t len)
{
    if (!buf && len > 0)
        return -EINVAL;
    unsigned found;
    int rc = probe_cached(&found);
    if (rc)
        return rc;
    if (layers)
        *layers = found;
    char line[512];
    size_t at = (size_t)snprintf(line, sizeof line, "allowed: ");
    at = list_layers(line, sizeof line, at, found);
    unsigned all = (WALLS_LAYER_LANDLOCK << 1) - 1;
    if (found != all) {
        at += (size_t)snprintf(line + at, sizeof line - at, "; refused: ");
        at = list_layers(line, sizeof line, at, all & ~found);
    }
    if (len > 0)
        snprintf(buf, len, "%s", line);
    return (int)at;
}

int walls__sandbox_plan(const struct walls_pool_opts *o, unsigned level,
                        struct walls__sandbox_conf *conf, char *text, size_t len)
{
#define BAD(...) walls__fail(-EINVAL, "walls_pool_create: " __VA_ARGS__)
    memset(conf, 0, sizeof *conf);
    bool files = o->sandbox_allow & WALLS_ALLOW_READ_FILES;
    if (o->sandbox_allow & ~(WALLS_ALLOW_NETWORK | WALLS_ALLOW_READ_FILES))
        return BAD("opts.sandbox_allow has unknown bits %#x",
                   o->sandbox_allow & ~(WALLS_ALLOW_NETWORK | WALLS_ALLOW_READ_FILES));
    if (o->sandbox_fallback > WALLS_SANDBOX_FALLBACK)
        return BAD("opts.sandbox_fallback %u is neither 0 nor WALLS_SANDBOX_FALLBACK",
                   o->sandbox_fallback);
    if (o->sandbox_allow && level != WALLS_SANDBOX_STRICT)
        return BAD("opts.sandbox_allow widens only the strict sandbox");
    if (!files && o->sandbox_read_paths)
        return BAD("opts.sandbox_read_paths given without WALLS_ALLOW_READ_FILES");
    if (files) {
        if (!o->sandbox_read_paths || !o->sandbox_read_paths[0])
            return BAD("WALLS_ALLOW_READ_FILES with no opts.sandbox_read_paths");
        size_t n = 0;
        for (; o->sandbox_read_paths[n]; n++) {
            const char *p = o->sandbox_read_paths[n];
            if (n == WALLS__SANDBOX_MAX_PATHS)
                return BAD("opts.sandbox_read_paths has more than %d paths",
                           WALLS__SANDBOX_MAX_PATHS);
            if (p[0] != '/')
                return BAD("opts.sandbox_read_paths[%zu] \"%s\" is not absolute", n, p);
            if (strlen(p) >= WALLS__SANDBOX_PATH_MAX)
                return BAD("opts.sandbox_read_paths[%zu] is %zu bytes long, over %d", n,
                           strlen(p), WALLS__SANDBOX_PATH_MAX - 1);
            memcpy(conf->paths[n], p, strlen(p) + 1);
        }
        conf->npaths = (uint32_t)n;
        /* Each must be there now: a worker that cannot open one would
         * fail to start, for a reason the program is better told here. */
        for (size_t i = 0; i < n; i++) {
            struct stat st;
            if (stat(conf->paths[i], &st) != 0)
                return walls__fail(-ENOENT,
                                   "walls_pool_create: opts.sandbox_read_paths[%zu] \"%s\": %s",
                                   i, conf->paths[i], strerror(errno));
        }
    }
    conf->allow = o->sandbox_allow;
    if (level == WALLS_SANDBOX_NONE) {
        snprintf(text, len, "; sandbox: none");
        return 0;
    }
    unsigned wanted = WALLS_LAYER_LIMITS;
    if (level == WALLS_SANDBOX_SECCOMP || level == WALLS_SANDBOX_STRICT)
        wanted |= WALLS_LAYER_SECCOMP;
    if (level == WALLS_SANDBOX_STRICT) {
        wanted |= WALLS_LAYER_USER_NS | WALLS_LAYER_NO_ROOT;
        for (size_t i = 0; i < NNS; i++)
            wanted |= namespaces[i].layer;
        if (o->sandbox_allow & WALLS_ALLOW_NETWORK)
            wanted &= ~WALLS_LAYER_NET_NS;
        if (files)
            wanted |= WALLS_LAYER_LANDLOCK;
    }
    unsigned found;
    int rc = probe_cached(&found);
    if (rc)
        return walls__fail(rc, "walls_pool_create: probing the sandbox's layers failed: %s",
                           walls_strerror(rc));
    unsigned missing = wanted & ~found;
    /* Never given up: the filter, and the path rules that are the only
     * thing between a task allowed to open files and every file. */
    unsigned essential = WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_LANDLOCK;
    if (missing && (!o->sandbox_fallback || (missing & essential))) {
        size_t at = (size_t)snprintf(text, len, "; sandbox refused by the kernel: ");
        list_layers(text, len, at, missing);
        return walls__fail(-ENOTSUP, "walls_pool_create: %s%s", text + 2,
                           (missing & essential) ? ""
                                                 : " (sandbox_fallback would run without them)");
    }
    conf->layers = wanted & found;
    static const char *const levels[] = {"none", "limits", "strict", "seccomp"};
    size_t at = (size_t)snprintf(text, len, "; sandbox: %s (", levels[level]);
    at = list_layers(text, len, at, conf->layers);
    if (level == WALLS_SANDBOX_STRICT) {
        at += (size_t)snprintf(text + (at < len ? at : len), at < len ? len - at : 0,
                               "; no PID ns");
        if (o->sandbox_allow) {
            char paths[32] = "";
            if (files)
                snprintf(paths, sizeof paths, "reading under %u path%s", conf->npaths,
                         conf->npaths == 1 ? "" : "s");
            at += (size_t)snprintf(
                text + (at < len ? at : len), at < len ? len - at : 0, "; allows: %s%s%s",
                o->sandbox_allow & WALLS_ALLOW_NETWORK ? "network" : "",
                (o->sandbox_allow & WALLS_ALLOW_NETWORK) && files ? ", " : "", paths);
        }
    }
#undef BAD
    at += (size_t)snprintf(text + (at < len ? at : len), at < len ? len - at : 0, ")");
    if (missing) {
        at += (size_t)snprintf(text + (at < len ? at : len), at < len ? len - at : 0,
                               "; fallback, refused by the kernel: ");
        list_layers(text, len, at, missing);
    }
    return 0;
}

/* ---- the filter (worker side) ------------------------------------------- */

/* Compares an argument the kernel reads as an int (or unsigned int) as the
 * kernel does: on its low 32 bits. Whatever the upper half of the register
 * holds, the rule sees the value the call will act on. */
#define INT_ARG_EQ(arg, value) SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t)(value))
#define INT_ARG_MASKED(arg, mask, value)                                                   \
    SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, (uint32_t)(mask), (uint32_t)(value))

static int allow_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
    return rc;
}

void *walls__sandbox_build(unsigned allow, int *err)
{
    /* Everything not allowed below stops in the kernel and is reported to
     * the host's listener, calls through a foreign ABI (int 0x80, x32)
     * included. */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_NOTIFY);
    if (!ctx) {
        *err = ENOMEM;
        return NULL;
    }
    static const int base[] = {
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
        SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat),
        SCMP_SYS(lseek), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(brk),
        SCMP_SYS(madvise), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(sigaltstack), SCMP_SYS(gettid), SCMP_SYS(getpid),
        SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(clock_nanosleep),
        SCMP_SYS(nanosleep), SCMP_SYS(sched_yield), SCMP_SYS(getrusage), SCMP_SYS(getrandom),
        SCMP_SYS(restart_syscall),
        /* Signal handlers, SIGSYS's too: a refused call is reported by the
         * kernel to the host, never by a signal the task could catch. */
        SCMP_SYS(rt_sigaction),
    };
    int rc = allow_all(ctx, base, sizeof base / sizeof base[0]);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_NOTIFY);
    /* Memory, never executable: no code arrives after the filter. (prot is
     * an unsigned long; only its PROT_EXEC bit is looked at.) */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                              SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* Futexes: wait and wake only; not the priority-inheritance or requeue
     * operations, which take a thread id and reach into the kernel's
     * oldest trouble. op is an int. */
    static const int futex_ops[] = {FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET};
    for (size_t i = 0; rc == 0 && i < sizeof futex_ops / sizeof futex_ops[0]; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(futex), 1,
                              INT_ARG_MASKED(1, FUTEX_CMD_MASK, futex_ops[i]));
    /* fstat, as glibc makes it: newfstatat(fd, "", AT_EMPTY_PATH). A path
     * given with the flag is looked up too, so a task can learn a path's
     * metadata (never open it). */
    if (rc == 0 && !(allow & WALLS_ALLOW_READ_FILES))
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
                              INT_ARG_MASKED(3, AT_EMPTY_PATH, AT_EMPTY_PATH));
    /* fcntl, where a group needs it: descriptor and status flags, never
     * O_ASYNC or F_SETOWN, which would send signals to any process of the
     * same user. cmd is an unsigned int, and so is F_SETFL's argument. */
    if (rc == 0 && (allow & (WALLS_ALLOW_NETWORK | WALLS_ALLOW_READ_FILES))) {
        static const int cmds[] = {F_GETFD, F_SETFD, F_GETFL};
        for (size_t i = 0; rc == 0 && i < sizeof cmds / sizeof cmds[0]; i++)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                                  INT_ARG_EQ(1, cmds[i]));
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2, INT_ARG_EQ(1, F_SETFL),
                                  INT_ARG_MASKED(2, O_ASYNC, 0));
    }
    /* Threads: refused with an error, so that pthread_create() returns
     * EPERM to the task instead of its worker being killed. clone's flags
     * are an unsigned long. Clones without CLONE_THREAD (fork) are
     * violations. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone3), 0);
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    /* Signals to itself only (raise, abort): tgkill with its own pid. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, INT_ARG_EQ(0, getpid()));
    if (rc == 0 && (allow & WALLS_ALLOW_NETWORK)) {
        static const int net[] = {
            SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
            SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(shutdown), SCMP_SYS(getsockopt),
            SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
            SCMP_SYS(poll), SCMP_SYS(ppoll),
        };
        rc = allow_all(ctx, net, sizeof net / sizeof net[0]);
        /* Internet sockets only: no UNIX, netlink or packet sockets. */
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  INT_ARG_EQ(0, AF_INET));
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  INT_ARG_EQ(0, AF_INET6));
    }
    if (rc == 0 && (allow & WALLS_ALLOW_READ_FILES)) {
        static const int files[] = {SCMP_SYS(getdents64), SCMP_SYS(newfstatat)};
        rc = allow_all(ctx, files, sizeof files / sizeof files[0]);
        /* Read-only opens; Landlock decides where. */
        if (rc == 0)
            rc = seccomp_rule_add(
                ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                INT_ARG_MASKED(2, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, 0));
    }
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc != 0) {
        seccomp_release(ctx);
        *err = -rc > 0 ? -rc : EINVAL;
        return NULL;
    }
    return ctx;
}

int walls__sandbox_load(void *filter, int *listener)
{
    /* libseccomp takes a listener numbered 0 for none, and a worker under
     * LIMITS has closed its standard streams: hold descriptor 0 (or the
     * lowest free one) while the filter loads. */
    int hold = eventfd(0, EFD_CLOEXEC);
    int rc = seccomp_load(filter);
    *listener = rc == 0 ? seccomp_notify_fd(filter) : -1;
    if (hold >= 0)
        close(hold);
    seccomp_release(filter);
    if (rc != 0)
        return -rc > 0 ? -rc : EPERM;
    return *listener >= 0 ? 0 : EIO;
}

void walls__sandbox_release(void *filter)
{
    seccomp_release(filter);
}

/* ---- the rest of STRICT (worker side) ----------------------------------- */

/* What Landlock can refuse at this ABI: everything it knows about files. */
static uint64_t landlock_handled(int abi)
{
    uint64_t all = (1ULL << 13) - 1; /* ABI 1: execute ... make_sym */
    if (abi >= 2)
        all |= 1ULL << 13; /* refer */
    if (abi >= 3)
        all |= 1ULL << 14; /* truncate */
    if (abi >= 5)
        all |= 1ULL << 15; /* ioctl_dev */
    return all;
}

/* A ruleset that allows reading under conf's paths and nothing else on
 * the file system. Returns its descriptor, or -errno. */
static int landlock_ruleset(const struct walls__sandbox_conf *conf)
{
    int abi = landlock_abi();
    if (abi < 1)
        return -ENOTSUP;
    struct landlock_ruleset_attr attr = {.handled_access_fs = landlock_handled(abi)};
    /* The first ABI's struct ends after the file-system field. */
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr,
                               sizeof attr.handled_access_fs, 0);
    if (ruleset < 0)
        return -errno;
    for (uint32_t i = 0; i < conf->npaths && i < WALLS__SANDBOX_MAX_PATHS; i++) {
        char path[WALLS__SANDBOX_PATH_MAX];
        memcpy(path, conf->paths[i], sizeof path);
        path[sizeof path - 1] = '\0';
        int fd = open(path, O_PATH | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            close(ruleset);
            return -err;
        }
        struct landlock_path_beneath_attr rule = {
            .allowed_access = LANDLOCK_ACCESS_FS_READ_FILE |
                              (S_ISDIR(st.st_mode) ? LANDLOCK_ACCESS_FS_READ_DIR : 0),
            .parent_fd = fd,
        };
        long rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
        int err = errno;
        close(fd);
        if (rc != 0) {
            close(ruleset);
            return -err;
        }
    }
    return ruleset;
}

/* Empties the bounding set (where it may) and the ambient set. */
static void drop_bounding(void)
{
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int cap = 0; cap < 64 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

/* No capabilities left: ambient, bounding, permitted, effective,
 * inheritable. */
static int drop_capabilities(void)
{
    drop_bounding();
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : errno;
}

int walls__sandbox_enter_strict(const struct walls__sandbox_conf *conf)
{
    pid_t parent = getppid();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return errno;
    int ruleset = -1;
    if (conf->allow & WALLS_ALLOW_READ_FILES) {
        /* Opened while still root: the paths' parents may be closed to
         * uid 65534, the files themselves must not be. */
        ruleset = landlock_ruleset(conf);
        if (ruleset < 0)
            return -ruleset;
    }
    int ns = 0;
    for (size_t i = 0; i < NNS; i++)
        if (conf->layers & namespaces[i].layer)
            ns |= namespaces[i].flag;
    int err = 0;
    if (geteuid() == 0) {
        /* Namespaces first, owned by the initial user namespace (root may
         * make them); then root goes, and only then does the worker get a
         * user namespace of its own, which owns nothing it could use its
         * capabilities there on. */
        if (ns && unshare(ns) != 0)
            err = errno;
        if (!err && (conf->layers & WALLS_LAYER_NO_ROOT)) {
            drop_bounding(); /* while it still may */
            if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
                setresuid(NOBODY, NOBODY, NOBODY) != 0)
                err = errno;
        }
        if (!err && (conf->layers & WALLS_LAYER_USER_NS) && unshare(CLONE_NEWUSER) != 0)
            err = errno;
    } else {
        ns |= conf->layers & WALLS_LAYER_USER_NS ? CLONE_NEWUSER : 0;
        if (ns && unshare(ns) != 0)
            err = errno;
    }
    if (!err)
        err = drop_capabilities();
    if (!err && ruleset >= 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        err = errno;
    if (ruleset >= 0)
        close(ruleset);
    /* A change of credentials cleared the parent-death signal: set it
     * again, and catch the fork server dying in between. */
    if (!err && (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent))
        err = ESRCH;
    return err;
}

const char *walls_syscall_name(int nr)
{
    static __thread char name[32];
    char *resolved = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (!resolved)
        return "unknown";
    strncpy(name, resolved, sizeof name - 1);
    name[sizeof name - 1] = '\0';
    free(resolved);
    return name;
}
