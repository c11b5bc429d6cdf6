/*
 * handle.c - generation-checked handle tables (see handle.h).
 *
 * Allocation and release take the table's mutex; lookup takes none: the
 * chunk array only grows, each chunk pointer is published with release
 * order before nchunks counts it, and the generation is read atomically.
 */
#include "handle.h"

#include <stdlib.h>
#include <string.h>

#include "atomic.h"

static struct walls__handle_hdr *entry_at(struct walls__handles *table, uint32_t index)
{
    char *chunk = table->chunks[index / table->chunk_entries];
    return (struct walls__handle_hdr *)(chunk + (size_t)(index % table->chunk_entries) *
                                                    table->entry_size);
}

static int grow(struct walls__handles *table)
{
    uint32_t n = table->nchunks;
    if (n == WALLS__HANDLE_CHUNKS)
        return -1;
    char *chunk = calloc(table->chunk_entries, table->entry_size);
    if (!chunk)
        return -1;
    table->chunks[n] = chunk;
    /* Push in reverse so that the lowest index is handed out first. */
    for (uint32_t i = table->chunk_entries; i-- > 0;) {
        struct walls__handle_hdr *hdr =
            (struct walls__handle_hdr *)(chunk + (size_t)i * table->entry_size);
        hdr->index = n * table->chunk_entries + i;
        hdr->gen = 1;
        if (table->init_entry)
            table->init_entry(hdr);
        hdr->next_free = table->free_list;
        table->free_list = hdr;
    }
    /* Release: the chunk's contents are visible before lookups can reach it. */
    walls__store_release(&table->nchunks, n + 1);
    return 0;
}

void *walls__handle_alloc(struct walls__handles *table)
{
    pthread_mutex_lock(&table->lock);
    if (!table->free_list && grow(table) != 0) {
        pthread_mutex_unlock(&table->lock);
        return NULL;
    }
    struct walls__handle_hdr *hdr = table->free_list;
    table->free_list = hdr->next_free;
    hdr->next_free = NULL;
    pthread_mutex_unlock(&table->lock);
    return hdr;
}

void walls__handle_retire(void *entry)
{
    struct walls__handle_hdr *hdr = entry;
    uint32_t gen = walls__load_relaxed(&hdr->gen) + 1;
    if (gen == 0)
        gen = 1;
    /* Release: a lookup that sees the new generation sees no stale state. */
    walls__store_release(&hdr->gen, gen);
}

void walls__handle_release(struct walls__handles *table, void *entry)
{
    struct walls__handle_hdr *hdr = entry;
    walls__handle_retire(entry);
    pthread_mutex_lock(&table->lock);
    hdr->next_free = table->free_list;
    table->free_list = hdr;
    pthread_mutex_unlock(&table->lock);
}

void *walls__handle_get(struct walls__handles *table, uint64_t handle)
{
    uint32_t low = (uint32_t)handle;
    uint32_t gen = (uint32_t)(handle >> 32);
    if (low == 0 || gen == 0)
        return NULL;
    uint32_t index = low - 1;
    /* Acquire: pairs with the release in grow(). */
    uint32_t nchunks = walls__load_acquire(&table->nchunks);
    if (index / table->chunk_entries >= nchunks)
        return NULL;
    struct walls__handle_hdr *hdr = entry_at(table, index);
    if (walls__load_acquire(&hdr->gen) != gen)
        return NULL;
    return hdr;
}

uint64_t walls__handle_of(const void *entry)
{
    const struct walls__handle_hdr *hdr = entry;
    return ((uint64_t)walls__load_relaxed(&hdr->gen) << 32) | (uint64_t)(hdr->index + 1);
}
