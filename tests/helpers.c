/*
 * helpers.c - see helpers.h.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int t_echo(struct walls_call *call)
{
    size_t n = call->in_len < call->out_cap ? call->in_len : call->out_cap;
    memcpy(call->out, call->in, n);
    call->out_len = n;
    return 0;
}

int t_add(struct walls_call *call)
{
    int v[2];
    if (call->in_len != sizeof v || call->out_cap < sizeof(int))
        return 22;
    memcpy(v, call->in, sizeof v);
    int sum = v[0] + v[1];
    memcpy(call->out, &sum, sizeof sum);
    call->out_len = sizeof sum;
    return 0;
}

int t_fail(struct walls_call *call)
{
    (void)call;
    return 7;
}

static volatile int *volatile nowhere;

/* Not instrumented: the sanitizers would report the write (two threads
 * writing address 0 is a data race to ThreadSanitizer) instead of letting
 * it fault. */
__attribute__((no_sanitize("undefined", "address", "thread"))) int t_segv(struct walls_call *call)
{
    (void)call;
    *nowhere = 1;
    return 0;
}

int t_abort(struct walls_call *call)
{
    (void)call;
    abort();
}

int t_exit3(struct walls_call *call)
{
    (void)call;
    exit(3);
}

static volatile int forever = 1;

static int recurse(volatile char *prev, int depth)
{
    volatile char buf[4096];
    buf[0] = (char)depth;
    buf[4095] = prev ? prev[0] : 0;
    if (!forever)
        return buf[0];
    return recurse(buf, depth + 1) + buf[100];
}

int t_stack(struct walls_call *call)
{
    (void)call;
    return recurse(NULL, 0);
}

int t_sigkill(struct walls_call *call)
{
    (void)call;
    raise(SIGKILL);
    return 0;
}

int t_sleep_ms(struct walls_call *call)
{
    int ms = 0;
    if (call->in_len == sizeof ms)
        memcpy(&ms, call->in, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return 0;
}

int t_pid(struct walls_call *call)
{
    int pid = getpid();
    memcpy(call->out, &pid, sizeof pid);
    call->out_len = sizeof pid;
    return 0;
}

int t_fds(struct walls_call *call)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 1;
    int self = dirfd(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self)
            continue;
        if ((n + 1) * sizeof(int) > call->out_cap)
            break;
        memcpy((char *)call->out + n * sizeof(int), &fd, sizeof fd);
        n++;
    }
    closedir(d);
    call->out_len = n * sizeof(int);
    return 0;
}

int t_overclaim(struct walls_call *call)
{
    call->out_len = call->out_cap + 1;
    return 0;
}

const enum walls_placement placements[2] = {WALLS_THREADS, WALLS_PROCESSES};

walls_pool *make_pool(enum walls_placement placement, unsigned workers)
{
    struct walls_pool_opts o = {.placement = placement};
    if (placement == WALLS_THREADS)
        o.threads = workers;
    else
        o.processes = workers;
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
    ck_assert_msg(rc == 0, "walls_pool_create: %d (%s)", rc, walls_strerror(rc));
    return pool;
}

walls_pool *proc_pool(unsigned n)
{
    return make_pool(WALLS_PROCESSES, n);
}

pid_t pid_from(walls_pool *pool, walls_fn *fn)
{
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, fn, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "status %s (code %d)", walls_status_name(r.status), r.code);
    pid_t pid;
    ck_assert_uint_eq(r.out_len, sizeof pid);
    memcpy(&pid, r.out, sizeof pid);
    walls_task_free(t);
    return pid;
}

int count_children(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", getpid());
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[400];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", getpid(), e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f)
            continue;
        int pid;
        while (fscanf(f, "%d", &pid) == 1)
            total++;
        fclose(f);
    }
    closedir(d);
    return total;
}

int wait_no_children(int ms)
{
    int n = count_children();
    for (int i = 0; i < ms && n != 0; i++) {
        usleep(1000);
        n = count_children();
    }
    return n;
}

static int count_dir(const char *path, const char *needle)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && (!needle || strstr(e->d_name, needle)))
            n++;
    closedir(d);
    return n;
}

int count_fds(void)
{
    return count_dir("/proc/self/fd", NULL) - 1; /* minus the directory's own */
}

int count_shm(void)
{
    return count_dir("/dev/shm", "walls");
}

int count_threads(void)
{
    return count_dir("/proc/self/task", NULL);
}

void *worker_mailbox(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return NULL;
    char line[512];
    void *at = NULL;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "walls-mailbox")) {
            unsigned long start;
            if (sscanf(line, "%lx-", &start) == 1)
                at = (void *)start;
            break;
        }
    fclose(f);
    return at;
}

long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int t_nap(struct walls_call *call)
{
    struct nap n;
    if (call->in_len != sizeof n || call->out_cap < sizeof n.id)
        return 1;
    memcpy(&n, call->in, sizeof n);
    struct timespec ts = {n.ms / 1000, (long)(n.ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    if (n.id == -2)
        raise(SIGSEGV);
    memcpy(call->out, &n.id, sizeof n.id);
    call->out_len = sizeof n.id;
    return 0;
}

walls_task *submit_nap(walls_pool *pool, int ms, int id)
{
    struct nap n = {ms, id};
    walls_task *t;
    ck_assert_int_eq(walls_submit(pool, t_nap, &n, sizeof n, &t), 0);
    return t;
}

void expect_answer(walls_task *t, int64_t ms, int id)
{
    struct walls_result r;
    int rc = walls_wait(t, ms, &r);
    ck_assert_msg(rc == 0, "task %d not finished within %lld ms: %s", id, (long long)ms,
                  walls_strerror(rc));
    ck_assert_msg(r.status == WALLS_OK, "task %d ended %s", id, walls_status_name(r.status));
    int got;
    ck_assert_uint_eq(r.out_len, sizeof got);
    memcpy(&got, r.out, sizeof got);
    ck_assert_int_eq(got, id);
}

walls_pool *two_workers(enum walls_placement placement)
{
    struct walls_pool_opts o = {.placement = placement};
    if (placement == WALLS_THREADS)
        o.threads = 2;
    else if (placement == WALLS_PROCESSES)
        o.processes = 2;
    else
        o.processes = 1, o.threads = 2;
    walls_pool *pool = NULL;
    int rc = walls_pool_create(&pool, &o);
    ck_assert_msg(rc == 0, "walls_pool_create: %s", walls_strerror(rc));
    return pool;
}
