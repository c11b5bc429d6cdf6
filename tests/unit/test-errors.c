/*
 * test-errors.c - why a call failed, in words: walls_last_error names the
 * argument and the value at fault, is kept per thread and survives later
 * successes; walls_strerror reads codes in walls' terms, and the status
 * names and version string are what the header promises.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "helpers.h"
#include "walls.h"

static void *last_error_of_new_thread(void *arg)
{
    *(const char **)arg = walls_last_error();
    return NULL;
}

static void expect_error(int rc, int want, const char *words)
{
    ck_assert_msg(rc == want, "got %d (%s), want %d", rc, walls_strerror(rc), want);
    ck_assert_msg(strstr(walls_last_error(), words), "walls_last_error(): \"%s\", want \"%s\"",
                  walls_last_error(), words);
}

START_TEST(test_last_error)
{
    walls_pool *pool = NULL;
    struct walls_pool_opts o = {.max_output = WALLS_IO_MAX + 1};
    expect_error(walls_pool_create(&pool, &o), -EINVAL,
                 "opts.max_output 1073741825 is over WALLS_IO_MAX 1073741824");
    o = (struct walls_pool_opts){.processes = 999};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.processes 999");
    o = (struct walls_pool_opts){.reserved[2] = 1};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.reserved[2]");
    /* An explicit THREADS placement cannot isolate: refused, as untrusted is. */
    o = (struct walls_pool_opts){.placement = WALLS_THREADS,
                                 .needs = WALLS_NEED_CRASH_ISOLATION};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "WALLS_NEED_CRASH_ISOLATION");
    o.needs = WALLS_NEED_UNTRUSTED;
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "WALLS_NEED_UNTRUSTED");
    o = (struct walls_pool_opts){.placement = WALLS_THREADS, .recycle_after = 3};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.recycle_after");
    ck_assert_ptr_null(pool);
    expect_error(walls_pool_create(NULL, NULL), -EINVAL, "out-parameter");

    pool = make_pool(WALLS_THREADS, 1);
    walls_task *t;
    expect_error(walls_submit(pool, NULL, NULL, 0, &t), -EINVAL, "fn is NULL");
    expect_error(walls_submit(pool, t_echo, NULL, 5, &t), -EINVAL, "in is NULL");
    char big[16] = {0};
    expect_error(walls_submit(pool, t_echo, big, WALLS_IO_MAX + 1, &t), -E2BIG,
                 "in_len 1073741825 is over WALLS_IO_MAX");
    struct walls_task_opts to = {.timeout_ms = -3};
    expect_error(walls_submit_ex(pool, t_echo, NULL, 0, &to, &t), -EINVAL, "timeout_ms -3");
    expect_error(walls_pool_collect(pool, &t, 1, &(size_t){0}), -ENOTCONN, "walls_pool_fd()");
    walls_buf b;
    expect_error(walls_arena_alloc(pool, 64, &b), -EINVAL, "no arena");
    expect_error(walls_pool_destroy(pool, 8), -EINVAL, "unknown flags 0x8");
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    expect_error(walls_submit(pool, t_echo, NULL, 0, &t), -EBADF, "destroyed");
    /* The calls outside pools say why too. */
    walls_lock garbage;
    memset(&garbage, 0xa5, sizeof garbage);
    expect_error(walls_lock_acquire(NULL, 0), -EINVAL, "walls_lock_acquire: lock is NULL");
    expect_error(walls_lock_acquire(&garbage, 0), -EINVAL, "not a lock");
    expect_error(walls_lock_release(&garbage), -EINVAL, "walls_lock_release: not a lock");
    char small[8];
    expect_error(walls_cpu_source(NULL, 4), -EINVAL, "walls_cpu_source: buf is NULL");
    expect_error(walls_cpu_source(small, 0), -EINVAL, "len is 0");
    expect_error(walls_sandbox_probe(NULL, NULL, 4), -EINVAL, "walls_sandbox_probe: buf is NULL");
    expect_error(walls_pool_stats(NULL, &(struct walls_stats){0}), -EINVAL, "pool is NULL");
    /* A success leaves the last failure's words. */
    ck_assert_int_eq(walls_cpu_count() > 0, 1);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "pool is NULL"));
    /* Each thread has its own. */
    pthread_t th;
    const char *other = NULL;
    ck_assert_int_eq(pthread_create(&th, NULL, last_error_of_new_thread, &other), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_str_eq(other, "no walls call has failed on this thread");
    /* Codes read in walls' terms. */
    ck_assert_ptr_nonnull(strstr(walls_strerror(-ENOTSUP), "kernel refuses a sandbox layer"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-ENOTCONN), "walls_pool_fd()"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EPERM), "fork()"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EINVAL), "walls_last_error()"));
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(walls_status_name(WALLS_OK), "ok");
    ck_assert_str_eq(walls_status_name(WALLS_CRASHED), "crashed");
    ck_assert_str_eq(walls_status_name(WALLS_BROKEN), "broken");
    ck_assert_str_eq(walls_status_name((enum walls_status)99), "unknown");
    ck_assert_str_eq(walls_status_name((enum walls_status)-1), "unknown");
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EBADF), "stale"));
    ck_assert_str_eq(walls_strerror(-ENOMEM), "Cannot allocate memory");
    ck_assert_str_eq(walls_strerror(12345), "unknown error");
    ck_assert_str_eq(walls_strerror(-99999), "unknown error");
    ck_assert_str_eq(walls_version(), WALLS_VERSION_STRING);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_last_error);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
