/*
 * test-buffers.c - the shared arena's buffers: inputs in, an output out,
 * the same task code in every placement; no copy (threads see the host's
 * own memory, processes the same pages, host writes showing through); a
 * buffer both input and output; pins that last as long as a worker can
 * touch a buffer; nothing left behind after destroy.
 *
 * Loop tests run once per placement (placements.h); a few cases make sense
 * in only some of them, and the test says so where it returns early.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "placements.h"
#include "walls.h"

/* Reports where its buffers are mapped: in = nothing; out = the pointers. */
static int t_where(struct walls_call *call)
{
    uintptr_t p[2] = {call->n_inputs ? (uintptr_t)call->inputs[0].ptr : 0,
                      (uintptr_t)call->output};
    memcpy(call->out, p, sizeof p);
    call->out_len = sizeof p;
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

static Suite *suite(void)
{
    Suite *s = suite_create("arena buffers");
    TCase *tc = tcase_create("placements");
    tcase_add_loop_test(tc, test_sum_in_place, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_no_copy, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_input_is_output, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_pins_outlive_timeout, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_nothing_left_behind, 0, NPLACEMENTS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
