/*
 * pipe_copy.c - sharing big data the way the seed warns of: every task's
 * bytes copied through a pipe into a forked worker process, which sums
 * them and writes the sum back.
 *
 * The parent feeds each worker from a thread of its own, so the workers
 * take their bytes side by side as a pool's workers would. A worker sums
 * chunk by chunk as they arrive and never holds a whole task's bytes. The
 * workers are forked once and serve any number of rounds; a worker exits
 * when its pipe is closed between tasks.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* 0 when all len bytes were read, 1 at end of file before any, else -errno. */
static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? 1 : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The forked worker: sums each task's bytes arriving on in, answers on out. */
static _Noreturn void worker(const struct pipe_copy *copy, int in, int out)
{
    uint64_t *chunk = malloc(PIPE_COPY_CHUNK);
    if (!chunk)
        _exit(1);
    for (;;) {
        uint64_t s = 0;
        for (size_t got = 0; got < copy->bytes; got += PIPE_COPY_CHUNK) {
            int rc = read_full(in, chunk, PIPE_COPY_CHUNK);
            if (rc == 1 && got == 0)
                _exit(0);
            if (rc != 0)
                _exit(1);
            s += copy->sum(chunk, PIPE_COPY_CHUNK);
        }
        if (write_full(out, &s, sizeof s) != 0)
            _exit(1);
    }
}

/* A parent thread feeding one worker its tasks' bytes, one after another. */
static void *feed(void *arg)
{
    struct pipe_copy_worker *w = arg;
    const struct pipe_copy *copy = w->copy;
    for (int t = 0; t < w->ntasks && w->err == 0; t++) {
        uint64_t s;
        w->err = write_full(w->to_worker, copy->buf, copy->bytes);
        if (w->err == 0)
            w->err = read_full(w->from_worker, &s, sizeof s) ? -EIO : 0;
        if (w->err == 0 && s != copy->expect)
            w->err = -EPROTO;
    }
    return NULL;
}

int pipe_copy_start(struct pipe_copy *copy)
{
    int rc = 0;
    copy->started = 0;
    copy->failed = false;
    if (copy->nworkers < 1 || copy->nworkers > PIPE_COPY_MAX_WORKERS ||
        copy->bytes % PIPE_COPY_CHUNK != 0)
        return -EINVAL;
    while (copy->started < copy->nworkers) {
        int down[2], up[2];
        if (pipe2(down, O_CLOEXEC) != 0) {
            rc = -errno;
            break;
        }
        if (pipe2(up, O_CLOEXEC) != 0) {
            rc = -errno;
            close(down[0]);
            close(down[1]);
            break;
        }
        fcntl(down[1], F_SETPIPE_SZ, (int)PIPE_COPY_CHUNK);
        pid_t pid = fork();
        if (pid == 0) {
            /* Hold no other worker's pipe ends, or it would never see EOF. */
            for (int i = 0; i < copy->started; i++) {
                close(copy->workers[i].to_worker);
                close(copy->workers[i].from_worker);
            }
            close(down[1]);
            close(up[0]);
            worker(copy, down[0], up[1]);
        }
        if (pid < 0)
            rc = -errno;
        close(down[0]);
        close(up[1]);
        if (pid < 0) {
            close(down[1]);
            close(up[0]);
            break;
        }
        copy->workers[copy->started++] =
            (struct pipe_copy_worker){down[1], up[0], pid, 0, 0, copy};
    }
    if (rc != 0) {
        copy->failed = true;
        pipe_copy_stop(copy);
    }
    return rc;
}

int pipe_copy_round(struct pipe_copy *copy, int ntasks, double *ns)
{
    pthread_t threads[PIPE_COPY_MAX_WORKERS];
    int n = copy->started, rc = 0;
    if (n == 0)
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        copy->workers[i].ntasks = ntasks / n + (i < ntasks % n);
        copy->workers[i].err = 0;
    }
    double t0 = now_ns();
    int nthreads = 0;
    for (; nthreads < n; nthreads++) {
        int e = pthread_create(&threads[nthreads], NULL, feed, &copy->workers[nthreads]);
        if (e != 0) {
            rc = -e;
            break;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
        if (rc == 0)
            rc = copy->workers[i].err;
    }
    *ns = now_ns() - t0;
    if (rc != 0)
        copy->failed = true;
    return rc;
}

void pipe_copy_stop(struct pipe_copy *copy)
{
    for (int i = 0; i < copy->started; i++) {
        close(copy->workers[i].to_worker);
        close(copy->workers[i].from_worker);
        if (copy->failed)
            kill(copy->workers[i].pid, SIGKILL);
    }
    for (int i = 0; i < copy->started; i++)
        wait_child(copy->workers[i].pid, NULL);
    copy->started = 0;
}
