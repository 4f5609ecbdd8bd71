/* Java-style finalization (GC_set_java_finalization): with it on (bdwgc's default in
 * Debian's build), what a no-order finalizable object references is kept alive for its
 * finalizer; with it off, only the object itself is kept, so an object reachable only
 * from it dies in the same collection (a long link to it is cleared).  Argument "inc":
 * incremental mode. */
#include <gc.h>
#include <stdint.h>
#include "check.h"

static volatile int finalized;
static void *volatile seen_child;

static void on_final(void *obj, void *cd) {
  (void)cd;
  finalized++;
  seen_child = *(void **)obj;
}

/* A (no-order finalizer) -> B; a long link to B; nothing else reaches either. */
static GC_word __attribute__((noinline)) make_pair(GC_word *link) {
  void **a = GC_malloc(4 * sizeof(void *));
  void **b = GC_malloc(4 * sizeof(void *));
  CHECK(a != NULL && b != NULL);
  b[1] = (void *)0x1234;
  a[0] = b;
  *link = GC_HIDE_POINTER(b);
  CHECK(GC_register_long_link((void **)link, b) == GC_SUCCESS);
  GC_register_finalizer_no_order(a, on_final, NULL, NULL, NULL);
  return GC_HIDE_POINTER(b);
}

static int run_once(int java) {
  static GC_word link;
  GC_set_java_finalization(java);
  CHECK(GC_get_java_finalization() == java);
  finalized = 0;
  seen_child = NULL;
  GC_word hidden_b = make_pair(&link);
  for (int i = 0; i < 5 && finalized == 0; i++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  CHECK(finalized == 1);
  CHECK(seen_child == GC_REVEAL_POINTER(hidden_b));
  int kept = link != 0;
  if (kept) CHECK(((void **)GC_REVEAL_POINTER(link))[1] == (void *)0x1234);
  GC_unregister_long_link((void **)&link);
  return kept;
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
  GC_set_finalize_on_demand(1);
  printf("default java_finalization %d\n", GC_get_java_finalization());
  CHECK(GC_get_java_finalization() == 1);
  /* On: B outlives A's queueing (kept for the finalizer), so its long link stays. */
  CHECK(run_once(1) == 1);
  /* Off: B is reachable only from A, which is kept alone: B dies, its link is cleared. */
  CHECK(run_once(0) == 0);
  CHECK(run_once(1) == 1);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
