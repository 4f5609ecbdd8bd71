/* Incremental mode: enable it (or expect it from the environment), then churn while
 * mutating a long-lived structure (pointers to new objects stored into old ones: the
 * case dirty tracking must catch). Usage: incremental <expect: 0|1|any> <enable: 0|1> */
#include <gc.h>
#include "check.h"
#include <stdint.h>

struct node { struct node *left, *right; uint64_t value; };

static struct node *make(int depth, uint64_t v) {
  struct node *n = GC_NEW(struct node);
  CHECK(n != NULL);
  n->value = v;
  if (depth > 0) {
    n->left = make(depth - 1, v * 2);
    n->right = make(depth - 1, v * 2 + 1);
  }
  return n;
}

static uint64_t sum(const struct node *n) {
  return n ? n->value + sum(n->left) + sum(n->right) : 0;
}

int main(int argc, char **argv) {
  CHECK(argc == 3);
  GC_INIT();
  if (atoi(argv[2])) GC_enable_incremental();
  int mode = GC_is_incremental_mode();
  printf("incremental %d backend %s\n", mode, GC_dunegc_dirty_backend());
  if (strcmp(argv[1], "any") != 0) CHECK(mode == atoi(argv[1]));

  /* Long-lived: 64 slots, each a tree of depth 8, replaced piecemeal. */
  struct node **slots = GC_MALLOC(64 * sizeof *slots);
  uint64_t expect[64];
  for (int i = 0; i < 64; i++) {
    slots[i] = make(8, (uint64_t)i + 1);
    expect[i] = sum(slots[i]);
  }
  GC_word gc0 = GC_get_gc_no();
  for (int round = 0; round < 3000; round++) {
    int i = round % 64;
    /* Replace a subtree deep inside an old tree with a brand-new one. */
    struct node *n = slots[i];
    for (int d = 0; d < 3; d++) n = (round & (1 << d)) ? n->right : n->left;
    uint64_t old = sum(n->left);
    struct node *fresh = make(4, (uint64_t)round);
    n->left = fresh; /* old object now points to a new one */
    expect[i] = expect[i] - old + sum(fresh);
    /* Garbage to drive collections and mark steps. */
    for (int g = 0; g < 20; g++) (void)make(2, 0);
    if (round % 500 == 0) {
      for (int k = 0; k < 64; k++) CHECK(sum(slots[k]) == expect[k]);
    }
    GC_collect_a_little();
  }
  for (int k = 0; k < 64; k++) CHECK(sum(slots[k]) == expect[k]);
  GC_gcollect();
  for (int k = 0; k < 64; k++) CHECK(sum(slots[k]) == expect[k]);
  printf("collections %lu\n", (unsigned long)(GC_get_gc_no() - gc0));
  CHECK(GC_get_gc_no() - gc0 >= 2);
  printf("PASS\n");
  return 0;
}
