/*
 * bench.h - `walls bench`.
 */
#ifndef WALLS_TOOLS_BENCH_H
#define WALLS_TOOLS_BENCH_H

/* argv[0] is "bench". Returns the process exit status. */
int walls_bench_main(int argc, char **argv);

#endif
