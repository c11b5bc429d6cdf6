/*
 * test_proc.c - process placement: crashes fail only their own task, the
 * pool replaces the worker and keeps serving, functions from dlopen()ed
 * libraries run, and nothing is left behind after destroy.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include "helpers.h"
#include "mailbox.h"
#include "walls.h"

#ifndef PLUGIN_PATH
#error "PLUGIN_PATH must name the test plugin"
#endif

struct crash_kind {
    walls_fn *fn;
    enum walls_status status;
    int code;
};

START_TEST(test_thousand_with_ten_crashes)
{
    static const struct crash_kind kinds[] = {
        {t_segv, WALLS_CRASHED, SIGSEGV},  {t_abort, WALLS_CRASHED, SIGABRT},
        {t_exit3, WALLS_EXITED, 3},        {t_stack, WALLS_CRASHED, SIGSEGV},
        {t_sigkill, WALLS_KILLED, SIGKILL},
    };
    walls_pool *pool = proc_pool(2);
    enum { N = 1000 };
    static walls_task *tasks[N];
    int expect_kind[N];
    for (int i = 0; i < N; i++) {
        expect_kind[i] = -1;
        walls_fn *fn = t_add;
        if (i % 100 == 37) {
            expect_kind[i] = (i / 100) % 5;
            fn = kinds[expect_kind[i]].fn;
        }
        int v[2] = {i, 1};
        ck_assert_int_eq(walls_submit(pool, fn, v, sizeof v, &tasks[i]), 0);
    }
    int ok = 0, crashed = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], -1, &r), 0);
        if (expect_kind[i] < 0) {
            ck_assert_msg(r.status == WALLS_OK, "task %d: %s/%d", i, walls_status_name(r.status),
                          r.code);
            int sum;
            memcpy(&sum, r.out, sizeof sum);
            ck_assert_int_eq(sum, i + 1);
            ok++;
        } else {
            const struct crash_kind *k = &kinds[expect_kind[i]];
            ck_assert_msg(r.status == k->status && r.code == k->code,
                          "task %d: got %s/%d, want %s/%d", i, walls_status_name(r.status), r.code,
                          walls_status_name(k->status), k->code);
            crashed++;
        }
        walls_task_free(tasks[i]);
    }
    ck_assert_int_eq(ok, 990);
    ck_assert_int_eq(crashed, 10);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 10);
    ck_assert_uint_eq(st.by_status[WALLS_OK], 990);
    /* And it keeps serving. */
    for (int i = 0; i < 100; i++) {
        int v[2] = {i, 2};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &tasks[i]), 0);
    }
    for (int i = 0; i < 100; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(tasks[i], -1, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(tasks[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_outside_kill_and_replacement)
{
    walls_pool *pool = proc_pool(1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    int first;
    memcpy(&first, r.out, sizeof first);
    walls_task_free(t);
    int ms = 5000;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &t), 0);
    usleep(100000);
    ck_assert_int_eq(kill(first, SIGTERM), 0);
    ck_assert_int_eq(walls_wait(t, 10000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_KILLED);
    ck_assert_int_eq(r.code, SIGTERM);
    walls_task_free(t);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    int second;
    memcpy(&second, r.out, sizeof second);
    ck_assert_int_ne(first, second);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_queued_behind_crash_survive)
{
    /* One worker, a crash in the middle of its ring: the tasks queued behind
     * it were never taken and must run on the replacement. */
    walls_pool *pool = proc_pool(1);
    walls_task *t[20];
    for (int i = 0; i < 20; i++) {
        int v[2] = {i, 0};
        ck_assert_int_eq(walls_submit(pool, i == 5 ? t_segv : t_add, v, sizeof v, &t[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
        if (i == 5) {
            ck_assert_int_eq(r.status, WALLS_CRASHED);
            ck_assert_int_eq(r.code, SIGSEGV);
        } else {
            ck_assert_msg(r.status == WALLS_OK, "task %d: %s", i, walls_status_name(r.status));
        }
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_dlopen_after_start)
{
    walls_pool *pool = proc_pool(2);
    /* Loaded after the fork server and the workers started. */
    void *lib = dlopen(PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(lib != NULL, "dlopen: %s", dlerror());
    walls_fn *triple = (walls_fn *)(uintptr_t)dlsym(lib, "plugin_triple");
    ck_assert_ptr_nonnull((void *)(uintptr_t)triple);
    walls_task *t[10];
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(walls_submit(pool, triple, &i, sizeof i, &t[i]), 0);
    for (int i = 0; i < 10; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], -1, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "status %s code %d", walls_status_name(r.status),
                      r.code);
        int v;
        memcpy(&v, r.out, sizeof v);
        ck_assert_int_eq(v, 3 * i + 1);
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    dlclose(lib);
}
END_TEST

START_TEST(test_worker_descriptors)
{
    walls_pool *pool = proc_pool(1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_fds, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, -1, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    size_t n = r.out_len / sizeof(int);
    /* The standard streams, the mailbox and the doorbell; nothing else. */
    for (size_t i = 0; i < n; i++) {
        int fd;
        memcpy(&fd, (const char *)r.out + i * sizeof fd, sizeof fd);
        ck_assert_msg(fd <= 4, "worker holds descriptor %d", fd);
    }
    ck_assert_uint_le(n, 5);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

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

/* Hostile tasks: they find their own worker's mailbox in /proc/self/maps
 * and break the protocol, then ring the doorbell (descriptor 4) so the host
 * looks, and hang. The host must kill the worker and fail the task with
 * WALLS_PROTOCOL. */
static struct walls__mailbox *own_mailbox(void)
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

static void ring_and_hang(void)
{
    uint64_t one = 1;
    if (write(4, &one, sizeof one) != sizeof one)
        _exit(99);
    sleep(30);
}

static int hostile_tail(struct walls_call *call)
{
    (void)call;
    struct walls__mailbox *mb = own_mailbox();
    if (!mb)
        return 1;
    __atomic_store_n(&mb->cq.tail, mb->cq.tail + 1000, __ATOMIC_RELEASE);
    ring_and_hang();
    return 0;
}

/* Publishes a completion for the request being run, with the given tag
 * and length, as only a corrupted worker would. */
static int fake_completion(bool right_tag, uint32_t out_len)
{
    struct walls__mailbox *mb = own_mailbox();
    if (!mb)
        return 1;
    uint32_t tail = mb->cq.tail;
    struct walls__cqe *cqe = &mb->cq_slots[tail % WALLS__RING_SLOTS];
    const struct walls__req *req = &mb->rq_slots[mb->rq.head % WALLS__RING_SLOTS];
    cqe->seq = req->seq;                  /* a plausible index */
    cqe->tag = right_tag ? req->tag : 0xbad;
    cqe->kind = WALLS__CQE_DONE;
    cqe->status = WALLS_OK;
    cqe->out_len = out_len;
    __atomic_store_n(&mb->cq.tail, tail + 1, __ATOMIC_RELEASE);
    ring_and_hang();
    return 0;
}

static int hostile_tag(struct walls_call *call)
{
    (void)call;
    return fake_completion(false, 0); /* the host's tag is wrong */
}

static int hostile_length(struct walls_call *call)
{
    (void)call;
    return fake_completion(true, 0x7fffffff); /* right tag, absurd length */
}

START_TEST(test_protocol_breakers_are_killed)
{
    walls_fn *attacks[] = {hostile_tail, hostile_tag, hostile_length};
    walls_pool *pool = proc_pool(2);
    for (size_t a = 0; a < sizeof attacks / sizeof attacks[0]; a++) {
        walls_task *bad, *good[10];
        ck_assert_int_eq(walls_submit(pool, attacks[a], NULL, 0, &bad), 0);
        for (int i = 0; i < 10; i++) {
            int v[2] = {i, 5};
            ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &good[i]), 0);
        }
        struct walls_result r;
        ck_assert_int_eq(walls_wait(bad, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_PROTOCOL, "attack %zu: %s/%d", a,
                      walls_status_name(r.status), r.code);
        walls_task_free(bad);
        for (int i = 0; i < 10; i++) {
            ck_assert_int_eq(walls_wait(good[i], 20000, &r), 0);
            ck_assert_msg(r.status == WALLS_OK, "attack %zu, task %d: %s", a, i,
                          walls_status_name(r.status));
            walls_task_free(good[i]);
        }
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.by_status[WALLS_PROTOCOL], 3);
    ck_assert_uint_ge(st.restarts, 3);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
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
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", getpid(), getpid());
        FILE *f = fopen(path, "r");
        int fs = 0;
        if (!f || fscanf(f, "%d", &fs) != 1)
            _exit(2);
        fclose(f);
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", fs, fs);
        f = fopen(path, "r");
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

/* ---- hybrid ------------------------------------------------------------ */

/* Shared with the workers through a memfd of the test process, which each
 * task maps by its /proc path (its input): the workers may be forked from
 * a re-executed fork server (the test process has threads under
 * ThreadSanitizer), which inherits no mapping of the test's. */
struct rendezvous {
    int started;
    int release;
};

static struct rendezvous *rendezvous_of(struct walls_call *call)
{
    static struct rendezvous *mapped; /* per worker process; its threads race to map it */
    struct rendezvous *rv = __atomic_load_n(&mapped, __ATOMIC_ACQUIRE);
    if (rv)
        return rv;
    char path[64] = "";
    memcpy(path, call->in, call->in_len < sizeof path - 1 ? call->in_len : sizeof path - 1);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        abort();
    void *p = mmap(NULL, sizeof *rv, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        abort();
    struct rendezvous *none = NULL;
    if (!__atomic_compare_exchange_n(&mapped, &none, p, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        munmap(p, sizeof *rv);
        return none;
    }
    return p;
}

static int hold(struct walls_call *call)
{
    struct rendezvous *rv = rendezvous_of(call);
    __atomic_fetch_add(&rv->started, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 20000 && !__atomic_load_n(&rv->release, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    return t_pid(call);
}

static int crash_when_seven_hold(struct walls_call *call)
{
    struct rendezvous *rv = rendezvous_of(call);
    for (int i = 0; i < 5000 && __atomic_load_n(&rv->started, __ATOMIC_SEQ_CST) < 7; i++)
        usleep(1000);
    usleep(20000); /* let the holders settle into their calls */
    abort();
}

static void hybrid_lost(unsigned retries, int want_lost)
{
    int memfd = memfd_create("walls-test-rendezvous", MFD_CLOEXEC);
    ck_assert_int_ge(memfd, 0);
    ck_assert_int_eq(ftruncate(memfd, sizeof(struct rendezvous)), 0);
    struct rendezvous *rv =
        mmap(NULL, sizeof *rv, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    ck_assert_ptr_ne(rv, MAP_FAILED);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", getpid(), memfd);
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 4,
                                .lost_retries = retries};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 200 };
    walls_task *t[N];
    /* One task per thread: seven holders and the crasher; then the rest. */
    for (int i = 0; i < N; i++) {
        int v[2] = {i, 0};
        if (i < 8)
            ck_assert_int_eq(walls_submit(pool, i < 7 ? hold : crash_when_seven_hold, path,
                                          strlen(path), &t[i]),
                             0);
        else
            ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t[i]), 0);
    }
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t[7], 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_int_eq(r.code, SIGABRT);
    __atomic_store_n(&rv->release, 1, __ATOMIC_SEQ_CST);
    int lost = 0, ok = 0, retried = 0;
    for (int i = 0; i < N; i++) {
        if (i == 7)
            continue;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK || r.status == WALLS_LOST, "task %d: %s", i,
                      walls_status_name(r.status));
        lost += r.status == WALLS_LOST;
        ok += r.status == WALLS_OK;
        retried += r.attempts == 2;
        ck_assert_uint_le(r.attempts, retries + 1);
    }
    /* The three other threads of the crashed process were running holders. */
    ck_assert_int_eq(lost, want_lost);
    ck_assert_int_eq(ok, N - 1 - want_lost);
    ck_assert_int_eq(retried, 3 - want_lost);
    for (int i = 0; i < N; i++)
        walls_task_free(t[i]);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.by_status[WALLS_LOST], (uint64_t)want_lost);
    ck_assert_uint_eq(st.restarts, 1);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    munmap(rv, sizeof *rv);
    close(memfd);
}

START_TEST(test_hybrid_crash_loses_neighbours)
{
    hybrid_lost(0, 3);
}
END_TEST

START_TEST(test_hybrid_retries_lost)
{
    hybrid_lost(1, 0);
}
END_TEST

START_TEST(test_hybrid_basics)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 3};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_int_eq(st.placement, WALLS_HYBRID);
    ck_assert_uint_eq(st.processes, 2);
    ck_assert_uint_eq(st.threads, 3);
    walls_task *t[300];
    for (int i = 0; i < 300; i++) {
        int v[2] = {i, 7};
        ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        ck_assert_uint_eq(r.attempts, 1);
        int sum;
        memcpy(&sum, r.out, sizeof sum);
        ck_assert_int_eq(sum, i + 7);
        walls_task_free(t[i]);
    }
    /* A lone exit() and a lone crash, nothing else running: their own causes. */
    walls_task *e, *c;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_exit3, NULL, 0, &e), 0);
    ck_assert_int_eq(walls_wait(e, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_EXITED);
    ck_assert_int_eq(r.code, 3);
    ck_assert_int_eq(walls_submit(pool, t_segv, NULL, 0, &c), 0);
    ck_assert_int_eq(walls_wait(c, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_int_eq(r.code, SIGSEGV);
    walls_task_free(e);
    walls_task_free(c);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(count_children(), 0);
}
END_TEST

/* Two tasks of one hybrid process that fault at the same instant: each
 * meets the other (a counter in the worker's own memory, fresh in every
 * process), then one writes through NULL and the other aborts. */
static uint32_t met;

static void meet(void)
{
    __atomic_fetch_add(&met, 1, __ATOMIC_SEQ_CST);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while (__atomic_load_n(&met, __ATOMIC_SEQ_CST) < 2 &&
           (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 1000000000L);
}

static int meet_segv(struct walls_call *call)
{
    meet();
    return t_segv(call);
}

static int meet_abort(struct walls_call *call)
{
    meet();
    return t_abort(call);
}

START_TEST(test_hybrid_simultaneous_faults)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 2,
                                .restart_limit = 100000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { ROUNDS = 300 };
    int wrong = 0, both = 0;
    for (int round = 0; round < ROUNDS; round++) {
        /* The process is up and both its threads asleep: the pair lands on
         * different threads. */
        walls_task *ready, *s, *a;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, t_echo, NULL, 0, &ready), 0);
        ck_assert_int_eq(walls_wait(ready, 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(ready);
        usleep(2000);
        ck_assert_int_eq(walls_submit(pool, meet_segv, NULL, 0, &s), 0);
        ck_assert_int_eq(walls_submit(pool, meet_abort, NULL, 0, &a), 0);
        struct walls_result rs, ra;
        ck_assert_int_eq(walls_wait(s, 20000, &rs), 0);
        ck_assert_int_eq(walls_wait(a, 20000, &ra), 0);
        /* A task that faulted ends with its own signal, never the other's.
         * One may be lost: stopped by the other's death an instant before
         * its own fault. Both lost would mean a fault nobody was blamed for. */
        bool s_own = rs.status == WALLS_CRASHED && rs.code == SIGSEGV;
        bool a_own = ra.status == WALLS_CRASHED && ra.code == SIGABRT;
        bool ok = (s_own || rs.status == WALLS_LOST) && (a_own || ra.status == WALLS_LOST) &&
                  (s_own || a_own);
        both += s_own && a_own;
        if (!ok && wrong++ < 5)
            fprintf(stderr, "round %d: segv task %s/%d, abort task %s/%d\n", round,
                    walls_status_name(rs.status), rs.code, walls_status_name(ra.status), ra.code);
        walls_task_free(s);
        walls_task_free(a);
    }
    fprintf(stderr, "simultaneous faults: %d of %d rounds had both blamed on their own signal\n",
            both, ROUNDS);
    ck_assert_msg(wrong == 0, "%d of %d rounds misreported", wrong, ROUNDS);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Many mixed tasks on two hybrid processes of two threads: a task that
 * faulted ends with its own signal or (when a neighbour's fault killed the
 * process first) as lost; never with another task's signal. */
START_TEST(test_hybrid_fault_soak)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 2, .threads = 2,
                                .restart_limit = 100000};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 20000 };
    static walls_task *t[N];
    for (int i = 0; i < N; i++) {
        int v[2] = {i, 1};
        walls_fn *fn = i % 40 == 3 ? t_segv : i % 40 == 17 ? t_abort : t_add;
        ck_assert_int_eq(walls_submit(pool, fn, v, sizeof v, &t[i]), 0);
    }
    int wrong = 0, crashed = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 60000, &r), 0);
        bool ok;
        if (i % 40 == 3 || i % 40 == 17) {
            int own = i % 40 == 3 ? SIGSEGV : SIGABRT;
            ok = (r.status == WALLS_CRASHED && r.code == own) || r.status == WALLS_LOST;
            crashed += r.status == WALLS_CRASHED;
        } else {
            ok = r.status == WALLS_OK || r.status == WALLS_LOST;
        }
        if (!ok && wrong++ < 5)
            fprintf(stderr, "task %d (%s): %s/%d\n", i,
                    i % 40 == 3 ? "segv" : i % 40 == 17 ? "abort" : "add",
                    walls_status_name(r.status), r.code);
        walls_task_free(t[i]);
    }
    ck_assert_msg(wrong == 0, "%d of %d tasks misreported", wrong, N);
    ck_assert_int_gt(crashed, N / 40);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_recycle_after_n)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .recycle_after = 10};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    enum { N = 45 };
    walls_task *t[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t[i]), 0);
    int pids[N], distinct = 0;
    for (int i = 0; i < N; i++) {
        struct walls_result r;
        ck_assert_int_eq(walls_wait(t[i], 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        memcpy(&pids[i], r.out, sizeof pids[i]);
        if (i == 0 || pids[i] != pids[i - 1])
            distinct++;
        walls_task_free(t[i]);
    }
    /* Ten tasks per worker process, then a new one: no task lost. */
    ck_assert_int_eq(distinct, 5);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pids[i], pids[i - i % 10]);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.recycled, 4);
    ck_assert_uint_eq(st.restarts, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static int grow_rss(struct walls_call *call)
{
    size_t mb = 0;
    memcpy(&mb, call->in, sizeof mb);
    char *p = malloc(mb << 20);
    if (!p)
        return 12;
    memset(p, 1, mb << 20);
    /* Keep it: the worker's resident memory stays high. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
    return t_pid(call);
}

START_TEST(test_recycle_rss)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .recycle_rss = 64u << 20};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    size_t small = 1, big = 100;
    walls_task *a, *b, *c;
    struct walls_result r;
    int pa, pb, pc;
    ck_assert_int_eq(walls_submit(pool, grow_rss, &small, sizeof small, &a), 0);
    ck_assert_int_eq(walls_wait(a, 20000, &r), 0);
    memcpy(&pa, r.out, sizeof pa);
    ck_assert_int_eq(walls_submit(pool, grow_rss, &big, sizeof big, &b), 0);
    ck_assert_int_eq(walls_wait(b, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    memcpy(&pb, r.out, sizeof pb);
    ck_assert_int_eq(pa, pb); /* under the limit until this task */
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &c), 0);
    ck_assert_int_eq(walls_wait(c, 20000, &r), 0);
    memcpy(&pc, r.out, sizeof pc);
    ck_assert_int_ne(pb, pc); /* replaced after it */
    walls_task_free(a);
    walls_task_free(b);
    walls_task_free(c);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static int exhaust_memory(struct walls_call *call)
{
    (void)call;
    /* Allocate until it fails, then die the way careless code does. */
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p)
            abort();
        memset(p, 1, 4096);
    }
}

START_TEST(test_memory_limit)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .worker_memory_limit = 256u << 20};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, exhaust_memory, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGABRT, "%s/%d",
                  walls_status_name(r.status), r.code);
    ck_assert_uint_eq(r.flags & WALLS_RESULT_MEMORY, WALLS_RESULT_MEMORY);
    walls_task_free(t);
    /* A crash of its own, far from the limit, is not blamed on memory. */
    ck_assert_int_eq(walls_submit(pool, t_abort, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_uint_eq(r.flags & WALLS_RESULT_MEMORY, 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST
#endif

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
    ck_assert_int_eq(count_children(), 0);
}
END_TEST

START_TEST(test_cancel_finished_unharvested)
{
    /* A finishes and nobody has looked; B runs. Cancelling A must say it is
     * over, and must not kill B's process. */
    walls_pool *pool = proc_pool(1);
    walls_task *a, *b;
    int ms = 300;
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &a), 0);
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &b), 0);
    usleep(100000);
    ck_assert_int_eq(walls_cancel(a), -EALREADY);
    struct walls_result r;
    ck_assert_int_eq(walls_wait(a, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait(b, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(a);
    walls_task_free(b);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.restarts, 0);
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

START_TEST(test_recycle_counts_cancelled)
{
    /* Given its two tasks, one cancelled before it ran: the worker is
     * still recycled, and the next task runs on its replacement. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .recycle_after = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    int ms = 200;
    walls_task *a, *b, *c;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_sleep_ms, &ms, sizeof ms, &a), 0);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &b), 0);
    ck_assert_int_eq(walls_cancel(b), 0);
    ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &c), 0);
    ck_assert_int_eq(walls_wait(c, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    ck_assert_int_eq(walls_wait(a, 0, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(a);
    walls_task_free(b);
    walls_task_free(c);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.recycled, 1);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* What a worker may do, as bits: 1 no_new_privs is off, 2 core dumps are
 * allowed, 4 a file may grow, 8 standard output is open, 16 more than 32
 * descriptors can be opened. */
static int probe_limits(struct walls_call *call)
{
    int can = 0;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        can |= 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur != 0)
        can |= 2;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != 0)
        can |= 4;
    if (fcntl(1, F_GETFD) != -1)
        can |= 8;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 32)
        can |= 16;
    memcpy(call->out, &can, sizeof can);
    call->out_len = sizeof can;
    return 0;
}

static int probe_in(enum walls_placement placement, unsigned sandbox)
{
    struct walls_pool_opts o = {.placement = placement, .processes = 1, .threads = 2,
                                .sandbox = sandbox};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[400];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, sandbox ? "sandbox: limits" : "sandbox: none"));
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, probe_limits, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    int can;
    memcpy(&can, r.out, sizeof can);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    return can;
}

START_TEST(test_sandbox_limits)
{
    /* Without the sandbox every probe succeeds (so each check below can
     * fail); with it, none does, in both process placements. */
    ck_assert_int_eq(probe_in(WALLS_PROCESSES, WALLS_SANDBOX_NONE) & (1 | 8 | 16), 1 | 8 | 16);
    ck_assert_int_eq(probe_in(WALLS_PROCESSES, WALLS_SANDBOX_LIMITS), 0);
    ck_assert_int_eq(probe_in(WALLS_HYBRID, WALLS_SANDBOX_LIMITS), 0);
    /* Refused: not for threads, and unknown levels. */
    walls_pool *pool = NULL;
    struct walls_pool_opts o = {.placement = WALLS_THREADS, .sandbox = WALLS_SANDBOX_LIMITS};
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    o = (struct walls_pool_opts){.placement = WALLS_PROCESSES, .sandbox = 7};
    ck_assert_int_eq(walls_pool_create(&pool, &o), -EINVAL);
    ck_assert_ptr_null(pool);
}
END_TEST

/* ---- seccomp sandbox: attacks that must be refused ---------------------- */

static int atk_open(struct walls_call *c)
{
    (void)c;
    int fd = open("/etc/passwd", O_RDONLY);
    return fd >= 0 ? 0 : 1;
}

static int atk_socket(struct walls_call *c)
{
    (void)c;
    return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 1;
}

static int atk_fork(struct walls_call *c)
{
    (void)c;
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    return pid > 0 ? 0 : 1;
}

static int atk_exec(struct walls_call *c)
{
    (void)c;
    char *argv[] = {"true", NULL};
    execve("/bin/true", argv, environ);
    return 1;
}

static int atk_kill_parent(struct walls_call *c)
{
    (void)c;
    return kill(1, 0) == 0 ? 0 : 1; /* signal 0 to init: a harmless probe */
}

static int atk_ptrace(struct walls_call *c)
{
    (void)c;
    return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0) == 0 ? 0 : 1;
}

static int atk_getppid(struct walls_call *c)
{
    (void)c;
    return getppid() > 0 ? 0 : 1;
}

static int raise_sigsys(struct walls_call *c)
{
    (void)c;
    raise(SIGSYS);
    return 0;
}

static int compute(struct walls_call *c)
{
    /* What is allowed: memory, arithmetic, a short sleep, the clock. */
    size_t n = 1 << 20;
    unsigned char *p = malloc(n);
    if (!p)
        return 1;
    memset(p, 7, n);
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i += 4096)
        sum += p[i];
    free(p);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    memcpy(c->out, &sum, sizeof sum);
    c->out_len = sizeof sum;
    return 0;
}

START_TEST(test_seccomp_refuses_attacks)
{
    static const struct {
        walls_fn *fn;
        long nr;
        const char *name;
        enum walls_status plain; /* how it ends without a sandbox */
    } attacks[] = {
        {atk_open, SYS_openat, "openat", WALLS_OK},
        {atk_socket, SYS_socket, "socket", WALLS_OK},
        {atk_fork, SYS_clone, "clone", WALLS_OK},
        {atk_exec, SYS_execve, "execve", WALLS_EXITED}, /* /bin/true replaced the worker */
        {atk_kill_parent, SYS_kill, "kill", WALLS_OK},
        {atk_ptrace, SYS_ptrace, "ptrace", WALLS_OK},
        {atk_getppid, SYS_getppid, "getppid", WALLS_OK},
    };
    size_t n = sizeof attacks / sizeof attacks[0];
    /* Without the filter each attack succeeds: the checks below can fail. */
    walls_pool *plain = proc_pool(1);
    for (size_t i = 0; i < n; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(plain, attacks[i].fn, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == attacks[i].plain, "%s without a sandbox: %s/%d",
                      attacks[i].name, walls_status_name(r.status), r.code);
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(plain, 0), 0);

    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2,
                                .sandbox = WALLS_SANDBOX_SECCOMP};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[400];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, "sandbox: seccomp"));
    for (size_t i = 0; i < n; i++) {
        walls_task *t, *ok;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, attacks[i].fn, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_submit(pool, compute, NULL, 0, &ok), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_VIOLATION && r.code == attacks[i].nr,
                      "%s: got %s/%d (%s)", attacks[i].name, walls_status_name(r.status), r.code,
                      walls_syscall_name(r.code));
        ck_assert_str_eq(walls_syscall_name(r.code), attacks[i].name);
        ck_assert_int_eq(walls_wait(ok, 20000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK); /* the pool carries on */
        walls_task_free(t);
        walls_task_free(ok);
    }
    /* A SIGSYS the task raises itself is a crash, not a violation. */
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, raise_sigsys, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_CRASHED);
    ck_assert_int_eq(r.code, SIGSYS);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_str_eq(walls_syscall_name(-5), "unknown");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proc");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_thousand_with_ten_crashes);
    tcase_add_test(tc, test_outside_kill_and_replacement);
    tcase_add_test(tc, test_queued_behind_crash_survive);
    tcase_add_test(tc, test_dlopen_after_start);
    tcase_add_test(tc, test_worker_descriptors);
    tcase_add_test(tc, test_nothing_left_behind);
    tcase_add_test(tc, test_init_keeps_fork_server);
    tcase_add_test(tc, test_many_pools_at_once);
    tcase_add_test(tc, test_protocol_breakers_are_killed);
    tcase_add_test(tc, test_worker_start_failure);
    tcase_add_test(tc, test_crash_loop_breaks_pool);
    tcase_add_test(tc, test_restart_backoff);
    tcase_add_test(tc, test_host_sigkill_leaves_nothing);
    tcase_add_test(tc, test_hybrid_basics);
    tcase_add_test(tc, test_hybrid_crash_loses_neighbours);
    tcase_add_test(tc, test_hybrid_retries_lost);
    tcase_add_test(tc, test_hybrid_simultaneous_faults);
    tcase_add_test(tc, test_hybrid_fault_soak);
    tcase_add_test(tc, test_host_sigchld_reaper_steals_nothing);
    tcase_add_test(tc, test_recycle_after_n);
    tcase_add_test(tc, test_cancel_finished_unharvested);
    tcase_add_test(tc, test_fork_server_killed);
    tcase_add_test(tc, test_recycle_counts_cancelled);
    tcase_add_test(tc, test_sandbox_limits);
    tcase_add_test(tc, test_seccomp_refuses_attacks);
    tcase_add_test(tc, test_recycle_rss);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* Sanitizers reserve terabytes of address space: no RLIMIT_AS fits. */
    tcase_add_test(tc, test_memory_limit);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
