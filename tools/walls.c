/*
 * walls.c - the walls command line: `walls bench` and its help.
 */
#include <stdio.h>
#include <string.h>

#include "walls.h"
#include "bench/bench.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: walls [--version] [--help] <command> [options]\n"
            "\n"
            "commands:\n"
            "  bench    measure the seed's threads-versus-processes claims on this machine\n"
            "           (walls bench --help for its options)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("walls %s\n", walls_version());
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "bench") == 0)
        return walls_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "walls: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
