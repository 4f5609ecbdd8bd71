/* Stacks the program declares.
 *  - GC_register_altstack: a thread running a signal handler on its alternate stack
 *    keeps the objects that only its interrupted frames (on the normal stack) hold, both
 *    when it collects from the handler itself and when another thread collects while it
 *    is stopped there. Each object has a disappearing link, cleared if it dies.
 *  - GC_set_stackbottom with the handle from GC_get_my_stackbottom bounds the stack
 *    scan: objects held only by frames above the declared bottom die; restoring the old
 *    bottom scans the whole stack again.
 *  - Argument "preset": GC_set_stackbottom before GC_INIT sets GC_stackbottom, and the
 *    primordial thread's bottom set there is the one GC_get_my_stackbottom reports.
 * Argument "inc": incremental mode. (dunegc only: bdwgc on Linux scans only the alternate
 * stack of a thread stopped there.) */
#define _GNU_SOURCE
#include <gc.h>
#include "check.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>

#define N 64
#define OBJ_WORDS 8
#define ALT_BYTES (1 << 20)

/* Hidden pointers, cleared by the collector when their objects die. */
static GC_word main_links[N], thread_links[N], bounded_links[N];

static void register_links(GC_word **objs, GC_word *links, GC_word tag) {
  for (int i = 0; i < N; i++) {
    objs[i] = GC_MALLOC(OBJ_WORDS * sizeof(GC_word));
    CHECK(objs[i] != NULL);
    for (int w = 0; w < OBJ_WORDS; w++) objs[i][w] = tag + (GC_word)(i * OBJ_WORDS + w);
    links[i] = GC_HIDE_POINTER(objs[i]);
    CHECK(GC_GENERAL_REGISTER_DISAPPEARING_LINK((void **)&links[i], objs[i]) == GC_SUCCESS);
  }
}

static int cleared(const GC_word *links) {
  int n = 0;
  for (int i = 0; i < N; i++) n += links[i] == 0;
  return n;
}

static void check_intact(GC_word *const volatile *objs, const GC_word *links, GC_word tag) {
  CHECK(cleared(links) == 0);
  for (int i = 0; i < N; i++) {
    CHECK(GC_REVEAL_POINTER(links[i]) == objs[i]);
    for (int w = 0; w < OBJ_WORDS; w++) CHECK(objs[i][w] == tag + (GC_word)(i * OBJ_WORDS + w));
  }
}

/* Churn and collect, so that a wrongly freed object would be reused and its link cleared. */
static void churn_and_collect(int rounds) {
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < 20000; i++) (void)GC_MALLOC(OBJ_WORDS * sizeof(GC_word));
    collect_clean(1);
  }
}

static char *alt_stack(void) {
  char *alt = mmap(NULL, ALT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(alt != MAP_FAILED);
  stack_t ss = {.ss_sp = alt, .ss_size = ALT_BYTES, .ss_flags = 0};
  CHECK(sigaltstack(&ss, NULL) == 0);
  return alt;
}

/* The calling thread's normal stack, as glibc reports it. */
static void normal_stack(void **lo, size_t *size) {
  pthread_attr_t attr;
  CHECK(pthread_getattr_np(pthread_self(), &attr) == 0);
  CHECK(pthread_attr_getstack(&attr, lo, size) == 0);
  pthread_attr_destroy(&attr);
}

static void declare_stacks(char *alt) {
  void *lo;
  size_t size;
  normal_stack(&lo, &size);
  GC_register_altstack(lo, size, alt, ALT_BYTES);
}

static int on_alt(char *alt) {
  char here;
  return (uintptr_t)&here >= (uintptr_t)alt && (uintptr_t)&here < (uintptr_t)alt + ALT_BYTES;
}

/* --- the collecting thread on its alternate stack --- */
static char *main_alt;
static volatile int main_handler_ran;

static void on_main_signal(int sig) {
  (void)sig;
  CHECK(on_alt(main_alt));
  churn_and_collect(3);
  main_handler_ran = 1;
}

static void __attribute__((noinline)) collect_from_handler(void) {
  GC_word *volatile objs[N];
  register_links((GC_word **)objs, main_links, 0x1000);
  clear_stack();
  raise(SIGUSR1);
  CHECK(main_handler_ran);
  check_intact(objs, main_links, 0x1000);
}

/* --- a thread stopped while on its alternate stack --- */
static char *thread_alt;
static volatile int stage; /* 1: thread in its handler; 2: main collected */

static void on_thread_signal(int sig) {
  (void)sig;
  CHECK(on_alt(thread_alt));
  stage = 1;
  while (stage < 2) sched_yield();
}

static void __attribute__((noinline)) hold_while_stopped(void) {
  GC_word *volatile objs[N];
  register_links((GC_word **)objs, thread_links, 0x2000);
  clear_stack();
  CHECK(pthread_kill(pthread_self(), SIGUSR2) == 0);
  check_intact(objs, thread_links, 0x2000);
}

/* Deeper than the window of static TLS scanned below a thread's FS base (which glibc
 * puts at the top of the thread's stack), so that only the declared normal stack covers
 * the objects' frame. */
static void __attribute__((noinline)) hold_deep(void) {
  volatile char pad[256 * 1024];
  memset((char *)pad, 0, sizeof pad);
  hold_while_stopped();
  __asm__ volatile("" ::"r"(pad) : "memory");
}

static void *thread_main(void *arg) {
  (void)arg;
  thread_alt = alt_stack();
  declare_stacks(thread_alt);
  hold_deep();
  return NULL;
}

/* --- a declared bottom bounds the scan --- */
static void __attribute__((noinline)) collect_below(void *handle, const struct GC_stack_base *old) {
  char here;
  struct GC_stack_base sb = {(void *)((uintptr_t)&here & ~(uintptr_t)15)};
  GC_set_stackbottom(handle, &sb);
  struct GC_stack_base now;
  CHECK(GC_get_my_stackbottom(&now) == handle);
  CHECK(now.mem_base == sb.mem_base);
  collect_clean(3);
  GC_set_stackbottom(handle, old);
  CHECK(GC_get_my_stackbottom(&now) == handle);
  CHECK(now.mem_base == old->mem_base);
}

static void __attribute__((noinline)) bounded_scan(void) {
  struct GC_stack_base old;
  void *handle = GC_get_my_stackbottom(&old);
  CHECK(handle != NULL);
  CHECK(old.mem_base != NULL);
  GC_word *volatile objs[N];
  register_links((GC_word **)objs, bounded_links, 0x3000);
  clear_stack();
  /* With the whole stack scanned, this frame keeps every object. */
  collect_clean(2);
  CHECK(cleared(bounded_links) == 0);
  collect_below(handle, &old);
  /* Above the declared bottom, this frame was not scanned: its objects died (a stale
   * copy in a register or a scanned frame may keep a few). */
  int dead = cleared(bounded_links);
  printf("bounded: %d of %d dead\n", dead, N);
  CHECK(dead >= N - 4);
  for (int i = 0; i < N; i++) objs[i] = NULL;
}

static int has_arg(int argc, char **argv, const char *a) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], a) == 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  char top;
  int preset = has_arg(argc, argv, "preset");
  if (preset) {
    struct GC_stack_base sb = {&top};
    GC_set_stackbottom(NULL, &sb);
    CHECK(GC_stackbottom == &top);
  }
  GC_INIT();
  if (has_arg(argc, argv, "inc")) GC_enable_incremental();
  printf("incremental %d\n", GC_is_incremental_mode());
  struct GC_stack_base sb;
  CHECK(GC_get_my_stackbottom(&sb) != NULL);
  CHECK(sb.mem_base == (void *)GC_stackbottom);
  if (preset) CHECK(sb.mem_base == &top);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_ONSTACK;
  sa.sa_handler = on_main_signal;
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  sa.sa_handler = on_thread_signal;
  CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);

  main_alt = alt_stack();
  declare_stacks(main_alt);
  collect_from_handler();

  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
  while (stage < 1) sched_yield();
  churn_and_collect(3);
  stage = 2;
  CHECK(pthread_join(t, NULL) == 0);

  bounded_scan();
  printf("PASS\n");
  return 0;
}
