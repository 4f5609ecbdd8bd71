/* GC_set_suspend_signal and GC_set_thr_restart_signal before GC_INIT move the
 * collector's two signals: the getters report them, later calls (after GC_INIT) have no
 * effect, the collector's handlers are on them from GC_INIT on, and the program can then
 * use SIGPWR and SIGXCPU (bdwgc's and dunegc's defaults) for itself while collections
 * stop and scan another thread.  Argument "inc": incremental mode. */
#define GC_THREADS
#include <gc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "check.h"

static volatile sig_atomic_t pwr_seen;
static volatile sig_atomic_t xcpu_seen;
static volatile int stop_worker;
static volatile int worker_ok = 1;
static volatile long rounds;

static void on_pwr(int sig) {
  (void)sig;
  pwr_seen++;
}

static void on_xcpu(int sig) {
  (void)sig;
  xcpu_seen++;
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
  int sig = SIGRTMIN + 6, restart = SIGRTMIN + 7;
  GC_set_suspend_signal(sig);
  GC_set_thr_restart_signal(restart);
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_suspend_signal() == sig);
  GC_set_suspend_signal(SIGUSR2); /* after GC_INIT: no effect */
  CHECK(GC_get_suspend_signal() == sig);
  CHECK(GC_get_thr_restart_signal() == restart);
  GC_set_thr_restart_signal(SIGUSR2); /* after GC_INIT: no effect */
  CHECK(GC_get_thr_restart_signal() == restart);

  /* The collector's handlers are on the chosen signals from GC_INIT on; the defaults
   * are left alone. */
  struct sigaction cur;
  CHECK(sigaction(sig, NULL, &cur) == 0);
  CHECK(cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN);
  CHECK(sigaction(restart, NULL, &cur) == 0);
  CHECK(cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN);
  CHECK(sigaction(SIGPWR, NULL, &cur) == 0);
  CHECK(cur.sa_handler == SIG_DFL);
  CHECK(sigaction(SIGXCPU, NULL, &cur) == 0);
  CHECK(cur.sa_handler == SIG_DFL);

  /* SIGPWR and SIGXCPU are the program's. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_pwr;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGPWR, &sa, NULL) == 0);
  sa.sa_handler = on_xcpu;
  CHECK(sigaction(SIGXCPU, &sa, NULL) == 0);

  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  while (rounds < 100) sched_yield();
  for (int i = 0; i < 20; i++) {
    CHECK(pthread_kill(t, SIGPWR) == 0);
    CHECK(pthread_kill(t, SIGXCPU) == 0);
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
  CHECK(xcpu_seen >= 1 && xcpu_seen <= 20);
  CHECK(sigaction(SIGPWR, NULL, &cur) == 0);
  CHECK(cur.sa_handler == on_pwr);
  CHECK(sigaction(SIGXCPU, NULL, &cur) == 0);
  CHECK(cur.sa_handler == on_xcpu);
  raise(SIGPWR);
  raise(SIGXCPU);
  CHECK(pwr_seen >= 2 && xcpu_seen >= 2);
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
