/*
 * report_html.c - `walls bench --html FILE`: one self-contained page (no
 * script, nothing loaded from elsewhere). At the top the run and the
 * machine, what the colours mean, and a summary table of the verdicts;
 * then a section per row with its verdict, its chart (drawn by the row
 * itself, as inline SVG) and the figures it measured.
 *
 * "does not hold here" is a result, so it gets a neutral colour: red is
 * kept for an error, a row that could not measure.
 */
#include "report.h"

#include <errno.h>

#include "svg.h"
#include "walls.h"

static const char style[] =
    "body{font-family:sans-serif;margin:2em;max-width:1000px;color:#222;line-height:1.4}\n"
    "h2{font-size:1.2em;margin:2.2em 0 .3em;border-top:1px solid #ccc;padding-top:.8em}\n"
    "table{border-collapse:collapse;font-size:14px}\n"
    "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}\n"
    "a{color:inherit}\n"
    ".meta{color:#444}\n"
    ".seed{font-style:italic;margin:.2em 0}\n"
    "div.verdict,span.verdict{display:inline-block;padding:3px 8px;margin:.3em 0;"
    "border-radius:3px}\n"
    ".holds{background:#dcefdc}.fails{background:#e6e9ef}.untested{background:#f1f1f1}\n"
    ".error{background:#f8d4d4}\n"
    ".chip{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin:0 .3em 0 .8em;"
    "vertical-align:-.05em}\n"
    ".noisy{color:" COLOR_NOISY ";font-weight:bold}\n"
    "pre.lines{background:#f7f7f7;padding:.6em .8em;font-size:13px;margin:.5em 0}\n"
    "svg{display:block;margin:1em 0}\n";

static const char *verdict_class(enum verdict v)
{
    switch (v) {
    case V_HOLDS: return "holds";
    case V_FAILS: return "fails";
    case V_ERROR: return "error";
    case V_UNTESTED:
    case V_NOT_RUN: break;
    }
    return "untested";
}

static void print_verdict(FILE *f, const struct row *r, const char *tag)
{
    fprintf(f, "<%s class=\"verdict %s\"><b>%s</b>", tag, verdict_class(r->verdict),
            verdict_word(r->verdict));
    if (r->reason[0]) {
        fputs(": ", f);
        html_esc(f, r->reason);
    }
    fprintf(f, "</%s>", tag);
}

static void print_header(FILE *f, const struct bench *b)
{
    fputs("<h1>walls bench: threads or processes, measured here</h1>\n<p class=\"meta\">", f);
    html_esc(f, b->model);
    fprintf(f, "; %d usable CPUs (", b->cores);
    html_esc(f, b->cpu_source);
    fputs("); ", f);
    html_esc(f, b->uname.sysname);
    fputc(' ', f);
    html_esc(f, b->uname.release);
    fprintf(f, "; %.1f GiB RAM; load average %.2f before, %.2f after (other work on the machine "
               "skews timings).<br>%s run at %s; walls %s, commit ",
            b->mem_total_kib > 0 ? (double)b->mem_total_kib / 1048576 : 0.0, b->load_start,
            b->load_end, b->full ? "Full" : "Quick", b->timestamp, walls_version());
    html_esc(f, b->commit);
    fputs(".</p>\n", f);
    fprintf(f, "<p>Each claim of the seed, measured on this machine: figures are the median "
               "(min-max) of the runs, and the verdict is computed from them. Verdicts: "
               "<span class=\"verdict holds\">holds</span> "
               "<span class=\"verdict fails\">does not hold here</span> (a result, not a "
               "failure) <span class=\"verdict untested\">not tested here</span> "
               "<span class=\"verdict error\">error</span> (could not measure).<br>In the "
               "charts:<span class=\"chip\" style=\"background:%s\"></span>threads"
               "<span class=\"chip\" style=\"background:%s\"></span>processes"
               "<span class=\"chip\" style=\"background:%s\"></span>hybrid"
               "<span class=\"chip\" style=\"background:%s\"></span>plain pthreads.<br>"
               "<span class=\"noisy\">noisy</span>: the slowest tenth of the runs took over %gx "
               "the fastest tenth; "
               "the median may differ in another run.</p>\n",
            COLOR_THREADS, COLOR_PROCESSES, COLOR_HYBRID, COLOR_PTHREADS, NOISY_RATIO);
}

static void print_summary(FILE *f, const struct row *rows, int nrows)
{
    fputs("<table><tr><th>#</th><th>claim</th><th>the seed says</th><th>verdict</th></tr>\n", f);
    for (int i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        if (!r->selected)
            continue;
        fprintf(f, "<tr><td>%d</td><td><a href=\"#row-%d\">", r->def->number, r->def->number);
        html_esc(f, r->def->title);
        fputs("</a></td><td>", f);
        html_esc(f, r->def->seed_claim);
        fputs("</td>", f);
        print_verdict(f, r, "td");
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void print_section(FILE *f, const struct bench *b, const struct row *r)
{
    fprintf(f, "<section id=\"row-%d\">\n<h2>%d. ", r->def->number, r->def->number);
    html_esc(f, r->def->title);
    fputs("</h2>\n<p class=\"seed\">The seed: ", f);
    html_esc(f, r->def->seed_claim);
    fputs("</p>\n", f);
    print_verdict(f, r, "div");
    fputc('\n', f);
    if (r->def->chart)
        r->def->chart(f, b, r);
    fputs("<pre class=\"lines\">", f);
    for (int l = 0; l < r->nlines; l++) {
        fprintf(f, "%*s", 2 * r->lines[l].indent, "");
        html_esc(f, r->lines[l].text);
        if (r->lines[l].noisy)
            fputs(" <span class=\"noisy\">noisy</span>", f);
        fputc('\n', f);
    }
    fprintf(f, "</pre>\n<p class=\"meta\">This row took %.1f s.</p>\n</section>\n",
            r->seconds);
}

int write_html(FILE *f, const struct bench *b, const struct row *rows, int nrows)
{
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<title>walls bench</title>\n<style>\n%s</style></head><body>\n", style);
    print_header(f, b);
    print_summary(f, rows, nrows);
    for (int i = 0; i < nrows; i++)
        if (rows[i].selected)
            print_section(f, b, &rows[i]);
    fputs("</body></html>\n", f);
    /* The reason a write failed: a flush now fails again the same way. */
    errno = 0;
    int rc = fflush(f) != 0 || ferror(f) ? -(errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
