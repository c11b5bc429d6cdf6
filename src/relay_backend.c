/*
 * relay_backend.c - workers that are elsewhere: a relay thread hands each
 * lane's tasks to a transport and brings their results back (relay.h).
 *
 * The relay thread is the consumer of every lane's mailbox, as a worker
 * thread is of its own: it takes a lane's next request only when the
 * lane's previous task came back, so the tasks a peer has not started yet
 * wait in the rings, where the engine may still move them to a lane that
 * idles. Then, once per round, it takes the pool's lock to consume what it
 * published, dispatch, run the engine's clock when it is due, and act on
 * kills the engine asked for.
 *
 * It sleeps a little when a round finds nothing to do, longer the longer
 * nothing happens (up to RELAY_NAP_MAX_NS): a transport such as MPI has no
 * descriptor to sleep on, and a host that publishes does not wake it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "api.h"
#include "atomic.h"
#include "backend.h"
#include "engine.h"
#include "futex.h"
#include "internal.h"
#include "module.h"
#include "options.h"
#include "relay.h"
#include "tables.h"

#define MASK (WALLS__RING_SLOTS - 1)
#define RELAY_SPIN_NS 200000
#define RELAY_NAP_STEP_NS 20000
#define RELAY_NAP_MAX_NS 1000000

struct relay_lane {
    unsigned peer;
    uint32_t head;   /* next request to take: its worker side, as in worker_loop.c */
    uint32_t ctail;
    bool busy;       /* its task is out at its peer */
    bool closed;     /* its peer went silent, or its pool broke: it takes nothing more */
    /* [atomic: written by the relay thread, read by relay_reset()] */
    bool broken;     /* closed for its peer's broken pool: a reset opens it again */
    bool silent;     /* closed for a peer that did not answer: never opened again */
    bool reopen;     /* opened again: the lock's round opens the engine's lane */
    uint32_t seq;    /* the busy task's request */
    bool out_window; /* its output goes to a large-I/O window */
    unsigned char *window;
    size_t window_cap;
    /* A stop the engine asked for (a cancel, a time limit) [atomic]: */
    uint32_t kill_wanted;   /* 1 + the request it is for; 0 = none */
    int kill_status;        /* the status the task gets */
    uint32_t kill_sent;     /* 1 + the request the cancel went out for */
    int64_t kill_at;        /* when it went out */
    bool kill_done;         /* its result was written: the lock's round clears the reason */
    int64_t sent_ns;        /* when its task went out */
    int64_t took_ns;        /* send to result of its last task; -1 once counted */
};

struct relay_peer {
    /* [atomic]: written by the relay thread, read by walls_pool_stats */
    uint64_t submitted, completed, by_status[WALLS_BROKEN + 1], in_flight;
    uint64_t restarts, recycled;
    struct walls__relay_peer shape;
    uint64_t hist[WALLS__HIST_BUCKETS]; /* [lock] send to result */
    uint64_t counted;                   /* [lock] in hist */
    unsigned char modules[WALLS__MAX_MODULES]; /* told it about module m */
    bool broken; /* [relay thread] its pool answered WALLS_BROKEN: given nothing */
};

struct relay {
    struct walls__relay_ops ops;
    void *ctx;
    unsigned npeers;
    struct relay_peer *peers;
    struct relay_lane *lanes;
    struct walls__fn_cache fn_cache[WALLS__FN_CACHE];
    struct walls__pool *pool;
    pthread_t thread;
    bool started;
    bool quit;          /* [atomic] */
    bool clock;         /* [atomic] the engine asked for its clock */
    bool published;     /* this round wrote completions */
    bool lost;          /* this round closed a lane, or opened one again */
    int64_t clock_at;   /* when the engine's clock runs next */
    uint32_t reset_wanted; /* [atomic] bumped by walls_pool_reset() */
    uint32_t reset_done;   /* [relay thread] the last one acted on */
    bool reset_round;      /* [relay thread] the next lock's round follows a reset */
};

static struct relay *relay_of(struct walls__pool *pool)
{
    return pool->backend_state;
}

/* Writes lane's completion for the request at its head and hands the
 * request back, as a worker does (worker_loop.c). */
static void complete(struct relay *r, unsigned index, uint16_t kind, int status, int code,
                     unsigned flags, const void *out, size_t out_len)
{
    struct walls__lane *lane = &r->pool->lanes[index];
    struct relay_lane *rl = &r->lanes[index];
    struct walls__mailbox *mb = lane->mb;
    struct walls__req *req = &mb->rq_slots[rl->head & MASK];
    struct walls__cqe *cqe = &mb->cq_slots[rl->ctail & MASK];
    cqe->seq = req->seq;
    cqe->tag = req->tag;
    cqe->kind = kind;
    cqe->status = (uint16_t)status;
    cqe->code = code;
    cqe->out_len = 0;
    cqe->reserved[0] = flags;
    if (kind == WALLS__CQE_DONE && out_len && status != WALLS_PROTOCOL) {
        size_t cap = rl->out_window ? rl->window_cap : WALLS__SLOT_DATA;
        if (out_len > cap || out_len > r->pool->max_output) {
            cqe->status = WALLS_PROTOCOL; /* more than the task may write */
            cqe->code = 0;
        } else {
            memcpy(rl->out_window ? rl->window : cqe->data, out, out_len);
            cqe->out_len = (uint32_t)out_len;
        }
    }
    /* A stop asked for this request is over, whatever ended it. */
    if (walls__load_acquire(&rl->kill_wanted) == req->seq + 1)
        rl->kill_done = true;
    rl->head++;
    rl->ctail++;
    walls__store_release(&mb->rq.head, rl->head);
    walls__store_release(&mb->cq.tail, rl->ctail);
    rl->busy = false;
    r->published = true;
}

/* Takes lane's next requests until one goes out to its peer: module
 * definitions are told to the peer once, cancelled slots acknowledged.
 * Returns whether it did anything. */
static bool take(struct relay *r, unsigned index)
{
    struct walls__lane *lane = &r->pool->lanes[index];
    struct relay_lane *rl = &r->lanes[index];
    struct relay_peer *peer = &r->peers[rl->peer];
    struct walls__mailbox *mb = lane->mb;
    bool did = false;
    while (!rl->busy && !rl->closed) {
        /* Acquire: the slot's contents are visible once the tail is. */
        uint32_t tail = walls__load_acquire(&mb->rq.tail);
        if (rl->head == tail)
            break;
        did = true;
        struct walls__req *req = &mb->rq_slots[rl->head & MASK];
        if (req->kind == WALLS__REQ_MODULE) {
            char path[WALLS__SLOT_DATA];
            uint32_t n = req->in_len < WALLS__SLOT_DATA ? req->in_len : WALLS__SLOT_DATA - 1;
            memcpy(path, req->data, n);
            path[n] = '\0';
            int rc = 0;
            if (req->module < WALLS__MAX_MODULES && !peer->modules[req->module]) {
                rc = r->ops.module(r->ctx, rl->peer, req->module, path);
                peer->modules[req->module] = rc == 0;
            }
            complete(r, index, WALLS__CQE_ACK, 0, rc, 0, NULL, 0);
            continue;
        }
        if (req->kind != WALLS__REQ_TASK && req->kind != WALLS__REQ_TASK_IO) {
            complete(r, index, WALLS__CQE_ACK, 0, 0, 0, NULL, 0);
            continue;
        }
        uint32_t expected = WALLS__SLOT_QUEUED;
        if (!walls__cas(&req->state, &expected, WALLS__SLOT_RUNNING)) {
            complete(r, index, WALLS__CQE_ACK, 0, 0, 0, NULL, 0); /* cancelled before it went */
            continue;
        }
        if (walls__load_acquire(&rl->kill_wanted) == req->seq + 1) {
            /* Stopped before it went: it never runs anywhere. */
            complete(r, index, WALLS__CQE_DONE, walls__load_relaxed(&rl->kill_status), 0, 0,
                     NULL, 0);
            continue;
        }
        struct walls__io io;
        size_t head = walls__req_io(req, &io);
        struct walls__relay_task t = {
            .lane = index, .seq = req->seq, .module = req->module, .offset = req->offset,
            .in = req->data + head,
            .in_len = req->in_len < WALLS__SLOT_DATA - head ? req->in_len : WALLS__SLOT_DATA - head};
        if (io.in_len) {
            /* The host's own memory: the task's input, kept while it runs. */
            t.in = (const void *)(uintptr_t)io.in_at;
            t.in_len = (size_t)io.in_len;
        }
        rl->out_window = io.out_cap != 0;
        rl->window = (unsigned char *)(uintptr_t)io.out_at;
        rl->window_cap = (size_t)io.out_cap;
        rl->seq = req->seq;
        if (walls__load_relaxed(&mb->report_start)) {
            walls__store_relaxed(&mb->current_start_ns, (uint64_t)walls__now_ns());
            walls__store_release(&mb->current_seq, req->seq);
        }
        int rc = r->ops.task(r->ctx, rl->peer, &t);
        if (rc) {
            complete(r, index, WALLS__CQE_NOFN, 0, rc, 0, NULL, 0);
            continue;
        }
        rl->busy = true;
        rl->sent_ns = walls__now_ns();
        walls__fetch_add(&peer->submitted, 1);
        walls__fetch_add(&peer->in_flight, 1);
    }
    return did;
}

/* The transport brought a result back. */
static void deliver(void *arg, const struct walls__relay_result *res)
{
    struct relay *r = arg;
    if (res->lane >= r->pool->nlanes || res->peer >= r->npeers)
        return;
    struct relay_lane *rl = &r->lanes[res->lane];
    struct relay_peer *peer = &r->peers[res->peer];
    walls__store_relaxed(&peer->restarts, res->restarts);
    walls__store_relaxed(&peer->recycled, res->recycled);
    if (!rl->busy || rl->seq != res->seq || rl->peer != res->peer)
        return; /* one the relay gave up on: it ended already */
    int status = res->status;
    if (status < WALLS_OK || status > WALLS_BROKEN)
        status = WALLS_PROTOCOL;
    uint32_t wanted = walls__load_acquire(&rl->kill_wanted);
    if (wanted == rl->seq + 1) {
        /* Stopped for the engine: the peer says CANCELLED, the engine
         * asked for its own reason (a time limit). */
        if (status == WALLS_CANCELLED)
            status = walls__load_relaxed(&rl->kill_status);
    }
    if (status == WALLS_BROKEN && !peer->broken) {
        /* The peer's own pool broke (it restarts no worker): it is given
         * nothing more until walls_pool_reset(), what waits goes to the
         * other peers, and with none left the pool breaks. Before, a
         * peer that answered at once looked idle and took every task. */
        peer->broken = true;
        for (unsigned i = 0; i < r->pool->nlanes; i++) {
            struct relay_lane *other = &r->lanes[i];
            if (other->peer == res->peer && !other->closed) {
                other->closed = true;
                walls__store_relaxed(&other->broken, true);
                r->lost = true;
            }
        }
    }
    walls__fetch_add(&peer->completed, 1);
    walls__fetch_add(&peer->by_status[status], 1);
    walls__fetch_add(&peer->in_flight, (uint64_t)-1);
    rl->took_ns = walls__now_ns() - rl->sent_ns;
    complete(r, res->lane, WALLS__CQE_DONE, status, res->code, res->flags, res->out,
             res->out_len);
}

/* Sends the cancels the engine asked for; ends, and closes the lane of,
 * a task whose peer did not answer one in time. Returns whether it did
 * anything. */
static bool kills(struct relay *r, int64_t now)
{
    bool did = false;
    for (unsigned i = 0; i < r->pool->nlanes; i++) {
        struct relay_lane *rl = &r->lanes[i];
        uint32_t wanted = walls__load_acquire(&rl->kill_wanted);
        if (!wanted || !rl->busy || wanted != rl->seq + 1)
            continue;
        if (rl->kill_sent != wanted) {
            rl->kill_sent = wanted;
            rl->kill_at = now;
            r->ops.cancel(r->ctx, rl->peer, i, rl->seq);
            did = true;
        } else if (now - rl->kill_at > WALLS__RELAY_GRACE_NS) {
            struct relay_peer *peer = &r->peers[rl->peer];
            int status = walls__load_relaxed(&rl->kill_status);
            walls__fetch_add(&peer->completed, 1);
            walls__fetch_add(&peer->by_status[status], 1);
            walls__fetch_add(&peer->in_flight, (uint64_t)-1);
            complete(r, i, WALLS__CQE_DONE, status, 0, 0, NULL, 0);
            rl->closed = true;
            walls__store_relaxed(&rl->silent, true); /* a reset does not open it */
            r->lost = true;
            did = true;
        }
    }
    return did;
}

/* Lock held: what the lanes need from the pool after a round. */
static void lanes_round(struct relay *r)
{
    struct walls__pool *pool = r->pool;
    bool open, reopened = false;
    for (unsigned i = 0; i < pool->nlanes; i++) {
        struct relay_lane *rl = &r->lanes[i];
        struct walls__lane *lane = &pool->lanes[i];
        if (rl->took_ns >= 0) {
            walls__hist_add(r->peers[rl->peer].hist, rl->took_ns);
            r->peers[rl->peer].counted++;
            rl->took_ns = -1;
        }
        uint32_t wanted = walls__load_relaxed(&rl->kill_wanted);
        if (rl->kill_done || (wanted && (int32_t)(rl->head - wanted) >= 0)) {
            /* Over: it ended as asked, or had ended before the ask came. */
            rl->kill_done = false;
            walls__store_relaxed(&rl->kill_wanted, 0);
            lane->kill_reason = -1;
        }
        if (rl->reopen) {
            rl->reopen = false;
            if (pool->state == WALLS__POOL_ALIVE && lane->live && !lane->open) {
                lane->open = true;
                reopened = true;
            }
        }
        if (rl->closed && lane->open) {
            /* Its peer is silent: what waits in its ring goes elsewhere. */
            lane->open = false;
            struct walls__task *back[WALLS__RING_SLOTS];
            unsigned n = walls__engine_take_back(pool, lane, rl->head - 1, WALLS__RING_SLOTS,
                                                 back);
            while (n > 0)
                walls__engine_requeue_front(pool, back[--n]);
            open = false;
            for (unsigned k = 0; k < pool->nlanes; k++)
                open |= pool->lanes[k].open;
            if (!open)
                walls__engine_break(pool); /* no peer left to run what waits */
        }
    }
    if (r->reset_round) {
        /* After a reset, a pool none of whose lanes could open again (its
         * ranks went silent meanwhile) is broken again, not left with
         * tasks that no lane would take. */
        r->reset_round = false;
        bool any = false;
        for (unsigned i = 0; i < pool->nlanes; i++)
            any |= pool->lanes[i].open;
        if (!any && pool->state == WALLS__POOL_ALIVE)
            walls__engine_break(pool);
    }
    if (reopened)
        walls__engine_dispatch(pool); /* what waited for a lane */
    uint64_t restarts = 0, recycled = 0;
    for (unsigned p = 0; p < r->npeers; p++) {
        restarts += walls__load_relaxed(&r->peers[p].restarts);
        recycled += walls__load_relaxed(&r->peers[p].recycled);
    }
    pool->restarts = restarts;
    pool->recycled = recycled;
}

static void relay_attend(struct walls__pool *pool);

/* Nothing happened in a round: for RELAY_SPIN_NS after the last thing
 * that did, only let others run; then sleep, a little longer each round. */
static void nap(int64_t idle_ns, int64_t *nap_ns)
{
    if (idle_ns < RELAY_SPIN_NS) {
        *nap_ns = 0;
        sched_yield();
        return;
    }
    *nap_ns = *nap_ns + RELAY_NAP_STEP_NS < RELAY_NAP_MAX_NS ? *nap_ns + RELAY_NAP_STEP_NS
                                                              : RELAY_NAP_MAX_NS;
    struct timespec ts = {0, (long)*nap_ns};
    nanosleep(&ts, NULL);
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct walls__pool *pool = r->pool;
    int64_t last_did = walls__now_ns(), nap_ns = 0;
    r->clock_at = INT64_MAX;
    /* Its naps end when asked, not up to 50 us later. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    while (!walls__load_acquire(&r->quit)) {
        bool did = false;
        uint32_t reset = walls__load_acquire(&r->reset_wanted);
        if (reset != r->reset_done) {
            /* walls_pool_reset(): each broken peer resets its pool, and
             * its lanes take tasks again. */
            r->reset_done = reset;
            for (unsigned p = 0; p < r->npeers; p++) {
                if (!r->peers[p].broken)
                    continue;
                r->peers[p].broken = false;
                if (r->ops.reset)
                    r->ops.reset(r->ctx, p);
            }
            for (unsigned i = 0; i < pool->nlanes; i++) {
                struct relay_lane *rl = &r->lanes[i];
                if (rl->broken && !rl->silent) {
                    walls__store_relaxed(&rl->broken, false);
                    rl->closed = false;
                    rl->reopen = true;
                }
            }
            r->reset_round = r->lost = true;
        }
        for (unsigned i = 0; i < pool->nlanes; i++)
            did |= take(r, i);
        did |= r->ops.poll(r->ctx, deliver, r) > 0;
        int64_t now = walls__now_ns();
        did |= kills(r, now);
        bool clock = walls__load_relaxed(&r->clock) || now >= r->clock_at;
        bool attention = walls__load_relaxed(&pool->attention);
        if (r->published || r->lost || clock || attention) {
            walls__pool_lock(pool);
            /* What finished is consumed before the clock looks for
             * overruns, so that no kill is asked for a task already over. */
            lanes_round(r);
            walls__api_harvest(pool);
            if (clock) {
                walls__store_relaxed(&r->clock, false);
                r->clock_at = walls__engine_expire(pool, now);
                if (pool->attention)
                    relay_attend(pool);
            }
            walls__pool_unlock(pool);
            walls__engine_signal(pool);
            did |= r->published || r->lost;
            r->published = r->lost = false;
        }
        if (did)
            last_did = now;
        else
            nap(now - last_did, &nap_ns);
    }
    return NULL;
}

/* Lock held: the engine wants its clock run. */
static void relay_timed(struct walls__pool *pool)
{
    walls__store_relaxed(&relay_of(pool)->clock, true);
}

/* Lock held: a kill the engine asks for (a time limit) goes to the relay. */
static void relay_attend(struct walls__pool *pool)
{
    struct relay *r = relay_of(pool);
    unsigned from = 0;
    struct walls__lane *lane;
    while ((lane = walls__engine_take_attention(pool, &from)) != NULL) {
        if (lane->kill_reason < 0)
            continue;
        struct relay_lane *rl = &r->lanes[lane->index];
        walls__store_relaxed(&rl->kill_status, lane->kill_reason);
        walls__store_release(&rl->kill_wanted, lane->kill_seq + 1);
    }
}

static int relay_stop_running(struct walls__pool *pool, struct walls__lane *lane, uint32_t seq,
                              enum walls_status status)
{
    struct relay_lane *rl = &relay_of(pool)->lanes[lane->index];
    if (lane->kill_reason < 0 || lane->kill_seq != seq) {
        lane->kill_reason = (int)status;
        lane->kill_code = 0;
        lane->kill_flags = 0;
        lane->kill_targeted = true;
        lane->kill_seq = seq;
    }
    walls__store_relaxed(&rl->kill_status, lane->kill_reason);
    walls__store_release(&rl->kill_wanted, lane->kill_seq + 1);
    return 0;
}

static void free_relay(struct relay *r)
{
    if (!r)
        return;
    if (r->ops.close)
        r->ops.close(r->ctx);
    free(r->peers);
    free(r->lanes);
    free(r);
}

static void relay_stop(struct walls__pool *pool, bool cancel)
{
    (void)cancel; /* the pool was drained: what ran was cancelled then */
    struct relay *r = relay_of(pool);
    if (r->started) {
        walls__store_release(&r->quit, true);
        pthread_join(r->thread, NULL);
        r->started = false;
    }
    walls__pool_lock(pool);
    for (unsigned i = 0; i < pool->nlanes; i++) {
        walls__engine_harvest(pool, &pool->lanes[i]);
        pool->lanes[i].live = pool->lanes[i].open = false;
    }
    walls__pool_unlock(pool);
    for (unsigned i = 0; i < pool->nlanes; i++)
        walls__engine_lane_private_free(&pool->lanes[i]);
    free_relay(r);
    pool->backend_state = NULL;
}

static int relay_start(struct walls__pool *pool)
{
    struct relay *r = relay_of(pool);
    r->pool = pool;
    int rc = 0;
    for (unsigned i = 0; i < pool->nlanes && rc == 0; i++) {
        struct walls__lane *lane = &pool->lanes[i];
        lane->backend = &r->lanes[i];
        lane->killable = true;
        lane->relayed = true;
        rc = walls__engine_lane_private(lane);
    }
    if (rc == 0) {
        rc = walls__thread_start(&r->thread, relay_main, r);
        r->started = rc == 0;
    }
    if (rc) {
        /* The lanes go; r stays for walls__relay_pool_create to free. */
        if (r->started) {
            walls__store_release(&r->quit, true);
            pthread_join(r->thread, NULL);
            r->started = false;
        }
        for (unsigned i = 0; i < pool->nlanes; i++)
            walls__engine_lane_private_free(&pool->lanes[i]);
        pool->backend_state = NULL;
    }
    return rc;
}

static int relay_locate(struct walls__pool *pool, walls_fn *fn, uint16_t *module, uint64_t *offset)
{
    return walls__module_locate(pool, relay_of(pool)->fn_cache, fn, module, offset);
}

static bool relay_is_worker(struct walls__pool *pool)
{
    struct relay *r = relay_of(pool);
    return r->started && pthread_equal(r->thread, pthread_self());
}

/* Lock held: walls_pool_reset(). The relay thread asks the broken peers
 * to reset their pools and opens their lanes again. */
static int relay_reset(struct walls__pool *pool)
{
    struct relay *r = relay_of(pool);
    bool any = false;
    for (unsigned i = 0; i < pool->nlanes; i++)
        any |= walls__load_relaxed(&r->lanes[i].broken) && !walls__load_relaxed(&r->lanes[i].silent);
    if (!any) {
        /* Nothing a reset can open: every closed lane's rank went silent. */
        if (!pool->broken)
            return 0;
        return walls__fail(-ECHILD, "walls_pool_reset: no rank of the pool can come back: "
                                    "each stopped answering; destroy the pool and create "
                                    "another");
    }
    walls__fetch_add(&r->reset_wanted, 1);
    return 0;
}

static const struct walls__backend relay_backend = {
    .start = relay_start,
    .reset = relay_reset,
    .reset_unbroken = true,
    .stop = relay_stop,
    .locate = relay_locate,
    .stop_running = relay_stop_running,
    .attend = relay_attend,
    .timed = relay_timed,
    .is_worker = relay_is_worker,
    .arm_for_sleepers = false,
};

int walls__relay_check(const struct walls_pool_opts *opts)
{
    if (opts && (opts->arena_size || opts->locks || opts->shared_size))
        return walls__fail(-ENOTSUP, "walls_pool_create: an arena, locks and a shared region "
                                     "are memory of one machine; a pool across machines has "
                                     "none");
    struct walls_pool_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    /* The peers apply the sandbox, on their kernels: here the options are
     * checked, not what this kernel would refuse. (Only with a sandbox:
     * placement WALLS_THREADS, which the peers run as processes, takes no
     * fallback.) */
    if (!o.sandbox_fallback && o.sandbox != WALLS_SANDBOX_NONE)
        o.sandbox_fallback = WALLS_SANDBOX_FALLBACK;
    /* The peers run WALLS_THREADS as processes: judged as such, a sandbox
     * included. */
    if (o.placement == WALLS_THREADS) {
        o.placement = WALLS_PROCESSES;
        o.processes = 0;
    }
    struct walls__plan plan;
    int rc = walls__plan_pool(&o, &plan);
    if (rc == 0)
        free(plan.conf);
    return rc;
}

int walls__relay_fail(int err, const char *text)
{
    return walls__fail(err, "%s", text);
}

int walls__relay_pool_create(walls_pool **out, const struct walls_pool_opts *opts,
                             const struct walls__relay_conf *conf)
{
    static const char call[] = "walls_pool_create";
    struct relay *r = calloc(1, sizeof *r);
    if (!r) {
        conf->ops->close(conf->ctx);
        return walls__fail(-ENOMEM, "%s: %s", call, walls_strerror(-ENOMEM));
    }
    r->ops = *conf->ops;
    r->ctx = conf->ctx;
    int rc = 0;
    unsigned nlanes = 0, nprocs = 0;
    for (unsigned p = 0; p < conf->npeers; p++) {
        unsigned lanes = conf->peers[p].lanes;
        if (lanes == 0 || lanes > WALLS__MAX_PROCESSES * WALLS__MAX_LANES ||
            nlanes + lanes > WALLS__MAX_PROCESSES * WALLS__MAX_LANES)
            rc = walls__fail(-EINVAL, "%s: peer %u has %u workers", call, p, lanes);
        else
            nlanes += lanes;
        nprocs += conf->peers[p].processes;
    }
    if (!out)
        rc = walls__fail(-EINVAL, "%s: pool (the out-parameter) is NULL", call);
    else if (conf->npeers == 0)
        rc = walls__fail(-EINVAL, "%s: no peers", call);
    if (rc == 0)
        rc = walls__relay_check(opts);
    struct walls_pool_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    struct walls__plan plan;
    memset(&plan, 0, sizeof plan);
    if (rc == 0) {
        r->npeers = conf->npeers;
        r->peers = calloc(conf->npeers, sizeof *r->peers);
        r->lanes = calloc(nlanes, sizeof *r->lanes);
        if (!r->peers || !r->lanes)
            rc = walls__fail(-ENOMEM, "%s: %s", call, walls_strerror(-ENOMEM));
    }
    if (rc) {
        free_relay(r);
        return rc;
    }
    for (unsigned p = 0, i = 0; p < conf->npeers; p++) {
        r->peers[p].shape = conf->peers[p];
        for (unsigned k = 0; k < conf->peers[p].lanes; k++) {
            r->lanes[i].took_ns = -1;
            r->lanes[i++].peer = p;
        }
    }
    plan.placement = conf->placement;
    plan.backend = &relay_backend;
    plan.nlanes = nlanes;
    plan.nprocs = nprocs;
    plan.lanes_per = 1;
    /* The lanes' tasks run on other ranks: a waiter here never takes a
     * CPU from them (wait.c's crowded()). */
    plan.cpus = nlanes + 1;
    plan.threads_shown = conf->threads;
    plan.sandbox = o.sandbox;
    plan.conf = NULL;
    snprintf(plan.explain, sizeof plan.explain, "%s", conf->explain ? conf->explain : "");
    rc = walls__pool_create_planned(out, &o, &plan, r);
    if (rc)
        free_relay(r); /* no pool holds it */
    return rc;
}

int walls__relay_peer_stats(walls_pool *handle, unsigned peer, struct walls_stats *st)
{
    static const char call[] = "walls_mpi_pool_rank_stats";
    if (!st)
        return walls__fail(-EINVAL, "%s: stats is NULL", call);
    int rc;
    struct walls__pool *pool = walls__pool_enter(handle, call, &rc);
    if (!pool)
        return rc;
    if (pool->backend != &relay_backend || !pool->backend_state) {
        walls__pool_unlock(pool);
        return walls__fail(-ENOTSUP, "%s: the pool is not one across ranks", call);
    }
    struct relay *r = relay_of(pool);
    if (peer >= r->npeers) {
        walls__pool_unlock(pool);
        return walls__fail(-EINVAL, "%s: no such rank serves the pool", call);
    }
    const struct relay_peer *p = &r->peers[peer];
    memset(st, 0, sizeof *st);
    st->placement = p->shape.placement;
    st->processes = p->shape.processes;
    st->threads = p->shape.threads;
    st->submitted = walls__load_relaxed(&p->submitted);
    st->completed = walls__load_relaxed(&p->completed);
    for (unsigned s = 0; s <= WALLS_BROKEN; s++)
        st->by_status[s] = walls__load_relaxed(&p->by_status[s]);
    st->in_flight = walls__load_relaxed(&p->in_flight);
    st->latency_p50_ns = walls__hist_percentile(p->hist, p->counted, 50);
    st->latency_p99_ns = walls__hist_percentile(p->hist, p->counted, 99);
    st->restarts = walls__load_relaxed(&p->restarts);
    st->recycled = walls__load_relaxed(&p->recycled);
    walls__pool_unlock(pool);
    return 0;
}
