/*
 * svg.c - the chart shapes of the HTML report, written as inline SVG so
 * that the report needs no script and no file beside it.
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

void svg_log_bars(FILE *f, const char *title, const struct row *r)
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
