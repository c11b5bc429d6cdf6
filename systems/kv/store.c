/*
 * store.c - the shared table's layout, transactions, allocator and
 * dictionaries (see store.h for the design).
 *
 * Ordering: an undo entry is written, then the log's length is published
 * (release), then a fence orders that before the write it protects. A
 * process killed at any point thus leaves either a logged change or an
 * unchanged word, never an unlogged change. Committing publishes every
 * earlier write with the release store of the length back to 0.
 */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define KV_MAGIC 0x77616c6c736b7631ULL /* "wallskv1" */
#define BLOCK_HEAD 16u                 /* a block's header: its size, then a mark */
#define BLOCK_MARK 0x626c6f636b000000ULL
#define LARGE_MIN ((uint64_t)1 << 20)
#define SPLIT_MIN 4096u /* the least a block taken from a larger free one leaves free */
#define LOCK_TIMEOUT_MS 30000

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(__SANITIZE_THREAD__)
#define __SANITIZE_THREAD__ 1
#endif
#endif

/* Orders earlier stores before later ones. ThreadSanitizer does not model
 * fences: there, a seq-cst read-modify-write stands in for one. */
static inline void order_stores(void)
{
#if defined(__SANITIZE_THREAD__)
    static uint64_t word;
    __atomic_fetch_add(&word, 0, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_RELEASE);
#endif
}

static inline uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void store(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* ---- layout -------------------------------------------------------------- */

static size_t stripe_size(size_t heap)
{
    size_t head = (sizeof(struct kv_stripe) + 4095) & ~(size_t)4095;
    size_t log = (size_t)KV_LOG_CAP * sizeof(struct kv_undo);
    return head + log + ((heap + 4095) & ~(size_t)4095);
}

size_t kv_region_size(size_t nslots, size_t heap, bool aof)
{
    size_t head = 4096;
    return head + nslots * KV_SLOT_SIZE + (aof ? KV_AOF_RING : 0) + KV_STRIPES * stripe_size(heap);
}

struct kv_stripe *kv_stripe_of(const struct kv_store *st, unsigned i)
{
    return kv_at(st, st->hdr->stripes_off + (uint64_t)i * st->hdr->stripe_size);
}

struct kv_slot *kv_slot_of(const struct kv_store *st, uint64_t i)
{
    return kv_at(st, st->hdr->slots_off + i * KV_SLOT_SIZE);
}

void kv_store_format(struct kv_store *st, void *base, size_t size, size_t nslots,
                     uint64_t maxmemory, int policy, bool aof)
{
    st->base = base;
    st->hdr = base;
    st->keep = false;
    st->held = 0;
    struct kv_header *h = base;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    h->seed = seed;
    h->size = size;
    h->nslots = nslots;
    h->slots_off = 4096;
    h->aof_off = 4096 + nslots * KV_SLOT_SIZE;
    h->aof_size = aof ? KV_AOF_RING : 0;
    h->stripes_off = h->aof_off + h->aof_size;
    size_t heap = (size - h->stripes_off) / KV_STRIPES;
    h->stripe_size = heap & ~(uint64_t)4095;
    h->maxmemory = maxmemory;
    h->policy = (uint64_t)policy;
    size_t head = (sizeof(struct kv_stripe) + 4095) & ~(size_t)4095;
    for (unsigned i = 0; i < KV_STRIPES; i++) {
        struct kv_stripe *s = kv_stripe_of(st, i);
        uint64_t at = kv_off(st, s);
        s->txn_home = KV_NONE;
        s->log_off = at + head;
        s->heap_start = s->bump = s->log_off + (uint64_t)KV_LOG_CAP * sizeof(struct kv_undo);
        s->heap_end = at + h->stripe_size;
        s->keys.rehash = KV_NONE;
        s->aof_rec = KV_NONE;
    }
    store(&h->magic, KV_MAGIC);
}

int kv_store_open(struct kv_store *st, void *base, size_t size, walls_lock *locks)
{
    st->base = base;
    st->hdr = base;
    st->locks = locks;
    st->keep = false;
    st->held = 0;
    if (size < 4096 || load(&st->hdr->magic) != KV_MAGIC || st->hdr->size != size)
        return -1;
    return 0;
}

/* A keyed 64-bit hash: 8 bytes a round, mixed as in a multiply-xorshift. */
uint64_t kv_hash(const struct kv_store *st, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = st->hdr->seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h ^= w * 0xbf58476d1ce4e5b9ULL;
        h = (h << 27 | h >> 37) * 0x94d049bb133111ebULL;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h ^= w * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return h;
}

/* ---- transactions -------------------------------------------------------- */

static void release_set(struct kv_store *st, uint64_t set)
{
    for (int i = KV_STRIPES - 1; i >= 0; i--)
        if (set & ((uint64_t)1 << i))
            walls_lock_release(&st->locks[i]);
}

void kv_store_let_go(struct kv_store *st)
{
    release_set(st, st->held);
    st->held = 0;
}

/* Takes the stripes of set in order, for the caller to release: kept ones
 * that are exactly set pass to it as they are; any others are let go
 * first, so that stripes are always taken in order. 0, or an error with
 * none held. */
static int take_set(struct kv_store *st, uint64_t set)
{
    if (st->held == set) {
        st->held = 0;
        return 0;
    }
    kv_store_let_go(st);
    uint64_t held = 0;
    for (unsigned i = 0; i < KV_STRIPES; i++) {
        if (!(set & ((uint64_t)1 << i)))
            continue;
        int rc = walls_lock_acquire(&st->locks[i], LOCK_TIMEOUT_MS);
        if (rc != 0 && rc != -EOWNERDEAD) {
            release_set(st, held);
            return rc;
        }
        held |= (uint64_t)1 << i;
    }
    return 0;
}

static unsigned lowest(uint64_t set)
{
    return (unsigned)__builtin_ctzll(set);
}

/* Settles the append-only file's record of the transaction whose home
 * is h: it reaches the file if the transaction committed. */
static void resolve_aof(struct kv_store *st, struct kv_stripe *h, uint32_t state)
{
    uint64_t at = h->aof_rec;
    if (at == KV_NONE)
        return;
    h->aof_rec = KV_NONE;
    uint64_t size = st->hdr->aof_size;
    if (!size)
        return;
    struct kv_aof_rec *rec = kv_at(st, st->hdr->aof_off + at % size);
    if (rec->tag == h->aof_tag && __atomic_load_n(&rec->state, __ATOMIC_ACQUIRE) == KV_AOF_PENDING)
        __atomic_store_n(&rec->state, state, __ATOMIC_RELEASE);
}

/* Rolls back the transaction whose home is stripe home, holding every
 * stripe it held (and also), then lets go of them all. */
static int recover(struct kv_store *st, unsigned home, uint64_t also)
{
    uint64_t want = ((uint64_t)1 << home) | also;
    for (;;) {
        int rc = take_set(st, want);
        if (rc != 0)
            return rc;
        struct kv_stripe *h = kv_stripe_of(st, home);
        uint64_t logged = load(&h->txn_home) == home ? load(&h->log_set) : 0;
        if ((logged & ~want) == 0)
            break;
        release_set(st, want);
        want |= logged;
    }
    struct kv_stripe *h = kv_stripe_of(st, home);
    if (load(&h->txn_home) == home) {
        uint64_t n = load(&h->log_n);
        struct kv_undo *log = kv_at(st, h->log_off);
        if (n > KV_LOG_CAP)
            n = KV_LOG_CAP;
        if (n > 0)
            __atomic_fetch_add(&st->hdr->recoveries, 1, __ATOMIC_RELAXED);
        for (uint64_t i = n; i-- > 0;) {
            uint64_t off = log[i].off;
            if (off % 8 == 0 && off >= 4096 && off + 8 <= st->hdr->size)
                store((uint64_t *)kv_at(st, off), log[i].old);
        }
        store(&h->log_n, 0);
        /* An empty log is a committed transaction: its record stands. */
        resolve_aof(st, h, n > 0 ? KV_AOF_ABORTED : KV_AOF_COMMITTED);
    }
    for (unsigned i = 0; i < KV_STRIPES; i++)
        if ((want & ((uint64_t)1 << i)) && load(&kv_stripe_of(st, i)->txn_home) == home)
            store(&kv_stripe_of(st, i)->txn_home, KV_NONE);
    release_set(st, want);
    return 0;
}

int kv_txn_begin(struct kv_txn *t, struct kv_store *st, uint64_t set, struct kv_slot *slot,
                 int *err)
{
    for (;;) {
        if (slot)
            store(&slot->cur_set, set);
        int rc = take_set(st, set);
        if (rc != 0) {
            *err = rc;
            return -1;
        }
        /* A stripe whose last holder died mid-transaction: roll that back
         * first, holding all it held, in order. */
        int dead = -1;
        for (unsigned i = 0; i < KV_STRIPES && dead < 0; i++)
            if ((set & ((uint64_t)1 << i)) && load(&kv_stripe_of(st, i)->txn_home) != KV_NONE)
                dead = (int)i;
        if (dead < 0)
            break;
        uint64_t home = load(&kv_stripe_of(st, (unsigned)dead)->txn_home);
        release_set(st, set);
        if (home >= KV_STRIPES) {
            /* Garbage in the word: nothing names a log to undo. */
            if ((rc = take_set(st, (uint64_t)1 << dead)) != 0) {
                *err = rc;
                return -1;
            }
            store(&kv_stripe_of(st, (unsigned)dead)->txn_home, KV_NONE);
            release_set(st, (uint64_t)1 << dead);
            continue;
        }
        if ((rc = recover(st, (unsigned)home, (uint64_t)1 << dead)) != 0) {
            *err = rc;
            return -1;
        }
    }
    memset(t, 0, offsetof(struct kv_txn, fresh_off));
    t->st = st;
    t->set = set;
    t->home = lowest(set);
    t->h = kv_stripe_of(st, t->home);
    t->log = kv_at(st, t->h->log_off);
    t->slot = slot;
    t->nfresh = 0;
    t->nfreed = 0;
    t->freed_over = false;
    store(&t->h->log_n, 0);
    store(&t->h->log_set, set);
    for (unsigned i = 0; i < KV_STRIPES; i++)
        if (set & ((uint64_t)1 << i))
            store(&kv_stripe_of(st, i)->txn_home, t->home);
    order_stores(); /* the marks before any change */
    return 0;
}

static void finish(struct kv_txn *t)
{
    for (unsigned i = 0; i < KV_STRIPES; i++)
        if ((t->set & ((uint64_t)1 << i)) && i != t->home)
            store(&kv_stripe_of(t->st, i)->txn_home, KV_NONE);
    store(&t->h->txn_home, KV_NONE);
    if (t->st->keep)
        t->st->held = t->set;
    else
        release_set(t->st, t->set);
}

void kv_txn_commit(struct kv_txn *t)
{
    /* The commit point: every change before it is published with it. */
    store(&t->h->log_n, 0);
    resolve_aof(t->st, t->h, KV_AOF_COMMITTED);
    finish(t);
}

void kv_txn_abort(struct kv_txn *t)
{
    uint64_t n = load(&t->h->log_n);
    for (uint64_t i = n; i-- > 0;)
        store((uint64_t *)kv_at(t->st, t->log[i].off), t->log[i].old);
    store(&t->h->log_n, 0);
    resolve_aof(t->st, t->h, KV_AOF_ABORTED);
    finish(t);
}

uint64_t kv_txn_mark(struct kv_txn *t)
{
    t->nfresh = 0;
    return load(&t->h->log_n);
}

void kv_txn_undo_to(struct kv_txn *t, uint64_t mark)
{
    uint64_t n = load(&t->h->log_n);
    for (uint64_t i = n; i-- > mark;)
        store((uint64_t *)kv_at(t->st, t->log[i].off), t->log[i].old);
    store(&t->h->log_n, mark < n ? mark : n);
    t->full = false;
}

uint64_t kv_aof_append(struct kv_txn *t, const void *p, size_t len)
{
    struct kv_store *st = t->st;
    struct kv_header *hdr = st->hdr;
    uint64_t size = hdr->aof_size;
    uint64_t need = sizeof(struct kv_aof_rec) + ((len + 15) & ~(uint64_t)15);
    if (!size || need > size / 2 || len > UINT32_MAX)
        return 0;
    walls_lock *lock = &st->locks[KV_LOCK_AOF];
    for (;;) {
        int rc = walls_lock_acquire(lock, LOCK_TIMEOUT_MS);
        if (rc != 0 && rc != -EOWNERDEAD)
            return 0;
        /* A holder that died here either published the new head or did
         * not: the head is one store. */
        uint64_t head = hdr->aof_head, tail = load(&hdr->aof_tail);
        uint64_t at = head % size, pad = at + need > size ? size - at : 0;
        if (head + pad + need - tail > size) {
            /* Full: the writer is behind. Let go and wait a little. */
            walls_lock_release(lock);
            struct timespec nap = {0, 100000};
            nanosleep(&nap, NULL);
            continue;
        }
        if (pad) {
            struct kv_aof_rec *fill = kv_at(st, hdr->aof_off + at);
            fill->len = (uint32_t)(pad - sizeof *fill);
            fill->tag = 0;
            __atomic_store_n(&fill->state, KV_AOF_PAD, __ATOMIC_RELEASE);
            head += pad;
        }
        struct kv_aof_rec *rec = kv_at(st, hdr->aof_off + head % size);
        uint64_t tag = (uint64_t)t->home << 56 | (++t->h->txns & (((uint64_t)1 << 56) - 1));
        rec->len = (uint32_t)len;
        rec->tag = tag;
        __atomic_store_n(&rec->state, KV_AOF_PENDING, __ATOMIC_RELEASE);
        /* Ours before it is anyone's: a recoverer finds it by these. */
        t->h->aof_tag = tag;
        t->h->aof_rec = head;
        store(&hdr->aof_head, head + need);
        walls_lock_release(lock);
        memcpy(rec + 1, p, len);
        return head + need;
    }
}

static bool is_fresh(const struct kv_txn *t, uint64_t off, size_t len)
{
    for (unsigned i = 0; i < t->nfresh; i++)
        if (off >= t->fresh_off[i] && off + len <= t->fresh_end[i])
            return true;
    return false;
}

static void log_word(struct kv_txn *t, uint64_t *word)
{
    uint64_t n = t->h->log_n;
    t->log[n].off = kv_off(t->st, word);
    t->log[n].old = *word;
    store(&t->h->log_n, n + 1);
    order_stores(); /* the entry before the change */
}

static void mark_changed(struct kv_txn *t)
{
    if (!t->wrote) {
        t->wrote = true;
        if (t->slot)
            store(&t->slot->dirty, 1);
    }
}

void kv_put(struct kv_txn *t, uint64_t *word, uint64_t value)
{
    if (t->full)
        return;
    if (!is_fresh(t, kv_off(t->st, word), 8)) {
        if (t->h->log_n >= KV_LOG_CAP) {
            t->full = true;
            return;
        }
        mark_changed(t);
        log_word(t, word);
    }
    store(word, value);
}

void kv_put_slot(struct kv_txn *t, uint64_t *word, uint64_t value)
{
    if (t->full)
        return;
    if (t->h->log_n >= KV_LOG_CAP) {
        t->full = true;
        return;
    }
    log_word(t, word);
    store(word, value);
}

void kv_put_bytes(struct kv_txn *t, void *dst, const void *src, size_t len)
{
    if (t->full || len == 0)
        return;
    uint64_t off = kv_off(t->st, dst);
    if (!is_fresh(t, off, len)) {
        uint64_t first = off & ~(uint64_t)7, last = (off + len + 7) & ~(uint64_t)7;
        if (t->h->log_n + (last - first) / 8 > KV_LOG_CAP) {
            t->full = true;
            return;
        }
        mark_changed(t);
        for (uint64_t w = first; w < last; w += 8)
            log_word(t, kv_at(t->st, w));
    }
    memcpy(dst, src, len);
}

/* ---- the allocator ------------------------------------------------------- */

/* Class sizes (whole blocks): 32, 48, 64, 96, 128, ... two a doubling,
 * up to LARGE_MIN. */
static uint64_t class_size(unsigned c)
{
    return (c % 2 ? 48ULL : 32ULL) << (c / 2);
}

static int class_for(uint64_t total)
{
    for (unsigned c = 0; c < KV_CLASSES; c++) {
        uint64_t s = class_size(c);
        if (s > LARGE_MIN)
            return -1;
        if (s >= total)
            return (int)c;
    }
    return -1;
}

static uint64_t *block_head(struct kv_store *st, uint64_t payload)
{
    return kv_at(st, payload - BLOCK_HEAD);
}

size_t kv_block_room(const struct kv_store *st, uint64_t off)
{
    const uint64_t *head = kv_at(st, off - BLOCK_HEAD);
    return (size_t)(head[0] - BLOCK_HEAD);
}

/* Whether t freed block while it held live data, which a rollback brings
 * back (so t must not take it again). */
static bool freed_here(const struct kv_txn *t, uint64_t block)
{
    if (t->freed_over)
        return true;
    for (unsigned i = 0; i < t->nfreed; i++)
        if (t->freed[i] == block)
            return true;
    return false;
}

static void note_fresh(struct kv_txn *t, uint64_t block, uint64_t size)
{
    if (t->nfresh < KV_FRESH_MAX) {
        t->fresh_off[t->nfresh] = block + BLOCK_HEAD;
        t->fresh_end[t->nfresh] = block + size;
        t->nfresh++;
    }
}

/* A free block of the large list for size bytes (which become *size):
 * the first that holds them, not freed by t; what it holds beyond them
 * stays free in its place on the list when that is SPLIT_MIN or more. The
 * block comes back marked live; 0 when none holds them. */
static uint64_t take_large(struct kv_txn *t, struct kv_stripe *s, uint64_t *size)
{
    struct kv_store *st = t->st;
    uint64_t want = *size;
    uint64_t *link = &s->large_free;
    for (uint64_t b = *link; b; b = *link) {
        uint64_t *head = kv_at(st, b);
        if (b < s->heap_start || b + 24 > s->heap_end || head[0] > s->heap_end - b)
            break; /* a damaged list: take nothing from it */
        if (head[1] == 0 && head[0] >= want && !freed_here(t, b)) {
            uint64_t have = head[0];
            if (have - want >= SPLIT_MIN) {
                /* Garbage before this transaction: the rest's header is
                 * logged all the same, as every word of a list is. */
                uint64_t *rest = kv_at(st, b + want);
                kv_put(t, &rest[0], have - want);
                kv_put(t, &rest[1], 0);
                kv_put(t, &rest[2], head[2]);
                kv_put(t, link, b + want);
                kv_put(t, &head[0], want);
            } else {
                *size = have;
                kv_put(t, link, head[2]);
            }
            /* Its link is in the payload, which the caller writes
             * unlogged: a rollback puts it back on the list whole. */
            kv_put(t, &head[1], BLOCK_MARK);
            kv_put(t, &head[2], head[2]);
            return b;
        }
        link = &head[2];
    }
    return 0;
}

static int cmp_off(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Merges the free blocks of the large list that touch one another, and
 * gives back to the bump the run that ends at it: values that grow, or
 * many freed ones, leave blocks no single request fits. Blocks t freed
 * stay as they are (a rollback brings them back). Returns whether it
 * changed anything. */
static bool coalesce_large(struct kv_txn *t, struct kv_stripe *s)
{
    struct kv_store *st = t->st;
    /* v: the blocks to merge; kept: those t freed; absorbed: those merged
     * into the one before. Every block is 4 KiB or more of the heap. */
    size_t cap = (size_t)((s->heap_end - s->heap_start) / SPLIT_MIN) + 1, n = 0, nkept = 0;
    uint64_t *v = malloc(cap * 3 * sizeof *v);
    if (!v)
        return false;
    uint64_t *kept = v + cap, *sz = v + cap; /* sz reuses the room of kept, copied out first */
    uint64_t *absorbed = v + 2 * cap;
    for (uint64_t b = s->large_free; b && n + nkept < cap;) {
        const uint64_t *head = kv_at(st, b);
        if (b < s->heap_start || b + 24 > s->heap_end || head[0] > s->heap_end - b ||
            head[1] != 0)
            break; /* a damaged list ends here */
        if (freed_here(t, b))
            kept[nkept++] = b;
        else
            v[n++] = b;
        b = head[2];
    }
    if (n == 0) {
        free(v);
        return false;
    }
    /* Copied out: sz takes their room. */
    uint64_t *keep = malloc((nkept ? nkept : 1) * sizeof *keep);
    if (!keep) {
        free(v);
        return false;
    }
    memcpy(keep, kept, nkept * sizeof *keep);
    qsort(v, n, sizeof *v, cmp_off);
    /* Runs of touching blocks: v[i] becomes the start of each, sz[i] its
     * size. */
    size_t runs = 0;
    size_t merged = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t size = ((const uint64_t *)kv_at(st, v[i]))[0];
        if (runs && v[runs - 1] + sz[runs - 1] == v[i]) {
            sz[runs - 1] += size;
            absorbed[merged++] = v[i];
        } else {
            v[runs] = v[i];
            sz[runs] = size;
            runs++;
        }
    }
    bool at_bump = v[runs - 1] + sz[runs - 1] == s->bump;
    bool changed = runs < n || at_bump;
    if (changed) {
        /* A block merged into the one before it is garbage from now on,
         * and what is cut from the run is written without the log: its
         * header is logged unchanged, for a rollback to find it whole
         * on the list it brings back. */
        for (size_t i = 0; i < merged; i++) {
            uint64_t *head = kv_at(st, absorbed[i]);
            for (unsigned w = 0; w < 3; w++)
                kv_put(t, &head[w], head[w]);
        }
        /* The list again: the merged runs, then the blocks t freed. A run
         * that ends at the bump goes back to it: memory past the bump is
         * written without the log, so its first header, on the list when
         * t began, is logged unchanged first (its others were above). */
        if (at_bump) {
            uint64_t *head = kv_at(st, v[runs - 1]);
            for (unsigned w = 0; w < 3; w++)
                kv_put(t, &head[w], head[w]);
            kv_put(t, &s->bump, v[--runs]);
        }
        uint64_t list = 0;
        for (size_t i = nkept; i-- > 0;) {
            kv_put(t, &((uint64_t *)kv_at(st, keep[i]))[2], list);
            list = keep[i];
        }
        for (size_t i = runs; i-- > 0;) {
            uint64_t *head = kv_at(st, v[i]);
            if (head[0] != sz[i])
                kv_put(t, &head[0], sz[i]);
            kv_put(t, &head[2], list);
            list = v[i];
        }
        kv_put(t, &s->large_free, list);
    }
    free(keep);
    free(v);
    return changed;
}

uint64_t kv_alloc(struct kv_txn *t, unsigned stripe, size_t len)
{
    struct kv_store *st = t->st;
    struct kv_stripe *s = kv_stripe_of(st, stripe);
    if (len > ((uint64_t)1 << 40) || t->full)
        return 0;
    uint64_t total = (len + BLOCK_HEAD + 15) & ~(uint64_t)15;
    int c = class_for(total);
    uint64_t block = 0, size;
    if (c >= 0) {
        size = class_size((unsigned)c);
        /* Not a block this transaction freed: a rollback brings that one
         * back to life, and callers write what they are given unlogged. */
        uint64_t *link = &s->free_head[c];
        for (unsigned skip = 0; (block = *link) != 0; skip++) {
            uint64_t *head = kv_at(st, block);
            if (block < s->heap_start || block + size > s->heap_end || head[0] != size ||
                head[1] != 0 || skip > t->nfreed) {
                block = 0; /* a damaged list (or all ours): take new memory */
                break;
            }
            if (!freed_here(t, block)) {
                kv_put(t, link, head[2]);
                break;
            }
            link = &head[2];
        }
    } else {
        size = (total + 4095) & ~(uint64_t)4095;
    }
    uint64_t *head;
    if (block) {
        /* A freed block: a rollback puts it back on its list, so what the
         * list needs of it (the mark, the link) is logged. */
        head = kv_at(st, block);
        kv_put(t, &head[1], BLOCK_MARK);
        kv_put(t, &head[2], head[2]);
    } else if (c < 0 && (block = take_large(t, s, &size)) != 0) {
        head = kv_at(st, block);
    } else if (s->bump + size > s->heap_end &&
               (!coalesce_large(t, s) || s->bump + size > s->heap_end) &&
               (block = take_large(t, s, &size)) != 0) {
        /* No room past the bump, even with the free blocks merged: a
         * small block is cut from a free large one as well. */
        head = kv_at(st, block);
    } else {
        /* Past the bump: nothing before this transaction knew it. */
        if (s->bump + size > s->heap_end)
            return 0;
        block = s->bump;
        kv_put(t, &s->bump, s->bump + size);
        head = kv_at(st, block);
        head[0] = size;
        head[1] = BLOCK_MARK;
    }
    kv_put(t, &s->used, s->used + size);
    if (t->full)
        return 0;
    note_fresh(t, block, size);
    return block + BLOCK_HEAD;
}

bool kv_grow(struct kv_txn *t, unsigned stripe, uint64_t off, size_t len)
{
    struct kv_store *st = t->st;
    struct kv_stripe *s = kv_stripe_of(st, stripe);
    uint64_t *head = block_head(st, off);
    uint64_t block = off - BLOCK_HEAD, size = head[0];
    if (t->full || len > ((uint64_t)1 << 40) || block < s->heap_start ||
        block + size > s->heap_end || head[1] != BLOCK_MARK)
        return false;
    uint64_t want = (len + BLOCK_HEAD + 4095) & ~(uint64_t)4095;
    if (want <= size)
        return true;
    uint64_t end = block + size, extra = want - size;
    if (end == s->bump) {
        if (extra > s->heap_end - s->bump)
            return false;
        kv_put(t, &s->bump, s->bump + extra);
    } else {
        /* The free large block right after it, if it holds the extra. */
        uint64_t *link = &s->large_free, taken;
        for (uint64_t b = *link;; b = *link) {
            if (!b || b < s->heap_start || b + 24 > s->heap_end)
                return false;
            uint64_t *bh = kv_at(st, b);
            if (b == end) {
                if (bh[1] != 0 || bh[0] < extra || bh[0] > s->heap_end - b || freed_here(t, b))
                    return false;
                break;
            }
            link = &bh[2];
        }
        uint64_t *next = kv_at(st, end);
        /* Its header turns into our bytes, written without the log: it is
         * logged unchanged, for a rollback to find the block whole. */
        for (unsigned w = 0; w < 3; w++)
            kv_put(t, &next[w], next[w]);
        if (next[0] - extra >= SPLIT_MIN) {
            uint64_t *rest = kv_at(st, end + extra);
            kv_put(t, &rest[0], next[0] - extra);
            kv_put(t, &rest[1], 0);
            kv_put(t, &rest[2], next[2]);
            kv_put(t, link, end + extra);
            taken = extra;
        } else {
            kv_put(t, link, next[2]);
            taken = next[0];
        }
        extra = taken;
    }
    kv_put(t, &head[0], size + extra);
    kv_put(t, &s->used, s->used + extra);
    if (t->full)
        return false;
    /* Garbage before this transaction: written without the log. */
    note_fresh(t, end - BLOCK_HEAD, extra + BLOCK_HEAD);
    return true;
}

void kv_free(struct kv_txn *t, unsigned stripe, uint64_t off)
{
    struct kv_store *st = t->st;
    struct kv_stripe *s = kv_stripe_of(st, stripe);
    uint64_t *head = block_head(st, off);
    uint64_t block = off - BLOCK_HEAD, size = head[0];
    if (block < s->heap_start || block + size > s->heap_end || head[1] != BLOCK_MARK)
        return; /* not a live block of this stripe: never put on a list */
    int c = class_for(size);
    uint64_t *list = c >= 0 && class_size((unsigned)c) == size ? &s->free_head[c] : &s->large_free;
    if (!is_fresh(t, off, size - BLOCK_HEAD)) {
        /* Live before: undoing this free must find its contents intact. */
        if (t->nfreed < KV_FREED_MAX)
            t->freed[t->nfreed++] = block;
        else
            t->freed_over = true;
    }
    kv_put(t, &head[1], 0);
    kv_put(t, &head[2], *list);
    kv_put(t, list, block);
    kv_put(t, &s->used, s->used - size);
}

void kv_settle(struct kv_store *st, uint64_t set)
{
    struct kv_txn t;
    int err;
    if (set && kv_txn_begin(&t, st, set, NULL, &err) == 0)
        kv_txn_commit(&t);
}

/* ---- dictionaries ---------------------------------------------------------- */

static struct kv_ent *ent_at(struct kv_store *st, uint64_t off)
{
    return kv_at(st, off);
}

static bool same_key(const struct kv_ent *e, const void *key, size_t klen, uint64_t hash)
{
    return e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0;
}

uint64_t kv_dict_find(struct kv_txn *t, struct kv_dict *d, const void *key, size_t klen,
                      uint64_t hash, uint64_t **link)
{
    struct kv_store *st = t->st;
    for (int k = 0; k < 2; k++) {
        if (!d->table[k])
            continue;
        uint64_t *bucket = (uint64_t *)kv_at(st, d->table[k]) + (hash & (d->size[k] - 1));
        for (uint64_t *l = bucket; *l; l = &ent_at(st, *l)->next) {
            if (same_key(ent_at(st, *l), key, klen, hash)) {
                if (link)
                    *link = l;
                return *l;
            }
        }
    }
    return 0;
}

/* Moves up to n buckets of table 0 into table 1. */
static void rehash_step(struct kv_txn *t, unsigned stripe, struct kv_dict *d, unsigned n)
{
    struct kv_store *st = t->st;
    while (n-- > 0 && d->rehash != KV_NONE && !t->full) {
        uint64_t *from = (uint64_t *)kv_at(st, d->table[0]) + d->rehash;
        uint64_t *to = kv_at(st, d->table[1]);
        while (*from && !t->full) {
            uint64_t e = *from;
            struct kv_ent *ent = ent_at(st, e);
            uint64_t *dst = &to[ent->hash & (d->size[1] - 1)];
            uint64_t after = ent->next;
            kv_put(t, &ent->next, *dst);
            kv_put(t, dst, e);
            kv_put(t, from, after);
        }
        kv_put(t, &d->rehash, d->rehash + 1);
        if (d->rehash == d->size[0]) {
            kv_free(t, stripe, d->table[0]);
            kv_put(t, &d->table[0], d->table[1]);
            kv_put(t, &d->size[0], d->size[1]);
            kv_put(t, &d->table[1], 0);
            kv_put(t, &d->size[1], 0);
            kv_put(t, &d->rehash, KV_NONE);
        }
    }
}

static uint64_t new_table(struct kv_txn *t, unsigned stripe, uint64_t size)
{
    uint64_t off = kv_alloc(t, stripe, size * 8);
    if (off)
        memset(kv_at(t->st, off), 0, size * 8);
    return off;
}

int kv_dict_add(struct kv_txn *t, unsigned stripe, struct kv_dict *d, uint64_t ent)
{
    struct kv_store *st = t->st;
    if (!d->table[0]) {
        uint64_t tab = new_table(t, stripe, 4);
        if (!tab)
            return -1;
        kv_put(t, &d->table[0], tab);
        kv_put(t, &d->size[0], 4);
        kv_put(t, &d->rehash, KV_NONE);
    } else if (d->rehash == KV_NONE && d->used >= d->size[0]) {
        /* Grow when full; a heap too full to grow just keeps chains longer. */
        uint64_t tab = new_table(t, stripe, d->size[0] * 2);
        if (tab) {
            kv_put(t, &d->table[1], tab);
            kv_put(t, &d->size[1], d->size[0] * 2);
            kv_put(t, &d->rehash, 0);
        }
    }
    if (d->rehash != KV_NONE)
        rehash_step(t, stripe, d, 2);
    struct kv_ent *e = ent_at(st, ent);
    int k = d->rehash != KV_NONE ? 1 : 0;
    uint64_t *bucket = (uint64_t *)kv_at(st, d->table[k]) + (e->hash & (d->size[k] - 1));
    kv_put(t, &e->next, *bucket);
    kv_put(t, bucket, ent);
    kv_put(t, &d->used, d->used + 1);
    return t->full ? -1 : 0;
}

void kv_dict_replace(struct kv_txn *t, uint64_t *link, uint64_t old, uint64_t ent)
{
    struct kv_ent *o = ent_at(t->st, old), *e = ent_at(t->st, ent);
    kv_put(t, &e->next, o->next);
    kv_put(t, link, ent);
}

void kv_dict_unlink(struct kv_txn *t, struct kv_dict *d, uint64_t *link, uint64_t ent)
{
    kv_put(t, link, ent_at(t->st, ent)->next);
    kv_put(t, &d->used, d->used - 1);
}

int kv_dict_each(struct kv_store *st, struct kv_dict *d,
                 int (*fn)(void *ctx, struct kv_ent *e), void *ctx)
{
    for (int k = 0; k < 2; k++) {
        if (!d->table[k])
            continue;
        uint64_t *tab = kv_at(st, d->table[k]);
        for (uint64_t b = 0; b < d->size[k]; b++)
            for (uint64_t e = tab[b]; e; e = ent_at(st, e)->next) {
                int rc = fn(ctx, ent_at(st, e));
                if (rc)
                    return rc;
            }
    }
    return 0;
}

void kv_dict_clear(struct kv_txn *t, unsigned stripe, struct kv_dict *d)
{
    struct kv_store *st = t->st;
    for (int k = 0; k < 2; k++) {
        if (!d->table[k])
            continue;
        uint64_t *tab = kv_at(st, d->table[k]);
        for (uint64_t b = 0; b < d->size[k] && !t->full; b++) {
            for (uint64_t e = tab[b]; e && !t->full;) {
                uint64_t next = ent_at(st, e)->next;
                kv_free(t, stripe, e);
                e = next;
            }
        }
        kv_free(t, stripe, d->table[k]);
        kv_put(t, &d->table[k], 0);
        kv_put(t, &d->size[k], 0);
    }
    kv_put(t, &d->used, 0);
    kv_put(t, &d->rehash, KV_NONE);
}
