/*
 * main.c - walls-kv: a Redis-compatible key-value server whose commands
 * run in backend processes that share one table (the pool's writable
 * shared region). Killing a backend loses the command it was running,
 * undone, and nothing else.
 *
 * The flags mirror redis-server's where they overlap. Start-up: the pool
 * (its backends and the shared region, formatted here), the listening
 * socket, the front threads; then the main thread waits for a signal:
 * SIGTERM or SIGINT stop after answering the batches that are out, SIGQUIT
 * at once.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aof.h"
#include "front.h"

#define VERSION "0.1.0"

static void usage(FILE *to)
{
    fprintf(to,
            "usage: walls-kv [options]\n"
            "  --port N                    TCP port (default 6379; 0: any free one, printed)\n"
            "  --bind ADDR                 IPv4 address to listen on (default 127.0.0.1)\n"
            "  --backends N                backend processes (default: usable CPUs)\n"
            "  --threads N                 front threads owning the sockets (default: usable CPUs)\n"
            "  --appendonly yes|no         log writes to DIR/appendonly.aof and replay it at start\n"
            "  --appendfsync always|everysec|no\n"
            "  --dir DIR                   where the append-only file lives (default .)\n"
            "  --maxmemory BYTES           bytes of values the table may hold (units: k kb m mb g gb)\n"
            "  --maxmemory-policy noeviction|allkeys-lru\n"
            "  --maxclients N              connections at once (default 10000)\n"
            "  --quiet                     no log lines\n"
            "  --help, --version\n");
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "walls-kv: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Redis's memory units: k=1000, kb=1024, m, mb, g, gb. */
static int parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    static const struct {
        const char *unit;
        unsigned long long mul;
    } units[] = {{"", 1},       {"b", 1},          {"k", 1000},          {"kb", 1024},
                 {"m", 1000000}, {"mb", 1 << 20}, {"g", 1000000000ULL}, {"gb", 1ULL << 30}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return -1;
            *out = v * units[i].mul;
            return 0;
        }
    return -1;
}

static int yes_no(const char *s, bool *out)
{
    if (s && strcasecmp(s, "yes") == 0)
        *out = true;
    else if (s && strcasecmp(s, "no") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_args(int argc, char **argv, struct kv_settings *set)
{
    int cpus = walls_cpu_count();
    *set = (struct kv_settings){.port = 6379,
                                .backends = cpus > 0 ? (unsigned)cpus : 2,
                                .threads = cpus > 0 ? (unsigned)cpus : 2,
                                .maxclients = 10000};
    strcpy(set->bind, "127.0.0.1");
    strcpy(set->appendfsync, "everysec");
    strcpy(set->dir, ".");
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(flag, "--version") == 0 || strcmp(flag, "-v") == 0) {
            printf("walls-kv %s (walls %s)\n", VERSION, walls_version());
            exit(0);
        }
        if (strcmp(flag, "--quiet") == 0) {
            set->quiet = true;
            continue;
        }
        static const char *const valued[] = {
            "--port", "--bind", "--backends", "--threads", "--appendonly", "--appendfsync",
            "--dir", "--maxmemory", "--maxmemory-policy", "--maxclients"};
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
            known |= strcmp(flag, valued[k]) == 0;
        if (!known)
            return fail("unknown option %s (see --help)", flag);
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (!val)
            return fail("%s needs a value (see --help)", flag);
        i++;
        if (strcmp(flag, "--port") == 0) {
            if (parse_uint(val, 65535, &n) != 0)
                return fail("--port %s: not a port (0-65535)", val);
            set->port = (unsigned)n;
        } else if (strcmp(flag, "--bind") == 0) {
            struct in_addr a;
            if (strlen(val) >= sizeof set->bind || inet_pton(AF_INET, val, &a) != 1)
                return fail("--bind %s: not an IPv4 address", val);
            strcpy(set->bind, val);
        } else if (strcmp(flag, "--backends") == 0) {
            if (parse_uint(val, 256, &n) != 0 || n == 0)
                return fail("--backends %s: give 1 to 256", val);
            set->backends = (unsigned)n;
        } else if (strcmp(flag, "--threads") == 0) {
            if (parse_uint(val, 64, &n) != 0 || n == 0)
                return fail("--threads %s: give 1 to 64", val);
            set->threads = (unsigned)n;
        } else if (strcmp(flag, "--appendonly") == 0) {
            if (yes_no(val, &set->appendonly) != 0)
                return fail("--appendonly %s: yes or no", val);
        } else if (strcmp(flag, "--appendfsync") == 0) {
            if (strcmp(val, "always") && strcmp(val, "everysec") && strcmp(val, "no"))
                return fail("--appendfsync %s: always, everysec or no", val);
            strcpy(set->appendfsync, val);
        } else if (strcmp(flag, "--dir") == 0) {
            if (strlen(val) == 0 || strlen(val) >= sizeof set->dir)
                return fail("--dir: a path under %zu bytes", sizeof set->dir);
            strcpy(set->dir, val);
        } else if (strcmp(flag, "--maxmemory") == 0) {
            if (parse_bytes(val, &set->maxmemory) != 0)
                return fail("--maxmemory %s: bytes, with an optional unit (k kb m mb g gb)", val);
        } else if (strcmp(flag, "--maxmemory-policy") == 0) {
            if (strcmp(val, "noeviction") == 0)
                set->policy = 0;
            else if (strcmp(val, "allkeys-lru") == 0)
                set->policy = 1;
            else
                return fail("--maxmemory-policy %s: noeviction or allkeys-lru", val);
        } else if (strcmp(flag, "--maxclients") == 0) {
            if (parse_uint(val, 100000, &n) != 0 || n == 0)
                return fail("--maxclients %s: give 1 to 100000", val);
            set->maxclients = (unsigned)n;
        } else {
            return fail("unknown option %s (see --help)", flag);
        }
    }
    /* As redis-server, which changes into it at start: a directory that
     * is not there is an error now, not when the first file is written. */
    struct stat dir;
    if (stat(set->dir, &dir) != 0)
        return fail("--dir %s: %s", set->dir, strerror(errno));
    if (!S_ISDIR(dir.st_mode))
        return fail("--dir %s: not a directory", set->dir);
    /* Each stripe's heap: room for its share of maxmemory four times over
     * (the allocator's classes waste up to half), and at least 256 MiB.
     * Address space only: memory is taken as it is written. */
    size_t heap = (size_t)256 << 20;
    if (set->maxmemory && set->maxmemory / KV_STRIPES * 4 > heap)
        heap = (size_t)(set->maxmemory / KV_STRIPES * 4);
    set->heap = heap;
    return 0;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_listener(struct server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->set.port)};
    inet_pton(AF_INET, srv->set.bind, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 511) != 0) {
        int e = errno;
        close(fd);
        return fail("listen on %s:%u: %s", srv->set.bind, srv->set.port, strerror(e));
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    srv->port = ntohs(sa.sin_port);
    srv->listen_fd = fd;
    return 0;
}

static int start_pool(struct server *srv)
{
    size_t size = kv_region_size(srv->set.maxclients, srv->set.heap, srv->set.appendonly);
    struct walls_pool_opts o = {
        .placement = WALLS_PROCESSES,
        .processes = srv->set.backends,
        .shared_size = size,
        .locks = KV_LOCKS,
        .max_output = KV_OUT_MAX,
        .restart_limit = 100000,
    };
    int rc = walls_pool_create(&srv->pool, &o);
    if (rc != 0)
        return fail("the backends: walls_pool_create: %s (%s)", walls_strerror(rc),
                    walls_last_error());
    void *base;
    size_t got;
    walls_lock *locks;
    size_t nlocks;
    if ((rc = walls_pool_shared(srv->pool, &base, &got)) != 0 ||
        (rc = walls_pool_locks(srv->pool, &locks, &nlocks)) != 0)
        return fail("the shared table: %s", walls_strerror(rc));
    kv_store_format(&srv->st, base, got, srv->set.maxclients, srv->set.maxmemory,
                    srv->set.policy, srv->set.appendonly);
    srv->st.locks = locks;
    struct kv_info *in = kv_info_of(&srv->st);
    snprintf(in->bind, sizeof in->bind, "%s", srv->set.bind);
    /* CONFIG GET dir says where the files go, as an absolute path (Redis
     * reports its working directory, which --dir sets); as given when it
     * cannot be resolved or is too long. */
    char *abs = realpath(srv->set.dir, NULL);
    snprintf(in->dir, sizeof in->dir, "%s",
             abs && strlen(abs) < sizeof in->dir ? abs : srv->set.dir);
    free(abs);
    snprintf(in->appendfsync, sizeof in->appendfsync, "%s", srv->set.appendfsync);
    snprintf(in->policy, sizeof in->policy, "%s",
             srv->set.policy ? "allkeys-lru" : "noeviction");
    in->appendonly = srv->set.appendonly;
    in->backends = srv->set.backends;
    in->maxclients = srv->set.maxclients;
    in->threads = srv->set.threads;
    in->pid = (uint64_t)getpid();
    in->started_ms = (uint64_t)clock_ms(CLOCK_REALTIME);
    in->started_mono_ms = (uint64_t)clock_ms(CLOCK_MONOTONIC);
    srv->free_slots = malloc(srv->set.maxclients * sizeof *srv->free_slots);
    if (!srv->free_slots)
        return fail("out of memory");
    for (unsigned i = 0; i < srv->set.maxclients; i++)
        srv->free_slots[i] = srv->set.maxclients - 1 - i;
    srv->nfree = srv->set.maxclients;
    pthread_mutex_init(&srv->slots_lock, NULL);
    srv->pool_fd = walls_pool_fd(srv->pool);
    if (srv->pool_fd < 0)
        return fail("walls_pool_fd: %s", walls_strerror(srv->pool_fd));
    return 0;
}

int main(int argc, char **argv)
{
    static struct server srv;
    int rc = parse_args(argc, argv, &srv.set);
    if (rc != 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    /* As redis-server does: room for maxclients descriptors, within the
     * hard limit, else fewer clients, said. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        rlim_t want = (rlim_t)srv.set.maxclients + 64;
        if (nofile.rlim_cur < want) {
            nofile.rlim_cur = want < nofile.rlim_max ? want : nofile.rlim_max;
            setrlimit(RLIMIT_NOFILE, &nofile);
            getrlimit(RLIMIT_NOFILE, &nofile);
            if (nofile.rlim_cur < want) {
                unsigned fit = nofile.rlim_cur > 96 ? (unsigned)(nofile.rlim_cur - 64) : 32;
                fprintf(stderr, "walls-kv: the open-files limit (%llu) allows %u clients, not %u\n",
                        (unsigned long long)nofile.rlim_cur, fit, srv.set.maxclients);
                srv.set.maxclients = fit;
            }
        }
    }
    if ((rc = start_pool(&srv)) != 0)
        return rc;
    char aof_path[300];
    snprintf(aof_path, sizeof aof_path, "%s/appendonly.aof", srv.set.dir);
    if (srv.set.appendonly) {
        srv.aof_mode = strcmp(srv.set.appendfsync, "always") == 0     ? KV_FSYNC_ALWAYS
                       : strcmp(srv.set.appendfsync, "everysec") == 0 ? KV_FSYNC_EVERYSEC
                                                                      : KV_FSYNC_NO;
        if ((rc = kv_aof_replay(&srv, aof_path)) != 0) {
            walls_pool_destroy(srv.pool, WALLS_CANCEL);
            return rc == -EILSEQ ? 1 : fail("%s: %s", aof_path, strerror(-rc));
        }
    }
    if ((rc = open_listener(&srv)) != 0) {
        walls_pool_destroy(srv.pool, WALLS_CANCEL);
        return rc;
    }
    if (srv.set.appendonly && (rc = kv_aof_open(&srv, aof_path)) != 0) {
        walls_pool_destroy(srv.pool, WALLS_CANCEL);
        return fail("%s: %s", aof_path, strerror(-rc));
    }
    kv_info_of(&srv.st)->port = srv.port;
    /* Signals come to the main thread's sigwait only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if ((rc = kv_front_start(&srv)) != 0)
        return fail("the front threads: %s", strerror(-rc));
    if (srv.set.appendonly && (rc = kv_aof_start(&srv)) != 0)
        return fail("the append-only file's writer: %s", strerror(-rc));
    kv_log(&srv, "walls-kv %s ready to accept connections tcp on %s:%u (%u backends, %u front "
                 "threads)",
           VERSION, srv.set.bind, srv.port, srv.set.backends, srv.set.threads);
    if (srv.set.port == 0) {
        printf("%u\n", srv.port);
        fflush(stdout);
    }
    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
    }
    kv_log(&srv, "received %s, %s", strsignal(sig),
           sig == SIGQUIT ? "stopping at once" : "answering what is out, then stopping");
    __atomic_store_n(&srv.stop, sig == SIGQUIT ? 2 : 1, __ATOMIC_RELEASE);
    close(srv.listen_fd);
    kv_front_wake_all(&srv);
    /* While the fronts answer what is out, a second SIGTERM or SIGINT, or
     * a SIGQUIT, stops at once: a backend that never answers must not
     * hold the server up. */
    while (__atomic_load_n(&srv.fronts_done, __ATOMIC_ACQUIRE) < srv.set.threads) {
        struct timespec tick = {0, 50 * 1000 * 1000};
        int more = sigtimedwait(&sigs, NULL, &tick);
        if (more > 0 && more != SIGHUP && __atomic_load_n(&srv.stop, __ATOMIC_ACQUIRE) < 2) {
            kv_log(&srv, "received %s, stopping at once", strsignal(more));
            __atomic_store_n(&srv.stop, 2, __ATOMIC_RELEASE);
            kv_front_wake_all(&srv);
        }
    }
    kv_front_join(&srv);
    kv_aof_stop(&srv);
    if (srv.set.appendonly)
        close(srv.aof_fd);
    walls_pool_destroy(srv.pool, WALLS_CANCEL);
    free(srv.free_slots);
    kv_log(&srv, "walls-kv is now ready to exit, bye bye...");
    return 0;
}
