/*
 * row.h - what every part of `walls bench` shares: the run's settings and
 * machine (struct bench), the description of a row (struct bench_row, one
 * per row file), and what a row measured and concluded (struct row), with
 * the calls a row builds it with.
 *
 * A row's results go into its struct row, and the text table, the JSON and
 * the HTML report are all rendered from those structs, so the three can
 * never disagree.
 */
#ifndef WALLS_TOOLS_BENCH_ROW_H
#define WALLS_TOOLS_BENCH_ROW_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/utsname.h>

#include "bench_common.h"

#define MIB (1024u * 1024u)
#define MAX_FIGS 32
#define MAX_LINES 20
#define LINE_LEN 96

/* The run: options, the machine it runs on, and the calibration. */
struct bench {
    bool full, json;
    const char *html;
    char timestamp[32];  /* when the run started: UTC, ISO 8601 */
    const char *commit;  /* what the walls command was built from, or "unknown" */
    int cores;
    char cpu_source[96];
    char model[256];
    struct utsname uname;
    char thp[64];
    long mem_total_kib, mem_available_kib;
    double load_start, load_end; /* 1-minute load average before and after */
    double spin_per_ms;          /* spin() iterations per millisecond of CPU time */
};

enum verdict { V_NOT_RUN, V_HOLDS, V_FAILS, V_UNTESTED, V_ERROR };

/* One figure of a row: a measured number (with unit) or a measured text. */
struct figure {
    char name[40];  /* JSON key, e.g. "fork_small" */
    char label[64]; /* human label, e.g. "fork+_exit+waitpid" */
    char unit[8];   /* "ns", "x", "tasks", "tasks/s", "B/s", "KiB", "" */
    bool numeric;
    bool noisy; /* a timing whose spread is wide: summary_noisy() */
    bool basis; /* the row's verdict rests on it */
    struct summary s;
    char text[128];
};

/* One line of the table's "measured here" cell. */
struct line {
    int indent; /* depth under the line above it: layout, for the reports */
    bool noisy; /* it shows a noisy timing */
    char text[LINE_LEN];
};

struct bench_row;

/* What one row measured and concluded. */
struct row {
    const struct bench_row *def;
    bool selected;
    enum verdict verdict;
    char reason[320];
    struct figure figs[MAX_FIGS];
    int nfigs;
    struct line lines[MAX_LINES];
    int nlines;
    double seconds;
    char failed[192]; /* the first measurement that could not be made: "label: why" */
};

/*
 * One row of the seed's table, defined in its own file. run() measures,
 * records its figures and lines in r and gives the verdict; chart() draws
 * the row's chart into the HTML report from what run() found, or is NULL.
 */
struct bench_row {
    int number;
    const char *title;      /* the claim, in a few words */
    const char *seed_claim; /* what the seed says */
    void (*run)(const struct bench *b, struct row *r);
    void (*chart)(FILE *f, const struct bench *b, const struct row *r);
};

extern const struct bench_row row_create, row_talk, row_crash, row_untrusted, row_share, row_cpu,
    row_io, row_both;

/* quick in a --quick run, full in a --full one. */
int reps(const struct bench *b, int quick, int full);

/* "EACCES" for EACCES or -EACCES; "error" for what it does not know. */
const char *errno_name(int err);

/* A line of the cell, indent levels under the line above. */
void row_line(struct row *r, int indent, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A timing in ns and its line "label: median (min-max)". */
struct figure *row_time(struct row *r, int indent, const char *name, const char *label,
                        struct summary s);

/*
 * A number in unit, without a line of its own. A timing ("ns") or a rate
 * ("tasks/s") is marked noisy when its spread is wide (summary_noisy()).
 */
struct figure *row_value(struct row *r, const char *name, const char *label, const char *unit,
                         struct summary s);

/* A timing's line: "prefix: median (min-max)suffix", noisy if the timing is. */
void row_summary_line(struct row *r, int indent, const char *prefix, struct summary s,
                      const char *suffix);

/* A measured text and its line "label: text". */
struct figure *row_text(struct row *r, int indent, const char *name, const char *label,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A measurement that could not be made, as row_text() shows it: the row's
 * verdict becomes "error" (row_finish), whatever the others found. */
struct figure *row_failure(struct row *r, int indent, const char *name, const char *label,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

void row_verdict(struct row *r, enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The figure called name, or NULL. */
const struct figure *row_find(const struct row *r, const char *name);

/* Marks the figure called name as one the verdict rests on. */
void row_basis(struct row *r, const char *name);

/* After run(): a verdict that rests on a noisy figure says so in its reason. */
void row_finish(struct row *r);

/* A line as the table shows it: its text, and " noisy" after a noisy timing. */
void line_text(const struct line *l, char *buf, size_t len);

/* "holds", "does not hold here", ... */
const char *verdict_word(enum verdict v);

#endif
