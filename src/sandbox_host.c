/*
 * sandbox_host.c - the host's side of the sandbox: which layers the kernel
 * allows, and what a pool's options ask of its workers.
 *
 * walls_sandbox_probe() learns once per process which layers the kernel
 * allows, by asking (seccomp, Landlock) and by trying (namespaces and the
 * privilege drop, in a throw-away child that makes raw system calls only,
 * so that it is safe to start from a program with threads).
 * walls__sandbox_plan() turns a pool's options into the layers its workers
 * apply, refusing a layer the kernel refuses unless the program allowed a
 * fallback. The workers apply them in sandbox_worker.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

const struct walls__sandbox_ns walls__sandbox_namespaces[WALLS__SANDBOX_NNS] = {
    {WALLS_LAYER_NET_NS, CLONE_NEWNET, "network ns"},
    {WALLS_LAYER_IPC_NS, CLONE_NEWIPC, "IPC ns"},
    {WALLS_LAYER_MOUNT_NS, CLONE_NEWNS, "mount ns"},
    {WALLS_LAYER_UTS_NS, CLONE_NEWUTS, "UTS ns"},
};

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
        for (size_t i = 0; i < WALLS__SANDBOX_NNS; i++)
            if (walls__sandbox_namespaces[i].layer == layer)
                return walls__sandbox_namespaces[i].name;
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
    for (size_t i = 0; i < WALLS__SANDBOX_NNS; i++)
        if (syscall(SYS_unshare, walls__sandbox_namespaces[i].flag) == 0)
            bits |= P_NS(i);
    if (root && syscall(SYS_setgroups, 0, NULL) == 0 &&
        syscall(SYS_setresgid, WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY) == 0 &&
        syscall(SYS_setresuid, WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY, WALLS__SANDBOX_NOBODY) == 0) {
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
    for (size_t i = 0; i < WALLS__SANDBOX_NNS; i++)
        if (bits & P_NS(i))
            *layers |= walls__sandbox_namespaces[i].layer;
    return 0;
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
        if (walls__landlock_abi() >= 1)
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
        return walls__fail(-EINVAL, "walls_sandbox_probe: buf is NULL with len %zu", len);
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
        for (size_t i = 0; i < WALLS__SANDBOX_NNS; i++)
            wanted |= walls__sandbox_namespaces[i].layer;
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
