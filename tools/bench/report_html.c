/*
 * report_html.c - `walls bench --html FILE`: one self-contained page (no
 * script, nothing loaded from elsewhere) with the machine, the table, and
 * each row's chart as inline SVG, drawn by the row itself.
 */
#include "report.h"

#include <errno.h>

#include "svg.h"
#include "walls.h"

static void print_row(FILE *f, const struct row *r)
{
    const char *cls = r->verdict == V_HOLDS   ? "holds"
                      : r->verdict == V_FAILS ? "fails"
                                              : "untested";
    fprintf(f, "<tr><td>%d</td><td>", r->def->number);
    html_esc(f, r->def->title);
    fputs("</td><td>", f);
    html_esc(f, r->def->seed_claim);
    fputs("</td><td class=\"m\">", f);
    for (int l = 0; l < r->nlines; l++) {
        char text[LINE_LEN + 8];
        line_text(&r->lines[l], text, sizeof text);
        fprintf(f, "%*s", 2 * r->lines[l].indent, "");
        html_esc(f, text);
        fputc('\n', f);
    }
    fprintf(f, "</td><td class=\"%s\"><b>%s</b>", cls, verdict_word(r->verdict));
    if (r->reason[0]) {
        fputs(": ", f);
        html_esc(f, r->reason);
    }
    fputs("</td></tr>\n", f);
}

int write_html(const char *path, const struct bench *b, const struct row *rows, int nrows)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>walls bench</title>\n<style>\n"
          "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\n"
          "table{border-collapse:collapse;font-size:13px}\n"
          "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}\n"
          "td.m{font-family:monospace;white-space:pre}\n"
          ".holds{background:#e3f4e3}.fails{background:#fde2e2}.untested{background:#eee}\n"
          "svg{display:block;margin:1.5em 0}\n</style></head><body>\n<h1>walls bench</h1>\n<p>",
          f);
    html_esc(f, b->model);
    fprintf(f, "; %d usable CPUs (", b->cores);
    html_esc(f, b->cpu_source);
    fputs("); ", f);
    html_esc(f, b->uname.sysname);
    fputc(' ', f);
    html_esc(f, b->uname.release);
    fprintf(f, "; load average %.2f before, %.2f after; %s run at %s; walls %s, commit ",
            b->load_start, b->load_end, b->full ? "full" : "quick", b->timestamp,
            walls_version());
    html_esc(f, b->commit);
    fputs(". Figures are median (min-max), all measured in this run.</p>\n", f);
    fputs("<table><tr><th>#</th><th>claim</th><th>seed says</th><th>measured here</th>"
          "<th>verdict</th></tr>\n", f);
    for (int i = 0; i < nrows; i++)
        if (rows[i].selected)
            print_row(f, &rows[i]);
    fputs("</table>\n", f);
    for (int i = 0; i < nrows; i++)
        if (rows[i].selected && rows[i].def->chart)
            rows[i].def->chart(f, b, &rows[i]);
    fputs("</body></html>\n", f);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
