/*
 * module.c - task functions as a module and an offset: found in the host
 * (walls__module_locate) and found again where they run
 * (walls__module_base).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mailbox.h"
#include "module.h"

/* The GNU build-id among the notes at at (left bytes, aligned to align):
 * its length; 0 when it is empty or longer than WALLS__BUILD_ID_MAX; -1
 * when these notes hold none. */
static ssize_t notes_build_id(const unsigned char *at, size_t left, size_t align,
                              unsigned char id[WALLS__BUILD_ID_MAX])
{
    while (left >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        memcpy(&nh, at, sizeof nh);
        /* The descriptor starts at the header and name rounded up to
         * the alignment, and the next note after it rounded up. */
        if (nh.n_namesz > left - sizeof nh)
            break;
        size_t desc_at = (sizeof nh + nh.n_namesz + align - 1) & ~(align - 1);
        if (desc_at > left || nh.n_descsz > left - desc_at)
            break;
        size_t next = (desc_at + nh.n_descsz + align - 1) & ~(align - 1);
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp(at + sizeof nh, "GNU", 4) == 0) {
            if (nh.n_descsz == 0 || nh.n_descsz > WALLS__BUILD_ID_MAX)
                return 0;
            memcpy(id, at + desc_at, nh.n_descsz);
            return (ssize_t)nh.n_descsz;
        }
        if (next >= left)
            break;
        at += next;
        left -= next;
    }
    return -1;
}

/* The object's GNU build-id, from its loaded PT_NOTE segments: its length,
 * or 0 when it has none (or one longer than WALLS__BUILD_ID_MAX). */
static size_t build_id_of(const struct dl_phdr_info *info, unsigned char id[WALLS__BUILD_ID_MAX])
{
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        ssize_t n = notes_build_id((const unsigned char *)(uintptr_t)(info->dlpi_addr + ph->p_vaddr),
                                   ph->p_memsz, ph->p_align == 8 ? 8 : 4, id);
        if (n >= 0)
            return (size_t)n;
    }
    return 0;
}

/* The same of the file at path, read from its notes without loading it
 * (whose constructors would run): 0 as well when it cannot be read or is
 * no ELF object of this machine's kind. */
static size_t file_build_id(const char *path, unsigned char id[WALLS__BUILD_ID_MAX])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t got = 0;
    ElfW(Ehdr) eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum > 512)
        goto out;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        ElfW(Phdr) ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
            (ssize_t)sizeof ph)
            break;
        /* Notes are small; a larger segment is no build-id's. */
        if (ph.p_type != PT_NOTE || ph.p_filesz > 65536)
            continue;
        unsigned char *notes = malloc(ph.p_filesz ? ph.p_filesz : 1);
        if (!notes)
            break;
        ssize_t n = -1;
        if (pread(fd, notes, ph.p_filesz, (off_t)ph.p_offset) == (ssize_t)ph.p_filesz)
            n = notes_build_id(notes, ph.p_filesz, ph.p_align == 8 ? 8 : 4, id);
        free(notes);
        if (n >= 0) {
            got = (size_t)n;
            break;
        }
    }
out:
    close(fd);
    return got;
}

struct object_search {
    uintptr_t addr;
    bool first;        /* the next object reported is the first one */
    bool found;
    bool too_long;     /* its name does not fit in path */
    uintptr_t base;    /* its load bias: segment addresses are base + p_vaddr */
    char path[PATH_MAX]; /* "" for the main program */
    unsigned char build_id[WALLS__BUILD_ID_MAX];
    size_t build_id_len;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct object_search *s = data;
    /* The first object reported is the main program, in dynamic and static
     * programs alike; the worker side names it "" too. */
    bool main_program = s->first;
    s->first = false;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)info->dlpi_addr + (uintptr_t)ph->p_vaddr;
        if (ph->p_type != PT_LOAD || s->addr < start || s->addr - start >= ph->p_memsz)
            continue;
        const char *name = main_program || !info->dlpi_name ? "" : info->dlpi_name;
        size_t len = strlen(name);
        s->found = true;
        s->base = (uintptr_t)info->dlpi_addr;
        s->too_long = len >= sizeof s->path;
        if (!s->too_long)
            memcpy(s->path, name, len + 1);
        s->build_id_len = build_id_of(info, s->build_id);
        return 1;
    }
    return 0;
}

/*
 * The module is found by walking the loaded objects' segments, not with
 * dladdr(), which knows nothing of the main program of a static
 * executable; dl_iterate_phdr() reports it there as well.
 */
static int read_subs(struct dl_phdr_info *info, size_t size, void *data)
{
    /* The counts follow the fields every glibc has; older ones lack them. */
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        *(uint64_t *)data = (uint64_t)info->dlpi_subs;
    return 1;
}

/* How many objects the dynamic loader has unloaded so far. */
static uint64_t loader_unloads(void)
{
    uint64_t subs = 0;
    dl_iterate_phdr(read_subs, &subs);
    return subs;
}

/* ---- which file a loaded library is ---------------------------------------------- */

/* The libraries this process had mapped when its fork server last
 * started: the fork server (forked from it, or re-executed and loading
 * them by their paths), and every worker forked from it, hold those under
 * their paths, and a worker finds a library by its path among those it
 * holds before it loads one. */
struct held {
    char *path;
    uint64_t dev, ino;
};
static struct held *held;
static size_t nheld;
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;

char *walls__maps_text(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (ssize_t n = 1; text && n > 0;) {
        if (cap - len < 4096) {
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                free(text);
                text = NULL;
                break;
            }
            text = grown;
            cap *= 2;
        }
        n = read(fd, text + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            n = 1;
        } else if (n < 0) {
            free(text);
            text = NULL;
        } else {
            len += (size_t)n;
        }
    }
    close(fd);
    if (text)
        text[len] = '\0';
    return text;
}

/* Calls each(lo, hi, dev, ino, path) for every file mapping of this
 * process (path without " (deleted)"), until it returns true. -1 if the
 * map cannot be read. */
static int each_mapping(bool (*each)(uintptr_t lo, uintptr_t hi, uint64_t dev, uint64_t ino,
                                     const char *path, void *arg),
                        void *arg)
{
    char *text = walls__maps_text();
    if (!text)
        return -1;
    for (char *line = text, *next; *line; line = next) {
        next = line + strcspn(line, "\n");
        if (*next)
            *next++ = '\0';
        unsigned long lo, hi, off, ino;
        unsigned maj, min;
        int at = 0;
        if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu %n", &lo, &hi, &off, &maj, &min, &ino, &at) <
                6 ||
            !ino || line[at] != '/')
            continue;
        char *path = line + at;
        size_t n = strlen(path);
        if (n > 10 && strcmp(path + n - 10, " (deleted)") == 0)
            path[n - 10] = '\0';
        if (each(lo, hi, (uint64_t)makedev(maj, min), ino, path, arg))
            break;
    }
    free(text);
    return 0;
}

static bool note_held(uintptr_t lo, uintptr_t hi, uint64_t dev, uint64_t ino, const char *path,
                      void *arg)
{
    (void)lo, (void)hi, (void)arg;
    if (nheld && strcmp(held[nheld - 1].path, path) == 0)
        return false; /* the same library's next segment */
    struct held *grown = realloc(held, (nheld + 1) * sizeof *held);
    if (!grown)
        return true;
    held = grown;
    if (!(held[nheld].path = strdup(path)))
        return true;
    held[nheld].dev = dev;
    held[nheld].ino = ino;
    nheld++;
    return false;
}

void walls__module_note_server_start(void)
{
    pthread_mutex_lock(&held_lock);
    for (size_t i = 0; i < nheld; i++)
        free(held[i].path);
    nheld = 0;
    each_mapping(note_held, NULL);
    pthread_mutex_unlock(&held_lock);
}

struct identity {
    uintptr_t addr;
    uint64_t dev, ino;
    bool found;
};

static bool find_identity(uintptr_t lo, uintptr_t hi, uint64_t dev, uint64_t ino,
                          const char *path, void *arg)
{
    (void)path;
    struct identity *id = arg;
    if (id->addr < lo || id->addr >= hi)
        return false;
    id->dev = dev;
    id->ino = ino;
    id->found = true;
    return true;
}

/* Whether the fork server, and so every worker of a new pool, holds
 * another file under path than the one fn lies in here: a library
 * replaced at its path and loaded again while the old one stays in the
 * fork server would otherwise run the old file's code at fn's offset.
 * Both sides are read from /proc/self/maps, never beside stat(), whose
 * device and inode differ from the mapping's on some file systems
 * (overlayfs). */
static bool other_file(walls_fn *fn, const char *path)
{
    pthread_mutex_lock(&held_lock);
    size_t i;
    for (i = 0; i < nheld && strcmp(held[i].path, path) != 0; i++) {
    }
    bool in_server = i < nheld;
    uint64_t dev = in_server ? held[i].dev : 0, ino = in_server ? held[i].ino : 0;
    pthread_mutex_unlock(&held_lock);
    if (!in_server)
        return false; /* a worker loads it from path */
    struct identity id = {.addr = (uintptr_t)fn};
    if (each_mapping(find_identity, &id) != 0 || !id.found)
        return false; /* not known: believed, as before */
    return id.dev != dev || id.ino != ino;
}

int walls__module_locate(struct walls__pool *pool, struct walls__fn_cache cache[WALLS__FN_CACHE],
                         walls_fn *fn, uint16_t *module, uint64_t *offset)
{
    unsigned slot = (unsigned)(((uintptr_t)fn >> 4) & (WALLS__FN_CACHE - 1));
    struct walls__fn_cache *c = &cache[slot];
    if (c->fn == fn && c->main) {
        *module = c->module;
        *offset = c->offset;
        return 0;
    }
    /* A library's function: believed while no library was unloaded. */
    uint64_t subs = loader_unloads();
    if (subs != pool->dl_subs) {
        for (unsigned i = 0; i < WALLS__FN_CACHE; i++)
            cache[i].fn = NULL;
        pool->dl_subs = subs;
    }
    if (c->fn == fn) {
        *module = c->module;
        *offset = c->offset;
        return 0;
    }
    struct object_search search = {.addr = (uintptr_t)fn, .first = true};
    dl_iterate_phdr(find_object, &search);
    if (!search.found)
        return -ENOENT;
    if (search.too_long)
        return -ENAMETOOLONG;
    char resolved[PATH_MAX];
    const char *path = search.path;
    if (path[0] && realpath(path, resolved))
        path = resolved;
    if (strlen(path) >= WALLS__SLOT_DATA)
        return -ENAMETOOLONG;
    /* Which file: a library replaced at its path and loaded again is not
     * the one the workers loaded under that name. */
    struct stat st = {0};
    if (path[0] && stat(path, &st) != 0)
        memset(&st, 0, sizeof st);
    unsigned m;
    for (m = 0; m < pool->nmodules; m++)
        if (strcmp(pool->modules[m].path, path) == 0)
            break;
    if (m < pool->nmodules && path[0] &&
        (pool->modules[m].dev != (uint64_t)st.st_dev || pool->modules[m].ino != (uint64_t)st.st_ino))
        return -ESTALE;
    if (m == pool->nmodules) {
        if (m == WALLS__MAX_MODULES)
            return -ENOMEM;
        if (path[0] && other_file(fn, path))
            return -ESTALE;
        char *copy = strdup(path);
        if (!copy)
            return -ENOMEM;
        pool->modules[m].path = copy;
        pool->modules[m].dev = (uint64_t)st.st_dev;
        pool->modules[m].ino = (uint64_t)st.st_ino;
        memcpy(pool->modules[m].build_id, search.build_id, search.build_id_len);
        pool->modules[m].build_id_len = (uint8_t)search.build_id_len;
        pool->nmodules++;
    }
    c->fn = fn;
    c->main = path[0] == '\0';
    c->module = (uint16_t)m;
    c->offset = (uint64_t)((uintptr_t)fn - search.base);
    *module = c->module;
    *offset = c->offset;
    return 0;
}


struct name_search {
    const char *path;  /* "" for the main program */
    uintptr_t base;    /* when not 0: the object loaded there */
    bool first;
    bool found;
    uintptr_t found_base;
    unsigned char build_id[WALLS__BUILD_ID_MAX];
    size_t build_id_len;
};

static int find_by_name(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct name_search *s = data;
    /* The first object reported is the main program. */
    bool main_program = s->first;
    s->first = false;
    if (s->path[0] == '\0' ? !main_program
                           : main_program || !info->dlpi_name ||
                                 strcmp(info->dlpi_name, s->path) != 0 ||
                                 (s->base && (uintptr_t)info->dlpi_addr != s->base))
        return 0;
    s->found = true;
    s->found_base = (uintptr_t)info->dlpi_addr;
    s->build_id_len = build_id_of(info, s->build_id);
    return 1;
}

int walls__module_find(const char *path, uintptr_t *base, const unsigned char *want,
                       size_t want_len, unsigned char id[WALLS__BUILD_ID_MAX], size_t *id_len)
{
    /* The main program, or a library loaded already under that name (a
     * worker forked after the host loaded it: the usual case): found
     * without dlopen(), whose search costs a new worker far more (every
     * object's names, and the file's identity when no name matches). */
    struct name_search search = {.path = path, .first = true};
    dl_iterate_phdr(find_by_name, &search);
    if (!search.found && path[0] != '\0') {
        void *handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
        if (!handle && want_len) {
            /* Another build under the path is refused before it is
             * loaded: its constructors do not run here. */
            unsigned char file_id[WALLS__BUILD_ID_MAX];
            size_t file_len = file_build_id(path, file_id);
            if (file_len && (file_len != want_len || memcmp(file_id, want, want_len) != 0))
                return -ESTALE;
        }
        if (!handle)
            handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        struct link_map *lm = NULL;
        if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
            return -ENOENT;
        /* The handle stays open. Its build-id from the object at its base
         * (the loader may name it otherwise than path). */
        search = (struct name_search){.path = lm->l_name, .base = (uintptr_t)lm->l_addr,
                                      .first = true};
        dl_iterate_phdr(find_by_name, &search);
        search.found_base = (uintptr_t)lm->l_addr;
    }
    *base = search.found_base;
    if (id && id_len) {
        *id_len = search.build_id_len;
        memcpy(id, search.build_id, search.build_id_len);
    }
    return 0;
}

int walls__module_base(const char *path, uintptr_t *base)
{
    return walls__module_find(path, base, NULL, 0, NULL, NULL);
}
