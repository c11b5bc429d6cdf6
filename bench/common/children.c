/*
 * children.c - reaping the processes a benchmark forks, and timing the
 * smallest fork there is: a child that exits at once, reaped by its
 * parent. That bare fork is the reference the project's respawn target
 * is set against, and the seed's "processes take 1-10 ms to create" is
 * measured by it.
 */
#include "bench_common.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

int wait_child(pid_t pid, int *status)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (status)
        *status = st;
    return 0;
}

int time_fork(double *ns)
{
    double t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(0);
    int rc = wait_child(pid, NULL);
    *ns = now_ns() - t0;
    return rc;
}
