/*
 * test_arena.c - the shared arena and the locks that survive their holder,
 * in every placement: threads, processes, hybrid, processes under the
 * limits and seccomp sandboxes and hybrid under the strict one (sandboxed
 * workers' outputs are staged and copied back).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

enum { P_THREADS, P_PROCESSES, P_HYBRID, P_LIMITS, P_SECCOMP, P_STRICT, NPLACEMENTS };
static const char *const placement_names[] = {"threads",          "processes",
                                              "hybrid",           "processes+limits",
                                              "processes+seccomp", "hybrid+strict"};

/* Sandboxed workers hold no writable descriptor of the arena: their
 * outputs are staged and copied back. */
static bool staged(int which)
{
    return which >= P_LIMITS;
}

#define ARENA (64u << 20)

static walls_pool *arena_pool(int which, size_t arena, unsigned locks)
{
    struct walls_pool_opts o = {.arena_size = arena, .locks = locks};
    switch (which) {
    case P_THREADS:
        o.placement = WALLS_THREADS;
        o.threads = 2;
        break;
    case P_PROCESSES:
        o.placement = WALLS_PROCESSES;
        o.processes = 2;
        break;
    case P_HYBRID:
        o.placement = WALLS_HYBRID;
        o.processes = 2;
        o.threads = 2;
        break;
    case P_LIMITS:
        o.placement = WALLS_PROCESSES;
        o.processes = 2;
        o.sandbox = WALLS_SANDBOX_LIMITS;
        break;
    case P_SECCOMP:
        o.placement = WALLS_PROCESSES;
        o.processes = 2;
        o.sandbox = WALLS_SANDBOX_SECCOMP;
        break;
    default:
        o.placement = WALLS_HYBRID;
        o.processes = 2;
        o.threads = 2;
        o.sandbox = WALLS_SANDBOX_STRICT;
        o.sandbox_fallback = WALLS_SANDBOX_FALLBACK; /* namespaces where the kernel allows */
        break;
    }
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
    ck_assert_msg(rc == 0, "%s: walls_pool_create: %d (%s)", placement_names[which], rc,
                  walls_strerror(rc));
    return pool;
}

static void *ptr_of(walls_pool *pool, walls_buf buf)
{
    void *p = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_arena_ptr(pool, buf, &p, &size), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

static struct walls_result run(walls_pool *pool, walls_fn *fn, const void *in, size_t in_len,
                               const struct walls_task_opts *opts)
{
    walls_task *t = NULL;
    int rc = walls_submit_ex(pool, fn, in, in_len, opts, &t);
    ck_assert_msg(rc == 0, "submit: %d (%s)", rc, walls_strerror(rc));
    struct walls_result res;
    ck_assert_int_eq(walls_wait(t, 20000, &res), 0);
    /* The output is the task's: keep a copy past its free. */
    static unsigned char out[WALLS_INLINE_MAX];
    memcpy(out, res.out, res.out_len);
    res.out = out;
    walls_task_free(t);
    return res;
}

/* ---- task functions ------------------------------------------------------- */

/* Sums every input as 64-bit words; writes the sum to out, and to the
 * output buffer: the sum in word 0, then word i = i. */
static int t_sum(struct walls_call *call)
{
    uint64_t sum = 0;
    for (size_t k = 0; k < call->n_inputs; k++) {
        const uint64_t *w = call->inputs[k].ptr;
        for (size_t i = 0; i < call->inputs[k].len / 8; i++)
            sum += w[i];
    }
    if (call->output) {
        uint64_t *o = call->output;
        for (size_t i = 1; i < call->output_len / 8; i++)
            o[i] = i;
        o[0] = sum;
    }
    memcpy(call->out, &sum, sizeof sum);
    call->out_len = sizeof sum;
    return 0;
}

/* Reports where its buffers are mapped: in = nothing; out = the pointers. */
static int t_where(struct walls_call *call)
{
    uintptr_t p[2] = {call->n_inputs ? (uintptr_t)call->inputs[0].ptr : 0,
                      (uintptr_t)call->output};
    memcpy(call->out, p, sizeof p);
    call->out_len = sizeof p;
    return 0;
}

static int t_write_input(struct walls_call *call)
{
    volatile unsigned char *p = (volatile unsigned char *)(uintptr_t)call->inputs[0].ptr;
    p[100] = 0xEE;
    return 0;
}

/* Writes at its output pointer plus the distance (in) from its output
 * buffer to another buffer: where that buffer would be. */
static int t_write_beside(struct walls_call *call)
{
    ptrdiff_t delta;
    memcpy(&delta, call->in, sizeof delta);
    volatile unsigned char *p = (volatile unsigned char *)call->output + delta;
    p[0] = 0xEE;
    p[4095] = 0xEE;
    return 0;
}

/* Adds 1 to every word of its output, which is also its input. */
static int t_increment(struct walls_call *call)
{
    const uint64_t *in = call->inputs[0].ptr;
    uint64_t *o = call->output;
    uint64_t first = in[0];
    for (size_t i = 0; i < call->output_len / 8; i++)
        o[i] = o[i] + 1;
    memcpy(call->out, &first, sizeof first);
    call->out_len = sizeof first;
    return 0;
}

/* Fills its output with 0x5C and returns at once. */
static int t_fill(struct walls_call *call)
{
    memset(call->output, 0x5C, call->output_len);
    return 0;
}

/* Sleeps in ms, then crashes. */
static int t_sleep_then_crash(struct walls_call *call)
{
    int ms;
    memcpy(&ms, call->in, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    raise(SIGSEGV);
    return 0;
}

/* Tries to make its input writable; returns 0 or the errno. */
static int t_mprotect_input(struct walls_call *call)
{
    void *page = (void *)((uintptr_t)call->inputs[0].ptr & ~(uintptr_t)4095);
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0)
        return errno;
    return 0;
}

/* Writes its output halfway, then crashes. */
static int t_half_then_crash(struct walls_call *call)
{
    memset(call->output, 0xAB, call->output_len / 2);
    raise(SIGSEGV);
    return 0;
}

/* Takes lock 0, writes half of an update, then hangs: in = milliseconds
 * (-1: until killed), after which it lets go. */
static int t_lock_and_hang(struct walls_call *call)
{
    int ms = -1;
    if (call->in_len == sizeof ms)
        memcpy(&ms, call->in, sizeof ms);
    int rc = walls_lock_acquire(&call->locks[0], 5000);
    if (rc != 0 && rc != -EOWNERDEAD)
        return 100 - rc;
    if (call->output)
        ((uint64_t *)call->output)[0] = 1; /* word 1 would follow */
    while (ms < 0) /* nanosleep: the seccomp sandbox allows it, not pause */
        sleep(1);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    walls_lock_release(&call->locks[0]);
    return 0;
}

/* Takes lock 0; returns what walls_lock_acquire said (as a positive code). */
static int t_lock_take(struct walls_call *call)
{
    int rc = walls_lock_acquire(&call->locks[0], 5000);
    if (rc == 0 || rc == -EOWNERDEAD)
        walls_lock_release(&call->locks[0]);
    return rc == 0 ? 0 : -rc;
}

/* Writer: bumps two words of its output together under lock 0, many times. */
static int t_lock_writer(struct walls_call *call)
{
    volatile uint64_t *o = call->output;
    for (int i = 0; i < 20000; i++) {
        if (walls_lock_acquire(&call->locks[0], 5000) != 0)
            return 1;
        o[0] = o[0] + 1;
        for (volatile int spin = 0; spin < 20; spin++)
            ;
        o[1] = o[1] + 1;
        walls_lock_release(&call->locks[0]);
    }
    return 0;
}

/* Reader: under lock 0, the two words must always be equal. Returns the
 * number of torn reads seen. */
static int t_lock_reader(struct walls_call *call)
{
    const volatile uint64_t *in = call->inputs[0].ptr;
    int torn = 0;
    for (int i = 0; i < 20000; i++) {
        if (walls_lock_acquire(&call->locks[0], 5000) != 0)
            return 1000000;
        if (in[0] != in[1])
            torn++;
        walls_lock_release(&call->locks[0]);
    }
    return torn;
}

/* ---- item 1: buffers in, buffer out, same code everywhere ------------------ */

START_TEST(test_sum_in_place)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    enum { WORDS = (1u << 20) / 8 };
    walls_buf in[3], out;
    uint64_t expect = 0;
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(walls_arena_alloc(pool, WORDS * 8, &in[k]), 0);
        uint64_t *w = ptr_of(pool, in[k]);
        for (uint64_t i = 0; i < WORDS; i++) {
            w[i] = i * 3 + (uint64_t)k;
            expect += w[i];
        }
    }
    ck_assert_int_eq(walls_arena_alloc(pool, 64 * 1024, &out), 0);
    for (int round = 0; round < 4; round++) {
        struct walls_task_opts opts = {.inputs = in, .n_inputs = 3, .output = out};
        struct walls_result res = run(pool, t_sum, NULL, 0, &opts);
        ck_assert_msg(res.status == WALLS_OK, "%s: %s %d", placement_names[_i],
                      walls_status_name(res.status), res.code);
        uint64_t got;
        ck_assert_uint_eq(res.out_len, sizeof got);
        memcpy(&got, res.out, sizeof got);
        ck_assert_uint_eq(got, expect);
        const uint64_t *o = ptr_of(pool, out);
        ck_assert_uint_eq(o[0], expect);
        for (uint64_t i = 1; i < 64 * 1024 / 8; i++)
            ck_assert_uint_eq(o[i], i);
        memset(ptr_of(pool, out), 0, 64 * 1024);
    }
    /* Inline input and arena buffers together. */
    struct walls_task_opts opts = {.inputs = in, .n_inputs = 1};
    int pair[2] = {2, 3};
    struct walls_result res = run(pool, t_sum, pair, sizeof pair, &opts);
    ck_assert_int_eq(res.status, WALLS_OK);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(walls_arena_free(pool, in[k]), 0);
    ck_assert_int_eq(walls_arena_free(pool, out), 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Zero copy: threads see the host's own memory; processes see their own
 * mapping of the same pages (a write by the host shows through). */
START_TEST(test_no_copy)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in, out;
    ck_assert_int_eq(walls_arena_alloc(pool, 8192, &in), 0);
    ck_assert_int_eq(walls_arena_alloc(pool, 8192, &out), 0);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1, .output = out};
    struct walls_result res = run(pool, t_where, NULL, 0, &opts);
    ck_assert_int_eq(res.status, WALLS_OK);
    uintptr_t p[2];
    memcpy(p, res.out, sizeof p);
    if (_i == P_THREADS) {
        ck_assert_ptr_eq((void *)p[0], ptr_of(pool, in));
        ck_assert_ptr_eq((void *)p[1], ptr_of(pool, out));
    } else {
        ck_assert_uint_ne(p[0], 0);
        ck_assert_uint_ne(p[1], 0);
    }
    /* The host writes after submitting nothing: the next task sees it. */
    uint64_t *w = ptr_of(pool, in);
    w[0] = 41;
    w[1] = 1;
    opts.output = 0;
    res = run(pool, t_sum, NULL, 0, &opts);
    uint64_t got;
    memcpy(&got, res.out, sizeof got);
    ck_assert_uint_eq(got, 42);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* ---- item 2: protection -------------------------------------------------- */

START_TEST(test_write_to_input)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    unsigned char *host = ptr_of(pool, in);
    memset(host, 0x11, 4096);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_write_input, NULL, 0, &opts);
    if (_i == P_THREADS) {
        /* Threads share the host's memory: nothing stops the write. */
        ck_assert_int_eq(res.status, WALLS_OK);
        ck_assert_uint_eq(host[100], 0xEE);
    } else {
        ck_assert_msg(res.status == WALLS_CRASHED && res.code == SIGSEGV, "%s: %s %d",
                      placement_names[_i], walls_status_name(res.status), res.code);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x11);
        /* The pool carries on. */
        res = run(pool, t_sum, NULL, 0, &opts);
        ck_assert_int_eq(res.status, WALLS_OK);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* A task that writes past its own output, onto another buffer's place. */
START_TEST(test_write_beside_output)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf other, out;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &other), 0);
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &out), 0);
    unsigned char *host = ptr_of(pool, other);
    memset(host, 0x22, 4096);
    ptrdiff_t delta = (unsigned char *)ptr_of(pool, other) - (unsigned char *)ptr_of(pool, out);
    struct walls_task_opts opts = {.output = out};
    struct walls_result res = run(pool, t_write_beside, &delta, sizeof delta, &opts);
    if (_i == P_THREADS) {
        ck_assert_int_eq(res.status, WALLS_OK); /* no walls between threads */
        ck_assert_uint_eq(host[0], 0xEE);
    } else if (staged(_i)) {
        /* It wrote into its own staging copy; only its output came back. */
        ck_assert_int_eq(res.status, WALLS_OK);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x22);
    } else {
        ck_assert_int_eq(res.status, WALLS_CRASHED);
        ck_assert_int_eq(res.code, SIGSEGV);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x22);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Making an input writable: possible where the worker holds a writable
 * descriptor (the read-only mapping guards against mistakes), refused by
 * the kernel under the seccomp sandbox (it guards against malice). */
START_TEST(test_mprotect_input)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_mprotect_input, NULL, 0, &opts);
    if (staged(_i)) {
        ck_assert_int_eq(res.status, WALLS_FAILED);
        ck_assert_int_eq(res.code, EACCES);
    } else {
        ck_assert_int_eq(res.status, WALLS_OK);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Reopening the arena writable through /proc: find it in /proc/self/maps,
 * open its /proc/self/map_files entry read-write (root may), map that
 * shared and writable, and change the input. 0 = it changed it. */
static int t_reopen_arena(struct walls_call *call)
{
    if (call->n_inputs != 1)
        return 90;
    uintptr_t at = (uintptr_t)call->inputs[0].ptr;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return errno ? errno : 91;
    char line[512];
    unsigned long lo = 0, hi = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, maps))
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= at && at < hi;
    fclose(maps);
    if (!found)
        return 92;
    char path[128];
    snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", lo, hi);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno;
    unsigned char *w = mmap(NULL, hi - lo, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (w == MAP_FAILED)
        return errno;
    w[at - lo] = 0xAB;
    munmap(w, hi - lo);
    return 0;
}

/* What each level promises: SECCOMP and STRICT refuse the open (the arena
 * cannot change but for a task's own output); LIMITS confines resources,
 * not malice (docs/arena.md): as root the reopen works, and the test keeps
 * that documented limit honest. */
START_TEST(test_reopen_arena_writable)
{
    if (_i == P_THREADS)
        return; /* threads write the host's memory directly */
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    unsigned char *host = ptr_of(pool, in);
    memset(host, 0x33, 4096);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_reopen_arena, NULL, 0, &opts);
    if (_i == P_SECCOMP || _i == P_STRICT) {
        ck_assert_msg(res.status == WALLS_VIOLATION &&
                          strcmp(walls_syscall_name(res.code), "openat") == 0,
                      "%s: %s %d", placement_names[_i], walls_status_name(res.status), res.code);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x33);
    } else if (geteuid() == 0) {
        ck_assert_msg(res.status == WALLS_OK && host[0] == 0xAB, "%s: %s %d",
                      placement_names[_i], walls_status_name(res.status), res.code);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* ---- item 3: a worker dying mid-task loses only its output ---------------- */

START_TEST(test_crash_mid_output)
{
    if (_i == P_THREADS)
        return; /* a crash in a thread kills the program */
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf keep, out;
    ck_assert_int_eq(walls_arena_alloc(pool, 65536, &keep), 0);
    ck_assert_int_eq(walls_arena_alloc(pool, 65536, &out), 0);
    memset(ptr_of(pool, keep), 0x5A, 65536);
    memset(ptr_of(pool, out), 0x00, 65536);
    struct walls_task_opts opts = {.inputs = &keep, .n_inputs = 1, .output = out};
    struct walls_result res = run(pool, t_half_then_crash, NULL, 0, &opts);
    ck_assert_int_eq(res.status, WALLS_CRASHED);
    ck_assert_int_eq(res.code, SIGSEGV);
    const unsigned char *k = ptr_of(pool, keep), *o = ptr_of(pool, out);
    for (int i = 0; i < 65536; i++)
        ck_assert_uint_eq(k[i], 0x5A);
    if (staged(_i)) {
        /* Staged: nothing is copied back from a task that died. */
        for (int i = 0; i < 65536; i++)
            ck_assert_uint_eq(o[i], 0);
    } else {
        /* In place: what it wrote before dying. */
        ck_assert_uint_eq(o[0], 0xAB);
        ck_assert_uint_eq(o[32767], 0xAB);
        ck_assert_uint_eq(o[32768], 0);
    }
    /* Its buffers are free to use and free again. */
    ck_assert_int_eq(walls_arena_free(pool, out), 0);
    opts.output = 0;
    res = run(pool, t_sum, NULL, 0, &opts);
    ck_assert_int_eq(res.status, WALLS_OK);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Hybrid: a task that finished in one thread keeps its output when
 * another thread of its process crashes before anyone looked. */
START_TEST(test_finished_beside_crash)
{
    if (_i != P_HYBRID && _i != P_STRICT)
        return; /* one thread per process */
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2,
                                .arena_size = ARENA};
    if (_i == P_STRICT) {
        o.sandbox = WALLS_SANDBOX_STRICT;
        o.sandbox_fallback = WALLS_SANDBOX_FALLBACK;
    }
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_buf out;
    ck_assert_int_eq(walls_arena_alloc(pool, 65536, &out), 0);
    /* Rounds after the first run on a replacement process. */
    for (int round = 0; round < 3; round++) {
        unsigned char *p = ptr_of(pool, out);
        memset(p, 0, 65536);
        walls_task *crash, *fill;
        int ms = 100;
        /* One process: in whichever thread the filler runs, it is done
         * before the crash, which takes its whole process down. */
        struct walls_task_opts opts = {.output = out};
        ck_assert_int_eq(walls_submit_ex(pool, t_fill, NULL, 0, &opts, &fill), 0);
        ck_assert_int_eq(walls_submit(pool, t_sleep_then_crash, &ms, sizeof ms, &crash), 0);
        usleep(400000); /* nobody waits: nothing is harvested before the crash */
        struct walls_result res;
        ck_assert_int_eq(walls_wait(crash, 20000, &res), 0);
        ck_assert_int_eq(res.status, WALLS_CRASHED);
        ck_assert_int_eq(walls_wait(fill, 20000, &res), 0);
        ck_assert_int_eq(res.status, WALLS_OK);
        for (int i = 0; i < 65536; i++)
            ck_assert_msg(p[i] == 0x5C, "round %d: byte %d is %#x", round, i, p[i]);
        walls_task_free(crash);
        walls_task_free(fill);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* A buffer that is both a task's input and its output: read-modify-write,
 * the same in place and staged. */
START_TEST(test_input_is_output)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf b;
    ck_assert_int_eq(walls_arena_alloc(pool, 8192, &b), 0);
    uint64_t *w = ptr_of(pool, b);
    for (int i = 0; i < 1024; i++)
        w[i] = (uint64_t)i * 10;
    struct walls_task_opts opts = {.inputs = &b, .n_inputs = 1, .output = b};
    for (int round = 0; round < 3; round++) {
        struct walls_result res = run(pool, t_increment, NULL, 0, &opts);
        ck_assert_int_eq(res.status, WALLS_OK);
        uint64_t first;
        memcpy(&first, res.out, sizeof first);
        ck_assert_uint_eq(first, (uint64_t)round); /* it read the buffer as it was */
    }
    for (int i = 0; i < 1024; i++)
        ck_assert_uint_eq(w[i], (uint64_t)i * 10 + 3);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* ---- item 4: locks that survive their holder ------------------------------ */

START_TEST(test_lock_holder_killed)
{
    walls_pool *pool = arena_pool(_i, ARENA, 4);
    walls_lock *locks;
    size_t n;
    ck_assert_int_eq(walls_pool_locks(pool, &locks, &n), 0);
    ck_assert_uint_eq(n, 4);
    walls_buf state;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &state), 0);
    struct walls_task_opts opts = {.output = state, .timeout_ms = 1000};
    int hang = _i == P_THREADS ? 3000 : -1; /* well past the limit, even on a slow machine */
    walls_task *t;
    ck_assert_int_eq(walls_submit_ex(pool, t_lock_and_hang, &hang, sizeof hang, &opts, &t), 0);
    /* Wait until the task holds the lock (taking it first just delays the task). */
    int rc = 0;
    for (int i = 0; i < 5000; i++) {
        rc = walls_lock_acquire(&locks[0], 0);
        if (rc == -ETIMEDOUT)
            break;
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
        usleep(1000);
    }
    ck_assert_int_eq(rc, -ETIMEDOUT);
    /* Held by the task, not by us. */
    ck_assert_int_eq(walls_lock_release(&locks[0]), -EPERM);
    struct walls_result res;
    ck_assert_int_eq(walls_wait(t, 20000, &res), 0);
    ck_assert_msg(res.status == WALLS_TIMEOUT, "%s: %s %d", placement_names[_i],
                  walls_status_name(res.status), res.code);
    walls_task_free(t);
    if (_i == P_THREADS) {
        /* A thread cannot be killed: its task ended for us, but it holds
         * the lock until it lets go by itself; nobody died. */
        ck_assert_int_eq(walls_lock_acquire(&locks[0], 0), -ETIMEDOUT);
        ck_assert_int_eq(walls_lock_acquire(&locks[0], 10000), 0);
        ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        return;
    }
    /* The supervisor released it on reaping the holder: the next holder is told. */
    ck_assert_int_eq(walls_lock_acquire(&locks[0], 5000), -EOWNERDEAD);
    ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
    /* From then on the lock is healthy, for the host and for tasks. */
    ck_assert_int_eq(walls_lock_acquire(&locks[0], 0), 0);
    ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
    res = run(pool, t_lock_take, NULL, 0, NULL);
    ck_assert_int_eq(res.status, WALLS_OK);
    /* A task that finds a dead holder hears of it too. */
    hang = -1;
    res = run(pool, t_lock_and_hang, &hang, sizeof hang, &opts);
    ck_assert_int_eq(res.status, WALLS_TIMEOUT);
    res = run(pool, t_lock_take, NULL, 0, NULL);
    ck_assert_int_eq(res.status, WALLS_FAILED);
    ck_assert_int_eq(res.code, EOWNERDEAD);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_lock_excludes)
{
    if (staged(_i))
        return; /* the writer's output is staged: readers would not see it */
    walls_pool *pool = arena_pool(_i, ARENA, 1);
    walls_buf shared;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &shared), 0);
    struct walls_task_opts wopts = {.output = shared};
    struct walls_task_opts ropts = {.inputs = &shared, .n_inputs = 1};
    walls_task *w, *r[3];
    ck_assert_int_eq(walls_submit_ex(pool, t_lock_writer, NULL, 0, &wopts, &w), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(walls_submit_ex(pool, t_lock_reader, NULL, 0, &ropts, &r[i]), 0);
    struct walls_result res;
    ck_assert_int_eq(walls_wait(w, 60000, &res), 0);
    ck_assert_int_eq(res.status, WALLS_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(walls_wait(r[i], 60000, &res), 0);
        ck_assert_msg(res.status == WALLS_OK, "%s: reader %d: %s %d torn", placement_names[_i],
                      i, walls_status_name(res.status), res.code);
        walls_task_free(r[i]);
    }
    walls_task_free(w);
    const uint64_t *o = ptr_of(pool, shared);
    ck_assert_uint_eq(o[0], 20000);
    ck_assert_uint_eq(o[1], 20000);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* ---- item 5: bad input ---------------------------------------------------- */

START_TEST(test_bad_buffers)
{
    walls_pool *pool = arena_pool(_i, 1u << 20, 0);
    walls_pool *other = arena_pool(_i, 1u << 20, 0);
    walls_buf a, b, foreign;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &a), 0);
    ck_assert_int_eq(walls_arena_alloc(other, 4096, &foreign), 0);
    /* NULLs and zero. */
    ck_assert_int_eq(walls_arena_alloc(NULL, 4096, &b), -EINVAL);
    ck_assert_int_eq(walls_arena_alloc(pool, 0, &b), -EINVAL);
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, NULL), -EINVAL);
    ck_assert_int_eq(walls_arena_free(NULL, a), -EINVAL);
    void *p;
    ck_assert_int_eq(walls_arena_ptr(pool, a, NULL, NULL), -EINVAL);
    /* Out of range and garbage handles. */
    ck_assert_int_eq(walls_arena_free(pool, 0), -ENOENT);
    ck_assert_int_eq(walls_arena_ptr(pool, a + 1, &p, NULL), -ENOENT);
    ck_assert_int_eq(walls_arena_ptr(pool, (a & ~0xffffffffull) | 0xfffffff, &p, NULL), -ENOENT);
    ck_assert_int_eq(walls_arena_free(pool, a ^ (1ull << 32)), -ENOENT);
    /* Another pool's buffer. */
    ck_assert_int_eq(walls_arena_free(pool, foreign), -EXDEV);
    ck_assert_int_eq(walls_arena_ptr(pool, foreign, &p, NULL), -EXDEV);
    struct walls_task_opts opts = {.inputs = &foreign, .n_inputs = 1};
    walls_task *t = NULL;
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, NULL, 0, &opts, &t), -EXDEV);
    opts = (struct walls_task_opts){.output = foreign};
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, NULL, 0, &opts, &t), -EXDEV);
    /* Submission checks. */
    walls_buf many[WALLS_TASK_INPUTS_MAX + 1];
    for (unsigned i = 0; i <= WALLS_TASK_INPUTS_MAX; i++)
        many[i] = a;
    opts = (struct walls_task_opts){.inputs = many, .n_inputs = WALLS_TASK_INPUTS_MAX + 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, NULL, 0, &opts, &t), -EINVAL);
    opts = (struct walls_task_opts){.inputs = NULL, .n_inputs = 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, NULL, 0, &opts, &t), -EINVAL);
    char big[WALLS_INLINE_MAX] = {0};
    opts = (struct walls_task_opts){.inputs = &a, .n_inputs = 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, big, sizeof big, &opts, &t), -E2BIG);
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, big, WALLS_INLINE_MAX - 16, &opts, &t), 0);
    struct walls_result res;
    ck_assert_int_eq(walls_wait(t, 20000, &res), 0);
    ck_assert_int_eq(res.status, WALLS_OK);
    walls_task_free(t);
    /* Double free, and use after free. */
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &b), 0);
    ck_assert_int_eq(walls_arena_free(pool, b), 0);
    ck_assert_int_eq(walls_arena_free(pool, b), -ENOENT);
    ck_assert_int_eq(walls_arena_ptr(pool, b, &p, NULL), -ENOENT);
    opts = (struct walls_task_opts){.inputs = &b, .n_inputs = 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, NULL, 0, &opts, &t), -ENOENT);
    /* The same page handed out again is a new buffer: the old handle stays dead. */
    walls_buf c;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &c), 0);
    ck_assert(c != b);
    ck_assert_int_eq(walls_arena_free(pool, b), -ENOENT);
    ck_assert_int_eq(walls_arena_free(pool, c), 0);
    /* Exhaustion, then room again after a free. */
    ck_assert_int_eq(walls_arena_alloc(pool, (1u << 20) + 1, &b), -ENOSPC);
    walls_buf fill[256];
    unsigned nfill = 0;
    while (walls_arena_alloc(pool, 4096, &fill[nfill]) == 0)
        nfill++;
    ck_assert_uint_eq(nfill, 255); /* 256 pages, one held by a */
    ck_assert_int_eq(walls_arena_alloc(pool, 1, &b), -ENOSPC);
    ck_assert_int_eq(walls_arena_free(pool, fill[7]), 0);
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &fill[7]), 0);
    for (unsigned i = 0; i < nfill; i++)
        ck_assert_int_eq(walls_arena_free(pool, fill[i]), 0);
    /* Freed runs join again: the whole arena but a's page fits. */
    ck_assert_int_eq(walls_arena_alloc(pool, 255 * 4096, &b), 0);
    ck_assert_int_eq(walls_arena_free(pool, b), 0);
    /* Buffers in use: no free, and one writer at a time. */
    int ms = 300;
    opts = (struct walls_task_opts){.inputs = &a, .n_inputs = 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &opts, &t), 0);
    ck_assert_int_eq(walls_arena_free(pool, a), -EBUSY);
    walls_task *t2;
    opts = (struct walls_task_opts){.output = a};
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &opts, &t2), 0);
    walls_task *t3;
    ck_assert_int_eq(walls_submit_ex(pool, t_sleep_ms, &ms, sizeof ms, &opts, &t3), -EBUSY);
    ck_assert_int_eq(walls_wait(t, 20000, &res), 0);
    ck_assert_int_eq(walls_wait(t2, 20000, &res), 0);
    walls_task_free(t);
    walls_task_free(t2);
    ck_assert_int_eq(walls_arena_free(pool, a), 0);
    /* A pool without an arena, a destroyed pool. */
    walls_pool *plain = arena_pool(_i, 0, 0);
    ck_assert_int_eq(walls_arena_alloc(plain, 4096, &b), -EINVAL);
    ck_assert_int_eq(walls_arena_free(plain, foreign), -EINVAL);
    walls_lock *locks;
    size_t n;
    ck_assert_int_eq(walls_pool_locks(plain, &locks, &n), -ENOENT);
    opts = (struct walls_task_opts){.inputs = &foreign, .n_inputs = 1};
    ck_assert_int_eq(walls_submit_ex(plain, t_sum, NULL, 0, &opts, &t), -EINVAL);
    ck_assert_int_eq(walls_pool_destroy(plain, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(other, 0), 0);
    ck_assert_int_eq(walls_arena_alloc(other, 4096, &b), -EBADF);
    ck_assert_int_eq(walls_arena_free(other, foreign), -EBADF);
    ck_assert_int_eq(walls_arena_ptr(other, foreign, &p, NULL), -EBADF);
    ck_assert_int_eq(walls_pool_locks(other, &locks, &n), -EBADF);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_bad_options)
{
    walls_pool *pool = NULL;
    struct walls_pool_opts o = {.arena_size = WALLS_ARENA_MAX + 1};
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    o = (struct walls_pool_opts){.locks = WALLS_LOCKS_MAX + 1};
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    ck_assert_int_eq(walls_lock_acquire(NULL, 0), -EINVAL);
    ck_assert_int_eq(walls_lock_release(NULL), -EINVAL);
    walls_lock garbage;
    memset(&garbage, 0x7f, sizeof garbage);
    ck_assert_int_eq(walls_lock_acquire(&garbage, 0), -EINVAL);
    ck_assert_int_eq(walls_lock_release(&garbage), -EINVAL);
    /* An arena of odd size is rounded up to pages. */
    o = (struct walls_pool_opts){.placement = WALLS_THREADS, .threads = 1, .arena_size = 5000,
                                 .locks = 1};
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_buf b;
    ck_assert_int_eq(walls_arena_alloc(pool, 8192, &b), 0);
    walls_lock *locks;
    size_t n;
    ck_assert_int_eq(walls_pool_locks(pool, &locks, &n), 0);
    ck_assert_int_eq(walls_lock_acquire(&locks[0], -2), -EINVAL);
    ck_assert_int_eq(walls_lock_release(&locks[0]), -EPERM);
    /* Huge timeouts wait, they do not wrap around. */
    ck_assert_int_eq(walls_lock_acquire(&locks[0], INT64_MAX / 1000), 0);
    ck_assert_int_eq(walls_lock_release(&locks[0]), 0);
    /* A stale handle stays dead through many reuses of its page. */
    walls_buf stale;
    ck_assert_int_eq(walls_arena_free(pool, b), 0);
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &stale), 0);
    ck_assert_int_eq(walls_arena_free(pool, stale), 0);
    for (int i = 0; i < 70000; i++) {
        ck_assert_int_eq(walls_arena_alloc(pool, 4096, &b), 0);
        ck_assert(b != stale);
        ck_assert_int_eq(walls_arena_free(pool, b), 0);
    }
    void *p;
    ck_assert_int_eq(walls_arena_ptr(pool, stale, &p, NULL), -ENOENT);
    /* Garbage, and a destroyed pool's buffer: nobody's. */
    ck_assert_int_eq(walls_arena_free(pool, 0xdeadbeef12345678ull), -ENOENT);
    walls_pool *gone;
    ck_assert_int_eq(walls_pool_create(&gone, &o), 0);
    walls_buf old;
    ck_assert_int_eq(walls_arena_alloc(gone, 4096, &old), 0);
    ck_assert_int_eq(walls_pool_destroy(gone, 0), 0);
    ck_assert_int_eq(walls_arena_free(pool, old), -ENOENT);
    /* Inline input plus references over the slot, with a size that would
     * wrap. */
    walls_task *t;
    struct walls_task_opts topts = {.inputs = &stale, .n_inputs = 1};
    char one = 0;
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, &one, SIZE_MAX - 8, &topts, &t), -E2BIG);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Pins last as long as a worker can touch the buffer: a thread still
 * running a task that timed out keeps its buffers. */
START_TEST(test_pins_outlive_timeout)
{
    walls_pool *pool = arena_pool(_i, 1u << 20, 0);
    walls_buf a;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &a), 0);
    int ms = 1000; /* well past the limit, even on a slow machine */
    struct walls_task_opts opts = {.output = a, .timeout_ms = 50};
    struct walls_result res = run(pool, t_sleep_ms, &ms, sizeof ms, &opts);
    ck_assert_int_eq(res.status, WALLS_TIMEOUT);
    if (_i == P_THREADS) {
        ck_assert_int_eq(walls_arena_free(pool, a), -EBUSY);
        int rc = -EBUSY;
        for (int i = 0; i < 5000 && rc == -EBUSY; i++) {
            /* Any call that harvests: a short task does. */
            res = run(pool, t_sum, NULL, 0, NULL);
            rc = walls_arena_free(pool, a);
            if (rc == -EBUSY)
                usleep(1000);
        }
        ck_assert_int_eq(rc, 0);
    } else {
        /* The process was killed and reaped before the result was given. */
        ck_assert_int_eq(walls_arena_free(pool, a), 0);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_nothing_left_behind)
{
    int fds = count_fds();
    int shm = count_shm();
    for (int round = 0; round < 3; round++) {
        walls_pool *pool = arena_pool(_i, ARENA, 8);
        walls_buf a;
        ck_assert_int_eq(walls_arena_alloc(pool, 1u << 20, &a), 0);
        struct walls_task_opts opts = {.inputs = &a, .n_inputs = 1, .output = a};
        /* An input may also be the output (read-modify-write). */
        struct walls_result res = run(pool, t_sum, NULL, 0, &opts);
        ck_assert_msg(res.status == WALLS_OK, "%s: %s %d", placement_names[_i],
                      walls_status_name(res.status), res.code);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_int_eq(count_shm(), shm);
    ck_assert_int_eq(wait_no_children(5000), 0);
}
END_TEST

static Suite *arena_suite(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("placements");
    tcase_add_loop_test(tc, test_sum_in_place, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_no_copy, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_write_to_input, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_mprotect_input, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_reopen_arena_writable, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_write_beside_output, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_crash_mid_output, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_finished_beside_crash, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_input_is_output, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_lock_holder_killed, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_lock_excludes, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_bad_buffers, 0, NPLACEMENTS);
    tcase_add_test(tc, test_bad_options);
    tcase_add_loop_test(tc, test_pins_outlive_timeout, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_nothing_left_behind, 0, NPLACEMENTS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(arena_suite());
}
