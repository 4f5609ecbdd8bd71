/* GC_set_await_finalize_proc: the procedure is called once for every object a
 * collection queues for finalization, with that object, before its finalizer runs;
 * never for reachable objects or ones without finalizers.  Argument "inc":
 * incremental mode. */
#include <gc.h>
#include "check.h"

#define K 64
static void *volatile awaited[4 * K];
static volatile int n_awaited, n_finalized, awaited_before_finalizer;

static void GC_CALLBACK on_await(void *obj) {
  if (n_awaited < 4 * K) awaited[n_awaited] = obj;
  n_awaited++;
}

static void GC_CALLBACK on_final(void *obj, void *cd) {
  (void)cd;
  for (int i = 0; i < n_awaited && i < 4 * K; i++)
    if (awaited[i] == obj) awaited_before_finalizer++;
  n_finalized++;
}

static void *volatile keep[K];
static GC_word hidden[K]; /* the dropped objects, hidden from the collector */

static void __attribute__((noinline)) make_objects(void) {
  for (int i = 0; i < K; i++) {
    void *p = GC_malloc(48);
    CHECK(p != NULL);
    GC_register_finalizer(p, on_final, NULL, NULL, NULL);
    hidden[i] = ~(GC_word)p;
    keep[i] = GC_malloc(48); /* reachable, with a finalizer: never awaited */
    CHECK(keep[i] != NULL);
    GC_register_finalizer(keep[i], on_final, NULL, NULL, NULL);
    (void)GC_malloc(48); /* garbage without a finalizer: never awaited */
  }
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_await_finalize_proc() == 0);
  GC_set_await_finalize_proc(on_await);
  CHECK(GC_get_await_finalize_proc() == on_await);
  GC_set_finalize_on_demand(1);
  make_objects();
  for (int i = 0; i < 6 && n_awaited < K / 2; i++) collect_clean(1);
  CHECK(n_awaited > K / 2);
  CHECK(n_awaited <= K);
  CHECK(n_finalized == 0); /* on demand: queued, not run */
  /* Every awaited object is one of the dropped ones, once each. */
  for (int i = 0; i < n_awaited; i++) {
    int found = 0;
    for (int j = 0; j < K; j++)
      if (awaited[i] == (void *)~hidden[j]) found++;
    CHECK(found == 1);
    for (int j = 0; j < i; j++) CHECK(awaited[j] != awaited[i]);
  }
  int queued = n_awaited;
  GC_invoke_finalizers();
  CHECK(n_finalized == queued);
  CHECK(awaited_before_finalizer == queued);
  for (int i = 0; i < K; i++) CHECK(keep[i] != NULL);
  GC_set_await_finalize_proc(0);
  CHECK(GC_get_await_finalize_proc() == 0);
  printf("awaited %d incremental %d\nPASS\n", queued, GC_is_incremental_mode());
  return 0;
}
