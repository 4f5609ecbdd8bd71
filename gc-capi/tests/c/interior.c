/* GC_set_all_interior_pointers(0): a pointer into an object from static data or from
 * a heap object keeps it alive only at offset 0 or at a registered displacement.
 * Both directions: unregistered offsets let the object die, registered ones (and base
 * pointers) keep it.  A target's death is seen through its finalizer.
 * Argument "inc": incremental mode. */
#include <gc.h>
#include <stdint.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

#define M 100
#define SETS 4

static volatile int finalized[SETS][M];
static char *volatile roots[SETS][M];   /* static data: scanned with offset checks */
static void **volatile heap_holder;     /* a heap object holding pointers */

static void on_final(void *obj, void *cd) {
  (void)obj;
  intptr_t v = (intptr_t)cd;
  finalized[v / M][v % M]++;
}

static char *target(int set, int i) {
  char *t = GC_malloc(64);
  CHECK(t != NULL);
  GC_register_finalizer_no_order(t, on_final, (void *)(intptr_t)(set * M + i), NULL, NULL);
  return t;
}

/* set 0: base pointers; 1: offset 16 (never registered); 2: offset 32 (registered);
 * 3: offset 16 from a heap object. */
static void __attribute__((noinline)) fill(void) {
  heap_holder = GC_malloc(M * sizeof(void *));
  CHECK(heap_holder != NULL);
  for (int i = 0; i < M; i++) {
    roots[0][i] = target(0, i);
    roots[1][i] = target(1, i) + 16;
    roots[2][i] = target(2, i) + 32;
    heap_holder[i] = target(3, i) + 16;
  }
}

int main(int argc, char **argv) {
  GC_set_all_interior_pointers(0);
  GC_INIT();
  CHECK(GC_get_all_interior_pointers() == 0);
  GC_REGISTER_DISPLACEMENT(32);
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  GC_set_finalize_on_demand(1);
  fill();
  for (int round = 0; round < 4; round++) {
    collect_clean(1);
    GC_invoke_finalizers();
  }
  int dead[SETS] = {0};
  for (int s = 0; s < SETS; s++)
    for (int i = 0; i < M; i++) dead[s] += finalized[s][i];
  printf("dead: base %d, offset 16 %d, displacement 32 %d, heap offset 16 %d\n", dead[0],
         dead[1], dead[2], dead[3]);
  CHECK(dead[0] == 0);       /* base pointers keep objects */
  CHECK(dead[2] == 0);       /* so do registered displacements */
  CHECK(dead[1] >= M - 10);  /* other offsets do not (a few stale words may) */
  CHECK(dead[3] >= M - 10);
  GC_set_all_interior_pointers(1);
  CHECK(GC_get_all_interior_pointers() == 1);
  /* A displacement of a heap block or more aborts, in bdwgc and dunegc. */
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    GC_register_displacement(4096);
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
