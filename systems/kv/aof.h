/*
 * aof.h - the append-only file (aof.c): replay at start, the writer thread.
 */
#ifndef KV_AOF_H
#define KV_AOF_H

#include "front.h"

/* Replays the file at path into the table (the host, before serving). 0
 * (also when there is no file), or -errno; -EILSEQ: damaged, said on
 * standard error. A torn last record is dropped, and the file cut there. */
int kv_aof_replay(struct server *srv, const char *path);
/* Opens path for appending. 0 or -errno. */
int kv_aof_open(struct server *srv, const char *path);
/* Starts the writer, once the front threads run (it wakes them). 0 or
 * -errno. Records wait in the ring until then. */
int kv_aof_start(struct server *srv);
/* Writes what is committed, syncs, and stops the writer. */
void kv_aof_stop(struct server *srv);
/* Says that records may have been committed (a task of the backends
 * ended): wakes the writer if it sleeps. Any thread, cheap. */
void kv_aof_kick(struct server *srv);

#endif
