/*
 * test-lifecycle.c - the lives of the fork server and the workers: destroy
 * returns only after reaping, leaving no child, descriptor or /dev/shm name;
 * walls_init() keeps the fork server between pools and walls_fini() ends it;
 * several pools share it; a fork server that cannot start workers makes pool
 * creation fail with the reason, leaving nothing behind; what a task
 * started goes with its worker; a signal the program catches while the
 * fork server starts does not fail the start.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <string.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

START_TEST(test_nothing_left_behind)
{
    int fds = count_fds();
    int shm = count_shm();
    ck_assert_int_eq(count_children(), 0);
    for (int round = 0; round < 3; round++) {
        walls_pool *pool = proc_pool(3);
        walls_task *t[30];
        for (int i = 0; i < 30; i++)
            ck_assert_int_eq(walls_submit(pool, i == 10 ? t_abort : t_echo, "a", 1, &t[i]), 0);
        ck_assert_int_ge(count_children(), 1);
        for (int i = 0; i < 30; i++) {
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
            walls_task_free(t[i]);
        }
        ck_assert_int_eq(walls_pool_destroy(pool, round == 1 ? WALLS_CANCEL : 0), 0);
        /* Destroy returns after reaping: no child, no descriptor, no name. */
        ck_assert_int_eq(count_children(), 0);
        ck_assert_int_eq(count_fds(), fds);
        ck_assert_int_eq(count_shm(), shm);
    }
}
END_TEST

START_TEST(test_init_keeps_fork_server)
{
    ck_assert_int_eq(walls_init(), 0);
    ck_assert_int_eq(count_children(), 1); /* the fork server */
    walls_pool *pool = proc_pool(2);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(count_children(), 1);
    walls_fini();
    ck_assert_int_eq(count_children(), 0);
    walls_fini(); /* unmatched: nothing */
    ck_assert_int_eq(count_children(), 0);
}
END_TEST

START_TEST(test_many_pools_at_once)
{
    walls_pool *pools[6];
    for (int i = 0; i < 6; i++)
        pools[i] = proc_pool(1);
    walls_task *t[6];
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(walls_submit(pools[i], i == 2 ? t_segv : t_pid, NULL, 0, &t[i]), 0);
    for (int i = 0; i < 6; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
        ck_assert_int_eq(r.status, i == 2 ? WALLS_CRASHED : WALLS_OK);
        walls_task_free(t[i]);
    }
    for (int i = 5; i >= 0; i--)
        ck_assert_int_eq(walls_pool_destroy(pools[i], 0), 0);
    ck_assert_int_eq(count_children(), 0);
}
END_TEST

START_TEST(test_worker_start_failure)
{
    /* A fork server whose address space is capped: its workers cannot map
     * their mailbox, and the pool must fail with that reason, leaving
     * nothing behind. */
    int fds = count_fds();
    ck_assert_int_eq(walls_init(), 0);
    ck_assert_int_eq(count_children(), 1);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", getpid(), getpid());
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int fs_pid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &fs_pid), 1);
    fclose(f);
    struct rlimit tiny = {1 << 20, 1 << 20};
    ck_assert_int_eq(prlimit(fs_pid, RLIMIT_AS, &tiny, NULL), 0);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2};
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* A sanitizer's runtime dies of the cap before our code can say why;
     * the fork server itself may die of it, and the pool then starts a new
     * one, without the cap. */
    ck_assert_msg(rc == -ENOMEM || rc == -ECHILD || rc == 0, "create: %d (%s)", rc,
                  walls_strerror(rc));
    if (rc == 0) {
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        pool = NULL;
    }
#else
    ck_assert_msg(rc == -ENOMEM, "create: %d (%s)", rc, walls_strerror(rc));
#endif
    ck_assert_ptr_null(pool);
    walls_fini();
    ck_assert_int_eq(wait_no_children(1000), 0);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* A child that sleeps a minute: its pid, or -errno. */
static pid_t start_sleeper(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        sleep(60);
        _exit(0);
    }
    return pid < 0 ? -errno : pid;
}

/* Starts a sleeper and gives its pid. */
static int fork_sleeper(struct walls_call *call)
{
    pid_t pid = start_sleeper();
    if (pid < 0)
        return -pid;
    memcpy(call->out, &pid, sizeof pid);
    call->out_len = sizeof pid;
    return 0;
}

/* The same, then aborts: the pid goes by a pipe of the test's, opened by
 * its /proc path (in), since a crashed task's output is lost. */
static int fork_sleeper_abort(struct walls_call *call)
{
    int fd = open((const char *)call->in, O_WRONLY);
    if (fd < 0)
        return errno;
    pid_t pid = start_sleeper();
    if (pid < 0)
        return -pid;
    if (write(fd, &pid, sizeof pid) != (ssize_t)sizeof pid)
        return EIO;
    abort();
}

/* Whether pid is gone, or a zombie nobody has reaped yet. */
static bool process_ended(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *state = strrchr(buf, ')');
    return state && (state[2] == 'Z' || state[2] == 'X');
}

static bool ends_within(pid_t pid, int ms)
{
    for (int waited = 0; waited < ms && !process_ended(pid); waited += 10)
        usleep(10000);
    return process_ended(pid);
}

/* Reports its worker's pid and its parent's: the fork server's. */
static int t_pids(struct walls_call *call)
{
    pid_t pids[2] = {getpid(), getppid()};
    memcpy(call->out, pids, sizeof pids);
    call->out_len = sizeof pids;
    return 0;
}

/* A child the program makes with the fork system call itself, which runs
 * no fork handlers, holds a copy of the fork server's control socket.
 * When the program dies, its fork server and workers go all the same,
 * not once that child ends: before, they lived on as long as it did. _i:
 * 0 processes, 1 hybrid. */
START_TEST(test_raw_fork_child_outliving_the_program)
{
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int link[2];
    ck_assert_int_eq(pipe(link), 0);
    pid_t program = fork();
    ck_assert_int_ge(program, 0);
    if (program == 0) {
        close(link[0]);
        struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                    .processes = 2,
                                    .threads = _i ? 2 : 0};
        walls_pool *pool;
        walls_task *t;
        struct walls_result r;
        if (walls_pool_create(&pool, &o) != 0 || walls_submit(pool, t_pids, NULL, 0, &t) ||
            walls_wait(t, 20000, &r) != 0 || r.status != WALLS_OK || r.out_len != 2 * sizeof(pid_t))
            _exit(4);
        pid_t report[3];
        memcpy(report, r.out, 2 * sizeof(pid_t));
        pid_t raw = (pid_t)syscall(SYS_fork);
        if (raw == 0) {
            sleep(20);
            _exit(0);
        }
        report[2] = raw;
        if (write(link[1], report, sizeof report) != (ssize_t)sizeof report)
            _exit(5);
        raise(SIGKILL);
        _exit(6);
    }
    close(link[1]);
    pid_t got[3] = {0, 0, 0};
    ssize_t n = read(link[0], got, sizeof got);
    close(link[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(program, &status, 0), program);
    ck_assert_msg(n == (ssize_t)sizeof got, "the program ended %#x before it reported", status);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    bool server_gone = ends_within(got[1], 5000), worker_gone = ends_within(got[0], 5000);
    bool raw_alive = !process_ended(got[2]);
    kill(got[2], SIGKILL);
    /* Orphans of the program are this process's children now: reaped. */
    int left = -1;
    for (int i = 0; i < 500 && left != 0; i++) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        if ((left = count_children()) != 0)
            usleep(10000);
    }
    ck_assert_int_eq(left, 0);
    ck_assert_msg(raw_alive, "the raw child %d ended early", (int)got[2]);
    ck_assert_msg(server_gone, "the fork server %d outlived the program", (int)got[1]);
    ck_assert_msg(worker_gone, "the worker %d outlived the program", (int)got[0]);
}
END_TEST

/* What a task started goes with its worker: when the pool stops it, and
 * when it dies of its task; not before. */
START_TEST(test_task_children_go_with_worker)
{
    static const enum walls_placement where[] = {WALLS_PROCESSES, WALLS_HYBRID};
    for (size_t k = 0; k < 2; k++) {
        struct walls_pool_opts o = {.placement = where[k], .processes = 1,
                                    .threads = where[k] == WALLS_HYBRID ? 2 : 0};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        pid_t stopped = pid_from(pool, fork_sleeper);
        /* Its worker lives on: so does the task's child, until the stop. */
        ck_assert(!process_ended(stopped));
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        ck_assert_msg(ends_within(stopped, 5000), "pid %d outlived its pool", (int)stopped);

        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        walls_task *t;
        struct walls_result r;
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), p[1]);
        ck_assert_int_eq(walls_submit(pool, fork_sleeper_abort, path, strlen(path) + 1, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_CRASHED, "%s/%d", walls_status_name(r.status), r.code);
        walls_task_free(t);
        pid_t crashed;
        ck_assert_int_eq(read(p[0], &crashed, sizeof crashed), (ssize_t)sizeof crashed);
        close(p[0]);
        close(p[1]);
        ck_assert_msg(ends_within(crashed, 5000), "pid %d outlived its crashed worker",
                      (int)crashed);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
}
END_TEST

/* What the program's stdout buffered before its first pool is written
 * once: not again by each worker whose task calls exit(). */
START_TEST(test_buffered_output_written_once)
{
    char path[] = "/tmp/walls-stdout-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* A program of one thread whose stdout is a file: fully buffered. */
        if (dup2(fd, STDOUT_FILENO) < 0)
            _exit(2);
        static char buf[BUFSIZ];
        setvbuf(stdout, buf, _IOFBF, sizeof buf);
        printf("written-once\n");
        walls_pool *pool = proc_pool(2);
        walls_task *t[4];
        for (int i = 0; i < 4; i++)
            if (walls_submit(pool, t_exit3, NULL, 0, &t[i]) != 0)
                _exit(3);
        for (int i = 0; i < 4; i++) {
            struct walls_result r;
            if (walls_wait(t[i], 20000, &r) != 0 || r.status != WALLS_EXITED)
                _exit(4);
            walls_task_free(t[i]);
        }
        walls_pool_destroy(pool, 0);
        exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
    char text[4096];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    ck_assert_int_ge(n, 0);
    text[n] = 0;
    int seen = 0;
    for (const char *p = text; (p = strstr(p, "written-once")); p++)
        seen++;
    ck_assert_msg(seen == 1, "the program's line was written %d times", seen);
}
END_TEST

/* The program's child named walls-forkserver: the fork server. */
static pid_t fork_server_pid(void)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid;
    pid_t found = -1;
    while (found < 0 && fscanf(f, "%d", &pid) == 1) {
        char comm[64] = "", cpath[64];
        snprintf(cpath, sizeof cpath, "/proc/%d/comm", pid);
        FILE *c = fopen(cpath, "r");
        if (c) {
            if (!fgets(comm, sizeof comm, c))
                comm[0] = 0;
            fclose(c);
        }
        if (strncmp(comm, "walls-forkserve", 15) == 0)
            found = pid;
    }
    fclose(f);
    return found;
}

/* The fork server killed from outside: a pool made right after, before
 * anything could see it dead, still starts (on a new fork server). */
START_TEST(test_pool_after_fork_server_killed)
{
    ck_assert_int_eq(walls_init(), 0);
    for (int round = 0; round < 30; round++) {
        walls_pool *pool = proc_pool(1);
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, t_echo, "a", 1, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        walls_task_free(t);
        pid_t server = fork_server_pid();
        ck_assert_int_gt(server, 0);
        ck_assert_int_eq(kill(server, SIGKILL), 0);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1};
        int rc = walls_pool_create(&pool, &o);
        ck_assert_msg(rc == 0, "round %d: %s (%s)", round, walls_strerror(rc),
                      walls_last_error());
        ck_assert_int_eq(walls_submit(pool, t_echo, "b", 1, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    walls_fini();
    ck_assert_int_eq(wait_no_children(5000), 0);
}
END_TEST

static void on_alarm(int sig)
{
    (void)sig;
}

static void *idle_thread(void *arg)
{
    pause();
    return arg;
}

/* A program whose signal handlers run while the fork server starts (a
 * 1 ms timer here): the host's wait for the new fork server is
 * interrupted, not failed. _i = 1: with a second thread, so the fork
 * server is a re-executed program rather than a fork. */
START_TEST(test_start_through_signals)
{
    pthread_t extra;
    if (_i == 1)
        ck_assert_int_eq(pthread_create(&extra, NULL, idle_thread, NULL), 0);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART}, was;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &was), 0);
    struct itimerval tick = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &tick, NULL), 0);
    for (int i = 0; i < 5; i++) {
        /* No walls_init(): each pool starts a fork server of its own. */
        walls_pool *pool;
        struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1};
        int rc = walls_pool_create(&pool, &o);
        ck_assert_msg(rc == 0, "pool %d: %d (%s)", i, rc, walls_last_error());
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    int rc = walls_init();
    ck_assert_msg(rc == 0, "walls_init: %d (%s)", rc, walls_last_error());
    walls_fini();
    ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
    ck_assert_int_eq(sigaction(SIGALRM, &was, NULL), 0);
    if (_i == 1) {
        pthread_cancel(extra);
        pthread_join(extra, NULL);
    }
    ck_assert_int_eq(count_children(), 0);
}
END_TEST

/* A program that closed standard streams before its first pool (as a
 * daemon may): its pool, or walls_fini(), must not wait forever for a
 * fork server that kept the control socket's other end on a free 0-2,
 * and nothing may outlive it. _i: 0 a pool alone (a forked fork server),
 * 1 within walls_init() and walls_fini(), 2 with a second thread (a
 * re-executed one). */

/* Writes which of the worker's 0-2 holds a descriptor of walls' (a
 * socket, an eventfd, a memfd...) plus 1, or 0: each must be the
 * program's own stream or /dev/null. */
static int t_std_fds(struct walls_call *call)
{
    int bad = 0;
    for (int fd = 0; fd <= 2 && !bad; fd++) {
        char path[32], link[128];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0)
            continue;
        link[n] = '\0';
        if (strncmp(link, "anon_inode:", 11) == 0 || strncmp(link, "socket:", 7) == 0 ||
            strncmp(link, "/memfd:", 7) == 0)
            bad = fd + 1;
    }
    memcpy(call->out, &bad, sizeof bad);
    call->out_len = sizeof bad;
    return 0;
}

START_TEST(test_closed_standard_streams)
{
    static const char *const closed[] = {"01", "12", "012", "2"};
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    for (size_t k = 0; k < sizeof closed / sizeof closed[0]; k++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (const char *c = closed[k]; *c; c++)
                close(*c - '0');
            pthread_t extra;
            if (_i == 2 && pthread_create(&extra, NULL, idle_thread, NULL) != 0)
                _exit(2);
            if (_i == 1 && walls_init() != 0)
                _exit(3);
            struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1};
            walls_pool *pool;
            walls_task *t;
            struct walls_result r;
            int v[2] = {2, 3};
            if (walls_pool_create(&pool, &o) != 0 || walls_submit(pool, t_add, v, sizeof v, &t) ||
                walls_wait(t, 20000, &r) != 0 || r.status != WALLS_OK)
                _exit(4);
            walls_task_free(t);
            int bad = -1;
            if (walls_submit(pool, t_std_fds, NULL, 0, &t) || walls_wait(t, 20000, &r) != 0 ||
                r.status != WALLS_OK || r.out_len != sizeof bad)
                _exit(4);
            memcpy(&bad, r.out, sizeof bad);
            if (bad)
                _exit(10 + bad);
            walls_task_free(t);
            if (walls_pool_destroy(pool, 0) != 0)
                _exit(5);
            if (_i == 1)
                walls_fini();
            _exit(0);
        }
        int status = -1;
        for (int i = 0; i < 2000 && waitpid(pid, &status, WNOHANG) == 0; i++)
            usleep(10000);
        if (status == -1) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        ck_assert_msg(status == 0,
                      "closed %s: the program ended %#x (9: it hung; 11-13 << 8: a worker's "
                      "0-2 held a descriptor of walls')",
                      closed[k], status);
        ck_assert_msg(wait_no_children(5000) == 0, "closed %s: a process outlived the program",
                      closed[k]);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_nothing_left_behind);
    tcase_add_test(tc, test_init_keeps_fork_server);
    tcase_add_test(tc, test_many_pools_at_once);
    tcase_add_test(tc, test_worker_start_failure);
    tcase_add_test(tc, test_task_children_go_with_worker);
    tcase_add_loop_test(tc, test_raw_fork_child_outliving_the_program, 0, 2);
    tcase_add_test(tc, test_buffered_output_written_once);
    tcase_add_test(tc, test_pool_after_fork_server_killed);
    tcase_add_loop_test(tc, test_start_through_signals, 0, 2);
    tcase_add_loop_test(tc, test_closed_standard_streams, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
