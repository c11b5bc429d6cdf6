/*
 * row_crash.c - row 3, a crash. The seed says processes contain crashes
 * and threads do not. 100 tasks of about 1 ms, the 51st of which writes
 * through a bad pointer. In thread placement this runs in a throwaway
 * forked host, which the crash is expected to kill: the row counts the
 * other tasks that finished first in shared memory. In process placement
 * it runs in the bench itself, and the pool should lose only that task and
 * go on serving.
 */
#define _GNU_SOURCE
#include "row.h"
#include "svg.h"
#include "task.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CRASH_TASKS 100
#define CRASH_INDEX 50
#define MAX_RUNS 8

/* The outcomes the chart shows: medians over the runs. */
static struct {
    bool thr_ran, thr_host_died, proc_ran;
    double thr_done, proc_ok, proc_crashed, proc_other;
} outcome;

/* Outcome of one crash run in a throwaway host process. */
struct thr_crash {
    bool died;     /* the host was killed by a signal */
    int signal;
    uint32_t done; /* other tasks that finished before it died */
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
        run_batch(pool, in, CRASH_TASKS, NULL, NULL, &bt);
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
    out->done = __atomic_load_n(counter, __ATOMIC_ACQUIRE);
    munmap(counter, 4096);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        return -ECHILD;
    return 0;
}

/* Thread placement, n times; true when the host died every time. */
static bool crash_threads(const struct bench *b, struct row *r, int n)
{
    double done[MAX_RUNS];
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
    if (err != 0) {
        row_failure(r, 0, "threads_outcome", "threads", "failed: %s", strerror(-err));
        return false;
    }
    struct summary s = summarize(done, n);
    row_value(r, "threads_others_finished", "threads: others finished", "tasks", s);
    outcome.thr_ran = true;
    outcome.thr_host_died = all_died;
    outcome.thr_done = s.med;
    if (any_died)
        row_text(r, 0, "threads_host", "threads", "host died (SIG%s)",
                 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    else
        row_text(r, 0, "threads_host", "threads", "host survived");
    if (n > 1)
        row_line(r, 1, "%.0f of 99 others done (%.0f-%.0f), rest lost", s.med, s.min, s.max);
    else
        row_line(r, 1, "%.0f of 99 others done, %.0f lost", s.med, 99 - s.med);
    return all_died;
}

static void run(const struct bench *b, struct row *r)
{
    int n = reps(b, 1, 3);
    bool thr_ok = crash_threads(b, r, n);

    /* Process placement, directly in the bench. */
    walls_pool *pool;
    int rc = pool_open(&pool, WALLS_PROCESSES, 0, 0, 0);
    if (rc != 0) {
        row_failure(r, 0, "processes_outcome", "processes", "pool failed: %s", walls_strerror(rc));
        row_verdict(r, V_ERROR, "no process pool: %s", errno_name(rc));
        return;
    }
    struct task_in in[CRASH_TASKS];
    for (int i = 0; i < CRASH_TASKS; i++)
        in[i] = task(T_SPIN, (uint64_t)b->spin_per_ms);
    in[CRASH_INDEX] = task(T_CRASH, 0);
    bool proc_ok = true;
    double ok[MAX_RUNS], crashed[MAX_RUNS], times[MAX_RUNS];
    int crash_code = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct batch bt;
        rc = run_batch(pool, in, CRASH_TASKS, NULL, NULL, &bt);
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
        row_failure(r, 0, "processes_outcome", "processes", "failed: %s", walls_strerror(rc));
        row_verdict(r, V_ERROR, "process batch failed: %s", errno_name(rc));
        return;
    }
    struct summary sok = summarize(ok, n), scr = summarize(crashed, n);
    row_value(r, "processes_ok", "processes: ok", "tasks", sok);
    row_value(r, "processes_crashed", "processes: crashed", "tasks", scr);
    row_value(r, "processes_restarts", "processes: worker restarts", "",
              one_value((double)st.restarts));
    outcome.proc_ran = true;
    outcome.proc_ok = sok.med;
    outcome.proc_crashed = scr.med;
    outcome.proc_other = CRASH_TASKS - sok.med - scr.med;
    const char *signame =
        crash_code > 0 && sigabbrev_np(crash_code) ? sigabbrev_np(crash_code) : "?";
    row_text(r, 0, "processes_outcome", "processes", "%.0f ok, %.0f crashed (SIG%s)", sok.med,
             scr.med, signame);
    row_text(r, 1, "processes_pool_serves", "pool after", "%s",
             serves ? "still serves" : "does not serve");
    row_time(r, 1, "processes_batch_time", "100 tasks took", summarize(times, n));
    proc_ok = proc_ok && serves;

    if (thr_ok && proc_ok)
        row_verdict(r, V_HOLDS, "thread host died; process pool lost 1 task only");
    else if (!proc_ok)
        row_verdict(r, V_FAILS, "process pool did not contain it");
    else
        row_verdict(r, V_FAILS, "thread host survived the crash");
}

/* What became of a task, in the chart's bars and legend. */
static const struct legend_item fates[] = {
    {"#3a9d3a", "finished", MARK_SQUARE},
    {"#d62728", "crashed", MARK_SQUARE},
    {"#aaaaaa", "lost: never finished", MARK_SQUARE},
};

/* One placement's bar: the 100 tasks split by what became of them. */
static void stack(FILE *f, int y, const char *label, const char *color, const double *parts)
{
    const int left = 220, w = 440;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"%s\">", left - 10, y + 16,
            color);
    html_esc(f, label);
    fputs("</text>\n", f);
    double x = left;
    for (int i = 0; i < 3; i++) {
        double pw = parts[i] / CRASH_TASKS * w;
        if (pw <= 0)
            continue;
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"24\" fill=\"%s\"/>\n",
                x, y, pw < 2 ? 2 : pw, fates[i].color);
        x += pw;
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\">%.0f finished, %.0f crashed, %.0f lost</text>\n",
            left + w + 10, y + 16, parts[0], parts[1], parts[2]);
}

/* Stacked bars: what became of the 100 tasks in each placement. */
static void chart(FILE *f, const struct bench *b, const struct row *r)
{
    (void)b;
    (void)r;
    if (!outcome.thr_ran && !outcome.proc_ran)
        return;
    svg_open(f, 900, 124, "What became of 100 tasks when one of them crashed");
    svg_legend(f, 0, 38, fates, 3);
    if (outcome.thr_ran) {
        double parts[] = {outcome.thr_done, 1, CRASH_TASKS - 1 - outcome.thr_done};
        stack(f, 52, outcome.thr_host_died ? "threads: the host died" : "threads", COLOR_THREADS,
              parts);
    }
    if (outcome.proc_ran) {
        double parts[] = {outcome.proc_ok, outcome.proc_crashed, outcome.proc_other};
        stack(f, 88, "processes", COLOR_PROCESSES, parts);
    }
    svg_close(f);
}

const struct bench_row row_crash = {
    .number = 3,
    .title = "a crash",
    .seed_claim = "processes contain crashes; threads don't",
    .run = run,
    .chart = chart,
};
