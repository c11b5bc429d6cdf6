/*
 * front.c - connections, batches and what happens when a backend dies
 * (see front.h for the loop's shape).
 *
 * A batch's replies are in its connection's reply slot. When its task
 * ends normally, every command took effect and the slot holds all their
 * replies, or the first ones (the backend stopped before a reply that
 * would not fit): those go out, the rest is sent again. When the backend
 * died, the front first takes the stripes the dying command held, which
 * rolls back whatever it had not committed; the slot's progress, changed
 * only inside committed transactions, then says exactly which commands
 * took effect. Their replies go out; the command that was running gets
 * an error if it had changed something before it died (now undone), or
 * runs once more if it had not; the rest of the batch is sent again.
 */
#define _GNU_SOURCE
#include "front.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aof.h"
#include "cmd.h"

#define TAG_LISTEN 1
#define TAG_POOL 2
#define TAG_WAKE 3
/* Before a batch's bytes, for the headers of a task of one connection. */
#define HEADROOM (sizeof(struct kv_group_head) + sizeof(struct kv_entry))
#define GROUP_MAX 64                     /* connections in one task */
#define IN_HIGH (4u << 20)               /* unparsed bytes held while a batch is out */
#define BATCH_BYTES (1u << 20)           /* a batch's commands, unless one alone is larger */

void kv_log(struct server *srv, const char *fmt, ...)
{
    if (srv->set.quiet)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%d %b %Y %H:%M:%S", &tm);
    fprintf(stderr, "%d:M %s.%03ld * %s\n", (int)getpid(), when, ts.tv_nsec / 1000000, line);
}

/* ---- buffers ------------------------------------------------------------- */

static bool buf_room(struct kv_buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    /* Move what is pending to the front (after the headroom) first. */
    if (b->off > HEADROOM) {
        size_t pending = b->len - b->off;
        memmove(b->p + HEADROOM, b->p + b->off, pending);
        b->off = HEADROOM;
        b->len = HEADROOM + pending;
        if (b->len + more <= b->cap)
            return true;
    }
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool buf_add(struct kv_buf *b, const void *p, size_t len)
{
    if (!buf_room(b, len))
        return false;
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return true;
}

/* ---- slots ------------------------------------------------------------------ */

static bool slot_take(struct server *srv, uint32_t *slot)
{
    pthread_mutex_lock(&srv->slots_lock);
    bool ok = srv->nfree > 0;
    if (ok)
        *slot = srv->free_slots[--srv->nfree];
    pthread_mutex_unlock(&srv->slots_lock);
    return ok;
}

static void slot_give(struct server *srv, uint32_t slot)
{
    pthread_mutex_lock(&srv->slots_lock);
    srv->free_slots[srv->nfree++] = slot;
    pthread_mutex_unlock(&srv->slots_lock);
}

/* ---- connections --------------------------------------------------------------- */

static void conn_want(struct conn *c, bool out)
{
    /* Nothing more to read once the client shut its side. */
    uint32_t events = c->eof ? 0 : EPOLLRDHUP;
    /* Stop reading while a batch is out, or held for a later turn, and
     * much is already waiting. */
    if (!((c->group || c->queued) && c->in.len - c->in.off > IN_HIGH) && !c->closing && !c->eof)
        events |= EPOLLIN;
    if (out)
        events |= EPOLLOUT;
    if (events == c->events)
        return;
    c->events = events;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Lets go of a dead connection: out of the loop's list now, its memory at
 * the end of the turn (bury()), since a later event of the same
 * epoll_wait() may still point at it (and finds it dead). */
static void conn_free(struct conn *c)
{
    struct server *srv = c->loop->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->loop->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    slot_give(srv, c->slot);
    c->grave_next = c->loop->graves;
    c->loop->graves = c;
}

static void bury(struct front *l)
{
    while (l->graves) {
        struct conn *c = l->graves;
        l->graves = c->grave_next;
        resp_parser_fini(&c->parser);
        free(c->in.p);
        free(c->out.p);
        free(c->cmd_end);
        free(c->cmd_write);
        free(c->queued_cmds.p);
        kv_client_fini(&c->client);
        free(c);
    }
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        __atomic_fetch_sub(&kv_info_of(&c->loop->srv->st)->clients, 1, __ATOMIC_RELAXED);
    }
    c->dead = true;
    /* Freed once no task carries it and no turn's end will look at it. */
    if (!c->group && !c->queued)
        conn_free(c);
}

/* Writes what is pending; false if the connection was closed. */
static bool conn_flush(struct conn *c)
{
    while (c->out.off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_want(c, true);
            return true;
        }
        if (n <= 0) {
            conn_close(c);
            return false;
        }
        c->out.off += (size_t)n;
    }
    c->out.off = c->out.len = 0;
    if (c->closing) {
        conn_close(c);
        return false;
    }
    conn_want(c, false);
    return true;
}

/* Queues reply bytes, writing them at once when nothing waits before them. */
static bool conn_send(struct conn *c, const void *p, size_t len)
{
    if (c->out.len == c->out.off && len > 0) {
        ssize_t n;
        do
            n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c);
            return false;
        }
        if (n > 0) {
            p = (const char *)p + n;
            len -= (size_t)n;
        }
    }
    if (len > 0 && !buf_add(&c->out, p, len)) {
        conn_close(c);
        return false;
    }
    return true;
}

static bool conn_error(struct conn *c, const char *text)
{
    char line[600];
    int n = snprintf(line, sizeof line, "-%s\r\n", text);
    return conn_send(c, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static bool grow_batch(struct conn *c)
{
    if (c->cmd_end)
        return true;
    c->cmd_end = malloc(KV_BATCH_MAX * sizeof *c->cmd_end);
    c->cmd_write = malloc(KV_BATCH_MAX * sizeof *c->cmd_write);
    return c->cmd_end && c->cmd_write;
}

static bool queue(struct conn *c);

#define OOM_REPLY "-OOM command not allowed when used memory > 'maxmemory'.\r\n"

/* Whether a command queued now, or an EXEC of commands that may grow the
 * table, is refused for memory: over --maxmemory with noeviction. Under
 * allkeys-lru the backends evict before each write, as Redis would before
 * queueing. */
static bool oom_now(const struct conn *c)
{
    const struct kv_store *st = &c->loop->srv->st;
    return st->hdr->policy == 0 && kv_over_maxmemory(st);
}

/* A MULTI, EXEC or DISCARD, or a command inside a MULTI, just parsed
 * (len bytes at in.off), with no batch ahead of it. Returns 0 when it was
 * answered here (its bytes consumed), 1 when it is an EXEC whose batch is
 * ready, 2 when it was a QUIT (answered; the connection closes), -1 when
 * the connection was closed. */
static int transaction(struct conn *c, size_t len)
{
    const struct resp_arg *argv = c->parser.argv;
    size_t argc = c->parser.argc;
    const char *reply = NULL;
    char text[600];
    bool multi = kv_is_multi(&argv[0]), exec = kv_is_exec(&argv[0]);
    if (argc != 1 && (multi || exec || kv_is_discard(&argv[0]))) {
        /* As Redis: a wrong EXEC aborts the transaction; a wrong MULTI or
         * DISCARD fails, and inside a MULTI makes its EXEC fail. */
        if (exec) {
            reply = "-EXECABORT Transaction discarded because of: wrong number of arguments "
                    "for 'exec' command\r\n";
            c->in_multi = c->multi_failed = c->multi_denyoom = false;
            c->queued_cmds.len = 0;
            c->nqueued = 0;
        } else {
            reply = multi ? "-ERR wrong number of arguments for 'multi' command\r\n"
                          : "-ERR wrong number of arguments for 'discard' command\r\n";
            c->multi_failed = c->in_multi;
        }
    } else if (kv_is_quit(&argv[0])) {
        /* Not queued, even inside a MULTI: answered, then the connection
         * closes (Redis 7.0 does the same). */
        c->in.off += len;
        return conn_send(c, "+OK\r\n", 5) ? 2 : -1;
    } else if (multi) {
        reply = c->in_multi ? "-ERR MULTI calls can not be nested\r\n" : "+OK\r\n";
        c->in_multi = true;
    } else if (kv_is_discard(&argv[0])) {
        reply = c->in_multi ? "+OK\r\n" : "-ERR DISCARD without MULTI\r\n";
        c->in_multi = c->multi_failed = c->multi_denyoom = false;
        c->queued_cmds.len = 0;
        c->nqueued = 0;
    } else if (kv_is_exec(&argv[0])) {
        if (!c->in_multi) {
            reply = "-ERR EXEC without MULTI\r\n";
        } else if (c->multi_failed) {
            reply = "-EXECABORT Transaction discarded because of previous errors.\r\n";
            c->in_multi = c->multi_failed = c->multi_denyoom = false;
            c->queued_cmds.len = 0;
            c->nqueued = 0;
        } else if (c->nqueued == 0) {
            reply = "*0\r\n";
            c->in_multi = false;
        } else if (c->multi_denyoom && oom_now(c)) {
            /* As Redis: an EXEC of commands that may grow the table is
             * refused whole over --maxmemory, and the transaction goes. */
            reply = OOM_REPLY;
            c->in_multi = c->multi_failed = c->multi_denyoom = false;
            c->queued_cmds.len = 0;
            c->nqueued = 0;
        } else {
            /* The EXEC is the batch's one command; its commands are the
             * queued ones, run as one transaction. */
            c->cmd_end[0] = len;
            c->cmd_write[0] = true;
            c->ncmds = 1;
            c->exec_batch = true;
            c->retried = 0;
            return 1;
        }
    } else {
        const char *err = kv_queue_check(argv, argc, text + 1, sizeof text - 3);
        if (!*err && oom_now(c)) {
            /* Queueing takes memory too: over --maxmemory nothing is
             * queued, and the EXEC will fail. */
            reply = OOM_REPLY;
            c->multi_failed = true;
        } else if (*err) {
            /* Refused now, and the EXEC will be too. */
            text[0] = '-';
            size_t n = strlen(text);
            memcpy(text + n, "\r\n", 3);
            reply = text;
            c->multi_failed = true;
        } else if (c->nqueued >= KV_BATCH_MAX) {
            reply = "-ERR walls-kv queues at most 1024 commands in a MULTI\r\n";
            c->multi_failed = true;
        } else if (buf_add(&c->queued_cmds, c->in.p + c->in.off, len)) {
            c->nqueued++;
            c->multi_denyoom |= kv_is_denyoom(&argv[0]);
            reply = "+QUEUED\r\n";
        } else {
            reply = "-ERR out of memory\r\n";
            c->multi_failed = true;
        }
    }
    c->in.off += len;
    return conn_send(c, reply, strlen(reply)) ? 0 : -1;
}

/* A CLIENT or HELLO just parsed (len bytes at in.off), with no batch
 * ahead of it: answered here, by the thread that owns the connection.
 * Inside a MULTI it is refused, and fails the EXEC. false: the connection
 * was closed. */
static bool connection_cmd(struct conn *c, size_t len)
{
    struct kv_out out = {0};
    kv_client_cmd(&c->client, c->parser.argv, c->parser.argc, c->in_multi, &out);
    if (c->in_multi)
        c->multi_failed = true;
    c->in.off += len;
    bool ok = out.failed ? conn_error(c, "ERR out of memory") : conn_send(c, out.p, out.len);
    free(out.p);
    return ok;
}

/* Parses what is buffered and queues the complete commands as the
 * connection's next batch. false: the connection was closed (and may be
 * freed). */
static bool conn_serve(struct conn *c)
{
    if (c->group || c->queued || c->dead || c->closing)
        return !c->dead;
    if (!grow_batch(c)) {
        conn_error(c, "ERR out of memory");
        c->closing = true;
        return conn_flush(c);
    }
    size_t pos = c->in.off;
    c->ncmds = 0;
    c->quit_after = false;
    while (c->ncmds < KV_BATCH_MAX && pos < c->in.len && !c->proto_error) {
        /* An unfinished first command waits until what it asked for is in. */
        if (c->ncmds == 0 && c->in.len - c->in.off < c->need)
            break;
        size_t need = 0;
        const char *err = NULL;
        ssize_t n = resp_parse(&c->parser, c->in.p + pos, c->in.len - pos, &need, &err);
        if (n == 0) {
            c->need = c->ncmds == 0 ? pos - c->in.off + need : 0;
            break;
        }
        c->need = 0;
        if (n < 0) {
            c->proto_error = err;
            break;
        }
        if (c->parser.argc == 0 && c->ncmds == 0) {
            /* An empty command before the batch: nothing to answer. */
            pos += (size_t)n;
            c->in.off = pos;
            continue;
        }
        const struct resp_arg *name = c->parser.argc ? &c->parser.argv[0] : NULL;
        if (name && kv_is_client_cmd(name)) {
            /* The connection's own: answered in order, after what is ahead. */
            if (c->ncmds > 0)
                break;
            if (!connection_cmd(c, (size_t)n))
                return false;
            pos = c->in.off;
            continue;
        }
        if (name && (c->in_multi || kv_is_multi(name) || kv_is_exec(name) || kv_is_discard(name))) {
            /* A transaction's words are the front's: they wait for what is
             * ahead of them, then are answered here, in order. */
            if (c->ncmds > 0)
                break;
            int t = transaction(c, (size_t)n);
            if (t < 0)
                return false;
            if (t == 2) {
                c->closing = true;
                return conn_flush(c);
            }
            pos = c->in.off;
            if (t > 0)
                break; /* an EXEC: its batch is ready */
            continue;
        }
        if (c->ncmds > 0 && pos + (size_t)n - c->in.off > BATCH_BYTES)
            break;
        pos += (size_t)n;
        c->cmd_end[c->ncmds] = pos - c->in.off;
        const struct kv_command *k =
            c->parser.argc ? kv_command_find(&c->parser.argv[0]) : NULL;
        c->cmd_write[c->ncmds] = k && (k->flags & KV_CMD_WRITE);
        c->ncmds++;
        if (k && kv_is_quit(&c->parser.argv[0])) {
            c->quit_after = true;
            break;
        }
    }
    if (c->ncmds > 0) {
        if (!c->exec_batch)
            c->retried = 0;
        return queue(c);
    }
    if (c->proto_error) {
        /* Redis answers a protocol error, then closes. */
        if (!conn_error(c, c->proto_error))
            return false;
        c->closing = true;
        return conn_flush(c);
    }
    if (c->in.off == c->in.len)
        c->in.off = c->in.len = HEADROOM;
    if (c->eof) {
        /* Every whole command it sent was answered: done. */
        c->closing = true;
        return conn_flush(c);
    }
    return true;
}

/* The batch [0, ncmds) waits for the end of this loop turn, when every
 * connection's batch that is ready goes out in a few tasks. false: the
 * connection was closed instead (no memory to queue it). */
static bool queue(struct conn *c)
{
    struct front *l = c->loop;
    if (c->queued)
        return true;
    if (l->nready == l->ready_cap) {
        size_t cap = l->ready_cap ? l->ready_cap * 2 : 64;
        struct conn **grown = realloc(l->ready, cap * sizeof *grown);
        if (!grown) {
            if (!conn_error(c, "ERR out of memory"))
                return false;
            c->closing = true;
            return conn_flush(c);
        }
        l->ready = grown;
        l->ready_cap = cap;
    }
    c->queued = true;
    l->ready[l->nready++] = c;
    return true;
}

/* Readies the slot for a new batch and says where the batch's bytes are. */
static struct kv_entry prepare(struct conn *c)
{
    struct server *srv = c->loop->srv;
    struct kv_slot *slot = kv_slot_of(&srv->st, c->slot);
    uint64_t seq = __atomic_add_fetch(&srv->next_seq, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->progress, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->cur_set, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->cur_cmd, UINT64_MAX, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->dirty, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->aof_end, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->seq, seq, __ATOMIC_RELEASE);
    if (c->exec_batch)
        return (struct kv_entry){.slot = c->slot,
                                 .seq = seq,
                                 .ncmds = c->nqueued,
                                 .len = (uint32_t)c->queued_cmds.len,
                                 .flags = KV_ENTRY_EXEC};
    return (struct kv_entry){.slot = c->slot,
                             .seq = seq,
                             .ncmds = c->ncmds,
                             .len = (uint32_t)c->cmd_end[c->ncmds - 1]};
}

/* Where the batch's bytes are: the queued commands of an EXEC, else the
 * buffer's. */
static const char *batch_bytes(const struct conn *c)
{
    return c->exec_batch ? c->queued_cmds.p : c->in.p + c->in.off;
}

static void refuse(struct conn *c, int rc)
{
    char text[160];
    snprintf(text, sizeof text, "ERR the backends refused the command: %s", walls_strerror(rc));
    for (uint32_t i = 0; i < c->ncmds; i++)
        if (!conn_error(c, text))
            return;
    c->in.off += c->cmd_end[c->ncmds - 1];
    c->ncmds = 0;
    if (c->quit_after)
        c->closing = true;
    conn_flush(c);
}

/* One task for conns[0, n). A single connection's bytes go as they lie in
 * its buffer, behind the headers written into its headroom; several are
 * copied into the loop's buffer. */
static void submit_group(struct front *l, struct conn **conns, uint32_t n)
{
    struct server *srv = l->srv;
    struct group *g = malloc(sizeof *g + n * sizeof *conns);
    if (!g) {
        for (uint32_t i = 0; i < n; i++)
            refuse(conns[i], -ENOMEM);
        return;
    }
    g->loop = l;
    g->task = NULL;
    g->settled = false;
    g->back = false;
    g->n = n;
    memcpy(g->conns, conns, n * sizeof *conns);
    struct kv_group_head head = {.nentries = n};
    const char *at;
    size_t len;
    if (n == 1 && !conns[0]->exec_batch) {
        struct conn *c = conns[0];
        struct kv_entry e = prepare(c);
        char *p = c->in.p + c->in.off - HEADROOM;
        memcpy(p, &head, sizeof head);
        memcpy(p + sizeof head, &e, sizeof e);
        at = p;
        len = HEADROOM + e.len;
    } else {
        l->group_buf.len = 0;
        bool ok = buf_add(&l->group_buf, &head, sizeof head);
        for (uint32_t i = 0; i < n && ok; i++) {
            struct conn *c = conns[i];
            struct kv_entry e = prepare(c);
            ok = buf_add(&l->group_buf, &e, sizeof e) &&
                 (e.len == 0 || buf_add(&l->group_buf, batch_bytes(c), e.len));
        }
        if (!ok) {
            free(g);
            for (uint32_t i = 0; i < n; i++)
                refuse(conns[i], -ENOMEM);
            return;
        }
        at = l->group_buf.p;
        len = l->group_buf.len;
    }
    struct walls_task_opts opts = {.user = g};
    int rc = walls_submit_ex(srv->pool, kv_backend, at, len, &opts, &g->task);
    if (rc != 0) {
        free(g);
        for (uint32_t i = 0; i < n; i++)
            refuse(conns[i], rc);
        return;
    }
    l->out++;
    for (uint32_t i = 0; i < n; i++) {
        conns[i]->group = g;
        conn_want(conns[i], conns[i]->out.len > conns[i]->out.off);
    }
}

/* The end of a loop turn: the ready batches go out, spread over the
 * tasks this loop may still have out (max_out: its share of the backends),
 * at most GROUP_MAX connections each; what does not fit waits for a task
 * to come back. So a busy loop sends few large tasks rather than many
 * small ones, each of which costs a backend's wake-up and a completion's,
 * and an idle one sends a batch at once. A connection whose reply may
 * need the task's own output goes alone. */
static void flush_ready(struct front *l)
{
    uint32_t n = (uint32_t)l->nready;
    uint32_t room = l->out < l->max_out ? l->max_out - l->out : 0;
    if (n == 0 || room == 0)
        return;
    struct conn *batch[GROUP_MAX];
    uint32_t per = (n + room - 1) / room, k = 0, keep = 0;
    if (per > GROUP_MAX)
        per = GROUP_MAX;
    for (uint32_t i = 0; i < n; i++) {
        struct conn *c = l->ready[i];
        if (l->out >= l->max_out && k == 0) {
            l->ready[keep++] = c; /* still queued: a later turn's */
            continue;
        }
        c->queued = false;
        if (c->dead && (c->ncmds == 0 || c->closing)) {
            if (!c->group)
                conn_free(c);
            continue;
        }
        /* A client that sent whole commands and went runs them still, as
         * with redis-server; nobody reads the replies. */
        if (c->closing || c->ncmds == 0)
            continue;
        if (c->alone) {
            c->alone = false;
            submit_group(l, &c, 1);
            continue;
        }
        batch[k++] = c;
        if (k == per) {
            submit_group(l, batch, k);
            k = 0;
        }
    }
    if (k > 0)
        submit_group(l, batch, k);
    l->nready = keep;
}

/* Drops the first done commands of the batch. */
static void consume(struct conn *c, uint32_t done)
{
    if (done == 0)
        return;
    size_t base = c->cmd_end[done - 1];
    c->in.off += base;
    for (uint32_t i = done; i < c->ncmds; i++)
        c->cmd_end[i - done] = c->cmd_end[i] - base;
    memmove(c->cmd_write, c->cmd_write + done, (c->ncmds - done) * sizeof *c->cmd_write);
    c->ncmds -= done;
}

static void park(struct front *l, walls_task *task)
{
    if (l->nparked == l->parked_cap) {
        size_t cap = l->parked_cap ? l->parked_cap * 2 : 64;
        walls_task **grown = realloc(l->parked, cap * sizeof *grown);
        if (!grown) {
            kv_log(l->srv, "out of memory holding a reply for its sync");
            return;
        }
        l->parked = grown;
        l->parked_cap = cap;
    }
    l->parked[l->nparked++] = task;
}

static void finish(struct front *l, walls_task *task);

/* Batches whose records may be on disk now. */
static void unpark(struct front *l)
{
    size_t n = l->nparked;
    if (n == 0)
        return;
    walls_task **tasks = malloc(n * sizeof *tasks);
    if (!tasks)
        return;
    memcpy(tasks, l->parked, n * sizeof *tasks);
    l->nparked = 0;
    for (size_t i = 0; i < n; i++)
        finish(l, tasks[i]);
    free(tasks);
}

/* The EXEC went out and was answered: the transaction is over. */
static void end_exec(struct conn *c)
{
    c->exec_batch = c->in_multi = c->multi_failed = c->multi_denyoom = false;
    c->queued_cmds.len = 0;
    c->nqueued = 0;
}

/* One connection's part of a finished task. */
static void conn_done(struct conn *c, const struct walls_result *res, bool died, bool single)
{
    struct server *srv = c->loop->srv;
    struct kv_slot *slot = kv_slot_of(&srv->st, c->slot);
    c->group = NULL;
    if (c->dead) {
        conn_free(c);
        return;
    }
    uint64_t progress = __atomic_load_n(&slot->progress, __ATOMIC_ACQUIRE);
    uint32_t done = KV_DONE(progress), len = KV_LEN(progress);
    if (done > c->ncmds || len > KV_SLOT_ROOM || ((progress & KV_BIG) && (!single || !done))) {
        conn_error(c, "ERR the backend broke the reply protocol");
        c->closing = true;
        conn_flush(c);
        return;
    }
    if (!conn_send(c, slot->replies, len))
        return;
    if (progress & KV_BIG) {
        if (!died) {
            if (!conn_send(c, res->out, res->out_len))
                return;
        } else if (c->cmd_write[done - 1]) {
            /* It took effect; its reply died with the backend. */
            if (!conn_error(c, "ERR the backend died after the command took effect, before "
                               "its reply was read"))
                return;
        } else {
            done--; /* it changed nothing: it runs again */
        }
    }
    if (died && res->status == WALLS_CANCELLED) {
        c->closing = true;
        conn_flush(c);
        return;
    }
    if (died && res->status == WALLS_FAILED) {
        /* No death: the backend refused the task (it could not open the
         * table, or read the batch). Sending the batch again would loop
         * for ever; this connection is told, and closed. */
        kv_log(srv, "a backend refused a batch (code %d)", res->code);
        conn_error(c, "ERR the backend refused the batch");
        c->closing = true;
        conn_flush(c);
        return;
    }
    bool quit = c->quit_after && done == c->ncmds;
    consume(c, done);
    if (c->exec_batch && done > 0)
        end_exec(c);
    bool started = __atomic_load_n(&slot->cur_cmd, __ATOMIC_ACQUIRE) != UINT64_MAX;
    if (died && c->ncmds > 0 && started) {
        bool changed = __atomic_load_n(&slot->cur_cmd, __ATOMIC_ACQUIRE) == done &&
                       __atomic_load_n(&slot->dirty, __ATOMIC_ACQUIRE);
        if (changed || c->retried) {
            char text[200];
            snprintf(text, sizeof text, "ERR the backend running this command died (%s)%s",
                     walls_status_name(res->status),
                     changed ? "; what it had changed was undone" : "");
            if (!conn_error(c, text))
                return;
            consume(c, 1);
            if (c->exec_batch)
                end_exec(c);
            c->retried = 0;
        } else {
            c->retried = 1;
        }
    } else if (!died) {
        c->retried = 0;
        /* Stopped before a reply too big for its slot: that one goes alone,
         * with the task's output for its reply. */
        if (c->ncmds > 0 && !single && done == 0)
            c->alone = true;
        if (c->ncmds > 0 && single && done == 0) {
            conn_error(c, "ERR the backend refused the batch");
            c->closing = true;
            conn_flush(c);
            return;
        }
    }
    if (quit) {
        c->closing = true;
        conn_flush(c);
        return;
    }
    if (c->ncmds > 0) {
        queue(c);
        return;
    }
    if (!conn_flush(c))
        return;
    conn_serve(c);
}

/* A finished task of this loop's connections. */
static void finish(struct front *l, walls_task *task)
{
    struct group *g = walls_task_user(task);
    struct server *srv = l->srv;
    if (!g->back) {
        g->back = true;
        l->out--;
        /* Its records are committed or undone: the writer may go on. */
        if (srv->set.appendonly)
            kv_aof_kick(srv);
    }
    struct walls_result res;
    int rc = walls_wait(task, 0, &res);
    bool died = rc != 0 || res.status != WALLS_OK;
    if (rc != 0)
        res = (struct walls_result){.status = WALLS_FAILED, .code = rc};
    if (died && !g->settled) {
        /* Roll back what the dying command had not committed, so that
         * every slot's progress is final. */
        for (uint32_t i = 0; i < g->n; i++) {
            struct kv_slot *slot = kv_slot_of(&srv->st, g->conns[i]->slot);
            kv_settle(&srv->st, __atomic_load_n(&slot->cur_set, __ATOMIC_ACQUIRE));
        }
        if (res.status != WALLS_CANCELLED)
            __atomic_fetch_add(&kv_info_of(&srv->st)->backend_deaths, 1, __ATOMIC_RELAXED);
        g->settled = true;
        /* The dead command's record is undone now. */
        if (srv->set.appendonly)
            kv_aof_kick(srv);
    }
    if (srv->aof_mode == KV_FSYNC_ALWAYS) {
        uint64_t synced = __atomic_load_n(&srv->st.hdr->aof_synced, __ATOMIC_ACQUIRE);
        for (uint32_t i = 0; i < g->n; i++) {
            struct kv_slot *slot = kv_slot_of(&srv->st, g->conns[i]->slot);
            if (!g->conns[i]->dead &&
                __atomic_load_n(&slot->aof_end, __ATOMIC_ACQUIRE) > synced) {
                /* Acknowledged only once on disk: back when the writer
                 * has synced. */
                park(l, task);
                return;
            }
        }
    }
    for (uint32_t i = 0; i < g->n; i++)
        conn_done(g->conns[i], &res, died, g->n == 1);
    walls_task_free(task);
    free(g);
}

static void hand_over(struct front *l, walls_task *task)
{
    struct group *g = walls_task_user(task);
    if (g->loop == l) {
        finish(l, task);
        return;
    }
    /* Linked through the group: handing over needs no memory, so no
     * task is ever stranded (nor its loop's count of tasks out). */
    struct front *owner = g->loop;
    pthread_mutex_lock(&owner->inbox_lock);
    g->inbox_next = owner->inbox;
    owner->inbox = g;
    pthread_mutex_unlock(&owner->inbox_lock);
    uint64_t one = 1;
    ssize_t rc = write(owner->wake_fd, &one, sizeof one);
    (void)rc;
}

static void collect(struct front *l)
{
    walls_task *tasks[64];
    size_t n;
    while (walls_pool_collect(l->srv->pool, tasks, 64, &n) == 0 && n > 0) {
        for (size_t i = 0; i < n; i++)
            hand_over(l, tasks[i]);
        if (n < 64)
            break;
    }
}

static void drain_inbox(struct front *l)
{
    uint64_t v;
    ssize_t rc = read(l->wake_fd, &v, sizeof v);
    (void)rc;
    for (;;) {
        pthread_mutex_lock(&l->inbox_lock);
        struct group *g = l->inbox;
        if (g)
            l->inbox = g->inbox_next;
        pthread_mutex_unlock(&l->inbox_lock);
        if (!g)
            break;
        finish(l, g->task);
    }
    unpark(l);
}

static void conn_readable(struct conn *c)
{
    for (;;) {
        if (!buf_room(&c->in, 16384)) {
            conn_error(c, "ERR out of memory");
            c->closing = true;
            conn_flush(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0) {
            /* Shut on its side (shutdown(SHUT_WR), as `nc -N` does, or
             * closed): what it sent whole still runs, batch after batch,
             * answered while the connection takes replies, as with
             * redis-server; then it closes (conn_serve()). */
            c->eof = true;
            conn_want(c, c->out.len > c->out.off);
            if (!c->group && !c->queued)
                conn_serve(c);
            return;
        }
        if (n < 0) {
            conn_close(c);
            return;
        }
        c->in.len += (size_t)n;
        if ((size_t)n < 16384 || ((c->group || c->queued) && c->in.len - c->in.off > IN_HIGH))
            break;
    }
    if (c->group || c->queued)
        conn_want(c, c->out.len > c->out.off);
    else
        conn_serve(c);
}

static void accept_all(struct front *l)
{
    struct server *srv = l->srv;
    for (;;) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct kv_info *info = kv_info_of(&srv->st);
        uint32_t slot;
        struct conn *c = NULL;
        if (__atomic_load_n(&srv->stop, __ATOMIC_RELAXED) || !slot_take(srv, &slot)) {
            static const char full[] = "-ERR max number of clients reached\r\n";
            ssize_t rc = send(fd, full, sizeof full - 1, MSG_NOSIGNAL);
            (void)rc;
            close(fd);
            __atomic_fetch_add(&info->rejected, 1, __ATOMIC_RELAXED);
            continue;
        }
        c = calloc(1, sizeof *c);
        if (!c || !buf_room(&c->in, 16384)) {
            if (c)
                free(c->in.p);
            free(c);
            slot_give(srv, slot);
            close(fd);
            continue;
        }
        c->in.off = c->in.len = HEADROOM;
        c->fd = fd;
        c->loop = l;
        c->slot = slot;
        resp_parser_init(&c->parser);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->next = l->conns;
        if (l->conns)
            l->conns->prev = c;
        l->conns = c;
        c->events = EPOLLIN | EPOLLRDHUP;
        struct epoll_event ev = {.events = c->events, .data.ptr = c};
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
        __atomic_fetch_add(&info->clients, 1, __ATOMIC_RELAXED);
        kv_client_init(&c->client,
                       __atomic_add_fetch(&info->connections, 1, __ATOMIC_RELAXED), fd);
    }
}

static void *front_main(void *arg)
{
    struct front *l = arg;
    struct server *srv = l->srv;
    struct epoll_event evs[64];
    for (;;) {
        int stop = __atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE);
        if (stop) {
            /* Stopping: idle connections close now, busy ones after their
             * batch is answered (or at once when told to hurry). */
            bool busy = false;
            for (struct conn *c = l->conns, *next; c; c = next) {
                next = c->next;
                /* A batch held for a later turn was read whole: it is
                 * answered like one that is out. */
                if (c->dead)
                    busy = true;
                else if ((!c->group && !c->queued) || stop > 1)
                    conn_close(c);
                else
                    busy = true;
            }
            /* At once: a batch still out is not waited for (its backend
             * may never answer); the pool's destruction cancels it. */
            if (!busy || stop > 1) {
                bury(l);
                __atomic_fetch_add(&srv->fronts_done, 1, __ATOMIC_RELEASE);
                return NULL;
            }
        }
        int n = epoll_wait(l->epfd, evs, 64, stop ? 10 : 200);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_LISTEN) {
                accept_all(l);
            } else if (tag == TAG_POOL) {
                collect(l);
            } else if (tag == TAG_WAKE) {
                drain_inbox(l);
            } else {
                struct conn *c = evs[i].data.ptr;
                if (c->dead)
                    continue;
                uint32_t e = evs[i].events;
                if (e & EPOLLOUT) {
                    if (!conn_flush(c))
                        continue;
                    if (!c->group)
                        conn_serve(c);
                    if (c->dead)
                        continue;
                }
                if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    conn_readable(c);
            }
        }
        if (stop || n == 0) {
            collect(l);
            drain_inbox(l);
        }
        flush_ready(l);
        bury(l);
    }
}

int kv_front_start(struct server *srv)
{
    srv->fronts = calloc(srv->set.threads, sizeof *srv->fronts);
    if (!srv->fronts)
        return -ENOMEM;
    for (unsigned i = 0; i < srv->set.threads; i++) {
        struct front *l = &srv->fronts[i];
        l->srv = srv;
        /* Its share of the backends, rounded up. */
        l->max_out = (srv->set.backends + srv->set.threads - 1) / srv->set.threads;
        pthread_mutex_init(&l->inbox_lock, NULL);
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->epfd < 0 || l->wake_fd < 0)
            return -errno;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTEN};
        struct epoll_event pool = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_POOL};
        struct epoll_event wake = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) != 0 ||
            epoll_ctl(l->epfd, EPOLL_CTL_ADD, srv->pool_fd, &pool) != 0 ||
            epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &wake) != 0)
            return -errno;
    }
    for (unsigned i = 0; i < srv->set.threads; i++) {
        int rc = pthread_create(&srv->fronts[i].thread, NULL, front_main, &srv->fronts[i]);
        if (rc != 0)
            return -rc;
    }
    return 0;
}

void kv_front_join(struct server *srv)
{
    for (unsigned i = 0; i < srv->set.threads; i++)
        pthread_join(srv->fronts[i].thread, NULL);
    for (unsigned i = 0; i < srv->set.threads; i++) {
        close(srv->fronts[i].epfd);
        close(srv->fronts[i].wake_fd);
        free(srv->fronts[i].parked);
        free(srv->fronts[i].ready);
        free(srv->fronts[i].group_buf.p);
        pthread_mutex_destroy(&srv->fronts[i].inbox_lock);
    }
    free(srv->fronts);
}

void kv_front_wake_all(struct server *srv)
{
    for (unsigned i = 0; i < srv->set.threads; i++) {
        uint64_t one = 1;
        ssize_t rc = write(srv->fronts[i].wake_fd, &one, sizeof one);
        (void)rc;
    }
}
