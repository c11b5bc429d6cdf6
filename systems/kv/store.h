/*
 * store.h - walls-kv's table, in the pool's writable shared region.
 *
 * Every backend process maps the same region (walls_pool_shared) and
 * changes it under the pool's locks; the front maps it too. The region
 * holds, at offsets (never pointers: each process maps it elsewhere):
 *
 *   header | reply slots | stripe 0 | stripe 1 | ... | stripe N-1
 *
 * A key belongs to one stripe by its hash. A stripe is everything one
 * lock guards: its header, its undo log, its own heap (a size-class
 * allocator) and its dictionary of keys, values and their objects. No
 * byte of a stripe is written without its lock.
 *
 * Changes are transactions with an undo log. Before a word of committed
 * state changes, its offset and old value go to the log of the
 * transaction's home stripe (the lowest one it holds), and only then is
 * the word written. Memory allocated by the transaction itself is fresh:
 * writes there are not logged, since undoing the allocation makes it
 * garbage again. That holds only for memory that was garbage when the
 * transaction began: a block it freed holds live data again once the
 * free is undone, so a transaction never allocates a block it freed (the
 * allocator skips them). Committing is one store: the log's length back
 * to 0.
 *
 * Each held stripe says, beside its lock, which home stripe's log holds
 * its changes (txn_home). A live holder clears that before it lets go,
 * so whoever takes a stripe and finds it set knows its last holder died
 * mid-transaction (walls also says so, with -EOWNERDEAD, once). It then
 * takes every stripe of that transaction in order and rolls the log back,
 * newest entry first. Rolling back writes only old values, so a
 * recoverer that dies too leaves a log the next one rolls back again.
 *
 * Reply slots: each task the front submits runs a batch of commands and
 * writes their replies into its slot, the slot's progress (commands done,
 * bytes written) changing inside each command's transaction. After a
 * backend dies, the front takes the stripes the dead command held (which
 * rolls it back if it had not committed) and then reads, from the slot,
 * exactly which commands took effect and what they answered.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "walls.h"

#define KV_STRIPES 64u             /* stripes, one lock each (walls locks 0..63) */
#define KV_LOCK_AOF KV_STRIPES     /* the append-only file's ring */
#define KV_LOCKS (KV_STRIPES + 1)
#define KV_LOG_CAP (256u * 1024u)  /* undo entries per transaction */
#define KV_SLOT_SIZE (64u * 1024u) /* a reply slot, header included */
#define KV_NONE UINT64_MAX

/* Value types, as TYPE names them. */
enum kv_type { KV_STRING = 1, KV_LIST, KV_HASH, KV_SET };

struct kv_undo {
    uint64_t off; /* from the region's start */
    uint64_t old;
};

/* An entry of a dictionary: a key of the table, or a field of a hash or
 * a member of a set. The key's bytes follow, then (strings and hash
 * fields) the value's. */
struct kv_ent {
    uint64_t next;      /* the bucket's next entry, 0 = none */
    uint64_t hash;
    uint32_t klen;
    uint32_t type;      /* enum kv_type (table entries) */
    uint64_t val;       /* strings and fields: value bytes; others: the object's offset */
    int64_t expire_ms;  /* table entries: CLOCK_REALTIME ms, 0 = never */
    uint64_t lru;       /* table entries: last access, ms (written without the log) */
    char data[];
};

/* A dictionary (Redis's design): two bucket arrays while it grows, moved
 * a few buckets per change so that no transaction logs the whole. */
struct kv_dict {
    uint64_t table[2]; /* offsets of bucket arrays (uint64_t each), 0 = none */
    uint64_t size[2];  /* buckets, a power of two */
    uint64_t used;     /* entries */
    uint64_t rehash;   /* next bucket of table[0] to move; KV_NONE = not growing */
};

/* A list object: nodes linked both ways. */
struct kv_list {
    uint64_t head, tail, len;
};

struct kv_node {
    uint64_t prev, next, len;
    char data[];
};

#define KV_CLASSES 40

struct kv_stripe {
    /* Beside the lock, without the log. */
    uint64_t txn_home;  /* KV_NONE, or the home stripe of an unfinished transaction */
    /* The home stripe's log (valid when txn_home is this stripe). */
    uint64_t log_n;     /* entries; 0 = nothing to undo */
    uint64_t log_set;   /* stripes the transaction holds, one bit each */
    /* Logged state. */
    uint64_t heap_start, heap_end, bump;
    uint64_t free_head[KV_CLASSES]; /* exact-class free lists */
    uint64_t large_free;            /* blocks over the largest class, first fit */
    uint64_t used;                  /* bytes of live blocks, headers included */
    uint64_t nexpires;              /* keys with a time to live */
    /* Deleted collections not freed yet, freed a bounded piece at a time
     * (kv_gc): their table entries, linked by next. */
    uint64_t garbage;
    uint64_t ngarbage;
    struct kv_dict keys;
    uint64_t log_off;               /* the undo entries */
    /* The append-only file's record of the open transaction (home stripe,
     * plain): where in the ring, and the tag that says it is still ours. */
    uint64_t aof_rec;               /* KV_NONE = none */
    uint64_t aof_tag;
    uint64_t txns;                  /* transactions begun here, for tags */
};

/* A reply slot: the progress of one task's batch. Progress is one word,
 * so that it is never seen half-written: commands that took effect, and
 * the bytes of their replies in replies[] (KV_BIG: the last one's reply is
 * in the task's output instead). A command that changes the table writes
 * it inside its transaction; one that changes nothing, with a plain store
 * after it ran. */
struct kv_slot {
    uint64_t seq;      /* the task's number, written by the front */
    uint64_t progress; /* done << 32 | bytes, | KV_BIG */
    uint64_t cur_set;  /* stripes the running command takes (plain) */
    uint64_t cur_cmd;  /* its index in the batch (plain) */
    uint64_t dirty;    /* it changed something before dying (plain) */
    uint64_t aof_end;  /* the ring position past the batch's last record (logged) */
    uint64_t pad[2];
    char replies[];
};

#define KV_BIG ((uint64_t)1 << 63)
#define KV_PROGRESS(done, len) ((uint64_t)(done) << 32 | (uint64_t)(len))
#define KV_DONE(p) ((uint32_t)(((p) & ~KV_BIG) >> 32))
#define KV_LEN(p) ((uint32_t)(p))

#define KV_SLOT_ROOM (KV_SLOT_SIZE - sizeof(struct kv_slot))

struct kv_header {
    uint64_t magic;
    uint64_t size;
    uint64_t seed;          /* the hash's key, chosen at creation */
    uint64_t nslots;
    uint64_t slots_off;
    uint64_t stripes_off;
    uint64_t stripe_size;
    /* Settings the backends read. */
    uint64_t maxmemory;     /* bytes; 0 = none */
    uint64_t policy;        /* 0 noeviction, 1 allkeys-lru */
    /* Counters (atomic adds). */
    uint64_t commands;
    uint64_t expired;
    uint64_t evicted;
    uint64_t keyspace_hits;
    uint64_t keyspace_misses;
    uint64_t recoveries;    /* transactions rolled back after a death */
    /* A bit a stripe that may hold garbage (kv_collect): set (atomic or)
     * under the stripe's lock as garbage is added, cleared under it once
     * none is left; a hint, outside the log: one too many costs a look. */
    uint64_t garbage_stripes;
    /* The append-only file's ring (see aof.c): records of committed
     * commands, in the order their stripes' locks made them, on their way
     * to the file. Positions count bytes since start, never wrap. */
    uint64_t aof_off, aof_size;   /* the ring; size 0 = no append-only file */
    uint64_t aof_head;            /* reserved up to here (KV_LOCK_AOF) */
    uint64_t aof_tail;            /* written to the file up to here (the writer) */
    uint64_t aof_synced;          /* on disk up to here (the writer) */
};

/* A record in the ring: this header, then len bytes of RESP commands,
 * padded to 16. A record never wraps: a PAD record fills a ring's end. */
enum kv_aof_state { KV_AOF_PENDING = 1, KV_AOF_COMMITTED, KV_AOF_ABORTED, KV_AOF_PAD };

struct kv_aof_rec {
    uint32_t state;
    uint32_t len;
    uint64_t tag;  /* home stripe << 56 | its transaction count */
};

#define KV_AOF_RING (32u << 20)

/* A process's view of the store. */
struct kv_store {
    unsigned char *base;
    struct kv_header *hdr;
    walls_lock *locks;
    /* With keep, a committed or undone transaction's stripes stay taken
     * (held) until kv_store_let_go() or a transaction over another set:
     * a backend running a batch of commands on one key takes its stripe
     * once, not once a command. Nothing is uncommitted while they are
     * kept, so a death then leaves nothing to undo. */
    bool keep;
    uint64_t held;
};

/* The region's size for n slots, a heap of heap bytes per stripe and an
 * append-only file's ring if aof. */
size_t kv_region_size(size_t nslots, size_t heap, bool aof);
/* Lays the store out in a zeroed region (the host, once). */
void kv_store_format(struct kv_store *st, void *base, size_t size, size_t nslots,
                     uint64_t maxmemory, int policy, bool aof);
/* Binds a process's view; 0, or -1 when the region is not a store. */
int kv_store_open(struct kv_store *st, void *base, size_t size, walls_lock *locks);
/* Lets go of the stripes kept (st->keep) since the last transaction. */
void kv_store_let_go(struct kv_store *st);

static inline void *kv_at(const struct kv_store *st, uint64_t off)
{
    return st->base + off;
}
static inline uint64_t kv_off(const struct kv_store *st, const void *p)
{
    return (uint64_t)((const unsigned char *)p - st->base);
}
struct kv_stripe *kv_stripe_of(const struct kv_store *st, unsigned i);
struct kv_slot *kv_slot_of(const struct kv_store *st, uint64_t i);

uint64_t kv_hash(const struct kv_store *st, const void *key, size_t len);
static inline unsigned kv_stripe_for(uint64_t hash)
{
    return (unsigned)(hash >> 58); /* the top 6 bits: KV_STRIPES = 64 */
}

/* ---- transactions ------------------------------------------------------ */

#define KV_FRESH_MAX 64
#define KV_FREED_MAX 256

struct kv_txn {
    struct kv_store *st;
    uint64_t set;           /* stripes held */
    unsigned home;
    struct kv_stripe *h;    /* the home stripe */
    struct kv_undo *log;
    bool full;              /* the log ran out: the transaction must abort */
    bool wrote;             /* it logged a change of the table */
    struct kv_slot *slot;   /* the task's slot, told when the table first changes (dirty) */
    /* Blocks allocated by this transaction: written without the log. */
    uint64_t fresh_off[KV_FRESH_MAX], fresh_end[KV_FRESH_MAX];
    unsigned nfresh;
    /* Blocks it freed that were not fresh: a rollback makes them live
     * again, so it never allocates them (fresh memory is written without
     * the log). freed_over: more than KV_FREED_MAX, so it takes no block
     * from a free list at all. */
    uint64_t freed[KV_FREED_MAX];
    unsigned nfreed;
    bool freed_over;
};

/* Takes the stripes of set (at least one) in order, rolling back first
 * whatever a dead holder left. slot: the task's reply slot, told which
 * stripes are taken before they are (NULL from the front). 0, or -1 if a
 * lock could not be had (its error in *err). */
int kv_txn_begin(struct kv_txn *t, struct kv_store *st, uint64_t set, struct kv_slot *slot,
                 int *err);
/* Ends it: keeps (commit) or undoes every change, then lets go. */
void kv_txn_commit(struct kv_txn *t);
void kv_txn_abort(struct kv_txn *t);

/* A point to undo to (the log's length now). Memory the transaction
 * allocated before it is fresh no more: writes to it from here on are
 * logged, since undoing to this point must give it back as it is now (a
 * list made by one command of an EXEC, pushed to by a later one that
 * fails). */
uint64_t kv_txn_mark(struct kv_txn *t);
/* Undoes the changes logged since mark (from kv_txn_mark), keeping the
 * transaction open: one command of an EXEC that failed midway. */
void kv_txn_undo_to(struct kv_txn *t, uint64_t mark);

/* Logged writes. They never fail: a full log marks the transaction (t->full),
 * which the caller must then abort. */
void kv_put(struct kv_txn *t, uint64_t *word, uint64_t value);
void kv_put_bytes(struct kv_txn *t, void *dst, const void *src, size_t len);
/* The slot's progress, logged (not a change of the table). */
void kv_put_slot(struct kv_txn *t, uint64_t *word, uint64_t value);

/* Allocation in a stripe held by t: the payload's offset (its memory is
 * fresh, contents undefined), or 0 when the stripe's heap is full. */
uint64_t kv_alloc(struct kv_txn *t, unsigned stripe, size_t len);
/* Grows the live block at off in place to hold len bytes, from the bump
 * or the free block right after it. Returns whether it holds them now. */
bool kv_grow(struct kv_txn *t, unsigned stripe, uint64_t off, size_t len);
void kv_free(struct kv_txn *t, unsigned stripe, uint64_t off);
/* Usable bytes of an allocated block. */
size_t kv_block_room(const struct kv_store *st, uint64_t off);

/* The front's side of a dead backend: takes (and so recovers) the
 * stripes of set, then lets go. */
void kv_settle(struct kv_store *st, uint64_t set);

/* Puts len bytes of RESP commands in the append-only file's ring as the
 * record of t, to reach the file if and only if t commits. Waits while
 * the ring is full. The ring position past the record, or 0 when the
 * record cannot fit in the ring at all. */
uint64_t kv_aof_append(struct kv_txn *t, const void *p, size_t len);

/* ---- dictionaries ------------------------------------------------------- */

/* Finds key in d (stripe held): the entry's offset and where the link to
 * it is (for unlinking), or 0. */
uint64_t kv_dict_find(struct kv_txn *t, struct kv_dict *d, const void *key, size_t klen,
                      uint64_t hash, uint64_t **link);
/* Links a fresh entry (its next field is set here). 0, or -1 on a full
 * heap or log. */
int kv_dict_add(struct kv_txn *t, unsigned stripe, struct kv_dict *d, uint64_t ent);
/* Replaces the entry at *link with a fresh one (same key). */
void kv_dict_replace(struct kv_txn *t, uint64_t *link, uint64_t old, uint64_t ent);
/* Unlinks the entry at *link (not freed). */
void kv_dict_unlink(struct kv_txn *t, struct kv_dict *d, uint64_t *link, uint64_t ent);
/* Calls fn for every entry; stops when it returns non-zero. */
int kv_dict_each(struct kv_store *st, struct kv_dict *d,
                 int (*fn)(void *ctx, struct kv_ent *e), void *ctx);
/* Frees every entry and the bucket arrays (not d itself). */
void kv_dict_clear(struct kv_txn *t, unsigned stripe, struct kv_dict *d);

#endif
