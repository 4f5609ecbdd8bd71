// gc.h compiles as C++ (declarations inside extern "C"), with the thread redirects.
#define GC_THREADS
#include <gc.h>
#include <cstdio>

struct Point { long x, y; };

static void *run(void *arg) { return arg; }

int main() {
  GC_INIT();
  Point *p = GC_NEW(Point);
  p->x = 3;
  Point *q = GC_NEW_ATOMIC(Point);
  Point *u = GC_NEW_UNCOLLECTABLE(Point);
  pthread_t t;
  void *r = nullptr;
  if (pthread_create(&t, nullptr, run, p) != 0 || pthread_join(t, &r) != 0) return 1;
  GC_FREE(u);
  std::printf("%s %ld\n", r == p && q->x == 0 ? "PASS" : "FAIL", p->x);
  return 0;
}
