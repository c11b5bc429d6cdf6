/*
 * test-arena-alloc.c - the arena allocator (src/arena.c) on its own, on
 * arenas of a few pages opened by the test: first fit over the free runs,
 * freed runs joined with their neighbours in every order of freeing,
 * exhaustion and room again, handles of garbage, of freed buffers and of
 * other arenas told apart (-ENOENT, -EXDEV), generations that make every
 * handle of a page new, pins that keep a buffer from being freed, pages
 * given back to the system on free, and descriptors closed on close.
 *
 * The free list is checked against a model: a page-by-page map of what
 * the test has freed, whose maximal runs the list must hold exactly.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "arena.h"
#include "helpers.h"

enum { PAGES = 16 };

static void open_arena(struct walls__arena *a, size_t size)
{
    int rc = walls__arena_open(a, size, 0, 0);
    ck_assert_msg(rc == 0, "walls__arena_open: %d (%s)", rc, walls_strerror(rc));
}

static walls_buf alloc_pages(struct walls__arena *a, uint32_t pages)
{
    walls_buf b = 0;
    int rc = walls__arena_alloc(a, (size_t)pages * WALLS__PAGE, &b);
    ck_assert_msg(rc == 0, "alloc of %u pages: %d", pages, rc);
    return b;
}

/* The first page of a live buffer. */
static uint32_t page_of(struct walls__arena *a, walls_buf b)
{
    struct walls__arena_rec *rec = NULL;
    int rc = walls__arena_find(a, b, &rec);
    ck_assert_msg(rc == 0, "find %#llx: %d", (unsigned long long)b, rc);
    return rec->page;
}

/* The free list must be exactly the maximal runs of free[]. */
static void expect_free(const struct walls__arena *a, const bool *free_page, uint32_t pages,
                        const char *when)
{
    size_t n = 0;
    for (uint32_t p = 0; p < pages;) {
        if (!free_page[p]) {
            p++;
            continue;
        }
        uint32_t start = p;
        while (p < pages && free_page[p])
            p++;
        ck_assert_msg(n < a->nfree, "%s: run [%u, %u) missing from the free list (%zu runs)",
                      when, start, p, a->nfree);
        ck_assert_msg(a->free[n].page == start && a->free[n].pages == p - start,
                      "%s: run %zu is [%u, +%u), expected [%u, +%u)", when, n, a->free[n].page,
                      a->free[n].pages, start, p - start);
        n++;
    }
    ck_assert_msg(n == a->nfree, "%s: %zu runs free, expected %zu", when, a->nfree, n);
}

START_TEST(test_first_fit)
{
    struct walls__arena a;
    open_arena(&a, PAGES * WALLS__PAGE);
    bool free_page[PAGES];
    for (int p = 0; p < PAGES; p++)
        free_page[p] = true;
    expect_free(&a, free_page, PAGES, "opened");
    walls_buf one = alloc_pages(&a, 1), two = alloc_pages(&a, 2), three = alloc_pages(&a, 1),
              four = alloc_pages(&a, 3);
    ck_assert_uint_eq(page_of(&a, one), 0);
    ck_assert_uint_eq(page_of(&a, two), 1);
    ck_assert_uint_eq(page_of(&a, three), 3);
    ck_assert_uint_eq(page_of(&a, four), 4);
    for (int p = 0; p < 7; p++)
        free_page[p] = false;
    expect_free(&a, free_page, PAGES, "four allocated");
    /* Holes of one page at 0 and 3; the rest from 7. */
    ck_assert_int_eq(walls__arena_free(&a, one), 0);
    ck_assert_int_eq(walls__arena_free(&a, three), 0);
    free_page[0] = free_page[3] = true;
    expect_free(&a, free_page, PAGES, "two holes");
    /* Two pages fit in neither hole; one page takes the first. */
    walls_buf big = alloc_pages(&a, 2);
    ck_assert_uint_eq(page_of(&a, big), 7);
    walls_buf small = alloc_pages(&a, 1);
    ck_assert_uint_eq(page_of(&a, small), 0);
    walls_buf next = alloc_pages(&a, 1);
    ck_assert_uint_eq(page_of(&a, next), 3);
    /* Sizes round up to whole pages, and are kept as asked for. */
    walls_buf odd;
    ck_assert_int_eq(walls__arena_alloc(&a, WALLS__PAGE + 1, &odd), 0);
    struct walls__arena_rec *rec;
    ck_assert_int_eq(walls__arena_find(&a, odd, &rec), 0);
    ck_assert_uint_eq(rec->page, 9);
    ck_assert_uint_eq(rec->pages, 2);
    ck_assert_uint_eq(rec->size, WALLS__PAGE + 1);
    walls__arena_close(&a);
}
END_TEST

/* Three neighbours between two guards, freed in each of the six orders:
 * after every free the list holds exactly the joined runs. */
START_TEST(test_coalescing_every_order)
{
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int o = 0; o < 6; o++) {
        struct walls__arena a;
        open_arena(&a, PAGES * WALLS__PAGE);
        bool free_page[PAGES];
        memset(free_page, 0, sizeof free_page);
        /* left guard 0, X 1, Y 2-3, Z 4, right guard 5, free from 6 */
        walls_buf left = alloc_pages(&a, 1);
        walls_buf mid[3] = {alloc_pages(&a, 1), alloc_pages(&a, 2), alloc_pages(&a, 1)};
        static const uint32_t first[3] = {1, 2, 4}, count[3] = {1, 2, 1};
        walls_buf right = alloc_pages(&a, 1);
        for (int p = 6; p < PAGES; p++)
            free_page[p] = true;
        expect_free(&a, free_page, PAGES, "laid out");
        for (int k = 0; k < 3; k++) {
            int m = orders[o][k];
            ck_assert_uint_eq(page_of(&a, mid[m]), first[m]);
            ck_assert_int_eq(walls__arena_free(&a, mid[m]), 0);
            for (uint32_t p = first[m]; p < first[m] + count[m]; p++)
                free_page[p] = true;
            char when[64];
            snprintf(when, sizeof when, "order %d%d%d, after %d", orders[o][0], orders[o][1],
                     orders[o][2], k + 1);
            expect_free(&a, free_page, PAGES, when);
        }
        /* One run of four: a buffer of four pages fits there. */
        walls_buf joined = alloc_pages(&a, 4);
        ck_assert_uint_eq(page_of(&a, joined), 1);
        ck_assert_int_eq(walls__arena_free(&a, joined), 0);
        /* The guards join it to the tail, then to the start. */
        ck_assert_int_eq(walls__arena_free(&a, right), 0);
        free_page[5] = true;
        expect_free(&a, free_page, PAGES, "right guard freed");
        ck_assert_int_eq(walls__arena_free(&a, left), 0);
        free_page[0] = true;
        expect_free(&a, free_page, PAGES, "everything freed");
        ck_assert_uint_eq(a.nfree, 1);
        ck_assert_uint_eq(a.nrecs, 0);
        walls__arena_close(&a);
    }
}
END_TEST

START_TEST(test_exhaustion_and_recovery)
{
    struct walls__arena a;
    open_arena(&a, PAGES * WALLS__PAGE);
    walls_buf b, fill[PAGES];
    ck_assert_int_eq(walls__arena_alloc(&a, PAGES * WALLS__PAGE + 1, &b), -ENOSPC);
    ck_assert_int_eq(walls__arena_alloc(&a, SIZE_MAX, &b), -ENOSPC);
    int n = 0;
    while (n < PAGES && walls__arena_alloc(&a, 1, &fill[n]) == 0)
        n++;
    ck_assert_int_eq(n, PAGES);
    ck_assert_int_eq(walls__arena_alloc(&a, 1, &b), -ENOSPC);
    ck_assert_uint_eq(a.nfree, 0);
    /* One page free: one page fits, two do not. */
    ck_assert_int_eq(walls__arena_free(&a, fill[8]), 0);
    ck_assert_int_eq(walls__arena_alloc(&a, 2 * WALLS__PAGE, &b), -ENOSPC);
    ck_assert_int_eq(walls__arena_alloc(&a, WALLS__PAGE, &fill[8]), 0);
    ck_assert_uint_eq(page_of(&a, fill[8]), 8);
    ck_assert_int_eq(walls__arena_alloc(&a, 1, &b), -ENOSPC);
    /* Two neighbours free: two pages fit, where they were. */
    ck_assert_int_eq(walls__arena_free(&a, fill[3]), 0);
    ck_assert_int_eq(walls__arena_free(&a, fill[4]), 0);
    ck_assert_int_eq(walls__arena_alloc(&a, 2 * WALLS__PAGE, &fill[3]), 0);
    ck_assert_uint_eq(page_of(&a, fill[3]), 3);
    ck_assert_int_eq(walls__arena_free(&a, fill[3]), 0);
    for (int i = 0; i < PAGES; i++)
        if (i != 3 && i != 4)
            ck_assert_int_eq(walls__arena_free(&a, fill[i]), 0);
    /* All of it again, in one buffer. */
    ck_assert_uint_eq(a.nfree, 1);
    ck_assert_int_eq(walls__arena_alloc(&a, PAGES * WALLS__PAGE, &b), 0);
    ck_assert_uint_eq(page_of(&a, b), 0);
    walls__arena_close(&a);
}
END_TEST

START_TEST(test_refused_handles)
{
    struct walls__arena a, other;
    open_arena(&a, PAGES * WALLS__PAGE);
    open_arena(&other, PAGES * WALLS__PAGE);
    ck_assert_uint_ne(a.serial, other.serial);
    walls_buf live = alloc_pages(&a, 2), theirs = alloc_pages(&other, 1);
    walls_buf gone = alloc_pages(&a, 1);
    ck_assert_int_eq(walls__arena_free(&a, gone), 0);
    struct walls__arena_rec *rec = NULL;
    uint64_t gen_bit = 1ull << WALLS__PAGE_BITS;
    const walls_buf garbage[] = {
        0,                                          /* serial 0: nobody's */
        live + 1,                                   /* a page inside it, no buffer's first */
        live ^ gen_bit,                             /* another generation */
        gone,                                       /* freed */
        live & ~(((1ull << WALLS__GEN_BITS) - 1) << WALLS__PAGE_BITS), /* generation 0 */
        (live & ~(0xffffull << 48)) | (uint64_t)(uint16_t)(a.serial + 1000) << 48, /* no arena's */
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        ck_assert_msg(walls__arena_find(&a, garbage[i], &rec) == -ENOENT, "find, case %zu", i);
        ck_assert_msg(walls__arena_free(&a, garbage[i]) == -ENOENT, "free, case %zu", i);
    }
    /* Another live arena's buffer is told apart from garbage. */
    ck_assert_int_eq(walls__arena_find(&a, theirs, &rec), -EXDEV);
    ck_assert_int_eq(walls__arena_free(&a, theirs), -EXDEV);
    ck_assert_int_eq(walls__arena_find(&other, live, &rec), -EXDEV);
    /* Nothing refused changed anything. */
    ck_assert_int_eq(walls__arena_find(&a, live, &rec), 0);
    ck_assert_int_eq(walls__arena_find(&other, theirs, &rec), 0);
    ck_assert_uint_eq(a.nrecs, 1);
    /* Once that arena is closed, its serial is nobody's. */
    walls__arena_close(&other);
    ck_assert_int_eq(walls__arena_find(&a, theirs, &rec), -ENOENT);
    ck_assert_int_eq(walls__arena_free(&a, live), 0);
    ck_assert_int_eq(walls__arena_free(&a, live), -ENOENT);
    walls__arena_close(&a);
}
END_TEST

START_TEST(test_generations)
{
    struct walls__arena a;
    open_arena(&a, PAGES * WALLS__PAGE);
    /* The same page, a new handle each time; the old ones stay dead. */
    enum { N = 1000 };
    static walls_buf seen[N];
    struct walls__arena_rec *rec;
    for (int i = 0; i < N; i++) {
        seen[i] = alloc_pages(&a, 1);
        ck_assert_uint_eq(page_of(&a, seen[i]), 0);
        ck_assert_uint_eq(seen[i] >> (WALLS__GEN_BITS + WALLS__PAGE_BITS), a.serial);
        ck_assert_int_eq(walls__arena_free(&a, seen[i]), 0);
    }
    walls_buf now = alloc_pages(&a, 1);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(seen[i] != now, "handle %d came back", i);
        ck_assert_int_eq(walls__arena_find(&a, seen[i], &rec), -ENOENT);
    }
    ck_assert_int_eq(walls__arena_free(&a, now), 0);
    /* After 2^20 - 1 generations the count starts again at 1, never 0. */
    a.next_gen = (1u << WALLS__GEN_BITS) - 1;
    walls_buf last = alloc_pages(&a, 1), wrapped = alloc_pages(&a, 1);
    ck_assert_int_eq(walls__arena_find(&a, last, &rec), 0);
    ck_assert_uint_eq(rec->gen, (1u << WALLS__GEN_BITS) - 1);
    ck_assert_int_eq(walls__arena_find(&a, wrapped, &rec), 0);
    ck_assert_uint_eq(rec->gen, 1);
    walls__arena_close(&a);
}
END_TEST

START_TEST(test_pins)
{
    struct walls__arena a;
    open_arena(&a, PAGES * WALLS__PAGE);
    walls_buf in = alloc_pages(&a, 1), out = alloc_pages(&a, 2);
    struct walls__bufref refs[2] = {
        {.offset = (uint64_t)page_of(&a, in) * WALLS__PAGE, .len = WALLS__PAGE},
        {.offset = (uint64_t)page_of(&a, out) * WALLS__PAGE, .len = 2 * WALLS__PAGE},
    };
    struct walls__arena_rec *rec;
    /* Two tasks hold the input, one of them the output too. */
    walls__arena_pin(&a, refs, 1, true, true);
    walls__arena_pin(&a, refs, 1, false, true);
    ck_assert_int_eq(walls__arena_find(&a, out, &rec), 0);
    ck_assert(rec->out_busy);
    ck_assert_uint_eq(rec->pins, 1);
    ck_assert_int_eq(walls__arena_find(&a, in, &rec), 0);
    ck_assert(!rec->out_busy);
    ck_assert_uint_eq(rec->pins, 2);
    ck_assert_int_eq(walls__arena_free(&a, in), -EBUSY);
    ck_assert_int_eq(walls__arena_free(&a, out), -EBUSY);
    /* The first lets go: the output is free, the input still held. */
    walls__arena_pin(&a, refs, 1, true, false);
    ck_assert_int_eq(walls__arena_find(&a, out, &rec), 0);
    ck_assert(!rec->out_busy);
    ck_assert_int_eq(walls__arena_free(&a, in), -EBUSY);
    ck_assert_int_eq(walls__arena_free(&a, out), 0);
    walls__arena_pin(&a, refs, 1, false, false);
    ck_assert_int_eq(walls__arena_free(&a, in), 0);
    walls__arena_close(&a);
}
END_TEST

START_TEST(test_free_gives_pages_back)
{
    struct walls__arena a;
    open_arena(&a, PAGES * WALLS__PAGE);
    walls_buf b = alloc_pages(&a, 4);
    unsigned char *p = a.base + (size_t)page_of(&a, b) * WALLS__PAGE;
    memset(p, 0xA5, 4 * WALLS__PAGE);
    struct stat st;
    ck_assert_int_eq(fstat(a.fd, &st), 0);
    blkcnt_t used = st.st_blocks;
    ck_assert_int_ge(used * 512, 4 * WALLS__PAGE);
    ck_assert_int_eq(walls__arena_free(&a, b), 0);
    ck_assert_int_eq(fstat(a.fd, &st), 0);
    ck_assert_msg(st.st_blocks * 512 <= used * 512 - 4 * WALLS__PAGE,
                  "the memfd holds %lld bytes after the free, %lld before",
                  (long long)st.st_blocks * 512, (long long)used * 512);
    /* The next buffer there starts zeroed. */
    b = alloc_pages(&a, 4);
    ck_assert_ptr_eq(a.base + (size_t)page_of(&a, b) * WALLS__PAGE, p);
    for (size_t i = 0; i < 4 * WALLS__PAGE; i++)
        if (p[i] != 0)
            ck_abort_msg("byte %zu of the new buffer is %#x", i, p[i]);
    walls__arena_close(&a);
}
END_TEST

START_TEST(test_open_close)
{
    int fds = count_fds();
    struct walls__arena a;
    /* Rounded up to whole pages; the locks get a descriptor of their own. */
    ck_assert_int_eq(walls__arena_open(&a, 5000, 3, 0), 0);
    ck_assert_uint_eq(a.size, 2 * WALLS__PAGE);
    ck_assert_int_ge(a.fd, 0);
    ck_assert_int_ge(a.lock_fd, 0);
    ck_assert_uint_eq(a.nlocks, 3);
    ck_assert_int_eq(count_fds(), fds + 2);
    walls_buf b = alloc_pages(&a, 2);
    ck_assert_uint_eq(page_of(&a, b), 0);
    walls__arena_close(&a);
    ck_assert_int_eq(count_fds(), fds);
    ck_assert_int_eq(a.fd, -1);
    ck_assert_int_eq(a.lock_fd, -1);
    ck_assert_ptr_null(a.base);
    /* Locks without an arena: no buffer fits. */
    ck_assert_int_eq(walls__arena_open(&a, 0, 1, 0), 0);
    ck_assert_int_eq(a.fd, -1);
    ck_assert_int_eq(walls__arena_alloc(&a, 1, &b), -ENOSPC);
    walls__arena_close(&a);
    ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("arena allocator");
    TCase *tc = tcase_create("arena allocator");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_first_fit);
    tcase_add_test(tc, test_coalescing_every_order);
    tcase_add_test(tc, test_exhaustion_and_recovery);
    tcase_add_test(tc, test_refused_handles);
    tcase_add_test(tc, test_generations);
    tcase_add_test(tc, test_pins);
    tcase_add_test(tc, test_free_gives_pages_back);
    tcase_add_test(tc, test_open_close);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
