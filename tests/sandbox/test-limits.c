/*
 * test-limits.c - the LIMITS sandbox level: probed from inside a worker,
 * no_new_privs, core dumps, file growth, the standard streams and the
 * descriptor limit are all closed to it, in processes and hybrid; without
 * the sandbox the same probes succeed, so each check can fail. Threads and
 * unknown levels are refused.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the limits level.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "helpers.h"
#include "probe.h"
#include "walls.h"

/* What a worker may do, as bits: 1 no_new_privs is off, 2 core dumps are
 * allowed, 4 a file may grow, 8 standard output is open, 16 more than 32
 * descriptors can be opened. */
static int probe_limits(struct walls_call *call)
{
    int can = 0;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        can |= 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur != 0)
        can |= 2;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != 0)
        can |= 4;
    if (fcntl(1, F_GETFD) != -1)
        can |= 8;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 32)
        can |= 16;
    memcpy(call->out, &can, sizeof can);
    call->out_len = sizeof can;
    return 0;
}

static int probe_in(enum walls_placement placement, unsigned sandbox)
{
    struct walls_pool_opts o = {.placement = placement, .processes = 1, .threads = 2,
                                .sandbox = sandbox};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[400];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, sandbox ? "sandbox: limits" : "sandbox: none"));
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, probe_limits, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    int can;
    memcpy(&can, r.out, sizeof can);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    return can;
}

START_TEST(test_sandbox_limits)
{
    /* Without the sandbox every probe succeeds (so each check below can
     * fail); with it, none does, in both process placements. */
    ck_assert_int_eq(probe_in(WALLS_PROCESSES, WALLS_SANDBOX_NONE) & (1 | 8 | 16), 1 | 8 | 16);
    ck_assert_int_eq(probe_in(WALLS_PROCESSES, WALLS_SANDBOX_LIMITS), 0);
    ck_assert_int_eq(probe_in(WALLS_HYBRID, WALLS_SANDBOX_LIMITS), 0);
    /* Refused: not for threads, and unknown levels. */
    walls_pool *pool = NULL;
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .sandbox = WALLS_SANDBOX_LIMITS};
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    o = (struct walls_pool_opts){.placement = WALLS_PROCESSES, .sandbox = 7};
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    ck_assert_ptr_null(pool);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sandbox_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-limits", "limits", WALLS_LAYER_LIMITS);
}
