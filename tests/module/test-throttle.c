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

/* The throttle against a plain count over every restart so far: among the
 * last limit + 1 restarts, those within the window of the newest. Gaps are
 * drawn so that the count wanders across the limit and back. */
START_TEST(test_agrees_with_a_count)
{
    enum { LIMIT = 40, N = 20000 };
    const int64_t window = 100 * MS;
    struct walls__throttle t;
    ck_assert_int_eq(walls__throttle_init(&t, LIMIT, window, 0), 0);
    static int64_t times[N];
    int64_t now = 1000 * MS;
    unsigned seed = 12345, tripped = 0;
    for (unsigned n = 0; n < N; n++) {
        seed = seed * 1103515245u + 12345u;
        now += (int64_t)((seed >> 16) % 6000) * 1000; /* 0 to 6 ms, 2.5 ms on average */
        times[n] = now;
        unsigned recent = 0;
        for (unsigned i = n + 1 > LIMIT + 1 ? n - LIMIT : 0; i <= n; i++)
            recent += now - times[i] <= window;
        int64_t want = recent > LIMIT ? -1 : 0;
        ck_assert_msg(walls__throttle_restart(&t, now) == want, "restart %u: want %lld", n,
                      (long long)want);
        tripped += want == -1;
    }
    ck_assert_msg(tripped > 0 && tripped < N / 2, "the limit was crossed %u times", tripped);
    walls__throttle_fini(&t);
}
END_TEST

/* A time before the last restart's counts as the last one's: nothing
 * leaves the window early, nothing is counted twice. */
START_TEST(test_time_going_back)
{
    struct walls__throttle t;
    ck_assert_int_eq(walls__throttle_init(&t, 2, 1000 * MS, 0), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, 5000 * MS), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, 1 * MS), 0);
    ck_assert_int_eq(walls__throttle_restart(&t, 5500 * MS), -1);
    /* 5000 and the clamped one are both more than a window before this. */
    ck_assert_int_eq(walls__throttle_restart(&t, 6001 * MS), 0);
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
    tcase_add_test(tc, test_agrees_with_a_count);
    tcase_add_test(tc, test_time_going_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
