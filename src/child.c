/*
 * child.c - what runs in a new child before its own main loop.
 *
 * Three children start here: a worker forked by the fork server, the fork
 * server forked from a still single-threaded host, and the fork server
 * re-executed from a host that already has threads. Only async-signal-safe
 * calls happen in this file; the last child makes raw system calls only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "forkserver.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#include "internal.h"
#include "module.h"
#include "worker.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Where the command line lies: the bytes between arg_start and arg_end,
 * fields 48 and 49 of /proc/self/stat (counted past the name's last ')',
 * which may itself hold spaces and parentheses). Read once: a fork keeps
 * the addresses, so the fork server's children, spares and workers alike,
 * find them already known and each start skips two system calls and a
 * file open. */
static uintptr_t args_start, args_end;

static void find_args(void)
{
    char buf[2048];
    long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = NULL;
    for (char *q = buf; *q; q++)
        if (*q == ')')
            p = q;
    if (!p)
        return;
    uintptr_t start = 0, end = 0;
    for (int field = 2; *p && field < 49; p++) {
        if (*p != ' ')
            continue;
        field++;
        uintptr_t v = 0;
        for (char *d = p + 1; *d >= '0' && *d <= '9'; d++)
            v = v * 10 + (uintptr_t)(*d - '0');
        if (field == 48)
            start = v;
        else if (field == 49)
            end = v;
    }
    if (start && end > start) {
        args_start = start;
        args_end = end;
    }
}

void walls__set_title(const char *title)
{
    prctl(PR_SET_NAME, (unsigned long)title, 0, 0, 0);
    if (!args_start)
        find_args();
    if (!args_start)
        return;
    char *args = (char *)args_start;
    size_t room = args_end - args_start, i = 0;
    for (; title[i] && i + 1 < room; i++)
        args[i] = title[i];
    for (; i < room; i++)
        args[i] = '\0';
}

/* Move fds[0..n) to 3.., closing everything above. The moves go through
 * numbers from 3 + WALLS__MSG_MAX_FDS + 8 up, n of them: a soft
 * RLIMIT_NOFILE below that (a program that lowered it when the fork
 * server started) is raised as far as the hard limit allows. */
static int settle_fds(const int *fds, int n)
{
    struct rlimit lim;
    rlim_t need = 3 + WALLS__MSG_MAX_FDS + 8 + WALLS__MSG_MAX_FDS + 1;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < need) {
        lim.rlim_cur = lim.rlim_max < need ? lim.rlim_max : need;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    int high[WALLS__MSG_MAX_FDS];
    if (n > WALLS__MSG_MAX_FDS)
        return -1;
    for (int i = 0; i < n; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + WALLS__MSG_MAX_FDS + 8)) < 0)
            return -1;
    for (int i = 0; i < n; i++)
        if (dup3(high[i], 3 + i, O_CLOEXEC) < 0)
            return -1;
    close_range(3 + (unsigned)n, ~0U, 0);
    return 0;
}

_Noreturn void walls__worker_child(const int *fds, int nfds, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A timer a task leaves armed (alarm(), setitimer()) would otherwise
     * fire in a later task of this worker and kill it: their signals are
     * ignored unless a task sets a handler of its own (walls.h). */
    signal(SIGALRM, SIG_IGN);
    signal(SIGVTALRM, SIG_IGN);
    signal(SIGPROF, SIG_IGN);
    /* Die with the fork server, and catch the race where it died before
     * the request took effect. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        _exit(errno);
    if (getppid() != parent)
        _exit(ESRCH);
    /* A process group of its own: a task that signals its group (kill(0),
     * killpg of its own) reaches this worker alone, not the fork server
     * and every pool's workers. */
    setpgid(0, 0);
    if (settle_fds(fds, nfds) != 0)
        _exit(errno ? errno : EBADF);
    walls__set_title("walls-worker");
    _exit(walls__worker_process_main(3, 4, nfds - 2));
}

/* A fork server forked from the host holds the host's mappings of every
 * pool's shared memory, read-write: arenas, shared regions, lock words,
 * mailboxes, I/O windows (all memfds named "walls-..."). Every worker
 * forked from it would hold them too, and a task, sandboxed or not, could
 * write another pool's arena through them; and the memory would outlive
 * its pool. They go before anything is served; 0, or -1 when the map of
 * this process cannot be read (the fork server then does not start). */
static int drop_host_mappings(void)
{
    char *text = walls__maps_text();
    if (!text)
        return -1;
    /* Whole first: unmapping changes the file being read. */
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line) - 1;
        unsigned long lo, hi;
        char *path = strstr(line, " /memfd:walls-");
        if (path && path < end && sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi > lo)
            munmap((void *)lo, hi - lo);
        if (!end[1])
            break;
    }
    free(text);
    return 0;
}

_Noreturn void walls__forkserver_fork_child(struct walls__fs_start *start)
{
    walls__fork_reset();
    /* What the flush before the fork could not write (a full pipe) is the
     * program's to write, not every worker's. */
    __fpurge(stdout);
    __fpurge(stderr);
    if (settle_fds(&start->ctl, 1) != 0)
        _exit(errno ? errno : EBADF);
    /* A 0-2 marked close-on-exec is not the program's stream but one of
     * its descriptors that took a free number (a pool's, if the program
     * had closed its streams): gone, as an execve() would leave it, and
     * /dev/null in its place (walls__forkserver_main). */
    for (int fd = 0; fd <= 2; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && (flags & FD_CLOEXEC))
            close(fd);
    }
    if (drop_host_mappings() != 0)
        _exit(EACCES);
    walls__forkserver_main(3, start->host);
}

/* Raw system calls only, so that nothing between fork and execve depends
 * on a lock another thread of the host held. */
_Noreturn void walls__forkserver_exec_child(struct walls__fs_start *start)
{
    /* Everything but the control socket closes at execve. */
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    syscall(SYS_fcntl, start->ctl, F_SETFD, 0);
    /* No terminal input: if the program turns out not to become the fork
     * server (libwalls was loaded with dlopen, so its constructor does not
     * run before main), it must not read what the user types. */
    long null = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
    if (null >= 0 && null != 0) {
        syscall(SYS_dup2, null, 0);
        syscall(SYS_close, null);
    }
    syscall(SYS_execve, "/proc/self/exe", start->argv, start->envp);
    syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

pid_t walls__clone_pidfd(int *pidfd, int *err)
{
    struct {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    } args = {.flags = CLONE_PIDFD, .pidfd = (uint64_t)(uintptr_t)pidfd};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        return 0;
    *err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return (pid_t)pid;
}
