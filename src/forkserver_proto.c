/*
 * forkserver_proto.c - framing of the fork server's messages: one fixed
 * struct per SOCK_SEQPACKET record, with descriptors as SCM_RIGHTS. Both
 * sides use it; a record of the wrong size, or with truncated control
 * data, is refused and its descriptors closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forkserver.h"

int walls__msg_send(int sock, const struct walls__msg *msg, const int *fds, int nfds)
{
    struct walls__msg copy = *msg;
    struct iovec iov = {.iov_base = &copy, .iov_len = sizeof copy};
    union {
        char buf[CMSG_SPACE(WALLS__MSG_MAX_FDS * sizeof(int))];
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

int walls__msg_recv(int sock, struct walls__msg *msg, int *fds, int *nfds, bool block)
{
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof *msg};
    union {
        char buf[CMSG_SPACE(WALLS__MSG_MAX_FDS * sizeof(int))];
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
    int got = 0, arrived = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        /* Every descriptor that arrived is kept or closed: the buffer's
         * padding can hold one more than WALLS__MSG_MAX_FDS. */
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            arrived++;
            if (got < want)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    *nfds = got;
    if (n != (ssize_t)sizeof *msg || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        for (int i = 0; i < got; i++)
            close(fds[i]);
        *nfds = 0;
        /* The buffer has room for every descriptor a message of the
         * protocol carries: a whole message cut short of that is one whose
         * descriptors the kernel could not install here (RLIMIT_NOFILE);
         * one that filled the buffer came from a peer that sent too many. */
        bool whole = n == (ssize_t)sizeof *msg && !(mh.msg_flags & MSG_TRUNC);
        return whole && arrived < WALLS__MSG_MAX_FDS ? -EMFILE : -EPROTO;
    }
    return 0;
}
