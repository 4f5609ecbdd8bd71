/* Typed allocation (gc_typed.h): the marker scans only the words the descriptor names,
 * so a real pointer in a non-pointer word keeps nothing alive, while pointer words do;
 * for short bitmaps, pointer prefixes, long bitmaps (over 62 words) and typed arrays.
 * A target's death is seen through its finalizer.  Argument "inc": incremental. */
#include <gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_typed.h>
#include <stdint.h>
#include "check.h"

#define M 100
#define LONG_WORDS 100

#define PHASES 5
static volatile int finalized[PHASES][2][M]; /* per phase: targets of earlier phases
                                              may die later */
static int phase;
static void *volatile holders[M];

static void on_final(void *obj, void *cd) {
  (void)obj;
  intptr_t v = (intptr_t)cd;
  finalized[v / (2 * M)][v / M % 2][v % M]++;
}

static GC_word target(int set, int i) {
  void *t = GC_malloc(48);
  CHECK(t != NULL);
  GC_register_finalizer_no_order(t, on_final, (void *)(intptr_t)(phase * 2 * M + set * M + i), NULL, NULL);
  return (GC_word)t;
}

/* Objects of `words` words typed by d; word `ptr` (a pointer word) holds a strong
 * target, word `junk` (a non-pointer word) a weak one; n elements for arrays. */
static void __attribute__((noinline)) fill(GC_descr d, size_t words, size_t n, int ptr,
                                           int junk) {
  for (int i = 0; i < M; i++) {
    GC_word *o = n > 1 ? GC_calloc_explicitly_typed(n, words * sizeof(GC_word), d)
                       : GC_malloc_explicitly_typed(words * sizeof(GC_word), d);
    CHECK(o != NULL);
    CHECK(GC_size(o) >= n * words * sizeof(GC_word));
    size_t at = (n - 1) * words; /* the last element of an array */
    o[at + ptr] = target(0, i);
    o[at + junk] = target(1, i);
    holders[i] = o;
  }
}

static void check_sets(const char *what) {
  for (int round = 0; round < 4; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  int dead = 0;
  for (int i = 0; i < M; i++) {
    CHECK(finalized[phase][0][i] == 0); /* held by a pointer word: alive */
    dead += finalized[phase][1][i];
  }
  printf("%s: targets in non-pointer words dead %d/%d\n", what, dead, M);
  CHECK(dead >= M - 10); /* a few may survive through stale words */
  memset((void *)holders, 0, sizeof holders);
  phase++;
}

/* Writes into typed objects the incremental marker has already scanned are not lost:
 * targets stored into pointer words mid-cycle survive its finish. */
static void *volatile wholder[M];
static void __attribute__((noinline)) write_targets(void) {
  for (int i = 0; i < M; i++) {
    ((GC_word *)wholder[i])[0] = target(0, i);
    ((GC_word *)wholder[i])[2] = target(1, i);
  }
}

static void test_writes_during_cycle(GC_descr d) {
  for (int i = 0; i < M; i++) {
    wholder[i] = GC_malloc_explicitly_typed(4 * sizeof(GC_word), d);
    ((GC_word *)wholder[i])[0] = (GC_word)GC_malloc(16); /* marked once i is scanned */
  }
  /* Step a cycle until it has scanned every holder (their first pointers are marked),
   * then store fresh (unmarked) targets into them. */
  int in_progress = 0;
  for (int k = 0; k < 400000 && !in_progress; k++) {
    CHECK(GC_malloc(64) != NULL);
    if (k % 16 == 0 && GC_collect_a_little()) {
      int scanned = 1;
      for (int i = 0; i < M && scanned; i++) scanned = GC_is_marked((void *)((GC_word *)wholder[i])[0]);
      in_progress = scanned;
    }
  }
  write_targets();
  for (int round = 0; round < 3; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  for (int i = 0; i < M; i++) CHECK(finalized[phase][0][i] == 0 && finalized[phase][1][i] == 0);
  printf("writes after the holders were scanned (in a cycle: %d) kept\n", in_progress);
  phase++;
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  GC_set_finalize_on_demand(1);

  GC_word bm[2] = {0, 0};
  CHECK(GC_make_descriptor(bm, 4) == 0); /* no pointers */
  GC_set_bit(bm, 0);
  GC_set_bit(bm, 1);
  CHECK(GC_make_descriptor(bm, 4) == 2 * sizeof(GC_word)); /* a prefix: a length */

  /* Short bitmap: words 0 and 2 are pointers, 1 and 3 are not. */
  GC_word b1[1] = {0};
  GC_set_bit(b1, 0);
  GC_set_bit(b1, 2);
  GC_descr d1 = GC_make_descriptor(b1, 4);
  CHECK((d1 & 3) == 1); /* GC_DS_BITMAP */
  fill(d1, 4, 1, 2, 1);
  check_sets("bitmap");

  /* Pointer prefix (length descriptor): word 3 is not scanned. */
  fill(GC_make_descriptor(bm, 4), 4, 1, 1, 3);
  check_sets("prefix");

  /* Long bitmap: every even word of 100 is a pointer. */
  GC_word lb[GC_BITMAP_SIZE(GC_word[LONG_WORDS])];
  memset(lb, 0, sizeof lb);
  for (int i = 0; i < LONG_WORDS; i += 2) GC_set_bit(lb, i);
  GC_descr dl = GC_make_descriptor(lb, LONG_WORDS);
  fill(dl, LONG_WORDS, 1, 80, 81);
  check_sets("long bitmap");

  /* Arrays: 10 elements of 4 words typed by d1. */
  fill(d1, 4, 10, 0, 3);
  check_sets("array");

  test_writes_during_cycle(d1);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
