/* Custom kinds (gc_mark.h): a kind with a mark procedure marks only what the procedure
 * pushes with GC_MARK_AND_PUSH; bitmap and length descriptors scan only the words
 * they name; GC_get_kind_and_size, the mark-bit calls, GC_generic_malloc_many and
 * GC_generic_malloc_uncollectable; "Too many kinds" aborts.  A target's death is seen
 * through its finalizer.  Argument "inc": incremental mode. */
#include <gc.h>
#include <gc/gc_mark.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

/* Declared by bdwgc in gc_inline.h. */
void GC_generic_malloc_many(size_t, int, void **);

#define M 100

struct holder {
  GC_word tag;
  void *strong; /* pushed by the mark procedure */
  void *weak;   /* a real pointer the procedure never pushes */
};

#define PHASES 5
static volatile int finalized[PHASES][2][M]; /* per phase: targets of earlier phases
                                              may die later */
static int phase;
static void *volatile holders[4][M];
static volatile long proc_calls;
static volatile GC_word proc_env;
static int proc_kind;

static void on_final(void *obj, void *cd) {
  (void)obj;
  intptr_t v = (intptr_t)cd;
  finalized[v / (2 * M)][v / M % 2][v % M]++;
}

static struct GC_ms_entry *mark_holder(GC_word *addr, struct GC_ms_entry *msp,
                                       struct GC_ms_entry *msl, GC_word env) {
  struct holder *h = (struct holder *)addr;
  proc_calls++;
  proc_env = env;
  return GC_MARK_AND_PUSH(h->strong, msp, msl, (void **)&h->strong);
}

static void *target(int set, int i) {
  void *t = GC_malloc(48);
  CHECK(t != NULL);
  GC_register_finalizer_no_order(t, on_final, (void *)(intptr_t)(phase * 2 * M + set * M + i), NULL, NULL);
  return t;
}

/* set 0: held strongly; set 1: held only through words the descriptor skips. */
static void __attribute__((noinline)) fill(int kind, size_t size, int strong_word,
                                           int weak_word, int slot) {
  for (int i = 0; i < M; i++) {
    GC_word *h = GC_generic_malloc(size, kind);
    CHECK(h != NULL);
    size_t sz = 0;
    CHECK(GC_get_kind_and_size(h, &sz) == kind);
    CHECK(sz >= size);
    h[strong_word] = (GC_word)target(0, i);
    h[weak_word] = (GC_word)target(1, i);
    holders[slot][i] = h;
  }
}

static void check_sets(const char *what) {
  int dead_weak = 0;
  for (int round = 0; round < 4; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  for (int i = 0; i < M; i++) {
    CHECK(finalized[phase][0][i] == 0); /* strong targets never die */
    dead_weak += finalized[phase][1][i];
  }
  printf("%s: weak targets dead %d/%d\n", what, dead_weak, M);
  CHECK(dead_weak >= M - 10); /* a few may survive through stale words */
  phase++;
}

static void test_proc_kind(void) {
  unsigned proc = GC_new_proc(mark_holder);
  CHECK(proc >= GC_RESERVED_MARK_PROCS && proc < GC_MAX_MARK_PROCS);
  int kind = (int)GC_new_kind(GC_new_free_list(), GC_MAKE_PROC(proc, 7), 0, 1);
  CHECK(kind >= 4);
  fill(kind, sizeof(struct holder), 1, 2, 0);
  check_sets("proc kind");
  CHECK(proc_calls >= M);
  CHECK(proc_env == 7);
  proc_kind = kind;
  /* The holders themselves stay alive (they are in a static array). */
  for (int i = 0; i < M; i++) CHECK(((struct holder *)holders[0][i])->strong != NULL);
}

static void test_bitmap_and_length_kinds(void) {
  /* Bitmap: only word 1 is a pointer (the msb stands for word 0). */
  GC_word bitmap = ((GC_word)1 << (8 * sizeof(GC_word) - 2)) | GC_DS_BITMAP;
  int kb = (int)GC_new_kind(GC_new_free_list(), bitmap, 0, 1);
  fill(kb, 4 * sizeof(GC_word), 1, 0, 1);
  check_sets("bitmap kind");
  /* Length 8 bytes: only word 0 is scanned. */
  int kl = (int)GC_new_kind(GC_new_free_list(), sizeof(GC_word) | GC_DS_LENGTH, 0, 1);
  fill(kl, 4 * sizeof(GC_word), 0, 2, 2);
  check_sets("length kind");
  /* Length 0 plus the object's size: everything is scanned (both targets live). */
  int kn = (int)GC_new_kind(GC_new_free_list(), 0 | GC_DS_LENGTH, 1, 1);
  fill(kn, 4 * sizeof(GC_word), 0, 3, 3);
  for (int round = 0; round < 3; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  for (int i = 0; i < M; i++) CHECK(finalized[phase][0][i] == 0 && finalized[phase][1][i] == 0);
}

static void test_queries(void) {
  void *p = GC_malloc(40), *a = GC_malloc_atomic(40);
  size_t sz = 0;
  CHECK(GC_get_kind_and_size(p, &sz) == 1 && sz >= 40);
  CHECK(GC_get_kind_and_size(a, NULL) == 0);
  void *u = GC_generic_malloc_uncollectable(24, 2);
  CHECK(u != NULL && GC_get_kind_and_size(u, NULL) == 2);
  void *au = GC_generic_malloc_uncollectable(24, 3);
  CHECK(au != NULL && GC_get_kind_and_size(au, NULL) == 3);
  holders[3][0] = p;
  GC_gcollect();
  CHECK(GC_is_marked(p)); /* survived: marked until the next collection */
  GC_clear_mark_bit(p);
  CHECK(!GC_is_marked(p));
  GC_set_mark_bit(p);
  CHECK(GC_is_marked(p));
  GC_free(u);
  GC_free(au);

  void *list = NULL;
  GC_generic_malloc_many(32, 1, &list);
  CHECK(list != NULL);
  int n = 0;
  for (void *q = list; q != NULL; q = *(void **)q) {
    CHECK(GC_base(q) == q && GC_size(q) >= 32);
    n++;
  }
  printf("malloc_many gave %d\n", n);
  CHECK(n >= 1);
}

static void test_too_many_kinds(void) {
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    void **fl = GC_new_free_list();
    for (int i = 0; i < 64; i++) GC_new_kind(fl, 0 | GC_DS_LENGTH, 1, 1);
    _exit(0); /* not reached: bdwgc aborts with "Too many kinds" */
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* Writes into proc-kind objects the incremental marker has already scanned are not
 * lost: targets stored into the pushed field mid-cycle survive its finish. */
static void *volatile wholder[M];
static void __attribute__((noinline)) write_targets(void) {
  for (int i = 0; i < M; i++) ((struct holder *)wholder[i])->strong = target(0, i);
}

static void test_writes_during_cycle(int kind) {
  for (int i = 0; i < M; i++) {
    wholder[i] = GC_generic_malloc(sizeof(struct holder), kind);
    ((struct holder *)wholder[i])->strong = GC_malloc(16); /* marked once i is scanned */
  }
  /* Step a cycle until it has scanned every holder (their first pointers are marked),
   * then store fresh (unmarked) targets into them. */
  int in_progress = 0;
  for (int k = 0; k < 400000 && !in_progress; k++) {
    CHECK(GC_malloc(64) != NULL);
    if (k % 16 == 0 && GC_collect_a_little()) {
      int scanned = 1;
      for (int i = 0; i < M && scanned; i++) scanned = GC_is_marked(((struct holder *)wholder[i])->strong);
      in_progress = scanned;
    }
  }
  write_targets();
  for (int round = 0; round < 3; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  for (int i = 0; i < M; i++) CHECK(finalized[phase][0][i] == 0);
  printf("writes after the holders were scanned (in a cycle: %d) kept\n", in_progress);
  phase++;
}

/* A kind that was never made: bdwgc indexes its kind table unchecked (undefined
 * behaviour), so this runs on dunegc only, which warns and returns NULL. */
static void test_bad_kind(void) {
  if (dlsym(RTLD_DEFAULT, "GC_dunegc_version") == NULL) return;
  CHECK(GC_generic_malloc(16, 15) == NULL);
  CHECK(GC_generic_malloc(16, 99) == NULL);
  CHECK(GC_generic_malloc(16, -1) == NULL);
  CHECK(GC_malloc_kind(16, 1000) == NULL);
  CHECK(GC_generic_malloc_uncollectable(16, 16) == NULL);
  CHECK(GC_malloc(16) != NULL); /* nothing was disturbed */
  printf("bad kinds rejected\n");
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  GC_set_finalize_on_demand(1);
  test_proc_kind();
  test_writes_during_cycle(proc_kind);
  test_bitmap_and_length_kinds();
  test_queries();
  test_bad_kind();
  test_too_many_kinds();
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
