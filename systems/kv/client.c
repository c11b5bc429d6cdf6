/*
 * client.c - the commands about the connection itself, answered by the
 * front thread that owns it, never by a backend: CLIENT (ID, GETNAME,
 * SETNAME, INFO, HELP) and HELLO. Client libraries send them as they
 * connect (HELLO to learn the protocol, CLIENT SETNAME to label the
 * connection); replies and error words are redis-server 7.0's.
 *
 * walls-kv speaks RESP2 only: HELLO 3 gets the NOPROTO error, which client
 * libraries take as "stay on RESP2". Inside a MULTI these commands are
 * refused, and the EXEC with them: a backend runs the queued commands and
 * knows nothing of connections.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cmd.h"
#include "kv.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kv_client_init(struct kv_client *cl, uint64_t id, int fd)
{
    cl->id = id;
    cl->name = NULL;
    cl->name_len = 0;
    cl->born_ms = mono_ms();
    cl->fd = fd;
}

void kv_client_fini(struct kv_client *cl)
{
    free(cl->name);
    cl->name = NULL;
    cl->name_len = 0;
}

bool kv_is_client_cmd(const struct resp_arg *name)
{
    return kv_arg_is(name, "client") || kv_arg_is(name, "hello");
}

/* Redis's rule for names: printable ASCII without blanks. */
static bool name_ok(const struct resp_arg *a)
{
    for (size_t i = 0; i < a->len; i++)
        if (a->p[i] < '!' || a->p[i] > '~')
            return false;
    return true;
}

/* Sets the name (an empty one clears it); false with the error written
 * when the name is refused or memory runs out. */
static bool set_name(struct kv_client *cl, const struct resp_arg *a, struct kv_out *out)
{
    if (!name_ok(a)) {
        kv_reply_error(out, "ERR Client names cannot contain spaces, newlines or special "
                            "characters.");
        return false;
    }
    char *copy = NULL;
    if (a->len > 0) {
        if (!(copy = malloc(a->len))) {
            kv_reply_error(out, "ERR out of memory");
            return false;
        }
        memcpy(copy, a->p, a->len);
    }
    free(cl->name);
    cl->name = copy;
    cl->name_len = a->len;
    return true;
}

/* "a.b.c.d:port" of the socket's peer (or its own end), "?" when unknown. */
static void endpoint(int fd, bool peer, char *buf, size_t len)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&sa, &sl)
                  : getsockname(fd, (struct sockaddr *)&sa, &sl);
    char ip[INET_ADDRSTRLEN];
    if (rc != 0 || sa.sin_family != AF_INET || !inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip))
        snprintf(buf, len, "?");
    else
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(sa.sin_port));
}

/* CLIENT INFO's line: the fields Redis gives that mean something here. */
static void info_line(const struct kv_client *cl, struct kv_out *out)
{
    char addr[64], laddr[64];
    endpoint(cl->fd, true, addr, sizeof addr);
    endpoint(cl->fd, false, laddr, sizeof laddr);
    char head[256];
    int n = snprintf(head, sizeof head, "id=%llu addr=%s laddr=%s fd=%d name=",
                     (unsigned long long)cl->id, addr, laddr, cl->fd);
    char tail[160];
    int m = snprintf(tail, sizeof tail,
                     " age=%lld idle=0 flags=N db=0 multi=-1 user=default resp=2\n",
                     (long long)((mono_ms() - cl->born_ms) / 1000));
    if (n < 0 || m < 0)
        return;
    size_t total = (size_t)n + cl->name_len + (size_t)m;
    char *line = malloc(total);
    if (!line) {
        kv_reply_error(out, "ERR out of memory");
        return;
    }
    memcpy(line, head, (size_t)n);
    if (cl->name_len)
        memcpy(line + n, cl->name, cl->name_len);
    memcpy(line + (size_t)n + cl->name_len, tail, (size_t)m);
    kv_reply_bulk(out, line, total);
    free(line);
}

static const char *const client_help[] = {
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "SETNAME <connection-name>",
    "    Assign the name <connection-name> to the current connection.",
    "HELP",
    "    Prints this help.",
};

static void client(struct kv_client *cl, const struct resp_arg *argv, size_t argc,
                   struct kv_out *out)
{
    if (argc < 2) {
        kv_reply_error(out, "ERR wrong number of arguments for 'client' command");
        return;
    }
    const struct resp_arg *sub = &argv[1];
    /* name, and the argument count it takes (argv[0] and argv[1] included). */
    static const struct {
        const char *name;
        size_t argc;
    } subs[] = {{"id", 2}, {"getname", 2}, {"setname", 3}, {"info", 2}, {"help", 2}};
    size_t i = 0;
    while (i < sizeof subs / sizeof subs[0] && !kv_arg_is(sub, subs[i].name))
        i++;
    if (i == sizeof subs / sizeof subs[0]) {
        kv_reply_error(out, "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
                       (int)(sub->len > 128 ? 128 : sub->len), sub->p);
        return;
    }
    if (argc != subs[i].argc) {
        kv_reply_error(out, "ERR wrong number of arguments for 'client|%s' command",
                       subs[i].name);
        return;
    }
    switch (i) {
    case 0:
        kv_reply_int(out, (long long)cl->id);
        break;
    case 1:
        if (cl->name)
            kv_reply_bulk(out, cl->name, cl->name_len);
        else
            kv_reply_null(out);
        break;
    case 2:
        if (set_name(cl, &argv[2], out))
            kv_reply_ok(out);
        break;
    case 3:
        info_line(cl, out);
        break;
    default:
        kv_reply_array(out, (long long)(sizeof client_help / sizeof client_help[0]));
        for (size_t k = 0; k < sizeof client_help / sizeof client_help[0]; k++)
            kv_reply_simple(out, client_help[k]);
        break;
    }
}

/* A name of HELLO's map, and its value when it is a string. */
static void field(struct kv_out *out, const char *name, const char *value)
{
    kv_reply_bulk(out, name, strlen(name));
    if (value)
        kv_reply_bulk(out, value, strlen(value));
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]], each
 * option acted on as it is read, as Redis does: an AUTH that fails ends
 * the command there, a SETNAME before a bad option stays. The server has
 * no passwords: the user "default" (as spelt: user names are
 * case-sensitive) is let in with any, as Redis lets in its password-less
 * default user; any other user is refused. Protocol 3 is a version Redis
 * knows, so its options are read first; then it is refused, RESP2 being
 * all walls-kv speaks. */
static void hello(struct kv_client *cl, const struct resp_arg *argv, size_t argc,
                  struct kv_out *out)
{
    long long ver = 2;
    if (argc >= 2) {
        if (!kv_arg_ll(&argv[1], &ver)) {
            kv_reply_error(out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            kv_reply_error(out, "NOPROTO unsupported protocol version");
            return;
        }
    }
    for (size_t j = 2; j < argc; j++) {
        size_t more = argc - 1 - j;
        if (kv_opt_is(&argv[j], "auth") && more >= 2) {
            const struct resp_arg *user = &argv[j + 1];
            if (user->len != 7 || memcmp(user->p, "default", 7) != 0) {
                kv_reply_error(out,
                               "WRONGPASS invalid username-password pair or user is disabled.");
                return;
            }
            j += 2;
        } else if (kv_opt_is(&argv[j], "setname") && more >= 1) {
            if (!set_name(cl, &argv[j + 1], out))
                return;
            j++;
        } else {
            kv_reply_error(out, "ERR Syntax error in HELLO option '%.*s'",
                           (int)(argv[j].len > 128 ? 128 : argv[j].len), argv[j].p);
            return;
        }
    }
    if (ver == 3) {
        kv_reply_error(out, "NOPROTO unsupported protocol version");
        return;
    }
    /* RESP2: the map as a flat array of names and values. */
    kv_reply_array(out, 14);
    field(out, "server", "redis");
    field(out, "version", "7.0.15");
    field(out, "proto", NULL);
    kv_reply_int(out, 2);
    field(out, "id", NULL);
    kv_reply_int(out, (long long)cl->id);
    field(out, "mode", "standalone");
    field(out, "role", "master");
    field(out, "modules", NULL);
    kv_reply_array(out, 0);
}

void kv_client_cmd(struct kv_client *cl, const struct resp_arg *argv, size_t argc, bool in_multi,
                   struct kv_out *out)
{
    if (in_multi) {
        kv_reply_error(out, "ERR walls-kv runs %s at once, never inside MULTI",
                       kv_arg_is(&argv[0], "hello") ? "HELLO" : "CLIENT");
        return;
    }
    if (kv_arg_is(&argv[0], "hello"))
        hello(cl, argv, argc, out);
    else
        client(cl, argv, argc, out);
}
