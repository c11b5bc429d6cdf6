/*
 * module.h - task functions named by where they are: the module (a loaded
 * object, "" for the main program) and the offset in it. A worker process,
 * or a rank of an MPI job running the same executable, finds the function
 * again from those two.
 */
#ifndef WALLS_MODULE_H
#define WALLS_MODULE_H

#include <stdint.h>

#include "pool.h"
#include "walls.h"

/* Where some task functions were found: a 64-entry cache, keyed by the
 * function's address. */
struct walls__fn_cache {
    walls_fn *fn;
    uint64_t offset;
    uint16_t module;
    bool main;      /* in the main program, which is never unloaded */
};

#define WALLS__FN_CACHE 64u

/* Which module fn lives in (numbered in the pool's module table, added
 * there if new) and its offset in it. Pool lock held. A library unloaded
 * since (dlclose) empties the cache, so that another one loaded at the
 * same address is found for what it is. Returns 0, -ENOENT (in no
 * module), -ENAMETOOLONG (the path does not fit a ring slot), -ESTALE (the
 * library's file at that path is another than the one the pool's workers
 * load under it) or -ENOMEM (no memory, or WALLS__MAX_MODULES modules
 * already). */
int walls__module_locate(struct walls__pool *pool, struct walls__fn_cache cache[WALLS__FN_CACHE],
                         walls_fn *fn, uint16_t *module, uint64_t *offset);

/* This process's /proc/self/maps, read whole (a caller that changes its
 * mappings while it reads would change the file under it): malloc'd,
 * NUL-terminated, or NULL when it cannot be read. */
char *walls__maps_text(void);

/* Notes which file each library this process maps is, as a fork server
 * about to start (forked from it, or re-executed and loading the same
 * libraries) will hold them. */
void walls__module_note_server_start(void);

/* Where the module at path ("" for the main program) is loaded in this
 * process, loading it if it is not: 0, or -ENOENT. Exported for
 * libwalls-mpi (relay.h). */
__attribute__((visibility("default"))) int walls__module_base(const char *path,
                                                              uintptr_t *base);

/* walls__module_base(), and the build-id of the object found there (len
 * 0 when it has none, or a longer one than WALLS__BUILD_ID_MAX). With
 * want_len above 0, a file not loaded yet whose build-id is not want's is
 * not loaded: -ESTALE. */
int walls__module_find(const char *path, uintptr_t *base, const unsigned char *want,
                       size_t want_len, unsigned char id[WALLS__BUILD_ID_MAX], size_t *id_len);

#endif
