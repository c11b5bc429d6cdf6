/*
 * test-supervision.c - the supervisor keeping a process pool alive, and
 * knowing when to stop: a crash loop breaks the pool (restart limit) until
 * walls_pool_reset, restarts back off, a killed fork server breaks the pool
 * and the next pool gets a new one; the host's death (SIGKILL) leaves no
 * process behind, and a host with its own greedy SIGCHLD reaper steals none
 * of walls' children; nor does waitpid(-1) or SIGCHLD ever see the fork
 * server, forked or re-executed.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_crash_loop_breaks_pool)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2,
                                .restart_limit = 5, .restart_window_ms = 60000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 200 };
    walls_task *t[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(walls_submit(pool, t_segv, NULL, 0, &t[i]), 0);
    int crashed = 0, broken = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_CRASHED || r.status == WALLS_BROKEN, "task %d: %s", i,
                      walls_status_name(r.status));
        crashed += r.status == WALLS_CRASHED;
        broken += r.status == WALLS_BROKEN;
        walls_task_free(t[i]);
    }
    /* Five replacements, then a sixth death breaks the pool; whatever the
     * surviving worker had already taken may still crash it. */
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 5);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_int_ge(crashed, 6);
    ck_assert_int_ge(broken, 100);
    ck_assert_int_eq(crashed + broken, N);
    /* No fork loop: the workers stay down, only the fork server is left. */
    ck_assert_int_eq(wait_no_children(0), 1);
    walls_task *late;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &late), 0);
    ck_assert_int_eq(walls_wait(late, 0, &r), 0); /* at once */
    ck_assert_int_eq(r.status, WALLS_BROKEN);
    walls_task_free(late);
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 5);
    /* The cause is fixed: reset, and it serves again. */
    ck_assert_int_eq(walls_pool_reset(pool), 0);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &late), 0);
    ck_assert_int_eq(walls_wait(late, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(late);
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_int_eq(walls_pool_reset(NULL), -EINVAL);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(walls_pool_reset(pool), -EBADF);
}
END_TEST

/* Runs one task and returns its status. */
static enum walls_status run_one(walls_pool *pool, walls_fn *fn)
{
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, fn, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    walls_task_free(t);
    return r.status;
}

START_TEST(test_served_then_crashed_is_no_loop)
{
    /* A worker that finished a task and then crashed is no crash loop:
     * with a limit of 2, twelve such deaths in a row leave the pool
     * serving (before, the third broke it). Workers that die in their
     * first task still count, and break it as before. In processes and
     * in hybrid (where one thread's crash takes its process). */
    struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                .processes = 1, .threads = _i ? 2 : 0,
                                .restart_limit = 2, .restart_window_ms = 60000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(run_one(pool, t_pid), WALLS_OK);
        ck_assert_int_eq(run_one(pool, t_segv), WALLS_CRASHED);
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_uint_eq(st.restarts, 12);
    /* Now three workers in a row die in their first task: the third
     * death is one more than the limit. */
    ck_assert_int_eq(run_one(pool, t_segv), WALLS_CRASHED);
    ck_assert_int_eq(run_one(pool, t_segv), WALLS_CRASHED);
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_int_eq(run_one(pool, t_segv), WALLS_CRASHED);
    ck_assert_int_eq(run_one(pool, t_pid), WALLS_BROKEN);
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_uint_eq(st.restarts, 14);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(2000), 0);
}
END_TEST

START_TEST(test_restart_backoff)
{
    /* 50 ms backoff, doubling: three crashes take at least 50+100+200 ms
     * of restarts before the fourth task can run. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .restart_backoff_ms = 50, .restart_window_ms = 10000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *t[4];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(walls_submit(pool, i < 3 ? t_abort : t_pid, NULL, 0, &t[i]), 0);
    for (int i = 0; i < 4; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, i < 3 ? WALLS_CRASHED : WALLS_OK);
        walls_task_free(t[i]);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    ck_assert_int_ge(ms, 350);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_fork_server_killed)
{
    /* The fork server dies under a pool: what was out fails, what comes
     * later ends as WALLS_BROKEN at once, and destroy returns. */
    walls_pool *pool = proc_pool(2);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", getpid(), getpid());
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int fs = 0;
    ck_assert_int_eq(fscanf(f, "%d", &fs), 1);
    fclose(f);
    ck_assert_int_eq(kill(fs, SIGKILL), 0);
    usleep(200000);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 5000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_BROKEN);
    walls_task_free(t);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_int_eq(walls_pool_reset(pool), -ECHILD);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(1000), 0);
    /* A new pool gets a new fork server. */
    pool = proc_pool(1);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static bool gone(int pid)
{
    char path[64], state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    int n = fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
    return n == 1 && (state == 'Z' || state == 'X');
}

/* The fork server among parent's children (by name), or 0. */
static int server_of(int parent)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", parent, parent);
    FILE *f = fopen(path, "r");
    int pid, found = 0;
    while (f && !found && fscanf(f, "%d", &pid) == 1) {
        char comm[32] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", pid);
        FILE *c = fopen(path, "r");
        if (c && fgets(comm, sizeof comm, c) && strncmp(comm, "walls-forkserve", 15) == 0)
            found = pid;
        if (c)
            fclose(c);
    }
    if (f)
        fclose(f);
    return found;
}

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* A second thread, before walls starts its fork server: it is then
 * re-executed, not forked. */
static void become_threaded(void)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, sleeper, NULL), 0);
    ck_assert_int_eq(pthread_detach(t), 0);
}

/* Loop: 0 the fork server forked (a single-threaded host), 1 re-executed
 * (a host with a second thread). */
START_TEST(test_host_sigkill_leaves_nothing)
{
    /* Orphans come to us, so that we can reap them and see them gone. */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t host = fork();
    ck_assert_int_ge(host, 0);
    if (host == 0) {
        close(pipefd[0]);
        if (_i)
            become_threaded();
        walls_pool *pool = proc_pool(3);
        int pids[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            /* Three tasks that each hold a different worker: a sleeper pins
             * its worker, so the next task goes to another. */
            walls_task *t;
            int ms = 60000;
            if (walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t) != 0)
                _exit(1);
        }
        usleep(200000);
        char path[64];
        int fs = server_of(getpid());
        if (!fs)
            _exit(2);
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", fs, fs);
        FILE *f = fopen(path, "r");
        if (!f)
            _exit(3);
        for (int i = 0; i < 3; i++)
            if (fscanf(f, "%d", &pids[i]) != 1)
                _exit(4);
        fclose(f);
        int all[4] = {fs, pids[0], pids[1], pids[2]};
        if (write(pipefd[1], all, sizeof all) != sizeof all)
            _exit(5);
        pause();
        _exit(0);
    }
    close(pipefd[1]);
    int all[4];
    ck_assert_int_eq(read(pipefd[0], all, sizeof all), (ssize_t)sizeof all);
    close(pipefd[0]);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(!gone(all[i]), "process %d should be running", all[i]);
    ck_assert_int_eq(kill(host, SIGKILL), 0);
    ck_assert_int_eq(waitpid(host, NULL, 0), host);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long ms = 0;
    bool all_gone = false;
    while (!all_gone && ms < 10000) { /* promptly; the bound only guards a loaded machine */
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        all_gone = true;
        for (int i = 0; i < 4; i++)
            all_gone &= gone(all[i]);
        usleep(5000);
        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    }
    ck_assert_msg(all_gone, "fork server or workers alive %ld ms after the host died", ms);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}
END_TEST

static volatile sig_atomic_t sigchld_seen;

static void count_sigchld(int sig)
{
    (void)sig;
    sigchld_seen++;
}

/* The program's own waitpid(-1) and SIGCHLD never see the fork server or
 * its workers: waitpid(-1) says ECHILD, and no SIGCHLD comes, through a
 * pool's life, crashes included, and its end. Loop: 0 the fork server
 * forked by the first pool, 1 by walls_init() in a program that then
 * starts threads (a fork server re-executed is an ordinary child, as
 * walls.h says). */
static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

START_TEST(test_server_unseen_by_waitpid)
{
    if (threads_now() != 1) {
        /* A sanitizer's thread: the fork server is re-executed whatever
         * this test does, and is then a child of the program, as walls.h
         * says. */
        printf("test_server_unseen_by_waitpid: skipped, %d threads at the start\n",
               threads_now());
        return;
    }
    if (_i) {
        ck_assert_int_eq(walls_init(), 0);
        become_threaded();
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_sigchld;
    sa.sa_flags = SA_RESTART;
    ck_assert_int_eq(sigaction(SIGCHLD, &sa, NULL), 0);
    walls_pool *pool = proc_pool(2);
    for (int i = 0; i < 6; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, i % 3 == 1 ? t_segv : t_pid, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        walls_task_free(t);
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    usleep(100000);
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(sigchld_seen, 0);
    if (_i)
        walls_fini();
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(sigchld_seen, 0);
}
END_TEST

static volatile sig_atomic_t reaped_by_host;

static void greedy_reaper(int sig)
{
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        reaped_by_host++;
    errno = saved;
}

START_TEST(test_host_sigchld_reaper_steals_nothing)
{
    /* A program with its own SIGCHLD handler that reaps every child it
     * can: walls' children must not be among them, and crashes must still
     * be reported with their cause. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = greedy_reaper;
    sa.sa_flags = SA_RESTART;
    ck_assert_int_eq(sigaction(SIGCHLD, &sa, NULL), 0);
    /* The fork server kept until the count is read: one re-executed (this
     * process has a second thread under ThreadSanitizer) is an ordinary
     * child of the program, as walls.h says, and the handler may reap it
     * when it exits with the last pool. */
    ck_assert_int_eq(walls_init(), 0);
    walls_pool *pool = proc_pool(2);
    walls_task *t[40];
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(walls_submit(pool, i % 4 == 1 ? t_segv : t_pid, NULL, 0, &t[i]), 0);
    pid_t own = fork(); /* a child of the program's own, for the handler to reap */
    if (own == 0)
        _exit(0);
    for (int i = 0; i < 40; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, i % 4 == 1 ? WALLS_CRASHED : WALLS_OK);
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    for (int i = 0; i < 1000 && !reaped_by_host; i++)
        usleep(1000);
    ck_assert_int_eq(reaped_by_host, 1); /* its own child, nothing of walls */
    walls_fini();
    ck_assert_int_eq(wait_no_children(5000), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("supervision");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crash_loop_breaks_pool);
    tcase_add_loop_test(tc, test_served_then_crashed_is_no_loop, 0, 2);
    tcase_add_test(tc, test_restart_backoff);
    tcase_add_test(tc, test_fork_server_killed);
    tcase_add_loop_test(tc, test_host_sigkill_leaves_nothing, 0, 2);
    tcase_add_loop_test(tc, test_server_unseen_by_waitpid, 0, 2);
    tcase_add_test(tc, test_host_sigchld_reaper_steals_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
