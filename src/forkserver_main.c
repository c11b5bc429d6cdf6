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
 *
 * Spare: once a worker has died of a signal (a crash, a time limit, a
 * cancel), a replacement will likely be wanted again, and a fork is most of
 * what a replacement costs. So the fork server then keeps one child forked
 * ahead, "walls-spare", that waits on a socket of its own holding nothing
 * of any pool. A spawn request hands it the worker's descriptors, and it
 * goes on exactly as a freshly forked worker would; the next spare is
 * forked when the fork server has nothing else to do. A spare that dies is
 * forgotten, and a request then forks as before.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "forkserver.h"
#include "futex.h"
#include "internal.h"

struct served_child {
    pid_t pid;
    int pidfd;
    int pool; /* index into pools */
    uint32_t worker;
};

struct served_pool {
    int sock; /* -1 once closed */
};

/* The child forked ahead (pid 0: none), and the fork server's end of its
 * socket. */
struct spare_child {
    pid_t pid;
    int pidfd;
    int sock;
};

static struct served_pool *pools;
static struct spare_child spare = {0, -1, -1};
static bool spare_wanted; /* a worker died of a signal: keep a spare from now on */
static int64_t spin_until; /* poll without sleeping until then */
/* After a death the host answers with a spawn request: the fork server
 * polls for it, with enough CPUs (WALLS__RESTART_SPIN_MIN_CPUS). On fewer,
 * the polling takes a CPU from the dying worker's teardown and the host's
 * own turn. */
static bool spin_cpus;
/* Other threads run here (a library's constructor started them, in a
 * re-executed fork server): children are forked with fork(), which takes
 * the C library's allocator and stdio locks across it, so that no child
 * finds one held for ever by a thread it does not have. */
static bool threaded;
static size_t npools;
static struct served_child *children;
static size_t nchildren, children_cap;

/* A worker leads a process group of its own (walls__worker_child): the
 * processes its tasks started are in it, unless they left it (setsid(),
 * setpgid()). They go with their worker. The worker is this process's
 * child and not yet reaped when this runs, so the group's number is
 * still its own. */
static void kill_group(pid_t worker)
{
    if (worker > 0)
        kill(-worker, SIGKILL);
}

static void kill_pool(int pool)
{
    for (size_t i = 0; i < nchildren; i++)
        if (pool < 0 || children[i].pool == pool) {
            syscall(SYS_pidfd_send_signal, children[i].pidfd, SIGKILL, NULL, 0);
            kill_group(children[i].pid);
        }
}

static void spare_forget(void)
{
    if (spare.pidfd >= 0)
        close(spare.pidfd);
    if (spare.sock >= 0)
        close(spare.sock);
    spare = (struct spare_child){0, -1, -1};
}

static void spare_drop(void)
{
    if (spare.pidfd >= 0)
        syscall(SYS_pidfd_send_signal, spare.pidfd, SIGKILL, NULL, 0);
    spare_forget(); /* reaped, as any child, by reap_children() */
}

/* The spare's life until a request comes: it holds nothing but its
 * socket, then becomes the worker the request describes. */
static _Noreturn void spare_main(int sock, pid_t server)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        _exit(errno);
    if (getppid() != server)
        _exit(ESRCH);
    if (sock != 3 && dup3(sock, 3, O_CLOEXEC) < 0)
        _exit(errno);
    close_range(4, ~0U, 0);
    walls__set_title("walls-spare");
    struct walls__msg msg;
    int fds[WALLS__MSG_MAX_FDS], nfds = WALLS__MSG_MAX_FDS;
    if (walls__msg_recv(3, &msg, fds, &nfds, true) != 0 || msg.type != WALLS__MSG_SPAWN)
        _exit(0);
    close(3);
    walls__worker_child(fds, nfds, server);
}

/* Forks the spare if one is wanted and none is there. */
static void spare_make(void)
{
    if (!spare_wanted || spare.pid)
        return;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    pid_t self = getpid();
    pid_t pid = threaded ? fork() : _Fork();
    if (pid == 0)
        spare_main(sv[1], self);
    close(sv[1]);
    int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd < 0) {
        if (pid > 0)
            kill(pid, SIGKILL);
        close(sv[0]);
        return;
    }
    fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    spare = (struct spare_child){pid, pidfd, sv[0]};
}

/* Hands a spawn request to the spare: its pid and pidfd, or -1 when there
 * is none or it is gone. */
static pid_t spare_take(const struct walls__msg *req, const int *fds, int nfds, int *pidfd)
{
    if (!spare.pid)
        return -1;
    if (walls__msg_send(spare.sock, req, fds, nfds) != 0) {
        spare_drop();
        return -1;
    }
    pid_t pid = spare.pid;
    *pidfd = spare.pidfd;
    close(spare.sock);
    spare = (struct spare_child){0, -1, -1};
    return pid;
}

static void reap_children(void)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        /* Looked at first and reaped after its group is killed. */
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            return;
        kill_group(si.si_pid);
        siginfo_t reaped;
        while (waitid(P_PID, (id_t)si.si_pid, &reaped, WEXITED) != 0 && errno == EINTR) {
        }
        if (si.si_pid == spare.pid) {
            spare_forget();
            continue;
        }
        if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
            spare_wanted = true;
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
            if (spin_cpus)
                spin_until = walls__now_ns() + WALLS__RESTART_SPIN_NS;
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
    int pidfd = -1;
    pid_t pid = spare_take(req, fds, nfds, &pidfd);
    if (pid < 0) {
        pid_t self = getpid();
        pid = threaded ? fork() : _Fork();
        if (pid == 0)
            walls__worker_child(fds, nfds, self);
        if (pid < 0) {
            reply.err = -errno;
            goto out;
        }
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
            reply.err = -errno;
            kill(pid, SIGKILL);
            goto out;
        }
        fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    }
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
    spare_drop();
    kill_pool(-1);
    /* Every child was killed: reap them all, the spare too, so that none
     * is left once the host sees this process gone. */
    siginfo_t si;
    while (waitid(P_ALL, 0, &si, WEXITED) == 0 || errno == EINTR) {
    }
    _exit(0);
}

_Noreturn void walls__forkserver_main(int ctl, pid_t host)
{
    walls__set_title("walls-forkserver");
    /* 0-2 taken, on /dev/null where the program had closed them: what
     * this process opens or receives (a pool's socket) must not land
     * there, where every worker forked from it would inherit it. open()
     * takes the lowest free number: fd, the ones below being open. */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            open("/dev/null", O_RDWR);
    /* glibc's unwinder, which pthread_exit() in a task needs and glibc
     * loads on first use: loaded here, once, every worker has it, and a
     * sandboxed one need not open a file for it. */
    dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    threaded = walls__thread_count() > 1;
    /* Terminal signals are for the program; it decides what its workers do. */
    setpgid(0, 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        _exit(errno);
    /* The affinity mask and the cgroup quota, as a pool counts them. */
    spin_cpus = walls__cpu_count_source(NULL) >= WALLS__RESTART_SPIN_MIN_CPUS;
    /* The program (this process's parent): when it ends, so does this
     * process, with every worker, even while another process still holds
     * the control socket (a child the program made with a raw clone() or
     * fork system call, which the fork handlers that close it in a child
     * never saw). Without pidfds, the socket alone says so. */
    int host_fd = host > 0 ? (int)syscall(SYS_pidfd_open, host, 0) : -1;
    if (host_fd >= 0)
        fcntl(host_fd, F_SETFD, FD_CLOEXEC);
    /* Gone before the pidfd was open (this process was handed to another
     * parent, or the pid is another process's by now): gone. */
    if (host > 0 && getppid() != host)
        shut_down();
    struct walls__msg hello = {.type = WALLS__MSG_HELLO, .pid = getpid()};
    if (walls__msg_send(ctl, &hello, NULL, 0) != 0)
        _exit(EPIPE);
    struct pollfd *pfds = NULL;
    enum { FIRST_POOL = 3 };
    for (;;) {
        size_t n = FIRST_POOL + npools;
        struct pollfd *grown = realloc(pfds, n * sizeof *pfds);
        if (!grown)
            shut_down();
        pfds = grown;
        pfds[0] = (struct pollfd){.fd = ctl, .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        pfds[2] = (struct pollfd){.fd = host_fd, .events = POLLIN}; /* -1: ignored */
        for (size_t i = 0; i < npools; i++)
            pfds[FIRST_POOL + i] = (struct pollfd){.fd = pools[i].sock, .events = POLLIN};
        /* Right after a death the host answers with a spawn request: poll
         * for it rather than sleep through a wake-up. */
        int ready = poll(pfds, n, 0);
        if (ready == 0 && !spare.pid && spare_wanted) {
            /* Nothing to do: the spare is forked now, off the way of
             * any request. */
            spare_make();
            continue;
        }
        if (ready == 0 && walls__now_ns() < spin_until) {
            sched_yield();
            continue;
        }
        if (ready == 0)
            ready = poll(pfds, n, -1);
        if (ready < 0)
            continue;
        if (pfds[2].revents)
            shut_down(); /* the program is gone */
        if (pfds[1].revents) {
            struct signalfd_siginfo ssi;
            while (read(sigfd, &ssi, sizeof ssi) > 0) {
            }
            reap_children();
        }
        for (size_t i = 0; i < npools; i++) {
            if (!pfds[FIRST_POOL + i].revents || pools[i].sock < 0)
                continue;
            struct walls__msg msg;
            int fds[WALLS__MSG_MAX_FDS], nfds = WALLS__MSG_MAX_FDS;
            int rc = walls__msg_recv(pools[i].sock, &msg, fds, &nfds, false);
            if (rc == 0 && msg.type == WALLS__MSG_SPAWN) {
                spawn_worker((int)i, &msg, fds, nfds);
                /* What the polling waited for came: stop taking a CPU
                 * that the workers want under load. */
                spin_until = 0;
            } else if (rc == 0 || rc == -EPROTO || rc == -EMFILE) {
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
            } else if (rc == 0 || rc == -EPROTO || rc == -EMFILE) {
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
    /* "fd,epoch,a0,a1": the control socket, the program's epoch and the
     * set of its ancestors' (hexadecimal words), which this process must
     * avoid as a forked one would. */
    char *end;
    int fd = (int)strtol(value, &end, 10);
    uint32_t epoch = 0;
    uint64_t ancestry[2] = {0, 0};
    pid_t host = 0;
    bool whole = false;
    if (*end == ',') {
        epoch = (uint32_t)strtoul(end + 1, &end, 10);
        if (*end == ',') {
            ancestry[0] = strtoull(end + 1, &end, 16);
            if (*end == ',') {
                ancestry[1] = strtoull(end + 1, &end, 16);
                if (*end == ',')
                    host = (pid_t)strtol(end + 1, &end, 10);
                whole = *end == '\0';
            }
        }
    }
    if (whole)
        walls__epoch_adopt(epoch, ancestry);
    unsetenv(WALLS__FORKSERVER_ENV);
    /* The libraries the program had loaded: a sandboxed worker could not
     * load one itself. One already here (the program's own) is only
     * counted again; one that cannot be loaded is left to the workers. */
    const char *libs = getenv(WALLS__FORKSERVER_LIBS_ENV);
    if (libs) {
        char *copy = strdup(libs);
        for (char *line = copy, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (line[0] == '/')
                dlopen(line, RTLD_NOW | RTLD_LOCAL);
        }
        free(copy);
        unsetenv(WALLS__FORKSERVER_LIBS_ENV);
    }
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
    walls__forkserver_main(3, host);
}
