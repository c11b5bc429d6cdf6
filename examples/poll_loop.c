/*
 * poll_loop.c - drive a walls pool from a poll() loop, with no thread of
 * the program's own waiting on tasks.
 *
 * It keeps up to 64 tasks in flight, sleeps in poll() on the pool's
 * descriptor (where a real program would also watch its sockets), and on
 * each wake-up collects the tasks that completed, checks their results and
 * submits more, until N tasks are done (10,000 by default, or argv[1]).
 * Run with "processes" as argv[2] to use worker processes.
 *
 * Exit status 0 when every task came back with the right answer.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <walls.h>

static int square(struct walls_call *call)
{
    long v;
    if (call->in_len != sizeof v)
        return EINVAL;
    memcpy(&v, call->in, sizeof v);
    v *= v;
    memcpy(call->out, &v, sizeof v);
    call->out_len = sizeof v;
    return 0;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 10000;
    struct walls_pool_opts opts = {.placement = WALLS_THREADS};
    if (argc > 2 && strcmp(argv[2], "processes") == 0)
        opts.placement = WALLS_PROCESSES;
    walls_pool *pool;
    int rc = walls_pool_create(&pool, &opts);
    if (rc) {
        fprintf(stderr, "poll_loop: walls_pool_create: %s\n", walls_strerror(rc));
        return 1;
    }
    int fd = walls_pool_fd(pool);
    long submitted = 0, done = 0, wrong = 0, in_flight = 0;
    while (done < total) {
        while (in_flight < 64 && submitted < total) {
            walls_task *task;
            long v = submitted;
            rc = walls_submit(pool, square, &v, sizeof v, &task);
            if (rc) {
                fprintf(stderr, "poll_loop: walls_submit: %s\n", walls_strerror(rc));
                return 1;
            }
            submitted++;
            in_flight++;
            /* The handle comes back from walls_pool_collect(). */
            (void)task;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) {
            fprintf(stderr, "poll_loop: no completion for 10 s\n");
            return 1;
        }
        walls_task *ready[32];
        size_t n;
        do {
            rc = walls_pool_collect(pool, ready, 32, &n);
            if (rc) {
                fprintf(stderr, "poll_loop: walls_pool_collect: %s\n", walls_strerror(rc));
                return 1;
            }
            for (size_t i = 0; i < n; i++) {
                struct walls_result res;
                long v;
                if (walls_wait(ready[i], 0, &res) != 0 || res.status != WALLS_OK ||
                    res.out_len != sizeof v) {
                    wrong++;
                } else {
                    memcpy(&v, res.out, sizeof v);
                    /* v is a square: its root was the input. */
                    long r = 0;
                    while ((r + 1) * (r + 1) <= v)
                        r++;
                    wrong += r * r != v;
                }
                walls_task_free(ready[i]);
                done++;
                in_flight--;
            }
        } while (n == 32);
    }
    walls_pool_destroy(pool, 0);
    printf("poll_loop: %ld tasks completed, %ld wrong\n", done, wrong);
    return wrong == 0 && done == total ? 0 : 1;
}
