/*
 * test-spare.c - the fork server's spare: once a worker has died of a
 * signal, the fork server keeps one child forked ahead ("walls-spare"),
 * and the next replacement is that child.
 *
 * No spare before any death; one after a crash, holding no descriptor of
 * any pool (only its own socket besides 0-2); the next crash's replacement
 * is the spare itself; a spare killed from outside is forgotten and the
 * next replacement is forked as before; no spare outlives the fork server.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

/* The children of pid (every thread's), up to max; returns how many. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[400];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f)
            continue;
        int child;
        while (fscanf(f, "%d", &child) == 1 && n < max)
            out[n++] = child;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Whether pid runs now under the name comm (not a zombie). */
static bool alive_as(pid_t pid, const char *comm)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close || close[1] != ' ')
        return false;
    char state = close[2];
    *close = '\0';
    return state != 'Z' && state != 'X' && (!comm || strcmp(open + 1, comm) == 0);
}

/* The fork server: our one child named walls-forkserve(r). */
static pid_t fork_server(void)
{
    pid_t kids[16];
    int n = children_of(getpid(), kids, 16);
    for (int i = 0; i < n; i++)
        if (alive_as(kids[i], "walls-forkserve"))
            return kids[i];
    return 0;
}

/* The fork server's spare, waiting up to ms for it; 0 if none. */
static pid_t spare_within(int ms)
{
    for (int waited = 0;; waited++) {
        pid_t server = fork_server(), kids[64];
        int n = server ? children_of(server, kids, 64) : 0;
        for (int i = 0; i < n; i++)
            if (alive_as(kids[i], "walls-spare"))
                return kids[i];
        if (waited >= ms)
            return 0;
        usleep(1000);
    }
}

/* Runs fn on pool, waits for it, and checks how it ended; the result's
 * output is copied into out (when given) before the task goes. */
static void run_one(walls_pool *pool, walls_fn *fn, enum walls_status want, void *out,
                    size_t len)
{
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, fn, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 10000, &r), 0);
    ck_assert_int_eq(r.status, want);
    if (out) {
        ck_assert_uint_eq(r.out_len, len);
        memcpy(out, r.out, len);
    }
    walls_task_free(t);
}

/* The pid of the process that runs the next task of pool. */
static pid_t worker_pid(walls_pool *pool)
{
    pid_t pid;
    run_one(pool, t_pid, WALLS_OK, &pid, sizeof pid);
    return pid;
}

static void crash(walls_pool *pool)
{
    run_one(pool, t_segv, WALLS_CRASHED, NULL, 0);
}

/* A one-process pool that had a crash, and its spare's pid. */
static walls_pool *pool_with_spare(pid_t *spare)
{
    walls_pool *pool = proc_pool(1);
    crash(pool);
    worker_pid(pool);
    *spare = spare_within(5000);
    ck_assert_msg(*spare > 0, "no spare 5 s after a crash");
    return pool;
}

START_TEST(test_no_spare_without_a_death)
{
    walls_pool *pool = proc_pool(2);
    for (int i = 0; i < 20; i++)
        worker_pid(pool);
    ck_assert_int_eq(spare_within(100), 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_spare_after_crash_holds_nothing)
{
    pid_t spare;
    walls_pool *pool = pool_with_spare(&spare);
    /* Descriptors: 0-2 as the fork server has them, and its one socket. */
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)spare);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int sockets = 0, others = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2)
            continue;
        char path[400], link[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = '\0';
        if (strncmp(link, "socket:", 7) == 0)
            sockets++;
        else
            others++;
        if (strncmp(link, "socket:", 7) != 0)
            fprintf(stderr, "the spare holds fd %d: %s\n", fd, link);
    }
    closedir(d);
    ck_assert_int_eq(sockets, 1);
    ck_assert_int_eq(others, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_replacement_is_the_spare)
{
    walls_pool *pool = proc_pool(1);
    crash(pool);
    worker_pid(pool);
    for (int round = 0; round < 5; round++) {
        pid_t spare = spare_within(5000);
        ck_assert_msg(spare > 0, "round %d: no spare", round);
        crash(pool);
        ck_assert_int_eq(worker_pid(pool), spare);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_spare_killed_from_outside)
{
    pid_t spare;
    walls_pool *pool = pool_with_spare(&spare);
    ck_assert_int_eq(kill(spare, SIGKILL), 0);
    /* Killed just before it was wanted: the replacement is forked anew. */
    crash(pool);
    pid_t worker = worker_pid(pool);
    ck_assert_int_ne(worker, spare);
    pid_t next = spare_within(5000);
    ck_assert_msg(next > 0 && next != spare, "no new spare after the old one was killed");
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_spare_ends_with_fork_server)
{
    pid_t spare;
    walls_pool *pool = pool_with_spare(&spare);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* The fork server went with the last pool, after reaping its spare. */
    ck_assert_int_eq(count_children(), 0);
    ck_assert_msg(!alive_as(spare, NULL), "the spare %d outlived the fork server", (int)spare);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spare");
    TCase *tc = tcase_create("spare");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_no_spare_without_a_death);
    tcase_add_test(tc, test_spare_after_crash_holds_nothing);
    tcase_add_test(tc, test_replacement_is_the_spare);
    tcase_add_test(tc, test_spare_killed_from_outside);
    tcase_add_test(tc, test_spare_ends_with_fork_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
