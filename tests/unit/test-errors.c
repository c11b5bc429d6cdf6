/*
 * test-errors.c - why a call failed, in words: walls_last_error names the
 * argument and the value at fault, is kept per thread and survives later
 * successes; walls_strerror reads codes in walls' terms, and the status
 * names and version string are what the header promises. A create that
 * fails part way, out of descriptors or out of address space, closes only
 * what it opened: never a descriptor of the program's.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

static void *last_error_of_new_thread(void *arg)
{
    *(const char **)arg = walls_last_error();
    return NULL;
}

static void expect_error(int rc, int want, const char *words)
{
    ck_assert_msg(rc == want, "got %d (%s), want %d", rc, walls_strerror(rc), want);
    ck_assert_msg(strstr(walls_last_error(), words), "walls_last_error(): \"%s\", want \"%s\"",
                  walls_last_error(), words);
}

START_TEST(test_last_error)
{
    walls_pool *pool = NULL;
    struct walls_pool_opts o = {.max_output = WALLS_IO_MAX + 1};
    expect_error(walls_pool_create(&pool, &o), -EINVAL,
                 "opts.max_output 1073741825 is over WALLS_IO_MAX 1073741824");
    o = (struct walls_pool_opts){.processes = 999};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.processes 999");
    o = (struct walls_pool_opts){.reserved[2] = 1};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.reserved[2]");
    /* An explicit THREADS placement cannot isolate: refused, as untrusted is. */
    o = (struct walls_pool_opts){.placement = WALLS_THREADS,
                                 .needs = WALLS_NEED_CRASH_ISOLATION};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "WALLS_NEED_CRASH_ISOLATION");
    o.needs = WALLS_NEED_UNTRUSTED;
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "WALLS_NEED_UNTRUSTED");
    o = (struct walls_pool_opts){.placement = WALLS_THREADS, .recycle_after = 3};
    expect_error(walls_pool_create(&pool, &o), -EINVAL, "opts.recycle_after");
    ck_assert_ptr_null(pool);
    expect_error(walls_pool_create(NULL, NULL), -EINVAL, "out-parameter");

    pool = make_pool(WALLS_THREADS, 1);
    walls_task *t;
    expect_error(walls_submit(pool, NULL, NULL, 0, &t), -EINVAL, "fn is NULL");
    expect_error(walls_submit(pool, t_echo, NULL, 5, &t), -EINVAL, "in is NULL");
    char big[16] = {0};
    expect_error(walls_submit(pool, t_echo, big, WALLS_IO_MAX + 1, &t), -E2BIG,
                 "in_len 1073741825 is over WALLS_IO_MAX");
    struct walls_task_opts to = {.timeout_ms = -3};
    expect_error(walls_submit_ex(pool, t_echo, NULL, 0, &to, &t), -EINVAL,
                 "walls_submit_ex: opts.timeout_ms -3");
    expect_error(walls_submit(pool, NULL, NULL, 0, &t), -EINVAL, "walls_submit: fn is NULL");
    expect_error(walls_pool_collect(pool, &t, 1, &(size_t){0}), -ENOTCONN, "walls_pool_fd()");
    walls_buf b;
    expect_error(walls_arena_alloc(pool, 64, &b), -EINVAL, "no arena");
    expect_error(walls_pool_destroy(pool, 8), -EINVAL, "unknown flags 0x8");
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    expect_error(walls_submit(pool, t_echo, NULL, 0, &t), -EBADF, "destroyed");
    /* The calls outside pools say why too. */
    walls_lock garbage;
    memset(&garbage, 0xa5, sizeof garbage);
    expect_error(walls_lock_acquire(NULL, 0), -EINVAL, "walls_lock_acquire: lock is NULL");
    expect_error(walls_lock_acquire(&garbage, 0), -EINVAL, "not a lock");
    expect_error(walls_lock_release(&garbage), -EINVAL, "walls_lock_release: not a lock");
    char small[8];
    expect_error(walls_cpu_source(NULL, 4), -EINVAL, "walls_cpu_source: buf is NULL");
    expect_error(walls_cpu_source(small, 0), -EINVAL, "len is 0");
    expect_error(walls_sandbox_probe(NULL, NULL, 4), -EINVAL, "walls_sandbox_probe: buf is NULL");
    expect_error(walls_pool_stats(NULL, &(struct walls_stats){0}), -EINVAL, "pool is NULL");
    /* A success leaves the last failure's words. */
    ck_assert_int_eq(walls_cpu_count() > 0, 1);
    ck_assert_ptr_nonnull(strstr(walls_last_error(), "pool is NULL"));
    /* Each thread has its own. */
    pthread_t th;
    const char *other = NULL;
    ck_assert_int_eq(pthread_create(&th, NULL, last_error_of_new_thread, &other), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_str_eq(other, "no walls call has failed on this thread");
    /* Codes read in walls' terms. */
    ck_assert_ptr_nonnull(strstr(walls_strerror(-ENOTSUP), "kernel refuses a sandbox layer"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-ENOTCONN), "walls_pool_fd()"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EPERM), "fork()"));
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EINVAL), "walls_last_error()"));
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(walls_status_name(WALLS_OK), "ok");
    ck_assert_str_eq(walls_status_name(WALLS_CRASHED), "crashed");
    ck_assert_str_eq(walls_status_name(WALLS_BROKEN), "broken");
    ck_assert_str_eq(walls_status_name((enum walls_status)99), "unknown");
    ck_assert_str_eq(walls_status_name((enum walls_status)-1), "unknown");
    ck_assert_ptr_nonnull(strstr(walls_strerror(-EBADF), "stale"));
    ck_assert_str_eq(walls_strerror(-ENOMEM), "Cannot allocate memory");
    ck_assert_str_eq(walls_strerror(12345), "unknown error");
    ck_assert_str_eq(walls_strerror(-99999), "unknown error");
    ck_assert_str_eq(walls_version(), WALLS_VERSION_STRING);
}
END_TEST

/* The program's descriptors below `upto`, as (device, inode) pairs. */
struct fds_seen {
    int upto;
    dev_t dev[64];
    ino_t ino[64];
    bool open[64];
};

static void note_fds(struct fds_seen *f, int upto)
{
    f->upto = upto;
    for (int fd = 0; fd < upto; fd++) {
        struct stat st;
        f->open[fd] = fstat(fd, &st) == 0;
        f->dev[fd] = f->open[fd] ? st.st_dev : 0;
        f->ino[fd] = f->open[fd] ? st.st_ino : 0;
    }
}

static void expect_fds_kept(const struct fds_seen *f, const char *what, int rc)
{
    for (int fd = 0; fd < f->upto; fd++) {
        if (!f->open[fd])
            continue;
        struct stat st;
        ck_assert_msg(fstat(fd, &st) == 0 && st.st_dev == f->dev[fd] && st.st_ino == f->ino[fd],
                      "%s: a create that returned %d (%s) closed or replaced descriptor %d", what,
                      rc, walls_last_error(), fd);
    }
}

/* The lowest descriptor number not open. */
static int lowest_free_fd(void)
{
    int fd = 0;
    while (fcntl(fd, F_GETFD) >= 0)
        fd++;
    return fd;
}

/* Every descriptor number a create may take, one more each round, until it
 * succeeds: each failure on the way (the pool's descriptor, the arena's,
 * the locks', the shared region's, a process pool's sockets and memfds)
 * must leave the program's own as they were, fd 0 first. */
static void sweep_descriptors(enum walls_placement placement)
{
    int marker = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(marker, 0);
    int base = lowest_free_fd();
    ck_assert_int_lt(base + 48, 64);
    struct fds_seen seen;
    note_fds(&seen, base);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    int failures = 0;
    bool made = false;
    for (int room = 0; room <= 48 && !made; room++) {
        struct walls_pool_opts o = {.placement = placement, .arena_size = 65536, .locks = 4,
                                    .shared_size = 65536};
        if (placement == WALLS_THREADS)
            o.threads = 1;
        else
            o.processes = 1;
        struct rlimit low = {(rlim_t)(base + room), old.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        walls_pool *pool = NULL;
        int rc = walls_pool_create(&pool, &o);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        char what[64];
        snprintf(what, sizeof what, "%s, %d descriptors free",
                 placement == WALLS_THREADS ? "threads" : "processes", room);
        expect_fds_kept(&seen, what, rc);
        if (rc == 0) {
            made = true;
            ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        } else {
            ck_assert_msg(rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM || rc == -EAGAIN,
                          "%s: create returned %d (%s)", what, rc, walls_strerror(rc));
            failures++;
        }
        /* Nothing of the failed create stays open either. */
        ck_assert_int_eq(lowest_free_fd(), base);
    }
    ck_assert_msg(made, "no create succeeded with 48 descriptors free");
    ck_assert_int_gt(failures, 2);
    close(marker);
}

START_TEST(test_failed_create_threads_keeps_fds)
{
    sweep_descriptors(WALLS_THREADS);
}
END_TEST

START_TEST(test_failed_create_processes_keeps_fds)
{
    sweep_descriptors(WALLS_PROCESSES);
}
END_TEST

/* Bytes of address space this process has mapped. */
static long mapped_bytes(void)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld", &pages), 1);
    fclose(f);
    return pages * sysconf(_SC_PAGESIZE);
}

/* A process pool's create run out of memory at each step (its crash-loop
 * table is 800 kB here): every failure leaves the program's descriptors as
 * they were. The sanitizers reserve address space of their own, so the
 * limit cannot be set under them. */
START_TEST(test_failed_create_out_of_memory_keeps_fds)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return;
#endif
    ck_assert_int_eq(walls_init(), 0);
    int base = lowest_free_fd();
    struct fds_seen seen;
    note_fds(&seen, base);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    int failures = 0;
    bool made = false;
    for (long room = 0; room <= (64l << 20) && !made; room += 256l << 10) {
        struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                    .restart_limit = 100000};
        struct rlimit low = {(rlim_t)(mapped_bytes() + room), old.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_AS, &low), 0);
        walls_pool *pool = NULL;
        int rc = walls_pool_create(&pool, &o);
        ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
        expect_fds_kept(&seen, "processes, out of address space", rc);
        if (rc == 0) {
            made = true;
            ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        } else {
            failures++;
        }
        ck_assert_int_eq(lowest_free_fd(), base);
    }
    ck_assert_msg(made, "no create succeeded with 64 MiB of address space to spare");
    ck_assert_int_gt(failures, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_last_error);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_failed_create_threads_keeps_fds);
    tcase_add_test(tc, test_failed_create_processes_keeps_fds);
    tcase_add_test(tc, test_failed_create_out_of_memory_keeps_fds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
