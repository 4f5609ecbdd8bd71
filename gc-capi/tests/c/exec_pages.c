/* GC_set_pages_executable(1) before GC_INIT: GC_get_pages_executable reports it, and code
 * copied into GC_malloc'd objects runs, also in objects written after a collection
 * write-protected their pages (incremental mode).  Argument "inc": incremental mode. */
#include <gc.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

typedef int (*fn_t)(void);

/* mov eax, imm32; ret */
static void emit(unsigned char *p, int value) {
  p[0] = 0xb8;
  memcpy(p + 1, &value, 4);
  p[5] = 0xc3;
}

int main(int argc, char **argv) {
  GC_set_pages_executable(1);
  CHECK(GC_get_pages_executable() == 1);
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  /* (bdwgc asserts that the setter is not called after GC_INIT; dunegc ignores it.) */
  CHECK(GC_get_pages_executable() == 1);

  enum { N = 64 };
  static unsigned char *code[N]; /* roots: static data */
  for (int i = 0; i < N; i++) {
    code[i] = GC_malloc(64);
    CHECK(code[i] != NULL);
    emit(code[i], 1000 + i);
    __builtin___clear_cache((char *)code[i], (char *)code[i] + 6);
  }
  for (int i = 0; i < N; i++) CHECK(((fn_t)code[i])() == 1000 + i);
  /* After a collection (incremental: pages protected again), write new code into the
   * same objects and run it. */
  int in_cycle = 0;
  for (int round = 0; round < 3; round++) {
    GC_gcollect();
    /* Incremental mode: allocate until a cycle is under way (its pages are then
     * write-protected by the mprotect tracker) before writing the code. */
    for (long j = 0; j < 400000 && !in_cycle; j++) {
      CHECK(GC_malloc(64) != NULL);
      if (j % 256 == 0 && GC_is_incremental_mode() && GC_collect_a_little()) in_cycle = 1;
    }
    for (int i = 0; i < N; i++) {
      emit(code[i], 7 * round + i);
      __builtin___clear_cache((char *)code[i], (char *)code[i] + 6);
    }
    for (int i = 0; i < N; i++) CHECK(((fn_t)code[i])() == 7 * round + i);
    in_cycle = 0;
  }
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
