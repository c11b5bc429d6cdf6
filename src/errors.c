/*
 * errors.c - names of statuses and errors, in one place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "walls.h"

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
    case -EBADF:
        return "stale handle: the pool was destroyed or the task freed";
    case -ESHUTDOWN:
        return "the pool is being destroyed";
    case -E2BIG:
        return "input larger than WALLS_INLINE_MAX";
    case -ENOTSUP:
        return "not supported by this build of walls";
    case -ECHILD:
        return "a worker process or the fork server died while starting";
    case -ENOEXEC:
        return "could not re-execute the program as the fork server";
    case -EALREADY:
        return "the task has finished already";
    case -EBUSY:
        return "the task is running and cannot be cancelled";
    case -ETIMEDOUT:
        return "timed out";
    case -EDEADLK:
        return "called from one of the pool's own workers";
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
