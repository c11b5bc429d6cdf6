/*
 * relay.h - pools whose workers are elsewhere: the relay backend, and the
 * transport that a library beside libwalls gives it (libwalls-mpi's MPI).
 *
 * A relay pool's lanes are workers of its peers: lane i is one worker of
 * peer lane_peer[i], and a peer is given no more tasks at once than it has
 * lanes. The engine deals and balances tasks over the lanes as over any
 * others; the backend's relay thread consumes each lane's ring as a worker
 * would, one task at a time, hands the task to the transport, and writes
 * the result the transport brings back as the lane's completion. The
 * relay's completions come from the host's own code, so the engine
 * believes any status in them (a peer's crash, timeout or violation).
 *
 * A task that must be stopped (cancelled while running, or past its time
 * limit) is cancelled at its peer; if no result comes within
 * WALLS__RELAY_GRACE_NS of asking, the relay ends it itself and closes its
 * lane, so that a silent peer cannot hold a task for ever.
 *
 * These symbols are exported from libwalls for libwalls-mpi, built from
 * the same tree; they are not part of walls.h and change with any release.
 */
#ifndef WALLS_RELAY_H
#define WALLS_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walls.h"

#define WALLS__RELAY_API __attribute__((visibility("default")))

#define WALLS__RELAY_GRACE_NS 5000000000LL

/* One task for a peer. in is borrowed for the call. */
struct walls__relay_task {
    unsigned lane;    /* echoed in its result */
    uint32_t seq;
    uint16_t module;  /* its function: a module of the pool's table, told to the peer */
    uint64_t offset;  /* before (the module op), and the offset in it */
    const void *in;
    size_t in_len;
};

/* One result from a peer. out is borrowed for the call. */
struct walls__relay_result {
    unsigned peer;
    unsigned lane;
    uint32_t seq;
    int status;       /* enum walls_status */
    int code;
    unsigned flags;   /* WALLS_RESULT_* */
    const void *out;
    size_t out_len;
    uint64_t restarts, recycled; /* the peer pool's own counters, as it sent this */
};

typedef void walls__relay_deliver(void *relay, const struct walls__relay_result *res);

/* What the transport does. Every op is called from the relay's thread,
 * one at a time, except close. Each returns 0 or -errno. */
struct walls__relay_ops {
    /* Tells peer that module number module is at path. */
    int (*module)(void *ctx, unsigned peer, uint16_t module, const char *path);
    /* Sends a task to peer. */
    int (*task)(void *ctx, unsigned peer, const struct walls__relay_task *task);
    /* Asks peer to stop the task it runs for lane (request seq). */
    int (*cancel)(void *ctx, unsigned peer, unsigned lane, uint32_t seq);
    /* Asks peer to bring its broken pool back (walls_pool_reset()). */
    int (*reset)(void *ctx, unsigned peer);
    /* Moves messages along, and calls deliver(relay, result) for each
     * result that arrived. Returns how many things happened: 0 lets the
     * relay sleep a little. */
    int (*poll)(void *ctx, walls__relay_deliver *deliver, void *relay);
    /* The pool is drained and its relay gone: tells every peer to stop,
     * and frees ctx. From the thread that destroys the pool, or from
     * walls__relay_pool_create() when it fails. */
    void (*close)(void *ctx);
};

/* A peer's pool, as it reported it. */
struct walls__relay_peer {
    unsigned lanes;                  /* tasks it runs at once: at least 1 */
    enum walls_placement placement;
    unsigned processes, threads;     /* as its walls_pool_stats() says */
};

struct walls__relay_conf {
    const struct walls__relay_ops *ops;
    void *ctx;
    unsigned npeers;
    const struct walls__relay_peer *peers;
    enum walls_placement placement;  /* what walls_pool_stats() reports, */
    unsigned threads;                /* with the sum of the peers' processes */
    const char *explain;             /* walls_pool_explain()'s text */
};

/* A relay pool: opts are checked as walls_pool_create() checks them (an
 * arena, locks or a shared region: -ENOTSUP). On failure conf->ops->close
 * has been called. Returns 0 or what walls_pool_create() returns. */
WALLS__RELAY_API int walls__relay_pool_create(walls_pool **pool, const struct walls_pool_opts *opts,
                                              const struct walls__relay_conf *conf);

/* One peer's share of a relay pool's statistics. Returns 0, -EINVAL (peer
 * out of range), -EBADF (destroyed pool) or -ENOTSUP (not a relay pool). */
WALLS__RELAY_API int walls__relay_peer_stats(walls_pool *pool, unsigned peer,
                                             struct walls_stats *stats);

/* Checks opts as walls__relay_pool_create() does: 0, or its error with
 * its reason kept for walls_last_error(). */
WALLS__RELAY_API int walls__relay_check(const struct walls_pool_opts *opts);

/* Keeps text as the calling thread's walls_last_error(); returns err. */
WALLS__RELAY_API int walls__relay_fail(int err, const char *text);

/* module.h: where the module at path is loaded here (0 or -ENOENT). */
WALLS__RELAY_API int walls__module_base(const char *path, uintptr_t *base);

#endif
