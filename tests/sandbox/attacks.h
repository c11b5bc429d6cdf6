/*
 * attacks.h - hostile tasks for the sandbox tests, and what they attack.
 *
 * Each attack is a task that returns 0 when it got what it wanted, and
 * takes a struct target as its input: the test process, a child of it
 * waiting to be killed, a secret in its memory, a TCP listener and a
 * scratch directory. setup_target() makes them in the test (which Check
 * runs in a process of its own) and teardown_target() removes them.
 * attacks[] is the battery: how each attack must end in the strict
 * sandbox and without a sandbox.
 */
#ifndef WALLS_TEST_ATTACKS_H
#define WALLS_TEST_ATTACKS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walls.h"

/* What every attack gets as its input. */
struct target {
    int32_t host;      /* the test process */
    int32_t victim;    /* a child of the test process that waits to be killed */
    uint64_t secret;   /* address of secret[] in the test process */
    int32_t port;      /* a TCP listener of the test process on 127.0.0.1 */
    int32_t spin_ms;
    char dir[128];     /* a scratch directory of the test process */
};

extern struct target target;
extern char secret[32]; /* "the host's secret", unless an attack reached it */

#define FAIL_ERRNO (errno ? errno : 1)

static inline const struct target *T(struct walls_call *c)
{
    return c->in;
}

/* The attacks other tests use on their own; the rest are in attacks[]. */
int a_open_read(struct walls_call *c);  /* reads /etc/passwd */
int a_fork(struct walls_call *c);
int a_udp_socket(struct walls_call *c);
int a_socketpair(struct walls_call *c); /* a UNIX socket pair */
int a_unshare(struct walls_call *c);    /* a mount namespace */
int a_spin(struct walls_call *c);       /* spins target.spin_ms */
int a_int80(struct walls_call *c);      /* getpid through the i386 ABI */
int a_x32(struct walls_call *c);        /* getpid through the x32 ABI */
/* Whether int 0x80 reaches the kernel's i386 ABI here: without IA-32
 * emulation it faults (SIGSEGV) before any filter sees it. Forks. */
bool kernel_has_i386_abi(void);

struct attack {
    const char *what;
    walls_fn *fn;
    enum walls_status strict; /* how it ends in the strict sandbox */
    int code;                 /* the signal, or 0 */
    const char *call;         /* WALLS_VIOLATION: the call named */
    enum walls_status plain;  /* how it ends without a sandbox */
    bool optional;            /* the kernel may lack it: plain may fail with an errno */
};

extern const struct attack attacks[];
extern const size_t n_attacks;
#define NATTACKS n_attacks

/* The target, made fresh (the test fails if it cannot be), and removed. */
void setup_target(void);
void teardown_target(void);
/* (Re)creates target.dir/victim, the file attacks try to delete or open. */
void make_victim_file(void);
/* A process pool of two workers under the strict sandbox, with a memory
 * limit (none under the sanitizers). */
walls_pool *strict_pool(void);

#endif
