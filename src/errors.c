/*
 * errors.c - names of statuses and errors, and why the last call failed,
 * in one place.
 *
 * Every public call that fails says why in words on its way out, through
 * walls__fail(): a thread-local line that walls_last_error() returns, such
 * as "walls_pool_create: opts.max_output 2147483648 is over WALLS_IO_MAX
 * 1073741824". walls_strerror() gives the meaning of a code in walls' terms.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "walls.h"

static __thread char last_error[256];

int walls__fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return err;
}

const char *walls_last_error(void)
{
    return last_error[0] ? last_error : "no walls call has failed on this thread";
}

const char *walls_status_name(enum walls_status status)
{
    static const char *const names[] = {
        [WALLS_OK] = "ok",
        [WALLS_FAILED] = "failed",
        [WALLS_CRASHED] = "crashed",
        [WALLS_EXITED] = "exited",
        [WALLS_TIMEOUT] = "timeout",
        [WALLS_KILLED] = "killed",
        [WALLS_VIOLATION] = "violation",
        [WALLS_LOST] = "lost",
        [WALLS_CANCELLED] = "cancelled",
        [WALLS_PROTOCOL] = "protocol",
        [WALLS_BROKEN] = "broken",
    };
    if ((unsigned)status >= sizeof names / sizeof names[0])
        return "unknown";
    return names[status];
}

const char *walls_strerror(int err)
{
    /* Meanings specific to walls first; then the system's text. */
    switch (err) {
    case 0:
        return "success";
    case -EINVAL:
        return "invalid argument or option (walls_last_error() names it)";
    case -EBADF:
        return "stale handle: the pool was destroyed or the task freed";
    case -EPERM:
        return "not permitted: the pool or task belongs to another process (a child of fork() "
               "cannot use its parent's), or the thread does not hold the lock";
    case -ESHUTDOWN:
        return "the pool is being destroyed";
    case -E2BIG:
        return "input larger than WALLS_IO_MAX";
    case -ENOTSUP:
        return "not supported: the kernel refuses a sandbox layer the pool asked for "
               "(walls_sandbox_probe() says which), or, across MPI ranks, what needs one "
               "machine or a higher MPI thread level (walls_last_error() says which)";
    case -ECHILD:
        return "a worker process or the fork server died while starting, or is gone; across "
               "MPI ranks, a rank could not make its pool";
    case -ENOEXEC:
        return "could not re-execute the program as the fork server, or an MPI rank runs "
               "another build";
    case -EALREADY:
        return "the task has finished already";
    case -EBUSY:
        return "busy: the task is running in a thread and cannot be cancelled, or the buffer "
               "is in use by an unfinished task";
    case -ETIMEDOUT:
        return "timed out";
    case -EDEADLK:
        return "called from one of the pool's own worker threads";
    case -ENOTCONN:
        return "walls_pool_fd() was never called on this pool, so it keeps no completions to "
               "collect";
    case -ENOENT:
        return "not found: the task function lies in no loaded module, or the buffer is not "
               "a live buffer of this pool, or the pool has no locks";
    case -EXDEV:
        return "the buffer belongs to another pool";
    case -ENOSPC:
        return "the arena has no free run of pages that large";
    case -ENAMETOOLONG:
        return "the path of the task function's module is too long for a ring slot";
    case -EOWNERDEAD:
        return "the lock was taken, but its last holder died holding it";
    case -EAGAIN:
        return "try again later: the pool has max_queued tasks waiting already (submit), or "
               "no threads or processes were left to start workers with";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *text = strerrordesc_np(-err);
        if (text)
            return text;
    }
    return "unknown error";
}

const char *walls_version(void)
{
    return WALLS_VERSION_STRING;
}
