/*
 * test-contract.c - bad input to the arena and lock calls: NULLs and zero,
 * garbage and stale handles (also after many reuses of a page), another
 * pool's buffers, too many or missing inputs, exhaustion and room again,
 * buffers in use, pools without an arena or destroyed, oversized options
 * and garbage locks, each refused with its documented code.
 *
 * Loop tests run once per placement (placements.h); a few cases make sense
 * in only some of them, and the test says so where it returns early.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"
#include "placements.h"
#include "walls.h"

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
    /* An inline input shares the slot with the references; a larger one
     * travels apart, beside them. */
    char big[WALLS_INLINE_MAX] = {0};
    opts = (struct walls_task_opts){.inputs = &a, .n_inputs = 1};
    ck_assert_int_eq(walls_submit_ex(pool, t_sum, big, WALLS_IO_MAX + 1, &opts, &t), -E2BIG);
    size_t lens[2] = {WALLS_INLINE_MAX - 16, sizeof big};
    struct walls_result res;
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(walls_submit_ex(pool, t_sum, big, lens[k], &opts, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &res), 0);
        ck_assert_int_eq(res.status, WALLS_OK);
        walls_task_free(t);
    }
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

static Suite *suite(void)
{
    Suite *s = suite_create("arena contract");
    TCase *tc = tcase_create("placements");
    tcase_add_loop_test(tc, test_bad_buffers, 0, NPLACEMENTS);
    tcase_add_test(tc, test_bad_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
