/*
 * bench.h - `walls bench`, as the walls command line calls it.
 */
#ifndef WALLS_TOOLS_BENCH_H
#define WALLS_TOOLS_BENCH_H

/* argv[0] is "bench". Returns the process exit status. */
int walls_bench_main(int argc, char **argv);

#endif
