/* The heap growth knobs of bdwgc's GC_collect_or_expand and GC_allochblk, one per run
 * (each on a fresh heap, as they are about when the heap grows):
 *  - "expand": GC_dont_expand.  Garbage churn with it set keeps the heap at its size
 *    (collections instead of growth); the same churn without it grows the heap.  Live
 *    data that needs more still gets it (forced expansion).
 *  - "entire": GC_use_entire_heap.  With free pages left by a dropped 16 MiB, churn
 *    with it set collects later than without.
 *  - "fin": GC_set_allocd_bytes_per_finalizer.  Churn of objects with finalizers
 *    collects rather than grows while it is on; with 0 the heap grows.
 * "inc": incremental mode, where bdwgc ignores all three: only the getters, setters and
 * forced expansion are checked.  "dunegc": the exact expectations of dunegc's policy
 * (bdwgc's heap sizing differs in its details). */
#include <gc.h>
#include "check.h"

#define MiB (1 << 20)

static int inc, dunegc;

static int finalized_count;
static void GC_CALLBACK on_finalize(void *obj, void *data) {
  (void)obj;
  (void)data;
  finalized_count++;
}

/* Allocate `total` bytes of `size`-byte garbage (each with a finalizer if `finalized`);
 * returns the heap size's peak and stores the collections done in *gcs. */
static size_t __attribute__((noinline)) churn(size_t total, size_t size, int finalized, GC_word *gcs) {
  GC_word gc0 = GC_get_gc_no();
  size_t peak = GC_get_heap_size();
  for (size_t done = 0, i = 0; done < total; done += size, i++) {
    void *p = GC_malloc(size);
    CHECK(p != NULL);
    if (finalized) GC_register_finalizer(p, on_finalize, 0, 0, 0);
    if (i % 64 == 0) {
      size_t h = GC_get_heap_size();
      if (h > peak) peak = h;
      if (finalized) GC_invoke_finalizers();
    }
  }
  *gcs = GC_get_gc_no() - gc0;
  return peak;
}

#define N_LIVE 128
static void *volatile live[N_LIVE];

static void expand(void) {
  /* dunegc's GC_init sets it from DUNEGC_DONT_EXPAND. */
  const char *env = getenv("DUNEGC_DONT_EXPAND");
  CHECK(GC_get_dont_expand() == (dunegc && env != NULL && strcmp(env, "1") == 0));
  GC_set_dont_expand(1);
  CHECK(GC_get_dont_expand() == 1 && GC_dont_expand == 1);
  collect_clean(1);
  size_t start = GC_get_heap_size();
  GC_word gcs_on, gcs_off;
  size_t peak_on = churn(16 * MiB, 256, 0, &gcs_on);
  printf("dont_expand: heap %zu, peak %zu, gcs %lu\n", start, peak_on,
         (unsigned long)gcs_on);
  if (!inc) {
    /* bdwgc keeps GC_heapsize; dunegc's heap size counts pages in use, which stay
     * within the pages the heap had (a few, after GC_INIT). */
    CHECK(peak_on <= start + 256 * 1024);
    CHECK(gcs_on >= 8);
  }
  /* Forced expansion: live data that needs more than the heap has gets it. */
  for (int i = 0; i < N_LIVE; i++) {
    live[i] = GC_malloc_atomic(64 * 1024);
    CHECK(live[i] != NULL);
    memset(live[i], i, 64 * 1024);
  }
  CHECK(GC_get_heap_size() >= (size_t)N_LIVE * 64 * 1024);
  for (int i = 0; i < N_LIVE; i++) CHECK(((unsigned char *)live[i])[4095] == (unsigned char)i);
  for (int i = 0; i < N_LIVE; i++) live[i] = NULL;
  GC_dont_expand = 0;
  CHECK(GC_get_dont_expand() == 0);
  collect_clean(2);
  /* Without it the same churn grows the heap beyond the start (bdwgc expands when
   * GC_should_collect says not yet; dunegc collects every 4 MiB allocated). */
  size_t peak_off = churn(16 * MiB, 256, 0, &gcs_off);
  printf("expanding: peak %zu, gcs %lu\n", peak_off, (unsigned long)gcs_off);
  if (!inc && dunegc) {
    CHECK(peak_off > 2 * peak_on);
    CHECK(gcs_on > 2 * gcs_off);
  }
}

static void entire(void) {
  /* GC_init sets it from GC_USE_ENTIRE_HEAP: anything but "0" turns it on. */
  const char *env = getenv("GC_USE_ENTIRE_HEAP");
  CHECK(GC_use_entire_heap == (env != NULL && strcmp(env, "0") != 0));
  /* 16 MiB of heap, then free. */
  /* GC_malloc: dunegc keeps atomic objects in pages of their own. */
  for (int i = 0; i < 64; i++) live[i] = GC_malloc(256 * 1024);
  for (int i = 0; i < 64; i++) live[i] = NULL;
  collect_clean(2);
  GC_use_entire_heap = 1;
  GC_word gcs_on, gcs_off;
  churn(8 * MiB, 256, 0, &gcs_on);
  GC_use_entire_heap = 0;
  collect_clean(2);
  churn(8 * MiB, 256, 0, &gcs_off);
  printf("use_entire_heap: gcs %lu, without: %lu\n", (unsigned long)gcs_on,
         (unsigned long)gcs_off);
  if (!inc) CHECK(gcs_on <= gcs_off);
  if (!inc && dunegc) {
    /* 8 MiB fit in the 16 MiB free: no collection; without it, one per 4 MiB. */
    CHECK(gcs_on == 0);
    CHECK(gcs_off >= 1);
  }
}

static void fin(void) {
  CHECK(GC_get_allocd_bytes_per_finalizer() == 10000);
  GC_set_allocd_bytes_per_finalizer(0);
  CHECK(GC_get_allocd_bytes_per_finalizer() == 0);
  GC_set_allocd_bytes_per_finalizer(10000);
  /* bdwgc weighs registrations only while collections finalize objects. */
  GC_register_finalizer(GC_malloc(64), on_finalize, 0, 0, 0);
  collect_clean(2);
  GC_invoke_finalizers();
  CHECK(finalized_count == 1);
  size_t start = GC_get_heap_size();
  GC_word gcs_on, gcs_off;
  size_t peak_on = churn(4 * MiB, 64, 1, &gcs_on);
  collect_clean(2);
  GC_invoke_finalizers();
  GC_set_allocd_bytes_per_finalizer(0);
  size_t peak_off = churn(4 * MiB, 64, 1, &gcs_off);
  printf("allocd_bytes_per_finalizer 10000: heap %zu, peak %zu, gcs %lu; 0: peak %zu, "
         "gcs %lu; finalized %d\n",
         start, peak_on, (unsigned long)gcs_on, peak_off, (unsigned long)gcs_off,
         finalized_count);
  if (!inc) {
    CHECK(gcs_on > gcs_off);
    if (dunegc) CHECK(2 * peak_on < peak_off);
  }
}

int main(int argc, char **argv) {
  const char *mode = "";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "inc") == 0) inc = 1;
    else if (strcmp(argv[i], "dunegc") == 0) dunegc = 1;
    else mode = argv[i];
  }
  GC_INIT();
  if (inc) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  if (strcmp(mode, "expand") == 0) expand();
  else if (strcmp(mode, "entire") == 0) entire();
  else if (strcmp(mode, "fin") == 0) fin();
  else CHECK(!"mode: expand, entire or fin");
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
