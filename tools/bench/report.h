/*
 * report.h - the three forms of a run's results, all rendered from the
 * same struct rows: the text table, the JSON document and the HTML report.
 */
#ifndef WALLS_TOOLS_BENCH_REPORT_H
#define WALLS_TOOLS_BENCH_REPORT_H

#include <stdio.h>

#include "row.h"

/* The table: a header about the machine, then a block per selected row. */
void print_table(FILE *f, const struct bench *b, const struct row *rows, int nrows);

/* Every figure of every selected row as one JSON document. */
void print_json(FILE *f, const struct bench *b, const struct row *rows, int nrows);

/* A self-contained HTML report with charts; 0 or a negative errno. */
/* Writes the page to f, opened before the rows ran, and closes it; 0 or
 * -errno. */
int write_html(FILE *f, const struct bench *b, const struct row *rows, int nrows);

#endif
