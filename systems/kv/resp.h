/*
 * resp.h - the Redis protocol (RESP2) for walls-kv: a parser for the
 * commands clients send and writers for the replies the server sends back.
 *
 * The parser copies nothing: a command's arguments point into the caller's
 * buffer, except for inline commands (a plain text line, as typed into
 * telnet), whose unquoted arguments live in storage the parser owns. It
 * keeps no state between calls beyond its arrays, so the caller may move or
 * grow its buffer freely; when a command is incomplete it says how long the
 * buffer must grow before a new attempt can make progress. Errors carry the
 * exact text redis-server 7.0 replies with. The writers are snprintf-style,
 * so a caller can size a reply first and write it second.
 *
 * Nothing here allocates except resp_parse, which grows the parser's arrays
 * and then reuses them. Functions are reentrant; a parser belongs to one
 * thread at a time. Nothing here is async-signal-safe.
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RESP_MAX_BULK ((size_t)512 << 20) /* redis-server's proto-max-bulk-len */
#define RESP_MAX_ARGS (1024 * 1024)       /* most arguments in one command */
#define RESP_MAX_INLINE (64 * 1024)       /* longest inline command line */

/* One argument of a command, not NUL-terminated: borrowed from the buffer
 * given to resp_parse, or from the parser's inline storage. */
struct resp_arg {
    const char *p;
    size_t len;
};

/*
 * A parser: caller storage, set up by resp_parser_init and released by
 * resp_parser_fini. After a call to resp_parse that returned a command,
 * argv[0..argc) describe it until the next call to resp_parse or
 * resp_parser_fini. The other fields are the parser's own.
 */
struct resp_parser {
    struct resp_arg *argv;
    size_t argc, cap;
    char *inline_buf;         /* unquoted inline arguments live here */
    size_t inline_cap;
    char error_text[48];      /* an error message that quotes a byte of the input */
};

/* Prepares p, allocating nothing. */
void resp_parser_init(struct resp_parser *p);

/* Frees what p allocated; p may be initialised again afterwards. */
void resp_parser_fini(struct resp_parser *p);

/*
 * resp_parse - parse one command from buf[0..len).
 *
 * Returns the number of bytes the command took (> 0) with p->argv and
 * p->argc set; argc is 0 for an empty inline line and for a multibulk
 * count <= 0 ("*0\r\n", "*-1\r\n"), which the caller skips as redis does.
 *
 * Returns 0 when more bytes are needed, with *need set to the smallest
 * total length of buf worth trying again with (larger than len), so that a
 * large bulk is scanned once, not on every read. The command is parsed from
 * its start again on the next call, so the caller may move its buffer; a
 * command of many small arguments that arrives over many reads is
 * scanned again on each (at about 5 ns an argument).
 *
 * Returns -1 on a protocol error, with *err set to the text redis-server
 * 7.0 replies with, without the leading '-' and the trailing CRLF; redis
 * then closes the connection. The texts:
 *   "ERR Protocol error: invalid multibulk length"   (a count that is no
 *       number or above RESP_MAX_ARGS)
 *   "ERR Protocol error: invalid bulk length"        (negative, no number,
 *       or above RESP_MAX_BULK)
 *   "ERR Protocol error: expected '$', got 'x'"      (CR, LF and NUL shown
 *       as a space)
 *   "ERR Protocol error: too big mbulk count string" (no CR in the first
 *       RESP_MAX_INLINE + 1 bytes of the count line; likewise for a bulk
 *       length line: "too big bulk count string")
 *   "ERR Protocol error: too big inline request"     (no LF in the first
 *       RESP_MAX_INLINE + 1 bytes of an inline line)
 *   "ERR Protocol error: unbalanced quotes in request"
 *   "ERR out of memory"                              (the argument arrays
 *       could not grow; the parser stays usable)
 * A count or length above the limits is refused as soon as its line is
 * read: nothing is allocated for it. *err points to static storage or into
 * p, valid until the next call with p.
 *
 * A multibulk command is "*<count>\r\n" and count times
 * "$<length>\r\n<bytes>\r\n"; like redis, the byte after each CR and the
 * two bytes after each argument's data are skipped without being looked
 * at. Any other first byte starts an inline command: a line ending at LF
 * (a CR before the LF is dropped), split like redis's sdssplitargs into
 * arguments separated by blanks, with "double quotes" (escapes \n \r \t \b
 * \a \xHH, and a backslash before any other byte keeps that byte) and
 * 'single quotes' (only \' is an escape); a closing quote must be followed
 * by a blank or the end of the line. NUL is an ordinary byte everywhere.
 *
 * buf is borrowed; it must stay unchanged while p->argv points into it.
 * need and err must not be NULL.
 */
ssize_t resp_parse(struct resp_parser *p, const char *buf, size_t len, size_t *need,
                   const char **err);

/*
 * Reply writers, snprintf-style: each writes the encoded reply into dst if
 * it fits in room bytes (nothing otherwise) and returns the number of bytes
 * the reply needs, whether it fitted or not. dst may be NULL when room is
 * 0. None writes a terminating NUL.
 *
 * resp_put_simple and resp_put_error write s up to its NUL; a CR or LF in s
 * is written as a space, as redis does, so that one reply cannot turn into
 * two. resp_put_bulk returns SIZE_MAX, writing nothing, for a len whose
 * reply size does not fit in a size_t.
 */
size_t resp_put_simple(char *dst, size_t room, const char *s);               /* +s\r\n */
size_t resp_put_error(char *dst, size_t room, const char *s);                /* -s\r\n */
size_t resp_put_int(char *dst, size_t room, long long v);                    /* :v\r\n */
size_t resp_put_bulk(char *dst, size_t room, const void *data, size_t len);  /* $len\r\n data \r\n */
size_t resp_put_bulk_header(char *dst, size_t room, size_t len);             /* $len\r\n */
size_t resp_put_null(char *dst, size_t room);                                /* $-1\r\n */
size_t resp_put_null_array(char *dst, size_t room);                          /* *-1\r\n */
size_t resp_put_array(char *dst, size_t room, long long n);                  /* *n\r\n (header only) */

#endif
