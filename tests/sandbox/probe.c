/*
 * probe.c - the start of every sandbox test program (see probe.h).
 */
#define _GNU_SOURCE
#include "probe.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Probed in a child, so that the tests (forked from here) probe afresh. */
static int probe_child(const char *program, const char *level, unsigned want)
{
    unsigned layers = 0;
    char line[512];
    int rc = walls_sandbox_probe(&layers, line, sizeof line);
    if (rc < 0) {
        printf("%s: skipped: cannot probe the sandbox: %s\n", program, walls_strerror(rc));
        return 77;
    }
    if ((layers & want) != want) {
        printf("%s: skipped: the kernel refuses part of the %s sandbox (%s)\n", program, level,
               line);
        return 77;
    }
    return 0;
}

int sandbox_main(Suite *(*suite)(void), const char *program, const char *level, unsigned layers)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = probe_child(program, level, layers);
        fflush(stdout); /* the reason for a skip must reach the log */
        _exit(rc);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return EXIT_FAILURE;
    if (WEXITSTATUS(st) != 0)
        return WEXITSTATUS(st);
    return run_suite(suite());
}
