/*
 * bench_io.c - large inputs and outputs: one task that echoes its input,
 * 4 KiB to 64 MiB each way, through walls threads and processes, beside
 * memcpy (the same bytes copied in and back out in one process) and beside
 * a pipe (a forked child that reads the bytes and writes them back).
 * Figures only: it never passes or fails a run.
 *
 * For each size, the median (min-max) time of one round trip, over a count
 * of repetitions that shrinks as the size grows, after one untimed; and
 * the bandwidth that makes, counting the bytes each way (2 x size / time).
 * walls' round trip is submit, wait, free; the bytes are copied into the
 * task at submit, into the worker's memory when dealt (processes), written
 * by the task, and copied into the result.
 *
 * Run (from the top of the tree, after building):
 *     ./build/bench/bench_io           every size
 *     ./build/bench/bench_io --quick   fewer repetitions
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <walls.h>

#include "bench_common.h"

#define WALLS_CHECK(call) check_walls((call), #call)
#define MAX_SIZE ((size_t)64 << 20)

static int echo_task(struct walls_call *call)
{
    size_t n = call->in_len < call->out_cap ? call->in_len : call->out_cap;
    memcpy(call->out, call->in, n);
    call->out_len = n;
    return 0;
}

struct way {
    const char *name;
    /* One round trip of n bytes; returns its time in ns. */
    double (*once)(void *ctx, const unsigned char *in, unsigned char *out, size_t n);
    void *ctx;
};

static double walls_once(void *ctx, const unsigned char *in, unsigned char *out, size_t n)
{
    (void)out;
    walls_task *t;
    struct walls_result r;
    double t0 = now_ns();
    WALLS_CHECK(walls_submit(ctx, echo_task, in, n, &t));
    WALLS_CHECK(walls_wait(t, -1, &r));
    if (r.status != WALLS_OK || r.out_len != n) {
        fprintf(stderr, "bench_io: a %zu-byte echo ended %s with %zu bytes\n", n,
                walls_status_name(r.status), r.out_len);
        exit(1);
    }
    walls_task_free(t);
    return now_ns() - t0;
}

static double memcpy_once(void *ctx, const unsigned char *in, unsigned char *out, size_t n)
{
    unsigned char *mid = ctx;
    double t0 = now_ns();
    memcpy(mid, in, n);
    memcpy(out, mid, n);
    __asm__ volatile("" : : "r"(out) : "memory");
    return now_ns() - t0;
}

struct piped {
    int to_child, from_child;
    pid_t pid;
};

/* Writes (or reads) all n bytes of p; 0, or -1 on an error or end of file. */
static int move_all(int fd, unsigned char *p, size_t n, bool out)
{
    while (n) {
        ssize_t rc = out ? write(fd, p, n) : read(fd, p, n);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        p += rc;
        n -= (size_t)rc;
    }
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    return move_all(fd, (unsigned char *)(uintptr_t)p, n, true);
}

static int read_all(int fd, unsigned char *p, size_t n)
{
    return move_all(fd, p, n, false);
}

/* The child: reads a 8-byte length, then that many bytes into its own
 * buffer, writing back each piece as it comes; a length of 0 ends it. */
static void pipe_child(int in, int out)
{
    unsigned char *buf = malloc(MAX_SIZE);
    for (uint64_t n; buf && read_all(in, (unsigned char *)&n, sizeof n) == 0 && n;) {
        if (n > MAX_SIZE)
            break;
        for (uint64_t done = 0; done < n;) {
            ssize_t rc = read(in, buf + done, (size_t)(n - done));
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc <= 0 || write_all(out, buf + done, (size_t)rc) != 0)
                _exit(1);
            done += (uint64_t)rc;
        }
    }
    _exit(0);
}

static void pipe_start(struct piped *p)
{
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0) {
        perror("bench_io: pipe");
        exit(1);
    }
    p->pid = fork();
    if (p->pid < 0) {
        perror("bench_io: fork");
        exit(1);
    }
    if (p->pid == 0) {
        close(a[1]);
        close(b[0]);
        pipe_child(a[0], b[1]);
    }
    close(a[0]);
    close(b[1]);
    p->to_child = a[1];
    p->from_child = b[0];
}

static void pipe_stop(struct piped *p)
{
    uint64_t zero = 0;
    write_all(p->to_child, (unsigned char *)&zero, sizeof zero);
    close(p->to_child);
    close(p->from_child);
    wait_child(p->pid, NULL);
}

/* A payload larger than a pipe holds would block a writer that reads
 * only afterwards: the parent writes a chunk and reads back what the child
 * echoed of it, chunk by chunk. */
static double pipe_once(void *ctx, const unsigned char *in, unsigned char *out, size_t n)
{
    struct piped *p = ctx;
    double t0 = now_ns();
    uint64_t len = n;
    if (write_all(p->to_child, (unsigned char *)&len, sizeof len) != 0)
        goto fail;
    /* Interleave: write a chunk, read back what came, until both are done. */
    size_t sent = 0, got = 0;
    while (got < n) {
        if (sent < n) {
            size_t chunk = n - sent < 65536 ? n - sent : 65536;
            if (write_all(p->to_child, in + sent, chunk) != 0)
                goto fail;
            sent += chunk;
        }
        size_t want = sent - got;
        if (want && read_all(p->from_child, out + got, want) != 0)
            goto fail;
        got += want;
    }
    return now_ns() - t0;
fail:
    fprintf(stderr, "bench_io: the pipe child failed\n");
    exit(1);
}

static void run_size(const struct way *ways, int nways, size_t n, int reps,
                     const unsigned char *in, unsigned char *out)
{
    char label[32];
    if (n >= (1u << 20))
        snprintf(label, sizeof label, "%zu MiB", n >> 20);
    else
        snprintf(label, sizeof label, "%zu KiB", n >> 10);
    printf("\n%s each way, %d round trips\n", label, reps);
    double *ns = calloc((size_t)reps, sizeof *ns);
    if (!ns)
        exit(1);
    for (int w = 0; w < nways; w++) {
        ways[w].once(ways[w].ctx, in, out, n); /* untimed */
        for (int r = 0; r < reps; r++)
            ns[r] = ways[w].once(ways[w].ctx, in, out, n);
        struct summary s = summarize(ns, reps);
        char t[64];
        fmt_summary(t, sizeof t, s);
        printf("  %-18s %-28s %8.2f GB/s\n", ways[w].name, t, 2.0 * (double)n / s.med);
        fflush(stdout);
    }
    free(ns);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: bench_io [--quick]\n");
        return 2;
    }
    WALLS_CHECK(walls_init());
    struct walls_pool_opts to = {.placement = WALLS_THREADS, .threads = 1, .max_output = MAX_SIZE};
    struct walls_pool_opts po = {
        .placement = WALLS_PROCESSES, .processes = 1, .max_output = MAX_SIZE};
    walls_pool *threads, *procs;
    WALLS_CHECK(walls_pool_create(&threads, &to));
    WALLS_CHECK(walls_pool_create(&procs, &po));
    unsigned char *in = malloc(MAX_SIZE), *out = malloc(MAX_SIZE), *mid = malloc(MAX_SIZE);
    if (!in || !out || !mid)
        return 1;
    for (size_t i = 0; i < MAX_SIZE; i++)
        in[i] = (unsigned char)(i * 131);
    memset(out, 0, MAX_SIZE);
    memset(mid, 0, MAX_SIZE);
    struct piped p;
    pipe_start(&p);
    struct way ways[] = {
        {"memcpy", memcpy_once, mid},
        {"pipe (2 processes)", pipe_once, &p},
        {"walls threads", walls_once, threads},
        {"walls processes", walls_once, procs},
    };
    char model[256];
    cpu_model(model, sizeof model);
    printf("bench_io: one task echoing its input, beside memcpy and a pipe (figures only)\n");
    printf("%s; %d usable CPUs; load average %.2f; walls %s\n", model, walls_cpu_count(),
           load_average(), walls_version());
    printf("time: median (min-max) of the round trips; bandwidth: 2 x size / median\n");
    static const struct {
        size_t n;
        int reps, quick_reps;
    } sizes[] = {{4096, 2000, 200}, {65536, 1000, 100}, {1u << 20, 200, 20}, {64u << 20, 10, 3}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        run_size(ways, (int)(sizeof ways / sizeof ways[0]), sizes[k].n,
                 quick ? sizes[k].quick_reps : sizes[k].reps, in, out);
    pipe_stop(&p);
    WALLS_CHECK(walls_pool_destroy(threads, 0));
    WALLS_CHECK(walls_pool_destroy(procs, 0));
    free(in);
    free(out);
    free(mid);
    walls_fini();
    return 0;
}
