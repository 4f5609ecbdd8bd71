/* Finalizers: ordered (a -> b: a first, b in a later collection), unordered (both in
 * the same collection), old-finalizer out-parameters, removal, client data kept alive,
 * on-demand mode and GC_invoke_finalizers. */
#include <gc.h>
#include "check.h"

#define PAIRS 200

struct obj { struct obj *other; int index; int kind; };

static int a_done[PAIRS], b_done[PAIRS];
static int a_count, b_count, order_violations, cd_bad;
static int first_calls, second_calls;

static void GC_CALLBACK fin_a(void *p, void *cd) {
  struct obj *o = p;
  if (cd != (void *)0xa) cd_bad++;
  a_done[o->index] = 1;
  a_count++;
}

static void GC_CALLBACK fin_b(void *p, void *cd) {
  struct obj *o = p;
  (void)cd;
  /* Ordered: b is finalized only after the a that points to it. */
  if (o->kind == 1 && !a_done[o->index]) order_violations++;
  b_done[o->index] = 1;
  b_count++;
}

static void GC_CALLBACK fin_first(void *p, void *cd) { (void)p; (void)cd; first_calls++; }
static void GC_CALLBACK fin_second(void *p, void *cd) { (void)p; (void)cd; second_calls++; }

static int cd_checked;
static void GC_CALLBACK fin_check_cd(void *p, void *cd) {
  (void)p;
  /* The client data is a GC object only the registration refers to: still intact. */
  if (strcmp((char *)cd, "client data survives") != 0) cd_bad++;
  cd_checked++;
}

static void __attribute__((noinline))
make_pairs(GC_finalization_proc fa, GC_finalization_proc fb, int ordered) {
  for (int i = 0; i < PAIRS; i++) {
    struct obj *a = GC_NEW(struct obj), *b = GC_NEW(struct obj);
    a->other = b;
    a->index = b->index = i;
    a->kind = 0;
    b->kind = ordered;
    if (ordered) {
      GC_REGISTER_FINALIZER(a, fa, (void *)0xa, NULL, NULL);
      GC_REGISTER_FINALIZER(b, fb, NULL, NULL, NULL);
    } else {
      GC_REGISTER_FINALIZER_NO_ORDER(a, fa, (void *)0xa, NULL, NULL);
      GC_REGISTER_FINALIZER_NO_ORDER(b, fb, NULL, NULL, NULL);
    }
  }
}

static void reset(void) {
  memset(a_done, 0, sizeof a_done);
  memset(b_done, 0, sizeof b_done);
  a_count = b_count = 0;
}

static void __attribute__((noinline)) replaced_and_removed(void) {
  GC_finalization_proc ofn = (GC_finalization_proc)1;
  void *ocd = (void *)1;
  void *x = GC_MALLOC(32);
  GC_REGISTER_FINALIZER(x, fin_first, (void *)0x11, &ofn, &ocd);
  CHECK(ofn == NULL && ocd == NULL);
  GC_REGISTER_FINALIZER(x, fin_second, (void *)0x22, &ofn, &ocd);
  CHECK(ofn == fin_first && ocd == (void *)0x11);
  void *y = GC_MALLOC(32);
  GC_REGISTER_FINALIZER_NO_ORDER(y, fin_first, (void *)0x33, NULL, NULL);
  GC_REGISTER_FINALIZER_NO_ORDER(y, NULL, NULL, &ofn, &ocd); /* removes */
  CHECK(ofn == fin_first && ocd == (void *)0x33);
  /* Not an object start: fn ignored, out-params NULL (bdwgc). */
  int local;
  ofn = (GC_finalization_proc)1;
  GC_register_finalizer(&local, fin_first, NULL, &ofn, &ocd);
  CHECK(ofn == NULL && ocd == NULL);
  void *volatile nothing = NULL; /* bdwgc's header declares obj nonnull; NULL is documented */
  GC_register_finalizer(nothing, fin_first, NULL, &ofn, &ocd);
  CHECK(ofn == NULL && ocd == NULL);
  /* GC_free drops the finalizer. */
  void *w = GC_MALLOC(32);
  GC_REGISTER_FINALIZER(w, fin_first, NULL, NULL, NULL);
  GC_FREE(w);
  /* Client data that is a GC object referenced from nowhere else. */
  void *z = GC_MALLOC(16);
  char *cd = GC_MALLOC_ATOMIC(64);
  strcpy(cd, "client data survives");
  GC_REGISTER_FINALIZER(z, fin_check_cd, cd, NULL, NULL);
}

int main(void) {
  GC_INIT();
  CHECK(GC_get_finalize_on_demand() == 0);

  /* Ordered. */
  make_pairs(fin_a, fin_b, 1);
  collect_clean(1);
  int a_first = a_count, b_first = b_count;
  collect_clean(4);
  printf("ordered: after 1st collection a=%d b=%d; after 5: a=%d b=%d\n", a_first, b_first,
         a_count, b_count);
  CHECK(order_violations == 0);
  CHECK(b_first == 0);          /* every b is reachable from its unfinalized a */
  CHECK(a_first >= PAIRS * 9 / 10);
  CHECK(b_count >= PAIRS * 9 / 10);
  CHECK(cd_bad == 0);

  /* Unordered: a and b in the same collection. */
  reset();
  make_pairs(fin_a, fin_b, 0);
  collect_clean(1);
  printf("no-order: after 1st collection a=%d b=%d\n", a_count, b_count);
  int same = 0;
  for (int i = 0; i < PAIRS; i++) same += a_done[i] && b_done[i];
  CHECK(same >= PAIRS * 9 / 10);

  /* Replacement, removal, client data. */
  first_calls = second_calls = 0;
  replaced_and_removed();
  collect_clean(3);
  printf("replaced: first=%d second=%d cd_checked=%d\n", first_calls, second_calls, cd_checked);
  CHECK(first_calls == 0); /* replaced, removed, freed, or on a non-object */
  CHECK(second_calls == 1);
  CHECK(cd_checked == 1 && cd_bad == 0);

  /* On demand: nothing runs until GC_invoke_finalizers. */
  GC_set_finalize_on_demand(1);
  reset();
  make_pairs(fin_a, fin_b, 0);
  collect_clean(1);
  CHECK(a_count == 0 && b_count == 0);
  CHECK(GC_should_invoke_finalizers());
  for (int i = 0; i < 1000; i++) (void)GC_MALLOC(64);
  CHECK(a_count == 0 && b_count == 0);
  int ran = GC_invoke_finalizers();
  printf("on demand: invoked %d (a=%d b=%d)\n", ran, a_count, b_count);
  CHECK(ran == a_count + b_count && ran >= PAIRS * 18 / 10);
  CHECK(!GC_should_invoke_finalizers());
  GC_set_finalize_on_demand(0);

  /* Default mode: finalizers found by an automatic collection run in GC_malloc. */
  reset();
  make_pairs(fin_a, fin_b, 0);
  clear_stack();
  GC_word gc0 = GC_get_gc_no();
  for (int i = 0; i < 200000 && a_count == 0; i++) (void)GC_MALLOC(64);
  printf("in GC_malloc: a=%d after %lu collections\n", a_count,
         (unsigned long)(GC_get_gc_no() - gc0));
  CHECK(a_count > 0);
  printf("PASS\n");
  return 0;
}
