/*
 * front.h - walls-kv's front: the threads that own the sockets.
 *
 * Each front thread runs an epoll loop over the listening socket (shared,
 * EPOLLEXCLUSIVE), its connections, the pool's descriptor and a wake-up
 * eventfd. A connection parses what it read into commands and, when no
 * batch of its own is out, sends every complete command it has (up to
 * KV_BATCH_MAX, cut after a QUIT) to the backends as one task. Replies go
 * out in order: a connection has at most one batch out at a time. A loop
 * has at most its share of the backends' worth of tasks out (max_out);
 * batches that become ready meanwhile go out together when one is back.
 *
 * The pool is shared, so any thread may collect a finished task; a task
 * of another thread's connection is handed to it through its inbox.
 */
#ifndef KV_FRONT_H
#define KV_FRONT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kv.h"

struct kv_settings {
    char bind[64];
    unsigned port;
    unsigned backends;
    unsigned threads;
    bool appendonly;
    char appendfsync[16];
    char dir[256];
    uint64_t maxmemory;
    int policy; /* 0 noeviction, 1 allkeys-lru */
    unsigned maxclients;
    size_t heap;   /* bytes of heap a stripe */
    bool quiet;
};

enum { KV_FSYNC_NO, KV_FSYNC_EVERYSEC, KV_FSYNC_ALWAYS };

struct kv_buf {
    char *p;
    size_t off, len, cap; /* bytes [off, len) are pending */
};

struct front;
struct group;

struct conn {
    int fd;
    struct front *loop;
    uint32_t slot;
    struct kv_buf in, out;
    struct resp_parser parser;
    size_t need;             /* bytes past in.off before parsing is worth trying again */
    /* The batch: commands [0, ncmds), command i ending cmd_end[i] bytes
     * past in.off (offsets from in.off: the buffer's pending bytes move
     * when it is compacted, even while the batch is out); out in
     * the task of group, or queued for the end of the loop's turn. */
    struct group *group;
    uint32_t events;         /* what epoll watches for it now */
    bool queued;
    bool alone;              /* its next batch goes in a task of its own */
    uint32_t ncmds;
    uint32_t retried;        /* the first command was sent again after a death */
    size_t *cmd_end;
    bool *cmd_write;
    bool quit_after;         /* the batch ends with QUIT */
    /* MULTI: the commands queued for the EXEC, as sent. */
    bool in_multi, multi_failed;
    bool multi_denyoom; /* a queued command may grow the table */
    bool exec_batch;         /* the batch is the EXEC, its commands these */
    struct kv_buf queued_cmds;
    uint32_t nqueued;
    const char *proto_error; /* to send once the batch is answered, then close */
    bool closing;            /* close once out is written */
    bool eof;                /* the client shut its side: no more reading; every whole
                              * command it sent still runs and is answered, then the
                              * connection closes */
    bool dead;
    struct kv_client client;  /* what CLIENT and HELLO read and set */
    struct conn *prev, *next;
    struct conn *grave_next;  /* freed at the end of the loop's turn */
};

/* A task and the connections whose batches it carries (all of one loop). */
struct group {
    struct front *loop;
    walls_task *task;
    bool settled;            /* its dead backend's stripes were taken already */
    bool back;               /* counted off its loop's tasks out */
    struct group *inbox_next; /* in its loop's inbox */
    uint32_t n;
    struct conn *conns[];
};

struct server {
    struct kv_settings set;
    walls_pool *pool;
    int pool_fd;
    struct kv_store st;
    int listen_fd;
    unsigned port;           /* bound */
    struct front *fronts;
    uint32_t *free_slots;    /* a stack of reply slots */
    uint32_t nfree;
    pthread_mutex_t slots_lock;
    uint64_t next_seq;       /* atomic */
    int stop;                /* atomic: 1 graceful, 2 at once */
    unsigned fronts_done;    /* atomic: front threads that returned */
    /* The append-only file (aof.c). */
    int aof_mode;            /* KV_FSYNC_*, when appendonly */
    int aof_fd;
    bool aof_running;
    pthread_t aof_thread;
    int aof_stop;            /* atomic */
    int64_t aof_stop_ms;
    uint32_t aof_bell;       /* atomic: bumped when records may be ready (a futex) */
    uint32_t aof_asleep;     /* atomic: the writer sleeps on aof_bell */
};

struct front {
    struct server *srv;
    pthread_t thread;
    int epfd, wake_fd;
    struct conn *conns;
    /* Connections let go of during this turn: freed at its end, since an
     * event of the same epoll_wait() may still point at one. */
    struct conn *graves;
    pthread_mutex_t inbox_lock;
    struct group *inbox;     /* finished tasks of its connections, collected elsewhere */
    /* appendfsync always: finished batches whose records are not synced. */
    walls_task **parked;
    size_t nparked, parked_cap;
    /* Connections whose batch goes out at the end of this turn, or of a
     * later one when `out` tasks are out already (at most `max_out`). */
    struct conn **ready;
    size_t nready, ready_cap;
    unsigned out, max_out;
    struct kv_buf group_buf; /* a task's input, when it carries several */
};

int kv_front_start(struct server *srv);
void kv_front_join(struct server *srv);
void kv_front_wake_all(struct server *srv);
void kv_log(struct server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
