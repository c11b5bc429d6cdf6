/*
 * tabs.h - walls-tabs: a browser-style host for untrusted Lua scripts. Each
 * script is a tab: one walls pool of one worker process under the strict
 * sandbox, whose Lua state lives in that process from event to event. The
 * broker (this program's main thread) owns every capability: it routes
 * messages, runs timers, keeps storage per origin and reads every byte a
 * tab returns as hostile.
 *
 * The wire between them is two byte formats, both read with bounds checks
 * on every field (wire.c):
 *   events (broker to tab, a task's input): LOAD, MESSAGE, TIMER, STORE;
 *   records (tab to broker, a task's output): POST, TIMER, STORE, LOG, END.
 * A message is a value (string, number, boolean or plain table) encoded by
 * wire_value_encode(); the broker passes it on without decoding it.
 */
#ifndef TABS_H
#define TABS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <walls.h>

/* Limits every tab lives under (docs/tabs.md). */
#define TAB_NAME_MAX 64                 /* bytes of a tab or origin name */
#define TAB_MSG_MAX (64u * 1024)        /* bytes of one encoded message */
#define TAB_MSG_DEPTH 32                /* nesting of tables in a message */
#define TAB_OUTPUT_MAX (1u << 20)       /* bytes a tab returns from one event batch */
#define TAB_INPUT_MAX (2u << 20)        /* bytes of events given in one batch: room for a
                                         * 512 KiB script and a full origin's storage */
#define TAB_SCRIPT_MAX (512u * 1024)    /* bytes of a tab's script */
#define TAB_BATCH_EVENTS 8              /* events in one batch, so that one that never
                                         * returns is stopped within 8 limits */
#define TAB_TIMERS_MAX 256              /* pending timers of one tab */
#define TAB_TIMEOUT_MAX_MS (3600 * 1000) /* longest timer */
#define TAB_KEY_MAX 256                 /* bytes of a storage key */
#define TAB_VALUE_MAX (64u * 1024)      /* bytes of a storage value */
#define TAB_STORAGE_MAX (1u << 20)      /* bytes of keys and values per origin */
#define TAB_STORAGE_KEYS 1024           /* keys per origin */
#define TAB_RATE_PER_S 2000             /* messages a tab may post per second... */
#define TAB_RATE_BURST 4000             /* ...after a burst of this many */
#define TAB_QUEUE_MAX 8192              /* undelivered events of one tab... */
#define TAB_QUEUE_BYTES (4u << 20)      /* ...and their bytes */
#define TAB_LOG_MAX 512                 /* bytes of one log line */

/* Events, broker to tab. */
enum tab_event {
    EV_LOAD = 1,    /* u32 flags, u64 memory limit, i32 broker pid, str name,
                     * str origin, str source, u32 n, n x (str key, str value) */
    EV_MESSAGE = 2, /* str from, blob value */
    EV_TIMER = 3,   /* u32 timer id */
    EV_STORE = 4,   /* str key, u8 present, str value: a same-origin tab's change */
    EV_STORE_ALL = 5, /* u32 n, n x (str key, str value): the origin's whole storage,
                       * replacing the tab's copy (sent after changes were held back) */
};
#define LOAD_UNSAFE 1u  /* every standard library, binary chunks, tab.unsafe */
#define LOAD_HOOK 2u    /* stop a long event from a Lua hook (threads mode) */

/* Records, tab to broker. */
enum tab_record {
    REC_POST = 1,  /* str to, blob value */
    REC_TIMER = 2, /* u32 id, u32 ms */
    REC_STORE = 3, /* str key, u8 present, str value */
    REC_LOG = 4,   /* str text */
    REC_END = 5,   /* u8 end state, str detail, u64 lua bytes, u64 cpu ns,
                    * u32 pending timers, u32 the tab's pid; always last */
};
enum tab_end {
    END_OK = 0,
    END_ERROR = 1,        /* a Lua error: detail is its message */
    END_NOMEM = 2,        /* the Lua allocator's limit */
    END_UNRESPONSIVE = 3, /* stopped by the hook (threads mode) */
    END_NOSTATE = 4,      /* the process holds no tab (it was replaced) */
    END_OVERTIME = 5,     /* an event returned after using more CPU than its limit */
};

/* A bounded writer over caller memory. */
struct wbuf {
    uint8_t *p;
    size_t len, cap;
    int overflow; /* set once a write did not fit; later writes are dropped */
};
void wbuf_u8(struct wbuf *w, uint8_t v);
void wbuf_u32(struct wbuf *w, uint32_t v);
void wbuf_u64(struct wbuf *w, uint64_t v);
void wbuf_bytes(struct wbuf *w, const void *p, size_t n);
void wbuf_str(struct wbuf *w, const void *p, size_t n); /* u32 length, bytes */

/* A bounded reader: every read fails (returns -1) past the end. */
struct rbuf {
    const uint8_t *p;
    size_t len, off;
};
int rbuf_u8(struct rbuf *r, uint8_t *v);
int rbuf_u32(struct rbuf *r, uint32_t *v);
int rbuf_u64(struct rbuf *r, uint64_t *v);
/* A string of at most max bytes; *s points into the buffer. */
int rbuf_str(struct rbuf *r, const char **s, uint32_t *n, uint32_t max);

/* Checks that [p, p+n) is one well-formed encoded value; 0 or -1. */
int wire_value_check(const uint8_t *p, size_t n);
/* Appends the value as JSON (strings escaped, tables as objects or arrays)
 * to out, at most cap - 1 bytes, NUL-terminated; the value must have passed
 * wire_value_check(). Returns the length written. */
size_t wire_value_json(const uint8_t *p, size_t n, char *out, size_t cap);
/* Appends s as a JSON string literal. */
size_t json_str(char *out, size_t cap, size_t at, const char *s, size_t n);
/* Makes s[0, n) fit to show on one terminal line, in place: control bytes,
 * C1 controls, bidirectional formatting marks and bytes that are not
 * well-formed UTF-8 become spaces, byte for byte. */
void text_clean(char *s, size_t n);

/* The task every tab runs (tab.c): one batch of events in, records out. */
int tab_task(struct walls_call *call);

/* ---- the broker (broker.c) ---- */

enum tab_outcome {
    OUT_OK = 0,
    OUT_CRASHED,
    OUT_VIOLATION,
    OUT_UNRESPONSIVE,
    OUT_NOMEM,
    OUT_ERROR,
};
const char *tab_outcome_name(enum tab_outcome o);

struct broker_opts {
    int threads;         /* 1: one thread per tab in this process (the shared kitchen) */
    int unsafe_lua;      /* every standard library, bytecode, tab.unsafe */
    int64_t timeout_ms;  /* longest event batch */
    size_t memory;       /* Lua allocator limit per tab, bytes */
    int quiet;           /* no tab logs on stderr */
};

struct tab_info {
    const char *name, *origin, *path;
    int running;      /* 1 while it has an outcome of OK and is not closed */
    int closed;
    int stuck;        /* --threads: its thread is stuck in C code past the limit */
    int busy;         /* a batch is out */
    enum tab_outcome outcome;
    const char *detail;
    uint64_t sent, received, dropped;
    uint64_t lua_bytes, cpu_ns, events;
    unsigned timers, queued;
    const char *last_log;
    const char *result_json; /* last message to the broker, as JSON; "" if none */
};

struct broker;
/* Extra descriptors the loop watches for its owner (the UI). */
typedef void broker_io_fn(void *arg, int fd, short revents);

int broker_create(struct broker **b, const struct broker_opts *opts);
void broker_destroy(struct broker *b);
/* Adds a tab running the script at path (read now); origin NULL = the
 * name. Returns its index or -1 with a message on stderr. */
int broker_add(struct broker *b, const char *path, const char *origin);
size_t broker_count(const struct broker *b);
int broker_find(const struct broker *b, const char *name);
void broker_info(const struct broker *b, size_t i, struct tab_info *info);
/* Starts every tab that is not running: reads its script again, gives it a
 * fresh process and loads it. */
int broker_reload(struct broker *b, size_t i);
/* Stops a tab and frees its process; it stays listed as closed. */
void broker_close(struct broker *b, size_t i);
/* Queues a message from "broker" to tab i (value encoded by the caller). */
int broker_post(struct broker *b, size_t i, const uint8_t *value, size_t len);
/* Called for each message a tab posts to "broker". */
typedef void broker_msg_fn(void *arg, size_t from, const uint8_t *value, size_t len);
void broker_on_message(struct broker *b, broker_msg_fn *fn, void *arg);
int broker_watch(struct broker *b, int fd, short events, broker_io_fn *fn, void *arg);
void broker_unwatch(struct broker *b, int fd);
/* One turn of the loop: submits ready batches, waits at most timeout_ms
 * (or until the next timer) for completions and watched descriptors,
 * handles them, fires due timers. */
int broker_turn(struct broker *b, int timeout_ms);
/* How many --threads tabs have a thread stuck past its limit; those
 * threads cannot be joined, so the program must end with _exit(). */
int broker_stuck(const struct broker *b);
/* 1 when no tab has a batch out, an event queued or a timer pending. */
int broker_idle(const struct broker *b);

int64_t tabs_now_ms(void);
/* Checks a batch's output as the broker does before acting on any of it:
 * NULL when well-formed, else what is wrong. Touches no state. */
const char *broker_check_output(const uint8_t *p, size_t n);

/* The web page of `walls-tabs serve` (ui.c). */
int ui_start(struct broker *b, const char *addr);
void ui_stop(void);

/* `walls-tabs bench` (bench.c). */
int bench_main(int argc, char **argv);

#endif /* TABS_H */
