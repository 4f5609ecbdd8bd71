/* GC_dont_precollect: GC_init ends with one collection unless GC_dont_precollect was
 * set before it (and incremental mode is not on by then), as bdwgc's GC_init does.
 * Argument "skip": set it first (through the setter, then read back through the
 * variable).  Argument "inc": incremental mode after initialisation (no effect on the
 * initial collection).  GC_ENABLE_INCREMENTAL in the environment: incremental mode
 * during GC_init, which collects even with "skip". */
#include <gc.h>
#include "check.h"

int main(int argc, char **argv) {
  int skip = 0, inc = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "skip") == 0) skip = 1;
    if (strcmp(argv[i], "inc") == 0) inc = 1;
  }
  CHECK(GC_get_dont_precollect() == 0);
  if (skip) {
    GC_set_dont_precollect(1);
    CHECK(GC_dont_precollect == 1);
  }
  GC_INIT();
  int inc_at_init = GC_is_incremental_mode();
  CHECK(GC_get_dont_precollect() == skip);
  GC_word expected = (skip && !inc_at_init) ? 0 : 1;
  CHECK(GC_get_gc_no() == expected);
  if (inc) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  collect_clean(1);
  CHECK(GC_get_gc_no() >= expected + 1);
  printf("gc_no at init %lu incremental %d\nPASS\n", (unsigned long)expected,
         GC_is_incremental_mode());
  return 0;
}
