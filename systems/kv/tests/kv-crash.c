/*
 * kv-crash.c - kill -9 walls-kv's backends at random points while clients
 * write, then check that nothing acknowledged was lost and nothing
 * unacknowledged took effect.
 *
 *   kv-crash WALLS_KV [KILLS] [CLIENTS]
 *
 * Starts walls-kv (2 backends, 2 front threads) on 127.0.0.1, port chosen
 * by the kernel. CLIENTS threads (default 4) each send INCR on one of 100
 * keys, RPUSH on one of 10 lists, a MULTI of two INCRs, or a SET or HSET
 * of 120 copies of one letter over a value as long, one at a time,
 * or an RPUSH of 200 elements on a list of junk and its DEL (a list that
 * long is freed in pieces, after the command),
 * counting the replies: an integer is an acknowledgement; an error must be the one
 * walls-kv gives for a command whose backend died (its change undone).
 * Meanwhile the killer sends SIGKILL to a random backend every 5-40 ms,
 * KILLS times (default 100). Then every key must hold exactly its
 * acknowledged increments, as a whole integer, every list exactly its
 * acknowledged pushes, and every rewritten value one letter throughout.
 * Exit 0 on success, 1 with the difference.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 100
#define NLISTS 10
#define MAX_CLIENTS 16
#define PUSH_ELEMENTS 200
#define NREWRITE 10      /* strings and hash fields rewritten whole */
#define REWRITE_LEN 120  /* bytes of one letter: rewritten in place, word by word */

static unsigned port;
static pid_t server;
static int stop_clients; /* atomic */
static long acked_incr[NKEYS], acked_push[NLISTS];
static long replies, died_errors;
static int failed;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kv-crash: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (server > 0)
        kill(server, SIGKILL);
    exit(1);
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fatal("connect to 127.0.0.1:%u: %s", port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads one reply line (integers, errors, simple strings) or a bulk
 * reply's line and payload into buf. */
static int whole_server_mode; /* a lost connection ends the client */

/* false: the connection went (whole-server mode only). */
static bool read_reply(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (n + 1 >= cap)
            fatal("reply too long");
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r <= 0 && whole_server_mode)
            return false;
        if (r <= 0)
            fatal("connection lost (%s): a dying backend must not drop its client",
                  r < 0 ? strerror(errno) : "closed");
        n++;
        if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n')
            break;
    }
    buf[n - 2] = '\0';
    if (buf[0] == '$' && buf[1] != '-') {
        long len = strtol(buf + 1, NULL, 10);
        if (len < 0 || (size_t)len + 2 >= cap)
            fatal("bad bulk length %ld", len);
        size_t got = 0;
        while (got < (size_t)len + 2) {
            ssize_t r = recv(fd, buf + got, (size_t)len + 2 - got, 0);
            if (r <= 0)
                fatal("connection lost in a bulk reply");
            got += (size_t)r;
        }
        buf[len] = '\0';
    }
    return true;
}

static bool send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0 && whole_server_mode)
            return false;
        if (n <= 0)
            fatal("send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void *client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 17u;
    int fd = dial();
    char cmd[64 + 7 * PUSH_ELEMENTS + 128], reply[256];
    while (!__atomic_load_n(&stop_clients, __ATOMIC_RELAXED)) {
        unsigned pick = (unsigned)rand_r(&seed) % 8;
        if (pick == 7) {
            /* SET or HSET of REWRITE_LEN copies of one letter over a value
             * as long: a kill mid-copy must leave the old value or the new,
             * never a mix. */
            bool hash = rand_r(&seed) % 2;
            int k = (int)(rand_r(&seed) % NREWRITE);
            char key[32], val[REWRITE_LEN];
            int klen = snprintf(key, sizeof key, hash ? "crash:h:%d" : "crash:s:%d", k);
            memset(val, 'a' + (int)(rand_r(&seed) % 26), sizeof val);
            int len = hash ? snprintf(cmd, sizeof cmd,
                                      "*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$1\r\nf\r\n", klen,
                                      key)
                           : snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n", klen,
                                      key);
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, "$%d\r\n%.*s\r\n", REWRITE_LEN,
                            REWRITE_LEN, val);
            if (!send_all(fd, cmd, (size_t)len) || !read_reply(fd, reply, sizeof reply))
                break;
            pthread_mutex_lock(&count_lock);
            replies++;
            if (reply[0] == '-' && strstr(reply, "ERR the backend running this command died")) {
                died_errors++;
            } else if (strcmp(reply, hash ? ":0" : "+OK") != 0 &&
                       !(hash && strcmp(reply, ":1") == 0)) {
                fprintf(stderr, "kv-crash: unexpected reply to %s %s: %s\n",
                        hash ? "HSET" : "SET", key, reply);
                failed = 1;
            }
            pthread_mutex_unlock(&count_lock);
            continue;
        }
        if (pick == 6 && !whole_server_mode) {
            /* MULTI; INCR a; INCR b; EXEC: both or neither, even when the
             * backend dies in between. */
            int a = (int)(rand_r(&seed) % NKEYS), b2 = (int)(rand_r(&seed) % NKEYS);
            char ka[32], kb[32];
            int la = snprintf(ka, sizeof ka, "crash:n:%d", a);
            int lb = snprintf(kb, sizeof kb, "crash:n:%d", b2);
            int len = snprintf(cmd, sizeof cmd,
                               "*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n"
                               "*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n*1\r\n$4\r\nEXEC\r\n",
                               la, ka, lb, kb);
            char r1[64], r2[64], r3[64];
            if (!send_all(fd, cmd, (size_t)len) || !read_reply(fd, r1, sizeof r1) ||
                !read_reply(fd, r2, sizeof r2) || !read_reply(fd, r3, sizeof r3) ||
                !read_reply(fd, reply, sizeof reply))
                break;
            bool both = reply[0] == '*' && reply[1] == '2';
            char x[64], y[64];
            if (both && (!read_reply(fd, x, sizeof x) || !read_reply(fd, y, sizeof y)))
                break;
            pthread_mutex_lock(&count_lock);
            replies++;
            if (strcmp(r1, "+OK") || strcmp(r2, "+QUEUED") || strcmp(r3, "+QUEUED")) {
                fprintf(stderr, "kv-crash: MULTI replies %s %s %s\n", r1, r2, r3);
                failed = 1;
            } else if (both && x[0] == ':' && y[0] == ':') {
                acked_incr[a]++;
                acked_incr[b2]++;
            } else if (reply[0] == '-' && strstr(reply, "ERR the backend running this command died")) {
                died_errors++;
            } else {
                fprintf(stderr, "kv-crash: unexpected reply to EXEC: %s\n", reply);
                failed = 1;
            }
            pthread_mutex_unlock(&count_lock);
            continue;
        }
        if (pick == 5) {
            /* RPUSH PUSH_ELEMENTS on a list of junk, then DEL it: a list
             * that long goes to the stripe's garbage, freed in pieces by
             * the backends' own transactions after their tasks, which the
             * kills cut too. Nothing is checked of it but its replies:
             * the rest is checked at the end. */
            int k = (int)(rand_r(&seed) % NLISTS);
            char key[32];
            int klen = snprintf(key, sizeof key, "crash:junk:%d", k);
            int len = snprintf(cmd, sizeof cmd, "*%d\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n",
                               PUSH_ELEMENTS + 2, klen, key);
            for (int e = 0; e < PUSH_ELEMENTS; e++)
                len += snprintf(cmd + len, sizeof cmd - (size_t)len, "$1\r\nj\r\n");
            len += snprintf(cmd + len, sizeof cmd - (size_t)len,
                            "*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n", klen, key);
            char r1[256];
            if (!send_all(fd, cmd, (size_t)len) || !read_reply(fd, r1, sizeof r1) ||
                !read_reply(fd, reply, sizeof reply))
                break;
            pthread_mutex_lock(&count_lock);
            replies += 2;
            const char *bad = NULL;
            if (r1[0] != ':' && !strstr(r1, "ERR the backend running this command died"))
                bad = r1;
            else if (strcmp(reply, ":1") != 0 && strcmp(reply, ":0") != 0 &&
                     !strstr(reply, "ERR the backend running this command died"))
                bad = reply;
            died_errors += (r1[0] == '-') + (reply[0] == '-');
            if (bad) {
                fprintf(stderr, "kv-crash: unexpected reply to RPUSH/DEL %s: %s\n", key, bad);
                failed = 1;
            }
            pthread_mutex_unlock(&count_lock);
            continue;
        }
        bool push = pick == 0;
        int k = (int)(rand_r(&seed) % (push ? NLISTS : NKEYS));
        char key[32];
        int klen = snprintf(key, sizeof key, push ? "crash:list:%d" : "crash:n:%d", k);
        int len;
        if (push) {
            /* PUSH_ELEMENTS at once: a longer transaction, more often
             * cut by a kill. */
            len = snprintf(cmd, sizeof cmd, "*%d\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n",
                           PUSH_ELEMENTS + 2, klen, key);
            for (int e = 0; e < PUSH_ELEMENTS; e++)
                len += snprintf(cmd + len, sizeof cmd - (size_t)len, "$1\r\nx\r\n");
        } else {
            len = snprintf(cmd, sizeof cmd, "*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n", klen, key);
        }
        if (!send_all(fd, cmd, (size_t)len) || !read_reply(fd, reply, sizeof reply))
            break;
        pthread_mutex_lock(&count_lock);
        replies++;
        if (reply[0] == ':') {
            if (push)
                acked_push[k] += PUSH_ELEMENTS;
            else
                acked_incr[k]++;
        } else if (reply[0] == '-' && strstr(reply, "ERR the backend running this command died")) {
            died_errors++;
        } else {
            fprintf(stderr, "kv-crash: unexpected reply to %s %s: %s\n", push ? "RPUSH" : "INCR",
                    key, reply);
            failed = 1;
        }
        pthread_mutex_unlock(&count_lock);
    }
    close(fd);
    return NULL;
}

/* The server's backends: walls-worker processes whose parent is a child
 * of the server (its fork server). */
static int backends(pid_t *out, int max)
{
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max) {
        pid_t pid = (pid_t)atoi(de->d_name);
        if (pid <= 0)
            continue;
        char path[64], stat[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[len] = '\0';
        char *close_paren = strrchr(stat, ')');
        if (!close_paren || !strstr(stat, "(walls-worker)"))
            continue;
        int ppid = atoi(close_paren + 4);
        snprintf(path, sizeof path, "/proc/%d/stat", ppid);
        f = fopen(path, "r");
        if (!f)
            continue;
        len = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[len] = '\0';
        close_paren = strrchr(stat, ')');
        if (close_paren && atoi(close_paren + 4) == server)
            out[n++] = pid;
    }
    closedir(d);
    return n;
}

static long get_int(int fd, const char *cmd, size_t len)
{
    char reply[256];
    send_all(fd, cmd, len);
    read_reply(fd, reply, sizeof reply);
    if (reply[0] == ':')
        return strtol(reply + 1, NULL, 10);
    if (reply[0] == '-' || (reply[0] == '$' && reply[1] == '-'))
        return reply[0] == '$' ? 0 : -1;
    /* A bulk: the whole reply must be an integer, never torn. */
    char *end;
    long v = strtol(reply, &end, 10);
    if (*end || end == reply)
        fatal("a value is not a whole integer: \"%s\"", reply);
    return v;
}

/* The strings and hash fields the clients rewrote: each must be absent
 * or REWRITE_LEN copies of one letter. Returns how many are torn. */
static long torn_values(int fd)
{
    long torn = 0;
    for (int k = 0; k < 2 * NREWRITE; k++) {
        bool hash = k >= NREWRITE;
        char cmd[128], key[32], reply[256];
        int klen = snprintf(key, sizeof key, hash ? "crash:h:%d" : "crash:s:%d", k % NREWRITE);
        int len = hash ? snprintf(cmd, sizeof cmd, "*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$1\r\nf\r\n",
                                  klen, key)
                       : snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", klen, key);
        send_all(fd, cmd, (size_t)len);
        read_reply(fd, reply, sizeof reply);
        if (reply[0] == '$' && reply[1] == '-')
            continue;
        size_t n = strlen(reply), same = 0;
        while (same < n && reply[same] == reply[0])
            same++;
        if (n != REWRITE_LEN || same != n || reply[0] < 'a' || reply[0] > 'z') {
            fprintf(stderr, "kv-crash: %s%s is torn: \"%s\"\n", key, hash ? " f" : "", reply);
            torn++;
        }
    }
    return torn;
}

static pid_t start_server(const char *binary, const char *aof_dir, const char *fsync)
{
    int out[2];
    if (pipe(out) != 0)
        fatal("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        /* The server goes with this program, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        close(out[0]);
        if (aof_dir)
            execl(binary, binary, "--port", "0", "--bind", "127.0.0.1", "--backends", "2",
                  "--threads", "2", "--quiet", "--appendonly", "yes", "--appendfsync", fsync,
                  "--dir", aof_dir, (char *)NULL);
        else
            execl(binary, binary, "--port", "0", "--bind", "127.0.0.1", "--backends", "2",
                  "--threads", "2", "--quiet", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    if (!f || fscanf(f, "%u", &port) != 1)
        fatal("walls-kv did not say its port");
    fclose(f);
    return pid;
}

/* kill -9 of the whole server under appendfsync always, then a restart
 * from its file: every acknowledged write is there, and at most one more
 * a client (the one it was waiting for). */
static int whole_server(const char *binary, const char *dir, int nclients)
{
    server = start_server(binary, dir, "always");
    pthread_t threads[MAX_CLIENTS];
    for (int i = 0; i < nclients; i++)
        pthread_create(&threads[i], NULL, client, (void *)(uintptr_t)(i + 1));
    struct timespec run = {1, 500 * 1000000L};
    nanosleep(&run, NULL);
    kill(server, SIGKILL);
    int status;
    waitpid(server, &status, 0);
    /* The clients see their connection go: they stop there. */
    for (int i = 0; i < nclients; i++)
        pthread_join(threads[i], NULL);
    server = start_server(binary, dir, "always");
    int fd = dial();
    long lost = 0, extra = 0;
    for (int k = 0; k < NKEYS + NLISTS; k++) {
        bool list = k >= NKEYS;
        int i = list ? k - NKEYS : k;
        char cmd[128], key[32];
        int klen = snprintf(key, sizeof key, list ? "crash:list:%d" : "crash:n:%d", i);
        int len = list ? snprintf(cmd, sizeof cmd, "*2\r\n$4\r\nLLEN\r\n$%d\r\n%s\r\n", klen, key)
                       : snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", klen, key);
        long v = get_int(fd, cmd, (size_t)len);
        long acked = list ? acked_push[i] : acked_incr[i];
        long slack = (long)nclients * (list ? PUSH_ELEMENTS : 1);
        if (v < acked)
            lost += acked - v;
        if (v > acked + slack)
            extra += v - acked - slack;
        if (v < acked || v > acked + slack)
            fprintf(stderr, "kv-crash: after the restart %s = %ld, acknowledged %ld\n", key, v,
                    acked);
    }
    long torn = torn_values(fd);
    close(fd);
    kill(server, SIGTERM);
    waitpid(server, &status, 0);
    printf("kv-crash: the whole server killed under appendfsync always after %ld replies; after "
           "its restart from the file, lost acknowledged writes: %ld, writes beyond the ones "
           "in flight: %ld; torn values: %ld\n",
           replies, lost, extra, torn);
    return failed || lost || extra || torn || !WIFEXITED(status) || WEXITSTATUS(status) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kv-crash WALLS_KV [KILLS] [CLIENTS]\n"
                        "       kv-crash WALLS_KV aof [CLIENTS]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (argc > 2 && strcmp(argv[2], "aof") == 0) {
        whole_server_mode = 1;
        char dir[] = "/tmp/walls-kv-crash.XXXXXX", file[64];
        if (!mkdtemp(dir))
            fatal("mkdtemp: %s", strerror(errno));
        int rc = whole_server(argv[1], dir, argc > 3 ? atoi(argv[3]) : 4);
        snprintf(file, sizeof file, "%s/appendonly.aof", dir);
        unlink(file);
        rmdir(dir);
        return rc;
    }
    /* timed SECONDS INTERVAL_MS [CLIENTS]: a kill every INTERVAL_MS (0:
     * none) for SECONDS, and the clients' throughput said. */
    bool timed = argc > 4 && strcmp(argv[2], "timed") == 0;
    int seconds = timed ? atoi(argv[3]) : 0, interval = timed ? atoi(argv[4]) : 0;
    int kills = timed ? INT32_MAX : argc > 2 ? atoi(argv[2]) : 100;
    int nclients = timed ? (argc > 5 ? atoi(argv[5]) : 4) : argc > 3 ? atoi(argv[3]) : 4;
    if (nclients < 1 || nclients > MAX_CLIENTS)
        nclients = 4;
    server = start_server(argv[1], NULL, NULL);
    pthread_t threads[MAX_CLIENTS];
    for (int i = 0; i < nclients; i++)
        pthread_create(&threads[i], NULL, client, (void *)(uintptr_t)(i + 1));
    unsigned seed = 12345;
    int done = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (done < kills) {
        struct timespec nap = {0, (long)(5 + rand_r(&seed) % 36) * 1000000L};
        if (timed)
            nap = interval ? (struct timespec){interval / 1000, (long)(interval % 1000) * 1000000L}
                           : (struct timespec){seconds, 0};
        nanosleep(&nap, NULL);
        if (timed) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= seconds)
                break;
        }
        pid_t pids[64];
        int n = backends(pids, 64);
        if (n == 0)
            continue;
        if (kill(pids[rand_r(&seed) % (unsigned)n], SIGKILL) == 0)
            done++;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!timed && now.tv_sec - start.tv_sec > 120)
            fatal("only %d kills in 120 s", done);
    }
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double elapsed = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    pthread_mutex_lock(&count_lock);
    long replies_then = replies;
    pthread_mutex_unlock(&count_lock);
    /* Let the last victims be replaced and the clients run a little. */
    struct timespec settle = {0, 200 * 1000000L};
    nanosleep(&settle, NULL);
    __atomic_store_n(&stop_clients, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nclients; i++)
        pthread_join(threads[i], NULL);
    int fd = dial();
    long lost = 0, extra = 0;
    for (int k = 0; k < NKEYS; k++) {
        char cmd[128], key[32];
        int klen = snprintf(key, sizeof key, "crash:n:%d", k);
        int len = snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", klen, key);
        long v = get_int(fd, cmd, (size_t)len);
        if (v != acked_incr[k]) {
            fprintf(stderr, "kv-crash: %s = %ld, acknowledged increments %ld\n", key, v,
                    acked_incr[k]);
            if (v < acked_incr[k])
                lost += acked_incr[k] - v;
            else
                extra += v - acked_incr[k];
        }
    }
    for (int k = 0; k < NLISTS; k++) {
        char cmd[128], key[32];
        int klen = snprintf(key, sizeof key, "crash:list:%d", k);
        int len = snprintf(cmd, sizeof cmd, "*2\r\n$4\r\nLLEN\r\n$%d\r\n%s\r\n", klen, key);
        long v = get_int(fd, cmd, (size_t)len);
        if (v != acked_push[k]) {
            fprintf(stderr, "kv-crash: LLEN %s = %ld, acknowledged pushes %ld\n", key, v,
                    acked_push[k]);
            if (v < acked_push[k])
                lost += acked_push[k] - v;
            else
                extra += v - acked_push[k];
        }
    }
    long torn = torn_values(fd);
    /* What the server saw: deaths, and transactions it rolled back. */
    static const char info[] = "*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n";
    send_all(fd, info, sizeof info - 1);
    char stats[4096];
    read_reply(fd, stats, sizeof stats);
    const char *deaths = strstr(stats, "backend_deaths:");
    const char *undone = strstr(stats, "transactions_rolled_back:");
    printf("kv-crash: the server counted %ld backend deaths during commands and %ld "
           "transactions rolled back\n",
           deaths ? strtol(deaths + 15, NULL, 10) : -1, undone ? strtol(undone + 25, NULL, 10) : -1);
    close(fd);
    kill(server, SIGTERM);
    int status;
    waitpid(server, &status, 0);
    printf("kv-crash: %d backends killed, %ld replies, %ld of them errors for a command whose "
           "backend died; lost acknowledged writes: %ld, unacknowledged writes that took "
           "effect: %ld; torn values: %ld\n",
           done, replies, died_errors, lost, extra, torn);
    if (timed)
        printf("kv-crash: %.0f replies/s over %.1f s, %d kills\n", (double)replies_then / elapsed,
               elapsed, done);
    if (failed || lost || extra || torn)
        return 1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "kv-crash: walls-kv ended badly (status %d)\n", status);
        return 1;
    }
    return 0;
}
