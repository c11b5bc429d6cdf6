/*
 * main.c - walls-tabs: runs untrusted Lua scripts as tabs, one sandboxed
 * process each (or, with --threads, one thread each in this process: the
 * shared kitchen, for comparison).
 *
 *   walls-tabs run   [options] script.lua...   until every tab is idle
 *   walls-tabs serve --ui 127.0.0.1:PORT [options] script.lua...
 *   walls-tabs bench [options]                  the side-by-side figures
 *
 * run prints one line (or one JSON object) per tab: its name, outcome,
 * detail and message counts. Exit status: 0 when every tab ended ok, 1
 * when some did not, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tabs.h"

#define VERSION "0.1.0"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: walls-tabs run [options] script.lua...\n"
            "       walls-tabs serve --ui 127.0.0.1:PORT [options] script.lua...\n"
            "       walls-tabs bench [--tabs N] [--quick]\n"
            "options:\n"
            "  --timeout-ms N       longest an event may run (default 1000)\n"
            "  --memory-mib N       Lua memory per tab (default 64)\n"
            "  --deadline-ms N      run: stop waiting for idle tabs after N ms (default 30000)\n"
            "  --json               run: one JSON object per tab\n"
            "  --origin TAB=ORIGIN  storage origin of a tab (default: its name)\n"
            "  --threads            one thread per tab in this process, no walls between\n"
            "  --unsafe-lua         every standard library and binary chunks (tests only)\n"
            "  --quiet              no tab logs on stderr\n"
            "  --version, --help\n");
}

static int number(const char *flag, const char *arg, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = arg ? strtol(arg, &end, 10) : 0;
    if (!arg || errno || *end || end == arg || v < min || v > max) {
        fprintf(stderr, "walls-tabs: %s needs a number from %ld to %ld\n", flag, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

struct origin_opt {
    const char *tab, *origin;
};

static void print_tab(const struct tab_info *in, int json)
{
    if (!json) {
        printf("%-20s %-13s sent=%llu received=%llu %s\n", in->name, tab_outcome_name(in->outcome),
               (unsigned long long)in->sent, (unsigned long long)in->received,
               in->detail[0] ? in->detail : "-");
        return;
    }
    /* Room for the longest of each: a result (4 KiB), a detail and a name
     * escaped at 6 bytes a byte. */
    static char buf[16384];
    size_t at = 0;
    at = json_str(buf, sizeof buf, at, "name", 4);
    at += (size_t)snprintf(buf + at, sizeof buf - at, ":");
    at = json_str(buf, sizeof buf, at, in->name, strlen(in->name));
    at += (size_t)snprintf(buf + at, sizeof buf - at, ",\"outcome\":\"%s\",\"detail\":",
                           tab_outcome_name(in->outcome));
    at = json_str(buf, sizeof buf, at, in->detail, strlen(in->detail));
    if (at < sizeof buf)
        at += (size_t)snprintf(buf + at, sizeof buf - at,
                               ",\"sent\":%llu,\"received\":%llu,\"dropped\":%llu,"
                               "\"events\":%llu,\"result\":",
                               (unsigned long long)in->sent, (unsigned long long)in->received,
                               (unsigned long long)in->dropped, (unsigned long long)in->events);
    if (at < sizeof buf)
        snprintf(buf + at, sizeof buf - at, "%s", in->result_json[0] ? in->result_json : "null");
    printf("{%s}\n", buf);
}

static int run_command(int argc, char **argv, int serve, struct origin_opt *origins,
                       const char **scripts);

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("walls-tabs %s (libwalls %s)\n", VERSION, walls_version());
        return 0;
    }
    if (strcmp(cmd, "bench") == 0)
        return bench_main(argc - 1, argv + 1);
    int serve = strcmp(cmd, "serve") == 0;
    if (!serve && strcmp(cmd, "run") != 0) {
        fprintf(stderr, "walls-tabs: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }

    /* The fork server the tabs' processes come from is started now, while
     * this program has one thread: a fork of it, a child of this process
     * (once tabs open on threads of their own, walls would re-execute the
     * program instead). */
    int rc = walls_init();
    if (rc != 0) {
        fprintf(stderr, "walls-tabs: walls_init: %s (%s)\n", walls_strerror(rc),
                walls_last_error());
        return 1;
    }
    /* Room for every argument: freed on every way out. */
    struct origin_opt *origins = calloc((size_t)argc, sizeof *origins);
    const char **scripts = calloc((size_t)argc, sizeof *scripts);
    rc = origins && scripts ? run_command(argc, argv, serve, origins, scripts) : 1;
    free(origins);
    free(scripts);
    walls_fini();
    return rc;
}

static int run_command(int argc, char **argv, int serve, struct origin_opt *origins,
                       const char **scripts)
{
    struct broker_opts opts = {.timeout_ms = 1000, .memory = (size_t)64 << 20};
    long deadline_ms = 30000;
    int json = 0;
    const char *ui = NULL;
    size_t norigins = 0, nscripts = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        long v;
        if (strcmp(a, "--timeout-ms") == 0) {
            if (number(a, argv[++i < argc ? i : argc - 1], 1, 600000, &v))
                return 2;
            opts.timeout_ms = v;
        } else if (strcmp(a, "--memory-mib") == 0) {
            if (number(a, argv[++i < argc ? i : argc - 1], 1, 65536, &v))
                return 2;
            opts.memory = (size_t)v << 20;
        } else if (strcmp(a, "--deadline-ms") == 0) {
            if (number(a, argv[++i < argc ? i : argc - 1], 1, 86400000, &v))
                return 2;
            deadline_ms = v;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--threads") == 0) {
            opts.threads = 1;
        } else if (strcmp(a, "--unsafe-lua") == 0) {
            opts.unsafe_lua = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            opts.quiet = 1;
        } else if (strcmp(a, "--ui") == 0 && serve && i + 1 < argc) {
            ui = argv[++i];
        } else if (strcmp(a, "--origin") == 0 && i + 1 < argc) {
            char *eq = strchr(argv[++i], '=');
            if (eq == NULL || eq == argv[i] || eq[1] == '\0') {
                fprintf(stderr, "walls-tabs: --origin needs TAB=ORIGIN\n");
                return 2;
            }
            *eq = '\0';
            origins[norigins++] = (struct origin_opt){argv[i], eq + 1};
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--") == 0) {
            while (++i < argc)
                scripts[nscripts++] = argv[i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "walls-tabs: unknown or incomplete option \"%s\"\n", a);
            usage(stderr);
            return 2;
        } else {
            scripts[nscripts++] = a;
        }
    }
    if (nscripts == 0) {
        fprintf(stderr, "walls-tabs: no scripts given\n");
        usage(stderr);
        return 2;
    }
    if (serve && ui == NULL) {
        fprintf(stderr, "walls-tabs: serve needs --ui 127.0.0.1:PORT\n");
        return 2;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct broker *b;
    if (broker_create(&b, &opts)) {
        fprintf(stderr, "walls-tabs: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nscripts; i++) {
        const char *origin = NULL;
        const char *base = strrchr(scripts[i], '/');
        base = base ? base + 1 : scripts[i];
        size_t n = strlen(base);
        if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
            n -= 4;
        for (size_t k = 0; k < norigins; k++)
            if (strlen(origins[k].tab) == n && strncmp(origins[k].tab, base, n) == 0)
                origin = origins[k].origin;
        if (broker_add(b, scripts[i], origin) < 0) {
            broker_destroy(b);
            return 2;
        }
    }
    for (size_t k = 0; k < norigins; k++)
        if (broker_find(b, origins[k].tab) < 0) {
            fprintf(stderr, "walls-tabs: --origin names no tab: %s\n", origins[k].tab);
            broker_destroy(b);
            return 2;
        }

    int rc = 0;
    if (serve) {
        if (ui_start(b, ui)) {
            broker_destroy(b);
            return 1;
        }
        while (!stopping)
            broker_turn(b, 1000);
        ui_stop();
    } else {
        int64_t deadline = tabs_now_ms() + deadline_ms;
        while (!stopping && !broker_idle(b)) {
            int64_t left = deadline - tabs_now_ms();
            if (left <= 0)
                break;
            broker_turn(b, left > 1000 ? 1000 : (int)left);
        }
        int late = !broker_idle(b);
        for (size_t i = 0; i < broker_count(b); i++) {
            struct tab_info in;
            broker_info(b, i, &in);
            if (in.outcome == OUT_OK && in.running && late && (in.timers || in.queued || in.busy)) {
                char detail[160];
                snprintf(detail, sizeof detail, "still running %s (%u timers, %u queued)",
                         stopping ? "when stopped by a signal" : "at the deadline", in.timers,
                         in.queued + (unsigned)in.busy);
                in.detail = detail;
                print_tab(&in, json);
            } else {
                print_tab(&in, json);
            }
            if (in.outcome != OUT_OK)
                rc = 1;
        }
        fflush(stdout);
    }
    if (broker_stuck(b)) {
        /* A thread stuck in C code cannot be joined: leave without it. */
        fprintf(stderr, "walls-tabs: %d tab thread(s) stuck past the time limit; exiting\n",
                broker_stuck(b));
        fflush(NULL);
        _exit(rc);
    }
    broker_destroy(b);
    return rc;
}
