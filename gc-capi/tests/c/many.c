/* GC_malloc_many (and gc_inline.h's GC_MALLOC_WORDS on it): distinct, sized, zeroed
 * objects linked by GC_NEXT, collected once dropped; GC_malloc_atomic_uncollectable
 * (and its debug version) survives collections yet keeps nothing alive;
 * GC_debug_generic_or_special_malloc allocates debug objects of the kind asked.
 * Argument "inc": incremental mode. */
#include <gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_inline.h>
#include <stdint.h>
#include "check.h"

#define MAXN 512
static GC_word links[MAXN];
static int n_list;

static void __attribute__((noinline)) take_list(void) {
  void *l = GC_malloc_many(24);
  CHECK(l != NULL);
  n_list = 0;
  for (void *p = l; p != NULL; p = GC_NEXT(p)) {
    CHECK(n_list < MAXN);
    CHECK(GC_base(p) == p && GC_size(p) >= 24);
    for (size_t w = 1; w < 24 / sizeof(void *); w++) CHECK(((void **)p)[w] == NULL);
    for (int j = 0; j < n_list; j++) CHECK(GC_REVEAL_POINTER(links[j]) != p);
    links[n_list] = GC_HIDE_POINTER(p);
    CHECK(GC_register_long_link((void **)&links[n_list], p) == GC_SUCCESS);
    n_list++;
  }
}

static GC_word atomic_link, debug_link;
static void *tiny_fl[GC_TINY_FREELISTS];

static void __attribute__((noinline)) setup_atomic(void **u, void **du) {
  void **x = GC_malloc(16), **y = GC_malloc(16);
  CHECK(x != NULL && y != NULL);
  atomic_link = GC_HIDE_POINTER(x);
  debug_link = GC_HIDE_POINTER(y);
  GC_register_long_link((void **)&atomic_link, x);
  GC_register_long_link((void **)&debug_link, y);
  u[0] = x; /* not scanned: keeps nothing alive */
  u[1] = (void *)0x77;
  du[0] = y;
  du[1] = (void *)0x88;
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
  take_list();
  printf("list of %d\n", n_list);
  CHECK(n_list > 1);
  for (int i = 0; i < 4; i++) collect_clean(1);
  int alive = 0;
  for (int j = 0; j < n_list; j++) alive += links[j] != 0;
  printf("alive after drop %d\n", alive);
  CHECK(alive <= 1);
  /* gc_inline.h's fast path refills from GC_generic_malloc_many. */
  void *prev = NULL;
  for (int i = 0; i < 300; i++) {
    void *r;
    GC_MALLOC_WORDS(r, 3, tiny_fl);
    CHECK(r != NULL && r != prev && GC_size(r) >= 3 * sizeof(void *));
    CHECK(((void **)r)[0] == NULL && ((void **)r)[1] == NULL);
    prev = r;
  }
  /* Atomic uncollectable objects. */
  void **u = GC_malloc_atomic_uncollectable(64);
  void **du = GC_debug_malloc_atomic_uncollectable(64, GC_EXTRAS);
  CHECK(u != NULL && du != NULL && GC_base(du) != (void *)du);
  setup_atomic(u, du);
  for (int i = 0; i < 4; i++) collect_clean(1);
  CHECK(atomic_link == 0 && debug_link == 0); /* their words kept nothing alive */
  CHECK(u[1] == (void *)0x77 && du[1] == (void *)0x88 && GC_base(u) == u);
  CHECK(GC_get_kind_and_size(u, NULL) == 3 && GC_get_kind_and_size(GC_base(du), NULL) == 3);
  GC_free(u);
  GC_debug_free(du);
  /* Debug objects of a given kind. */
  void *dn = GC_debug_generic_or_special_malloc(32, 1, GC_EXTRAS);
  void *da = GC_debug_generic_or_special_malloc(32, 0, GC_EXTRAS);
  CHECK(dn != NULL && da != NULL);
  CHECK((char *)dn - (char *)GC_base(dn) == (ptrdiff_t)GC_get_debug_header_size());
  CHECK(GC_get_kind_and_size(GC_base(dn), NULL) == 1);
  CHECK(GC_get_kind_and_size(GC_base(da), NULL) == 0);
  unsigned k = GC_new_kind(GC_new_free_list(), GC_DS_LENGTH, 1, 1);
  void *dk = GC_debug_generic_or_special_malloc(32, (int)k, GC_EXTRAS);
  CHECK(dk != NULL && GC_get_kind_and_size(GC_base(dk), NULL) == (int)k);
#ifdef GC_DUNEGC
  CHECK(GC_debug_generic_or_special_malloc(32, 99, GC_EXTRAS) == NULL); /* bad kind */
  CHECK(GC_malloc_many((size_t)-1) == NULL);
#endif
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
