/*
 * test-backpressure.c - opts.max_queued: past that many waiting tasks
 * (unfinished beyond one per worker), walls_submit and walls_submit_batch
 * return -EAGAIN and submit nothing; room comes back as tasks finish, and
 * the pool's descriptor says when, without spinning. 0 is unbounded.
 *
 * Loop tests run once per placement: _i = 0 threads, 1 processes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

static walls_pool *bounded_pool(int i, unsigned max_queued)
{
    struct walls_pool_opts o = {.placement = placements[i], .max_queued = max_queued};
    if (placements[i] == WALLS_THREADS)
        o.threads = 1;
    else
        o.processes = 1;
    walls_pool *pool = NULL;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    return pool;
}

static uint64_t submitted(walls_pool *pool)
{
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    return st.submitted;
}

/* A batch that could never fit is refused before its inputs are copied or
 * its tasks made: a million of them cost no memory. */
START_TEST(test_batch_that_never_fits)
{
    walls_pool *pool = bounded_pool(_i, 4);
    enum { N = 1000000 };
    struct walls_input *in = calloc(N, sizeof *in);
    walls_task **t = calloc(N, sizeof *t);
    ck_assert(in && t);
    /* Read once here, so that a sanitizer's shadow of the array is not
     * counted as the call's. */
    size_t total = 0;
    for (size_t k = 0; k < N; k++)
        total += in[k].len;
    ck_assert_uint_eq(total, 0);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, N, t), -EAGAIN);
    getrusage(RUSAGE_SELF, &after);
    ck_assert_msg(after.ru_maxrss - before.ru_maxrss < 32 * 1024,
                  "refusing the batch took %ld KiB", after.ru_maxrss - before.ru_maxrss);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "split the batch"));
    ck_assert_uint_eq(submitted(pool), 0);
    /* ... before its inputs are looked at: a bad one further on does not
     * change the answer, nor is it read. */
    in[N - 1] = (struct walls_input){NULL, 5};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, N, t), -EAGAIN);
    in[N - 1] = (struct walls_input){"x", (size_t)WALLS_IO_MAX + 1};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, N, t), -EAGAIN);
    in[N - 1] = (struct walls_input){NULL, 0};
    /* Nor is the count: more tasks than any pool holds is -EAGAIN too. */
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, (size_t)UINT32_MAX + 1, t), -EAGAIN);
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, SIZE_MAX, t), -EAGAIN);
    /* The most that fits an idle pool still does: 4 waiting plus 1 running. */
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 5, t), 0);
    for (int k = 0; k < 5; k++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[k], 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t[k]);
    }
    free(in);
    free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_eagain_past_max_queued)
{
    walls_pool *pool = bounded_pool(_i, 4);
    int ms = 400;
    walls_task *slow, *t[6];
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &slow), 0);
    /* One worker: the slow task plus 4 waiting is the most. */
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(walls_submit(pool, t_echo, &k, sizeof k, &t[k]), 0);
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &t[4]), -EAGAIN);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "max_queued 4"));
    struct walls_input in[2] = {{NULL, 0}, {NULL, 0}};
    ck_assert_int_eq(walls_submit_batch(pool, t_echo, in, 2, &t[4]), -EAGAIN);
    ck_assert_uint_eq(submitted(pool), 5);
    /* Room comes back as tasks finish; the descriptor says so. */
    int fd = walls_pool_fd(pool);
    ck_assert_int_ge(fd, 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    walls_task *done[8];
    size_t n = 0;
    ck_assert_int_eq(walls_pool_collect(pool, done, 8, &n), 0);
    ck_assert_uint_ge(n, 1);
    ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &t[4]), 0);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(slow, -1, &r), 0);
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(walls_wait(t[k], -1, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t[k]);
    }
    walls_task_free(slow);
    /* All finished: a full batch fits again, one more does not. */
    walls_task *b[6];
    struct walls_input six[6];
    memset(six, 0, sizeof six);
    ck_assert_int_eq(walls_submit_batch(pool, t_sleep_ms, six, 6, b), -EAGAIN);
    ck_assert_int_eq(walls_submit_batch(pool, t_sleep_ms, six, 5, b), 0);
    ck_assert_int_eq(walls_wait_all(b, 5, -1), 0);
    for (int k = 0; k < 5; k++)
        walls_task_free(b[k]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Creates the file its input names: a mark a test can see without taking
 * the task's completion. */
static int t_mark(struct walls_call *call)
{
    char path[256];
    size_t n = call->in_len < sizeof path - 1 ? call->in_len : sizeof path - 1;
    memcpy(path, call->in, n);
    path[n] = '\0';
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return 1;
    close(fd);
    return 0;
}

/* The marks' directory, made and removed by this (parent) process around
 * the suite: a test that fails part way leaves nothing in /tmp. */
static char mark_dir[] = "/tmp/walls-bp-XXXXXX";
static bool mark_dir_made;
enum { N_MARKS = 8 };

static void mark_path(char *buf, size_t len, int placement, int k)
{
    snprintf(buf, len, "%s/%d-%d", mark_dir, placement, k);
}

static void mark_dir_make(void)
{
    mark_dir_made = mkdtemp(mark_dir) != NULL;
}

static void mark_dir_remove(void)
{
    if (!mark_dir_made)
        return;
    char path[64];
    for (int placement = 0; placement < 2; placement++)
        for (int k = 0; k < N_MARKS; k++) {
            mark_path(path, sizeof path, placement, k);
            unlink(path);
        }
    rmdir(mark_dir);
}

/* A finished task does not wait, whether or not anyone took its completion
 * yet: one worker, max_queued 1, and each task submitted once the one
 * before it ran. Each of the eight fits (before, the fourth was refused:
 * three finished tasks nobody had looked at counted as waiting). */
START_TEST(test_finished_tasks_do_not_wait)
{
    ck_assert_msg(mark_dir_made, "mkdtemp under /tmp failed");
    walls_pool *pool = bounded_pool(_i, 1);
    enum { N = N_MARKS };
    walls_task *t[N];
    char path[N][64];
    for (int k = 0; k < N; k++) {
        mark_path(path[k], sizeof path[k], _i, k);
        ck_assert_msg(walls_submit(pool, t_mark, path[k], strlen(path[k]), &t[k]) == 0,
                      "task %d refused: %s", k, walls_last_error());
        /* It ran (the one before it has published its completion, which
         * is left where it is). */
        for (int w = 0; access(path[k], F_OK) != 0; w++) {
            ck_assert_msg(w < 30000, "task %d never ran", k);
            usleep(1000);
        }
    }
    for (int k = 0; k < N; k++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[k], -1, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t[k]);
        ck_assert_int_eq(unlink(path[k]), 0);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_unbounded)
{
    walls_pool *pool = bounded_pool(_i, 0);
    enum { MANY = 5000 };
    static walls_task *t[MANY];
    for (int k = 0; k < MANY; k++)
        ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &t[k]), 0);
    ck_assert_int_eq(walls_wait_all(t, MANY, -1), 0);
    for (int k = 0; k < MANY; k++)
        walls_task_free(t[k]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("backpressure");
    TCase *tc = tcase_create("both placements");
    tcase_add_unchecked_fixture(tc, mark_dir_make, mark_dir_remove);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_eagain_past_max_queued, 0, 2);
    tcase_add_loop_test(tc, test_batch_that_never_fits, 0, 2);
    tcase_add_loop_test(tc, test_unbounded, 0, 2);
    tcase_add_loop_test(tc, test_finished_tasks_do_not_wait, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
