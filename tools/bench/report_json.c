/*
 * report_json.c - `walls bench --json`: the machine, the calibration, and
 * per row its claim, verdict, reason and every figure, for programs to
 * read. Strings are escaped to strict JSON, and a byte outside ASCII
 * becomes '?', since what the machine reports need not be UTF-8.
 */
#include "report.h"

#include <math.h>

#include "walls.h"

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
            fputc('?', f);
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

static void print_machine(FILE *f, const struct bench *b)
{
    fputs("  \"machine\": {\n    \"cpu_model\": ", f);
    json_str(f, b->model);
    fprintf(f, ",\n    \"usable_cpus\": %d,\n    \"cpu_source\": ", b->cores);
    json_str(f, b->cpu_source);
    fputs(",\n    \"kernel\": {\"sysname\": ", f);
    json_str(f, b->uname.sysname);
    fputs(", \"release\": ", f);
    json_str(f, b->uname.release);
    fputs(", \"version\": ", f);
    json_str(f, b->uname.version);
    fputs(", \"machine\": ", f);
    json_str(f, b->uname.machine);
    fputs("},\n    \"mem_total_kib\": ", f);
    json_num(f, (double)b->mem_total_kib);
    fputs(",\n    \"mem_available_kib\": ", f);
    json_num(f, (double)b->mem_available_kib);
    fputs(",\n    \"load_average_1min_before\": ", f);
    json_num(f, b->load_start);
    fputs(",\n    \"load_average_1min_after\": ", f);
    json_num(f, b->load_end);
    fputs(",\n    \"transparent_hugepages\": ", f);
    json_str(f, b->thp);
    fputs("\n  },\n", f);
}

static void print_figure(FILE *f, const struct figure *fg)
{
    fputs("{\"name\": ", f);
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
        fprintf(f, ", \"n\": %d, \"noisy\": %s}", fg->s.n, fg->noisy ? "true" : "false");
    } else {
        fputs(", \"text\": ", f);
        json_str(f, fg->text);
        fputc('}', f);
    }
}

static void print_row(FILE *f, const struct row *r)
{
    fprintf(f, "\n    {\n      \"row\": %d,\n      \"claim\": ", r->def->number);
    json_str(f, r->def->title);
    fputs(",\n      \"seed_says\": ", f);
    json_str(f, r->def->seed_claim);
    fputs(",\n      \"verdict\": ", f);
    json_str(f, verdict_word(r->verdict));
    fputs(",\n      \"reason\": ", f);
    json_str(f, r->reason);
    fputs(",\n      \"seconds\": ", f);
    json_num(f, r->seconds);
    fputs(",\n      \"figures\": [", f);
    for (int k = 0; k < r->nfigs; k++) {
        fputs(k ? ",\n        " : "\n        ", f);
        print_figure(f, &r->figs[k]);
    }
    fputs(r->nfigs ? "\n      ],\n      \"lines\": [" : "],\n      \"lines\": [", f);
    for (int k = 0; k < r->nlines; k++) {
        char text[LINE_LEN + 8];
        line_text(&r->lines[k], text, sizeof text);
        fputs(k ? ", " : "", f);
        json_str(f, text);
    }
    fputs("]\n    }", f);
}

void print_json(FILE *f, const struct bench *b, const struct row *rows, int nrows)
{
    fputs("{\n  \"tool\": \"walls bench\",\n  \"version\": ", f);
    json_str(f, walls_version());
    fputs(",\n  \"commit\": ", f);
    json_str(f, b->commit);
    fputs(",\n  \"timestamp\": ", f);
    json_str(f, b->timestamp);
    fprintf(f, ",\n  \"mode\": \"%s\",\n", b->full ? "full" : "quick");
    print_machine(f, b);
    fputs("  \"calibration\": {\"spin_iterations_per_ms\": ", f);
    json_num(f, b->spin_per_ms);
    fputs("},\n  \"rows\": [", f);
    bool first = true;
    for (int i = 0; i < nrows; i++) {
        if (!rows[i].selected)
            continue;
        fputs(first ? "" : ",", f);
        first = false;
        print_row(f, &rows[i]);
    }
    fputs("\n  ]\n}\n", f);
}
