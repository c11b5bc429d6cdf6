/*
 * child.h - entry points of the children started in child.c.
 */
#ifndef WALLS_CHILD_H
#define WALLS_CHILD_H

#include <sys/types.h>

/* What the host hands the child that becomes the fork server. */
struct walls__fs_start {
    int ctl;          /* the fork server's end of the control socket */
    pid_t host;       /* the program, which the fork server outlives not */
    char **argv;      /* exec mode: prepared before the clone */
    char **envp;
};

/* Fork mode: becomes the fork server. */
_Noreturn void walls__forkserver_fork_child(struct walls__fs_start *start);
/* Exec mode: re-executes the program as the fork server; exits 127 if
 * execve fails. */
_Noreturn void walls__forkserver_exec_child(struct walls__fs_start *start);

/* Names this process in ps: its comm and its command line. Async-signal-safe. */
void walls__set_title(const char *title);

/* clone3 with CLONE_PIDFD and no exit signal, every signal blocked around
 * it. In the parent: the child's pid (or -1 with *err set), the signal
 * mask as it was. In the child: 0, with every signal still blocked. */
pid_t walls__clone_pidfd(int *pidfd, int *err);

#endif
