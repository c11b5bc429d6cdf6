/*
 * test-modules.c - what a worker process runs and holds: functions of a
 * library dlopen()ed after the fork server and the workers started run in
 * the workers, and a worker holds no descriptor but the standard streams,
 * its mailbox and its doorbell. A library unloaded with dlclose() is no
 * longer where a function is found: its functions are refused, and
 * another library loaded in its place (at the same address, as the
 * loader likes to) runs its own code; a library replaced at its path and
 * loaded again is refused with -ESTALE by a pool whose workers loaded
 * the old one, and runs in a new pool. A library loaded before a
 * re-executed fork server started is in it, for sandboxed workers too.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "walls.h"

#ifndef PLUGIN_PATH
#error "PLUGIN_PATH must name the test plugin"
#endif
#ifndef PLUGIN_SHIFTED_PATH
#error "PLUGIN_SHIFTED_PATH must name the test plugin built with its functions moved"
#endif
#ifndef PLUGIN_THREAD_PATH
#error "PLUGIN_THREAD_PATH must name the test plugin with a thread"
#endif

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
    /* The standard streams, the mailbox, the doorbell, the two I/O
     * memfds and the pool's bell; nothing else. */
    for (size_t i = 0; i < n; i++) {
        int fd;
        memcpy(&fd, (const char *)r.out + i * sizeof fd, sizeof fd);
        ck_assert_msg(fd <= 7, "worker holds descriptor %d", fd);
    }
    ck_assert_uint_le(n, 8);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Copies from (a build of the test plugin) to path (a new file: a new
 * inode), through a temporary name and a rename, as a package manager
 * replaces a library. */
static void copy_build(const char *from, const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ck_assert(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    ck_assert_int_eq(n, 0);
    close(in);
    close(out);
    ck_assert_int_eq(rename(tmp, path), 0);
}

static void copy_plugin(const char *path)
{
    copy_build(PLUGIN_PATH, path);
}

/* Runs where (plugin_where) on pool: the path the worker runs it from, or
 * the submit's error. */
static int where_on(walls_pool *pool, walls_fn *where, char *path, size_t size)
{
    walls_task *t;
    int rc = walls_submit(pool, where, NULL, 0, &t);
    if (rc != 0)
        return rc;
    struct walls_result r;
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "plugin_where: %s %d", walls_status_name(r.status), r.code);
    ck_assert_uint_lt(r.out_len, size);
    memcpy(path, r.out, r.out_len);
    path[r.out_len] = '\0';
    walls_task_free(t);
    return 0;
}

static void *load(const char *path, walls_fn **where)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(lib != NULL, "dlopen %s: %s", path, dlerror());
    *where = (walls_fn *)(uintptr_t)dlsym(lib, "plugin_where");
    ck_assert_ptr_nonnull((void *)(uintptr_t)*where);
    return lib;
}

/* The directory of test_unloaded_libraries' copies, made and removed in
 * this (parent) process around the suite, so that a test that fails part
 * way leaves nothing in /tmp. */
static char dir[] = "/tmp/walls-modules.XXXXXX";
static bool dir_made;

static void dir_make(void)
{
    dir_made = mkdtemp(dir) != NULL;
}

static void dir_remove(void)
{
    if (!dir_made)
        return;
    char path[256];
    static const char *const names[] = {"one", "two", "three", "four"};
    for (unsigned i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s.so", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/loaded-by-a-worker", dir);
    unlink(path);
    rmdir(dir);
}

START_TEST(test_unloaded_libraries)
{
    ck_assert_msg(dir_made, "mkdtemp under /tmp failed");
    char one[256], two[256], got[512];
    snprintf(one, sizeof one, "%s/one.so", dir);
    snprintf(two, sizeof two, "%s/two.so", dir);
    copy_plugin(one);
    copy_plugin(two);
    walls_pool *pool = proc_pool(1);
    walls_fn *where1, *where2;

    void *lib = load(one, &where1);
    ck_assert_int_eq(where_on(pool, where1, got, sizeof got), 0);
    ck_assert_str_eq(got, one);
    ck_assert_int_eq(dlclose(lib), 0);
    /* Unloaded (nothing else holds it): its function is in no module. */
    ck_assert_ptr_null(dlopen(one, RTLD_NOW | RTLD_NOLOAD));
    ck_assert_int_eq(where_on(pool, where1, got, sizeof got), -ENOENT);

    /* Another library, often at the same address: its own code runs. */
    lib = load(two, &where2);
    ck_assert_int_eq(where_on(pool, where2, got, sizeof got), 0);
    ck_assert_str_eq(got, two);
    ck_assert_int_eq(dlclose(lib), 0);

    /* The first one replaced at its path and loaded again: the pool's
     * worker holds the old file under that name. */
    copy_plugin(one);
    lib = load(one, &where1);
    ck_assert_int_eq(where_on(pool, where1, got, sizeof got), -ESTALE);
    ck_assert_msg(strstr(walls_last_error(), "replaced"), "%s", walls_last_error());
    walls_pool *fresh = proc_pool(1);
    ck_assert_int_eq(where_on(fresh, where1, got, sizeof got), 0);
    ck_assert_str_eq(got, one);
    ck_assert_int_eq(walls_pool_destroy(fresh, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    dlclose(lib);
}
END_TEST

/* A library loaded before the fork server was forked, then unloaded,
 * replaced at its path by another build (its functions at other offsets)
 * and loaded again: the fork server, and so every worker forked from it,
 * still holds the old one under that path, and finds it there first. A
 * new pool refuses the new one's functions (-ESTALE) rather than run the
 * old file's bytes at the new one's offsets; before, the worker ran
 * whatever code of the old library lay there. */
START_TEST(test_replaced_under_a_forked_server)
{
    ck_assert_msg(dir_made, "mkdtemp under /tmp failed");
    char three[256], got[512];
    snprintf(three, sizeof three, "%s/three.so", dir);
    copy_plugin(three);
    walls_fn *where;
    void *lib = load(three, &where);
    ck_assert_int_eq(walls_init(), 0);
    ck_assert_int_eq(dlclose(lib), 0);
    ck_assert_ptr_null(dlopen(three, RTLD_NOW | RTLD_NOLOAD));
    copy_build(PLUGIN_SHIFTED_PATH, three);
    lib = load(three, &where);
    walls_pool *pool = proc_pool(1);
    ck_assert_int_eq(where_on(pool, where, got, sizeof got), -ESTALE);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    dlclose(lib);
    walls_fini();
}
END_TEST

/* A library replaced on disk after this process loaded it, before a
 * pool's workers load it by its path (the fork server started without
 * it): a worker would load the new file and run its code at the old one's
 * offsets. The worker compares the build-id of what it loaded with the
 * host's and refuses the task (WALLS_FAILED, -ESTALE); before, it ran the
 * new build's bytes at plugin_where's old offset. The build of the test
 * plugin that is still where the test loaded it runs as it should. */
START_TEST(test_replaced_after_loading)
{
    ck_assert_msg(dir_made, "mkdtemp under /tmp failed");
    char four[256], got[512];
    snprintf(four, sizeof four, "%s/four.so", dir);
    copy_plugin(four);
    /* The other build marks any process that loads it. */
    char mark[300];
    snprintf(mark, sizeof mark, "%s/loaded-by-a-worker", dir);
    setenv("WALLS_TEST_PLUGIN_MARK", mark, 1);
    ck_assert_int_eq(walls_init(), 0); /* the fork server, without four.so */
    walls_fn *where;
    void *lib = load(four, &where);
    copy_build(PLUGIN_SHIFTED_PATH, four);
    for (unsigned placement = 0; placement < 2; placement++) {
        struct walls_pool_opts opts = {.placement = placement ? WALLS_HYBRID : WALLS_PROCESSES,
                                       .processes = 1,
                                       .threads = placement ? 2 : 0};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &opts), 0);
        for (int round = 0; round < 2; round++) {
            walls_task *t;
            ck_assert_int_eq(walls_submit(pool, where, NULL, 0, &t), 0);
            struct walls_result r;
            ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
            ck_assert_msg(r.status == WALLS_FAILED && r.code == -ESTALE,
                          "placement %u: %s %d (%.*s)", placement, walls_status_name(r.status),
                          r.code, (int)r.out_len, r.out ? (const char *)r.out : "");
            walls_task_free(t);
        }
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    ck_assert_msg(access(mark, F_OK) != 0,
                  "a worker loaded the other build (its constructor ran) before refusing it");
    /* The file the program loaded, back at its path: it runs. */
    copy_plugin(four);
    walls_pool *pool = proc_pool(1);
    ck_assert_int_eq(where_on(pool, where, got, sizeof got), 0);
    ck_assert_str_eq(got, four);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    dlclose(lib);
    walls_fini();
}
END_TEST

static void *idle_thread(void *fd)
{
    char c;
    ssize_t n = read(*(int *)fd, &c, 1);
    (void)n;
    return NULL;
}

/* A library the program loaded before its first process pool, while it
 * already ran threads: the fork server is then the program re-executed,
 * which loads that library too before it serves, so a sandboxed worker
 * (which cannot open() it) runs its functions. Before, the re-executed
 * fork server had only the program's own libraries, and the call ended
 * as WALLS_VIOLATION (openat). */
START_TEST(test_loaded_before_a_reexecuted_server)
{
    unsigned layers = 0;
    char why[256];
    if (walls_sandbox_probe(&layers, why, sizeof why) < 0 || !(layers & WALLS_LAYER_SECCOMP)) {
        printf("skipped: no seccomp sandbox here (%s)\n", why);
        return;
    }
    int wake[2];
    ck_assert_int_eq(pipe(wake), 0);
    pthread_t other;
    ck_assert_int_eq(pthread_create(&other, NULL, idle_thread, &wake[0]), 0);
    void *lib = dlopen(PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(lib != NULL, "dlopen: %s", dlerror());
    walls_fn *triple = (walls_fn *)(uintptr_t)dlsym(lib, "plugin_triple");
    ck_assert_ptr_nonnull((void *)(uintptr_t)triple);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_SECCOMP};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    int v = 5;
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, triple, &v, sizeof v, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "ended %s, code %d (%s)", walls_status_name(r.status),
                  r.code, r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "");
    ck_assert_uint_eq(r.out_len, sizeof v);
    memcpy(&v, r.out, sizeof v);
    ck_assert_int_eq(v, 16);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(write(wake[1], "x", 1), 1);
    pthread_join(other, NULL);
    close(wake[0]);
    close(wake[1]);
}
END_TEST

/* A library whose constructor starts a thread that never ends, loaded
 * before the first process pool: the re-executed fork server loads it too,
 * so it forks its workers while that thread runs (and allocates). Each
 * worker holds the forking thread alone and must still allocate and run
 * the library's function; the fork server still goes away with the pool. */
START_TEST(test_library_with_a_thread_in_the_server)
{
    void *lib = dlopen(PLUGIN_THREAD_PATH, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(lib != NULL, "dlopen: %s", dlerror());
    walls_fn *triple = (walls_fn *)(uintptr_t)dlsym(lib, "plugin_thread_triple");
    ck_assert_ptr_nonnull((void *)(uintptr_t)triple);
    unsigned layers = 0;
    char why[256];
    bool seccomp = walls_sandbox_probe(&layers, why, sizeof why) == 0 &&
                   (layers & WALLS_LAYER_SECCOMP);
    /* One allocator arena for every thread of the fork server (read by
     * the C library when the re-executed fork server starts): its
     * workers are forked while the churning thread often holds that
     * arena's lock. Before, such a worker could wait for ever in its
     * first allocation (fork servers forked without taking it). Every
     * task in a new worker: 200 forks. */
    ck_assert_int_eq(setenv("MALLOC_ARENA_MAX", "1", 1), 0);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2,
                                .recycle_after = 1,
                                .sandbox = seccomp ? WALLS_SANDBOX_SECCOMP : WALLS_SANDBOX_NONE};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    for (int i = 0; i < 200; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, triple, &i, sizeof i, &t), 0);
        ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "task %d ended %s, code %d", i,
                      walls_status_name(r.status), r.code);
        int v;
        ck_assert_uint_eq(r.out_len, sizeof v);
        memcpy(&v, r.out, sizeof v);
        ck_assert_int_eq(v, 3 * i + 1);
        walls_task_free(t);
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_ge(st.recycled, 190);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(5000), 0);
    /* Not closed: its thread runs its code until this process ends. */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("modules");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, dir_make, dir_remove);
    tcase_add_test(tc, test_dlopen_after_start);
    tcase_add_test(tc, test_worker_descriptors);
    tcase_add_test(tc, test_unloaded_libraries);
    tcase_add_test(tc, test_replaced_under_a_forked_server);
    tcase_add_test(tc, test_replaced_after_loading);
    tcase_add_test(tc, test_loaded_before_a_reexecuted_server);
    tcase_add_test(tc, test_library_with_a_thread_in_the_server);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
