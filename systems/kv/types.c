/*
 * types.c - lists, hashes and sets.
 *
 * A list is an object {head, tail, len} with nodes linked both ways; a
 * hash or a set is a dictionary (store.h) of its fields or members, the
 * same structure the table itself uses, so it grows a few buckets per
 * change like the table. Everything lives in the key's stripe and changes
 * inside the command's transaction. A container left empty is deleted
 * with its key, as Redis does.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* ---- shared ---------------------------------------------------------------- */

/* The key's container of that type: created (with its entry) when absent
 * and create is set. NULL with the reply written (WRONGTYPE, OOM), or
 * NULL with *absent set when it does not exist and create is not set. */
static void *container(struct kv_ctx *c, struct kv_found *f, uint32_t type, bool create,
                       bool *absent, int *rc)
{
    *absent = false;
    *rc = 0;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], f);
    if (e && e->type != type) {
        kv_err_type(c);
        return NULL;
    }
    if (e)
        return kv_at(c->st, e->val);
    if (!create) {
        *absent = true;
        return NULL;
    }
    if (!kv_room_for_write(c)) {
        *rc = kv_err_oom(c);
        return NULL;
    }
    size_t size = type == KV_LIST ? sizeof(struct kv_list) : sizeof(struct kv_dict);
    uint64_t obj = kv_alloc(&c->txn, f->stripe, size);
    uint64_t off = obj ? kv_new_entry(c, f, &c->argv[1], type, 0) : 0;
    if (!off) {
        *rc = kv_err_oom(c);
        return NULL;
    }
    memset(kv_at(c->st, obj), 0, size);
    if (type != KV_LIST)
        ((struct kv_dict *)kv_at(c->st, obj))->rehash = KV_NONE;
    ((struct kv_ent *)kv_at(c->st, off))->val = obj;
    if (kv_install(c, f, off) != 0) {
        *rc = kv_err_oom(c);
        return NULL;
    }
    return kv_at(c->st, obj);
}

/* The optional count of LPOP, RPOP and SPOP (argv[2]): -1 when absent.
 * false, with the reply written, when it is not a count. */
static bool pop_count(struct kv_ctx *c, long long *count)
{
    *count = -1;
    if (c->argc == 3 && (!kv_arg_ll(&c->argv[2], count) || *count < 0)) {
        kv_reply_error(c->out, "ERR value is out of range, must be positive");
        return false;
    }
    return true;
}

/* The key's container for a command that does not create one: NULL with
 * the reply written when the key holds another type (WRONGTYPE) or
 * nothing (absent, in RESP). */
static void *existing(struct kv_ctx *c, struct kv_found *f, uint32_t type, const char *absent)
{
    bool none;
    int rc;
    void *o = container(c, f, type, false, &none, &rc);
    if (!o && none)
        kv_reply_raw(c->out, absent, strlen(absent));
    return o;
}

/* Deletes the key of f when its container is empty. */
static void drop_if_empty(struct kv_ctx *c, struct kv_found *f, uint64_t count)
{
    if (count == 0)
        kv_drop(c, f->stripe, f->link, f->off);
}

bool kv_free_value(struct kv_ctx *c, unsigned stripe, struct kv_ent *e, uint64_t off)
{
    uint64_t count = e->type == KV_LIST ? ((const struct kv_list *)kv_at(c->st, e->val))->len
                     : e->type == KV_HASH || e->type == KV_SET
                         ? ((const struct kv_dict *)kv_at(c->st, e->val))->used
                         : 0;
    if (c->lazy && count > KV_LAZY_MIN) {
        /* Too many to free in one transaction, perhaps: the entry and its
         * collection go to the garbage, a few words logged. Its hash is
         * the garbage collector's bucket cursor from now on. */
        struct kv_stripe *s = kv_stripe_of(c->st, stripe);
        kv_put(&c->txn, &e->next, s->garbage);
        kv_put(&c->txn, &e->hash, 0);
        kv_put(&c->txn, &s->garbage, off);
        kv_put(&c->txn, &s->ngarbage, s->ngarbage + 1);
        __atomic_fetch_or(&c->st->hdr->garbage_stripes, (uint64_t)1 << stripe, __ATOMIC_RELAXED);
        return true;
    }
    if (e->type == KV_LIST) {
        struct kv_list *l = kv_at(c->st, e->val);
        for (uint64_t n = l->head; n && !c->txn.full;) {
            uint64_t next = ((struct kv_node *)kv_at(c->st, n))->next;
            kv_free(&c->txn, stripe, n);
            n = next;
        }
        kv_free(&c->txn, stripe, e->val);
    } else if (e->type == KV_HASH || e->type == KV_SET) {
        kv_dict_clear(&c->txn, stripe, kv_at(c->st, e->val));
        kv_free(&c->txn, stripe, e->val);
    }
    return false;
}

/* Frees up to budget entries of a deleted dictionary, bucket by bucket
 * from *cursor, then its bucket arrays. Returns whether it is empty. */
static bool drain_dict(struct kv_txn *t, unsigned stripe, struct kv_dict *d, uint64_t *cursor,
                       unsigned budget, unsigned *done)
{
    struct kv_store *st = t->st;
    for (int k = 0; k < 2; k++) {
        if (!d->table[k])
            continue;
        uint64_t *tab = kv_at(st, d->table[k]);
        uint64_t b = *cursor;
        while (b < d->size[k] && *done < budget && !t->full) {
            uint64_t e = tab[b];
            if (!e) {
                b++;
                continue;
            }
            kv_put(t, &tab[b], ((const struct kv_ent *)kv_at(st, e))->next);
            kv_free(t, stripe, e);
            (*done)++;
        }
        kv_put(t, cursor, b);
        if (b < d->size[k])
            return false;
        kv_free(t, stripe, d->table[k]);
        kv_put(t, &d->table[k], 0);
        kv_put(t, cursor, 0);
    }
    return true;
}

bool kv_collect(struct kv_store *st)
{
    bool freed = false;
    uint64_t stripes = __atomic_load_n(&st->hdr->garbage_stripes, __ATOMIC_RELAXED);
    while (stripes) {
        unsigned i = (unsigned)__builtin_ctzll(stripes);
        stripes &= stripes - 1;
        struct kv_txn t;
        int err;
        if (kv_txn_begin(&t, st, (uint64_t)1 << i, NULL, &err) != 0)
            continue;
        /* None there as the lock was taken: the bit goes, under the lock
         * (whoever adds garbage holds it too), in a transaction that
         * changes nothing, which no rollback undoes. A transaction that
         * freed the last of it leaves the bit to the next look. */
        if (!kv_stripe_of(st, i)->garbage)
            __atomic_fetch_and(&st->hdr->garbage_stripes, ~((uint64_t)1 << i), __ATOMIC_RELAXED);
        unsigned n = kv_gc(&t, i, KV_GC_BUDGET);
        if (t.full) {
            kv_txn_abort(&t);
            continue;
        }
        kv_txn_commit(&t);
        freed |= n > 0;
    }
    return freed;
}

unsigned kv_gc(struct kv_txn *t, unsigned stripe, unsigned budget)
{
    struct kv_store *st = t->st;
    struct kv_stripe *s = kv_stripe_of(st, stripe);
    unsigned done = 0;
    while (s->garbage && done < budget && !t->full) {
        uint64_t off = s->garbage;
        struct kv_ent *e = kv_at(st, off);
        bool empty;
        if (e->type == KV_LIST) {
            struct kv_list *l = kv_at(st, e->val);
            while (l->head && done < budget && !t->full) {
                uint64_t n = l->head;
                kv_put(t, &l->head, ((const struct kv_node *)kv_at(st, n))->next);
                kv_free(t, stripe, n);
                done++;
            }
            empty = l->head == 0;
        } else {
            empty = drain_dict(t, stripe, kv_at(st, e->val), &e->hash, budget, &done);
        }
        if (!empty || t->full)
            break;
        kv_put(t, &s->garbage, e->next);
        kv_put(t, &s->ngarbage, s->ngarbage - 1);
        kv_free(t, stripe, e->val);
        kv_free(t, stripe, off);
        done++;
    }
    return done;
}

/* ---- lists ------------------------------------------------------------------ */

static int push(struct kv_ctx *c, bool left)
{
    struct kv_found f;
    bool absent;
    int rc;
    struct kv_list *l = container(c, &f, KV_LIST, true, &absent, &rc);
    if (!l)
        return rc;
    uint64_t lo = kv_off(c->st, l);
    for (size_t i = 2; i < c->argc; i++) {
        const struct resp_arg *a = &c->argv[i];
        uint64_t n = kv_alloc(&c->txn, f.stripe, sizeof(struct kv_node) + a->len);
        if (!n)
            return kv_err_oom(c);
        l = kv_at(c->st, lo);
        struct kv_node *node = kv_at(c->st, n);
        node->len = a->len;
        memcpy(node->data, a->p, a->len);
        if (left) {
            node->prev = 0;
            node->next = l->head;
            if (l->head)
                kv_put(&c->txn, &((struct kv_node *)kv_at(c->st, l->head))->prev, n);
            else
                kv_put(&c->txn, &l->tail, n);
            kv_put(&c->txn, &l->head, n);
        } else {
            node->next = 0;
            node->prev = l->tail;
            if (l->tail)
                kv_put(&c->txn, &((struct kv_node *)kv_at(c->st, l->tail))->next, n);
            else
                kv_put(&c->txn, &l->head, n);
            kv_put(&c->txn, &l->tail, n);
        }
        kv_put(&c->txn, &l->len, l->len + 1);
    }
    if (c->txn.full)
        return kv_err_oom(c);
    kv_reply_int(c->out, (long long)((struct kv_list *)kv_at(c->st, lo))->len);
    return 0;
}

int kv_cmd_lpush(struct kv_ctx *c)
{
    return push(c, true);
}

int kv_cmd_rpush(struct kv_ctx *c)
{
    return push(c, false);
}

/* Takes one node off an end, replying with it. */
static void pop_one(struct kv_ctx *c, struct kv_found *f, struct kv_list *l, bool left)
{
    uint64_t n = left ? l->head : l->tail;
    struct kv_node *node = kv_at(c->st, n);
    kv_reply_bulk(c->out, node->data, node->len);
    uint64_t other = left ? node->next : node->prev;
    if (other)
        kv_put(&c->txn, left ? &((struct kv_node *)kv_at(c->st, other))->prev
                             : &((struct kv_node *)kv_at(c->st, other))->next,
               0);
    else
        kv_put(&c->txn, left ? &l->tail : &l->head, 0);
    kv_put(&c->txn, left ? &l->head : &l->tail, other);
    kv_put(&c->txn, &l->len, l->len - 1);
    kv_free(&c->txn, f->stripe, n);
}

static int pop(struct kv_ctx *c, bool left)
{
    long long count;
    if (c->argc > 3) {
        kv_reply_error(c->out, "ERR wrong number of arguments for '%s' command",
                       left ? "lpop" : "rpop");
        return 0;
    }
    if (!pop_count(c, &count))
        return 0;
    struct kv_found f;
    struct kv_list *l = existing(c, &f, KV_LIST, count >= 0 ? "*-1\r\n" : "$-1\r\n");
    if (!l)
        return 0;
    if (count < 0) {
        pop_one(c, &f, l, left);
    } else {
        long long n = count < (long long)l->len ? count : (long long)l->len;
        kv_reply_array(c->out, n);
        for (long long i = 0; i < n; i++)
            pop_one(c, &f, l, left);
    }
    drop_if_empty(c, &f, l->len);
    return c->txn.full ? kv_err_oom(c) : 0;
}

int kv_cmd_lpop(struct kv_ctx *c)
{
    return pop(c, true);
}

int kv_cmd_rpop(struct kv_ctx *c)
{
    return pop(c, false);
}

void kv_cmd_llen(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_list *l = existing(c, &f, KV_LIST, ":0\r\n");
    if (l)
        kv_reply_int(c->out, (long long)l->len);
}

/* Redis's index rules: negative counts from the end. */
static long long norm(long long i, long long len)
{
    return i < 0 ? len + i : i;
}

void kv_cmd_lrange(struct kv_ctx *c)
{
    long long start, stop;
    if (!kv_arg_ll(&c->argv[2], &start) || !kv_arg_ll(&c->argv[3], &stop)) {
        kv_err_int(c);
        return;
    }
    struct kv_found f;
    struct kv_list *l = existing(c, &f, KV_LIST, "*0\r\n");
    if (!l)
        return;
    long long len = (long long)l->len;
    start = norm(start, len);
    stop = norm(stop, len);
    if (start < 0)
        start = 0;
    if (stop >= len)
        stop = len - 1;
    if (start > stop || start >= len) {
        kv_reply_array(c->out, 0);
        return;
    }
    kv_reply_array(c->out, stop - start + 1);
    /* Walk from the nearer end. */
    uint64_t n;
    if (start <= len - 1 - stop) {
        n = l->head;
        for (long long i = 0; i < start; i++)
            n = ((struct kv_node *)kv_at(c->st, n))->next;
    } else {
        n = l->tail;
        for (long long i = len - 1; i > stop; i--)
            n = ((struct kv_node *)kv_at(c->st, n))->prev;
        for (long long i = stop; i > start; i--)
            n = ((struct kv_node *)kv_at(c->st, n))->prev;
    }
    for (long long i = start; i <= stop && n; i++) {
        struct kv_node *node = kv_at(c->st, n);
        kv_reply_bulk(c->out, node->data, node->len);
        n = node->next;
    }
}

/* Unlike LRANGE, the key is looked at before the index (as redis-server
 * does): a missing key answers nil whatever the index. */
void kv_cmd_lindex(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_list *l = existing(c, &f, KV_LIST, "$-1\r\n");
    if (!l)
        return;
    long long index;
    if (!kv_arg_ll(&c->argv[2], &index)) {
        kv_err_int(c);
        return;
    }
    long long len = (long long)l->len;
    index = norm(index, len);
    if (index < 0 || index >= len) {
        kv_reply_null(c->out);
        return;
    }
    uint64_t n;
    if (index < len / 2) {
        n = l->head;
        for (long long i = 0; i < index; i++)
            n = ((struct kv_node *)kv_at(c->st, n))->next;
    } else {
        n = l->tail;
        for (long long i = len - 1; i > index; i--)
            n = ((struct kv_node *)kv_at(c->st, n))->prev;
    }
    struct kv_node *node = kv_at(c->st, n);
    kv_reply_bulk(c->out, node->data, node->len);
}

/* ---- hashes and sets ------------------------------------------------------- */

/* A new field (or member) entry: name, then value bytes. */
static uint64_t new_field(struct kv_ctx *c, unsigned stripe, const struct resp_arg *name,
                          uint64_t hash, const void *val, size_t vlen)
{
    uint64_t off = kv_alloc(&c->txn, stripe, sizeof(struct kv_ent) + name->len + vlen);
    if (!off)
        return 0;
    struct kv_ent *e = kv_at(c->st, off);
    e->next = 0;
    e->hash = hash;
    e->klen = (uint32_t)name->len;
    e->type = 0;
    e->val = vlen;
    e->expire_ms = 0;
    e->lru = 0;
    memcpy(e->data, name->p, name->len);
    if (vlen)
        memcpy(e->data + name->len, val, vlen);
    return off;
}

/* Sets field to value in d: 1 if the field is new, 0 if replaced, -1 on
 * a full heap or log. */
static int dict_set(struct kv_ctx *c, unsigned stripe, struct kv_dict *d,
                    const struct resp_arg *field, const void *val, size_t vlen)
{
    uint64_t hash = kv_hash(c->st, field->p, field->len);
    uint64_t *link;
    uint64_t old = kv_dict_find(&c->txn, d, field->p, field->len, hash, &link);
    struct kv_ent *e = old ? kv_at(c->st, old) : NULL;
    if (e && kv_fits_in_place(c, e, vlen)) {
        /* Written over the old value, each word logged first: no block
         * taken or given back. */
        kv_put_bytes(&c->txn, e->data + e->klen, val, vlen);
        kv_put(&c->txn, &e->val, vlen);
        return c->txn.full ? -1 : 0;
    }
    uint64_t off = new_field(c, stripe, field, hash, val, vlen);
    if (!off)
        return -1;
    if (old) {
        kv_dict_replace(&c->txn, link, old, off);
        kv_free(&c->txn, stripe, old);
        return c->txn.full ? -1 : 0;
    }
    return kv_dict_add(&c->txn, stripe, d, off) != 0 ? -1 : 1;
}

static struct kv_ent *field_find(struct kv_ctx *c, struct kv_dict *d, const struct resp_arg *name,
                                 uint64_t **link)
{
    uint64_t hash = kv_hash(c->st, name->p, name->len);
    uint64_t off = kv_dict_find(&c->txn, d, name->p, name->len, hash, link);
    return off ? kv_at(c->st, off) : NULL;
}

int kv_cmd_hset(struct kv_ctx *c)
{
    if (c->argc % 2 != 0) {
        kv_reply_error(c->out, "ERR wrong number of arguments for 'hset' command");
        return 0;
    }
    struct kv_found f;
    bool absent;
    int rc;
    struct kv_dict *d = container(c, &f, KV_HASH, true, &absent, &rc);
    if (!d)
        return rc;
    long long added = 0;
    for (size_t i = 2; i < c->argc; i += 2) {
        int r = dict_set(c, f.stripe, d, &c->argv[i], c->argv[i + 1].p, c->argv[i + 1].len);
        if (r < 0)
            return kv_err_oom(c);
        added += r;
    }
    kv_reply_int(c->out, added);
    return 0;
}

void kv_cmd_hget(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_dict *d = existing(c, &f, KV_HASH, "$-1\r\n");
    if (!d)
        return;
    uint64_t *link;
    struct kv_ent *e = field_find(c, d, &c->argv[2], &link);
    if (e)
        kv_reply_bulk(c->out, e->data + e->klen, e->val);
    else
        kv_reply_null(c->out);
}

static int remove_members(struct kv_ctx *c, uint32_t type)
{
    struct kv_found f;
    struct kv_dict *d = existing(c, &f, type, ":0\r\n");
    if (!d)
        return 0;
    long long n = 0;
    for (size_t i = 2; i < c->argc; i++) {
        uint64_t *link;
        struct kv_ent *e = field_find(c, d, &c->argv[i], &link);
        if (e) {
            uint64_t off = kv_off(c->st, e);
            kv_dict_unlink(&c->txn, d, link, off);
            kv_free(&c->txn, f.stripe, off);
            n++;
        }
    }
    drop_if_empty(c, &f, d->used);
    if (c->txn.full)
        return kv_err_oom(c);
    kv_reply_int(c->out, n);
    return 0;
}

int kv_cmd_hdel(struct kv_ctx *c)
{
    return remove_members(c, KV_HASH);
}

struct walk {
    struct kv_ctx *c;
    bool values;
};

static int reply_entry(void *arg, struct kv_ent *e)
{
    struct walk *w = arg;
    kv_reply_bulk(w->c->out, e->data, e->klen);
    if (w->values)
        kv_reply_bulk(w->c->out, e->data + e->klen, e->val);
    return w->c->out->failed ? -1 : 0;
}

static void members(struct kv_ctx *c, uint32_t type, bool values)
{
    struct kv_found f;
    struct kv_dict *d = existing(c, &f, type, "*0\r\n");
    if (!d)
        return;
    kv_reply_array(c->out, (long long)(values ? 2 * d->used : d->used));
    struct walk w = {c, values};
    kv_dict_each(c->st, d, reply_entry, &w);
}

void kv_cmd_hgetall(struct kv_ctx *c)
{
    members(c, KV_HASH, true);
}

static void count(struct kv_ctx *c, uint32_t type)
{
    struct kv_found f;
    struct kv_dict *d = existing(c, &f, type, ":0\r\n");
    if (d)
        kv_reply_int(c->out, (long long)d->used);
}

void kv_cmd_hlen(struct kv_ctx *c)
{
    count(c, KV_HASH);
}

static void is_member(struct kv_ctx *c, uint32_t type)
{
    struct kv_found f;
    struct kv_dict *d = existing(c, &f, type, ":0\r\n");
    if (!d)
        return;
    uint64_t *link;
    kv_reply_int(c->out, field_find(c, d, &c->argv[2], &link) ? 1 : 0);
}

void kv_cmd_hexists(struct kv_ctx *c)
{
    is_member(c, KV_HASH);
}

int kv_cmd_hincrby(struct kv_ctx *c)
{
    long long by;
    if (!kv_arg_ll(&c->argv[3], &by)) {
        kv_err_int(c);
        return 0;
    }
    struct kv_found f;
    bool absent;
    int rc;
    struct kv_dict *d = container(c, &f, KV_HASH, true, &absent, &rc);
    if (!d)
        return rc;
    uint64_t *link;
    struct kv_ent *e = field_find(c, d, &c->argv[2], &link);
    long long v = 0;
    if (e && !kv_parse_ll(e->data + e->klen, e->val, &v)) {
        kv_reply_error(c->out, "ERR hash value is not an integer");
        return 0;
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        kv_reply_error(c->out, "ERR increment or decrement would overflow");
        return 0;
    }
    v += by;
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", v);
    if (dict_set(c, f.stripe, d, &c->argv[2], text, (size_t)n) < 0)
        return kv_err_oom(c);
    kv_reply_int(c->out, v);
    return 0;
}

int kv_cmd_sadd(struct kv_ctx *c)
{
    struct kv_found f;
    bool absent;
    int rc;
    struct kv_dict *d = container(c, &f, KV_SET, true, &absent, &rc);
    if (!d)
        return rc;
    long long added = 0;
    for (size_t i = 2; i < c->argc; i++) {
        uint64_t *link;
        if (field_find(c, d, &c->argv[i], &link))
            continue;
        uint64_t hash = kv_hash(c->st, c->argv[i].p, c->argv[i].len);
        uint64_t off = new_field(c, f.stripe, &c->argv[i], hash, NULL, 0);
        if (!off || kv_dict_add(&c->txn, f.stripe, d, off) != 0)
            return kv_err_oom(c);
        added++;
    }
    kv_reply_int(c->out, added);
    return 0;
}

int kv_cmd_srem(struct kv_ctx *c)
{
    return remove_members(c, KV_SET);
}

void kv_cmd_smembers(struct kv_ctx *c)
{
    members(c, KV_SET, false);
}

void kv_cmd_sismember(struct kv_ctx *c)
{
    is_member(c, KV_SET);
}

void kv_cmd_scard(struct kv_ctx *c)
{
    count(c, KV_SET);
}

static uint64_t next_random(const struct kv_ctx *c)
{
    static __thread uint64_t state;
    if (!state)
        state = ((uint64_t)c->now_ms ^ (uint64_t)(uintptr_t)&state) * 0x9e3779b97f4a7c15ULL | 1;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state * 0x2545f4914f6cdd1dULL;
}

/* Bucket i of the dictionary's two tables taken as one array of
 * size[0] + size[1] buckets. */
static uint64_t *bucket_at(struct kv_ctx *c, struct kv_dict *d, uint64_t i)
{
    int k = 0;
    if (!d->table[0] || i >= d->size[0]) {
        i -= d->table[0] ? d->size[0] : 0;
        k = 1;
    }
    return (uint64_t *)kv_at(c->st, d->table[k]) + i;
}

/* The link to entry j of the chain at b, or NULL when it is shorter; its
 * length in *len. */
static uint64_t *chain_entry(struct kv_ctx *c, uint64_t *b, uint64_t j, uint64_t *len)
{
    uint64_t *found = NULL, n = 0;
    for (uint64_t *at = b; *at; at = &((struct kv_ent *)kv_at(c->st, *at))->next, n++)
        if (n == j)
            found = at;
    *len = n;
    return found;
}

/* A random member's link, every member equally likely: a random bucket
 * of either table and a random place j in [0, m) of its chain, taken when
 * the chain has an entry there, m at least the longest chain met (so each
 * entry has the same chance 1 / (buckets * m) a try). A set so sparse that
 * 64 tries find nothing takes a random entry of the next non-empty bucket
 * from a random start. */
static uint64_t random_member(struct kv_ctx *c, struct kv_dict *d, uint64_t **link)
{
    uint64_t total = (d->table[0] ? d->size[0] : 0) + (d->table[1] ? d->size[1] : 0);
    if (!total || !d->used)
        return 0;
    uint64_t m = 2 * ((d->used + total - 1) / total) + 2, len;
    for (int tries = 0; tries < 64; tries++) {
        uint64_t *b = bucket_at(c, d, next_random(c) % total);
        uint64_t *at = chain_entry(c, b, next_random(c) % m, &len);
        if (len > m) {
            m = len; /* a longer chain than thought: from now on, fair to it too */
            at = chain_entry(c, b, next_random(c) % m, &len);
        }
        if (at) {
            *link = at;
            return *at;
        }
    }
    for (uint64_t i = 0, from = next_random(c) % total; i < total; i++) {
        uint64_t *b = bucket_at(c, d, (from + i) % total);
        if (*b) {
            chain_entry(c, b, 0, &len);
            *link = chain_entry(c, b, next_random(c) % len, &len);
            return **link;
        }
    }
    return 0;
}

int kv_cmd_spop(struct kv_ctx *c)
{
    long long want;
    if (c->argc > 3) {
        kv_err_syntax(c);
        return 0;
    }
    if (!pop_count(c, &want))
        return 0;
    struct kv_found f;
    struct kv_dict *d = existing(c, &f, KV_SET, want >= 0 ? "*0\r\n" : "$-1\r\n");
    if (!d)
        return 0;
    long long n = want < 0 ? 1 : (want < (long long)d->used ? want : (long long)d->used);
    if (want >= 0)
        kv_reply_array(c->out, n);
    if (c->aof && n > 0) {
        /* Replayed as the removal of what was picked. */
        kv_reply_array(c->aof, n + 2);
        kv_reply_bulk(c->aof, "SREM", 4);
        kv_reply_bulk(c->aof, c->argv[1].p, c->argv[1].len);
        c->aof_written = true;
    }
    for (long long i = 0; i < n; i++) {
        uint64_t *link;
        uint64_t off = random_member(c, d, &link);
        if (!off)
            break;
        struct kv_ent *e = kv_at(c->st, off);
        kv_reply_bulk(c->out, e->data, e->klen);
        if (c->aof)
            kv_reply_bulk(c->aof, e->data, e->klen);
        kv_dict_unlink(&c->txn, d, link, off);
        kv_free(&c->txn, f.stripe, off);
    }
    drop_if_empty(c, &f, d->used);
    return c->txn.full ? kv_err_oom(c) : 0;
}
