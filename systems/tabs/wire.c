/*
 * wire.c - the byte formats between the broker and its tabs: bounded
 * writers and readers, and the checker and JSON renderer of encoded
 * message values.
 *
 * A value is one tag byte and its body:
 *   'S' u32 length, bytes     a string
 *   'I' 8 bytes               a Lua integer
 *   'D' 8 bytes               a Lua float (NaN and infinities refused)
 *   'T', 'F'                  true, false
 *   '{' u32 n, n pairs        a table: each pair a key (S, I, D, T or F)
 *                             then a value, nested at most TAB_MSG_DEPTH
 * Multi-byte numbers are little-endian. Every reader here takes its bytes
 * from the other side of a wall and trusts no length in them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tabs.h"

void wbuf_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

void wbuf_u8(struct wbuf *w, uint8_t v)
{
    wbuf_bytes(w, &v, 1);
}

void wbuf_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    wbuf_bytes(w, b, sizeof b);
}

void wbuf_u64(struct wbuf *w, uint64_t v)
{
    wbuf_u32(w, (uint32_t)v);
    wbuf_u32(w, (uint32_t)(v >> 32));
}

void wbuf_str(struct wbuf *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->overflow = 1;
        return;
    }
    wbuf_u32(w, (uint32_t)n);
    wbuf_bytes(w, p, n);
}

int rbuf_u8(struct rbuf *r, uint8_t *v)
{
    if (r->len - r->off < 1)
        return -1;
    *v = r->p[r->off++];
    return 0;
}

int rbuf_u32(struct rbuf *r, uint32_t *v)
{
    if (r->len - r->off < 4)
        return -1;
    const uint8_t *b = r->p + r->off;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    r->off += 4;
    return 0;
}

int rbuf_u64(struct rbuf *r, uint64_t *v)
{
    uint32_t lo, hi;
    if (rbuf_u32(r, &lo) || rbuf_u32(r, &hi))
        return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

int rbuf_str(struct rbuf *r, const char **s, uint32_t *n, uint32_t max)
{
    uint32_t len;
    if (rbuf_u32(r, &len) || len > max || r->len - r->off < len)
        return -1;
    *s = (const char *)(r->p + r->off);
    *n = len;
    r->off += len;
    return 0;
}

static int check_value(struct rbuf *r, int depth, int key)
{
    uint8_t tag;
    uint64_t bits;
    if (rbuf_u8(r, &tag))
        return -1;
    switch (tag) {
    case 'S': {
        const char *s;
        uint32_t n;
        return rbuf_str(r, &s, &n, TAB_MSG_MAX);
    }
    case 'I':
        return rbuf_u64(r, &bits);
    case 'D': {
        double d;
        if (rbuf_u64(r, &bits))
            return -1;
        memcpy(&d, &bits, sizeof d);
        return isfinite(d) ? 0 : -1;
    }
    case 'T':
    case 'F':
        return 0;
    case '{': {
        uint32_t n;
        if (key || depth >= TAB_MSG_DEPTH || rbuf_u32(r, &n))
            return -1;
        /* Each pair takes at least two bytes: a count past what is left is a lie. */
        if (n > (r->len - r->off) / 2)
            return -1;
        for (uint32_t i = 0; i < n; i++)
            if (check_value(r, depth + 1, 1) || check_value(r, depth + 1, 0))
                return -1;
        return 0;
    }
    default:
        return -1;
    }
}

int wire_value_check(const uint8_t *p, size_t n)
{
    struct rbuf r = {p, n, 0};
    if (n == 0 || n > TAB_MSG_MAX || check_value(&r, 0, 0) || r.off != n)
        return -1;
    return 0;
}

/* Appends up to cap - 1 bytes, keeping out NUL-terminated. */
static size_t put(char *out, size_t cap, size_t at, const char *s, size_t n)
{
    if (at + 1 >= cap)
        return at;
    if (n > cap - 1 - at)
        n = cap - 1 - at;
    memcpy(out + at, s, n);
    out[at + n] = '\0';
    return at + n;
}

/* The length of the well-formed UTF-8 sequence at s (at most n bytes):
 * 2 to 4, or 0 for a byte that starts none (a stray continuation, an
 * overlong form, a surrogate, past U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4                         ? 4
                                                                  : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

void text_clean(char *s, size_t n)
{
    unsigned char *p = (unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1 : utf8_len(p + i, n - i);
        uint32_t cp = len == 2   ? (uint32_t)(p[i] & 0x1f) << 6 | (p[i + 1] & 0x3f)
                      : len == 3 ? (uint32_t)(p[i] & 0x0f) << 12 | (uint32_t)(p[i + 1] & 0x3f) << 6 |
                                       (p[i + 2] & 0x3f)
                                 : p[i];
        int bad = len == 0 || (len == 1 && (cp < 0x20 || cp == 0x7f)) ||
                   (len == 2 && cp <= 0x9f) /* C1 controls */ ||
                   (len == 3 && ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
                                 cp == 0x200e || cp == 0x200f || cp == 0x061c));
        if (len == 0)
            len = 1;
        if (bad)
            memset(p + i, ' ', len);
        i += len;
    }
}

size_t json_str(char *out, size_t cap, size_t at, const char *s, size_t n)
{
    at = put(out, cap, at, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            at = put(out, cap, at, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            at = put(out, cap, at, esc, 6);
        } else if (c >= 0x80) {
            /* Well-formed UTF-8 goes as it is, whole or not at all; any
             * other byte becomes U+FFFD, so the JSON stays valid UTF-8. */
            size_t len = utf8_len((const unsigned char *)s + i, n - i);
            if (len == 0) {
                at = put(out, cap, at, "\\ufffd", 6);
            } else {
                if (at + len >= cap) {
                    /* No room for it whole: the output is full, as a
                     * caller that checks for a cut (at cap - 1) sees. */
                    if (at + 1 < cap) {
                        memset(out + at, ' ', cap - 1 - at);
                        out[cap - 1] = '\0';
                        at = cap - 1;
                    }
                    break;
                }
                at = put(out, cap, at, s + i, len);
                i += len - 1;
            }
        } else {
            at = put(out, cap, at, (const char *)&c, 1);
        }
    }
    return put(out, cap, at, "\"", 1);
}

static size_t json_number(struct rbuf *r, uint8_t tag, char *out, size_t cap, size_t at)
{
    uint64_t bits = 0;
    char num[40];
    (void)rbuf_u64(r, &bits);
    if (tag == 'I') {
        snprintf(num, sizeof num, "%lld", (long long)(int64_t)bits);
    } else {
        double d;
        memcpy(&d, &bits, sizeof d);
        snprintf(num, sizeof num, "%.17g", d);
    }
    return put(out, cap, at, num, strlen(num));
}

/* A table is an array when its keys are exactly 1..n in order. */
static int table_is_array(struct rbuf r, uint32_t n)
{
    for (uint32_t i = 1; i <= n; i++) {
        uint8_t tag;
        uint64_t v;
        if (rbuf_u8(&r, &tag) || tag != 'I' || rbuf_u64(&r, &v) || v != i)
            return 0;
        if (check_value(&r, 1, 0))
            return 0;
    }
    return 1;
}

static size_t json_value(struct rbuf *r, char *out, size_t cap, size_t at, int as_key)
{
    uint8_t tag = 0;
    (void)rbuf_u8(r, &tag);
    switch (tag) {
    case 'S': {
        const char *s = "";
        uint32_t n = 0;
        (void)rbuf_str(r, &s, &n, TAB_MSG_MAX);
        return json_str(out, cap, at, s, n);
    }
    case 'I':
    case 'D':
        if (as_key)
            at = put(out, cap, at, "\"", 1);
        at = json_number(r, tag, out, cap, at);
        return as_key ? put(out, cap, at, "\"", 1) : at;
    case 'T':
        return put(out, cap, at, as_key ? "\"true\"" : "true", as_key ? 6 : 4);
    case 'F':
        return put(out, cap, at, as_key ? "\"false\"" : "false", as_key ? 7 : 5);
    case '{': {
        uint32_t n = 0;
        (void)rbuf_u32(r, &n);
        int array = table_is_array(*r, n);
        at = put(out, cap, at, array ? "[" : "{", 1);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                at = put(out, cap, at, ",", 1);
            if (array) {
                uint8_t t;
                uint64_t v;
                (void)rbuf_u8(r, &t);
                (void)rbuf_u64(r, &v);
            } else {
                at = json_value(r, out, cap, at, 1);
                at = put(out, cap, at, ":", 1);
            }
            at = json_value(r, out, cap, at, 0);
        }
        return put(out, cap, at, array ? "]" : "}", 1);
    }
    default:
        return at;
    }
}

size_t wire_value_json(const uint8_t *p, size_t n, char *out, size_t cap)
{
    struct rbuf r = {p, n, 0};
    if (cap == 0)
        return 0;
    out[0] = '\0';
    return json_value(&r, out, cap, 0, 0);
}
