/* GC_non_gc_bytes: GC_free of an uncollectable object subtracts its GC_size;
 * collectable objects and collections leave it alone; the variable, setter and getter
 * are one value.  Argument "inc": incremental mode.  Argument "dunegc" (not on bdwgc
 * 8.2, which adds only when the object comes from a free list): every uncollectable
 * allocation adds its GC_size, and allocating and freeing uncollectable objects does
 * not count towards the next collection (bdwgc's GC_adj_bytes_allocd). */
#include <gc.h>
#include "check.h"

#define N 8
static const size_t sizes[N] = {1, 24, 100, 1000, 2048, 5000, 100000, 1 << 20};

int main(int argc, char **argv) {
  int inc = 0, exact = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "inc") == 0) inc = 1;
    if (strcmp(argv[i], "dunegc") == 0) exact = 1;
  }
  GC_INIT();
  if (inc) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  GC_word base = GC_get_non_gc_bytes();
  CHECK(GC_non_gc_bytes == base);

  void *p[2 * N];
  GC_word sum = 0;
  for (int i = 0; i < N; i++) {
    p[i] = GC_malloc_uncollectable(sizes[i]);
    CHECK(p[i] != NULL);
    sum += GC_size(p[i]);
    if (exact) CHECK(GC_get_non_gc_bytes() == base + sum);
    p[N + i] = GC_malloc_atomic_uncollectable(sizes[i]);
    CHECK(p[N + i] != NULL);
    sum += GC_size(p[N + i]);
    if (exact) CHECK(GC_get_non_gc_bytes() == base + sum);
  }
  /* From here on, measure from the value now (bdwgc counted only some). */
  base = GC_get_non_gc_bytes() - sum;
  /* Collectable objects, and collections, do not change it. */
  void *c = GC_malloc(100);
  void *a = GC_malloc_atomic(5000);
  CHECK(c != NULL && a != NULL);
  CHECK(GC_get_non_gc_bytes() == base + sum);
  collect_clean(2);
  CHECK(GC_get_non_gc_bytes() == base + sum);
  GC_free(c);
  GC_free(a);
  CHECK(GC_get_non_gc_bytes() == base + sum);
  /* Freeing subtracts each object's size. */
  for (int i = 0; i < 2 * N; i++) {
    sum -= GC_size(p[i]);
    GC_free(p[i]);
    CHECK(GC_get_non_gc_bytes() == base + sum);
  }
  CHECK(sum == 0);
  /* The variable and the accessors are one value. */
  GC_set_non_gc_bytes(base + 12345);
  CHECK(GC_non_gc_bytes == base + 12345);
  GC_non_gc_bytes = base;
  CHECK(GC_get_non_gc_bytes() == base);

  if (exact) {
    /* Ten budgets' worth of uncollectable objects, allocated and freed: no collection
     * is triggered by them. */
    size_t budget = GC_get_min_bytes_allocd();
    GC_set_min_bytes_allocd(budget);
    collect_clean(1);
    GC_word gc_no = GC_get_gc_no();
    size_t total = 0;
    while (total < 10 * budget) {
      void *u = GC_malloc_uncollectable(4000);
      CHECK(u != NULL);
      total += GC_size(u);
      if ((total / 4000) % 2 == 0) GC_free(u);
    }
    CHECK(GC_get_gc_no() == gc_no);
    /* The same amount of collectable objects does trigger one. */
    for (total = 0; total < 10 * budget; total += 4000) (void)GC_malloc(4000);
    CHECK(GC_get_gc_no() > gc_no);
  }
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
