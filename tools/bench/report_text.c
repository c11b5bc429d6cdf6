/*
 * report_text.c - the table `walls bench` prints: one block per row, its
 * claim, what the seed says, what was measured here and the verdict, each
 * column word-wrapped to its width so the table fits in 99 columns.
 */
#include "report.h"

#include <string.h>

#include "walls.h"

/* Table columns; with the four separating spaces they make 99 columns. */
#define COL_ID 2
#define COL_CLAIM 13
#define COL_SEED 17
#define COL_MEAS 40
#define COL_VERDICT 23
#define WRAP_MAX 24

/*
 * Word-wraps text into lines of at most width columns (continuation lines
 * indented by indent); '\n' forces a break. Returns the number of lines.
 */
static int wrap(const char *text, int width, int indent, char out[][LINE_LEN], int max)
{
    int n = 0;
    char cur[LINE_LEN] = "";
    int cur_len = 0;
    const char *p = text;
    while (*p && n < max) {
        if (*p == '\n') {
            snprintf(out[n++], LINE_LEN, "%s", cur);
            cur[0] = '\0';
            cur_len = 0;
            p++;
            continue;
        }
        if (*p == ' ') {
            p++;
            continue;
        }
        int wlen = (int)strcspn(p, " \n");
        int room = width - (n > 0 ? indent : 0);
        if (cur_len > 0 && cur_len + 1 + wlen > room) {
            snprintf(out[n++], LINE_LEN, "%s", cur);
            cur[0] = '\0';
            cur_len = 0;
            continue;
        }
        if (wlen > room - cur_len - (cur_len ? 1 : 0))
            wlen = room - cur_len - (cur_len ? 1 : 0);
        if (wlen <= 0)
            wlen = 1;
        if (cur_len > 0)
            cur[cur_len++] = ' ';
        memcpy(cur + cur_len, p, (size_t)wlen);
        cur_len += wlen;
        cur[cur_len] = '\0';
        p += wlen;
    }
    if (cur_len > 0 && n < max)
        snprintf(out[n++], LINE_LEN, "%s", cur);
    for (int i = 1; i < n; i++) {
        if (indent > 0) {
            char tmp[LINE_LEN];
            snprintf(tmp, sizeof tmp, "%*s%s", indent, "", out[i]);
            snprintf(out[i], LINE_LEN, "%s", tmp);
        }
    }
    return n;
}

static void print_rule(FILE *f)
{
    for (int i = 0; i < COL_ID + COL_CLAIM + COL_SEED + COL_MEAS + COL_VERDICT + 4; i++)
        fputc('-', f);
    fputc('\n', f);
}

static void print_row(FILE *f, const struct row *r)
{
    static char cl[WRAP_MAX][LINE_LEN], sd[WRAP_MAX][LINE_LEN], ms[WRAP_MAX * 2][LINE_LEN],
        vd[WRAP_MAX][LINE_LEN];
    int ncl = wrap(r->def->title, COL_CLAIM, 0, cl, WRAP_MAX);
    int nsd = wrap(r->def->seed_claim, COL_SEED, 0, sd, WRAP_MAX);
    int nms = 0;
    for (int l = 0; l < r->nlines && nms < WRAP_MAX * 2; l++) {
        char text[LINE_LEN + 8];
        line_text(&r->lines[l], text, sizeof text);
        nms += wrap(text, COL_MEAS, 2, ms + nms, WRAP_MAX * 2 - nms);
    }
    char verdict[320];
    snprintf(verdict, sizeof verdict, "%s%s%s", verdict_word(r->verdict),
             r->reason[0] ? ": " : "", r->reason);
    int nvd = wrap(verdict, COL_VERDICT, 0, vd, WRAP_MAX);
    int h = ncl;
    if (nsd > h)
        h = nsd;
    if (nms > h)
        h = nms;
    if (nvd > h)
        h = nvd;
    for (int l = 0; l < h; l++) {
        char id[8] = "";
        if (l == 0)
            snprintf(id, sizeof id, "%d", r->def->number);
        char line[512];
        snprintf(line, sizeof line, "%-*s %-*s %-*s %-*s %s", COL_ID, id, COL_CLAIM,
                 l < ncl ? cl[l] : "", COL_SEED, l < nsd ? sd[l] : "", COL_MEAS,
                 l < nms ? ms[l] : "", l < nvd ? vd[l] : "");
        size_t len = strlen(line);
        while (len > 0 && line[len - 1] == ' ')
            line[--len] = '\0';
        fprintf(f, "%s\n", line);
    }
    print_rule(f);
}

void print_table(FILE *f, const struct bench *b, const struct row *rows, int nrows)
{
    char head[640];
    snprintf(head, sizeof head, "walls bench %s, %s run: median (min-max) of %s", walls_version(),
             b->full ? "full" : "quick", b->full ? "more runs" : "a few runs");
    fprintf(f, "%.99s\n", head);
    snprintf(head, sizeof head, "%s; %d usable CPUs (%s); %s %s; %.1f GiB RAM", b->model, b->cores,
             b->cpu_source, b->uname.sysname, b->uname.release,
             b->mem_total_kib > 0 ? (double)b->mem_total_kib / 1048576 : 0.0);
    fprintf(f, "%.99s\n", head);
    fprintf(f, "load average %.2f before, %.2f after (other work on the machine skews timings)\n",
            b->load_start, b->load_end);
    print_rule(f);
    fprintf(f, "%-*s %-*s %-*s %-*s %s\n", COL_ID, "#", COL_CLAIM, "claim", COL_SEED, "seed says",
            COL_MEAS, "measured here", "verdict");
    print_rule(f);
    bool noisy = false;
    for (int i = 0; i < nrows; i++) {
        if (!rows[i].selected)
            continue;
        print_row(f, &rows[i]);
        for (int l = 0; l < rows[i].nlines; l++)
            noisy = noisy || rows[i].lines[l].noisy;
    }
    if (noisy)
        fprintf(f, "noisy: the slowest tenth of the runs took over %gx the fastest tenth;\n"
                   "       the median may differ in another run\n", NOISY_RATIO);
}
