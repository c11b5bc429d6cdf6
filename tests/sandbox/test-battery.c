/*
 * test-battery.c - the strict sandbox against the battery of hostile tasks
 * (attacks.c). In a strict-sandboxed pool each attack must end the way the
 * table says (a violation naming the call, or a crash, timeout or protocol
 * error) while a harmless task on the pool's other worker completes, and
 * nothing reaches the host; in a pool without a sandbox the same attacks
 * run again and must succeed, so every check here is able to fail.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the strict sandbox.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attacks.h"
#include "helpers.h"
#include "probe.h"
#include "walls.h"

START_TEST(test_battery_strict)
{
    ck_assert_int_ge((int)NATTACKS, 30);
    setup_target();
    walls_pool *pool = strict_pool();
    char line[640];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_msg(strstr(line, "sandbox: strict (") && strstr(line, "user ns") &&
                      strstr(line, "network ns") && strstr(line, "seccomp"),
                  "explain: %s", line);
    bool i386 = kernel_has_i386_abi();
    for (size_t i = 0; i < NATTACKS; i++) {
        const struct attack *a = &attacks[i];
        make_victim_file();
        if (a->fn == a_int80 && !i386) {
            /* No i386 ABI: the call faults in the task itself. */
            walls_task *t;
            struct walls_result r;
            ck_assert_int_eq(walls_submit(pool, a->fn, &target, sizeof target, &t), 0);
            ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
            ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGSEGV && r.flags == 0,
                          "%s without the i386 ABI: %s/%d flags %#x, expected crashed/11",
                          a->what, walls_status_name(r.status), r.code, r.flags);
            printf("sandbox-battery: no i386 ABI in this kernel: int 0x80 faults (SIGSEGV)\n");
            walls_task_free(t);
            continue;
        }
        struct walls_task_opts topts = {.timeout_ms = a->fn == a_spin ? 150 : 0};
        walls_task *t, *bystander;
        struct walls_result r;
        static const char hello[] = "still here";
        ck_assert_int_eq(walls_submit_ex(pool, a->fn, &target, sizeof target, &topts, &t), 0);
        ck_assert_int_eq(walls_submit(pool, t_echo, hello, sizeof hello, &bystander), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        const char *named = r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "";
        ck_assert_msg(r.status == a->strict, "%s: ended %s/%d %s, expected %s", a->what,
                      walls_status_name(r.status), r.code, named, walls_status_name(a->strict));
        if (a->call)
            ck_assert_msg(strcmp(named, a->call) == 0, "%s: named %s, expected %s", a->what,
                          named, a->call);
        else if (a->code)
            ck_assert_msg(r.code == a->code, "%s: code %d, expected %d", a->what, r.code,
                          a->code);
        /* Exactly the calls through another ABI are flagged so. */
        bool foreign = a->fn == a_int80 || a->fn == a_x32;
        ck_assert_msg(!!(r.flags & WALLS_RESULT_FOREIGN_ABI) == foreign, "%s: flags %#x", a->what,
                      r.flags);
        walls_task_free(t);
        /* The other worker's task and the host carry on. */
        ck_assert_int_eq(walls_wait(bystander, 30000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK && r.out_len == sizeof hello &&
                          memcmp(r.out, hello, sizeof hello) == 0,
                      "bystander after %s: %s", a->what, walls_status_name(r.status));
        walls_task_free(bystander);
    }
    /* Nothing reached the host's side. */
    ck_assert_str_eq(secret, "the host's secret");
    char path[200];
    snprintf(path, sizeof path, "%s/created", target.dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/victim", target.dir);
    ck_assert_int_eq(access(path, F_OK), 0);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    teardown_target();
}
END_TEST

START_TEST(test_battery_unsandboxed)
{
    setup_target();
    /* A fresh worker for every attack: some change the worker for good. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .recycle_after = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    bool i386 = kernel_has_i386_abi();
    for (size_t i = 0; i < NATTACKS; i++) {
        const struct attack *a = &attacks[i];
        make_victim_file();
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, a->fn, &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        if (a->fn == a_int80 && !i386) {
            ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGSEGV,
                          "%s without the i386 ABI: %s/%d, expected crashed/11", a->what,
                          walls_status_name(r.status), r.code);
        } else if (a->optional && r.status == WALLS_FAILED && r.status != a->plain) {
            printf("sandbox-battery: \"%s\" cannot succeed here even without a sandbox: %s\n",
                   a->what, strerror(r.code));
        } else {
            ck_assert_msg(r.status == a->plain, "%s without a sandbox: %s/%d, expected %s",
                          a->what, walls_status_name(r.status), r.code,
                          walls_status_name(a->plain));
            if (a->plain == WALLS_CRASHED)
                ck_assert_int_eq(r.code, a->code);
            if (a->plain == WALLS_EXITED)
                ck_assert_int_eq(r.code, 0);
        }
        walls_task_free(t);
    }
    char path[200];
    snprintf(path, sizeof path, "%s/created", target.dir);
    ck_assert_int_eq(access(path, F_OK), 0); /* it really wrote */
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    teardown_target();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("battery");
    TCase *tc = tcase_create("strict");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_battery_strict);
    tcase_add_test(tc, test_battery_unsandboxed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-battery", "strict", STRICT_LAYERS);
}
