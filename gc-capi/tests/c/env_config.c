/* Prints what the environment configured: incremental mode and collections while
 * allocating 12 MiB after GC_INIT (which itself collects once unless GC_DONT_GC), and
 * collection behaviour under GC_DONT_GC. */
#include <gc.h>
#include "check.h"

int main(void) {
  GC_INIT();
  GC_word at_init = GC_get_gc_no();
  for (int i = 0; i < 12 * 1024; i++) (void)GC_MALLOC(1024);
  printf("at_init %lu\n", (unsigned long)at_init);
  printf("incremental %d gc_no %lu\n", GC_is_incremental_mode(),
         (unsigned long)(GC_get_gc_no() - at_init));
  GC_gcollect();
  printf("after gcollect %lu\n", (unsigned long)GC_get_gc_no());
  return 0;
}
