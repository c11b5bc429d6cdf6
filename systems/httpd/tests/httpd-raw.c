/*
 * httpd-raw - sends the bytes of standard input to 127.0.0.1:PORT as they
 * are, then prints everything the server answers until it closes the
 * connection or stays silent for IDLE_MS (default 2000). For requests no
 * HTTP client would send: malformed ones, slow ones, pipelined ones.
 *
 *   printf 'GET / HTTP/1.1\r\n\r\n' | httpd-raw PORT [IDLE_MS]
 *
 * Exit status: 0 when the server closed the connection, 3 when it was
 * still open at the end, 1 on an error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: httpd-raw PORT [IDLE_MS]\n"), 1;
    int idle = argc > 2 ? atoi(argv[2]) : 2000;
    static char req[1 << 20];
    size_t len = fread(req, 1, sizeof req, stdin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return perror("connect"), 1;
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early (413, 431): print what it said */
        sent += (size_t)n;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, idle) <= 0)
            return 3;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return 0;
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
    }
}
