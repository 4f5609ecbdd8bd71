/* GC_add_roots on libc malloc() memory keeps the objects it points to alive;
 * GC_remove_roots lets them go. */
#include <gc.h>
#include "check.h"

#define N 500

static int finalized;
static void GC_CALLBACK count(void *p, void *cd) { (void)p; (void)cd; finalized++; }

static void __attribute__((noinline)) fill(void **table) {
  for (int i = 0; i < N; i++) {
    long *v = GC_MALLOC(8 * sizeof(long));
    for (int k = 0; k < 8; k++) v[k] = i * 8 + k;
    GC_REGISTER_FINALIZER_NO_ORDER(v, count, NULL, NULL, NULL);
    table[i] = v;
  }
}

static long __attribute__((noinline)) checksum(void **table) {
  long s = 0;
  for (int i = 0; i < N; i++)
    for (int k = 0; k < 8; k++) s += ((long *)table[i])[k];
  return s;
}

int main(void) {
  GC_INIT();
  void **table = malloc(N * sizeof(void *)); /* invisible to the collector */
  CHECK(table != NULL);
  GC_add_roots(table, table + N);
  fill(table);
  long expect = (long)(8 * N) * (8 * N - 1) / 2;
  for (int round = 0; round < 5; round++) {
    for (int g = 0; g < 20000; g++) (void)GC_MALLOC(64); /* churn */
    collect_clean(1);
    CHECK(finalized == 0);
    CHECK(checksum(table) == expect);
    for (int i = 0; i < N; i++) CHECK(GC_base(table[i]) == table[i]);
  }
  GC_remove_roots(table, table + N);
  collect_clean(3);
  printf("after remove_roots: %d of %d finalized\n", finalized, N);
  CHECK(finalized >= N * 9 / 10);
  free(table);
  printf("PASS\n");
  return 0;
}
