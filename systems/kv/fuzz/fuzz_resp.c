/*
 * fuzz_resp.c - libFuzzer target for walls-kv's RESP parser and reply
 * writers (resp.h).
 *
 * An input is read as a client's stream: commands are parsed one after
 * the other from libFuzzer's own buffer, whose end AddressSanitizer
 * guards. Each outcome is checked three ways. Its invariants: a command
 * takes no more bytes than there are, its arguments lie inside the
 * command (or, for an inline one, inside the parser's storage) and, for a
 * multibulk one, the length lines and the data add up to exactly the bytes
 * taken. Independence from reads: feeding the same bytes in blocks of
 * exactly the length each attempt asked for reaches the same outcome,
 * never asking for more than the command holds (for long inputs, only the
 * cut one byte short of the command is tried). A round trip: the command
 * written back with the reply writers as an array of bulks parses to the
 * same arguments. The parsers live across inputs, as a connection's does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct resp_parser parser, chained, reparsed;

static void fail(const char *what, int line)
{
    fprintf(stderr, "fuzz_resp.c:%d: %s does not hold\n", line, what);
    abort();
}

#define CHECK(cond)                    \
    do {                               \
        if (!(cond))                   \
            fail(#cond, __LINE__);     \
    } while (0)

static int inside(const char *p, size_t len, const char *base, size_t size)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return a >= b && a - b <= size && len <= size - (a - b);
}

/* A multibulk command's layout: its count line, then each argument's
 * "$<len>" line, CR and one byte, the data and two bytes, ending exactly
 * where the command does. */
static void check_multibulk(const struct resp_parser *p, const char *cmd, size_t taken)
{
    const char *at = memchr(cmd, '\r', taken);
    CHECK(at && at[0] == '\r');
    at += 2;
    for (size_t i = 0; i < p->argc; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "$%zu\r", p->argv[i].len);
        CHECK(n > 0 && (size_t)n < sizeof line);
        CHECK(inside(at, (size_t)n + 1, cmd, taken));
        CHECK(memcmp(at, line, (size_t)n) == 0);
        CHECK(p->argv[i].p == at + n + 1);
        at = p->argv[i].p + p->argv[i].len + 2;
    }
    CHECK(at == cmd + taken);
}

static void check_inline(const struct resp_parser *p, size_t taken)
{
    const char *end = p->inline_buf;
    size_t total = 0;
    for (size_t i = 0; i < p->argc; i++) {
        CHECK(inside(p->argv[i].p, p->argv[i].len, p->inline_buf, p->inline_cap));
        CHECK((uintptr_t)p->argv[i].p >= (uintptr_t)end);
        end = p->argv[i].p + p->argv[i].len;
        total += p->argv[i].len;
    }
    CHECK(total < taken);
}

/* A parse of the first have bytes of cmd, from a fresh block of exactly
 * that many, so that AddressSanitizer guards its end too. */
static ssize_t parse_copy(const char *cmd, size_t have, size_t *need, const char **err,
                          char **copy)
{
    *copy = malloc(have ? have : 1);
    CHECK(*copy);
    memcpy(*copy, cmd, have);
    *need = 0;
    *err = NULL;
    return resp_parse(&chained, *copy, have, need, err);
}

/*
 * The same bytes fed in blocks of exactly the length asked for reach the
 * same outcome. Lines are fed a byte at a time that way, so past
 * CHAIN_MAX bytes only the last cut before a command is tried: it must
 * ask for more, and for no more than the command holds.
 */
enum { CHAIN_MAX = 16384 };

static void check_chained(const char *cmd, size_t avail, ssize_t taken, const char *err)
{
    size_t need;
    const char *chained_err;
    char *copy;
    if (avail > CHAIN_MAX) {
        if (taken > 0) {
            size_t cut = (size_t)taken - 1;
            CHECK(parse_copy(cmd, cut, &need, &chained_err, &copy) == 0);
            CHECK(need > cut && need <= (size_t)taken);
            free(copy);
        }
        return;
    }
    size_t have = 0;
    ssize_t r;
    while ((r = parse_copy(cmd, have, &need, &chained_err, &copy)) == 0) {
        free(copy);
        CHECK(need > have);
        if (need > avail) {
            CHECK(taken == 0);
            return;
        }
        have = need;
    }
    CHECK(r == taken);
    if (r < 0) {
        CHECK(chained_err && strcmp(chained_err, err) == 0);
    } else {
        CHECK((size_t)r == have);
        CHECK(chained.argc == parser.argc);
        for (size_t i = 0; i < parser.argc; i++) {
            CHECK(chained.argv[i].len == parser.argv[i].len);
            CHECK(memcmp(chained.argv[i].p, parser.argv[i].p, parser.argv[i].len) == 0);
        }
    }
    free(copy);
}

/* The command written back as an array of bulks parses to itself. */
static void check_round_trip(void)
{
    size_t size = resp_put_array(NULL, 0, (long long)parser.argc);
    for (size_t i = 0; i < parser.argc; i++)
        size += resp_put_bulk(NULL, 0, parser.argv[i].p, parser.argv[i].len);
    char *out = malloc(size);
    CHECK(out);
    size_t at = resp_put_array(out, size, (long long)parser.argc);
    for (size_t i = 0; i < parser.argc; i++) {
        size_t n = resp_put_bulk(out + at, size - at, parser.argv[i].p, parser.argv[i].len);
        CHECK(n <= size - at);
        at += n;
    }
    CHECK(at == size);
    size_t need;
    const char *err = NULL;
    ssize_t r = resp_parse(&reparsed, out, size, &need, &err);
    CHECK(r == (ssize_t)size);
    CHECK(reparsed.argc == parser.argc);
    for (size_t i = 0; i < parser.argc; i++) {
        CHECK(reparsed.argv[i].len == parser.argv[i].len);
        CHECK(memcmp(reparsed.argv[i].p, parser.argv[i].p, parser.argv[i].len) == 0);
    }
    free(out);
}

/* The writers of text and numbers, on the input's first bytes. */
static void check_writers(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    char text[64], out[80];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    size_t want = strlen(text) + 3;
    CHECK(resp_put_error(out, want - 1, text) == want);
    CHECK(resp_put_error(out, sizeof out, text) == want);
    CHECK(out[0] == '-' && out[want - 2] == '\r' && out[want - 1] == '\n');
    CHECK(!memchr(out, '\r', want - 2) && !memchr(out, '\n', want - 2));
    CHECK(resp_put_simple(out, sizeof out, text) == want && out[0] == '+');
    CHECK(!memchr(out, '\r', want - 2) && !memchr(out, '\n', want - 2));

    long long v = 0;
    memcpy(&v, data, size < sizeof v ? size : sizeof v);
    size_t len = resp_put_int(out, sizeof out, v);
    CHECK(len >= 4 && len <= 23 && out[0] == ':' && out[len - 2] == '\r');
    out[len - 2] = '\0';
    char *end;
    CHECK(strtoll(out + 1, &end, 10) == v && end == out + len - 2);

    len = resp_put_bulk_header(out, sizeof out, (size_t)v);
    CHECK(len >= 4 && len <= 23 && out[0] == '$' && out[len - 2] == '\r');
    out[len - 2] = '\0';
    CHECK(strtoull(out + 1, &end, 10) == (unsigned long long)v && end == out + len - 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_writers(data, size);
    size_t at = 0;
    for (int commands = 0; commands < 64; commands++) {
        size_t avail = size - at, need = 0;
        const char *err = NULL;
        ssize_t r = resp_parse(&parser, buf + at, avail, &need, &err);
        check_chained(buf + at, avail, r, err);
        if (r == 0) {
            CHECK(need > avail);
            break;
        }
        if (r < 0) {
            CHECK(r == -1 && err && strncmp(err, "ERR ", 4) == 0);
            CHECK(!strchr(err, '\r') && !strchr(err, '\n'));
            break;
        }
        size_t taken = (size_t)r;
        CHECK(taken <= avail);
        for (size_t i = 0; i < parser.argc; i++)
            CHECK(inside(parser.argv[i].p, parser.argv[i].len, buf + at, taken) ||
                  inside(parser.argv[i].p, parser.argv[i].len, parser.inline_buf,
                         parser.inline_cap));
        if (buf[at] == '*')
            check_multibulk(&parser, buf + at, taken);
        else
            check_inline(&parser, taken);
        check_round_trip();
        at += taken;
        if (at == size)
            break;
    }
    return 0;
}
