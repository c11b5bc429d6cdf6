/*
 * hostthread.c - walls' own threads in the program (worker threads, the
 * supervisor, the time-limit thread) start with every asynchronous signal
 * blocked, so that the program's signals keep going to the program's own
 * threads. Faults (SIGSEGV and the like) stay unblocked: a thread task
 * that faults still dies of it.
 */
#define _GNU_SOURCE
#include <signal.h>

#include "internal.h"

int walls__thread_start(pthread_t *thread, void *(*main)(void *), void *arg)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
    sigset_t set, old;
    sigfillset(&set);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&set, faults[i]);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int err = pthread_create(thread, NULL, main, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -err;
}
