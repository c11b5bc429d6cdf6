/*
 * test_sandbox.c - the strict sandbox against hostile tasks.
 *
 * The battery: each attack is a task that returns 0 when it got what it
 * wanted. In a strict-sandboxed pool each must end the way the table says
 * (a violation naming the call, or a crash, timeout or protocol error)
 * while a harmless task on the pool's other worker completes; in a pool
 * without a sandbox the same attacks run again and must succeed, so every
 * check here is able to fail. The rest: permission groups (Landlock path
 * rules, the network), the explicit fallback when the kernel refuses a
 * layer, and hybrid workers.
 *
 * The whole program skips (exit 77) when the kernel refuses a layer of the
 * strict sandbox, and the Landlock test when Landlock is missing.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "mailbox.h"
#include "walls.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* sanitizers reserve terabytes of address space: no RLIMIT_AS fits */
#else
#define SANITIZED 0
#endif

#define STRICT_LAYERS                                                                        \
    (WALLS_LAYER_LIMITS | WALLS_LAYER_SECCOMP | WALLS_LAYER_USER_NS | WALLS_LAYER_NET_NS |   \
     WALLS_LAYER_IPC_NS | WALLS_LAYER_MOUNT_NS | WALLS_LAYER_UTS_NS | WALLS_LAYER_NO_ROOT)

/* What every attack gets as its input. */
struct target {
    int32_t host;      /* the test process */
    int32_t victim;    /* a child of the test process that waits to be killed */
    uint64_t secret;   /* address of secret[] in the test process */
    int32_t port;      /* a TCP listener of the test process on 127.0.0.1 */
    int32_t spin_ms;
    char dir[128];     /* a scratch directory of the test process */
};

static char secret[32] = "the host's secret";

/* ---- the attacks: 0 = it worked ----------------------------------------- */

#define FAIL_ERRNO (errno ? errno : 1)

static const struct target *T(struct walls_call *c)
{
    return c->in;
}

static int a_open_read(struct walls_call *c)
{
    (void)c;
    char buf[16];
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FAIL_ERRNO;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 ? 0 : 1;
}

static int a_create_file(struct walls_call *c)
{
    char path[200];
    snprintf(path, sizeof path, "%s/created", T(c)->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return FAIL_ERRNO;
    ssize_t n = write(fd, "x", 1);
    close(fd);
    return n == 1 ? 0 : 1;
}

static int a_list_dir(struct walls_call *c)
{
    (void)c;
    DIR *d = opendir("/");
    if (!d)
        return FAIL_ERRNO;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n > 2 ? 0 : 1;
}

static int a_unlink(struct walls_call *c)
{
    char path[200];
    snprintf(path, sizeof path, "%s/victim", T(c)->dir);
    return unlink(path) == 0 ? 0 : FAIL_ERRNO;
}

static int a_exec(struct walls_call *c)
{
    (void)c;
    char *argv[] = {"true", NULL};
    char *envp[] = {NULL};
    execve("/bin/true", argv, envp);
    return FAIL_ERRNO;
}

static int a_fork(struct walls_call *c)
{
    (void)c;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return FAIL_ERRNO;
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? 0 : 1;
}

static int a_fork_bomb(struct walls_call *c)
{
    (void)c;
    /* Bounded, so that without a sandbox it proves the point and stops. */
    pid_t pids[16];
    int n = 0;
    for (; n < 16; n++) {
        pids[n] = fork();
        if (pids[n] == 0) {
            pause();
            _exit(0);
        }
        if (pids[n] < 0)
            break;
    }
    for (int i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    return n == 16 ? 0 : 1;
}

static void *nothing(void *arg)
{
    return arg;
}

static int a_thread(struct walls_call *c)
{
    (void)c;
    pthread_t t;
    int err = pthread_create(&t, NULL, nothing, NULL);
    if (err)
        return err;
    pthread_join(t, NULL);
    return 0;
}

static int a_udp_socket(struct walls_call *c)
{
    (void)c;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return FAIL_ERRNO;
    close(s);
    return 0;
}

static int a_tcp_connect(struct walls_call *c)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return FAIL_ERRNO;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)T(c)->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(s, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    close(s);
    return rc == 0 ? 0 : err;
}

static int a_socketpair(struct walls_call *c)
{
    (void)c;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return FAIL_ERRNO;
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static int a_kill_host(struct walls_call *c)
{
    return kill(T(c)->host, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int a_tgkill_host(struct walls_call *c)
{
    return syscall(SYS_tgkill, T(c)->host, T(c)->host, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int a_kill_group(struct walls_call *c)
{
    (void)c;
    return kill(0, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int a_kill_all(struct walls_call *c)
{
    (void)c;
    return kill(-1, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int a_ptrace(struct walls_call *c)
{
    return ptrace(PTRACE_SEIZE, T(c)->victim, NULL, NULL) == 0 ? 0 : FAIL_ERRNO;
}

static int a_vm_readv(struct walls_call *c)
{
    char buf[sizeof secret];
    struct iovec local = {buf, sizeof buf};
    struct iovec remote = {(void *)(uintptr_t)T(c)->secret, sizeof buf};
    if (process_vm_readv(T(c)->host, &local, 1, &remote, 1, 0) != (ssize_t)sizeof buf)
        return FAIL_ERRNO;
    return strcmp(buf, "the host's secret") == 0 ? 0 : 1;
}

static int a_proc_mem(struct walls_call *c)
{
    char path[64], buf[sizeof secret];
    snprintf(path, sizeof path, "/proc/%d/mem", T(c)->host);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FAIL_ERRNO;
    ssize_t n = pread(fd, buf, sizeof buf, (off_t)T(c)->secret);
    close(fd);
    return n == (ssize_t)sizeof buf && strcmp(buf, "the host's secret") == 0 ? 0 : 1;
}

static int a_proc_environ(struct walls_call *c)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/environ", T(c)->host);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FAIL_ERRNO;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n > 0 ? 0 : 1;
}

static int a_setuid(struct walls_call *c)
{
    (void)c;
    return setuid(1000) == 0 ? 0 : FAIL_ERRNO;
}

static int a_mount(struct walls_call *c)
{
    if (mount("none", T(c)->dir, "tmpfs", 0, "size=64k") != 0)
        return FAIL_ERRNO;
    umount2(T(c)->dir, MNT_DETACH);
    return 0;
}

static int a_unshare(struct walls_call *c)
{
    (void)c;
    return unshare(CLONE_NEWNS) == 0 ? 0 : FAIL_ERRNO;
}

static int a_chroot(struct walls_call *c)
{
    (void)c;
    return chroot("/") == 0 ? 0 : FAIL_ERRNO;
}

static int a_rlimit_up(struct walls_call *c)
{
    (void)c;
    struct rlimit rl;
    /* The soft limit up to the hard one: any process may, unless the
     * hard one was lowered too (the sandbox lowers both). */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return FAIL_ERRNO;
    rlim_t hard = rl.rlim_cur = rl.rlim_max;
    if (rl.rlim_cur > 64) {
        rl.rlim_cur = 64;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return FAIL_ERRNO;
    }
    rl.rlim_cur = hard;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return FAIL_ERRNO;
    return rl.rlim_cur == hard && hard > 64 ? 0 : 1;
}

static const char read_only[] = "constant";

__attribute__((no_sanitize("address", "undefined", "thread"))) static int
a_write_rodata(struct walls_call *c)
{
    (void)c;
    *(volatile char *)(uintptr_t)read_only = 'X';
    return 0;
}

/* The mailbox of the calling worker: the input lies in a request slot. */
static struct walls__mailbox *own_mailbox(struct walls_call *c)
{
    uintptr_t page = (uintptr_t)c->in & ~(uintptr_t)4095;
    for (int i = 0; i < 16; i++, page -= 4096)
        if (((struct walls__mailbox *)page)->magic == WALLS__MAILBOX_MAGIC)
            return (struct walls__mailbox *)page;
    return NULL;
}

/* Rings the doorbell (descriptor 4 in every worker) and waits to be
 * killed for what it did. */
static int ring_and_wait(void)
{
    uint64_t one = 1;
    if (write(4, &one, sizeof one) != sizeof one)
        return 2;
    struct timespec ts = {5, 0};
    nanosleep(&ts, NULL);
    return 0; /* the host did not notice */
}

static int a_mailbox_garbage(struct walls_call *c)
{
    struct walls__mailbox *mb = own_mailbox(c);
    if (!mb)
        return 1;
    mb->cq.tail += 1000;
    mb->rq.head = 0xdeadbeef;
    return ring_and_wait();
}

static int a_flood_completions(struct walls_call *c)
{
    struct walls__mailbox *mb = own_mailbox(c);
    if (!mb)
        return 1;
    uint32_t tail = mb->cq.tail;
    for (uint32_t i = 0; i < WALLS__RING_SLOTS; i++) {
        struct walls__cqe *cqe = &mb->cq_slots[(tail + i) & (WALLS__RING_SLOTS - 1)];
        cqe->seq = 77 + i;
        cqe->tag = 0x5a5a5a5a;
        cqe->kind = WALLS__CQE_DONE;
        cqe->out_len = 100000;
    }
    __atomic_store_n(&mb->cq.tail, tail + WALLS__RING_SLOTS, __ATOMIC_RELEASE);
    return ring_and_wait();
}

static int a_memory(struct walls_call *c)
{
    (void)c;
    size_t size = (size_t)512 << 20;
    char *p = malloc(size);
    if (!p)
        return 1;
    p[0] = p[size - 1] = 1;
    free(p);
    return 0;
}

static int a_spin(struct walls_call *c)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
        clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 <
           T(c)->spin_ms);
    return 0;
}

static int a_raise_sigsys(struct walls_call *c)
{
    (void)c;
    raise(SIGSYS);
    return 0;
}

static int a_kcmp(struct walls_call *c)
{
    (void)c;
    /* No libc wrapper: a call made by number. KCMP_VM = 1. */
    return syscall(SYS_kcmp, getpid(), getpid(), 1, 0, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int a_io_uring(struct walls_call *c)
{
    (void)c;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(SYS_io_uring_setup, 4, &p);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int a_keyctl(struct walls_call *c)
{
    (void)c;
    /* KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING, creating it. */
    return syscall(SYS_keyctl, 0, -3, 1) >= 0 ? 0 : FAIL_ERRNO;
}

static int a_bpf(struct walls_call *c)
{
    (void)c;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int a_perf(struct walls_call *c)
{
    (void)c;
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int a_personality(struct walls_call *c)
{
    (void)c;
    return personality(PER_LINUX) >= 0 ? 0 : FAIL_ERRNO;
}

static int a_memfd_exec(struct walls_call *c)
{
    (void)c;
    int fd = memfd_create("walls-attack", MFD_CLOEXEC);
    if (fd < 0)
        return FAIL_ERRNO;
    int rc = 1;
    if (ftruncate(fd, 4096) == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            munmap(p, 4096);
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

static int a_pidfd(struct walls_call *c)
{
    long fd = syscall(SYS_pidfd_open, T(c)->host, 0);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int a_userfaultfd(struct walls_call *c)
{
    (void)c;
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int a_prctl(struct walls_call *c)
{
    (void)c;
    return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0 ? 0 : FAIL_ERRNO;
}

/* Arms a descriptor to signal a process: F_SETOWN (to itself here, and
 * without O_ASYNC, so nothing is sent). */
static int a_fcntl_setown(struct walls_call *c)
{
    (void)c;
    for (int fd = 0; fd < 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            return fcntl(fd, F_SETOWN, getpid()) == 0 ? 0 : FAIL_ERRNO;
    return FAIL_ERRNO;
}

/* A priority-inheritance futex: takes a thread id, reaches kernel state. */
static int a_futex_pi(struct walls_call *c)
{
    (void)c;
    static uint32_t word;
    if (syscall(SYS_futex, &word, FUTEX_LOCK_PI_PRIVATE, 0, NULL, NULL, 0) != 0)
        return FAIL_ERRNO;
    syscall(SYS_futex, &word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return 0;
}

/* Writable and executable memory: where injected code would go. */
static int a_rwx(struct walls_call *c)
{
    (void)c;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return FAIL_ERRNO;
    munmap(p, 4096);
    return 0;
}

static void ignore_sigsys(int sig)
{
    (void)sig;
}

/* Refused calls are reported to the host by the kernel, not by a signal:
 * catching SIGSYS (also through a signal number with garbage in the upper
 * half of its register, which the kernel reads as an int) changes nothing,
 * and the call after it is still a violation. */
static int a_catch_sigsys(struct walls_call *c)
{
    (void)c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore_sigsys;
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return FAIL_ERRNO;
    struct kernel_sigaction {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } ks = {.handler = ignore_sigsys};
    syscall(SYS_rt_sigaction, (long)SIGSYS | (1L << 32), &ks, NULL, 8);
    return (int)syscall(SYS_getppid) > 0 ? 0 : FAIL_ERRNO;
}

/* A blocked SIGSYS cannot keep a refused call from being named either. */
static int a_block_sigsys(struct walls_call *c)
{
    (void)c;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    sigprocmask(SIG_BLOCK, &set, NULL);
    return (int)syscall(SYS_getppid) > 0 ? 0 : FAIL_ERRNO;
}

/* Calls through the other system-call ABIs of x86-64: the i386 one
 * (int 0x80; getpid is 20 there) and x32 (getpid with bit 30 set). */
static int a_int80(struct walls_call *c)
{
    (void)c;
#if defined(__x86_64__)
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
    return rc > 0 ? 0 : 1;
#else
    return 1;
#endif
}

static int a_x32(struct walls_call *c)
{
    (void)c;
#if defined(__x86_64__)
    long rc;
    __asm__ volatile("syscall" : "=a"(rc) : "a"(0x40000000L | 39L) : "rcx", "r11", "memory");
    return rc > 0 ? 0 : 1;
#else
    return 1;
#endif
}

/* ---- the table -------------------------------------------------------- */

struct attack {
    const char *what;
    walls_fn *fn;
    enum walls_status strict; /* how it ends in the strict sandbox */
    int code;                 /* the signal, or 0 */
    const char *call;         /* WALLS_VIOLATION: the call named */
    enum walls_status plain;  /* how it ends without a sandbox */
    bool optional;            /* the kernel may lack it: plain may fail with an errno */
};

static const struct attack attacks[] = {
    {"read a file", a_open_read, WALLS_VIOLATION, 0, "openat", WALLS_OK, false},
    {"create and write a file", a_create_file, WALLS_VIOLATION, 0, "openat", WALLS_OK, false},
    {"list a directory", a_list_dir, WALLS_VIOLATION, 0, "openat", WALLS_OK, false},
    {"delete a file", a_unlink, WALLS_VIOLATION, 0, "unlink", WALLS_OK, false},
    /* Without a sandbox /bin/true replaces the worker and exits 0. */
    {"exec a program", a_exec, WALLS_VIOLATION, 0, "execve", WALLS_EXITED, false},
    {"fork", a_fork, WALLS_VIOLATION, 0, "clone", WALLS_OK, false},
    {"fork bomb", a_fork_bomb, WALLS_VIOLATION, 0, "clone", WALLS_OK, false},
    /* Refused with EPERM rather than trapped: glibc blocks every signal
     * while it clones a thread, so a trap could not name the call. */
    {"start a thread", a_thread, WALLS_FAILED, EPERM, NULL, WALLS_OK, false},
    {"create a UDP socket", a_udp_socket, WALLS_VIOLATION, 0, "socket", WALLS_OK, false},
    {"connect to 127.0.0.1", a_tcp_connect, WALLS_VIOLATION, 0, "socket", WALLS_OK, false},
    {"create a UNIX socket pair", a_socketpair, WALLS_VIOLATION, 0, "socketpair", WALLS_OK,
     false},
    {"signal the host", a_kill_host, WALLS_VIOLATION, 0, "kill", WALLS_OK, false},
    {"signal the host's thread", a_tgkill_host, WALLS_VIOLATION, 0, "tgkill", WALLS_OK, false},
    {"signal the other workers", a_kill_group, WALLS_VIOLATION, 0, "kill", WALLS_OK, false},
    {"signal every process", a_kill_all, WALLS_VIOLATION, 0, "kill", WALLS_OK, false},
    {"ptrace a process", a_ptrace, WALLS_VIOLATION, 0, "ptrace", WALLS_OK, false},
    {"process_vm_readv the host", a_vm_readv, WALLS_VIOLATION, 0, "process_vm_readv", WALLS_OK,
     false},
    {"read /proc/<host>/mem", a_proc_mem, WALLS_VIOLATION, 0, "openat", WALLS_OK, false},
    {"read /proc/<host>/environ", a_proc_environ, WALLS_VIOLATION, 0, "openat", WALLS_OK, false},
    {"change uid", a_setuid, WALLS_VIOLATION, 0, "setuid", WALLS_OK, false},
    {"mount", a_mount, WALLS_VIOLATION, 0, "mount", WALLS_OK, false},
    {"unshare", a_unshare, WALLS_VIOLATION, 0, "unshare", WALLS_OK, false},
    {"chroot", a_chroot, WALLS_VIOLATION, 0, "chroot", WALLS_OK, false},
    {"raise an rlimit", a_rlimit_up, WALLS_VIOLATION, 0, "prlimit64", WALLS_OK, false},
    /* The MMU stops these, with or without a sandbox: the point is that
     * only the task dies. */
    {"write to read-only memory", a_write_rodata, WALLS_CRASHED, SIGSEGV, NULL, WALLS_CRASHED,
     false},
    /* The host's checks stop these, with or without a sandbox. */
    {"garbage mailbox indices", a_mailbox_garbage, WALLS_PROTOCOL, 0, NULL, WALLS_PROTOCOL, false},
    {"flood the completion ring", a_flood_completions, WALLS_PROTOCOL, 0, NULL, WALLS_PROTOCOL,
     false},
    /* The memory limit refuses the allocation: the task fails with 1. */
    {"allocate past the memory limit", a_memory, SANITIZED ? WALLS_OK : WALLS_FAILED,
     SANITIZED ? 0 : 1, NULL,
     WALLS_OK, false},
    {"spin past the time limit", a_spin, WALLS_TIMEOUT, 0, NULL, WALLS_OK, false},
    /* A SIGSYS it raises names no call: a crash either way, never a
     * violation. */
    {"raise SIGSYS itself", a_raise_sigsys, WALLS_CRASHED, SIGSYS, NULL, WALLS_CRASHED, false},
    {"a call libc has no wrapper for (kcmp)", a_kcmp, WALLS_VIOLATION, 0, "kcmp", WALLS_OK, true},
    {"io_uring", a_io_uring, WALLS_VIOLATION, 0, "io_uring_setup", WALLS_OK, true},
    {"keyctl", a_keyctl, WALLS_VIOLATION, 0, "keyctl", WALLS_OK, true},
    {"bpf", a_bpf, WALLS_VIOLATION, 0, "bpf", WALLS_OK, true},
    {"perf_event_open", a_perf, WALLS_VIOLATION, 0, "perf_event_open", WALLS_OK, true},
    {"personality", a_personality, WALLS_VIOLATION, 0, "personality", WALLS_OK, false},
    {"map a memfd executable", a_memfd_exec, WALLS_VIOLATION, 0, "memfd_create", WALLS_OK, false},
    {"pidfd_open the host", a_pidfd, WALLS_VIOLATION, 0, "pidfd_open", WALLS_OK, false},
    {"userfaultfd", a_userfaultfd, WALLS_VIOLATION, 0, "userfaultfd", WALLS_OK, true},
    {"make itself dumpable", a_prctl, WALLS_VIOLATION, 0, "prctl", WALLS_OK, false},
    {"arm a descriptor to signal (F_SETOWN)", a_fcntl_setown, WALLS_VIOLATION, 0, "fcntl",
     WALLS_OK, false},
    {"a priority-inheritance futex", a_futex_pi, WALLS_VIOLATION, 0, "futex", WALLS_OK, false},
    {"map memory writable and executable", a_rwx, WALLS_VIOLATION, 0, "mmap", WALLS_OK, false},
    {"catch SIGSYS, then a refused call", a_catch_sigsys, WALLS_VIOLATION, 0, "getppid",
     WALLS_OK, false},
    {"block SIGSYS, then a refused call", a_block_sigsys, WALLS_VIOLATION, 0, "getppid",
     WALLS_OK, false},
#if defined(__x86_64__)
    /* Another ABI: code is the call's number there, flagged as foreign. */
    {"a call through int 0x80", a_int80, WALLS_VIOLATION, 20, NULL, WALLS_OK, true},
    {"an x32 call", a_x32, WALLS_VIOLATION, 0x40000027, NULL, WALLS_OK, true},
#endif
};
#define NATTACKS (sizeof attacks / sizeof attacks[0])

/* ---- the test process's side ------------------------------------------ */

static struct target target;
static int listener = -1;

static void setup_target(void)
{
    memset(&target, 0, sizeof target);
    target.host = getpid();
    target.secret = (uint64_t)(uintptr_t)secret;
    target.spin_ms = 3000; /* the limit is 150 ms: a slow machine still sees it pass first */
    snprintf(target.dir, sizeof target.dir, "/tmp/walls-sandbox-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(target.dir));
    pid_t victim = fork();
    if (victim == 0) {
        for (;;)
            pause();
    }
    ck_assert_int_gt(victim, 0);
    target.victim = victim;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(listener, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(listener, 16), 0);
    ck_assert_int_eq(getsockname(listener, (struct sockaddr *)&sa, &len), 0);
    target.port = ntohs(sa.sin_port);
}

static void teardown_target(void)
{
    kill(target.victim, SIGKILL);
    waitpid(target.victim, NULL, 0);
    close(listener);
    char path[200];
    snprintf(path, sizeof path, "%s/created", target.dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/victim", target.dir);
    unlink(path);
    ck_assert_int_eq(rmdir(target.dir), 0);
}

static void make_victim_file(void)
{
    char path[200];
    snprintf(path, sizeof path, "%s/victim", target.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static walls_pool *strict_pool(void)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .worker_memory_limit = SANITIZED ? 0 : (size_t)128 << 20};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    return pool;
}

START_TEST(test_battery_strict)
{
    ck_assert_int_ge((int)NATTACKS, 30);
    setup_target();
    walls_pool *pool = strict_pool();
    char line[640];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_msg(strstr(line, "sandbox: strict (") && strstr(line, "user ns") &&
                      strstr(line, "network ns") && strstr(line, "seccomp"),
                  "explain: %s", line);
    for (size_t i = 0; i < NATTACKS; i++) {
        const struct attack *a = &attacks[i];
        make_victim_file();
        struct walls_task_opts topts = {.timeout_ms = a->fn == a_spin ? 150 : 0};
        walls_task *t, *bystander;
        struct walls_result r;
        static const char hello[] = "still here";
        ck_assert_int_eq(walls_submit_ex(pool, a->fn, &target, sizeof target, &topts, &t), 0);
        ck_assert_int_eq(walls_submit(pool, t_echo, hello, sizeof hello, &bystander), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        const char *named = r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "";
        ck_assert_msg(r.status == a->strict, "%s: ended %s/%d %s, expected %s", a->what,
                      walls_status_name(r.status), r.code, named, walls_status_name(a->strict));
        if (a->call)
            ck_assert_msg(strcmp(named, a->call) == 0, "%s: named %s, expected %s", a->what,
                          named, a->call);
        else if (a->code)
            ck_assert_msg(r.code == a->code, "%s: code %d, expected %d", a->what, r.code,
                          a->code);
        /* Exactly the calls through another ABI are flagged so. */
        bool foreign = a->fn == a_int80 || a->fn == a_x32;
        ck_assert_msg(!!(r.flags & WALLS_RESULT_FOREIGN_ABI) == foreign, "%s: flags %#x", a->what,
                      r.flags);
        walls_task_free(t);
        /* The other worker's task and the host carry on. */
        ck_assert_int_eq(walls_wait(bystander, 30000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK && r.out_len == sizeof hello &&
                          memcmp(r.out, hello, sizeof hello) == 0,
                      "bystander after %s: %s", a->what, walls_status_name(r.status));
        walls_task_free(bystander);
    }
    /* Nothing reached the host's side. */
    ck_assert_str_eq(secret, "the host's secret");
    char path[200];
    snprintf(path, sizeof path, "%s/created", target.dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/victim", target.dir);
    ck_assert_int_eq(access(path, F_OK), 0);
    struct walls_stats st;
    ck_assert_int_eq(walls_pool_stats(pool, &st), 0);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    teardown_target();
}
END_TEST

START_TEST(test_battery_unsandboxed)
{
    setup_target();
    /* A fresh worker for every attack: some change the worker for good. */
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1, .recycle_after = 1};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    for (size_t i = 0; i < NATTACKS; i++) {
        const struct attack *a = &attacks[i];
        make_victim_file();
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, a->fn, &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        if (a->optional && r.status == WALLS_FAILED && r.status != a->plain) {
            printf("test_sandbox: \"%s\" cannot succeed here even without a sandbox: %s\n",
                   a->what, strerror(r.code));
        } else {
            ck_assert_msg(r.status == a->plain, "%s without a sandbox: %s/%d, expected %s",
                          a->what, walls_status_name(r.status), r.code,
                          walls_status_name(a->plain));
            if (a->plain == WALLS_CRASHED)
                ck_assert_int_eq(r.code, a->code);
            if (a->plain == WALLS_EXITED)
                ck_assert_int_eq(r.code, 0);
        }
        walls_task_free(t);
    }
    char path[200];
    snprintf(path, sizeof path, "%s/created", target.dir);
    ck_assert_int_eq(access(path, F_OK), 0); /* it really wrote */
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    teardown_target();
}
END_TEST

/* ---- permission groups -------------------------------------------------- */

static int t_read_path(struct walls_call *c)
{
    char path[WALLS_INLINE_MAX + 1];
    memcpy(path, c->in, c->in_len);
    path[c->in_len] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    ssize_t n = read(fd, c->out, c->out_cap);
    close(fd);
    if (n < 0)
        return errno;
    c->out_len = (size_t)n;
    return 0;
}

static int t_write_path(struct walls_call *c)
{
    char path[WALLS_INLINE_MAX + 1];
    memcpy(path, c->in, c->in_len);
    path[c->in_len] = '\0';
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int t_list_path(struct walls_call *c)
{
    char path[WALLS_INLINE_MAX + 1];
    memcpy(path, c->in, c->in_len);
    path[c->in_len] = '\0';
    DIR *d = opendir(path);
    if (!d)
        return errno;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    memcpy(c->out, &n, sizeof n);
    c->out_len = sizeof n;
    return 0;
}

static void run_path(walls_pool *pool, walls_fn *fn, const char *path, struct walls_result *r,
                     walls_task **t)
{
    ck_assert_int_eq(walls_submit(pool, fn, path, strlen(path), t), 0);
    ck_assert_int_eq(walls_wait(*t, 30000, r), 0);
}

START_TEST(test_read_files_group)
{
    unsigned layers;
    ck_assert_int_gt(walls_sandbox_probe(&layers, NULL, 0), 0);
    if (!(layers & WALLS_LAYER_LANDLOCK)) {
        printf("test_sandbox: skipping the read-files group: the kernel has no Landlock\n");
        return;
    }
    char dir[] = "/tmp/walls-ro-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0755), 0); /* readable by uid 65534 */
    char file[64], outside[64];
    snprintf(file, sizeof file, "%s/data", dir);
    snprintf(outside, sizeof outside, "%s-outside", dir);
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? outside : file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "payload", 7), 7);
        close(fd);
    }
    const char *paths[] = {dir, NULL};
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .sandbox_allow = WALLS_ALLOW_READ_FILES,
                                .sandbox_read_paths = paths};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[640];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_msg(strstr(line, "landlock") && strstr(line, "reading under 1 path"), "%s", line);
    struct walls_result r;
    walls_task *t;
    /* Inside: readable, and the directory can be listed. */
    run_path(pool, t_read_path, file, &r, &t);
    ck_assert_msg(r.status == WALLS_OK && r.out_len == 7 && memcmp(r.out, "payload", 7) == 0,
                  "read inside: %s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    run_path(pool, t_list_path, dir, &r, &t);
    ck_assert_int_eq(r.status, WALLS_OK);
    walls_task_free(t);
    /* Outside: Landlock refuses, the task sees EACCES and carries on. */
    run_path(pool, t_read_path, outside, &r, &t);
    ck_assert_msg(r.status == WALLS_FAILED && r.code == EACCES, "read outside: %s/%d",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    run_path(pool, t_read_path, "/etc/hostname", &r, &t);
    ck_assert_msg(r.status == WALLS_FAILED && r.code == EACCES, "read /etc: %s/%d",
                  walls_status_name(r.status), r.code);
    walls_task_free(t);
    /* Writing, even inside, is no read-only open: the filter stops it. */
    run_path(pool, t_write_path, file, &r, &t);
    ck_assert_msg(r.status == WALLS_VIOLATION && strcmp(walls_syscall_name(r.code), "openat") == 0,
                  "write inside: %s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    /* The group widens only files: sockets stay refused. */
    ck_assert_int_eq(walls_submit(pool, a_udp_socket, &target, sizeof target, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* Without the group the same read is a violation. */
    o.sandbox_allow = 0;
    o.sandbox_read_paths = NULL;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    run_path(pool, t_read_path, file, &r, &t);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* A path that does not exist fails the pool with the worker's error. */
    const char *missing[] = {"/nonexistent/walls", NULL};
    o.sandbox_allow = WALLS_ALLOW_READ_FILES;
    o.sandbox_read_paths = missing;
    ck_assert_int_eq(walls_pool_create(&pool, &o), -ENOENT);
    unlink(file);
    unlink(outside);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static int t_send_hello(struct walls_call *c)
{
    int port;
    memcpy(&port, c->in, sizeof port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = 0;
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0 || send(s, "hello", 5, 0) != 5)
        rc = errno ? errno : EIO;
    close(s);
    return rc;
}

START_TEST(test_network_group)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    int port = ntohs(sa.sin_port);
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .sandbox_allow = WALLS_ALLOW_NETWORK};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    char line[640];
    ck_assert_int_gt(walls_pool_explain(pool, line, sizeof line), 0);
    ck_assert_msg(strstr(line, "allows: network") && !strstr(line, "network ns"), "%s", line);
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, t_send_hello, &port, sizeof port, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_msg(r.status == WALLS_OK, "connect: %s/%d", walls_status_name(r.status), r.code);
    walls_task_free(t);
    int conn = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(conn, 0);
    char buf[8] = {0};
    ck_assert_int_eq(recv(conn, buf, sizeof buf, 0), 5);
    ck_assert_str_eq(buf, "hello");
    close(conn);
    /* Still no UNIX sockets, files or processes. */
    walls_fn *still[] = {a_socketpair, a_open_read, a_fork};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(walls_submit(pool, still[i], &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_VIOLATION);
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    /* Without the group: a network namespace of its own, and no sockets. */
    o.sandbox_allow = 0;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    ck_assert_int_eq(walls_submit(pool, t_send_hello, &port, sizeof port, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    ck_assert_str_eq(walls_syscall_name(r.code), "socket");
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    close(l);
}
END_TEST

/* ---- a kernel that refuses namespaces ----------------------------------- */

/* In a child: a filter that makes unshare() fail with EPERM, as a kernel
 * without user namespaces would. Then strict pools must refuse to start,
 * unless the program allows the fallback, which still filters calls. */
static int refused_namespaces_child(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return 10;
    char line[640];
    unsigned layers = 0;
    if (walls_sandbox_probe(&layers, line, sizeof line) <= 0 || (layers & WALLS_LAYER_USER_NS) ||
        !(layers & WALLS_LAYER_SECCOMP) || !strstr(line, "refused: user ns"))
        return 11;
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                .sandbox = WALLS_SANDBOX_STRICT};
    walls_pool *pool = NULL;
    if (walls_pool_create(&pool, &o) != -ENOTSUP || pool)
        return 12;
    o.sandbox = WALLS_SANDBOX_NONE;
    o.needs = WALLS_NEED_UNTRUSTED;
    if (walls_pool_create(&pool, &o) != -ENOTSUP)
        return 13;
    o.sandbox_fallback = WALLS_SANDBOX_FALLBACK;
    if (walls_pool_create(&pool, &o) != 0)
        return 14;
    if (walls_pool_explain(pool, line, sizeof line) <= 0 || !strstr(line, "sandbox: strict (") ||
        !strstr(line, "fallback, refused by the kernel: user ns"))
        return 15;
    /* The layers it runs under name no namespace. */
    char *active = strstr(line, "sandbox: strict (");
    *strchr(active, ')') = '\0';
    if (strstr(active, "user ns") || strstr(active, "mount ns") || !strstr(active, "seccomp"))
        return 18;
    walls_task *t;
    struct walls_result r;
    int rc = 0;
    if (walls_submit(pool, a_open_read, &target, sizeof target, &t) != 0 ||
        walls_wait(t, 30000, &r) != 0)
        rc = 16;
    else if (r.status != WALLS_VIOLATION || strcmp(walls_syscall_name(r.code), "openat") != 0)
        rc = 17;
    walls_task_free(t);
    walls_pool_destroy(pool, 0);
    return rc;
}

START_TEST(test_refused_layer_and_fallback)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(refused_namespaces_child());
    ck_assert_int_gt(pid, 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended %d (see the step numbers)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}
END_TEST

/* ---- int arguments: the low 32 bits, as the kernel reads them ------------ */

/* Each passes garbage in the upper half of an argument the kernel reads as
 * an int: the kernel acts on the low half, so the filter must judge the
 * low half too. 0 = the call succeeded. */
#define HIGH (1L << 32)

static int g_futex_wake(struct walls_call *c)
{
    (void)c;
    static uint32_t word;
    return syscall(SYS_futex, &word, (long)FUTEX_WAKE_PRIVATE | HIGH, 1, NULL, NULL, 0) < 0
               ? FAIL_ERRNO
               : 0;
}

static int g_futex_pi(struct walls_call *c)
{
    (void)c;
    static uint32_t word;
    if (syscall(SYS_futex, &word, (long)FUTEX_LOCK_PI_PRIVATE | HIGH, 0, NULL, NULL, 0) != 0)
        return FAIL_ERRNO;
    syscall(SYS_futex, &word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL, NULL, 0);
    return 0;
}

static int g_tgkill_self(struct walls_call *c)
{
    (void)c;
    return syscall(SYS_tgkill, (long)getpid() | HIGH, (long)gettid(), 0) == 0 ? 0 : FAIL_ERRNO;
}

static int g_tgkill_host(struct walls_call *c)
{
    const struct target *t = T(c);
    return syscall(SYS_tgkill, (long)t->host | HIGH, (long)t->host, 0) == 0 ? 0 : FAIL_ERRNO;
}

static int g_socket_inet(struct walls_call *c)
{
    (void)c;
    long fd = syscall(SYS_socket, (long)AF_INET | HIGH, (long)SOCK_DGRAM, 0L);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int g_socket_unix(struct walls_call *c)
{
    (void)c;
    long fd = syscall(SYS_socket, (long)AF_UNIX | HIGH, (long)SOCK_DGRAM, 0L);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int g_fcntl(struct walls_call *c, long cmd, long arg)
{
    (void)c;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return FAIL_ERRNO;
    long rc = syscall(SYS_fcntl, (long)fd, cmd, arg);
    int err = errno;
    close(fd);
    return rc < 0 ? (err ? err : 1) : 0;
}

static int g_fcntl_getfd(struct walls_call *c)
{
    return g_fcntl(c, (long)F_GETFD | HIGH, 0);
}

static int g_fcntl_setown(struct walls_call *c)
{
    return g_fcntl(c, (long)F_SETOWN | HIGH, (long)getpid());
}

static int g_fcntl_async(struct walls_call *c)
{
    return g_fcntl(c, (long)F_SETFL, (long)O_ASYNC | HIGH);
}

static int g_open_write(struct walls_call *c)
{
    const struct target *t = T(c);
    char path[200];
    snprintf(path, sizeof path, "%s/victim", t->dir);
    long fd = syscall(SYS_openat, (long)AT_FDCWD, path, (long)O_WRONLY | HIGH, 0L);
    if (fd < 0)
        return FAIL_ERRNO;
    close((int)fd);
    return 0;
}

static int g_mmap_exec(struct walls_call *c)
{
    (void)c;
    void *p = (void *)syscall(SYS_mmap, NULL, 4096L, (long)(PROT_READ | PROT_EXEC) | HIGH,
                              (long)(MAP_PRIVATE | MAP_ANONYMOUS), -1L, 0L);
    if (p == MAP_FAILED)
        return FAIL_ERRNO;
    munmap(p, 4096);
    return 0;
}

START_TEST(test_int_arguments)
{
    static const struct {
        const char *what;
        walls_fn *fn;
        const char *refused; /* NULL: allowed despite the garbage */
    } cases[] = {
        {"futex FUTEX_WAKE", g_futex_wake, NULL},
        {"futex FUTEX_LOCK_PI", g_futex_pi, "futex"},
        {"tgkill itself", g_tgkill_self, NULL},
        {"tgkill the host", g_tgkill_host, "tgkill"},
        {"socket AF_INET", g_socket_inet, NULL},
        {"socket AF_UNIX", g_socket_unix, "socket"},
        {"fcntl F_GETFD", g_fcntl_getfd, NULL},
        {"fcntl F_SETOWN", g_fcntl_setown, "fcntl"},
        {"fcntl F_SETFL O_ASYNC", g_fcntl_async, "fcntl"},
        {"openat O_WRONLY", g_open_write, "openat"},
        {"mmap PROT_EXEC", g_mmap_exec, "mmap"},
    };
    setup_target();
    make_victim_file();
    /* Without a sandbox every call succeeds: the kernel reads the low half,
     * so each refusal below is about the call the kernel would make. */
    walls_pool *plain;
    struct walls_pool_opts po = {.placement = WALLS_PROCESSES, .processes = 1};
    ck_assert_int_eq(walls_pool_create(&plain, &po), 0);
    /* Strict with both groups: every rule with arguments is in the filter. */
    static const char *const paths[] = {"/tmp", NULL};
    struct walls_pool_opts so = {.placement = WALLS_PROCESSES, .processes = 1,
                                 .sandbox = WALLS_SANDBOX_STRICT,
                                 .sandbox_allow = WALLS_ALLOW_NETWORK | WALLS_ALLOW_READ_FILES,
                                 .sandbox_read_paths = paths, .sandbox_fallback = 1};
    walls_pool *strict;
    int rc = walls_pool_create(&strict, &so);
    ck_assert_msg(rc == 0, "strict pool with groups: %s", walls_strerror(rc));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(plain, cases[i].fn, &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        ck_assert_msg(r.status == WALLS_OK, "%s without a sandbox: %s/%d", cases[i].what,
                      walls_status_name(r.status), r.code);
        walls_task_free(t);
        ck_assert_int_eq(walls_submit(strict, cases[i].fn, &target, sizeof target, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        if (cases[i].refused)
            ck_assert_msg(r.status == WALLS_VIOLATION &&
                              strcmp(walls_syscall_name(r.code), cases[i].refused) == 0,
                          "%s with garbage high bits: %s/%d (%s), expected a violation of %s",
                          cases[i].what, walls_status_name(r.status), r.code,
                          r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "",
                          cases[i].refused);
        else
            ck_assert_msg(r.status == WALLS_OK, "%s with garbage high bits: %s/%d (%s)",
                          cases[i].what, walls_status_name(r.status), r.code,
                          r.status == WALLS_VIOLATION ? walls_syscall_name(r.code) : "");
        walls_task_free(t);
    }
    ck_assert_int_eq(walls_pool_destroy(strict, 0), 0);
    ck_assert_int_eq(walls_pool_destroy(plain, 0), 0);
    teardown_target();
}
END_TEST

/* ---- hybrid workers ------------------------------------------------------ */

START_TEST(test_hybrid_strict)
{
    struct walls_pool_opts o = {.placement = WALLS_HYBRID, .processes = 1, .threads = 3,
                                .needs = WALLS_NEED_UNTRUSTED};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    walls_task *t[4];
    struct walls_result r;
    static const char hello[] = "hi";
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(walls_submit(pool, t_echo, hello, sizeof hello, &t[i]), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(walls_wait(t[i], 30000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        walls_task_free(t[i]);
    }
    ck_assert_int_eq(walls_submit(pool, a_unshare, &target, sizeof target, &t[3]), 0);
    ck_assert_int_eq(walls_wait(t[3], 30000, &r), 0);
    ck_assert_int_eq(r.status, WALLS_VIOLATION);
    ck_assert_str_eq(walls_syscall_name(r.code), "unshare");
    walls_task_free(t[3]);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
}
END_TEST

START_TEST(test_nothing_left_behind)
{
    int fds = count_fds();
    walls_pool *pool = strict_pool();
    walls_task *t;
    struct walls_result r;
    ck_assert_int_eq(walls_submit(pool, a_fork, &target, sizeof target, &t), 0);
    ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
    walls_task_free(t);
    ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    ck_assert_int_eq(wait_no_children(5000), 0);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_int_eq(count_shm(), 0);
}
END_TEST

/* One line of /proc/<pid>/status, after its "Name:" and the tab. */
static bool status_field(pid_t pid, const char *name, char *out, size_t len)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    size_t n = strlen(name);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == '\t' || *v == ' ')
                v++;
            snprintf(out, len, "%s", v);
            out[strcspn(out, "\n")] = '\0';
            found = true;
        }
    }
    fclose(f);
    return found;
}

static bool same_ns(pid_t pid, const char *ns)
{
    char a[64], b[64], la[128] = "", lb[128] = "";
    snprintf(a, sizeof a, "/proc/%d/ns/%s", (int)pid, ns);
    snprintf(b, sizeof b, "/proc/self/ns/%s", ns);
    ck_assert_int_gt(readlink(a, la, sizeof la - 1), 0);
    ck_assert_int_gt(readlink(b, lb, sizeof lb - 1), 0);
    return strcmp(la, lb) == 0;
}

/* What a worker really runs with, read by the host from /proc: the strict
 * level's namespaces, credentials and filter, which no attack above can
 * tell from the seccomp level's. */
START_TEST(test_worker_credentials)
{
    static const char *const spaces[] = {"user", "net", "ipc", "mnt", "uts"};
    for (int strict = 0; strict < 2; strict++) {
        struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 1,
                                    .sandbox = strict ? WALLS_SANDBOX_STRICT
                                                      : WALLS_SANDBOX_SECCOMP};
        walls_pool *pool;
        ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
        walls_task *t;
        struct walls_result r;
        ck_assert_int_eq(walls_submit(pool, t_pid, NULL, 0, &t), 0);
        ck_assert_int_eq(walls_wait(t, 30000, &r), 0);
        ck_assert_int_eq(r.status, WALLS_OK);
        pid_t pid;
        ck_assert_uint_eq(r.out_len, sizeof pid);
        memcpy(&pid, r.out, sizeof pid);
        walls_task_free(t);
        char v[128];
        ck_assert(status_field(pid, "NoNewPrivs", v, sizeof v));
        ck_assert_str_eq(v, "1");
        ck_assert(status_field(pid, "Seccomp", v, sizeof v));
        ck_assert_str_eq(v, "2");
        ck_assert(status_field(pid, "CapEff", v, sizeof v));
        if (strict || geteuid() != 0)
            ck_assert_str_eq(v, "0000000000000000");
        if (strict && geteuid() == 0) {
            ck_assert(status_field(pid, "Uid", v, sizeof v));
            ck_assert_str_eq(v, "65534\t65534\t65534\t65534");
            ck_assert(status_field(pid, "Gid", v, sizeof v));
            ck_assert_str_eq(v, "65534\t65534\t65534\t65534");
            ck_assert(status_field(pid, "CapBnd", v, sizeof v));
            ck_assert_str_eq(v, "0000000000000000");
        }
        for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
            ck_assert_msg(same_ns(pid, spaces[i]) == !strict, "%s worker, %s namespace",
                          strict ? "strict" : "seccomp", spaces[i]);
        ck_assert_int_eq(walls_pool_destroy(pool, 0), 0);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("strict");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_battery_strict);
    tcase_add_test(tc, test_battery_unsandboxed);
    tcase_add_test(tc, test_read_files_group);
    tcase_add_test(tc, test_network_group);
    tcase_add_test(tc, test_int_arguments);
    tcase_add_test(tc, test_refused_layer_and_fallback);
    tcase_add_test(tc, test_hybrid_strict);
    tcase_add_test(tc, test_nothing_left_behind);
    tcase_add_test(tc, test_worker_credentials);
    suite_add_tcase(s, tc);
    return s;
}

/* Probed in a child, so that the tests (forked from here) probe afresh. */
static int probe_child(void)
{
    unsigned layers = 0;
    char line[512];
    int rc = walls_sandbox_probe(&layers, line, sizeof line);
    if (rc < 0) {
        printf("test_sandbox: skipped: cannot probe the sandbox: %s\n", walls_strerror(rc));
        return 77;
    }
    if ((layers & STRICT_LAYERS) != STRICT_LAYERS) {
        printf("test_sandbox: skipped: the kernel refuses part of the strict sandbox (%s)\n",
               line);
        return 77;
    }
    return 0;
}

int main(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = probe_child();
        fflush(stdout); /* the reason for a skip must reach the log */
        _exit(rc);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return EXIT_FAILURE;
    if (WEXITSTATUS(st) != 0)
        return WEXITSTATUS(st);
    return run_suite(suite());
}
