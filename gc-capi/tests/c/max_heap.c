/* The hard heap limit: GC_set_max_heap_size (argument "api") or GC_MAXIMUM_HEAP_SIZE
 * (argument "env", set by the test to 32M). Garbage churn far past the limit succeeds
 * (collections keep the heap under it); live data past it makes allocation call the
 * out-of-memory function (whose result, NULL, is returned) with the heap still at or
 * under the limit; once the data is dropped, allocation works again. */
#include <gc.h>
#include "check.h"

#define LIMIT (32ul << 20)

static int oom_calls;
static void *GC_CALLBACK count_oom(size_t n) {
  (void)n;
  oom_calls++;
  return NULL;
}

struct node {
  struct node *next;
  char pad[1000];
};

static struct node *volatile head;

static size_t __attribute__((noinline)) fill_until_oom(void) {
  size_t n = 0;
  for (;;) {
    struct node *x = GC_MALLOC(sizeof(struct node));
    if (x == NULL) return n;
    x->next = head;
    head = x;
    n++;
    CHECK(GC_get_heap_size() <= LIMIT);
  }
}

int main(int argc, char **argv) {
  GC_INIT();
  CHECK(argc == 2);
  if (strcmp(argv[1], "api") == 0) GC_set_max_heap_size(LIMIT);
  GC_set_oom_fn(count_oom);
  /* 256 MiB of garbage under a 32 MiB limit. */
  for (int i = 0; i < 256 * 1024; i++) CHECK(GC_MALLOC(1000) != NULL);
  CHECK(oom_calls == 0);
  CHECK(GC_get_heap_size() <= LIMIT);
  /* Live data: fails near the limit, not far below it. */
  size_t n = fill_until_oom();
  CHECK(oom_calls == 1);
  CHECK(n * sizeof(struct node) > LIMIT / 2);
  CHECK(GC_get_heap_size() <= LIMIT);
  /* A large object past the limit fails too. */
  CHECK(GC_MALLOC(LIMIT / 4) == NULL);
  CHECK(oom_calls == 2);
  /* Drop the data: the heap has room again. */
  head = NULL;
  collect_clean(2);
  void *big = GC_MALLOC(LIMIT / 4);
  CHECK(big != NULL);
  CHECK(GC_MALLOC(1000) != NULL);
  CHECK(oom_calls == 2);
  printf("nodes %zu heap %zu\nPASS\n", n, (size_t)GC_get_heap_size());
  return 0;
}
