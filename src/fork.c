/*
 * fork.c - what walls does about fork() in the program.
 *
 * Pools do not survive a fork(): a child of the program gets copies of its
 * parent's pools and tasks, whose workers, rings and locks are its
 * parent's. Every handle records the process that made it, and every call
 * checks that against the calling process before it touches anything, so
 * a child's calls on inherited handles are refused at once (-EPERM) and
 * its parent is left alone.
 *
 * Handles carry their process's epoch too (walls__epoch: 7 bits, none of
 * its ancestors', up to 127 generations), so that a handle made by another
 * process after the fork (a descendant's sent up, the program's given to
 * a worker's task) names none of this process's entries, and is refused
 * as well.
 *
 * The check must be cheap (it sits on submit and wait): the process's id
 * is kept in a page marked MADV_WIPEONFORK, which any fork gives the child
 * as zeros, so the child finds 0 there and learns its own id once. Where
 * the kernel lacks that, a pthread_atfork() child handler clears the page
 * instead (raw clone() then goes unseen).
 *
 * The same handlers take walls' global locks (the handle tables, the fork
 * server's handle, the arena serials, the sandbox probe) across fork(), so
 * that a child may make pools of its own, and make the child forget its
 * parent's fork server and close its copy of the fork server's control
 * socket: a child that outlives its parent must not keep the parent's
 * workers alive. (A child made without fork(), which these handlers never
 * see, keeps its copy; the fork server also watches the program's pidfd,
 * and ends when the program does.)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomic.h"
#include "internal.h"

static pid_t *self_page;
static bool wiped; /* the kernel wipes self_page in every child, raw clones too */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void prepare(void)
{
    walls__forkserver_at_fork(WALLS__FORK_PREPARE);
    walls__tables_at_fork(WALLS__FORK_PREPARE);
    walls__arena_at_fork(WALLS__FORK_PREPARE);
    walls__sandbox_at_fork(WALLS__FORK_PREPARE);
}

static void after(enum walls__fork_phase phase)
{
    walls__sandbox_at_fork(phase);
    walls__arena_at_fork(phase);
    walls__tables_at_fork(phase);
    walls__forkserver_at_fork(phase);
}

static void in_parent(void)
{
    after(WALLS__FORK_PARENT);
}

static void in_child(void)
{
    if (self_page) {
        walls__store_relaxed(self_page, 0);
        walls__store_relaxed((uint32_t *)&self_page[1], 0);
    }
    after(WALLS__FORK_CHILD);
}

static void setup(void)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED) {
        /* Without MADV_WIPEONFORK (Linux 4.14) the child handler clears it. */
        wiped = madvise(page, 4096, MADV_WIPEONFORK) == 0;
        self_page = page;
    }
    pthread_atfork(prepare, in_parent, in_child);
}

void walls__fork_reset(void)
{
    after(WALLS__FORK_RESET);
}

void walls__fork_handlers(void)
{
    pthread_once(&once, setup);
}

bool walls__self_exact(void)
{
    if (!self_page)
        walls__fork_handlers();
    return wiped;
}

/* This process's epoch (mine) and the set of every ancestor's (bit e of
 * word e / 64), in memory a fork() copies: a child finds its parent's
 * there, and its parent's slot in self_page wiped. With 127 epochs, a
 * chain of up to 127 processes that use walls has no two alike; only past
 * that (the set full) does a process take one an ancestor has. */
static uint32_t mine;
static uint64_t ancestors[2];

static bool in_set(const uint64_t set[2], uint32_t e)
{
    return (set[e / 64] >> (e % 64)) & 1u;
}

static uint32_t learn_epoch(void)
{
    pid_t pid = walls__self();
    uint32_t e = self_page ? walls__load_relaxed((uint32_t *)&self_page[1])
                           : walls__load_relaxed(&mine);
    if (e)
        return e;
    /* From the pid (siblings differ most likely), then the next one that
     * no ancestor has. Every thread that gets here computes the same value
     * from the same inherited ones; the one that publishes it first
     * records it for this process's own children. */
    uint32_t parent = walls__load_relaxed(&mine);
    uint64_t avoid[2] = {walls__load_relaxed(&ancestors[0]), walls__load_relaxed(&ancestors[1])};
    if (parent >= 1 && parent <= 127)
        avoid[parent / 64] |= (uint64_t)1 << (parent % 64);
    uint32_t first = (uint32_t)pid % 127u + 1u;
    e = first;
    while (in_set(avoid, e)) {
        e = e % 127u + 1u;
        if (e == first)
            break; /* every epoch is an ancestor's: take the pid's */
    }
    uint32_t none = 0;
    if (!self_page) {
        /* No page: one epoch for the program. */
        __atomic_compare_exchange_n(&mine, &none, e, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        return walls__load_relaxed(&mine);
    }
    if (__atomic_compare_exchange_n((uint32_t *)&self_page[1], &none, e, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        walls__store_relaxed(&ancestors[0], avoid[0]);
        walls__store_relaxed(&ancestors[1], avoid[1]);
        walls__store_relaxed(&mine, e);
        return e;
    }
    return none;
}

uint32_t walls__epoch(void)
{
    uint32_t e = self_page ? walls__load_relaxed((uint32_t *)&self_page[1]) : 0;
    return e ? e : learn_epoch();
}

void walls__epoch_lineage(uint32_t *epoch, uint64_t ancestry[2])
{
    *epoch = walls__epoch();
    ancestry[0] = walls__load_relaxed(&ancestors[0]);
    ancestry[1] = walls__load_relaxed(&ancestors[1]);
}

/* Before this process learned an epoch of its own (the fork server's
 * constructor): it then avoids the lineage's, and so do its children. */
void walls__epoch_adopt(uint32_t epoch, const uint64_t ancestry[2])
{
    if (epoch < 1 || epoch > 127 || (ancestry[0] & 1u))
        return; /* not a lineage this library writes */
    walls__store_relaxed(&mine, epoch);
    walls__store_relaxed(&ancestors[0], ancestry[0]);
    walls__store_relaxed(&ancestors[1], ancestry[1]);
}

pid_t walls__self(void)
{
    if (!self_page) {
        walls__fork_handlers();
        if (!self_page)
            return getpid();
    }
    pid_t pid = walls__load_relaxed(self_page);
    if (pid == 0) {
        pid = getpid();
        walls__store_relaxed(self_page, pid);
    }
    return pid;
}
