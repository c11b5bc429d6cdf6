/*
 * bench.c - `walls-tabs bench`: the figures of docs/benchmarks.md, measured
 * the same way for tabs as walls processes and as threads of one process
 * (the shared kitchen), side by side in one run:
 *   - the time to open N tabs (script loaded, first event done);
 *   - memory per idle tab (PSS of the tab processes, or the growth of this
 *     process's PSS in threads mode);
 *   - the broker-to-tab message round trip (post, the tab answers, the
 *     broker has the answer), through the same loop `run` uses;
 *   - the throughput of a CPU-bound script on one tab per usable CPU.
 * The scripts are written to a temporary directory and removed after.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tabs.h"

static const char ECHO_LUA[] = "tab.on_message(function(from, msg) tab.post(from, msg) end)\n";
static const char WORK_LUA[] =
    "tab.on_message(function(from, n)\n"
    "  local s = 0\n"
    "  for i = 1, n do s = s + i % 7 end\n"
    "  tab.post(from, s)\n"
    "end)\n";

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* PSS of one process in KiB, from smaps_rollup; -1 if unreadable. */
static long pss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Sums the PSS of this process's descendants named walls-worker. */
static long workers_pss_kib(unsigned *count)
{
    enum { MAXP = 65536 };
    static pid_t pids[MAXP], ppids[MAXP];
    static char comms[MAXP][16];
    size_t n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < MAXP) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close)
            continue;
        pids[n] = atoi(buf);
        size_t len = (size_t)(close - open - 1);
        if (len > 15)
            len = 15;
        memcpy(comms[n], open + 1, len);
        comms[n][len] = '\0';
        ppids[n] = atoi(close + 4);
        n++;
    }
    if (d)
        closedir(d);
    /* Descendants of this process: repeat until nothing new joins. */
    static unsigned char mine[MAXP];
    memset(mine, 0, n);
    int grew = 1;
    while (grew) {
        grew = 0;
        for (size_t i = 0; i < n; i++) {
            if (mine[i])
                continue;
            int parent_mine = ppids[i] == getpid();
            for (size_t k = 0; !parent_mine && k < n; k++)
                parent_mine = mine[k] && pids[k] == ppids[i];
            if (parent_mine)
                mine[i] = grew = 1;
        }
    }
    long sum = 0;
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (mine[i] && strcmp(comms[i], "walls-worker") == 0) {
            long k = pss_kib(pids[i]);
            if (k > 0) {
                sum += k;
                (*count)++;
            }
        }
    return sum;
}

struct replies {
    size_t got;
};

static void on_reply(void *arg, size_t from, const uint8_t *value, size_t len)
{
    (void)from;
    (void)value;
    (void)len;
    ((struct replies *)arg)->got++;
}

static int write_script(const char *dir, const char *name, const char *text, char *path,
                        size_t cap)
{
    snprintf(path, cap, "%s/%s.lua", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) == EOF) {
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

/* Writes n copies of a script as PREFIX0.lua... and runs them as tabs
 * until every one has loaded. */
static int open_tabs(struct broker *b, const char *dir, const char *prefix, const char *text,
                     unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char name[32], path[512];
        snprintf(name, sizeof name, "%s%u", prefix, i);
        if (write_script(dir, name, text, path, sizeof path) || broker_add(b, path, NULL) < 0)
            return -1;
    }
    while (!broker_idle(b))
        broker_turn(b, 1000);
    return 0;
}

struct figures {
    double open_ms;
    long pss_kib_per_tab;
    unsigned processes;
    double rtt_p50_us, rtt_p99_us;
    double work_per_s;
    int failed;
};

static void encode_int(uint8_t *buf, int64_t v)
{
    struct wbuf w = {buf, 0, 9, 0};
    wbuf_u8(&w, 'I');
    wbuf_u64(&w, (uint64_t)v);
}

static int measure(int threads, const char *dir, unsigned ntabs, unsigned samples,
                   struct figures *fig)
{
    memset(fig, 0, sizeof *fig);
    struct broker_opts opts = {.threads = threads, .timeout_ms = 10000,
                               .memory = (size_t)64 << 20, .quiet = 1};
    struct broker *b;
    if (broker_create(&b, &opts))
        return -1;
    struct replies rep = {0};
    broker_on_message(b, on_reply, &rep);
    long self_before = pss_kib(getpid());

    /* Open: every tab loaded and its first event done. */
    int64_t t0 = now_ns();
    if (open_tabs(b, dir, "echo", ECHO_LUA, ntabs)) {
        broker_destroy(b);
        return -1;
    }
    fig->open_ms = (double)(now_ns() - t0) / 1e6;
    for (size_t i = 0; i < broker_count(b); i++) {
        struct tab_info in;
        broker_info(b, i, &in);
        if (in.outcome != OUT_OK) {
            fprintf(stderr, "walls-tabs bench: tab %s: %s %s\n", in.name,
                    tab_outcome_name(in.outcome), in.detail);
            fig->failed = 1;
        }
    }

    /* Memory per idle tab. */
    if (threads) {
        long self_after = pss_kib(getpid());
        fig->pss_kib_per_tab = (self_after - self_before) / (long)ntabs;
        fig->processes = 0;
    } else {
        long sum = workers_pss_kib(&fig->processes);
        fig->pss_kib_per_tab = fig->processes ? sum / (long)fig->processes : -1;
    }

    /* Round trip to tab 0 and back, one at a time. */
    int64_t *rtt = malloc(samples * sizeof *rtt);
    uint8_t value[9];
    encode_int(value, 1);
    for (unsigned i = 0; rtt && i < samples + samples / 10; i++) {
        size_t want = rep.got + 1;
        int64_t a = now_ns();
        broker_post(b, 0, value, sizeof value);
        while (rep.got < want)
            broker_turn(b, 1000);
        if (i >= samples / 10)
            rtt[i - samples / 10] = now_ns() - a;
    }
    if (rtt) {
        qsort(rtt, samples, sizeof *rtt, cmp_i64);
        fig->rtt_p50_us = (double)rtt[samples / 2] / 1e3;
        fig->rtt_p99_us = (double)rtt[samples * 99 / 100] / 1e3;
        free(rtt);
    }
    broker_destroy(b);

    /* CPU-bound: one worker tab per usable CPU, each given the same jobs. */
    if (broker_create(&b, &opts))
        return -1;
    rep.got = 0;
    broker_on_message(b, on_reply, &rep);
    unsigned cpus = (unsigned)walls_cpu_count();
    if (open_tabs(b, dir, "work", WORK_LUA, cpus)) {
        broker_destroy(b);
        return -1;
    }
    unsigned jobs = samples / 50 ? samples / 50 : 1;
    encode_int(value, 2000000);
    int64_t t1 = now_ns();
    for (unsigned j = 0; j < jobs; j++)
        for (unsigned i = 0; i < cpus; i++)
            broker_post(b, i, value, sizeof value);
    while (rep.got < (size_t)jobs * cpus && !broker_idle(b))
        broker_turn(b, 1000);
    fig->work_per_s = (double)rep.got / ((double)(now_ns() - t1) / 1e9);
    if (rep.got < (size_t)jobs * cpus) {
        fig->failed = 1;
        for (size_t i = 0; i < broker_count(b); i++) {
            struct tab_info in;
            broker_info(b, i, &in);
            fprintf(stderr, "walls-tabs bench: tab %s: %s %s\n", in.name,
                    tab_outcome_name(in.outcome), in.detail);
        }
    }
    broker_destroy(b);
    return 0;
}

int bench_main(int argc, char **argv)
{
    unsigned ntabs = 100, samples = 2000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tabs") == 0 && i + 1 < argc) {
            long v = atol(argv[++i]);
            if (v < 1 || v > 1000) {
                fprintf(stderr, "walls-tabs bench: --tabs needs a number from 1 to 1000\n");
                return 2;
            }
            ntabs = (unsigned)v;
        } else if (strcmp(argv[i], "--quick") == 0) {
            samples = 200;
        } else {
            fprintf(stderr, "walls-tabs bench: unknown option \"%s\"\n", argv[i]);
            fprintf(stderr, "usage: walls-tabs bench [--tabs N] [--quick]\n");
            return 2;
        }
    }
    char dir[] = "/tmp/walls-tabs-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("walls-tabs bench: mkdtemp");
        return 1;
    }
    struct figures proc, thr;
    int rc = measure(0, dir, ntabs, samples, &proc);
    if (rc == 0)
        rc = measure(1, dir, ntabs, samples, &thr);
    /* The scripts go; the directory held nothing else. */
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[600];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    if (rc) {
        fprintf(stderr, "walls-tabs bench: could not set the tabs up\n");
        return 1;
    }
    printf("walls-tabs bench: %u tabs, %u round trips, %d CPUs\n", ntabs, samples,
           walls_cpu_count());
    printf("%-34s %16s %16s   %s\n", "", "walls processes", "threads", "target (processes)");
    printf("%-34s %13.1f ms %13.1f ms   <= 1000 ms: %s\n", "open the tabs", proc.open_ms,
           thr.open_ms, proc.open_ms <= 1000 ? "met" : "missed");
    printf("%-34s %12ld KiB %12ld KiB   <= 2048 KiB: %s\n", "memory per idle tab (PSS)",
           proc.pss_kib_per_tab, thr.pss_kib_per_tab,
           proc.pss_kib_per_tab >= 0 && proc.pss_kib_per_tab <= 2048 ? "met" : "missed");
    printf("%-34s %13.1f us %13.1f us   <= 20 us: %s\n", "message round trip, median",
           proc.rtt_p50_us, thr.rtt_p50_us, proc.rtt_p50_us <= 20 ? "met" : "missed");
    printf("%-34s %13.1f us %13.1f us\n", "message round trip, p99", proc.rtt_p99_us,
           thr.rtt_p99_us);
    printf("%-34s %14.1f/s %14.1f/s   (%.2fx of threads)\n", "CPU-bound jobs (2M steps each)",
           proc.work_per_s, thr.work_per_s, thr.work_per_s > 0 ? proc.work_per_s / thr.work_per_s : 0);
    printf("tab processes measured: %u\n", proc.processes);
    return proc.failed || thr.failed ? 1 : 0;
}
