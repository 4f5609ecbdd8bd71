/* Binary trees and linked lists with checksums, across many collections. */
#include <gc.h>
#include "check.h"
#include <stdint.h>

struct node { struct node *left, *right; long value; };

static struct node *make_tree(int depth, long *next) {
  struct node *n = GC_NEW(struct node);
  CHECK(n != NULL);
  CHECK(n->left == NULL && n->right == NULL && n->value == 0); /* zeroed */
  n->value = (*next)++;
  if (depth > 0) {
    n->left = make_tree(depth - 1, next);
    n->right = make_tree(depth - 1, next);
  }
  return n;
}

static long tree_sum(const struct node *n) {
  return n == NULL ? 0 : n->value + tree_sum(n->left) + tree_sum(n->right);
}

struct cell { struct cell *next; uint64_t value; char pad[40]; };

static struct cell *make_list(int n, uint64_t seed) {
  struct cell *head = NULL;
  for (int i = 0; i < n; i++) {
    struct cell *c = GC_MALLOC(sizeof *c);
    CHECK(c != NULL);
    c->value = seed * 6364136223846793005ULL + (uint64_t)i;
    c->next = head;
    head = c;
  }
  return head;
}

static uint64_t list_sum(const struct cell *c) {
  uint64_t s = 0;
  for (; c; c = c->next) s = s * 31 + c->value;
  return s;
}

int main(void) {
  GC_INIT();
  /* Long-lived structures: a tree of depth 14 and a list of 20000 cells. */
  long next = 1;
  struct node *keep_tree = make_tree(14, &next);
  long nodes = next - 1;
  long expected_tree = nodes * (nodes + 1) / 2;
  struct cell *keep_list = make_list(20000, 7);
  uint64_t expected_list = list_sum(keep_list);

  /* Churn: short-lived trees and lists, several times the initial heap budget. */
  long churn = 0;
  for (int round = 0; round < 40; round++) {
    long n = 1;
    struct node *t = make_tree(10, &n);
    churn += tree_sum(t);
    struct cell *l = make_list(2000, (uint64_t)round);
    CHECK(list_sum(l) == list_sum(l));
    if (round % 10 == 0) GC_gcollect();
    CHECK(tree_sum(keep_tree) == expected_tree);
  }
  CHECK(list_sum(keep_list) == expected_list);
  CHECK(tree_sum(keep_tree) == expected_tree);
  CHECK(GC_get_gc_no() > 0);
  CHECK(GC_get_heap_size() > 0);
  /* Atomic objects are zeroed here too; GC_NEW_ATOMIC works. */
  long *a = GC_NEW_ATOMIC(long);
  CHECK(a != NULL && *a == 0);
  /* Interior pointers and sizes. */
  struct cell *c = keep_list->next;
  CHECK(GC_base((char *)c + 17) == c);
  CHECK(GC_size(c) >= sizeof *c);
  printf("tree %ld list %llu churn %ld gc_no %lu heap %zu free %zu\n", expected_tree,
         (unsigned long long)expected_list, churn, (unsigned long)GC_get_gc_no(),
         GC_get_heap_size(), GC_get_free_bytes());
  printf("PASS\n");
  return 0;
}
