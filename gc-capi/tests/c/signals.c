/* GC_set_suspend_signal before GC_INIT moves the collector's stop-the-world signal:
 * GC_get_suspend_signal reports it, a later call (after GC_INIT) has no effect, and the
 * program can then use SIGPWR (bdwgc's and dunegc's default) for itself while
 * collections stop and scan another thread.  Argument "inc": incremental mode. */
#define GC_THREADS
#include <gc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "check.h"

static volatile sig_atomic_t pwr_seen;
static volatile int stop_worker;
static volatile int worker_ok = 1;
static volatile long rounds;

static void on_pwr(int sig) {
  (void)sig;
  pwr_seen++;
}

/* Keeps a list reachable from its stack only, and checks it. */
static void *worker(void *arg) {
  (void)arg;
  void **list = NULL;
  while (!stop_worker) {
    void **cell = GC_malloc(2 * sizeof(void *));
    if (cell == NULL) { worker_ok = 0; break; }
    cell[0] = list;
    cell[1] = (void *)(intptr_t)0x5eed;
    list = cell;
    int n = 0;
    for (void **c = list; c != NULL; c = c[0]) {
      if (c[1] != (void *)(intptr_t)0x5eed) worker_ok = 0;
      if (++n == 200) { c[0] = NULL; break; }
    }
    rounds++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int sig = SIGRTMIN + 6;
  GC_set_suspend_signal(sig);
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_suspend_signal() == sig);
  GC_set_suspend_signal(SIGUSR2); /* after GC_INIT: no effect */
  CHECK(GC_get_suspend_signal() == sig);
  CHECK(GC_get_thr_restart_signal() != SIGPWR);

  /* The collector's handler is on the chosen signal from GC_INIT on. */
  struct sigaction cur;
  CHECK(sigaction(sig, NULL, &cur) == 0);
  CHECK(cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN);

  /* SIGPWR is the program's. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_pwr;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGPWR, &sa, NULL) == 0);

  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  while (rounds < 100) sched_yield();
  for (int i = 0; i < 20; i++) {
    CHECK(pthread_kill(t, SIGPWR) == 0);
    GC_gcollect();
  }
  long before = rounds;
  while (rounds < before + 100) sched_yield();
  stop_worker = 1;
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(worker_ok);
  /* Standard signals merge while pending, so at least one but at most 20 arrived; the
   * handler the program installed is still SIGPWR's. */
  CHECK(pwr_seen >= 1 && pwr_seen <= 20);
  CHECK(sigaction(SIGPWR, NULL, &cur) == 0);
  CHECK(cur.sa_handler == on_pwr);
  raise(SIGPWR);
  CHECK(pwr_seen >= 2);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
