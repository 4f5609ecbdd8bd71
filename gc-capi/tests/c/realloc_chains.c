/* GC_realloc chains: growing and shrinking buffers keep their contents. */
#include <gc.h>
#include "check.h"

struct holder { char *buf; size_t len; };

int main(void) {
  GC_INIT();
  /* realloc(NULL, n) is malloc; realloc(p, 0) frees and returns NULL. */
  char *p = GC_REALLOC(NULL, 10);
  CHECK(p != NULL && GC_base(p) == p);
  CHECK(GC_REALLOC(p, 0) == NULL);
  CHECK(GC_base(p) == NULL);

  /* Ten chains growing byte by byte up to 64 KiB through many size classes, each
   * holding a pattern; collections run in between. */
  struct holder *h = GC_MALLOC(10 * sizeof *h);
  for (size_t len = 1; len <= 65536; len = len * 5 / 4 + 1) {
    for (int k = 0; k < 10; k++) {
      size_t old = h[k].len;
      char *b = GC_REALLOC(h[k].buf, len);
      CHECK(b != NULL);
      for (size_t i = 0; i < old && i < len; i++) CHECK(b[i] == (char)(i * 7 + k));
      for (size_t i = old; i < len; i++) {
        CHECK(b[i] == 0); /* grown part is zero */
        b[i] = (char)(i * 7 + k);
      }
      h[k].buf = b;
      h[k].len = len;
    }
    (void)GC_MALLOC(4096); /* garbage */
  }
  GC_gcollect();
  /* Shrink the chains back down; contents survive, the tail is cleared. */
  for (size_t len = h[0].len; len > 0; len /= 3) {
    for (int k = 0; k < 10; k++) {
      char *b = GC_REALLOC(h[k].buf, len);
      CHECK(b != NULL);
      for (size_t i = 0; i < len; i++) CHECK(b[i] == (char)(i * 7 + k));
      size_t usable = GC_size(b);
      CHECK(usable >= len);
      for (size_t i = len; i < usable; i++) CHECK(b[i] == 0);
      h[k].buf = b;
      h[k].len = len;
    }
  }
  /* A list of pointers rebuilt by realloc stays traced (kind is kept). */
  void **arr = NULL;
  for (int n = 1; n <= 3000; n++) {
    arr = GC_REALLOC(arr, (size_t)n * sizeof(void *));
    long *v = GC_MALLOC_ATOMIC(sizeof(long));
    *v = n;
    arr[n - 1] = v;
    if (n % 1000 == 0) GC_gcollect();
  }
  for (int n = 1; n <= 3000; n++) CHECK(*(long *)arr[n - 1] == n);
  /* Atomic realloc keeps data. */
  char *s = GC_STRDUP("hello, collector");
  s = GC_REALLOC(s, 4000);
  CHECK(strcmp(s, "hello, collector") == 0);
  CHECK(strcmp(GC_strndup("abcdef", 3), "abc") == 0);
  printf("gc_no %lu\nPASS\n", (unsigned long)GC_get_gc_no());
  return 0;
}
