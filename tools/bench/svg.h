/*
 * svg.h - drawing the HTML report's charts as inline SVG: the colours that
 * mean the same in every chart, a legend, and the dot chart most rows use
 * (a median as a dot, its min-max range as a whisker, on a log or a linear
 * axis with ticks and labels).
 */
#ifndef WALLS_TOOLS_BENCH_SVG_H
#define WALLS_TOOLS_BENCH_SVG_H

#include <stdbool.h>
#include <stdio.h>

#include "row.h"

/* One colour per kind of worker, the same in every chart. */
#define COLOR_THREADS "#2b7bd9"
#define COLOR_PROCESSES "#d9822b"
#define COLOR_HYBRID "#8e44ad"
#define COLOR_PTHREADS "#3a9d3a" /* plain pthreads, the reference of rows 6 and 7 */
#define COLOR_NOISY "#a15c00"

/* Writes s with <, >, & and " escaped. */
void html_esc(FILE *f, const char *s);

/* Opens an <svg> of width by height with a bold title; svg_close() ends it. */
void svg_open(FILE *f, int width, int height, const char *title);
void svg_close(FILE *f);

/* What a legend entry shows before its words. */
enum legend_mark { MARK_DOT, MARK_RING, MARK_SQUARE };

/* One legend entry: a mark in a colour and its meaning. */
struct legend_item {
    const char *color;
    const char *label;
    enum legend_mark mark;
};

/* A row of legend entries from (x, y); returns the x after the last. */
int svg_legend(FILE *f, int x, int y, const struct legend_item *items, int n);

/* One line of a dot chart. */
struct dot {
    const char *label;
    const char *color;
    struct summary s;
    bool noisy;
    char note[32]; /* after the value, e.g. "x3.9 threads' time"; may be empty */
};

/* How a dot chart's values are laid out. */
enum axis_scale {
    AXIS_LOG,    /* powers of ten; for times that span orders of magnitude */
    AXIS_LINEAR, /* from zero, so that lengths compare */
};

/* A range shaded behind the dots, such as what the seed claims. */
struct band {
    double lo, hi;
    const char *color;
    const char *label;
};

/*
 * A dot per value: the median as a dot, min-max as a whisker, the value in
 * words at the right, "noisy" after a noisy one; a legend of the colours
 * used; bands (nbands may be 0) shaded behind. unit "ns" is shown as a
 * time, any other unit after the number.
 */
void svg_dots(FILE *f, const char *title, const struct dot *dots, int n, enum axis_scale scale,
              const char *unit, const struct band *bands, int nbands);

/* A row's numeric figure called name as a dot of color; false if it has none. */
bool figure_dot(const struct row *r, const char *name, const char *color, struct dot *d);

/* Which of a row's figures a chart shows, in which colour, with what note. */
struct series {
    const char *name;
    const char *color;
    const char *note; /* may be NULL */
};

/* svg_dots() of those timings (ns) of r that were measured. */
void svg_figure_dots(FILE *f, const char *title, const struct row *r, const struct series *s,
                     int n, enum axis_scale scale, const struct band *bands, int nbands);

#endif
