/*
 * test-protocol.c - workers that break the mailbox protocol. Hostile tasks
 * find their own worker's mailbox in /proc/self/maps, corrupt it (garbage
 * ring indices, a completion with a wrong tag, one with an absurd length),
 * ring the doorbell so the host looks, and hang: the host must kill the
 * worker, end the task as WALLS_PROTOCOL and serve the tasks behind it.
 * A task that keeps saying it never started is believed once only.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "mailbox.h"
#include "walls.h"

/* Hostile tasks: they find their own worker's mailbox in /proc/self/maps
 * and break the protocol, then ring the doorbell (descriptor 4) so the host
 * looks, and hang. The host must kill the worker and fail the task with
 * WALLS_PROTOCOL. */

static void ring_and_hang(void)
{
    uint64_t one = 1;
    if (write(4, &one, sizeof one) != sizeof one)
        _exit(99);
    sleep(30);
}

static int hostile_tail(struct walls_call *call)
{
    (void)call;
    struct walls__mailbox *mb = worker_mailbox();
    if (!mb)
        return 1;
    __atomic_store_n(&mb->cq.tail, mb->cq.tail + 1000, __ATOMIC_RELEASE);
    ring_and_hang();
    return 0;
}

/* Publishes a completion for the request being run, with the given tag
 * and length, as only a corrupted worker would. */
static int fake_completion(bool right_tag, uint32_t out_len)
{
    struct walls__mailbox *mb = worker_mailbox();
    if (!mb)
        return 1;
    uint32_t tail = mb->cq.tail;
    struct walls__cqe *cqe = &mb->cq_slots[tail % WALLS__RING_SLOTS];
    const struct walls__req *req = &mb->rq_slots[mb->rq.head % WALLS__RING_SLOTS];
    cqe->seq = req->seq;                  /* a plausible index */
    cqe->tag = right_tag ? req->tag : 0xbad;
    cqe->kind = WALLS__CQE_DONE;
    cqe->status = WALLS_OK;
    cqe->out_len = out_len;
    __atomic_store_n(&mb->cq.tail, tail + 1, __ATOMIC_RELEASE);
    ring_and_hang();
    return 0;
}

static int hostile_tag(struct walls_call *call)
{
    (void)call;
    return fake_completion(false, 0); /* the host's tag is wrong */
}

static int hostile_length(struct walls_call *call)
{
    (void)call;
    return fake_completion(true, 0x7fffffff); /* right tag, absurd length */
}

START_TEST(test_protocol_breakers_are_killed)
{
    walls_fn *attacks[] = {hostile_tail, hostile_tag, hostile_length};
    walls_pool *pool = proc_pool(2);
    for (size_t a = 0; a < sizeof attacks / sizeof attacks[0]; a++) {
        walls_task *bad, *good[10];
        ck_assert_int_eq(walls_submit(pool, attacks[a], NULL, 0, &bad), 0);
        for (int i = 0; i < 10; i++) {
            int v[2] = {i, 5};
            ck_assert_int_eq(walls_submit(pool, t_add, v, sizeof v, &good[i]), 0);
        }
        struct walls_result r;
        ck_assert_int_eq(walls_wait(bad, 20000, &r), 0);
        ck_assert_msg(r.status == WALLS_PROTOCOL, "attack %zu: %s/%d", a,
                      walls_status_name(r.status), r.code);
        walls_task_free(bad);
        for (int i = 0; i < 10; i++) {
            ck_assert_int_eq(walls_wait(good[i], 20000, &r), 0);
            ck_assert_msg(r.status == WALLS_OK, "attack %zu, task %d: %s", a, i,
                          walls_status_name(r.status));
            walls_task_free(good[i]);
        }
    }
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.by_status[WALLS_PROTOCOL], 3);
    ck_assert_uint_ge(st.restarts, 3);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Says, over and over, that it never took its task: its slot (just
 * before its input) written back to QUEUED, while it spins. */
static int hostile_untaken(struct walls_call *call)
{
    struct walls__req *req =
        (struct walls__req *)(uintptr_t)((const char *)call->in - offsetof(struct walls__req, data));
    for (;;)
        __atomic_store_n(&req->state, WALLS__SLOT_QUEUED, __ATOMIC_RELAXED);
    return 0;
}

START_TEST(test_untaken_believed_once)
{
    /* Killed at its time limit, it is requeued once, uncharged, on the
     * worker's word; killed again, it ends WALLS_TIMEOUT. It ran for
     * ever, killed and restarted every 20 ms, when that word was always
     * believed. In processes and hybrid (_i). */
    struct walls_pool_opts o = {.placement = _i ? WALLS_HYBRID : WALLS_PROCESSES,
                                .processes = 1,
                                .threads = 2};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    struct walls_task_opts to = {.timeout_ms = 20};
    char in[16] = "x";
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit_ex(pool, hostile_untaken, in, sizeof in, &to, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_TIMEOUT, "%s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_le(st.restarts, 2);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

/* Says, in its mailbox, that it died at its memory limit, and crashes:
 * in a pool with no limit the word is not believed. Before, the task
 * ended with WALLS_RESULT_MEMORY set. */
static int hostile_memory_word(struct walls_call *call)
{
    (void)call;
    struct walls__mailbox *mb = worker_mailbox();
    if (!mb)
        return 1;
    __atomic_store_n(&mb->memory_hit, 1u, __ATOMIC_RELAXED);
    raise(SIGSEGV);
    return 0;
}

START_TEST(test_memory_word_without_a_limit)
{
    walls_pool *pool = proc_pool(1);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, hostile_memory_word, NULL, 0, &t), 0);
    ck_assert_int_eq(walls_wait(t, 20000, &r), 0);
    ck_assert_msg(r.status == WALLS_CRASHED && r.code == SIGSEGV, "%s/%d",
                  walls_status_name(r.status), r.code);
    ck_assert_uint_eq(r.flags & WALLS_RESULT_MEMORY, 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_protocol_breakers_are_killed);
    tcase_add_loop_test(tc, test_untaken_believed_once, 0, 2);
    tcase_add_test(tc, test_memory_word_without_a_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
