/* Leak detection (GC_set_find_leak before GC_INIT, as bdwgc asks, or GC_FIND_LEAK): objects that became
 * unreachable without GC_FREE are reported once each ("Found N leaked objects:", with
 * file and line for debug objects), not those freed nor those still reachable.
 * Argument "inc": incremental mode. */
#define GC_DEBUG 1
#include <gc.h>
#include "check.h"
#include "capture.h"

#define LEAKS 5
static int leak_line;
void *volatile kept[3];

static void __attribute__((noinline)) make_leaks(void) {
  for (int i = 0; i < LEAKS; i++) {
    leak_line = __LINE__ + 1;
    void *volatile p = GC_MALLOC(24);
    (void)p;
  }
  for (int i = 0; i < 2; i++) (void)GC_malloc(100); /* non-debug leaks */
  for (int i = 0; i < 3; i++) GC_FREE(GC_MALLOC(24)); /* freed: not leaks */
  for (int i = 0; i < 3; i++) kept[i] = GC_MALLOC(24); /* reachable */
}

int main(int argc, char **argv) {
  if (getenv("GC_FIND_LEAK") == NULL) GC_set_find_leak(1);
  GC_INIT();
  CHECK(GC_get_find_leak() == 1);
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
  }
  printf("incremental %d\n", GC_is_incremental_mode());
  capture_start();
  make_leaks();
  collect_clean(3);
  (void)GC_malloc(8); /* reports are printed after the collection */
  char *text = capture_end();
  char want[64];
  snprintf(want, sizeof want, "leak.c:%d, sz= 24, NORMAL)", leak_line);
  CHECK(count_of(text, want) == LEAKS);
  CHECK(count_of(text, "sz= 24, NORMAL)") == LEAKS);
  CHECK(count_of(text, "object at ") == 2);
  CHECK(count_of(text, " leaked objects:") >= 1);
  int total = 0;
  for (const char *t = text; (t = strstr(t, "Found ")) != NULL; t++) {
    int n;
    if (sscanf(t, "Found %d leaked objects:", &n) == 1) total += n;
  }
  CHECK(total == LEAKS + 2);
  for (int i = 0; i < 3; i++) CHECK(GC_base(kept[i]) != NULL);
  printf("PASS\n");
  return 0;
}
