/*
 * test-resp.c - the RESP parser and reply writers (resp.h): plain and
 * pipelined commands, commands cut at every byte, binary and empty bulks,
 * every protocol error with redis-server's own text, the limits refused
 * before anything is allocated, inline commands with quotes and escapes,
 * running out of memory, and the exact bytes of every reply writer.
 *
 * The error texts and the inline splitting results below were checked
 * against redis-server 7.0.15 (Debian 7.0.15-1~deb12u10) by sending the
 * same bytes over its unix socket with python3 and reading the replies.
 *
 * Each input is copied into a block of exactly its length before it is
 * parsed, so that AddressSanitizer catches a read past the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "resp.h"

/* A sanitizer reserves address space of its own: a cap on it there
 * starves the sanitizer, not the parser. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A parse of the first len bytes of s, from a block of exactly len bytes. */
struct outcome {
    ssize_t taken;
    size_t need;
    const char *err;
};

static struct outcome parse_copy(struct resp_parser *p, const char *s, size_t len, char **copy)
{
    *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(*copy);
    if (len)
        memcpy(*copy, s, len);
    struct outcome o = {.need = 0, .err = NULL};
    o.taken = resp_parse(p, *copy, len, &o.need, &o.err);
    return o;
}

/* Asserts that p holds exactly the arguments listed, n of them. */
static void expect_args(const struct resp_parser *p, const char *const *want, const size_t *lens,
                        size_t n)
{
    ck_assert_msg(p->argc == n, "argc %zu, want %zu", p->argc, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(want[i]);
        ck_assert_msg(p->argv[i].len == len, "argv[%zu].len %zu, want %zu", i, p->argv[i].len,
                      len);
        ck_assert_msg(memcmp(p->argv[i].p, want[i], len) == 0, "argv[%zu] '%.*s', want '%.*s'", i,
                      (int)p->argv[i].len, p->argv[i].p, (int)len, want[i]);
    }
}

static const char set_command[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";

START_TEST(plain_command)
{
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    size_t len = strlen(set_command);
    struct outcome o = parse_copy(&p, set_command, len, &copy);
    ck_assert_int_eq(o.taken, (ssize_t)len);
    const char *want[] = {"SET", "key", "value"};
    expect_args(&p, want, NULL, 3);
    /* No copies: the arguments point into the buffer given. */
    ck_assert_ptr_eq(p.argv[0].p, copy + 8);
    ck_assert_ptr_eq(p.argv[2].p, copy + len - 7);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

/* Commands cut at every byte: each prefix asks for more, with a need
 * beyond what it has and never beyond the whole command. */
static void check_every_cut(const char *s, size_t len, size_t argc)
{
    struct resp_parser p;
    resp_parser_init(&p);
    for (size_t cut = 0; cut < len; cut++) {
        char *copy;
        struct outcome o = parse_copy(&p, s, cut, &copy);
        ck_assert_msg(o.taken == 0, "cut %zu of %zu: returned %zd (%s)", cut, len, o.taken,
                      o.err ? o.err : "");
        ck_assert_msg(o.need > cut && o.need <= len, "cut %zu of %zu: need %zu", cut, len, o.need);
        free(copy);
    }
    char *copy;
    struct outcome o = parse_copy(&p, s, len, &copy);
    ck_assert_int_eq(o.taken, (ssize_t)len);
    ck_assert_uint_eq(p.argc, argc);
    free(copy);

    /* Growing the buffer only to each need reaches the command too. */
    size_t have = 0, tries = 0;
    for (;;) {
        o = parse_copy(&p, s, have, &copy);
        free(copy);
        tries++;
        if (o.taken != 0)
            break;
        ck_assert_uint_gt(o.need, have);
        have = o.need;
    }
    ck_assert_int_eq(o.taken, (ssize_t)len);
    ck_assert_msg(have == len, "reached the command at %zu of %zu bytes", have, len);
    ck_assert_uint_le(tries, len + 1);
    resp_parser_fini(&p);
}

START_TEST(split_everywhere)
{
    static const char binary[] = "*2\r\n$3\r\nGET\r\n$6\r\na\r\n\0\r\n\r\n";
    static const char quoted[] = "SET \"a b\\x41\" 'c\\'d'\r\n";
    check_every_cut(set_command, strlen(set_command), 3);
    check_every_cut(binary, sizeof binary - 1, 2);
    check_every_cut(quoted, strlen(quoted), 3);
    check_every_cut("PING\n", 5, 1);
    check_every_cut("*0\r\n", 4, 0);
    check_every_cut("*1\r\n$0\r\n\r\n", 10, 1);
}
END_TEST

START_TEST(big_bulk_need)
{
    /* A large bulk asks at once for all its bytes, so it is not scanned
     * again on every read. */
    static const char head[] = "*2\r\n$3\r\nSET\r\n$100000000\r\nabc";
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    struct outcome o = parse_copy(&p, head, strlen(head), &copy);
    ck_assert_int_eq(o.taken, 0);
    ck_assert_uint_eq(o.need, strlen(head) - 3 + 100000000 + 2);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(pipelined)
{
    static const char stream[] = "*1\r\n$4\r\nPING\r\n"
                                 "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
                                 "*0\r\n"
                                 "ECHO hello\r\n"
                                 "\r\n"
                                 "*2\r\n$3\r\nGET\r\n$1\r\nb\r\n";
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    size_t len = sizeof stream - 1, at = 0;
    const char *first[][2] = {{"PING", NULL}, {"GET", "a"}, {NULL, NULL},
                              {"ECHO", "hello"}, {NULL, NULL}, {"GET", "b"}};
    const size_t argcs[] = {1, 2, 0, 2, 0, 2};
    for (size_t i = 0; i < 6; i++) {
        struct outcome o = parse_copy(&p, stream + at, len - at, &copy);
        ck_assert_msg(o.taken > 0, "command %zu: %zd", i, o.taken);
        expect_args(&p, first[i], NULL, argcs[i]);
        at += (size_t)o.taken;
        free(copy);
    }
    ck_assert_uint_eq(at, len);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(binary_bulk)
{
    static const char cmd[] = "*3\r\n$3\r\nSET\r\n$4\r\nk\0\r\n\r\n$7\r\n\r\n\0$\r\n*\r\n";
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    struct outcome o = parse_copy(&p, cmd, sizeof cmd - 1, &copy);
    ck_assert_int_eq(o.taken, (ssize_t)(sizeof cmd - 1));
    const char *want[] = {"SET", "k\0\r\n", "\r\n\0$\r\n*"};
    const size_t lens[] = {3, 4, 7};
    expect_args(&p, want, lens, 3);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(empty_bulk)
{
    static const char cmd[] = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$0\r\n\r\n";
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    struct outcome o = parse_copy(&p, cmd, sizeof cmd - 1, &copy);
    ck_assert_int_eq(o.taken, (ssize_t)(sizeof cmd - 1));
    ck_assert_uint_eq(p.argc, 3);
    ck_assert_uint_eq(p.argv[1].len, 0);
    ck_assert_uint_eq(p.argv[2].len, 0);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(empty_commands)
{
    static const char *const inputs[] = {"*0\r\n", "*-1\r\n", "*-9223372036854775808\r\n", "\r\n",
                                         "\n", "   \t\n", "\x0b\x0c\r\n"};
    struct resp_parser p;
    resp_parser_init(&p);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *copy;
        struct outcome o = parse_copy(&p, inputs[i], strlen(inputs[i]), &copy);
        ck_assert_msg(o.taken == (ssize_t)strlen(inputs[i]), "'%s': %zd", inputs[i], o.taken);
        ck_assert_uint_eq(p.argc, 0);
        free(copy);
    }
    resp_parser_fini(&p);
}
END_TEST

/* Every protocol error, with the text redis-server 7.0.15 replied with for
 * the same bytes (checked by hand; see the head of this file). */
struct error_case {
    const char *input;
    const char *err;
};

static const struct error_case error_cases[] = {
    {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*-0\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*+1\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*01\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*3000000000\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*9223372036854775808\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*-9223372036854775809\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*99999999999999999999\r\n", "ERR Protocol error: invalid multibulk length"},
    {"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\n$-0\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\n$00\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\n$536870913\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\n$9223372036854775808\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\n$-9223372036854775808\r\n", "ERR Protocol error: invalid bulk length"},
    {"*1\r\nx\r\n", "ERR Protocol error: expected '$', got 'x'"},
    {"*1\r\n\r\n", "ERR Protocol error: expected '$', got ' '"},
    {"*1\r\n\xff\r\n", "ERR Protocol error: expected '$', got '\xff'"},
    {"*2\r\n$1\r\na\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"},
    {"\"foo\r\n", "ERR Protocol error: unbalanced quotes in request"},
    {"\"foo\"x\r\n", "ERR Protocol error: unbalanced quotes in request"},
    {"'foo'x\r\n", "ERR Protocol error: unbalanced quotes in request"},
    {"ECHO a\"b c\"d\r\n", "ERR Protocol error: unbalanced quotes in request"},
    {"ECHO \"a\\\r\n", "ERR Protocol error: unbalanced quotes in request"},
    {"ECHO 'a\\'\r\n", "ERR Protocol error: unbalanced quotes in request"},
};

START_TEST(errors)
{
    struct resp_parser p;
    resp_parser_init(&p);
    const struct error_case *c = &error_cases[_i];
    size_t len = strlen(c->input);
    char *copy;
    struct outcome o = parse_copy(&p, c->input, len, &copy);
    ck_assert_msg(o.taken == -1, "'%s': returned %zd", c->input, o.taken);
    ck_assert_ptr_nonnull(o.err);
    ck_assert_str_eq(o.err, c->err);
    ck_assert_uint_eq(p.argc, 0);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

/* A long run of filler after a prefix, as one block. */
static char *long_input(const char *prefix, char fill, size_t total)
{
    char *s = malloc(total);
    ck_assert_ptr_nonnull(s);
    size_t n = strlen(prefix);
    memcpy(s, prefix, n);
    memset(s + n, fill, total - n);
    return s;
}

START_TEST(too_long_lines)
{
    struct resp_parser p;
    resp_parser_init(&p);
    struct {
        const char *prefix;
        size_t at; /* where the long line starts */
        char fill;
        const char *err;
    } cases[] = {
        {"", 0, 'a', "ERR Protocol error: too big inline request"},
        {"*", 0, '1', "ERR Protocol error: too big mbulk count string"},
        {"*1\r\n$", 4, '1', "ERR Protocol error: too big bulk count string"},
    };
    for (size_t i = 0; i < 3; i++) {
        /* One byte more than the longest line redis waits for... */
        size_t at = cases[i].at;
        char *s = long_input(cases[i].prefix, cases[i].fill, at + RESP_MAX_INLINE + 1);
        size_t need = 0;
        const char *err = NULL;
        ssize_t r = resp_parse(&p, s, at + RESP_MAX_INLINE + 1, &need, &err);
        ck_assert_int_eq(r, -1);
        ck_assert_str_eq(err, cases[i].err);
        /* ...and the longest, which still waits for its end of line. */
        err = NULL;
        r = resp_parse(&p, s, at + RESP_MAX_INLINE, &need, &err);
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(need, at + RESP_MAX_INLINE + 1);
        ck_assert_ptr_null(err);
        free(s);
    }

    /* A line whose end comes past the longest allowed is too long even
     * when the end is in the buffer: the answer does not depend on how the
     * bytes arrived. (redis-server, reading all of this at once, says
     * "invalid bulk length" here, and "too big bulk count string" when the
     * line arrives in pieces.) */
    char *s = long_input("*1\r\n$", '1', 4 + RESP_MAX_INLINE + 3);
    memcpy(s + 4 + RESP_MAX_INLINE + 1, "\r\n", 2);
    size_t need;
    const char *err = NULL;
    ck_assert_int_eq(resp_parse(&p, s, 4 + RESP_MAX_INLINE + 3, &need, &err), -1);
    ck_assert_str_eq(err, "ERR Protocol error: too big bulk count string");
    free(s);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(longest_inline_line)
{
    /* A line of RESP_MAX_INLINE bytes and its LF is accepted. */
    struct resp_parser p;
    resp_parser_init(&p);
    char *s = long_input("ECHO ", 'x', RESP_MAX_INLINE + 1);
    s[RESP_MAX_INLINE] = '\n';
    size_t need;
    const char *err = NULL;
    ssize_t r = resp_parse(&p, s, RESP_MAX_INLINE + 1, &need, &err);
    ck_assert_int_eq(r, RESP_MAX_INLINE + 1);
    ck_assert_uint_eq(p.argc, 2);
    ck_assert_uint_eq(p.argv[1].len, RESP_MAX_INLINE - 5);
    free(s);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(limits_refused)
{
    /* Counts and lengths past the limits fail on their line alone, with
     * nothing allocated; those at the limits wait for their bytes. */
    struct resp_parser p;
    resp_parser_init(&p);
    char line[64];
    size_t need;
    const char *err = NULL;

    snprintf(line, sizeof line, "*%d\r\n", RESP_MAX_ARGS + 1);
    ck_assert_int_eq(resp_parse(&p, line, strlen(line), &need, &err), -1);
    ck_assert_str_eq(err, "ERR Protocol error: invalid multibulk length");
    ck_assert_ptr_null(p.argv);
    ck_assert_uint_eq(p.cap, 0);

    snprintf(line, sizeof line, "*%d\r\n", RESP_MAX_ARGS);
    ck_assert_int_eq(resp_parse(&p, line, strlen(line), &need, &err), 0);
    ck_assert_uint_eq(need, strlen(line) + 1);
    ck_assert_ptr_null(p.argv);

    snprintf(line, sizeof line, "*1\r\n$%zu\r\n", RESP_MAX_BULK + 1);
    err = NULL;
    ck_assert_int_eq(resp_parse(&p, line, strlen(line), &need, &err), -1);
    ck_assert_str_eq(err, "ERR Protocol error: invalid bulk length");
    ck_assert_ptr_null(p.argv);
    ck_assert_ptr_null(p.inline_buf);

    snprintf(line, sizeof line, "*1\r\n$%zu\r\n", RESP_MAX_BULK);
    ck_assert_int_eq(resp_parse(&p, line, strlen(line), &need, &err), 0);
    ck_assert_uint_eq(need, strlen(line) + RESP_MAX_BULK + 2);
    ck_assert_ptr_null(p.argv);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(inline_commands)
{
    /* Each line and the arguments redis-server 7.0.15 made of it (seen
     * through ECHO and errors naming the arguments). */
    static const struct {
        const char *line;
        size_t argc;
        const char *args[4];
    } cases[] = {
        {"PING\r\n", 1, {"PING"}},
        {"PING\n", 1, {"PING"}},
        {"  SET   k \t v  \r\n", 3, {"SET", "k", "v"}},
        {"SET \"a b\" 'c d'\r\n", 3, {"SET", "a b", "c d"}},
        {"ECHO \"a\\x41\\n\\q\"\r\n", 2, {"ECHO", "aA\nq"}},
        {"ECHO \"\\r\\t\\b\\a\\\\\\\"\"\r\n", 2, {"ECHO", "\r\t\b\a\\\""}},
        {"ECHO \"\\x4\"\r\n", 2, {"ECHO", "x4"}},
        {"ECHO \"\\x4g\"\r\n", 2, {"ECHO", "x4g"}},
        {"ECHO 'it\\'s'\r\n", 2, {"ECHO", "it's"}},
        {"ECHO 'a\\b'\r\n", 2, {"ECHO", "a\\b"}},
        {"ECHO \"\"\r\n", 2, {"ECHO", ""}},
        {"ECHO x\"y\"\r\n", 2, {"ECHO", "xy"}},
        {"ECHO a\"b c\" d\r\n", 3, {"ECHO", "ab c", "d"}},
        {"ECHO \x0bx\r\n", 2, {"ECHO", "x"}},
        {"ECHO a\x0b" "b\r\n", 2, {"ECHO", "a\x0b" "b"}},
        {"ECHO \"a\"\x0b\r\n", 2, {"ECHO", "a"}},
        {"ECHO \"a\"\r\r\n", 2, {"ECHO", "a"}},
        {"ECHO a\rb\r\n", 3, {"ECHO", "a", "b"}},
        {"$3 foo\r\n", 2, {"$3", "foo"}},
    };
    struct resp_parser p;
    resp_parser_init(&p);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *copy;
        struct outcome o = parse_copy(&p, cases[i].line, strlen(cases[i].line), &copy);
        ck_assert_msg(o.taken == (ssize_t)strlen(cases[i].line), "case %zu: %zd (%s)", i, o.taken,
                      o.err ? o.err : "");
        expect_args(&p, cases[i].args, NULL, cases[i].argc);
        /* Inline arguments live in the parser's storage. */
        for (size_t a = 0; a < p.argc; a++)
            ck_assert(p.argv[a].p >= p.inline_buf &&
                      p.argv[a].p + p.argv[a].len <= p.inline_buf + p.inline_cap);
        free(copy);
    }
    resp_parser_fini(&p);
}
END_TEST

START_TEST(inline_nul_is_a_byte)
{
    /* redis waits for more input here (it looks for LF with strchr); this
     * parser treats NUL as any other byte. */
    static const char line[] = "ECHO a\0b\r\n";
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    struct outcome o = parse_copy(&p, line, sizeof line - 1, &copy);
    ck_assert_int_eq(o.taken, (ssize_t)(sizeof line - 1));
    const char *want[] = {"ECHO", "a\0b"};
    const size_t lens[] = {4, 3};
    expect_args(&p, want, lens, 2);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(many_arguments)
{
    /* Arrays grow past their first size, for both kinds of command. */
    enum { N = 5000 };
    size_t cap = 32 + (size_t)N * 12;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t len = (size_t)snprintf(s, cap, "*%d\r\n", N);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(s + len, cap - len, "$%d\r\n%d\r\n", i < 10 ? 1 : i < 100 ? 2 : i < 1000 ? 3 : 4, i);
    struct resp_parser p;
    resp_parser_init(&p);
    size_t need;
    const char *err = NULL;
    ck_assert_int_eq(resp_parse(&p, s, len, &need, &err), (ssize_t)len);
    ck_assert_uint_eq(p.argc, N);
    ck_assert_uint_le(p.cap, N);
    ck_assert(p.argv[N - 1].len == 4 && memcmp(p.argv[N - 1].p, "4999", 4) == 0);

    len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(s + len, cap - len, "%d ", i);
    s[len++] = '\n';
    ck_assert_int_eq(resp_parse(&p, s, len, &need, &err), (ssize_t)len);
    ck_assert_uint_eq(p.argc, N);
    ck_assert(p.argv[N - 1].len == 4 && memcmp(p.argv[N - 1].p, "4999", 4) == 0);
    free(s);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(steady_state)
{
    /* Once grown, the arrays are reused: the same command parsed again
     * allocates nothing (the pointers and sizes stay as they were). */
    struct resp_parser p;
    resp_parser_init(&p);
    size_t need;
    const char *err;
    ck_assert_int_gt(resp_parse(&p, set_command, strlen(set_command), &need, &err), 0);
    ck_assert_int_gt(resp_parse(&p, "SET \"a\" b\r\n", 11, &need, &err), 0);
    const struct resp_arg *argv = p.argv;
    const char *storage = p.inline_buf;
    size_t cap = p.cap, inline_cap = p.inline_cap;
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_gt(resp_parse(&p, set_command, strlen(set_command), &need, &err), 0);
        ck_assert_int_gt(resp_parse(&p, "SET \"a\" b\r\n", 11, &need, &err), 0);
    }
    ck_assert_ptr_eq(p.argv, argv);
    ck_assert_ptr_eq(p.inline_buf, storage);
    ck_assert_uint_eq(p.cap, cap);
    ck_assert_uint_eq(p.inline_cap, inline_cap);
    resp_parser_fini(&p);
}
END_TEST

START_TEST(out_of_memory)
{
#ifdef UNDER_ASAN
    /* AddressSanitizer reserves terabytes of address space: no limit on
     * it can leave a few megabytes free. */
    return;
#else
    /* A million empty arguments need 16 MiB of argument array; with the
     * address space capped a few MiB above what is mapped, growing fails,
     * and the parser says so instead of aborting, then works again. */
    enum { N = RESP_MAX_ARGS };
    size_t cap = 32 + (size_t)N * 6;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t len = (size_t)snprintf(s, cap, "*%d\r\n", N);
    for (int i = 0; i < N; i++, len += 6)
        memcpy(s + len, "$0\r\n\r\n", 6);

    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long pages = 0;
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    struct rlimit lim = {.rlim_cur = pages * 4096 + (4 << 20), .rlim_max = RLIM_INFINITY};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);

    struct resp_parser p;
    resp_parser_init(&p);
    size_t need;
    const char *err = NULL;
    ck_assert_int_eq(resp_parse(&p, s, len, &need, &err), -1);
    ck_assert_str_eq(err, "ERR out of memory");
    ck_assert_uint_eq(p.argc, 0);
    ck_assert_int_eq(resp_parse(&p, set_command, strlen(set_command), &need, &err),
                     (ssize_t)strlen(set_command));
    ck_assert_uint_eq(p.argc, 3);
    resp_parser_fini(&p);
    free(s);
#endif
}
END_TEST

/* Writes with room 0, room one short and room exact; returns the bytes. */
#define CHECK_WRITER(call_with, want, want_len)                                               \
    do {                                                                                      \
        char out[128];                                                                        \
        size_t n = call_with(NULL, 0);                                                        \
        ck_assert_uint_eq(n, (want_len));                                                     \
        memset(out, '#', sizeof out);                                                         \
        ck_assert_uint_eq(call_with(out, n - 1), n);                                          \
        for (size_t k = 0; k < sizeof out; k++)                                               \
            ck_assert_msg(out[k] == '#', "a write with too little room touched byte %zu", k); \
        ck_assert_uint_eq(call_with(out, sizeof out), n);                                     \
        ck_assert_msg(memcmp(out, (want), n) == 0, "wrote '%.*s', want '%s'", (int)n, out,   \
                      (want));                                                                \
        ck_assert_msg(out[n] == '#', "wrote past the reply");                                 \
    } while (0)

#define SIMPLE(dst, room) resp_put_simple(dst, room, "OK")
#define SIMPLE_CRLF(dst, room) resp_put_simple(dst, room, "a\r\nb\nc\r")
#define ERROR_REPLY(dst, room) resp_put_error(dst, room, "ERR unknown command 'x\r\n'")
#define INT_ZERO(dst, room) resp_put_int(dst, room, 0)
#define INT_NEG(dst, room) resp_put_int(dst, room, -42)
#define INT_MIN_(dst, room) resp_put_int(dst, room, LLONG_MIN)
#define INT_MAX_(dst, room) resp_put_int(dst, room, LLONG_MAX)
#define BULK(dst, room) resp_put_bulk(dst, room, "a\r\n\0b", 5)
#define BULK_EMPTY(dst, room) resp_put_bulk(dst, room, NULL, 0)
#define BULK_HEADER(dst, room) resp_put_bulk_header(dst, room, 1234567)
#define NULL_BULK(dst, room) resp_put_null(dst, room)
#define NULL_ARRAY(dst, room) resp_put_null_array(dst, room)
#define ARRAY(dst, room) resp_put_array(dst, room, 3)
#define ARRAY_EMPTY(dst, room) resp_put_array(dst, room, 0)

START_TEST(writers)
{
    CHECK_WRITER(SIMPLE, "+OK\r\n", 5);
    CHECK_WRITER(SIMPLE_CRLF, "+a  b c \r\n", 10);
    CHECK_WRITER(ERROR_REPLY, "-ERR unknown command 'x  '\r\n", 28);
    CHECK_WRITER(INT_ZERO, ":0\r\n", 4);
    CHECK_WRITER(INT_NEG, ":-42\r\n", 6);
    CHECK_WRITER(INT_MIN_, ":-9223372036854775808\r\n", 23);
    CHECK_WRITER(INT_MAX_, ":9223372036854775807\r\n", 22);
    CHECK_WRITER(BULK, "$5\r\na\r\n\0b\r\n", 11);
    CHECK_WRITER(BULK_EMPTY, "$0\r\n\r\n", 6);
    CHECK_WRITER(BULK_HEADER, "$1234567\r\n", 10);
    CHECK_WRITER(NULL_BULK, "$-1\r\n", 5);
    CHECK_WRITER(NULL_ARRAY, "*-1\r\n", 5);
    CHECK_WRITER(ARRAY, "*3\r\n", 4);
    CHECK_WRITER(ARRAY_EMPTY, "*0\r\n", 4);
    ck_assert_uint_eq(resp_put_bulk(NULL, 0, NULL, SIZE_MAX - 3), SIZE_MAX);
    ck_assert_uint_eq(resp_put_bulk(NULL, 0, NULL, RESP_MAX_BULK), RESP_MAX_BULK + 14);
}
END_TEST

START_TEST(round_trip)
{
    /* What the writers encode, the parser reads back unchanged. */
    static const char value[] = "\0\r\n*$\"' x";
    char buf[256];
    size_t len = resp_put_array(buf, sizeof buf, 3);
    len += resp_put_bulk(buf + len, sizeof buf - len, "SET", 3);
    len += resp_put_bulk(buf + len, sizeof buf - len, "", 0);
    len += resp_put_bulk(buf + len, sizeof buf - len, value, sizeof value - 1);
    struct resp_parser p;
    resp_parser_init(&p);
    char *copy;
    struct outcome o = parse_copy(&p, buf, len, &copy);
    ck_assert_int_eq(o.taken, (ssize_t)len);
    const char *want[] = {"SET", "", value};
    const size_t lens[] = {3, 0, sizeof value - 1};
    expect_args(&p, want, lens, 3);
    free(copy);
    resp_parser_fini(&p);
}
END_TEST

static Suite *resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, plain_command);
    tcase_add_test(parse, split_everywhere);
    tcase_add_test(parse, big_bulk_need);
    tcase_add_test(parse, pipelined);
    tcase_add_test(parse, binary_bulk);
    tcase_add_test(parse, empty_bulk);
    tcase_add_test(parse, empty_commands);
    tcase_add_loop_test(parse, errors, 0, (int)(sizeof error_cases / sizeof error_cases[0]));
    tcase_add_test(parse, too_long_lines);
    tcase_add_test(parse, longest_inline_line);
    tcase_add_test(parse, limits_refused);
    tcase_add_test(parse, inline_commands);
    tcase_add_test(parse, inline_nul_is_a_byte);
    tcase_add_test(parse, many_arguments);
    tcase_add_test(parse, steady_state);
    tcase_add_test(parse, out_of_memory);
    suite_add_tcase(s, parse);
    TCase *write = tcase_create("write");
    tcase_add_test(write, writers);
    tcase_add_test(write, round_trip);
    suite_add_tcase(s, write);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(resp_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
