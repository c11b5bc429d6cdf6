/*
 * resp.c - the Redis protocol (RESP2): parsing client commands, writing
 * replies.
 *
 * The parser follows redis-server 7.0's processMultibulkBuffer and
 * processInlineBuffer rule by rule, so that a client sees the same replies
 * and the same protocol errors, but it copies nothing and keeps no state
 * between calls: an argument is a pointer into the caller's buffer, and an
 * incomplete command is parsed again from its start once the buffer has
 * grown to the length the last attempt asked for. The hot path is one
 * memchr per line, a hand-written number parser and a store into an array
 * that only grows. Lines are searched only within their longest allowed
 * length, so every answer, error texts included, is the same however the
 * bytes were split into reads.
 */
#include "resp.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char error_multibulk_length[] = "ERR Protocol error: invalid multibulk length";
static const char error_bulk_length[] = "ERR Protocol error: invalid bulk length";
static const char error_multibulk_line[] = "ERR Protocol error: too big mbulk count string";
static const char error_bulk_line[] = "ERR Protocol error: too big bulk count string";
static const char error_inline_line[] = "ERR Protocol error: too big inline request";
static const char error_quotes[] = "ERR Protocol error: unbalanced quotes in request";
static const char error_memory[] = "ERR out of memory";

void resp_parser_init(struct resp_parser *p)
{
    memset(p, 0, sizeof *p);
}

void resp_parser_fini(struct resp_parser *p)
{
    free(p->argv);
    free(p->inline_buf);
    memset(p, 0, sizeof *p);
}

/* Room for one more argument, growing by doubling but not past most, the
 * most arguments the command can have. Returns false when memory runs out, leaving the
 * array as it was. */
static bool grow_argv(struct resp_parser *p, size_t most)
{
    size_t cap = p->cap ? p->cap * 2 : 8;
    if (cap > most)
        cap = most;
    if (cap <= p->cap)
        cap = p->cap + 1;
    struct resp_arg *argv = realloc(p->argv, cap * sizeof *argv);
    if (!argv)
        return false;
    p->argv = argv;
    p->cap = cap;
    return true;
}

static bool push_arg(struct resp_parser *p, const char *s, size_t len, size_t most)
{
    if (p->argc == p->cap && !grow_argv(p, most))
        return false;
    p->argv[p->argc].p = s;
    p->argv[p->argc].len = len;
    p->argc++;
    return true;
}

/*
 * The number in s[0..n) by redis's string2ll rules: an optional '-', then
 * "0" alone or digits without a leading zero, at most 20 bytes in all, and
 * within a long long. Returns false for anything else.
 */
static bool parse_number(const char *s, size_t n, long long *value)
{
    if (n == 0 || n > 20)
        return false;
    if (n == 1 && s[0] == '0') {
        *value = 0;
        return true;
    }
    bool negative = s[0] == '-';
    size_t i = negative ? 1 : 0;
    if (i == n || s[i] < '1' || s[i] > '9')
        return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        unsigned digit = (unsigned)((unsigned char)s[i] - '0');
        if (digit > 9 || v > (ULLONG_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    if (negative) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return false;
        *value = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > LLONG_MAX)
            return false;
        *value = (long long)v;
    }
    return true;
}

enum line { LINE_FOUND, LINE_MORE, LINE_TOO_LONG };

/*
 * The line of a multibulk command starting at buf[at]: it ends at its
 * first CR, which redis looks for, and takes one more byte after it (meant
 * to be LF, never checked). A CR past the first RESP_MAX_INLINE + 1 bytes
 * is not looked for: the line is too long whatever follows.
 */
static enum line find_line(const char *buf, size_t at, size_t len, size_t *cr)
{
    size_t rest = len - at;
    size_t window = rest < (size_t)RESP_MAX_INLINE + 1 ? rest : (size_t)RESP_MAX_INLINE + 1;
    const char *hit = memchr(buf + at, '\r', window);
    if (!hit)
        return rest > RESP_MAX_INLINE ? LINE_TOO_LONG : LINE_MORE;
    *cr = (size_t)(hit - buf);
    return *cr + 1 < len ? LINE_FOUND : LINE_MORE;
}

/* The error for a bulk line that starts with byte c instead of '$'. Like
 * redis, CR and LF show as a space; so does NUL, which would end the text. */
static const char *expected_dollar(struct resp_parser *p, char c)
{
    if (c == '\r' || c == '\n' || c == '\0')
        c = ' ';
    snprintf(p->error_text, sizeof p->error_text,
             "ERR Protocol error: expected '$', got '%c'", c);
    return p->error_text;
}

static ssize_t parse_multibulk(struct resp_parser *p, const char *buf, size_t len, size_t *need,
                               const char **err)
{
    size_t cr = 0;
    switch (find_line(buf, 0, len, &cr)) {
    case LINE_MORE:
        *need = len + 1;
        return 0;
    case LINE_TOO_LONG:
        *err = error_multibulk_line;
        return -1;
    case LINE_FOUND:
        break;
    }
    long long count;
    if (!parse_number(buf + 1, cr - 1, &count) || count > RESP_MAX_ARGS) {
        *err = error_multibulk_length;
        return -1;
    }
    size_t at = cr + 2;
    if (count <= 0)
        return (ssize_t)at;

    /* Invariant: buf[0..at) holds the count line and the first argc
     * arguments, each with its two trailing bytes. */
    size_t args = (size_t)count;
    while (p->argc < args) {
        switch (find_line(buf, at, len, &cr)) {
        case LINE_MORE:
            *need = len + 1;
            return 0;
        case LINE_TOO_LONG:
            *err = error_bulk_line;
            return -1;
        case LINE_FOUND:
            break;
        }
        if (buf[at] != '$') {
            *err = expected_dollar(p, buf[at]);
            return -1;
        }
        long long bulk;
        if (!parse_number(buf + at + 1, cr - at - 1, &bulk) || bulk < 0 ||
            (unsigned long long)bulk > RESP_MAX_BULK) {
            *err = error_bulk_length;
            return -1;
        }
        size_t data = cr + 2, size = (size_t)bulk;
        if (len - data < size + 2) {
            *need = data + size + 2;
            return 0;
        }
        if (!push_arg(p, buf + data, size, args)) {
            *err = error_memory;
            return -1;
        }
        at = data + size + 2;
    }
    return (ssize_t)at;
}

/* isspace in the C locale, which redis runs in. */
static bool is_blank(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char unescape(char c)
{
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c;
    }
}

/*
 * Splits line[0..n) into arguments the way redis's sdssplitargs does,
 * writing their bytes into p->inline_buf, which holds at least n bytes:
 * every input byte gives at most one output byte, so it cannot overflow.
 * An unquoted argument ends at a space, tab, CR or LF (not at the other
 * blanks, which only separate arguments), and a quote may open in its
 * middle. Returns NULL or the error text.
 */
static const char *split_inline(struct resp_parser *p, const char *line, size_t n)
{
    enum { PLAIN, DOUBLE, SINGLE };
    char *out = p->inline_buf;
    size_t i = 0, o = 0, most = n / 2 + 1;
    for (;;) {
        while (i < n && is_blank(line[i]))
            i++;
        if (i == n)
            return NULL;
        size_t start = o;
        int quote = PLAIN;
        for (bool done = false; !done;) {
            if (quote == PLAIN) {
                if (i == n)
                    break;
                char c = line[i++];
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                    done = true;
                else if (c == '"')
                    quote = DOUBLE;
                else if (c == '\'')
                    quote = SINGLE;
                else
                    out[o++] = c;
            } else if (i == n) {
                return error_quotes;
            } else if (quote == DOUBLE) {
                char c = line[i];
                if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_value(line[i + 2]) >= 0 &&
                    hex_value(line[i + 3]) >= 0) {
                    out[o++] = (char)(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                    i += 4;
                } else if (c == '\\' && i + 1 < n) {
                    out[o++] = unescape(line[i + 1]);
                    i += 2;
                } else if (c == '"') {
                    if (i + 1 < n && !is_blank(line[i + 1]))
                        return error_quotes;
                    i++;
                    done = true;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else {
                char c = line[i];
                if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
                    out[o++] = '\'';
                    i += 2;
                } else if (c == '\'') {
                    if (i + 1 < n && !is_blank(line[i + 1]))
                        return error_quotes;
                    i++;
                    done = true;
                } else {
                    out[o++] = c;
                    i++;
                }
            }
        }
        if (!push_arg(p, out + start, o - start, most))
            return error_memory;
    }
}

static ssize_t parse_inline(struct resp_parser *p, const char *buf, size_t len, size_t *need,
                            const char **err)
{
    size_t window = len < (size_t)RESP_MAX_INLINE + 1 ? len : (size_t)RESP_MAX_INLINE + 1;
    const char *lf = memchr(buf, '\n', window);
    if (!lf) {
        if (len > RESP_MAX_INLINE) {
            *err = error_inline_line;
            return -1;
        }
        *need = len + 1;
        return 0;
    }
    size_t end = (size_t)(lf - buf), taken = end + 1;
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    if (end > p->inline_cap) {
        /* The old contents are dead: a fresh block saves realloc's copy. */
        size_t cap = 64;
        while (cap < end)
            cap *= 2;
        char *storage = malloc(cap);
        if (!storage) {
            *err = error_memory;
            return -1;
        }
        free(p->inline_buf);
        p->inline_buf = storage;
        p->inline_cap = cap;
    }
    const char *failure = split_inline(p, buf, end);
    if (failure) {
        *err = failure;
        return -1;
    }
    return (ssize_t)taken;
}

ssize_t resp_parse(struct resp_parser *p, const char *buf, size_t len, size_t *need,
                   const char **err)
{
    p->argc = 0;
    if (len == 0) {
        *need = 1;
        return 0;
    }
    ssize_t taken = buf[0] == '*' ? parse_multibulk(p, buf, len, need, err)
                                  : parse_inline(p, buf, len, need, err);
    if (taken <= 0)
        p->argc = 0;
    return taken;
}

/*
 * Writers. A header is built backwards at the end of a small array: the
 * type byte, the decimal number and CRLF, then copied in one piece.
 */
enum { HEADER_MAX = 24 }; /* type, sign, 20 digits, CRLF */

/* Returns where the header starts; it ends at header + HEADER_MAX. */
static char *build_header(char header[HEADER_MAX], char type, bool negative,
                          unsigned long long magnitude)
{
    char *s = header + HEADER_MAX;
    *--s = '\n';
    *--s = '\r';
    do {
        *--s = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (negative)
        *--s = '-';
    *--s = type;
    return s;
}

static size_t put_number(char *dst, size_t room, char type, long long v)
{
    char header[HEADER_MAX];
    unsigned long long magnitude = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    const char *s = build_header(header, type, v < 0, magnitude);
    size_t need = (size_t)(header + HEADER_MAX - s);
    if (need <= room)
        memcpy(dst, s, need);
    return need;
}

static size_t put_text(char *dst, size_t room, char type, const char *s)
{
    size_t n = strlen(s), need = n + 3;
    if (need > room)
        return need;
    dst[0] = type;
    memcpy(dst + 1, s, n);
    char *end = dst + 1 + n;
    for (char *c = dst + 1; (c = memchr(c, '\r', (size_t)(end - c))) != NULL;)
        *c = ' ';
    for (char *c = dst + 1; (c = memchr(c, '\n', (size_t)(end - c))) != NULL;)
        *c = ' ';
    end[0] = '\r';
    end[1] = '\n';
    return need;
}

size_t resp_put_simple(char *dst, size_t room, const char *s)
{
    return put_text(dst, room, '+', s);
}

size_t resp_put_error(char *dst, size_t room, const char *s)
{
    return put_text(dst, room, '-', s);
}

size_t resp_put_int(char *dst, size_t room, long long v)
{
    return put_number(dst, room, ':', v);
}

size_t resp_put_bulk_header(char *dst, size_t room, size_t len)
{
    char header[HEADER_MAX];
    const char *s = build_header(header, '$', false, len);
    size_t need = (size_t)(header + HEADER_MAX - s);
    if (need <= room)
        memcpy(dst, s, need);
    return need;
}

size_t resp_put_bulk(char *dst, size_t room, const void *data, size_t len)
{
    char header[HEADER_MAX];
    const char *s = build_header(header, '$', false, len);
    size_t head = (size_t)(header + HEADER_MAX - s);
    if (len > SIZE_MAX - head - 2)
        return SIZE_MAX;
    size_t need = head + len + 2;
    if (need > room)
        return need;
    memcpy(dst, s, head);
    if (len)
        memcpy(dst + head, data, len);
    dst[head + len] = '\r';
    dst[head + len + 1] = '\n';
    return need;
}

size_t resp_put_null(char *dst, size_t room)
{
    return put_number(dst, room, '$', -1);
}

size_t resp_put_null_array(char *dst, size_t room)
{
    return put_number(dst, room, '*', -1);
}

size_t resp_put_array(char *dst, size_t room, long long n)
{
    return put_number(dst, room, '*', n);
}
