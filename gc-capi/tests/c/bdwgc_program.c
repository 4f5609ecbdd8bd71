/* A program written for bdwgc, using only bdwgc's API and macros, linked with -lgc.
 * It reports which collector it ran on: dunegc exports GC_dunegc_version. */
#define GC_THREADS
#include <gc.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; long value; };

static int finalized;
static void GC_CALLBACK fin(void *obj, void *cd) { (void)obj; (void)cd; finalized++; }

static void *thread_main(void *arg) {
  long n = (long)arg, s = 0;
  struct node *head = NULL;
  for (long i = 0; i < n; i++) {
    struct node *c = GC_NEW(struct node);
    c->value = i;
    c->next = head;
    head = c;
  }
  for (struct node *c = head; c; c = c->next) s += c->value;
  return (void *)s;
}

static void __attribute__((noinline)) make_garbage_with_finalizers(void) {
  for (int i = 0; i < 100; i++) {
    void *p = GC_MALLOC(48);
    GC_REGISTER_FINALIZER(p, fin, NULL, NULL, NULL);
  }
}

int main(void) {
  GC_INIT();
  pthread_t t[3];
  for (long i = 0; i < 3; i++)
    if (pthread_create(&t[i], NULL, thread_main, (void *)(10000 * (i + 1))) != 0) return 2;
  long total = 0;
  for (int i = 0; i < 3; i++) {
    void *r;
    pthread_join(t[i], &r);
    total += (long)r;
  }
  char *s = GC_MALLOC_ATOMIC(32);
  strcpy(s, "abc");
  s = GC_REALLOC(s, 10000);
  make_garbage_with_finalizers();
  for (int i = 0; i < 3; i++) {
    char buf[4096];
    memset(buf, 0, sizeof buf); /* clear stale stack words */
    __asm__ volatile("" ::"r"(buf) : "memory");
    GC_gcollect();
  }
  GC_invoke_finalizers();
  void *dunegc = dlsym(RTLD_DEFAULT, "GC_dunegc_version");
  printf("collector %s\n",
         dunegc ? ((const char *(*)(void))dunegc)() : "bdwgc");
  printf("total %ld string %s finalized %d gc_no %lu version %x\n", total, s,
         finalized > 50 ? 1 : 0, (unsigned long)GC_get_gc_no(), GC_get_version() >> 16);
  return 0;
}
