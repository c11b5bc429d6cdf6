/*
 * test-shared.c - the writable shared region (opts.shared_size): every
 * worker writes it, in every placement and sandbox level, and the host
 * sees the writes at once; changes made under a lock by many tasks at
 * the same time add up; a worker that dies mid-change leaves what it
 * wrote, and the next holder of the lock, told -EOWNERDEAD, rolls it back
 * from the undo record; the arena stays read-only beside it; bad input.
 *
 * Loop tests run once per placement (placements.h).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "placements.h"
#include "walls.h"

#define SHARED (1u << 20)
#define MAGIC 0x5ea1ed0ddba11ULL

/* Words of the region the tests use. */
enum {
    W_COUNTER = 0,
    W_MAGIC = 1,
    W_PENDING = 64, /* the undo record: set while a change is under way */
    W_OLD_A = 65,
    W_OLD_B = 66,
    W_A = 80, /* a pair that must read equal whenever the lock is free */
    W_B = 81,
    W_MARKS = 1024, /* one word per task: its number */
    NMARKS = 64,
    ROUNDS = 500,
};

static volatile uint64_t *words(struct walls_call *call)
{
    return call->shared;
}

/* in: the task's number. Checks the host's magic word, marks its own
 * word, and bumps the counter ROUNDS times under lock 0. */
static int t_count(struct walls_call *call)
{
    int id = -1;
    if (call->in_len == sizeof id)
        memcpy(&id, call->in, sizeof id);
    if (!call->shared || call->shared_size < SHARED || id < 0 || id >= NMARKS)
        return 1;
    volatile uint64_t *w = words(call);
    if (w[W_MAGIC] != MAGIC)
        return 2;
    w[W_MARKS + id] = (uint64_t)id + 1;
    for (int i = 0; i < ROUNDS; i++) {
        if (walls_lock_acquire(&call->locks[0], 10000) != 0)
            return 3;
        w[W_COUNTER] = w[W_COUNTER] + 1;
        walls_lock_release(&call->locks[0]);
    }
    return 0;
}

/* Moves the pair (a, b) to (a + 1, b + 1) under lock 0, with an undo
 * record. in: 1 = die halfway, after a moved and before b did. Output
 * (8 bytes): 1 if it found a dead holder's change and rolled it back. */
static int t_pair(struct walls_call *call)
{
    int die = 0;
    if (call->in_len == sizeof die)
        memcpy(&die, call->in, sizeof die);
    volatile uint64_t *w = words(call);
    uint64_t recovered = 0;
    int rc = walls_lock_acquire(&call->locks[0], 10000);
    if (rc == -EOWNERDEAD) {
        if (w[W_PENDING]) {
            w[W_A] = w[W_OLD_A];
            w[W_B] = w[W_OLD_B];
            w[W_PENDING] = 0;
            recovered = 1;
        }
    } else if (rc != 0) {
        return 3;
    }
    w[W_OLD_A] = w[W_A];
    w[W_OLD_B] = w[W_B];
    w[W_PENDING] = 1;
    w[W_A] = w[W_A] + 1;
    if (die)
        raise(SIGSEGV);
    w[W_B] = w[W_B] + 1;
    w[W_PENDING] = 0;
    walls_lock_release(&call->locks[0]);
    memcpy(call->out, &recovered, sizeof recovered);
    call->out_len = sizeof recovered;
    return 0;
}

/* Writes the region, then its own input buffer: the second write must
 * kill it in process placements (the arena stays read-only). */
static int t_write_both(struct walls_call *call)
{
    words(call)[W_MARKS] = 77;
    ((volatile unsigned char *)(uintptr_t)call->inputs[0].ptr)[0] = 1;
    return 0;
}

/* 0 when the region's magic word holds 42. */
static int t_magic(struct walls_call *call)
{
    return call->shared && words(call)[W_MAGIC] == 42 ? 0 : 1;
}

/* 0 when the call shows no region. */
static int t_no_region(struct walls_call *call)
{
    return call->shared || call->shared_size ? 1 : 0;
}

static walls_pool *shared_pool(int which)
{
    struct walls_pool_opts o = {.shared_size = SHARED, .locks = 1};
    return placement_pool(which, o);
}

START_TEST(test_shared_counts)
{
    walls_pool *pool = shared_pool(_i);
    void *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), 0);
    ck_assert_uint_eq(size, SHARED);
    volatile uint64_t *w = base;
    /* Zeroed at creation. */
    for (size_t i = 0; i < SHARED / sizeof(uint64_t); i += 512)
        ck_assert_uint_eq(w[i], 0);
    w[W_MAGIC] = MAGIC; /* what the host writes, the workers read */
    walls_task *tasks[NMARKS];
    for (int i = 0; i < NMARKS; i++)
        ck_assert_int_eq(walls_submit(pool, t_count, &i, sizeof i, &tasks[i]), 0);
    for (int i = 0; i < NMARKS; i++) {
        struct walls_result res;
        ck_assert_int_eq(walls_wait(tasks[i], 60000, &res), 0);
        ck_assert_msg(res.status == WALLS_OK, "%s: task %d: %s %d", placement_names[_i], i,
                      walls_status_name(res.status), res.code);
        walls_task_free(tasks[i]);
    }
    /* What the workers wrote, the host reads: every increment, every mark. */
    ck_assert_uint_eq(w[W_COUNTER], (uint64_t)NMARKS * ROUNDS);
    for (int i = 0; i < NMARKS; i++)
        ck_assert_uint_eq(w[W_MARKS + i], (uint64_t)i + 1);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_shared_outlives_a_crash)
{
    if (_i == P_THREADS)
        return; /* a crash in a thread kills the program */
    walls_pool *pool = shared_pool(_i);
    void *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), 0);
    volatile uint64_t *w = base;
    int live = 0, die = 1;
    for (int i = 0; i < 3; i++) {
        struct walls_result res = run(pool, t_pair, &live, sizeof live, NULL);
        ck_assert_int_eq(res.status, WALLS_OK);
    }
    ck_assert_uint_eq(w[W_A], 3);
    ck_assert_uint_eq(w[W_B], 3);
    /* Dies halfway: what it wrote stays, the lock is left held. */
    struct walls_result res = run(pool, t_pair, &die, sizeof die, NULL);
    ck_assert_msg(res.status == WALLS_CRASHED, "%s: %s", placement_names[_i],
                  walls_status_name(res.status));
    ck_assert_uint_eq(w[W_PENDING], 1);
    ck_assert_uint_eq(w[W_A], 4);
    ck_assert_uint_eq(w[W_B], 3);
    /* The next holder hears of the death, rolls back, then moves on. */
    res = run(pool, t_pair, &live, sizeof live, NULL);
    ck_assert_int_eq(res.status, WALLS_OK);
    ck_assert_uint_eq(res.out_len, sizeof(uint64_t));
    uint64_t recovered = 0;
    memcpy(&recovered, res.out, sizeof recovered);
    ck_assert_uint_eq(recovered, 1);
    ck_assert_uint_eq(w[W_PENDING], 0);
    ck_assert_uint_eq(w[W_A], 4);
    ck_assert_uint_eq(w[W_B], 4);
    /* And once only. */
    res = run(pool, t_pair, &live, sizeof live, NULL);
    ck_assert_int_eq(res.status, WALLS_OK);
    memcpy(&recovered, res.out, sizeof recovered);
    ck_assert_uint_eq(recovered, 0);
    ck_assert_uint_eq(w[W_A], 5);
    ck_assert_uint_eq(w[W_B], 5);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_arena_stays_read_only)
{
    if (_i == P_THREADS)
        return; /* threads share the host's memory: nothing is read-only */
    struct walls_pool_opts o = {.shared_size = SHARED, .arena_size = ARENA};
    walls_pool *pool = placement_pool(_i, o);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    unsigned char *p = ptr_of(pool, in);
    p[0] = 9;
    struct walls_task_opts topts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_write_both, NULL, 0, &topts);
    ck_assert_msg(res.status == WALLS_CRASHED && res.code == SIGSEGV, "%s: %s %d",
                  placement_names[_i], walls_status_name(res.status), res.code);
    void *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), 0);
    ck_assert_uint_eq(((uint64_t *)base)[W_MARKS], 77); /* the region took the write */
    ck_assert_uint_eq(p[0], 9);                          /* the input did not */
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* The region is a shared mapping: a child the host forks writes it, and
 * the host sees the write (as walls_pool_shared documents). */
START_TEST(test_shared_seen_by_a_fork)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .shared_size = SHARED};
    walls_pool *pool = NULL;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    void *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), 0);
    volatile uint64_t *w = base;
    w[W_MAGIC] = 1;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        w[W_MAGIC] = w[W_MAGIC] + 41;
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(w[W_MAGIC], 42);
    /* And a task of the pool reads what the child wrote. */
    struct walls_result res = run(pool, t_magic, NULL, 0, NULL);
    ck_assert_int_eq(res.status, WALLS_OK);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_shared_bad_input)
{
    /* Over the limit: refused, with a reason. */
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .shared_size = WALLS_SHARED_MAX + 1};
    walls_pool *pool = NULL;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    ck_assert_ptr_null(pool);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "shared_size"));
    /* One byte: a whole page. */
    o.shared_size = 1;
    o.placement = WALLS_PROCESSES;
    o.processes = 1;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    void *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), 0);
    ck_assert_uint_eq(size, 4096);
    char why[512];
    ck_assert_int_gt(walls_pool_explain(pool, why, sizeof why), 0);
    ck_assert_msg(strstr(why, "shared region"), "explain: %s", why);
    /* NULL arguments. */
    ck_assert_int_eq(walls_pool_shared(NULL, &base, &size), -EINVAL);
    ck_assert_int_eq(walls_pool_shared(pool, NULL, &size), -EINVAL);
    ck_assert_int_eq(walls_pool_shared(pool, &base, NULL), -EINVAL);
    /* A pool without a region: -ENOENT, and its tasks see none. */
    walls_pool *plain = proc_pool(1);
    ck_assert_int_eq(walls_pool_shared(plain, &base, &size), -ENOENT);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "shared_size"));
    struct walls_result res = run(plain, t_no_region, NULL, 0, NULL);
    ck_assert_int_eq(res.status, WALLS_OK);
    /* A destroyed pool. */
    ck_assert_int_eq(walls_pool_destroy(plain, 0), 0);
    ck_assert_int_eq(walls_pool_shared(plain, &base, &size), -EBADF);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), -EBADF);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("shared region");
    TCase *tc = tcase_create("placements");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_shared_counts, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_shared_outlives_a_crash, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_arena_stays_read_only, 0, NPLACEMENTS);
    tcase_add_test(tc, test_shared_seen_by_a_fork);
    tcase_add_test(tc, test_shared_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
