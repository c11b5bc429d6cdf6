/*
 * scaling.c - rows 6 and 7: the same load on 1 thread and on 1, 2, 4, ...
 * times the usable CPUs, once on walls thread pools and once on plain
 * pthreads that take the tasks from a shared counter. The seed's claims
 * are about threads as such, so the rows' verdicts come from the plain
 * pthreads; a walls pool far off them is called out in the row.
 */
#define _GNU_SOURCE
#include "scaling.h"

#include "svg.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
 * Round by round, every size once per round, so that other work coming
 * and going on the machine falls on all sizes alike and the sizes can be
 * compared run by run (see row 6's verdict).
 */
static int scale_raw(struct task_in in, int ntasks, const unsigned *sizes, int nsizes, int n,
                     struct point *pts, int *npts)
{
    int rc = 0;
    *npts = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        for (int k = 0; rc == 0 && k < nsizes; k++)
            rc = raw_batch(in, ntasks, sizes[k], &pts[k].runs[i]);
    for (int k = 0; rc == 0 && k < nsizes; k++) {
        double v[MAX_RUNS];
        memcpy(v, pts[k].runs, sizeof v);
        pts[k].nruns = n;
        pts[k].threads = sizes[k];
        pts[k].s = summarize(v, n);
        pts[k].speedup = pts[0].s.med / pts[k].s.med;
        (*npts)++;
    }
    return rc;
}

/* Times ntasks copies of in on walls THREADS pools of sizes[k] threads. */
static int scale_walls(struct task_in in, int ntasks, const unsigned *sizes, int nsizes, int n,
                       struct point *pts, int *npts)
{
    struct task_in *ins = calloc((size_t)ntasks, sizeof *ins);
    if (!ins)
        return -ENOMEM;
    for (int i = 0; i < ntasks; i++)
        ins[i] = in;
    int rc = 0;
    *npts = 0;
    for (int k = 0; rc == 0 && k < nsizes; k++) {
        double v[MAX_RUNS];
        walls_pool *pool;
        rc = pool_open(&pool, WALLS_THREADS, 0, sizes[k], 0);
        if (rc != 0)
            break;
        for (int i = 0; rc == 0 && i < n; i++) {
            struct batch bt;
            rc = run_batch(pool, ins, (size_t)ntasks, NULL, NULL, &bt);
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
    for (int i = 0; i < nmults && n < MAX_POINTS; i++) {
        unsigned s = (unsigned)cores * mults[i];
        if (s > 1024)
            s = 1024;
        if (s > sizes[n - 1])
            sizes[n++] = s;
    }
    return n;
}

/* A curve's figures (time and speedup per count) and its lines. */
static void scale_lines(struct row *r, const struct bench *b, const struct point *p, int n,
                        const char *prefix, const char *who)
{
    for (int i = 0; i < n; i++) {
        char name[40], label[64], count[32], speedup[16];
        unsigned t = p[i].threads;
        if (t == 1)
            snprintf(count, sizeof count, "1 thread");
        else if (t == (unsigned)b->cores)
            snprintf(count, sizeof count, "%u (=cores)", t);
        else
            snprintf(count, sizeof count, "%u (%ux)", t, t / (unsigned)b->cores);
        snprintf(name, sizeof name, "%s_threads_%u", prefix, t);
        snprintf(label, sizeof label, "%s, %u thread%s", who, t, t == 1 ? "" : "s");
        row_value(r, name, label, "ns", p[i].s);
        snprintf(name, sizeof name, "%s_speedup_%u", prefix, t);
        snprintf(label, sizeof label, "%s, %u thread%s, speedup", who, t, t == 1 ? "" : "s");
        row_value(r, name, label, "x", one_value(p[i].speedup));
        snprintf(speedup, sizeof speedup, " x%.2f", p[i].speedup);
        row_summary_line(r, 1, count, p[i].s, speedup);
    }
}

void scale_marks(const struct point *p, int n, int cores, int *at_cores, int *best)
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

int run_scaling(const struct bench *b, struct row *r, struct task_in in, int ntasks,
                const unsigned *mults, int nmults, const char *prefix, struct curves *c)
{
    unsigned sizes[MAX_POINTS];
    int nsizes = scale_sizes(b->cores, mults, nmults, sizes);
    int n = reps(b, 3, 9);
    char p[40];
    int rc = scale_walls(in, ntasks, sizes, nsizes, n, c->walls, &c->nwalls);
    if (rc != 0) {
        row_verdict(r, V_ERROR, "walls pool run failed: %s", errno_name(rc));
        return rc;
    }
    rc = scale_raw(in, ntasks, sizes, nsizes, n, c->raw, &c->nraw);
    if (rc != 0) {
        row_verdict(r, V_ERROR, "pthread run failed: %s", errno_name(rc));
        return rc;
    }
    row_line(r, 0, "walls thread pool (speedup vs 1):");
    snprintf(p, sizeof p, "%s_walls", prefix);
    scale_lines(r, b, c->walls, c->nwalls, p, "walls thread pool");
    row_line(r, 0, "plain pthreads, same load:");
    snprintf(p, sizeof p, "%s_pthreads", prefix);
    scale_lines(r, b, c->raw, c->nraw, p, "plain pthreads");
    int wc, wb, pc, pb;
    scale_marks(c->walls, c->nwalls, b->cores, &wc, &wb);
    scale_marks(c->raw, c->nraw, b->cores, &pc, &pb);
    if (c->walls[wc].s.med > c->raw[pc].s.med * 1.25)
        row_line(r, 0, "walls at =cores: x%.1f pthreads' time",
                 c->walls[wc].s.med / c->raw[pc].s.med);
    return 0;
}

void scale_basis(struct row *r, const char *prefix, const struct point *p)
{
    char name[40];
    snprintf(name, sizeof name, "%s_pthreads_threads_%u", prefix, p->threads);
    row_basis(r, name);
}

void run_ratios(const struct point *a, const struct point *b, double *lo, double *hi)
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
        /* A noisy time makes a hollow point. */
        if (summary_noisy(p[i].s))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#fff\" stroke=\"%s\" "
                       "stroke-width=\"2\"/>\n", x, y, color);
        else
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

void chart_scaling(FILE *f, const char *title, const struct curves *cv, int cores)
{
    const struct point *p = cv->walls, *raw = cv->raw;
    int n = cv->nwalls, nraw = cv->nraw;
    if (n == 0 || nraw == 0)
        return;
    struct chart c = {70, 64, 520, 260, log2((double)p[n - 1].threads), 0, 1};
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
    char t[160];
    snprintf(t, sizeof t, "%s (log scales)", title);
    svg_open(f, c.left + c.w + 110, c.top + c.h + 50, t);
    bool noisy = false;
    for (int i = 0; i < n; i++)
        noisy = noisy || summary_noisy(p[i].s);
    for (int i = 0; i < nraw; i++)
        noisy = noisy || summary_noisy(raw[i].s);
    const struct legend_item legend[] = {
        {COLOR_THREADS, "walls thread pool", MARK_DOT},
        {COLOR_PTHREADS, "plain pthreads, same tasks", MARK_DOT},
        {"#666", "hollow: its time is noisy", MARK_RING},
    };
    svg_legend(f, 0, 38, legend, noisy ? 3 : 2);
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
    svg_line(f, &c, raw, nraw, COLOR_PTHREADS);
    svg_line(f, &c, p, n, COLOR_THREADS);
    svg_points(f, &c, raw, nraw, p, n, COLOR_PTHREADS, true);
    svg_points(f, &c, p, n, raw, nraw, COLOR_THREADS, false);
    svg_close(f);
}
