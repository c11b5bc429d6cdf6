/*
 * backend.c - the task a backend process runs: one connection's batch of
 * pipelined commands.
 *
 * Each command runs in its own transaction, and its reply and the slot's
 * progress become part of that transaction, so that they take effect
 * together or not at all. A reply that would overflow the slot ends the
 * batch before its command (the front sends the rest again), unless the
 * slot is still empty: then the reply goes to the task's output, and the
 * batch ends after it.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"

struct backend {
    bool ready;
    struct kv_store st;
    struct resp_parser parser;
    struct kv_out out;
    struct kv_out aof; /* the running command's record */
};

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The append-only file's record of a command that changed the table: its
 * own words unless it wrote a record itself. 0, or -1 if it cannot be
 * kept (too large, or no memory to build it). */
static int record(struct kv_ctx *c)
{
    const struct kv_command *k = c->exec ? NULL : kv_command_find(&c->argv[0]);
    /* A read that deleted expired keys records their DELs alone (put
     * there as it met them); a write its own words after them. */
    bool write = c->exec || (k && (k->flags & KV_CMD_WRITE));
    if (write && !c->aof_written)
        kv_aof_words(c, (int)c->argc, c->argv);
    if (c->aof->failed)
        return -1;
    if (c->aof->len == 0)
        return 0;
    c->aof_end = kv_aof_append(&c->txn, c->aof->p, c->aof->len);
    return c->aof_end ? 0 : -1;
}

/* Application codes of a refused task (never expected from the front). */
enum { BAD_STORE = 1, BAD_BATCH };

/* After command i of a batch ran (rc as kv_run says): its reply into the
 * slot (or the task's output), its record into the ring, the slot's
 * progress into its transaction, which then commits. false: the batch
 * stops here (the front sends the rest again, or the reply was big). */
static bool settle_reply(struct backend *b, struct walls_call *call, struct kv_slot *slot,
                     struct kv_ctx *c, int rc, uint32_t i, uint32_t *lenp, bool single)
{
    uint32_t len = *lenp;
    if (c->aof && c->in_txn && rc == 0 && c->txn.wrote && record(c) != 0) {
        kv_txn_abort(&c->txn);
        c->in_txn = false;
        b->out.len = 0;
        kv_reply_error(&b->out, "ERR the command is too large for the append-only file "
                                "(%u MB at most)",
                       KV_AOF_RING / 2 >> 20);
    }
    if (b->out.failed) {
        if (c->in_txn) {
            kv_txn_abort(&c->txn);
            c->in_txn = false;
        }
        b->out.len = 0;
        b->out.failed = false;
        kv_reply_error(&b->out, "ERR out of memory building the reply");
    }
    bool fits = len + b->out.len <= KV_SLOT_ROOM;
    if (!fits && (len > 0 || !single)) {
        /* Sent again by the front: first in this slot, alone in its task. */
        if (c->in_txn)
            kv_txn_abort(&c->txn);
        return false;
    }
    if (!fits && b->out.len > call->out_cap) {
        if (c->in_txn)
            kv_txn_abort(&c->txn);
        c->in_txn = false;
        rc = 0;
        b->out.len = 0;
        kv_reply_error(&b->out, "ERR the reply is over %zu bytes", call->out_cap);
        fits = true;
    }
    uint64_t progress;
    if (fits) {
        if (b->out.len)
            memcpy(slot->replies + len, b->out.p, b->out.len);
        progress = KV_PROGRESS(i + 1, len + b->out.len);
    } else {
        memcpy(call->out, b->out.p, b->out.len);
        call->out_len = b->out.len;
        progress = KV_PROGRESS(i + 1, len) | KV_BIG;
    }
    if (c->in_txn && rc == 0) {
        if (c->aof_end)
            kv_put_slot(&c->txn, &slot->aof_end, c->aof_end);
        kv_put_slot(&c->txn, &slot->progress, progress);
        if (c->txn.full) {
            /* No room left to log even the progress: undone, and said. */
            kv_txn_abort(&c->txn);
            b->out.len = 0;
            kv_reply_error(&b->out, "ERR the command changes too much at once");
            memcpy(slot->replies + len, b->out.p, b->out.len);
            progress = KV_PROGRESS(i + 1, len + b->out.len);
            __atomic_store_n(&slot->progress, progress, __ATOMIC_RELEASE);
        } else {
            kv_txn_commit(&c->txn);
        }
    } else {
        if (c->in_txn)
            kv_txn_abort(&c->txn);
        /* Nothing changed: the progress alone, in one store. */
        __atomic_store_n(&slot->progress, progress, __ATOMIC_RELEASE);
    }
    __atomic_fetch_add(&b->st.hdr->commands, 1, __ATOMIC_RELAXED);
    *lenp = KV_LEN(progress);
    return !(progress & KV_BIG);
}

/* Runs one connection's batch: commands [0, e->ncmds) in p[0, e->len).
 * single: the task carries this batch alone, so a reply too big for the
 * slot may use the task's output. */
static void run_batch(struct backend *b, struct walls_call *call, const struct kv_entry *e,
                      const char *p, bool single, int64_t now)
{
    if (e->slot >= b->st.hdr->nslots || e->ncmds == 0 || e->ncmds > KV_BATCH_MAX)
        return; /* nothing done: the front says the batch was refused */
    struct kv_slot *slot = kv_slot_of(&b->st, e->slot);
    if (__atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE) != e->seq)
        return;
    size_t left = e->len;
    uint32_t len = 0;
    if (e->flags & KV_ENTRY_EXEC) {
        /* One command for the front (its EXEC): the queued ones, as one. */
        __atomic_store_n(&slot->cur_cmd, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&slot->dirty, 0, __ATOMIC_RELEASE);
        b->out.len = 0;
        b->out.failed = false;
        b->aof.len = 0;
        b->aof.failed = false;
        struct kv_ctx c = {.st = &b->st,
                           .slot = slot,
                           .out = &b->out,
                           .now_ms = now,
                           .aof = b->st.hdr->aof_size ? &b->aof : NULL,
                           .lazy = true};
        int rc = kv_exec(&c, &b->parser, p, e->len, e->ncmds);
        settle_reply(b, call, slot, &c, rc, 0, &len, single);
        __atomic_store_n(&slot->cur_set, 0, __ATOMIC_RELEASE);
        return;
    }
    for (uint32_t i = 0; i < e->ncmds; i++) {
        size_t need;
        const char *err;
        ssize_t n = resp_parse(&b->parser, p, left, &need, &err);
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
        __atomic_store_n(&slot->cur_cmd, i, __ATOMIC_RELEASE);
        __atomic_store_n(&slot->dirty, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&slot->cur_set, 0, __ATOMIC_RELEASE);
        b->out.len = 0;
        b->out.failed = false;
        b->aof.len = 0;
        b->aof.failed = false;
        struct kv_ctx c = {.st = &b->st,
                           .slot = slot,
                           .argv = b->parser.argv,
                           .argc = b->parser.argc,
                           .out = &b->out,
                           .now_ms = now,
                           .aof = b->st.hdr->aof_size ? &b->aof : NULL,
                           .lazy = true};
        int rc = kv_run(&c);
        if (!settle_reply(b, call, slot, &c, rc, i, &len, single))
            break;
    }
    __atomic_store_n(&slot->cur_set, 0, __ATOMIC_RELEASE);
}

int kv_backend(struct walls_call *call)
{
    /* One per thread: hybrid backends run several batches at once. */
    static __thread struct backend b;
    if (!b.ready) {
        if (!call->shared ||
            kv_store_open(&b.st, call->shared, call->shared_size, call->locks) != 0 ||
            call->n_locks < KV_LOCKS)
            return BAD_STORE;
        resp_parser_init(&b.parser);
        b.ready = true;
    }
    struct kv_group_head head;
    if (call->in_len < sizeof head)
        return BAD_BATCH;
    memcpy(&head, call->in, sizeof head);
    const char *p = (const char *)call->in + sizeof head;
    size_t left = call->in_len - sizeof head;
    int64_t now = realtime_ms();
    int rc = 0;
    /* A run of commands on the same stripes takes them once: they stay
     * taken from one command to the next, and go when the task ends. */
    b.st.keep = true;
    for (uint32_t i = 0; i < head.nentries; i++) {
        struct kv_entry e;
        if (left < sizeof e || (memcpy(&e, p, sizeof e), e.len > left - sizeof e)) {
            rc = BAD_BATCH;
            break;
        }
        p += sizeof e;
        left -= sizeof e;
        run_batch(&b, call, &e, p, head.nentries == 1, now);
        p += e.len;
        left -= e.len;
    }
    b.st.keep = false;
    kv_store_let_go(&b.st);
    kv_collect(&b.st);
    return rc;
}
