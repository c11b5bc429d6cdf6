/*
 * consumer.c - a program built outside the tree against an installed walls
 * (by CMake's find_package, by pkg-config, shared, static and fully
 * static). It runs tasks on a process pool and on a hybrid pool and checks
 * every result; any failure is printed and makes it exit with status 1.
 *
 *   consumer fork     walls_init() first: the fork server is a fork of it
 *   consumer thread   a thread is running before the first process pool:
 *                     the fork server is a fresh execution of the program
 *
 * Each pool also runs a task that reports a mark main() sets before the
 * first pool: a worker forked from a fork of this program sees it, one
 * forked from a fresh execution does not. So the program can tell which of
 * the two ways the fork server was started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <walls.h>

#define TASKS 16

/* Set by main() before the first pool; a re-executed fork server never
 * ran main(). */
static int mark;

static int square(struct walls_call *call)
{
    int v;
    if (call->in_len != sizeof v || call->out_cap < sizeof v)
        return 1;
    memcpy(&v, call->in, sizeof v);
    v *= v;
    memcpy(call->out, &v, sizeof v);
    call->out_len = sizeof v;
    return 0;
}

/* Writes the mark as this worker sees it. */
static int seen_mark(struct walls_call *call)
{
    if (call->out_cap < sizeof mark)
        return 2;
    memcpy(call->out, &mark, sizeof mark);
    call->out_len = sizeof mark;
    return 0;
}

static int failures;

static void fail(const char *what, const char *placement, int rc)
{
    fprintf(stderr, "consumer: %s pool: %s: %s\n", placement, what,
            rc < 0 ? walls_strerror(rc) : "unexpected result");
    failures++;
}

/* Runs TASKS squares and the parent check on one pool; counts failures. */
static void run_pool(enum walls_placement placement, const char *name, int exec_mode)
{
    struct walls_pool_opts opts = {.placement = placement, .processes = 2};
    if (placement == WALLS_HYBRID)
        opts.threads = 2;
    walls_pool *pool;
    int rc = walls_pool_create(&pool, &opts);
    if (rc) {
        fail("walls_pool_create", name, rc);
        return;
    }
    walls_task *tasks[TASKS];
    int in[TASKS];
    int submitted = 0;
    for (int i = 0; i < TASKS; i++, submitted++) {
        in[i] = i + 1;
        rc = walls_submit(pool, square, &in[i], sizeof in[i], &tasks[i]);
        if (rc) {
            fail("walls_submit", name, rc);
            break;
        }
    }
    for (int i = 0; i < submitted; i++) {
        struct walls_result res;
        rc = walls_wait(tasks[i], -1, &res);
        if (rc) {
            fail("walls_wait", name, rc);
        } else if (res.status != WALLS_OK || res.out_len != sizeof(int)) {
            fprintf(stderr, "consumer: %s pool: task %d ended %s (code %d, %zu bytes)\n", name,
                    i, walls_status_name(res.status), res.code, res.out_len);
            failures++;
        } else {
            int v;
            memcpy(&v, res.out, sizeof v);
            if (v != in[i] * in[i]) {
                fprintf(stderr, "consumer: %s pool: %d squared gave %d\n", name, in[i], v);
                failures++;
            }
        }
        walls_task_free(tasks[i]);
    }

    walls_task *task;
    rc = walls_submit(pool, seen_mark, NULL, 0, &task);
    if (rc) {
        fail("walls_submit (seen_mark)", name, rc);
    } else {
        struct walls_result res;
        rc = walls_wait(task, -1, &res);
        if (rc) {
            fail("walls_wait (seen_mark)", name, rc);
        } else if (res.status != WALLS_OK || res.out_len != sizeof mark) {
            fprintf(stderr, "consumer: %s pool: seen_mark ended %s (code %d)\n", name,
                    walls_status_name(res.status), res.code);
            failures++;
        } else {
            int seen;
            memcpy(&seen, res.out, sizeof seen);
            int is_exec = seen != mark;
            if (is_exec != exec_mode) {
                fprintf(stderr, "consumer: %s pool: the worker sees mark %d, expected %s\n",
                        name, seen,
                        exec_mode ? "0 (a re-executed fork server)" : "main()'s (a fork)");
                failures++;
            }
        }
        walls_task_free(task);
    }
    rc = walls_pool_destroy(pool, 0);
    if (rc)
        fail("walls_pool_destroy", name, rc);
    printf("consumer: %s pool: %d tasks done\n", name, submitted);
}

static int release_fd[2];

/* A thread that exists while the first pools are made, then ends. */
static void *bystander(void *arg)
{
    (void)arg;
    char c;
    while (read(release_fd[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int exec_mode;
    if (argc == 2 && strcmp(argv[1], "fork") == 0) {
        exec_mode = 0;
    } else if (argc == 2 && strcmp(argv[1], "thread") == 0) {
        exec_mode = 1;
    } else {
        fprintf(stderr, "usage: consumer fork|thread\n");
        return 2;
    }
    mark = 42;
    pthread_t thread;
    if (exec_mode) {
        if (pipe(release_fd) != 0 || pthread_create(&thread, NULL, bystander, NULL) != 0) {
            perror("consumer: starting a thread");
            return 1;
        }
    } else {
        int rc = walls_init();
        if (rc) {
            fprintf(stderr, "consumer: walls_init: %s\n", walls_strerror(rc));
            return 1;
        }
    }
    run_pool(WALLS_PROCESSES, "process", exec_mode);
    run_pool(WALLS_HYBRID, "hybrid", exec_mode);
    if (exec_mode) {
        close(release_fd[1]);
        pthread_join(thread, NULL);
    } else {
        walls_fini();
    }
    if (failures) {
        fprintf(stderr, "consumer: %d failures\n", failures);
        return 1;
    }
    printf("consumer: all tasks ok (fork server %s)\n",
           exec_mode ? "re-executed" : "forked by walls_init");
    return 0;
}
