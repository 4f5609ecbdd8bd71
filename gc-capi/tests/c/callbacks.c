/* GC_call_with_alloc_lock, GC_do_blocking / GC_call_with_gc_active, the start
 * callback, GC_get_heap_usage_safe, GC_is_heap_ptr, the plausible-address bounds,
 * GC_register_displacement and GC_start_mark_threads.  Argument "inc": incremental
 * mode (GC_enable_incremental) first. */
#define GC_THREADS
#include <gc.h>
#ifndef GC_DUNEGC
#include <gc/gc_mark.h> /* bdwgc declares the start callback and bounds there */
#endif
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- GC_call_with_alloc_lock: a GC_gcollect from another thread waits. */
static volatile int in_lock, collector_done;
static void *collector_thread(void *arg) {
  (void)arg;
  while (!in_lock) sleep_ms(1);
  GC_gcollect();
  collector_done = 1;
  return NULL;
}
static void *locked_fn(void *cd) {
  GC_word *gc_no_seen = cd;
  GC_word before = GC_get_gc_no(); /* bdwgc: call getters under the lock */
  in_lock = 1;
  sleep_ms(300);
  gc_no_seen[0] = GC_get_gc_no() - before;
  gc_no_seen[1] = collector_done;
  return (void *)0x1234;
}
static void test_alloc_lock(void) {
  pthread_t t;
  CHECK(GC_pthread_create(&t, NULL, collector_thread, NULL) == 0);
  GC_word seen[2];
  GC_word gc_before = GC_get_gc_no();
  void *r = GC_call_with_alloc_lock(locked_fn, seen);
  CHECK(r == (void *)0x1234);
  CHECK(seen[0] == 0 && seen[1] == 0); /* no collection while fn held the lock */
  CHECK(GC_pthread_join(t, NULL) == 0);
  CHECK(collector_done == 1);
  CHECK(GC_get_gc_no() > gc_before); /* and it ran once the lock was released */
}

/* ---- GC_do_blocking / GC_call_with_gc_active. */
static void *active_fn(void *cd) {
  /* Allowed to allocate and collect; the object the outer frame holds survives. */
  void **keep = GC_malloc(64);
  CHECK(keep != NULL);
  collect_clean(2);
  keep[0] = cd;
  return keep;
}
static void *blocking_fn(void *cd) {
  sleep_ms(20);
  return GC_call_with_gc_active(active_fn, cd);
}
static int finalized_count;
static void count_finalizer(void *obj, void *cd) {
  (void)obj;
  (void)cd;
  finalized_count++;
}
static void test_blocking(void) {
  char *outer = GC_malloc(128);
  CHECK(outer != NULL);
  strcpy(outer, "outer object");
  GC_register_finalizer(outer, count_finalizer, NULL, NULL, NULL);
  void **r = GC_do_blocking(blocking_fn, outer);
  CHECK(r != NULL && r[0] == outer);
  CHECK(strcmp(outer, "outer object") == 0);
  CHECK(finalized_count == 0);
  GC_reachable_here(outer);
}

/* ---- Start callback: once per collection. */
static volatile GC_word start_calls;
static void on_start(void) { start_calls++; }
static void test_start_callback(void) {
  CHECK(GC_get_start_callback() == NULL);
  GC_set_start_callback(on_start);
  CHECK(GC_get_start_callback() == on_start);
  GC_word calls0 = start_calls, gc0 = GC_get_gc_no();
  for (int i = 0; i < 5; i++) GC_gcollect();
  CHECK(start_calls - calls0 == 5);
  CHECK(GC_get_gc_no() - gc0 == 5);
  /* Automatic collections (and incremental cycles) too: churn allocates many MB. */
  calls0 = start_calls;
  gc0 = GC_get_gc_no();
  for (int i = 0; i < 200000; i++) {
    void *volatile p = GC_malloc(256);
    (void)p;
  }
  GC_gcollect(); /* finish a cycle in progress, if any */
  GC_word gcs = GC_get_gc_no() - gc0;
  CHECK(gcs >= 2);
#ifdef GC_DUNEGC
  CHECK(start_calls - calls0 == gcs); /* every dunegc collection is a full one */
#else
  /* bdwgc's incremental mode also counts partial collections, without the callback. */
  CHECK(start_calls - calls0 >= 1 && start_calls - calls0 <= gcs);
  if (!GC_is_incremental_mode()) CHECK(start_calls - calls0 == gcs);
#endif
  GC_set_start_callback(NULL);
  CHECK(GC_get_start_callback() == NULL);
  calls0 = start_calls;
  GC_gcollect();
  CHECK(start_calls == calls0);
  printf("start callbacks %lu\n", (unsigned long)start_calls);
}

/* ---- Heap usage, heap pointers, bounds. */
static char static_buf[64];
static void test_heap_queries(void) {
  GC_word heap, free_b, unmapped, since, total;
  void *obj = GC_malloc(1000);
  CHECK(obj != NULL);
  GC_get_heap_usage_safe(&heap, &free_b, &unmapped, &since, &total);
  CHECK(heap == GC_get_heap_size());
  CHECK(free_b == GC_get_free_bytes());
  CHECK(since == GC_get_bytes_since_gc());
  CHECK(total == GC_get_total_bytes());
#ifdef GC_DUNEGC
  CHECK(unmapped == 0); /* dunegc's heap size already excludes returned pages */
#else
  (void)unmapped; /* bdwgc unmaps free blocks: any value */
#endif
  CHECK(heap > 0 && total >= since);
  GC_get_heap_usage_safe(NULL, NULL, NULL, NULL, NULL); /* NULLs are allowed */
  GC_word h2;
  GC_get_heap_usage_safe(&h2, NULL, NULL, NULL, NULL);
  CHECK(h2 == heap);

  CHECK(GC_is_heap_ptr(obj));
  CHECK(GC_is_heap_ptr((char *)obj + 999));
  CHECK(!GC_is_heap_ptr(NULL));
  CHECK(!GC_is_heap_ptr(static_buf));
  int local;
  CHECK(!GC_is_heap_ptr(&local));
  void *m = malloc(100);
  CHECK(!GC_is_heap_ptr(m));
  free(m);
  void *big = GC_malloc(1 << 20);
  CHECK(GC_is_heap_ptr(big) && GC_is_heap_ptr((char *)big + (1 << 20) - 1));

  uintptr_t lo = (uintptr_t)GC_least_plausible_heap_addr;
  uintptr_t hi = (uintptr_t)GC_greatest_plausible_heap_addr;
  CHECK(lo < hi);
  CHECK((uintptr_t)obj >= lo && (uintptr_t)obj < hi);
  CHECK((uintptr_t)big >= lo && (uintptr_t)big + (1 << 20) <= hi);
  CHECK(!((uintptr_t)static_buf >= lo && (uintptr_t)static_buf < hi));
  /* Still bounding new objects after the heap grew by 64 MB. */
  void **chain = NULL;
  for (int i = 0; i < 64; i++) {
    void **b = GC_malloc(1 << 20);
    CHECK(b != NULL);
    CHECK((uintptr_t)b >= (uintptr_t)GC_least_plausible_heap_addr &&
          (uintptr_t)b + (1 << 20) <= (uintptr_t)GC_greatest_plausible_heap_addr);
    b[0] = chain;
    chain = b;
  }
  GC_reachable_here(chain);
  GC_reachable_here(obj);
  GC_reachable_here(big);
}

/* ---- Displacements: an object reached only through p + 24 stays alive. */
static void *volatile displaced_root;
static int displaced_dead;
static void displaced_finalizer(void *obj, void *cd) {
  (void)obj;
  (void)cd;
  displaced_dead = 1;
}
static void __attribute__((noinline)) make_displaced(void) {
  char *p = GC_malloc(64);
  CHECK(p != NULL);
  strcpy(p + 24, "displaced");
  GC_register_finalizer(p, displaced_finalizer, NULL, NULL, NULL);
  displaced_root = p + 24;
}
static void test_displacement(void) {
  GC_register_displacement(24);
  make_displaced();
  collect_clean(3);
  GC_invoke_finalizers();
  CHECK(!displaced_dead);
  CHECK(strcmp((char *)displaced_root, "displaced") == 0);
  displaced_root = NULL;
  for (int i = 0; i < 5 && !displaced_dead; i++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  CHECK(displaced_dead); /* and dies once that pointer is gone */
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  GC_start_mark_threads();
  /* GC_is_disabled follows GC_disable / GC_enable nesting; no collection meanwhile. */
  CHECK(!GC_is_disabled());
  GC_disable();
  CHECK(GC_is_disabled());
  GC_disable();
  GC_enable();
  CHECK(GC_is_disabled());
  GC_word gc_off = GC_get_gc_no();
  GC_gcollect();
  CHECK(GC_get_gc_no() == gc_off);
  GC_enable();
  CHECK(!GC_is_disabled());
  GC_gcollect();
  CHECK(GC_get_gc_no() > gc_off);
  test_alloc_lock();
  test_blocking();
  test_start_callback();
  test_heap_queries();
  test_displacement();
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
