/* GC_debug_free of a pointer outside the heap: bdwgc aborts with "Invalid pointer
 * passed to free()"; with GC_LOOP_ON_ABORT set it loops instead (for a debugger). */
#include <gc.h>
#include <stdio.h>
int main(void) {
  GC_INIT();
  GC_word local = 0;
  printf("freeing\n");
  fflush(stdout);
  GC_debug_free(&local);
  printf("not reached\n");
  return 0;
}
