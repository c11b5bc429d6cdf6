/*
 * status.c - what the server says of itself: /_status (JSON) and
 * /_status.html (a page for a person that reads /_status every second).
 *
 * Per route: requests, responses by status class, the request latency's
 * p50 and p99 (from when the request was complete to when its response
 * was ready, in a log-scale histogram exact to within 1/4 of a power of
 * two), the placement, and the pool's own counters (walls_pool_stats:
 * restarts, tasks by how they ended, queue).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn.h"

static time_t started;

void status_start(void)
{
    started = time(NULL);
}

/* Bucket of a latency: four per power of two of microseconds. */
static unsigned bucket_of(uint64_t us)
{
    if (us < 4)
        return (unsigned)us;
    unsigned log = 63u - (unsigned)__builtin_clzll(us);
    unsigned b = 4 * (log - 1) + (unsigned)((us >> (log - 2)) & 3);
    return b < HTTPD_LAT_BUCKETS ? b : HTTPD_LAT_BUCKETS - 1;
}

/* The largest latency in bucket b, in microseconds. */
static uint64_t bucket_top(unsigned b)
{
    if (b < 4)
        return b;
    unsigned log = b / 4 + 1, sub = b % 4;
    return ((4ULL + sub + 1) << (log - 2)) - 1;
}

void status_record(struct route *r, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    httpd_count(&r->latency[bucket_of(us)], 1);
}

static double quantile_ms(const struct route *r, double q)
{
    uint64_t counts[HTTPD_LAT_BUCKETS], total = 0;
    for (unsigned b = 0; b < HTTPD_LAT_BUCKETS; b++)
        total += counts[b] = httpd_peek(&r->latency[b]);
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    for (unsigned b = 0; b < HTTPD_LAT_BUCKETS; b++)
        if ((seen += counts[b]) >= rank)
            return (double)bucket_top(b) / 1000.0;
    return (double)bucket_top(HTTPD_LAT_BUCKETS - 1) / 1000.0;
}

/* The length of the UTF-8 sequence at s (1 to 4), or 0 when it is not one
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char a = s[0];
    if (a < 0x80)
        return 1;
    size_t n = a >= 0xc2 && a <= 0xdf ? 2 : a >= 0xe0 && a <= 0xef ? 3 : a >= 0xf0 && a <= 0xf4 ? 4 : 0;
    if (!n)
        return 0;
    unsigned char lo = a == 0xe0 ? 0xa0 : a == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = a == 0xed ? 0x9f : a == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* A JSON string: quotes, backslashes and control bytes escaped. A byte
 * that is not part of UTF-8 (a prefix may hold any byte) is written as the
 * code point of its value, \u00XX, so that the document stays JSON. */
static void json_str(struct buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    while (*s) {
        unsigned char ch = (unsigned char)*s;
        size_t n = utf8_len((const unsigned char *)s);
        if (ch == '"' || ch == '\\')
            buf_printf(b, "\\%c", ch);
        else if (ch < 0x20 || n == 0)
            buf_printf(b, "\\u%04x", ch);
        else
            buf_add(b, s, n);
        s += n ? n : 1;
    }
    buf_add(b, "\"", 1);
}

static void route_json(struct buf *b, struct route *r)
{
    buf_add(b, "{\"prefix\":", 10);
    json_str(b, r->prefix);
    buf_add(b, ",\"plugin\":", 10);
    json_str(b, r->plugin);
    buf_add(b, ",\"function\":", 12);
    json_str(b, r->function);
    buf_printf(b, ",\"placement\":\"%s\",\"timeout_ms\":%lld,\"requests\":%llu", r->placement_name,
               (long long)r->timeout_ms,
               (unsigned long long)httpd_peek(&r->requests));
    buf_add(b, ",\"responses\":{", 14);
    for (int k = 1; k <= 5; k++)
        buf_printf(b, "%s\"%dxx\":%llu", k > 1 ? "," : "", k,
                   (unsigned long long)httpd_peek(&r->by_class[k]));
    buf_printf(b, "},\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f}", quantile_ms(r, 0.50),
               quantile_ms(r, 0.99));
    struct walls_stats st;
    if (r->pool && walls_pool_stats(r->pool, &st) == 0) {
        buf_printf(b,
                   ",\"pool\":{\"processes\":%u,\"threads\":%u,\"submitted\":%llu,"
                   "\"completed\":%llu,\"in_flight\":%llu,\"queued\":%llu,\"restarts\":%llu,"
                   "\"recycled\":%llu,\"broken\":%s,\"by_status\":{",
                   st.processes, st.threads, (unsigned long long)st.submitted,
                   (unsigned long long)st.completed, (unsigned long long)st.in_flight,
                   (unsigned long long)st.queued, (unsigned long long)st.restarts,
                   (unsigned long long)st.recycled, st.broken ? "true" : "false");
        for (int s = WALLS_OK; s <= WALLS_BROKEN; s++)
            buf_printf(b, "%s\"%s\":%llu", s ? "," : "", walls_status_name((enum walls_status)s),
                       (unsigned long long)st.by_status[s]);
        buf_add(b, "}}", 2);
    }
    buf_add(b, "}", 1);
}

static const char page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>walls-httpd status</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}\n"
    "h1{font-size:20px;margin:0 0 .2em}#server{color:#555;margin-bottom:1.2em}\n"
    "table{border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002}\n"
    "th,td{padding:.45em .8em;border-bottom:1px solid #eee;text-align:right}\n"
    "th{background:#f0f0f0;font-weight:600}td.l,th.l{text-align:left}\n"
    ".bad{color:#b00020;font-weight:600}.ok{color:#1b7f3a}.muted{color:#888}\n"
    "</style></head><body>\n<h1>walls-httpd</h1><div id=\"server\">loading&hellip;</div>\n"
    "<table><thead><tr><th class=\"l\">route</th><th class=\"l\">handler</th>"
    "<th class=\"l\">placement</th><th>requests</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th>"
    "<th>p50 ms</th><th>p99 ms</th><th>crashed</th><th>timed out</th><th>sandbox</th>"
    "<th>restarts</th><th>queued</th><th class=\"l\">pool</th></tr></thead>"
    "<tbody id=\"routes\"></tbody></table>\n"
    "<p class=\"muted\">Read from <a href=\"/_status\">/_status</a> every second.</p>\n"
    "<script>\n"
    "function esc(s){return String(s).replace(/[&<>\"]/g,c=>({'&':'&amp;','<':'&lt;',"
    "'>':'&gt;','\"':'&quot;'}[c]))}\n"
    "function cell(v,cls){return '<td'+(cls?' class=\"'+cls+'\"':'')+'>'+v+'</td>'}\n"
    "async function tick(){try{const r=await fetch('/_status');const s=await r.json();\n"
    "document.getElementById('server').textContent='walls '+s.server.walls+' \\u00b7 up '+"
    "s.server.uptime_s+' s \\u00b7 '+s.server.loops+' loops \\u00b7 '+s.server.connections+"
    "' connections';\n"
    "document.getElementById('routes').innerHTML=s.routes.map(x=>{const p=x.pool||{};"
    "const b=p.by_status||{};return '<tr>'+cell(esc(x.prefix),'l')+"
    "cell(esc(x.function),'l')+cell(esc(x.placement),'l')+cell(x.requests)+"
    "cell(x.responses['2xx'],x.responses['2xx']?'ok':'')+cell(x.responses['3xx'])+"
    "cell(x.responses['4xx'])+"
    "cell(x.responses['5xx'],x.responses['5xx']?'bad':'')+cell(x.latency_ms.p50.toFixed(2))+"
    "cell(x.latency_ms.p99.toFixed(2))+cell(b.crashed||0,b.crashed?'bad':'')+"
    "cell(b.timeout||0,b.timeout?'bad':'')+cell(b.violation||0,b.violation?'bad':'')+"
    "cell(p.restarts||0)+cell(p.queued||0)+(x.pool?cell(p.broken?'broken':'ok',"
    "p.broken?'bad l':'ok l'):cell('none','muted l'))"
    "+'</tr>'}).join('')}catch(e){document.getElementById('server').textContent="
    "'cannot read /_status: '+e}}\n"
    "tick();setInterval(tick,1000);\n</script></body></html>\n";

bool status_serve(struct conn *c, const char *path, size_t len)
{
    bool json = len == 8 && memcmp(path, "/_status", 8) == 0;
    bool html = len == 13 && memcmp(path, "/_status.html", 13) == 0;
    if (!json && !html)
        return false;
    if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) {
        conn_respond(c, 405, "text/plain", "Allow: GET, HEAD\r\n", "405 Method Not Allowed\n",
                     23);
        return true;
    }
    if (html) {
        conn_respond(c, 200, "text/html; charset=utf-8", "Cache-Control: no-store\r\n", page,
                     sizeof page - 1);
        return true;
    }
    struct server *srv = c->loop->srv;
    unsigned conns = 0;
    for (unsigned i = 0; i < srv->nloops; i++)
        conns += httpd_peek(&srv->loops[i].nconns);
    struct buf b = {0};
    buf_printf(&b, "{\"server\":{\"walls\":\"%s\",\"uptime_s\":%lld,\"loops\":%u,"
                   "\"connections\":%u},\"routes\":[",
               walls_version(), (long long)(time(NULL) - started), srv->nloops, conns);
    struct routeset *set = httpd_routes(srv);
    for (unsigned i = 0; i < set->nroutes; i++) {
        if (i)
            buf_add(&b, ",", 1);
        route_json(&b, &set->routes[i]);
    }
    buf_add(&b, "]}\n", 3);
    conn_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", b.p, b.len);
    buf_free(&b);
    return true;
}
