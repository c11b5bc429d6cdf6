/*
 * sandbox.h - the sandbox of process workers: what the kernel allows
 * (probed once, host side), what a pool asked for, and how a freshly
 * forked worker applies it (worker side).
 */
#ifndef WALLS_SANDBOX_H
#define WALLS_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "mailbox.h"

#define WALLS__SANDBOX_MAX_PATHS 8
#define WALLS__SANDBOX_PATH_MAX 256
#define WALLS__SANDBOX_NOBODY 65534 /* the uid and gid a root worker drops to */

/* The namespaces a STRICT worker enters besides its user namespace: the
 * layer that names each, its clone flag and its name in the texts. */
struct walls__sandbox_ns {
    unsigned layer;
    int flag;
    const char *name;
};
#define WALLS__SANDBOX_NNS 4
extern const struct walls__sandbox_ns walls__sandbox_namespaces[WALLS__SANDBOX_NNS];

/* The Landlock ABI version this kernel has; 0 = none. */
int walls__landlock_abi(void);

/*
 * What a strict worker applies, written by the host before every spawn
 * into the unused tail of lane 0's mailbox page run (after the old worker
 * of that mailbox is gone), read by the new worker before it runs a task.
 * A worker can scribble on it, but only the next worker reads it, and the
 * host rewrites it first.
 */
struct walls__sandbox_conf {
    uint32_t layers; /* WALLS_LAYER_* to apply */
    uint32_t allow;  /* WALLS_ALLOW_* */
    uint32_t npaths; /* read-only paths (WALLS_ALLOW_READ_FILES) */
    uint32_t reserved;
    char paths[WALLS__SANDBOX_MAX_PATHS][WALLS__SANDBOX_PATH_MAX];
};

_Static_assert(sizeof(struct walls__mailbox) + sizeof(struct walls__sandbox_conf) <=
                   WALLS__MAILBOX_SIZE,
               "the sandbox settings fit behind lane 0's mailbox");

static inline struct walls__sandbox_conf *walls__sandbox_conf_of(struct walls__mailbox *mb)
{
    return (struct walls__sandbox_conf *)((char *)mb + WALLS__MAILBOX_SIZE -
                                          sizeof(struct walls__sandbox_conf));
}

/* Host side. Checks what the options ask of the sandbox against what the
 * kernel allows (probed once per process). On success fills *conf and
 * writes the explain text ("; sandbox: ..."). Returns 0, -ENOTSUP (a layer
 * asked for is refused and no fallback was allowed; text says which),
 * -EINVAL (bad permission groups or paths), or the probe's error. */
struct walls_pool_opts;
int walls__sandbox_plan(const struct walls_pool_opts *opts, unsigned level,
                        struct walls__sandbox_conf *conf, char *text, size_t len);

/* Worker side, all while the worker still has one thread. */

/* Builds the allow-list, widened by the WALLS_ALLOW_* groups in allow,
 * with reads of unreadable_fd, and changes to its status flags, refused
 * (-1: none); NULL with *err set (an errno) when it cannot. */
void *walls__sandbox_build(unsigned allow, int unreadable_fd, int *err);
/* Loads a built filter for every thread of the process and frees it; the
 * descriptor of its listener, where the kernel reports refused calls, comes
 * back in *listener. Returns 0 or an errno. */
int walls__sandbox_load(void *filter, int *listener);
/* Frees a built filter that will not be loaded. */
void walls__sandbox_release(void *filter);
/* Enters the namespaces, drops privileges and applies Landlock rules as
 * conf says. Returns 0 or an errno. */
int walls__sandbox_enter_strict(const struct walls__sandbox_conf *conf);

#endif
