/*
 * test-sizing.c - what AUTO chooses and why: the placement and worker
 * counts for each combination of needs and workload, walls_pool_explain's
 * account of them, untrusted work under the strict sandbox or not at all;
 * the usable CPU count (affinity) and the cgroup v1 and v2 quotas it obeys,
 * read from a fake cgroup tree.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "sizing.h"
#include "walls.h"

START_TEST(test_defaults_and_auto)
{
    /* The seed's rules, for each combination of needs and workload. */
    static const struct {
        unsigned needs;
        enum walls_workload workload;
        enum walls_placement placement;
        unsigned procs_per_cpu, threads_per_cpu, threads_per_proc;
        const char *why;
    } cases[] = {
        {0, WALLS_CPU_BOUND, WALLS_THREADS, 0, 1, 0, "no isolation"},
        {0, WALLS_IO_BOUND, WALLS_THREADS, 0, 4, 0, "no isolation"},
        {WALLS_NEED_CRASH_ISOLATION, WALLS_CPU_BOUND, WALLS_PROCESSES, 1, 0, 0, "isolation"},
        {WALLS_NEED_CRASH_ISOLATION, WALLS_IO_BOUND, WALLS_HYBRID, 1, 0, 4, "isolation"},
    };
    unsigned cpus = (unsigned)walls_cpu_count();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct walls_pool_opts o = {.needs = cases[i].needs, .workload = cases[i].workload};
        walls_pool *pool;
        struct walls_stats st;
        char line[400];
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
        ck_assert_int_eq(st.placement, cases[i].placement);
        ck_assert_uint_eq(st.processes, cases[i].procs_per_cpu * cpus);
        if (cases[i].placement == WALLS_THREADS)
            ck_assert_uint_eq(st.threads, cases[i].threads_per_cpu * cpus);
        else if (cases[i].placement == WALLS_HYBRID)
            ck_assert_uint_eq(st.threads, cases[i].threads_per_proc);
        ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
        ck_assert_msg(strstr(line, "AUTO") && strstr(line, cases[i].why) &&
                          strstr(line, "usable CPUs from"),
                      "explain: %s", line);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
    /* Untrusted work: processes under the strict sandbox, or nothing. */
    struct walls_pool_opts o = {.needs = WALLS_NEED_UNTRUSTED};
    walls_pool *pool = NULL;
    unsigned layers = 0;
    ck_assert_int_gt(walls_sandbox_probe(&layers, NULL, 0), 0);
    unsigned strict = WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_USER_NS |
                      WALLS_LAYER_NET_NS | WALLS_LAYER_IPC_NS | WALLS_LAYER_MOUNT_NS |
                      WALLS_LAYER_UTS_NS | WALLS_LAYER_NO_ROOT;
    char line[640];
    if ((layers & strict) == strict) {
        struct walls_stats st;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
        ck_assert_int_eq(st.placement, WALLS_PROCESSES);
        ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
        ck_assert_msg(strstr(line, "sandbox: strict (") && strstr(line, "seccomp"), "%s", line);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
        pool = NULL;
    } else {
        ck_assert_int_eq(walls_pool_create(&pool, &o), -ENOTSUP);
    }
    ck_assert_int_eq(walls_pool_create(&pool, NULL), 0);
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, "threads"));
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_cpu_count)
{
    int n = walls_cpu_count();
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, (int)sysconf(_SC_NPROCESSORS_ONLN));
    char src[64];
    ck_assert_int_eq(walls_cpu_source(src, sizeof src), n);
    ck_assert_int_gt((int)strlen(src), 0);
    ck_assert_int_eq(walls_cpu_source(NULL, 4), -EINVAL);
    /* Pinned to one CPU: the count follows the affinity mask. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    ck_assert_int_eq(walls_cpu_count(), 1);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_cgroup_quota)
{
    char root[] = "/tmp/walls-cg-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char path[512], self[512];
    const char *source = NULL;
    /* v2: 150000/100000 at the leaf, 300000/100000 above: 2 CPUs. */
    snprintf(path, sizeof path, "%s/a", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/a/b", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/a/b/cpu.max", root);
    write_file(path, "150000 100000\n");
    snprintf(path, sizeof path, "%s/a/cpu.max", root);
    write_file(path, "300000 100000\n");
    snprintf(self, sizeof self, "%s/self", root);
    write_file(self, "0::/a/b\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 2);
    ck_assert_str_eq(source, "cgroup v2 cpu.max quota");
    /* The tighter parent wins. */
    snprintf(path, sizeof path, "%s/a/cpu.max", root);
    write_file(path, "50000 100000\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 1);
    /* No limit. */
    snprintf(path, sizeof path, "%s/a/b/cpu.max", root);
    write_file(path, "max 100000\n");
    snprintf(path, sizeof path, "%s/a/cpu.max", root);
    write_file(path, "max 100000\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 0);
    /* v1: 250000/100000 rounds up to 3. */
    snprintf(path, sizeof path, "%s/cpu,cpuacct", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_quota_us", root);
    write_file(path, "250000\n");
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_period_us", root);
    write_file(path, "100000\n");
    write_file(self, "4:cpu,cpuacct:/job\n3:memory:/job\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 3);
    ck_assert_str_eq(source, "cgroup v1 cpu.cfs_quota_us");
    /* v1 without a quota (-1). */
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_quota_us", root);
    write_file(path, "-1\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 0);
    /* v1, nested: no quota at the leaf, 1.5 CPUs on its parent: 2. */
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/step", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/step/cpu.cfs_quota_us", root);
    write_file(path, "-1\n");
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/step/cpu.cfs_period_us", root);
    write_file(path, "100000\n");
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_quota_us", root);
    write_file(path, "150000\n");
    write_file(self, "4:cpu,cpuacct:/job/step\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 2);
    ck_assert_str_eq(source, "cgroup v1 cpu.cfs_quota_us");
    /* ... and the mount's root (a container's own cgroup) counts too. */
    snprintf(path, sizeof path, "%s/cpu,cpuacct/job/cpu.cfs_quota_us", root);
    write_file(path, "-1\n");
    snprintf(path, sizeof path, "%s/cpu,cpuacct/cpu.cfs_quota_us", root);
    write_file(path, "100000\n");
    snprintf(path, sizeof path, "%s/cpu,cpuacct/cpu.cfs_period_us", root);
    write_file(path, "100000\n");
    ck_assert_int_eq(walls__cgroup_cpus(self, root, &source), 1);
    /* Missing file: no limit. */
    ck_assert_int_eq(walls__cgroup_cpus("/nonexistent/cgroup", root, &source), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sizing");
    TCase *tc = tcase_create("sizing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_defaults_and_auto);
    tcase_add_test(tc, test_cpu_count);
    tcase_add_test(tc, test_cgroup_quota);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
