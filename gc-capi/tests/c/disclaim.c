/* gc_disclaim.h: a disclaim procedure runs on each unreachable object of its kind
 * before it is reclaimed; returning nonzero resurrects the object for one more cycle
 * (it is disclaimed again later, contents intact); with mark_from_all what the dead
 * object references is still intact when the procedure runs.  GC_finalized_malloc's
 * finalizer runs on exactly the dropped objects, with the pointer the program got.
 * Argument "inc": incremental mode. */
#include <gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_disclaim.h>
#include <stdint.h>
#include "check.h"

#define N 20
#define MAGIC ((void *)0x5eed)
/* Object layout: word 0 tag (1 while live: bdwgc's disclaim convention), word 1 a
 * child, word 2 the id. */
static volatile int calls[N], resurrected[N], disclaimed[N], bad;
static GC_word child_links[N]; /* long links to the children */

static int GC_CALLBACK on_disclaim(void *obj) {
  GC_word *w = obj;
  if ((w[0] & 1) == 0) return 0; /* a free-list fragment (bdwgc) */
  GC_word id = w[2];
  if (id >= N) { bad++; return 0; }
  void **child = (void **)w[1];
  /* mark_from_all kept the child alive (its long link stands) and intact. */
  if (child == NULL || child[1] != MAGIC || child_links[id] == 0) bad++;
  calls[id]++;
  if (id % 2 == 0 && !resurrected[id]) {
    resurrected[id] = 1;
    return 1; /* keep it one more cycle */
  }
  disclaimed[id]++;
  w[0] = 0;
  return 0;
}

static void __attribute__((noinline)) make_objects(unsigned kind) {
  for (GC_word i = 0; i < N; i++) {
    GC_word *o = GC_generic_malloc(4 * sizeof(GC_word), (int)kind);
    void **child = GC_malloc(2 * sizeof(void *));
    CHECK(o != NULL && child != NULL);
    child[1] = MAGIC;
    child_links[i] = GC_HIDE_POINTER(child);
    CHECK(GC_register_long_link((void **)&child_links[i], child) == GC_SUCCESS);
    o[1] = (GC_word)child;
    o[2] = i;
    o[0] = 1;
    GC_END_STUBBORN_CHANGE(o);
  }
}

static volatile int fin_calls, fin_bad;
static void GC_CALLBACK on_final(void *obj, void *cd) {
  int *payload = obj;
  if (cd != (void *)&fin_calls || payload[0] != 77) fin_bad++;
  fin_calls++;
}
static const struct GC_finalizer_closure closure = {on_final, (void *)&fin_calls};
static void *kept;

static void __attribute__((noinline)) make_finalized(int n) {
  for (int i = 0; i < n; i++) {
    int *p = GC_finalized_malloc(40, &closure);
    CHECK(p != NULL);
    CHECK(GC_base(p) == (char *)p - sizeof(GC_word));
    CHECK(GC_size(GC_base(p)) >= 40 + sizeof(GC_word));
    p[0] = 77;
  }
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  GC_init_finalized_malloc();
  if (inc) GC_enable_incremental();
  unsigned kind = GC_new_kind(GC_new_free_list(), GC_DS_LENGTH, 1, 1);
  GC_register_disclaim_proc((int)kind, on_disclaim, 1);
#ifdef GC_DUNEGC
  GC_register_disclaim_proc(99, on_disclaim, 1); /* bad kind: warns, ignored */
  CHECK(GC_finalized_malloc(8, NULL) == NULL);
#endif
  make_objects(kind);
  for (int i = 0; i < 8; i++) collect_clean(1);
  int n_disclaimed = 0;
  for (int i = 0; i < N; i++) {
    CHECK(disclaimed[i] <= 1);
    if (i % 2 == 0 && disclaimed[i]) {
      /* A resurrected object was disclaimed again in a later cycle, intact. */
      CHECK(resurrected[i] && calls[i] == 2);
    }
    if (i % 2 == 1 && disclaimed[i]) CHECK(calls[i] == 1);
    n_disclaimed += disclaimed[i];
  }
  CHECK(bad == 0);
  printf("disclaimed %d of %d\n", n_disclaimed, N);
  CHECK(n_disclaimed >= N - 2); /* conservative stack words may keep one or two */
  /* Finalized allocation: 10 dropped objects are finalized, the kept one is not. */
  kept = GC_finalized_malloc(40, &closure);
  ((int *)kept)[0] = 77;
  make_finalized(10);
  for (int i = 0; i < 8; i++) collect_clean(1);
  printf("finalized %d of 10\n", fin_calls);
  CHECK(fin_bad == 0);
  CHECK(fin_calls >= 8 && fin_calls <= 10);
  CHECK(((int *)kept)[0] == 77);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
