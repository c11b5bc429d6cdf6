/*
 * test-seccomp.c - the SECCOMP sandbox level: attacks (open a file, a
 * socket, clone, execve, kill, ptrace, getppid) each end as WALLS_VIOLATION
 * naming the call while the pool carries on, and each succeeds without the
 * sandbox; a SIGSYS the task raises itself stays a crash.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the seccomp level.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "probe.h"
#include "walls.h"

extern char **environ;

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
    Suite *s = suite_create("seccomp");
    TCase *tc = tcase_create("seccomp");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_seccomp_refuses_attacks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-seccomp", "seccomp",
                        WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP);
}
