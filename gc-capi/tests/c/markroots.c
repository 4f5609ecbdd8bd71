/* Root pushing (gc_mark.h): a push-other-roots function that GC_push_all's a malloc()
 * buffer keeps the objects the buffer points to alive; once it stops pushing, they die.
 * GC_is_tmp_root knows static data from the stack and the heap; GC_clear_stack
 * returns its argument.  Argument "inc": incremental mode. */
#include <gc.h>
#include <gc/gc_mark.h>
#include <stdint.h>
#include "check.h"

#define M 100

static volatile int finalized[M];
static void **buffer; /* malloc memory: not scanned unless pushed */
static volatile int pushing = 1;
static volatile long pushes;
static GC_push_other_roots_proc previous;
static int static_word = 1;

static void on_final(void *obj, void *cd) {
  (void)obj;
  finalized[(intptr_t)cd]++;
}

static void push_buffer(void) {
  if (pushing) {
    GC_push_all(buffer, buffer + M);
    pushes++;
  }
  if (previous) previous(); /* bdwgc's default pushes the thread stacks */
}

static void __attribute__((noinline)) fill(void) {
  for (int i = 0; i < M; i++) {
    void *t = GC_malloc(48);
    CHECK(t != NULL);
    GC_register_finalizer_no_order(t, on_final, (void *)(intptr_t)i, NULL, NULL);
    buffer[i] = t;
  }
}

static int count_dead(void) {
  int dead = 0;
  for (int round = 0; round < 3; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  for (int i = 0; i < M; i++) dead += finalized[i];
  return dead;
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  GC_set_finalize_on_demand(1);
  buffer = malloc(M * sizeof(void *));
  CHECK(buffer != NULL);
  previous = GC_get_push_other_roots();
  GC_set_push_other_roots(push_buffer);
  CHECK(GC_get_push_other_roots() == push_buffer);
  fill();
  int dead = count_dead();
  CHECK(pushes > 0);
  CHECK(dead == 0); /* pushed: all alive */
  pushing = 0;
  dead = count_dead();
  printf("pushed: all kept; not pushed: %d/%d dead\n", dead, M);
  CHECK(dead >= M - 10);
  GC_set_push_other_roots(previous);

  GC_gcollect();
  int local = 0;
  void *obj = GC_malloc(16);
  CHECK(GC_is_tmp_root(&static_word));
  CHECK(!GC_is_tmp_root(&local));
  CHECK(!GC_is_tmp_root(obj));
  CHECK(GC_clear_stack(obj) == obj);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  free(buffer);
  return 0;
}
