/*
 * test-handles.c - the handle table (src/handle.c) on its own, through a
 * table of the test's: small entries in small chunks, and no init_entry,
 * so that chunks left empty are given back to the system as the task
 * table's are.
 *
 * A live entry's handle finds it; a retired or released entry's handle,
 * and garbage, find nothing; a released entry is handed out again under a
 * new handle. Empty chunks stay for reuse while young; past
 * WALLS__HANDLE_SPARE of them, the pages of those that aged (or all, when
 * trimmed) go back to the system (the process's resident memory drops, and
 * mincore() finds none of their pages), and a chunk made again hands out
 * generations above every one it handed out before: no handle from before
 * names anything again.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "handle.h"
#include "helpers.h"

struct entry {
    struct walls__handle_hdr hdr;
    uint64_t payload;
};

/* 512 entries of 24 bytes: three pages a chunk. */
enum { CHUNK_ENTRIES = 512 };
#define CHUNK_BYTES (((size_t)CHUNK_ENTRIES * sizeof(struct entry) + 4095) & ~(size_t)4095)

static struct walls__handles *table_open(void)
{
    struct walls__handles *table = calloc(1, sizeof *table);
    ck_assert_ptr_nonnull(table);
    ck_assert_int_eq(pthread_mutex_init(&table->lock, NULL), 0);
    table->entry_size = sizeof(struct entry);
    table->chunk_entries = CHUNK_ENTRIES;
    table->init_entry = NULL;
    return table;
}

/* The chunks' mappings stay, as the library's tables keep theirs. */
static void table_close(struct walls__handles *table)
{
    pthread_mutex_destroy(&table->lock);
    free(table);
}

static struct entry *alloc_entry(struct walls__handles *table)
{
    struct entry *e = walls__handle_alloc(table);
    ck_assert_ptr_nonnull(e);
    return e;
}

/* The index + 1 a handle carries, below the making process's epoch. */
static uint32_t slot_of(uint64_t handle)
{
    return (uint32_t)handle & ((1u << WALLS__HANDLE_INDEX_BITS) - 1);
}

static uint32_t gen_of(uint64_t handle)
{
    return (uint32_t)(handle >> 32);
}

/* Pages of chunk c in memory. */
static size_t chunk_resident_pages(struct walls__handles *table, uint32_t c)
{
    unsigned char vec[CHUNK_BYTES / 4096];
    ck_assert_int_eq(mincore(table->chunks[c].mem, CHUNK_BYTES, vec), 0);
    size_t n = 0;
    for (size_t i = 0; i < sizeof vec; i++)
        n += vec[i] & 1;
    return n;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_alloc_and_lookup)
{
    struct walls__handles *table = table_open();
    enum { N = 3 * CHUNK_ENTRIES + 1 };
    static struct entry *e[N];
    static uint64_t h[N];
    static bool seen[N];
    for (uint32_t i = 0; i < N; i++) {
        e[i] = alloc_entry(table);
        h[i] = walls__handle_of(e[i]);
        ck_assert_uint_ne(gen_of(h[i]), 0);
        ck_assert_uint_eq(slot_of(h[i]), e[i]->hdr.index + 1);
        /* The same entry under another process's epoch names nothing. */
        uint64_t other = h[i] ^ ((uint64_t)1 << WALLS__HANDLE_INDEX_BITS);
        ck_assert_ptr_null(walls__handle_get(table, other));
        ck_assert(walls__handle_foreign(other) || (uint32_t)other >> WALLS__HANDLE_INDEX_BITS == 0);
        ck_assert_uint_lt(e[i]->hdr.index, N);
        ck_assert_msg(!seen[e[i]->hdr.index], "index %u handed out twice", e[i]->hdr.index);
        seen[e[i]->hdr.index] = true;
        e[i]->payload = i;
    }
    /* Three chunks and one entry: four chunks. */
    ck_assert_uint_eq(table->nchunks, 4);
    for (uint32_t i = 0; i < N; i++) {
        ck_assert_ptr_eq(walls__handle_get(table, h[i]), e[i]);
        ck_assert_uint_eq(e[i]->payload, i); /* no two entries overlap */
    }
    for (uint32_t i = 0; i < N; i++)
        walls__handle_release(table, e[i]);
    table_close(table);
}
END_TEST

START_TEST(test_retire_and_release)
{
    struct walls__handles *table = table_open();
    /* Retired: its handles are refused, its memory stays in use. */
    struct entry *kept = alloc_entry(table);
    uint64_t old = walls__handle_of(kept);
    walls__handle_retire(kept);
    ck_assert_ptr_null(walls__handle_get(table, old));
    ck_assert_uint_ne(walls__handle_of(kept), old);
    static struct entry *others[CHUNK_ENTRIES];
    for (int i = 0; i < CHUNK_ENTRIES; i++) {
        others[i] = alloc_entry(table);
        ck_assert_ptr_ne(others[i], kept);
    }
    ck_assert_ptr_null(walls__handle_get(table, old));
    /* Released: refused, then handed out again under a new handle. */
    struct entry *e = others[7];
    uint64_t before = walls__handle_of(e);
    walls__handle_release(table, e);
    ck_assert_ptr_null(walls__handle_get(table, before));
    struct entry *again = alloc_entry(table);
    ck_assert_ptr_eq(again, e); /* the most recently freed entry first */
    uint64_t after = walls__handle_of(again);
    ck_assert_uint_ne(after, before);
    ck_assert_uint_eq((uint32_t)after, (uint32_t)before); /* same index, */
    ck_assert_uint_gt(gen_of(after), gen_of(before));     /* newer generation */
    ck_assert_ptr_null(walls__handle_get(table, before));
    ck_assert_ptr_eq(walls__handle_get(table, after), again);
    /* The generation wraps past 0, which no handle carries: a live entry's
     * is odd, a retired one's even. */
    __atomic_store_n(&again->hdr.gen, UINT32_MAX, __ATOMIC_RELAXED);
    walls__handle_retire(again);
    ck_assert_uint_eq(gen_of(walls__handle_of(again)), 0);
    walls__handle_release(table, again);
    struct entry *wrapped = alloc_entry(table);
    ck_assert_ptr_eq(wrapped, again);
    ck_assert_uint_eq(gen_of(walls__handle_of(wrapped)), 1);
    ck_assert_ptr_eq(walls__handle_get(table, walls__handle_of(wrapped)), wrapped);
    for (int i = 0; i < CHUNK_ENTRIES; i++)
        walls__handle_release(table, others[i]);
    walls__handle_release(table, kept);
    table_close(table);
}
END_TEST

START_TEST(test_garbage_refused)
{
    struct walls__handles *table = table_open();
    struct entry *e = alloc_entry(table);
    uint64_t h = walls__handle_of(e);
    /* Entries never handed out are named by no handle, whatever its
     * generation: a made-up handle finds nothing. */
    for (uint64_t g = 1; g < 8; g++)
        for (uint64_t index = 2; index < CHUNK_ENTRIES; index += 97)
            ck_assert_ptr_null(walls__handle_get(table, g << 32 | (index + 1)));
    ck_assert_ptr_eq(walls__handle_get(table, h), e);
    static const uint64_t zero_gen = 1, zero_index = 1ull << 32;
    ck_assert_ptr_null(walls__handle_get(table, 0));
    ck_assert_ptr_null(walls__handle_get(table, zero_gen));   /* generation 0 */
    ck_assert_ptr_null(walls__handle_get(table, zero_index)); /* index field 0 */
    ck_assert_ptr_null(walls__handle_get(table, h + (1ull << 32)));
    ck_assert_ptr_null(walls__handle_get(table, h - (1ull << 32)));
    /* Beyond the chunks made so far, and beyond any chunk. */
    ck_assert_ptr_null(walls__handle_get(table, (h & ~0xffffffffull) | (CHUNK_ENTRIES + 1)));
    ck_assert_ptr_null(walls__handle_get(table, UINT64_MAX));
    ck_assert_ptr_eq(walls__handle_get(table, h), e);
    walls__handle_release(table, e);
    table_close(table);
}
END_TEST

/* The big loops below count what went wrong and assert once: Check
 * records every passing assertion, which would take longer than the
 * table's work. */
/* Empty chunks past the spares go back once they have stayed empty for
 * WALLS__HANDLE_DECAY_NS, at a later release. */
START_TEST(test_chunks_age)
{
    enum { CHUNKS = 8, N = CHUNKS * CHUNK_ENTRIES };
    struct walls__handles *table = table_open();
    static struct entry *e[N];
    for (uint32_t i = 0; i < N; i++)
        ck_assert_ptr_nonnull(e[i] = walls__handle_alloc(table));
    for (uint32_t i = 0; i < N; i++)
        walls__handle_release(table, e[i]);
    uint32_t kept = 0;
    for (uint32_t c = 0; c < CHUNKS; c++)
        kept += table->chunks[c].resident;
    ck_assert_uint_eq(kept, CHUNKS);
    struct timespec pause = {WALLS__HANDLE_DECAY_NS / 1000000000LL,
                             WALLS__HANDLE_DECAY_NS % 1000000000LL + 100000000L};
    nanosleep(&pause, NULL);
    /* One more use and release: the old chunks have aged out meanwhile. */
    struct entry *one = walls__handle_alloc(table);
    ck_assert_ptr_nonnull(one);
    walls__handle_release(table, one);
    kept = 0;
    for (uint32_t c = 0; c < CHUNKS; c++) {
        kept += table->chunks[c].resident;
        if (!table->chunks[c].resident)
            ck_assert_uint_eq(chunk_resident_pages(table, c), 0);
    }
    ck_assert_uint_eq(kept, WALLS__HANDLE_SPARE);
    table_close(table);
}
END_TEST

START_TEST(test_chunks_given_back)
{
    enum { CHUNKS = 512, N = CHUNKS * CHUNK_ENTRIES };
    struct walls__handles *table = table_open();
    struct entry **e = calloc(N, sizeof *e);
    uint64_t *old = calloc(N, sizeof *old);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(old);
    /* Resident before the first figure (zeros would not touch calloc's
     * fresh pages). */
    memset(e, 0xff, N * sizeof *e);
    memset(old, 0xff, N * sizeof *old);
    long base = rss_kb();
    uint32_t failed = 0;
    for (uint32_t i = 0; i < N; i++) {
        e[i] = walls__handle_alloc(table);
        if (!e[i]) {
            failed = i + 1;
            break;
        }
        e[i]->payload = i;
        old[i] = walls__handle_of(e[i]);
    }
    ck_assert_msg(failed == 0, "allocation %u of %u failed", failed - 1, (unsigned)N);
    ck_assert_uint_eq(table->nchunks, CHUNKS);
    long peak = rss_kb();
    for (uint32_t c = 0; c < CHUNKS; c++)
        ck_assert_uint_eq(chunk_resident_pages(table, c), CHUNK_BYTES / 4096);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t i = 0; i < N; i++)
        walls__handle_release(table, e[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Emptied just now, they stay for reuse (unless releasing took so long
     * that the first of them aged). */
    int64_t took = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    uint32_t kept = 0;
    for (uint32_t c = 0; c < CHUNKS; c++)
        kept += table->chunks[c].resident;
    if (took < WALLS__HANDLE_DECAY_NS / 2)
        ck_assert_uint_eq(kept, CHUNKS);
    walls__handle_trim(table, 0);
    long after = rss_kb();
    /* WALLS__HANDLE_SPARE empty chunks stay; every other one went back. */
    uint32_t resident = 0;
    static bool given_back[CHUNKS];
    for (uint32_t c = 0; c < CHUNKS; c++) {
        given_back[c] = !table->chunks[c].resident;
        resident += !given_back[c];
        if (given_back[c])
            ck_assert_msg(chunk_resident_pages(table, c) == 0,
                          "chunk %u was given back, but %zu of its pages are in memory", c,
                          chunk_resident_pages(table, c));
    }
    ck_assert_uint_eq(resident, WALLS__HANDLE_SPARE);
    long table_kb = (long)(CHUNKS * CHUNK_BYTES / 1024);
    fprintf(stderr, "%d chunks of %zu bytes: resident %ld KiB more at the peak, %ld KiB more "
            "after release\n", CHUNKS, (size_t)CHUNK_BYTES, peak - base, after - base);
    ck_assert_msg(peak - base >= table_kb * 9 / 10, "the entries took %ld KiB, not %ld",
                  peak - base, table_kb);
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer keeps the shadow of memory given back: the figure is
     * printed, and mincore() above has checked the chunks themselves. */
#else
    ck_assert_msg(after - base <= (peak - base) / 4,
                  "%ld KiB of %ld stayed resident after every entry was released",
                  after - base, peak - base);
#endif
    /* No handle from before names anything, in a chunk given back or not. */
    uint32_t named = 0;
    uint64_t first = 0;
    for (uint32_t i = 0; i < N; i++)
        if (walls__handle_get(table, old[i]) && named++ == 0)
            first = old[i];
    ck_assert_msg(named == 0, "%u released handles still name entries, the first %#llx", named,
                  (unsigned long long)first);
    /* Made again: new generations, above all of the chunk's old ones. */
    static uint32_t old_top[CHUNKS];
    for (uint32_t i = 0; i < N; i++) {
        uint32_t c = (slot_of(old[i]) - 1) / CHUNK_ENTRIES;
        if (gen_of(old[i]) > old_top[c])
            old_top[c] = gen_of(old[i]);
    }
    qsort(old, N, sizeof *old, compare_u64);
    uint32_t unnamed = 0, twice = 0, low = 0;
    for (uint32_t i = 0; i < N; i++) {
        e[i] = alloc_entry(table);
        uint64_t h = walls__handle_of(e[i]);
        uint32_t c = e[i]->hdr.index / CHUNK_ENTRIES;
        if (walls__handle_get(table, h) != e[i] && unnamed++ == 0)
            fprintf(stderr, "new handle %#llx does not name its entry\n", (unsigned long long)h);
        if (bsearch(&h, old, N, sizeof *old, compare_u64) && twice++ == 0)
            fprintf(stderr, "handle %#llx handed out twice\n", (unsigned long long)h);
        if (given_back[c] && gen_of(h) <= old_top[c] && low++ == 0)
            fprintf(stderr, "chunk %u made again: generation %u, not above %u\n", c, gen_of(h),
                    old_top[c]);
    }
    ck_assert_msg(unnamed == 0, "%u new handles do not name their entries", unnamed);
    ck_assert_msg(twice == 0, "%u handles handed out twice", twice);
    ck_assert_msg(low == 0, "%u generations not above their chunk's old ones", low);
    ck_assert_uint_eq(table->nchunks, CHUNKS); /* made again, not mapped anew */
    for (uint32_t i = 0; i < N; i++)
        walls__handle_release(table, e[i]);
    free(e);
    free(old);
    table_close(table);
}
END_TEST

/* Lookups take no lock: while one thread allocates and releases entries
 * (chunks made, emptied and given back), stale handles looked up from
 * another thread are refused every time. */
struct race {
    struct walls__handles *table;
    const uint64_t *stale;
    size_t nstale;
    int stop;
    size_t found;
};

static void *look_up(void *arg)
{
    struct race *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
        for (size_t i = 0; i < r->nstale; i++)
            if (walls__handle_get(r->table, r->stale[i]))
                r->found++;
    return NULL;
}

START_TEST(test_lookup_races_alloc)
{
    enum { N = 8 * CHUNK_ENTRIES };
    struct walls__handles *table = table_open();
    static struct entry *e[N];
    static uint64_t stale[N];
    for (uint32_t i = 0; i < N; i++) {
        e[i] = alloc_entry(table);
        stale[i] = walls__handle_of(e[i]);
    }
    for (uint32_t i = 0; i < N; i++)
        walls__handle_release(table, e[i]);
    struct race r = {.table = table, .stale = stale, .nstale = N};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, look_up, &r), 0);
    uint32_t failed = 0;
    for (int round = 0; round < 20; round++) {
        for (uint32_t i = 0; i < N; i++)
            failed += !(e[i] = walls__handle_alloc(table));
        for (uint32_t i = 0; i < N; i++)
            if (e[i])
                walls__handle_release(table, e[i]);
        /* Chunks go back every round, as they would once aged. */
        walls__handle_trim(table, 0);
    }
    ck_assert_uint_eq(failed, 0);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(r.found == 0, "stale handles were found %zu times", r.found);
    table_close(table);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("handles");
    TCase *tc = tcase_create("handles");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_alloc_and_lookup);
    tcase_add_test(tc, test_retire_and_release);
    tcase_add_test(tc, test_garbage_refused);
    tcase_add_test(tc, test_chunks_given_back);
    tcase_add_test(tc, test_chunks_age);
    tcase_add_test(tc, test_lookup_races_alloc);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
