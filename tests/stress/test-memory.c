/*
 * test-memory.c - task memory goes back once tasks are freed.
 *
 * A million tasks of 400 bytes are queued at once, waited for, freed, and
 * their pool destroyed: the process's resident memory must come back to
 * within a bounded cache of where it started, not stay at the high-water
 * mark. Under the sanitizers (which keep freed memory in quarantine, or
 * shadow it) the run is smaller and the figure is printed, not checked.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* The bound: two spare chunks of task entries and what the C library
 * keeps, far below the ~800 MB a million tasks of 400 bytes take. */
#define SLACK_MB 64

static int t_nothing(struct walls_call *call)
{
    (void)call;
    return 0;
}

/* Queue n tasks of 400 bytes, wait for all, free all, destroy; returns the
 * resident memory at the peak, in KiB. */
static long churn(size_t n, walls_fn *fn)
{
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .threads = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task **tasks = calloc(n, sizeof *tasks);
    ck_assert_ptr_nonnull(tasks);
    unsigned char in[400];
    memset(in, 0x5a, sizeof in);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(walls_submit(pool, fn, in, sizeof in, &tasks[i]), 0);
    for (size_t i = 0; i < n; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], 60000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
    }
    long peak = rss_kb();
    for (size_t i = 0; i < n; i++)
        walls_task_free(tasks[i]);
    free(tasks);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    return peak;
}

static void check_returns(walls_fn *fn, const char *what)
{
    size_t n = SANITIZED ? 100000 : 1000000;
    churn(1000, fn); /* threads, stacks and the first chunk exist from here on */
    long before = rss_kb();
    long peak = churn(n, fn);
    long after = rss_kb();
    fprintf(stderr, "%s: %zu tasks of 400 bytes: resident %ld MB before, %ld MB with all "
            "done, %ld MB after free and destroy\n",
            what, n, before / 1024, peak / 1024, after / 1024);
    if (SANITIZED)
        return;
    ck_assert_msg(after - before < SLACK_MB * 1024,
                  "%s: %ld MB stayed resident after the tasks were freed (bound %d MB)", what,
                  (after - before) / 1024, SLACK_MB);
}

START_TEST(test_memory_returns_without_output)
{
    check_returns(t_nothing, "no output");
}
END_TEST

START_TEST(test_memory_returns_with_output)
{
    check_returns(t_echo, "400-byte output");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_memory_returns_without_output);
    tcase_add_test(tc, test_memory_returns_with_output);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
