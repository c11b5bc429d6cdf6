/*
 * probe.h - how a sandbox test program starts: it runs its suite only
 * when the kernel grants every layer of the sandbox level it tests, and
 * otherwise exits 77 (skipped), saying why.
 */
#ifndef WALLS_TEST_PROBE_H
#define WALLS_TEST_PROBE_H

#include "walls.h"

#define STRICT_LAYERS                                                                        \
    (WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_USER_NS | WALLS_LAYER_NET_NS |   \
     WALLS_LAYER_IPC_NS | WALLS_LAYER_MOUNT_NS | WALLS_LAYER_UTS_NS | WALLS_LAYER_NO_ROOT)

struct Suite;

/* The exit status for main(): 77 when walls_sandbox_probe() reports any
 * of layers refused, saying so on standard output in the words of program
 * (its name) and level (the sandbox level those layers make up); else
 * the suite's result, made by suite() only then. */
int sandbox_main(struct Suite *(*suite)(void), const char *program, const char *level,
                 unsigned layers);

#endif
