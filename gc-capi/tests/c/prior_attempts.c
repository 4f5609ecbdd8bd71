/* GC_set_max_prior_attempts with GC_time_limit: in incremental mode, the world-stopped
 * finish of a cycle is abandoned when it outlasts the time limit, at most N times per
 * cycle; the attempt after that runs to the end. Abandoned finishes are counted from the
 * collection events: a MARK_START with no MARK_END before the world restarts.
 *
 * The mutator keeps moving nodes of a doubly linked list (reachable only through the
 * list) to its front while the cycle runs, writing into nodes already marked, so a finish
 * has many dirty pages to rescan; a write lost after an abandoned finish would free a
 * live node, which the final walk finds (wrong id or checksum, or a short list).
 *
 * bdwgc also opens each incremental cycle with a world-stopped mark under the same time
 * limit, and counts it as the first attempt when abandoned unless the cycle is a full
 * one ("doesn't count the initial root scan for a full GC"), and GC_gcollect finishes a
 * cycle in progress through the same steps; dunegc opens a cycle with a root scan only
 * and never abandons an explicit collection. So on bdwgc a run of abandoned marks may be
 * one longer than N, and only dunegc (found by its GC_dunegc_version) is held to N and
 * to explicit collections running to the end.
 *
 * Arguments: "inc" (incremental mode), "attempts=N", "limit=MS" (no limit: unlimited).
 * Prints "abandoned A longest_run R cycles C". */
#include <gc.h>
#include "check.h"
#include <stdint.h>

#define NODES 40000
#define OPS 400000
#define MASK ((GC_word)0x5a5a5a5a5a5a5a5aULL)

typedef struct node {
  struct node *next, *prev;
  GC_word id, check;
} node;

/* Defined by dunegc only. */
extern const char *GC_dunegc_version(void) __attribute__((weak));

static node *head;            /* the only root: the list hangs from it */
static GC_word *hidden;       /* malloc'd: node addresses, hidden from the collector */

static volatile unsigned abandoned, run, longest_run, completed;
static volatile int marking;

static void GC_CALLBACK on_event(GC_EventType e) {
  switch (e) {
  case GC_EVENT_MARK_START:
    marking = 1;
    break;
  case GC_EVENT_MARK_END:
    marking = 0;
    run = 0;
    completed++;
    break;
  case GC_EVENT_PRE_START_WORLD:
    if (marking) {
      marking = 0;
      abandoned++;
      run++;
      if (run > longest_run) longest_run = run;
    }
    break;
  default:
    break;
  }
}

static GC_word checksum(GC_word id) { return id * (GC_word)2654435761u ^ 0x1234; }

static node *by_id(GC_word id) { return (node *)(hidden[id] ^ MASK); }

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void __attribute__((noinline)) build(void) {
  head = GC_MALLOC(sizeof(node));
  CHECK(head != NULL);
  head->id = 0;
  head->check = checksum(0);
  hidden[0] = (GC_word)head ^ MASK;
  node *last = head;
  for (GC_word id = 1; id < NODES; id++) {
    node *n = GC_MALLOC(sizeof(node));
    CHECK(n != NULL);
    n->id = id;
    n->check = checksum(id);
    n->prev = last;
    last->next = n;
    last = n;
    hidden[id] = (GC_word)n ^ MASK;
  }
}

/* Move a random node to the front; allocate some garbage to drive collections. */
static void __attribute__((noinline)) churn(void) {
  for (long op = 0; op < OPS; op++) {
    GC_word id = 1 + next_rand() % (NODES - 1);
    node *x = by_id(id);
    if (head->next != x) {
      x->prev->next = x->next;
      if (x->next) x->next->prev = x->prev;
      x->next = head->next;
      x->prev = head;
      head->next->prev = x;
      head->next = x;
    }
    x = NULL;
    GC_word *g = GC_MALLOC(6 * sizeof(GC_word));
    CHECK(g != NULL);
    g[0] = (GC_word)op;
  }
}

static void __attribute__((noinline)) walk(void) {
  unsigned char *seen = calloc(NODES, 1);
  CHECK(seen != NULL);
  GC_word count = 0;
  node *prev = NULL;
  for (node *n = head; n; n = n->next) {
    CHECK(n->id < NODES);
    CHECK(n->check == checksum(n->id));
    CHECK(!seen[n->id]);
    CHECK(n->prev == prev);
    CHECK(by_id(n->id) == n);
    seen[n->id] = 1;
    prev = n;
    count++;
  }
  CHECK(count == NODES);
  free(seen);
}

static long arg_value(int argc, char **argv, const char *key, long dflt) {
  size_t k = strlen(key);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], key, k) == 0 && argv[i][k] == '=') return atol(argv[i] + k + 1);
  return dflt;
}

static int has_arg(int argc, char **argv, const char *a) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], a) == 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  GC_INIT();
  int inc = has_arg(argc, argv, "inc");
  if (inc) GC_enable_incremental();
  inc = GC_is_incremental_mode(); /* also on when the environment asks for it */
  printf("incremental %d\n", inc);
  CHECK(GC_get_max_prior_attempts() == 1); /* bdwgc's default */
  long attempts = arg_value(argc, argv, "attempts", 1);
  GC_set_max_prior_attempts((int)attempts);
  CHECK(GC_get_max_prior_attempts() == attempts);
  long limit = arg_value(argc, argv, "limit", -1);
  if (limit >= 0) GC_set_time_limit((unsigned long)limit);
  hidden = malloc(NODES * sizeof(GC_word));
  CHECK(hidden != NULL);
  build();
  GC_set_on_collection_event(on_event);
  churn();
  int dunegc = GC_dunegc_version != NULL;
  unsigned before = abandoned;
  GC_gcollect();
  if (dunegc) CHECK(abandoned == before); /* an explicit collection runs to the end */
  GC_set_on_collection_event(0);
  walk();
  printf("abandoned %u longest_run %u cycles %u\n", abandoned, longest_run, completed);
  CHECK(longest_run <= (unsigned)attempts + (dunegc ? 0 : 1));
  if (!inc || limit < 0 || (dunegc && attempts == 0)) CHECK(abandoned == 0);
  /* With a zero time limit, finishes that have marking to do are abandoned. */
  if (inc && limit == 0 && attempts > 0) CHECK(abandoned > 0);
  printf("PASS\n");
  return 0;
}
