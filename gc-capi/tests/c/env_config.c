/* Prints what the environment configured: incremental mode and collections after
 * allocating 12 MiB, and collection behaviour under GC_DONT_GC. */
#include <gc.h>
#include "check.h"

int main(void) {
  GC_INIT();
  for (int i = 0; i < 12 * 1024; i++) (void)GC_MALLOC(1024);
  printf("incremental %d gc_no %lu\n", GC_is_incremental_mode(),
         (unsigned long)GC_get_gc_no());
  GC_gcollect();
  printf("after gcollect %lu\n", (unsigned long)GC_get_gc_no());
  return 0;
}
