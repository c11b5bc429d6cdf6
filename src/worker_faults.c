/*
 * worker_faults.c - how a worker process dies of its own faults, telling
 * the host which of its threads caused it; runs in the worker.
 *
 * A process worker catches the fault signals of its own threads, so that
 * each thread can say in its own lane's mailbox what it died of before the
 * process goes: the host then gives every task the cause its own thread
 * recorded (and LOST to tasks whose threads recorded nothing).
 *
 * In a process with several lanes, two threads may fault at about the same
 * moment. The first one into the handler leads the death: it stops every
 * other lane with a freeze signal and waits (a bounded time) until each has
 * either recorded a fault of its own or parked, and only then dies of its
 * signal. A thread whose fault is pending runs its fault handler before
 * the freeze handler (the kernel delivers synchronous faults, and lower
 * signal numbers, first), so a fault that happened is never lost to a
 * neighbour's quicker death. Everything here is async-signal-safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "futex.h"
#include "internal.h"
#include "worker.h"


uint64_t walls__as_limit;
static struct walls__mailbox *lane_mb[WALLS__MAX_LANES];
static pid_t lane_tid[WALLS__MAX_LANES]; /* set by each lane thread at its start */
static unsigned nlanes;
static pid_t self_pid;
static int freeze_signal;
static uint32_t dying;       /* 1 once a thread leads the process's death */
static uint64_t parked;      /* bit per lane: stopped, or recorded its own fault */
static __thread unsigned my_lane; /* 1 + this thread's lane; 0 for other threads */

/* How long the leader waits for the other lanes: a lane with every signal
 * blocked never answers. */
#define FREEZE_WAIT_NS 250000000

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};

/* AddressSanitizer calls its no-return hook before each call of a
 * _Noreturn function; on the alternate signal stack that hook reads
 * /proc/self/maps, which the sandbox refuses. The handlers that end in
 * park() or die_of() are left uninstrumented. */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ASAN_HOOK __attribute__((no_sanitize("address")))
#else
#define NO_ASAN_HOOK
#endif

/* Whether the address space is within a megabyte of its limit: whether the
 * kernel refuses a megabyte more, asked with a reservation that costs
 * nothing (never accessible, never touched), as every sandbox level
 * allows. Raw system calls and errno kept: this runs in a signal
 * handler. */
static bool near_memory_limit(void)
{
    if (!walls__as_limit)
        return false;
    int saved = errno;
    long p = syscall(SYS_mmap, NULL, (size_t)1 << 20, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    bool near = p == -1 && errno == ENOMEM;
    if (p != -1)
        syscall(SYS_munmap, p, (size_t)1 << 20);
    errno = saved;
    return near;
}

static _Noreturn void park(void)
{
    for (;;)
        walls__futex_wait(&dying, 1, -1, false);
}

/* The leader: freeze every other lane, and wait until each is parked. */
static void stop_other_lanes(void)
{
    uint64_t want = 0;
    for (unsigned i = 0; i < nlanes; i++) {
        pid_t tid = walls__load_relaxed(&lane_tid[i]);
        if (i + 1 == my_lane || tid == 0)
            continue;
        want |= (uint64_t)1 << i;
        syscall(SYS_tgkill, self_pid, tid, freeze_signal);
    }
    int64_t until = walls__now_ns() + FREEZE_WAIT_NS;
    struct timespec nap = {0, 20000};
    while ((walls__load_acquire(&parked) & want) != want && walls__now_ns() < until)
        nanosleep(&nap, NULL);
}

static _Noreturn void die_of(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    /* Not reached: the signal's default action ends the process. */
    syscall(SYS_exit_group, 128 + sig);
    __builtin_unreachable();
}

NO_ASAN_HOOK static void on_fault(int sig)
{
    unsigned lane = my_lane;
    if (lane) {
        struct walls__mailbox *mb = lane_mb[lane - 1];
        if (near_memory_limit())
            walls__store_relaxed(&mb->memory_hit, 1u);
        /* Release: the host reads the record once the process is gone. */
        walls__store_release(&mb->fault_sig, (uint32_t)sig);
    }
    if (nlanes > 1) {
        uint32_t none = 0;
        if (!walls__cas(&dying, &none, 1u)) {
            /* Another thread leads the death: report in, and wait for it. */
            if (lane)
                walls__fetch_or(&parked, (uint64_t)1 << (lane - 1));
            park();
        }
        stop_other_lanes();
    }
    die_of(sig);
}

NO_ASAN_HOOK static void on_freeze(int sig)
{
    (void)sig;
    if (!walls__load_acquire(&dying))
        return; /* not ours: nobody is dying */
    if (my_lane)
        walls__fetch_or(&parked, (uint64_t)1 << (my_lane - 1));
    park();
}

static void on_exit_call(int status, void *arg)
{
    (void)arg;
    if (!my_lane)
        return;
    struct walls__mailbox *mb = lane_mb[my_lane - 1];
    walls__store_relaxed(&mb->exit_code, status);
    walls__store_release(&mb->exited, 1u);
}

/* A task that ends its lane's thread with pthread_exit() ends its
 * process as the task's exit(0) would: the lane records the exit, so its
 * task ends WALLS_EXITED with code 0, and the tasks of the process's other
 * lanes are lost, as in any death. Left alone, the task would never end
 * and its lane would take nothing more. The loop calls this from a
 * cleanup handler around the task: glibc's unwinder reaches it before
 * anything past the task, which matters on a main thread glibc never set
 * up to unwind (a worker forked from a fork server that runs before
 * main()). */
_Noreturn void walls__faults_thread_ended(void)
{
    on_exit_call(0, NULL);
    /* The system call itself: a sanitizer's _exit() would tear down state
     * of a thread that is half gone. */
    syscall(SYS_exit_group, 0);
    __builtin_unreachable();
}

/* Each lane thread's id in a process of several lanes, which the kernel
 * clears (and wakes) when the thread ends, however it ends: the thread
 * asked for that with set_tid_address(). A watcher thread waits on them
 * all. A thread gone by the raw exit system call ran no cleanup; the
 * watcher ends the process for it the same way. Lanes whose loop ended
 * are left to go. In a death of the whole process (a fault, a kill,
 * exit()) the kernel has marked every thread for death before any of them
 * ends, so the watcher never wakes to blame a lane for it. */
static uint32_t lane_alive[WALLS__MAX_LANES];
static uint32_t lane_leaving[WALLS__MAX_LANES];

static uint32_t watcher_running;

static void *watch_lanes(void *arg)
{
    (void)arg;
    bool passed_on[WALLS__MAX_LANES] = {false};
    /* Past glibc's start-up of this thread: the filter may load now. */
    walls__store_release(&watcher_running, 1u);
    walls__futex_wake(&watcher_running, 1, false);
    for (;;) {
        struct futex_waitv w[WALLS__MAX_LANES];
        unsigned n = 0;
        for (unsigned i = 0; i < nlanes; i++) {
            uint32_t tid = walls__load_acquire(&lane_alive[i]);
            if (walls__load_acquire(&lane_leaving[i])) {
                /* The kernel wakes one waiter when a thread ends: if that
                 * was this one, pass it on to the main thread's join. */
                if (tid == 0 && !passed_on[i]) {
                    walls__futex_wake(&lane_alive[i], INT_MAX, true);
                    passed_on[i] = true;
                }
                continue;
            }
            if (tid == 0) {
                struct walls__mailbox *mb = lane_mb[i];
                walls__store_relaxed(&mb->exit_code, 0);
                walls__store_release(&mb->exited, 1u);
                syscall(SYS_exit_group, 0);
            }
            w[n++] = (struct futex_waitv){
                .val = tid, .uaddr = (uintptr_t)&lane_alive[i], .flags = FUTEX_32};
        }
        if (n == 0)
            return NULL;
        /* Shared (no FUTEX2_PRIVATE): the kernel wakes a cleared id so. */
        if (syscall(SYS_futex_waitv, w, n, 0, NULL, CLOCK_MONOTONIC) < 0 && errno == ENOSYS)
            return NULL; /* before Linux 5.16: pthread_exit() is still caught */
    }
}

int walls__faults_watch_lanes(void)
{
    if (nlanes < 2)
        return 0;
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err)
        return err;
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* No signal ever interrupts its wait (a restarted call would meet the
     * filter again). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t watcher;
    err = pthread_create(&watcher, &attr, watch_lanes, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    while (!err && !walls__load_acquire(&watcher_running))
        walls__futex_wait(&watcher_running, 0, -1, false);
    return err;
}

void walls__faults_join_lanes(void)
{
    for (unsigned i = 1; i < nlanes; i++)
        for (uint32_t tid; (tid = walls__load_acquire(&lane_alive[i])) != 0;)
            walls__futex_wait(&lane_alive[i], tid, -1, true);
}

/* A stack overflow must still reach on_fault(). Mapped, not allocated: it
 * lives as long as its thread, which lives as long as the process. */
static void use_alt_stack(void)
{
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return;
    stack_t alt = {.ss_sp = stack, .ss_size = size};
    sigaltstack(&alt, NULL);
}

void walls__faults_become_lane(unsigned lane)
{
    my_lane = lane + 1;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    walls__store_relaxed(&lane_tid[lane], tid);
    walls__store_relaxed(&lane_mb[lane]->tid, (uint32_t)tid);
    use_alt_stack();
    if (nlanes > 1) {
        walls__store_release(&lane_alive[lane], (uint32_t)tid);
        syscall(SYS_set_tid_address, &lane_alive[lane]);
    }
}

void walls__faults_leave_lane(void)
{
    if (my_lane)
        walls__store_release(&lane_leaving[my_lane - 1], 1u);
}

/* A process a task forks shares its worker's mailboxes but is none of its
 * lanes: its exit() or fault must not be recorded as a lane's (an
 * innocent task would later be blamed for it), nor stop the worker's
 * threads. */
static void leave_lanes_in_child(void)
{
    my_lane = 0;
    nlanes = 0;
}

void walls__faults_watch(struct walls__mailbox *const *mbs, unsigned n)
{
    for (unsigned i = 0; i < n && i < WALLS__MAX_LANES; i++)
        lane_mb[i] = mbs[i];
    nlanes = n;
    self_pid = getpid();
    freeze_signal = SIGRTMIN;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    /* No SA_RESETHAND: a second thread's fault of the same kind must reach
     * the handler too. The leader restores the default itself. */
    sa.sa_flags = SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof fault_signals / sizeof fault_signals[0]; i++)
        sigaction(fault_signals[i], &sa, NULL);
    sa.sa_handler = on_freeze;
    sa.sa_flags = SA_ONSTACK;
    sigaction(freeze_signal, &sa, NULL);
    on_exit(on_exit_call, NULL);
    pthread_atfork(NULL, NULL, leave_lanes_in_child);
}
