/*
 * aof.c - the append-only file: replay at start, and the writer that
 * moves committed records from the shared ring to the file.
 *
 * A backend puts a write command's record in the ring while it holds the
 * command's stripes (store.c: kv_aof_append), so records of one key are in
 * the order their commands ran. A record is PENDING until its transaction
 * commits (COMMITTED) or is undone (ABORTED), by its backend or, if that
 * died, by whoever recovers its stripes; the writer takes records in ring
 * order, waiting at a PENDING one, and writes the committed ones to the
 * file. Under appendfsync always the front holds a batch's replies until
 * the file is synced past its last record; everysec syncs once a second;
 * no leaves it to the kernel.
 *
 * The file holds the commands as RESP, as Redis's does, so a torn last
 * record (the server killed mid-write) is told from a damaged file: the
 * first is dropped with a log line, the second stops the start.
 */
#define _GNU_SOURCE
#include "aof.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kv_aof_replay(struct server *srv, const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return 0;
    }
    const char *buf = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (buf == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct resp_parser parser;
    resp_parser_init(&parser);
    struct kv_out out = {0};
    size_t pos = 0, commands = 0;
    int rc = 0;
    int64_t started = mono_ms();
    while (pos < size) {
        size_t need = 0;
        const char *err = NULL;
        /* Records are arrays: an inline line is damage, not a command. */
        ssize_t n = buf[pos] == '*' ? resp_parse(&parser, buf + pos, size - pos, &need, &err) : -1;
        if (n < 0 && !err)
            err = "not a RESP array";
        if (n == 0) {
            /* Killed while writing its last record: that record never
             * reached a client as done under always, nor counts under the
             * others' terms. Dropped, and said. */
            kv_log(srv, "the append-only file ends with a torn record (%zu bytes at %zu): "
                        "dropped",
                   size - pos, pos);
            if (ftruncate(fd, (off_t)pos) != 0)
                rc = -errno;
            break;
        }
        if (n < 0) {
            fprintf(stderr, "walls-kv: %s is damaged at byte %zu (%s): not started\n", path, pos,
                    err);
            rc = -EILSEQ;
            break;
        }
        pos += (size_t)n;
        if (parser.argc == 0)
            continue;
        out.len = 0;
        out.failed = false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct kv_ctx c = {.st = &srv->st,
                           .argv = parser.argv,
                           .argc = parser.argc,
                           .out = &out,
                           .now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                           .loading = true,
                           .lazy = true};
        int r = kv_run(&c);
        if (c.in_txn) {
            if (r == 0 && !c.txn.full)
                kv_txn_commit(&c.txn);
            else
                kv_txn_abort(&c.txn);
        }
        kv_collect(&srv->st);
        commands++;
    }
    free(out.p);
    resp_parser_fini(&parser);
    munmap((void *)(uintptr_t)buf, size);
    close(fd);
    if (rc == 0)
        kv_log(srv, "DB loaded from append only file: %zu commands in %.3f seconds", commands,
               (double)(mono_ms() - started) / 1000);
    return rc;
}

/* ---- the writer ------------------------------------------------------------ */

static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* Whether the record at pos (below the head) is no longer pending. */
static bool ready_at(struct server *srv, uint64_t pos)
{
    struct kv_header *hdr = srv->st.hdr;
    if (pos >= __atomic_load_n(&hdr->aof_head, __ATOMIC_ACQUIRE))
        return false;
    struct kv_aof_rec *rec = kv_at(&srv->st, hdr->aof_off + pos % hdr->aof_size);
    return __atomic_load_n(&rec->state, __ATOMIC_ACQUIRE) != KV_AOF_PENDING;
}

void kv_aof_kick(struct server *srv)
{
    /* The bump first: a writer that read the bell before it sees the new
     * value and does not sleep; one that reads it after sees what the
     * task committed. Then a wake only if it may sleep already. */
    __atomic_fetch_add(&srv->aof_bell, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&srv->aof_asleep, __ATOMIC_SEQ_CST))
        syscall(SYS_futex, &srv->aof_bell, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *writer_main(void *arg)
{
    struct server *srv = arg;
    struct kv_header *hdr = srv->st.hdr;
    struct kv_info *info = kv_info_of(&srv->st);
    uint64_t size = hdr->aof_size;
    int64_t last_sync = mono_ms();
    bool unsynced = false;
    struct iovec iov[64];
    for (;;) {
        uint64_t head = __atomic_load_n(&hdr->aof_head, __ATOMIC_ACQUIRE);
        uint64_t pos = hdr->aof_tail;
        int n = 0;
        size_t bytes = 0;
        while (pos < head && n < 64) {
            struct kv_aof_rec *rec = kv_at(&srv->st, hdr->aof_off + pos % size);
            uint32_t state = __atomic_load_n(&rec->state, __ATOMIC_ACQUIRE);
            if (state == KV_AOF_PENDING)
                break;
            if (state == KV_AOF_COMMITTED) {
                iov[n].iov_base = rec + 1;
                iov[n].iov_len = rec->len;
                bytes += rec->len;
                n++;
            }
            pos += sizeof *rec + ((rec->len + 15u) & ~15u);
        }
        if (n > 0) {
            int rc = write_all(srv->aof_fd, iov, n);
            if (rc != 0) {
                /* Replies wait under always; say why, and try again,
                 * unless stopping for longer than the stop's bound (a
                 * disk that stays full must not hold the stop forever). */
                kv_log(srv, "writing the append-only file: %s", strerror(-rc));
                if (__atomic_load_n(&srv->aof_stop, __ATOMIC_ACQUIRE) &&
                    mono_ms() - srv->aof_stop_ms > 2000)
                    break;
                struct timespec nap = {0, 100000000};
                nanosleep(&nap, NULL);
                continue;
            }
            __atomic_fetch_add(&info->aof_size, bytes, __ATOMIC_RELAXED);
            unsynced = true;
        }
        if (pos != hdr->aof_tail)
            __atomic_store_n(&hdr->aof_tail, pos, __ATOMIC_RELEASE);
        int64_t now = mono_ms();
        if (unsynced && (srv->aof_mode == KV_FSYNC_ALWAYS ||
                         (srv->aof_mode == KV_FSYNC_EVERYSEC && now - last_sync >= 1000))) {
            fdatasync(srv->aof_fd);
            last_sync = now;
            unsynced = false;
        }
        if (srv->aof_mode != KV_FSYNC_ALWAYS || !unsynced) {
            uint64_t was = __atomic_load_n(&hdr->aof_synced, __ATOMIC_RELAXED);
            if (was != pos) {
                __atomic_store_n(&hdr->aof_synced, pos, __ATOMIC_RELEASE);
                if (srv->aof_mode == KV_FSYNC_ALWAYS)
                    kv_front_wake_all(srv);
            }
        }
        if (pos == head || n == 0) {
            if (__atomic_load_n(&srv->aof_stop, __ATOMIC_ACQUIRE) &&
                (pos == head || now - srv->aof_stop_ms > 2000))
                break;
            /* Under load (this round wrote), nap 100 us: the next round
             * then takes whatever the tasks committed meanwhile in one
             * write, and the fronts need not wake us per task. */
            if (n > 0 && !__atomic_load_n(&srv->aof_stop, __ATOMIC_ACQUIRE)) {
                struct timespec nap = {0, 100000};
                nanosleep(&nap, NULL);
                continue;
            }
            /* Nothing (or only unfinished records) to write: sleep until a
             * task of the backends ends (its records are committed or
             * undone by then), the next sync is due, a stop, or 10 ms.
             * Looking every 100 us here too cost an idle server 10,000
             * wake-ups a second. The 10 ms bound is for what cannot kick
             * us: a backend in another process that found the ring full
             * while its task is still running (it waits for room holding
             * its stripes, so no task may end until we write). */
            int64_t wait_ms = 10;
            if (unsynced && srv->aof_mode == KV_FSYNC_EVERYSEC && last_sync + 1000 - now < wait_ms)
                wait_ms = last_sync + 1000 - now < 1 ? 1 : last_sync + 1000 - now;
            uint32_t seen = __atomic_load_n(&srv->aof_bell, __ATOMIC_ACQUIRE);
            __atomic_store_n(&srv->aof_asleep, 1, __ATOMIC_SEQ_CST);
            /* A kick after `seen` changed the bell: the wait returns at once. */
            if (__atomic_load_n(&hdr->aof_head, __ATOMIC_ACQUIRE) == head && !ready_at(srv, pos)) {
                struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
                syscall(SYS_futex, &srv->aof_bell, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
            }
            __atomic_store_n(&srv->aof_asleep, 0, __ATOMIC_RELAXED);
        }
    }
    if (unsynced || srv->aof_mode != KV_FSYNC_NO)
        fdatasync(srv->aof_fd);
    return NULL;
}

int kv_aof_open(struct server *srv, const char *path)
{
    srv->aof_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (srv->aof_fd < 0)
        return -errno;
    struct stat sb;
    if (fstat(srv->aof_fd, &sb) == 0)
        kv_info_of(&srv->st)->aof_size = (uint64_t)sb.st_size;
    return 0;
}

int kv_aof_start(struct server *srv)
{
    int rc = pthread_create(&srv->aof_thread, NULL, writer_main, srv);
    if (rc != 0)
        return -rc;
    srv->aof_running = true;
    return 0;
}

void kv_aof_stop(struct server *srv)
{
    if (!srv->aof_running)
        return;
    srv->aof_stop_ms = mono_ms();
    __atomic_store_n(&srv->aof_stop, 1, __ATOMIC_RELEASE);
    kv_aof_kick(srv);
    pthread_join(srv->aof_thread, NULL);
    srv->aof_running = false;
}
