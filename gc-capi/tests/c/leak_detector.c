/* <gc/leak_detector.h>: malloc, calloc, realloc, strdup, memalign and posix_memalign
 * go to the debug allocator; with leak detection on, exactly the blocks dropped without
 * free are reported, with this file's name.  Argument "inc": incremental mode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gc/leak_detector.h>
#include "capture.h"

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static void __attribute__((noinline)) wipe(void) {
  volatile char buf[64 * 1024];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = 0;
}

void *volatile kept;
static void __attribute__((noinline)) work(void) {
  char *a = malloc(100);
  CHECK(a != NULL);
  strcpy(a, "leak detector");
  char *b = realloc(a, 300);
  CHECK(b != NULL && strcmp(b, "leak detector") == 0);
  free(b);
  int *c = calloc(10, sizeof(int));
  CHECK(c != NULL && c[9] == 0);
  free(c);
  char *d = strdup("dup");
  CHECK(strcmp(d, "dup") == 0);
  free(d);
  void *e = NULL;
  CHECK(posix_memalign(&e, 64, 200) == 0 && ((uintptr_t)e & 63) == 0);
  CHECK(posix_memalign(&e, 3, 200) != 0);
  void *f = memalign(256, 50);
  CHECK(f != NULL && ((uintptr_t)f & 255) == 0);
  kept = malloc(8);
  for (int i = 0; i < 3; i++) {
    void *volatile leak = malloc(48); /* LEAK */
    (void)leak;
  }
}

int main(int argc, char **argv) {
  GC_set_find_leak(1);
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) GC_enable_incremental();
  printf("incremental %d\n", GC_is_incremental_mode());
  capture_start();
  work();
  for (int i = 0; i < 3; i++) {
    wipe();
    CHECK_LEAKS();
  }
  (void)malloc(8); /* reports are printed after a collection */
  char *text = capture_end();
  CHECK(count_of(text, "leak_detector.c:") == 3);
  CHECK(count_of(text, "object at ") == 2); /* e and f: memalign is not a debug call */
  CHECK(count_of(text, "sz= 48, NORMAL)") == 3);
  CHECK(GC_base(kept) != NULL);
  printf("PASS\n");
  return 0;
}
