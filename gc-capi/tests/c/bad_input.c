/* Bad input: GC_free of foreign, interior and freed pointers warns and is ignored;
 * huge sizes return NULL through the out-of-memory function; foreign pointers are
 * not objects. */
#include <gc.h>
#include "check.h"
#include <stdint.h>

static int warnings;
static GC_word last_arg;
static void GC_CALLBACK on_warn(char *msg, GC_word arg) {
  warnings++;
  last_arg = arg;
  fprintf(stderr, "warning seen: ");
  fprintf(stderr, msg, arg);
}

static size_t oom_requested;
static void *GC_CALLBACK on_oom(size_t n) {
  oom_requested = n;
  return NULL;
}

int main(void) {
  GC_INIT();
  GC_set_warn_proc(on_warn);
  CHECK(GC_get_warn_proc() == on_warn);

  GC_free(NULL); /* no-op, no warning */
  CHECK(warnings == 0);

  int local = 5;
  GC_free(&local);
  CHECK(warnings == 1 && last_arg == (GC_word)&local && local == 5);

  char *m = malloc(100);
  GC_free(m);
  CHECK(warnings == 2 && last_arg == (GC_word)m);
  free(m);

  char *p = GC_MALLOC(100);
  GC_free(p + 8); /* interior */
  CHECK(warnings == 3);
  CHECK(GC_base(p) == p); /* still allocated */
  GC_free(p);
  CHECK(warnings == 3);
  GC_free(p); /* double free */
  CHECK(warnings == 4);
  CHECK(GC_base(p) == NULL && GC_size(p) == 0);

  CHECK(GC_base(&local) == NULL && GC_size(&local) == 0);
  CHECK(GC_realloc(&local, 10) == NULL); /* warns, frees nothing */
  CHECK(warnings == 5);

  /* Huge sizes: NULL, through the out-of-memory function. */
  GC_set_oom_fn(on_oom);
  CHECK(GC_get_oom_fn() == on_oom);
  volatile size_t huge = SIZE_MAX;
  CHECK(GC_MALLOC(huge) == NULL && oom_requested == SIZE_MAX);
  CHECK(GC_malloc_atomic(huge - 4096) == NULL && oom_requested == SIZE_MAX - 4096);
  volatile size_t big = (size_t)1 << 46; /* 64 TiB */
  int before = warnings;
  CHECK(GC_malloc_uncollectable(big) == NULL && oom_requested == big);
  CHECK(warnings == before + 1);
  char *q = GC_MALLOC(50);
  strcpy(q, "intact");
  CHECK(GC_REALLOC(q, huge) == NULL);
  CHECK(strcmp(q, "intact") == 0 && GC_base(q) == q);

  /* Zero-size requests give distinct objects. */
  void *z1 = GC_MALLOC(0), *z2 = GC_MALLOC(0);
  CHECK(z1 != NULL && z2 != NULL && z1 != z2);

  /* The heap still works. */
  for (int i = 0; i < 10000; i++) CHECK(GC_MALLOC(32) != NULL);
  GC_gcollect();
  GC_set_warn_proc(GC_ignore_warn_proc);
  GC_free(&local);
  CHECK(warnings == before + 1);
  printf("PASS\n");
  return 0;
}
