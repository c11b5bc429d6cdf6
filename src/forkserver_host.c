/*
 * forkserver_host.c - the host's handle on the fork server: started on
 * first need (forked while the host is single-threaded, else re-executed),
 * shared by walls_init() and every process pool through a reference count,
 * and stopped and reaped when the last reference goes.
 *
 * The host's children carry no exit signal (clone with exit_signal 0): the
 * host's own SIGCHLD handling and waitpid(-1) never see them; walls reaps
 * them through their pidfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "forkserver.h"
#include "futex.h"
#include "internal.h"
#include "module.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

static struct {
    pthread_mutex_t lock;
    int refs;      /* pools and walls_init() calls holding it */
    int init_refs; /* of which walls_init() calls */
    bool running;
    int ctl;
    int pidfd;
    pid_t pid;
} fs = {.lock = PTHREAD_MUTEX_INITIALIZER, .ctl = -1, .pidfd = -1};

int walls__thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void reap(int pidfd)
{
    siginfo_t si;
    while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL) != 0 && errno == EINTR) {
    }
}

#define LIBS_MAX (64u << 10)

struct lib_list {
    char *text; /* "NAME=" then one path a line */
    size_t len, cap;
};

static int add_lib(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct lib_list *l = arg;
    const char *path = info->dlpi_name;
    /* The program itself (no name) and the vDSO (no path) are not loaded
     * from files. */
    if (!path || path[0] != '/' || strchr(path, '\n'))
        return 0;
    size_t n = strlen(path);
    /* One environment string stays well under the kernel's 128 KiB: the
     * libraries past that are left to the workers, as before. */
    if (l->len + n + 2 > LIBS_MAX)
        return 0;
    if (l->len + n + 2 > l->cap) {
        size_t cap = 2 * l->cap + n + 2;
        char *grown = realloc(l->text, cap);
        if (!grown)
            return 1;
        l->text = grown;
        l->cap = cap;
    }
    memcpy(l->text + l->len, path, n);
    l->len += n;
    l->text[l->len++] = '\n';
    l->text[l->len] = '\0';
    return 0;
}

/* "WALLS__FORKSERVER_LIBS=" and the path of every library loaded here: a
 * re-executed fork server loads them before it serves (those its program
 * needs are loaded already), as a forked one would have them; a sandboxed
 * worker cannot open a library itself. NULL when memory runs out. */
static char *loaded_libs(void)
{
    static const char name[] = WALLS__FORKSERVER_LIBS_ENV "=";
    struct lib_list l = {malloc(256), sizeof name - 1, 256};
    if (!l.text)
        return NULL;
    memcpy(l.text, name, sizeof name);
    if (dl_iterate_phdr(add_lib, &l) != 0) {
        free(l.text);
        return NULL;
    }
    return l.text;
}

/* The environment for a re-executed fork server: ours, plus where its
 * control socket is and the libraries to load. mine[0] and mine[1] are
 * the strings allocated here. */
static char **exec_env(int fd, char **mine)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = calloc(n + 3, sizeof *envp);
    /* The control socket's number, then the epochs the fork server and
     * its workers must avoid (ours, then the set of our ancestors' in
     * hexadecimal): with them a handle of ours given to a task is never
     * taken for the worker's; then our pid, which it watches. */
    enum { ROOM = sizeof WALLS__FORKSERVER_ENV + 80 };
    uint32_t epoch;
    uint64_t ancestry[2];
    walls__epoch_lineage(&epoch, ancestry);
    mine[0] = malloc(ROOM);
    mine[1] = loaded_libs();
    if (!envp || !mine[0] || !mine[1]) {
        free(envp);
        free(mine[0]);
        free(mine[1]);
        mine[0] = mine[1] = NULL;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], WALLS__FORKSERVER_ENV "=", sizeof WALLS__FORKSERVER_ENV) != 0 &&
            strncmp(environ[i], WALLS__FORKSERVER_LIBS_ENV "=",
                    sizeof WALLS__FORKSERVER_LIBS_ENV) != 0)
            envp[k++] = environ[i];
    snprintf(mine[0], ROOM, WALLS__FORKSERVER_ENV "=%d,%u,%llx,%llx,%d", fd, epoch,
             (unsigned long long)ancestry[0], (unsigned long long)ancestry[1], (int)getpid());
    envp[k++] = mine[0];
    envp[k] = mine[1];
    return envp;
}

/* Whether the new fork server's first message came within ms: a signal
 * caught by the program meanwhile (a timer, its own child's SIGCHLD) is
 * not the fork server dying, and the wait goes on for what is left. */
static bool hello_within(int sock, int ms)
{
    int64_t deadline = walls__now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int64_t left = deadline - walls__now_ns();
        int rc = poll(&p, 1, left > 0 ? (int)((left + 999999) / 1000000) : 0);
        if (rc >= 0 || errno != EINTR)
            return rc == 1;
    }
}

/* A program that closed a standard stream leaves 0-2 free, and a new
 * socket may land there: the fork server and every worker keep 0-2 open
 * across fork (and a re-executed fork server gets /dev/null on 0), so a
 * control socket's end there would outlive our close of it, and the fork
 * server would never see the program go. Both ends go above 2. */
static int above_std(int sv[2])
{
    for (int i = 0; i < 2; i++) {
        if (sv[i] > 2)
            continue;
        int fd = fcntl(sv[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
            int err = errno;
            close(sv[0]);
            close(sv[1]);
            return -err;
        }
        close(sv[i]);
        sv[i] = fd;
    }
    return 0;
}

static int start_locked(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int moved = above_std(sv);
    if (moved)
        return moved;
    struct walls__fs_start start = {.ctl = sv[1], .host = getpid()};
    bool single = walls__thread_count() == 1;
    char *mine[2] = {NULL, NULL};
    int pidfd = -1, rc = 0;
    if (!single) {
        static char name[] = "walls-forkserver";
        static char *argv[] = {name, NULL};
        start.argv = argv;
        start.envp = exec_env(sv[1], mine);
        if (!start.envp) {
            close(sv[0]);
            close(sv[1]);
            return -ENOMEM;
        }
    }
    /* A forked fork server, and every worker after it, holds a copy of
     * what the program's streams have buffered: written out now, or a
     * task's exit() in a worker would write it a second time. */
    if (single)
        fflush(NULL);
    /* Forked, it holds what this process maps; re-executed, it loads the
     * same libraries by their paths before it serves. */
    walls__module_note_server_start();
    /* A fork with a pidfd and no exit signal. Signals stay blocked until
     * the child has set its own mask (fork mode) or called execve. */
    int clone_errno = 0;
    pid_t pid = walls__clone_pidfd(&pidfd, &clone_errno);
    if (pid == 0) {
        if (single)
            walls__forkserver_fork_child(&start);
        walls__forkserver_exec_child(&start);
    }
    free(mine[0]);
    free(mine[1]);
    free(start.envp);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return clone_errno == ENOSYS ? -ENOSYS : -clone_errno;
    }
    struct walls__msg hello;
    int nfds = 0;
    if (!hello_within(sv[0], 10000) || walls__msg_recv(sv[0], &hello, NULL, &nfds, false) != 0 ||
        hello.type != WALLS__MSG_HELLO) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        siginfo_t si = {0};
        while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | __WALL) != 0 &&
               errno == EINTR) {
        }
        rc = si.si_code == CLD_EXITED && si.si_status == 127 ? -ENOEXEC : -ECHILD;
        close(pidfd);
        close(sv[0]);
        return rc;
    }
    fs.ctl = sv[0];
    fs.pidfd = pidfd;
    fs.pid = pid;
    fs.running = true;
    return 0;
}

static void stop_locked(void)
{
    close(fs.ctl); /* the fork server kills what is left and exits */
    reap(fs.pidfd);
    close(fs.pidfd);
    fs.ctl = fs.pidfd = -1;
    fs.running = false;
}

static bool alive_locked(void)
{
    struct pollfd p = {.fd = fs.pidfd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

void walls__forkserver_at_fork(enum walls__fork_phase phase)
{
    if (phase == WALLS__FORK_PREPARE) {
        pthread_mutex_lock(&fs.lock);
        return;
    }
    if (phase != WALLS__FORK_PARENT && fs.running) {
        /* The parent's: the child closes its copies, so that the fork
         * server still sees its host go when the parent goes, and starts
         * a fork server of its own if it makes process pools. */
        close(fs.ctl);
        close(fs.pidfd);
        fs.ctl = fs.pidfd = -1;
        fs.running = false;
        fs.refs = fs.init_refs = 0;
    }
    if (phase == WALLS__FORK_RESET)
        fs.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    else
        pthread_mutex_unlock(&fs.lock);
}

int walls__forkserver_acquire(bool explicit_init)
{
    pthread_mutex_lock(&fs.lock);
    if (fs.running && !alive_locked())
        stop_locked();
    int rc = 0;
    if (!fs.running)
        rc = start_locked();
    if (rc == 0) {
        fs.refs++;
        if (explicit_init)
            fs.init_refs++;
    }
    pthread_mutex_unlock(&fs.lock);
    return rc;
}

void walls__forkserver_forget(void)
{
    pthread_mutex_lock(&fs.lock);
    if (fs.running)
        stop_locked(); /* reaps it: it is on its way out */
    pthread_mutex_unlock(&fs.lock);
}

void walls__forkserver_release(bool explicit_init)
{
    pthread_mutex_lock(&fs.lock);
    if (explicit_init) {
        if (fs.init_refs == 0) {
            pthread_mutex_unlock(&fs.lock);
            return;
        }
        fs.init_refs--;
    }
    if (fs.refs > 0 && --fs.refs == 0 && fs.running)
        stop_locked();
    pthread_mutex_unlock(&fs.lock);
}

int walls__forkserver_open_pool(int *sock)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
        return -errno;
    int moved = above_std(sv);
    if (moved)
        return moved;
    /* The fork server's end blocks; ours does not (the supervisor drains it). */
    int flags = fcntl(sv[1], F_GETFL);
    fcntl(sv[1], F_SETFL, flags & ~O_NONBLOCK);
    pthread_mutex_lock(&fs.lock);
    struct walls__msg msg = {.type = WALLS__MSG_ADD_POOL};
    int rc = fs.running ? walls__msg_send(fs.ctl, &msg, &sv[1], 1) : -ECHILD;
    pthread_mutex_unlock(&fs.lock);
    close(sv[1]);
    if (rc) {
        close(sv[0]);
        return rc == -EPIPE ? -ECHILD : rc;
    }
    *sock = sv[0];
    return 0;
}

int walls_init(void)
{
    walls__fork_handlers();
    int rc = walls__forkserver_acquire(true);
    if (rc == 0)
        return 0;
    return walls__fail(rc, "walls_init: %s",
                       rc == -ENOSYS    ? "the kernel has no pidfds (clone with CLONE_PIDFD)"
                       : rc == -ENOEXEC ? "the program could not be re-executed as the fork "
                                          "server (/proc/self/exe)"
                       : rc == -ECHILD  ? "the fork server died while starting"
                                        : "no process or memory for the fork server");
}

void walls_fini(void)
{
    walls__forkserver_release(true);
}
