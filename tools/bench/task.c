/*
 * task.c - the work `walls bench` gives its pools. One task function
 * serves every row and every placement; its input says what to do (nothing,
 * compute, sleep, crash, sum a buffer, or probe what it may touch), so a
 * thread pool and a process pool run exactly the same code.
 */
#define _GNU_SOURCE
#include "row.h"
#include "task.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Read at run time so the compiler cannot see the fault coming. */
static volatile uintptr_t fault_address = 8;


void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t sum_words(const uint64_t *p, size_t bytes)
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

/* Reads /etc/passwd and opens an AF_INET socket, as hostile code would try. */
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

int bench_task(struct walls_call *call)
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

struct task_in task(enum task_kind kind, uint64_t amount)
{
    struct task_in in = {.kind = kind, .amount = amount};
    return in;
}

int pool_open(walls_pool **pool, enum walls_placement placement, unsigned procs,
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

int run_batch(walls_pool *pool, const struct task_in *in, size_t n, const uint64_t *expect,
              const struct walls_task_opts *opts, struct batch *out)
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

int run_one(walls_pool *pool, struct task_in in, struct walls_result *res, void *out, size_t cap)
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

int round_trips(walls_pool *pool, int n, struct summary *s)
{
    double *v = calloc((size_t)n, sizeof *v);
    if (!v)
        return -ENOMEM;
    int rc = 0;
    struct walls_result res;
    for (int i = 0; rc == 0 && i < n + n / 10; i++) {
        double t0 = now_ns();
        rc = run_one(pool, task(T_EMPTY, 0), &res, NULL, 0);
        if (rc == 0 && res.status != WALLS_OK)
            rc = -EPROTO;
        if (i >= n / 10)
            v[i - n / 10] = now_ns() - t0;
    }
    if (rc == 0)
        *s = summarize(v, n);
    free(v);
    return rc;
}
