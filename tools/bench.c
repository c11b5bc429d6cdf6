#include "bench.h"
#include <stdio.h>
int walls_bench_main(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "walls bench: placeholder\n");
    return 2;
}
