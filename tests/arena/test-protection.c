/*
 * test-protection.c - what a task cannot do to the arena: write its inputs,
 * write past its own output onto another buffer, make an input writable
 * (refused under the sandboxes) or reopen the arena writable through /proc
 * (refused under SECCOMP and STRICT; as root it works under LIMITS, which
 * confines resources, not malice, and the test keeps that limit honest);
 * nor can a task of one pool write another pool's arena or shared region.
 *
 * Loop tests run once per placement (placements.h); a few cases make sense
 * in only some of them, and the test says so where it returns early.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "placements.h"
#include "walls.h"

static int t_write_input(struct walls_call *call)
{
    volatile unsigned char *p = (volatile unsigned char *)(uintptr_t)call->inputs[0].ptr;
    p[100] = 0xEE;
    return 0;
}

/* Writes at its output pointer plus the distance (in) from its output
 * buffer to another buffer: where that buffer would be. */
static int t_write_beside(struct walls_call *call)
{
    ptrdiff_t delta;
    memcpy(&delta, call->in, sizeof delta);
    volatile unsigned char *p = (volatile unsigned char *)call->output + delta;
    p[0] = 0xEE;
    p[4095] = 0xEE;
    return 0;
}

/* Tries to make its input writable; returns 0 or the errno. */
static int t_mprotect_input(struct walls_call *call)
{
    void *page = (void *)((uintptr_t)call->inputs[0].ptr & ~(uintptr_t)4095);
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE) != 0)
        return errno;
    return 0;
}

START_TEST(test_write_to_input)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    unsigned char *host = ptr_of(pool, in);
    memset(host, 0x11, 4096);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_write_input, NULL, 0, &opts);
    if (_i == P_THREADS) {
        /* Threads share the host's memory: nothing stops the write. */
        ck_assert_int_eq(res.status, WALLS_OK);
        ck_assert_uint_eq(host[100], 0xEE);
    } else {
        ck_assert_msg(res.status == WALLS_CRASHED && res.code == SIGSEGV, "%s: %s %d",
                      placement_names[_i], walls_status_name(res.status), res.code);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x11);
        /* The pool carries on. */
        res = run(pool, t_sum, NULL, 0, &opts);
        ck_assert_msg(res.status == WALLS_OK, "%s: the next task ended %s, code %d (%s)",
                      placement_names[_i], walls_status_name(res.status), res.code,
                      res.status == WALLS_VIOLATION ? walls_syscall_name(res.code) : "");
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* A task that writes past its own output, onto another buffer's place. */
START_TEST(test_write_beside_output)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf other, out;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &other), 0);
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &out), 0);
    unsigned char *host = ptr_of(pool, other);
    memset(host, 0x22, 4096);
    ptrdiff_t delta = (unsigned char *)ptr_of(pool, other) - (unsigned char *)ptr_of(pool, out);
    struct walls_task_opts opts = {.output = out};
    struct walls_result res = run(pool, t_write_beside, &delta, sizeof delta, &opts);
    if (_i == P_THREADS) {
        ck_assert_int_eq(res.status, WALLS_OK); /* no walls between threads */
        ck_assert_uint_eq(host[0], 0xEE);
    } else if (staged(_i)) {
        /* It wrote into its own staging copy; only its output came back. */
        ck_assert_int_eq(res.status, WALLS_OK);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x22);
    } else {
        ck_assert_int_eq(res.status, WALLS_CRASHED);
        ck_assert_int_eq(res.code, SIGSEGV);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x22);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Making an input writable: possible where the worker holds a writable
 * descriptor (the read-only mapping guards against mistakes), refused by
 * the kernel under the seccomp sandbox (it guards against malice). */
START_TEST(test_mprotect_input)
{
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_mprotect_input, NULL, 0, &opts);
    if (staged(_i)) {
        ck_assert_int_eq(res.status, WALLS_FAILED);
        ck_assert_int_eq(res.code, EACCES);
    } else {
        ck_assert_int_eq(res.status, WALLS_OK);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Reopening the arena writable through /proc: find it in /proc/self/maps,
 * open its /proc/self/map_files entry read-write (root may), map that
 * shared and writable, and change the input. 0 = it changed it. */
static int t_reopen_arena(struct walls_call *call)
{
    if (call->n_inputs != 1)
        return 90;
    uintptr_t at = (uintptr_t)call->inputs[0].ptr;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return errno ? errno : 91;
    char line[512];
    unsigned long lo = 0, hi = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, maps))
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= at && at < hi;
    fclose(maps);
    if (!found)
        return 92;
    char path[128];
    snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", lo, hi);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno;
    unsigned char *w = mmap(NULL, hi - lo, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (w == MAP_FAILED)
        return errno;
    w[at - lo] = 0xAB;
    munmap(w, hi - lo);
    return 0;
}

/* What each level promises: SECCOMP and STRICT refuse the open (the arena
 * cannot change but for a task's own output); LIMITS confines resources,
 * not malice (docs/arena.md): as root the reopen works, and the test keeps
 * that documented limit honest. */
START_TEST(test_reopen_arena_writable)
{
    if (_i == P_THREADS)
        return; /* threads write the host's memory directly */
    walls_pool *pool = arena_pool(_i, ARENA, 0);
    walls_buf in;
    ck_assert_int_eq(walls_arena_alloc(pool, 4096, &in), 0);
    unsigned char *host = ptr_of(pool, in);
    memset(host, 0x33, 4096);
    struct walls_task_opts opts = {.inputs = &in, .n_inputs = 1};
    struct walls_result res = run(pool, t_reopen_arena, NULL, 0, &opts);
    if (_i == P_SECCOMP || _i == P_STRICT) {
        ck_assert_msg(res.status == WALLS_VIOLATION &&
                          strcmp(walls_syscall_name(res.code), "openat") == 0,
                      "%s: %s %d", placement_names[_i], walls_status_name(res.status), res.code);
        for (int i = 0; i < 4096; i++)
            ck_assert_uint_eq(host[i], 0x33);
    } else if (geteuid() == 0) {
        ck_assert_msg(res.status == WALLS_OK && host[0] == 0xAB, "%s: %s %d",
                      placement_names[_i], walls_status_name(res.status), res.code);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Writes a '!' at each of the two host addresses it is given. */
static int t_poke_host(struct walls_call *call)
{
    char *at[2];
    memcpy(at, call->in, sizeof at);
    at[0][0] = '!';
    at[1][0] = '!';
    return 0;
}

/* Another pool's arena and shared region, mapped by the host before the
 * first worker process existed: a task of a pool that names none of it
 * writes at their host addresses, and changes nothing. Before, the fork
 * server (forked from the host after the first pool mapped them) held the
 * host's read-write mappings, and so did every worker forked from it, at
 * every sandbox level. */
START_TEST(test_other_pool_memory)
{
    if (_i == P_THREADS) {
        printf("threads share the program's memory: nothing to test\n");
        return;
    }
    struct walls_pool_opts oa = {.placement = WALLS_PROCESSES, .processes = 1,
                                 .arena_size = 1u << 20, .shared_size = 4096};
    walls_pool *a;
    ck_assert_int_eq(walls_pool_create(&a, &oa), 0);
    walls_pool *b = placement_pool(_i, (struct walls_pool_opts){0});
    walls_buf buf;
    ck_assert_int_eq(walls_arena_alloc(a, 4096, &buf), 0);
    char *at[2] = {ptr_of(a, buf), NULL};
    size_t size;
    ck_assert_int_eq(walls_pool_shared(a, (void **)&at[1], &size), 0);
    strcpy(at[0], "arena");
    strcpy(at[1], "shared");
    struct walls_result r = run(b, t_poke_host, at, sizeof at, NULL);
    ck_assert_msg(strcmp(at[0], "arena") == 0 && strcmp(at[1], "shared") == 0,
                  "%s: a task of another pool wrote \"%s\" and \"%s\" (it ended %s)",
                  placement_names[_i], at[0], at[1], walls_status_name(r.status));
    ck_assert_int_eq(walls_pool_destroy(b, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(a, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("arena protection");
    TCase *tc = tcase_create("placements");
    tcase_add_loop_test(tc, test_write_to_input, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_mprotect_input, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_reopen_arena_writable, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_write_beside_output, 0, NPLACEMENTS);
    tcase_add_loop_test(tc, test_other_pool_memory, 0, NPLACEMENTS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
