/*
 * forkserver.h - the fork server: its message protocol, the host's handle
 * on it, and its own loop.
 *
 * Forking a multi-threaded program copies locks that other threads held at
 * that instant; so walls never forks the host to make a worker. It starts
 * one small fork server instead: a fork of the host while it is still
 * single-threaded (walls_init(), or the first process pool of a program
 * that has no threads yet), or else a fresh execution of the program
 * (/proc/self/exe) that a constructor turns into the fork server before
 * main() runs. Task functions are sent as (module, offset), so both kinds
 * find them.
 *
 * Three files: forkserver_proto.c frames the messages both sides send,
 * forkserver_host.c is the host's handle (start, share, stop), and
 * forkserver_main.c is the fork server's own loop, which runs in the
 * child.
 */
#ifndef WALLS_FORKSERVER_H
#define WALLS_FORKSERVER_H

#include <stdbool.h>
#include <stdint.h>

/* ---- the protocol, over SOCK_SEQPACKET sockets --------------------------- */

#define WALLS__MSG_MAX_FDS 9 /* SPAWN: mailbox, doorbell, I/O in and out, the pool's bell,
                              * arena, staging, locks, shared region */

enum walls__msg_type {
    WALLS__MSG_HELLO = 1, /* fork server -> host: started */
    WALLS__MSG_ADD_POOL,  /* host -> fork server, on the control socket, with the pool's socket */
    WALLS__MSG_SPAWN,     /* host -> fork server, with the worker's descriptors */
    WALLS__MSG_SPAWNED,   /* fork server -> host, with a pidfd; err != 0 if it failed */
    WALLS__MSG_EXIT,      /* fork server -> host: a worker was reaped */
};

struct walls__msg {
    uint32_t type;
    uint32_t worker;     /* the pool's index of the process */
    int32_t pid;
    int32_t err;
    int32_t exit_how;    /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
    int32_t exit_status; /* exit code or signal */
};

/* Sends one message with up to WALLS__MSG_MAX_FDS descriptors; MSG_NOSIGNAL,
 * so a closed peer gives -EPIPE rather than SIGPIPE. Returns 0 or -errno. */
int walls__msg_send(int sock, const struct walls__msg *msg, const int *fds, int nfds);
/* Receives one message and up to *nfds descriptors (close-on-exec; any
 * beyond are closed). Returns 0, -EAGAIN when nothing is there (block =
 * false), -EPIPE at end of stream, -EPROTO for a malformed message (its
 * descriptors closed), -EMFILE for a whole message whose descriptors this
 * process had no room for (*msg is filled in, none is kept), or -errno. */
int walls__msg_recv(int sock, struct walls__msg *msg, int *fds, int *nfds, bool block);

/* ---- the host's handle (forkserver_host.c) -------------------------------- */

/* Takes a reference on the fork server, starting it if none runs.
 * explicit_init: the reference is walls_init()'s. Returns 0 or -errno. */
int walls__forkserver_acquire(bool explicit_init);
/* Drops a reference; the last one stops and reaps the fork server. */
void walls__forkserver_release(bool explicit_init);
/* The fork server was seen gone (its socket hung up) before its pidfd
 * said so: the next acquire starts a new one. */
void walls__forkserver_forget(void);
/* A new socket for one pool, handed to the fork server: the pool's end in
 * *sock. Returns 0, -ECHILD (the fork server is gone) or -errno. */
int walls__forkserver_open_pool(int *sock);

/* ---- the fork server's side (forkserver_main.c) --------------------------- */

/* The environment variable that makes a re-executed program the fork
 * server: its value is the control socket's descriptor. */
#define WALLS__FORKSERVER_ENV "WALLS__FORKSERVER_FD"
/* The shared libraries a re-executed fork server loads before it serves:
 * those the program had loaded, by path, one a line. */
#define WALLS__FORKSERVER_LIBS_ENV "WALLS__FORKSERVER_LIBS"

/* The fork server's loop, on control socket ctl. Never returns. */
_Noreturn void walls__forkserver_main(int ctl, pid_t host);

#endif
