/* GC_set_rate and the time limit.  On both collectors: the accessors keep what was set
 * (the time limit's millisecond setter leaves the nanoseconds of
 * GC_set_time_limit_tv; the variable is the getter's value).  With "inc dunegc"
 * (dunegc only: bdwgc 8.2 finishes the whole cycle inside
 * GC_start_incremental_collection here): a larger GC_rate finishes an incremental
 * cycle over a large live structure in fewer GC_collect_a_little calls, and a mark
 * step stops at the time limit, so a tiny limit needs more calls than
 * GC_TIME_UNLIMITED for the same rate.  Run with GC_MARKERS=1, so that the allocating
 * thread does all the marking. */
#include <gc.h>
#include "check.h"

#define NODES 2048
#define NODE_BYTES 4096
struct node {
  struct node *next;
  char pad[NODE_BYTES - sizeof(struct node *)];
};
static struct node *volatile live;

/* GC_collect_a_little calls that an incremental cycle started now takes to finish. */
static long calls_for_one_cycle(void) {
  GC_word gc_no = GC_get_gc_no();
  GC_start_incremental_collection();
  long calls = 0;
  while (GC_get_gc_no() == gc_no && calls < 10000000) {
    (void)GC_collect_a_little();
    calls++;
  }
  CHECK(GC_get_gc_no() > gc_no);
  return calls;
}

int main(int argc, char **argv) {
  int inc = 0, dunegc = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "inc") == 0) inc = 1;
    if (strcmp(argv[i], "dunegc") == 0) dunegc = 1;
  }
  GC_INIT();
  if (inc) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_time_limit() == GC_time_limit);
  CHECK(GC_get_rate() > 0);

  struct GC_timeval_s tv = {5, 250000};
  GC_set_time_limit_tv(tv);
  CHECK(GC_get_time_limit() == 5 && GC_time_limit == 5);
  tv = GC_get_time_limit_tv();
  CHECK(tv.tv_ms == 5 && tv.tv_nsec == 250000);
  GC_set_time_limit(7);
  tv = GC_get_time_limit_tv();
  CHECK(tv.tv_ms == 7 && tv.tv_nsec == 250000);
  GC_time_limit = GC_TIME_UNLIMITED;
  CHECK(GC_get_time_limit() == GC_TIME_UNLIMITED);
  GC_set_rate(3);
  CHECK(GC_get_rate() == 3);

  if (inc && dunegc) {
    for (int i = 0; i < NODES; i++) {
      struct node *n = GC_MALLOC(sizeof *n);
      CHECK(n != NULL);
      n->next = live;
      live = n;
    }
    collect_clean(1);
    GC_set_time_limit(1000);
    GC_set_rate(1);
    long slow = calls_for_one_cycle();
    GC_set_rate(256);
    long fast = calls_for_one_cycle();
    printf("calls at rate 1: %ld, at rate 256: %ld\n", slow, fast);
    CHECK(slow > fast);
    GC_set_rate(1 << 20);
    GC_set_time_limit(GC_TIME_UNLIMITED);
    long unlimited = calls_for_one_cycle();
    struct GC_timeval_s tiny = {0, 1};
    GC_set_time_limit_tv(tiny);
    long limited = calls_for_one_cycle();
    printf("calls unlimited: %ld, limited to 1 ns: %ld\n", unlimited, limited);
    CHECK(limited > unlimited);
    long n = 0;
    for (struct node *p = live; p; p = p->next) n++;
    CHECK(n == NODES);
  }
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
