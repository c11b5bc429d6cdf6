/*
 * pingpong.c - the cost of talking: one byte, or one turn, passed from one
 * side to the other and back, between two threads or two processes.
 *
 * Both sides run the same round, with the roles swapped: the initiator
 * hands the turn over and then waits for it to come back; the responder
 * waits for the turn and then hands it back. Only the two steps, handing
 * over and waiting, differ by kind of channel (a table gives them), and
 * each channel names its ends per side, so one piece of code serves both
 * directions.
 *
 * A process partner is forked with no threads of the measuring program
 * running in it, and exits when its rounds are done.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum side { INITIATOR, RESPONDER };

struct pingpong {
    enum pingpong_kind kind;
    long rounds;         /* rounds the responder answers */
    pthread_mutex_t mu;  /* PINGPONG_MUTEX */
    pthread_cond_t cv;
    uint32_t turn;       /* PINGPONG_MUTEX: whose turn it is, an enum side */
    uint32_t local;      /* PINGPONG_FUTEX's word */
    uint32_t *word;      /* the futex word, an enum side: &local, or a MAP_SHARED page */
    int wait_op, wake_op; /* private futex operations, unless the word is shared */
    int send_fd[2];      /* per side: where it writes its byte */
    int recv_fd[2];      /* per side: where it reads the other's byte */
    int fds[4];          /* every descriptor opened, to close */
};

static uint32_t load_acquire(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Publishes everything written before the store to whoever loads it. */
static void store_release(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void futex_op(uint32_t *word, int op, uint32_t val)
{
    syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static int rw_byte(int fd, bool write_it)
{
    char c = 'x';
    for (;;) {
        ssize_t n = write_it ? write(fd, &c, 1) : read(fd, &c, 1);
        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -EIO;
    }
}

static enum side other_side(enum side me)
{
    return me == INITIATOR ? RESPONDER : INITIATOR;
}

/* The two steps of a round, for each kind of channel. PINGPONG_MUTEX's run
 * with the mutex held. */
static int mutex_hand_over(struct pingpong *pp, enum side me)
{
    pp->turn = other_side(me);
    pthread_cond_signal(&pp->cv);
    return 0;
}

static int mutex_await(struct pingpong *pp, enum side me)
{
    while (pp->turn != me)
        pthread_cond_wait(&pp->cv, &pp->mu);
    return 0;
}

static int futex_hand_over(struct pingpong *pp, enum side me)
{
    store_release(pp->word, other_side(me));
    futex_op(pp->word, pp->wake_op, 1);
    return 0;
}

/* Sleeps only while the word still says it is the other side's turn. */
static int futex_await(struct pingpong *pp, enum side me)
{
    while (load_acquire(pp->word) != me)
        futex_op(pp->word, pp->wait_op, other_side(me));
    return 0;
}

static int fd_hand_over(struct pingpong *pp, enum side me)
{
    return rw_byte(pp->send_fd[me], true);
}

static int fd_await(struct pingpong *pp, enum side me)
{
    return rw_byte(pp->recv_fd[me], false);
}

static const struct channel {
    int (*hand_over)(struct pingpong *pp, enum side me); /* gives the turn to the other side */
    int (*await_turn)(struct pingpong *pp, enum side me); /* waits until the turn is me's */
} channels[] = {
    [PINGPONG_MUTEX] = {mutex_hand_over, mutex_await},
    [PINGPONG_FUTEX] = {futex_hand_over, futex_await},
    [PINGPONG_PIPE] = {fd_hand_over, fd_await},
    [PINGPONG_SOCKET] = {fd_hand_over, fd_await},
    [PINGPONG_SHARED_FUTEX] = {futex_hand_over, futex_await},
};

/* One round trip from either side; the mutex is held for the whole of it. */
static int round_trip(struct pingpong *pp, enum side me)
{
    const struct channel *ch = &channels[pp->kind];
    if (pp->kind == PINGPONG_MUTEX)
        pthread_mutex_lock(&pp->mu);
    int rc = me == INITIATOR ? ch->hand_over(pp, me) : 0;
    if (rc == 0)
        rc = ch->await_turn(pp, me);
    if (rc == 0 && me == RESPONDER)
        rc = ch->hand_over(pp, me);
    if (pp->kind == PINGPONG_MUTEX)
        pthread_mutex_unlock(&pp->mu);
    return rc;
}

static void *responder_thread(void *arg)
{
    struct pingpong *pp = arg;
    for (long i = 0; i < pp->rounds; i++)
        if (round_trip(pp, RESPONDER) != 0)
            break;
    return NULL;
}

bool pingpong_between_processes(enum pingpong_kind kind)
{
    return kind == PINGPONG_PIPE || kind == PINGPONG_SOCKET || kind == PINGPONG_SHARED_FUTEX;
}

/* Opens the channel; on failure whatever was opened stays in pp->fds. */
static int open_channel(struct pingpong *pp)
{
    switch (pp->kind) {
    case PINGPONG_MUTEX:
        pthread_mutex_init(&pp->mu, NULL);
        pthread_cond_init(&pp->cv, NULL);
        return 0;
    case PINGPONG_FUTEX:
        pp->wait_op = FUTEX_WAIT_PRIVATE;
        pp->wake_op = FUTEX_WAKE_PRIVATE;
        return 0;
    case PINGPONG_SHARED_FUTEX: {
        void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return -errno;
        pp->word = page;
        pp->wait_op = FUTEX_WAIT;
        pp->wake_op = FUTEX_WAKE;
        return 0;
    }
    case PINGPONG_PIPE:
        /* fds[0] -> fds[1] carries the ping, fds[2] -> fds[3] the pong. */
        if (pipe2(pp->fds, O_CLOEXEC) != 0 || pipe2(pp->fds + 2, O_CLOEXEC) != 0)
            return -errno;
        pp->send_fd[INITIATOR] = pp->fds[1];
        pp->recv_fd[INITIATOR] = pp->fds[2];
        pp->send_fd[RESPONDER] = pp->fds[3];
        pp->recv_fd[RESPONDER] = pp->fds[0];
        return 0;
    case PINGPONG_SOCKET:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pp->fds) != 0)
            return -errno;
        pp->send_fd[INITIATOR] = pp->recv_fd[INITIATOR] = pp->fds[0];
        pp->send_fd[RESPONDER] = pp->recv_fd[RESPONDER] = pp->fds[1];
        return 0;
    }
    return -EINVAL;
}

static void close_channel(struct pingpong *pp)
{
    for (int i = 0; i < 4; i++)
        if (pp->fds[i] >= 0)
            close(pp->fds[i]);
    if (pp->word != &pp->local)
        munmap(pp->word, 4096);
    if (pp->kind == PINGPONG_MUTEX) {
        pthread_mutex_destroy(&pp->mu);
        pthread_cond_destroy(&pp->cv);
    }
}

int pingpong_measure(enum pingpong_kind kind, int iters, int batches, struct summary *s)
{
    struct pingpong pp;
    memset(&pp, 0, sizeof pp);
    pp.kind = kind;
    pp.rounds = (long)iters * (batches + 1);
    for (int i = 0; i < 4; i++)
        pp.fds[i] = -1;
    pp.word = &pp.local;
    bool process = pingpong_between_processes(kind);
    int rc = open_channel(&pp);

    double *v = calloc((size_t)batches, sizeof *v);
    pthread_t thread;
    pid_t pid = -1;
    if (rc == 0 && !v)
        rc = -ENOMEM;
    if (rc == 0 && process) {
        pid = fork();
        if (pid < 0) {
            rc = -errno;
        } else if (pid == 0) {
            for (long i = 0; i < pp.rounds; i++)
                if (round_trip(&pp, RESPONDER) != 0)
                    _exit(1);
            _exit(0);
        }
    } else if (rc == 0) {
        rc = -pthread_create(&thread, NULL, responder_thread, &pp);
    }
    if (rc == 0) {
        for (int i = 0; rc == 0 && i < iters; i++)
            rc = round_trip(&pp, INITIATOR);
        for (int bt = 0; rc == 0 && bt < batches; bt++) {
            double t0 = now_ns();
            for (int i = 0; rc == 0 && i < iters; i++)
                rc = round_trip(&pp, INITIATOR);
            v[bt] = (now_ns() - t0) / iters;
        }
        if (process) {
            if (rc != 0)
                kill(pid, SIGKILL);
            wait_child(pid, NULL);
        } else {
            pthread_join(thread, NULL);
        }
    }
    if (rc == 0)
        *s = summarize(v, batches);
    free(v);
    close_channel(&pp);
    return rc;
}
