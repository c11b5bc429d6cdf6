/*
 * main.c - `walls bench`: measure the seed's threads-versus-processes
 * claims on this machine and give each claim a verdict.
 *
 * This file reads the command line, describes the machine, calibrates the
 * computing loop the tasks spin in, and runs the selected rows in order;
 * each row lives in its own file (row_*.c) and is described there by one
 * struct bench_row. Every row keeps all its samples and reduces them to a
 * median with min and max; its verdict is computed from those figures. The
 * only constants are the seed's own claims (quoted as the seed's) and the
 * sizes of the experiments.
 *
 * The bench forks on its own (fork timings, ping-pong partners, a throwaway
 * host for the thread crash, pipe-fed workers) only while no pool of its
 * own is alive, so those children are forks of a program without worker
 * threads. Core dumps are switched off for the bench and everything it
 * starts: crashes here are on purpose.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "row.h"
#include "task.h"
#include "walls.h"
#include "walls_commit.h"

/* The seed's table, in its order. */
static const struct bench_row *const table[] = {
    &row_create, &row_talk, &row_crash, &row_untrusted,
    &row_share,  &row_cpu,  &row_io,    &row_both,
};
#define NROWS ((int)(sizeof table / sizeof table[0]))

static void usage(FILE *out)
{
    fprintf(out,
            "usage: walls bench [--quick | --full] [--only ROWS] [--json] [--html FILE]\n"
            "\n"
            "Measures the seed's threads-versus-processes claims on this machine and\n"
            "prints one table: claim, what the seed says, what was measured here\n"
            "(median, min-max), and a verdict.\n"
            "\n"
            "  --quick        few repetitions, under a minute (the default)\n"
            "  --full         more repetitions\n"
            "  --only ROWS    run only these rows, e.g. --only 1,2 (rows 1-%d)\n"
            "  --json         print every figure as JSON instead of the table\n"
            "  --html FILE    also write a self-contained HTML report with charts\n"
            "  -h, --help     show this help\n"
            "\n",
            NROWS);
    /* The rows' names, wrapped before column 80. */
    int col = fprintf(out, "rows:");
    for (int i = 0; i < NROWS; i++) {
        char item[64];
        int len = snprintf(item, sizeof item, " %d %s%s", table[i]->number, table[i]->title,
                           i + 1 < NROWS ? "," : "");
        if (col + len >= 80)
            col = fprintf(out, "\n     ");
        col += fprintf(out, "%s", item);
    }
    fputc('\n', out);
}

/* "1,2,5": single-digit row numbers separated by commas. */
static int parse_only(const char *s, bool *sel)
{
    bool any = false;
    for (int i = 0; i < NROWS; i++)
        sel[i] = false;
    while (*s) {
        if (*s < '1' || *s > '0' + NROWS || (s[1] != ',' && s[1] != '\0'))
            return -1;
        sel[*s - '1'] = true;
        any = true;
        s++;
        if (*s == ',') {
            s++;
            if (*s == '\0')
                return -1;
        }
    }
    return any ? 0 : -1;
}

/* 0 to run, 1 for --help, 2 for bad options (the usage is printed). */
static int parse_options(int argc, char **argv, struct bench *b, bool *sel)
{
    for (int i = 0; i < NROWS; i++)
        sel[i] = true;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0 || strcmp(a, "--full") == 0) {
            quick |= a[2] == 'q';
            b->full |= a[2] == 'f';
            if (quick && b->full) {
                fprintf(stderr, "walls bench: --quick and --full: give one of them\n");
                usage(stderr);
                return 2;
            }
        } else if (strcmp(a, "--json") == 0) {
            b->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--only") == 0 || strncmp(a, "--only=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || parse_only(v, sel) != 0) {
                fprintf(stderr, "walls bench: --only wants row numbers 1-%d, e.g. 1,2\n", NROWS);
                usage(stderr);
                return 2;
            }
        } else if (strcmp(a, "--html") == 0 || strncmp(a, "--html=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v) {
                fprintf(stderr, "walls bench: --html wants a file name\n");
                usage(stderr);
                return 2;
            }
            b->html = v;
        } else {
            fprintf(stderr, "walls bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* What the reports say about the run and the machine, before the rows run. */
static void describe_machine(struct bench *b)
{
    time_t now = time(NULL);
    struct tm utc;
    if (gmtime_r(&now, &utc) == NULL ||
        strftime(b->timestamp, sizeof b->timestamp, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
        snprintf(b->timestamp, sizeof b->timestamp, "unknown");
    b->commit = WALLS_COMMIT;
    b->cores = walls_cpu_source(b->cpu_source, sizeof b->cpu_source);
    if (b->cores < 1)
        b->cores = walls_cpu_count();
    cpu_model(b->model, sizeof b->model);
    thp_mode(b->thp, sizeof b->thp);
    if (uname(&b->uname) != 0)
        memset(&b->uname, 0, sizeof b->uname);
    b->load_start = load_average();
}

/*
 * spin() iterations per millisecond of this thread's CPU time: wall time
 * would count the time other work on the machine holds the CPU, make the
 * loop look slow, and every "20 ms" task of row 6 come out shorter.
 */
static double thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return now_ns();
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t spin_sink;

static double calibrate(void)
{
    uint64_t n = 1u << 16;
    double t;
    for (;;) {
        double t0 = thread_cpu_ns();
        spin_sink = spin(n);
        t = thread_cpu_ns() - t0;
        if (t >= 20e6 || n >= (1ull << 40))
            break;
        n *= 2;
    }
    for (int i = 0; i < 3; i++) {
        double t0 = thread_cpu_ns();
        spin_sink = spin(n);
        double d = thread_cpu_ns() - t0;
        if (d < t)
            t = d;
    }
    return (double)n / (t / 1e6);
}

/* Runs the selected rows in order; 1 when one of them could not measure. */
static int run_rows(const struct bench *b, struct row *rows)
{
    int status = 0;
    for (int i = 0; i < NROWS; i++) {
        struct row *r = &rows[i];
        if (!r->selected)
            continue;
        fprintf(stderr, "walls bench: row %d/%d %s...\n", r->def->number, NROWS, r->def->title);
        double t0 = now_ns();
        r->def->run(b, r);
        row_finish(r);
        r->seconds = (now_ns() - t0) / 1e9;
        if (r->verdict == V_ERROR)
            status = 1;
    }
    return status;
}

/* The HTML report's file, created or emptied, never waiting to open it (a
 * FIFO that nothing reads fails with ENXIO); NULL and errno. */
static FILE *open_report(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0)
        return NULL;
    int flags = fcntl(fd, F_GETFL);
    FILE *f = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return f;
}

int walls_bench_main(int argc, char **argv)
{
    static struct bench bench;
    static struct row rows[NROWS];
    struct bench *b = &bench;
    bool sel[NROWS];
    int rc = parse_options(argc, argv, b, sel);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    for (int i = 0; i < NROWS; i++) {
        rows[i].def = table[i];
        rows[i].selected = sel[i];
    }
    /* Opened now: a path that cannot be written fails before the rows run,
     * not after minutes of measuring. */
    FILE *html = NULL;
    if (b->html && !(html = open_report(b->html))) {
        fprintf(stderr, "walls bench: cannot write %s: %s\n", b->html,
                errno == ENXIO ? "a FIFO that nothing reads" : strerror(errno));
        return 1;
    }

    /* Crashes here are on purpose: no core files, here or in workers. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) == 0) {
        rl.rlim_cur = 0;
        setrlimit(RLIMIT_CORE, &rl);
    }
    /* Start the fork server while this program is still single-threaded. */
    int init_rc = walls_init();
    if (init_rc != 0)
        fprintf(stderr, "walls bench: walls_init: %s (process rows will fail)\n",
                walls_strerror(init_rc));
    describe_machine(b);
    fprintf(stderr, "walls bench: calibrating...\n");
    b->spin_per_ms = calibrate();

    int status = run_rows(b, rows);
    b->load_end = load_average();
    b->mem_total_kib = meminfo_kib("MemTotal");
    b->mem_available_kib = meminfo_kib("MemAvailable");
    if (b->json)
        print_json(stdout, b, rows, NROWS);
    else
        print_table(stdout, b, rows, NROWS);
    /* Results that never reached their file (a full disk, a closed
     * stream) are a failed run, not a quiet one. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "walls bench: cannot write the %s to standard output: %s\n",
                b->json ? "JSON" : "table", strerror(errno ? errno : EIO));
        status = 1;
    }
    if (html) {
        rc = write_html(html, b, rows, NROWS);
        if (rc != 0) {
            fprintf(stderr, "walls bench: cannot write %s: %s\n", b->html, strerror(-rc));
            status = 1;
        }
    }
    if (init_rc == 0)
        walls_fini();
    return status;
}
