/*
 * test-mpi.c - libwalls-mpi under mpirun: one program, one check per run,
 * chosen by argv[1]. Rank 0 makes the pool with walls_mpi_pool_create()
 * and asserts through the calls of walls.h; every other rank calls
 * walls_mpi_serve() and checks what it returns. At the end every rank
 * reports its own failures to rank 0, which gives the verdict: the
 * program exits 0 when all passed, 1 otherwise, with a line on stderr
 * naming each failed assertion and both sides of it.
 *
 *   mpirun -np 3 test-mpi correct|crash|timeout|cancel|destroy|args|victim|silent|fair|
 *                         limits|limits-own|threads|broken
 *   mpirun -np 1 test-mpi mismatch : -np 2 test-mpi-other mismatch
 *
 * Checks, each a subcommand (run-mpi-tests.sh runs them all):
 *  correct   2,000 tasks with inputs and outputs of every size class (inline,
 *            shared, several MiB, exactly WALLS_INLINE_MAX and max_output),
 *            every output compared byte for byte; walls_submit_batch,
 *            walls_wait_any, walls_pool_fd + walls_pool_collect; stats of the
 *            pool and of each rank add up, with latency percentiles, and
 *            each rank ran some; rank 0's max_output holds on a rank that
 *            asks for less; walls_pool_explain names the ranks;
 *            walls_mpi_pool_rank_stats refuses bad arguments.
 *  crash     1,000 tasks of which 10 die of SIGSEGV on both ranks; the others
 *            are right, and both ranks serve 100 more tasks afterwards.
 *  timeout   per-task and pool time limits stop sleeping tasks on the ranks,
 *            whatever the ranks' own options say; the ranks serve on.
 *  cancel    a running task, queued tasks, and a finished one (-EALREADY).
 *  destroy   destroy with tasks in flight: drained (0) or cancelled
 *            (WALLS_CANCEL); the handle is refused afterwards (-EBADF).
 *  mismatch  a rank runs another build: -ENOEXEC on every rank.
 *  args      arguments refused before any task runs, on both sides.
 *  victim    a long job for run-mpi-tests.sh to kill a serving rank in.
 *  fair      20 short tasks behind a 3 s one finish on the other rank
 *            while it runs.
 *  limits    the serving ranks keep no limit of their own (NULL options):
 *            tasks of timeout -1 and 5000 ms outlive the pool's 1 s limit;
 *  limits-own  the same with the ranks' own 300 ms limit;
 *  threads   a pool of placement WALLS_THREADS runs on the ranks' processes;
 *            a second pool on the same communicator meanwhile is -EBUSY.
 *  broken    a rank whose own pool broke (a crash loop) takes no more tasks;
 *            with both broken the pool is; walls_pool_reset() brings them back.
 *  silent    a serving rank stopped (SIGSTOP) by run-mpi-tests.sh: its
 *            limited tasks end as timeout within the grace, the rest run
 *            on the other rank.
 *
 * With WALLS_MPI_TEST_DIR set, each rank writes its pid to
 * $WALLS_MPI_TEST_DIR/rank-<n>.pid first (the victim check kills one).
 * Lines "ok <check> <details>" say what passed; timing figures are printed
 * for reading, and the bounds on them are generous (a 300 ms limit fails
 * only past 20 s), so that a loaded machine does not fail a check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "walls-mpi.h"

/* test-mpi-other is this file built with another value: a different
 * executable for the mismatch check. It is printed, so it is in the
 * program. */
#ifndef WALLS_MPI_TEST_BUILD
#define WALLS_MPI_TEST_BUILD "main"
#endif
static const char build_name[] = WALLS_MPI_TEST_BUILD;

#define MIB ((size_t)1 << 20)

static int my_rank;
static const char *check_name = "?";
static int failures;

/* ---- reporting ---- */

/* One line on stderr, written at once so that ranks' lines do not mix. */
__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "FAIL %s (rank %d, build %s): ", check_name, my_rank,
                     build_name);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line - 1)
        vsnprintf(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    failures++;
}

/* "-EINVAL" for the errors these checks expect, else the number. */
static const char *err_name(int rc)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {{0, "0"},
                 {-EINVAL, "-EINVAL"},
                 {-ENOTSUP, "-ENOTSUP"},
                 {-ENOEXEC, "-ENOEXEC"},
                 {-ECHILD, "-ECHILD"},
                 {-EBADF, "-EBADF"},
                 {-EALREADY, "-EALREADY"},
                 {-ETIMEDOUT, "-ETIMEDOUT"},
                 {-EPROTO, "-EPROTO"},
                 {-ENOMEM, "-ENOMEM"},
                 {-EBUSY, "-EBUSY"},
                 {-ESHUTDOWN, "-ESHUTDOWN"},
                 {-EPERM, "-EPERM"}};
    static __thread char other[16];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].err == rc)
            return names[i].name;
    snprintf(other, sizeof other, "%d", rc);
    return other;
}

__attribute__((format(printf, 1, 2))) static void ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ok %s ", check_name);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

/* Whether a call returned what it must; on a mismatch, says both and why. */
static bool expect_rc(int got, int want, const char *what)
{
    if (got == want)
        return true;
    fail("%s returned %s, expected %s; walls_last_error: %s", what, err_name(got),
         err_name(want), walls_last_error());
    return false;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the task ---- */

/*
 * The input of t_job: this header, then payload bytes (payload_byte()).
 * The output: k*k, the FNV-1a hash of the payload and the input's length
 * (three uint64_t), then out_size bytes of out_byte(). Before that, the task
 * sleeps sleep_ms and, if crash says so, dies of SIGSEGV.
 */
struct job {
    uint64_t k;
    uint64_t out_size;
    uint32_t sleep_ms;
    uint32_t crash;
};

enum { CRASH_NONE, CRASH_RAISE, CRASH_WRITE };

#define JOB_HEAD sizeof(struct job)
#define OUT_HEAD (3 * sizeof(uint64_t))
/* The most payload that keeps the whole input inline. */
#define PAYLOAD_INLINE_MAX (WALLS_INLINE_MAX - JOB_HEAD)

static unsigned char payload_byte(uint64_t k, size_t i)
{
    return (unsigned char)(k * 7 + i * 131 + (i >> 10));
}

static unsigned char out_byte(uint64_t k, size_t i)
{
    return (unsigned char)((k * 2654435761u) >> 7 ^ i ^ (i >> 9) * 37);
}

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* The hash of payload_byte(k, 0..n-1), without building it. */
static uint64_t payload_hash(uint64_t k, size_t n)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = (h ^ payload_byte(k, i)) * FNV_PRIME;
    return h;
}

/* A real fault, not a raised signal; exempt from the sanitizers, which
 * would report it and exit instead of letting the worker die of it. */
static volatile int *volatile nowhere;

__attribute__((no_sanitize("undefined", "address", "thread"))) static void write_nowhere(void)
{
    *nowhere = 1;
}

static int t_job(struct walls_call *call)
{
    struct job job;
    if (call->in_len < JOB_HEAD)
        return 101;
    memcpy(&job, call->in, JOB_HEAD);
    if (job.sleep_ms)
        sleep_ms(job.sleep_ms);
    if (job.crash == CRASH_RAISE) {
        raise(SIGSEGV);
    } else if (job.crash == CRASH_WRITE) {
        write_nowhere();
    }
    if (job.out_size > call->out_cap || OUT_HEAD + job.out_size > call->out_cap)
        return 102;
    uint64_t head[3] = {job.k * job.k,
                        fnv1a((const unsigned char *)call->in + JOB_HEAD, call->in_len - JOB_HEAD),
                        call->in_len};
    memcpy(call->out, head, sizeof head);
    unsigned char *out = (unsigned char *)call->out + OUT_HEAD;
    for (size_t i = 0; i < job.out_size; i++)
        out[i] = out_byte(job.k, i);
    call->out_len = OUT_HEAD + job.out_size;
    return 0;
}

/* What one task is asked to do, kept by rank 0 to check its result. */
struct spec {
    uint64_t k;
    size_t payload;
    uint64_t out_size;
    uint32_t sleep_ms;
    uint32_t crash;
};

/* The input of a spec, malloc'ed; exits on no memory. */
static void *job_input(const struct spec *s, size_t *len)
{
    struct job job = {.k = s->k, .out_size = s->out_size, .sleep_ms = s->sleep_ms,
                      .crash = s->crash};
    unsigned char *in = malloc(JOB_HEAD + s->payload);
    if (!in) {
        fprintf(stderr, "test-mpi: out of memory for an input of %zu bytes\n", s->payload);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    memcpy(in, &job, JOB_HEAD);
    for (size_t i = 0; i < s->payload; i++)
        in[JOB_HEAD + i] = payload_byte(s->k, i);
    *len = JOB_HEAD + s->payload;
    return in;
}

static int submit_spec(walls_pool *pool, const struct spec *s, const struct walls_task_opts *o,
                       walls_task **task)
{
    size_t len;
    void *in = job_input(s, &len);
    int rc = o ? walls_submit_ex(pool, t_job, in, len, o, task)
               : walls_submit(pool, t_job, in, len, task);
    free(in);
    return rc;
}

/* Whether a WALLS_OK result is exactly what s asks for; why not in why. */
static bool output_right(const struct spec *s, const struct walls_result *r, char *why, size_t len)
{
    if (r->out_len != OUT_HEAD + s->out_size) {
        snprintf(why, len, "out_len %zu, expected %" PRIu64, r->out_len, OUT_HEAD + s->out_size);
        return false;
    }
    uint64_t head[3];
    memcpy(head, r->out, sizeof head);
    uint64_t want[3] = {s->k * s->k, payload_hash(s->k, s->payload), JOB_HEAD + s->payload};
    static const char *const field[3] = {"k*k", "payload hash", "input length"};
    for (int f = 0; f < 3; f++) {
        if (head[f] != want[f]) {
            snprintf(why, len, "%s is %" PRIu64 ", expected %" PRIu64, field[f], head[f],
                     want[f]);
            return false;
        }
    }
    const unsigned char *out = (const unsigned char *)r->out + OUT_HEAD;
    for (size_t i = 0; i < s->out_size; i++) {
        if (out[i] != out_byte(s->k, i)) {
            snprintf(why, len, "output byte %zu of %" PRIu64 " is 0x%02x, expected 0x%02x", i,
                     s->out_size, out[i], out_byte(s->k, i));
            return false;
        }
    }
    return true;
}

/* Checks that task i ended WALLS_OK with s's output; counts its own
 * failures in *bad and prints only the first few. */
static void expect_ok(const struct spec *s, const struct walls_result *r, size_t i, int *bad)
{
    char why[160];
    if (r->status != WALLS_OK) {
        if ((*bad)++ < 10)
            fail("task %zu (input %zu bytes, output %" PRIu64 " bytes) ended %s code %d, "
                 "expected ok",
                 i, JOB_HEAD + s->payload, OUT_HEAD + s->out_size, walls_status_name(r->status),
                 r->code);
    } else if (r->code != 0 || !output_right(s, r, why, sizeof why)) {
        if (r->code != 0)
            snprintf(why, sizeof why, "code %d with status ok", r->code);
        if ((*bad)++ < 10)
            fail("task %zu (input %zu bytes, output %" PRIu64 " bytes): %s", i,
                 JOB_HEAD + s->payload, OUT_HEAD + s->out_size, why);
    }
}

/* Waits for a task (at most ms); false, having said why, if it did not end. */
static bool wait_result(walls_task *task, int64_t ms, struct walls_result *r, const char *what)
{
    int rc = walls_wait(task, ms, r);
    if (rc == 0)
        return true;
    fail("walls_wait(%s, %" PRId64 " ms) returned %s", what, ms, err_name(rc));
    return false;
}

/* Waits for n tasks, all of which must end OK with their spec's output. */
static int wait_all_ok(walls_task **tasks, const struct spec *specs, size_t n, int64_t ms)
{
    int bad = 0;
    int rc = walls_wait_all(tasks, n, ms);
    if (rc != 0) {
        fail("walls_wait_all(%zu tasks, %" PRId64 " ms) returned %s", n, ms, err_name(rc));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct walls_result r;
        if (!wait_result(tasks[i], 0, &r, "a task walls_wait_all found finished"))
            bad++;
        else
            expect_ok(&specs[i], &r, i, &bad);
    }
    if (bad > 10)
        fail("%d tasks wrong in all (the first 10 shown)", bad);
    return bad;
}

static void free_tasks(walls_task **tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        walls_task_free(tasks[i]);
}

/* The statistics of serving rank `rank`; zeros after a failure. */
static struct walls_stats rank_stats(walls_pool *pool, int rank)
{
    struct walls_stats st;
    memset(&st, 0, sizeof st);
    char what[64];
    snprintf(what, sizeof what, "walls_mpi_pool_rank_stats(rank %d)", rank);
    if (!expect_rc(walls_mpi_pool_rank_stats(pool, rank, &st), 0, what))
        memset(&st, 0, sizeof st);
    return st;
}

static struct walls_stats pool_stats(walls_pool *pool)
{
    struct walls_stats st;
    memset(&st, 0, sizeof st);
    if (!expect_rc(walls_pool_stats(pool, &st), 0, "walls_pool_stats"))
        memset(&st, 0, sizeof st);
    return st;
}

static walls_pool *create_pool(const struct walls_pool_opts *opts)
{
    walls_pool *pool = NULL;
    int rc = walls_mpi_pool_create(&pool, MPI_COMM_WORLD, opts);
    if (!expect_rc(rc, 0, "walls_mpi_pool_create"))
        return NULL;
    return pool;
}

static void destroy_pool(walls_pool *pool, unsigned flags)
{
    expect_rc(walls_pool_destroy(pool, flags), 0, "walls_pool_destroy");
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "test-mpi: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

/* ---- correct ---- */

#define CORRECT_N 2000
#define CORRECT_BATCH_FROM 1500 /* tasks from here on go in one walls_submit_batch */
#define CORRECT_MAX_OUTPUT (8 * MIB)

static bool in_list(size_t i, const size_t *list, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (list[j] == i)
            return true;
    return false;
}

/* Sizes of task i: mostly inline, every tenth input and seventh output
 * past WALLS_INLINE_MAX, a few of 2-4 MiB in and 3-6 MiB out, and the
 * exact limits: inputs of 480 and 481 bytes, outputs of 480 and 481 bytes
 * and one of exactly max_output. */
static struct spec correct_spec(size_t i)
{
    static const size_t big_in[] = {7, 333, 777, 1234, 1600, 1999};
    static const size_t big_out[] = {11, 555, 1111, 1234, 1555, 1888};
    struct spec s = {.k = 1000003u * i + 17};
    if (i == 1)
        s.payload = PAYLOAD_INLINE_MAX;
    else if (i == 2)
        s.payload = PAYLOAD_INLINE_MAX + 1;
    else if (i == 8)
        s.payload = 4 * MIB - JOB_HEAD;
    else if (in_list(i, big_in, sizeof big_in / sizeof big_in[0]))
        s.payload = 2 * MIB + (i * 7919) % (2 * MIB);
    else if (i % 10 == 0)
        s.payload = PAYLOAD_INLINE_MAX + 1 + (i * 613) % 60000;
    else
        s.payload = (i * 37) % (PAYLOAD_INLINE_MAX + 1);
    if (i == 3)
        s.out_size = WALLS_INLINE_MAX - OUT_HEAD;
    else if (i == 4)
        s.out_size = WALLS_INLINE_MAX + 1 - OUT_HEAD;
    else if (i == 5)
        s.out_size = CORRECT_MAX_OUTPUT - OUT_HEAD;
    else if (in_list(i, big_out, sizeof big_out / sizeof big_out[0]))
        s.out_size = 3 * MIB + (i * 104729) % (3 * MIB);
    else if (i % 7 == 0)
        s.out_size = WALLS_INLINE_MAX + 1 + (i * 211) % 40000;
    else
        s.out_size = (i * 13) % 200;
    return s;
}

static size_t task_index(walls_task *const *tasks, size_t n, const walls_task *t)
{
    for (size_t i = 0; i < n; i++)
        if (tasks[i] == t)
            return i;
    return n;
}

/* Takes what walls_pool_collect gives, counting each task in seen[]. */
static size_t collect(walls_pool *pool, walls_task **tasks, walls_task **got, unsigned *seen)
{
    size_t n = 0, total = 0;
    do {
        if (!expect_rc(walls_pool_collect(pool, got, CORRECT_N, &n), 0, "walls_pool_collect"))
            return total;
        for (size_t j = 0; j < n; j++) {
            size_t i = task_index(tasks, CORRECT_N, got[j]);
            struct walls_result r;
            if (i == CORRECT_N)
                fail("walls_pool_collect gave %p, not a task of this test", (void *)got[j]);
            else if (seen[i]++ == 1)
                fail("walls_pool_collect reported task %zu twice", i);
            else if (walls_wait(got[j], 0, &r) != 0)
                fail("walls_pool_collect reported task %zu, but walls_wait(0) says it is not "
                     "finished",
                     i);
        }
        total += n;
    } while (n > 0);
    return total;
}

static void root_correct(void)
{
    struct walls_pool_opts opts = {.processes = 1, .max_output = CORRECT_MAX_OUTPUT};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    walls_task **tasks = xcalloc(CORRECT_N, sizeof *tasks);
    walls_task **got = xcalloc(CORRECT_N, sizeof *got);
    struct spec *specs = xcalloc(CORRECT_N, sizeof *specs);
    unsigned *seen = xcalloc(CORRECT_N, sizeof *seen);
    for (size_t i = 0; i < CORRECT_N; i++)
        specs[i] = correct_spec(i);

    int fd = walls_pool_fd(pool);
    if (fd < 0)
        fail("walls_pool_fd returned %d (%s)", fd, walls_strerror(fd));

    double t0 = now_ms();
    size_t submitted = 0;
    for (size_t i = 0; i < CORRECT_BATCH_FROM; i++) {
        char what[64];
        snprintf(what, sizeof what, "walls_submit(task %zu)", i);
        if (!expect_rc(submit_spec(pool, &specs[i], NULL, &tasks[i]), 0, what))
            goto out;
        submitted++;
    }
    struct walls_input *inputs = xcalloc(CORRECT_N - CORRECT_BATCH_FROM, sizeof *inputs);
    for (size_t i = CORRECT_BATCH_FROM; i < CORRECT_N; i++) {
        struct walls_input *in = &inputs[i - CORRECT_BATCH_FROM];
        in->data = job_input(&specs[i], &in->len);
    }
    int rc = walls_submit_batch(pool, t_job, inputs, CORRECT_N - CORRECT_BATCH_FROM,
                                &tasks[CORRECT_BATCH_FROM]);
    for (size_t j = 0; j < CORRECT_N - CORRECT_BATCH_FROM; j++)
        free((void *)(uintptr_t)inputs[j].data);
    free(inputs);
    if (!expect_rc(rc, 0, "walls_submit_batch(500 tasks)"))
        goto out;
    submitted = CORRECT_N;
    ok("submitted %d tasks (%d one by one, %d in a batch), inputs 24 B to 4 MiB, outputs up to "
       "8 MiB",
       CORRECT_N, CORRECT_BATCH_FROM, CORRECT_N - CORRECT_BATCH_FROM);

    size_t idx = CORRECT_N;
    rc = walls_wait_any(tasks, CORRECT_N, 120000, &idx);
    if (expect_rc(rc, 0, "walls_wait_any")) {
        struct walls_result r;
        if (idx >= CORRECT_N)
            fail("walls_wait_any gave index %zu of %d", idx, CORRECT_N);
        else if (walls_wait(tasks[idx], 0, &r) != 0)
            fail("walls_wait_any gave task %zu, but walls_wait(0) says it is not finished", idx);
        else
            ok("walls_wait_any: task %zu finished first", idx);
    }

    size_t collected = 0;
    if (fd >= 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 120000);
        if (n != 1 || !(p.revents & POLLIN))
            fail("the walls_pool_fd descriptor did not become readable in 120 s (poll %d, "
                 "revents 0x%x)",
                 n, (unsigned)p.revents);
        collected = collect(pool, tasks, got, seen);
        if (collected == 0)
            fail("walls_pool_collect gave no task although its descriptor was readable");
        else
            ok("walls_pool_fd readable, walls_pool_collect gave %zu tasks", collected);
    }

    int bad = 0;
    for (size_t i = 0; i < CORRECT_N; i++) {
        struct walls_result r;
        char what[64];
        snprintf(what, sizeof what, "task %zu", i);
        if (!wait_result(tasks[i], 120000, &r, what)) {
            bad++;
            break;
        }
        expect_ok(&specs[i], &r, i, &bad);
    }
    double elapsed = now_ms() - t0;
    if (bad > 10)
        fail("%d of %d tasks wrong (the first 10 shown)", bad, CORRECT_N);
    else if (bad == 0)
        ok("%d outputs exact, %.0f ms", CORRECT_N, elapsed);

    if (fd >= 0) {
        collected += collect(pool, tasks, got, seen);
        size_t never = 0;
        for (size_t i = 0; i < CORRECT_N; i++)
            never += seen[i] == 0;
        if (collected != CORRECT_N || never != 0)
            fail("walls_pool_collect reported %zu tasks in all, %zu never, expected each of %d "
                 "once",
                 collected, never, CORRECT_N);
        else
            ok("walls_pool_collect reported each of the %d tasks once", CORRECT_N);
    }

    struct walls_stats s = pool_stats(pool);
    if (s.submitted != CORRECT_N || s.completed != CORRECT_N ||
        s.by_status[WALLS_OK] != CORRECT_N || s.in_flight != 0)
        fail("walls_pool_stats: submitted %" PRIu64 ", completed %" PRIu64 ", ok %" PRIu64
             ", in_flight %" PRIu64 "; expected %d, %d, %d, 0",
             s.submitted, s.completed, s.by_status[WALLS_OK], s.in_flight, CORRECT_N, CORRECT_N,
             CORRECT_N);
    else
        ok("walls_pool_stats: submitted = completed = ok = %d", CORRECT_N);

    struct walls_stats r1 = rank_stats(pool, 1), r2 = rank_stats(pool, 2);
    ok("rank 1: submitted %" PRIu64 " completed %" PRIu64 " ok %" PRIu64
       " placement %d processes %u; rank 2: submitted %" PRIu64 " completed %" PRIu64
       " ok %" PRIu64 " placement %d processes %u",
       r1.submitted, r1.completed, r1.by_status[WALLS_OK], (int)r1.placement, r1.processes,
       r2.submitted, r2.completed, r2.by_status[WALLS_OK], (int)r2.placement, r2.processes);
    if (r1.submitted + r2.submitted != s.submitted || r1.completed + r2.completed != s.completed ||
        r1.by_status[WALLS_OK] + r2.by_status[WALLS_OK] != s.by_status[WALLS_OK])
        fail("per-rank stats do not add up to the pool's: submitted %" PRIu64 "+%" PRIu64
             " vs %" PRIu64 ", completed %" PRIu64 "+%" PRIu64 " vs %" PRIu64 ", ok %" PRIu64
             "+%" PRIu64 " vs %" PRIu64,
             r1.submitted, r2.submitted, s.submitted, r1.completed, r2.completed, s.completed,
             r1.by_status[WALLS_OK], r2.by_status[WALLS_OK], s.by_status[WALLS_OK]);
    if (r1.completed == 0 || r2.completed == 0)
        fail("a rank ran no task: rank 1 completed %" PRIu64 ", rank 2 completed %" PRIu64,
             r1.completed, r2.completed);
    /* Rank 1 serves with rank 0's options (AUTO, 1 process), rank 2 with
     * its own (PROCESSES, 1 process): both run one worker process. */
    for (int rank = 1; rank <= 2; rank++) {
        const struct walls_stats *r = rank == 1 ? &r1 : &r2;
        if (r->placement != WALLS_PROCESSES || r->processes != 1 || r->queued != 0)
            fail("rank %d stats: placement %d, processes %u, queued %" PRIu64
                 "; expected WALLS_PROCESSES (%d), 1, 0",
                 rank, (int)r->placement, r->processes, r->queued, (int)WALLS_PROCESSES);
        /* Dispatch at rank 0 to the result's arrival there takes time. */
        if (r->latency_p50_ns == 0 || r->latency_p99_ns < r->latency_p50_ns)
            fail("rank %d stats: latency p50 %" PRIu64 " ns, p99 %" PRIu64
                 " ns; expected p50 above 0 and p99 at least p50 after %" PRIu64 " tasks",
                 rank, r->latency_p50_ns, r->latency_p99_ns, r->completed);
    }
    if (s.latency_p50_ns == 0 || s.latency_p99_ns < s.latency_p50_ns)
        fail("walls_pool_stats: latency p50 %" PRIu64 " ns, p99 %" PRIu64
             " ns; expected p50 above 0 and p99 at least p50",
             s.latency_p50_ns, s.latency_p99_ns);

    struct walls_stats dummy;
    expect_rc(walls_mpi_pool_rank_stats(pool, 0, &dummy), -EINVAL,
              "walls_mpi_pool_rank_stats(rank 0)");
    expect_rc(walls_mpi_pool_rank_stats(pool, 3, &dummy), -EINVAL,
              "walls_mpi_pool_rank_stats(rank 3 of 3)");
    expect_rc(walls_mpi_pool_rank_stats(pool, -1, &dummy), -EINVAL,
              "walls_mpi_pool_rank_stats(rank -1)");
    expect_rc(walls_mpi_pool_rank_stats(pool, 1, NULL), -EINVAL,
              "walls_mpi_pool_rank_stats(stats NULL)");

    char line[8192];
    int len = walls_pool_explain(pool, line, sizeof line);
    if (len < 0)
        fail("walls_pool_explain returned %d (%s)", len, walls_strerror(len));
    else if (!strstr(line, "rank 1") || !strstr(line, "rank 2"))
        fail("walls_pool_explain does not name \"rank 1\" and \"rank 2\": %s", line);
    else
        ok("walls_pool_explain: %s", line);

out:
    free_tasks(tasks, submitted);
    destroy_pool(pool, failures ? WALLS_CANCEL : 0);
    free(tasks);
    free(got);
    free(specs);
    free(seen);
    /* The pool is judged before the rank: a destroyed one is -EBADF and one
     * of this machine alone -ENOTSUP, for rank 0 too (before, -EINVAL). */
    struct walls_stats after;
    expect_rc(walls_mpi_pool_rank_stats(pool, 0, &after), -EBADF,
              "walls_mpi_pool_rank_stats(destroyed pool, rank 0)");
    walls_pool *local = NULL;
    struct walls_pool_opts lo = {.placement = WALLS_THREADS, .threads = 1};
    if (expect_rc(walls_pool_create(&local, &lo), 0, "walls_pool_create (threads)")) {
        expect_rc(walls_mpi_pool_rank_stats(local, 0, &after), -ENOTSUP,
                  "walls_mpi_pool_rank_stats(a pool of one machine, rank 0)");
        expect_rc(walls_pool_destroy(local, 0), 0, "walls_pool_destroy (threads)");
    }
}

/* ---- crash ---- */

#define CRASH_N 1000
#define CRASH_AFTER 100

static void root_crash(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    walls_task **tasks = xcalloc(CRASH_N + CRASH_AFTER, sizeof *tasks);
    struct spec *specs = xcalloc(CRASH_N + CRASH_AFTER, sizeof *specs);
    struct walls_input *inputs = xcalloc(CRASH_N + CRASH_AFTER, sizeof *inputs);
    int crashers = 0;
    for (size_t i = 0; i < CRASH_N + CRASH_AFTER; i++) {
        specs[i].k = i + 1;
        specs[i].payload = i % 50;
        specs[i].out_size = i % 9;
        /* Tasks 0 and 1 go out at once to two idle ranks of one worker
         * each, so both ranks see a crash; eight more are spread out. */
        if (i < CRASH_N && (i < 2 || (i % 100 == 50 && i > 100 && i < 900))) {
            specs[i].crash = i % 2 ? CRASH_WRITE : CRASH_RAISE;
            crashers++;
        }
        inputs[i].data = job_input(&specs[i], &inputs[i].len);
    }
    if (crashers != 10)
        fail("the test made %d crashers, meant 10", crashers);

    size_t submitted = 0;
    if (!expect_rc(walls_submit_batch(pool, t_job, inputs, CRASH_N, tasks), 0,
                   "walls_submit_batch(1000 tasks)"))
        goto out;
    submitted = CRASH_N;
    if (!expect_rc(walls_wait_all(tasks, CRASH_N, 120000), 0, "walls_wait_all(1000 tasks)"))
        goto out;
    int bad = 0, crashed = 0;
    for (size_t i = 0; i < CRASH_N; i++) {
        struct walls_result r;
        if (!wait_result(tasks[i], 0, &r, "a finished task"))
            goto out;
        if (specs[i].crash == CRASH_NONE) {
            expect_ok(&specs[i], &r, i, &bad);
        } else if (r.status != WALLS_CRASHED || r.code != SIGSEGV) {
            fail("task %zu (%s) ended %s code %d, expected crashed code %d (SIGSEGV)", i,
                 specs[i].crash == CRASH_RAISE ? "raise(SIGSEGV)" : "write through NULL",
                 walls_status_name(r.status), r.code, SIGSEGV);
            bad++;
        } else {
            crashed++;
        }
    }
    if (bad == 0)
        ok("%d tasks ok with the right output, %d crashed with SIGSEGV", CRASH_N - crashed,
           crashed);

    struct walls_stats before[3];
    for (int rank = 1; rank <= 2; rank++)
        before[rank] = rank_stats(pool, rank);
    ok("after the crashes: rank 1 crashed %" PRIu64 " completed %" PRIu64 " restarts %" PRIu64
       "; rank 2 crashed %" PRIu64 " completed %" PRIu64 " restarts %" PRIu64,
       before[1].by_status[WALLS_CRASHED], before[1].completed, before[1].restarts,
       before[2].by_status[WALLS_CRASHED], before[2].completed, before[2].restarts);
    if (before[1].by_status[WALLS_CRASHED] + before[2].by_status[WALLS_CRASHED] != 10)
        fail("the ranks count %" PRIu64 "+%" PRIu64 " crashes, expected 10 in all",
             before[1].by_status[WALLS_CRASHED], before[2].by_status[WALLS_CRASHED]);
    if (before[1].by_status[WALLS_CRASHED] == 0 || before[2].by_status[WALLS_CRASHED] == 0)
        fail("the crashes did not land on both ranks (rank 1: %" PRIu64 ", rank 2: %" PRIu64
             "), though tasks 0 and 1 both crash and went out together to ranks of one worker",
             before[1].by_status[WALLS_CRASHED], before[2].by_status[WALLS_CRASHED]);

    if (!expect_rc(walls_submit_batch(pool, t_job, inputs + CRASH_N, CRASH_AFTER, tasks + CRASH_N),
                   0, "walls_submit_batch(100 tasks after the crashes)"))
        goto out;
    submitted += CRASH_AFTER;
    if (wait_all_ok(tasks + CRASH_N, specs + CRASH_N, CRASH_AFTER, 60000) != 0)
        goto out;
    struct walls_stats after1 = rank_stats(pool, 1), after2 = rank_stats(pool, 2);
    uint64_t d1 = after1.by_status[WALLS_OK] - before[1].by_status[WALLS_OK];
    uint64_t d2 = after2.by_status[WALLS_OK] - before[2].by_status[WALLS_OK];
    if (d1 == 0 || d2 == 0 || d1 + d2 != CRASH_AFTER)
        fail("after the crashes rank 1 completed %" PRIu64 " and rank 2 %" PRIu64
             " of the %d new tasks: expected both some, %d in all",
             d1, d2, CRASH_AFTER, CRASH_AFTER);
    else
        ok("%d tasks after the crashes all ok: rank 1 ran %" PRIu64 ", rank 2 ran %" PRIu64,
           CRASH_AFTER, d1, d2);

    struct walls_stats s = pool_stats(pool);
    if (s.submitted != CRASH_N + CRASH_AFTER || s.completed != CRASH_N + CRASH_AFTER ||
        s.by_status[WALLS_CRASHED] != 10 || s.by_status[WALLS_OK] != CRASH_N + CRASH_AFTER - 10)
        fail("walls_pool_stats: submitted %" PRIu64 " completed %" PRIu64 " ok %" PRIu64
             " crashed %" PRIu64 "; expected %d %d %d 10",
             s.submitted, s.completed, s.by_status[WALLS_OK], s.by_status[WALLS_CRASHED],
             CRASH_N + CRASH_AFTER, CRASH_N + CRASH_AFTER, CRASH_N + CRASH_AFTER - 10);
    else
        ok("walls_pool_stats: %d ok, 10 crashed", CRASH_N + CRASH_AFTER - 10);

out:
    for (size_t i = 0; i < CRASH_N + CRASH_AFTER; i++)
        free((void *)(uintptr_t)inputs[i].data);
    free(inputs);
    free_tasks(tasks, submitted);
    destroy_pool(pool, failures ? WALLS_CANCEL : 0);
    free(tasks);
    free(specs);
}

/* ---- timeout ---- */

#define POOL_LIMIT_MS 2000
#define TIMEOUT_BOUND_MS 20000.0 /* past this a limit was not enforced */

/* Submits two tasks that sleep 10 s (with per-task limit task_ms, or the
 * pool's when 0) and waits for both: they must end WALLS_TIMEOUT, not
 * before min_ms and not after TIMEOUT_BOUND_MS. */
static void two_sleepers(walls_pool *pool, int64_t task_ms, double min_ms, const char *what)
{
    struct spec s = {.k = 5, .sleep_ms = 10000};
    struct walls_task_opts o = {.timeout_ms = task_ms};
    walls_task *t[2] = {NULL, NULL};
    double t0 = now_ms();
    for (int i = 0; i < 2; i++) {
        s.k = (uint64_t)i;
        if (!expect_rc(submit_spec(pool, &s, task_ms ? &o : NULL, &t[i]), 0, what))
            goto out;
    }
    double took[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct walls_result r;
        if (!wait_result(t[i], (int64_t)TIMEOUT_BOUND_MS, &r, what))
            goto out;
        took[i] = now_ms() - t0;
        if (r.status != WALLS_TIMEOUT)
            fail("%s: task %d ended %s code %d after %.0f ms, expected timeout", what, i,
                 walls_status_name(r.status), r.code, took[i]);
        else if (took[i] < min_ms)
            fail("%s: task %d ended timeout after %.0f ms, before its limit (%.0f ms)", what, i,
                 took[i], min_ms);
    }
    ok("%s: 2 tasks sleeping 10 s ended timeout after %.0f and %.0f ms%s", what, took[0],
       took[1], took[1] > 5000 ? " (slow: over 5 s)" : "");
out:
    free_tasks(t, 2);
}

/* Checks that ranks 1 and 2 each finished some of the n tasks ok since
 * before (their stats then); says how many each ran. */
static void expect_both_ran(walls_pool *pool, const struct walls_stats before[3], size_t n,
                            const char *what)
{
    struct walls_stats after[3];
    for (int rank = 1; rank <= 2; rank++)
        after[rank] = rank_stats(pool, rank);
    uint64_t d1 = after[1].by_status[WALLS_OK] - before[1].by_status[WALLS_OK];
    uint64_t d2 = after[2].by_status[WALLS_OK] - before[2].by_status[WALLS_OK];
    if (d1 == 0 || d2 == 0)
        fail("%s: rank 1 ran %" PRIu64 " and rank 2 ran %" PRIu64 " of %zu tasks: expected both "
             "some",
             what, d1, d2, n);
    else
        ok("%s: %zu tasks ok, rank 1 ran %" PRIu64 ", rank 2 ran %" PRIu64, what, n, d1, d2);
}

static void root_timeout(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1,
                                   .task_timeout_ms = POOL_LIMIT_MS};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    struct walls_stats before[3], after[3];
    walls_task *t[10] = {NULL};
    struct spec specs[10];

    two_sleepers(pool, 300, 300, "per-task limit 300 ms");
    /* The ranks' own options set a 60 s limit: rank 0's 2 s holds. */
    two_sleepers(pool, 0, POOL_LIMIT_MS, "pool limit 2000 ms");

    /* No limit for this one, though it outlives the pool's. */
    struct spec slow = {.k = 77, .sleep_ms = POOL_LIMIT_MS + 500, .out_size = 100};
    struct walls_task_opts unlimited = {.timeout_ms = -1};
    walls_task *st = NULL;
    if (expect_rc(submit_spec(pool, &slow, &unlimited, &st), 0, "walls_submit_ex(timeout -1)")) {
        struct walls_result r;
        int bad = 0;
        if (wait_result(st, 30000, &r, "a task of timeout -1 sleeping 2.5 s")) {
            expect_ok(&slow, &r, 0, &bad);
            if (!bad)
                ok("a task with timeout_ms -1 ran 2.5 s past the pool's 2 s limit and ended ok");
        }
    }
    walls_task_free(st);

    for (int rank = 1; rank <= 2; rank++)
        before[rank] = rank_stats(pool, rank);
    /* Ten tasks of 100 ms, within the per-task limit of 300 ms: both
     * ranks, whose workers were killed for the overruns, serve them. */
    struct walls_task_opts o = {.timeout_ms = 300};
    size_t n = 0;
    for (; n < 10; n++) {
        specs[n] = (struct spec){.k = 100 + n, .sleep_ms = 100, .payload = 600, .out_size = 400};
        if (!expect_rc(submit_spec(pool, &specs[n], &o, &t[n]), 0, "walls_submit_ex(100 ms task)"))
            break;
    }
    if (n == 10 && wait_all_ok(t, specs, n, 60000) == 0) {
        expect_both_ran(pool, before, n, "after the timeouts, tasks of 100 ms");
        for (int rank = 1; rank <= 2; rank++)
            after[rank] = rank_stats(pool, rank);
        uint64_t timeouts = after[1].by_status[WALLS_TIMEOUT] + after[2].by_status[WALLS_TIMEOUT];
        if (timeouts != 4)
            fail("the ranks count %" PRIu64 "+%" PRIu64 " timeouts, expected 4 in all",
                 after[1].by_status[WALLS_TIMEOUT], after[2].by_status[WALLS_TIMEOUT]);
    }
    free_tasks(t, n);
    destroy_pool(pool, failures ? WALLS_CANCEL : 0);
}

/* ---- cancel ---- */

static void root_cancel(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    walls_task *running[2] = {NULL, NULL}, *queued[5] = {NULL}, *done = NULL;
    struct spec s = {.k = 9, .sleep_ms = 60000};
    struct walls_result r;

    /* Two long tasks: one running on each rank (a rank of one worker is
     * given one task at a time). */
    for (int i = 0; i < 2; i++)
        if (!expect_rc(submit_spec(pool, &s, NULL, &running[i]), 0, "walls_submit(long task)"))
            goto out;
    double t0 = now_ms();
    struct walls_stats r1, r2;
    do {
        sleep_ms(10);
        r1 = rank_stats(pool, 1);
        r2 = rank_stats(pool, 2);
    } while ((r1.in_flight != 1 || r2.in_flight != 1) && now_ms() - t0 < 10000 && !failures);
    if (r1.in_flight != 1 || r2.in_flight != 1)
        fail("two long tasks submitted, but after %.0f ms rank 1 has %" PRIu64
             " in flight and rank 2 %" PRIu64 ", expected 1 each",
             now_ms() - t0, r1.in_flight, r2.in_flight);
    sleep_ms(300); /* let them start sleeping in their workers */

    /* Five more wait at rank 0, behind the busy ranks. */
    for (int i = 0; i < 5; i++)
        if (!expect_rc(submit_spec(pool, &s, NULL, &queued[i]), 0, "walls_submit(queued task)"))
            goto out;
    int cancelled = 0;
    for (int i = 0; i < 5; i++) {
        if (!expect_rc(walls_cancel(queued[i]), 0, "walls_cancel(queued task)"))
            continue;
        if (!wait_result(queued[i], 2000, &r, "a queued task just cancelled"))
            continue;
        if (r.status != WALLS_CANCELLED || r.attempts != 0)
            fail("queued task %d cancelled ended %s code %d attempts %u, expected cancelled, "
                 "attempts 0",
                 i, walls_status_name(r.status), r.code, r.attempts);
        else
            cancelled++;
    }
    if (cancelled == 5)
        ok("5 queued tasks cancelled: cancelled, never started");

    for (int i = 0; i < 2; i++) {
        double c0 = now_ms();
        if (!expect_rc(walls_cancel(running[i]), 0, "walls_cancel(running task)"))
            continue;
        if (!wait_result(running[i], 15000, &r, "a running task just cancelled"))
            continue;
        double took = now_ms() - c0;
        if (r.status != WALLS_CANCELLED)
            fail("running task %d cancelled ended %s code %d, expected cancelled", i,
                 walls_status_name(r.status), r.code);
        else
            ok("running task %d (sleeping 60 s) cancelled: ended cancelled %.0f ms after "
               "walls_cancel",
               i, took);
        expect_rc(walls_cancel(running[i]), -EALREADY, "walls_cancel(a cancelled task)");
    }

    struct spec quick = {.k = 12345, .payload = 1000, .out_size = 400};
    if (expect_rc(submit_spec(pool, &quick, NULL, &done), 0, "walls_submit(quick task)") &&
        wait_result(done, 30000, &r, "a quick task")) {
        int bad = 0;
        expect_ok(&quick, &r, 0, &bad);
        if (expect_rc(walls_cancel(done), -EALREADY, "walls_cancel(finished task)") && !bad)
            ok("a finished task: walls_cancel gives -EALREADY");
    }

    /* Both ranks, whose workers were killed, still serve. */
    struct spec more[4];
    walls_task *mt[4] = {NULL};
    size_t n = 0;
    for (; n < 4; n++) {
        more[n] = (struct spec){.k = 200 + n, .payload = 10, .out_size = 10, .sleep_ms = 50};
        if (!expect_rc(submit_spec(pool, &more[n], NULL, &mt[n]), 0, "walls_submit(after)"))
            break;
    }
    if (n == 4 && wait_all_ok(mt, more, 4, 30000) == 0)
        ok("4 tasks after the cancels ok");
    free_tasks(mt, n);

    struct walls_stats ps = pool_stats(pool);
    struct walls_stats a1 = rank_stats(pool, 1), a2 = rank_stats(pool, 2);
    if (ps.by_status[WALLS_CANCELLED] != 7)
        fail("walls_pool_stats counts %" PRIu64 " cancelled, expected 7",
             ps.by_status[WALLS_CANCELLED]);
    /* Tasks cancelled while they waited at rank 0 were given to no rank. */
    if (a1.by_status[WALLS_CANCELLED] + a2.by_status[WALLS_CANCELLED] != 2 ||
        a1.submitted + a2.submitted != ps.submitted - 5)
        fail("rank stats: cancelled %" PRIu64 "+%" PRIu64 " (expected 2 in all: the running "
             "ones), submitted %" PRIu64 "+%" PRIu64 " (expected %" PRIu64
             ": all but the 5 cancelled at rank 0)",
             a1.by_status[WALLS_CANCELLED], a2.by_status[WALLS_CANCELLED], a1.submitted,
             a2.submitted, ps.submitted - 5);
out:
    free_tasks(running, 2);
    free_tasks(queued, 5);
    walls_task_free(done);
    destroy_pool(pool, WALLS_CANCEL);
}

/* ---- destroy ---- */

#define DESTROY_N 200

static void destroy_run(unsigned flags)
{
    const char *how = flags ? "WALLS_CANCEL" : "0";
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    walls_task *tasks[DESTROY_N] = {NULL};
    struct spec specs[DESTROY_N];
    size_t n = 0;
    for (; n < DESTROY_N; n++) {
        specs[n] = (struct spec){.k = n, .sleep_ms = 5, .payload = n, .out_size = n};
        if (!expect_rc(submit_spec(pool, &specs[n], NULL, &tasks[n]), 0, "walls_submit"))
            break;
    }
    double t0 = now_ms();
    char what[64];
    snprintf(what, sizeof what, "walls_pool_destroy(%s) with %zu tasks in flight", how, n);
    expect_rc(walls_pool_destroy(pool, flags), 0, what);
    double took = now_ms() - t0;

    int okn = 0, cancelled = 0, bad = 0, unfinished = 0;
    for (size_t i = 0; i < n; i++) {
        struct walls_result r;
        int rc = walls_wait(tasks[i], 0, &r);
        if (rc != 0) {
            if (unfinished++ < 5)
                fail("after walls_pool_destroy(%s) returned, walls_wait(task %zu, 0) gives %s: "
                     "not final",
                     how, i, err_name(rc));
            continue;
        }
        if (flags && r.status == WALLS_CANCELLED) {
            cancelled++;
            continue;
        }
        int before = bad;
        expect_ok(&specs[i], &r, i, &bad);
        okn += bad == before;
    }
    if (flags == 0 && okn == DESTROY_N)
        ok("walls_pool_destroy(0) took %.0f ms, drained: all %d tasks ok", took, DESTROY_N);
    else if (flags && okn + cancelled == DESTROY_N)
        ok("walls_pool_destroy(WALLS_CANCEL) took %.0f ms: %d tasks ok, %d cancelled", took, okn,
           cancelled);
    else
        fail("after walls_pool_destroy(%s): %d ok, %d cancelled, %d wrong, %d not final of %zu",
             how, okn, cancelled, bad, unfinished, n);

    walls_task *late = NULL;
    struct walls_stats st;
    bool refused = expect_rc(walls_submit(pool, t_job, NULL, 0, &late), -EBADF,
                             "walls_submit on a destroyed pool");
    refused &= expect_rc(walls_pool_stats(pool, &st), -EBADF,
                         "walls_pool_stats on a destroyed pool");
    refused &= expect_rc(walls_mpi_pool_rank_stats(pool, 1, &st), -EBADF,
                         "walls_mpi_pool_rank_stats on a destroyed pool");
    refused &= expect_rc(walls_pool_destroy(pool, 0), -EBADF, "walls_pool_destroy again");
    if (refused)
        ok("after walls_pool_destroy(%s) the handle is refused with -EBADF", how);
    free_tasks(tasks, n);
}

static void root_destroy(void)
{
    destroy_run(0);
    destroy_run(WALLS_CANCEL);
}

/* ---- mismatch ---- */

static void root_mismatch(void)
{
    walls_pool *pool = NULL;
    int rc = walls_mpi_pool_create(&pool, MPI_COMM_WORLD, NULL);
    if (!expect_rc(rc, -ENOEXEC, "walls_mpi_pool_create with ranks 1-2 running another build")) {
        if (rc == 0)
            destroy_pool(pool, 0);
        return;
    }
    const char *why = walls_last_error();
    if (!strstr(why, "rank 1") && !strstr(why, "rank 2"))
        fail("walls_last_error does not name rank 1 or rank 2: \"%s\"", why);
    else
        ok("walls_mpi_pool_create: -ENOEXEC, \"%s\"", why);
}

/* ---- args ---- */

/* Bad calls of walls_mpi_pool_create on MPI_COMM_WORLD, made by rank 0
 * before its good one: a serving rank calls walls_mpi_serve once more than
 * this at most (once if rank 0 refuses them without a word to the ranks,
 * once per bad call if each ends the ranks' walls_mpi_serve too). */
#define ARGS_WORLD_BAD 5

static void bad_create(const struct walls_pool_opts *opts, MPI_Comm comm, int want,
                       const char *what)
{
    walls_pool *pool = NULL;
    int rc = walls_mpi_pool_create(&pool, comm, opts);
    if (expect_rc(rc, want, what))
        ok("%s: %s, \"%s\"", what, err_name(rc), walls_last_error());
    else if (rc == 0)
        destroy_pool(pool, WALLS_CANCEL);
}

static void root_args(void)
{
    struct walls_pool_opts good = {.placement = WALLS_PROCESSES, .processes = 1};
    struct walls_pool_opts bad;
    int rc;

    rc = walls_mpi_pool_create(NULL, MPI_COMM_WORLD, &good);
    if (expect_rc(rc, -EINVAL, "walls_mpi_pool_create(NULL pool)"))
        ok("walls_mpi_pool_create(NULL pool): -EINVAL, \"%s\"", walls_last_error());
    bad = good;
    bad.arena_size = MIB;
    bad_create(&bad, MPI_COMM_WORLD, -ENOTSUP, "walls_mpi_pool_create(arena_size 1 MiB)");
    bad = good;
    bad.locks = 4;
    bad_create(&bad, MPI_COMM_WORLD, -ENOTSUP, "walls_mpi_pool_create(locks 4)");
    bad = good;
    bad.shared_size = 4096;
    bad_create(&bad, MPI_COMM_WORLD, -ENOTSUP, "walls_mpi_pool_create(shared_size 4096)");
    bad = good;
    bad.reserved[0] = 1;
    bad_create(&bad, MPI_COMM_WORLD, -EINVAL, "walls_mpi_pool_create(reserved[0] 1)");
    /* Communicators no serving rank is in. */
    bad_create(&good, MPI_COMM_NULL, -EINVAL, "walls_mpi_pool_create(MPI_COMM_NULL)");
    bad_create(&good, MPI_COMM_SELF, -EINVAL, "walls_mpi_pool_create(MPI_COMM_SELF: one rank)");

    rc = walls_mpi_serve(MPI_COMM_WORLD, NULL);
    if (expect_rc(rc, -EINVAL, "walls_mpi_serve on rank 0"))
        ok("walls_mpi_serve on rank 0: -EINVAL, \"%s\"", walls_last_error());

    /* A pool of walls.h is not one of walls_mpi_pool_create()'s. */
    walls_pool *local = NULL;
    struct walls_pool_opts threads = {.placement = WALLS_THREADS, .threads = 1};
    if (expect_rc(walls_pool_create(&local, &threads), 0, "walls_pool_create(local threads)")) {
        struct walls_stats st;
        rc = walls_mpi_pool_rank_stats(local, 1, &st);
        if (expect_rc(rc, -ENOTSUP, "walls_mpi_pool_rank_stats(a local pool)"))
            ok("walls_mpi_pool_rank_stats(a local pool): -ENOTSUP");
        expect_rc(walls_pool_destroy(local, 0), 0, "walls_pool_destroy(local pool)");
    }

    /* Now a good pool, so that the serving ranks' last walls_mpi_serve returns 0. */
    walls_pool *pool = create_pool(&good);
    if (!pool)
        return;
    struct spec s = {.k = 3, .payload = 3, .out_size = 3};
    walls_task *t = NULL;
    struct walls_result r;
    if (expect_rc(submit_spec(pool, &s, NULL, &t), 0, "walls_submit") &&
        wait_result(t, 30000, &r, "a task")) {
        int bad_n = 0;
        expect_ok(&s, &r, 0, &bad_n);
        if (!bad_n)
            ok("after the refused calls a good pool runs a task");
    }
    walls_task_free(t);
    destroy_pool(pool, 0);
}

/* The serving ranks' side of args: refusals first, then serve until rank
 * 0's good pool ends. */
static void serve_args(void)
{
    walls_pool *pool = NULL;
    int rc = walls_mpi_pool_create(&pool, MPI_COMM_WORLD, NULL);
    expect_rc(rc, -EINVAL, "walls_mpi_pool_create on a serving rank");
    if (rc == 0)
        walls_pool_destroy(pool, WALLS_CANCEL);
    expect_rc(walls_mpi_serve(MPI_COMM_NULL, NULL), -EINVAL, "walls_mpi_serve(MPI_COMM_NULL)");
    /* This rank is rank 0 of MPI_COMM_SELF, and asks for threads besides. */
    struct walls_pool_opts threads = {.placement = WALLS_THREADS};
    expect_rc(walls_mpi_serve(MPI_COMM_SELF, &threads), -EINVAL,
              "walls_mpi_serve(MPI_COMM_SELF, placement WALLS_THREADS)");

    int rcs[ARGS_WORLD_BAD + 1];
    int calls = 0;
    do {
        rcs[calls] = walls_mpi_serve(MPI_COMM_WORLD, NULL);
    } while (rcs[calls++] != 0 && calls < ARGS_WORLD_BAD + 1);
    if (rcs[calls - 1] != 0) {
        fail("walls_mpi_serve returned %s at its call %d; expected 0 once rank 0's good pool "
             "is destroyed (%s)",
             err_name(rcs[calls - 1]), calls, walls_last_error());
    } else if (calls > 1) {
        char list[128] = "";
        for (int i = 0; i < calls - 1; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), " %s", err_name(rcs[i]));
        printf("note args rank %d: walls_mpi_serve returned%s for rank 0's bad calls, then 0\n",
               my_rank, list);
    }
}

/* ---- victim ---- */

/* A long job of sleeping tasks: run-mpi-tests.sh kills a serving rank
 * while it runs. Finishing it means nobody killed anything. */
static void root_victim(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    enum { N = 300 };
    walls_task *tasks[N] = {NULL};
    struct spec specs[N];
    size_t n = 0;
    for (; n < N; n++) {
        specs[n] = (struct spec){.k = n, .sleep_ms = 200, .payload = n, .out_size = n};
        if (!expect_rc(submit_spec(pool, &specs[n], NULL, &tasks[n]), 0, "walls_submit"))
            break;
    }
    ok("submitted %zu tasks of 200 ms", n);
    wait_all_ok(tasks, specs, n, 110000);
    ok("all %zu tasks ended: no rank died", n);
    free_tasks(tasks, n);
    destroy_pool(pool, 0);
}

/* ---- fair ---- */

/* A long task on one rank must not hold the tasks behind it while the
 * other rank idles: 20 short tasks submitted after a 3 s one all finish
 * while it still runs. */
static void root_fair(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    enum { SHORT = 20 };
    struct spec long_spec = {.k = 1, .sleep_ms = 3000}, short_spec[SHORT];
    walls_task *long_task = NULL, *shorts[SHORT] = {NULL};
    expect_rc(submit_spec(pool, &long_spec, NULL, &long_task), 0, "walls_submit");
    for (size_t i = 0; i < SHORT; i++) {
        short_spec[i] = (struct spec){.k = 10 + i, .sleep_ms = 5, .payload = i, .out_size = i};
        expect_rc(submit_spec(pool, &short_spec[i], NULL, &shorts[i]), 0, "walls_submit");
    }
    double t0 = now_ms();
    wait_all_ok(shorts, short_spec, SHORT, 60000);
    double shorts_ms = now_ms() - t0;
    struct walls_result r;
    bool long_done = walls_wait(long_task, 0, &r) == 0;
    if (long_done)
        fail("the 3 s task had ended when the short ones did (%.0f ms): they waited behind it",
             shorts_ms);
    else
        ok("20 short tasks done in %.0f ms while the 3 s task still ran", shorts_ms);
    if (wait_result(long_task, 60000, &r, "the long task") && r.status != WALLS_OK)
        fail("the long task ended %s", walls_status_name(r.status));
    walls_task_free(long_task);
    free_tasks(shorts, SHORT);
    destroy_pool(pool, 0);
}

/* ---- silent ---- */

/* A serving rank that is alive but silent: run-mpi-tests.sh stops rank 1
 * (SIGSTOP) once rank 0 says "ok silent ready", and says so by creating
 * $WALLS_MPI_TEST_DIR/stopped. Limited tasks given to it must end as
 * WALLS_TIMEOUT within their limit and the 5 s grace, and the tasks
 * behind them run on rank 2. The script resumes rank 1 (SIGCONT) once
 * rank 0 says "ok silent given up", so that the pool can be destroyed. */
static void root_silent(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1};
    walls_pool *pool = create_pool(&opts);
    const char *dir = getenv("WALLS_MPI_TEST_DIR");
    if (!pool)
        return;
    if (!dir || !*dir) {
        fail("WALLS_MPI_TEST_DIR is not set: run it from run-mpi-tests.sh");
        destroy_pool(pool, WALLS_CANCEL);
        return;
    }
    char stopped[4096];
    snprintf(stopped, sizeof stopped, "%s/stopped", dir);
    ok("ready");
    double t0 = now_ms();
    while (access(stopped, F_OK) != 0 && now_ms() - t0 < 60000)
        sleep_ms(50);
    if (access(stopped, F_OK) != 0) {
        fail("rank 1 was not stopped within 60 s");
        destroy_pool(pool, WALLS_CANCEL);
        return;
    }
    /* One sleeper per rank, each with a 500 ms limit, then short tasks. */
    enum { SLEEPERS = 2, SHORT = 20 };
    walls_task *sleepers[SLEEPERS] = {NULL}, *shorts[SHORT] = {NULL};
    struct spec sleep_spec[SLEEPERS], short_spec[SHORT];
    struct walls_task_opts limit = {.timeout_ms = 500};
    t0 = now_ms();
    for (size_t i = 0; i < SLEEPERS; i++) {
        sleep_spec[i] = (struct spec){.k = i, .sleep_ms = 20000};
        expect_rc(submit_spec(pool, &sleep_spec[i], &limit, &sleepers[i]), 0, "walls_submit_ex");
    }
    for (size_t i = 0; i < SHORT; i++) {
        short_spec[i] = (struct spec){.k = 100 + i, .payload = i, .out_size = i};
        expect_rc(submit_spec(pool, &short_spec[i], &limit, &shorts[i]), 0, "walls_submit_ex");
    }
    for (size_t i = 0; i < SLEEPERS; i++) {
        struct walls_result r;
        if (sleepers[i] && wait_result(sleepers[i], 30000, &r, "a sleeper") &&
            r.status != WALLS_TIMEOUT)
            fail("sleeper %zu ended %s, expected timeout", i, walls_status_name(r.status));
    }
    double took = now_ms() - t0;
    /* 500 ms, the 5 s grace, and room for a loaded machine. */
    if (took > 20000)
        fail("the sleepers took %.0f ms to end, expected under 20 s", took);
    wait_all_ok(shorts, short_spec, SHORT, 30000);
    struct walls_stats r2 = rank_stats(pool, 2);
    ok("given up: the sleepers ended as timeout within %.0f ms; %" PRIu64 " tasks ran on rank 2",
       took, r2.completed);
    if (r2.completed < SHORT)
        fail("rank 2 completed %" PRIu64 " tasks, expected the %d short ones at least",
             r2.completed, SHORT);
    free_tasks(sleepers, SLEEPERS);
    free_tasks(shorts, SHORT);
    sleep_ms(1000); /* rank 1 is resumed meanwhile */
    destroy_pool(pool, 0);
}

/* ---- main ---- */

/* ---- limits: the serving ranks keep none of their own ---- */

/* Rank 0's pool has a 1 s limit; the serving ranks pass NULL (rank 0's
 * options) or their own options with a 300 ms limit. A task rank 0 gave
 * no limit, or a longer one, sleeping 1.5 s, ends ok; one of the pool's
 * 1 s limit ends as a timeout. Before, each rank held the pool's limit
 * (or its own) in its own pool and killed every one of them. */
static void root_limits(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .task_timeout_ms = 1000};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    struct walls_task_opts none = {.timeout_ms = -1}, longer = {.timeout_ms = 5000};
    struct spec specs[3];
    walls_task *t[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        specs[i] = (struct spec){.k = 300 + (uint64_t)i, .sleep_ms = 1500, .out_size = 16};
    if (expect_rc(submit_spec(pool, &specs[0], &none, &t[0]), 0, "walls_submit_ex(timeout -1)") &&
        expect_rc(submit_spec(pool, &specs[1], &longer, &t[1]), 0,
                  "walls_submit_ex(timeout 5000)") &&
        expect_rc(submit_spec(pool, &specs[2], NULL, &t[2]), 0, "walls_submit")) {
        static const char *const what[3] = {"timeout -1", "timeout 5000", "the pool's 1000 ms"};
        for (int i = 0; i < 3; i++) {
            struct walls_result r;
            if (!wait_result(t[i], 30000, &r, what[i]))
                continue;
            int bad = 0;
            if (i < 2)
                expect_ok(&specs[i], &r, (size_t)i, &bad);
            else if (r.status != WALLS_TIMEOUT)
                fail("a 1.5 s task under the pool's 1 s limit ended %s code %d",
                     walls_status_name(r.status), r.code);
            if (i < 2 && !bad)
                ok("a 1.5 s task of %s ended ok", what[i]);
            else if (i == 2 && r.status == WALLS_TIMEOUT)
                ok("a 1.5 s task under the pool's 1 s limit ended timeout");
        }
    }
    free_tasks(t, 3);
    destroy_pool(pool, 0);
}

/* Placement WALLS_THREADS on rank 0: the ranks run processes. Before, the
 * pool was refused for a sandbox_fallback the program never set. */
static void root_threads(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_THREADS, .threads = 2};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    /* A second pool on the communicator while this one is alive: refused
     * at once (its ranks serve this one), where it used to wait for ever. */
    walls_pool *second = NULL;
    if (expect_rc(walls_mpi_pool_create(&second, MPI_COMM_WORLD, &opts), -EBUSY,
                  "walls_mpi_pool_create on a communicator with a live pool"))
        ok("a second pool on a busy communicator: -EBUSY, \"%s\"", walls_last_error());

    struct spec specs[4];
    walls_task *t[4] = {NULL};
    size_t n = 0;
    for (; n < 4; n++) {
        specs[n] = (struct spec){.k = 400 + n, .payload = 64, .out_size = 32};
        if (!expect_rc(submit_spec(pool, &specs[n], NULL, &t[n]), 0, "walls_submit"))
            break;
    }
    if (n == 4 && wait_all_ok(t, specs, n, 30000) == 0)
        ok("a pool of placement WALLS_THREADS ran 4 tasks on the ranks' processes");
    free_tasks(t, n);
    destroy_pool(pool, 0);
}

/* ---- broken: a rank whose own pool broke takes nothing more ---- */

/* The ranks' pools (rank 0's options: a crash loop breaks them after 2
 * restarts) break one after the other under tasks that crash: a rank that
 * broke is given no more tasks, so every task before both broke crashed
 * or ended broken, and then the pool is broken (its stats say so; before,
 * a broken rank answered at once, looked idle and took every task left,
 * and the pool never said it was broken). walls_pool_reset() brings both
 * ranks back: tasks run again. */
static void root_broken(void)
{
    struct walls_pool_opts opts = {.placement = WALLS_PROCESSES, .processes = 1,
                                   .restart_limit = 2, .restart_window_ms = 600000};
    walls_pool *pool = create_pool(&opts);
    if (!pool)
        return;
    enum { N = 12 };
    walls_task *t[N] = {NULL};
    struct spec specs[N];
    size_t n = 0;
    for (; n < N; n++) {
        specs[n] = (struct spec){.k = 500 + n, .crash = CRASH_RAISE};
        if (!expect_rc(submit_spec(pool, &specs[n], NULL, &t[n]), 0, "walls_submit (crasher)"))
            break;
    }
    unsigned crashed = 0, broken = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        struct walls_result r;
        if (!wait_result(t[i], 30000, &r, "a crashing task"))
            continue;
        if (r.status == WALLS_CRASHED)
            crashed++;
        else if (r.status == WALLS_BROKEN)
            broken++;
        else
            other++;
    }
    free_tasks(t, n);
    struct walls_stats st;
    if (expect_rc(walls_pool_stats(pool, &st), 0, "walls_pool_stats") && other == 0 &&
        st.broken == 1 && crashed >= 6 && crashed + broken == N)
        ok("crashers on both ranks: %u crashed, %u broken, then the pool is broken", crashed,
           broken);
    else
        fail("crashers: %u crashed, %u broken, %u other; stats.broken %u (expected at least 6 "
             "crashed, 2 restarts a rank, the rest broken, then the pool broken)",
             crashed, broken, other, st.broken);
    if (expect_rc(walls_pool_reset(pool), 0, "walls_pool_reset") &&
        expect_rc(walls_pool_stats(pool, &st), 0, "walls_pool_stats") && st.broken != 0)
        fail("stats.broken is %u after walls_pool_reset", st.broken);
    struct walls_stats before[3];
    for (int rank = 1; rank <= 2; rank++)
        before[rank] = rank_stats(pool, rank);
    n = 0;
    for (; n < 6; n++) {
        /* 200 ms each, one at a time a rank: both ranks take some. */
        specs[n] = (struct spec){.k = 600 + n, .payload = 32, .out_size = 16, .sleep_ms = 200};
        if (!expect_rc(submit_spec(pool, &specs[n], NULL, &t[n]), 0, "walls_submit (after reset)"))
            break;
    }
    if (n == 6 && wait_all_ok(t, specs, n, 30000) == 0)
        expect_both_ran(pool, before, n, "after walls_pool_reset, both ranks back");
    free_tasks(t, n);
    destroy_pool(pool, failures ? WALLS_CANCEL : 0);
}

struct check {
    const char *name;
    void (*root)(void);
    void (*serve)(void);   /* the serving ranks' own side; NULL: as below */
    int serves;            /* calls of walls_mpi_serve on a serving rank */
    int serve_want;        /* what each must return */
    bool local;            /* serve with local_opts (else NULL: rank 0's) */
    const struct walls_pool_opts *own; /* when not NULL: serve with these */
};

/* What serving ranks ask for when a check gives them their own options:
 * a long time limit (rank 0's shorter one must hold) and the default
 * max_output (rank 0's larger one must hold). */
static const struct walls_pool_opts local_opts = {
    .placement = WALLS_PROCESSES, .processes = 1, .task_timeout_ms = 60000};

/* Serving ranks with a short limit of their own, which must not hold. */
static const struct walls_pool_opts short_limit_opts = {
    .placement = WALLS_PROCESSES, .processes = 1, .task_timeout_ms = 300};

static const struct check checks[] = {
    {"correct", root_correct, NULL, 1, 0, false, NULL},
    {"crash", root_crash, NULL, 1, 0, true, NULL},
    {"timeout", root_timeout, NULL, 1, 0, true, NULL},
    {"cancel", root_cancel, NULL, 1, 0, false, NULL},
    {"destroy", root_destroy, NULL, 2, 0, true, NULL},
    {"mismatch", root_mismatch, NULL, 1, -ENOEXEC, false, NULL},
    {"args", root_args, serve_args, 0, 0, false, NULL},
    {"victim", root_victim, NULL, 1, 0, false, NULL},
    {"silent", root_silent, NULL, 1, 0, false, NULL},
    {"fair", root_fair, NULL, 1, 0, false, NULL},
    {"limits", root_limits, NULL, 1, 0, false, NULL},
    {"limits-own", root_limits, NULL, 1, 0, false, &short_limit_opts},
    {"threads", root_threads, NULL, 1, 0, false, NULL},
    {"broken", root_broken, NULL, 1, 0, false, NULL},
};

static void write_pid(void)
{
    const char *dir = getenv("WALLS_MPI_TEST_DIR");
    if (!dir || !*dir)
        return;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/rank-%d.pid", dir, my_rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "test-mpi rank %d: cannot write %s\n", my_rank, path);
}

static void serve(const struct check *c)
{
    /* In correct, rank 1 serves with rank 0's options and rank 2 with its
     * own, whose default max_output rank 0's 8 MiB must override. */
    bool local = c->local || (strcmp(c->name, "correct") == 0 && my_rank == 2);
    for (int i = 0; i < c->serves; i++) {
        int rc = walls_mpi_serve(MPI_COMM_WORLD, c->own ? c->own : local ? &local_opts : NULL);
        char what[64];
        snprintf(what, sizeof what, "walls_mpi_serve (call %d of %d)", i + 1, c->serves);
        if (!expect_rc(rc, c->serve_want, what))
            break;
    }
    if (c->serve)
        c->serve();
}

int main(int argc, char **argv)
{
    int provided = 0, size = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "test-mpi: MPI_Init_thread failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    write_pid();

    const struct check *c = NULL;
    for (size_t i = 0; argc > 1 && i < sizeof checks / sizeof checks[0]; i++)
        if (strcmp(argv[1], checks[i].name) == 0)
            c = &checks[i];
    if (!c || size != 3) {
        if (my_rank == 0) {
            fprintf(stderr, "usage: mpirun -np 3 %s CHECK (got %d ranks)\nchecks:", argv[0], size);
            for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
                fprintf(stderr, " %s", checks[i].name);
            fputc('\n', stderr);
        }
        MPI_Finalize();
        return 2;
    }
    check_name = c->name;
    if (provided < MPI_THREAD_MULTIPLE)
        fail("MPI_Init_thread gave thread level %d, below MPI_THREAD_MULTIPLE (%d)", provided,
             MPI_THREAD_MULTIPLE);
    else if (my_rank == 0) {
        ok("start: build %s, walls %s, %d ranks", build_name, walls_version(), size);
        c->root();
    } else {
        serve(c);
    }

    /* Every rank's own failures, counted at rank 0 for the verdict. */
    int mine = failures, all = 0;
    MPI_Reduce(&mine, &all, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (my_rank == 0) {
        if (all > mine)
            fprintf(stderr, "FAIL %s: the serving ranks report %d failures (above)\n", c->name,
                    all - mine);
        if (all)
            fprintf(stderr, "FAIL %s: %d failures in all\n", c->name, all);
        else
            printf("PASS %s\n", c->name);
    }
    MPI_Finalize();
    return (my_rank == 0 ? all : mine) ? 1 : 0;
}
