/*
 * sizing.c - how many CPUs this program may really use.
 *
 * The affinity mask says which CPUs the scheduler will run us on; a cgroup
 * CPU quota can allow less time than that (a container given "1.5 CPUs" on
 * a 64-core host). The usable count is the smaller of the two, the quota
 * rounded up. The quota is the tightest along the cgroup's ancestry:
 * cgroup v2 cpu.max, or v1 cpu.cfs_quota_us up to the mount's root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sizing.h"

static int affinity_count(void)
{
    for (int ncpu = 1024; ncpu <= 1 << 20; ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set)
            return 1;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        if (sched_getaffinity(0, size, set) == 0) {
            int n = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return n > 0 ? n : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            return 1;
    }
    return 1;
}

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char *ok = fgets(buf, (int)len, f);
    fclose(f);
    return ok ? 0 : -1;
}

/* CPUs allowed by a v2 cpu.max along dir and its ancestors; 0 = no limit. */
static int v2_limit(const char *root, const char *dir)
{
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s", dir);
    int best = 0;
    for (;;) {
        char path[PATH_MAX * 2], line[128];
        snprintf(path, sizeof path, "%s%s/cpu.max", root, strcmp(rel, "/") == 0 ? "" : rel);
        if (read_line(path, line, sizeof line) == 0) {
            long long quota, period;
            if (sscanf(line, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0) {
                int cpus = (int)((quota + period - 1) / period);
                if (best == 0 || cpus < best)
                    best = cpus;
            }
        }
        char *slash = strrchr(rel, '/');
        if (!slash || slash == rel)
            break;
        *slash = '\0';
    }
    return best;
}

/* A v1 quota at one cgroup of a mount: CPUs, 0 for none, -1 unreadable. */
static int v1_level(const char *root, const char *mount, const char *rel)
{
    char path[PATH_MAX * 2], line[128];
    long long quota, period;
    const char *at = strcmp(rel, "/") == 0 ? "" : rel;
    snprintf(path, sizeof path, "%s/%s%s/cpu.cfs_quota_us", root, mount, at);
    if (read_line(path, line, sizeof line) != 0 || sscanf(line, "%lld", &quota) != 1)
        return -1;
    snprintf(path, sizeof path, "%s/%s%s/cpu.cfs_period_us", root, mount, at);
    if (read_line(path, line, sizeof line) != 0 || sscanf(line, "%lld", &period) != 1)
        return -1;
    return quota > 0 && period > 0 ? (int)((quota + period - 1) / period) : 0;
}

/* CPUs allowed by v1 quotas along dir and its ancestors, up to the mount's
 * root (in a container that root is often the container's own cgroup);
 * 0 = no limit. */
static int v1_limit(const char *root, const char *dir)
{
    static const char *const mounts[] = {"cpu,cpuacct", "cpu", "cpuacct,cpu"};
    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s", dir);
        int best = 0;
        bool found = false;
        for (;;) {
            int n = v1_level(root, mounts[i], rel);
            found |= n >= 0;
            if (n > 0 && (best == 0 || n < best))
                best = n;
            if (strcmp(rel, "/") == 0 || rel[0] == '\0')
                break;
            char *slash = strrchr(rel, '/');
            if (!slash)
                break;
            if (slash == rel)
                slash[1] = '\0'; /* the mount's root next */
            else
                *slash = '\0';
        }
        if (found)
            return best;
    }
    return 0;
}

int walls__cgroup_cpus(const char *self_cgroup, const char *root, const char **source)
{
    FILE *f = fopen(self_cgroup, "re");
    if (!f)
        return 0;
    char line[PATH_MAX + 64];
    int limit = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *controllers = c1 + 1, *dir = c2 + 1;
        if (strcmp(line, "0") == 0 && controllers[0] == '\0') {
            int n = v2_limit(root, dir);
            if (n > 0 && (limit == 0 || n < limit)) {
                limit = n;
                *source = "cgroup v2 cpu.max quota";
            }
        } else {
            char copy[256];
            snprintf(copy, sizeof copy, ",%s,", controllers);
            if (strstr(copy, ",cpu,")) {
                int n = v1_limit(root, dir);
                if (n > 0 && (limit == 0 || n < limit)) {
                    limit = n;
                    *source = "cgroup v1 cpu.cfs_quota_us";
                }
            }
        }
    }
    fclose(f);
    return limit;
}

int walls__cpu_count_source(const char **source)
{
    int n = affinity_count();
    const char *why = "affinity mask";
    const char *quota_source = NULL;
    int quota = walls__cgroup_cpus("/proc/self/cgroup", "/sys/fs/cgroup", &quota_source);
    if (quota > 0 && quota < n) {
        n = quota;
        why = quota_source;
    }
    if (source)
        *source = why;
    return n;
}

int walls_cpu_count(void)
{
    return walls__cpu_count_source(NULL);
}

int walls_cpu_source(char *buf, size_t len)
{
    if (!buf || len == 0)
        return walls__fail(-EINVAL, "walls_cpu_source: %s", !buf ? "buf is NULL" : "len is 0");
    const char *source = NULL;
    int n = walls__cpu_count_source(&source);
    snprintf(buf, len, "%s", source);
    return n;
}
