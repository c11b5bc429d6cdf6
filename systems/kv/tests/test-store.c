/*
 * test-store.c - the store's stripe locks as a backend keeps them from one
 * command to the next (store.h, keep): kept stripes stay taken after a
 * commit, pass to the next transaction over the same set without being
 * taken again, are let go before another set is taken and by
 * kv_store_let_go(); and a backend killed while it keeps them leaves
 * nothing stuck, nor a change it had not committed. The heap: values
 * that grow fit as freed blocks merge, a merge undone leaves the free
 * list whole, and blocks grow in place.
 *
 * The store lives in a process pool's shared region, under its locks, as
 * walls-kv's does; the backend is this program's task, run in the pool's
 * worker process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

#define HEAP ((size_t)64 << 10)
#define STRIPE 9u

static walls_pool *pool;
static struct kv_store st;

/* A one-process pool whose shared region holds a store with heaps of
 * heap bytes a stripe. */
static void make_store(size_t heap)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES,
                                .processes = 1,
                                .shared_size = kv_region_size(4, heap, false),
                                .locks = KV_LOCKS};
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    void *base;
    size_t size, n;
    walls_lock *locks;
    ck_assert_int_eq(walls_pool_shared(pool, &base, &size), 0);
    ck_assert_int_eq(walls_pool_locks(pool, &locks, &n), 0);
    ck_assert_uint_ge(n, KV_LOCKS);
    kv_store_format(&st, base, size, 4, 0, 0, false);
    st.locks = locks;
}

static void setup(void)
{
    make_store(HEAP);
}

static void teardown(void)
{
    walls_pool_destroy(pool, 0);
    pool = NULL;
}

/* What another thread gets from taking lock i without waiting (and lets
 * go again if it got it): 0 when the lock was free. */
static void *try_other(void *arg)
{
    walls_lock *lock = arg;
    int rc = walls_lock_acquire(lock, 0);
    if (rc == 0 || rc == -EOWNERDEAD)
        walls_lock_release(lock);
    return (void *)(intptr_t)rc;
}

static int taken_elsewhere(unsigned i)
{
    pthread_t t;
    void *rc;
    ck_assert_int_eq(pthread_create(&t, NULL, try_other, &st.locks[i]), 0);
    ck_assert_int_eq(pthread_join(t, &rc), 0);
    return (int)(intptr_t)rc;
}

static uint64_t *word(unsigned stripe)
{
    return &kv_stripe_of(&st, stripe)->nexpires;
}

START_TEST(kept_between_transactions)
{
    struct kv_txn t;
    int err = 0;
    st.keep = true;
    ck_assert_int_eq(kv_txn_begin(&t, &st, (uint64_t)1 << 3, NULL, &err), 0);
    kv_put(&t, word(3), 41);
    kv_txn_commit(&t);
    ck_assert_int_eq(taken_elsewhere(3), -ETIMEDOUT);
    ck_assert_uint_eq(st.held, (uint64_t)1 << 3);
    /* The same set again: passed on, not taken a second time (the locks
     * are not recursive: that would wait the store's 30 s and fail). */
    ck_assert_int_eq(kv_txn_begin(&t, &st, (uint64_t)1 << 3, NULL, &err), 0);
    ck_assert_uint_eq(st.held, 0);
    kv_put(&t, word(3), 42);
    kv_txn_abort(&t);
    ck_assert_uint_eq(*word(3), 41);
    ck_assert_int_eq(taken_elsewhere(3), -ETIMEDOUT);
    /* Another set: the kept one goes first. */
    uint64_t two = (uint64_t)1 << 2 | (uint64_t)1 << 5;
    ck_assert_int_eq(kv_txn_begin(&t, &st, two, NULL, &err), 0);
    ck_assert_int_eq(taken_elsewhere(3), 0);
    kv_txn_commit(&t);
    ck_assert_int_eq(taken_elsewhere(2), -ETIMEDOUT);
    ck_assert_int_eq(taken_elsewhere(5), -ETIMEDOUT);
    kv_store_let_go(&st);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_int_eq(taken_elsewhere(2), 0);
    ck_assert_int_eq(taken_elsewhere(5), 0);
    /* Without keep, a transaction lets go as it ends. */
    st.keep = false;
    ck_assert_int_eq(kv_txn_begin(&t, &st, (uint64_t)1 << 7, NULL, &err), 0);
    kv_txn_commit(&t);
    ck_assert_int_eq(taken_elsewhere(7), 0);
    ck_assert_uint_eq(st.held, 0);
}
END_TEST

/* The backend: commits 1 into STRIPE's word, keeping the stripe; with
 * input "open", then writes 2 in a transaction over the kept stripe; then
 * dies without letting go. */
static int die_keeping(struct walls_call *call)
{
    struct kv_store mine;
    if (kv_store_open(&mine, call->shared, call->shared_size, call->locks) != 0)
        return 1;
    mine.keep = true;
    struct kv_txn t;
    int err;
    if (kv_txn_begin(&t, &mine, (uint64_t)1 << STRIPE, NULL, &err) != 0)
        return 2;
    kv_put(&t, &kv_stripe_of(&mine, STRIPE)->nexpires, 1);
    kv_txn_commit(&t);
    if (call->in_len == 4 && memcmp(call->in, "open", 4) == 0) {
        if (kv_txn_begin(&t, &mine, (uint64_t)1 << STRIPE, NULL, &err) != 0)
            return 3;
        kv_put(&t, &kv_stripe_of(&mine, STRIPE)->nexpires, 2);
    }
    raise(SIGKILL);
    return 4;
}

static void run_dying(const char *in)
{
    walls_task *task;
    struct walls_result res;
    ck_assert_int_eq(walls_submit(pool, die_keeping, in, strlen(in), &task), 0);
    ck_assert_int_eq(walls_wait(task, 10000, &res), 0);
    ck_assert_int_eq(res.status, WALLS_KILLED); /* SIGKILL: as kill -9 from outside */
    ck_assert_int_eq(res.code, SIGKILL);
    walls_task_free(task);
}

START_TEST(death_while_kept)
{
    run_dying("committed");
    /* Its last transaction committed: the next holder takes the stripe
     * (told its holder died) and finds the change kept. */
    struct kv_txn t;
    int err = 0;
    ck_assert_int_eq(kv_txn_begin(&t, &st, (uint64_t)1 << STRIPE, NULL, &err), 0);
    ck_assert_uint_eq(*word(STRIPE), 1);
    kv_txn_commit(&t);
    ck_assert_int_eq(taken_elsewhere(STRIPE), 0);
}
END_TEST

START_TEST(death_inside_a_kept_transaction)
{
    run_dying("open");
    /* It died inside a transaction over the kept stripe: undone. */
    struct kv_txn t;
    int err = 0;
    ck_assert_int_eq(kv_txn_begin(&t, &st, (uint64_t)1 << STRIPE, NULL, &err), 0);
    ck_assert_uint_eq(*word(STRIPE), 1);
    kv_txn_commit(&t);
    ck_assert_int_eq(taken_elsewhere(STRIPE), 0);
}
END_TEST

/* ---- the heap ---------------------------------------------------------------- */

#define BIG_HEAP ((size_t)8 << 20)
#define MIB ((size_t)1 << 20)

static void setup_heap(void)
{
    make_store(BIG_HEAP);
}

/* What a rollback must give back of a stripe's heap: its words, and the
 * large free list block by block (offset, size, mark). */
struct heap_view {
    uint64_t bump, large_free, used, n;
    uint64_t list[64][3];
};

static struct heap_view view_heap(void)
{
    struct heap_view v = {0};
    struct kv_stripe *s = kv_stripe_of(&st, STRIPE);
    v.bump = s->bump;
    v.large_free = s->large_free;
    v.used = s->used;
    for (uint64_t b = s->large_free; b && v.n < 64; v.n++) {
        const uint64_t *head = kv_at(&st, b);
        v.list[v.n][0] = b;
        v.list[v.n][1] = head[0];
        v.list[v.n][2] = head[1];
        b = head[2];
    }
    return v;
}

static void begin(struct kv_txn *t)
{
    int err = 0;
    ck_assert_int_eq(kv_txn_begin(t, &st, (uint64_t)1 << STRIPE, NULL, &err), 0);
}

/* A block of len bytes, filled, committed. */
static uint64_t alloc_committed(size_t len)
{
    struct kv_txn t;
    begin(&t);
    uint64_t off = kv_alloc(&t, STRIPE, len);
    ck_assert_uint_ne(off, 0);
    memset(kv_at(&st, off), 0x5a, len);
    kv_txn_commit(&t);
    return off;
}

static void free_committed(uint64_t off)
{
    struct kv_txn t;
    begin(&t);
    kv_free(&t, STRIPE, off);
    kv_txn_commit(&t);
}

START_TEST(grown_values_fit)
{
    /* A value set again, larger each time: the old block is freed as the
     * new one is taken. With freed blocks never merged, 1.5 + 2 + 2.5 MiB
     * left no room for 3 MiB in the 8 MiB heap. */
    uint64_t live = alloc_committed(MIB + MIB / 2);
    size_t len = 2 * MIB, reached = 0;
    for (; len <= 4 * MIB; len += MIB / 2) {
        struct kv_txn t;
        begin(&t);
        uint64_t off = kv_alloc(&t, STRIPE, len);
        if (!off) {
            kv_txn_abort(&t);
            break;
        }
        memset(kv_at(&st, off), 0x33, len);
        kv_free(&t, STRIPE, live);
        kv_txn_commit(&t);
        live = off;
        reached = len;
    }
    ck_assert_msg(reached >= 3 * MIB + MIB / 2, "values grew to %zu KiB only", reached >> 10);
    /* Everything freed: the whole heap is one block again. */
    free_committed(live);
    ck_assert_uint_eq(kv_stripe_of(&st, STRIPE)->used, 0);
    uint64_t all = alloc_committed(BIG_HEAP - MIB / 4);
    free_committed(all);
}
END_TEST

/* Six blocks of 1.2 MiB, filling most of the heap. */
static void six_blocks(uint64_t b[6])
{
    for (int i = 0; i < 6; i++)
        b[i] = alloc_committed(MIB + MIB / 5);
}

/* A block of len bytes taken and filled in a transaction then undone: the
 * heap must be as before. Returns where the block was. */
static uint64_t taken_and_undone(size_t len, const struct heap_view *before)
{
    struct kv_txn t;
    begin(&t);
    uint64_t off = kv_alloc(&t, STRIPE, len);
    ck_assert_uint_ne(off, 0);
    memset(kv_at(&st, off), 0xab, len);
    kv_txn_abort(&t);
    struct heap_view after = view_heap();
    ck_assert_mem_eq(&after, before, sizeof after);
    return off;
}

START_TEST(undone_merge_leaves_lists_whole)
{
    /* Six blocks, the first two and the fourth freed: a block larger than
     * the bump has room for merges the first two and is cut from them.
     * Undone after its bytes were written over the second's header, the
     * heap is as it was, list and all; committed, it holds. */
    uint64_t b[6];
    six_blocks(b);
    free_committed(b[0]);
    free_committed(b[1]);
    free_committed(b[3]);
    struct heap_view before = view_heap();
    ck_assert_uint_eq(before.n, 3);
    /* Cut from the merged first two. */
    ck_assert_uint_lt(taken_and_undone(2 * MIB + MIB / 5, &before), b[2]);
    uint64_t off = alloc_committed(2 * MIB + MIB / 5);
    ck_assert_uint_lt(off, b[2]);
    free_committed(off);
    for (int i = 2; i < 6; i++)
        if (i != 3)
            free_committed(b[i]);
    ck_assert_uint_eq(kv_stripe_of(&st, STRIPE)->used, 0);
}
END_TEST

START_TEST(undone_return_to_bump)
{
    /* The last block freed ends at the bump: a block too large for it and
     * for the bump alone gives it back to the bump and is taken from
     * there, its header and bytes written over the freed block's. Undone,
     * the freed block is on the list whole again and can be taken. */
    uint64_t b[6];
    six_blocks(b);
    free_committed(b[5]);
    struct heap_view before = view_heap();
    ck_assert_uint_eq(taken_and_undone(MIB + MIB / 2, &before), b[5]);
    uint64_t again = alloc_committed(MIB + MIB / 10);
    ck_assert_uint_eq(again, b[5]);
    free_committed(again);
    for (int i = 0; i < 5; i++)
        free_committed(b[i]);
    ck_assert_uint_eq(kv_stripe_of(&st, STRIPE)->used, 0);
}
END_TEST

START_TEST(grown_in_place)
{
    /* A block grows into the bump, or into the free block after it (cut
     * in two); undone, the heap is as it was. */
    uint64_t y = alloc_committed(MIB + MIB / 10);
    uint64_t z = alloc_committed(MIB + MIB / 2);
    uint64_t w = alloc_committed(MIB + MIB / 10);
    free_committed(z);
    struct heap_view before = view_heap();
    struct kv_txn t;
    begin(&t);
    ck_assert(kv_grow(&t, STRIPE, y, 2 * MIB + MIB / 10));
    ck_assert_uint_ge(kv_block_room(&st, y), 2 * MIB + MIB / 10);
    memset(kv_at(&st, y), 0xcd, 2 * MIB + MIB / 10);
    kv_txn_abort(&t);
    struct heap_view after = view_heap();
    ck_assert_mem_eq(&after, &before, sizeof before);
    ck_assert_uint_lt(kv_block_room(&st, y), 2 * MIB);
    /* Not past what the free block after it holds. */
    begin(&t);
    ck_assert(!kv_grow(&t, STRIPE, y, 3 * MIB));
    kv_txn_abort(&t);
    /* The last block grows into the bump. */
    begin(&t);
    ck_assert(kv_grow(&t, STRIPE, w, 4 * MIB));
    memset(kv_at(&st, w), 0xef, 4 * MIB);
    kv_txn_commit(&t);
    ck_assert_uint_ge(kv_block_room(&st, w), 4 * MIB);
    free_committed(y);
    free_committed(w);
    ck_assert_uint_eq(kv_stripe_of(&st, STRIPE)->used, 0);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *keep = tcase_create("keep");
    tcase_add_checked_fixture(keep, setup, teardown);
    tcase_set_timeout(keep, 60);
    tcase_add_test(keep, kept_between_transactions);
    tcase_add_test(keep, death_while_kept);
    tcase_add_test(keep, death_inside_a_kept_transaction);
    suite_add_tcase(s, keep);
    TCase *heap = tcase_create("heap");
    tcase_add_checked_fixture(heap, setup_heap, teardown);
    tcase_set_timeout(heap, 60);
    tcase_add_test(heap, grown_values_fit);
    tcase_add_test(heap, undone_merge_leaves_lists_whole);
    tcase_add_test(heap, undone_return_to_bump);
    tcase_add_test(heap, grown_in_place);
    suite_add_tcase(s, heap);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(store_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
