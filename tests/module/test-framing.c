/*
 * test-framing.c - the fork server's message framing (walls__msg_send and
 * walls__msg_recv in src/forkserver_proto.c) on its own, over a SOCK_SEQPACKET
 * socket pair: a message with 0 to WALLS__MSG_MAX_FDS descriptors arrives
 * whole, its descriptors new, in order and close-on-exec; descriptors
 * beyond the number asked for are closed; a truncated or oversized message
 * is refused with -EPROTO and whatever descriptors came with it are
 * closed; an empty socket gives -EAGAIN without blocking, a descriptor
 * that is not open -EBADF, and a closed peer -EPIPE on both sides. No test
 * may leave a descriptor open (count_fds()).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "forkserver.h"

static void socket_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

/* n descriptors told apart by their size: descriptor i is (i + 1) pages. */
static void make_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = memfd_create("walls-test-fs", MFD_CLOEXEC);
        ck_assert_int_ge(fds[i], 0);
        ck_assert_int_eq(ftruncate(fds[i], (off_t)(i + 1) * 4096), 0);
    }
}

static void close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(close(fds[i]), 0);
}

static off_t size_of(int fd)
{
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    return st.st_size;
}

/* Sends len bytes with n descriptors (up to 16), bypassing walls__msg_send's
 * framing and its limit. */
static void send_raw(int sock, const void *buf, size_t len, const int *fds, int n)
{
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ck_assert_int_le(n, 16);
    if (n > 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
    }
    ck_assert_int_eq(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static const struct walls__msg sample = {
    .type = WALLS__MSG_SPAWNED, .worker = 7, .pid = 4242, .err = -ENOMEM,
    .exit_how = 2, .exit_status = 9,
};

START_TEST(test_message_with_descriptors)
{
    int fds_before = count_fds();
    int sv[2];
    socket_pair(sv);
    for (int n = 0; n <= WALLS__MSG_MAX_FDS; n++) {
        int sent[WALLS__MSG_MAX_FDS], got[WALLS__MSG_MAX_FDS];
        make_fds(sent, n);
        struct walls__msg msg = sample, in;
        msg.worker = (uint32_t)n;
        ck_assert_int_eq(walls__msg_send(sv[0], &msg, sent, n), 0);
        int nfds = WALLS__MSG_MAX_FDS;
        memset(&in, 0, sizeof in);
        ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), 0);
        ck_assert_int_eq(nfds, n);
        ck_assert_msg(memcmp(&in, &msg, sizeof msg) == 0, "%d descriptors: message changed", n);
        for (int i = 0; i < n; i++) {
            ck_assert_int_ne(got[i], sent[i]);
            ck_assert_int_eq(size_of(got[i]), (off_t)(i + 1) * 4096); /* in order */
            ck_assert_int_eq(fcntl(got[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        }
        close_fds(got, n);
        close_fds(sent, n);
    }
    close_fds(sv, 2);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

START_TEST(test_extra_descriptors_closed)
{
    int fds_before = count_fds();
    int sv[2], sent[WALLS__MSG_MAX_FDS], got[WALLS__MSG_MAX_FDS];
    socket_pair(sv);
    make_fds(sent, WALLS__MSG_MAX_FDS);
    struct walls__msg in;
    /* Two asked for: the first two kept, the others closed. */
    ck_assert_int_eq(walls__msg_send(sv[0], &sample, sent, WALLS__MSG_MAX_FDS), 0);
    int nfds = 2;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), 0);
    ck_assert_int_eq(nfds, 2);
    ck_assert_int_eq(size_of(got[0]), 4096);
    ck_assert_int_eq(size_of(got[1]), 2 * 4096);
    ck_assert_int_eq(count_fds(), fds_before + 2 + WALLS__MSG_MAX_FDS + 2);
    close_fds(got, 2);
    /* None asked for: all closed. */
    ck_assert_int_eq(walls__msg_send(sv[0], &sample, sent, WALLS__MSG_MAX_FDS), 0);
    nfds = 0;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, NULL, &nfds, false), 0);
    ck_assert_int_eq(nfds, 0);
    ck_assert_int_eq(memcmp(&in, &sample, sizeof in), 0);
    close_fds(sent, WALLS__MSG_MAX_FDS);
    close_fds(sv, 2);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

/* A whole message whose descriptor this process has no room for (its
 * RLIMIT_NOFILE reached): -EMFILE, the message itself read, nothing kept
 * open, and the socket still usable. */
START_TEST(test_no_room_for_descriptors)
{
    int fds_before = count_fds();
    int sv[2], sent[1], got[WALLS__MSG_MAX_FDS];
    socket_pair(sv);
    make_fds(sent, 1);
    send_raw(sv[0], &sample, sizeof sample, sent, 1);
    int lowest = 0;
    while (fcntl(lowest, F_GETFD) >= 0)
        lowest++;
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = (struct rlimit){(rlim_t)lowest, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct walls__msg in;
    memset(&in, 0, sizeof in);
    int nfds = WALLS__MSG_MAX_FDS;
    int rc = walls__msg_recv(sv[1], &in, got, &nfds, false);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert_int_eq(rc, -EMFILE);
    ck_assert_int_eq(nfds, 0);
    ck_assert_int_eq(memcmp(&in, &sample, sizeof in), 0);
    /* The next message comes whole. */
    send_raw(sv[0], &sample, sizeof sample, sent, 1);
    nfds = WALLS__MSG_MAX_FDS;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), 0);
    ck_assert_int_eq(nfds, 1);
    close_fds(got, nfds);
    close_fds(sent, 1);
    close_fds(sv, 2);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

/* A hostile peer sends more descriptors than the protocol has: the one
 * that fits the buffer's padding beside the limit, or many more. None of
 * them stays open. */
START_TEST(test_too_many_descriptors)
{
    int fds_before = count_fds();
    int sv[2], sent[16], got[WALLS__MSG_MAX_FDS];
    socket_pair(sv);
    make_fds(sent, 16);
    static const int counts[] = {WALLS__MSG_MAX_FDS + 1, 16};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        send_raw(sv[0], &sample, sizeof sample, sent, counts[k]);
        struct walls__msg in;
        int nfds = WALLS__MSG_MAX_FDS;
        int rc = walls__msg_recv(sv[1], &in, got, &nfds, false);
        ck_assert_msg(rc == 0 || rc == -EPROTO, "%d descriptors: %d", counts[k], rc);
        close_fds(got, nfds);
        ck_assert_msg(count_fds() == fds_before + 2 + 16, "%d descriptors: %d left open",
                      counts[k], count_fds() - fds_before - 2 - 16);
    }
    close_fds(sent, 16);
    close_fds(sv, 2);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

START_TEST(test_malformed_refused)
{
    int fds_before = count_fds();
    int sv[2], sent[WALLS__MSG_MAX_FDS], got[WALLS__MSG_MAX_FDS];
    socket_pair(sv);
    make_fds(sent, WALLS__MSG_MAX_FDS);
    char buf[sizeof(struct walls__msg) + 16];
    memset(buf, 0x5a, sizeof buf);
    memcpy(buf, &sample, sizeof sample);
    static const struct {
        const char *what;
        size_t len;
        int nfds;
    } cases[] = {
        {"half a message", sizeof(struct walls__msg) / 2, 3},
        {"one byte short", sizeof(struct walls__msg) - 1, WALLS__MSG_MAX_FDS},
        {"16 bytes too long", sizeof(struct walls__msg) + 16, 3},
        {"one byte too long", sizeof(struct walls__msg) + 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        send_raw(sv[0], buf, cases[i].len, sent, cases[i].nfds);
        struct walls__msg in;
        int nfds = WALLS__MSG_MAX_FDS;
        int rc = walls__msg_recv(sv[1], &in, got, &nfds, false);
        ck_assert_msg(rc == -EPROTO, "%s: %d (%s)", cases[i].what, rc, strerror(-rc));
        ck_assert_msg(nfds == 0, "%s: %d descriptors handed out", cases[i].what, nfds);
        /* Whatever came with it was closed. */
        ck_assert_msg(count_fds() == fds_before + 2 + WALLS__MSG_MAX_FDS,
                      "%s: %d descriptors open, expected %d", cases[i].what, count_fds(),
                      fds_before + 2 + WALLS__MSG_MAX_FDS);
    }
    /* The socket still carries good messages after bad ones. */
    ck_assert_int_eq(walls__msg_send(sv[0], &sample, sent, 1), 0);
    int nfds = 1;
    struct walls__msg in;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), 0);
    ck_assert_int_eq(nfds, 1);
    close_fds(got, 1);
    close_fds(sent, WALLS__MSG_MAX_FDS);
    close_fds(sv, 2);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

START_TEST(test_empty_and_closed)
{
    int fds_before = count_fds();
    int sv[2], got[1];
    socket_pair(sv);
    struct walls__msg in;
    int nfds = 1;
    /* Nothing there: -EAGAIN at once, nothing handed out. */
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), -EAGAIN);
    ck_assert_int_eq(nfds, 0);
    /* A descriptor that is not open: -EBADF, and nothing was sent. */
    int closed = dup(sv[0]);
    ck_assert_int_ge(closed, 0);
    ck_assert_int_eq(close(closed), 0);
    ck_assert_int_eq(walls__msg_send(sv[0], &sample, &closed, 1), -EBADF);
    nfds = 1;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), -EAGAIN);
    /* A message sent before the peer closed still arrives; then the end. */
    ck_assert_int_eq(walls__msg_send(sv[0], &sample, NULL, 0), 0);
    ck_assert_int_eq(close(sv[0]), 0);
    nfds = 1;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), 0);
    ck_assert_int_eq(nfds, 0);
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, false), -EPIPE);
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, got, &nfds, true), -EPIPE);
    ck_assert_int_eq(close(sv[1]), 0);
    /* Sending to a closed peer: -EPIPE, and no SIGPIPE kills the sender. */
    socket_pair(sv);
    ck_assert_int_eq(close(sv[1]), 0);
    ck_assert_int_eq(walls__msg_send(sv[0], &sample, NULL, 0), -EPIPE);
    ck_assert_int_eq(close(sv[0]), 0);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

static void *send_later(void *arg)
{
    int sock = *(int *)arg;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)walls__msg_send(sock, &sample, NULL, 0);
}

START_TEST(test_blocking_receive)
{
    int fds_before = count_fds();
    int sv[2];
    socket_pair(sv);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, send_later, &sv[0]), 0);
    struct walls__msg in;
    int nfds = 0;
    ck_assert_int_eq(walls__msg_recv(sv[1], &in, NULL, &nfds, true), 0);
    ck_assert_int_eq(memcmp(&in, &sample, sizeof in), 0);
    void *sent;
    ck_assert_int_eq(pthread_join(th, &sent), 0);
    ck_assert_int_eq((int)(intptr_t)sent, 0);
    close_fds(sv, 2);
    ck_assert_int_eq(count_fds(), fds_before);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fork server framing");
    TCase *tc = tcase_create("framing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_message_with_descriptors);
    tcase_add_test(tc, test_extra_descriptors_closed);
    tcase_add_test(tc, test_too_many_descriptors);
    tcase_add_test(tc, test_no_room_for_descriptors);
    tcase_add_test(tc, test_malformed_refused);
    tcase_add_test(tc, test_empty_and_closed);
    tcase_add_test(tc, test_blocking_receive);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
