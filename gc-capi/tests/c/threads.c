/* Several threads created through GC_pthread_create allocate lists and trees
 * concurrently while collections stop them all; a thread's argument and result are GC
 * objects reachable only through pthread_create/join. pthread_exit, pthread_detach and
 * pthread_sigmask go through the GC_THREADS redirects; one thread is created with the
 * real pthread_create and registers itself. */
#define GC_THREADS
#include <gc.h>
#include "check.h"
#include <stdint.h>

#define THREADS 6

struct node { struct node *left, *right; uint64_t value; };
struct task { int id; int rounds; uint64_t result; };

static struct node *make(int depth, uint64_t v) {
  struct node *n = GC_NEW(struct node);
  CHECK(n != NULL);
  n->value = v;
  if (depth > 0) {
    n->left = make(depth - 1, v + 1);
    n->right = make(depth - 1, v + 2);
  }
  return n;
}

static uint64_t sum(const struct node *n) {
  return n ? n->value + sum(n->left) + sum(n->right) : 0;
}

static void *worker(void *arg) {
  struct task *t = arg;
  CHECK(GC_thread_is_registered());
  /* Threads from GC_pthread_create count as registered already. */
  struct GC_stack_base sb;
  CHECK(GC_get_stack_base(&sb) == GC_SUCCESS);
  CHECK(GC_register_my_thread(&sb) == GC_DUPLICATE);
  struct node *keep = make(10, (uint64_t)t->id);
  uint64_t keep_sum = sum(keep);
  uint64_t acc = 0;
  for (int r = 0; r < t->rounds; r++) {
    struct node *tmp = make(6, (uint64_t)r);
    acc += sum(tmp);
    CHECK(sum(keep) == keep_sum);
  }
  struct task *out = GC_NEW(struct task); /* returned through pthread_join */
  out->id = t->id;
  out->result = acc + keep_sum;
  if (t->id == 0) pthread_exit(out); /* GC_pthread_exit unwinds through the wrapper */
  return out;
}

/* The sum of make(depth, v), computed without the collector. */
static uint64_t tree_sum(int depth, uint64_t v) {
  return v + (depth > 0 ? tree_sum(depth - 1, v + 1) + tree_sum(depth - 1, v + 2) : 0);
}

static uint64_t expected(int id, int rounds) {
  uint64_t acc = 0;
  for (int r = 0; r < rounds; r++) acc += tree_sum(6, (uint64_t)r);
  return acc + tree_sum(10, (uint64_t)id);
}

/* A thread created with the real pthread_create (no wrapper): the collector sees it
 * anyway; registration codes follow bdwgc. */
#undef pthread_create
#undef pthread_join
static void *raw_worker(void *arg) {
  (void)arg;
  struct GC_stack_base sb;
  CHECK(GC_get_stack_base(&sb) == GC_SUCCESS);
  CHECK((char *)sb.mem_base > (char *)&sb);
  CHECK(GC_thread_is_registered());
  CHECK(GC_register_my_thread(&sb) == GC_SUCCESS);
  CHECK(GC_register_my_thread(&sb) == GC_DUPLICATE);
  struct node *keep = make(9, 5);
  uint64_t keep_sum = sum(keep);
  for (int r = 0; r < 200; r++) {
    (void)make(5, (uint64_t)r);
    CHECK(sum(keep) == keep_sum);
  }
  CHECK(keep_sum == tree_sum(9, 5));
  CHECK(GC_unregister_my_thread() == GC_SUCCESS);
  return NULL;
}

static void *GC_CALLBACK with_base(struct GC_stack_base *sb, void *arg) {
  CHECK(sb != NULL && sb->mem_base != NULL);
  return arg;
}

int main(void) {
  GC_INIT();
  GC_allow_register_threads();
  CHECK(GC_call_with_stack_base(with_base, (void *)0x5) == (void *)0x5);
  pthread_t raw;
  CHECK(pthread_create(&raw, NULL, raw_worker, NULL) == 0);
  struct GC_stack_base sb;
  CHECK(GC_get_stack_base(&sb) == GC_SUCCESS);
  CHECK(GC_register_my_thread(&sb) == GC_DUPLICATE); /* the initialising thread */
  pthread_t tids[THREADS];
  for (int i = 0; i < THREADS; i++) {
    struct task *t = GC_NEW(struct task); /* only the new thread will point to it */
    t->id = i;
    t->rounds = 300;
    CHECK(GC_pthread_create(&tids[i], NULL, worker, t) == 0);
  }
  /* The main thread allocates and collects meanwhile. */
  struct node *mine = make(12, 99);
  uint64_t mine_sum = sum(mine);
  for (int i = 0; i < 5; i++) {
    (void)make(8, 0);
    GC_gcollect();
    CHECK(sum(mine) == mine_sum);
  }
  for (int i = 0; i < THREADS; i++) {
    void *ret = NULL;
    CHECK(GC_pthread_join(tids[i], &ret) == 0);
    struct task *out = ret;
    CHECK(out != NULL && out->id == i);
    CHECK(out->result == expected(i, 300));
  }
  CHECK(pthread_join(raw, NULL) == 0);
  /* A detached thread. */
  pthread_t d;
  struct task *t = GC_NEW(struct task);
  t->id = 42;
  t->rounds = 10;
  CHECK(GC_pthread_create(&d, NULL, worker, t) == 0);
  CHECK(pthread_detach(d) == 0); /* GC_pthread_detach */
  /* pthread_sigmask never blocks the collector's signal. */
  sigset_t all, now;
  sigfillset(&all);
  CHECK(pthread_sigmask(SIG_BLOCK, &all, NULL) == 0);
  CHECK(pthread_sigmask(SIG_SETMASK, NULL, &now) == 0);
  CHECK(!sigismember(&now, SIGPWR));
  CHECK(sigismember(&now, SIGUSR1));
  sigemptyset(&all);
  CHECK(pthread_sigmask(SIG_SETMASK, &all, NULL) == 0);
  GC_gcollect(); /* with the detached thread possibly still running */
  printf("gc_no %lu\nPASS\n", (unsigned long)GC_get_gc_no());
  return 0;
}
