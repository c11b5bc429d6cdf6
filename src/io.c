/*
 * io.c - large inputs and outputs (past the inline slot, up to
 * WALLS_IO_MAX): where the engine puts them for a worker and where it
 * takes the output from. Part of the engine; every function takes the
 * pool's lock held.
 *
 * Each lane has `depth` windows, one per large-I/O request it may have
 * outstanding, given out lowest free first (a thread still running a task
 * that timed out keeps its window until it returns). A window holds one
 * request's input (up to WALLS_IO_MAX) and its output (up to max_output).
 *
 *  - A thread lane reads the task's own copy of its input in place, and
 *    writes its output into the lane's window in an anonymous mapping of
 *    the host.
 *  - A process lane's windows are ranges of its process's two memfds: the
 *    host writes the input into the input one (which the worker may only
 *    read), and reads the bytes the completion claims out of the output
 *    one, through a read-only mapping when the lane's windows are small
 *    (IO_VIEW_MAX). The output memfd is sealed against shrinking, so that
 *    no worker can make that mapping fault in the host. Both memfds are
 *    sparse; the host gives the pages of a window past IO_KEEP back after
 *    each request, and wipes a lane's windows when a new process takes the
 *    lane over.
 *
 * So bytes are copied once each way past the submit copy: the input when
 * the task is dealt (processes), the output into the result.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "internal.h"
#include "tables.h"

/* Pages of a window kept between requests. */
#define IO_KEEP (1024u * 1024u)
/* Output windows take at most this much of a lane's address space. */
#define IO_OUT_SPACE ((uint64_t)1 << 30)
/* A process lane's output windows are mapped in the host too when they
 * take no more than this in all: each output is then one memcpy, without
 * a system call (larger ones are read with pread(), which touches no page
 * table of the host). */
#define IO_VIEW_MAX ((uint64_t)16 << 20)

unsigned walls__io_depth(const struct walls__pool *pool)
{
    if (!pool->out_window)
        return WALLS__IO_DEPTH;
    uint64_t fit = IO_OUT_SPACE / pool->out_window;
    return fit < 1 ? 1 : fit > WALLS__IO_DEPTH ? WALLS__IO_DEPTH : (unsigned)fit;
}

bool walls__io_wanted(const struct walls__pool *pool, const struct walls__task *task)
{
    size_t refs = (task->n_inputs + (task->has_output ? 1u : 0u)) * sizeof(struct walls__bufref);
    return pool->out_window || task->in_len > WALLS__SLOT_DATA - refs;
}

bool walls__io_full(const struct walls__lane *lane)
{
    return lane->io_used == (lane->depth >= 32 ? UINT32_MAX : (1u << lane->depth) - 1);
}

int walls__io_file(int fd, unsigned char *p, uint64_t len, uint64_t off, bool write)
{
    for (uint64_t done = 0; done < len;) {
        size_t n = (size_t)(len - done);
        off_t at = (off_t)(off + done);
        ssize_t rc = write ? pwrite(fd, p + done, n, at) : pread(fd, p + done, n, at);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc < 0 ? -errno : -EIO;
        done += (uint64_t)rc;
    }
    return 0;
}

static uint64_t in_at(const struct walls__lane *lane, unsigned window)
{
    return lane->io_in_base + (uint64_t)window * WALLS__IO_IN_WINDOW;
}

static uint64_t out_at(const struct walls__lane *lane, unsigned window)
{
    return lane->io_out_base + (uint64_t)window * lane->pool->out_window;
}

int walls__io_place(struct walls__pool *pool, struct walls__lane *lane, struct walls__task *task,
                    bool big_in, struct walls__inflight *e, struct walls__io *io)
{
    *io = (struct walls__io){0, 0, 0, 0};
    e->io_in_len = 0;
    e->io_in = NULL;
    unsigned window = (unsigned)__builtin_ctz(~lane->io_used);
    if (big_in) {
        io->in_len = task->in_len;
        if (lane->io_in_fd < 0) {
            io->in_at = (uintptr_t)task->in;
        } else {
            io->in_at = in_at(lane, window);
            int rc = walls__io_file(lane->io_in_fd, task->in, task->in_len, io->in_at, true);
            if (rc != 0)
                return rc;
            e->io_in_len = task->in_len;
        }
    }
    if (pool->out_window) {
        io->out_cap = pool->max_output;
        io->out_at = lane->io_out_fd < 0
                         ? (uintptr_t)lane->io_out_map + (uint64_t)window * pool->out_window
                         : out_at(lane, window);
    }
    e->io_window = window;
    lane->io_used |= 1u << window;
    return 0;
}

unsigned char *walls__io_output(struct walls__lane *lane, const struct walls__inflight *e,
                                uint32_t out_len, int *err)
{
    struct walls__pool *pool = lane->pool;
    if (out_len == 0)
        return NULL;
    unsigned char *buf = walls__buf_alloc(out_len);
    if (!buf) {
        *err = -ENOMEM;
        return NULL;
    }
    if (lane->io_out_fd < 0 || lane->io_out_view) {
        const unsigned char *from = lane->io_out_fd < 0 ? lane->io_out_map : lane->io_out_view;
        memcpy(buf, from + (uint64_t)e->io_window * pool->out_window, out_len);
        return buf;
    }
    int rc = walls__io_file(lane->io_out_fd, buf, out_len, out_at(lane, e->io_window), false);
    if (rc != 0) {
        *err = rc;
        walls__buf_free(buf, out_len);
        return NULL;
    }
    return buf;
}

/* Gives back the pages of a window's range [at, at + len) past IO_KEEP. */
static void trim(int fd, unsigned char *map, uint64_t at, uint64_t len)
{
    len = (len + WALLS__PAGE - 1) & ~(uint64_t)(WALLS__PAGE - 1);
    if (len <= IO_KEEP)
        return;
    if (fd >= 0) {
        /* Most tasks wrote nothing out there: finding no page is a walk of
         * the file's page index, where punching a hole also walks the page
         * tables of every mapping of the range, written or not. */
        off_t data = lseek(fd, (off_t)(at + IO_KEEP), SEEK_DATA);
        if (data < 0 ? errno == ENXIO : (uint64_t)data >= at + len)
            return;
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(at + IO_KEEP),
                  (off_t)(len - IO_KEEP));
    } else {
        madvise(map + at + IO_KEEP, (size_t)(len - IO_KEEP), MADV_DONTNEED);
    }
}

void walls__io_release(struct walls__lane *lane, struct walls__inflight *e)
{
    if (!e->io)
        return;
    struct walls__pool *pool = lane->pool;
    walls__buf_free(e->io_in, e->io_in_keep);
    e->io_in = NULL;
    if (e->io_in_len)
        trim(lane->io_in_fd, NULL, in_at(lane, e->io_window), e->io_in_len);
    /* All of the window: the task may have written anywhere in it. */
    if (pool->out_window)
        trim(lane->io_out_fd, lane->io_out_map,
             lane->io_out_fd < 0 ? (uint64_t)e->io_window * pool->out_window
                                 : out_at(lane, e->io_window),
             pool->out_window);
    e->io_in_len = 0;
    e->io = 0;
    lane->io_used &= ~(1u << e->io_window);
}

void walls__io_lane_reset(struct walls__lane *lane)
{
    struct walls__pool *pool = lane->pool;
    lane->io_used = 0;
    /* A new worker sees nothing of its predecessor's inputs and outputs. */
    if (lane->io_in_fd >= 0)
        fallocate(lane->io_in_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)lane->io_in_base, (off_t)(lane->depth * WALLS__IO_IN_WINDOW));
    if (lane->io_out_fd >= 0 && pool->out_window)
        fallocate(lane->io_out_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)lane->io_out_base, (off_t)(lane->depth * pool->out_window));
}

int walls__io_lane_map(struct walls__lane *lane)
{
    struct walls__pool *pool = lane->pool;
    lane->depth = walls__io_depth(pool);
    if (!pool->out_window)
        return 0;
    size_t size = (size_t)(lane->depth * pool->out_window);
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    lane->io_out_map = map;
    return 0;
}

void walls__io_lane_unmap(struct walls__lane *lane)
{
    if (lane->io_out_map)
        munmap(lane->io_out_map, (size_t)(lane->depth * lane->pool->out_window));
    lane->io_out_map = NULL;
}

int walls__io_view_map(struct walls__lane *lane)
{
    uint64_t size = (uint64_t)lane->depth * lane->pool->out_window;
    lane->io_out_view = NULL;
    if (lane->io_out_fd < 0 || size == 0 || size > IO_VIEW_MAX)
        return 0;
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | MAP_NORESERVE, lane->io_out_fd,
                     (off_t)lane->io_out_base);
    if (map == MAP_FAILED)
        return -errno;
    lane->io_out_view = map;
    return 0;
}

void walls__io_view_unmap(struct walls__lane *lane)
{
    if (lane->io_out_view)
        munmap((void *)(uintptr_t)lane->io_out_view,
               (size_t)((uint64_t)lane->depth * lane->pool->out_window));
    lane->io_out_view = NULL;
}
