/*
 * arena.h - a pool's shared arena and locks, host side.
 *
 * The arena is one memfd the host maps read-write and every worker maps
 * too. Only the host allocates: the free list and the table of buffers
 * live here, in the host's private memory. A buffer is a run of whole
 * pages; its handle packs (pool serial, generation, first page), so a
 * handle of another pool, a freed buffer or garbage is told apart from a
 * live one without trusting anything but the table. Serials are unique
 * among live arenas; a generation comes back to the same page only after
 * 2^20 allocations in the arena.
 *
 * Locks live in a second, small memfd mapped read-write by everyone, and
 * the shared region (opts.shared_size) in a third, likewise.
 */
#ifndef WALLS_ARENA_H
#define WALLS_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walls.h"

#define WALLS__PAGE 4096u

/* A handle: serial (16 bits) | generation (20) | first page (28: 1 TiB). */
#define WALLS__PAGE_BITS 28
#define WALLS__GEN_BITS 20

/* Where a buffer is, as the request slot carries it: offsets, never
 * pointers. */
struct walls__bufref {
    uint64_t offset;
    uint64_t len;
};

struct walls__arena_rec {
    uint32_t page;  /* first page */
    uint32_t pages;
    uint64_t size;  /* as asked for */
    uint32_t gen;   /* WALLS__GEN_BITS bits, never 0 */
    bool out_busy;  /* the output of an unfinished task */
    uint32_t pins;  /* unfinished tasks that name it */
};

struct walls__arena_ext {
    uint32_t page, pages;
};

struct walls__arena {
    int fd;              /* memfd, read-write; -1 = no arena */
    int ro_fd;           /* the same, opened read-only (staged workers); -1 = none */
    unsigned char *base; /* host mapping */
    size_t size;         /* bytes, whole pages */
    uint16_t serial;     /* this pool's mark in its handles; unique among live arenas */
    uint32_t next_gen;
    struct walls__arena_rec *recs; /* sorted by page */
    size_t nrecs, caprecs;
    struct walls__arena_ext *free; /* sorted by page, coalesced */
    size_t nfree, capfree;
    /* Locks. */
    int lock_fd;         /* -1 = no locks */
    walls_lock *locks;
    unsigned nlocks;
    /* The writable shared region (opts.shared_size): mapped read-write
     * by everyone, owned by no task. */
    int shared_fd;       /* -1 = none */
    unsigned char *shared;
    size_t shared_size;  /* whole pages */
};

/* All under the pool lock. */
int walls__arena_open(struct walls__arena *a, size_t size, unsigned nlocks, size_t shared);
void walls__arena_close(struct walls__arena *a);
int walls__arena_alloc(struct walls__arena *a, size_t size, walls_buf *buf);
int walls__arena_free(struct walls__arena *a, walls_buf buf);
/* The live record a handle names: 0, -ENOENT or -EXDEV. */
int walls__arena_find(struct walls__arena *a, walls_buf buf, struct walls__arena_rec **rec);
/* Takes (pin) or drops (!pin) the task's hold on its buffers: refs[0..n)
 * are inputs, refs[n] the output if has_output. */
void walls__arena_pin(struct walls__arena *a, const struct walls__bufref *refs, unsigned n,
                      bool has_output, bool pin);

/* lock.c */
void walls__locks_init(walls_lock *locks, unsigned n);
/* A process holding token died: release what it held, marking each such
 * lock for its next holder. */
void walls__locks_recover(walls_lock *locks, unsigned n, uint32_t token);
/* This process's holder token: 1 in the host, another in each worker. */
void walls__locks_set_token(uint32_t token);

#endif
