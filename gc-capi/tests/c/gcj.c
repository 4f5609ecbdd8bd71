/* gc_gcj.h: an object's first word points to a vtable whose second word is the mark
 * descriptor; only the words it names keep anything alive.  Debug gcj objects are
 * scanned by the mark procedure given to GC_init_gcj_malloc, with environment 1.
 * Argument "inc": incremental mode. */
#include <gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_gcj.h>
#include <stdint.h>
#include "check.h"

struct vtable {
  void *klass;
  GC_word descr; /* at MARK_DESCR_OFFSET */
};
/* Words 0 (the vtable) and 1 are pointers; word 2 is not. */
static struct vtable vt = {0, ((GC_word)1 << 63) | ((GC_word)1 << 62) | GC_DS_BITMAP};

static volatile int proc_calls, proc_bad;
/* The debug kind's mark procedure: body word 1 is a pointer, word 2 is not. */
static struct GC_ms_entry *GC_CALLBACK mark_proc(GC_word *addr, struct GC_ms_entry *msp,
                                                 struct GC_ms_entry *lim, GC_word env) {
  proc_calls++;
  if (env != 1) proc_bad++;
  void **body = (void **)((char *)addr + GC_get_debug_header_size());
  if (body[0] != &vt) return msp; /* not initialised yet */
  return GC_mark_and_push(body[1], msp, lim, &body[1]);
}

static GC_word hidden[4];
static void **a, **d;

static void __attribute__((noinline)) setup(void) {
  a = GC_gcj_malloc(4 * sizeof(void *), &vt);
  CHECK(a != NULL && a[0] == &vt && a[1] == NULL && a[3] == NULL);
  d = GC_debug_gcj_malloc(4 * sizeof(void *), &vt, GC_EXTRAS);
  CHECK(d != NULL && d[0] == &vt);
  for (int i = 0; i < 4; i++) {
    void **o = GC_malloc(2 * sizeof(void *));
    CHECK(o != NULL);
    o[1] = (void *)0x1234;
    hidden[i] = GC_HIDE_POINTER(o);
    CHECK(GC_register_long_link((void **)&hidden[i], o) == GC_SUCCESS);
    if (i == 0) a[1] = o; /* a pointer word */
    if (i == 1) a[2] = o; /* not a pointer word */
    if (i == 2) d[1] = o;
    if (i == 3) d[2] = o;
  }
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
#ifdef GC_DUNEGC
  CHECK(GC_gcj_malloc(16, &vt) == NULL); /* before GC_init_gcj_malloc: NULL */
#endif
  GC_init_gcj_malloc(GC_GCJ_RESERVED_MARK_PROC_INDEX, (void *)mark_proc);
  GC_init_gcj_malloc(GC_GCJ_RESERVED_MARK_PROC_INDEX, (void *)mark_proc); /* no-op */
  CHECK(GC_gcj_kind > 3 && GC_gcj_debug_kind > 3 && GC_gcj_kind != GC_gcj_debug_kind);
  setup();
  size_t sz = 0;
  CHECK(GC_get_kind_and_size(a, &sz) == GC_gcj_kind && sz >= 4 * sizeof(void *));
  CHECK(GC_get_kind_and_size(GC_base(d), NULL) == GC_gcj_debug_kind);
  for (int i = 0; i < 6; i++) collect_clean(1);
  printf("links %d %d %d %d mark_proc_calls %d\n", hidden[0] != 0, hidden[1] != 0,
         hidden[2] != 0, hidden[3] != 0, proc_calls);
  CHECK(hidden[0] != 0 && hidden[2] != 0); /* pointer words keep their objects */
  CHECK(((void **)GC_REVEAL_POINTER(hidden[0]))[1] == (void *)0x1234);
  CHECK(hidden[1] == 0 && hidden[3] == 0); /* non-pointer words keep nothing */
  CHECK(proc_calls > 0 && proc_bad == 0);
  CHECK(a[0] == &vt && d[0] == &vt);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
