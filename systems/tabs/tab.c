/*
 * tab.c - the inside of a tab: the walls task that runs a batch of events
 * against the tab's Lua state, which lives in the worker from one task to
 * the next (a process of its own, or one thread in --threads mode).
 *
 * This is the first wall: the Lua VM with a trimmed library (no io, os,
 * package or debug; load() takes text only), an allocator with a limit,
 * and a `tab` table as the only way out. Everything the script does to the
 * world leaves as records in the task's output, which the broker checks.
 * The second wall, the strict sandbox around the process, does not rely on
 * this one: --unsafe-lua takes this one down on purpose.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "tabs.h"

/* Room kept at the end of the output for the END record. */
#define END_ROOM (32 + TAB_LOG_MAX)
/* --threads: the signal of the per-tab CPU-time timer (walls keeps SIGRTMIN). */
#define WATCHDOG_SIGNAL (SIGRTMIN + 4)

/* Every block the allocator gave the tab's state, linked, so that a
 * --threads tab's state can be freed without lua_close() (see
 * state_free). The header keeps malloc's alignment. */
union block {
    struct {
        union block *prev, *next;
    } link;
    max_align_t align;
};

struct tab_state {
    lua_State *L;
    union block *blocks;    /* what the allocator gave out, newest first */
    size_t used, limit;     /* bytes the allocator gave out, and its limit */
    int nomem;              /* the allocator refused since the event began */
    unsigned flags;         /* LOAD_* */
    uint32_t timeout_ms;    /* per event, for the watchdog */
    timer_t watchdog;       /* --threads: this thread's CPU-time timer */
    int has_watchdog;
    volatile sig_atomic_t hook_fired;
    uint8_t *encode_buf;    /* TAB_MSG_MAX bytes for tab.post */
    int load_nomem;         /* the script could not be compiled for want of memory */
    unsigned timers;        /* pending */
    uint32_t next_timer;
    size_t storage_bytes;
    unsigned storage_keys;
    struct wbuf *out;       /* this task's records */
    pid_t broker_pid;
    char name[TAB_NAME_MAX + 1], origin[TAB_NAME_MAX + 1];
};

/* One tab per worker thread: in a tab process, its only worker thread. */
static __thread struct tab_state *tab;

/* Registry keys of the tab's Lua tables and handler. */
static const char KEY_HANDLER[] = "tab.handler";
static const char KEY_TIMERS[] = "tab.timers";
static const char KEY_STORAGE[] = "tab.storage";

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void block_link(struct tab_state *t, union block *b)
{
    b->link.prev = NULL;
    b->link.next = t->blocks;
    if (t->blocks)
        t->blocks->link.prev = b;
    t->blocks = b;
}

static void block_unlink(struct tab_state *t, union block *b)
{
    if (b->link.prev)
        b->link.prev->link.next = b->link.next;
    else
        t->blocks = b->link.next;
    if (b->link.next)
        b->link.next->link.prev = b->link.prev;
}

static void *tab_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct tab_state *t = ud;
    union block *b = ptr ? (union block *)ptr - 1 : NULL;
    if (ptr == NULL)
        osize = 0; /* Lua passes the object's type there */
    if (nsize == 0) {
        if (b) {
            block_unlink(t, b);
            free(b);
        }
        t->used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > t->limit - t->used) {
        t->nomem = 1;
        return NULL;
    }
    if (nsize > SIZE_MAX - sizeof *b) {
        t->nomem = 1;
        return NULL;
    }
    if (b)
        block_unlink(t, b);
    union block *nb = realloc(b, sizeof *b + nsize);
    if (nb == NULL) {
        if (b)
            block_link(t, b);
        t->nomem = 1;
        return NULL;
    }
    block_link(t, nb);
    t->used = t->used - osize + nsize;
    return nb + 1;
}

/* --threads: a thread cannot be killed, so its event is stopped inside the
 * VM. A CPU-time timer of the tab's thread fires a signal at the limit; its
 * handler sets a hook (lua_sethook may be called from a signal handler:
 * the standalone interpreter stops scripts on SIGINT that way), and the
 * hook raises an error at the next instruction. No hook runs before that,
 * so a tab pays nothing for it. A tab stuck in C code (a long string
 * operation), or looping inside a coroutine (the hook is set on the
 * tab's main state only), is not stopped: walls reports its batch TIMEOUT
 * and its thread runs on. */
static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    /* The hook stays until the event is over: a script that catches this
     * error (pcall in a loop) meets it again at its next instruction. */
    luaL_error(L, "event ran past its time limit");
}

static void on_watchdog(int sig)
{
    (void)sig;
    if (tab && tab->L) {
        tab->hook_fired = 1;
        lua_sethook(tab->L, hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
}

static void install_watchdog_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(WATCHDOG_SIGNAL, &sa, NULL);
}

static void watchdog_arm(int64_t ms)
{
    struct itimerspec its = {{0, 0}, {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000}};
    timer_settime(tab->watchdog, 0, &its, NULL);
}

static int watchdog_create(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_watchdog_handler);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = WATCHDOG_SIGNAL;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid); /* sigev_notify_thread_id */
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &tab->watchdog) != 0)
        return -1;
    /* Worker threads start with signals blocked: this one must come in. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, WATCHDOG_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    tab->has_watchdog = 1;
    return 0;
}

/* ---- values: Lua to bytes and back ---- */

static void encode(lua_State *L, int idx, struct wbuf *w, int depth, int key)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        wbuf_u8(w, 'S');
        wbuf_str(w, s, n);
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            wbuf_u8(w, 'I');
            wbuf_u64(w, (uint64_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            uint64_t bits;
            if (!isfinite(d))
                luaL_error(L, "a message cannot hold nan or inf");
            memcpy(&bits, &d, sizeof bits);
            wbuf_u8(w, 'D');
            wbuf_u64(w, bits);
        }
        break;
    case LUA_TBOOLEAN:
        wbuf_u8(w, lua_toboolean(L, idx) ? 'T' : 'F');
        break;
    case LUA_TTABLE: {
        if (key)
            luaL_error(L, "a message's table keys must be strings, numbers or booleans");
        if (depth >= TAB_MSG_DEPTH)
            luaL_error(L, "a message nests tables more than %d deep (or holds a cycle)",
                       TAB_MSG_DEPTH);
        if (lua_getmetatable(L, idx))
            luaL_error(L, "a message's tables must be plain (no metatable)");
        idx = lua_absindex(L, idx);
        luaL_checkstack(L, 4, "message");
        uint32_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            n++;
        }
        wbuf_u8(w, '{');
        wbuf_u32(w, n);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            encode(L, -2, w, depth + 1, 1);
            encode(L, -1, w, depth + 1, 0);
            lua_pop(L, 1);
            if (w->overflow)
                luaL_error(L, "message too large (limit %d bytes)", (int)TAB_MSG_MAX);
        }
        break;
    }
    default:
        luaL_error(L, "a message cannot hold a %s", luaL_typename(L, idx));
    }
    if (w->overflow)
        luaL_error(L, "message too large (limit %d bytes)", (int)TAB_MSG_MAX);
}

static int decode(lua_State *L, struct rbuf *r, int depth)
{
    uint8_t tag;
    uint64_t bits;
    if (rbuf_u8(r, &tag))
        return -1;
    luaL_checkstack(L, 3, "message");
    switch (tag) {
    case 'S': {
        const char *s;
        uint32_t n;
        if (rbuf_str(r, &s, &n, TAB_MSG_MAX))
            return -1;
        lua_pushlstring(L, s, n);
        return 0;
    }
    case 'I':
        if (rbuf_u64(r, &bits))
            return -1;
        lua_pushinteger(L, (lua_Integer)bits);
        return 0;
    case 'D': {
        double d;
        if (rbuf_u64(r, &bits))
            return -1;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
        return 0;
    }
    case 'T':
    case 'F':
        lua_pushboolean(L, tag == 'T');
        return 0;
    case '{': {
        uint32_t n;
        if (depth >= TAB_MSG_DEPTH || rbuf_u32(r, &n) || n > (r->len - r->off) / 2)
            return -1;
        lua_createtable(L, 0, (int)(n < 64 ? n : 64));
        for (uint32_t i = 0; i < n; i++) {
            if (decode(L, r, depth + 1) || decode(L, r, depth + 1))
                return -1;
            if (lua_isnil(L, -2) || lua_type(L, -2) == LUA_TTABLE)
                return -1;
            lua_rawset(L, -3);
        }
        return 0;
    }
    default:
        return -1;
    }
}

/* ---- the tab table ---- */

static void need_room(lua_State *L, size_t n)
{
    if (tab->out == NULL)
        luaL_error(L, "no event is running");
    if (n > tab->out->cap - tab->out->len)
        luaL_error(L, "too much output in one event (limit %d bytes)", (int)TAB_OUTPUT_MAX);
}

static int l_post(lua_State *L)
{
    size_t to_len;
    const char *to = luaL_checklstring(L, 1, &to_len);
    luaL_checkany(L, 2);
    if (to_len == 0 || to_len > TAB_NAME_MAX)
        luaL_argerror(L, 1, "not a tab name");
    /* Encoded in the tab's own buffer: a fresh one per post would be
     * 64 KiB of garbage for the collector each time. */
    uint8_t *buf = tab->encode_buf;
    struct wbuf w = {buf, 0, TAB_MSG_MAX, 0};
    encode(L, 2, &w, 0, 0);
    need_room(L, 1 + 4 + to_len + 4 + w.len);
    wbuf_u8(tab->out, REC_POST);
    wbuf_str(tab->out, to, to_len);
    wbuf_str(tab->out, buf, w.len);
    return 0;
}

static int l_on_message(lua_State *L)
{
    if (!lua_isnil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_HANDLER);
    return 0;
}

static int l_set_timeout(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (ms < 0 || ms > TAB_TIMEOUT_MAX_MS)
        luaL_argerror(L, 1, "a delay in ms from 0 to 3600000");
    if (tab->timers >= TAB_TIMERS_MAX)
        luaL_error(L, "too many pending timers (limit %d)", TAB_TIMERS_MAX);
    need_room(L, 9);
    uint32_t id = ++tab->next_timer;
    /* The record first: what follows may run a finalizer that writes its
     * own records into the room just checked. */
    wbuf_u8(tab->out, REC_TIMER);
    wbuf_u32(tab->out, id);
    wbuf_u32(tab->out, (uint32_t)ms);
    tab->timers++;
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_TIMERS);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, id);
    lua_pushinteger(L, id);
    return 1;
}

static int l_storage_get(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_STORAGE);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    return 1;
}

/* Applies a change to the tab's copy of its origin's storage. */
static void storage_put(lua_State *L, const char *key, size_t klen, const char *val, size_t vlen,
                        int present)
{
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_STORAGE);
    lua_pushlstring(L, key, klen);
    lua_rawget(L, -2);
    if (lua_isstring(L, -1)) {
        tab->storage_bytes -= klen + lua_rawlen(L, -1);
        tab->storage_keys--;
    }
    lua_pop(L, 1);
    lua_pushlstring(L, key, klen);
    if (present) {
        lua_pushlstring(L, val, vlen);
        tab->storage_bytes += klen + vlen;
        tab->storage_keys++;
    } else {
        lua_pushnil(L);
    }
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Replaces the tab's copy of its origin's storage with what r holds (u32
 * n, n x (str key, str value)), as the broker sends it with the script
 * and after it held changes back. */
static int load_storage(lua_State *L, struct rbuf *r)
{
    uint32_t n;
    if (rbuf_u32(r, &n) || n > TAB_STORAGE_KEYS)
        return luaL_error(L, "bad storage from the broker");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_STORAGE);
    tab->storage_bytes = 0;
    tab->storage_keys = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *v;
        uint32_t kl, vl;
        if (rbuf_str(r, &k, &kl, TAB_KEY_MAX) || rbuf_str(r, &v, &vl, TAB_VALUE_MAX))
            return luaL_error(L, "bad storage from the broker");
        storage_put(L, k, kl, v, vl, 1);
    }
    return 0;
}

static int l_storage_set(lua_State *L)
{
    size_t klen, vlen = 0;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *val = NULL;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
            luaL_argerror(L, 2, "a string, a number or nil");
        val = lua_tolstring(L, 2, &vlen);
    }
    if (klen == 0 || klen > TAB_KEY_MAX)
        luaL_argerror(L, 1, "a key of 1 to 256 bytes");
    if (vlen > TAB_VALUE_MAX)
        luaL_argerror(L, 2, "a value of at most 65536 bytes");
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_STORAGE);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    size_t old = lua_isstring(L, -1) ? klen + lua_rawlen(L, -1) : 0;
    int had = old > 0;
    lua_pop(L, 2);
    if (val && (tab->storage_bytes - old + klen + vlen > TAB_STORAGE_MAX ||
                tab->storage_keys + !had > TAB_STORAGE_KEYS))
        luaL_error(L, "storage quota exceeded (%d bytes, %d keys per origin)",
                   (int)TAB_STORAGE_MAX, TAB_STORAGE_KEYS);
    need_room(L, 1 + 4 + klen + 1 + 4 + vlen);
    wbuf_u8(tab->out, REC_STORE); /* the record first, as in set_timeout */
    wbuf_str(tab->out, key, klen);
    wbuf_u8(tab->out, val != NULL);
    wbuf_str(tab->out, val ? val : "", vlen);
    storage_put(L, key, klen, val, vlen, val != NULL);
    return 0;
}

static int l_log(lua_State *L)
{
    luaL_Buffer b;
    int n = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len > TAB_LOG_MAX)
        len = TAB_LOG_MAX;
    need_room(L, 1 + 4 + len);
    wbuf_u8(tab->out, REC_LOG);
    wbuf_str(tab->out, s, len);
    return 0;
}

/* load() with text chunks only: binary chunks are the VM's soft spot. */
static int l_load_text(lua_State *L)
{
    int top = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    if (top >= 2)
        lua_pushvalue(L, 2);
    else
        lua_pushnil(L);
    lua_pushliteral(L, "t");
    int nargs = 3;
    if (top >= 4) {
        lua_pushvalue(L, 4);
        nargs = 4;
    }
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L) - top;
}

/* --unsafe-lua only: a raw system call, standing for whatever native code a
 * script that broke out of the VM would run. */
static int l_syscall(lua_State *L)
{
    long a[7] = {0};
    int n = lua_gettop(L);
    if (n < 1 || n > 7)
        return luaL_error(L, "syscall(nr, up to 6 arguments)");
    for (int i = 0; i < n; i++)
        a[i] = (long)luaL_checkinteger(L, i + 1);
    long r = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    lua_pushinteger(L, r);
    lua_pushinteger(L, r < 0 ? errno : 0);
    return 2;
}

static void open_safe_libs(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},          {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},   {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},    {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    static const char *const removed[] = {"dofile", "loadfile", NULL};
    for (const char *const *name = removed; *name; name++) {
        lua_pushnil(L);
        lua_setglobal(L, *name);
    }
    /* Lua 5.4.4 overflows the C stack on deeply nested coroutine.close. */
    lua_getglobal(L, LUA_COLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "close");
    lua_pop(L, 1);
    lua_getglobal(L, "load");
    lua_pushcclosure(L, l_load_text, 1);
    lua_setglobal(L, "load");
}

/* Builds the state: libraries, the tab table, storage from the broker.
 * Runs protected (lua_pcall) so a memory error is an answer. */
static int setup(lua_State *L)
{
    struct rbuf *r = lua_touserdata(L, 1);
    if (tab->flags & LOAD_UNSAFE)
        luaL_openlibs(L);
    else
        open_safe_libs(L);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_TIMERS);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, KEY_STORAGE);

    static const luaL_Reg api[] = {
        {"post", l_post}, {"on_message", l_on_message}, {"set_timeout", l_set_timeout},
        {"log", l_log},   {NULL, NULL},
    };
    luaL_newlib(L, api);
    lua_pushstring(L, tab->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, tab->origin);
    lua_setfield(L, -2, "origin");
    static const luaL_Reg storage[] = {{"get", l_storage_get}, {"set", l_storage_set}, {NULL, NULL}};
    luaL_newlib(L, storage);
    lua_setfield(L, -2, "storage");
    if (tab->flags & LOAD_UNSAFE) {
        lua_newtable(L);
        lua_pushcfunction(L, l_syscall);
        lua_setfield(L, -2, "syscall");
        lua_pushinteger(L, tab->broker_pid);
        lua_setfield(L, -2, "broker_pid");
        lua_setfield(L, -2, "unsafe");
    } else {
        lua_pushcfunction(L, l_log);
        lua_setglobal(L, "print");
    }
    /* Known as a loaded module too: an argument error of a function called
     * with no name of its own (through pcall, as a handler) names it
     * "tab.post", not "?". */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "tab");
    lua_pop(L, 1);
    lua_setglobal(L, "tab");

    return load_storage(L, r);
}

/* Delivers one message, timer or storage change; runs protected. */
static int deliver(lua_State *L)
{
    struct rbuf *r = lua_touserdata(L, 1);
    int kind = (int)lua_tointeger(L, 2);
    if (kind == EV_STORE) {
        const char *k, *v;
        uint32_t kl, vl;
        uint8_t present;
        if (rbuf_str(r, &k, &kl, TAB_KEY_MAX) || rbuf_u8(r, &present) ||
            rbuf_str(r, &v, &vl, TAB_VALUE_MAX))
            return luaL_error(L, "bad storage event from the broker");
        storage_put(L, k, kl, v, vl, present != 0);
        return 0;
    }
    if (kind == EV_STORE_ALL) /* the broker held changes back: its whole storage */
        return load_storage(L, r);
    if (kind == EV_MESSAGE) {
        const char *from;
        uint32_t from_len, vlen;
        if (rbuf_str(r, &from, &from_len, TAB_NAME_MAX) || rbuf_u32(r, &vlen) ||
            vlen > r->len - r->off)
            return luaL_error(L, "bad message from the broker");
        struct rbuf value = {r->p + r->off, vlen, 0};
        r->off += vlen;
        lua_getfield(L, LUA_REGISTRYINDEX, KEY_HANDLER);
        if (!lua_isfunction(L, -1))
            return 0; /* no handler: the message is read and dropped */
        lua_pushlstring(L, from, from_len);
        if (decode(L, &value, 0) || value.off != value.len)
            return luaL_error(L, "bad message from the broker");
        lua_call(L, 2, 0);
        return 0;
    }
    uint32_t id;
    if (rbuf_u32(r, &id))
        return luaL_error(L, "bad timer from the broker");
    lua_getfield(L, LUA_REGISTRYINDEX, KEY_TIMERS);
    lua_rawgeti(L, -1, id);
    if (!lua_isfunction(L, -1))
        return 0;
    lua_pushnil(L);
    lua_rawseti(L, -3, id);
    tab->timers--;
    lua_call(L, 0, 0);
    return 0;
}

static void state_free(void *p)
{
    struct tab_state *t = p;
    if (t == NULL)
        return;
    if (t->flags & LOAD_HOOK) {
        /* --threads: lua_close() would run the script's finalizers, and
         * Lua runs no hook inside one, so one that loops could not be
         * stopped and would hold its thread, and the broker's close or
         * reload behind it, for ever. The state's blocks are freed as
         * they are: a tab's finalizers do not run when it goes. */
        while (t->blocks) {
            union block *b = t->blocks;
            t->blocks = b->link.next;
            free(b);
        }
        t->L = NULL;
    }
    if (t->has_watchdog)
        timer_delete(t->watchdog);
    if (t->L)
        lua_close(t->L);
    free(t->encode_buf);
    free(t);
}

/* --threads: a tab's thread ends with its pool (close, reload), and its
 * state must go with it. */
static pthread_key_t state_key;

static void make_state_key(void)
{
    pthread_key_create(&state_key, state_free);
}

static void tab_free(void)
{
    pthread_setspecific(state_key, NULL);
    state_free(tab);
    tab = NULL;
}

/* Runs fn(rbuf, kind) protected; returns END_* and the detail. */
/* The error on top of the stack, in words. Only a string is copied as it
 * is: converting anything else takes memory, which may be what ran out,
 * and this runs unprotected. */
static void error_text(lua_State *L, char *detail, size_t cap)
{
    if (lua_type(L, -1) == LUA_TSTRING) {
        /* Whole, up to cap: a NUL in it shown as a space, not an end. */
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len > cap - 1)
            len = cap - 1;
        for (size_t i = 0; i < len; i++)
            detail[i] = s[i] ? s[i] : ' ';
        detail[len] = '\0';
    } else {
        snprintf(detail, cap, "(error object is a %s value)", luaL_typename(L, -1));
    }
}

static int run_protected(lua_CFunction fn, struct rbuf *r, int kind, char *detail, size_t cap)
{
    lua_State *L = tab->L;
    tab->nomem = 0;
    tab->hook_fired = 0;
    if (tab->has_watchdog)
        watchdog_arm(tab->timeout_ms);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, r);
    lua_pushinteger(L, kind);
    int rc = lua_pcall(L, 2, 0, 0);
    if (tab->has_watchdog) {
        watchdog_arm(0);
        lua_sethook(L, NULL, 0, 0);
    }
    if (rc == LUA_OK)
        return END_OK;
    error_text(L, detail, cap);
    lua_settop(L, 0);
    if (tab->hook_fired)
        return END_UNRESPONSIVE;
    return rc == LUA_ERRMEM || tab->load_nomem ? END_NOMEM : END_ERROR;
}

/* Compiles the script (r holds its source) and runs its top level;
 * protected. */
static int run_chunk(lua_State *L)
{
    const struct rbuf *r = lua_touserdata(L, 1);
    char chunk[TAB_NAME_MAX + 8];
    snprintf(chunk, sizeof chunk, "@%s.lua", tab->name);
    /* As the lua command loads a file: a UTF-8 byte order mark, then a
     * first line starting with # (#!/usr/bin/env lua), are skipped; the
     * line's end stays, so line numbers are the file's. */
    const char *src = (const char *)r->p;
    size_t len = r->len;
    if (len >= 3 && memcmp(src, "\xef\xbb\xbf", 3) == 0) {
        src += 3;
        len -= 3;
    }
    if (len > 0 && src[0] == '#') {
        const char *nl = memchr(src, '\n', len);
        len = nl ? len - (size_t)(nl - src) : 0;
        src = nl ? nl : src + len;
    }
    int rc = luaL_loadbufferx(L, src, len, chunk, tab->flags & LOAD_UNSAFE ? "bt" : "t");
    if (rc != LUA_OK) {
        tab->load_nomem = rc == LUA_ERRMEM;
        return lua_error(L);
    }
    lua_call(L, 0, 0);
    return 0;
}

static int load(struct rbuf *r, struct wbuf *out, char *detail, size_t cap)
{
    uint32_t flags, timeout_ms, name_len, origin_len, src_len;
    uint64_t limit;
    uint32_t pid;
    const char *name, *origin, *src;
    if (rbuf_u32(r, &flags) || rbuf_u32(r, &timeout_ms) || rbuf_u64(r, &limit) ||
        rbuf_u32(r, &pid) || rbuf_str(r, &name, &name_len, TAB_NAME_MAX) ||
        rbuf_str(r, &origin, &origin_len, TAB_NAME_MAX) ||
        rbuf_str(r, &src, &src_len, TAB_INPUT_MAX)) {
        snprintf(detail, cap, "bad load event from the broker");
        return END_ERROR;
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, make_state_key);
    tab_free();
    tab = calloc(1, sizeof *tab);
    if (tab == NULL) {
        snprintf(detail, cap, "not enough memory");
        return END_NOMEM;
    }
    pthread_setspecific(state_key, tab);
    tab->encode_buf = malloc(TAB_MSG_MAX);
    if (tab->encode_buf == NULL) {
        snprintf(detail, cap, "not enough memory");
        return END_NOMEM;
    }
    tab->flags = flags;
    tab->timeout_ms = timeout_ms;
    tab->limit = (size_t)limit;
    tab->broker_pid = (pid_t)pid;
    tab->out = out;
    memcpy(tab->name, name, name_len);
    memcpy(tab->origin, origin, origin_len);
    tab->L = lua_newstate(tab_alloc, tab);
    if (tab->L == NULL) {
        snprintf(detail, cap, "not enough memory");
        return END_NOMEM;
    }
    if ((flags & LOAD_HOOK) && watchdog_create() != 0) {
        snprintf(detail, cap, "cannot create the CPU-time watchdog: %s", strerror(errno));
        return END_ERROR;
    }
    int rc = run_protected(setup, r, 0, detail, cap);
    if (rc != END_OK)
        return rc;
    struct rbuf source = {(const uint8_t *)src, src_len, 0};
    rc = run_protected(run_chunk, &source, 0, detail, cap);
    tab->load_nomem = 0;
    return rc;
}

int tab_task(struct walls_call *call)
{
    struct rbuf r = {call->in, call->in_len, 0};
    size_t cap = call->out_cap > END_ROOM ? call->out_cap - END_ROOM : 0;
    struct wbuf out = {call->out, 0, cap, 0};
    char detail[TAB_LOG_MAX + 1] = "";
    int end = END_OK;
    int64_t cpu0 = thread_cpu_ns();

    while (end == END_OK && r.off < r.len) {
        uint8_t kind;
        (void)rbuf_u8(&r, &kind);
        if (kind == EV_LOAD) {
            int64_t ev0 = thread_cpu_ns();
            end = load(&r, &out, detail, sizeof detail);
            int64_t used = thread_cpu_ns() - ev0;
            if (end == END_OK && tab->timeout_ms && used > (int64_t)tab->timeout_ms * 1000000) {
                snprintf(detail, sizeof detail, "%lld", (long long)(used / 1000000));
                end = END_OVERTIME;
            }
            continue;
        }
        if (tab == NULL || tab->L == NULL) {
            snprintf(detail, sizeof detail, "this process holds no tab");
            end = END_NOSTATE;
            break;
        }
        if (kind != EV_MESSAGE && kind != EV_TIMER && kind != EV_STORE && kind != EV_STORE_ALL) {
            snprintf(detail, sizeof detail, "unknown event %u from the broker", kind);
            end = END_ERROR;
            break;
        }
        tab->out = &out;
        int64_t ev0 = thread_cpu_ns();
        end = run_protected(deliver, &r, kind, detail, sizeof detail);
        int64_t used = thread_cpu_ns() - ev0;
        /* A batch's limit is that of all its events: one that returned
         * having used more than its own share is over it all the same. */
        if (end == END_OK && tab->timeout_ms && used > (int64_t)tab->timeout_ms * 1000000) {
            snprintf(detail, sizeof detail, "%lld", (long long)(used / 1000000));
            end = END_OVERTIME;
        }
    }

    struct wbuf *w = &out;
    w->cap = call->out_cap; /* the END record has its room */
    wbuf_u8(w, REC_END);
    wbuf_u8(w, (uint8_t)end);
    wbuf_str(w, detail, strnlen(detail, TAB_LOG_MAX));
    wbuf_u64(w, tab ? tab->used : 0);
    wbuf_u64(w, (uint64_t)(thread_cpu_ns() - cpu0));
    wbuf_u32(w, tab ? tab->timers : 0);
    wbuf_u32(w, (uint32_t)getpid()); /* for the broker to watch while the tab is idle */
    if (tab)
        tab->out = NULL;
    call->out_len = w->len;
    return 0;
}
