/*
 * test-int-args.c - system-call arguments the kernel reads as an int: calls
 * made with garbage in the upper half of such an argument must be judged by
 * the filter on the low half, as the kernel acts on it; each succeeds
 * without a sandbox, and in a strict pool with both permission groups each
 * is allowed or refused as the same call without the garbage would be.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the strict sandbox.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "attacks.h"
#include "helpers.h"
#include "probe.h"
#include "walls.h"

/* Each passes garbage in the upper half of an argument the kernel reads as
 * an int: the kernel acts on the low half, so the filter must judge the
 * low half too. 0 = the call succeeded. */
#define HIGH (1L << 32)

static int g_futex_wake(struct walls_call *c)
{
    (void)c;
    static uint32_t word;
    return syscall(SYS_futex, &word, (long)FUTEX_WAKE_PRIVATE | HIGH, 1, NULL, NULL, 0) < 0
               ? FAIL_ERRNO
               : 0;
}

static int g_futex_pi(struct walls_call *c)
{
    (void)c;
    static uint32_t word;
    if (syscall(SYS_futex, &word, (long)FUTEX_LOCK_PI_PRIVATE | HIGH, 0, NULL, NULL, 0) != 0)
        return FAIL_ERRNO;
    syscall(SYS_futex, &word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return 0;
}

static int g_tgkill_self(struct walls_call *c)
{
    (void)c;
    return syscall(SYS_tgkill, (long)getpid() | HIGH, (long)gettid(), 0) == 0 ? 0 : FAIL_ERRNO;
}

static int g_tgkill_host(struct walls_call *c)
{
    const struct target *t = T(c);
    return syscall(SYS_tgkill, (long)t->host | HIGH, (long)t->host, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int g_socket_inet(struct walls_call *c)
{
    (void)c;
    long fd = syscall(SYS_socket, (long)AF_INET | HIGH, (long)SOCK_DGRAM, 0L);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int g_socket_unix(struct walls_call *c)
{
    (void)c;
    long fd = syscall(SYS_socket, (long)AF_UNIX | HIGH, (long)SOCK_DGRAM, 0L);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int g_fcntl(struct walls_call *c, long cmd, long arg)
{
    (void)c;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return FAIL_ERRNO;
    long rc = syscall(SYS_fcntl, (long)fd, cmd, arg);
    int err = errno;
    close(fd);
    return rc < 0 ? (err ? err : 1) : 0;
}

static int g_fcntl_getfd(struct walls_call *c)
{
    return g_fcntl(c, (long)F_GETFD | HIGH, 0);
}

static int g_fcntl_setown(struct walls_call *c)
{
    return g_fcntl(c, (long)F_SETOWN | HIGH, (long)getpid());
}

static int g_fcntl_async(struct walls_call *c)
{
    return g_fcntl(c, (long)F_SETFL, (long)O_ASYNC | HIGH);
}

static int g_open_write(struct walls_call *c)
{
    const struct target *t = T(c);
    char path[200];
    snprintf(path, sizeof path, "%s/victim", t->dir);
    long fd = syscall(SYS_openat, (long)AT_FDCWD, path, (long)O_WRONLY | HIGH, 0L);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int g_mmap_exec(struct walls_call *c)
{
    (void)c;
    void *p = (void *)syscall(SYS_mmap, NULL, 4096L, (long)(PROT_READ | PROT_EXEC) | HIGH,
                              (long)(MAP_PRIVATE | MAP_ANONYMOUS), -1L, 0L);
    if (p == MAP_FAILED)
        return FAIL_ERRNO;
    munmap(p, 4096);
    return 0;
}

/* A worker's descriptors: the doorbell at 4, the two I/O memfds at 5 and 6,
 * the pool's bell (its walls_pool_fd eventfd) at 7. Reading the bell would
 * reset it under a loop that watches it; clearing its O_NONBLOCK would make
 * the host's reads of it block. Both are refused however the number is
 * dressed; other descriptors stay readable. */
#define BELL_FD 7L
#define IO_IN_FD 5L

static int g_read_bell(struct walls_call *c)
{
    (void)c;
    uint64_t one = 1, v;
    if (write((int)BELL_FD, &one, sizeof one) != (ssize_t)sizeof one)
        return FAIL_ERRNO;
    return syscall(SYS_read, BELL_FD | HIGH, &v, sizeof v) == (long)sizeof v ? 0 : FAIL_ERRNO;
}

static int g_readv_bell(struct walls_call *c)
{
    (void)c;
    uint64_t one = 1, v;
    if (write((int)BELL_FD, &one, sizeof one) != (ssize_t)sizeof one)
        return FAIL_ERRNO;
    struct iovec iov = {&v, sizeof v};
    return syscall(SYS_readv, BELL_FD | HIGH, &iov, 1L) == (long)sizeof v ? 0 : FAIL_ERRNO;
}

static int g_read_io(struct walls_call *c)
{
    (void)c;
    char b;
    return syscall(SYS_read, IO_IN_FD | HIGH, &b, 0L) == 0 ? 0 : FAIL_ERRNO;
}

static int g_read_io_out(struct walls_call *c)
{
    (void)c;
    char b;
    return syscall(SYS_read, (IO_IN_FD + 1) | HIGH, &b, 0L) == 0 ? 0 : FAIL_ERRNO;
}

static int g_setfl_io(struct walls_call *c)
{
    (void)c;
    return syscall(SYS_fcntl, IO_IN_FD | HIGH, (long)F_SETFL, (long)O_NONBLOCK) == 0 ? 0
                                                                                   : FAIL_ERRNO;
}

static int g_setfl_bell(struct walls_call *c)
{
    (void)c;
    /* O_NONBLOCK as it is: harmless where the call is allowed. */
    return syscall(SYS_fcntl, BELL_FD | HIGH, (long)F_SETFL, (long)O_NONBLOCK) == 0 ? 0
                                                                                  : FAIL_ERRNO;
}

START_TEST(test_int_arguments)
{
    static const struct {
        const char *what;
        walls_fn *fn;
        const char *refused; /* NULL: allowed despite the garbage */
    } cases[] = {
        {"futex FUTEX_WAKE", g_futex_wake, NULL},
        {"futex FUTEX_LOCK_PI", g_futex_pi, "futex"},
        {"tgkill itself", g_tgkill_self, NULL},
        {"tgkill the host", g_tgkill_host, "tgkill"},
        {"socket AF_INET", g_socket_inet, NULL},
        {"socket AF_UNIX", g_socket_unix, "socket"},
        {"fcntl F_GETFD", g_fcntl_getfd, NULL},
        {"fcntl F_SETOWN", g_fcntl_setown, "fcntl"},
        {"fcntl F_SETFL O_ASYNC", g_fcntl_async, "fcntl"},
        {"openat O_WRONLY", g_open_write, "openat"},
        {"mmap PROT_EXEC", g_mmap_exec, "mmap"},
        {"read the pool's bell", g_read_bell, "read"},
        {"readv the pool's bell", g_readv_bell, "readv"},
        {"read an I/O memfd", g_read_io, NULL},
        {"read the other I/O memfd", g_read_io_out, NULL},
        {"fcntl F_SETFL on an I/O memfd", g_setfl_io, NULL},
        {"fcntl F_SETFL on the pool's bell", g_setfl_bell, "fcntl"},
    };
    setup_target();
    make_victim_file();
    /* Without a sandbox every call succeeds: the kernel reads the low half,
     * so each refusal below is about the call the kernel would make. */
    walls_pool *plain;
    struct walls_pool_opts po = {.placement = WALLS_PROCESSES, .processes = 1};
    ck_assert_int_eq(walls_pool_create(&plain, &po), 0);
    /* Strict with both groups: every rule with arguments is in the filter. */
    static const char *const paths[] = {"/tmp", NULL};
    struct walls_pool_opts so = {.placement = WALLS_PROCESSES, .processes = 1,
                                 .sandbox = WALLS_SANDBOX_STRICT,
                                 .sandbox_allow = WALLS_ALLOW_NETWORK | WALLS_ALLOW_READ_FILES,
                                 .sandbox_read_paths = paths, .sandbox_fallback = 1};
    walls_pool *strict;
    int rc = walls_pool_create(&strict, &so);
    ck_assert_msg(rc == 0, "strict pool with groups: %s", walls_strerror(rc));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(plain, cases[i].fn, &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "%s without a sandbox: %s/%d", cases[i].what,
                      walls_status_name(r.status), r.code);
        walls_task_free(t);
        ck_assert_int_eq(walls_submit(strict, cases[i].fn, &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        if (cases[i].refused)
            ck_assert_msg(r.status == WALLS_VIOLATION &&
                              strcmp(walls_syscall_name(r.code), cases[i].refused) == 0,
                          "%s with garbage high bits: %s/%d (%s), expected a violation of %s",
                          cases[i].what, walls_status_name(r.status), r.code,
                          r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "",
                          cases[i].refused);
        else
            ck_assert_msg(r.status == WALLS_OK, "%s with garbage high bits: %s/%d (%s)",
                          cases[i].what, walls_status_name(r.status), r.code,
                          r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "");
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(strict, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(plain, 0), 0);
    teardown_target();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("int arguments");
    TCase *tc = tcase_create("strict");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_int_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-int-args", "strict", STRICT_LAYERS);
}
