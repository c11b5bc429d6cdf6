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

/* sep, then "key": and the value. */
static void field_str(FILE *f, const char *sep, const char *key, const char *value)
{
    fprintf(f, "%s\"%s\": ", sep, key);
    json_str(f, value);
}

static void field_num(FILE *f, const char *sep, const char *key, double value)
{
    fprintf(f, "%s\"%s\": ", sep, key);
    json_num(f, value);
}

static void print_machine(FILE *f, const struct bench *b)
{
    static const char next[] = ",\n    ";
    field_str(f, "  \"machine\": {\n    ", "cpu_model", b->model);
    fprintf(f, "%s\"usable_cpus\": %d", next, b->cores);
    field_str(f, next, "cpu_source", b->cpu_source);
    field_str(f, next, "kernel\": {\"sysname", b->uname.sysname);
    field_str(f, ", ", "release", b->uname.release);
    field_str(f, ", ", "version", b->uname.version);
    field_str(f, ", ", "machine", b->uname.machine);
    field_num(f, "}" ",\n    ", "mem_total_kib", (double)b->mem_total_kib);
    field_num(f, next, "mem_available_kib", (double)b->mem_available_kib);
    field_num(f, next, "load_average_1min_before", b->load_start);
    field_num(f, next, "load_average_1min_after", b->load_end);
    field_str(f, next, "transparent_hugepages", b->thp);
    fputs("\n  },\n", f);
}

static void print_figure(FILE *f, const struct figure *fg)
{
    field_str(f, "{", "name", fg->name);
    field_str(f, ", ", "label", fg->label);
    if (fg->numeric) {
        field_str(f, ", ", "unit", fg->unit);
        field_num(f, ", ", "median", fg->s.med);
        field_num(f, ", ", "min", fg->s.min);
        field_num(f, ", ", "max", fg->s.max);
        field_num(f, ", ", "p10", fg->s.p10);
        field_num(f, ", ", "p90", fg->s.p90);
        fprintf(f, ", \"n\": %d, \"noisy\": %s}", fg->s.n, fg->noisy ? "true" : "false");
    } else {
        field_str(f, ", ", "text", fg->text);
        fputc('}', f);
    }
}

static void print_row(FILE *f, const struct row *r)
{
    static const char next[] = ",\n      ";
    fprintf(f, "\n    {\n      \"row\": %d", r->def->number);
    field_str(f, next, "claim", r->def->title);
    field_str(f, next, "seed_says", r->def->seed_claim);
    field_str(f, next, "verdict", verdict_word(r->verdict));
    field_str(f, next, "reason", r->reason);
    field_num(f, next, "seconds", r->seconds);
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
    static const char next[] = ",\n  ";
    field_str(f, "{\n  ", "tool", "walls bench");
    field_str(f, next, "version", walls_version());
    field_str(f, next, "commit", b->commit);
    field_str(f, next, "timestamp", b->timestamp);
    field_str(f, next, "mode", b->full ? "full" : "quick");
    fputs(",\n", f);
    print_machine(f, b);
    field_num(f, "  \"calibration\": {", "spin_iterations_per_ms", b->spin_per_ms);
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
