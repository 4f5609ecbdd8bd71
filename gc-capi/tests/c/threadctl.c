/* Threads and the world under the program's control: GC_suspend_thread really stops a
 * thread (and collections still scan it), GC_resume_thread lets it go on;
 * GC_stop_world_external stops every other thread; GC_alloc_lock holds off another
 * thread's GC_gcollect; fork while another thread collects works with bdwgc's default
 * fork handling (argument "manual": GC_set_handle_fork(0) and GC_atfork_* calls).
 * Argument "inc": incremental mode. */
#define GC_THREADS
#include <gc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static volatile long counter;
static volatile int stop_worker;
static volatile int worker_ok = 1;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Counts, allocates, and keeps a list reachable from its stack only. */
static void *worker(void *arg) {
  (void)arg;
  void **list = NULL;
  while (!stop_worker) {
    void **cell = GC_malloc(2 * sizeof(void *));
    if (cell == NULL) { worker_ok = 0; break; }
    cell[0] = list;
    cell[1] = (void *)(intptr_t)0x5eed;
    list = cell;
    if (++counter % 1000 == 0) {
      int n = 0;
      for (void **c = list; c != NULL; c = c[0]) {
        if (c[1] != (void *)(intptr_t)0x5eed) worker_ok = 0;
        if (++n == 100) { c[0] = NULL; break; } /* keep the list short */
      }
    }
  }
  return NULL;
}

static void test_suspend(pthread_t t) {
  CHECK(!GC_is_thread_suspended(t));
  GC_suspend_thread(t);
  CHECK(GC_is_thread_suspended(t));
  long c0 = counter;
  sleep_ms(30);
  GC_gcollect(); /* the suspended thread is stopped and scanned as usual */
  sleep_ms(30);
  CHECK(counter == c0);
  GC_suspend_thread(t); /* already suspended: no effect */
  GC_resume_thread(t);
  CHECK(!GC_is_thread_suspended(t));
  sleep_ms(30);
  CHECK(counter > c0);
}

static void test_stop_world(void) {
  GC_stop_world_external();
  long c0 = counter;
  sleep_ms(50);
  CHECK(counter == c0);
  GC_start_world_external();
  sleep_ms(30);
  CHECK(counter > c0);
}

static volatile int collected, go, ready;
static void *collector(void *arg) {
  (void)arg;
  ready = 1;
  while (!go) sleep_ms(1);
  GC_gcollect();
  collected = 1;
  return NULL;
}

static void test_alloc_lock(void) {
  pthread_t t; /* created first: creating a thread takes the lock, as in bdwgc */
  CHECK(pthread_create(&t, NULL, collector, NULL) == 0);
  while (!ready) sleep_ms(1);
  GC_alloc_lock();
  go = 1;
  sleep_ms(50);
  CHECK(!collected); /* GC_gcollect waits for the lock */
  GC_alloc_unlock();
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(collected);
}

static void *collect_loop(void *arg) {
  (void)arg;
  while (!stop_worker) {
    GC_gcollect();
    void *volatile p = GC_malloc(1024);
    (void)p;
  }
  return NULL;
}

/* Fork repeatedly while another thread collects; each child must allocate and collect
 * (it would hang on a heap lock inherited from the collecting thread). */
static void test_fork(int manual) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, collect_loop, NULL) == 0);
  for (int i = 0; i < 20; i++) {
    if (manual) GC_atfork_prepare();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      if (manual) GC_atfork_child();
      alarm(10);
      void **p = GC_malloc(64);
      if (p == NULL) _exit(2);
      GC_gcollect();
      p[0] = GC_malloc(64);
      _exit(p[0] != NULL ? 0 : 3);
    }
    if (manual) GC_atfork_parent();
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d: status %#x\n", i, status);
      CHECK(0);
    }
    sleep_ms(2);
  }
  stop_worker = 1;
  CHECK(pthread_join(t, NULL) == 0);
  stop_worker = 0;
}

int main(int argc, char **argv) {
  int inc = 0, manual = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "inc") == 0) inc = 1;
    if (strcmp(argv[i], "manual") == 0) manual = 1;
  }
  if (manual) GC_set_handle_fork(0); /* before GC_INIT, as bdwgc requires */
  GC_INIT();
  if (inc) GC_enable_incremental();
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker, NULL) == 0);
  while (counter < 1000) sleep_ms(1);
  test_suspend(t);
  test_stop_world();
  stop_worker = 1;
  CHECK(pthread_join(t, NULL) == 0);
  stop_worker = 0;
  CHECK(worker_ok);
  test_alloc_lock();
  test_fork(manual);
  printf("incremental %d\n", GC_is_incremental_mode());
  printf("PASS\n");
  return 0;
}
