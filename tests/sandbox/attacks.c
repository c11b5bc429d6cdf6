/*
 * attacks.c - the hostile tasks of the sandbox tests and the target they
 * attack (see attacks.h).
 */
#define _GNU_SOURCE
#include "attacks.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
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
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "mailbox.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* sanitizers reserve terabytes of address space: no RLIMIT_AS fits */
#else
#define SANITIZED 0
#endif

char secret[32] = "the host's secret";

struct target target;

/* ---- the attacks: 0 = it worked ----------------------------------------- */

int a_open_read(struct walls_call *c)
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

int a_fork(struct walls_call *c)
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

int a_udp_socket(struct walls_call *c)
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

int a_socketpair(struct walls_call *c)
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

int a_unshare(struct walls_call *c)
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

int a_spin(struct walls_call *c)
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
int a_int80(struct walls_call *c)
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

bool kernel_has_i386_abi(void)
{
#if defined(__x86_64__)
    /* Where the kernel runs without IA-32 emulation, int 0x80 faults. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(a_int80(NULL) == 0 ? 0 : 1);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return true;
    /* A fault kills the child, or a sanitizer's handler ends it nonzero. */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
#else
    return false;
#endif
}

int a_x32(struct walls_call *c)
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

const struct attack attacks[] = {
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
const size_t n_attacks = sizeof attacks / sizeof attacks[0];

/* ---- the test process's side ------------------------------------------ */

static int listener = -1;

void setup_target(void)
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

void teardown_target(void)
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

void make_victim_file(void)
{
    char path[200];
    snprintf(path, sizeof path, "%s/victim", target.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

walls_pool *strict_pool(void)
{
    struct walls_pool_opts o = {.placement = WALLS_PROCESSES, .processes = 2,
                                .sandbox = WALLS_SANDBOX_STRICT,
                                .worker_memory_limit = SANITIZED ? 0 : (size_t)128 << 20};
    walls_pool *pool;
    ck_assert_int_eq(walls_pool_create(&pool, &o), 0);
    return pool;
}
