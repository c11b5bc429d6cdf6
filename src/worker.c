/*
 * worker.c - the consumer side of a mailbox, shared by thread and process
 * workers.
 *
 * The loop takes requests in ring order, runs each task with its input read
 * in place from the request slot and its output written in place into the
 * next completion slot, then hands the request slot back and publishes the
 * completion. The host never has more requests outstanding than the
 * completion ring holds, so publishing never waits.
 *
 * A process worker also lives here: it maps its mailbox, says it is ready,
 * and locates task functions by (module, offset), loading a module with
 * dlopen() when the host loaded it after the fork server started.
 */
#define _GNU_SOURCE
#include "worker.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"

#define MASK (WALLS__RING_SLOTS - 1)

static uint32_t wait_for_request(struct walls__mailbox *mb, uint32_t head, bool shared)
{
    /* Acquire: the slot contents are visible once the tail is. */
    uint32_t tail = walls__load_acquire(&mb->rq.tail);
    if (tail != head)
        return tail;
    int64_t until = walls__now_ns() + WALLS__WORKER_SPIN_NS;
    do {
        for (int i = 0; i < 64; i++) {
            walls__cpu_relax();
            tail = walls__load_acquire(&mb->rq.tail);
            if (tail != head)
                return tail;
        }
        /* With more runnable threads than CPUs, let the producer run. */
        sched_yield();
    } while (walls__now_ns() < until);
    for (;;) {
        /* Seq-cst add: the host reads this count after its full fence, so
         * either it sees us counted or we see its new tail below. */
        walls__fetch_add(&mb->rq.tail_waiters, 1);
        tail = walls__load_acquire(&mb->rq.tail);
        if (tail == head)
            walls__futex_wait(&mb->rq.tail, head, -1, shared);
        walls__fetch_add(&mb->rq.tail_waiters, (uint32_t)-1);
        tail = walls__load_acquire(&mb->rq.tail);
        if (tail != head)
            return tail;
    }
}

static void run_task(struct walls__mailbox *mb, struct walls__req *req, struct walls__cqe *cqe,
                     const struct walls__worker_hooks *hooks)
{
    uint32_t expected = WALLS__SLOT_QUEUED;
    if (!walls__cas(&req->state, &expected, WALLS__SLOT_RUNNING)) {
        cqe->kind = WALLS__CQE_ACK; /* cancelled by the host before it started */
        return;
    }
    int err = 0;
    walls_fn *fn = hooks->resolve(hooks->ctx, req->module, req->offset, &err);
    /* When the clock of a time limit starts; the host bounds this claim by
     * what it saw itself. */
    walls__store_relaxed(&mb->current_start_ns, (uint64_t)walls__now_ns());
    walls__store_release(&mb->current_seq, req->seq);
    if (!fn) {
        cqe->kind = WALLS__CQE_NOFN;
        cqe->code = err;
        return;
    }
    uint32_t in_len = req->in_len < WALLS__SLOT_DATA ? req->in_len : WALLS__SLOT_DATA;
    uint32_t out_cap = req->out_cap < WALLS__SLOT_DATA ? req->out_cap : WALLS__SLOT_DATA;
    struct walls_call call = {
        .in = req->data, .in_len = in_len, .out = cqe->data, .out_cap = out_cap, .out_len = 0};
    int rc = fn(&call);
    cqe->kind = WALLS__CQE_DONE;
    if (call.out_len > out_cap) {
        /* The task broke its side of the contract, not this loop: say so,
         * and keep the worker. */
        cqe->status = WALLS_PROTOCOL;
        cqe->code = 0;
        cqe->out_len = 0;
        return;
    }
    cqe->status = rc == 0 ? WALLS_OK : WALLS_FAILED;
    cqe->code = rc;
    cqe->out_len = (uint32_t)call.out_len;
}

void walls__worker_loop(struct walls__mailbox *mb, const struct walls__worker_hooks *hooks,
                        bool shared)
{
    uint32_t head = walls__load_relaxed(&mb->rq.head);
    uint32_t ctail = walls__load_relaxed(&mb->cq.tail);
    for (;;) {
        uint32_t tail = wait_for_request(mb, head, shared);
        while (head != tail) {
            struct walls__req *req = &mb->rq_slots[head & MASK];
            struct walls__cqe *cqe = &mb->cq_slots[ctail & MASK];
            bool stop = false;
            cqe->seq = req->seq;
            cqe->tag = req->tag;
            cqe->status = 0;
            cqe->code = 0;
            cqe->out_len = 0;
            switch (req->kind) {
            case WALLS__REQ_TASK:
                run_task(mb, req, cqe, hooks);
                break;
            case WALLS__REQ_MODULE: {
                char path[WALLS__SLOT_DATA];
                uint32_t n = req->in_len < WALLS__SLOT_DATA ? req->in_len : WALLS__SLOT_DATA - 1;
                memcpy(path, req->data, n);
                path[n] = '\0';
                cqe->kind = WALLS__CQE_ACK;
                cqe->code = hooks->define_module ? hooks->define_module(hooks->ctx, req->module, path)
                                                 : 0;
                break;
            }
            case WALLS__REQ_STOP:
            default:
                cqe->kind = WALLS__CQE_ACK;
                stop = true;
                break;
            }
            head++;
            ctail++;
            /* Release: the task is done with the request slot before the
             * host may refill it, and the completion's bytes are written
             * before the host can see the new tail. */
            walls__store_release(&mb->rq.head, head);
            walls__store_release(&mb->cq.tail, ctail);
            hooks->published(hooks->ctx, head != tail);
            if (stop)
                return;
        }
    }
}

/* ---- process workers ---------------------------------------------------- */

struct module_slot {
    char *path;
    uintptr_t base;
    bool resolved;
};

struct proc_ctx {
    struct walls__mailbox *mb;
    int doorbell;
    struct module_slot modules[WALLS__MAX_MODULES];
};

static int main_program_base(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    /* The first object reported is the main program. */
    *(uintptr_t *)data = (uintptr_t)info->dlpi_addr;
    return 1;
}

int walls__module_define(void *ctx, uint16_t module, const char *path)
{
    struct proc_ctx *pc = ctx;
    if (module >= WALLS__MAX_MODULES)
        return -EINVAL;
    struct module_slot *slot = &pc->modules[module];
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    free(slot->path);
    slot->path = copy;
    slot->resolved = false;
    return 0;
}

walls_fn *walls__module_resolve(void *ctx, uint16_t module, uint64_t offset, int *err)
{
    struct proc_ctx *pc = ctx;
    if (module >= WALLS__MAX_MODULES || !pc->modules[module].path) {
        *err = -ENOENT;
        return NULL;
    }
    struct module_slot *slot = &pc->modules[module];
    if (!slot->resolved) {
        if (slot->path[0] == '\0') {
            dl_iterate_phdr(main_program_base, &slot->base);
        } else {
            void *handle = dlopen(slot->path, RTLD_NOW | RTLD_NOLOAD);
            if (!handle)
                handle = dlopen(slot->path, RTLD_NOW | RTLD_LOCAL);
            struct link_map *lm = NULL;
            if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
                *err = -ENOENT;
                return NULL;
            }
            slot->base = (uintptr_t)lm->l_addr; /* the handle stays open */
        }
        slot->resolved = true;
    }
    return (walls_fn *)(slot->base + (uintptr_t)offset);
}

static walls_fn *proc_resolve(void *ctx, uint16_t module, uint64_t offset, int *err)
{
    return walls__module_resolve(ctx, module, offset, err);
}

static void proc_published(void *ctx, bool more)
{
    struct proc_ctx *pc = ctx;
    /* Full fence: the completion tail is stored before we look at the
     * host's flags; the host stores a flag before it looks at our tail. */
    walls__fence();
    if (walls__load_relaxed(&pc->mb->doorbell_armed) ||
        (!more && walls__load_relaxed(&pc->mb->refill_armed))) {
        uint64_t one = 1;
        ssize_t rc = write(pc->doorbell, &one, sizeof one);
        (void)rc;
    }
}

int walls__worker_process_main(int mailbox_fd, int doorbell_fd)
{
    static struct proc_ctx pc;
    void *map = mmap(NULL, WALLS__MAILBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mailbox_fd, 0);
    if (map == MAP_FAILED)
        return errno > 0 && errno < 120 ? errno : EIO;
    close(mailbox_fd);
    struct walls__mailbox *mb = map;
    if (mb->magic != WALLS__MAILBOX_MAGIC || mb->version != WALLS__MAILBOX_VERSION)
        return EPROTO;
    pc.mb = mb;
    pc.doorbell = doorbell_fd;
    mb->worker_pid = (uint32_t)getpid();
    /* Release: the host sees our pid before it sees READY. */
    walls__store_release(&mb->worker_state, WALLS__WORKER_READY);
    uint64_t one = 1;
    ssize_t rc = write(doorbell_fd, &one, sizeof one);
    (void)rc;
    struct walls__worker_hooks hooks = {
        .resolve = proc_resolve,
        .define_module = walls__module_define,
        .published = proc_published,
        .ctx = &pc,
    };
    walls__worker_loop(mb, &hooks, true);
    return 0;
}
