/* bdwgc's control variables and collection control: GC_dont_gc stops every collection
 * and GC_gc_no stands still; stop functions; GC_free_space_divisor read at allocation
 * time; GC_disable_automatic_collection; GC_incr_bytes_allocd; collection events in
 * bdwgc's order; GC_enumerate_reachable_objects_inner; the size map; GC_oom_fn; the
 * printing functions.  Argument "inc": incremental mode. */
#include <gc.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

static void churn(size_t bytes) {
  for (size_t done = 0; done < bytes; done += 256) {
    void *volatile p = GC_malloc(256);
    CHECK(p != NULL);
  }
}

static int stop_yes(void) { return 1; }
static int stop_no(void) { return 0; }

static void test_dont_gc(void) {
  GC_gcollect();
  GC_word before = GC_gc_no;
  CHECK(before == GC_get_gc_no() && before > 0);
  GC_dont_gc = 1; /* direct assignment, as old programs do */
  CHECK(GC_is_disabled());
  churn(48 << 20);
  GC_gcollect();
  CHECK(GC_gc_no == before);
  CHECK(GC_try_to_collect(stop_no) == 0);
  GC_dont_gc = 0;
  CHECK(!GC_is_disabled());
  GC_disable();
  CHECK(GC_dont_gc == 1);
  GC_gcollect();
  CHECK(GC_gc_no == before);
  GC_enable();
  CHECK(GC_dont_gc == 0);
  GC_gcollect();
  CHECK(GC_gc_no == before + 1 && GC_get_gc_no() == GC_gc_no);
}

static void test_stop_funcs(void) {
  GC_word before = GC_gc_no;
  CHECK(GC_try_to_collect(stop_yes) == 0);
  CHECK(GC_gc_no == before);
  CHECK(GC_try_to_collect(stop_no) == 1);
  CHECK(GC_gc_no == before + 1);
  /* The default stop function applies to GC_gcollect and automatic collections. */
  GC_set_stop_func(stop_yes);
  CHECK(GC_get_stop_func() == stop_yes);
  GC_gcollect();
  churn(48 << 20);
  CHECK(GC_gc_no == before + 1);
  GC_set_stop_func(stop_no);
  GC_gcollect();
  CHECK(GC_gc_no == before + 2);
}

static void test_automatic(void) {
  GC_set_disable_automatic_collection(1);
  CHECK(GC_get_disable_automatic_collection() == 1);
  GC_word before = GC_gc_no;
  churn(48 << 20);
  CHECK(GC_gc_no == before);
  GC_gcollect(); /* explicit collections still run */
  CHECK(GC_gc_no == before + 1);
  GC_set_disable_automatic_collection(0);
  churn(48 << 20);
  CHECK(GC_gc_no > before + 1);
}

/* Collections while allocating `bytes` with the given divisor. */
static GC_word collections_with_divisor(GC_word divisor, size_t bytes) {
  GC_free_space_divisor = divisor; /* read at every allocation slow path */
  GC_gcollect();
  GC_word before = GC_gc_no;
  churn(bytes);
  return GC_gc_no - before;
}

static void *volatile live_set[4096];

static void test_free_space_divisor(void) {
  CHECK(GC_get_free_space_divisor() == 3);
  for (int i = 0; i < 4096; i++) live_set[i] = GC_malloc(4096); /* 16 MiB live */
  GC_set_min_bytes_allocd(256 << 10);
  CHECK(GC_get_min_bytes_allocd() == 256 << 10);
  GC_word few = collections_with_divisor(1, 64 << 20);   /* budget 96 MiB */
  GC_word many = collections_with_divisor(64, 64 << 20); /* budget 1.5 MiB */
  printf("divisor 1: %lu collections, divisor 64: %lu\n", (unsigned long)few,
         (unsigned long)many);
  CHECK(few <= 1 && many >= 10);
  GC_set_free_space_divisor(3);
  CHECK(GC_free_space_divisor == 3);
  for (int i = 0; i < 4096; i++) live_set[i] = NULL;
}

static void test_incr_bytes_allocd(void) {
  GC_set_min_bytes_allocd(8 << 20);
  GC_gcollect();
  GC_word before = GC_gc_no;
  churn(1 << 20);
  CHECK(GC_gc_no == before); /* well under the budget */
  GC_incr_bytes_allocd(64 << 20);
  churn(1 << 20); /* the next slow path sees the budget spent */
  CHECK(GC_gc_no > before);
  GC_set_min_bytes_allocd(4 << 20);
}

static int events[64];
static volatile int n_events;
static void on_event(GC_EventType e) {
  if (n_events < 64) events[n_events++] = (int)e;
}

static void test_events(void) {
  GC_set_on_collection_event(on_event);
  CHECK(GC_get_on_collection_event() == on_event);
  n_events = 0;
  GC_gcollect();
  GC_set_on_collection_event(NULL);
  static const int want[] = {GC_EVENT_START,        GC_EVENT_PRE_STOP_WORLD,
                             GC_EVENT_POST_STOP_WORLD, GC_EVENT_MARK_START,
                             GC_EVENT_MARK_END,     GC_EVENT_RECLAIM_START,
                             GC_EVENT_RECLAIM_END,  GC_EVENT_PRE_START_WORLD,
                             GC_EVENT_POST_START_WORLD, GC_EVENT_END};
  CHECK(n_events == (int)(sizeof want / sizeof want[0]));
  for (int i = 0; i < n_events; i++) CHECK(events[i] == want[i]);
}

static void *volatile kept;
static GC_word dropped_hidden;
static int saw_kept, saw_dropped;

static void on_object(void *obj, size_t bytes, void *cd) {
  CHECK(cd == &saw_kept);
  if (obj == kept) { saw_kept++; CHECK(bytes >= 64); }
  if ((GC_word)obj == GC_HIDE_POINTER(dropped_hidden)) saw_dropped++;
}

static void *enumerate(void *cd) {
  GC_enumerate_reachable_objects_inner(on_object, cd);
  return NULL;
}

static void __attribute__((noinline)) make_pair(void) {
  kept = GC_malloc(64);
  dropped_hidden = GC_HIDE_POINTER(GC_malloc(64));
}

static void test_enumerate(void) {
  make_pair();
  collect_clean(2);
  GC_call_with_alloc_lock(enumerate, &saw_kept);
  CHECK(saw_kept == 1 && saw_dropped == 0);
  saw_kept = 0;
  GC_alloc_lock();
  GC_enumerate_reachable_objects_inner(on_object, &saw_kept);
  CHECK(GC_get_gc_no() == GC_gc_no); /* unsynchronized getters work under the lock */
  GC_alloc_unlock();
  CHECK(saw_kept == 1 && saw_dropped == 0);
}

static void *oom_result;
static void *my_oom(size_t n) { (void)n; return oom_result; }

static void test_misc(void) {
  CHECK(GC_get_size_map_at(2049) == (size_t)-1);
  for (int i = 1; i <= 2048; i += 37) {
    void *p = GC_malloc((size_t)i);
    CHECK(GC_size(p) == GC_get_size_map_at(i));
  }
  oom_result = GC_malloc(8);
  GC_oom_func old = GC_oom_fn;
  GC_oom_fn = my_oom; /* direct assignment */
  CHECK(GC_get_oom_fn() == my_oom);
  CHECK(GC_malloc((size_t)-1 - 64) == oom_result);
  GC_oom_fn = old;
  CHECK(GC_malloc((size_t)-1 - 64) == NULL);
  void *f = GC_malloc(1 << 20); /* large: counted at once (small ones when flushed) */
  GC_gcollect();
  GC_free(f);
  CHECK(GC_get_expl_freed_bytes_since_gc() >= 1 << 20);
  GC_gcollect();
  CHECK(GC_get_expl_freed_bytes_since_gc() == 0);
  CHECK(GC_get_full_gc_total_time() == 0);
  GC_start_performance_measurement();
  for (int i = 0; i < 5; i++) GC_gcollect();
  printf("full gc total time %lu ms\n", GC_get_full_gc_total_time());
  CHECK(GC_get_unmapped_bytes() == 0);
  CHECK(GC_get_full_freq() == 19);
  GC_full_freq = 4;
  CHECK(GC_get_full_freq() == 4);
  CHECK(GC_parallel == GC_get_parallel() && GC_parallel >= 0);
  CHECK(GC_incremental_protection_needs() == GC_PROTECTS_NONE ||
        (GC_is_incremental_mode() &&
         GC_incremental_protection_needs() == GC_PROTECTS_POINTER_HEAP));
  GC_printf("printf %d %s %.1f %ld\n", 7, "x", 2.5, 1234567890123L);
  GC_err_printf("err_printf %d\n", 8);
  GC_log_printf("log_printf %s\n", "to stderr");
  fflush(stdout);
  GC_deinit();
  CHECK(!GC_is_init_called());
  CHECK(GC_malloc(8) != NULL);
  CHECK(GC_is_init_called());
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
  test_dont_gc();
  test_stop_funcs();
  test_automatic();
  test_free_space_divisor();
  test_incr_bytes_allocd();
  test_events();
  test_enumerate();
  if (inc) {
    GC_start_incremental_collection();
    GC_word before = GC_gc_no;
    GC_gcollect(); /* finishes the cycle started above */
    CHECK(GC_gc_no == before + 1);
  }
  test_misc();
  printf("incremental %d\n", GC_is_incremental_mode());
  printf("PASS\n");
  return 0;
}
