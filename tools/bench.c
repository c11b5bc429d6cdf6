/*
 * bench.c - `walls bench`: measure the seed's threads-versus-processes
 * claims on this machine and give each claim a verdict.
 *
 * Every row keeps all its samples and reduces them to a median with min and
 * max; its verdict is computed from those figures. The only constants here
 * are the seed's own claims (quoted as the seed's) and the sizes of the
 * experiments. A row's results go into one struct row, and the text table,
 * the JSON and the HTML report are all rendered from those structs, so the
 * three can never disagree.
 *
 * The bench forks on its own (fork timings, ping-pong partners, a throwaway
 * host for the thread crash, pipe-fed workers) only while no pool of its
 * own is alive, so those children are forks of a program without worker
 * threads. Core dumps are switched off for the bench and everything it
 * starts: crashes here are on purpose.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "walls.h"

extern char **environ;

#define NROWS 8
#define MIB (1024u * 1024u)
#define MAX_FIGS 24
#define MAX_LINES 20
#define LINE_LEN 96
#define MAX_POINTS 8

/* Table columns; with the four separating spaces they make 99 columns. */
#define COL_ID 2
#define COL_CLAIM 13
#define COL_SEED 17
#define COL_MEAS 40
#define COL_VERDICT 23
#define WRAP_MAX 24

enum verdict { V_NOT_RUN, V_HOLDS, V_FAILS, V_UNTESTED, V_ERROR };

struct summary {
    double med, min, max;
    int n;
};

/* One figure of a row: a measured number (with unit) or a measured text. */
struct figure {
    char name[40];  /* JSON key, e.g. "fork_small" */
    char label[48]; /* human label, e.g. "fork+_exit+waitpid" */
    char unit[8];   /* "ns", "x", "tasks", "bytes", "B/s" */
    bool numeric;
    struct summary s;
    char text[128];
};

struct row {
    int id;
    const char *title;
    const char *seed;
    bool selected;
    enum verdict verdict;
    char reason[160];
    struct figure figs[MAX_FIGS];
    int nfigs;
    char lines[MAX_LINES][LINE_LEN]; /* the table's "measured here" cell */
    int nlines;
    double seconds;
};

/* One point of a scaling curve (rows 6 and 7). */
struct point {
    unsigned threads;
    struct summary s;
    double speedup;
    double runs[16]; /* the samples in the order taken (plain pthreads only) */
    int nruns;
};

struct bench {
    bool full, json;
    const char *html;
    int cores;
    char cpu_source[96];
    int init_rc;
    double spin_per_ms; /* spin() iterations per millisecond */
    double load_start, load_end; /* 1-minute load average before and after */
    /* Rows 6 and 7: walls pools, and plain pthreads on the same load. */
    struct point cpu[MAX_POINTS], io[MAX_POINTS], cpu_raw[MAX_POINTS], io_raw[MAX_POINTS];
    int ncpu, nio, ncpu_raw, nio_raw;
    /* Row 3's outcomes, for the HTML chart. */
    bool crash_thr_ran, crash_thr_host_died, crash_proc_ran;
    double crash_thr_done, crash_proc_ok, crash_proc_crashed, crash_proc_other;
    struct row rows[NROWS];
};

/* ---- time, statistics, formatting ---- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int reps(const struct bench *b, int quick, int full)
{
    return b->full ? full : quick;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static struct summary summarize(double *v, int n)
{
    struct summary s = {0, 0, 0, n};
    if (n <= 0)
        return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

static void fmt_3(char *buf, size_t len, double v)
{
    if (v < 9.995)
        snprintf(buf, len, "%.2f", v);
    else if (v < 99.95)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.0f", v);
}

static const char *time_unit(double ns, double *div)
{
    if (ns < 1e3) {
        *div = 1;
        return "ns";
    }
    if (ns < 1e6) {
        *div = 1e3;
        return "us";
    }
    if (ns < 1e9) {
        *div = 1e6;
        return "ms";
    }
    *div = 1e9;
    return "s";
}

static void fmt_time(char *buf, size_t len, double ns)
{
    double div;
    const char *unit = time_unit(ns, &div);
    char num[32];
    fmt_3(num, sizeof num, ns / div);
    snprintf(buf, len, "%s %s", num, unit);
}

/* "21.4 us (18.9-40.2)": min and max in the median's unit. */
static void fmt_summary(char *buf, size_t len, struct summary s)
{
    double div;
    const char *unit = time_unit(s.med, &div);
    char med[32], lo[32], hi[32];
    fmt_3(med, sizeof med, s.med / div);
    fmt_3(lo, sizeof lo, s.min / div);
    fmt_3(hi, sizeof hi, s.max / div);
    if (s.n <= 1)
        snprintf(buf, len, "%s %s", med, unit);
    else
        snprintf(buf, len, "%s %s (%s-%s)", med, unit, lo, hi);
}

static const char *errno_name(int err)
{
    switch (err < 0 ? -err : err) {
    case ENOTSUP: return "ENOTSUP";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case ECHILD: return "ECHILD";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "error";
    }
}

/* ---- building a row ---- */

static void row_line(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row_line(struct row *r, const char *fmt, ...)
{
    if (r->nlines >= MAX_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->lines[r->nlines++], LINE_LEN, fmt, ap);
    va_end(ap);
}

static struct figure *row_fig(struct row *r, const char *name, const char *label,
                              const char *unit)
{
    if (r->nfigs >= MAX_FIGS)
        return NULL;
    struct figure *f = &r->figs[r->nfigs++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->label, sizeof f->label, "%s", label);
    snprintf(f->unit, sizeof f->unit, "%s", unit);
    return f;
}

/* A timing: a figure in ns and a "label: median (min-max)" line. */
static void row_time(struct row *r, const char *name, const char *label, struct summary s)
{
    struct figure *f = row_fig(r, name, label, "ns");
    if (f) {
        f->numeric = true;
        f->s = s;
    }
    char buf[128];
    fmt_summary(buf, sizeof buf, s);
    row_line(r, "%s: %s", label, buf);
}

/* A plain number (no table line of its own). */
static void row_value(struct row *r, const char *name, const char *label, const char *unit,
                      struct summary s)
{
    struct figure *f = row_fig(r, name, label, unit);
    if (f) {
        f->numeric = true;
        f->s = s;
    }
}

static struct summary one_value(double v)
{
    struct summary s = {v, v, v, 1};
    return s;
}

/* A measured text: a figure and a "label: text" line. */
static void row_text(struct row *r, const char *name, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void row_text(struct row *r, const char *name, const char *label, const char *fmt, ...)
{
    struct figure *f = row_fig(r, name, label, "");
    char text[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (f)
        snprintf(f->text, sizeof f->text, "%s", text);
    row_line(r, "%s: %s", label, text);
}

static void row_verdict(struct row *r, enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_verdict(struct row *r, enum verdict v, const char *fmt, ...)
{
    r->verdict = v;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

/* ---- work that tasks do ---- */

/* Read at run time so the compiler cannot see the fault coming. */
static volatile uintptr_t fault_address = 8;
static volatile uint64_t spin_sink;

/* Pure computation: a xorshift chain the compiler cannot shorten. */
static uint64_t spin(uint64_t n)
{
    uint64_t x = 88172645463325252ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t sum_words(const uint64_t *p, size_t bytes)
{
    uint64_t s = 0;
    for (size_t i = 0; i < bytes / sizeof *p; i++)
        s += p[i];
    return s;
}

static void crash_now(void)
{
    volatile int *p = (volatile int *)fault_address;
    *p = 1;
    raise(SIGSEGV);
}

static void counter_add(uint64_t addr)
{
    if (addr)
        __atomic_add_fetch((uint32_t *)(uintptr_t)addr, 1, __ATOMIC_RELAXED);
}

enum task_kind { T_EMPTY, T_SPIN, T_SLEEP, T_CRASH, T_SUM, T_PROBE };

struct task_in {
    uint32_t kind;
    uint32_t reserved;
    uint64_t amount;  /* spin iterations, sleep ns, or bytes to sum */
    uint64_t addr;    /* T_SUM: the buffer (thread placement only) */
    uint64_t counter; /* if set: a uint32_t bumped when the task ends (threads only) */
};

struct probe_out {
    int64_t read_bytes; /* -1 if open failed */
    int32_t open_err;
    int32_t socket_err; /* 0 = got a socket */
};

static void probe(struct probe_out *po)
{
    memset(po, 0, sizeof *po);
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        po->read_bytes = -1;
        po->open_err = errno;
    } else {
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            po->read_bytes += n;
        close(fd);
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        po->socket_err = errno;
    else
        close(s);
}

/* The one task function every row submits, in every placement. */
static int bench_task(struct walls_call *call)
{
    struct task_in in;
    if (call->in_len != sizeof in)
        return 1;
    memcpy(&in, call->in, sizeof in);
    uint64_t result = 0;
    switch (in.kind) {
    case T_EMPTY:
        break;
    case T_SPIN:
        result = spin(in.amount);
        break;
    case T_SLEEP:
        sleep_ns(in.amount);
        break;
    case T_CRASH:
        crash_now();
        break;
    case T_SUM:
        /* The buffer: the task's arena input, or an address (threads). */
        if (call->n_inputs)
            result = sum_words(call->inputs[0].ptr, call->inputs[0].len);
        else
            result = sum_words((const uint64_t *)(uintptr_t)in.addr, (size_t)in.amount);
        break;
    case T_PROBE:
        if (call->out_cap < sizeof(struct probe_out))
            return 2;
        probe(call->out);
        call->out_len = sizeof(struct probe_out);
        return 0;
    default:
        return 3;
    }
    counter_add(in.counter);
    if (call->out_cap >= sizeof result) {
        memcpy(call->out, &result, sizeof result);
        call->out_len = sizeof result;
    }
    return 0;
}

static struct task_in task(enum task_kind kind, uint64_t amount)
{
    struct task_in in = {.kind = kind, .amount = amount};
    return in;
}

/* ---- pools and batches ---- */

static int pool_open(walls_pool **pool, enum walls_placement placement, unsigned procs,
                     unsigned threads, unsigned needs)
{
    struct walls_pool_opts o;
    memset(&o, 0, sizeof o);
    o.placement = placement;
    o.processes = procs;
    o.threads = threads;
    o.needs = needs;
    return walls_pool_create(pool, &o);
}

struct batch {
    double ns;
    unsigned by_status[WALLS_BROKEN + 1];
    int crash_code;       /* code of the last WALLS_CRASHED task */
    uint64_t bad_outputs; /* tasks whose 8-byte output differed from expect */
};

/*
 * Submits n tasks, waits for all in order, frees them. If expect is not
 * NULL, every OK task's 8-byte output must equal *expect.
 */
static int run_batch_ex(walls_pool *pool, const struct task_in *in, size_t n,
                        const uint64_t *expect, const struct walls_task_opts *opts,
                        struct batch *out);

static int run_batch(walls_pool *pool, const struct task_in *in, size_t n,
                     const uint64_t *expect, struct batch *out)
{
    return run_batch_ex(pool, in, n, expect, NULL, out);
}

/* run_batch() with the same task options (arena buffers) for every task. */
static int run_batch_ex(walls_pool *pool, const struct task_in *in, size_t n,
                        const uint64_t *expect, const struct walls_task_opts *opts,
                        struct batch *out)
{
    memset(out, 0, sizeof *out);
    walls_task **tasks = calloc(n, sizeof *tasks);
    if (!tasks)
        return -ENOMEM;
    int rc = 0;
    size_t submitted = 0;
    double t0 = now_ns();
    for (; submitted < n; submitted++) {
        rc = walls_submit_ex(pool, bench_task, &in[submitted], sizeof in[submitted], opts,
                             &tasks[submitted]);
        if (rc != 0)
            break;
    }
    for (size_t i = 0; i < submitted; i++) {
        struct walls_result res;
        int wrc = walls_wait(tasks[i], -1, &res);
        if (wrc != 0) {
            if (rc == 0)
                rc = wrc;
            continue;
        }
        if ((unsigned)res.status <= WALLS_BROKEN)
            out->by_status[res.status]++;
        if (res.status == WALLS_CRASHED)
            out->crash_code = res.code;
        if (res.status == WALLS_OK && expect) {
            uint64_t v = 0;
            if (res.out_len == sizeof v)
                memcpy(&v, res.out, sizeof v);
            if (res.out_len != sizeof v || v != *expect)
                out->bad_outputs++;
        }
    }
    out->ns = now_ns() - t0;
    for (size_t i = 0; i < submitted; i++)
        walls_task_free(tasks[i]);
    free(tasks);
    return rc;
}

/* Runs one task; copies up to cap output bytes. */
static int run_one(walls_pool *pool, struct task_in in, struct walls_result *res, void *out,
                   size_t cap)
{
    walls_task *t;
    int rc = walls_submit(pool, bench_task, &in, sizeof in, &t);
    if (rc != 0)
        return rc;
    rc = walls_wait(t, -1, res);
    if (rc == 0 && out) {
        memset(out, 0, cap);
        memcpy(out, res->out, res->out_len < cap ? res->out_len : cap);
    }
    res->out = NULL;
    walls_task_free(t);
    return rc;
}

/* ---- row 1: creating workers ---- */

static void *empty_thread(void *arg)
{
    return arg;
}

static int wait_child(pid_t pid, int *status)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (status)
        *status = st;
    return 0;
}

static int time_thread(double *ns)
{
    pthread_t t;
    double t0 = now_ns();
    int rc = pthread_create(&t, NULL, empty_thread, NULL);
    if (rc != 0)
        return -rc;
    pthread_join(t, NULL);
    *ns = now_ns() - t0;
    return 0;
}

static int time_fork(double *ns)
{
    double t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(0);
    int rc = wait_child(pid, NULL);
    *ns = now_ns() - t0;
    return rc;
}

static int time_spawn(double *ns)
{
    char arg0[] = "true";
    char *argv[] = {arg0, NULL};
    pid_t pid;
    double t0 = now_ns();
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
    if (rc != 0)
        return -rc;
    int st;
    rc = wait_child(pid, &st);
    *ns = now_ns() - t0;
    if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        rc = -ENOEXEC;
    return rc;
}

static int time_pool_start(double *ns)
{
    walls_pool *pool;
    double t0 = now_ns();
    int rc = pool_open(&pool, WALLS_PROCESSES, 1, 0, 0);
    if (rc != 0)
        return rc;
    rc = walls_pool_destroy(pool, 0);
    *ns = now_ns() - t0;
    return rc;
}

/* n samples of fn after one warm-up call. */
static int sample(int (*fn)(double *), int n, struct summary *s)
{
    double *v = calloc((size_t)n, sizeof *v);
    if (!v)
        return -ENOMEM;
    double warm;
    int rc = fn(&warm);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = fn(&v[i]);
    if (rc == 0)
        *s = summarize(v, n);
    free(v);
    return rc;
}

static long meminfo_kib(const char *key)
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

/* This process's resident set, from /proc/self/statm. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    long size, resident;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static void run_create(struct bench *b, struct row *r)
{
    struct summary thr = {0}, frk = {0}, big = {0}, spn = {0}, wst = {0};
    int rc;
    bool have_big = false;

    if ((rc = sample(time_thread, reps(b, 200, 1000), &thr)) != 0) {
        row_verdict(r, V_ERROR, "pthread_create failed: %s", strerror(-rc));
        return;
    }
    row_time(r, "thread_create_join", "thread create+join", thr);
    if ((rc = sample(time_fork, reps(b, 60, 300), &frk)) != 0) {
        row_verdict(r, V_ERROR, "fork failed: %s", strerror(-rc));
        return;
    }
    row_time(r, "fork_small", "fork+_exit+waitpid", frk);

    long avail = meminfo_kib("MemAvailable");
    if (avail >= 0 && avail < 1536L * 1024) {
        row_text(r, "fork_1gib", "fork, 1 GiB (4K pages)", "skipped: %ld MiB free", avail / 1024);
    } else {
        size_t len = 1024u * MIB;
        char *mem = malloc(len);
        if (!mem) {
            row_text(r, "fork_1gib", "fork, 1 GiB (4K pages)", "skipped: malloc failed");
        } else {
            /* 4 KiB pages, as most heaps have; touched through a volatile
             * pointer so no store can be optimised away. */
            madvise(mem, len, MADV_NOHUGEPAGE);
            volatile char *touch = mem;
            for (size_t off = 0; off < len; off += 4096)
                touch[off] = 1;
            long rss = rss_kib();
            rc = sample(time_fork, reps(b, 10, 40), &big);
            free(mem);
            if (rss >= 0)
                row_value(r, "rss_during_fork_1gib", "resident set during 1 GiB forks", "KiB",
                          one_value((double)rss));
            if (rc == 0) {
                row_time(r, "fork_1gib", "fork, 1 GiB (4K pages)", big);
                have_big = true;
            } else {
                row_text(r, "fork_1gib", "fork, 1 GiB (4K pages)", "fork failed: %s",
                         strerror(-rc));
            }
        }
    }
    if ((rc = sample(time_spawn, reps(b, 60, 300), &spn)) == 0) {
        row_time(r, "posix_spawn_true", "posix_spawn /bin/true", spn);
    } else {
        row_text(r, "posix_spawn_true", "posix_spawn /bin/true", "failed: %s", strerror(-rc));
    }
    if ((rc = sample(time_pool_start, reps(b, 15, 60), &wst)) == 0) {
        row_time(r, "walls_process_pool_1", "walls 1-process pool up+down", wst);
    } else {
        row_text(r, "walls_process_pool_1", "walls 1-process pool up+down", "failed: %s",
                 walls_strerror(rc));
    }

    bool thr_ok = thr.med >= 10e3 && thr.med <= 100e3;
    bool frk_ok = frk.med >= 1e6 && frk.med <= 10e6;
    char t[48], f[48], g[48];
    fmt_time(t, sizeof t, thr.med);
    fmt_time(f, sizeof f, frk.med);
    fmt_time(g, sizeof g, big.med);
    if (thr_ok && frk_ok)
        row_verdict(r, V_HOLDS, "thread %s, fork %s", t, f);
    else if (!thr_ok && !frk_ok)
        row_verdict(r, V_FAILS, "thread took %s, fork %s", t, f);
    else if (!frk_ok)
        row_verdict(r, V_FAILS, "fork took %s%s%s", f, have_big ? "; with 1 GiB " : "",
                    have_big ? g : "");
    else
        row_verdict(r, V_FAILS, "thread took %s", t);
}

/* ---- row 2: talking ---- */

enum pp_kind { PP_MUTEX, PP_FUTEX, PP_PIPE, PP_SOCKET, PP_SHMFUTEX };

struct pingpong {
    enum pp_kind kind;
    long rounds;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn;        /* PP_MUTEX: 1 = the responder's turn */
    uint32_t local;  /* PP_FUTEX's word */
    uint32_t *word;  /* the futex word: &local, or a MAP_SHARED page */
    int fd[4];       /* pipes: [0]->[1] forward, [2]->[3] back; socketpair: [0], [1] */
};

static uint32_t load_acquire(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Publishes everything written before the store to whoever loads it. */
static void store_release(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void futex_op(uint32_t *word, int op, uint32_t val)
{
    syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static int rw_byte(int fd, bool write_it)
{
    char c = 'x';
    for (;;) {
        ssize_t n = write_it ? write(fd, &c, 1) : read(fd, &c, 1);
        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -EIO;
    }
}

/* One round trip, from the initiator's side. */
static int ping(struct pingpong *pp)
{
    int wait_op = pp->kind == PP_SHMFUTEX ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE;
    int wake_op = pp->kind == PP_SHMFUTEX ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE;
    switch (pp->kind) {
    case PP_MUTEX:
        pthread_mutex_lock(&pp->mu);
        pp->turn = 1;
        pthread_cond_signal(&pp->cv);
        while (pp->turn != 0)
            pthread_cond_wait(&pp->cv, &pp->mu);
        pthread_mutex_unlock(&pp->mu);
        return 0;
    case PP_FUTEX:
    case PP_SHMFUTEX:
        store_release(pp->word, 1);
        futex_op(pp->word, wake_op, 1);
        while (load_acquire(pp->word) != 0)
            futex_op(pp->word, wait_op, 1);
        return 0;
    case PP_PIPE:
        return rw_byte(pp->fd[1], true) || rw_byte(pp->fd[2], false) ? -EIO : 0;
    case PP_SOCKET:
        return rw_byte(pp->fd[0], true) || rw_byte(pp->fd[0], false) ? -EIO : 0;
    }
    return -EINVAL;
}

/* One round trip, from the responder's side. */
static int pong(struct pingpong *pp)
{
    int wait_op = pp->kind == PP_SHMFUTEX ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE;
    int wake_op = pp->kind == PP_SHMFUTEX ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE;
    switch (pp->kind) {
    case PP_MUTEX:
        pthread_mutex_lock(&pp->mu);
        while (pp->turn != 1)
            pthread_cond_wait(&pp->cv, &pp->mu);
        pp->turn = 0;
        pthread_cond_signal(&pp->cv);
        pthread_mutex_unlock(&pp->mu);
        return 0;
    case PP_FUTEX:
    case PP_SHMFUTEX:
        while (load_acquire(pp->word) != 1)
            futex_op(pp->word, wait_op, 0);
        store_release(pp->word, 0);
        futex_op(pp->word, wake_op, 1);
        return 0;
    case PP_PIPE:
        return rw_byte(pp->fd[0], false) || rw_byte(pp->fd[3], true) ? -EIO : 0;
    case PP_SOCKET:
        return rw_byte(pp->fd[1], false) || rw_byte(pp->fd[1], true) ? -EIO : 0;
    }
    return -EINVAL;
}

static void *pong_thread(void *arg)
{
    struct pingpong *pp = arg;
    for (long i = 0; i < pp->rounds; i++)
        if (pong(pp) != 0)
            break;
    return NULL;
}

/* Median (min-max) of batches of iters round trips, per round trip. */
static int measure_pingpong(enum pp_kind kind, int iters, int batches, struct summary *s)
{
    struct pingpong pp;
    memset(&pp, 0, sizeof pp);
    pp.kind = kind;
    pp.rounds = (long)iters * (batches + 1);
    for (int i = 0; i < 4; i++)
        pp.fd[i] = -1;
    pp.word = &pp.local;
    bool process = kind >= PP_PIPE;
    int rc = 0;

    if (kind == PP_MUTEX) {
        pthread_mutex_init(&pp.mu, NULL);
        pthread_cond_init(&pp.cv, NULL);
    } else if (kind == PP_SHMFUTEX) {
        void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return -errno;
        pp.word = page;
    } else if (kind == PP_PIPE) {
        if (pipe2(pp.fd, O_CLOEXEC) != 0 || pipe2(pp.fd + 2, O_CLOEXEC) != 0)
            rc = -errno;
    } else if (kind == PP_SOCKET) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pp.fd) != 0)
            rc = -errno;
    }

    double *v = calloc((size_t)batches, sizeof *v);
    pthread_t thread;
    pid_t pid = -1;
    if (rc == 0 && !v)
        rc = -ENOMEM;
    if (rc == 0 && process) {
        pid = fork();
        if (pid < 0) {
            rc = -errno;
        } else if (pid == 0) {
            for (long i = 0; i < pp.rounds; i++)
                if (pong(&pp) != 0)
                    _exit(1);
            _exit(0);
        }
    } else if (rc == 0) {
        rc = -pthread_create(&thread, NULL, pong_thread, &pp);
    }
    if (rc == 0) {
        for (int i = 0; rc == 0 && i < iters; i++)
            rc = ping(&pp);
        for (int bt = 0; rc == 0 && bt < batches; bt++) {
            double t0 = now_ns();
            for (int i = 0; rc == 0 && i < iters; i++)
                rc = ping(&pp);
            v[bt] = (now_ns() - t0) / iters;
        }
        if (process) {
            if (rc != 0)
                kill(pid, SIGKILL);
            wait_child(pid, NULL);
        } else {
            pthread_join(thread, NULL);
        }
    }
    if (rc == 0)
        *s = summarize(v, batches);
    free(v);
    for (int i = 0; i < 4; i++)
        if (pp.fd[i] >= 0)
            close(pp.fd[i]);
    if (kind == PP_SHMFUTEX)
        munmap(pp.word, 4096);
    if (kind == PP_MUTEX) {
        pthread_mutex_destroy(&pp.mu);
        pthread_cond_destroy(&pp.cv);
    }
    return rc;
}

/* Each sample: submit one empty task, wait for it, free it. */
static int walls_round_trips(enum walls_placement placement, int n, struct summary *s)
{
    walls_pool *pool;
    int rc = pool_open(&pool, placement, placement == WALLS_PROCESSES ? 1 : 0,
                       placement == WALLS_THREADS ? 1 : 0, 0);
    if (rc != 0)
        return rc;
    double *v = calloc((size_t)n, sizeof *v);
    if (!v) {
        walls_pool_destroy(pool, 0);
        return -ENOMEM;
    }
    struct task_in in = task(T_EMPTY, 0);
    struct walls_result res;
    for (int i = 0; rc == 0 && i < n + n / 10; i++) {
        double t0 = now_ns();
        rc = run_one(pool, in, &res, NULL, 0);
        if (rc == 0 && res.status != WALLS_OK)
            rc = -EPROTO;
        if (i >= n / 10)
            v[i - n / 10] = now_ns() - t0;
    }
    if (rc == 0)
        *s = summarize(v, n);
    free(v);
    walls_pool_destroy(pool, 0);
    return rc;
}

static void run_talk(struct bench *b, struct row *r)
{
    static const struct {
        enum pp_kind kind;
        const char *name, *label;
    } kinds[] = {
        {PP_MUTEX, "rt_threads_mutex_condvar", "threads, mutex+condvar"},
        {PP_FUTEX, "rt_threads_futex", "threads, futex"},
        {PP_PIPE, "rt_processes_pipe", "processes, pipe"},
        {PP_SOCKET, "rt_processes_socketpair", "processes, socketpair"},
        {PP_SHMFUTEX, "rt_processes_shared_futex", "processes, shared futex"},
    };
    int iters = reps(b, 1000, 2000), batches = reps(b, 7, 21);
    double best_thr = INFINITY, best_proc = INFINITY;
    const char *best_proc_label = "";
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct summary s;
        int rc = measure_pingpong(kinds[k].kind, iters, batches, &s);
        if (rc != 0) {
            row_text(r, kinds[k].name, kinds[k].label, "failed: %s", strerror(-rc));
            continue;
        }
        row_time(r, kinds[k].name, kinds[k].label, s);
        if (kinds[k].kind <= PP_FUTEX) {
            if (s.med < best_thr)
                best_thr = s.med;
        } else if (s.med < best_proc) {
            best_proc = s.med;
            best_proc_label = kinds[k].kind == PP_PIPE     ? "pipe"
                              : kinds[k].kind == PP_SOCKET ? "socketpair"
                                                           : "shared futex";
        }
    }
    int n = reps(b, 2000, 10000);
    struct summary wt, wp;
    int rct = walls_round_trips(WALLS_THREADS, n, &wt);
    if (rct == 0)
        row_time(r, "rt_walls_threads", "walls empty task, threads", wt);
    else
        row_text(r, "rt_walls_threads", "walls empty task, threads", "failed: %s",
                 walls_strerror(rct));
    int rcp = walls_round_trips(WALLS_PROCESSES, n, &wp);
    if (rcp == 0)
        row_time(r, "rt_walls_processes", "walls empty task, processes", wp);
    else
        row_text(r, "rt_walls_processes", "walls empty task, processes", "failed: %s",
                 walls_strerror(rcp));
    if (rct == 0 && rcp == 0)
        row_line(r, "walls: processes x%.1f threads' time", wp.med / wt.med);

    if (!isfinite(best_thr) || !isfinite(best_proc)) {
        row_verdict(r, V_ERROR, "a ping-pong failed");
        return;
    }
    char t[48], p[48];
    fmt_time(t, sizeof t, best_thr);
    fmt_time(p, sizeof p, best_proc);
    double ratio = best_proc / best_thr;
    if (ratio >= 2)
        row_verdict(r, V_HOLDS, "best process trip %s is x%.1f threads' %s", p, ratio, t);
    else
        row_verdict(r, V_FAILS, "%s between processes %s, threads %s (x%.1f)",
                    best_proc_label, p, t, ratio);
}

/* ---- row 3: a crash ---- */

#define CRASH_TASKS 100
#define CRASH_INDEX 50

/* Outcome of one crash run in a throwaway host process. */
struct thr_crash {
    bool died;      /* the host was killed by a signal */
    int signal;
    uint32_t done;  /* other tasks that finished before it died */
};

static int crash_threads_once(const struct bench *b, struct thr_crash *out)
{
    uint32_t *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counter == MAP_FAILED)
        return -errno;
    *counter = 0;
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        munmap(counter, 4096);
        return err;
    }
    if (pid == 0) {
        walls_pool *pool;
        if (pool_open(&pool, WALLS_THREADS, 0, 0, 0) != 0)
            _exit(3);
        struct task_in in[CRASH_TASKS];
        for (int i = 0; i < CRASH_TASKS; i++) {
            in[i] = task(T_SPIN, (uint64_t)b->spin_per_ms);
            in[i].counter = (uint64_t)(uintptr_t)counter;
        }
        in[CRASH_INDEX] = task(T_CRASH, 0);
        struct batch bt;
        run_batch(pool, in, CRASH_TASKS, NULL, &bt);
        walls_pool_destroy(pool, 0);
        _exit(0);
    }
    /* Give the throwaway host 30 s, then kill it. */
    int st = 0;
    double deadline = now_ns() + 30e9;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            munmap(counter, 4096);
            return -errno;
        }
        if (now_ns() > deadline) {
            kill(pid, SIGKILL);
            wait_child(pid, &st);
            break;
        }
        sleep_ns(200000);
    }
    out->died = WIFSIGNALED(st);
    out->signal = out->died ? WTERMSIG(st) : 0;
    out->done = load_acquire(counter);
    munmap(counter, 4096);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        return -ECHILD;
    return 0;
}

static void run_crash(struct bench *b, struct row *r)
{
    int n = reps(b, 1, 3);
    double done[8];
    bool all_died = true, any_died = false;
    int sig = 0, err = 0;
    for (int i = 0; i < n; i++) {
        struct thr_crash tc = {0};
        err = crash_threads_once(b, &tc);
        if (err != 0)
            break;
        done[i] = tc.done;
        all_died = all_died && tc.died;
        any_died = any_died || tc.died;
        sig = tc.signal;
    }
    bool thr_ok = false;
    if (err != 0) {
        row_text(r, "threads_outcome", "threads", "failed: %s", strerror(-err));
    } else {
        struct summary s = summarize(done, n);
        row_value(r, "threads_others_finished", "threads: others finished", "tasks", s);
        b->crash_thr_ran = true;
        b->crash_thr_host_died = all_died;
        b->crash_thr_done = s.med;
        if (any_died)
            row_text(r, "threads_host", "threads", "host died (SIG%s)", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
        else
            row_text(r, "threads_host", "threads", "host survived");
        if (n > 1)
            row_line(r, "  %.0f of 99 others done (%.0f-%.0f), rest lost", s.med, s.min, s.max);
        else
            row_line(r, "  %.0f of 99 others done, %.0f lost", s.med, 99 - s.med);
        thr_ok = all_died;
    }

    /* Process placement, directly in the bench. */
    walls_pool *pool;
    int rc = pool_open(&pool, WALLS_PROCESSES, 0, 0, 0);
    if (rc != 0) {
        row_text(r, "processes_outcome", "processes", "pool failed: %s", walls_strerror(rc));
        row_verdict(r, V_ERROR, "no process pool: %s", errno_name(rc));
        return;
    }
    struct task_in in[CRASH_TASKS];
    for (int i = 0; i < CRASH_TASKS; i++)
        in[i] = task(T_SPIN, (uint64_t)b->spin_per_ms);
    in[CRASH_INDEX] = task(T_CRASH, 0);
    bool proc_ok = true;
    double ok[8], crashed[8], times[8];
    int crash_code = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct batch bt;
        rc = run_batch(pool, in, CRASH_TASKS, NULL, &bt);
        ok[i] = bt.by_status[WALLS_OK];
        crashed[i] = bt.by_status[WALLS_CRASHED];
        times[i] = bt.ns;
        crash_code = bt.crash_code;
        proc_ok = proc_ok && bt.by_status[WALLS_OK] == CRASH_TASKS - 1 &&
                  bt.by_status[WALLS_CRASHED] == 1 && bt.crash_code == SIGSEGV;
    }
    struct walls_result res;
    int serve_rc = rc == 0 ? run_one(pool, task(T_EMPTY, 0), &res, NULL, 0) : rc;
    bool serves = serve_rc == 0 && res.status == WALLS_OK;
    struct walls_stats st;
    memset(&st, 0, sizeof st);
    walls_pool_stats(pool, &st);
    walls_pool_destroy(pool, 0);
    if (rc != 0) {
        row_text(r, "processes_outcome", "processes", "failed: %s", walls_strerror(rc));
        row_verdict(r, V_ERROR, "process batch failed: %s", errno_name(rc));
        return;
    }
    struct summary sok = summarize(ok, n), scr = summarize(crashed, n);
    row_value(r, "processes_ok", "processes: ok", "tasks", sok);
    row_value(r, "processes_crashed", "processes: crashed", "tasks", scr);
    row_value(r, "processes_restarts", "processes: worker restarts", "", one_value((double)st.restarts));
    b->crash_proc_ran = true;
    b->crash_proc_ok = sok.med;
    b->crash_proc_crashed = scr.med;
    b->crash_proc_other = CRASH_TASKS - sok.med - scr.med;
    const char *signame = crash_code > 0 && sigabbrev_np(crash_code) ? sigabbrev_np(crash_code) : "?";
    row_text(r, "processes_outcome", "processes", "%.0f ok, %.0f crashed (SIG%s)", sok.med,
             scr.med, signame);
    row_text(r, "processes_pool_serves", "  pool after", "%s",
             serves ? "still serves" : "does not serve");
    row_time(r, "processes_batch_time", "  100 tasks took", summarize(times, n));
    proc_ok = proc_ok && serves;

    if (thr_ok && proc_ok)
        row_verdict(r, V_HOLDS, "thread host died; process pool lost 1 task only");
    else if (!proc_ok)
        row_verdict(r, V_FAILS, "process pool did not contain it");
    else
        row_verdict(r, V_FAILS, "thread host survived the crash");
}

/* ---- row 4: untrusted code ---- */

static void fmt_probe(char *buf, size_t len, const struct probe_out *po)
{
    char a[64];
    if (po->read_bytes >= 0)
        snprintf(a, sizeof a, "read %" PRId64 " bytes", po->read_bytes);
    else
        snprintf(a, sizeof a, "open %s", errno_name(po->open_err));
    snprintf(buf, len, "%s, socket %s", a, po->socket_err ? errno_name(po->socket_err) : "fd ok");
}

static int probe_in(enum walls_placement placement, unsigned needs, struct probe_out *po,
                    struct walls_result *res)
{
    walls_pool *pool;
    int rc = pool_open(&pool, placement, placement == WALLS_THREADS ? 0 : 1,
                       placement == WALLS_THREADS ? 1 : 0, needs);
    if (rc != 0)
        return rc;
    rc = run_one(pool, task(T_PROBE, 0), res, po, sizeof *po);
    walls_pool_destroy(pool, 0);
    return rc;
}

/* The sandbox's cost: empty tasks through a process pool without a
 * sandbox and through one with the strict sandbox, alternating batches so
 * that both see the same machine. Round trips on one worker; throughput
 * on two, n tasks a batch. */
static int sandbox_cost(unsigned sandbox, int trips, int tasks, struct summary *rt,
                        double *tput_sample)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .sandbox = sandbox};
    walls_pool *pool;
    int rc = walls_pool_create(&pool, &o);
    if (rc != 0)
        return rc;
    double *v = calloc((size_t)trips, sizeof *v);
    struct task_in *in = calloc((size_t)tasks, sizeof *in);
    if (!v || !in)
        rc = -ENOMEM;
    struct walls_result res;
    for (int i = 0; rc == 0 && i < trips + trips / 10; i++) {
        double t0 = now_ns();
        rc = run_one(pool, task(T_EMPTY, 0), &res, NULL, 0);
        if (rc == 0 && res.status != WALLS_OK)
            rc = -EPROTO;
        if (i >= trips / 10)
            v[i - trips / 10] = now_ns() - t0;
    }
    if (rc == 0)
        *rt = summarize(v, trips);
    walls_pool_destroy(pool, 0);
    o.processes = 2;
    if (rc == 0)
        rc = walls_pool_create(&pool, &o);
    if (rc == 0) {
        for (int i = 0; i < tasks; i++)
            in[i] = task(T_EMPTY, 0);
        struct batch bt;
        rc = run_batch(pool, in, (size_t)tasks, NULL, &bt);
        if (rc == 0 && bt.by_status[WALLS_OK] != (unsigned)tasks)
            rc = -EPROTO;
        if (rc == 0)
            *tput_sample = (double)tasks / (bt.ns / 1e9);
        walls_pool_destroy(pool, 0);
    }
    free(v);
    free(in);
    return rc;
}

static void run_sandbox_cost(struct bench *b, struct row *r)
{
    int rounds = reps(b, 3, 7), trips = reps(b, 300, 1000), tasks = reps(b, 5000, 20000);
    double rt_med[2][7], tput[2][7];
    const unsigned levels[2] = {WALLS_SANDBOX_NONE, WALLS_SANDBOX_STRICT};
    for (int k = 0; k < rounds; k++) {
        for (int l = 0; l < 2; l++) {
            struct summary s;
            int rc = sandbox_cost(levels[l], trips, tasks, &s, &tput[l][k]);
            if (rc != 0) {
                row_text(r, l ? "strict_cost" : "plain_cost",
                         l ? "strict-sandboxed processes" : "unsandboxed processes",
                         "failed: %s", walls_strerror(rc));
                return;
            }
            rt_med[l][k] = s.med;
        }
    }
    struct summary rt[2], tp[2];
    for (int l = 0; l < 2; l++) {
        rt[l] = summarize(rt_med[l], rounds);
        tp[l] = summarize(tput[l], rounds);
    }
    row_time(r, "rt_processes_unsandboxed", "empty task round trip, unsandboxed processes", rt[0]);
    row_time(r, "rt_processes_strict", "empty task round trip, strict-sandboxed processes", rt[1]);
    row_value(r, "tput_processes_unsandboxed", "throughput, unsandboxed processes", "tasks/s",
              tp[0]);
    row_value(r, "tput_processes_strict", "throughput, strict-sandboxed processes", "tasks/s",
              tp[1]);
    row_line(r, "throughput, 2 workers: unsandboxed %.0f tasks/s, strict %.0f tasks/s", tp[0].med,
             tp[1].med);
    row_line(r, "strict sandbox: round trip x%.2f the unsandboxed (target <= 1.1), "
                "throughput x%.2f", rt[1].med / rt[0].med, tp[1].med / tp[0].med);
}

static void run_untrusted(struct bench *b, struct row *r)
{
    struct probe_out po;
    struct walls_result res;
    char buf[96];
    bool thr_open = false;
    int rc = probe_in(WALLS_THREADS, 0, &po, &res);
    if (rc == 0 && res.status == WALLS_OK) {
        fmt_probe(buf, sizeof buf, &po);
        row_text(r, "threads_probe", "thread task", "%s", buf);
        thr_open = po.read_bytes >= 0 || po.socket_err == 0;
    } else {
        row_text(r, "threads_probe", "thread task", "failed: %s",
                 rc ? walls_strerror(rc) : walls_status_name(res.status));
    }
    rc = probe_in(WALLS_PROCESSES, 0, &po, &res);
    if (rc == 0 && res.status == WALLS_OK) {
        fmt_probe(buf, sizeof buf, &po);
        row_text(r, "plain_process_probe", "plain process worker", "%s", buf);
    } else {
        row_text(r, "plain_process_probe", "plain process worker", "failed: %s",
                 rc ? walls_strerror(rc) : walls_status_name(res.status));
    }
    rc = probe_in(WALLS_PROCESSES, WALLS_NEED_UNTRUSTED, &po, &res);
    if (rc == 0)
        run_sandbox_cost(b, r);
    if (rc == -ENOTSUP) {
        row_text(r, "sandboxed_process_probe", "sandboxed process",
                 "the kernel refuses part of the strict sandbox (pool create: ENOTSUP)");
        row_verdict(r, V_UNTESTED, "strict sandbox refused by this kernel (ENOTSUP)%s",
                    thr_open ? "; threads read secrets" : "");
        return;
    }
    if (rc != 0) {
        row_text(r, "sandboxed_process_probe", "sandboxed process", "failed: %s",
                 walls_strerror(rc));
        row_verdict(r, V_ERROR, "sandboxed pool: %s", errno_name(rc));
        return;
    }
    bool stopped = res.status != WALLS_OK || (po.read_bytes < 0 && po.socket_err != 0);
    if (res.status == WALLS_OK) {
        fmt_probe(buf, sizeof buf, &po);
        row_text(r, "sandboxed_process_probe", "sandboxed process", "%s", buf);
    } else {
        row_text(r, "sandboxed_process_probe", "sandboxed process", "task %s (code %d)",
                 walls_status_name(res.status), res.code);
    }
    if (stopped && thr_open)
        row_verdict(r, V_HOLDS, "sandbox stopped what threads allowed");
    else if (!stopped)
        row_verdict(r, V_FAILS, "sandboxed task still got through");
    else
        row_verdict(r, V_FAILS, "threads were stopped too");
}

/* ---- row 5: sharing big data ---- */

#define SHARE_TASKS 8
#define SHARE_BYTES (64u * MIB)
#define PIPE_CHUNK MIB

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? 1 : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A forked worker: sums each SHARE_BYTES that arrive on in, answers on out. */
static void pipe_worker(int in, int out)
{
    uint64_t *chunk = malloc(PIPE_CHUNK);
    if (!chunk)
        _exit(1);
    for (;;) {
        uint64_t s = 0;
        for (size_t got = 0; got < SHARE_BYTES; got += PIPE_CHUNK) {
            int rc = read_full(in, chunk, PIPE_CHUNK);
            if (rc == 1 && got == 0)
                _exit(0);
            if (rc != 0)
                _exit(1);
            s += sum_words(chunk, PIPE_CHUNK);
        }
        if (write_full(out, &s, sizeof s) != 0)
            _exit(1);
    }
}

struct feeder {
    const uint64_t *buf;
    int to_worker, from_worker;
    int ntasks;
    uint64_t expect;
    int err;
};

/* A parent thread feeding one worker its tasks' bytes, one after another. */
static void *feed(void *arg)
{
    struct feeder *fd = arg;
    for (int t = 0; t < fd->ntasks && fd->err == 0; t++) {
        uint64_t s;
        fd->err = write_full(fd->to_worker, fd->buf, SHARE_BYTES);
        if (fd->err == 0)
            fd->err = read_full(fd->from_worker, &s, sizeof s) ? -EIO : 0;
        if (fd->err == 0 && s != fd->expect)
            fd->err = -EPROTO;
    }
    return NULL;
}

/* One run: nw forked workers get SHARE_TASKS copies of buf through pipes. */
static int share_by_pipe(const uint64_t *buf, uint64_t expect, int nw, double *ns)
{
    struct feeder feeders[SHARE_TASKS];
    pid_t pids[SHARE_TASKS];
    pthread_t threads[SHARE_TASKS];
    int started = 0, rc = 0;
    for (; started < nw; started++) {
        int down[2], up[2];
        if (pipe2(down, O_CLOEXEC) != 0)
            break;
        if (pipe2(up, O_CLOEXEC) != 0) {
            close(down[0]);
            close(down[1]);
            break;
        }
        fcntl(down[1], F_SETPIPE_SZ, (int)PIPE_CHUNK);
        pid_t pid = fork();
        if (pid == 0) {
            /* Hold no other worker's pipe ends, or it would never see EOF. */
            for (int i = 0; i < started; i++) {
                close(feeders[i].to_worker);
                close(feeders[i].from_worker);
            }
            close(down[1]);
            close(up[0]);
            pipe_worker(down[0], up[1]);
        }
        close(down[0]);
        close(up[1]);
        if (pid < 0) {
            close(down[1]);
            close(up[0]);
            break;
        }
        pids[started] = pid;
        feeders[started] = (struct feeder){buf, down[1], up[0], 0, expect, 0};
    }
    if (started < nw)
        rc = -errno ? -errno : -EAGAIN;
    for (int t = 0; t < SHARE_TASKS && started > 0; t++)
        feeders[t % started].ntasks++;
    double t0 = now_ns();
    int nthreads = 0;
    for (; rc == 0 && nthreads < started; nthreads++) {
        int e = pthread_create(&threads[nthreads], NULL, feed, &feeders[nthreads]);
        if (e != 0) {
            rc = -e;
            break;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
        if (rc == 0)
            rc = feeders[i].err;
    }
    *ns = now_ns() - t0;
    for (int i = 0; i < started; i++) {
        close(feeders[i].to_worker);
        close(feeders[i].from_worker);
        if (rc != 0)
            kill(pids[i], SIGKILL);
    }
    for (int i = 0; i < started; i++)
        wait_child(pids[i], NULL);
    return rc;
}

/* One way's times as a figure of row 5, or why there are none. */
static struct summary share_figure(struct row *r, const char *name, const char *what, int nw,
                                   int rc, double *v, int n)
{
    struct summary sum = {0};
    char label[48];
    snprintf(label, sizeof label, "%s (%d)", what, nw);
    if (rc == 0) {
        sum = summarize(v, n);
        row_time(r, name, label, sum);
    } else {
        row_text(r, name, label, "failed: %s", walls_strerror(rc));
    }
    return sum;
}

static void run_share(struct bench *b, struct row *r)
{
    uint64_t *buf = malloc(SHARE_BYTES);
    if (!buf) {
        row_verdict(r, V_ERROR, "no memory for 64 MiB");
        return;
    }
    for (size_t i = 0; i < SHARE_BYTES / sizeof *buf; i++)
        buf[i] = i * 2654435761u;
    uint64_t expect = sum_words(buf, SHARE_BYTES);
    int n = reps(b, 9, 15);
    int nw = b->cores < SHARE_TASKS ? b->cores : SHARE_TASKS;
    double tv[16], pv[16];
    struct summary ts = {0}, ps = {0};

    /* Threads by pointer and processes through the shared arena take
     * turns, round by round, after one untimed round each (a process's
     * first touch of the arena maps its pages). */
    walls_pool *pool = NULL, *apool = NULL;
    int open_rc = pool_open(&pool, WALLS_THREADS, 0, (unsigned)nw, 0), rc = open_rc;
    struct walls_pool_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.placement = WALLS_PROCESSES;
    ao.processes = (unsigned)nw;
    ao.arena_size = SHARE_BYTES;
    walls_buf abuf = 0;
    void *aptr = NULL;
    int aopen = walls_pool_create(&apool, &ao), arc = aopen;
    if (arc == 0 && (arc = walls_arena_alloc(apool, SHARE_BYTES, &abuf)) == 0 &&
        (arc = walls_arena_ptr(apool, abuf, &aptr, NULL)) == 0)
        memcpy(aptr, buf, SHARE_BYTES);
    struct walls_task_opts aopts;
    memset(&aopts, 0, sizeof aopts);
    aopts.inputs = &abuf;
    aopts.n_inputs = 1;
    struct task_in in[SHARE_TASKS], ain[SHARE_TASKS];
    for (int i = 0; i < SHARE_TASKS; i++) {
        in[i] = task(T_SUM, SHARE_BYTES);
        in[i].addr = (uint64_t)(uintptr_t)buf;
        ain[i] = task(T_SUM, SHARE_BYTES);
    }
    double av[16];
    struct summary as = {0};
    for (int i = -1; (rc == 0 || arc == 0) && i < n; i++) {
        struct batch bt;
        if (rc == 0) {
            rc = run_batch(pool, in, SHARE_TASKS, &expect, &bt);
            if (rc == 0 && (bt.by_status[WALLS_OK] != SHARE_TASKS || bt.bad_outputs))
                rc = -EPROTO;
            if (i >= 0)
                tv[i] = bt.ns;
        }
        if (arc == 0) {
            arc = run_batch_ex(apool, ain, SHARE_TASKS, &expect, &aopts, &bt);
            if (arc == 0 && (bt.by_status[WALLS_OK] != SHARE_TASKS || bt.bad_outputs))
                arc = -EPROTO;
            if (i >= 0)
                av[i] = bt.ns;
        }
    }
    if (open_rc == 0)
        walls_pool_destroy(pool, 0);
    if (aopen == 0)
        walls_pool_destroy(apool, 0);
    ts = share_figure(r, "threads_by_pointer", "threads by pointer", nw, rc, tv, n);
    as = share_figure(r, "walls_shared_arena", "processes, shared arena", nw, arc, av, n);
    char label[48];

    /* The pipe copy is the slow side by far: a few rounds tell it. */
    int np = n < 5 ? n : 5;
    int prc = 0;
    for (int i = 0; prc == 0 && i < np; i++)
        prc = share_by_pipe(buf, expect, nw, &pv[i]);
    snprintf(label, sizeof label, "processes, pipe copy (%d)", nw);
    if (prc == 0) {
        ps = summarize(pv, np);
        row_time(r, "processes_pipe_copy", label, ps);
        double bps = (double)SHARE_TASKS * SHARE_BYTES / (ps.med / 1e9);
        row_value(r, "pipe_copy_rate", "pipe copy rate", "B/s", one_value(bps));
        row_line(r, "  = %.2f GB/s through pipes", bps / 1e9);
    } else {
        row_text(r, "processes_pipe_copy", label, "failed: %s", strerror(-prc));
    }
    free(buf);

    if (rc != 0 || prc != 0 || arc != 0) {
        row_verdict(r, V_ERROR, "a measurement failed");
        return;
    }
    double ratio = ps.med / ts.med, aratio = as.med / ts.med;
    row_value(r, "copy_vs_pointer", "copy / pointer time", "x", one_value(ratio));
    row_value(r, "arena_vs_pointer", "arena / pointer time", "x", one_value(aratio));
    row_line(r, "  processes through the arena: x%.2f the threads' time", aratio);
    /* The seed's claim is that copying between processes is absurdly slow;
     * walls' answer is that processes need not copy. */
    if (ratio >= 10)
        row_verdict(r, V_HOLDS, "copying x%.1f slower than a pointer; the arena x%.2f", ratio,
                    aratio);
    else
        row_verdict(r, V_FAILS, "copying only x%.1f slower; the arena x%.2f", ratio, aratio);
}

/* ---- rows 6 and 7: scaling ---- */

/* Plain pthreads taking tasks from a shared index: the reference. */
struct raw_run {
    struct task_in in;
    uint32_t ntasks;
    uint32_t next;
    pthread_barrier_t start;
};

/* One plain pthread and the span in which it worked. */
struct raw_thread {
    pthread_t tid;
    struct raw_run *rr;
    double t_start, t_end; /* after the barrier; after its last task */
};

static void *raw_worker(void *arg)
{
    struct raw_thread *rt = arg;
    struct raw_run *rr = rt->rr;
    pthread_barrier_wait(&rr->start);
    rt->t_start = now_ns();
    for (;;) {
        uint32_t i = __atomic_fetch_add(&rr->next, 1, __ATOMIC_RELAXED);
        if (i >= rr->ntasks)
            break;
        uint64_t out;
        struct walls_call call = {.in = &rr->in, .in_len = sizeof rr->in, .out = &out,
                                  .out_cap = sizeof out};
        bench_task(&call);
    }
    rt->t_end = now_ns();
    return NULL;
}

/*
 * nthreads started and parked first, then released together. The time is
 * the span from the first worker leaving the barrier to the last worker
 * finishing its last task, taken by the workers themselves: a clock read by
 * the releasing thread after the barrier would start late whenever the
 * released workers take the CPUs first (with more threads than CPUs they
 * nearly always do), and the run would look faster than the CPUs allow.
 */
static int raw_batch(struct task_in in, int ntasks, unsigned nthreads, double *ns)
{
    struct raw_run rr = {.in = in, .ntasks = (uint32_t)ntasks};
    struct raw_thread *threads = calloc(nthreads, sizeof *threads);
    if (!threads)
        return -ENOMEM;
    pthread_barrier_init(&rr.start, NULL, nthreads + 1);
    unsigned started = 0;
    int rc = 0;
    for (; started < nthreads; started++) {
        threads[started].rr = &rr;
        rc = -pthread_create(&threads[started].tid, NULL, raw_worker, &threads[started]);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        /* Release the parked ones with an empty queue. */
        rr.ntasks = 0;
        for (unsigned i = started; i < nthreads; i++) {
            threads[i].rr = &rr;
            pthread_create(&threads[i].tid, NULL, raw_worker, &threads[i]);
        }
    }
    pthread_barrier_wait(&rr.start);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i].tid, NULL);
    double first = INFINITY, last = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        if (threads[i].t_start < first)
            first = threads[i].t_start;
        if (threads[i].t_end > last)
            last = threads[i].t_end;
    }
    *ns = last - first;
    pthread_barrier_destroy(&rr.start);
    free(threads);
    return rc;
}

/*
 * Times ntasks copies of in on THREADS pools of sizes[k] threads, or (raw)
 * on that many plain pthreads.
 */
static int scale(const struct bench *b, struct task_in in, int ntasks, const unsigned *sizes,
                 int nsizes, bool raw, struct point *pts, int *npts)
{
    struct task_in *ins = calloc((size_t)ntasks, sizeof *ins);
    if (!ins)
        return -ENOMEM;
    for (int i = 0; i < ntasks; i++)
        ins[i] = in;
    int n = reps(b, 3, 9), rc = 0;
    *npts = 0;
    if (raw) {
        /*
         * Round by round, every size once per round, so that other work
         * coming and going on the machine falls on all sizes alike and the
         * sizes can be compared run by run (see run_cpu).
         */
        for (int i = 0; rc == 0 && i < n; i++)
            for (int k = 0; rc == 0 && k < nsizes; k++)
                rc = raw_batch(in, ntasks, sizes[k], &pts[k].runs[i]);
        for (int k = 0; rc == 0 && k < nsizes; k++) {
            double v[16];
            memcpy(v, pts[k].runs, sizeof v);
            pts[k].nruns = n;
            pts[k].threads = sizes[k];
            pts[k].s = summarize(v, n);
            pts[k].speedup = pts[0].s.med / pts[k].s.med;
            (*npts)++;
        }
        free(ins);
        return rc;
    }
    for (int k = 0; rc == 0 && k < nsizes; k++) {
        double v[16];
        walls_pool *pool;
        rc = pool_open(&pool, WALLS_THREADS, 0, sizes[k], 0);
        if (rc != 0)
            break;
        for (int i = 0; rc == 0 && i < n; i++) {
            struct batch bt;
            rc = run_batch(pool, ins, (size_t)ntasks, NULL, &bt);
            if (rc == 0 && bt.by_status[WALLS_OK] != (unsigned)ntasks)
                rc = -EPROTO;
            v[i] = bt.ns;
        }
        walls_pool_destroy(pool, 0);
        if (rc == 0) {
            pts[*npts].threads = sizes[k];
            pts[*npts].s = summarize(v, n);
            pts[*npts].speedup = pts[0].s.med / pts[*npts].s.med;
            (*npts)++;
        }
    }
    free(ins);
    return rc;
}

static int scale_sizes(int cores, const unsigned *mults, int nmults, unsigned *sizes)
{
    int n = 0;
    sizes[n++] = 1;
    for (int i = 0; i < nmults; i++) {
        unsigned s = (unsigned)cores * mults[i];
        if (s > 1024)
            s = 1024;
        if (s > sizes[n - 1])
            sizes[n++] = s;
    }
    return n;
}

static void scale_lines(struct row *r, const struct bench *b, const struct point *p, int n,
                        const char *prefix)
{
    for (int i = 0; i < n; i++) {
        char name[40], label[48], sbuf[128];
        unsigned t = p[i].threads;
        if (t == 1)
            snprintf(label, sizeof label, "  1 thread");
        else if (t == (unsigned)b->cores)
            snprintf(label, sizeof label, "  %u (=cores)", t);
        else
            snprintf(label, sizeof label, "  %u (%ux)", t, t / (unsigned)b->cores);
        snprintf(name, sizeof name, "%s_threads_%u", prefix, t);
        struct figure *f = row_fig(r, name, label + 2, "ns");
        if (f) {
            f->numeric = true;
            f->s = p[i].s;
        }
        snprintf(name, sizeof name, "%s_speedup_%u", prefix, t);
        row_value(r, name, label + 2, "x", one_value(p[i].speedup));
        fmt_summary(sbuf, sizeof sbuf, p[i].s);
        row_line(r, "%s: %s x%.2f", label, sbuf, p[i].speedup);
    }
}

/* Index of the point at =cores (or the last one below it), and the fastest. */
static void scale_marks(const struct point *p, int n, int cores, int *at_cores, int *best)
{
    *at_cores = 0;
    *best = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].threads <= (unsigned)cores)
            *at_cores = i;
        if (p[i].s.med < p[*best].s.med)
            *best = i;
    }
}

/*
 * Runs one scaling row on walls pools and on plain pthreads. The seed's
 * claim is about threads as such, so the verdict comes from the plain
 * pthreads; a walls pool far off that is called out in the table.
 */
static int run_scaling(struct bench *b, struct row *r, struct task_in in, int ntasks,
                       const unsigned *mults, int nmults, const char *prefix,
                       struct point *walls_pts, int *nwalls, struct point *raw_pts, int *nraw)
{
    unsigned sizes[MAX_POINTS];
    int nsizes = scale_sizes(b->cores, mults, nmults, sizes);
    char p[40];
    int rc = scale(b, in, ntasks, sizes, nsizes, false, walls_pts, nwalls);
    if (rc != 0) {
        row_verdict(r, V_ERROR, "walls pool run failed: %s", errno_name(rc));
        return rc;
    }
    rc = scale(b, in, ntasks, sizes, nsizes, true, raw_pts, nraw);
    if (rc != 0) {
        row_verdict(r, V_ERROR, "pthread run failed: %s", errno_name(rc));
        return rc;
    }
    row_line(r, "walls thread pool (speedup vs 1):");
    snprintf(p, sizeof p, "%s_walls", prefix);
    scale_lines(r, b, walls_pts, *nwalls, p);
    row_line(r, "plain pthreads, same load:");
    snprintf(p, sizeof p, "%s_pthreads", prefix);
    scale_lines(r, b, raw_pts, *nraw, p);
    int wc, wb, pc, pb;
    scale_marks(walls_pts, *nwalls, b->cores, &wc, &wb);
    scale_marks(raw_pts, *nraw, b->cores, &pc, &pb);
    if (walls_pts[wc].s.med > raw_pts[pc].s.med * 1.25)
        row_line(r, "walls at =cores: x%.1f pthreads' time", walls_pts[wc].s.med /
                 raw_pts[pc].s.med);
    return 0;
}

/* The lowest and highest ratio, round by round, of a's time to b's. */
static void run_ratios(const struct point *a, const struct point *b, double *lo, double *hi)
{
    int n = a->nruns < b->nruns ? a->nruns : b->nruns;
    *lo = INFINITY;
    *hi = 0;
    for (int i = 0; i < n; i++) {
        double q = a->runs[i] / b->runs[i];
        *lo = fmin(*lo, q);
        *hi = fmax(*hi, q);
    }
    if (n == 0)
        *lo = *hi = 1;
}

static void run_cpu(struct bench *b, struct row *r)
{
    static const unsigned mults[] = {1, 2, 4, 8};
    row_line(r, "8 tasks of 20 ms computation each");
    if (b->load_start >= b->cores)
        row_line(r, "busy machine (load %.1f on %d CPUs): the other work competes for the cores",
                 b->load_start, b->cores);
    if (run_scaling(b, r, task(T_SPIN, (uint64_t)(20 * b->spin_per_ms)), 8, mults, 4, "cpu",
                    b->cpu, &b->ncpu, b->cpu_raw, &b->ncpu_raw) != 0)
        return;
    const struct point *p = b->cpu_raw;
    int n = b->ncpu_raw, ci, best;
    scale_marks(p, n, b->cores, &ci, &best);
    /*
     * The plain pthreads ran round by round (see scale), so each round
     * gives a ratio of two counts' times taken close together; the spread
     * of those ratios is the run-to-run noise. A count is only called faster
     * or slower than =cores when it is, by more than 5%, in every round.
     */
    const struct point *c = &p[ci];
    double lo, hi;
    if (best != ci) {
        run_ratios(c, &p[best], &lo, &hi);
        double gain = c->s.med / p[best].s.med - 1;
        if (lo > 1.05)
            row_verdict(r, V_FAILS, "%u pthread%s beat =cores by %.0f%% (%.0f-%.0f%% in "
                        "each of %d runs)", p[best].threads, p[best].threads == 1 ? "" : "s",
                        gain * 100, (lo - 1) * 100, (hi - 1) * 100, c->nruns);
        else
            row_verdict(r, V_HOLDS, "within noise of =cores: %u pthread%s %.0f%% faster, "
                        "run by run %+.0f..%+.0f%%", p[best].threads,
                        p[best].threads == 1 ? "" : "s", gain * 100, (lo - 1) * 100,
                        (hi - 1) * 100);
        return;
    }
    int worst = -1;
    for (int i = ci + 1; i < n; i++)
        if (worst < 0 || p[i].s.med > p[worst].s.med)
            worst = i;
    if (worst < 0) {
        row_verdict(r, V_HOLDS, "=cores is the fastest");
        return;
    }
    run_ratios(&p[worst], c, &lo, &hi);
    double cost = p[worst].s.med / c->s.med - 1;
    if (lo > 1.05)
        row_verdict(r, V_HOLDS, "=cores best; %u pthreads %+.0f%%", p[worst].threads,
                    cost * 100);
    else
        row_verdict(r, V_HOLDS, "=cores best within noise: %u pthreads %+.0f%%, run by run "
                    "%+.0f..%+.0f%%", p[worst].threads, cost * 100, (lo - 1) * 100,
                    (hi - 1) * 100);
}

static void run_io(struct bench *b, struct row *r)
{
    static const unsigned mults[] = {1, 2, 4, 8, 16};
    row_line(r, "64 tasks sleeping 10 ms each");
    if (run_scaling(b, r, task(T_SLEEP, 10000000u), 64, mults, 5, "io", b->io, &b->nio,
                    b->io_raw, &b->nio_raw) != 0)
        return;
    const struct point *p = b->io_raw;
    int ci, best;
    scale_marks(p, b->nio_raw, b->cores, &ci, &best);
    double gain = p[best].speedup / p[ci].speedup;
    if (p[best].threads > (unsigned)b->cores && gain >= 1.5)
        row_verdict(r, V_HOLDS, "%u pthreads x%.1f faster than =cores", p[best].threads, gain);
    else
        row_verdict(r, V_FAILS, "more pthreads gained only x%.2f", gain);
}

/* ---- row 8: both together ---- */

#define MIXED_TASKS 1000

static void mixed_load(const struct bench *b, struct task_in *in, bool crashes)
{
    for (int i = 0; i < MIXED_TASKS; i++)
        in[i] = i % 2 ? task(T_SLEEP, 100000u) : task(T_SPIN, (uint64_t)(b->spin_per_ms / 20));
    if (crashes)
        for (int i = 100; i < MIXED_TASKS; i += 200)
            in[i] = task(T_CRASH, 0);
}

static int run_mixed(const struct bench *b, enum walls_placement placement, bool crashes,
                     struct summary *s, struct batch *last)
{
    static struct task_in in[MIXED_TASKS];
    mixed_load(b, in, crashes);
    walls_pool *pool;
    int rc = pool_open(&pool, placement, placement == WALLS_THREADS ? 0 : (unsigned)b->cores,
                       placement == WALLS_THREADS ? (unsigned)b->cores : 0, 0);
    if (rc != 0)
        return rc;
    int n = reps(b, 3, 9);
    double v[16];
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = run_batch(pool, in, MIXED_TASKS, NULL, last);
        v[i] = last->ns;
    }
    walls_pool_destroy(pool, 0);
    if (rc == 0)
        *s = summarize(v, n);
    return rc;
}

static void run_both(struct bench *b, struct row *r)
{
    walls_pool *pool;
    int hrc = pool_open(&pool, WALLS_HYBRID, 0, 0, 0);
    if (hrc == 0)
        walls_pool_destroy(pool, 0);
    row_line(r, "1000 tasks: 50 us compute / 0.1 ms sleep");
    struct summary st, sp, spc, sh;
    struct batch bt;
    int rc = run_mixed(b, WALLS_THREADS, false, &st, &bt);
    if (rc == 0)
        row_time(r, "threads_no_crashes", "threads, no crashes", st);
    else
        row_text(r, "threads_no_crashes", "threads, no crashes", "failed: %s",
                 walls_strerror(rc));
    rc = run_mixed(b, WALLS_PROCESSES, false, &sp, &bt);
    if (rc == 0)
        row_time(r, "processes_no_crashes", "processes, no crashes", sp);
    else
        row_text(r, "processes_no_crashes", "processes, no crashes", "failed: %s",
                 walls_strerror(rc));
    rc = run_mixed(b, WALLS_PROCESSES, true, &spc, &bt);
    if (rc == 0) {
        row_time(r, "processes_5_crashes", "processes, 5 crash", spc);
        row_line(r, "  %u ok, %u crashed", bt.by_status[WALLS_OK], bt.by_status[WALLS_CRASHED]);
        row_value(r, "processes_5_crashes_ok", "ok", "tasks",
                  one_value(bt.by_status[WALLS_OK]));
    } else {
        row_text(r, "processes_5_crashes", "processes, 5 crash", "failed: %s",
                 walls_strerror(rc));
    }
    row_line(r, "threads can't run the 5 crashers");
    if (hrc == -ENOTSUP) {
        row_text(r, "hybrid", "hybrid", "not built yet (ENOTSUP)");
        row_verdict(r, V_UNTESTED, "hybrid placement not built (ENOTSUP)");
        return;
    }
    if (hrc != 0) {
        row_text(r, "hybrid", "hybrid", "failed: %s", walls_strerror(hrc));
        row_verdict(r, V_ERROR, "hybrid pool: %s", errno_name(hrc));
        return;
    }
    rc = run_mixed(b, WALLS_HYBRID, true, &sh, &bt);
    if (rc != 0) {
        row_text(r, "hybrid", "hybrid", "failed: %s", walls_strerror(rc));
        row_verdict(r, V_ERROR, "hybrid run: %s", errno_name(rc));
        return;
    }
    row_time(r, "hybrid_5_crashes", "hybrid, 5 crash", sh);
    bool contained = bt.by_status[WALLS_CRASHED] == 5 &&
                     bt.by_status[WALLS_OK] + bt.by_status[WALLS_LOST] == MIXED_TASKS - 5;
    char th[48], tp[48];
    fmt_time(th, sizeof th, sh.med);
    fmt_time(tp, sizeof tp, spc.med);
    /* 5% is within this load's run-to-run noise. */
    if (contained && sh.med <= spc.med * 1.05)
        row_verdict(r, V_HOLDS, "hybrid contained the crashes in %s (processes %s)", th, tp);
    else if (contained)
        row_verdict(r, V_FAILS, "hybrid contained them but took %s, processes %s", th, tp);
    else
        row_verdict(r, V_FAILS, "hybrid did not contain the crashes (%u ok, %u crashed)",
                    bt.by_status[WALLS_OK], bt.by_status[WALLS_CRASHED]);
}

/* ---- the machine ---- */

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0 ||
            strncmp(line, "cpu model", 9) == 0) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, len, "%s", colon);
            break;
        }
    }
    fclose(f);
}

static void thp_mode(char *buf, size_t len)
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

/* The 1-minute load average: other work on the machine skews everything. */
static double load_average(void)
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

/* ---- calibration ---- */

/*
 * spin() iterations per millisecond of this thread's CPU time: wall time
 * would count the time other work on the machine holds the CPU, make the
 * loop look slow, and every "20 ms" task of row 6 come out shorter.
 */
static double thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return now_ns();
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double calibrate(void)
{
    uint64_t n = 1u << 16;
    double t;
    for (;;) {
        double t0 = thread_cpu_ns();
        spin_sink = spin(n);
        t = thread_cpu_ns() - t0;
        if (t >= 20e6 || n >= (1ull << 40))
            break;
        n *= 2;
    }
    for (int i = 0; i < 3; i++) {
        double t0 = thread_cpu_ns();
        spin_sink = spin(n);
        double d = thread_cpu_ns() - t0;
        if (d < t)
            t = d;
    }
    return (double)n / (t / 1e6);
}

/* ---- the text table ---- */

/*
 * Word-wraps text into lines of at most width columns (continuation lines
 * indented by indent); '\n' forces a break. Returns the number of lines.
 */
static int wrap(const char *text, int width, int indent, char out[][LINE_LEN], int max)
{
    int n = 0;
    char cur[LINE_LEN] = "";
    int cur_len = 0;
    const char *p = text;
    while (*p && n < max) {
        if (*p == '\n') {
            snprintf(out[n++], LINE_LEN, "%s", cur);
            cur[0] = '\0';
            cur_len = 0;
            p++;
            continue;
        }
        if (*p == ' ') {
            p++;
            continue;
        }
        int wlen = (int)strcspn(p, " \n");
        int room = width - (n > 0 ? indent : 0);
        if (cur_len > 0 && cur_len + 1 + wlen > room) {
            snprintf(out[n++], LINE_LEN, "%s", cur);
            cur[0] = '\0';
            cur_len = 0;
            continue;
        }
        if (cur_len == 0 && n > 0 && indent > 0) {
            room = width - indent;
        }
        if (wlen > room - cur_len - (cur_len ? 1 : 0))
            wlen = room - cur_len - (cur_len ? 1 : 0);
        if (wlen <= 0)
            wlen = 1;
        if (cur_len > 0)
            cur[cur_len++] = ' ';
        memcpy(cur + cur_len, p, (size_t)wlen);
        cur_len += wlen;
        cur[cur_len] = '\0';
        p += wlen;
    }
    if (cur_len > 0 && n < max)
        snprintf(out[n++], LINE_LEN, "%s", cur);
    for (int i = 1; i < n; i++) {
        if (indent > 0) {
            char tmp[LINE_LEN];
            snprintf(tmp, sizeof tmp, "%*s%s", indent, "", out[i]);
            snprintf(out[i], LINE_LEN, "%s", tmp);
        }
    }
    return n;
}

static const char *verdict_word(enum verdict v)
{
    switch (v) {
    case V_HOLDS: return "holds";
    case V_FAILS: return "does not hold here";
    case V_UNTESTED: return "not tested here";
    case V_ERROR: return "error";
    case V_NOT_RUN: break;
    }
    return "not run";
}

static void print_rule(void)
{
    for (int i = 0; i < COL_ID + COL_CLAIM + COL_SEED + COL_MEAS + COL_VERDICT + 4; i++)
        putchar('-');
    putchar('\n');
}

static void print_table(const struct bench *b, const char *model)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    long mem = meminfo_kib("MemTotal");
    char head[640];
    snprintf(head, sizeof head, "walls bench %s, %s run: median (min-max) of %s", walls_version(),
             b->full ? "full" : "quick", b->full ? "more runs" : "a few runs");
    printf("%.99s\n", head);
    snprintf(head, sizeof head, "%s; %d usable CPUs (%s); %s %s; %.1f GiB RAM", model, b->cores,
             b->cpu_source, u.sysname, u.release, mem > 0 ? (double)mem / 1048576 : 0.0);
    printf("%.99s\n", head);
    printf("load average %.2f before, %.2f after (other work on the machine skews timings)\n",
           b->load_start, b->load_end);
    print_rule();
    printf("%-*s %-*s %-*s %-*s %s\n", COL_ID, "#", COL_CLAIM, "claim", COL_SEED, "seed says",
           COL_MEAS, "measured here", "verdict");
    print_rule();
    for (int i = 0; i < NROWS; i++) {
        const struct row *r = &b->rows[i];
        if (!r->selected)
            continue;
        static char cl[WRAP_MAX][LINE_LEN], sd[WRAP_MAX][LINE_LEN], ms[WRAP_MAX * 2][LINE_LEN],
            vd[WRAP_MAX][LINE_LEN];
        int ncl = wrap(r->title, COL_CLAIM, 0, cl, WRAP_MAX);
        int nsd = wrap(r->seed, COL_SEED, 0, sd, WRAP_MAX);
        int nms = 0;
        for (int l = 0; l < r->nlines && nms < WRAP_MAX * 2; l++)
            nms += wrap(r->lines[l], COL_MEAS, 2, ms + nms, WRAP_MAX * 2 - nms);
        char verdict[320];
        snprintf(verdict, sizeof verdict, "%s%s%s", verdict_word(r->verdict),
                 r->reason[0] ? ": " : "", r->reason);
        int nvd = wrap(verdict, COL_VERDICT, 0, vd, WRAP_MAX);
        int h = ncl;
        if (nsd > h)
            h = nsd;
        if (nms > h)
            h = nms;
        if (nvd > h)
            h = nvd;
        for (int l = 0; l < h; l++) {
            char id[8] = "";
            if (l == 0)
                snprintf(id, sizeof id, "%d", r->id);
            char line[512];
            snprintf(line, sizeof line, "%-*s %-*s %-*s %-*s %s", COL_ID, id, COL_CLAIM,
                     l < ncl ? cl[l] : "", COL_SEED, l < nsd ? sd[l] : "", COL_MEAS,
                     l < nms ? ms[l] : "", l < nvd ? vd[l] : "");
            size_t len = strlen(line);
            while (len > 0 && line[len - 1] == ' ')
                line[--len] = '\0';
            printf("%s\n", line);
        }
        print_rule();
    }
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else if (*p >= 0x80)
            fputc('?', f); /* machine strings may not be UTF-8 */
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void print_json(const struct bench *b, const char *model)
{
    FILE *f = stdout;
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    char thp[64];
    thp_mode(thp, sizeof thp);
    fputs("{\n  \"tool\": \"walls bench\",\n  \"version\": ", f);
    json_str(f, walls_version());
    fprintf(f, ",\n  \"mode\": \"%s\",\n  \"machine\": {\n    \"cpu_model\": ",
            b->full ? "full" : "quick");
    json_str(f, model);
    fprintf(f, ",\n    \"usable_cpus\": %d,\n    \"cpu_source\": ", b->cores);
    json_str(f, b->cpu_source);
    fputs(",\n    \"kernel\": {\"sysname\": ", f);
    json_str(f, u.sysname);
    fputs(", \"release\": ", f);
    json_str(f, u.release);
    fputs(", \"version\": ", f);
    json_str(f, u.version);
    fputs(", \"machine\": ", f);
    json_str(f, u.machine);
    fputs("},\n    \"mem_total_kib\": ", f);
    json_num(f, (double)meminfo_kib("MemTotal"));
    fputs(",\n    \"mem_available_kib\": ", f);
    json_num(f, (double)meminfo_kib("MemAvailable"));
    fputs(",\n    \"load_average_1min_before\": ", f);
    json_num(f, b->load_start);
    fputs(",\n    \"load_average_1min_after\": ", f);
    json_num(f, b->load_end);
    fputs(",\n    \"transparent_hugepages\": ", f);
    json_str(f, thp);
    fputs("\n  },\n  \"calibration\": {\"spin_iterations_per_ms\": ", f);
    json_num(f, b->spin_per_ms);
    fputs("},\n  \"rows\": [", f);
    bool first_row = true;
    for (int i = 0; i < NROWS; i++) {
        const struct row *r = &b->rows[i];
        if (!r->selected)
            continue;
        fprintf(f, "%s\n    {\n      \"row\": %d,\n      \"claim\": ", first_row ? "" : ",",
                r->id);
        first_row = false;
        json_str(f, r->title);
        fputs(",\n      \"seed_says\": ", f);
        json_str(f, r->seed);
        fputs(",\n      \"verdict\": ", f);
        json_str(f, verdict_word(r->verdict));
        fputs(",\n      \"reason\": ", f);
        json_str(f, r->reason);
        fputs(",\n      \"seconds\": ", f);
        json_num(f, r->seconds);
        fputs(",\n      \"figures\": [", f);
        for (int k = 0; k < r->nfigs; k++) {
            const struct figure *fg = &r->figs[k];
            fprintf(f, "%s\n        {\"name\": ", k ? "," : "");
            json_str(f, fg->name);
            fputs(", \"label\": ", f);
            json_str(f, fg->label);
            if (fg->numeric) {
                fputs(", \"unit\": ", f);
                json_str(f, fg->unit);
                fputs(", \"median\": ", f);
                json_num(f, fg->s.med);
                fputs(", \"min\": ", f);
                json_num(f, fg->s.min);
                fputs(", \"max\": ", f);
                json_num(f, fg->s.max);
                fprintf(f, ", \"n\": %d}", fg->s.n);
            } else {
                fputs(", \"text\": ", f);
                json_str(f, fg->text);
                fputc('}', f);
            }
        }
        fputs(r->nfigs ? "\n      ],\n      \"lines\": [" : "],\n      \"lines\": [", f);
        for (int k = 0; k < r->nlines; k++) {
            fputs(k ? ", " : "", f);
            json_str(f, r->lines[k]);
        }
        fputs("]\n    }", f);
    }
    fputs("\n  ]\n}\n", f);
}

/* ---- HTML ---- */

static void html_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Horizontal bars of a row's timings on a log scale, with min-max whiskers. */
static void svg_log_bars(FILE *f, const char *title, const struct row *r)
{
    const struct figure *fg[MAX_FIGS];
    int n = 0;
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < r->nfigs; i++) {
        if (!r->figs[i].numeric || strcmp(r->figs[i].unit, "ns") != 0 || r->figs[i].s.min <= 0)
            continue;
        fg[n++] = &r->figs[i];
        if (r->figs[i].s.min < lo)
            lo = r->figs[i].s.min;
        if (r->figs[i].s.max > hi)
            hi = r->figs[i].s.max;
    }
    if (n == 0)
        return;
    double l0 = floor(log10(lo)), l1 = ceil(log10(hi));
    if (l1 <= l0)
        l1 = l0 + 1;
    const int left = 250, plot = 560, bar = 22, gap = 10, top = 40;
    int height = top + n * (bar + gap) + 40;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", left + plot + 120, height);
    fputs("<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">", f);
    html_esc(f, title);
    fputs(" (log scale; bar = median, line = min-max)</text>\n", f);
    for (double d = l0; d <= l1; d++) {
        double x = left + (d - l0) / (l1 - l0) * plot;
        char t[48];
        fmt_time(t, sizeof t, pow(10, d));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ccc\"/>\n", x,
                top - 5, x, height - 30);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x,
                height - 14, t);
    }
    for (int i = 0; i < n; i++) {
        int y = top + i * (bar + gap);
        double xm = left + (log10(fg[i]->s.med) - l0) / (l1 - l0) * plot;
        double xa = left + (log10(fg[i]->s.min) - l0) / (l1 - l0) * plot;
        double xb = left + (log10(fg[i]->s.max) - l0) / (l1 - l0) * plot;
        bool proc = strstr(fg[i]->name, "process") || strstr(fg[i]->name, "fork") ||
                    strstr(fg[i]->name, "spawn");
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 8, y + bar / 2 + 4);
        html_esc(f, fg[i]->label);
        fputs("</text>\n", f);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y,
                xm - left > 1 ? xm - left : 1, bar, proc ? "#d9822b" : "#2b7bd9");
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\"/>\n", xa,
                y + bar / 2, xb, y + bar / 2);
        char t[128];
        fmt_summary(t, sizeof t, fg[i]->s);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\">%s</text>\n", xb + 6, y + bar / 2 + 4, t);
    }
    fputs("</svg>\n", f);
}

/* The plot area of a scaling chart, and its two log2 axes. */
struct chart {
    int left, top, w, h;
    double xmax;   /* log2 of the largest thread count */
    double l0, l1; /* log2 of the lowest and highest speedup shown */
};

static double chart_x(const struct chart *c, unsigned threads)
{
    return c->left + log2((double)threads) / c->xmax * c->w;
}

static double chart_y(const struct chart *c, double speedup)
{
    return c->top + c->h - (log2(speedup) - c->l0) / (c->l1 - c->l0) * c->h;
}

static void svg_line(FILE *f, const struct chart *c, const struct point *p, int n,
                     const char *color)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (int i = 0; i < n; i++)
        fprintf(f, "%.1f,%.1f ", chart_x(c, p[i].threads), chart_y(c, p[i].speedup));
    fputs("\"/>\n", f);
}

/*
 * The points of one series and their values. A value goes above its point
 * when the other series is lower there (or equal, if above_on_tie), else
 * below, so the two series' values never sit on each other; the ones at the
 * ends of the x axis lean inwards, clear of the axis labels. A white halo
 * keeps a value readable where a line runs behind it.
 */
static void svg_points(FILE *f, const struct chart *c, const struct point *p, int n,
                       const struct point *other, int nother, const char *color,
                       bool above_on_tie)
{
    for (int i = 0; i < n; i++) {
        double x = chart_x(c, p[i].threads), y = chart_y(c, p[i].speedup);
        bool above = above_on_tie;
        for (int j = 0; j < nother; j++) {
            if (other[j].threads == p[i].threads && other[j].speedup != p[i].speedup)
                above = other[j].speedup < p[i].speedup;
        }
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x, y, color);
        /* One thread is x1.00 by definition: said once, below the point. */
        if (p[i].threads == 1 && above)
            continue;
        const char *anchor = "middle";
        double tx = x;
        if (i == 0 && p[i].threads == 1) {
            anchor = "start";
            tx = x + 6;
        } else if (i == n - 1) {
            anchor = "end";
            tx = x - 6;
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\" stroke=\"#fff\" "
                   "stroke-width=\"3\" paint-order=\"stroke\">x%.2f</text>\n",
                tx, above ? y - 9 : y + 18, anchor, p[i].threads == 1 ? "#444" : color,
                p[i].speedup);
    }
}

/*
 * Speedup against thread count, both axes log2 (ideal scaling is then a
 * straight line): walls pool and plain pthreads.
 */
static void svg_scaling(FILE *f, const char *title, const struct point *p, int n,
                        const struct point *raw, int nraw, int cores)
{
    if (n == 0 || nraw == 0)
        return;
    struct chart c = {70, 40, 520, 260, log2((double)p[n - 1].threads), 0, 1};
    if (c.xmax <= 0)
        c.xmax = 1;
    double lo = 1, hi = cores;
    for (int i = 0; i < n; i++) {
        lo = fmin(lo, p[i].speedup);
        hi = fmax(hi, p[i].speedup);
    }
    for (int i = 0; i < nraw; i++) {
        lo = fmin(lo, raw[i].speedup);
        hi = fmax(hi, raw[i].speedup);
    }
    /* Whole powers of two, with room for the values above and below. */
    c.l0 = floor(log2(lo / 1.4));
    c.l1 = ceil(log2(hi * 1.3));
    if (c.l1 <= c.l0)
        c.l1 = c.l0 + 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", c.left + c.w + 110,
            c.top + c.h + 50);
    fputs("<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">", f);
    html_esc(f, title);
    fputs(" (log scales)</text>\n", f);
    int step = c.l1 - c.l0 > 8 ? 2 : 1;
    for (double e = c.l0; e <= c.l1; e += step) {
        double y = chart_y(&c, exp2(e));
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">x%g</text>\n",
                c.left, y, c.left + c.w, y, c.left - 8, y + 4, exp2(e));
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
               "stroke=\"#999\"/>\n", c.left, c.top, c.w, c.h);
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%u</text>\n",
                chart_x(&c, p[i].threads), c.top + c.h + 18, p[i].threads);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">threads</text>\n",
            c.left + c.w / 2, c.top + c.h + 38);
    double yc = chart_y(&c, cores);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#888\" "
               "stroke-dasharray=\"5,4\"/>\n<text x=\"%d\" y=\"%.1f\">x%d = cores</text>\n",
            c.left, yc, c.left + c.w, yc, c.left + c.w + 6, yc + 4, cores);
    svg_line(f, &c, raw, nraw, "#3a9d3a");
    svg_line(f, &c, p, n, "#2b7bd9");
    svg_points(f, &c, raw, nraw, p, n, "#3a9d3a", true);
    svg_points(f, &c, p, n, raw, nraw, "#2b7bd9", false);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#3a9d3a\">plain pthreads"
               "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#2b7bd9\">"
               "walls thread pool</text>\n",
            c.left + c.w - 130, c.top - 8, c.left + c.w, c.top - 8);
    fputs("</svg>\n", f);
}

static void svg_stack(FILE *f, int y, const char *label, const double *parts,
                      const char *const *colors, const char *const *names, int nparts)
{
    const int left = 200, w = 500;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 8, y + 16);
    html_esc(f, label);
    fputs("</text>\n", f);
    double x = left;
    for (int i = 0; i < nparts; i++) {
        double pw = parts[i] / CRASH_TASKS * w;
        if (pw <= 0)
            continue;
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"24\" fill=\"%s\">"
                   "<title>%.0f %s</title></rect>\n", x, y, pw < 2 ? 2 : pw, colors[i],
                parts[i], names[i]);
        x += pw;
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\">", left + w + 8, y + 16);
    for (int i = 0; i < nparts; i++)
        fprintf(f, "%s%.0f %s", i ? ", " : "", parts[i], names[i]);
    fputs("</text>\n", f);
}

static void svg_crash(FILE *f, const struct bench *b)
{
    if (!b->crash_thr_ran && !b->crash_proc_ran)
        return;
    static const char *const colors[] = {"#3a9d3a", "#d62728", "#aaaaaa"};
    fputs("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1000\" height=\"130\" "
          "font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" "
          "font-size=\"15\" font-weight=\"bold\">A crash: outcomes of 100 tasks, one of which "
          "segfaults</text>\n", f);
    if (b->crash_thr_ran) {
        static const char *const names[] = {"finished", "crashed", "lost with the host"};
        double parts[] = {b->crash_thr_done, 1, CRASH_TASKS - 1 - b->crash_thr_done};
        svg_stack(f, 40, b->crash_thr_host_died ? "threads (host died)" : "threads",
                  parts, colors, names, 3);
    }
    if (b->crash_proc_ran) {
        static const char *const names[] = {"ok", "crashed", "other"};
        double parts[] = {b->crash_proc_ok, b->crash_proc_crashed, b->crash_proc_other};
        svg_stack(f, 80, "processes", parts, colors, names, 3);
    }
    fputs("</svg>\n", f);
}

static int write_html(const struct bench *b, const char *model, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>walls bench</title>\n<style>\n"
          "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\n"
          "table{border-collapse:collapse;font-size:13px}\n"
          "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}\n"
          "td.m{font-family:monospace;white-space:pre}\n"
          ".holds{background:#e3f4e3}.fails{background:#fde2e2}.untested{background:#eee}\n"
          "svg{display:block;margin:1.5em 0}\n</style></head><body>\n<h1>walls bench</h1>\n<p>",
          f);
    html_esc(f, model);
    fprintf(f, "; %d usable CPUs (", b->cores);
    html_esc(f, b->cpu_source);
    fputs("); ", f);
    html_esc(f, u.sysname);
    fputc(' ', f);
    html_esc(f, u.release);
    fprintf(f, "; load average %.2f before, %.2f after; %s run; walls %s. Figures are "
               "median (min-max), all measured in this run.</p>\n", b->load_start, b->load_end,
            b->full ? "full" : "quick", walls_version());
    fputs("<table><tr><th>#</th><th>claim</th><th>seed says</th><th>measured here</th>"
          "<th>verdict</th></tr>\n", f);
    for (int i = 0; i < NROWS; i++) {
        const struct row *r = &b->rows[i];
        if (!r->selected)
            continue;
        const char *cls = r->verdict == V_HOLDS   ? "holds"
                          : r->verdict == V_FAILS ? "fails"
                                                  : "untested";
        fprintf(f, "<tr><td>%d</td><td>", r->id);
        html_esc(f, r->title);
        fputs("</td><td>", f);
        html_esc(f, r->seed);
        fputs("</td><td class=\"m\">", f);
        for (int l = 0; l < r->nlines; l++) {
            html_esc(f, r->lines[l]);
            fputc('\n', f);
        }
        fprintf(f, "</td><td class=\"%s\"><b>%s</b>", cls, verdict_word(r->verdict));
        if (r->reason[0]) {
            fputs(": ", f);
            html_esc(f, r->reason);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (b->rows[0].selected)
        svg_log_bars(f, "Creating workers", &b->rows[0]);
    if (b->rows[1].selected)
        svg_log_bars(f, "One round trip", &b->rows[1]);
    if (b->rows[2].selected)
        svg_crash(f, b);
    if (b->rows[5].selected)
        svg_scaling(f, "CPU-bound: 8 tasks of 20 ms, speedup vs 1 thread", b->cpu, b->ncpu,
                    b->cpu_raw, b->ncpu_raw, b->cores);
    if (b->rows[6].selected)
        svg_scaling(f, "IO-bound: 64 tasks sleeping 10 ms, speedup vs 1 thread", b->io, b->nio,
                    b->io_raw, b->nio_raw, b->cores);
    fputs("</body></html>\n", f);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* ---- options and main ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: walls bench [--quick | --full] [--only ROWS] [--json] [--html FILE]\n"
            "\n"
            "Measures the seed's threads-versus-processes claims on this machine and\n"
            "prints one table: claim, what the seed says, what was measured here\n"
            "(median, min-max), and a verdict.\n"
            "\n"
            "  --quick        few repetitions, under a minute (the default)\n"
            "  --full         more repetitions\n"
            "  --only ROWS    run only these rows, e.g. --only 1,2 (rows 1-8)\n"
            "  --json         print every figure as JSON instead of the table\n"
            "  --html FILE    also write a self-contained HTML report with charts\n"
            "  -h, --help     show this help\n"
            "\n"
            "rows: 1 creating workers, 2 talking, 3 a crash, 4 untrusted code,\n"
            "      5 sharing big data, 6 CPU-bound work, 7 IO-bound work, 8 both together\n");
}

static int parse_only(const char *s, bool *sel)
{
    bool any = false;
    for (int i = 0; i < NROWS; i++)
        sel[i] = false;
    while (*s) {
        if (*s < '1' || *s > '0' + NROWS || (s[1] != ',' && s[1] != '\0'))
            return -1;
        sel[*s - '1'] = true;
        any = true;
        s++;
        if (*s == ',') {
            s++;
            if (*s == '\0')
                return -1;
        }
    }
    return any ? 0 : -1;
}

static void init_rows(struct bench *b)
{
    static const char *const titles[NROWS] = {
        "creating workers", "talking", "a crash", "untrusted code", "sharing big data",
        "CPU-bound work", "IO-bound work", "both together",
    };
    static const char *const seeds[NROWS] = {
        "processes: 1-10 ms to create; threads: 10-100 us",
        "threads: instant communication; processes: IPC overhead",
        "processes contain crashes; threads don't",
        "untrusted code: put it in a separate process",
        "copying big data between processes: absurdly slow",
        "threads = cores; more threads just waste time switching",
        "IO-bound: more threads than cores is fine",
        "real systems use both: processes for isolation, threads within",
    };
    for (int i = 0; i < NROWS; i++) {
        b->rows[i].id = i + 1;
        b->rows[i].title = titles[i];
        b->rows[i].seed = seeds[i];
        b->rows[i].selected = true;
    }
}

int walls_bench_main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    bool only_given = false;
    bool sel[NROWS];
    init_rows(b);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) {
            b->full = false;
        } else if (strcmp(a, "--full") == 0) {
            b->full = true;
        } else if (strcmp(a, "--json") == 0) {
            b->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--only") == 0 || strncmp(a, "--only=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || parse_only(v, sel) != 0) {
                fprintf(stderr, "walls bench: --only wants row numbers 1-%d, e.g. 1,2\n", NROWS);
                usage(stderr);
                return 2;
            }
            only_given = true;
        } else if (strcmp(a, "--html") == 0 || strncmp(a, "--html=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                fprintf(stderr, "walls bench: --html wants a file name\n");
                usage(stderr);
                return 2;
            }
            b->html = v;
        } else {
            fprintf(stderr, "walls bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (only_given)
        for (int i = 0; i < NROWS; i++)
            b->rows[i].selected = sel[i];

    /* Crashes here are on purpose: no core files, here or in workers. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0) {
        rl.rlim_cur = 0;
        setrlimit(RLIMIT_CORE, &rl);
    }
    /* Start the fork server while this program is still single-threaded. */
    b->init_rc = walls_init();
    if (b->init_rc != 0)
        fprintf(stderr, "walls bench: walls_init: %s (process rows will fail)\n",
                walls_strerror(b->init_rc));
    b->cores = walls_cpu_source(b->cpu_source, sizeof b->cpu_source);
    if (b->cores < 1)
        b->cores = walls_cpu_count();
    char model[256];
    cpu_model(model, sizeof model);
    b->load_start = load_average();
    fprintf(stderr, "walls bench: calibrating...\n");
    b->spin_per_ms = calibrate();

    static void (*const runs[NROWS])(struct bench *, struct row *) = {
        run_create, run_talk, run_crash, run_untrusted, run_share, run_cpu, run_io, run_both,
    };
    int status = 0;
    for (int i = 0; i < NROWS; i++) {
        struct row *r = &b->rows[i];
        if (!r->selected)
            continue;
        fprintf(stderr, "walls bench: row %d/%d %s...\n", r->id, NROWS, r->title);
        double t0 = now_ns();
        runs[i](b, r);
        r->seconds = (now_ns() - t0) / 1e9;
        if (r->verdict == V_ERROR)
            status = 1;
    }
    b->load_end = load_average();
    if (b->json)
        print_json(b, model);
    else
        print_table(b, model);
    fflush(stdout);
    if (b->html) {
        int rc = write_html(b, model, b->html);
        if (rc != 0) {
            fprintf(stderr, "walls bench: cannot write %s: %s\n", b->html, strerror(-rc));
            status = 1;
        }
    }
    if (b->init_rc == 0)
        walls_fini();
    return status;
}
