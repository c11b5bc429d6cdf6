/*
 * fuzz_kv.c - libFuzzer target over walls-kv's request path: the RESP
 * parser, then every command it yields run against a real table, as a
 * backend runs it (each in its own transaction, committed or aborted).
 *
 * CLIENT and HELLO are answered as a front answers them, on one
 * connection of the run's.
 *
 * Then, when the input is RESP arrays, the same commands run once more as
 * one EXEC (one transaction over all their stripes).
 *
 * The table lives in the writable shared region of a small thread pool,
 * whose locks this thread takes as the host. After each input the table
 * is checked: every stripe's byte count matches its heap, and the table
 * is emptied when it grows past a bound so that the run stays small.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"

static struct kv_store st;
static struct resp_parser parser;
static struct kv_out out;

static void setup(void)
{
    static bool ready;
    if (ready)
        return;
    size_t size = kv_region_size(4, (size_t)4 << 20, false);
    struct walls_pool_opts o = {.placement = WALLS_THREADS,
                                .threads = 1,
                                .shared_size = size,
                                .locks = KV_LOCKS};
    walls_pool *pool;
    void *base;
    walls_lock *locks;
    size_t got, n;
    if (walls_pool_create(&pool, &o) != 0 || walls_pool_shared(pool, &base, &got) != 0 ||
        walls_pool_locks(pool, &locks, &n) != 0)
        abort();
    kv_store_format(&st, base, got, 4, 0, 0, false);
    st.locks = locks;
    resp_parser_init(&parser);
    ready = true;
}

static void run_one(void)
{
    out.len = 0;
    out.failed = false;
    if (parser.argc > 0 && kv_is_client_cmd(&parser.argv[0])) {
        /* CLIENT and HELLO, as a front answers them, for one connection
         * that lives as long as the run (no socket: fd -1). */
        static struct kv_client client = {.id = 1, .fd = -1};
        kv_client_cmd(&client, parser.argv, parser.argc, parser.argc % 7 == 0, &out);
        if (!out.failed && (out.len == 0 || !strchr("+-:$*", out.p[0])))
            abort();
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct kv_ctx c = {.st = &st,
                       .argv = parser.argv,
                       .argc = parser.argc,
                       .out = &out,
                       .now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
    int rc = kv_run(&c);
    if (c.in_txn) {
        if (rc == 0 && !c.txn.full)
            kv_txn_commit(&c.txn);
        else
            kv_txn_abort(&c.txn);
    }
    /* Every reply is well-formed RESP: one value, nothing after it. */
    if (!out.failed && out.len > 0 && out.p[0] != '+' && out.p[0] != '-' && out.p[0] != ':' &&
        out.p[0] != '$' && out.p[0] != '*')
        abort();
    for (unsigned i = 0; i < KV_STRIPES; i++)
        if (kv_stripe_of(&st, i)->txn_home != KV_NONE || kv_stripe_of(&st, i)->log_n != 0)
            abort(); /* a transaction left open */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    const char *buf = (const char *)data;
    size_t pos = 0;
    uint32_t ncmds = 0;
    while (pos < size) {
        size_t need = 0;
        const char *err = NULL;
        ssize_t n = resp_parse(&parser, buf + pos, size - pos, &need, &err);
        if (n <= 0)
            break;
        if ((size_t)n > size - pos)
            abort();
        pos += (size_t)n;
        ncmds += parser.argc > 0;
        run_one();
    }
    /* The same commands again, as one MULTI's EXEC. */
    if (ncmds > 0 && data[0] == '*') {
        static struct resp_parser exec_parser;
        static bool exec_ready;
        if (!exec_ready) {
            resp_parser_init(&exec_parser);
            exec_ready = true;
        }
        out.len = 0;
        out.failed = false;
        struct kv_ctx c = {.st = &st, .out = &out, .now_ms = 1};
        kv_exec(&c, &exec_parser, buf, pos, ncmds);
        if (c.in_txn)
            kv_txn_commit(&c.txn);
        for (unsigned i = 0; i < KV_STRIPES; i++)
            if (kv_stripe_of(&st, i)->txn_home != KV_NONE || kv_stripe_of(&st, i)->log_n != 0)
                abort();
    }
    /* Keep the table small from one input to the next. */
    uint64_t used = 0;
    for (unsigned i = 0; i < KV_STRIPES; i++) {
        struct kv_stripe *s = kv_stripe_of(&st, i);
        if (s->bump < s->heap_start || s->bump > s->heap_end || s->used > s->bump - s->heap_start)
            abort(); /* the allocator's books are wrong */
        used += s->used;
    }
    if (used > (8u << 20)) {
        static const char flush[] = "*1\r\n$8\r\nFLUSHALL\r\n";
        size_t need;
        const char *err;
        if (resp_parse(&parser, flush, sizeof flush - 1, &need, &err) > 0)
            run_one();
    }
    return 0;
}
