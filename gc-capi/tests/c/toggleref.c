/* Toggle-refs: before each collection the callback decides, per registered object,
 * strong (kept alive), weak (collected once nothing else reaches it) or drop (no longer
 * registered, never asked again).  Argument "inc": incremental mode. */
#include <gc.h>
#include <stdint.h>
#include "check.h"

enum { S, W, D, LATE, N };
static GC_ToggleRefStatus status[N];
static volatile int calls[N], bad;
static GC_word links[N];

static GC_ToggleRefStatus GC_CALLBACK decide(void *obj) {
  GC_word id = ((GC_word *)obj)[0];
  if (id >= N) { bad++; return GC_TOGGLE_REF_DROP; }
  calls[id]++;
  return status[id];
}

static void __attribute__((noinline)) add(int id, int strong) {
  GC_word *o = GC_malloc(4 * sizeof(GC_word));
  CHECK(o != NULL);
  o[0] = (GC_word)id;
  links[id] = GC_HIDE_POINTER(o);
  CHECK(GC_register_long_link((void **)&links[id], o) == GC_SUCCESS);
  CHECK(GC_toggleref_add(o, strong) == GC_SUCCESS);
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
  add(LATE, 1); /* no callback yet: not registered (GC_SUCCESS all the same) */
  GC_set_toggleref_func(decide);
  CHECK(GC_get_toggleref_func() == decide);
  status[S] = GC_TOGGLE_REF_STRONG;
  status[W] = GC_TOGGLE_REF_WEAK;
  status[D] = GC_TOGGLE_REF_DROP;
  add(S, 0);
  add(W, 1);
  add(D, 1);
  for (int i = 0; i < 4; i++) collect_clean(1);
  printf("calls S %d W %d D %d late %d\n", calls[S], calls[W], calls[D], calls[LATE]);
  CHECK(bad == 0 && calls[LATE] == 0);
  CHECK(links[S] != 0);             /* strong: alive */
  CHECK(links[W] == 0);             /* weak and unreferenced: collected */
  CHECK(links[D] == 0);             /* dropped: no longer held */
  CHECK(calls[D] == 1);             /* ... and never asked again */
  CHECK(calls[W] >= 1 && calls[W] <= 2);
  int w_calls = calls[W];
  CHECK(calls[S] >= 3);
  status[S] = GC_TOGGLE_REF_WEAK; /* the peer lets go: S may die now */
  for (int i = 0; i < 4; i++) collect_clean(1);
  CHECK(links[S] == 0);
  CHECK(calls[W] == w_calls); /* a collected object is not asked about */
  GC_set_toggleref_func(0);
  CHECK(GC_get_toggleref_func() == 0);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
