/*
 * commands.c - the command table and the commands on strings and keys,
 * as the backends run them (lists, hashes and sets are in types.c).
 *
 * A command names its keys by position (first, last, step, as Redis's
 * command table does); the stripes of those keys are taken together, in
 * order, in one transaction, so a multi-key command (MSET, DEL) is atomic
 * and is undone as a whole if its backend dies. Commands that look at the
 * whole keyspace (KEYS, SCAN, DBSIZE) take one stripe at a time, and
 * FLUSHALL all of them. Replies and error words are redis-server 7.0's.
 */
#define _GNU_SOURCE
#include "cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- replies ------------------------------------------------------------- */

static bool reserve(struct kv_out *o, size_t more)
{
    if (o->failed)
        return false;
    if (o->len + more <= o->cap)
        return true;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + more)
        cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->failed = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

void kv_reply_raw(struct kv_out *o, const void *p, size_t len)
{
    if (len > 0 && reserve(o, len)) {
        memcpy(o->p + o->len, p, len);
        o->len += len;
    }
}

/* Writes with a resp_put_* writer: tries the room left, grows once. */
#define PUT(o, call_with_room)                                                                \
    do {                                                                                      \
        size_t room_ = (o)->cap - (o)->len;                                                   \
        char *at_ = (o)->p ? (o)->p + (o)->len : NULL;                                        \
        size_t need_ = (call_with_room);                                                      \
        if (need_ > room_) {                                                                  \
            if (!reserve((o), need_))                                                         \
                break;                                                                        \
            room_ = (o)->cap - (o)->len;                                                      \
            at_ = (o)->p + (o)->len;                                                          \
            need_ = (call_with_room);                                                         \
        }                                                                                     \
        (o)->len += need_;                                                                    \
    } while (0)

void kv_reply_ok(struct kv_out *o)
{
    kv_reply_raw(o, "+OK\r\n", 5);
}

void kv_reply_simple(struct kv_out *o, const char *s)
{
    PUT(o, resp_put_simple(at_, room_, s));
}

/* The whole message, however long: as Redis, an error that echoes what
 * the client sent (EXPIRE's unsupported option) is not cut short. */
void kv_reply_error(struct kv_out *o, const char *fmt, ...)
{
    char small[512];
    char *text = small;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= sizeof small) {
        text = malloc((size_t)n + 1);
        if (text)
            vsnprintf(text, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (n < 0 || !text) {
        o->failed = true;
        return;
    }
    for (char *p = text; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    PUT(o, resp_put_error(at_, room_, text));
    if (text != small)
        free(text);
}

void kv_reply_int(struct kv_out *o, long long v)
{
    PUT(o, resp_put_int(at_, room_, v));
}

void kv_reply_bulk(struct kv_out *o, const void *p, size_t len)
{
    PUT(o, resp_put_bulk(at_, room_, p, len));
}

void kv_reply_null(struct kv_out *o)
{
    kv_reply_raw(o, "$-1\r\n", 5);
}

void kv_reply_array(struct kv_out *o, long long n)
{
    PUT(o, resp_put_array(at_, room_, n));
}

void kv_aof_words(struct kv_ctx *c, int argc, const struct resp_arg *argv)
{
    if (!c->aof)
        return;
    kv_reply_array(c->aof, argc);
    for (int i = 0; i < argc; i++)
        kv_reply_bulk(c->aof, argv[i].p, argv[i].len);
}

static struct resp_arg word(const char *s)
{
    return (struct resp_arg){s, strlen(s)};
}

/* ---- arguments ------------------------------------------------------------ */

bool kv_arg_is(const struct resp_arg *a, const char *word)
{
    size_t n = strlen(word);
    return a->len == n && strncasecmp(a->p, word, n) == 0;
}

bool kv_opt_is(const struct resp_arg *a, const char *word)
{
    size_t n = strlen(word);
    return strnlen(a->p, a->len) == n && strncasecmp(a->p, word, n) == 0;
}

/* A whole, strictly written 64-bit integer, as Redis's string2ll. */
bool kv_arg_ll(const struct resp_arg *a, long long *v)
{
    return kv_parse_ll(a->p, a->len, v);
}

bool kv_parse_ll(const char *s, size_t len, long long *v)
{
    if (len == 0 || len > 20)
        return false;
    if (len == 1 && s[0] == '0') {
        *v = 0;
        return true;
    }
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (len == 1)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    unsigned long long acc = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (acc > (ULLONG_MAX - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    if (neg) {
        if (acc > (unsigned long long)LLONG_MAX + 1)
            return false;
        *v = acc == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)acc;
    } else {
        if (acc > LLONG_MAX)
            return false;
        *v = (long long)acc;
    }
    return true;
}

void kv_err_int(struct kv_ctx *c)
{
    kv_reply_error(c->out, "ERR value is not an integer or out of range");
}

void kv_err_type(struct kv_ctx *c)
{
    kv_reply_error(c->out, "WRONGTYPE Operation against a key holding the wrong kind of value");
}

void kv_err_syntax(struct kv_ctx *c)
{
    kv_reply_error(c->out, "ERR syntax error");
}

int kv_err_oom(struct kv_ctx *c)
{
    /* The command may have written part of its reply (a pop, the
     * elements it took): its undone changes have no reply but this. */
    if (c->out->len > c->reply_mark)
        c->out->len = c->reply_mark;
    if (c->txn.full)
        kv_reply_error(c->out, "ERR the command changes too much at once to be undone if it fails; "
                               "split it");
    else if (kv_over_maxmemory(c->st))
        kv_reply_error(c->out, "OOM command not allowed when used memory > 'maxmemory'.");
    else
        /* Not maxmemory: the heap of the key's stripe, sized at start. */
        kv_reply_error(c->out, "OOM no room left for this value in the heap of its key's "
                               "stripe (each of 64 holds 256 MiB, or 4 x maxmemory / 64 when "
                               "larger): a smaller value, or start with a larger --maxmemory");
    return -1;
}

/* ---- keys ------------------------------------------------------------------ */

static struct kv_stripe *key_stripe(struct kv_ctx *c, const struct resp_arg *key, uint64_t *hash,
                                    unsigned *index)
{
    *hash = kv_hash(c->st, key->p, key->len);
    *index = kv_stripe_for(*hash);
    return kv_stripe_of(c->st, *index);
}

/* Deletes the entry at *link: its object too. */
void kv_drop(struct kv_ctx *c, unsigned stripe, uint64_t *link, uint64_t off)
{
    struct kv_stripe *s = kv_stripe_of(c->st, stripe);
    struct kv_ent *e = kv_at(c->st, off);
    if (e->expire_ms)
        kv_put(&c->txn, &s->nexpires, s->nexpires - 1);
    kv_dict_unlink(&c->txn, &s->keys, link, off);
    if (!kv_free_value(c, stripe, e, off))
        kv_free(&c->txn, stripe, off);
}

struct kv_ent *kv_lookup(struct kv_ctx *c, const struct resp_arg *key, struct kv_found *f)
{
    struct kv_stripe *s = key_stripe(c, key, &f->hash, &f->stripe);
    f->off = kv_dict_find(&c->txn, &s->keys, key->p, key->len, f->hash, &f->link);
    if (!f->off)
        return NULL;
    struct kv_ent *e = kv_at(c->st, f->off);
    if (e->expire_ms && e->expire_ms <= c->now_ms && !c->loading) {
        kv_drop(c, f->stripe, f->link, f->off);
        __atomic_fetch_add(&c->st->hdr->expired, 1, __ATOMIC_RELAXED);
        f->off = 0;
        /* In the file before the command's own record, as Redis
         * propagates an expiry: a replay expires nothing itself. */
        struct resp_arg w[2] = {word("DEL"), *key};
        kv_aof_words(c, 2, w);
        return NULL;
    }
    e->lru = (uint64_t)c->now_ms; /* not logged: a hint for eviction only */
    return e;
}

/* A new table entry for key, with room for vlen value bytes (written by
 * the caller), in the key's stripe. 0 on a full heap. */
uint64_t kv_new_entry(struct kv_ctx *c, const struct kv_found *f, const struct resp_arg *key,
                      uint32_t type, size_t vroom)
{
    uint64_t off = kv_alloc(&c->txn, f->stripe, sizeof(struct kv_ent) + key->len + vroom);
    if (!off)
        return 0;
    struct kv_ent *e = kv_at(c->st, off);
    e->next = 0;
    e->hash = f->hash;
    e->klen = (uint32_t)key->len;
    e->type = type;
    e->val = 0;
    e->expire_ms = 0;
    e->lru = (uint64_t)c->now_ms;
    memcpy(e->data, key->p, key->len);
    return off;
}

/* Puts a fresh entry where f found (or did not find) the key. */
int kv_install(struct kv_ctx *c, struct kv_found *f, uint64_t off)
{
    struct kv_stripe *s = kv_stripe_of(c->st, f->stripe);
    struct kv_ent *e = kv_at(c->st, off);
    if (e->expire_ms)
        kv_put(&c->txn, &s->nexpires, s->nexpires + 1);
    if (f->off) {
        struct kv_ent *old = kv_at(c->st, f->off);
        if (old->expire_ms)
            kv_put(&c->txn, &s->nexpires, s->nexpires - 1);
        kv_dict_replace(&c->txn, f->link, f->off, off);
        if (!kv_free_value(c, f->stripe, old, f->off))
            kv_free(&c->txn, f->stripe, f->off);
        f->off = off;
        return c->txn.full ? -1 : 0;
    }
    if (kv_dict_add(&c->txn, f->stripe, &s->keys, off) != 0)
        return -1;
    f->off = off;
    return 0;
}

/* Values up to this many bytes are rewritten in their block. */
#define IN_PLACE_MAX 256

bool kv_fits_in_place(const struct kv_ctx *c, const struct kv_ent *e, size_t vlen)
{
    return vlen <= IN_PLACE_MAX &&
           sizeof(struct kv_ent) + e->klen + vlen <= kv_block_room(c->st, kv_off(c->st, e));
}

/* Whether writing may go on: under maxmemory, or room made by eviction. */
bool kv_room_for_write(struct kv_ctx *c)
{
    uint64_t max = c->st->hdr->maxmemory;
    if (!max)
        return true;
    uint64_t used = 0;
    for (unsigned i = 0; i < KV_STRIPES; i++)
        used += __atomic_load_n(&kv_stripe_of(c->st, i)->used, __ATOMIC_RELAXED);
    if (used <= max)
        return true;
    if (c->st->hdr->policy == 1)
        return kv_evict(c, used - max, true);
    return false;
}

/* ---- strings ---------------------------------------------------------------- */

static const char *str_of(const struct kv_ent *e)
{
    return e->data + e->klen;
}

/* A new string entry for key holding val. */
static uint64_t new_string(struct kv_ctx *c, struct kv_found *f, const struct resp_arg *key,
                           const void *val, size_t vlen, size_t room)
{
    uint64_t off = kv_new_entry(c, f, key, KV_STRING, room > vlen ? room : vlen);
    if (off) {
        struct kv_ent *e = kv_at(c->st, off);
        e->val = vlen;
        memcpy(e->data + key->len, val, vlen);
    }
    return off;
}

static void cmd_get(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    if (!e) {
        __atomic_fetch_add(&c->st->hdr->keyspace_misses, 1, __ATOMIC_RELAXED);
        kv_reply_null(c->out);
    } else if (e->type != KV_STRING) {
        kv_err_type(c);
    } else {
        __atomic_fetch_add(&c->st->hdr->keyspace_hits, 1, __ATOMIC_RELAXED);
        kv_reply_bulk(c->out, str_of(e), e->val);
    }
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]. As
 * redis-server: every option is read before the time is (a syntax error
 * wins over a bad number), and one unit may be given again (the last one
 * counts), but not two units, nor a unit with KEEPTTL. An option word
 * ends at a NUL byte ("EX\0" is EX), as Redis reads it. */
static int cmd_set(struct kv_ctx *c)
{
    static const char *const units[] = {"ex", "px", "exat", "pxat"};
    bool nx = false, xx = false, get = false, keepttl = false;
    const char *unit = NULL;
    const struct resp_arg *amount = NULL;
    for (size_t i = 3; i < c->argc; i++) {
        const struct resp_arg *a = &c->argv[i];
        const char *timed = NULL;
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
            if (kv_opt_is(a, units[u]))
                timed = units[u];
        if (kv_opt_is(a, "nx") && !xx)
            nx = true;
        else if (kv_opt_is(a, "xx") && !nx)
            xx = true;
        else if (kv_opt_is(a, "get"))
            get = true;
        else if (kv_opt_is(a, "keepttl") && !unit)
            keepttl = true;
        else if (timed && !keepttl && (!unit || unit == timed) && i + 1 < c->argc) {
            unit = timed;
            amount = &c->argv[++i];
        } else {
            kv_err_syntax(c);
            return 0;
        }
    }
    int64_t expire = 0;
    if (unit) {
        long long v;
        if (!kv_arg_ll(amount, &v)) {
            kv_err_int(c);
            return 0;
        }
        bool ms = unit[0] == 'p';
        bool at = strlen(unit) > 2;
        /* Relative times count from now: past the largest time, invalid. */
        if (v <= 0 || (!ms && v > LLONG_MAX / 1000) ||
            (!at && (ms ? v : v * 1000) > LLONG_MAX - c->now_ms)) {
            kv_reply_error(c->out, "ERR invalid expire time in 'set' command");
            return 0;
        }
        int64_t msv = ms ? v : v * 1000;
        expire = at ? msv : c->now_ms + msv;
    }
    struct kv_found f;
    struct kv_ent *old = kv_lookup(c, &c->argv[1], &f);
    if (get && old && old->type != KV_STRING) {
        kv_err_type(c);
        return 0;
    }
    if ((nx && old) || (xx && !old)) {
        if (get && old)
            kv_reply_bulk(c->out, str_of(old), old->val);
        else
            kv_reply_null(c->out);
        return 0;
    }
    if (!kv_room_for_write(c))
        return kv_err_oom(c);
    if (get) {
        /* The old value goes out before its memory is given back. */
        if (old)
            kv_reply_bulk(c->out, str_of(old), old->val);
        else
            kv_reply_null(c->out);
    }
    int64_t keep = keepttl && old ? old->expire_ms : 0;
    const struct resp_arg *v = &c->argv[2];
    int64_t when = unit ? expire : keep;
    if (old && old->type == KV_STRING && kv_fits_in_place(c, old, v->len)) {
        struct kv_stripe *s = kv_stripe_of(c->st, f.stripe);
        if (!old->expire_ms != !when)
            kv_put(&c->txn, &s->nexpires, when ? s->nexpires + 1 : s->nexpires - 1);
        kv_put_bytes(&c->txn, old->data + old->klen, v->p, v->len);
        kv_put(&c->txn, &old->val, v->len);
        kv_put(&c->txn, (uint64_t *)&old->expire_ms, (uint64_t)when);
        if (c->txn.full)
            return kv_err_oom(c);
    } else {
        uint64_t off = new_string(c, &f, &c->argv[1], v->p, v->len, 0);
        if (!off)
            return kv_err_oom(c);
        ((struct kv_ent *)kv_at(c->st, off))->expire_ms = when;
        if (kv_install(c, &f, off) != 0)
            return kv_err_oom(c);
    }
    if (!get)
        kv_reply_ok(c->out);
    if (c->aof) {
        /* Replayed later: the expiry as an instant, the condition (already
         * decided) and GET left out. */
        char num[24];
        struct resp_arg w[5] = {word("SET"), c->argv[1], c->argv[2]};
        int n = 3;
        if (when) {
            w[n++] = word("PXAT");
            w[n++] = (struct resp_arg){num, (size_t)snprintf(num, sizeof num, "%lld",
                                                             (long long)when)};
        }
        kv_aof_words(c, n, w);
        c->aof_written = true;
    }
    return 0;
}

static int cmd_getset(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_ent *old = kv_lookup(c, &c->argv[1], &f);
    if (old && old->type != KV_STRING) {
        kv_err_type(c);
        return 0;
    }
    if (!kv_room_for_write(c))
        return kv_err_oom(c);
    if (old)
        kv_reply_bulk(c->out, str_of(old), old->val);
    else
        kv_reply_null(c->out);
    const struct resp_arg *v = &c->argv[2];
    uint64_t off = new_string(c, &f, &c->argv[1], v->p, v->len, 0);
    if (!off || kv_install(c, &f, off) != 0)
        return kv_err_oom(c);
    return 0;
}

static void cmd_mget(struct kv_ctx *c)
{
    kv_reply_array(c->out, (long long)c->argc - 1);
    for (size_t i = 1; i < c->argc; i++) {
        struct kv_found f;
        struct kv_ent *e = kv_lookup(c, &c->argv[i], &f);
        if (e && e->type == KV_STRING)
            kv_reply_bulk(c->out, str_of(e), e->val);
        else
            kv_reply_null(c->out);
    }
}

static int cmd_mset(struct kv_ctx *c)
{
    if (c->argc % 2 == 0) {
        kv_reply_error(c->out, "ERR wrong number of arguments for 'mset' command");
        return 0;
    }
    if (!kv_room_for_write(c))
        return kv_err_oom(c);
    for (size_t i = 1; i < c->argc; i += 2) {
        struct kv_found f;
        kv_lookup(c, &c->argv[i], &f);
        const struct resp_arg *v = &c->argv[i + 1];
        uint64_t off = new_string(c, &f, &c->argv[i], v->p, v->len, 0);
        if (!off || kv_install(c, &f, off) != 0)
            return kv_err_oom(c);
    }
    kv_reply_ok(c->out);
    return 0;
}

static int cmd_append(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    const struct resp_arg *v = &c->argv[2];
    if (e && e->type != KV_STRING) {
        kv_err_type(c);
        return 0;
    }
    size_t have = e ? e->val : 0;
    if (have + v->len > RESP_MAX_BULK) {
        kv_reply_error(c->out, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return 0;
    }
    if (!kv_room_for_write(c))
        return kv_err_oom(c);
    size_t need = e ? sizeof(struct kv_ent) + e->klen + have + v->len : 0;
    size_t more = have + v->len < ((size_t)1 << 20) ? have + v->len : (size_t)1 << 20;
    if (e && (need <= kv_block_room(c->st, f.off) ||
              kv_grow(&c->txn, f.stripe, f.off, need + more) ||
              kv_grow(&c->txn, f.stripe, f.off, need))) {
        /* Room in the block (grown in place if need be: ahead of the next
         * APPEND, by as much again up to 1 MiB): past the value's end
         * nothing is committed, so only the length is logged. */
        memcpy(e->data + e->klen + have, v->p, v->len);
        kv_put(&c->txn, &e->val, have + v->len);
    } else {
        size_t want = have + v->len;
        uint64_t off = new_string(c, &f, &c->argv[1], e ? str_of(e) : "", have, e ? want * 2 : want);
        if (!off && e && !c->txn.full) /* no room for twice: just enough, then */
            off = new_string(c, &f, &c->argv[1], str_of(e), have, want);
        if (!off)
            return kv_err_oom(c);
        struct kv_ent *n = kv_at(c->st, off);
        memcpy(n->data + n->klen + have, v->p, v->len);
        n->val = want;
        n->expire_ms = e ? e->expire_ms : 0;
        if (kv_install(c, &f, off) != 0)
            return kv_err_oom(c);
    }
    kv_reply_int(c->out, (long long)(have + v->len));
    return c->txn.full ? kv_err_oom(c) : 0;
}

static void cmd_strlen(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    if (e && e->type != KV_STRING)
        kv_err_type(c);
    else
        kv_reply_int(c->out, e ? (long long)e->val : 0);
}

static int incr_by(struct kv_ctx *c, long long by)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    long long v = 0;
    if (e && e->type != KV_STRING) {
        kv_err_type(c);
        return 0;
    }
    if (e && !kv_parse_ll(str_of(e), e->val, &v)) {
        kv_err_int(c);
        return 0;
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        kv_reply_error(c->out, "ERR increment or decrement would overflow");
        return 0;
    }
    v += by;
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", v);
    if (e && sizeof(struct kv_ent) + e->klen + (size_t)n <= kv_block_room(c->st, f.off)) {
        kv_put_bytes(&c->txn, e->data + e->klen, text, (size_t)n);
        kv_put(&c->txn, &e->val, (uint64_t)n);
    } else {
        if (!kv_room_for_write(c))
            return kv_err_oom(c);
        /* Room for any 64-bit value: later increments stay in place. */
        uint64_t off = new_string(c, &f, &c->argv[1], text, (size_t)n, 20);
        if (!off)
            return kv_err_oom(c);
        ((struct kv_ent *)kv_at(c->st, off))->expire_ms = e ? e->expire_ms : 0;
        if (kv_install(c, &f, off) != 0)
            return kv_err_oom(c);
    }
    kv_reply_int(c->out, v);
    return c->txn.full ? kv_err_oom(c) : 0;
}

static int cmd_incr(struct kv_ctx *c)
{
    return incr_by(c, 1);
}

static int cmd_decr(struct kv_ctx *c)
{
    return incr_by(c, -1);
}

static int cmd_incrby(struct kv_ctx *c)
{
    long long by;
    if (!kv_arg_ll(&c->argv[2], &by)) {
        kv_err_int(c);
        return 0;
    }
    return incr_by(c, by);
}

static int cmd_decrby(struct kv_ctx *c)
{
    long long by;
    if (!kv_arg_ll(&c->argv[2], &by)) {
        kv_err_int(c);
        return 0;
    }
    if (by == LLONG_MIN) {
        kv_reply_error(c->out, "ERR decrement would overflow");
        return 0;
    }
    return incr_by(c, -by);
}

/* ---- keys ------------------------------------------------------------------ */

static int cmd_del(struct kv_ctx *c)
{
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++) {
        struct kv_found f;
        if (kv_lookup(c, &c->argv[i], &f)) {
            kv_drop(c, f.stripe, f.link, f.off);
            n++;
        }
    }
    if (c->txn.full)
        return kv_err_oom(c);
    kv_reply_int(c->out, n);
    return 0;
}

static void cmd_exists(struct kv_ctx *c)
{
    long long n = 0;
    for (size_t i = 1; i < c->argc; i++) {
        struct kv_found f;
        if (kv_lookup(c, &c->argv[i], &f))
            n++;
    }
    kv_reply_int(c->out, n);
}

/* EXPIRE/PEXPIRE key time [NX|XX|GT|LT]. The options are checked before
 * the time, as redis-server does. */
static int expire_generic(struct kv_ctx *c, bool ms, bool at, const char *name)
{
    bool nx = false, xx = false, gt = false, lt = false;
    for (size_t i = 3; i < c->argc; i++) {
        if (kv_opt_is(&c->argv[i], "nx"))
            nx = true;
        else if (kv_opt_is(&c->argv[i], "xx"))
            xx = true;
        else if (kv_opt_is(&c->argv[i], "gt"))
            gt = true;
        else if (kv_opt_is(&c->argv[i], "lt"))
            lt = true;
        else {
            kv_reply_error(c->out, "ERR Unsupported option %.*s", (int)c->argv[i].len,
                           c->argv[i].p);
            return 0;
        }
    }
    if (nx && (xx || gt || lt)) {
        kv_reply_error(c->out,
                       "ERR NX and XX, GT or LT options at the same time are not compatible");
        return 0;
    }
    if (gt && lt) {
        kv_reply_error(c->out, "ERR GT and LT options at the same time are not compatible");
        return 0;
    }
    long long v;
    if (!kv_arg_ll(&c->argv[2], &v)) {
        kv_err_int(c);
        return 0;
    }
    if ((!ms && (v > LLONG_MAX / 1000 || v < LLONG_MIN / 1000))) {
        kv_reply_error(c->out, "ERR invalid expire time in '%s' command", name);
        return 0;
    }
    long long msv = ms ? v : v * 1000;
    if (!at && msv > 0 && msv > LLONG_MAX - c->now_ms) {
        kv_reply_error(c->out, "ERR invalid expire time in '%s' command", name);
        return 0;
    }
    int64_t when = at ? msv : c->now_ms + msv;
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    if (!e) {
        kv_reply_int(c->out, 0);
        return 0;
    }
    int64_t cur = e->expire_ms; /* 0: never, which counts as infinite */
    if ((nx && cur) || (xx && !cur) || (gt && (!cur || when <= cur)) ||
        (lt && cur && when >= cur)) {
        kv_reply_int(c->out, 0);
        return 0;
    }
    char num[24];
    struct resp_arg w[3] = {word("DEL"), c->argv[1]};
    if (when <= c->now_ms && !c->loading) {
        kv_drop(c, f.stripe, f.link, f.off);
        kv_aof_words(c, 2, w);
    } else {
        struct kv_stripe *s = kv_stripe_of(c->st, f.stripe);
        if (!cur)
            kv_put(&c->txn, &s->nexpires, s->nexpires + 1);
        kv_put(&c->txn, (uint64_t *)&e->expire_ms, (uint64_t)when);
        w[0] = word("PEXPIREAT");
        w[2] = (struct resp_arg){num, (size_t)snprintf(num, sizeof num, "%lld", (long long)when)};
        kv_aof_words(c, 3, w);
    }
    c->aof_written = true;
    kv_reply_int(c->out, 1);
    return c->txn.full ? kv_err_oom(c) : 0;
}

static int cmd_expire(struct kv_ctx *c)
{
    return expire_generic(c, false, false, "expire");
}

static int cmd_pexpire(struct kv_ctx *c)
{
    return expire_generic(c, true, false, "pexpire");
}

static int cmd_expireat(struct kv_ctx *c)
{
    return expire_generic(c, false, true, "expireat");
}

static int cmd_pexpireat(struct kv_ctx *c)
{
    return expire_generic(c, true, true, "pexpireat");
}

static void ttl_generic(struct kv_ctx *c, bool ms)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    if (!e)
        kv_reply_int(c->out, -2);
    else if (!e->expire_ms)
        kv_reply_int(c->out, -1);
    else {
        long long left = e->expire_ms - c->now_ms;
        kv_reply_int(c->out, ms ? left : (left + 500) / 1000);
    }
}

static void cmd_ttl(struct kv_ctx *c)
{
    ttl_generic(c, false);
}

static void cmd_pttl(struct kv_ctx *c)
{
    ttl_generic(c, true);
}

static int cmd_persist(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    if (!e || !e->expire_ms) {
        kv_reply_int(c->out, 0);
        return 0;
    }
    struct kv_stripe *s = kv_stripe_of(c->st, f.stripe);
    kv_put(&c->txn, &s->nexpires, s->nexpires - 1);
    kv_put(&c->txn, (uint64_t *)&e->expire_ms, 0);
    kv_reply_int(c->out, 1);
    return c->txn.full ? kv_err_oom(c) : 0;
}

static const char *type_name(uint32_t type)
{
    switch (type) {
    case KV_STRING:
        return "string";
    case KV_LIST:
        return "list";
    case KV_HASH:
        return "hash";
    case KV_SET:
        return "set";
    default:
        return "none";
    }
}

static void cmd_type(struct kv_ctx *c)
{
    struct kv_found f;
    struct kv_ent *e = kv_lookup(c, &c->argv[1], &f);
    kv_reply_simple(c->out, e ? type_name(e->type) : "none");
}

/* ---- the whole keyspace ------------------------------------------------------ */

/* Runs fn on each stripe in turn, each under its lock (a transaction that
 * changes nothing). -1 if a lock could not be had (the reply says so). */
static int each_stripe(struct kv_ctx *c, int (*fn)(struct kv_ctx *c, unsigned i, void *arg),
                       void *arg, unsigned from)
{
    for (unsigned i = from; i < KV_STRIPES; i++) {
        struct kv_txn t;
        int err;
        /* Inside an EXEC, the transaction holds every stripe already. */
        bool held = c->in_txn && (c->txn.set & ((uint64_t)1 << i));
        if (!held && kv_txn_begin(&t, c->st, (uint64_t)1 << i, c->slot, &err) != 0) {
            kv_reply_error(c->out, "ERR the table is busy (%s)", strerror(-err));
            return -1;
        }
        int rc = fn(c, i, arg);
        if (!held)
            kv_txn_commit(&t);
        if (rc)
            return rc > 0 ? 0 : rc;
    }
    return 0;
}

struct keys_walk {
    struct kv_ctx *c;
    const struct resp_arg *pattern;
    struct kv_out keys;
    long long n;
};

static int keys_one(void *arg, struct kv_ent *e)
{
    struct keys_walk *w = arg;
    if (e->expire_ms && e->expire_ms <= w->c->now_ms)
        return 0;
    if (w->pattern && !kv_glob(w->pattern->p, w->pattern->len, e->data, e->klen, false))
        return 0;
    kv_reply_bulk(&w->keys, e->data, e->klen);
    w->n++;
    return w->keys.failed ? -1 : 0;
}

static int keys_stripe(struct kv_ctx *c, unsigned i, void *arg)
{
    return kv_dict_each(c->st, &kv_stripe_of(c->st, i)->keys, keys_one, arg) ? -1 : 0;
}

static void cmd_keys(struct kv_ctx *c)
{
    bool all = c->argv[1].len == 1 && c->argv[1].p[0] == '*';
    struct keys_walk w = {.c = c, .pattern = all ? NULL : &c->argv[1]};
    if (each_stripe(c, keys_stripe, &w, 0) == 0) {
        kv_reply_array(c->out, w.n);
        kv_reply_raw(c->out, w.keys.p, w.keys.len);
    } else if (w.keys.failed) {
        kv_reply_error(c->out, "ERR out of memory");
    }
    free(w.keys.p);
}

static int dbsize_stripe(struct kv_ctx *c, unsigned i, void *arg)
{
    *(long long *)arg += (long long)kv_stripe_of(c->st, i)->keys.used;
    return 0;
}

static void cmd_dbsize(struct kv_ctx *c)
{
    long long n = 0;
    if (each_stripe(c, dbsize_stripe, &n, 0) == 0)
        kv_reply_int(c->out, n);
}

/* SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]. The cursor is the next
 * bucket times KV_STRIPES plus the stripe: no larger than Redis's for a
 * table of the same size (clients that hold a cursor as a double or a
 * signed 64-bit number lose nothing), and 0 only at the start and the
 * end. A dictionary only ever doubles, and bucket b of a table spreads
 * over b and b + size of the next, so walking buckets upward misses
 * nothing present all along. */
struct scan_walk {
    struct kv_ctx *c;
    const struct resp_arg *pattern, *type;
    struct kv_out keys;
    long long n;
};

static void scan_bucket(struct scan_walk *w, uint64_t e)
{
    struct kv_store *st = w->c->st;
    for (; e; e = ((struct kv_ent *)kv_at(st, e))->next) {
        struct kv_ent *ent = kv_at(st, e);
        if (ent->expire_ms && ent->expire_ms <= w->c->now_ms)
            continue;
        if (w->pattern && !kv_glob(w->pattern->p, w->pattern->len, ent->data, ent->klen, false))
            continue;
        if (w->type && !kv_opt_is(w->type, type_name(ent->type)))
            continue;
        kv_reply_bulk(&w->keys, ent->data, ent->klen);
        w->n++;
    }
}

/* A cursor as redis-server reads it, with strtoul: up to a NUL byte, no
 * leading blank, an optional sign (a minus wraps around), then digits and
 * nothing else, within 64 bits; an empty cursor is 0. */
static bool parse_cursor(const struct resp_arg *a, uint64_t *cursor)
{
    size_t len = strnlen(a->p, a->len), i = 0;
    if (len > 0 && (a->p[0] == ' ' || (a->p[0] >= '\t' && a->p[0] <= '\r')))
        return false;
    bool negative = false;
    if (len > 0 && (a->p[0] == '-' || a->p[0] == '+')) {
        if (len == 1)
            return false; /* a sign and no digit */
        negative = a->p[0] == '-';
        i = 1;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        unsigned d = (unsigned)(a->p[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *cursor = negative ? -v : v;
    return true;
}

static void cmd_scan(struct kv_ctx *c)
{
    uint64_t cursor = 0;
    if (!parse_cursor(&c->argv[1], &cursor)) {
        kv_reply_error(c->out, "ERR invalid cursor");
        return;
    }
    long long count = 10;
    struct scan_walk w = {.c = c};
    for (size_t i = 2; i < c->argc; i++) {
        if (i + 1 >= c->argc) {
            kv_err_syntax(c);
            return;
        }
        if (kv_opt_is(&c->argv[i], "match"))
            w.pattern = &c->argv[++i];
        else if (kv_opt_is(&c->argv[i], "count")) {
            if (!kv_arg_ll(&c->argv[++i], &count)) {
                kv_err_int(c);
                return;
            }
            if (count < 1) {
                kv_err_syntax(c);
                return;
            }
        } else if (kv_opt_is(&c->argv[i], "type"))
            w.type = &c->argv[++i];
        else {
            kv_err_syntax(c);
            return;
        }
    }
    if (w.pattern && w.pattern->len == 1 && w.pattern->p[0] == '*')
        w.pattern = NULL;
    unsigned stripe = (unsigned)(cursor % KV_STRIPES);
    uint64_t bucket = cursor / KV_STRIPES;
    long long visited = 0;
    while (stripe < KV_STRIPES && visited < count) {
        struct kv_txn t;
        int err;
        bool held = c->in_txn && (c->txn.set & ((uint64_t)1 << stripe));
        if (!held && kv_txn_begin(&t, c->st, (uint64_t)1 << stripe, c->slot, &err) != 0) {
            kv_reply_error(c->out, "ERR the table is busy (%s)", strerror(-err));
            free(w.keys.p);
            return;
        }
        struct kv_dict *d = &kv_stripe_of(c->st, stripe)->keys;
        /* The larger table while growing: its buckets cover the smaller's. */
        int k = d->rehash != KV_NONE ? 1 : 0;
        uint64_t size = d->table[k] ? d->size[k] : 0;
        while (bucket < size && visited < count) {
            scan_bucket(&w, ((uint64_t *)kv_at(c->st, d->table[k]))[bucket]);
            if (k == 1) {
                /* Entries not moved yet: bucket b of the old table holds
                 * what goes to b and b + size0 of the new one. */
                uint64_t b0 = bucket & (d->size[0] - 1);
                if (b0 >= d->rehash && bucket < d->size[0])
                    scan_bucket(&w, ((uint64_t *)kv_at(c->st, d->table[0]))[b0]);
            }
            bucket++;
            visited++;
        }
        if (!held)
            kv_txn_commit(&t);
        if (bucket >= size) {
            stripe++;
            bucket = 0;
        }
    }
    unsigned long long next =
        stripe >= KV_STRIPES ? 0 : (unsigned long long)bucket * KV_STRIPES + stripe;
    char num[24];
    int len = snprintf(num, sizeof num, "%llu", next);
    kv_reply_array(c->out, 2);
    kv_reply_bulk(c->out, num, (size_t)len);
    kv_reply_array(c->out, w.n);
    kv_reply_raw(c->out, w.keys.p, w.keys.len);
    free(w.keys.p);
}

/* FLUSHDB / FLUSHALL [ASYNC|SYNC]: every stripe at once, its heap
 * emptied by resetting its header (a few logged words a stripe). */
static int cmd_flush(struct kv_ctx *c)
{
    if (c->argc > 2 || (c->argc == 2 && !kv_opt_is(&c->argv[1], "async") &&
                        !kv_opt_is(&c->argv[1], "sync"))) {
        kv_err_syntax(c);
        return 0;
    }
    for (unsigned i = 0; i < KV_STRIPES; i++) {
        struct kv_stripe *s = kv_stripe_of(c->st, i);
        kv_put(&c->txn, &s->bump, s->heap_start);
        for (unsigned k = 0; k < KV_CLASSES; k++)
            if (s->free_head[k])
                kv_put(&c->txn, &s->free_head[k], 0);
        kv_put(&c->txn, &s->large_free, 0);
        kv_put(&c->txn, &s->used, 0);
        kv_put(&c->txn, &s->nexpires, 0);
        kv_put(&c->txn, &s->garbage, 0);
        kv_put(&c->txn, &s->ngarbage, 0);
        kv_put(&c->txn, &s->keys.table[0], 0);
        kv_put(&c->txn, &s->keys.table[1], 0);
        kv_put(&c->txn, &s->keys.size[0], 0);
        kv_put(&c->txn, &s->keys.size[1], 0);
        kv_put(&c->txn, &s->keys.used, 0);
        kv_put(&c->txn, &s->keys.rehash, KV_NONE);
    }
    if (c->txn.full)
        return kv_err_oom(c);
    kv_reply_ok(c->out);
    return 0;
}

/* ---- server and connection ------------------------------------------------------ */

static void cmd_ping(struct kv_ctx *c)
{
    if (c->argc > 2)
        kv_reply_error(c->out, "ERR wrong number of arguments for 'ping' command");
    else if (c->argc == 1)
        kv_reply_simple(c->out, "PONG");
    else
        kv_reply_bulk(c->out, c->argv[1].p, c->argv[1].len);
}

static void cmd_echo(struct kv_ctx *c)
{
    kv_reply_bulk(c->out, c->argv[1].p, c->argv[1].len);
}

static void cmd_select(struct kv_ctx *c)
{
    long long db;
    if (!kv_arg_ll(&c->argv[1], &db))
        kv_err_int(c);
    else if (db < INT_MIN || db > INT_MAX) /* as Redis reads it: an int first */
        kv_reply_error(c->out,
                       "ERR value is out of range, value must between -2147483648 and 2147483647");
    else if (db != 0)
        kv_reply_error(c->out, "ERR DB index is out of range");
    else
        kv_reply_ok(c->out);
}

static void cmd_quit(struct kv_ctx *c)
{
    kv_reply_ok(c->out);
}

/* ---- the table ------------------------------------------------------------------ */

#define R KV_CMD_READONLY
#define W KV_CMD_WRITE
#define M KV_CMD_DENYOOM
#define A KV_CMD_ALL
#define N KV_CMD_NOKEY

/* Runs without a transaction: a void handler. */
#define V(fn) .read = fn
#define X(fn) .write = fn

const struct kv_command kv_commands[] = {
    {"get", 2, R, 1, 1, 1, V(cmd_get)},
    {"set", -3, W | M, 1, 1, 1, X(cmd_set)},
    {"getset", 3, W | M, 1, 1, 1, X(cmd_getset)},
    {"mget", -2, R, 1, -1, 1, V(cmd_mget)},
    {"mset", -3, W | M, 1, -1, 2, X(cmd_mset)},
    {"append", 3, W | M, 1, 1, 1, X(cmd_append)},
    {"strlen", 2, R, 1, 1, 1, V(cmd_strlen)},
    {"incr", 2, W | M, 1, 1, 1, X(cmd_incr)},
    {"decr", 2, W | M, 1, 1, 1, X(cmd_decr)},
    {"incrby", 3, W | M, 1, 1, 1, X(cmd_incrby)},
    {"decrby", 3, W | M, 1, 1, 1, X(cmd_decrby)},
    {"del", -2, W, 1, -1, 1, X(cmd_del)},
    {"exists", -2, R, 1, -1, 1, V(cmd_exists)},
    {"expire", -3, W, 1, 1, 1, X(cmd_expire)},
    {"pexpire", -3, W, 1, 1, 1, X(cmd_pexpire)},
    {"expireat", -3, W, 1, 1, 1, X(cmd_expireat)},
    {"pexpireat", -3, W, 1, 1, 1, X(cmd_pexpireat)},
    {"ttl", 2, R, 1, 1, 1, V(cmd_ttl)},
    {"pttl", 2, R, 1, 1, 1, V(cmd_pttl)},
    {"persist", 2, W, 1, 1, 1, X(cmd_persist)},
    {"type", 2, R, 1, 1, 1, V(cmd_type)},
    {"keys", 2, R | N, 0, 0, 0, V(cmd_keys)},
    {"scan", -2, R | N, 0, 0, 0, V(cmd_scan)},
    {"dbsize", 1, R | N, 0, 0, 0, V(cmd_dbsize)},
    {"flushdb", -1, W | A, 0, 0, 0, X(cmd_flush)},
    {"flushall", -1, W | A, 0, 0, 0, X(cmd_flush)},
    {"lpush", -3, W | M, 1, 1, 1, X(kv_cmd_lpush)},
    {"rpush", -3, W | M, 1, 1, 1, X(kv_cmd_rpush)},
    {"lpop", -2, W, 1, 1, 1, X(kv_cmd_lpop)},
    {"rpop", -2, W, 1, 1, 1, X(kv_cmd_rpop)},
    {"llen", 2, R, 1, 1, 1, V(kv_cmd_llen)},
    {"lrange", 4, R, 1, 1, 1, V(kv_cmd_lrange)},
    {"lindex", 3, R, 1, 1, 1, V(kv_cmd_lindex)},
    {"hset", -4, W | M, 1, 1, 1, X(kv_cmd_hset)},
    {"hget", 3, R, 1, 1, 1, V(kv_cmd_hget)},
    {"hdel", -3, W, 1, 1, 1, X(kv_cmd_hdel)},
    {"hgetall", 2, R, 1, 1, 1, V(kv_cmd_hgetall)},
    {"hlen", 2, R, 1, 1, 1, V(kv_cmd_hlen)},
    {"hexists", 3, R, 1, 1, 1, V(kv_cmd_hexists)},
    {"hincrby", 4, W | M, 1, 1, 1, X(kv_cmd_hincrby)},
    {"sadd", -3, W | M, 1, 1, 1, X(kv_cmd_sadd)},
    {"srem", -3, W, 1, 1, 1, X(kv_cmd_srem)},
    {"smembers", 2, R, 1, 1, 1, V(kv_cmd_smembers)},
    {"sismember", 3, R, 1, 1, 1, V(kv_cmd_sismember)},
    {"scard", 2, R, 1, 1, 1, V(kv_cmd_scard)},
    {"spop", -2, W, 1, 1, 1, X(kv_cmd_spop)},
    {"ping", -1, R | N, 0, 0, 0, V(cmd_ping)},
    {"echo", 2, R | N, 0, 0, 0, V(cmd_echo)},
    {"select", 2, R | N, 0, 0, 0, V(cmd_select)},
    {"quit", -1, R | N, 0, 0, 0, V(cmd_quit)},
    {"info", -1, R | N, 0, 0, 0, V(kv_cmd_info)},
    {"config", -2, R | N, 0, 0, 0, V(kv_cmd_config)},
    {"command", -1, R | N, 0, 0, 0, V(kv_cmd_command)},
};

const size_t kv_ncommands = sizeof kv_commands / sizeof kv_commands[0];

const struct kv_command *kv_command_find(const struct resp_arg *name)
{
    if (name->len == 0 || name->len > 16)
        return NULL;
    /* Names are lower case: the first letter rules out nearly all of
     * them before a comparison (this runs for every command, twice). */
    char first = (char)(name->p[0] | 0x20);
    for (size_t i = 0; i < kv_ncommands; i++) {
        const struct kv_command *k = &kv_commands[i];
        if (k->name[0] == first && strlen(k->name) == name->len &&
            strncasecmp(k->name, name->p, name->len) == 0)
            return k;
    }
    return NULL;
}

bool kv_is_quit(const struct resp_arg *name)
{
    return kv_arg_is(name, "quit");
}

/* The stripes of the command's keys. */
static uint64_t key_stripes(const struct kv_command *k, const struct resp_arg *argv, size_t argc,
                            const struct kv_store *st)
{
    if (k->flags & KV_CMD_ALL)
        return ~(uint64_t)0;
    uint64_t set = 0;
    size_t last = k->last < 0 ? argc - 1 : (size_t)k->last;
    for (size_t i = (size_t)k->first; k->first > 0 && i <= last && i < argc; i += (size_t)k->step)
        set |= (uint64_t)1 << kv_stripe_for(kv_hash(st, argv[i].p, argv[i].len));
    return set;
}

/* Redis's words: the name and the first arguments, quoted, each cut so
 * that the arguments take about 128 bytes (a NUL byte ends one too). */
static void unknown(struct kv_ctx *c)
{
    char args[256] = "";
    size_t at = 0;
    for (size_t i = 1; i < c->argc && at < 128; i++) {
        size_t room = 128 - at, len = c->argv[i].len < room ? c->argv[i].len : room;
        int n = snprintf(args + at, sizeof args - at, "'%.*s' ", (int)len, c->argv[i].p);
        if (n < 0 || (size_t)n >= sizeof args - at)
            break;
        at += (size_t)n;
    }
    kv_reply_error(c->out, "ERR unknown command '%.*s', with args beginning with: %s",
                   (int)(c->argv[0].len > 128 ? 128 : c->argv[0].len), c->argv[0].p, args);
}

bool kv_is_denyoom(const struct resp_arg *name)
{
    const struct kv_command *k = kv_command_find(name);
    return k && (k->flags & KV_CMD_DENYOOM);
}

bool kv_is_multi(const struct resp_arg *name)
{
    return kv_arg_is(name, "multi");
}

bool kv_is_exec(const struct resp_arg *name)
{
    return kv_arg_is(name, "exec");
}

bool kv_is_discard(const struct resp_arg *name)
{
    return kv_arg_is(name, "discard");
}

const char *kv_queue_check(const struct resp_arg *argv, size_t argc, char *buf, size_t len)
{
    struct kv_out out = {0};
    struct kv_ctx c = {.argv = argv, .argc = argc, .out = &out};
    const struct kv_command *k = kv_command_find(&argv[0]);
    if (!k)
        unknown(&c);
    else if ((k->arity > 0 && argc != (size_t)k->arity) || (k->arity < 0 && argc < (size_t)-k->arity))
        kv_reply_error(&out, "ERR wrong number of arguments for '%s' command", k->name);
    else if (argc >= 2)
        kv_subcommand_check(&c);
    if (out.len == 0)
        return "";
    /* "-text\r\n" to "text". */
    size_t n = out.len >= 3 ? out.len - 3 : 0;
    if (n >= len)
        n = len - 1;
    memcpy(buf, out.p + 1, n);
    buf[n] = '\0';
    free(out.p);
    return buf;
}

/* Whether a keyless command reads the whole keyspace (an EXEC holding it
 * must hold every stripe). */
static bool whole_keyspace(const struct kv_command *k)
{
    return (k->flags & KV_CMD_ALL) || k->read == cmd_keys || k->read == cmd_scan ||
           k->read == cmd_dbsize;
}

int kv_exec(struct kv_ctx *c, struct resp_parser *parser, const char *p, size_t len, uint32_t n)
{
    c->in_txn = false;
    uint64_t set = 0;
    const char *q = p;
    size_t left = len;
    for (uint32_t i = 0; i < n; i++) {
        size_t need;
        const char *err;
        ssize_t m = resp_parse(parser, q, left, &need, &err);
        if (m <= 0)
            break;
        q += m;
        left -= (size_t)m;
        const struct kv_command *k = parser->argc ? kv_command_find(&parser->argv[0]) : NULL;
        if (!k)
            continue;
        if (whole_keyspace(k))
            set = ~(uint64_t)0;
        else if (!(k->flags & KV_CMD_NOKEY))
            set |= key_stripes(k, parser->argv, parser->argc, c->st);
    }
    if (set) {
        int err;
        if (kv_txn_begin(&c->txn, c->st, set, c->slot, &err) != 0) {
            kv_reply_error(c->out, "ERR the table is busy (%s)", strerror(-err));
            return 0;
        }
        c->in_txn = true;
    }
    c->exec = true;
    kv_reply_array(c->out, n);
    q = p;
    left = len;
    for (uint32_t i = 0; i < n; i++) {
        size_t need;
        const char *err;
        ssize_t m = resp_parse(parser, q, left, &need, &err);
        if (m <= 0) {
            kv_reply_error(c->out, "ERR the queued command could not be read");
            continue;
        }
        q += m;
        left -= (size_t)m;
        c->argv = parser->argv;
        c->argc = parser->argc;
        const struct kv_command *k = c->argc ? kv_command_find(&c->argv[0]) : NULL;
        if (!k || (k->arity > 0 && c->argc != (size_t)k->arity) ||
            (k->arity < 0 && c->argc < (size_t)-k->arity)) {
            kv_reply_error(c->out, "ERR the queued command is not one walls-kv runs");
            continue;
        }
        uint64_t mark = c->in_txn ? kv_txn_mark(&c->txn) : 0;
        size_t aof_mark = c->aof ? c->aof->len : 0;
        c->aof_written = false;
        c->reply_mark = c->out->len;
        int rc = 0;
        if (k->read)
            k->read(c);
        else
            rc = k->write(c);
        /* A read that filled the log (deleting an expired key as it
         * looked) has no reply but the error either. */
        if (rc == 0 && c->in_txn && c->txn.full)
            rc = kv_err_oom(c);
        bool changed = c->in_txn && c->txn.h->log_n > mark;
        if (rc != 0 || (c->in_txn && c->txn.full)) {
            /* This command alone is undone; its error is its reply. */
            if (c->in_txn)
                kv_txn_undo_to(&c->txn, mark);
            if (c->aof)
                c->aof->len = aof_mark;
            continue;
        }
        if (c->aof && changed && (k->flags & KV_CMD_WRITE) && !c->aof_written)
            kv_aof_words(c, (int)c->argc, c->argv);
    }
    c->aof_written = true; /* the record is built: every command's own */
    return 0;
}

int kv_run(struct kv_ctx *c)
{
    c->in_txn = false;
    c->reply_mark = c->out->len;
    if (c->argc == 0)
        return 0;
    const struct kv_command *k = kv_command_find(&c->argv[0]);
    if (!k) {
        unknown(c);
        return 0;
    }
    if ((k->arity > 0 && c->argc != (size_t)k->arity) ||
        (k->arity < 0 && c->argc < (size_t)-k->arity)) {
        char name[24];
        size_t n = strlen(k->name);
        memcpy(name, k->name, n + 1);
        kv_reply_error(c->out, "ERR wrong number of arguments for '%s' command", name);
        return 0;
    }
    if ((k->flags & KV_CMD_NOKEY) && !(k->flags & KV_CMD_ALL)) {
        k->read(c);
        return 0;
    }
    uint64_t set = key_stripes(k, c->argv, c->argc, c->st);
    if (!set) {
        kv_reply_error(c->out, "ERR wrong number of arguments for '%s' command", k->name);
        return 0;
    }
    if (k->flags & KV_CMD_DENYOOM) {
        /* Deleted collections not freed yet go before any live key is
         * evicted, or the write refused: a bounded amount, though. */
        for (unsigned round = 0; round < 256 && kv_over_maxmemory(c->st) && kv_collect(c->st);
             round++) {
        }
        kv_evict_before(c);
        if (kv_over_maxmemory(c->st)) {
            kv_reply_error(c->out, "OOM command not allowed when used memory > 'maxmemory'.");
            return 0;
        }
    }
    int err;
    if (kv_txn_begin(&c->txn, c->st, set, c->slot, &err) != 0) {
        kv_reply_error(c->out, "ERR the table is busy (%s)", strerror(-err));
        return 0;
    }
    c->in_txn = true;
    if (k->read) {
        k->read(c);
        return c->txn.full ? kv_err_oom(c) : 0;
    }
    return k->write(c);
}
