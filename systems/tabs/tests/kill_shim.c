/*
 * kill_shim.c - a test library preloaded into walls-tabs: at the Nth call
 * of walls_submit_ex() (N = WALLS_TABS_TEST_KILL_AT), it kills every
 * worker process of this program with SIGKILL and waits for them to die
 * before the call goes on. The broker has just polled its tabs then, and
 * sends the batch of a tab whose process is gone: the race between an
 * outside kill and the broker's next batch, made to happen every time.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "walls.h"

typedef int submit_fn(walls_pool *, walls_fn *, const void *, size_t,
                      const struct walls_task_opts *, walls_task **);

/* The state letter and parent of a process, from /proc/PID/stat; 0 if gone. */
static char state_of(pid_t pid, pid_t *ppid, char *comm, size_t comm_len)
{
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *open = strchr(text, '('), *close = strrchr(text, ')');
    if (!open || !close || close[1] != ' ')
        return 0;
    if (comm) {
        size_t len = (size_t)(close - open - 1) < comm_len - 1 ? (size_t)(close - open - 1)
                                                                : comm_len - 1;
        memcpy(comm, open + 1, len);
        comm[len] = '\0';
    }
    char st = close[2];
    int parent = 0;
    sscanf(close + 4, "%d", &parent);
    if (ppid)
        *ppid = parent;
    return st;
}

static void kill_workers(void)
{
    pid_t me = getpid(), victims[64];
    int n = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d)) && n < 64;) {
        pid_t pid = atoi(e->d_name), parent, grand;
        char comm[32];
        if (pid <= 0 || !state_of(pid, &parent, comm, sizeof comm) ||
            strcmp(comm, "walls-worker") != 0)
            continue;
        if (state_of(parent, &grand, NULL, 0) && grand == me)
            victims[n++] = pid;
    }
    if (d)
        closedir(d);
    for (int i = 0; i < n; i++)
        kill(victims[i], SIGKILL);
    for (int i = 0; i < n; i++) {
        for (int tries = 0; tries < 2000; tries++) {
            char st = state_of(victims[i], NULL, NULL, 0);
            if (st == 0 || st == 'Z' || st == 'X')
                break;
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
}

int walls_submit_ex(walls_pool *pool, walls_fn *fn, const void *in, size_t in_len,
                    const struct walls_task_opts *opts, walls_task **task)
{
    static int calls;
    static submit_fn *real;
    if (!real)
        real = (submit_fn *)(uintptr_t)dlsym(RTLD_NEXT, "walls_submit_ex");
    const char *at = getenv("WALLS_TABS_TEST_KILL_AT");
    if (at && ++calls == atoi(at))
        kill_workers();
    return real(pool, fn, in, in_len, opts, task);
}
