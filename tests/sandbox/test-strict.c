/*
 * test-strict.c - what a strict worker is, beyond what attacks can tell:
 * its namespaces, credentials and filter read by the host from /proc (and
 * compared with a seccomp-level worker's), hybrid workers under the strict
 * level, and nothing left behind once its pool is destroyed.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the strict sandbox.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attacks.h"
#include "helpers.h"
#include "probe.h"
#include "walls.h"

/* One line of /proc/<pid>/status, after its "Name:" and the tab. */
static bool status_field(pid_t pid, const char *name, char *out, size_t len)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    size_t n = strlen(name);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == '\t' || *v == ' ')
                v++;
            snprintf(out, len, "%s", v);
            out[strcspn(out, "\n")] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

static bool same_ns(pid_t pid, const char *ns)
{
    char a[64], b[64], la[128] = "", lb[128] = "";
    snprintf(a, sizeof a, "/proc/%d/ns/%s", (int)pid, ns);
    snprintf(b, sizeof b, "/proc/self/ns/%s", ns);
    ck_assert_int_gt(readlink(a, la, sizeof la - 1), 0);
    ck_assert_int_gt(readlink(b, lb, sizeof lb - 1), 0);
    return strcmp(la, lb) == 0;
}

/* What a worker really runs with, read by the host from /proc: the strict
 * level's namespaces, credentials and filter, which no attack above can
 * tell from the seccomp level's. */
START_TEST(test_worker_credentials)
{
    static const char *const spaces[] = {"user", "net", "ipc", "mnt", "uts"};
    for (int strict = 0; strict < 2; strict++) {
        struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                    .sandbox = strict ? WALLS_SANDBOX_STRICT
                                                      : WALLS_SANDBOX_SECCOMP};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        pid_t pid = pid_from(pool, t_pid);
        char v[128];
        ck_assert(status_field(pid, "NoNewPrivs", v, sizeof v));
        ck_assert_str_eq(v, "1");
        ck_assert(status_field(pid, "Seccomp", v, sizeof v));
        ck_assert_str_eq(v, "2");
        ck_assert(status_field(pid, "CapEff", v, sizeof v));
        if (strict || geteuid() != 0)
            ck_assert_str_eq(v, "0000000000000000");
        if (strict && geteuid() == 0) {
            ck_assert(status_field(pid, "Uid", v, sizeof v));
            ck_assert_str_eq(v, "65534\t65534\t65534\t65534");
            ck_assert(status_field(pid, "Gid", v, sizeof v));
            ck_assert_str_eq(v, "65534\t65534\t65534\t65534");
            ck_assert(status_field(pid, "CapBnd", v, sizeof v));
            ck_assert_str_eq(v, "0000000000000000");
        }
        for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
            ck_assert_msg(same_ns(pid, spaces[i]) == !strict, "%s worker, %s namespace",
                          strict ? "strict" : "seccomp", spaces[i]);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
}
END_TEST

START_TEST(test_hybrid_strict)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 3,
                                .needs = WALLS_NEED_UNTRUSTED};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *t[4];
    struct walls_result r;
    static const char hello[] = "hi";
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(walls_submit(pool, t_echo, hello, sizeof hello, &t[i]), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(walls_wait(t[i], 30000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_submit(pool, a_unshare, &target, sizeof target, &t[3]), 0);
    ck_assert_int_eq(walls_wait(t[3], 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    ck_assert_str_eq(walls_syscall_name(r.code), "unshare");
    walls_task_free(t[3]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* The pool's bell cannot be read (the filter), nor reopened read-write
 * through /proc to get round that, even where files may be read. */
static int reopen_bell(struct walls_call *c)
{
    (void)c;
    int fd = open("/proc/self/fd/7", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

START_TEST(test_bell_not_reopened)
{
    static const char *const paths[] = {"/tmp", NULL};
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .sandbox_allow = WALLS_ALLOW_READ_FILES,
                                .sandbox_read_paths = paths, .sandbox_fallback = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    ck_assert_int_ge(walls_pool_fd(pool), 0);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, reopen_bell, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK && r.code == 0,
                  "reopening the bell: %s/%d (1: it opened)", walls_status_name(r.status), r.code);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* The descriptors a task finds open, 0-63, as bits (fstat: the filter
 * lets it through). */
static int open_fds(struct walls_call *c)
{
    uint64_t bits = 0;
    struct stat st;
    for (int fd = 0; fd < 64; fd++)
        if (fstat(fd, &st) == 0)
            bits |= (uint64_t)1 << fd;
    memcpy(c->out, &bits, sizeof bits);
    c->out_len = sizeof bits;
    return 0;
}

static uint64_t fds_at(unsigned sandbox, enum walls_placement placement)
{
    struct walls_pool_opts o = {.placement = placement, .processes = 1, .threads = 2,
                                .sandbox = sandbox};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *t;
    struct walls_result r;
    uint64_t bits = 0;
    /* The second task too: whatever the first found closed stays so. */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(walls_submit(pool, open_fds, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "sandbox %u: %s/%d", sandbox,
                      walls_status_name(r.status), r.code);
        uint64_t now;
        memcpy(&now, r.out, sizeof now);
        ck_assert_msg(i == 0 || now == bits, "sandbox %u: %#llx then %#llx", sandbox,
                      (unsigned long long)bits, (unsigned long long)now);
        bits = now;
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    return bits;
}

/* A filtered worker holds no more descriptors than one under the limits
 * alone: its copy of the seccomp listener (the host holds its own) is
 * closed before any task runs. */
START_TEST(test_no_listener_left)
{
    for (int k = 0; k < 2; k++) {
        enum walls_placement where = k ? WALLS_HYBRID : WALLS_PROCESSES;
        uint64_t limits = fds_at(WALLS_SANDBOX_LIMITS, where);
        ck_assert_msg(limits != 0, "a LIMITS worker has its doorbell at least");
        uint64_t seccomp = fds_at(WALLS_SANDBOX_SECCOMP, where);
        ck_assert_msg(seccomp == limits, "seccomp: %#llx, limits: %#llx",
                      (unsigned long long)seccomp, (unsigned long long)limits);
        ck_assert_msg(fds_at(WALLS_SANDBOX_STRICT, where) == limits,
                      "strict holds other descriptors than limits (%#llx)",
                      (unsigned long long)limits);
    }
}
END_TEST

START_TEST(test_nothing_left_behind)
{
    int fds = count_fds();
    walls_pool *pool = strict_pool();
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, a_fork, &target, sizeof target, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(5000), 0);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_int_eq(count_shm(), 0);
}
END_TEST

/* A program that gave up root is left undumpable by the kernel, and may
 * not take the sandbox's descriptor from its own workers (pidfd_getfd):
 * the pool is refused with words that say why and what to do (before: "a
 * worker could not start: not permitted"), and works once the program is
 * dumpable again. As root only: another user has no root to give up. */
START_TEST(test_after_giving_up_root)
{
    if (geteuid() != 0) {
        printf("test_after_giving_up_root: not root, nothing to give up\n");
        return;
    }
    ck_assert_int_eq(setgroups(0, NULL), 0);
    ck_assert_int_eq(setgid(65534), 0);
    ck_assert_int_eq(setuid(65534), 0);
    ck_assert_int_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT};
    walls_pool *pool;
    int rc = walls_pool_create(&pool, &o);
    if (rc == 0) {
        /* A re-executed fork server (this process has other threads: a
         * sanitizer's) is dumpable again after its execve, and so are its
         * workers: nothing to refuse. */
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    } else {
        ck_assert_int_eq(rc, -ECHILD);
        ck_assert_msg(strstr(walls_last_error(), "PR_SET_DUMPABLE"), "%s", walls_last_error());
    }
    ck_assert_int_eq(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
    ck_assert_msg(walls_pool_create(&pool, &o) == 0, "%s", walls_last_error());
    walls_task *t;
    struct walls_result r;
    int v[2] = {2, 3};
    ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("strict");
    TCase *tc = tcase_create("strict");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_worker_credentials);
    tcase_add_test(tc, test_hybrid_strict);
    tcase_add_test(tc, test_bell_not_reopened);
    tcase_add_test(tc, test_nothing_left_behind);
    tcase_add_test(tc, test_no_listener_left);
    tcase_add_test(tc, test_after_giving_up_root);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-strict", "strict", STRICT_LAYERS);
}
