/*
 * server.c - the commands about the server (INFO, CONFIG GET, COMMAND),
 * eviction under allkeys-lru, and glob matching.
 *
 * The backends answer these too, so that a pipelined INFO keeps its place
 * among the replies; what only the front knows (clients, the settings) it
 * keeps in the region's header page (struct kv_info).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"

/* ---- glob ------------------------------------------------------------------- */

static int lower(int ch, bool nocase)
{
    return nocase && ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* Redis's patterns: * ? [set] [^set] [a-z] and \ to quote, with
 * stringmatchlen's quirks kept: an empty string matches only an empty
 * pattern (not even "*"), and a range takes whatever byte follows its
 * dash, a ']' too ("[a-]" is the range from ']' to 'a', and the set runs
 * on to the next ']'). Iterative with one point of return for the last
 * star, so a hostile pattern costs at most pattern length times string
 * length. */
bool kv_glob(const char *pat, size_t plen, const char *s, size_t slen, bool nocase)
{
    if (slen == 0)
        return plen == 0;
    size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
    while (i < slen) {
        if (p < plen) {
            char pc = pat[p];
            if (pc == '*') {
                while (p < plen && pat[p] == '*')
                    p++;
                if (p == plen)
                    return true;
                star_p = p;
                star_i = i;
                continue;
            }
            if (pc == '?') {
                p++;
                i++;
                continue;
            }
            if (pc == '[') {
                size_t q = p + 1;
                bool negate = q < plen && pat[q] == '^';
                if (negate)
                    q++;
                bool match = false;
                while (q < plen && pat[q] != ']') {
                    if (pat[q] == '\\' && q + 1 < plen) {
                        q++;
                        match |= lower(pat[q], nocase) == lower(s[i], nocase);
                        q++;
                    } else if (q + 2 < plen && pat[q + 1] == '-') {
                        /* As stringmatchlen: the ends and the byte as
                         * signed chars (a byte of 0x80 or more sorts below
                         * '0'), the ends swapped before case is folded. */
                        int a = (signed char)pat[q], b = (signed char)pat[q + 2];
                        if (a > b) {
                            int t = a;
                            a = b;
                            b = t;
                        }
                        int ch = lower((signed char)s[i], nocase);
                        match |= ch >= lower(a, nocase) && ch <= lower(b, nocase);
                        q += 3;
                    } else {
                        match |= lower((unsigned char)pat[q], nocase) ==
                                 lower((unsigned char)s[i], nocase);
                        q++;
                    }
                }
                if (negate)
                    match = !match;
                if (match) {
                    p = q < plen ? q + 1 : q;
                    i++;
                    continue;
                }
            } else {
                if (pc == '\\' && p + 1 < plen)
                    pc = pat[++p];
                if (lower((unsigned char)pc, nocase) == lower((unsigned char)s[i], nocase)) {
                    p++;
                    i++;
                    continue;
                }
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        p = star_p;
        i = ++star_i;
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

/* ---- eviction ------------------------------------------------------------------ */

/* Redis's approximation: of a few sampled keys of a held stripe, the one
 * used longest ago goes, until enough is freed. */
bool kv_evict(struct kv_ctx *c, uint64_t over, bool inside)
{
    uint64_t freed = 0;
    for (unsigned round = 0; freed < over && round < 64; round++) {
        unsigned stripe = 0;
        uint64_t set = c->txn.set;
        if (!set)
            return false;
        /* Among the stripes held, the one with the most bytes. */
        uint64_t most = 0;
        for (unsigned i = 0; i < KV_STRIPES; i++)
            if ((set & ((uint64_t)1 << i)) && kv_stripe_of(c->st, i)->used >= most) {
                most = kv_stripe_of(c->st, i)->used;
                stripe = i;
            }
        struct kv_stripe *s = kv_stripe_of(c->st, stripe);
        struct kv_dict *d = &s->keys;
        if (!d->used)
            return false;
        int k = d->table[1] ? 1 : 0;
        uint64_t size = d->size[k], *tab = kv_at(c->st, d->table[k]);
        uint64_t best = 0, *best_link = NULL, best_lru = UINT64_MAX;
        uint64_t start = ((uint64_t)c->now_ms * 2654435761u + round * 97) & (size - 1);
        unsigned sampled = 0;
        for (uint64_t b = 0; b < size && sampled < 5; b++) {
            uint64_t *link = &tab[(start + b) & (size - 1)];
            for (; *link && sampled < 5; link = &((struct kv_ent *)kv_at(c->st, *link))->next) {
                struct kv_ent *e = kv_at(c->st, *link);
                sampled++;
                /* Inside a command, not a key it looked up or made (their
                 * lru is now): it holds them, and would write to freed
                 * memory. */
                if (e->lru < best_lru && (!inside || e->lru < (uint64_t)c->now_ms)) {
                    best_lru = e->lru;
                    best = *link;
                    best_link = link;
                }
            }
        }
        if (!best)
            return false;
        uint64_t before = s->used;
        if (c->aof) {
            /* The file must forget it too. */
            struct kv_ent *e = kv_at(c->st, best);
            kv_reply_array(c->aof, 2);
            kv_reply_bulk(c->aof, "DEL", 3);
            kv_reply_bulk(c->aof, e->data, e->klen);
        }
        /* Freed now, however large: eviction is for the memory. */
        bool lazy = c->lazy;
        c->lazy = false;
        kv_drop(c, stripe, best_link, best);
        c->lazy = lazy;
        if (c->txn.full)
            return false;
        freed += before - s->used;
        __atomic_fetch_add(&c->st->hdr->evicted, 1, __ATOMIC_RELAXED);
    }
    return freed >= over;
}

/* Before a write over maxmemory under allkeys-lru, with no stripe held
 * yet: evicts from any stripe, each eviction a transaction of its own
 * (and a DEL record in the append-only file), until under the limit. */
void kv_evict_before(struct kv_ctx *c)
{
    struct kv_header *h = c->st->hdr;
    if (!h->maxmemory || h->policy != 1)
        return;
    static __thread unsigned next;
    struct kv_out rec = {0};
    for (unsigned round = 0; round < 4 * KV_STRIPES; round++) {
        uint64_t used = 0;
        for (unsigned i = 0; i < KV_STRIPES; i++)
            used += __atomic_load_n(&kv_stripe_of(c->st, i)->used, __ATOMIC_RELAXED);
        if (used <= h->maxmemory)
            break;
        unsigned stripe = next++ % KV_STRIPES;
        if (!__atomic_load_n(&kv_stripe_of(c->st, stripe)->keys.used, __ATOMIC_RELAXED))
            continue;
        struct kv_ctx e = {.st = c->st, .slot = c->slot, .out = c->out, .now_ms = c->now_ms,
                           .aof = h->aof_size ? &rec : NULL};
        int err;
        if (kv_txn_begin(&e.txn, c->st, (uint64_t)1 << stripe, c->slot, &err) != 0)
            break;
        rec.len = 0;
        rec.failed = false;
        kv_evict(&e, 1, false);
        if (e.aof && rec.len && (rec.failed || !kv_aof_append(&e.txn, rec.p, rec.len)))
            kv_txn_abort(&e.txn);
        else if (e.txn.full)
            kv_txn_abort(&e.txn);
        else
            kv_txn_commit(&e.txn);
    }
    free(rec.p);
}

static uint64_t used_memory(const struct kv_store *st)
{
    uint64_t used = 0;
    for (unsigned i = 0; i < KV_STRIPES; i++)
        used += __atomic_load_n(&kv_stripe_of(st, i)->used, __ATOMIC_RELAXED);
    return used;
}

bool kv_over_maxmemory(const struct kv_store *st)
{
    uint64_t max = st->hdr->maxmemory;
    return max && used_memory(st) > max;
}

/* ---- INFO ------------------------------------------------------------------------ */

static void human(char *buf, size_t len, uint64_t bytes)
{
    if (bytes < 1024)
        snprintf(buf, len, "%lluB", (unsigned long long)bytes);
    else if (bytes < 1024 * 1024)
        snprintf(buf, len, "%.2fK", (double)bytes / 1024);
    else if (bytes < 1024ULL * 1024 * 1024)
        snprintf(buf, len, "%.2fM", (double)bytes / (1024 * 1024));
    else
        snprintf(buf, len, "%.2fG", (double)bytes / (1024.0 * 1024 * 1024));
}

static bool wants(const struct kv_ctx *c, const char *section)
{
    if (c->argc < 2)
        return true;
    for (size_t i = 1; i < c->argc; i++)
        if (kv_opt_is(&c->argv[i], section) || kv_opt_is(&c->argv[i], "all") ||
            kv_opt_is(&c->argv[i], "everything") || kv_opt_is(&c->argv[i], "default"))
            return true;
    return false;
}

#define LINE(...)                                                                             \
    do {                                                                                      \
        if (at < sizeof text)                                                                 \
            at += (size_t)snprintf(text + at, sizeof text - at, __VA_ARGS__);                 \
    } while (0)

void kv_cmd_info(struct kv_ctx *c)
{
    const struct kv_info *in = kv_info_of(c->st);
    const struct kv_header *h = c->st->hdr;
    char text[4096];
    size_t at = 0;
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t up_ms = (uint64_t)mono.tv_sec * 1000 + (uint64_t)mono.tv_nsec / 1000000 -
                     in->started_mono_ms;
    if (wants(c, "server")) {
        struct utsname u;
        uname(&u);
        LINE("# Server\r\nredis_version:7.0.15\r\nwalls_kv_version:0.1.0\r\nredis_mode:"
             "standalone\r\nos:%s %s %s\r\narch_bits:64\r\nprocess_id:%llu\r\ntcp_port:%llu\r\n"
             "uptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\nexecutable:walls-kv\r\n"
             "backends:%llu\r\nio_threads_active:%llu\r\n\r\n",
             u.sysname, u.release, u.machine, (unsigned long long)in->pid,
             (unsigned long long)in->port, (unsigned long long)(up_ms / 1000),
             (unsigned long long)(up_ms / 86400000), (unsigned long long)in->backends,
             (unsigned long long)in->threads);
    }
    if (wants(c, "clients"))
        LINE("# Clients\r\nconnected_clients:%llu\r\nmaxclients:%llu\r\nblocked_clients:0\r\n\r\n",
             (unsigned long long)__atomic_load_n(&in->clients, __ATOMIC_RELAXED),
             (unsigned long long)in->maxclients);
    if (wants(c, "memory")) {
        uint64_t used = used_memory(c->st);
        char hu[32], hm[32];
        human(hu, sizeof hu, used);
        human(hm, sizeof hm, h->maxmemory);
        uint64_t pending = 0;
        for (unsigned i = 0; i < KV_STRIPES; i++)
            pending += __atomic_load_n(&kv_stripe_of(c->st, i)->ngarbage, __ATOMIC_RELAXED);
        LINE("# Memory\r\nused_memory:%llu\r\nused_memory_human:%s\r\nmaxmemory:%llu\r\n"
             "maxmemory_human:%s\r\nmaxmemory_policy:%s\r\nlazyfree_pending_objects:%llu\r\n"
             "shared_region_bytes:%llu\r\n\r\n",
             (unsigned long long)used, hu, (unsigned long long)h->maxmemory, hm,
             h->policy == 1 ? "allkeys-lru" : "noeviction", (unsigned long long)pending,
             (unsigned long long)h->size);
    }
    if (wants(c, "persistence"))
        LINE("# Persistence\r\nloading:0\r\naof_enabled:%llu\r\naof_current_size:%llu\r\n\r\n",
             (unsigned long long)in->appendonly, (unsigned long long)in->aof_size);
    if (wants(c, "stats"))
        LINE("# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
             "rejected_connections:%llu\r\nexpired_keys:%llu\r\nevicted_keys:%llu\r\n"
             "keyspace_hits:%llu\r\nkeyspace_misses:%llu\r\nbackend_deaths:%llu\r\n"
             "transactions_rolled_back:%llu\r\n\r\n",
             (unsigned long long)in->connections, (unsigned long long)h->commands,
             (unsigned long long)in->rejected, (unsigned long long)h->expired,
             (unsigned long long)h->evicted, (unsigned long long)h->keyspace_hits,
             (unsigned long long)h->keyspace_misses, (unsigned long long)in->backend_deaths,
             (unsigned long long)h->recoveries);
    /* No replicas: what clients that look for a master read there. */
    if (wants(c, "replication"))
        LINE("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    /* Not a cluster: what cluster-aware clients look for. */
    if (wants(c, "cluster"))
        LINE("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    if (wants(c, "keyspace")) {
        uint64_t keys = 0, expires = 0;
        for (unsigned i = 0; i < KV_STRIPES; i++) {
            keys += __atomic_load_n(&kv_stripe_of(c->st, i)->keys.used, __ATOMIC_RELAXED);
            expires += __atomic_load_n(&kv_stripe_of(c->st, i)->nexpires, __ATOMIC_RELAXED);
        }
        LINE("# Keyspace\r\n");
        if (keys)
            LINE("db0:keys=%llu,expires=%llu,avg_ttl=0\r\n", (unsigned long long)keys,
                 (unsigned long long)expires);
    }
    if (at >= sizeof text)
        at = sizeof text - 1;
    /* Sections end with an empty line but the reply does not. */
    while (at >= 2 && text[at - 1] == '\n' && text[at - 3] == '\n')
        at -= 2;
    kv_reply_bulk(c->out, text, at);
}

/* ---- HELP ----------------------------------------------------------------------------- */

/* CONFIG HELP and COMMAND HELP, in Redis's shape (its addReplyHelp): an
 * array of status lines, the first naming the command, each subcommand on
 * a line of its own and its description indented below it, HELP last. The
 * words are walls-kv's, and name only what it runs. */
static const char *const config_help[] = {
    "GET <pattern> [<pattern> ...]",
    "    Return the settings whose names match a glob-style <pattern>, with their",
    "    values. walls-kv's settings are fixed when it starts: SET, RESETSTAT and",
    "    REWRITE are refused.",
};

static const char *const command_help[] = {
    "(no subcommand)",
    "    Return details about every command walls-kv runs.",
    "COUNT",
    "    Return the number of commands walls-kv runs.",
    "INFO [<command-name> ...]",
    "    Return details about the named commands, a null for a name walls-kv",
    "    does not run; with no name, about every command.",
    "DOCS [<command-name> ...]",
    "    Return the commands' documentation: walls-kv keeps none, so the reply",
    "    is always empty.",
};

static void reply_help(struct kv_ctx *c, const char *name, const char *const *lines, size_t n)
{
    char head[80];
    snprintf(head, sizeof head, "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             name);
    kv_reply_array(c->out, (long long)n + 3);
    kv_reply_simple(c->out, head);
    for (size_t i = 0; i < n; i++)
        kv_reply_simple(c->out, lines[i]);
    kv_reply_simple(c->out, "HELP");
    kv_reply_simple(c->out, "    Prints this help.");
}

/* ---- CONFIG GET --------------------------------------------------------------------- */

void kv_subcommand_check(struct kv_ctx *c)
{
    const struct resp_arg *sub = &c->argv[1];
    if (kv_arg_is(&c->argv[0], "config")) {
        if (!kv_arg_is(sub, "get") && !kv_arg_is(sub, "set") && !kv_arg_is(sub, "resetstat") &&
            !kv_arg_is(sub, "rewrite") && !kv_arg_is(sub, "help"))
            kv_reply_error(c->out, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
                           (int)(sub->len > 128 ? 128 : sub->len), sub->p);
        else if (kv_arg_is(sub, "get") && c->argc < 3)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'config|get' command");
        else if (kv_arg_is(sub, "help") && c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'config|help' command");
    } else if (kv_arg_is(&c->argv[0], "command") && c->argc >= 2) {
        if (!kv_arg_is(sub, "count") && !kv_arg_is(sub, "info") && !kv_arg_is(sub, "docs") &&
            !kv_arg_is(sub, "help"))
            kv_reply_error(c->out, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                           (int)(sub->len > 128 ? 128 : sub->len), sub->p);
        else if (kv_arg_is(sub, "count") && c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'command|count' command");
        else if (kv_arg_is(sub, "help") && c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'command|help' command");
    }
}

void kv_cmd_config(struct kv_ctx *c)
{
    if (kv_arg_is(&c->argv[1], "help")) {
        if (c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'config|help' command");
        else
            reply_help(c, "CONFIG", config_help, sizeof config_help / sizeof config_help[0]);
        return;
    }
    if (!kv_arg_is(&c->argv[1], "get")) {
        /* Their arity first, as Redis checks it before it runs them. */
        if (kv_arg_is(&c->argv[1], "set") && c->argc < 4)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'config|set' command");
        else if (kv_arg_is(&c->argv[1], "set") && c->argc % 2)
            kv_reply_error(c->out, "ERR syntax error"); /* a name without its value */
        else if (kv_arg_is(&c->argv[1], "resetstat") && c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'config|resetstat' command");
        else if (kv_arg_is(&c->argv[1], "rewrite") && c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'config|rewrite' command");
        else if (kv_arg_is(&c->argv[1], "set") || kv_arg_is(&c->argv[1], "resetstat") ||
                 kv_arg_is(&c->argv[1], "rewrite"))
            kv_reply_error(c->out, "ERR CONFIG %.*s is not supported by walls-kv: settings are "
                                   "fixed at start",
                           (int)c->argv[1].len, c->argv[1].p);
        else
            kv_reply_error(c->out, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
                           (int)(c->argv[1].len > 128 ? 128 : c->argv[1].len), c->argv[1].p);
        return;
    }
    if (c->argc < 3) {
        kv_reply_error(c->out, "ERR wrong number of arguments for 'config|get' command");
        return;
    }
    const struct kv_info *in = kv_info_of(c->st);
    char port[24], backends[24], threads[24], maxmem[24], maxclients[24];
    snprintf(port, sizeof port, "%llu", (unsigned long long)in->port);
    snprintf(maxclients, sizeof maxclients, "%llu", (unsigned long long)in->maxclients);
    snprintf(backends, sizeof backends, "%llu", (unsigned long long)in->backends);
    snprintf(threads, sizeof threads, "%llu", (unsigned long long)in->threads);
    snprintf(maxmem, sizeof maxmem, "%llu", (unsigned long long)c->st->hdr->maxmemory);
    const char *pairs[][2] = {
        {"port", port},
        {"bind", in->bind},
        {"backends", backends},
        {"threads", threads},
        {"appendonly", in->appendonly ? "yes" : "no"},
        {"appendfsync", in->appendfsync},
        {"dir", in->dir},
        {"maxmemory", maxmem},
        {"maxmemory-policy", in->policy},
        {"maxclients", maxclients},
        {"databases", "1"},
        {"save", ""},
        {"timeout", "0"}, /* idle clients are never closed */
    };
    size_t n = sizeof pairs / sizeof pairs[0];
    /* What each setting found is called in the reply: a name without a
     * glob character as the client wrote it (found whatever its case),
     * otherwise the setting's own. As Redis, a name is looked up whole,
     * but a pattern (a glob character before any NUL byte) ends at its
     * first NUL byte. */
    struct resp_arg shown[sizeof pairs / sizeof pairs[0]] = {{NULL, 0}};
    long long count = 0;
    for (size_t a = 2; a < c->argc; a++) {
        const struct resp_arg *name = &c->argv[a];
        size_t len = strnlen(name->p, name->len);
        bool glob = memchr(name->p, '*', len) || memchr(name->p, '?', len) ||
                    memchr(name->p, '[', len);
        for (size_t i = 0; i < n; i++) {
            if (shown[i].p)
                continue;
            if (glob ? kv_glob(name->p, len, pairs[i][0], strlen(pairs[i][0]), true)
                     : kv_arg_is(name, pairs[i][0])) {
                shown[i] = glob ? (struct resp_arg){pairs[i][0], strlen(pairs[i][0])} : *name;
                count++;
            }
        }
    }
    kv_reply_array(c->out, 2 * count);
    for (size_t i = 0; i < n; i++)
        if (shown[i].p) {
            kv_reply_bulk(c->out, shown[i].p, shown[i].len);
            kv_reply_bulk(c->out, pairs[i][1], strlen(pairs[i][1]));
        }
}

/* ---- COMMAND ------------------------------------------------------------------------- */

static void command_info(struct kv_ctx *c, const struct kv_command *k)
{
    kv_reply_array(c->out, 10);
    kv_reply_bulk(c->out, k->name, strlen(k->name));
    kv_reply_int(c->out, k->arity);
    int nflags = ((k->flags & KV_CMD_WRITE) ? 1 : 0) + ((k->flags & KV_CMD_READONLY) ? 1 : 0) +
                 ((k->flags & KV_CMD_DENYOOM) ? 1 : 0);
    kv_reply_array(c->out, nflags);
    if (k->flags & KV_CMD_WRITE)
        kv_reply_simple(c->out, "write");
    if (k->flags & KV_CMD_READONLY)
        kv_reply_simple(c->out, "readonly");
    if (k->flags & KV_CMD_DENYOOM)
        kv_reply_simple(c->out, "denyoom");
    kv_reply_int(c->out, k->first);
    kv_reply_int(c->out, k->last);
    kv_reply_int(c->out, k->step);
    kv_reply_array(c->out, 0); /* ACL categories */
    kv_reply_array(c->out, 0); /* tips */
    kv_reply_array(c->out, 0); /* key specs */
    kv_reply_array(c->out, 0); /* subcommands */
}

/* The commands the fronts answer (transactions, the connection's own):
 * no backend runs them, but COMMAND lists them with the others. */
static const struct kv_command front_commands[] = {
    {"multi", 1, 0, 0, 0, 0, NULL, NULL},  {"exec", 1, 0, 0, 0, 0, NULL, NULL},
    {"discard", 1, 0, 0, 0, 0, NULL, NULL}, {"client", -2, 0, 0, 0, 0, NULL, NULL},
    {"hello", -1, 0, 0, 0, 0, NULL, NULL},
};
#define NFRONT (sizeof front_commands / sizeof front_commands[0])

static const struct kv_command *any_command(const struct resp_arg *name)
{
    const struct kv_command *k = kv_command_find(name);
    for (size_t i = 0; !k && i < NFRONT; i++)
        if (kv_arg_is(name, front_commands[i].name))
            k = &front_commands[i];
    return k;
}

static void every_command(struct kv_ctx *c)
{
    kv_reply_array(c->out, (long long)(kv_ncommands + NFRONT));
    for (size_t i = 0; i < kv_ncommands; i++)
        command_info(c, &kv_commands[i]);
    for (size_t i = 0; i < NFRONT; i++)
        command_info(c, &front_commands[i]);
}

void kv_cmd_command(struct kv_ctx *c)
{
    if (c->argc == 1) {
        every_command(c);
    } else if (kv_arg_is(&c->argv[1], "count")) {
        if (c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'command|count' command");
        else
            kv_reply_int(c->out, (long long)(kv_ncommands + NFRONT));
    } else if (kv_arg_is(&c->argv[1], "info") && c->argc == 2) {
        /* As Redis 7: no names, every command. */
        every_command(c);
    } else if (kv_arg_is(&c->argv[1], "info")) {
        kv_reply_array(c->out, (long long)c->argc - 2);
        for (size_t i = 2; i < c->argc; i++) {
            const struct kv_command *k = any_command(&c->argv[i]);
            if (k)
                command_info(c, k);
            else
                kv_reply_raw(c->out, "$-1\r\n", 5); /* a null, as Redis's */
        }
    } else if (kv_arg_is(&c->argv[1], "docs")) {
        /* What redis-cli asks at start, for its hints: none here. */
        kv_reply_array(c->out, 0);
    } else if (kv_arg_is(&c->argv[1], "help")) {
        if (c->argc != 2)
            kv_reply_error(c->out, "ERR wrong number of arguments for 'command|help' command");
        else
            reply_help(c, "COMMAND", command_help, sizeof command_help / sizeof command_help[0]);
    } else {
        kv_reply_error(c->out, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                       (int)(c->argv[1].len > 128 ? 128 : c->argv[1].len), c->argv[1].p);
    }
}
