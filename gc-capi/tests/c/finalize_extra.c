/* GC_finalize_all runs every pending finalizer (registered ones too, reachable or
 * not); GC_register_finalizer_unreachable waits while an object queued for no-order
 * finalization still reaches its object; the deprecated variables
 * GC_finalize_on_demand, GC_java_finalization and GC_finalizer_notifier are what the
 * collector reads; GC_dump_finalization lists links and finalizable objects (printed
 * expectations "expect ..." are checked by the Rust test).  Argument "inc":
 * incremental mode. */
#include <gc.h>
#include <gc/javaxfc.h>
#include <stdint.h>
#include "check.h"

static volatile int ran, order_a, order_u, seq;
static void GC_CALLBACK count(void *obj, void *cd) {
  (void)obj;
  (void)cd;
  ran++;
}
static void GC_CALLBACK fin_a(void *obj, void *cd) {
  (void)obj;
  (void)cd;
  order_a = ++seq;
}
static void GC_CALLBACK fin_u(void *obj, void *cd) {
  (void)obj;
  (void)cd;
  order_u = ++seq;
}

static void *reachable[5];

static void __attribute__((noinline)) make_finalizable(void) {
  for (int i = 0; i < 5; i++) {
    reachable[i] = GC_malloc(32);
    CHECK(reachable[i] != NULL);
    ((int *)reachable[i])[0] = 42;
    if (i % 2) GC_register_finalizer(reachable[i], count, NULL, NULL, NULL);
    else GC_register_finalizer_no_order(reachable[i], count, NULL, NULL, NULL);
  }
  for (int i = 0; i < 3; i++) GC_register_finalizer(GC_malloc(32), count, NULL, NULL, NULL);
}

/* A (no-order) -> U (unreachable-order, or no-order when `plain`); nothing else. */
static void __attribute__((noinline)) make_pair(int plain) {
  void **a = GC_malloc(4 * sizeof(void *));
  void **u = GC_malloc(4 * sizeof(void *));
  CHECK(a != NULL && u != NULL);
  a[0] = u;
  GC_register_finalizer_no_order(a, fin_a, NULL, NULL, NULL);
  if (plain) GC_register_finalizer_no_order(u, fin_u, NULL, NULL, NULL);
  else GC_REGISTER_FINALIZER_UNREACHABLE(u, fin_u, NULL, NULL, NULL);
}

static int collections_until(volatile int *order) {
  for (int i = 1; i <= 8; i++) {
    collect_clean(1);
    GC_invoke_finalizers();
    if (*order) return i;
  }
  return 0;
}

static volatile int notified;
static void GC_CALLBACK notify(void) { notified++; }
static GC_word link_word;
static void *dump_obj;

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
  /* The variables are what the getters read and the setters write. */
  GC_finalize_on_demand = 1;
  CHECK(GC_get_finalize_on_demand() == 1);
  GC_java_finalization = 0;
  CHECK(GC_get_java_finalization() == 0);
  GC_set_java_finalization(1);
  CHECK(GC_java_finalization == 1);
  GC_finalizer_notifier = notify;
  CHECK(GC_get_finalizer_notifier() == notify);

  /* GC_finalize_all: all 8, reachable or not, without a collection. */
  make_finalizable();
  GC_finalize_all();
  CHECK(ran == 8);
  CHECK(GC_should_invoke_finalizers() == 0);
  for (int i = 0; i < 5; i++) CHECK(((int *)reachable[i])[0] == 42);
  GC_finalize_all(); /* nothing left */
  CHECK(ran == 8);

  /* Unreachable-order: U waits until A (which reaches it) is finalized. */
  make_pair(0);
  int ca = collections_until(&order_a);
  CHECK(ca > 0);
  CHECK(order_u == 0); /* revived: A still reached it */
  CHECK(notified > 0); /* on-demand mode called the notifier set through the variable */
  int cu = collections_until(&order_u);
  printf("unreachable: A after %d, U %d later\n", ca, cu);
  CHECK(cu > 0 && order_u > order_a);
  /* The same with a no-order U: both in the same collection. */
  order_a = order_u = 0;
  make_pair(1);
  ca = collections_until(&order_a);
  CHECK(ca > 0 && order_u != 0);

  /* GC_dump_finalization. */
  dump_obj = GC_malloc(16);
  link_word = GC_HIDE_POINTER(dump_obj);
  GC_general_register_disappearing_link((void **)&link_word, dump_obj);
  GC_register_finalizer(dump_obj, count, NULL, NULL, NULL);
  printf("expect-link Object: %p, link: %p\n", dump_obj, (void *)&link_word);
  printf("expect-fin Finalizable object: %p\n", dump_obj);
  fflush(stdout);
  GC_dump_finalization();
  fflush(stdout);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
