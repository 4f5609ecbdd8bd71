/* Disappearing links: cleared exactly when the object dies (in the collection that
 * finds it unreachable, and not before), duplicates, unregister, move, links inside
 * heap objects, and a weak table of many links.  Argument "inc": incremental mode. */
#include <gc.h>
#include <stdint.h>
#include "check.h"

#define N 1000

#define M 200
static void *volatile keep[M];   /* the only strong references to the targets */
static GC_word links[M];         /* one disguised link to each */
static volatile int finalized[M];
static GC_word link_a, link_b, link_c, sentinel_link;

static void on_final(void *obj, void *cd) {
  (void)obj;
  finalized[(intptr_t)cd]++;
}

static void __attribute__((noinline)) make_targets(void) {
  for (int i = 0; i < M; i++) {
    void *obj = GC_malloc(48);
    CHECK(obj != NULL);
    links[i] = GC_HIDE_POINTER(obj); /* disguised: the link keeps nothing alive */
    CHECK(GC_general_register_disappearing_link((void **)&links[i], obj) == GC_SUCCESS);
    CHECK(GC_general_register_disappearing_link((void **)&links[i], obj) == GC_DUPLICATE);
    GC_register_finalizer_no_order(obj, on_final, (void *)(intptr_t)i, NULL, NULL);
    keep[i] = obj;
  }
}

/* Each link is cleared in exactly the collection that finds its object dead: the one
 * that queues the object's finalizer (finalizers run on demand right after it). */
static void test_cleared_when_dead(void) {
  GC_set_finalize_on_demand(1);
  make_targets();
  for (int round = 0; round < 3; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
    for (int i = 0; i < M; i++) {
      CHECK(links[i] == GC_HIDE_POINTER(keep[i])); /* alive: untouched */
      CHECK(finalized[i] == 0);
    }
  }
  for (int i = 0; i < M; i++) keep[i] = NULL;
  int dead = 0;
  /* Six collections, and more while a stale word (a register or stack slot the clearing
   * did not reach) still holds one: every target must be found dead within 30. bdwgc's
   * incremental mode, as a reference run, needs more than six about once in 30 runs. */
  for (int round = 0; round < 6 || (dead < M && round < 30); round++) {
    collect_clean(1);
    GC_invoke_finalizers();
    dead = 0;
    for (int i = 0; i < M; i++) {
      CHECK(finalized[i] <= 1);
      CHECK((links[i] == 0) == (finalized[i] == 1));
      dead += finalized[i];
    }
  }
  GC_set_finalize_on_demand(0);
  printf("targets dead %d/%d\n", dead, M);
  CHECK(dead == M);
  for (int i = 0; i < M; i++)
    if (links[i] == 0) /* a cleared link is no longer registered */
      CHECK(GC_unregister_disappearing_link((void **)&links[i]) == 0);
}

static void __attribute__((noinline)) make_plain(GC_word *link) {
  void *obj = GC_malloc(32);
  CHECK(obj != NULL);
  *link = GC_HIDE_POINTER(obj);
  CHECK(GC_general_register_disappearing_link((void **)link, obj) == GC_SUCCESS);
}

static void test_unregister_and_move(void) {
  /* Unregistered: never cleared. */
  make_plain(&sentinel_link);
  GC_word saved = sentinel_link;
  CHECK(GC_unregister_disappearing_link((void **)&sentinel_link) == 1);
  CHECK(GC_unregister_disappearing_link((void **)&sentinel_link) == 0);
  collect_clean(3);
  CHECK(sentinel_link == saved);

  /* Move b -> c: c is cleared, b is not. */
  make_plain(&link_b);
  CHECK(GC_move_disappearing_link((void **)&link_b, (void **)&link_b) == GC_SUCCESS);
  CHECK(GC_move_disappearing_link((void **)&link_b, (void **)&link_c) == GC_SUCCESS);
  CHECK(GC_move_disappearing_link((void **)&link_b, (void **)&link_c) == GC_NOT_FOUND);
  CHECK(GC_unregister_disappearing_link((void **)&link_b) == 0);
  make_plain(&link_a);
  CHECK(GC_move_disappearing_link((void **)&link_a, (void **)&link_c) == GC_DUPLICATE);
  link_c = link_b; /* the moved link's content is the program's */
  link_b = 0x5a5a;
  collect_clean(4);
  CHECK(link_c == 0);
  CHECK(link_a == 0);
  CHECK(link_b == 0x5a5a);
}

/* A weak table: N links in a heap array (registered in a shuffled order), half of the
 * targets kept. After collections exactly the dropped ones are cleared. */
static void *volatile strong[N];
static GC_word *volatile table;
static void __attribute__((noinline)) fill_table(void) {
  GC_word *t = GC_malloc_atomic(N * sizeof(GC_word));
  CHECK(t != NULL);
  for (int k = 0; k < N; k++) {
    int i = (k * 617) % N; /* 617 is coprime with 1000: a permutation */
    void *obj = GC_malloc(16 + (i % 7) * 8);
    CHECK(obj != NULL);
    t[i] = GC_HIDE_POINTER(obj);
    CHECK(GC_general_register_disappearing_link((void **)&t[i], obj) == GC_SUCCESS);
    if (i % 2 == 0) strong[i] = obj;
  }
  table = t;
}
static void test_weak_table(void) {
  fill_table();
  collect_clean(4);
  int odd_left = 0;
  for (int i = 0; i < N; i++) {
    if (i % 2 == 0) {
      CHECK(table[i] == GC_HIDE_POINTER(strong[i]));
    } else if (table[i] != 0) {
      odd_left++;
      CHECK(table[i] == GC_HIDE_POINTER(GC_base(GC_REVEAL_POINTER(table[i]))));
    }
  }
  /* A conservative collector may keep one or two through stale registers. */
  CHECK(odd_left <= 2);
  /* Drop the table itself: its links go with it, nothing is written into freed
   * memory (the new objects allocated there stay intact). */
  table = NULL;
  for (int i = 0; i < N; i++) strong[i] = NULL;
  collect_clean(3);
  char **fresh = GC_malloc(N * sizeof(char *));
  for (int i = 0; i < N; i++) {
    fresh[i] = GC_malloc(24);
    memset(fresh[i], 0x77, 24);
  }
  collect_clean(3);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < 24; j++) CHECK((unsigned char)fresh[i][j] == 0x77);
}

/* Long links survive the collection that queues their object's finalizer (the object
 * can still be resurrected) and are cleared in a later one; short links to the same
 * objects go in that first collection.  Short and long registrations are separate. */
#define L 100
static GC_word shorts[L], longs[L];
static volatile int lfinal[L];
static void on_lfinal(void *obj, void *cd) {
  (void)obj;
  lfinal[(intptr_t)cd]++;
}
static void __attribute__((noinline)) make_long_targets(void) {
  for (int i = 0; i < L; i++) {
    void *obj = GC_malloc(32);
    CHECK(obj != NULL);
    shorts[i] = longs[i] = GC_HIDE_POINTER(obj);
    CHECK(GC_general_register_disappearing_link((void **)&shorts[i], obj) == GC_SUCCESS);
    CHECK(GC_register_long_link((void **)&longs[i], obj) == GC_SUCCESS);
    CHECK(GC_register_long_link((void **)&longs[i], obj) == GC_DUPLICATE);
    GC_register_finalizer_no_order(obj, on_lfinal, (void *)(intptr_t)i, NULL, NULL);
  }
}
static void test_long_links(void) {
  /* Separate tables: the same word can be both, and each is moved on its own. */
  static GC_word both, both2;
  void *o = GC_malloc(16);
  CHECK(GC_general_register_disappearing_link((void **)&both, o) == GC_SUCCESS);
  CHECK(GC_register_long_link((void **)&both, o) == GC_SUCCESS);
  CHECK(GC_move_long_link((void **)&both, (void **)&both2) == GC_SUCCESS);
  CHECK(GC_move_long_link((void **)&both, (void **)&both2) == GC_NOT_FOUND);
  CHECK(GC_unregister_long_link((void **)&both2) == 1);
  CHECK(GC_unregister_long_link((void **)&both2) == 0);
  CHECK(GC_unregister_disappearing_link((void **)&both) == 1);
  GC_reachable_here(o);

  GC_set_finalize_on_demand(1);
  make_long_targets();
  int seen_long_kept = 0;
  for (int round = 0; round < 6; round++) {
    collect_clean(1);
    for (int i = 0; i < L; i++) {
      int queued_now = shorts[i] == 0 && lfinal[i] == 0;
      if (queued_now) {
        CHECK(longs[i] != 0); /* resurrectable: the long link stays */
        seen_long_kept++;
      }
      if (shorts[i] != 0) CHECK(longs[i] != 0);
    }
    GC_invoke_finalizers();
    for (int i = 0; i < L; i++) CHECK((shorts[i] == 0) == (lfinal[i] == 1));
  }
  GC_set_finalize_on_demand(0);
  /* A long link goes when its object is reclaimed: in the collection after the one that
   * queued its finalizer. Objects a stale word kept until the last round need one more. */
  collect_clean(2);
  int cleared = 0;
  for (int i = 0; i < L; i++) {
    if (longs[i] == 0) {
      CHECK(lfinal[i] == 1); /* cleared only after the finalizer ran */
      cleared++;
    }
  }
  printf("long links kept %d cleared %d/%d\n", seen_long_kept, cleared, L);
  CHECK(seen_long_kept == L);
  CHECK(cleared == L);
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  test_cleared_when_dead();
  test_unregister_and_move();
  test_weak_table();
  test_long_links();
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
