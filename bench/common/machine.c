/*
 * machine.c - what a benchmark says about the machine it ran on, read from
 * /proc and /sys: the CPU model, the memory, the load average (other work
 * on the machine skews every timing) and the transparent huge page mode
 * (it changes what a fork of a large process costs).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cpu_model(char *buf, size_t len)
{
    static const char *const keys[] = {"model name", "Model", "Hardware", "cpu model"};
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        for (size_t k = 0; colon && !found && k < sizeof keys / sizeof keys[0]; k++) {
            if (strncmp(line, keys[k], strlen(keys[k])) != 0)
                continue;
            colon++;
            colon += strspn(colon, " \t");
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, len, "%s", colon);
            found = true;
        }
    }
    fclose(f);
}

void thp_mode(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
    if (!f)
        return;
    char line[128];
    if (fgets(line, sizeof line, f)) {
        char *l = strchr(line, '['), *rb = l ? strchr(l, ']') : NULL;
        if (l && rb) {
            *rb = '\0';
            snprintf(buf, len, "%s", l + 1);
        }
    }
    fclose(f);
}

double load_average(void)
{
    FILE *f = fopen("/proc/loadavg", "re");
    if (!f)
        return -1;
    double l = -1;
    if (fscanf(f, "%lf", &l) != 1)
        l = -1;
    fclose(f);
    return l;
}

long meminfo_kib(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}
