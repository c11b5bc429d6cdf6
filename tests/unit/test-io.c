/*
 * test-io.c - inputs and outputs of any size up to WALLS_IO_MAX: past the
 * inline slot they travel through memory shared with the worker that runs
 * the task, in every placement and under the strict sandbox.
 *
 *  - Echo round trips from 0 bytes to 16 MiB, single and batched.
 *  - An output of exactly max_output passes; one claimed past it is
 *    WALLS_PROTOCOL. -E2BIG and -EINVAL only past WALLS_IO_MAX.
 *  - Memory is taken for the bytes written, not for max_output, and given
 *    back: 40 tasks of a 256 MiB max_output that write 10 bytes each keep
 *    the host's resident memory flat, and after a 32 MiB output a
 *    process's output memfd holds no more than the pages a window keeps
 *    between tasks (1 MiB).
 *  - A process worker cannot change a task's input (its mapping is
 *    read-only), nor resize its output memfd (sealed: the host reads
 *    small outputs through a mapping of it), cannot see an input dealt only to another worker, and its
 *    replacement after a crash finds nothing of its predecessor's inputs
 *    and outputs.
 *  - A thread task that times out may still read its large input after
 *    its result is given (checked under the sanitizers).
 *
 * Loop tests run per placement: 0 threads, 1 processes, 2 hybrid 1x2,
 * 3 processes under the strict sandbox (namespaces where the kernel
 * allows them).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

#define NPLACES 4
static const char *const names[NPLACES] = {"threads", "processes", "hybrid", "strict"};

/* The worker's I/O memfds (process placement): after its mailbox (3) and
 * doorbell (4). */
#define IO_IN_FD 5
#define IO_OUT_FD 6

static walls_pool *io_pool(int which, size_t max_output, unsigned workers)
{
    struct walls_pool_opts o = {.max_output = max_output};
    switch (which) {
    case 0:
        o.placement = WALLS_THREADS;
        o.threads = workers;
        break;
    case 1:
        o.placement = WALLS_PROCESSES;
        o.processes = workers;
        break;
    case 2:
        o.placement = WALLS_HYBRID;
        o.processes = 1;
        o.threads = workers;
        break;
    default:
        o.placement = WALLS_PROCESSES;
        o.processes = workers;
        o.sandbox = WALLS_SANDBOX_STRICT;
        o.sandbox_fallback = WALLS_SANDBOX_FALLBACK;
        break;
    }
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
    ck_assert_msg(rc == 0, "%s: walls_pool_create: %s (%s)", names[which], walls_strerror(rc),
                  walls_last_error());
    return pool;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + seed + (i >> 12));
    return p;
}

/* Writes in->len bytes: the first 8 of the input say how many. */
static int t_write_n(struct walls_call *call)
{
    uint64_t n;
    if (call->in_len < sizeof n)
        return 1;
    memcpy(&n, call->in, sizeof n);
    if (n > call->out_cap) {
        call->out_len = (size_t)n; /* a claim past out_cap */
        return 0;
    }
    memset(call->out, 0x5a, (size_t)n);
    call->out_len = (size_t)n;
    return 0;
}

static void expect_echo(walls_task *t, const unsigned char *want, size_t n, const char *where)
{
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "%s: %zu bytes: %s %d", where, n,
                  walls_status_name(r.status), r.code);
    ck_assert_uint_eq(r.out_len, n);
    ck_assert_msg(n == 0 || memcmp(r.out, want, n) == 0, "%s: %zu bytes differ", where, n);
}

START_TEST(test_round_trips)
{
    static const size_t sizes[] = {0,    1,    WALLS_INLINE_MAX, WALLS_INLINE_MAX + 1,
                                   4097, 65536, (1u << 20) + 3,  16u << 20};
    enum { N = sizeof sizes / sizeof sizes[0] };
    walls_pool *pool = io_pool(_i, 16u << 20, 2);
    unsigned char *data[N];
    walls_task *t[N];
    for (int k = 0; k < N; k++) {
        data[k] = pattern(sizes[k], (unsigned)k);
        ck_assert_int_eq(walls_submit(pool, t_echo, data[k], sizes[k], &t[k]), 0);
    }
    for (int k = 0; k < N; k++) {
        expect_echo(t[k], data[k], sizes[k], names[_i]);
        walls_task_free(t[k]);
    }
    /* The same as one batch. */
    struct walls_input in[N];
    for (int k = 0; k < N; k++)
        in[k] = (struct walls_input){data[k], sizes[k]};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, N, t), 0);
    for (int k = 0; k < N; k++) {
        expect_echo(t[k], data[k], sizes[k], names[_i]);
        walls_task_free(t[k]);
        free(data[k]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_output_limits)
{
    size_t cap = (1u << 20) + 5;
    walls_pool *pool = io_pool(_i, cap, 1);
    uint64_t n = cap;
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_write_n, &n, sizeof n, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_uint_eq(r.out_len, cap);
    ck_assert_int_eq(((const unsigned char *)r.out)[cap - 1], 0x5a);
    walls_task_free(t);
    n = cap + 1;
    ck_assert_int_eq(walls_submit(pool, t_write_n, &n, sizeof n, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_PROTOCOL);
    ck_assert_uint_eq(r.out_len, 0);
    walls_task_free(t);
    /* The pool serves on. */
    n = 3;
    ck_assert_int_eq(walls_submit(pool, t_write_n, &n, sizeof n, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_uint_eq(r.out_len, 3);
    walls_task_free(t);
    /* Only past WALLS_IO_MAX is anything too big. */
    ck_assert_int_eq(walls_submit(pool, t_echo, &n, WALLS_IO_MAX + 1, &t), -E2BIG);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    walls_pool *largest = io_pool(_i, WALLS_IO_MAX, 1);
    ck_assert_int_eq(walls_pool_destroy(largest, 0), 0);
    struct walls_pool_opts o = {.max_output = WALLS_IO_MAX + 1};
    ck_assert_int_eq(walls_pool_create(&largest, &o), -EINVAL);
}
END_TEST

/* Blocks (512 bytes) the memfd open at fd holds, or -1 when it is not. */
static long memfd_blocks(int fd, const char *name)
{
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return -1;
    link[n] = '\0';
    if (!strstr(link, name))
        return -1;
    struct stat st;
    return fstat(fd, &st) == 0 ? (long)st.st_blocks : -1;
}

/* The largest memfd named name the host holds, in bytes. */
static long host_memfd_bytes(const char *name)
{
    long most = -1;
    for (int fd = 3; fd < 1024; fd++) {
        long b = memfd_blocks(fd, name);
        if (b > most)
            most = b;
    }
    return most < 0 ? -1 : most * 512;
}

START_TEST(test_memory_for_bytes_written)
{
    walls_pool *pool = io_pool(_i, 256u << 20, 2);
    enum { N = 40 };
    walls_task *t[N];
    long before = rss_kb();
    uint64_t n = 10;
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(walls_submit(pool, t_write_n, &n, sizeof n, &t[k]), 0);
    ck_assert_int_eq(walls_wait_all(t, N, 60000), 0);
    /* Every result is held: 40 x 10 bytes, not 40 x 256 MiB. */
    long held = rss_kb();
    ck_assert_msg(held - before < 64 * 1024, "%s: resident grew by %ld KiB", names[_i],
                  held - before);
    for (int k = 0; k < N; k++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[k], 0, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        ck_assert_uint_eq(r.out_len, 10);
        walls_task_free(t[k]);
    }
    /* A big output comes back to the system once its task is done. */
    n = 32u << 20;
    ck_assert_int_eq(walls_submit(pool, t_write_n, &n, sizeof n, &t[0]), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t[0], 60000, &r), 0);
    ck_assert_uint_eq(r.out_len, n);
    walls_task_free(t[0]);
    if (_i != 0) {
        long kept = host_memfd_bytes("walls-io-out");
        /* What a window keeps for the next task (1 MiB), not 32 MiB. */
        ck_assert_msg(kept >= 0 && kept <= 2 * 1024 * 1024, "%s: output memfd holds %ld bytes",
                      names[_i], kept);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Writes into its own input (not instrumented, as above). */
__attribute__((no_sanitize("undefined", "address", "thread"))) static int
t_scribble_input(struct walls_call *call)
{
    ((volatile unsigned char *)(uintptr_t)call->in)[call->in_len / 2] ^= 0xff;
    return 0;
}

START_TEST(test_input_read_only)
{
    if (_i == 0)
        return; /* a thread shares the host's memory: no wall to test */
    walls_pool *pool = io_pool(_i, 8192, 1);
    size_t n = 8192;
    unsigned char *data = pattern(n, 9);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_scribble_input, data, n, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGSEGV, "%s: %s %d", names[_i],
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    ck_assert_int_eq(walls_submit(pool, t_echo, data, n, &t), 0);
    expect_echo(t, data, n, names[_i]);
    walls_task_free(t);
    free(data);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* What t_scan_memfd looks for: in each stretch of span bytes every
 * stride bytes of memfd fd, the marker (given inverted, so that the
 * scanner's own input does not hold it). */
struct scan_query {
    int fd;
    unsigned char marker[8];
    uint64_t stride, span;
};

/* Scans one of its worker's I/O memfds; answers 1 if the marker is there.
 * Uses only fstat and mmap, which the strict sandbox allows. */
static int t_scan_memfd(struct walls_call *call)
{
    struct scan_query q;
    if (call->in_len < sizeof q || call->out_cap < sizeof(int))
        return 1;
    memcpy(&q, call->in, sizeof q);
    for (int i = 0; i < 8; i++)
        q.marker[i] ^= 0xff;
    struct stat st;
    if (fstat(q.fd, &st) != 0 || st.st_size == 0 || q.stride == 0)
        return 2;
    uint64_t len = (uint64_t)st.st_size;
    int found = 0;
    for (uint64_t at = 0; at < len && !found; at += q.stride) {
        size_t span = (size_t)(len - at < q.span ? len - at : q.span);
        const unsigned char *p = mmap(NULL, span, PROT_READ, MAP_SHARED, q.fd, (off_t)at);
        if (p == MAP_FAILED)
            return 3;
        found = memmem(p, span, q.marker, 8) != NULL;
        munmap((void *)(uintptr_t)p, span);
    }
    memcpy(call->out, &found, sizeof found);
    call->out_len = sizeof found;
    return 0;
}

static int scan(walls_pool *pool, int fd, const char marker[8], uint64_t stride, uint64_t span)
{
    /* Its own input is large too, so that it runs as a large-I/O task. */
    unsigned char q[4096] = {0};
    struct scan_query sq = {.fd = fd, .stride = stride, .span = span};
    for (int i = 0; i < 8; i++)
        sq.marker[i] = (unsigned char)marker[i] ^ 0xff;
    memcpy(q, &sq, sizeof sq);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_scan_memfd, q, sizeof q, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "scan: %s %d", walls_status_name(r.status), r.code);
    int found;
    memcpy(&found, r.out, sizeof found);
    walls_task_free(t);
    return found;
}

/* Echoes, then sleeps in->ms (the first 4 bytes). */
static int t_echo_sleep(struct walls_call *call)
{
    int ms;
    memcpy(&ms, call->in, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return t_echo(call);
}

START_TEST(test_other_workers_inputs_unseen)
{
    if (_i != 1 && _i != 3)
        return; /* walls between processes only */
    walls_pool *pool = io_pool(_i, 64 * 1024, 2);
    /* A busy task whose large input carries a secret, then a scan from
     * the other worker. */
    size_t n = 64 * 1024;
    unsigned char *secret = pattern(n, 3);
    int ms = 500;
    memcpy(secret, &ms, sizeof ms);
    memcpy(secret + 1000, "SECRET-A", 8);
    walls_task *busy;
    ck_assert_int_eq(walls_submit(pool, t_echo_sleep, secret, n, &busy), 0);
    struct timespec pause = {0, 50 * 1000000L};
    nanosleep(&pause, NULL);
    /* Each input window is WALLS_IO_MAX apart; the secret is near the start. */
    ck_assert_int_eq(scan(pool, IO_IN_FD, "SECRET-A", WALLS_IO_MAX, 1u << 20), 0);
    expect_echo(busy, secret, n, names[_i]);
    walls_task_free(busy);
    free(secret);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Writes a marker through the whole of its output, then crashes. Not
 * instrumented: the sanitizers would report the write themselves. */
__attribute__((no_sanitize("undefined", "address", "thread"))) static int
t_leave_and_crash(struct walls_call *call)
{
    for (size_t i = 0; i + 8 <= call->out_cap; i += 4096)
        memcpy((char *)call->out + i, "LEFTOVER", 8);
    volatile int *volatile p = NULL;
    *p = 1;
    return 0;
}

START_TEST(test_replacement_starts_clean)
{
    if (_i != 1 && _i != 3)
        return;
    walls_pool *pool = io_pool(_i, 1u << 20, 1);
    size_t n = 256 * 1024;
    unsigned char *in = pattern(n, 5);
    for (size_t i = 0; i + 8 <= n; i += 4096)
        memcpy(in + i, "OLDINPUT", 8);
    walls_task *t;
    struct walls_result r;
    /* The scan sees what its own process was given (the first pages of a
     * window stay between tasks)... */
    ck_assert_int_eq(walls_submit(pool, t_echo, in, n, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    walls_task_free(t);
    ck_assert_int_eq(scan(pool, IO_IN_FD, "OLDINPUT", WALLS_IO_MAX, 1u << 20), 1);
    /* ... and nothing of what a crashed predecessor was given or wrote. */
    ck_assert_int_eq(walls_submit(pool, t_leave_and_crash, in, n, &t), 0);
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    walls_task_free(t);
    ck_assert_int_eq(scan(pool, IO_IN_FD, "OLDINPUT", WALLS_IO_MAX, 1u << 20), 0);
    ck_assert_int_eq(scan(pool, IO_OUT_FD, "LEFTOVER", 1u << 20, 1u << 20), 0);
    free(in);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Sleeps in->ms, then sums its whole input: after a time-out, a thread
 * still reads it. */
static int t_late_reader(struct walls_call *call)
{
    int ms;
    memcpy(&ms, call->in, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    unsigned sum = 0;
    for (size_t i = 0; i < call->in_len; i++)
        sum += ((const unsigned char *)call->in)[i];
    return sum == 0xffffffffu; /* never: the sum is only read */
}

START_TEST(test_thread_timeout_keeps_input)
{
    walls_pool *pool = io_pool(0, 1u << 20, 1);
    size_t n = 1u << 20;
    unsigned char *in = pattern(n, 1);
    int ms = 300;
    memcpy(in, &ms, sizeof ms);
    struct walls_task_opts o = {.timeout_ms = 50};
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit_ex(pool, t_late_reader, in, n, &o, &t), 0);
    free(in); /* the task has its own copy */
    ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_TIMEOUT);
    walls_task_free(t);
    /* The thread returns later, reading the input it was given. */
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Tries to shrink and to grow its output memfd, then answers the two
 * errnos and max_output bytes of pattern 5 after them. */
static int t_resize_output_file(struct walls_call *call)
{
    int err[2];
    err[0] = ftruncate(IO_OUT_FD, 0) == 0 ? 0 : errno;
    err[1] = ftruncate(IO_OUT_FD, (off_t)1 << 40) == 0 ? 0 : errno;
    if (call->out_cap < sizeof err)
        return 22;
    memcpy(call->out, err, sizeof err);
    unsigned char *rest = (unsigned char *)call->out + sizeof err;
    for (size_t i = 0; i < call->out_cap - sizeof err; i++)
        rest[i] = (unsigned char)(i * 5 + 1);
    call->out_len = call->out_cap;
    return 0;
}

/* The host reads small outputs through its own mapping of the output
 * memfd: a worker that shrinks the file under it would make that read
 * fault in the host. The file is sealed: both resizes fail (or the strict
 * sandbox stops the call), the host reads the output, and the pool goes
 * on. */
START_TEST(test_output_file_sealed)
{
    if (_i == 0)
        return; /* threads write into the host's own memory */
    size_t cap = 8192;
    walls_pool *pool = io_pool(_i, cap, 1);
    walls_task *t;
    struct walls_result r;
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(walls_submit(pool, t_resize_output_file, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_wait(t, 60000, &r), 0);
        if (_i == 3 && r.status == WALLS_VIOLATION) {
            walls_task_free(t);
            break; /* the strict sandbox refused ftruncate() itself */
        }
        ck_assert_msg(r.status == WALLS_OK, "%s: %s %d", names[_i], walls_status_name(r.status),
                      r.code);
        ck_assert_uint_eq(r.out_len, cap);
        int err[2];
        memcpy(err, r.out, sizeof err);
        ck_assert_msg(err[0] != 0 && err[1] != 0, "%s: the output memfd was resized (%d, %d)",
                      names[_i], err[0], err[1]);
        const unsigned char *rest = (const unsigned char *)r.out + sizeof err;
        for (size_t i = 0; i < cap - sizeof err; i++)
            ck_assert_uint_eq(rest[i], (unsigned char)(i * 5 + 1));
        walls_task_free(t);
    }
    size_t n = 4000;
    unsigned char *data = pattern(n, 3);
    ck_assert_int_eq(walls_submit(pool, t_echo, data, n, &t), 0);
    expect_echo(t, data, n, names[_i]);
    walls_task_free(t);
    free(data);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("placements");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_round_trips, 0, NPLACES);
    tcase_add_loop_test(tc, test_output_limits, 0, NPLACES);
    tcase_add_loop_test(tc, test_memory_for_bytes_written, 0, NPLACES);
    tcase_add_loop_test(tc, test_input_read_only, 0, NPLACES);
    tcase_add_loop_test(tc, test_output_file_sealed, 0, NPLACES);
    tcase_add_loop_test(tc, test_other_workers_inputs_unseen, 0, NPLACES);
    tcase_add_loop_test(tc, test_replacement_starts_clean, 0, NPLACES);
    tcase_add_test(tc, test_thread_timeout_keeps_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
