/* GC_max_retries (dunegc only: bdwgc 8.2 counts its collections differently around
 * heap growth): with the heap at its limit, an allocation that cannot be met
 * collects once and then GC_max_retries more times before it returns NULL (through the
 * out-of-memory function).  Argument "inc": incremental mode. */
#include <gc.h>
#include "check.h"

#define LIMIT (16 << 20)
#define CHUNK (1 << 20)
static void *volatile live[64];
static void *GC_CALLBACK quiet_oom(size_t n) {
  (void)n;
  return NULL;
}

/* Collections one failing allocation took. */
static GC_word collections_for_failure(void) {
  GC_word before = GC_get_gc_no();
  void *p = GC_malloc_atomic(8 * CHUNK);
  CHECK(p == NULL);
  return GC_get_gc_no() - before;
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_max_retries() == 0);
  GC_set_oom_fn(quiet_oom);
  GC_set_warn_proc(GC_ignore_warn_proc);
  GC_set_max_heap_size(LIMIT);
  int n = 0;
  while (n < 64 && (live[n] = GC_malloc_atomic(CHUNK)) != NULL) n++;
  CHECK(n > 4 && n < 64);
  collect_clean(1);
  CHECK(collections_for_failure() == 1);
  GC_set_max_retries(3);
  CHECK(GC_max_retries == 3);
  CHECK(collections_for_failure() == 4);
  GC_max_retries = 0;
  CHECK(collections_for_failure() == 1);
  for (int i = 0; i < n; i++) CHECK(live[i] != NULL);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
