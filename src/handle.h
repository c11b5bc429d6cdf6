/*
 * handle.h - checked handles for tasks and pools.
 *
 * A handle given to the caller is not a pointer but (generation << 32 |
 * epoch << 25 | index + 1), the epoch being the making process's
 * (walls__epoch): another process's handle names none of this one's
 * entries, whatever its index and generation. Entries live in chunks of address space that are never
 * unmapped, so looking up a stale handle reads valid memory and finds a
 * different generation: a task freed twice or a pool used after destroy is
 * refused, not dereferenced. A live entry's generation is odd, a free
 * one's even (handing out and retiring each add one), so a made-up handle
 * never names an entry that was never handed out, whatever its index.
 *
 * Memory comes back: a table whose entries hold no lock (tasks) gives the
 * pages of a chunk whose entries are all free back to the system. It keeps
 * WALLS__HANDLE_SPARE such chunks resident for reuse; more only while they
 * have been empty for less than WALLS__HANDLE_DECAY_NS, so that a program
 * that submits a million tasks, frees them and submits a million again does
 * not fault the same pages in each time. Chunks past that age go back at
 * the next release, or at walls__handle_trim(). A released chunk reads as
 * zeros (generation 0, which no handle carries) until it is made again,
 * with generations above any it handed out before.
 */
#ifndef WALLS_HANDLE_H
#define WALLS_HANDLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WALLS__HANDLE_CHUNKS 4096u
#define WALLS__HANDLE_INDEX_BITS 25 /* index + 1 of 4096 chunks of 4096 entries fits */
#define WALLS__HANDLE_SPARE 2u /* empty chunks kept resident, per table */
#define WALLS__HANDLE_DECAY_NS 1000000000LL /* and more for this long once empty */

/* Every entry starts with this header. */
struct walls__handle_hdr {
    uint32_t gen;   /* odd while handed out, even while free; read atomically */
    uint32_t index;
    struct walls__handle_hdr *next_free;
};

/* One chunk of entries. All fields but mem are guarded by the table's lock. */
struct walls__handle_chunk {
    char *mem;                      /* published with release order; never unmapped */
    struct walls__handle_hdr *free; /* its free entries */
    uint32_t live;                  /* entries handed out */
    uint32_t gen_base;              /* generation (even) its entries start free with */
    uint32_t next_partial;          /* the partial stack (chunks with free entries): 1 + index */
    bool partial;                   /* on that stack */
    bool resident;                  /* made: its entries are initialised */
    int64_t empty_since;            /* live 0: when its last entry was released */
};

struct walls__handles {
    pthread_mutex_t lock;
    size_t entry_size;
    uint32_t chunk_entries;
    void (*init_entry)(void *entry); /* once, when a chunk is first made; NULL for
                                      * tables whose chunks may be given back */
    uint32_t nchunks;                /* mapped chunks; published with release order */
    uint32_t partial;                /* top of the partial stack: 1 + index, 0 = empty */
    uint32_t spare;                  /* resident chunks with no live entry */
    int64_t next_trim;               /* spare above WALLS__HANDLE_SPARE: when to look again */
    struct walls__handle_chunk chunks[WALLS__HANDLE_CHUNKS];
};

/* An entry with a fresh generation, or NULL when memory runs out. */
void *walls__handle_alloc(struct walls__handles *table);
/* Invalidates every handle to the entry; its memory stays in use. */
void walls__handle_retire(void *entry);
/* Invalidates every handle to the entry and makes it reusable. */
void walls__handle_release(struct walls__handles *table, void *entry);
/* Gives back the pages of every empty chunk beyond WALLS__HANDLE_SPARE
 * that has been empty for max_age_ns or longer (0: all of them). */
void walls__handle_trim(struct walls__handles *table, int64_t max_age_ns);
/* The entry a live handle of this process names, or NULL. */
void *walls__handle_get(struct walls__handles *table, uint64_t handle);
/* Whether the handle was made by another process (its epoch is not ours). */
bool walls__handle_foreign(uint64_t handle);
/* The handle value for a live entry. */
uint64_t walls__handle_of(const void *entry);

#endif
