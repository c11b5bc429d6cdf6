/*
 * kv.h - what walls-kv's pieces share: the command layer that runs in the
 * backends (commands.c, types.c), the batch task (backend.c), and the
 * settings the front fixes at start.
 *
 * A task carries the batches of pipelined commands of one or more
 * connections, as the clients sent them (RESP), each behind a small
 * header; the backend runs each batch's commands in order, each in its own
 * transaction, and writes their replies to the connection's reply slot
 * (store.h).
 */
#ifndef KV_KV_H
#define KV_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resp.h"
#include "store.h"
#include "walls.h"

#define KV_BATCH_MAX 1024u          /* commands in one task */
#define KV_OUT_MAX (RESP_MAX_BULK + 4096) /* a reply too big for a slot, in the task's output */

/* The front's settings and counters the backends read (INFO, CONFIG GET):
 * in the region's header page, after struct kv_header. */
struct kv_info {
    char bind[64];
    char dir[256];
    char appendfsync[16];
    char policy[24];
    uint64_t port;
    uint64_t appendonly;
    uint64_t backends;
    uint64_t threads;
    uint64_t pid;
    uint64_t started_ms;        /* CLOCK_REALTIME */
    uint64_t started_mono_ms;   /* CLOCK_MONOTONIC */
    uint64_t clients;           /* connected now (the front's atomic adds) */
    uint64_t connections;       /* accepted since start */
    uint64_t rejected;
    uint64_t backend_deaths;
    uint64_t aof_size;
    uint64_t maxclients;
};

_Static_assert(((sizeof(struct kv_header) + 63) & ~(size_t)63) + sizeof(struct kv_info) <= 4096,
               "the header and struct kv_info share the region's first page");

static inline struct kv_info *kv_info_of(const struct kv_store *st)
{
    return (struct kv_info *)(st->base + ((sizeof(struct kv_header) + 63) & ~(size_t)63));
}

/* A task's input: this header, then for each connection an entry and its
 * commands' bytes (len of them). */
struct kv_group_head {
    uint32_t nentries;
    uint32_t pad;
};

struct kv_entry {
    uint64_t slot;
    uint64_t seq;
    uint32_t ncmds;
    uint32_t len;
    uint32_t flags;   /* KV_ENTRY_EXEC: the commands are a MULTI's, run as one */
    uint32_t pad;
};

#define KV_ENTRY_EXEC 1u

/* A growable reply buffer, private to the process. */
struct kv_out {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory: the reply is incomplete */
};

/* One command as the command layer runs it. */
struct kv_ctx {
    struct kv_store *st;
    struct kv_slot *slot;        /* NULL outside a task (tests, the fuzz target) */
    struct kv_txn txn;
    bool in_txn;
    const struct resp_arg *argv;
    size_t argc;
    struct kv_out *out;
    int64_t now_ms;              /* CLOCK_REALTIME */
    /* Replaying the append-only file: nothing expires (as Redis, which
     * expires nothing while it loads). A key's expiry that passed while
     * the server was down then takes effect after the load, and one that
     * a command met while the server ran is in the file as the DEL that
     * command recorded. */
    bool loading;
    /* The append-only file: what the command's record says (NULL: none
     * kept). Evictions put their DELs here; a command whose effect its
     * own words do not fix (relative times, random picks) writes its
     * record itself and sets aof_written; otherwise the backend writes
     * the command as it came. */
    struct kv_out *aof;
    bool aof_written;
    uint64_t aof_end;   /* the ring position past its record, once written */
    bool exec;          /* an EXEC: its record holds every command that changed something */
    size_t reply_mark;  /* out's length when the command began: one that fails midway
                         * (kv_err_oom) answers with its error alone, not with the part
                         * of its reply written before */
    bool lazy;          /* a deleted collection of more than KV_LAZY_MIN elements goes
                         * to its stripe's garbage, freed later (kv_gc), not at once */
};

/* EXEC: the n queued commands in p[0, len), run in one transaction over
 * every stripe they name (all of them for a command that looks at the
 * whole keyspace), their replies as one array. A command that fails
 * midway has its own changes undone; the others stand, as in Redis.
 * Returns as kv_run does. */
int kv_exec(struct kv_ctx *c, struct resp_parser *parser, const char *p, size_t len, uint32_t n);
/* Whether a command name is one the front keeps for a transaction. */
bool kv_is_multi(const struct resp_arg *name);
bool kv_is_exec(const struct resp_arg *name);
bool kv_is_discard(const struct resp_arg *name);
/* A connection as CLIENT and HELLO see it (client.c): the front's. */
struct kv_client {
    uint64_t id;     /* CLIENT ID: 1, 2, ... in the order connections came */
    char *name;      /* CLIENT SETNAME's, not NUL-terminated; NULL: none */
    size_t name_len;
    int64_t born_ms; /* CLOCK_MONOTONIC */
    int fd;
};
void kv_client_init(struct kv_client *cl, uint64_t id, int fd);
void kv_client_fini(struct kv_client *cl);
/* Whether a command name is CLIENT or HELLO: the front answers them. */
bool kv_is_client_cmd(const struct resp_arg *name);
/* Answers CLIENT or HELLO (argv[0]) into out, as redis-server 7.0 does;
 * inside a MULTI (in_multi) with an error, since they cannot be queued. */
void kv_client_cmd(struct kv_client *cl, const struct resp_arg *argv, size_t argc, bool in_multi,
                   struct kv_out *out);
/* Whether a command may grow the table: refused over --maxmemory. */
bool kv_is_denyoom(const struct resp_arg *name);
/* "" if argv can be queued in a MULTI, else the error Redis gives. */
const char *kv_queue_check(const struct resp_arg *argv, size_t argc, char *buf, size_t len);

/* Appends a command (argc words) to c->aof in RESP. */
void kv_aof_words(struct kv_ctx *c, int argc, const struct resp_arg *argv);

/* Runs argv: the reply goes to c->out. Returns 0 with the transaction (if
 * one was begun: c->in_txn) still open for the caller to commit, or -1
 * when it must be aborted (its error reply is written). */
int kv_run(struct kv_ctx *c);
/* Whether a command name is QUIT (the front closes after its batch). */
bool kv_is_quit(const struct resp_arg *name);

/* Reply writers into c->out. */
void kv_reply_raw(struct kv_out *o, const void *p, size_t len);
void kv_reply_ok(struct kv_out *o);
void kv_reply_simple(struct kv_out *o, const char *s);
void kv_reply_error(struct kv_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kv_reply_int(struct kv_out *o, long long v);
void kv_reply_bulk(struct kv_out *o, const void *p, size_t len);
void kv_reply_null(struct kv_out *o);
void kv_reply_array(struct kv_out *o, long long n);

/* The batch task (backend.c). */
int kv_backend(struct walls_call *call);

/* Glob matching as KEYS and SCAN MATCH do it. */
bool kv_glob(const char *pat, size_t plen, const char *s, size_t slen, bool nocase);

#endif
