/*
 * handle.c - generation-checked handle tables (see handle.h).
 *
 * Allocation and release take the table's mutex; lookup takes none: chunk
 * memory is never unmapped, each chunk's mapping is published with release
 * order before nchunks counts it, and the generation is read atomically.
 *
 * Entries are handed out from chunks that have free ones (the partial
 * stack, most recently freed first, so that a steady load keeps reusing the
 * same warm chunk). A chunk whose last live entry is released becomes a
 * spare; spares past WALLS__HANDLE_SPARE that stay empty for
 * WALLS__HANDLE_DECAY_NS give their pages back to the system (MADV_DONTNEED:
 * they read as zeros from then on), and such a chunk is made again, with
 * fresh generations, only when no resident chunk has room. The age is read
 * from the coarse clock, and only while there are spares to give back.
 *
 * Generations: an entry is made free with an even one; handing it out adds
 * one (odd: live), retiring it adds one (even: dead, and free again once
 * released). Handles carry the odd one.
 */
#define _GNU_SOURCE
#include "handle.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "atomic.h"
#include "internal.h"

/* The leak checker's, when the program runs under one (ASan or LSan),
 * whether or not this library was built with it: entries point at heap
 * memory, so it must look in the chunks too. */
extern void __lsan_register_root_region(const void *p, size_t size) __attribute__((weak));

static size_t chunk_bytes(const struct walls__handles *table)
{
    size_t bytes = (size_t)table->chunk_entries * table->entry_size;
    return (bytes + 4095) & ~(size_t)4095;
}

static struct walls__handle_hdr *entry_at(const struct walls__handles *table, char *mem,
                                          uint32_t slot)
{
    return (struct walls__handle_hdr *)(mem + (size_t)slot * table->entry_size);
}

static void push_partial(struct walls__handles *table, uint32_t c)
{
    struct walls__handle_chunk *chunk = &table->chunks[c];
    if (chunk->partial)
        return;
    chunk->partial = true;
    chunk->next_partial = table->partial;
    table->partial = c + 1;
}

/* Makes chunk c's entries (again), generations from its base, all free. */
static void make_chunk(struct walls__handles *table, uint32_t c)
{
    struct walls__handle_chunk *chunk = &table->chunks[c];
    chunk->free = NULL;
    /* Push in reverse so that the lowest index is handed out first. */
    for (uint32_t i = table->chunk_entries; i-- > 0;) {
        struct walls__handle_hdr *hdr = entry_at(table, chunk->mem, i);
        hdr->index = c * table->chunk_entries + i;
        /* Release: a lookup that reads this generation sees the index. */
        walls__store_release(&hdr->gen, chunk->gen_base);
        if (table->init_entry)
            table->init_entry(hdr);
        hdr->next_free = chunk->free;
        chunk->free = hdr;
    }
    chunk->live = 0;
    chunk->resident = true;
    table->spare++;
    push_partial(table, c);
}

/* A chunk with room: a released one made again, or a new mapping. */
static int grow(struct walls__handles *table)
{
    for (uint32_t c = 0; c < table->nchunks; c++)
        if (!table->chunks[c].resident) {
            make_chunk(table, c);
            return 0;
        }
    uint32_t n = table->nchunks;
    if (n == WALLS__HANDLE_CHUNKS)
        return -1;
    void *mem = mmap(NULL, chunk_bytes(table), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    if (__lsan_register_root_region)
        __lsan_register_root_region(mem, chunk_bytes(table));
    table->chunks[n].mem = mem;
    table->chunks[n].gen_base = 2;
    make_chunk(table, n);
    /* Release: the chunk's contents are visible before lookups can reach it. */
    walls__store_release(&table->nchunks, n + 1);
    return 0;
}

void *walls__handle_alloc(struct walls__handles *table)
{
    pthread_mutex_lock(&table->lock);
    struct walls__handle_chunk *chunk = NULL;
    for (;;) {
        while (table->partial) {
            chunk = &table->chunks[table->partial - 1];
            if (chunk->resident && chunk->free)
                break;
            /* Full, or given back: off the stack. */
            table->partial = chunk->next_partial;
            chunk->partial = false;
            chunk = NULL;
        }
        if (chunk || grow(table) != 0)
            break;
    }
    if (!chunk) {
        pthread_mutex_unlock(&table->lock);
        return NULL;
    }
    struct walls__handle_hdr *hdr = chunk->free;
    chunk->free = hdr->next_free;
    hdr->next_free = NULL;
    if (chunk->live++ == 0)
        table->spare--;
    /* Odd: live. Release: a lookup that reads it sees the entry as it is. */
    walls__store_release(&hdr->gen, walls__load_relaxed(&hdr->gen) + 1);
    pthread_mutex_unlock(&table->lock);
    return hdr;
}

void walls__handle_retire(void *entry)
{
    struct walls__handle_hdr *hdr = entry;
    uint32_t gen = walls__load_relaxed(&hdr->gen);
    if (!(gen & 1))
        return; /* retired already */
    /* Even: dead. Release: a lookup that sees it sees no stale state. */
    walls__store_release(&hdr->gen, gen + 1);
}

/* Gives chunk c's pages back; its next generations start above every one
 * it handed out. Table lock held, the chunk empty. */
static void give_back(struct walls__handles *table, uint32_t c)
{
    struct walls__handle_chunk *chunk = &table->chunks[c];
    uint32_t top = chunk->gen_base;
    for (uint32_t i = 0; i < table->chunk_entries; i++) {
        uint32_t gen = walls__load_relaxed(&entry_at(table, chunk->mem, i)->gen);
        if (gen > top)
            top = gen;
    }
    chunk->gen_base = (top + 2) & ~1u; /* even, above every one handed out */
    chunk->resident = false;
    chunk->free = NULL;
    table->spare--;
    madvise(chunk->mem, chunk_bytes(table), MADV_DONTNEED);
}

static int64_t coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Gives back empty chunks that emptied at or before cutoff while there are
 * more than WALLS__HANDLE_SPARE spares. Table lock held. */
static void trim_locked(struct walls__handles *table, int64_t cutoff)
{
    for (uint32_t c = 0; c < table->nchunks && table->spare > WALLS__HANDLE_SPARE; c++) {
        struct walls__handle_chunk *chunk = &table->chunks[c];
        if (chunk->resident && chunk->live == 0 && chunk->empty_since <= cutoff)
            give_back(table, c);
    }
}

void walls__handle_release(struct walls__handles *table, void *entry)
{
    struct walls__handle_hdr *hdr = entry;
    walls__handle_retire(entry);
    pthread_mutex_lock(&table->lock);
    uint32_t c = hdr->index / table->chunk_entries;
    struct walls__handle_chunk *chunk = &table->chunks[c];
    hdr->next_free = chunk->free;
    chunk->free = hdr;
    push_partial(table, c);
    bool emptied = --chunk->live == 0;
    if (emptied) {
        table->spare++;
        chunk->empty_since = coarse_ns();
    }
    if (table->spare > WALLS__HANDLE_SPARE && !table->init_entry) {
        int64_t now = emptied ? chunk->empty_since : coarse_ns();
        /* A quarter of the age apart: a burst of releases scans rarely. */
        if (now >= table->next_trim) {
            table->next_trim = now + WALLS__HANDLE_DECAY_NS / 4;
            trim_locked(table, now - WALLS__HANDLE_DECAY_NS);
        }
    }
    pthread_mutex_unlock(&table->lock);
}

void walls__handle_trim(struct walls__handles *table, int64_t max_age_ns)
{
    if (table->init_entry)
        return;
    pthread_mutex_lock(&table->lock);
    trim_locked(table, max_age_ns ? coarse_ns() - max_age_ns : INT64_MAX);
    pthread_mutex_unlock(&table->lock);
}

bool walls__handle_foreign(uint64_t handle)
{
    /* Only what has a handle's shape: garbage is merely no handle. */
    uint32_t low = (uint32_t)handle, gen = (uint32_t)(handle >> 32);
    uint32_t epoch = low >> WALLS__HANDLE_INDEX_BITS;
    return (gen & 1) && (low & ((1u << WALLS__HANDLE_INDEX_BITS) - 1)) && epoch &&
           epoch != walls__epoch();
}

void *walls__handle_get(struct walls__handles *table, uint64_t handle)
{
    uint32_t low = (uint32_t)handle & ((1u << WALLS__HANDLE_INDEX_BITS) - 1);
    uint32_t gen = (uint32_t)(handle >> 32);
    if (low == 0 || gen == 0 || (uint32_t)handle >> WALLS__HANDLE_INDEX_BITS != walls__epoch())
        return NULL;
    uint32_t index = low - 1;
    /* Acquire: pairs with the release in grow(). */
    uint32_t nchunks = walls__load_acquire(&table->nchunks);
    if (index / table->chunk_entries >= nchunks)
        return NULL;
    char *mem = table->chunks[index / table->chunk_entries].mem;
    struct walls__handle_hdr *hdr = entry_at(table, mem, index % table->chunk_entries);
    /* Acquire: pairs with the releases in alloc and retire. Only live
     * entries have odd generations; a chunk given back reads 0. */
    if (!(gen & 1) || walls__load_acquire(&hdr->gen) != gen)
        return NULL;
    return hdr;
}

uint64_t walls__handle_of(const void *entry)
{
    const struct walls__handle_hdr *hdr = entry;
    return ((uint64_t)walls__load_relaxed(&hdr->gen) << 32) |
           (uint64_t)(walls__epoch() << WALLS__HANDLE_INDEX_BITS) | (uint64_t)(hdr->index + 1);
}
