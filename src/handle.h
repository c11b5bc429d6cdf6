/*
 * handle.h - checked handles for tasks and pools.
 *
 * A handle given to the caller is not a pointer but (generation << 32 |
 * index + 1). Entries live in chunks that are never freed, so looking up a
 * stale handle reads valid memory and finds a different generation: a task
 * freed twice or a pool used after destroy is refused, not dereferenced.
 */
#ifndef WALLS_HANDLE_H
#define WALLS_HANDLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define WALLS__HANDLE_CHUNKS 4096u

/* Every entry starts with this header. */
struct walls__handle_hdr {
    uint32_t gen;   /* bumped when the entry is released; read atomically */
    uint32_t index;
    struct walls__handle_hdr *next_free;
};

struct walls__handles {
    pthread_mutex_t lock;
    size_t entry_size;
    uint32_t chunk_entries;
    void (*init_entry)(void *entry); /* once, when a chunk is made */
    uint32_t nchunks;                /* published with release order */
    void *chunks[WALLS__HANDLE_CHUNKS];
    struct walls__handle_hdr *free_list;
};

/* An entry with a fresh generation, or NULL when memory runs out. */
void *walls__handle_alloc(struct walls__handles *table);
/* Invalidates every handle to the entry; its memory stays in use. */
void walls__handle_retire(void *entry);
/* Invalidates every handle to the entry and makes it reusable. */
void walls__handle_release(struct walls__handles *table, void *entry);
/* The entry a live handle names, or NULL. */
void *walls__handle_get(struct walls__handles *table, uint64_t handle);
/* The handle value for a live entry. */
uint64_t walls__handle_of(const void *entry);

#endif
