/*
 * sandbox_worker.c - the worker's side of the sandbox: the system-call
 * filter and the rest of the strict level, applied by a freshly forked
 * worker to itself.
 *
 * A worker builds its system-call filter itself, with libseccomp, right
 * after it was forked from the single-threaded fork server and before it
 * starts any thread of its own; a STRICT worker then
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
#include <unistd.h>

#include "sandbox.h"
#include "walls.h"

int walls__landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
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

/* Allows call on every descriptor but `fd` (its first argument), with the
 * comparisons in also[] besides; the descriptor is compared as the kernel
 * reads a descriptor (an unsigned int, its low 32 bits). Not-equal is not a
 * comparison libseccomp can make on 32 bits, so it is spelled out: the
 * descriptor differs from fd in bit k, for some k. */
static int allow_but_fd(scmp_filter_ctx ctx, int call, int fd, const struct scmp_arg_cmp *also,
                        unsigned n_also)
{
    int rc = 0;
    for (unsigned k = 0; k < 32 && rc == 0; k++) {
        uint32_t bit = 1u << k;
        struct scmp_arg_cmp cmp[4] = {INT_ARG_MASKED(0, bit, ~(uint32_t)fd & bit)};
        for (unsigned i = 0; i < n_also && i < 3; i++)
            cmp[1 + i] = also[i];
        rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, call, 1 + n_also, cmp);
    }
    return rc;
}

void *walls__sandbox_build(unsigned allow, int unreadable_fd, int *err)
{
    /* Everything not allowed below stops in the kernel and is reported to
     * the host's listener, calls through a foreign ABI (int 0x80, x32)
     * included. */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_NOTIFY);
    if (!ctx) {
        *err = ENOMEM;
        return NULL;
    }
    static const int reads[] = {SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(pread64)};
    static const int base[] = {
        SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat),
        SCMP_SYS(lseek), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(brk),
        SCMP_SYS(madvise), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(sigaltstack), SCMP_SYS(gettid), SCMP_SYS(getpid),
        SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(clock_nanosleep),
        SCMP_SYS(nanosleep), SCMP_SYS(sched_yield), SCMP_SYS(getrusage), SCMP_SYS(getrandom),
        SCMP_SYS(restart_syscall),
        /* Waits only: how a worker of several lanes watches its threads. */
        SCMP_SYS(futex_waitv),
        /* Signal handlers, SIGSYS's too: a refused call is reported by the
         * kernel to the host, never by a signal the task could catch. */
        SCMP_SYS(rt_sigaction),
    };
    int rc = allow_all(ctx, base, sizeof base / sizeof base[0]);
    /* Reads, but not of the pool's bell: a read would reset it, and a loop
     * watching it would miss other workers' completions. */
    for (size_t i = 0; rc == 0 && i < sizeof reads / sizeof reads[0]; i++)
        rc = unreadable_fd >= 0 ? allow_but_fd(ctx, reads[i], unreadable_fd, NULL, 0)
                                : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, reads[i], 0);
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
     * same user, and no status flags for the pool's bell, whose
     * O_NONBLOCK the host and every worker share. cmd is an unsigned int,
     * and so is F_SETFL's argument. */
    if (rc == 0 && (allow & (WALLS_ALLOW_NETWORK | WALLS_ALLOW_READ_FILES))) {
        static const int cmds[] = {F_GETFD, F_SETFD, F_GETFL};
        for (size_t i = 0; rc == 0 && i < sizeof cmds / sizeof cmds[0]; i++)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                                  INT_ARG_EQ(1, cmds[i]));
        const struct scmp_arg_cmp setfl[2] = {INT_ARG_EQ(1, F_SETFL),
                                              INT_ARG_MASKED(2, O_ASYNC, 0)};
        if (rc == 0)
            rc = unreadable_fd >= 0
                     ? allow_but_fd(ctx, SCMP_SYS(fcntl), unreadable_fd, setfl, 2)
                     : seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2, setfl);
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
    int abi = walls__landlock_abi();
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
    for (size_t i = 0; i < WALLS__SANDBOX_NNS; i++)
        if (conf->layers & walls__sandbox_namespaces[i].layer)
            ns |= walls__sandbox_namespaces[i].flag;
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
            if (setgroups(0, NULL) != 0 || setresgid(WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY) != 0 ||
                setresuid(WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY) != 0)
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
