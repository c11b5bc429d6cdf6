/*
 * conn.h - a connection of walls-httpd and the loop that owns it, shared
 * by conn.c (reading, parsing, writing: the connection's state machine),
 * static.c (static files), handler.c (requests for the routes' handlers)
 * and loop.c (the event loops).
 *
 * A connection is touched only by the thread of its loop. Whoever might
 * end it calls conn_close(), which closes the socket at once but leaves
 * the memory to the loop (conn_reap at the end of each turn), so that no
 * caller up the stack is left holding a freed connection.
 */
#ifndef WALLS_HTTPD_CONN_H
#define WALLS_HTTPD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "httpd.h"

#define HEADERS_MAX 100  /* request headers at most (431 past it) */
#define SWEEP_MS 200     /* how often deadlines are looked at */
#define READ_CHUNK 16384

/* READING --a request is complete--> static file:    WRITING
 *                                    a route:        WAITING --its task ends--> WRITING
 * WRITING --all sent--> keep-alive: READING (the bytes already read are parsed first)
 *                       otherwise:  closed */
/* LINGERING: the response is out and the server's side shut; what the
 * client still sends is read and dropped until it closes (conn.c). */
enum conn_state { READING, WAITING, WRITING, LINGERING };

struct buf {
    char *p;
    size_t len, cap;
};

struct conn {
    struct loop *loop;
    int fd;
    struct conn *prev, *next;
    enum conn_state state;
    bool peer_gone;   /* the client closed or failed while its task ran */
    bool client_left; /* its hang-up came while its task waited: the task was cancelled
                       * if it had not started (walls_cancel_ex, WALLS_CANCEL_QUEUED) */
    bool dead;        /* closed; on the loop's dead list, freed at conn_reap */
    bool drained;     /* a read found the socket empty; an event clears it */
    bool peer_closed; /* epoll reported the peer's close (or an error): read to the end */
    struct conn *next_dead;
    bool got;         /* bytes of the current request have arrived */
    char peer[64];
    http_parser parser;
    struct buf in;     /* read, not yet parsed: in.p[in_off..in.len) */
    size_t in_off;
    /* The request being parsed. */
    struct buf url;
    struct buf hdr;    /* name NUL value NUL ... */
    size_t name_at[HEADERS_MAX], value_at[HEADERS_MAX];
    unsigned nheaders;
    bool in_value;
    bool headers_done, message_done;
    struct buf body;
    int error_status;  /* set by a callback that refused the request */
    /* Framing the parser lets pass (conn.c, scan_framing): */
    const char *scan_from; /* the next byte parsed and not yet looked at */
    bool cr_pending;       /* the last framing byte looked at was a CR */
    uint8_t crlf_due;      /* bytes of the CRLF after a chunk's data not yet seen */
    uint64_t chunk_left;   /* bytes of the current chunk's data still to come */
    size_t trailer_bytes;  /* of a chunked body's trailer section */
    bool body_kept;        /* the request is a handler's: its body is kept for it */
    uint64_t body_seen;    /* bytes of the body read, kept or not */
    unsigned ntrailers;
    int64_t deadline_ms; /* READING: headers, or the body's next bytes, not in by then:
                          * 408; WRITING: the client took nothing since: closed */
    int unacked_mark;    /* WRITING: bytes the socket held unacknowledged when the
                          * deadline was set (-1: unknown) */
    /* The response. */
    struct buf out;
    size_t out_sent;
    int file_fd;
    off_t file_off, file_left;
    bool keep_alive, close_after;
    int status;
    uint64_t sent_bytes;
    char line[512];   /* the request line, for the access log */
    char raw[512];    /* the request line as it arrives, across reads (leading empty
                       * lines skipped): logged for a request the parser refused */
    unsigned raw_len;
    bool raw_done;    /* its end arrived */
    bool raw_nul;     /* it holds a NUL byte (raw stops short of the line there) */
    bool raw_waits;   /* an unknown method refused by the parser: answered once the
                       * line is in, so that it is judged, and logged, whole */
    char raw_tail[9]; /* its last 9 bytes: " HTTP/1.1" in a well-formed line */
    unsigned raw_tail_len;
    struct route *route;
    walls_task *task;
    int64_t start_ns;  /* when the request was complete */
    int64_t linger_until_ms; /* LINGERING: closed by then whatever comes */
};

struct loop {
    struct server *srv;
    unsigned index;
    pthread_t thread;
    bool started;
    int ep;
    int listen_fd;
    int wake_fd;          /* eventfd: inbox or stop */
    struct conn *conns;   /* all connections not yet freed */
    struct conn *dead;    /* closed ones, freed at the end of the turn */
    unsigned nconns;      /* [atomic]: /_status reads it from other loops */
    pthread_mutex_t inbox_lock;
    walls_task **inbox;   /* tasks of this loop's connections collected elsewhere */
    size_t inbox_len, inbox_cap;
    bool draining;        /* graceful stop: no more accepts */
    bool accept_paused;   /* out of descriptors: its listening socket is out of its epoll
                           * set until the next sweep */
    int64_t accept_logged_ms; /* when it last said so */
    bool finished;        /* [atomic] its thread left its loop */
    uint64_t turns;       /* [atomic] turns of its loop taken (a reload waits on them) */
};

/* epoll tags: 2 and 4 are the loop's own; an even pointer is a
 * connection; a route's pointer with its low bit set is its pool. */
#define TAG_LISTEN 2u
#define TAG_WAKE 4u
#define TAG_ROUTE 1u

int64_t now_ms(void);

/* ---- buffers (conn.c) ---- */
int buf_reserve(struct buf *b, size_t more);
int buf_add(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

/* ---- connections (conn.c) ---- */
/* A new connection of loop l on socket fd, watched for reading. NULL (the
 * socket closed) when memory runs out. */
struct conn *conn_open(struct loop *l, int fd, const char *peer);
/* Reads, parses, answers and writes as far as it can without blocking. */
void conn_drive(struct conn *c);
/* Ends the connection: the socket now, the memory at conn_reap (or, with
 * a task running, once the task ends). */
void conn_close(struct conn *c);
/* The client left before its response: none is sent; logged 499. */
void conn_client_left(struct conn *c);
/* Whether the client sent the start of another request not read yet (in
 * the buffer or still in the socket): bytes other than empty lines. */
bool conn_unread_request(const struct conn *c);
/* The response could not go out whole (the client left, or took nothing
 * more within the timeout): logged, with the body bytes that went, and
 * counted, then closed. */
void conn_cut_off(struct conn *c);
/* A client that took nothing of its response for the timeout: said in
 * the error log, then cut off. */
void conn_stalled(struct conn *c);
/* At a WRITING deadline: whether the client took bytes since it was set
 * (then it is set again), though the socket has not said it has room. */
bool conn_still_taking(struct conn *c);
/* Frees the loop's closed connections. */
void conn_reap(struct loop *l);
/* Frees the connection now (the loop's end). */
void conn_free(struct conn *c);
/* The response: status, type, extra header lines (each ending in CRLF)
 * and body; sent by the next conn_drive. */
void conn_respond(struct conn *c, int status, const char *type, const char *extra,
                  const void *body, size_t len);
/* A short text response for status; closes after it for the statuses that
 * leave the request stream in doubt. */
void conn_respond_error(struct conn *c, int status);
/* The status line and the headers of every response, into c->out. */
int conn_head(struct conn *c, int status, uint64_t content_length);
/* The value of the request's first header called name, or NULL. */
const char *conn_header(const struct conn *c, const char *name);
const char *conn_header_name(const struct conn *c, unsigned i);
const char *conn_header_value(const struct conn *c, unsigned i);
bool conn_is_head(const struct conn *c);

/* ---- static files (static.c) ---- */
/* Answers a request no route takes, from the root; path is the request's
 * (httpd_normalize_path). */
void static_serve(struct conn *c, const char *path);

/* ---- the server's own pages (status.c) ---- */
void status_start(void);
/* Counts a response of route r that took ns. */
void status_record(struct route *r, int64_t ns);
/* Answers /_status and /_status.html; false for any other path. */
bool status_serve(struct conn *c, const char *path, size_t len);

/* ---- handlers (handler.c) ---- */
/* Hands the request to route r's pool (or answers the failure). */
void handler_submit(struct conn *c, struct route *r);
/* Answers the request with route r's fixed response (a return route). */
void handler_return(struct conn *c, struct route *r);
/* The task of c's request ended: its response, or its failure's. */
void handler_done(struct conn *c, walls_task *task);

#endif
