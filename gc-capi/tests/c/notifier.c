/* GC_set_finalizer_notifier with GC_finalize_on_demand: the notifier is called once per
 * collection that queued finalizers, never when none are queued or when finalizers run
 * automatically; finalizers then run only in GC_invoke_finalizers.  Argument "inc":
 * incremental mode. */
#include <gc.h>
#include "check.h"

#define K 100
static volatile int notified, finalized;
static void notifier(void) { notified++; }
static void on_final(void *obj, void *cd) {
  (void)obj;
  (void)cd;
  finalized++;
}

static void __attribute__((noinline)) make_garbage(void) {
  for (int i = 0; i < K; i++) {
    void *p = GC_malloc(40);
    CHECK(p != NULL);
    GC_register_finalizer(p, on_final, NULL, NULL, NULL);
  }
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_finalizer_notifier() == NULL);
  GC_set_finalizer_notifier(notifier);
  CHECK(GC_get_finalizer_notifier() == notifier);

  /* Default mode: finalizers run automatically, the notifier is never called. */
  make_garbage();
  collect_clean(3);
  for (int i = 0; i < 1000; i++) (void)GC_malloc(16);
  CHECK(finalized > K / 2);
  CHECK(notified == 0);

  /* On demand: nothing queued, no notification. */
  GC_set_finalize_on_demand(1);
  GC_invoke_finalizers();
  finalized = 0;
  collect_clean(2);
  CHECK(notified == 0);

  /* Garbage with finalizers: one notification per collection, none repeated by
   * allocation, and the finalizers wait for GC_invoke_finalizers. */
  make_garbage();
  int before = notified;
  for (int i = 0; i < 5 && notified == before; i++) collect_clean(1);
  CHECK(notified == before + 1);
  CHECK(GC_should_invoke_finalizers());
  for (int i = 0; i < 1000; i++) (void)GC_malloc(16);
  CHECK(notified == before + 1);
  CHECK(finalized == 0);
  /* Another collection while they are still pending: notified again, once. */
  collect_clean(1);
  CHECK(notified == before + 2);
  int ran = GC_invoke_finalizers();
  CHECK(ran == finalized && finalized > K / 2);
  CHECK(!GC_should_invoke_finalizers() || finalized < K);
  int settled = notified;
  GC_invoke_finalizers();
  collect_clean(1);
  GC_invoke_finalizers();
  collect_clean(1);
  /* At most the stragglers' collection can notify now. */
  CHECK(notified - settled <= 1);

  GC_set_finalizer_notifier(NULL);
  CHECK(GC_get_finalizer_notifier() == NULL);
  make_garbage();
  int last = notified;
  collect_clean(3);
  CHECK(notified == last);
  CHECK(GC_should_invoke_finalizers());
  printf("notified %d incremental %d\nPASS\n", notified, GC_is_incremental_mode());
  return 0;
}
