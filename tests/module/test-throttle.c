/*
 * test-throttle.c - crash-loop protection (src/throttle.c) on its own:
 * restart_limit restarts within the window are allowed and the next one
 * trips; restarts that fell out of the window no longer count; a reset
 * forgets them; the backoff doubles with each restart within the window,
 * up to the window.
 */
#include <check.h>
#include <stdint.h>

#include "helpers.h"
#include "throttle.h"

#define MS 1000000LL

START_TEST(test_limit_within_window)
{
    struct walls__throttle t;
    ck_assert_int_eq(walls__throttle_init(&t, 3, 1000 * MS, 0), 0);
    int64_t now = 5000 * MS;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(walls__throttle_restart(&t, now + i * MS), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, now + 3 * MS), -1);
    /* Past the window, the old ones no longer count. */
    now += 2000 * MS;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(walls__throttle_restart(&t, now + i * 400 * MS), 0);
    /* The first of these three is now 1200 ms old: out of the window. */
    ck_assert_int_eq(walls__throttle_restart(&t, now + 1200 * MS), 0);
    walls__throttle_fini(&t);
}
END_TEST

START_TEST(test_reset_forgets)
{
    struct walls__throttle t;
    ck_assert_int_eq(walls__throttle_init(&t, 1, 1000 * MS, 0), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, 1 * MS), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, 2 * MS), -1);
    walls__throttle_reset(&t);
    ck_assert_int_eq(walls__throttle_restart(&t, 3 * MS), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, 4 * MS), -1);
    walls__throttle_fini(&t);
}
END_TEST

START_TEST(test_backoff_doubles_up_to_window)
{
    struct walls__throttle t;
    ck_assert_int_eq(walls__throttle_init(&t, 100, 1000 * MS, 50 * MS), 0);
    static const int64_t want[] = {50, 100, 200, 400, 800, 1000, 1000};
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t delay = walls__throttle_restart(&t, (int64_t)(i + 1) * MS);
        ck_assert_msg(delay == want[i] * MS, "restart %u waits %lld ms, want %lld", i,
                      (long long)(delay / MS), (long long)want[i]);
    }
    /* Alone in the window again: the first step. */
    ck_assert_int_eq(walls__throttle_restart(&t, 10000 * MS), 50 * MS);
    walls__throttle_fini(&t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("throttle");
    TCase *tc = tcase_create("throttle");
    tcase_add_test(tc, test_limit_within_window);
    tcase_add_test(tc, test_reset_forgets);
    tcase_add_test(tc, test_backoff_doubles_up_to_window);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
