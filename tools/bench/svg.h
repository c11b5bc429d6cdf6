/*
 * svg.h - drawing the HTML report's charts as inline SVG: escaping text
 * for HTML, and the chart shapes more than one row uses.
 */
#ifndef WALLS_TOOLS_BENCH_SVG_H
#define WALLS_TOOLS_BENCH_SVG_H

#include <stdio.h>

#include "row.h"

/* Writes s with <, >, & and " escaped. */
void html_esc(FILE *f, const char *s);

/* Horizontal bars of a row's timings on a log scale, with min-max whiskers. */
void svg_log_bars(FILE *f, const char *title, const struct row *r);

#endif
