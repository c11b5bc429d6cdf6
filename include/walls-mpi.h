/*
 * walls-mpi.h - walls pools across the ranks of an MPI job (libwalls-mpi).
 *
 * One rank, rank 0 of the communicator, holds an ordinary walls_pool: it
 * submits, waits, cancels and destroys as on one machine, with the calls of
 * walls.h. Every other rank calls walls_mpi_serve(), runs a walls pool of
 * its own (process or hybrid placement: a crash stays in its task), and
 * runs there the tasks rank 0 sends it. Rank 0 only dispatches: it runs no
 * task itself.
 *
 *   rank 0                                 ranks 1..N-1
 *   walls_mpi_pool_create(&pool, comm, o)  walls_mpi_serve(comm, local)
 *   walls_submit(pool, fn, ...)  ------>   walls_submit(local pool, fn, ...)
 *   walls_wait(task, ...)        <------   its result: status, code, output
 *   walls_pool_destroy(pool, 0)  ------>   walls_mpi_serve() returns 0
 *
 * Every rank must run the same executable (task functions travel as a
 * module and an offset in it); rank 0 checks that (the executable's
 * contents and the walls version: a shared library holding task
 * functions must be the same file at the same path everywhere, unchecked)
 * and refuses another build. The library is separate from libwalls so
 * that the core never depends on MPI; it needs MPI initialised with
 * MPI_THREAD_MULTIPLE on rank 0 (walls talks MPI from a thread of its
 * own). A serving rank talks MPI only from the thread in
 * walls_mpi_serve(), which under MPI_THREAD_FUNNELED or below must be the
 * thread that initialised MPI. Destroy the pool before MPI_Finalize(); one
 * still alive then is destroyed by it, with WALLS_CANCEL (but not one
 * another thread is destroying at that moment). docs/scale-out.md says
 * how to run it across machines and what is guaranteed.
 */
#ifndef WALLS_MPI_H
#define WALLS_MPI_H

#include <mpi.h>

#include "walls.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * walls_mpi_pool_create - on rank 0 of comm: a pool whose workers are the
 * pools of ranks 1..N-1 (collective: the other ranks call walls_mpi_serve()
 * on the same comm). opts is rank 0's: its placement, sandbox and limits
 * are what a serving rank uses when it passes NULL as its own, and its
 * max_output and time limits hold for every task wherever it runs. An
 * arena, locks and a shared region are memory of one machine: a pool
 * across ranks has none (-ENOTSUP). Tasks are dealt to ranks by their free
 * capacity: a rank is given no more tasks at once than it has workers, and
 * a task that waits behind a busy rank moves to one that idles.
 *
 * The pool works with every call of walls.h that takes a walls_pool or its
 * tasks. walls_pool_stats() sums over the ranks (walls_mpi_pool_rank_stats
 * gives each); walls_pool_explain() names each rank, its host and its pool.
 *
 * Time limits are rank 0's: at a task's deadline rank 0 asks its rank to
 * stop it (the rank's pool kills its worker), and the task ends as
 * WALLS_TIMEOUT; walls_cancel() stops a running task the same way. A rank
 * that does not answer such a request within 5 s is given up: the task
 * ends with the status asked for, and that worker of the rank is given no
 * more tasks; once every worker of every rank is given up, the tasks still
 * waiting end as WALLS_BROKEN. A task without a time limit waits for its
 * rank as long as it takes.
 *
 * A rank whose own pool breaks (a crash loop past restart_limit, or its
 * fork server gone) ends the task it was given as WALLS_BROKEN and is
 * given no more: the others take what waits, and once every rank is
 * broken so is the pool (walls_pool_stats(): broken 1), its waiting tasks
 * ending WALLS_BROKEN. walls_pool_reset() has every broken rank reset its
 * pool and take tasks again, whether or not the whole pool broke; a rank
 * whose pool cannot come back breaks again on its next task. A rank given
 * up for not answering does not come back: a reset with only such ranks
 * is -ECHILD, and a pool left with no rank at all breaks again.
 *
 * The program may free comm while the pool lives (walls keeps a
 * duplicate of its own).
 *
 * One pool per communicator at a time: its ranks serve it until it is
 * destroyed (another pool at once takes another communicator, a
 * MPI_Comm_dup() of this one for instance).
 *
 * Errors: -EINVAL (pool or opts invalid, comm MPI_COMM_NULL, this is not
 * rank 0, or comm has a single rank); -EBUSY (a pool of this process on
 * comm is alive); -ENOENT (a sandbox_read_paths entry does not exist
 * here: paths are checked on rank 0's file system, as a pool of this
 * machine checks them); -ENOTSUP (arena, locks or shared
 * region asked for; MPI not initialised, or below MPI_THREAD_MULTIPLE);
 * -ENOEXEC (a rank runs another executable, or another version of walls);
 * -ECHILD (a rank could not create its pool: walls_last_error() names the
 * rank and its reason); -ENOMEM; -EAGAIN, -EMFILE, -ENFILE (rank 0 could
 * not start its relay thread or make the pool's descriptor). On an error
 * every serving rank's walls_mpi_serve() returns an error too. Options
 * are checked here as walls_pool_create() checks them, but the sandbox
 * as the serving ranks' kernels will apply it: a layer this kernel lacks
 * is no error here.
 */
int walls_mpi_pool_create(walls_pool **pool, MPI_Comm comm, const struct walls_pool_opts *opts);

/*
 * walls_mpi_serve - on every rank of comm but 0: create this rank's pool
 * from local (NULL: rank 0's options), run the tasks rank 0 sends, and
 * return when rank 0 destroys its pool. local's placement must keep a
 * crash inside its task: WALLS_PROCESSES or WALLS_HYBRID (WALLS_AUTO
 * chooses as if WALLS_NEED_CRASH_ISOLATION were among its needs, and a
 * rank given WALLS_THREADS by rank 0 runs processes instead). Its
 * max_output is rank 0's, whatever local says, and so are time limits:
 * local's task_timeout_ms is not used (a task rank 0 gave no limit runs
 * as long as it takes; one with a limit is stopped when rank 0 asks). The rank sleeps between
 * messages (up to 1 ms, as rank 0's own relay does): MPI gives nothing
 * to wait on without spinning.
 *
 * Returns 0 once rank 0 destroyed its pool. Errors: -EINVAL (comm
 * MPI_COMM_NULL, called on rank 0, or local asks for WALLS_THREADS, an
 * arena, locks or a shared region); -ENOTSUP (MPI not initialised);
 * -ENOEXEC (this rank's executable or walls differs from rank 0's); -ECHILD
 * (this rank's pool could not be created, or rank 0 gave up the pool
 * while creating it, for instance because another rank runs another
 * build: walls_last_error() says which); -EPROTO (rank 0 sent something
 * walls does not send).
 */
int walls_mpi_serve(MPI_Comm comm, const struct walls_pool_opts *local);

/*
 * walls_mpi_pool_rank_stats - the part of pool's statistics one serving
 * rank accounts for, as rank 0 saw it: the tasks it was given (submitted),
 * finished (completed, by_status), runs now (in_flight), its placement,
 * processes and threads, and the restarts and recycling its pool last
 * reported. queued is 0 (tasks wait at rank 0, never at a rank), and the
 * latency percentiles are those of its tasks from their sending at rank 0
 * to their results' arrival there.
 *
 * Errors: -EINVAL (stats NULL, or rank not a serving rank of the pool);
 * -EBADF (destroyed pool); -ENOTSUP (pool is not one of
 * walls_mpi_pool_create()'s).
 */
int walls_mpi_pool_rank_stats(walls_pool *pool, int rank, struct walls_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
