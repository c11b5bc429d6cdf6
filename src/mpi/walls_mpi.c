/*
 * walls_mpi.c - libwalls-mpi: a walls pool across the ranks of an MPI job
 * (walls-mpi.h).
 *
 * Rank 0's pool is a relay pool of libwalls (relay.h): its lanes are the
 * workers of the serving ranks, and this file is its transport, MPI
 * messages on a duplicate of the caller's communicator (so that they never
 * meet the program's own). A serving rank runs an ordinary walls pool,
 * through walls.h alone, and answers each task with its result.
 *
 *   rank 0                          rank r
 *   HELLO (executable, options) --> creates its pool
 *                               <-- READY (its shape, or why not)
 *   GO, or ABORT (and why)      -->
 *   MODULE, TASK, CANCEL        --> runs them
 *                               <-- RESULT
 *   STOP                        --> destroys its pool
 *                               <-- STOPPED
 *
 * Every message is one MPI_BYTE message: a header, then the bytes it
 * carries. Nothing a rank sends is believed beyond its length: results are
 * checked against the lane and request they name (relay_backend.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "walls-mpi.h"

enum tag {
    T_HELLO = 0x5741,
    T_READY,
    T_GO,
    T_ABORT,
    T_MODULE,
    T_TASK,
    T_CANCEL,
    T_RESULT,
    T_STOP,
    T_STOPPED,
    T_RESET,
};

#define MAGIC 0x77616c6c734d5049ull /* "wallsMPI" */
#define PROTOCOL 1u
#define TEXT_MAX 1024
#define READ_PATHS_MAX 8
#define READ_PATH_LEN 256
#define CLOSE_WAIT_NS 10000000000LL
#define LANES_MAX (256u * 64u) /* a pool's workers at most: processes x threads */
#define MODULES_MAX 256u       /* a pool's modules at most */
#define SPIN_NS 200000
#define NAP_STEP_NS 20000
#define NAP_MAX_NS 1000000

struct hello {
    uint64_t magic;
    uint32_t protocol;
    uint32_t abort_err; /* not 0: rank 0 gave up already (-errno); make no pool */
    uint64_t exe;       /* fingerprint of rank 0's executable */
    char version[16];
    struct walls_pool_opts opts; /* sandbox_read_paths travel below */
    uint32_t npaths;
    char paths[READ_PATHS_MAX][READ_PATH_LEN];
};

struct ready {
    int32_t err;
    uint32_t lanes, processes, threads, placement;
    uint64_t exe;
    char host[64];
    char text[TEXT_MAX]; /* its pool's explanation, or why it has none */
};

struct abort_msg {
    int32_t err;
    char text[TEXT_MAX];
};

struct module_msg {
    uint32_t module;
    char path[4096];
};

struct task_msg {
    uint32_t lane, seq;
    uint32_t module;
    uint32_t pad;
    uint64_t offset;
    uint64_t in_len;
};

struct cancel_msg {
    uint32_t lane, seq;
};

struct result_msg {
    uint32_t lane, seq;
    int32_t status, code;
    uint32_t flags, pad;
    uint64_t out_len;
    uint64_t restarts, recycled;
};

/* ---- messages ----------------------------------------------------------------------- */

/* A send still under way: its buffer lives until MPI is done with it. */
struct pending {
    MPI_Request req;
    struct pending *next;
    unsigned char data[];
};

struct link {
    MPI_Comm comm;
    struct pending *sends;
    unsigned char *rbuf;
    size_t rcap;
};

static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The reason of this thread's last failure, also handed to libwalls for
 * walls_last_error(). */
static __thread char last_text[TEXT_MAX + 128];

static int fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_text, sizeof last_text, fmt, ap);
    va_end(ap);
    walls__relay_fail(err, last_text);
    return err;
}

/* Sends header and data as one message, without waiting for it. */
static int post(struct link *l, int dest, int tag, const void *hdr, size_t hlen, const void *data,
                size_t dlen)
{
    if (hlen + dlen > (size_t)INT32_MAX)
        return -E2BIG;
    struct pending *p = malloc(sizeof *p + hlen + dlen);
    if (!p)
        return -ENOMEM;
    memcpy(p->data, hdr, hlen);
    if (dlen)
        memcpy(p->data + hlen, data, dlen);
    if (MPI_Isend(p->data, (int)(hlen + dlen), MPI_BYTE, dest, tag, l->comm, &p->req) !=
        MPI_SUCCESS) {
        free(p);
        return -EIO;
    }
    p->next = l->sends;
    l->sends = p;
    return 0;
}

/* Frees the sends MPI is done with. Returns how many. */
static int reap_sends(struct link *l)
{
    int n = 0;
    for (struct pending **pp = &l->sends; *pp;) {
        int done = 0;
        MPI_Test(&(*pp)->req, &done, MPI_STATUS_IGNORE);
        if (!done) {
            pp = &(*pp)->next;
            continue;
        }
        struct pending *p = *pp;
        *pp = p->next;
        free(p);
        n++;
    }
    return n;
}

/* Sends a small message that must go out even without memory for a
 * buffer of its own. */
static void post_surely(struct link *l, int dest, int tag, const void *hdr, size_t hlen)
{
    if (post(l, dest, tag, hdr, hlen, NULL, 0) != 0)
        MPI_Send(hdr, (int)hlen, MPI_BYTE, dest, tag, l->comm);
}

/* Gives up the sends still under way (to a rank that went silent): each
 * is cancelled, and one MPI will not let go of is left with its buffer. */
static void drop_sends(struct link *l)
{
    for (struct pending *p = l->sends; p; p = p->next)
        MPI_Cancel(&p->req);
    for (int tries = 0; l->sends && tries < 100; tries++) {
        reap_sends(l);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    while (l->sends) {
        struct pending *p = l->sends;
        l->sends = p->next;
        MPI_Request_free(&p->req); /* its buffer stays: MPI may still read it */
    }
}

static void flush_sends(struct link *l)
{
    while (l->sends) {
        MPI_Wait(&l->sends->req, MPI_STATUS_IGNORE);
        struct pending *p = l->sends;
        l->sends = p->next;
        free(p);
    }
}

/* Receives a message matched by a probe into l->rbuf. Returns its length,
 * or -ENOMEM (the message is then received and dropped). */
static long take(struct link *l, MPI_Message *msg, MPI_Status *st)
{
    int count = 0;
    MPI_Get_count(st, MPI_BYTE, &count);
    if ((size_t)count > l->rcap) {
        unsigned char *p = realloc(l->rbuf, (size_t)count);
        if (!p) {
            /* A matched message must be received whole, and walls cannot
             * go on without it: say so, and end the job. */
            fprintf(stderr, "walls-mpi: no memory for a message of %d bytes from rank %d\n",
                    count, st->MPI_SOURCE);
            MPI_Abort(l->comm, 1);
            return -ENOMEM;
        }
        l->rbuf = p;
        l->rcap = (size_t)count;
    }
    MPI_Mrecv(l->rbuf, count, MPI_BYTE, msg, st);
    return count;
}

/* Waits for one message of tag from src (MPI_ANY_SOURCE), without the
 * busy wait of a blocking receive. Returns its length, -ETIMEDOUT past
 * limit_ns (0: none), or -ENOMEM. */
static long await(struct link *l, int src, int tag, MPI_Status *st, int64_t limit_ns)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long nap = 0;
    for (;;) {
        int flag = 0;
        MPI_Message msg;
        MPI_Improbe(src, tag, l->comm, &flag, &msg, st);
        if (flag)
            return take(l, &msg, st);
        reap_sends(l);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent = (now.tv_sec - t0.tv_sec) * 1000000000LL + (now.tv_nsec - t0.tv_nsec);
        if (limit_ns && spent > limit_ns)
            return -ETIMEDOUT;
        nap = nap < NAP_MAX_NS ? nap + NAP_STEP_NS : NAP_MAX_NS;
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
    }
}

/* ---- the executable ------------------------------------------------------------------- */

/* FNV-1a over this process's executable and the walls version: ranks that
 * disagree on either cannot name task functions to each other. */
static uint64_t fingerprint(void)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const char *v = walls_version();
    for (; *v; v++)
        h = (h ^ (unsigned char)*v) * 0x100000001b3ull;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return h;
    unsigned char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ull;
    close(fd);
    return h;
}

static bool mpi_usable(void)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized;
}

/* ---- rank 0: the relay's transport ---------------------------------------------------- */

struct hub {
    struct link link;
    int size;
    bool live; /* GO was sent: closing stops the ranks */
    MPI_Comm user;  /* the communicator the program gave, marked busy */
    bool marked;    /* [busy_lock] it carries this hub as its attribute */
    bool user_gone; /* [atomic] the program freed it: its mark went with it */
};

/* A communicator whose pool is alive carries an attribute (the hub): a
 * second pool on it would wait for ever in the collective calls below,
 * which its ranks do not make while they serve the first. The attribute
 * goes with the communicator if the program frees it first (its delete
 * callback tells the hub so). [busy_lock] */
static int busy_key = MPI_KEYVAL_INVALID;
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;

static int busy_deleted(MPI_Comm comm, int key, void *value, void *extra)
{
    (void)comm, (void)key, (void)extra;
    /* Atomic: the program's MPI_Comm_free() calls this from its thread. */
    __atomic_store_n(&((struct hub *)value)->user_gone, true, __ATOMIC_RELEASE);
    return MPI_SUCCESS;
}

/* Marks comm busy with h, unless it is already: then false. */
static bool busy_take(MPI_Comm comm, struct hub *h)
{
    pthread_mutex_lock(&busy_lock);
    bool taken = false;
    if (busy_key == MPI_KEYVAL_INVALID &&
        MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, busy_deleted, &busy_key, NULL) !=
            MPI_SUCCESS)
        busy_key = MPI_KEYVAL_INVALID;
    if (busy_key != MPI_KEYVAL_INVALID) {
        void *value = NULL;
        int flag = 0;
        MPI_Comm_get_attr(comm, busy_key, &value, &flag);
        if (!flag) {
            h->user = comm;
            h->marked = MPI_Comm_set_attr(comm, busy_key, h) == MPI_SUCCESS;
        }
        taken = !flag;
    } else {
        taken = true; /* no keyval: not checked */
    }
    pthread_mutex_unlock(&busy_lock);
    return taken;
}

static void busy_release(struct hub *h)
{
    pthread_mutex_lock(&busy_lock);
    if (h->marked && !__atomic_load_n(&h->user_gone, __ATOMIC_ACQUIRE))
        MPI_Comm_delete_attr(h->user, busy_key);
    h->marked = false;
    pthread_mutex_unlock(&busy_lock);
}

static int hub_module(void *ctx, unsigned peer, uint16_t module, const char *path)
{
    struct hub *h = ctx;
    struct module_msg m = {.module = module};
    size_t len = strlen(path);
    if (len >= sizeof m.path)
        return -ENAMETOOLONG;
    memcpy(m.path, path, len + 1);
    return post(&h->link, (int)peer + 1, T_MODULE, &m, offsetof(struct module_msg, path) + len + 1,
                NULL, 0);
}

static int hub_task(void *ctx, unsigned peer, const struct walls__relay_task *t)
{
    struct hub *h = ctx;
    struct task_msg m = {.lane = t->lane, .seq = t->seq, .module = t->module,
                         .offset = t->offset, .in_len = t->in_len};
    return post(&h->link, (int)peer + 1, T_TASK, &m, sizeof m, t->in, t->in_len);
}

static int hub_cancel(void *ctx, unsigned peer, unsigned lane, uint32_t seq)
{
    struct hub *h = ctx;
    struct cancel_msg m = {.lane = lane, .seq = seq};
    return post(&h->link, (int)peer + 1, T_CANCEL, &m, sizeof m, NULL, 0);
}

static int hub_reset(void *ctx, unsigned peer)
{
    struct hub *h = ctx;
    uint32_t none = 0;
    return post(&h->link, (int)peer + 1, T_RESET, &none, sizeof none, NULL, 0);
}

static int hub_poll(void *ctx, walls__relay_deliver *deliver, void *relay)
{
    struct hub *h = ctx;
    int n = reap_sends(&h->link);
    for (int k = 0; k < 64; k++) {
        int flag = 0;
        MPI_Message msg;
        MPI_Status st;
        MPI_Improbe(MPI_ANY_SOURCE, T_RESULT, h->link.comm, &flag, &msg, &st);
        if (!flag)
            break;
        n++;
        long len = take(&h->link, &msg, &st);
        struct result_msg m;
        if (len < (long)sizeof m || st.MPI_SOURCE <= 0 || st.MPI_SOURCE >= h->size)
            continue;
        memcpy(&m, h->link.rbuf, sizeof m);
        if (m.out_len != (uint64_t)len - sizeof m)
            continue;
        struct walls__relay_result res = {
            .peer = (unsigned)st.MPI_SOURCE - 1, .lane = m.lane, .seq = m.seq,
            .status = m.status, .code = m.code, .flags = m.flags,
            .out = h->link.rbuf + sizeof m, .out_len = (size_t)m.out_len,
            .restarts = m.restarts, .recycled = m.recycled};
        deliver(relay, &res);
    }
    return n;
}

/* Tells every rank the pool is over: STOP once it was running, ABORT
 * (with err and text) while it was being created. */
static void hub_end(struct hub *h, int err, const char *text)
{
    bool silent = false;
    if (h->live) {
        for (int r = 1; r < h->size; r++)
            post_surely(&h->link, r, T_STOP, "", 0);
        /* Each answers STOPPED; results of tasks given up on may come first. */
        int waiting = h->size - 1;
        while (waiting > 0) {
            MPI_Status st;
            long len = await(&h->link, MPI_ANY_SOURCE, MPI_ANY_TAG, &st, CLOSE_WAIT_NS);
            if (len == -ETIMEDOUT) {
                silent = true;
                break;
            }
            if (st.MPI_TAG == T_STOPPED)
                waiting--;
        }
    } else {
        struct abort_msg m = {.err = err};
        snprintf(m.text, sizeof m.text, "%s", text ? text : "");
        for (int r = 1; r < h->size; r++)
            post_surely(&h->link, r, T_ABORT, &m, sizeof m);
    }
    if (silent)
        drop_sends(&h->link); /* a silent rank may never take them */
    else
        flush_sends(&h->link);
    busy_release(h);
    free(h->link.rbuf);
    MPI_Comm_free(&h->link.comm);
    free(h);
}

static void hub_close(void *ctx)
{
    hub_end(ctx, -ECHILD, "rank 0 could not make its pool");
}

static const struct walls__relay_ops hub_ops = {
    .module = hub_module,
    .task = hub_task,
    .cancel = hub_cancel,
    .reset = hub_reset,
    .poll = hub_poll,
    .close = hub_close,
};

/* Rank 0's own checks, before any rank makes a pool. */
static int check_create(walls_pool **out, const struct walls_pool_opts *opts)
{
    static const char call[] = "walls_mpi_pool_create";
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (!out)
        return fail(-EINVAL, "%s: pool (the out-parameter) is NULL", call);
    if (level < MPI_THREAD_MULTIPLE)
        return fail(-ENOTSUP, "%s: MPI runs at thread level %d; rank 0 needs "
                              "MPI_THREAD_MULTIPLE (MPI_Init_thread), for walls talks MPI from "
                              "a thread of its own",
                    call, level);
    int rc = walls__relay_check(opts);
    if (rc)
        return fail(rc, "%s", walls_last_error());
    if (opts && opts->sandbox_read_paths) {
        unsigned n = 0;
        while (n <= READ_PATHS_MAX && opts->sandbox_read_paths[n])
            if (strlen(opts->sandbox_read_paths[n++]) >= READ_PATH_LEN)
                return fail(-EINVAL, "%s: opts.sandbox_read_paths[%u] is too long", call, n - 1);
        if (n > READ_PATHS_MAX)
            return fail(-EINVAL, "%s: opts.sandbox_read_paths has more than %d paths", call,
                        READ_PATHS_MAX);
    }
    return 0;
}

static void pack_hello(struct hello *m, const struct walls_pool_opts *opts, uint64_t exe,
                       int err)
{
    memset(m, 0, sizeof *m);
    m->abort_err = (uint32_t)err;
    m->magic = MAGIC;
    m->protocol = PROTOCOL;
    m->exe = exe;
    snprintf(m->version, sizeof m->version, "%s", walls_version());
    if (opts)
        m->opts = *opts;
    if (opts && opts->sandbox_read_paths)
        for (; m->npaths < READ_PATHS_MAX && opts->sandbox_read_paths[m->npaths]; m->npaths++)
            snprintf(m->paths[m->npaths], READ_PATH_LEN, "%s", opts->sandbox_read_paths[m->npaths]);
    m->opts.sandbox_read_paths = NULL;
}

/* MPI_Finalize deletes MPI_COMM_SELF's attributes first: a pool still
 * alive then is destroyed, so that the serving ranks return. */
static int finalize_pool(MPI_Comm comm, int keyval, void *value, void *extra)
{
    (void)comm, (void)extra;
    walls_pool_destroy(value, WALLS_CANCEL); /* -EBADF when it was destroyed already */
    MPI_Comm_free_keyval(&keyval);
    return MPI_SUCCESS;
}

int walls_mpi_pool_create(walls_pool **out, MPI_Comm comm, const struct walls_pool_opts *opts)
{
    static const char call[] = "walls_mpi_pool_create";
    if (!mpi_usable())
        return fail(-ENOTSUP, "%s: MPI is not initialised, or finalised already", call);
    if (comm == MPI_COMM_NULL)
        return fail(-EINVAL, "%s: comm is MPI_COMM_NULL", call);
    int rank = 0, size = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (rank != 0)
        return fail(-EINVAL, "%s: called on rank %d; rank 0 creates the pool, the others call "
                             "walls_mpi_serve()",
                    call, rank);
    if (size < 2)
        return fail(-EINVAL, "%s: the communicator has one rank: no rank would serve", call);
    struct hub *h = calloc(1, sizeof *h);
    if (h && !busy_take(comm, h)) {
        free(h);
        return fail(-EBUSY, "%s: a pool on this communicator is alive: its ranks serve it until "
                            "it is destroyed (a second pool at once needs another "
                            "communicator, MPI_Comm_dup() of this one for instance)",
                    call);
    }

    /* From here on every rank hears how it ends, so that none waits. */
    MPI_Comm dup;
    MPI_Comm_dup(comm, &dup);
    if (!h) {
        fprintf(stderr, "walls_mpi_pool_create: no memory to tell the ranks so\n");
        MPI_Abort(comm, 1);
        return fail(-ENOMEM, "%s: %s", call, walls_strerror(-ENOMEM));
    }
    h->size = size;
    h->link.comm = dup;
    int err = check_create(out, opts);
    char why[TEXT_MAX + 128] = "";
    if (err)
        snprintf(why, sizeof why, "%s", last_text);

    struct hello *hello = malloc(sizeof *hello);
    struct ready *ready = calloc((size_t)size, sizeof *ready);
    struct walls__relay_peer *peers = calloc((size_t)size, sizeof *peers);
    char *explain = malloc(2048);
    if (!hello || !ready || !peers || !explain) {
        if (!err)
            snprintf(why, sizeof why, "%s: %s", call, walls_strerror(-ENOMEM));
        err = err ? err : -ENOMEM;
    }
    uint64_t exe = fingerprint();
    if (hello)
        pack_hello(hello, err ? NULL : opts, exe, err);
    /* Without memory for it, an empty greeting: the ranks answer it as
     * one walls does not send, and are told to give up. */
    for (int r = 1; r < size; r++)
        MPI_Send(hello, hello ? (int)sizeof *hello : 0, MPI_BYTE, r, T_HELLO, h->link.comm);
    /* Every rank answers, whatever rank 0's own verdict. */
    for (int r = 1; r < size; r++) {
        MPI_Status st;
        long len = await(&h->link, r, T_READY, &st, 0);
        struct ready rd;
        memset(&rd, 0, sizeof rd);
        if (len == (long)sizeof rd)
            memcpy(&rd, h->link.rbuf, sizeof rd);
        else
            rd.err = -EPROTO;
        rd.host[sizeof rd.host - 1] = rd.text[sizeof rd.text - 1] = '\0';
        if (ready)
            ready[r] = rd;
        if (err)
            continue;
        if (rd.err == 0 && rd.exe != exe)
            rd.err = -ENOEXEC;
        if (rd.err == -ENOEXEC) {
            err = -ENOEXEC;
            snprintf(why, sizeof why, "%s: rank %d%s%s runs another executable, or another "
                     "walls, than rank 0: every rank must run the same build",
                     call, r, rd.host[0] ? " on " : "", rd.host);
        } else if (rd.err) {
            err = -ECHILD;
            snprintf(why, sizeof why, "%s: rank %d%s%s could not make its pool: %.900s", call, r,
                     rd.host[0] ? " on " : "", rd.host, rd.text);
        } else if (rd.lanes == 0) {
            err = -EPROTO;
            snprintf(why, sizeof why, "%s: rank %d reported a pool without workers", call, r);
        }
    }
    if (err) {
        hub_end(h, err, why);
        free(hello), free(ready), free(peers), free(explain);
        return fail(err == -EPROTO ? -ECHILD : err, "%s", why);
    }

    size_t at = (size_t)snprintf(explain, 2048, "across %d serving ranks of an MPI job (rank 0 "
                                 "dispatches, and runs no task)", size - 1);
    for (int r = 1; r < size; r++) {
        peers[r - 1] = (struct walls__relay_peer){
            .lanes = ready[r].lanes, .placement = (enum walls_placement)ready[r].placement,
            .processes = ready[r].processes, .threads = ready[r].threads};
        if (at < 2048)
            at += (size_t)snprintf(explain + at, 2048 - at, "; rank %d on %s: %s", r,
                                   ready[r].host, ready[r].text);
    }
    struct walls__relay_conf conf = {
        .ops = &hub_ops, .ctx = h, .npeers = (unsigned)size - 1, .peers = peers,
        .placement = peers[0].placement, .threads = peers[0].threads, .explain = explain};
    err = walls__relay_pool_create(out, opts, &conf); /* closes h when it fails */
    free(hello), free(ready), free(peers), free(explain);
    if (err)
        return err;
    h->live = true;
    for (int r = 1; r < size; r++)
        MPI_Send("", 0, MPI_BYTE, r, T_GO, h->link.comm);
    int keyval;
    if (MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, finalize_pool, &keyval, NULL) ==
        MPI_SUCCESS)
        MPI_Comm_set_attr(MPI_COMM_SELF, keyval, *out);
    return 0;
}

int walls_mpi_pool_rank_stats(walls_pool *pool, int rank, struct walls_stats *stats)
{
    /* The pool is judged before the rank: a destroyed pool is -EBADF, and
     * one of one machine -ENOTSUP, whatever rank is asked for. */
    int rc = walls__relay_peer_stats(pool, rank < 1 ? UINT_MAX : (unsigned)rank - 1, stats);
    if (rc == -EINVAL && stats && rank < 1)
        return fail(-EINVAL, "walls_mpi_pool_rank_stats: rank %d does not serve the pool (ranks "
                             "1 and up do)",
                    rank);
    return rc;
}

/* ---- the other ranks -------------------------------------------------------------------- */

struct slot {
    walls_task *task;
    uint32_t seq;
};

struct server {
    struct link link;
    walls_pool *pool;
    struct slot *slots; /* by rank 0's lane */
    unsigned nslots;
    char *modules[MODULES_MAX];
    uintptr_t bases[MODULES_MAX];
    uint64_t restarts, recycled; /* its pool's, as last read */
};

static void answer(struct server *s, uint32_t lane, uint32_t seq, int status, int code,
                   unsigned flags, const void *out, size_t out_len)
{
    struct result_msg m = {.lane = lane, .seq = seq, .status = status, .code = code,
                           .flags = flags, .out_len = out_len, .restarts = s->restarts,
                           .recycled = s->recycled};
    if (post(&s->link, 0, T_RESULT, &m, sizeof m, out, out_len) != 0) {
        /* No memory for the output: the task's end is still told. */
        m.status = WALLS_FAILED;
        m.code = -ENOMEM;
        m.out_len = 0;
        while (post(&s->link, 0, T_RESULT, &m, sizeof m, NULL, 0) != 0)
            flush_sends(&s->link);
    }
}

static void run_task(struct server *s, const unsigned char *p, size_t len)
{
    struct task_msg m;
    if (len < sizeof m)
        return;
    memcpy(&m, p, sizeof m);
    if (m.in_len != len - sizeof m || m.lane >= LANES_MAX)
        return; /* no lane of rank 0's: nobody to answer */
    if (m.lane >= s->nslots) {
        unsigned n = m.lane + 1 > 2 * s->nslots ? m.lane + 1 : 2 * s->nslots;
        struct slot *grown = realloc(s->slots, n * sizeof *grown);
        if (!grown) {
            answer(s, m.lane, m.seq, WALLS_FAILED, -ENOMEM, 0, NULL, 0);
            return;
        }
        memset(grown + s->nslots, 0, (n - s->nslots) * sizeof *grown);
        s->slots = grown;
        s->nslots = n;
    }
    int rc = -ENOENT;
    walls_fn *fn = NULL;
    if (m.module < MODULES_MAX && s->modules[m.module]) {
        rc = 0;
        if (!s->bases[m.module])
            rc = walls__module_base(s->modules[m.module], &s->bases[m.module]);
        if (rc == 0)
            fn = (walls_fn *)(s->bases[m.module] + (uintptr_t)m.offset);
    }
    walls_task *task = NULL;
    if (fn) {
        /* No limit of this rank's own: rank 0 holds every task's, its
         * pool's or the task's (none included), and asks for the stop. */
        struct walls_task_opts to = {.timeout_ms = -1, .user = (void *)(uintptr_t)(m.lane + 1u)};
        rc = walls_submit_ex(s->pool, fn, m.in_len ? p + sizeof m : NULL, (size_t)m.in_len, &to,
                             &task);
    }
    if (rc) {
        answer(s, m.lane, m.seq, WALLS_FAILED, rc, 0, NULL, 0);
        return;
    }
    if (s->slots[m.lane].task) /* rank 0 never gives a lane two at once */
        walls_task_free(s->slots[m.lane].task);
    s->slots[m.lane] = (struct slot){task, m.seq};
}

/* Sends the results of what finished. Returns how many. */
static int finished(struct server *s)
{
    walls_task *done[64];
    size_t n = 0;
    if (walls_pool_collect(s->pool, done, 64, &n) != 0 || n == 0)
        return 0;
    /* Its pool's counters go with these results, read once for them. */
    struct walls_stats st;
    if (walls_pool_stats(s->pool, &st) == 0) {
        s->restarts = st.restarts;
        s->recycled = st.recycled;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t lane = (uint32_t)((uintptr_t)walls_task_user(done[i]) - 1u);
        struct walls_result res;
        if (lane < s->nslots && s->slots[lane].task == done[i] &&
            walls_wait(done[i], 0, &res) == 0) {
            answer(s, lane, s->slots[lane].seq, res.status, res.code, res.flags, res.out,
                   res.out_len);
            s->slots[lane].task = NULL;
        }
        walls_task_free(done[i]);
    }
    return (int)n;
}

/* This rank's pool options: local's, or rank 0's, made to keep a crash in
 * its task. Returns 0 or -EINVAL with the reason in why. */
static int serve_opts(const struct walls_pool_opts *local, const struct hello *hello,
                      const char **paths, struct walls_pool_opts *o, char *why, size_t len)
{
    if (local) {
        *o = *local;
        if (o->placement == WALLS_THREADS) {
            snprintf(why, len, "walls_mpi_serve: local placement WALLS_THREADS: a crash would "
                               "end the rank and the job; use WALLS_PROCESSES or WALLS_HYBRID");
            return -EINVAL;
        }
        if (o->arena_size || o->locks || o->shared_size) {
            snprintf(why, len, "walls_mpi_serve: an arena, locks and a shared region are memory "
                               "of one machine; a pool across ranks has none");
            return -EINVAL;
        }
    } else {
        *o = hello->opts;
        for (uint32_t i = 0; i < hello->npaths && i < READ_PATHS_MAX; i++)
            paths[i] = hello->paths[i];
        o->sandbox_read_paths = hello->npaths ? paths : NULL;
        if (o->placement == WALLS_THREADS)
            o->placement = WALLS_PROCESSES;
    }
    if (o->placement == WALLS_AUTO)
        o->needs |= WALLS_NEED_CRASH_ISOLATION;
    o->max_output = hello->opts.max_output;
    o->task_timeout_ms = 0; /* unused: run_task() gives none (rank 0's hold) */
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int serve_loop(struct server *s)
{
    int fd = walls_pool_fd(s->pool);
    long nap = 0;
    int64_t last_did = now_ns();
    for (;;) {
        int did = reap_sends(&s->link);
        for (int k = 0; k < 64; k++) {
            int flag = 0;
            MPI_Message msg;
            MPI_Status st;
            MPI_Improbe(0, MPI_ANY_TAG, s->link.comm, &flag, &msg, &st);
            if (!flag)
                break;
            did++;
            long len = take(&s->link, &msg, &st);
            if (len < 0)
                continue;
            const unsigned char *p = s->link.rbuf;
            switch (st.MPI_TAG) {
            case T_MODULE: {
                struct module_msg m;
                if (len <= (long)offsetof(struct module_msg, path) || len > (long)sizeof m)
                    break;
                memcpy(&m, p, (size_t)len);
                m.path[len - (long)offsetof(struct module_msg, path) - 1] = '\0';
                if (m.module < MODULES_MAX && !s->modules[m.module])
                    s->modules[m.module] = strdup(m.path);
                break;
            }
            case T_TASK:
                run_task(s, p, (size_t)len);
                break;
            case T_CANCEL: {
                struct cancel_msg m;
                if (len != (long)sizeof m)
                    break;
                memcpy(&m, p, sizeof m);
                if (m.lane < s->nslots && s->slots[m.lane].task && s->slots[m.lane].seq == m.seq)
                    walls_cancel(s->slots[m.lane].task);
                break;
            }
            case T_RESET:
                /* Rank 0's walls_pool_reset(), for this rank's broken
                 * pool; one that cannot come back answers WALLS_BROKEN
                 * again, and is given nothing more. */
                walls_pool_reset(s->pool);
                break;
            case T_STOP:
                return 0;
            default:
                return -EPROTO;
            }
        }
        did += finished(s);
        int64_t now = now_ns();
        if (did) {
            last_did = now;
            nap = 0;
            continue;
        }
        /* As rank 0's relay: only yield for a while after the last thing
         * that happened, then sleep a little longer each round, or until a
         * task of this rank's pool finishes. */
        if (now - last_did < SPIN_NS) {
            sched_yield();
            continue;
        }
        nap = nap < NAP_MAX_NS ? nap + NAP_STEP_NS : NAP_MAX_NS;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        struct timespec ts = {0, nap};
        ppoll(&pfd, 1, &ts, NULL);
    }
}

int walls_mpi_serve(MPI_Comm comm, const struct walls_pool_opts *local)
{
    static const char call[] = "walls_mpi_serve";
    if (!mpi_usable())
        return fail(-ENOTSUP, "%s: MPI is not initialised, or finalised already", call);
    if (comm == MPI_COMM_NULL)
        return fail(-EINVAL, "%s: comm is MPI_COMM_NULL", call);
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0)
        return fail(-EINVAL, "%s: called on rank 0, which creates the pool "
                             "(walls_mpi_pool_create)",
                    call);
    struct server *s = calloc(1, sizeof *s);
    struct hello *hello = malloc(sizeof *hello);
    struct ready *ready = calloc(1, sizeof *ready);
    MPI_Comm dup;
    MPI_Comm_dup(comm, &dup);
    if (!s || !hello || !ready) {
        /* Nothing to answer with: rank 0 waits for this rank, so say
         * nothing and end the job's hope at once. */
        fprintf(stderr, "walls_mpi_serve: rank %d: out of memory\n", rank);
        MPI_Abort(comm, 1);
        return -ENOMEM;
    }
    s->link.comm = dup;
    MPI_Status st;
    long len = await(&s->link, 0, T_HELLO, &st, 0);
    int err = 0;
    char why[TEXT_MAX + 128] = "";
    if (len != (long)sizeof *hello) {
        err = -EPROTO;
        snprintf(why, sizeof why, "%s: rank 0 sent a greeting walls does not send", call);
    } else {
        memcpy(hello, s->link.rbuf, sizeof *hello);
        if (hello->magic != MAGIC || hello->protocol != PROTOCOL) {
            err = -ENOEXEC;
            snprintf(why, sizeof why, "%s: rank 0 speaks another walls-mpi protocol", call);
        }
    }
    ready->exe = fingerprint();
    gethostname(ready->host, sizeof ready->host - 1);
    if (!err && hello->exe != ready->exe) {
        err = -ENOEXEC;
        snprintf(why, sizeof why, "%s: rank %d runs another executable, or another walls, than "
                 "rank 0: every rank must run the same build",
                 call, rank);
    }
    if (!err && hello->abort_err) {
        err = -ECHILD;
        snprintf(why, sizeof why, "%s: rank 0 gave the pool up before it was made", call);
    }
    struct walls_pool_opts o;
    const char *paths[READ_PATHS_MAX + 1] = {0};
    if (!err)
        err = serve_opts(local, hello, paths, &o, why, sizeof why);
    if (!err && walls_pool_create(&s->pool, &o) != 0) {
        err = -ECHILD;
        snprintf(why, sizeof why, "%s", walls_last_error());
    }
    if (!err) {
        struct walls_stats stats;
        walls_pool_stats(s->pool, &stats);
        ready->placement = stats.placement;
        ready->processes = stats.processes;
        ready->threads = stats.threads;
        ready->lanes = stats.placement == WALLS_HYBRID ? stats.processes * stats.threads
                                                        : stats.processes;
        walls_pool_explain(s->pool, ready->text, sizeof ready->text);
    } else {
        snprintf(ready->text, sizeof ready->text, "%.1000s", why);
    }
    ready->err = err;
    MPI_Send(ready, (int)sizeof *ready, MPI_BYTE, 0, T_READY, dup);
    /* GO, or ABORT and why. */
    len = await(&s->link, 0, MPI_ANY_TAG, &st, 0);
    if (!err && st.MPI_TAG != T_GO) {
        struct abort_msg m = {.err = -ECHILD};
        if (st.MPI_TAG == T_ABORT && len == (long)sizeof m)
            memcpy(&m, s->link.rbuf, sizeof m);
        m.text[sizeof m.text - 1] = '\0';
        err = st.MPI_TAG == T_ABORT ? -ECHILD : -EPROTO;
        snprintf(why, sizeof why, "%s: rank 0 gave the pool up: %.900s", call, m.text);
    }
    if (!err) {
        /* Naps end when asked, not up to 50 us later; the caller's thread
         * gets its own slack back. */
        int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
        err = serve_loop(s);
        if (slack > 0)
            prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
        if (err)
            snprintf(why, sizeof why, "%s: rank 0 sent a message walls does not send", call);
    }
    if (s->pool)
        walls_pool_destroy(s->pool, WALLS_CANCEL);
    if (!err)
        post(&s->link, 0, T_STOPPED, "", 0, NULL, 0);
    flush_sends(&s->link);
    MPI_Comm_free(&dup);
    for (unsigned i = 0; i < MODULES_MAX; i++)
        free(s->modules[i]);
    free(s->slots);
    free(s->link.rbuf);
    free(s);
    free(hello);
    free(ready);
    return err ? fail(err, "%s", why) : 0;
}
