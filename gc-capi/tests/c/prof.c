/* GC_get_prof_stats: the struct is filled consistently with the getters; a larger
 * buffer gets 0xff past the struct, a smaller one exactly its size; GC_get_memory_use
 * is at least the live data.  Argument "inc": incremental mode. */
#include <gc.h>
#include "check.h"

void *volatile keep[1000];
int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) GC_enable_incremental();
  printf("incremental %d\n", GC_is_incremental_mode());
  for (int i = 0; i < 1000; i++) keep[i] = GC_MALLOC(1000);
  collect_clean(2);
  struct GC_prof_stats_s s;
  memset(&s, 0, sizeof s);
  CHECK(sizeof s == 12 * sizeof(GC_word));
  CHECK(GC_get_prof_stats(&s, sizeof s) == sizeof s);
  CHECK(s.gc_no == GC_get_gc_no());
  CHECK(s.heapsize_full >= GC_get_heap_size() && s.heapsize_full >= 1000 * 1000);
  CHECK(s.free_bytes_full <= s.heapsize_full);
  size_t use = GC_get_memory_use();
  printf("memory_use %zu heap %zu free %zu\n", use, GC_get_heap_size(), GC_get_free_bytes());
  CHECK(use >= 1000 * 1000);
#ifdef GC_DUNEGC
  CHECK(use <= GC_get_heap_size()); /* bdwgc's counts blocks differently */
#endif
  /* Bigger buffer: the tail is "unknown" (all ones). */
  unsigned char big[sizeof s + 16];
  memset(big, 0, sizeof big);
  CHECK(GC_get_prof_stats((struct GC_prof_stats_s *)big, sizeof big) == sizeof s);
  for (size_t i = sizeof s; i < sizeof big; i++) CHECK(big[i] == 0xff);
  /* Smaller buffer: only that much written. */
  unsigned char small[3 * sizeof(GC_word) + 8];
  memset(small, 0xab, sizeof small);
  CHECK(GC_get_prof_stats((struct GC_prof_stats_s *)small, 3 * sizeof(GC_word)) ==
        3 * sizeof(GC_word));
  for (size_t i = 3 * sizeof(GC_word); i < sizeof small; i++) CHECK(small[i] == 0xab);
  printf("PASS\n");
  return 0;
}
