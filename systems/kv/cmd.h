/*
 * cmd.h - the command layer's own header: the command table's shape and
 * the helpers commands.c, types.c and server.c share.
 */
#ifndef KV_CMD_H
#define KV_CMD_H

#include "kv.h"

enum {
    KV_CMD_READONLY = 1 << 0,
    KV_CMD_WRITE = 1 << 1,
    KV_CMD_DENYOOM = 1 << 2, /* refused over maxmemory */
    KV_CMD_NOKEY = 1 << 3,   /* takes no key: runs outside a transaction */
    KV_CMD_ALL = 1 << 4,     /* takes every stripe */
};

struct kv_command {
    const char *name;
    int arity;               /* as Redis: negative = at least that many */
    unsigned flags;
    int first, last, step;   /* key positions; last -1 = to the end */
    void (*read)(struct kv_ctx *c);
    int (*write)(struct kv_ctx *c); /* 0, or -1 to abort (error written) */
};

extern const struct kv_command kv_commands[];
extern const size_t kv_ncommands;
const struct kv_command *kv_command_find(const struct resp_arg *name);

/* Where a key is, or would go. */
struct kv_found {
    uint64_t hash;
    unsigned stripe;
    uint64_t off;   /* the entry; 0 = absent */
    uint64_t *link; /* what points at it (valid when off != 0) */
};

/* Whether a is word, whatever its case. kv_arg_is compares every byte:
 * for the names Redis looks up in a table (commands, subcommands, CONFIG
 * parameters), where "get\0" is not "get". kv_opt_is stops at a NUL byte,
 * as Redis's strcasecmp on an option word does: there "nx\0..." is NX. */
bool kv_arg_is(const struct resp_arg *a, const char *word);
bool kv_opt_is(const struct resp_arg *a, const char *word);
bool kv_arg_ll(const struct resp_arg *a, long long *v);
bool kv_parse_ll(const char *s, size_t len, long long *v);
void kv_err_int(struct kv_ctx *c);
void kv_err_type(struct kv_ctx *c);
void kv_err_syntax(struct kv_ctx *c);
int kv_err_oom(struct kv_ctx *c); /* writes the OOM error; returns -1 */

/* The live entry of key (an expired one is deleted), or NULL; f says
 * where it is or would go. */
struct kv_ent *kv_lookup(struct kv_ctx *c, const struct resp_arg *key, struct kv_found *f);
uint64_t kv_new_entry(struct kv_ctx *c, const struct kv_found *f, const struct resp_arg *key,
                      uint32_t type, size_t vroom);
int kv_install(struct kv_ctx *c, struct kv_found *f, uint64_t off);
/* Whether vlen value bytes may replace the value of e (a string or a
 * field) in its own block: they fit, and are few enough that logging the
 * old words first costs less than a new block (a large value goes to a
 * fresh block, written without the log). */
bool kv_fits_in_place(const struct kv_ctx *c, const struct kv_ent *e, size_t vlen);
void kv_drop(struct kv_ctx *c, unsigned stripe, uint64_t *link, uint64_t off);
/* Frees what a table entry's value owns (a list's nodes, a hash's fields). */
/* Frees the value of the table entry at off, unlinked already. Returns
 * true when the entry went to the stripe's garbage with its collection
 * (c->lazy, a large one): then the caller must not free the entry. */
bool kv_free_value(struct kv_ctx *c, unsigned stripe, struct kv_ent *e, uint64_t off);
/* Frees up to budget elements of the stripe's garbage in t, which holds
 * the stripe. Returns how many it freed. */
unsigned kv_gc(struct kv_txn *t, unsigned stripe, unsigned budget);
/* Frees up to KV_GC_BUDGET elements of each stripe's garbage, each in a
 * transaction of its own (a backend after each task, the replay of the
 * append-only file after each command): one load when there is none (the
 * header's garbage_stripes). Returns whether it freed anything. */
bool kv_collect(struct kv_store *st);
#define KV_LAZY_MIN 64   /* elements of a collection freed at once when deleted */
#define KV_GC_BUDGET 2048 /* elements freed a stripe after each task */
bool kv_room_for_write(struct kv_ctx *c);
/* allkeys-lru: evicts from the stripes held until over bytes are freed
 * or nothing is left to evict there. inside: from within a command, which
 * may hold entries it looked up (their lru is now_ms): those are spared. */
bool kv_evict(struct kv_ctx *c, uint64_t over, bool inside);
/* The same before a write, from any stripe, none held yet. */
void kv_evict_before(struct kv_ctx *c);
/* Whether the table holds more than --maxmemory (none: never). As Redis,
 * a command that may grow it (KV_CMD_DENYOOM) is then refused with OOM
 * before it runs, after eviction had its turn, whatever key it names. */
bool kv_over_maxmemory(const struct kv_store *st);
/* CONFIG's and COMMAND's subcommand errors, as Redis gives them when such
 * a command is queued in a MULTI: written to c->out, or nothing. */
void kv_subcommand_check(struct kv_ctx *c);

/* types.c */
int kv_cmd_lpush(struct kv_ctx *c);
int kv_cmd_rpush(struct kv_ctx *c);
int kv_cmd_lpop(struct kv_ctx *c);
int kv_cmd_rpop(struct kv_ctx *c);
void kv_cmd_llen(struct kv_ctx *c);
void kv_cmd_lrange(struct kv_ctx *c);
void kv_cmd_lindex(struct kv_ctx *c);
int kv_cmd_hset(struct kv_ctx *c);
void kv_cmd_hget(struct kv_ctx *c);
int kv_cmd_hdel(struct kv_ctx *c);
void kv_cmd_hgetall(struct kv_ctx *c);
void kv_cmd_hlen(struct kv_ctx *c);
void kv_cmd_hexists(struct kv_ctx *c);
int kv_cmd_hincrby(struct kv_ctx *c);
int kv_cmd_sadd(struct kv_ctx *c);
int kv_cmd_srem(struct kv_ctx *c);
void kv_cmd_smembers(struct kv_ctx *c);
void kv_cmd_sismember(struct kv_ctx *c);
void kv_cmd_scard(struct kv_ctx *c);
int kv_cmd_spop(struct kv_ctx *c);

/* server.c: INFO, CONFIG, COMMAND, eviction, glob. */
void kv_cmd_info(struct kv_ctx *c);
void kv_cmd_config(struct kv_ctx *c);
void kv_cmd_command(struct kv_ctx *c);

#endif
