/*
 * svg.c - the chart shapes of the HTML report, written as inline SVG so
 * that the report needs no script and no file beside it.
 *
 * A value is drawn as a dot at its median with a whisker from its minimum
 * to its maximum, never as a bar: on a log axis a bar's length depends on
 * where the axis happens to start and says nothing. Log axes are labelled
 * at powers of ten (and at 2 and 5 between them when the range is short);
 * linear axes start at zero, so that positions compare as ratios.
 */
#include "svg.h"

#include <math.h>
#include <string.h>

void html_esc(FILE *f, const char *s)
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

void svg_open(FILE *f, int width, int height, const char *title)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", width, height);
    fputs("<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">", f);
    html_esc(f, title);
    fputs("</text>\n", f);
}

void svg_close(FILE *f)
{
    fputs("</svg>\n", f);
}

/* About how wide a 12-pixel sans-serif text is. */
static int text_width(const char *s)
{
    return (int)strlen(s) * 13 / 2;
}

int svg_legend(FILE *f, int x, int y, const struct legend_item *items, int n)
{
    for (int i = 0; i < n; i++) {
        if (items[i].mark == MARK_RING)
            fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"#fff\" stroke=\"%s\" "
                       "stroke-width=\"2\"/>\n", x + 5, y - 4, items[i].color);
        else if (items[i].mark == MARK_SQUARE)
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\" "
                       "stroke=\"#999\"/>\n", x, y - 10, items[i].color);
        else
            fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/>\n", x + 5, y - 4,
                    items[i].color);
        fprintf(f, "<text x=\"%d\" y=\"%d\">", x + 17, y);
        html_esc(f, items[i].label);
        fputs("</text>\n", f);
        x += text_width(items[i].label) + 17 + 22;
    }
    return x;
}

/* The legend label of a worker colour: "threads", "processes", ... */
static const char *color_meaning(const char *color)
{
    if (strcmp(color, COLOR_THREADS) == 0)
        return "threads";
    if (strcmp(color, COLOR_PROCESSES) == 0)
        return "processes";
    if (strcmp(color, COLOR_HYBRID) == 0)
        return "hybrid (processes running threads)";
    if (strcmp(color, COLOR_PTHREADS) == 0)
        return "plain pthreads";
    return "";
}

/* A number with a k, M or G suffix and three significant digits: "381 k". */
static void fmt_count(char *buf, size_t len, double v)
{
    static const char *const suffix[] = {"", " k", " M", " G"};
    int k = 0;
    while (fabs(v) >= 999.5 && k < 3) {
        v /= 1000;
        k++;
    }
    if (v == 0 || fabs(v) >= 99.95 || k == 0)
        snprintf(buf, len, "%.0f%s", v, suffix[k]);
    else if (fabs(v) >= 9.995)
        snprintf(buf, len, "%.1f%s", v, suffix[k]);
    else
        snprintf(buf, len, "%.2f%s", v, suffix[k]);
}

/* A tick label in the chart's unit: "0", "20 us", "1.5 M tasks/s". */
static void fmt_tick(char *buf, size_t len, double v, const char *unit)
{
    static const char *const suffix[] = {"", " k", " M", " G"};
    int k = 0;
    if (v == 0) {
        snprintf(buf, len, "0");
    } else if (strcmp(unit, "ns") == 0) {
        fmt_time_short(buf, len, v);
    } else {
        while (v >= 999.5 && k < 3) {
            v /= 1000;
            k++;
        }
        snprintf(buf, len, "%.3g%s %s", v, suffix[k], unit);
    }
}

/* A value's words: "21.4 us (18.9-40.2)", or "381 k (350 k-402 k) tasks/s". */
static void fmt_dot(char *buf, size_t len, const struct dot *d, const char *unit)
{
    if (strcmp(unit, "ns") == 0) {
        fmt_summary(buf, len, d->s);
        return;
    }
    char med[32], lo[32], hi[32];
    fmt_count(med, sizeof med, d->s.med);
    fmt_count(lo, sizeof lo, d->s.min);
    fmt_count(hi, sizeof hi, d->s.max);
    if (d->s.n <= 1)
        snprintf(buf, len, "%s %s", med, unit);
    else
        snprintf(buf, len, "%s (%s-%s) %s", med, lo, hi, unit);
}

/* An axis across the plot: from lo to hi (as powers of ten when log). */
struct axis {
    bool log;
    double lo, hi;
    double x0, w;
};

static double axis_x(const struct axis *a, double v)
{
    double t = a->log ? (log10(v) - a->lo) / (a->hi - a->lo) : (v - a->lo) / (a->hi - a->lo);
    return a->x0 + t * a->w;
}

/* 1, 2, 2.5 or 5 times a power of ten, at least x. */
static double nice_step(double x)
{
    double p = pow(10, floor(log10(x))), m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
}

static void tick(FILE *f, const struct axis *a, double v, int top, int bottom, bool label,
                 const char *unit)
{
    double x = axis_x(a, v);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", x, top, x,
            bottom, label ? "#ccc" : "#eee");
    if (!label)
        return;
    char t[48];
    fmt_tick(t, sizeof t, v, unit);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%s</text>\n", x,
            bottom + 15, t);
}

/* Grid lines and labels of the axis under the plot. */
static void draw_axis(FILE *f, const struct axis *a, int top, int bottom, const char *unit)
{
    if (a->log) {
        bool short_range = a->hi - a->lo <= 2;
        for (double d = a->lo; d <= a->hi; d++) {
            static const double between[] = {1, 2, 5};
            for (int m = 0; m < 3; m++) {
                double v = between[m] * pow(10, d);
                if (log10(v) <= a->hi + 1e-9)
                    tick(f, a, v, top, bottom, m == 0 || short_range, unit);
            }
        }
    } else {
        double step = nice_step(a->hi / 4);
        for (double v = 0; v <= a->hi + step / 1000; v += step)
            tick(f, a, v, top, bottom, true, unit);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\"/>\n", a->x0,
            bottom, a->x0 + a->w, bottom);
}

/* The scale that holds every value's whisker and every band. */
static struct axis fit_axis(const struct dot *dots, int n, const struct band *bands, int nbands,
                            enum axis_scale scale, double x0, double w)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < n; i++) {
        lo = fmin(lo, dots[i].s.min);
        hi = fmax(hi, dots[i].s.max);
    }
    for (int i = 0; i < nbands; i++) {
        lo = fmin(lo, bands[i].lo);
        hi = fmax(hi, bands[i].hi);
    }
    struct axis a = {scale == AXIS_LOG, 0, 1, x0, w};
    if (a.log) {
        a.lo = floor(log10(lo));
        a.hi = ceil(log10(hi));
        if (a.hi <= a.lo)
            a.hi = a.lo + 1;
    } else if (hi > 0) {
        double step = nice_step(hi / 4);
        a.hi = ceil(hi / step) * step;
    }
    return a;
}

/* The legend of a dot chart: the colours used, the glyph, and "noisy" if any is. */
static void dots_legend(FILE *f, const struct dot *dots, int n, int x, int y)
{
    struct legend_item items[8] = {{0}};
    int k = 0;
    bool noisy = false;
    for (int i = 0; i < n; i++) {
        noisy = noisy || dots[i].noisy;
        bool seen = false;
        for (int j = 0; j < k; j++)
            seen = seen || strcmp(items[j].color, dots[i].color) == 0;
        if (!seen && k < 8)
            items[k++] = (struct legend_item){dots[i].color, color_meaning(dots[i].color),
                                              MARK_DOT};
    }
    x = svg_legend(f, x, y, items, k);
    static const char glyph[] = "dot: median, line: min to max";
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#666\" stroke-width=\"2\"/>"
               "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"#666\"/>\n"
               "<text x=\"%d\" y=\"%d\">%s</text>\n",
            x, y - 4, x + 30, y - 4, x + 12, y - 4, x + 36, y, glyph);
    x += 36 + text_width(glyph) + 22;
    if (noisy)
        fprintf(f, "<text x=\"%d\" y=\"%d\"><tspan fill=\"%s\" font-weight=\"bold\">noisy"
                   "</tspan>: p90 over %gx p10</text>\n", x, y, COLOR_NOISY, NOISY_RATIO);
}

/* Bands behind the plot, each labelled above it in its colour. */
static void draw_bands(FILE *f, const struct axis *a, const struct band *bands, int nbands,
                       int top, int bottom)
{
    for (int i = 0; i < nbands; i++) {
        double xa = axis_x(a, bands[i].lo), xb = axis_x(a, bands[i].hi);
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" "
                   "fill-opacity=\"0.13\"/>\n", xa, top, xb - xa, bottom - top, bands[i].color);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\" "
                   "fill=\"%s\">", (xa + xb) / 2, top - 4, bands[i].color);
        html_esc(f, bands[i].label);
        fputs("</text>\n", f);
    }
}

void svg_dots(FILE *f, const char *title, const struct dot *dots, int n, enum axis_scale scale,
              const char *unit, const struct band *bands, int nbands)
{
    if (n == 0)
        return;
    const int label_w = 300, plot_w = 400, value_w = 300, step = 26;
    int top = nbands ? 72 : 56, bottom = top + n * step;
    struct axis a = fit_axis(dots, n, bands, nbands, scale, label_w, plot_w);
    char t[160];
    snprintf(t, sizeof t, "%s (%s scale)", title, a.log ? "log" : "linear");
    svg_open(f, label_w + plot_w + value_w, bottom + 24, t);
    dots_legend(f, dots, n, 0, 38);
    draw_bands(f, &a, bands, nbands, top - 4, bottom);
    draw_axis(f, &a, top - 4, bottom, unit);
    for (int i = 0; i < n; i++) {
        const struct dot *d = &dots[i];
        int y = top + i * step + step / 2;
        double xm = axis_x(&a, d->s.med), xa = axis_x(&a, d->s.min), xb = axis_x(&a, d->s.max);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label_w - 10, y + 4);
        html_esc(f, d->label);
        fputs("</text>\n", f);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/>\n", xa, y, xb, y, d->color,
                d->noisy ? " stroke-dasharray=\"4,3\"" : "");
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>"
                   "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n",
                xa, y - 5, xa, y + 5, d->color, xb, y - 5, xb, y + 5, d->color);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%d\" r=\"5\" fill=\"%s\"/>\n", xm, y, d->color);
        fmt_dot(t, sizeof t, d, unit);
        fprintf(f, "<text x=\"%d\" y=\"%d\">", label_w + plot_w + 12, y + 4);
        html_esc(f, t);
        if (d->note[0]) {
            fputs(" <tspan fill=\"#555\">", f);
            html_esc(f, d->note);
            fputs("</tspan>", f);
        }
        if (d->noisy)
            fprintf(f, " <tspan fill=\"%s\" font-weight=\"bold\">noisy</tspan>", COLOR_NOISY);
        fputs("</text>\n", f);
    }
    svg_close(f);
}

bool figure_dot(const struct row *r, const char *name, const char *color, struct dot *d)
{
    for (int i = 0; i < r->nfigs; i++) {
        const struct figure *fg = &r->figs[i];
        if (strcmp(fg->name, name) != 0 || !fg->numeric || !(fg->s.min > 0))
            continue;
        memset(d, 0, sizeof *d);
        d->label = fg->label;
        d->color = color;
        d->s = fg->s;
        d->noisy = fg->noisy;
        return true;
    }
    return false;
}

void svg_figure_dots(FILE *f, const char *title, const struct row *r, const struct series *s,
                     int n, enum axis_scale scale, const struct band *bands, int nbands)
{
    struct dot dots[MAX_FIGS];
    int k = 0;
    for (int i = 0; i < n && k < MAX_FIGS; i++) {
        if (!figure_dot(r, s[i].name, s[i].color, &dots[k]))
            continue;
        snprintf(dots[k].note, sizeof dots[k].note, "%s", s[i].note ? s[i].note : "");
        k++;
    }
    svg_dots(f, title, dots, k, scale, "ns", bands, nbands);
}
