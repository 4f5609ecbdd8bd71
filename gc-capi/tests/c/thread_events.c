/* GC_set_on_thread_event: at every collection the procedure is told, for each other
 * thread, GC_EVENT_THREAD_SUSPENDED with its pthread_t before the world counts as
 * stopped (GC_EVENT_POST_STOP_WORLD; the thread does not run until
 * GC_EVENT_PRE_START_WORLD), then GC_EVENT_THREAD_UNSUSPENDED (bdwgc reports it as it
 * sends the restart signal, so the thread may already run); never for the collecting
 * thread.  Argument "inc":
 * incremental mode. */
#define GC_THREADS
#include <gc.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include "check.h"

enum { WORKERS = 2, MAX_IDS = 32, COLLECTIONS = 5 };

static volatile long counter[WORKERS];
static volatile int stop_workers;
static pthread_t worker_id[WORKERS];

/* What the procedure saw, per thread id (no allocation inside it). */
static void *seen_id[MAX_IDS];
static int n_ids;
static int suspended[MAX_IDS], unsuspended[MAX_IDS];
static long counter_at_stop[WORKERS];
static volatile int reporting; /* the thread-event procedure is installed */
static int bad_order, moved_while_stopped, overflow, not_suspended_at_stop, stops;

static void GC_CALLBACK on_thread_event(GC_EventType ev, void *id) {
  int k = 0;
  while (k < n_ids && seen_id[k] != id) k++;
  if (k == n_ids) {
    if (n_ids == MAX_IDS) { overflow = 1; return; }
    seen_id[n_ids++] = id;
  }
  if (ev == GC_EVENT_THREAD_SUSPENDED) {
    if (suspended[k] != unsuspended[k]) bad_order = 1;
    suspended[k]++;
  } else if (ev == GC_EVENT_THREAD_UNSUSPENDED) {
    unsuspended[k]++;
    if (suspended[k] != unsuspended[k]) bad_order = 1;
  } else {
    bad_order = 1;
  }
}

/* With every thread stopped: each worker was reported suspended (and not yet
 * resumed); remember its counter, which must not move until it is reported resumed. */
static void GC_CALLBACK on_collection_event(GC_EventType ev) {
  /* (GC_get_on_thread_event takes bdwgc's lock, which the collector holds here.) */
  if (!reporting) return;
  if (ev == GC_EVENT_PRE_START_WORLD) {
    for (int i = 0; i < WORKERS; i++)
      if (counter[i] != counter_at_stop[i]) moved_while_stopped = 1;
    return;
  }
  if (ev != GC_EVENT_POST_STOP_WORLD) return;
  stops++;
  for (int i = 0; i < WORKERS; i++) {
    counter_at_stop[i] = counter[i];
    int k = 0;
    while (k < n_ids && !pthread_equal((pthread_t)seen_id[k], worker_id[i])) k++;
    if (k == n_ids || suspended[k] != unsuspended[k] + 1) not_suspended_at_stop = 1;
  }
}

static void *worker(void *arg) {
  int i = (int)(long)arg;
  while (!stop_workers) {
    counter[i]++;
    sched_yield();
  }
  return NULL;
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  CHECK(GC_get_on_thread_event() == NULL);
  for (int i = 0; i < WORKERS; i++)
    CHECK(pthread_create(&worker_id[i], NULL, worker, (void *)(long)i) == 0);
  for (int i = 0; i < WORKERS; i++)
    while (counter[i] == 0) sched_yield();
  GC_gcollect(); /* a collection before the procedure is installed is not reported */
  GC_set_on_collection_event(on_collection_event);
  GC_set_on_thread_event(on_thread_event);
  CHECK(GC_get_on_thread_event() == on_thread_event);
  reporting = 1;
  for (int c = 0; c < COLLECTIONS; c++) GC_gcollect();
  reporting = 0;
  GC_set_on_thread_event(0);
  CHECK(GC_get_on_thread_event() == NULL);
  GC_gcollect(); /* nor one after it is removed */
  stop_workers = 1;
  for (int i = 0; i < WORKERS; i++) CHECK(pthread_join(worker_id[i], NULL) == 0);

  CHECK(!overflow && !bad_order && !moved_while_stopped && !not_suspended_at_stop);
  CHECK(stops >= COLLECTIONS);
  pthread_t self = pthread_self();
  for (int k = 0; k < n_ids; k++) {
    CHECK(!pthread_equal((pthread_t)seen_id[k], self));
    CHECK(suspended[k] == unsuspended[k]);
  }
  for (int i = 0; i < WORKERS; i++) {
    int k = 0;
    while (k < n_ids && !pthread_equal((pthread_t)seen_id[k], worker_id[i])) k++;
    CHECK(k < n_ids);
    /* one pair per collection (an incremental cycle may stop the world more often) */
    CHECK(suspended[k] >= COLLECTIONS);
  }
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
