/*
 * test-crash.c - a worker dying mid-task loses only its own output: what
 * it wrote in place stays, a staged output is untouched, its inputs cannot
 * have changed and its buffers are free again; in a hybrid process, a task
 * that finished in another thread keeps its output.
 *
 * Loop tests run once per placement (placements.h); a few cases make sense
 * in only some of them, and the test says so where it returns early.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "placements.h"
#include "walls.h"

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

/* Writes its output halfway, then crashes. */
static int t_half_then_crash(struct walls_call *call)
{
    memset(call->output, 0xAB, call->output_len / 2);
    raise(SIGSEGV);
    return 0;
}

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

static Suite *suite(void)
{
    Suite *s = suite_create("arena crash");
    TCase *tc = tcase_create("placements");
    tcase_add_loop_test(tc, test_crash_mid_output, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_finished_beside_crash, 0, NPLACEMENTS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
