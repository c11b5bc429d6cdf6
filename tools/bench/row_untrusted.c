/*
 * row_untrusted.c - row 4, untrusted code. The seed says to put untrusted
 * code in a separate process. A task tries what hostile code would: read
 * /etc/passwd and open an AF_INET socket, as a thread, in a plain worker
 * process, and in a worker of a pool asked for WALLS_NEED_UNTRUSTED. The
 * row also measures what the strict sandbox costs: empty tasks through an
 * unsandboxed and a strict-sandboxed process pool, in alternating rounds
 * so that both see the same machine.
 */
#define _GNU_SOURCE
#include "row.h"
#include "svg.h"
#include "task.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUNDS 7

/* What the probe found in each placement, for the chart. */
enum { PROBE_THREAD, PROBE_PLAIN, PROBE_SANDBOXED, NPROBES };
static struct probe_seen {
    bool tried;
    int rc; /* of creating the pool and waiting for the task */
    enum walls_status status;
    int code;
    struct probe_out po;
} seen[NPROBES];

static void fmt_probe(char *buf, size_t len, const struct probe_out *po)
{
    char a[64];
    if (po->read_bytes >= 0)
        snprintf(a, sizeof a, "read %" PRId64 " bytes", po->read_bytes);
    else
        snprintf(a, sizeof a, "open %s", errno_name(po->open_err));
    snprintf(buf, len, "%s, socket %s", a, po->socket_err ? errno_name(po->socket_err) : "fd ok");
}

static int probe_in(int which, enum walls_placement placement, unsigned needs,
                    struct probe_out *po, struct walls_result *res)
{
    walls_pool *pool;
    int rc = pool_open(&pool, placement, placement == WALLS_THREADS ? 0 : 1,
                       placement == WALLS_THREADS ? 1 : 0, needs);
    if (rc == 0) {
        rc = run_one(pool, task(T_PROBE, 0), res, po, sizeof *po);
        walls_pool_destroy(pool, 0);
    }
    seen[which] = (struct probe_seen){true, rc, rc == 0 ? res->status : WALLS_OK,
                                      rc == 0 ? res->code : 0, *po};
    return rc;
}

/*
 * One round of the sandbox's cost at one sandbox level: round trips on a
 * one-worker pool, then the throughput of a batch of tasks on two workers.
 */
static int sandbox_round(unsigned sandbox, int trips, int tasks, struct summary *rt,
                         double *tput)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .sandbox = sandbox};
    walls_pool *pool;
    int rc = walls_pool_create(&pool, &o);
    if (rc != 0)
        return rc;
    rc = round_trips(pool, trips, rt);
    walls_pool_destroy(pool, 0);
    struct task_in *in = calloc((size_t)tasks, sizeof *in);
    if (rc == 0 && !in)
        rc = -ENOMEM;
    o.processes = 2;
    if (rc == 0)
        rc = walls_pool_create(&pool, &o);
    if (rc == 0) {
        for (int i = 0; i < tasks; i++)
            in[i] = task(T_EMPTY, 0);
        struct batch bt;
        rc = run_batch(pool, in, (size_t)tasks, NULL, NULL, &bt);
        if (rc == 0 && bt.by_status[WALLS_OK] != (unsigned)tasks)
            rc = -EPROTO;
        if (rc == 0)
            *tput = (double)tasks / (bt.ns / 1e9);
        walls_pool_destroy(pool, 0);
    }
    free(in);
    return rc;
}

static void sandbox_cost(const struct bench *b, struct row *r)
{
    static const unsigned levels[2] = {WALLS_SANDBOX_NONE, WALLS_SANDBOX_STRICT};
    int rounds = reps(b, 3, 7), trips = reps(b, 300, 1000), tasks = reps(b, 5000, 20000);
    double rt_med[2][MAX_ROUNDS], tput[2][MAX_ROUNDS];
    for (int k = 0; k < rounds; k++) {
        for (int l = 0; l < 2; l++) {
            struct summary s;
            int rc = sandbox_round(levels[l], trips, tasks, &s, &tput[l][k]);
            if (rc != 0) {
                row_failure(r, 0, l ? "strict_cost" : "plain_cost",
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
    row_time(r, 0, "rt_processes_unsandboxed", "empty task round trip, unsandboxed processes",
             rt[0]);
    row_time(r, 0, "rt_processes_strict", "empty task round trip, strict-sandboxed processes",
             rt[1]);
    row_value(r, "tput_processes_unsandboxed", "throughput, unsandboxed processes", "tasks/s",
              tp[0]);
    row_value(r, "tput_processes_strict", "throughput, strict-sandboxed processes", "tasks/s",
              tp[1]);
    row_line(r, 0, "throughput, 2 workers: unsandboxed %.0f tasks/s, strict %.0f tasks/s",
             tp[0].med, tp[1].med);
    row_line(r, 0, "strict sandbox: round trip x%.2f the unsandboxed (target <= 1.1), "
                   "throughput x%.2f", rt[1].med / rt[0].med, tp[1].med / tp[0].med);
}

/* A probe's line, or why there is none; true when the task ran. */
static bool probe_line(struct row *r, const char *name, const char *label, int rc,
                       const struct walls_result *res, const struct probe_out *po)
{
    char buf[96];
    if (rc == 0 && res->status == WALLS_OK) {
        fmt_probe(buf, sizeof buf, po);
        row_text(r, 0, name, label, "%s", buf);
        return true;
    }
    row_failure(r, 0, name, label, "failed: %s",
                rc ? walls_strerror(rc) : walls_status_name(res->status));
    return false;
}

static void run(const struct bench *b, struct row *r)
{
    struct probe_out po;
    struct walls_result res;
    memset(&po, 0, sizeof po);
    int rc = probe_in(PROBE_THREAD, WALLS_THREADS, 0, &po, &res);
    bool thr_open = probe_line(r, "threads_probe", "thread task", rc, &res, &po) &&
                    (po.read_bytes >= 0 || po.socket_err == 0);
    rc = probe_in(PROBE_PLAIN, WALLS_PROCESSES, 0, &po, &res);
    probe_line(r, "plain_process_probe", "plain process worker", rc, &res, &po);
    rc = probe_in(PROBE_SANDBOXED, WALLS_PROCESSES, WALLS_NEED_UNTRUSTED, &po, &res);
    if (rc == 0)
        sandbox_cost(b, r);
    if (rc == -ENOTSUP) {
        row_text(r, 0, "sandboxed_process_probe", "sandboxed process",
                 "the kernel refuses part of the strict sandbox (pool create: ENOTSUP)");
        row_verdict(r, V_UNTESTED, "strict sandbox refused by this kernel (ENOTSUP)%s",
                    thr_open ? "; threads read secrets" : "");
        return;
    }
    if (rc != 0) {
        row_failure(r, 0, "sandboxed_process_probe", "sandboxed process", "failed: %s",
                    walls_strerror(rc));
        row_verdict(r, V_ERROR, "sandboxed pool: %s", errno_name(rc));
        return;
    }
    bool stopped = res.status != WALLS_OK || (po.read_bytes < 0 && po.socket_err != 0);
    if (res.status == WALLS_OK) {
        char buf[96];
        fmt_probe(buf, sizeof buf, &po);
        row_text(r, 0, "sandboxed_process_probe", "sandboxed process", "%s", buf);
    } else {
        row_text(r, 0, "sandboxed_process_probe", "sandboxed process", "task %s (code %d)",
                 walls_status_name(res.status), res.code);
    }
    if (stopped && thr_open)
        row_verdict(r, V_HOLDS, "sandbox stopped what threads allowed");
    else if (!stopped)
        row_verdict(r, V_FAILS, "sandboxed task still got through");
    else
        row_verdict(r, V_FAILS, "threads were stopped too");
}

#define CELL_ALLOWED "#fde9b8"
#define CELL_REFUSED "#e4e4e4"

/* One cell of the probe grid, w wide, its words on a fill that says yes or no. */
static void cell(FILE *f, int x, int y, int w, bool allowed, const char *text)
{
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"24\" fill=\"%s\"/>\n"
               "<text x=\"%d\" y=\"%d\">", x, y, w - 4, allowed ? CELL_ALLOWED : CELL_REFUSED,
            x + 8, y + 16);
    html_esc(f, text);
    fputs("</text>\n", f);
}

/* What the probe could do in each placement: a row of cells each. */
static void probe_grid(FILE *f)
{
    static const struct {
        const char *label, *color;
    } who[NPROBES] = {
        {"thread task", COLOR_THREADS},
        {"plain process worker", COLOR_PROCESSES},
        {"sandboxed process worker", COLOR_PROCESSES},
    };
    static const struct legend_item legend[] = {
        {CELL_ALLOWED, "allowed", MARK_SQUARE},
        {CELL_REFUSED, "refused or stopped", MARK_SQUARE},
    };
    const int left = 220, col = 280, top = 74;
    svg_open(f, left + 2 * col + 20, top + NPROBES * 30 + 8,
             "What a task could reach, by where it ran");
    svg_legend(f, 0, 38, legend, 2);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">read /etc/passwd</text>\n"
               "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">open an AF_INET socket</text>\n",
            left + 8, top - 8, left + col + 8, top - 8);
    for (int i = 0; i < NPROBES; i++) {
        const struct probe_seen *p = &seen[i];
        int y = top + i * 30;
        char a[96], b[96];
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"%s\">%s</text>\n",
                left - 10, y + 16, who[i].color, who[i].label);
        if (!p->tried)
            continue;
        if (p->rc != 0) {
            snprintf(a, sizeof a, "no pool: %s", errno_name(p->rc));
            cell(f, left, y, 2 * col, false, a);
        } else if (p->status == WALLS_VIOLATION) {
            snprintf(a, sizeof a, "task stopped by the sandbox at %s()",
                     walls_syscall_name(p->code));
            cell(f, left, y, 2 * col, false, a);
        } else if (p->status != WALLS_OK) {
            snprintf(a, sizeof a, "task ended %s (code %d)", walls_status_name(p->status),
                     p->code);
            cell(f, left, y, 2 * col, false, a);
        } else {
            if (p->po.read_bytes >= 0)
                snprintf(a, sizeof a, "read %" PRId64 " bytes", p->po.read_bytes);
            else
                snprintf(a, sizeof a, "refused: %s", errno_name(p->po.open_err));
            if (p->po.socket_err == 0)
                snprintf(b, sizeof b, "got a socket");
            else
                snprintf(b, sizeof b, "refused: %s", errno_name(p->po.socket_err));
            cell(f, left, y, col, p->po.read_bytes >= 0, a);
            cell(f, left + col, y, col, p->po.socket_err == 0, b);
        }
    }
    svg_close(f);
}

/* The probe grid, then what the strict sandbox costs. */
static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    static const struct series trips[] = {
        {"rt_processes_unsandboxed", COLOR_PROCESSES, NULL},
        {"rt_processes_strict", COLOR_PROCESSES, NULL},
    };
    (void)b;
    probe_grid(f);
    svg_figure_dots(f, "What the strict sandbox costs: empty task round trip", r, trips, 2,
                    AXIS_LOG, NULL, 0);
    struct dot tput[2];
    int n = figure_dot(r, "tput_processes_unsandboxed", COLOR_PROCESSES, &tput[0]);
    n += figure_dot(r, "tput_processes_strict", COLOR_PROCESSES, &tput[n]);
    svg_dots(f, "... and throughput, 2 workers", tput, n, AXIS_LINEAR, "tasks/s", NULL, 0);
}

const struct bench_row row_untrusted = {
    .number = 4,
    .title = "untrusted code",
    .seed_claim = "untrusted code: put it in a separate process",
    .run = run,
    .chart = chart,
};
