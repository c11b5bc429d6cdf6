/*
 * row.c - building a row's results: its figures (a number with its unit,
 * or a measured text), the lines of its "measured here" cell, and its
 * verdict with the reason in a few words.
 *
 * A figure is recorded with what it measured and a label that says so in
 * plain words; how it is laid out is left to the reports. A timing whose
 * samples spread wide is marked noisy, on the figure and on its line, and
 * a verdict that rests on such a figure says so. The calls never
 * fail: past MAX_FIGS figures or MAX_LINES lines the rest are dropped, and
 * the row's code is written to stay well below both.
 */
#define _GNU_SOURCE
#include "row.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

int reps(const struct bench *b, int quick, int full)
{
    return b->full ? full : quick;
}

const char *errno_name(int err)
{
    switch (err < 0 ? -err : err) {
    case ENOTSUP: return "ENOTSUP";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case ECHILD: return "ECHILD";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "error";
    }
}

static void vline(struct row *r, int indent, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vline(struct row *r, int indent, const char *fmt, va_list ap)
{
    if (r->nlines >= MAX_LINES)
        return;
    struct line *l = &r->lines[r->nlines++];
    l->indent = indent;
    l->noisy = false;
    vsnprintf(l->text, sizeof l->text, fmt, ap);
}

void row_line(struct row *r, int indent, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(r, indent, fmt, ap);
    va_end(ap);
}

static struct figure *new_figure(struct row *r, const char *name, const char *label,
                                 const char *unit)
{
    if (r->nfigs >= MAX_FIGS)
        return NULL;
    struct figure *f = &r->figs[r->nfigs++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->label, sizeof f->label, "%s", label);
    snprintf(f->unit, sizeof f->unit, "%s", unit);
    return f;
}

/* Times and rates are what other work on the machine disturbs. */
static bool timed(const char *unit)
{
    return strcmp(unit, "ns") == 0 || strcmp(unit, "tasks/s") == 0;
}

struct figure *row_value(struct row *r, const char *name, const char *label, const char *unit,
                         struct summary s)
{
    struct figure *f = new_figure(r, name, label, unit);
    if (f) {
        f->numeric = true;
        f->s = s;
        f->noisy = timed(unit) && summary_noisy(s);
    }
    return f;
}

void row_summary_line(struct row *r, int indent, const char *prefix, struct summary s,
                      const char *suffix)
{
    char buf[128];
    fmt_summary(buf, sizeof buf, s);
    int before = r->nlines;
    row_line(r, indent, "%s: %s%s", prefix, buf, suffix);
    if (r->nlines > before)
        r->lines[before].noisy = summary_noisy(s);
}

void line_text(const struct line *l, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", l->text, l->noisy ? " noisy" : "");
}

struct figure *row_time(struct row *r, int indent, const char *name, const char *label,
                        struct summary s)
{
    struct figure *f = row_value(r, name, label, "ns", s);
    row_summary_line(r, indent, label, s, "");
    return f;
}

struct figure *row_text(struct row *r, int indent, const char *name, const char *label,
                        const char *fmt, ...)
{
    struct figure *f = new_figure(r, name, label, "");
    char text[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (f)
        snprintf(f->text, sizeof f->text, "%s", text);
    row_line(r, indent, "%s: %s", label, text);
    return f;
}

struct figure *row_failure(struct row *r, int indent, const char *name, const char *label,
                           const char *fmt, ...)
{
    char text[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!r->failed[0])
        snprintf(r->failed, sizeof r->failed, "%.63s: %.120s", label, text);
    return row_text(r, indent, name, label, "%s", text);
}

void row_verdict(struct row *r, enum verdict v, const char *fmt, ...)
{
    r->verdict = v;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
}

const struct figure *row_find(const struct row *r, const char *name)
{
    for (int i = 0; i < r->nfigs; i++)
        if (strcmp(r->figs[i].name, name) == 0)
            return &r->figs[i];
    return NULL;
}

void row_basis(struct row *r, const char *name)
{
    for (int i = 0; i < r->nfigs; i++)
        if (strcmp(r->figs[i].name, name) == 0)
            r->figs[i].basis = true;
}

void row_finish(struct row *r)
{
    /* A verdict drawn from the figures that were made would pass off a
     * failed measurement as a finding. */
    if (r->failed[0] && r->verdict != V_ERROR && r->verdict != V_NOT_RUN) {
        row_verdict(r, V_ERROR, "a measurement could not be made (%s)", r->failed);
        return;
    }
    if (r->verdict != V_HOLDS && r->verdict != V_FAILS)
        return;
    const char *sep = "; noisy: ";
    for (int i = 0; i < r->nfigs; i++) {
        if (!r->figs[i].basis || !r->figs[i].noisy)
            continue;
        size_t len = strlen(r->reason);
        snprintf(r->reason + len, sizeof r->reason - len, "%s%s", sep, r->figs[i].label);
        sep = ", ";
    }
}

const char *verdict_word(enum verdict v)
{
    switch (v) {
    case V_HOLDS: return "holds";
    case V_FAILS: return "does not hold here";
    case V_UNTESTED: return "not tested here";
    case V_ERROR: return "error";
    case V_NOT_RUN: break;
    }
    return "not run";
}
