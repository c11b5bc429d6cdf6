/*
 * forkserver_main.c - the fork server's own loop; runs in the child.
 *
 * It polls its control socket, one socket per pool, and a signalfd for
 * SIGCHLD. It forks workers on request (sending back a pidfd), reaps them
 * and reports how they ended. When a pool's socket closes it kills that
 * pool's workers; when the control socket closes (the host is gone,
 * whatever the cause) it kills all of them and exits. Workers hold the
 * fork server as their parent-death target, so they cannot outlive it.
 * The process stays single-threaded, so forking it is safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "forkserver.h"
#include "futex.h"
#include "internal.h"

/* How long the fork server polls rather than sleeps after a death: the
 * host answers it with a spawn request. */
#define RESTART_SPIN_NS 1000000

struct served_child {
    pid_t pid;
    int pidfd;
    int pool; /* index into pools */
    uint32_t worker;
};

struct served_pool {
    int sock; /* -1 once closed */
};

static struct served_pool *pools;
static int64_t spin_until; /* poll without sleeping until then */
static size_t npools;
static struct served_child *children;
static size_t nchildren, children_cap;

static void kill_pool(int pool)
{
    for (size_t i = 0; i < nchildren; i++)
        if (pool < 0 || children[i].pool == pool)
            syscall(SYS_pidfd_send_signal, children[i].pidfd, SIGKILL, NULL, 0);
}

static void reap_children(void)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
            return;
        for (size_t i = 0; i < nchildren; i++) {
            struct served_child *c = &children[i];
            if (c->pid != si.si_pid)
                continue;
            int sock = pools[c->pool].sock;
            if (sock >= 0) {
                struct walls__msg msg = {.type = WALLS__MSG_EXIT, .worker = c->worker,
                                            .pid = c->pid, .exit_how = si.si_code,
                                            .exit_status = si.si_status};
                walls__msg_send(sock, &msg, NULL, 0);
            }
            close(c->pidfd);
            children[i] = children[--nchildren];
            spin_until = walls__now_ns() + RESTART_SPIN_NS;
            break;
        }
    }
}

static void spawn_worker(int pool, const struct walls__msg *req, const int *fds, int nfds)
{
    struct walls__msg reply = {.type = WALLS__MSG_SPAWNED, .worker = req->worker};
    int sock = pools[pool].sock;
    if (nfds < 2) {
        reply.err = -EBADF;
        goto out;
    }
    if (nchildren == children_cap) {
        size_t cap = children_cap ? 2 * children_cap : 16;
        struct served_child *grown = realloc(children, cap * sizeof *grown);
        if (!grown) {
            reply.err = -ENOMEM;
            goto out;
        }
        children = grown;
        children_cap = cap;
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
    children[nchildren++] =
        (struct served_child){.pid = pid, .pidfd = pidfd, .pool = pool, .worker = req->worker};
    reply.pid = pid;
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (walls__msg_send(sock, &reply, &pidfd, 1) != 0)
        kill(pid, SIGKILL);
    return;
out:
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    walls__msg_send(sock, &reply, NULL, 0);
}

static _Noreturn void shut_down(void)
{
    kill_pool(-1);
    while (nchildren > 0) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED) != 0)
            break;
        for (size_t i = 0; i < nchildren; i++)
            if (children[i].pid == si.si_pid) {
                children[i] = children[--nchildren];
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
    struct walls__msg hello = {.type = WALLS__MSG_HELLO, .pid = getpid()};
    if (walls__msg_send(ctl, &hello, NULL, 0) != 0)
        _exit(EPIPE);
    struct pollfd *pfds = NULL;
    for (;;) {
        size_t n = 2 + npools;
        struct pollfd *grown = realloc(pfds, n * sizeof *pfds);
        if (!grown)
            shut_down();
        pfds = grown;
        pfds[0] = (struct pollfd){.fd = ctl, .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        for (size_t i = 0; i < npools; i++)
            pfds[2 + i] = (struct pollfd){.fd = pools[i].sock, .events = POLLIN};
        /* Right after a death the host answers with a spawn request: poll
         * for it rather than sleep through a wake-up. */
        int ready = poll(pfds, n, 0);
        if (ready == 0 && walls__now_ns() < spin_until) {
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
            reap_children();
        }
        for (size_t i = 0; i < npools; i++) {
            if (!pfds[2 + i].revents || pools[i].sock < 0)
                continue;
            struct walls__msg msg;
            int fds[WALLS__MSG_MAX_FDS], nfds = WALLS__MSG_MAX_FDS;
            int rc = walls__msg_recv(pools[i].sock, &msg, fds, &nfds, false);
            if (rc == 0 && msg.type == WALLS__MSG_SPAWN) {
                spawn_worker((int)i, &msg, fds, nfds);
            } else if (rc == 0 || rc == -EPROTO) {
                for (int k = 0; k < nfds; k++)
                    close(fds[k]);
            } else if (rc != -EAGAIN) {
                /* The pool is gone: so are its workers. */
                kill_pool((int)i);
                close(pools[i].sock);
                pools[i].sock = -1;
            }
        }
        if (pfds[0].revents) {
            struct walls__msg msg;
            int fd = -1, nfds = 1;
            int rc = walls__msg_recv(ctl, &msg, &fd, &nfds, false);
            if (rc == 0 && msg.type == WALLS__MSG_ADD_POOL && nfds == 1) {
                size_t slot = npools;
                for (size_t i = 0; i < npools; i++)
                    if (pools[i].sock < 0) {
                        /* Reuse a closed slot once none of its workers is left. */
                        bool busy = false;
                        for (size_t k = 0; k < nchildren; k++)
                            busy |= children[k].pool == (int)i;
                        if (!busy) {
                            slot = i;
                            break;
                        }
                    }
                if (slot == npools) {
                    struct served_pool *more = realloc(pools, (npools + 1) * sizeof *more);
                    if (!more) {
                        close(fd);
                        continue;
                    }
                    pools = more;
                    npools++;
                }
                pools[slot].sock = fd;
            } else if (rc == 0 || rc == -EPROTO) {
                if (nfds == 1)
                    close(fd);
            } else if (rc != -EAGAIN) {
                shut_down(); /* the host is gone */
            }
        }
    }
}

/* Fork-server mode of a re-executed program: runs before main(). */
__attribute__((constructor(101))) static void forkserver_ctor(void)
{
    const char *value = getenv(WALLS__FORKSERVER_ENV);
    if (!value)
        return;
    int fd = atoi(value);
    unsetenv(WALLS__FORKSERVER_ENV);
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
