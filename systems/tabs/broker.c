/*
 * broker.c - the host of the tabs. It holds every capability a tab could
 * want (files, the clock's timers, storage, other tabs) and hands each tab
 * only what it asks for through records it checks byte by byte.
 *
 * Each tab is a walls pool of one worker: a process under the strict
 * sandbox, or in --threads mode one thread of this process (the shared
 * kitchen the benchmarks compare with). The broker is one thread and one
 * poll() loop over the pools' descriptors, its timers and whatever its
 * owner watches (the UI's sockets). A tab has at most one batch of events
 * out at a time, so its events reach it in order; a batch of n events may
 * run n times the per-event limit.
 *
 * A tab whose batch ends in anything but success stops with an outcome,
 * drops what was queued for it, and gives up its process; reload starts it
 * afresh from its script.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tabs.h"

/* Threads that make the pools of tabs added together. */
#define OPENERS 8

/* How long a turn watches its batches before it sleeps. */
#define BROKER_SPIN_NS 50000

struct event {
    struct event *next;
    size_t len;
    int message; /* 1: a message, counted as received when sent to the tab */
    uint8_t data[];
};

struct entry {
    char *key, *value;
    size_t klen, vlen;
};

struct origin {
    struct origin *next;
    char *name;
    struct entry *entries;
    size_t n, cap, bytes;
};

struct timer {
    uint32_t id;
    int64_t due_ms;
};

struct tab {
    char *name, *path;
    struct origin *origin;
    walls_pool *pool;
    int fd;
    walls_task *task;      /* the batch out, or NULL */
    /* Its process, as the tab said at the end of its last batch (its
     * word: a lie ends only itself), watched while it is idle. */
    uint32_t pid;
    int pidfd;
    unsigned batch_msgs;   /* messages in it */
    struct event *head, *tail;
    unsigned queued;
    size_t queued_bytes;
    int store_behind; /* changes were held back: the whole storage is owed */
    struct timer timers[TAB_TIMERS_MAX];
    unsigned ntimers;
    int running, closed;
    int stuck; /* --threads: its thread ran past the limit in C code and runs on */
    int pending; /* added, its pool not made yet: the next turn starts it */
    char create_error[200];
    enum tab_outcome outcome;
    char detail[TAB_LOG_MAX + 64];
    uint64_t sent, received, dropped, events, lua_bytes, cpu_ns;
    double tokens;
    int64_t tokens_ms;
    char last_log[TAB_LOG_MAX + 1];
    char *result_json;
};

struct watch {
    int fd;
    short events;
    broker_io_fn *fn;
    void *arg;
};

struct broker {
    struct broker_opts opts;
    struct tab **tabs;
    size_t n, cap;
    struct origin *origins;
    struct watch *watches;
    size_t nwatch, capwatch;
    broker_msg_fn *on_msg;
    void *on_msg_arg;
    struct pollfd *pfd;
    size_t pfd_cap;
    uint8_t *batch; /* TAB_INPUT_MAX bytes, reused */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tabs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *tab_outcome_name(enum tab_outcome o)
{
    static const char *const names[] = {"ok", "crashed", "violation", "unresponsive",
                                        "out-of-memory", "error"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

int broker_create(struct broker **bp, const struct broker_opts *opts)
{
    struct broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->opts = *opts;
    b->batch = malloc(TAB_INPUT_MAX);
    if (b->batch == NULL) {
        free(b);
        return -ENOMEM;
    }
    *bp = b;
    return 0;
}

static void drop_queue(struct tab *t)
{
    while (t->head) {
        struct event *e = t->head;
        t->head = e->next;
        free(e);
    }
    t->tail = NULL;
    t->queued = 0;
    t->queued_bytes = 0;
    t->store_behind = 0; /* a tab loaded again gets the whole storage with its script */
}

static void unwatch_process(struct tab *t)
{
    if (t->pidfd >= 0)
        close(t->pidfd);
    t->pidfd = -1;
    t->pid = 0;
}

static void free_pool(struct tab *t)
{
    unwatch_process(t);
    if (t->task) {
        walls_task_free(t->task);
        t->task = NULL;
    }
    if (t->pool) {
        walls_pool_destroy(t->pool, WALLS_CANCEL);
        t->pool = NULL;
        t->fd = -1;
    }
}

static void stop(struct tab *t, enum tab_outcome outcome, const char *detail)
{
    t->running = 0;
    t->pending = 0;
    t->outcome = outcome;
    snprintf(t->detail, sizeof t->detail, "%.*s", (int)sizeof t->detail - 1, detail);
    drop_queue(t);
    t->ntimers = 0;
    /* A stuck thread cannot be joined: its pool is left to it. */
    if (!t->stuck)
        free_pool(t);
}

void broker_destroy(struct broker *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct tab *t = b->tabs[i];
        drop_queue(t);
        if (!t->stuck && !(b->opts.threads && t->task))
            free_pool(t);
        free(t->name);
        free(t->path);
        free(t->result_json);
        free(t);
    }
    while (b->origins) {
        struct origin *o = b->origins;
        b->origins = o->next;
        for (size_t i = 0; i < o->n; i++) {
            free(o->entries[i].key);
            free(o->entries[i].value);
        }
        free(o->entries);
        free(o->name);
        free(o);
    }
    free(b->tabs);
    free(b->watches);
    free(b->pfd);
    free(b->batch);
    free(b);
}

static struct origin *origin_get(struct broker *b, const char *name)
{
    for (struct origin *o = b->origins; o; o = o->next)
        if (strcmp(o->name, name) == 0)
            return o;
    struct origin *o = calloc(1, sizeof *o);
    if (o == NULL || (o->name = strdup(name)) == NULL) {
        free(o);
        return NULL;
    }
    o->next = b->origins;
    b->origins = o;
    return o;
}

static struct entry *origin_find(struct origin *o, const char *key, size_t klen)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->entries[i].klen == klen && memcmp(o->entries[i].key, key, klen) == 0)
            return &o->entries[i];
    return NULL;
}

/* Applies a tab's storage change: 1 when it changed something, 0 when it
 * deleted a key that was not there, -1 when it would pass the quota. */
static int origin_set(struct origin *o, const char *key, size_t klen, const char *val,
                      size_t vlen, int present)
{
    struct entry *e = origin_find(o, key, klen);
    size_t old = e ? e->klen + e->vlen : 0;
    if (!present) {
        if (e) {
            free(e->key);
            free(e->value);
            o->bytes -= old;
            *e = o->entries[--o->n];
            return 1;
        }
        return 0;
    }
    if (o->bytes - old + klen + vlen > TAB_STORAGE_MAX || (!e && o->n >= TAB_STORAGE_KEYS))
        return -1;
    char *v = malloc(vlen + 1);
    if (v == NULL)
        return -1;
    memcpy(v, val, vlen);
    v[vlen] = '\0';
    if (e == NULL) {
        if (o->n == o->cap) {
            size_t cap = o->cap ? o->cap * 2 : 16;
            struct entry *grown = realloc(o->entries, cap * sizeof *grown);
            if (grown == NULL) {
                free(v);
                return -1;
            }
            o->entries = grown;
            o->cap = cap;
        }
        e = &o->entries[o->n];
        e->key = malloc(klen + 1);
        if (e->key == NULL) {
            free(v);
            return -1;
        }
        memcpy(e->key, key, klen);
        e->key[klen] = '\0';
        e->klen = klen;
        e->value = NULL;
        e->vlen = 0;
        o->n++;
    }
    free(e->value);
    e->value = v;
    e->vlen = vlen;
    o->bytes = o->bytes - old + klen + vlen;
    return 1;
}

/* Queues an event. Messages are refused past TAB_QUEUE_MAX events or
 * TAB_QUEUE_BYTES; the tab's own script and timers are bounded elsewhere
 * (size, TAB_TIMERS_MAX) and always go, and so do storage changes, which
 * enqueue_store() bounds. */
static int enqueue(struct tab *t, const uint8_t *data, size_t len, int message, int bounded)
{
    if (bounded && (t->queued >= TAB_QUEUE_MAX || t->queued_bytes + len > TAB_QUEUE_BYTES))
        return -1;
    struct event *e = malloc(sizeof *e + len);
    if (e == NULL)
        return -1;
    e->next = NULL;
    e->len = len;
    e->message = message;
    memcpy(e->data, data, len);
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->queued++;
    t->queued_bytes += len;
    return 0;
}

/* Queues a change of the tab's origin. A change is never simply dropped,
 * or the tab's copy of the storage would go stale; but past the tab's
 * bound it is held back, at no cost: the tab is then owed the origin's
 * whole storage, which its next batch starts with (send_storage()).
 * However many changes a tab does not keep up with, of however many keys,
 * its queue stays within its bound. */
static void enqueue_store(struct tab *t, const uint8_t *data, size_t len)
{
    if (t->store_behind || t->queued >= TAB_QUEUE_MAX || t->queued_bytes + len > TAB_QUEUE_BYTES) {
        t->store_behind = 1;
        return;
    }
    (void)enqueue(t, data, len, 0, 0);
}

/* Starts a batch with the origin's whole storage, for a tab that had
 * changes held back, and drops the changes still queued for it: the
 * storage holds them all. First in its batch, it also holds every change
 * the tab itself made in earlier batches, and none the tab makes before
 * it (which the broker has not seen yet). Returns 0, or -1 when the
 * storage could not be written (it stays owed). */
static int send_storage(struct tab *t, struct wbuf *w)
{
    const struct origin *o = t->origin;
    wbuf_u8(w, EV_STORE_ALL);
    wbuf_u32(w, (uint32_t)o->n);
    for (size_t i = 0; i < o->n; i++) {
        wbuf_str(w, o->entries[i].key, o->entries[i].klen);
        wbuf_str(w, o->entries[i].value, o->entries[i].vlen);
    }
    if (w->overflow) {
        w->len = 0;
        w->overflow = 0;
        return -1;
    }
    struct event *kept = NULL, **end = &kept;
    t->tail = NULL;
    for (struct event *e = t->head, *next; e; e = next) {
        next = e->next;
        if (e->len > 0 && e->data[0] == EV_STORE) {
            t->queued--;
            t->queued_bytes -= e->len;
            free(e);
            continue;
        }
        *end = e;
        end = &e->next;
        t->tail = e;
    }
    *end = NULL;
    t->head = kept;
    t->store_behind = 0;
    return 0;
}

/* The script at path, NUL-free or not, as bytes; NULL with errno set:
 * EFBIG past TAB_SCRIPT_MAX, EINVAL for anything but a regular file (a
 * FIFO or a device would block the broker, or never end). */
static char *read_script(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return NULL;
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;
    if (err) {
        close(fd);
        errno = err;
        return NULL;
    }
    /* One byte past the limit tells a script that is too large, even one
     * that grew since fstat(). */
    char *buf = malloc(TAB_SCRIPT_MAX + 1);
    size_t n = 0;
    while (buf && n <= TAB_SCRIPT_MAX) {
        ssize_t got = read(fd, buf + n, TAB_SCRIPT_MAX + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err = errno;
            free(buf);
            buf = NULL;
            errno = err;
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (buf && n > TAB_SCRIPT_MAX) {
        free(buf);
        buf = NULL;
        errno = EFBIG;
    }
    *len = n;
    return buf;
}

/* Threads mode: the watchdog counts a thread's CPU time, which a busy
 * machine hands out slowly. This wall-clock limit on a batch of `events`
 * only tells when to give up a thread as stuck in C code, so it leaves the
 * watchdog ample room: five times the CPU limit per event, and 2 s. */
static int64_t thread_backstop_ms(int64_t timeout_ms, unsigned events)
{
    return 5 * timeout_ms * (int64_t)events + 2000;
}

/* The pool of one tab: one process under the strict sandbox, or one
 * thread in --threads mode. */
static void pool_opts(const struct broker *b, struct walls_pool_opts *po)
{
    memset(po, 0, sizeof *po);
    po->max_output = TAB_OUTPUT_MAX;
    if (b->opts.threads) {
        po->placement = WALLS_THREADS;
        po->threads = 1;
        /* A thread cannot be killed: the Lua hook stops long events, and
         * this limit only reports one stuck in C code. */
        po->task_timeout_ms = thread_backstop_ms(b->opts.timeout_ms, 1);
    } else {
        po->placement = WALLS_PROCESSES;
        po->processes = 1;
        po->sandbox = WALLS_SANDBOX_STRICT;
        po->sandbox_fallback = WALLS_SANDBOX_FALLBACK;
        po->task_timeout_ms = b->opts.timeout_ms;
        /* The Lua limit plus room for the program's own mappings. */
        po->worker_memory_limit = b->opts.memory + ((size_t)256 << 20);
        po->restart_limit = 100000;
    }
}

/* Creates the pools of tabs[0..n) from several threads at once: most of a
 * pool's start is its worker's own set-up (namespaces, the seccomp filter),
 * which runs beside the others'. Errors are kept in each tab for start(). */
struct opener {
    struct broker *b;
    struct tab **tabs;
    size_t n, next;
};

static void *open_pools(void *arg)
{
    struct opener *o = arg;
    struct walls_pool_opts po;
    pool_opts(o->b, &po);
    for (;;) {
        size_t i = __atomic_fetch_add(&o->next, 1, __ATOMIC_RELAXED);
        if (i >= o->n)
            return NULL;
        struct tab *t = o->tabs[i];
        if (walls_pool_create(&t->pool, &po) != 0) {
            t->pool = NULL;
            snprintf(t->create_error, sizeof t->create_error, "%s", walls_last_error());
        }
    }
}

static int start(struct broker *b, struct tab *t);

static void start_pending(struct broker *b)
{
    struct tab **pending = malloc(b->n * sizeof *pending);
    size_t n = 0;
    for (size_t i = 0; pending && i < b->n; i++)
        if (b->tabs[i]->pending)
            pending[n++] = b->tabs[i];
    struct opener o = {b, pending, n, 0};
    pthread_t threads[OPENERS];
    size_t started = 0;
    if (n > 1)
        while (started < OPENERS && started < n &&
               pthread_create(&threads[started], NULL, open_pools, &o) == 0)
            started++;
    /* Whatever the threads did not take (none started, or one tab), here. */
    open_pools(&o);
    for (size_t k = 0; k < started; k++)
        pthread_join(threads[k], NULL);
    for (size_t i = 0; i < b->n; i++)
        if (b->tabs[i]->pending) {
            b->tabs[i]->pending = 0;
            start(b, b->tabs[i]);
        }
    free(pending);
}

/* Gives the tab a new pool (unless it has one already) and queues its
 * script. */
static int start(struct broker *b, struct tab *t)
{
    size_t src_len;
    char *src = read_script(t->path, &src_len);
    if (src == NULL) {
        char why[256];
        snprintf(why, sizeof why, "cannot read %s: %s", t->path,
                 errno == EFBIG    ? "larger than 512 KiB"
                 : errno == EINVAL ? "not a regular file"
                                   : strerror(errno));
        stop(t, OUT_ERROR, why);
        return -1;
    }
    int rc = 0;
    if (t->pool == NULL && t->create_error[0] == '\0') {
        struct walls_pool_opts po;
        pool_opts(b, &po);
        if ((rc = walls_pool_create(&t->pool, &po)) != 0)
            snprintf(t->create_error, sizeof t->create_error, "%s", walls_last_error());
    }
    if (t->pool == NULL) {
        char why[sizeof t->create_error + 32];
        snprintf(why, sizeof why, "cannot start its process: %s", t->create_error);
        t->create_error[0] = '\0';
        free(src);
        stop(t, OUT_ERROR, why);
        return -1;
    }
    t->fd = walls_pool_fd(t->pool);
    t->running = 1;
    t->outcome = OUT_OK;
    t->detail[0] = '\0';
    t->ntimers = 0;
    t->tokens = TAB_RATE_BURST;
    t->tokens_ms = tabs_now_ms();

    struct origin *o = t->origin;
    size_t need = 64 + 2 * TAB_NAME_MAX + src_len + o->bytes + o->n * 8;
    uint8_t *ev = malloc(need);
    if (ev == NULL) {
        free(src);
        stop(t, OUT_ERROR, "out of memory in the broker");
        return -1;
    }
    struct wbuf w = {ev, 0, need, 0};
    wbuf_u8(&w, EV_LOAD);
    wbuf_u32(&w, (b->opts.unsafe_lua ? LOAD_UNSAFE : 0) | (b->opts.threads ? LOAD_HOOK : 0));
    wbuf_u32(&w, (uint32_t)b->opts.timeout_ms);
    wbuf_u64(&w, b->opts.memory);
    wbuf_u32(&w, (uint32_t)getpid());
    wbuf_str(&w, t->name, strlen(t->name));
    wbuf_str(&w, o->name, strlen(o->name));
    wbuf_str(&w, src, src_len);
    wbuf_u32(&w, (uint32_t)o->n);
    for (size_t i = 0; i < o->n; i++) {
        wbuf_str(&w, o->entries[i].key, o->entries[i].klen);
        wbuf_str(&w, o->entries[i].value, o->entries[i].vlen);
    }
    free(src);
    rc = w.overflow || w.len > TAB_INPUT_MAX ? -1 : enqueue(t, ev, w.len, 0, 0);
    free(ev);
    if (rc) {
        stop(t, OUT_ERROR, "script and storage do not fit one event (2 MiB)");
        return -1;
    }
    return 0;
}

static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > TAB_NAME_MAX || strcmp(s, "broker") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') ||
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

int broker_add(struct broker *b, const char *path, const char *origin)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
        n -= 4;
    char name[TAB_NAME_MAX + 1];
    if (n > TAB_NAME_MAX) {
        fprintf(stderr, "walls-tabs: %s: a tab's name is at most %d bytes\n", path, TAB_NAME_MAX);
        return -1;
    }
    memcpy(name, base, n);
    name[n] = '\0';
    if (!valid_name(name, n)) {
        fprintf(stderr,
                "walls-tabs: %s: a tab's name (the file name without .lua) must be letters, "
                "digits, '-', '_' or '.', and not \"broker\"\n",
                path);
        return -1;
    }
    if (broker_find(b, name) >= 0) {
        fprintf(stderr, "walls-tabs: two tabs are named %s\n", name);
        return -1;
    }
    if (origin && !valid_name(origin, strlen(origin))) {
        fprintf(stderr, "walls-tabs: %s: bad origin name \"%s\"\n", path, origin);
        return -1;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct tab **grown = realloc(b->tabs, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        b->tabs = grown;
        b->cap = cap;
    }
    struct tab *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    t->fd = -1;
    t->pidfd = -1;
    t->name = strdup(name);
    t->path = strdup(path);
    t->origin = origin_get(b, origin ? origin : name);
    if (t->name == NULL || t->path == NULL || t->origin == NULL) {
        free(t->name);
        free(t->path);
        free(t);
        return -1;
    }
    b->tabs[b->n++] = t;
    t->pending = 1;
    t->running = 1;
    return (int)(b->n - 1);
}

size_t broker_count(const struct broker *b)
{
    return b->n;
}

int broker_find(const struct broker *b, const char *name)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->tabs[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static int find_len(const struct broker *b, const char *name, size_t len)
{
    for (size_t i = 0; i < b->n; i++)
        if (strlen(b->tabs[i]->name) == len && memcmp(b->tabs[i]->name, name, len) == 0)
            return (int)i;
    return -1;
}

void broker_info(const struct broker *b, size_t i, struct tab_info *info)
{
    const struct tab *t = b->tabs[i];
    info->name = t->name;
    info->origin = t->origin->name;
    info->path = t->path;
    info->running = t->running;
    info->closed = t->closed;
    info->stuck = t->stuck;
    info->busy = t->task != NULL;
    info->outcome = t->outcome;
    info->detail = t->detail;
    info->sent = t->sent;
    info->received = t->received;
    info->dropped = t->dropped;
    info->lua_bytes = t->lua_bytes;
    info->cpu_ns = t->cpu_ns;
    info->events = t->events;
    info->timers = t->ntimers;
    info->queued = t->queued;
    info->last_log = t->last_log;
    info->result_json = t->result_json ? t->result_json : "";
}

int broker_reload(struct broker *b, size_t i)
{
    if (i >= b->n || b->tabs[i]->stuck)
        return -1;
    struct tab *t = b->tabs[i];
    drop_queue(t);
    free_pool(t);
    t->pending = 0;
    t->closed = 0;
    t->last_log[0] = '\0';
    free(t->result_json);
    t->result_json = NULL;
    return start(b, t);
}

void broker_close(struct broker *b, size_t i)
{
    if (i >= b->n)
        return;
    struct tab *t = b->tabs[i];
    if (b->opts.threads && t->task)
        t->stuck = 1; /* a thread cannot be stopped: it is left to finish */
    if (t->running)
        stop(t, OUT_OK, "closed");
    else if (!t->stuck)
        free_pool(t);
    t->closed = 1;
}

/* Queues a message for tab `to` from `from`. */
static int post(struct tab *to, const char *from, const uint8_t *value, size_t len)
{
    if (!to->running)
        return -1;
    uint8_t *ev = malloc(16 + TAB_NAME_MAX + len);
    if (ev == NULL)
        return -1;
    struct wbuf w = {ev, 0, 16 + TAB_NAME_MAX + len, 0};
    wbuf_u8(&w, EV_MESSAGE);
    wbuf_str(&w, from, strlen(from));
    wbuf_str(&w, value, len);
    int rc = enqueue(to, ev, w.len, 1, 1);
    free(ev);
    return rc;
}

int broker_post(struct broker *b, size_t i, const uint8_t *value, size_t len)
{
    if (i >= b->n || wire_value_check(value, len))
        return -1;
    return post(b->tabs[i], "broker", value, len);
}

void broker_on_message(struct broker *b, broker_msg_fn *fn, void *arg)
{
    b->on_msg = fn;
    b->on_msg_arg = arg;
}

int broker_watch(struct broker *b, int fd, short events, broker_io_fn *fn, void *arg)
{
    for (size_t i = 0; i < b->nwatch; i++)
        if (b->watches[i].fd == fd) {
            b->watches[i] = (struct watch){fd, events, fn, arg};
            return 0;
        }
    if (b->nwatch == b->capwatch) {
        size_t cap = b->capwatch ? b->capwatch * 2 : 16;
        struct watch *grown = realloc(b->watches, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        b->watches = grown;
        b->capwatch = cap;
    }
    b->watches[b->nwatch++] = (struct watch){fd, events, fn, arg};
    return 0;
}

void broker_unwatch(struct broker *b, int fd)
{
    for (size_t i = 0; i < b->nwatch; i++)
        if (b->watches[i].fd == fd) {
            b->watches[i] = b->watches[--b->nwatch];
            return;
        }
}

/* ---- one batch: out and back ---- */

static int submit(struct broker *b, struct tab *t)
{
    struct wbuf w = {b->batch, 0, TAB_INPUT_MAX, 0};
    unsigned events = 0, msgs = 0;
    if (t->store_behind && send_storage(t, &w) == 0)
        events++;
    while (t->head && events < TAB_BATCH_EVENTS &&
           (events == 0 || t->head->len <= w.cap - w.len)) {
        struct event *e = t->head;
        wbuf_bytes(&w, e->data, e->len);
        t->head = e->next;
        t->queued--;
        t->queued_bytes -= e->len;
        events++;
        msgs += (unsigned)e->message;
        free(e);
    }
    if (t->head == NULL)
        t->tail = NULL;
    if (w.overflow) {
        stop(t, OUT_ERROR, "an event larger than 1 MiB");
        return -1;
    }
    struct walls_task_opts to = {0};
    to.timeout_ms = b->opts.threads ? thread_backstop_ms(b->opts.timeout_ms, events)
                                    : b->opts.timeout_ms * (int64_t)events;
    int rc = walls_submit_ex(t->pool, tab_task, w.p, w.len, &to, &t->task);
    if (rc) {
        char why[256];
        snprintf(why, sizeof why, "cannot send it events: %s", walls_last_error());
        t->task = NULL;
        stop(t, OUT_ERROR, why);
        return -1;
    }
    t->batch_msgs = msgs;
    t->events += events;
    return 0;
}

static const char *signal_name(int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    static char buf[32];
    if (abbrev) {
        snprintf(buf, sizeof buf, "SIG%s", abbrev);
        return buf;
    }
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

/* Keeps a pidfd on the tab's process, so that its death while the tab is
 * idle (a kill from outside: an idle process runs nothing) is seen at
 * once, not at its next event. Threads mode has no process of its own. */
static void watch_process(struct broker *b, struct tab *t, uint32_t pid)
{
    if (b->opts.threads || pid == 0 || pid == t->pid)
        return;
    unwatch_process(t);
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0)
        return;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    t->pid = pid;
    t->pidfd = fd;
}

/* Walks the records of a finished batch; apply = 0 checks, 1 acts. Returns
 * NULL or what is wrong with them. */
static const char *records(struct broker *b, struct tab *t, const uint8_t *p, size_t n, int apply,
                           unsigned *posts, int *end_state, const char **end_detail,
                           uint32_t *end_detail_len)
{
    struct rbuf r = {p, n, 0};
    int ended = 0;
    while (r.off < r.len) {
        uint8_t kind;
        if (ended)
            return "records after the end";
        (void)rbuf_u8(&r, &kind);
        switch (kind) {
        case REC_POST: {
            const char *to;
            uint32_t to_len, vlen;
            if (rbuf_str(&r, &to, &to_len, TAB_NAME_MAX) || rbuf_u32(&r, &vlen) ||
                vlen > r.len - r.off || wire_value_check(r.p + r.off, vlen))
                return "a malformed message";
            const uint8_t *value = r.p + r.off;
            r.off += vlen;
            (*posts)++;
            if (!apply)
                break;
            t->sent++;
            if (to_len == 6 && memcmp(to, "broker", 6) == 0) {
                char json[4096];
                if (wire_value_json(value, vlen, json, sizeof json) >= sizeof json - 1)
                    snprintf(json, sizeof json,
                             "{\"truncated\":true,\"bytes\":%u}", (unsigned)vlen);
                free(t->result_json);
                t->result_json = strdup(json);
                if (b->on_msg)
                    b->on_msg(b->on_msg_arg, (size_t)find_len(b, t->name, strlen(t->name)),
                              value, vlen);
                break;
            }
            int to_i = find_len(b, to, to_len);
            if (to_i < 0 || post(b->tabs[to_i], t->name, value, vlen))
                t->dropped++;
            break;
        }
        case REC_TIMER: {
            uint32_t id, ms;
            if (rbuf_u32(&r, &id) || rbuf_u32(&r, &ms) || ms > TAB_TIMEOUT_MAX_MS)
                return "a malformed timer";
            if (!apply)
                break;
            if (t->ntimers >= TAB_TIMERS_MAX)
                return "too many timers";
            t->timers[t->ntimers++] = (struct timer){id, tabs_now_ms() + ms};
            break;
        }
        case REC_STORE: {
            const char *k, *v;
            uint32_t kl, vl;
            uint8_t present;
            if (rbuf_str(&r, &k, &kl, TAB_KEY_MAX) || kl == 0 || rbuf_u8(&r, &present) ||
                present > 1 || rbuf_str(&r, &v, &vl, TAB_VALUE_MAX))
                return "a malformed storage change";
            (*posts)++; /* rate-limited as messages are */
            if (!apply)
                break;
            int changed = origin_set(t->origin, k, kl, v, vl, present);
            if (changed < 0) {
                snprintf(t->last_log, sizeof t->last_log,
                         "storage quota exceeded: a change was dropped");
                break;
            }
            if (changed == 0)
                break; /* deleting a key that is not there */
            /* Every other running tab of the origin gets the change. */
            uint8_t *ev = malloc(16 + kl + vl);
            if (ev == NULL)
                break;
            struct wbuf w = {ev, 0, 16 + kl + vl, 0};
            wbuf_u8(&w, EV_STORE);
            wbuf_str(&w, k, kl);
            wbuf_u8(&w, present);
            wbuf_str(&w, v, vl);
            for (size_t i = 0; i < b->n; i++) {
                struct tab *o = b->tabs[i];
                if (o != t && o->origin == t->origin && o->running)
                    enqueue_store(o, ev, w.len);
            }
            free(ev);
            break;
        }
        case REC_LOG: {
            const char *s;
            uint32_t len;
            if (rbuf_str(&r, &s, &len, TAB_LOG_MAX))
                return "a malformed log line";
            (*posts)++;
            if (!apply)
                break;
            memcpy(t->last_log, s, len);
            t->last_log[len] = '\0';
            /* Control bytes (NUL, C1 and bidirectional marks among them)
             * become spaces: the line is shown whole, on one line, as
             * written. */
            text_clean(t->last_log, len);
            if (!b->opts.quiet)
                fprintf(stderr, "[%s] %s\n", t->name, t->last_log);
            break;
        }
        case REC_END: {
            uint8_t state;
            uint64_t bytes, cpu;
            uint32_t timers, pid;
            if (rbuf_u8(&r, &state) || state > END_OVERTIME ||
                rbuf_str(&r, end_detail, end_detail_len, TAB_LOG_MAX) || rbuf_u64(&r, &bytes) ||
                rbuf_u64(&r, &cpu) || rbuf_u32(&r, &timers) || rbuf_u32(&r, &pid))
                return "a malformed end record";
            *end_state = state;
            ended = 1;
            if (apply) {
                t->lua_bytes = bytes;
                t->cpu_ns += cpu;
                watch_process(b, t, pid);
            }
            break;
        }
        default:
            return "an unknown record";
        }
    }
    return ended ? NULL : "no end record";
}

const char *broker_check_output(const uint8_t *p, size_t n)
{
    unsigned posts = 0;
    int state = END_OK;
    const char *detail = "";
    uint32_t detail_len = 0;
    return records(NULL, NULL, p, n, 0, &posts, &state, &detail, &detail_len);
}

static void refill(struct tab *t)
{
    int64_t now = tabs_now_ms();
    t->tokens += (double)(now - t->tokens_ms) * TAB_RATE_PER_S / 1000.0;
    if (t->tokens > TAB_RATE_BURST)
        t->tokens = TAB_RATE_BURST;
    t->tokens_ms = now;
}

static void finished(struct broker *b, struct tab *t)
{
    struct walls_result res;
    walls_task *task = t->task;
    t->task = NULL;
    if (walls_wait(task, 0, &res) != 0) {
        walls_task_free(task);
        stop(t, OUT_ERROR, "its batch was lost");
        return;
    }
    char why[TAB_LOG_MAX + 64];
    int memory = (res.flags & WALLS_RESULT_MEMORY) != 0;
    switch (res.status) {
    case WALLS_OK: {
        unsigned posts = 0;
        int state = END_OK;
        const char *detail = "";
        uint32_t detail_len = 0;
        /* Whether the process that held the tab had died: asked before
         * the records are applied, since they move the watch to the
         * process that ran this batch (a replacement, if it had). */
        struct pollfd old = {t->pidfd, POLLIN, 0};
        int old_gone = t->pidfd >= 0 && poll(&old, 1, 0) == 1;
        const char *bad = records(b, t, res.out, res.out_len, 0, &posts, &state, &detail,
                                  &detail_len);
        if (bad) {
            snprintf(why, sizeof why, "broke the broker's protocol: %s", bad);
            walls_task_free(task);
            stop(t, OUT_VIOLATION, why);
            return;
        }
        refill(t);
        if (posts > t->tokens) {
            walls_task_free(task);
            snprintf(why, sizeof why,
                     "flooded the broker: over %d messages, logs and storage changes a second",
                     TAB_RATE_PER_S);
            stop(t, OUT_VIOLATION, why);
            return;
        }
        t->tokens -= posts;
        if (state == END_OK)
            t->received += t->batch_msgs; /* else some never ran */
        bad = records(b, t, res.out, res.out_len, 1, &posts, &state, &detail, &detail_len);
        snprintf(why, sizeof why, "%.*s", (int)detail_len, detail);
        text_clean(why, strlen(why));
        walls_task_free(task);
        if (bad) {
            snprintf(why, sizeof why, "broke the broker's protocol: %s", bad);
            stop(t, OUT_VIOLATION, why);
        } else if (state == END_ERROR) {
            stop(t, OUT_ERROR, why);
        } else if (state == END_NOMEM) {
            char lim[TAB_LOG_MAX + 128];
            snprintf(lim, sizeof lim, "%s (Lua allocator limit %zu MiB)", why,
                     b->opts.memory >> 20);
            stop(t, OUT_NOMEM, lim);
        } else if (state == END_UNRESPONSIVE) {
            char lim[TAB_LOG_MAX + 128];
            snprintf(lim, sizeof lim, "an event ran past %lld ms (stopped by the Lua hook)",
                     (long long)b->opts.timeout_ms);
            stop(t, OUT_UNRESPONSIVE, lim);
        } else if (state == END_OVERTIME) {
            char lim[TAB_LOG_MAX + 128];
            snprintf(lim, sizeof lim, "an event used %s ms of CPU, past its %lld ms", why,
                     (long long)b->opts.timeout_ms);
            stop(t, OUT_UNRESPONSIVE, lim);
        } else if (state == END_NOSTATE) {
            /* The tab's process died between the poll that last watched
             * it and this batch, which its replacement ran: a kill from
             * outside while the tab was idle, as the poll would have said. */
            if (old_gone)
                stop(t, OUT_CRASHED,
                     "its process died while the tab was idle (killed from outside)");
            else
                stop(t, OUT_CRASHED, "its process was replaced");
        }
        return;
    }
    case WALLS_TIMEOUT:
        if (b->opts.threads) {
            /* Past the hook's reach (inside a C function, a finalizer
             * or a coroutine): nothing can stop a thread, so it keeps its
             * CPU until the program ends. */
            t->stuck = 1;
            snprintf(why, sizeof why,
                     "an event ran past %lld ms out of the hook's reach (C code, a finalizer "
                     "or a coroutine); its thread runs on",
                     (long long)b->opts.timeout_ms);
        } else {
            snprintf(why, sizeof why, "an event ran past %lld ms; killed",
                     (long long)b->opts.timeout_ms);
        }
        walls_task_free(task);
        stop(t, OUT_UNRESPONSIVE, why);
        return;
    case WALLS_VIOLATION:
        snprintf(why, sizeof why, "%s%s", walls_syscall_name(res.code),
                 res.flags & WALLS_RESULT_FOREIGN_ABI ? " (through another ABI)" : "");
        walls_task_free(task);
        stop(t, OUT_VIOLATION, why);
        return;
    case WALLS_CRASHED:
    case WALLS_KILLED:
        snprintf(why, sizeof why, "%s%s", signal_name(res.code),
                 memory ? " at the worker memory limit" : "");
        walls_task_free(task);
        stop(t, memory ? OUT_NOMEM : OUT_CRASHED, why);
        return;
    case WALLS_EXITED:
        snprintf(why, sizeof why, "exited with status %d", res.code);
        walls_task_free(task);
        stop(t, OUT_CRASHED, why);
        return;
    default:
        snprintf(why, sizeof why, "%s (code %d)", walls_status_name(res.status), res.code);
        walls_task_free(task);
        stop(t, OUT_CRASHED, why);
        return;
    }
}

static void fire_timers(struct tab *t, int64_t now)
{
    /* Due timers in due order (ties by id, which is creation order). */
    for (;;) {
        int best = -1;
        for (unsigned i = 0; i < t->ntimers; i++)
            if (t->timers[i].due_ms <= now &&
                (best < 0 || t->timers[i].due_ms < t->timers[best].due_ms ||
                 (t->timers[i].due_ms == t->timers[best].due_ms &&
                  t->timers[i].id < t->timers[best].id)))
                best = (int)i;
        if (best < 0)
            return;
        uint8_t ev[5];
        struct wbuf w = {ev, 0, sizeof ev, 0};
        wbuf_u8(&w, EV_TIMER);
        wbuf_u32(&w, t->timers[best].id);
        if (enqueue(t, ev, w.len, 0, 0))
            return; /* no memory: it fires on a later turn */
        t->timers[best] = t->timers[--t->ntimers];
    }
}

/* Before sleeping in poll(), watches the batches out for a few
 * microseconds: a quick answer is taken straight from its worker, without
 * the wake-ups a sleep costs (most of a short round trip). Returns 1 when
 * a batch finished. */
static int spin(struct broker *b, const size_t *which, size_t busy)
{
    walls_task **tasks = malloc(busy * sizeof *tasks);
    if (tasks == NULL)
        return 0;
    for (size_t k = 0; k < busy; k++)
        tasks[k] = b->tabs[which[k]]->task;
    int64_t until = now_ns() + BROKER_SPIN_NS;
    int done = 0;
    do {
        size_t index;
        if (walls_wait_any(tasks, busy, 0, &index) == 0) {
            finished(b, b->tabs[which[index]]);
            done = 1;
            break;
        }
    } while (now_ns() < until);
    free(tasks);
    return done;
}

int broker_turn(struct broker *b, int timeout_ms)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->tabs[i]->pending) {
            start_pending(b);
            break;
        }
    int64_t now = tabs_now_ms();
    int64_t next = now + (timeout_ms < 0 ? 3600000 : timeout_ms);
    for (size_t i = 0; i < b->n; i++) {
        struct tab *t = b->tabs[i];
        if (!t->running)
            continue;
        fire_timers(t, now);
        if (t->running && t->task == NULL && (t->head || t->store_behind))
            submit(b, t);
        for (unsigned k = 0; t->running && k < t->ntimers; k++)
            if (t->timers[k].due_ms < next)
                next = t->timers[k].due_ms;
    }
    size_t need = b->nwatch + 2 * b->n;
    if (need > b->pfd_cap) {
        struct pollfd *grown = realloc(b->pfd, need * sizeof *grown);
        if (grown == NULL)
            return -ENOMEM;
        b->pfd = grown;
        b->pfd_cap = need;
    }
    size_t np = 0;
    for (size_t i = 0; i < b->nwatch; i++)
        b->pfd[np++] = (struct pollfd){b->watches[i].fd, b->watches[i].events, 0};
    size_t first_tab = np;
    size_t *which = NULL;
    size_t busy = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->tabs[i]->task)
            busy++;
    if (busy) {
        which = malloc(busy * sizeof *which);
        if (which == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < b->n; i++)
            if (b->tabs[i]->task) {
                which[np - first_tab] = i;
                b->pfd[np++] = (struct pollfd){b->tabs[i]->fd, POLLIN, 0};
            }
    }
    /* Idle tabs' processes: one that dies now was killed from outside. */
    size_t first_idle = np;
    size_t *idle = NULL;
    size_t nidle = 0;
    for (size_t i = 0; i < b->n; i++)
        nidle += b->tabs[i]->running && !b->tabs[i]->task && b->tabs[i]->pidfd >= 0;
    if (nidle) {
        idle = malloc(nidle * sizeof *idle);
        if (idle == NULL) {
            free(which);
            return -ENOMEM;
        }
        for (size_t i = 0; i < b->n; i++) {
            struct tab *t = b->tabs[i];
            if (t->running && !t->task && t->pidfd >= 0) {
                idle[np - first_idle] = i;
                b->pfd[np++] = (struct pollfd){t->pidfd, POLLIN, 0};
            }
        }
    }
    int wait = next <= now ? 0 : (int)(next - now > INT_MAX ? INT_MAX : next - now);
    if (busy && wait > 0 && spin(b, which, busy))
        wait = 0;
    int ready = poll(b->pfd, np, wait);
    if (ready < 0 && errno != EINTR) {
        int err = errno;
        free(which);
        free(idle);
        return -err;
    }
    for (size_t k = first_idle; ready > 0 && k < np; k++) {
        struct tab *t = b->tabs[idle[k - first_idle]];
        if (b->pfd[k].revents && t->running && !t->task)
            stop(t, OUT_CRASHED, "its process died while the tab was idle (killed from outside)");
    }
    free(idle);
    for (size_t k = first_tab; ready > 0 && k < first_idle; k++) {
        if (!b->pfd[k].revents)
            continue;
        struct tab *t = b->tabs[which[k - first_tab]];
        walls_task *done[1];
        size_t n = 0;
        if (t->task && walls_pool_collect(t->pool, done, 1, &n) == 0 && n == 1)
            finished(b, t);
    }
    free(which);
    /* Watches last: a callback may add or remove watches. */
    for (size_t k = 0; ready > 0 && k < first_tab; k++) {
        short rev = b->pfd[k].revents;
        if (!rev)
            continue;
        int fd = b->pfd[k].fd;
        for (size_t i = 0; i < b->nwatch; i++)
            if (b->watches[i].fd == fd) {
                b->watches[i].fn(b->watches[i].arg, fd, rev);
                break;
            }
    }
    now = tabs_now_ms();
    for (size_t i = 0; i < b->n; i++)
        if (b->tabs[i]->running)
            fire_timers(b->tabs[i], now);
    return 0;
}

int broker_stuck(const struct broker *b)
{
    int n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->tabs[i]->stuck || (b->opts.threads && b->tabs[i]->task);
    return n;
}

int broker_idle(const struct broker *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct tab *t = b->tabs[i];
        if (t->running && (t->pending || t->task || t->head || t->store_behind || t->ntimers))
            return 0;
    }
    return 1;
}
