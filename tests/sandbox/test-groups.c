/*
 * test-groups.c - the strict sandbox's permission groups, which widen it on
 * purpose: reading files under given paths (Landlock; skipped, saying so,
 * when the kernel has no Landlock) and the network. Each widens only what
 * it names, and without the group the same calls are violations.
 *
 * The program skips (exit 77, saying why) when the kernel refuses a layer of
 * the strict sandbox.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attacks.h"
#include "helpers.h"
#include "probe.h"
#include "walls.h"

static int t_read_path(struct walls_call *c)
{
    char path[WALLS_INLINE_MAX + 1];
    memcpy(path, c->in, c->in_len);
    path[c->in_len] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    ssize_t n = read(fd, c->out, c->out_cap);
    close(fd);
    if (n < 0)
        return errno;
    c->out_len = (size_t)n;
    return 0;
}

static int t_write_path(struct walls_call *c)
{
    char path[WALLS_INLINE_MAX + 1];
    memcpy(path, c->in, c->in_len);
    path[c->in_len] = '\0';
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int t_list_path(struct walls_call *c)
{
    char path[WALLS_INLINE_MAX + 1];
    memcpy(path, c->in, c->in_len);
    path[c->in_len] = '\0';
    DIR *d = opendir(path);
    if (!d)
        return errno;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    memcpy(c->out, &n, sizeof n);
    c->out_len = sizeof n;
    return 0;
}

static void run_path(walls_pool *pool, walls_fn *fn, const char *path, struct walls_result *r,
                     walls_task **t)
{
    ck_assert_int_eq(walls_submit(pool, fn, path, strlen(path), t), 0);
    ck_assert_int_eq(walls_wait(*t, 30000, r), 0);
}

START_TEST(test_read_files_group)
{
    unsigned layers;
    ck_assert_int_gt(walls_sandbox_probe(&layers, NULL, 0), 0);
    if (!(layers & WALLS_LAYER_LANDLOCK)) {
        printf("sandbox-groups: skipping the read-files group: the kernel has no Landlock\n");
        return;
    }
    char dir[] = "/tmp/walls-ro-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0755), 0); /* readable by uid 65534 */
    char file[64], outside[64];
    snprintf(file, sizeof file, "%s/data", dir);
    snprintf(outside, sizeof outside, "%s-outside", dir);
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? outside : file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "payload", 7), 7);
        close(fd);
    }
    const char *paths[] = {dir, NULL};
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .sandbox_allow = WALLS_ALLOW_READ_FILES,
                                .sandbox_read_paths = paths};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[640];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_msg(strstr(line, "landlock") && strstr(line, "reading under 1 path"), "%s", line);
    struct walls_result r;
    walls_task *t;
    /* Inside: readable, and the directory can be listed. */
    run_path(pool, t_read_path, file, &r, &t);
    ck_assert_msg(r.status == WALLS_OK && r.out_len == 7 && memcmp(r.out, "payload", 7) == 0,
                  "read inside: %s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    run_path(pool, t_list_path, dir, &r, &t);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    /* Outside: Landlock refuses, the task sees EACCES and carries on. */
    run_path(pool, t_read_path, outside, &r, &t);
    ck_assert_msg(r.status == WALLS_FAILED && r.code == EACCES, "read outside: %s/%d",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    run_path(pool, t_read_path, "/etc/hostname", &r, &t);
    ck_assert_msg(r.status == WALLS_FAILED && r.code == EACCES, "read /etc: %s/%d",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    /* Writing, even inside, is no read-only open: the filter stops it. */
    run_path(pool, t_write_path, file, &r, &t);
    ck_assert_msg(r.status == WALLS_VIOLATION && strcmp(walls_syscall_name(r.code), "openat") == 0,
                  "write inside: %s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    /* The group widens only files: sockets stay refused. */
    ck_assert_int_eq(walls_submit(pool, a_udp_socket, &target, sizeof target, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* Without the group the same read is a violation. */
    o.sandbox_allow = 0;
    o.sandbox_read_paths = NULL;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    run_path(pool, t_read_path, file, &r, &t);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* A path that does not exist fails the pool with the worker's error. */
    const char *missing[] = {"/nonexistent/walls", NULL};
    o.sandbox_allow = WALLS_ALLOW_READ_FILES;
    o.sandbox_read_paths = missing;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -ENOENT);
    unlink(file);
    unlink(outside);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static int t_send_hello(struct walls_call *c)
{
    int port;
    memcpy(&port, c->in, sizeof port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = 0;
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0 || send(s, "hello", 5, 0) != 5)
        rc = errno ? errno : EIO;
    close(s);
    return rc;
}

START_TEST(test_network_group)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    int port = ntohs(sa.sin_port);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .sandbox_allow = WALLS_ALLOW_NETWORK};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[640];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_msg(strstr(line, "allows: network") && !strstr(line, "network ns"), "%s", line);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_send_hello, &port, sizeof port, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "connect: %s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    int conn = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(conn, 0);
    char buf[8] = {0};
    ck_assert_int_eq(recv(conn, buf, sizeof buf, 0), 5);
    ck_assert_str_eq(buf, "hello");
    close(conn);
    /* Still no UNIX sockets, files or processes. */
    walls_fn *still[] = {a_socketpair, a_open_read, a_fork};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(walls_submit(pool, still[i], &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_VIOLATION);
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* Without the group: a network namespace of its own, and no sockets. */
    o.sandbox_allow = 0;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    ck_assert_int_eq(walls_submit(pool, t_send_hello, &port, sizeof port, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    ck_assert_str_eq(walls_syscall_name(r.code), "socket");
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    close(l);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("groups");
    TCase *tc = tcase_create("strict");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_read_files_group);
    tcase_add_test(tc, test_network_group);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sandbox_main(suite, "sandbox-groups", "strict", STRICT_LAYERS);
}
