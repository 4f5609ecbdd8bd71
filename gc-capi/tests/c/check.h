/* Shared helpers for the C test programs: CHECK aborts with the failing expression,
 * clear_stack() wipes dead stack words so that conservative scanning does not keep
 * objects alive through stale pointers left by earlier calls. */
#ifndef CHECK_H
#define CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static void __attribute__((noinline, unused)) clear_stack(void) {
  volatile char buf[64 * 1024];
  memset((char *)buf, 0, sizeof buf);
  __asm__ volatile("" ::"r"(buf) : "memory");
}

/* Collect a few times with clean stacks, so that objects dropped just now are found. */
static void __attribute__((noinline, unused)) collect_clean(int times) {
  for (int i = 0; i < times; i++) {
    clear_stack();
    GC_gcollect();
  }
}
#endif
