/*
 * arena.c - allocating a pool's shared arena, host side.
 *
 * First fit over a sorted, coalesced list of free page runs; a sorted table
 * of live buffers found by binary search. Arenas hold few, big buffers, so
 * both stay short. Freeing punches the pages out of the memfd: the memory
 * goes back to the system at once, in every mapping, and the next buffer
 * there starts zeroed.
 */
#define _GNU_SOURCE
#include "arena.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomic.h"
#include "internal.h"

/* Serials of live arenas, so that no two share one and a handle whose
 * serial is nobody's is known for garbage. */
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t serial_live[65536 / 64];
static uint16_t serial_last;

static bool serial_in_use(uint16_t s)
{
    return (__atomic_load_n(&serial_live[s / 64], __ATOMIC_RELAXED) >> (s % 64)) & 1u;
}

static int serial_take(uint16_t *out)
{
    pthread_mutex_lock(&serial_lock);
    uint16_t s = serial_last;
    for (unsigned tries = 0; tries < 65536; tries++) {
        s++;
        if (s != 0 && !serial_in_use(s)) {
            __atomic_fetch_or(&serial_live[s / 64], 1ull << (s % 64), __ATOMIC_RELAXED);
            serial_last = s;
            pthread_mutex_unlock(&serial_lock);
            *out = s;
            return 0;
        }
    }
    pthread_mutex_unlock(&serial_lock);
    return -ENOMEM;
}

void walls__arena_at_fork(enum walls__fork_phase phase)
{
    if (phase == WALLS__FORK_PREPARE)
        pthread_mutex_lock(&serial_lock);
    else if (phase == WALLS__FORK_RESET)
        serial_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    else
        pthread_mutex_unlock(&serial_lock);
}

static void serial_give(uint16_t s)
{
    if (s)
        __atomic_fetch_and(&serial_live[s / 64], ~(1ull << (s % 64)), __ATOMIC_RELAXED);
}

static uint64_t pack(const struct walls__arena *a, const struct walls__arena_rec *r)
{
    return (uint64_t)a->serial << (WALLS__GEN_BITS + WALLS__PAGE_BITS) |
           (uint64_t)r->gen << WALLS__PAGE_BITS | r->page;
}

int walls__arena_open(struct walls__arena *a, size_t size, unsigned nlocks, size_t shared)
{
    memset(a, 0, sizeof *a);
    a->fd = a->ro_fd = a->lock_fd = a->shared_fd = -1;
    int rc = 0;
    if (size) {
        size = (size + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
        a->fd = memfd_create("walls-arena", MFD_CLOEXEC);
        if (a->fd < 0 || ftruncate(a->fd, (off_t)size) != 0)
            goto fail;
        void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, a->fd, 0);
        if (map == MAP_FAILED)
            goto fail;
        a->base = map;
        a->size = size;
        a->free = malloc(sizeof *a->free);
        if (!a->free) {
            errno = ENOMEM;
            goto fail;
        }
        a->free[0] = (struct walls__arena_ext){0, (uint32_t)(size / WALLS__PAGE)};
        a->nfree = a->capfree = 1;
        if ((rc = serial_take(&a->serial)) != 0)
            goto fail_rc;
        a->next_gen = 1;
    }
    if (nlocks) {
        size_t bytes = (size_t)nlocks * sizeof(walls_lock);
        bytes = (bytes + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
        a->lock_fd = memfd_create("walls-locks", MFD_CLOEXEC);
        if (a->lock_fd < 0 || ftruncate(a->lock_fd, (off_t)bytes) != 0)
            goto fail;
        void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, a->lock_fd, 0);
        if (map == MAP_FAILED)
            goto fail;
        a->locks = map;
        a->nlocks = nlocks;
        walls__locks_init(a->locks, nlocks);
    }
    if (shared) {
        shared = (shared + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1);
        a->shared_fd = memfd_create("walls-shared", MFD_CLOEXEC);
        if (a->shared_fd < 0 || ftruncate(a->shared_fd, (off_t)shared) != 0)
            goto fail;
        void *map = mmap(NULL, shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                         a->shared_fd, 0);
        if (map == MAP_FAILED)
            goto fail;
        a->shared = map;
        a->shared_size = shared;
    }
    return 0;
fail:
    rc = errno ? -errno : -ENOMEM;
fail_rc:
    walls__arena_close(a);
    return rc;
}

void walls__arena_close(struct walls__arena *a)
{
    if (a->base)
        munmap(a->base, a->size);
    if (a->fd >= 0)
        close(a->fd);
    if (a->ro_fd >= 0)
        close(a->ro_fd);
    if (a->locks) {
        size_t bytes = (size_t)a->nlocks * sizeof(walls_lock);
        munmap(a->locks, (bytes + WALLS__PAGE - 1) & ~(size_t)(WALLS__PAGE - 1));
    }
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    if (a->shared)
        munmap(a->shared, a->shared_size);
    if (a->shared_fd >= 0)
        close(a->shared_fd);
    free(a->recs);
    free(a->free);
    serial_give(a->serial);
    memset(a, 0, sizeof *a);
    a->fd = a->ro_fd = a->lock_fd = a->shared_fd = -1;
}

/* Index of the first record whose page is >= page. */
static size_t rec_lower(const struct walls__arena *a, uint32_t page)
{
    size_t lo = 0, hi = a->nrecs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->recs[mid].page < page)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int walls__arena_find(struct walls__arena *a, walls_buf buf, struct walls__arena_rec **rec)
{
    uint16_t serial = (uint16_t)(buf >> (WALLS__GEN_BITS + WALLS__PAGE_BITS));
    if (serial != a->serial)
        return serial && serial_in_use(serial) ? -EXDEV : -ENOENT;
    uint32_t page = (uint32_t)(buf & ((1u << WALLS__PAGE_BITS) - 1));
    uint32_t gen = (uint32_t)(buf >> WALLS__PAGE_BITS) & ((1u << WALLS__GEN_BITS) - 1);
    size_t i = rec_lower(a, page);
    if (i == a->nrecs || a->recs[i].page != page || a->recs[i].gen != gen)
        return -ENOENT;
    *rec = &a->recs[i];
    return 0;
}

static bool grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*v, n * elem);
    if (!p)
        return false;
    *v = p;
    *cap = n;
    return true;
}

int walls__arena_alloc(struct walls__arena *a, size_t size, walls_buf *buf)
{
    if (size > a->size)
        return -ENOSPC;
    uint32_t pages = (uint32_t)((size + WALLS__PAGE - 1) / WALLS__PAGE);
    size_t f;
    for (f = 0; f < a->nfree && a->free[f].pages < pages; f++)
        ;
    if (f == a->nfree)
        return -ENOSPC;
    if (!grow((void **)&a->recs, &a->caprecs, a->nrecs + 1, sizeof *a->recs))
        return -ENOMEM;
    uint32_t page = a->free[f].page;
    a->free[f].page += pages;
    a->free[f].pages -= pages;
    if (a->free[f].pages == 0) {
        memmove(&a->free[f], &a->free[f + 1], (a->nfree - f - 1) * sizeof *a->free);
        a->nfree--;
    }
    size_t i = rec_lower(a, page);
    memmove(&a->recs[i + 1], &a->recs[i], (a->nrecs - i) * sizeof *a->recs);
    a->nrecs++;
    uint32_t gen = a->next_gen++;
    if (a->next_gen == 1u << WALLS__GEN_BITS)
        a->next_gen = 1;
    a->recs[i] = (struct walls__arena_rec){.page = page, .pages = pages, .size = size, .gen = gen};
    *buf = pack(a, &a->recs[i]);
    return 0;
}

int walls__arena_free(struct walls__arena *a, walls_buf buf)
{
    struct walls__arena_rec *r;
    int rc = walls__arena_find(a, buf, &r);
    if (rc)
        return rc;
    if (r->pins)
        return -EBUSY;
    /* Room first, so that nothing changes if it cannot be had. */
    if (!grow((void **)&a->free, &a->capfree, a->nfree + 1, sizeof *a->free))
        return -ENOMEM;
    uint32_t page = r->page, pages = r->pages;
    size_t i = (size_t)(r - a->recs);
    memmove(&a->recs[i], &a->recs[i + 1], (a->nrecs - i - 1) * sizeof *a->recs);
    a->nrecs--;
    /* Back to the system, and zero for the next buffer here. */
    fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)page * WALLS__PAGE,
              (off_t)pages * WALLS__PAGE);
    size_t f = 0;
    while (f < a->nfree && a->free[f].page < page)
        f++;
    bool left = f > 0 && a->free[f - 1].page + a->free[f - 1].pages == page;
    bool right = f < a->nfree && page + pages == a->free[f].page;
    if (left && right) {
        a->free[f - 1].pages += pages + a->free[f].pages;
        memmove(&a->free[f], &a->free[f + 1], (a->nfree - f - 1) * sizeof *a->free);
        a->nfree--;
    } else if (left) {
        a->free[f - 1].pages += pages;
    } else if (right) {
        a->free[f].page = page;
        a->free[f].pages += pages;
    } else {
        memmove(&a->free[f + 1], &a->free[f], (a->nfree - f) * sizeof *a->free);
        a->free[f] = (struct walls__arena_ext){page, pages};
        a->nfree++;
    }
    return 0;
}

void walls__arena_pin(struct walls__arena *a, const struct walls__bufref *refs, unsigned n,
                      bool has_output, bool pin)
{
    for (unsigned i = 0; i < n + (has_output ? 1u : 0u); i++) {
        uint32_t page = (uint32_t)(refs[i].offset / WALLS__PAGE);
        size_t k = rec_lower(a, page);
        if (k == a->nrecs || a->recs[k].page != page)
            continue; /* cannot happen: a pinned buffer is not freed */
        struct walls__arena_rec *r = &a->recs[k];
        if (pin)
            r->pins++;
        else if (r->pins)
            r->pins--;
        if (i == n)
            r->out_busy = pin;
    }
}
