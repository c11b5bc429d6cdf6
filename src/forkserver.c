/*
 * forkserver.c - the single-threaded process every worker is forked from,
 * and the host's handle on it.
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
 * The fork server polls its control socket, one socket per pool, and a
 * signalfd for SIGCHLD. It forks workers on request (sending back a pidfd),
 * reaps them and reports how they ended. When a pool's socket closes it
 * kills that pool's workers; when the control socket closes (the host is
 * gone, whatever the cause) it kills all of them and exits. Workers hold
 * the fork server as their parent-death target, so they cannot outlive it.
 *
 * The host's children carry no exit signal (clone with exit_signal 0): the
 * host's own SIGCHLD handling and waitpid(-1) never see them; walls reaps
 * them through their pidfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "futex.h"
#include "internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define FS_ENV "WALLS__FORKSERVER_FD"

extern char **environ;

/* ---- messages ---------------------------------------------------------------- */

int walls__fs_send(int sock, const struct walls__fs_msg *msg, const int *fds, int nfds)
{
    struct walls__fs_msg copy = *msg;
    struct iovec iov = {.iov_base = &copy, .iov_len = sizeof copy};
    union {
        char buf[CMSG_SPACE(WALLS__FS_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof *msg)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : -EPROTO;
    }
}

int walls__fs_recv(int sock, struct walls__fs_msg *msg, int *fds, int *nfds, bool block)
{
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof *msg};
    union {
        char buf[CMSG_SPACE(WALLS__FS_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    int want = *nfds;
    *nfds = 0;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == 0)
        return -EPIPE;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int tmp[WALLS__FS_MAX_FDS];
        if (count > WALLS__FS_MAX_FDS)
            count = WALLS__FS_MAX_FDS;
        memcpy(tmp, CMSG_DATA(c), (size_t)count * sizeof(int));
        for (int i = 0; i < count; i++) {
            if (got < want)
                fds[got++] = tmp[i];
            else
                close(tmp[i]);
        }
    }
    *nfds = got;
    if (n != (ssize_t)sizeof *msg || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        for (int i = 0; i < got; i++)
            close(fds[i]);
        *nfds = 0;
        return -EPROTO;
    }
    return 0;
}

/* ---- the fork server --------------------------------------------------------- */

struct fs_child {
    pid_t pid;
    int pidfd;
    int pool; /* index into pools */
    uint32_t worker;
};

struct fs_pool {
    int sock; /* -1 once closed */
};

static struct fs_pool *fs_pools;
static int64_t fs_spin_until; /* poll without sleeping until then */
static size_t fs_npools;
static struct fs_child *fs_children;
static size_t fs_nchildren, fs_cap_children;

static void fs_kill_pool(int pool)
{
    for (size_t i = 0; i < fs_nchildren; i++)
        if (pool < 0 || fs_children[i].pool == pool)
            syscall(SYS_pidfd_send_signal, fs_children[i].pidfd, SIGKILL, NULL, 0);
}

static void fs_reap(void)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
            return;
        for (size_t i = 0; i < fs_nchildren; i++) {
            struct fs_child *c = &fs_children[i];
            if (c->pid != si.si_pid)
                continue;
            int sock = fs_pools[c->pool].sock;
            if (sock >= 0) {
                struct walls__fs_msg msg = {.type = WALLS__FS_EXIT, .worker = c->worker,
                                            .pid = c->pid, .exit_how = si.si_code,
                                            .exit_status = si.si_status};
                walls__fs_send(sock, &msg, NULL, 0);
            }
            close(c->pidfd);
            fs_children[i] = fs_children[--fs_nchildren];
            fs_spin_until = walls__now_ns() + WALLS__RESTART_SPIN_NS;
            break;
        }
    }
}

static void fs_spawn(int pool, const struct walls__fs_msg *req, const int *fds, int nfds)
{
    struct walls__fs_msg reply = {.type = WALLS__FS_SPAWNED, .worker = req->worker};
    int sock = fs_pools[pool].sock;
    if (nfds < 2) {
        reply.err = -EBADF;
        goto out;
    }
    if (fs_nchildren == fs_cap_children) {
        size_t cap = fs_cap_children ? 2 * fs_cap_children : 16;
        struct fs_child *grown = realloc(fs_children, cap * sizeof *grown);
        if (!grown) {
            reply.err = -ENOMEM;
            goto out;
        }
        fs_children = grown;
        fs_cap_children = cap;
    }
    pid_t self = getpid();
    pid_t pid = _Fork();
    if (pid == 0)
        walls__worker_child(fds, nfds, self);
    if (pid < 0) {
        reply.err = -errno;
        goto out;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        reply.err = -errno;
        kill(pid, SIGKILL);
        goto out;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    fs_children[fs_nchildren++] =
        (struct fs_child){.pid = pid, .pidfd = pidfd, .pool = pool, .worker = req->worker};
    reply.pid = pid;
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (walls__fs_send(sock, &reply, &pidfd, 1) != 0)
        kill(pid, SIGKILL);
    return;
out:
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    walls__fs_send(sock, &reply, NULL, 0);
}

static _Noreturn void fs_shutdown(void)
{
    fs_kill_pool(-1);
    while (fs_nchildren > 0) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED) != 0)
            break;
        for (size_t i = 0; i < fs_nchildren; i++)
            if (fs_children[i].pid == si.si_pid) {
                fs_children[i] = fs_children[--fs_nchildren];
                break;
            }
    }
    _exit(0);
}

_Noreturn void walls__forkserver_main(int ctl)
{
    walls__set_title("walls-forkserver");
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    /* Terminal signals are for the program; it decides what its workers do. */
    setpgid(0, 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        _exit(errno);
    struct walls__fs_msg hello = {.type = WALLS__FS_HELLO, .pid = getpid()};
    if (walls__fs_send(ctl, &hello, NULL, 0) != 0)
        _exit(EPIPE);
    struct pollfd *pfds = NULL;
    for (;;) {
        size_t n = 2 + fs_npools;
        struct pollfd *grown = realloc(pfds, n * sizeof *pfds);
        if (!grown)
            fs_shutdown();
        pfds = grown;
        pfds[0] = (struct pollfd){.fd = ctl, .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        for (size_t i = 0; i < fs_npools; i++)
            pfds[2 + i] = (struct pollfd){.fd = fs_pools[i].sock, .events = POLLIN};
        /* Right after a death the host answers with a spawn request: poll
         * for it rather than sleep through a wake-up. */
        int ready = poll(pfds, n, 0);
        if (ready == 0 && walls__now_ns() < fs_spin_until) {
            sched_yield();
            continue;
        }
        if (ready == 0)
            ready = poll(pfds, n, -1);
        if (ready < 0)
            continue;
        if (pfds[1].revents) {
            struct signalfd_siginfo ssi;
            while (read(sigfd, &ssi, sizeof ssi) > 0) {
            }
            fs_reap();
        }
        for (size_t i = 0; i < fs_npools; i++) {
            if (!pfds[2 + i].revents || fs_pools[i].sock < 0)
                continue;
            struct walls__fs_msg msg;
            int fds[WALLS__FS_MAX_FDS], nfds = WALLS__FS_MAX_FDS;
            int rc = walls__fs_recv(fs_pools[i].sock, &msg, fds, &nfds, false);
            if (rc == 0 && msg.type == WALLS__FS_SPAWN) {
                fs_spawn((int)i, &msg, fds, nfds);
            } else if (rc == 0 || rc == -EPROTO) {
                for (int k = 0; k < nfds; k++)
                    close(fds[k]);
            } else if (rc != -EAGAIN) {
                /* The pool is gone: so are its workers. */
                fs_kill_pool((int)i);
                close(fs_pools[i].sock);
                fs_pools[i].sock = -1;
            }
        }
        if (pfds[0].revents) {
            struct walls__fs_msg msg;
            int fd = -1, nfds = 1;
            int rc = walls__fs_recv(ctl, &msg, &fd, &nfds, false);
            if (rc == 0 && msg.type == WALLS__FS_ADD_POOL && nfds == 1) {
                size_t slot = fs_npools;
                for (size_t i = 0; i < fs_npools; i++)
                    if (fs_pools[i].sock < 0) {
                        /* Reuse a closed slot once none of its workers is left. */
                        bool busy = false;
                        for (size_t k = 0; k < fs_nchildren; k++)
                            busy |= fs_children[k].pool == (int)i;
                        if (!busy) {
                            slot = i;
                            break;
                        }
                    }
                if (slot == fs_npools) {
                    struct fs_pool *more = realloc(fs_pools, (fs_npools + 1) * sizeof *more);
                    if (!more) {
                        close(fd);
                        continue;
                    }
                    fs_pools = more;
                    fs_npools++;
                }
                fs_pools[slot].sock = fd;
            } else if (rc == 0 || rc == -EPROTO) {
                if (nfds == 1)
                    close(fd);
            } else if (rc != -EAGAIN) {
                fs_shutdown(); /* the host is gone */
            }
        }
    }
}

/* Fork-server mode of a re-executed program: runs before main(). */
__attribute__((constructor(101))) static void forkserver_ctor(void)
{
    const char *value = getenv(FS_ENV);
    if (!value)
        return;
    int fd = atoi(value);
    unsetenv(FS_ENV);
    int low = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (low < 0)
        _exit(EBADF);
    if (low != 3) {
        dup3(low, 3, O_CLOEXEC);
        close(low);
    }
    if (fd != 3)
        close(fd);
    close_range(4, ~0U, 0);
    walls__forkserver_main(3);
}

/* ---- the host's handle ----------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    int refs;      /* pools and walls_init() calls holding it */
    int init_refs; /* of which walls_init() calls */
    bool running;
    int ctl;
    int pidfd;
    pid_t pid;
} fs = {.lock = PTHREAD_MUTEX_INITIALIZER, .ctl = -1, .pidfd = -1};

static int thread_count(void)
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

/* The environment for a re-executed fork server: ours, plus where its
 * control socket is. *mine is the one string allocated here. */
static char **exec_env(int fd, char **mine)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof *envp);
    *mine = malloc(sizeof FS_ENV + 16);
    if (!envp || !*mine) {
        free(envp);
        free(*mine);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], FS_ENV "=", sizeof FS_ENV) != 0)
            envp[k++] = environ[i];
    snprintf(*mine, sizeof FS_ENV + 16, FS_ENV "=%d", fd);
    envp[k] = *mine;
    return envp;
}

static int start_locked(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    struct walls__fs_start start = {.ctl = sv[1]};
    bool single = thread_count() == 1;
    char *mine = NULL;
    int pidfd = -1, rc = 0;
    if (!single) {
        static char name[] = "walls-forkserver";
        static char *argv[] = {name, NULL};
        start.argv = argv;
        start.envp = exec_env(sv[1], &mine);
        if (!start.envp) {
            close(sv[0]);
            close(sv[1]);
            return -ENOMEM;
        }
    }
    /* A fork with a pidfd and no exit signal. Signals stay blocked until
     * the child has set its own mask (fork mode) or called execve. */
    int clone_errno = 0;
    pid_t pid = walls__clone_pidfd(&pidfd, &clone_errno);
    if (pid == 0) {
        if (single)
            walls__forkserver_fork_child(&start);
        walls__forkserver_exec_child(&start);
    }
    free(mine);
    free(start.envp);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return clone_errno == ENOSYS ? -ENOSYS : -clone_errno;
    }
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    struct walls__fs_msg hello;
    int nfds = 0;
    if (poll(&p, 1, 10000) != 1 || walls__fs_recv(sv[0], &hello, NULL, &nfds, false) != 0 ||
        hello.type != WALLS__FS_HELLO) {
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
    /* The fork server's end blocks; ours does not (the supervisor drains it). */
    int flags = fcntl(sv[1], F_GETFL);
    fcntl(sv[1], F_SETFL, flags & ~O_NONBLOCK);
    pthread_mutex_lock(&fs.lock);
    struct walls__fs_msg msg = {.type = WALLS__FS_ADD_POOL};
    int rc = fs.running ? walls__fs_send(fs.ctl, &msg, &sv[1], 1) : -ECHILD;
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
    return walls__forkserver_acquire(true);
}

void walls_fini(void)
{
    walls__forkserver_release(true);
}
