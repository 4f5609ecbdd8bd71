/* GC_on_heap_resize: called with the new heap size as the heap grows (and, with
 * "dunegc", as it shrinks: dunegc's heap size counts only pages holding objects, so it
 * shrinks when a collection frees them; bdwgc's shrinks only by unmapping).  And
 * GC_get_obtained_from_os_bytes: at least the heap size, never decreasing.  Argument
 * "inc": incremental mode. */
#include <gc.h>
#include "check.h"

#define BIG (1 << 20)
#define N 48
static volatile GC_word last_size;
static volatile int resizes;
static void GC_CALLBACK on_resize(GC_word new_size) {
  last_size = new_size;
  resizes++;
}
static void *volatile big[N];

int main(int argc, char **argv) {
  int inc = 0, dunegc = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "inc") == 0) inc = 1;
    if (strcmp(argv[i], "dunegc") == 0) dunegc = 1;
  }
  GC_INIT();
  if (inc) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_on_heap_resize() == 0);
  GC_set_on_heap_resize(on_resize);
  CHECK(GC_get_on_heap_resize() == on_resize);
  CHECK(GC_on_heap_resize == on_resize);
  size_t os = GC_get_obtained_from_os_bytes();
  CHECK(os >= GC_get_heap_size());

  /* Grow: N MiB kept live. */
  for (int i = 0; i < N; i++) {
    big[i] = GC_malloc_atomic(BIG);
    CHECK(big[i] != NULL);
  }
  CHECK(resizes > 0);
  CHECK(GC_get_heap_size() >= (size_t)N * BIG);
  CHECK(last_size >= (size_t)N * BIG);
  /* bdwgc passes its whole heap size, unmapped blocks included. */
  if (dunegc) CHECK(last_size == GC_get_heap_size());
  size_t os2 = GC_get_obtained_from_os_bytes();
  CHECK(os2 >= os && os2 >= GC_get_heap_size());
  size_t peak = GC_get_heap_size();

  /* Drop them and collect. */
  for (int i = 0; i < N; i++) big[i] = NULL;
  int before = resizes;
  collect_clean(3);
  CHECK(GC_get_obtained_from_os_bytes() >= os2);
  if (dunegc) {
    CHECK(resizes > before);
    CHECK(GC_get_heap_size() < peak);
    CHECK(last_size == GC_get_heap_size());
  }
  GC_set_on_heap_resize(0);
  CHECK(GC_get_on_heap_resize() == 0);
  int now = resizes;
  for (int i = 0; i < 8; i++) big[i] = GC_malloc_atomic(BIG);
  CHECK(resizes == now);
  printf("resizes %d incremental %d\nPASS\n", now, GC_is_incremental_mode());
  return 0;
}
