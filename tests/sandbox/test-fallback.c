/*
 * test-fallback.c - a kernel that refuses a layer of the strict sandbox,
 * simulated in a child by a filter that makes unshare() fail: strict pools
 * and untrusted work refuse to start (-ENOTSUP) unless the program allows
 * the fallback, which names what the kernel refused and still filters
 * calls.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the strict sandbox.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attacks.h"
#include "helpers.h"
#include "probe.h"
#include "walls.h"

/* In a child: a filter that makes unshare() fail with EPERM, as a kernel
 * without user namespaces would. Then strict pools must refuse to start,
 * unless the program allows the fallback, which still filters calls. */
static int refused_namespaces_child(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return 10;
    char line[640];
    unsigned layers = 0;
    if (walls_sandbox_probe(&layers, line, sizeof line) <= 0 || (layers & WALLS_LAYER_USER_NS) ||
        !(layers & WALLS_LAYER_SECCOMP) || !strstr(line, "refused: user ns"))
        return 11;
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT};
    walls_pool *pool = NULL;
    if (walls_pool_create(&pool, &o) != -ENOTSUP || pool)
        return 12;
    o.sandbox = WALLS_SANDBOX_NONE;
    o.needs = WALLS_NEED_UNTRUSTED;
    if (walls_pool_create(&pool, &o) != -ENOTSUP)
        return 13;
    o.sandbox_fallback = WALLS_SANDBOX_FALLBACK;
    if (walls_pool_create(&pool, &o) != 0)
        return 14;
    if (walls_pool_explain(pool, line, sizeof line) <= 0 || !strstr(line, "sandbox: strict (") ||
        !strstr(line, "fallback, refused by the kernel: user ns"))
        return 15;
    /* The layers it runs under name no namespace. */
    char *active = strstr(line, "sandbox: strict (");
    *strchr(active, ')') = '\0';
    if (strstr(active, "user ns") || strstr(active, "mount ns") || !strstr(active, "seccomp"))
        return 18;
    walls_task *t;
    struct walls_result r;
    int rc = 0;
    if (walls_submit(pool, a_open_read, &target, sizeof target, &t) != 0 ||
        walls_wait(t, 30000, &r) != 0)
        rc = 16;
    else if (r.status != WALLS_VIOLATION || strcmp(walls_syscall_name(r.code), "openat") != 0)
        rc = 17;
    walls_task_free(t);
    walls_pool_destroy(pool, 0);
    return rc;
}

START_TEST(test_refused_layer_and_fallback)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(refused_namespaces_child());
    ck_assert_int_gt(pid, 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended %d (see the step numbers)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fallback");
    TCase *tc = tcase_create("strict");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_refused_layer_and_fallback);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-fallback", "strict", STRICT_LAYERS);
}
