/*
 * sandbox.c - the system-call allow-list of WALLS_SANDBOX_SECCOMP workers.
 *
 * A worker builds its filter itself, with libseccomp, right after it was
 * forked from the single-threaded fork server and before it starts any
 * thread of its own; it loads the filter once its threads exist, for all of
 * them at once (TSYNC). The list holds what a computing task and the
 * worker's own loop need: memory, futexes, clocks and sleeps, reads and
 * writes on descriptors it already has, signals to itself. Everything else
 * (opening files, sockets, exec, fork, ptrace, signals to other processes,
 * and the rest) traps: the worker's SIGSYS handler writes the call's number
 * into its mailbox and dies of SIGSYS, and the host reports the task as
 * WALLS_VIOLATION with that number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"
#include "walls.h"

void *walls__sandbox_build(int *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        *err = ENOMEM;
        return NULL;
    }
    static const int allowed[] = {
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
        SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat),
        SCMP_SYS(lseek), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect),
        SCMP_SYS(mremap), SCMP_SYS(brk), SCMP_SYS(madvise), SCMP_SYS(futex),
        SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction), SCMP_SYS(sigaltstack),
        SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(clock_gettime),
        SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(sched_yield),
        SCMP_SYS(getrusage), SCMP_SYS(getrandom), SCMP_SYS(restart_syscall),
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
    /* Signals to itself only (raise, abort): tgkill with its own pid. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc != 0) {
        seccomp_release(ctx);
        *err = -rc > 0 ? -rc : EINVAL;
        return NULL;
    }
    return ctx;
}

int walls__sandbox_load(void *filter)
{
    int rc = seccomp_load(filter);
    seccomp_release(filter);
    return rc == 0 ? 0 : (-rc > 0 ? -rc : EPERM);
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
