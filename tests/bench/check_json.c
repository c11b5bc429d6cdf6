/*
 * check_json.c - a strict JSON syntax checker for `walls bench --json`.
 *
 * Reads one JSON document on stdin and checks it against RFC 8259 (no
 * trailing commas, no NaN or Infinity, no control bytes in strings, nothing
 * after the value). It then checks what every figure must satisfy whatever
 * the machine: each figure object (one with "name" and "median") has
 * 0 <= min <= median <= max, a time ("unit": "ns") is above zero, and the
 * figures named on the command line are present and above zero. Every
 * figure has a label of clean text (not empty, no space at either end: the
 * layout belongs to the table), and a numeric figure a boolean "noisy",
 * true exactly when it is a time (ns) or a rate (tasks/s) of two or more
 * runs whose max is over three times its min, the rule the man page gives.
 * The document must have "machine" and "rows" at the top, "timestamp" in
 * UTC as YYYY-MM-DDTHH:MM:SSZ, and a "commit" that is not empty.
 *
 * Speed is never judged, but where physics orders two figures, with a wide
 * margin on any machine, the order is checked (see orders[] below) when
 * both are present as numbers. Times are compared by their minimums:
 * other work on the machine and sanitizers only add time, so a minimum is
 * the closest to what the operation itself costs, and the cheaper one
 * would need every one of its samples slowed past the dearer one's
 * fastest to reverse an order.
 *
 * usage: check_json [required-figure-name ...] < bench.json
 * Exit status 0 when all holds, 1 with a message on stderr otherwise.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The numeric figures seen, for the order checks after the parse. */
#define MAX_SEEN 256
struct seen {
    char name[64];
    double med, min;
};

/*
 * Pairs where the first is physically the dearer: it does all the work of
 * the second and more. Row 2 (round trips) has no such pair: threads and
 * processes both wake a partner through the kernel and can measure alike.
 */
static const struct order {
    const char *dearer, *cheaper, *why;
} orders[] = {
    {"fork_1gib", "fork_small",
     "a fork copies the page tables of the 1 GiB resident too (30x or more here)"},
    {"fork_small", "thread_create_join",
     "a fork is a thread's clone plus a copy of the address space (4x or more here)"},
    {"posix_spawn_true", "thread_create_join",
     "a spawn is a clone plus an exec of a new program (3x or more here)"},
};

/* Figures that cannot be below a floor: what was put there. */
static const struct floor_rule {
    const char *name;
    double min_value;
    const char *why;
} floors[] = {
    {"rss_during_fork_1gib", 1024.0 * 1024.0, "1 GiB was touched, so at least 1 GiB resident"},
};

struct parser {
    const char *s;
    size_t pos, len;
    int depth;
    int figures;
    char **required;
    bool *found;
    int nrequired;
    const char *error;
    struct seen *seen;
    int nseen;
};

static bool fail(struct parser *p, const char *msg)
{
    if (!p->error)
        p->error = msg;
    return false;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]) && p->s[p->pos])
        p->pos++;
}

static bool parse_value(struct parser *p, char *str, size_t cap, double *num, int *kind);

/* A string; its first cap-1 bytes (unescaped only for plain ASCII) into out. */
static bool parse_string(struct parser *p, char *out, size_t cap)
{
    size_t n = 0;
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return fail(p, "expected a string");
    p->pos++;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"') {
            if (out && cap)
                out[n < cap ? n : cap - 1] = '\0';
            return true;
        }
        if (c < 0x20)
            return fail(p, "control byte in a string");
        if (c == '\\') {
            if (p->pos >= p->len)
                break;
            char e = p->s[p->pos++];
            if (e == 'u') {
                for (int i = 0; i < 4; i++) {
                    if (p->pos >= p->len || !strchr("0123456789abcdefABCDEF", p->s[p->pos]) ||
                        !p->s[p->pos])
                        return fail(p, "bad \\u escape");
                    p->pos++;
                }
                c = '?';
            } else if (strchr("\"\\/bfnrt", e) && e) {
                c = e == 'n' ? '\n' : e == 't' ? '\t' : (unsigned char)e;
            } else {
                return fail(p, "bad escape");
            }
        }
        if (out && n + 1 < cap)
            out[n++] = (char)c;
    }
    return fail(p, "unterminated string");
}

static bool parse_number(struct parser *p, double *out)
{
    size_t start = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len)
        return fail(p, "truncated number");
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    } else {
        return fail(p, "bad number");
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return fail(p, "bad fraction");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return fail(p, "bad exponent");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    if (!isfinite(*out))
        return fail(p, "number out of range");
    return true;
}

static bool literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "bad literal");
    p->pos += n;
    return true;
}

enum { K_OTHER, K_STRING, K_NUMBER, K_TRUE, K_FALSE };

/* What one object said, as far as the checks need it. */
struct fields {
    char name[128], unit[16], label[128];
    bool has_med, has_label, has_noisy, noisy, has_pct;
    double med, min, max, n, p10, p90;
};

/* walls bench's rule for a noisy figure (see the man page). */
#define NOISY_RATIO 3.0

static bool timed(const char *unit)
{
    return strcmp(unit, "ns") == 0 || strcmp(unit, "tasks/s") == 0;
}

static void check_label(struct parser *p, const struct fields *o)
{
    size_t len = strlen(o->label);
    if (!o->has_label || len == 0 || o->label[0] == ' ' || o->label[len - 1] == ' ') {
        fprintf(stderr, "check_json: figure %s: label \"%s\" is missing, empty or padded\n",
                o->name, o->label);
        fail(p, "a label that is not clean text");
    }
}

static void check_noisy(struct parser *p, const struct fields *o)
{
    if (!o->has_noisy) {
        fprintf(stderr, "check_json: figure %s: no boolean \"noisy\"\n", o->name);
        fail(p, "a numeric figure without a boolean noisy");
        return;
    }
    if (!o->has_pct || o->p10 < o->min || o->p10 > o->p90 || o->p90 > o->max) {
        fprintf(stderr, "check_json: figure %s: p10 %g and p90 %g missing or out of [%g, %g]\n",
                o->name, o->p10, o->p90, o->min, o->max);
        fail(p, "percentiles missing or out of order");
        return;
    }
    bool want = timed(o->unit) && o->n >= 2 && o->p90 > NOISY_RATIO * o->p10;
    if (o->noisy != want) {
        fprintf(stderr, "check_json: figure %s: noisy is %s, p10 %g p90 %g n %g say %s\n",
                o->name, o->noisy ? "true" : "false", o->p10, o->p90, o->n,
                want ? "true" : "false");
        fail(p, "noisy disagrees with the rule");
    }
}

static void check_figure(struct parser *p, const struct fields *o)
{
    const char *name = o->name, *unit = o->unit;
    double med = o->med, min = o->min, max = o->max;
    check_label(p, o);
    if (!o->has_med)
        return;
    check_noisy(p, o);
    p->figures++;
    if (p->nseen < MAX_SEEN) {
        struct seen *sn = &p->seen[p->nseen++];
        snprintf(sn->name, sizeof sn->name, "%.*s", (int)sizeof sn->name - 1, name);
        sn->med = med;
        sn->min = min;
    }
    if (!(min >= 0 && min <= med && med <= max)) {
        fprintf(stderr, "check_json: figure %s: not 0 <= min <= median <= max\n", name);
        fail(p, "inconsistent figure");
    }
    if (strcmp(unit, "ns") == 0 && !(med > 0)) {
        fprintf(stderr, "check_json: figure %s: a time of %g ns\n", name, med);
        fail(p, "a time that is not above zero");
    }
    for (int i = 0; i < p->nrequired; i++) {
        if (strcmp(p->required[i], name) == 0) {
            p->found[i] = true;
            if (!(med > 0)) {
                fprintf(stderr, "check_json: figure %s is %g\n", name, med);
                fail(p, "a required figure is not above zero");
            }
        }
    }
}

/* "2026-12-02T03:04:12Z": digits where digits go, the rest as written. */
static bool iso_utc(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    return true;
}

static bool parse_object(struct parser *p)
{
    struct fields o;
    memset(&o, 0, sizeof o);
    bool top = p->depth == 1, machine = false, rows = false, timestamp = false, commit = false;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return !top || fail(p, "empty top-level object");
    }
    for (;;) {
        char key[64];
        skip_ws(p);
        if (!parse_string(p, key, sizeof key))
            return false;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':')
            return fail(p, "expected ':'");
        p->pos++;
        char str[128] = "";
        double num = 0;
        int kind;
        if (!parse_value(p, str, sizeof str, &num, &kind))
            return false;
        if (strcmp(key, "name") == 0 && kind == K_STRING)
            snprintf(o.name, sizeof o.name, "%.*s", (int)sizeof o.name - 1, str);
        else if (strcmp(key, "unit") == 0 && kind == K_STRING)
            snprintf(o.unit, sizeof o.unit, "%.*s", (int)sizeof o.unit - 1, str);
        else if (strcmp(key, "label") == 0 && kind == K_STRING)
            snprintf(o.label, sizeof o.label, "%.*s", (int)sizeof o.label - 1, str),
                o.has_label = true;
        else if (strcmp(key, "median") == 0 && kind == K_NUMBER)
            o.med = num, o.has_med = true;
        else if (strcmp(key, "min") == 0 && kind == K_NUMBER)
            o.min = num;
        else if (strcmp(key, "max") == 0 && kind == K_NUMBER)
            o.max = num;
        else if (strcmp(key, "p10") == 0 && kind == K_NUMBER)
            o.p10 = num, o.has_pct = true;
        else if (strcmp(key, "p90") == 0 && kind == K_NUMBER)
            o.p90 = num;
        else if (strcmp(key, "n") == 0 && kind == K_NUMBER)
            o.n = num;
        else if (strcmp(key, "noisy") == 0 && (kind == K_TRUE || kind == K_FALSE))
            o.noisy = kind == K_TRUE, o.has_noisy = true;
        machine = machine || (top && strcmp(key, "machine") == 0);
        rows = rows || (top && strcmp(key, "rows") == 0);
        if (top && strcmp(key, "timestamp") == 0) {
            timestamp = kind == K_STRING && iso_utc(str);
            if (!timestamp)
                fprintf(stderr, "check_json: timestamp \"%s\" is not YYYY-MM-DDTHH:MM:SSZ\n", str);
        }
        if (top && strcmp(key, "commit") == 0)
            commit = kind == K_STRING && str[0] != '\0';
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            break;
        }
        return fail(p, "expected ',' or '}'");
    }
    if (top && !(machine && rows))
        return fail(p, "no \"machine\" or no \"rows\" at the top");
    if (top && !timestamp)
        return fail(p, "no \"timestamp\" in UTC, ISO 8601, at the top");
    if (top && !commit)
        return fail(p, "no \"commit\" at the top");
    if (o.name[0])
        check_figure(p, &o);
    return true;
}

static bool parse_array(struct parser *p)
{
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return true;
    }
    for (;;) {
        double num;
        int kind;
        if (!parse_value(p, NULL, 0, &num, &kind))
            return false;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return true;
        }
        return fail(p, "expected ',' or ']'");
    }
}

static bool parse_value(struct parser *p, char *str, size_t cap, double *num, int *kind)
{
    skip_ws(p);
    *kind = K_OTHER;
    if (p->pos >= p->len)
        return fail(p, "unexpected end");
    if (++p->depth > 64)
        return fail(p, "nested too deep");
    bool ok;
    char c = p->s[p->pos];
    if (c == '{') {
        ok = parse_object(p);
    } else if (c == '[') {
        ok = parse_array(p);
    } else if (c == '"') {
        *kind = K_STRING;
        ok = parse_string(p, str, cap);
    } else if (c == 't') {
        *kind = K_TRUE;
        ok = literal(p, "true");
    } else if (c == 'f') {
        *kind = K_FALSE;
        ok = literal(p, "false");
    } else if (c == 'n') {
        ok = literal(p, "null");
    } else {
        *kind = K_NUMBER;
        ok = parse_number(p, num);
    }
    p->depth--;
    return ok;
}

static const struct seen *find_seen(const struct parser *p, const char *name)
{
    for (int i = 0; i < p->nseen; i++)
        if (strcmp(p->seen[i].name, name) == 0)
            return &p->seen[i];
    return NULL;
}

/* The orders and floors that physics guarantees, where the figures are there. */
static void check_physics(struct parser *p)
{
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        const struct seen *a = find_seen(p, orders[i].dearer);
        const struct seen *b = find_seen(p, orders[i].cheaper);
        if (!a || !b)
            continue;
        if (!(a->min > b->min)) {
            fprintf(stderr, "check_json: %s (min %g) is not above %s (min %g): %s\n",
                    a->name, a->min, b->name, b->min, orders[i].why);
            fail(p, "figures out of the order physics gives them");
        } else {
            printf("check_json: order ok: %s > %s (x%.1f)\n", a->name, b->name,
                   a->min / b->min);
        }
    }
    for (size_t i = 0; i < sizeof floors / sizeof floors[0]; i++) {
        const struct seen *a = find_seen(p, floors[i].name);
        if (!a)
            continue;
        if (!(a->med >= floors[i].min_value)) {
            fprintf(stderr, "check_json: %s is %g, below %g: %s\n", a->name, a->med,
                    floors[i].min_value, floors[i].why);
            fail(p, "a figure below what was put there");
        }
    }
}

int main(int argc, char **argv)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
        }
    }
    if (!buf) {
        fprintf(stderr, "check_json: out of memory\n");
        return 1;
    }
    if (memchr(buf, '\0', len)) {
        fprintf(stderr, "check_json: NUL byte in the input\n");
        return 1;
    }
    bool found[64] = {false};
    static struct seen seen[MAX_SEEN];
    struct parser p = {buf, 0, len, 0, 0, argv + 1, found, argc - 1 < 64 ? argc - 1 : 64, NULL,
                       seen, 0};
    double num;
    int kind;
    skip_ws(&p);
    if (p.pos >= p.len || p.s[p.pos] != '{')
        fail(&p, "the document is not an object");
    else if (parse_value(&p, NULL, 0, &num, &kind)) {
        skip_ws(&p);
        if (p.pos != p.len)
            fail(&p, "text after the document");
    }
    for (int i = 0; !p.error && i < p.nrequired; i++) {
        if (!found[i]) {
            fprintf(stderr, "check_json: no figure named %s\n", p.required[i]);
            fail(&p, "a required figure is missing");
        }
    }
    if (!p.error && p.figures == 0)
        fail(&p, "no figures at all");
    if (!p.error)
        check_physics(&p);
    if (p.error) {
        fprintf(stderr, "check_json: %s (at byte %zu)\n", p.error, p.pos);
        free(buf);
        return 1;
    }
    printf("check_json: valid, %d figures\n", p.figures);
    free(buf);
    return 0;
}
