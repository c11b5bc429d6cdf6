/*
 * sandbox.h - the system-call filter of sandboxed process workers.
 */
#ifndef WALLS_SANDBOX_H
#define WALLS_SANDBOX_H

/* Builds the allow-list for the calling (single-threaded) worker; NULL with
 * *err set (an errno) when it cannot. */
void *walls__sandbox_build(int *err);
/* Loads a built filter for every thread of the process and frees it.
 * Returns 0 or an errno. */
int walls__sandbox_load(void *filter);

#endif
