/*
 * options.c - a pool's options turned into its shape (see options.h).
 *
 * The seed's rules: a pool that needs crash isolation or runs untrusted
 * input gets worker processes, one per usable CPU for CPU-bound work, and
 * processes that each hold a few threads for IO-bound work; a pool that
 * needs neither gets threads of the host, one per usable CPU (four for
 * IO-bound work). Options only worker processes have (a sandbox, recycling,
 * a memory limit) count as a need for them: AUTO never drops them by
 * choosing threads, and an explicit WALLS_THREADS with one is refused.
 * This is the one place where the placement decides anything; everything
 * after works through the backend picked here.
 */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "internal.h"
#include "pool.h"
#include "sandbox.h"

int64_t walls__ms_to_ns(int64_t ms)
{
    return ms > INT64_MAX / 4000000 ? INT64_MAX / 4 : ms * 1000000;
}

/* Every option checked, the first wrong one named. */
static int check_opts(const struct walls_pool_opts *o)
{
#define BAD(...) walls__fail(-EINVAL, "walls_pool_create: " __VA_ARGS__)
    if ((unsigned)o->placement > WALLS_HYBRID)
        return BAD("opts.placement %u is not a walls_placement", (unsigned)o->placement);
    if ((unsigned)o->workload > WALLS_IO_BOUND)
        return BAD("opts.workload %u is not a walls_workload", (unsigned)o->workload);
    if (o->needs & ~(WALLS_NEED_CRASH_ISOLATION | WALLS_NEED_UNTRUSTED))
        return BAD("opts.needs has unknown bits %#x",
                   o->needs & ~(WALLS_NEED_CRASH_ISOLATION | WALLS_NEED_UNTRUSTED));
    if (o->processes > WALLS__MAX_PROCESSES)
        return BAD("opts.processes %u is over %u", o->processes, WALLS__MAX_PROCESSES);
    if (o->threads > WALLS__MAX_THREADS)
        return BAD("opts.threads %u is over %u", o->threads, WALLS__MAX_THREADS);
    if (o->placement == WALLS_HYBRID && o->threads > WALLS__MAX_LANES)
        return BAD("opts.threads %u is over %u threads per hybrid process", o->threads,
                   WALLS__MAX_LANES);
    if (o->task_timeout_ms < 0)
        return BAD("opts.task_timeout_ms %lld is negative", (long long)o->task_timeout_ms);
    if (o->max_output > WALLS_IO_MAX)
        return BAD("opts.max_output %zu is over WALLS_IO_MAX %zu", o->max_output, WALLS_IO_MAX);
    if (o->restart_limit > 100000)
        return BAD("opts.restart_limit %u is over 100000", o->restart_limit);
    if (o->restart_window_ms < 0)
        return BAD("opts.restart_window_ms %lld is negative", (long long)o->restart_window_ms);
    if (o->restart_backoff_ms < 0)
        return BAD("opts.restart_backoff_ms %lld is negative",
                   (long long)o->restart_backoff_ms);
    if (o->lost_retries > 100)
        return BAD("opts.lost_retries %u is over 100", o->lost_retries);
    if (o->sandbox > WALLS_SANDBOX_SECCOMP)
        return BAD("opts.sandbox %u is not a walls_sandbox level", o->sandbox);
    if (o->arena_size > WALLS_ARENA_MAX)
        return BAD("opts.arena_size %zu is over WALLS_ARENA_MAX", o->arena_size);
    if (o->shared_size > WALLS_SHARED_MAX)
        return BAD("opts.shared_size %zu is over WALLS_SHARED_MAX", o->shared_size);
    if (o->locks > WALLS_LOCKS_MAX)
        return BAD("opts.locks %u is over WALLS_LOCKS_MAX %u", o->locks, WALLS_LOCKS_MAX);
    if (o->placement == WALLS_THREADS) {
        /* Threads cannot give what only worker processes have: asking for
         * it with an explicit THREADS placement is a contradiction, never
         * silently dropped. */
        const char *what = (o->needs & WALLS_NEED_CRASH_ISOLATION) ? "WALLS_NEED_CRASH_ISOLATION"
                           : (o->needs & WALLS_NEED_UNTRUSTED)      ? "WALLS_NEED_UNTRUSTED"
                           : o->sandbox                             ? "a sandbox"
                           : o->sandbox_allow                       ? "opts.sandbox_allow"
                           : o->sandbox_fallback                    ? "opts.sandbox_fallback"
                           : o->sandbox_read_paths                  ? "opts.sandbox_read_paths"
                           : o->recycle_after                       ? "opts.recycle_after"
                           : o->recycle_rss                         ? "opts.recycle_rss"
                           : o->worker_memory_limit ? "opts.worker_memory_limit"
                                                    : NULL;
        if (what)
            return BAD("placement WALLS_THREADS cannot give %s: threads share the program's "
                       "process (use WALLS_PROCESSES, WALLS_HYBRID or WALLS_AUTO)",
                       what);
    }
    /* Untrusted input gets the strict sandbox, never less. */
    if ((o->needs & WALLS_NEED_UNTRUSTED) && o->sandbox != WALLS_SANDBOX_NONE &&
        o->sandbox != WALLS_SANDBOX_STRICT)
        return BAD("WALLS_NEED_UNTRUSTED needs the strict sandbox, and opts.sandbox asks for "
                   "a weaker one (%u)",
                   o->sandbox);
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i])
            return BAD("opts.reserved[%zu] is not zero", i);
    return 0;
#undef BAD
}

/* Whether the options ask for something only worker processes give: an
 * isolation need, a sandbox, recycling or a memory limit. Under AUTO that
 * means processes; it never silently means threads without them. */
static bool wants_processes(const struct walls_pool_opts *o)
{
    return (o->needs & (WALLS_NEED_CRASH_ISOLATION | WALLS_NEED_UNTRUSTED)) || o->sandbox ||
           o->sandbox_allow || o->sandbox_fallback || o->sandbox_read_paths ||
           o->recycle_after || o->recycle_rss || o->worker_memory_limit;
}

static void explain(struct walls__plan *plan, const struct walls_pool_opts *o, int cpus,
                    const char *source, const char *sandbox)
{
    bool io = o->workload == WALLS_IO_BOUND;
    const char *why = "placement given by the program";
    if (o->placement == WALLS_AUTO && !o->needs && wants_processes(o)) {
        why = io ? "AUTO: options only processes have (sandbox, recycling, memory limit), "
                   "IO-bound: processes each with threads"
                 : "AUTO: options only processes have (sandbox, recycling, memory limit), "
                   "CPU-bound: one process per CPU";
    } else if (o->placement == WALLS_AUTO) {
        if (!wants_processes(o))
            why = io ? "AUTO: no isolation asked for, IO-bound: threads of this process"
                     : "AUTO: no isolation asked for, CPU-bound: threads of this process";
        else
            why = io ? "AUTO: isolation asked for, IO-bound: processes each with threads"
                     : "AUTO: isolation asked for, CPU-bound: one process per CPU";
    }
    char size[96];
    unsigned t = plan->placement == WALLS_THREADS ? plan->nlanes : plan->lanes_per;
    const char *threads = t == 1 ? "thread" : "threads";
    const char *procs = plan->nprocs == 1 ? "process" : "processes";
    if (plan->placement == WALLS_THREADS)
        snprintf(size, sizeof size, "%u %s (%s)", t, threads,
                 o->threads ? "given" : io ? "4 per usable CPU" : "1 per usable CPU");
    else if (plan->placement == WALLS_PROCESSES)
        snprintf(size, sizeof size, "%u %s (%s)", plan->nprocs, procs,
                 o->processes ? "given" : "1 per usable CPU");
    else
        snprintf(size, sizeof size, "%u %s (%s) x %u %s (%s)", plan->nprocs, procs,
                 o->processes ? "given" : "1 per usable CPU", t, threads,
                 o->threads ? "given" : io ? "4 for IO-bound work" : "1 for CPU-bound work");
    static const char *const names[] = {"auto", "threads", "processes", "hybrid"};
    char arena[160] = "";
    bool staged = plan->sandbox != WALLS_SANDBOX_NONE;
    if (o->arena_size || o->locks)
        snprintf(arena, sizeof arena, "; arena: %zu KiB%s, %u locks",
                 (o->arena_size + 4095) / 4096 * 4,
                 !o->arena_size                     ? ""
                 : plan->placement == WALLS_THREADS ? " (shared memory)"
                 : staged                           ? " (read-only, outputs staged)"
                                                    : " (read-only, outputs in place)",
                 o->locks);
    if (o->shared_size) {
        size_t at = strlen(arena);
        snprintf(arena + at, sizeof arena - at, "; shared region: %zu KiB, writable by every worker",
                 (o->shared_size + 4095) / 4096 * 4);
    }
    snprintf(plan->explain, sizeof plan->explain, "%s: %s; %s; %d usable CPUs from %s%s%s",
             names[plan->placement], size, why, cpus, source, sandbox, arena);
}

int walls__plan_pool(const struct walls_pool_opts *o, struct walls__plan *plan)
{
    memset(plan, 0, sizeof *plan);
    int rc = check_opts(o);
    if (rc)
        return rc;
    bool io = o->workload == WALLS_IO_BOUND;
    plan->placement = o->placement;
    if (plan->placement == WALLS_AUTO)
        plan->placement = !wants_processes(o) ? WALLS_THREADS
                          : io                ? WALLS_HYBRID
                                              : WALLS_PROCESSES;
    plan->backend = plan->placement == WALLS_THREADS ? &walls__thread_backend
                                                     : &walls__proc_backend;
    /* What the sandbox asks of the kernel, checked before anything starts. */
    plan->sandbox = (o->needs & WALLS_NEED_UNTRUSTED) ? WALLS_SANDBOX_STRICT : o->sandbox;
    char sandbox[320] = "";
    if (plan->placement != WALLS_THREADS) {
        plan->conf = malloc(sizeof *plan->conf);
        if (!plan->conf)
            return walls__fail(-ENOMEM, "walls_pool_create: out of memory");
        rc = walls__sandbox_plan(o, plan->sandbox, plan->conf, sandbox, sizeof sandbox);
        if (rc) {
            free(plan->conf);
            plan->conf = NULL;
            return rc;
        }
    }
    const char *source = "affinity mask";
    int cpus = walls__cpu_count_source(&source);
    plan->cpus = cpus > 0 ? (unsigned)cpus : 1u;
    plan->lanes_per = 1;
    if (plan->placement == WALLS_THREADS) {
        unsigned n = o->threads ? o->threads : (unsigned)cpus * (io ? WALLS__IO_THREADS_PER_CPU : 1u);
        plan->nlanes = n > WALLS__MAX_THREADS ? WALLS__MAX_THREADS : n;
    } else {
        unsigned procs = o->processes ? o->processes : (unsigned)cpus;
        plan->nprocs = procs > WALLS__MAX_PROCESSES ? WALLS__MAX_PROCESSES : procs;
        if (plan->placement == WALLS_HYBRID)
            plan->lanes_per = o->threads ? o->threads : io ? WALLS__IO_THREADS_PER_CPU : 1u;
        plan->nlanes = plan->nprocs * plan->lanes_per;
    }
    plan->threads_shown = plan->placement == WALLS_THREADS  ? plan->nlanes
                          : plan->placement == WALLS_HYBRID ? plan->lanes_per
                                                            : 0;
    explain(plan, o, cpus, source, sandbox);
    return 0;
}
