// C++ interface (gc_cpp.h, gc_allocator.h, libgccpp): class gc objects are collected;
// gc_cleanup destructors run when an object is collected; NoGC placement is
// uncollectable until deleted; the global operator new (libgccpp) makes uncollectable
// roots that keep collected objects alive; gc_allocator containers keep their elements'
// referents alive, and traceable_allocator memory is scanned. Argument "inc":
// incremental mode.
#include <gc_cpp.h>
#include <gc/gc_allocator.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <map>

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

static void __attribute__((noinline)) clear_stack() {
  volatile char buf[64 * 1024];
  std::memset((char *)buf, 0, sizeof buf);
}
static void collect(int n) {
  for (int i = 0; i < n; i++) {
    clear_stack();
    GC_gcollect();
  }
}

struct Leaf : public gc {
  long value;
  explicit Leaf(long v) : value(v) {}
};

static int destroyed;
struct Cleaned : public gc_cleanup {
  Leaf *leaf;
  Cleaned() : leaf(new Leaf(5)) {}
  ~Cleaned() { destroyed++; }
};

struct Plain {  // global operator new: uncollectable (libgccpp)
  Leaf *leaf;
};

static void __attribute__((noinline)) make_garbage() {
  for (int i = 0; i < 50; i++) (void)new Cleaned();
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && std::strcmp(argv[1], "inc") == 0) GC_enable_incremental();
  std::printf("incremental %d\n", GC_is_incremental_mode());

  // gc_cleanup: destructors of unreachable objects run.
  make_garbage();
  collect(3);
  for (int i = 0; i < 200; i++) (void)new Leaf(i);
  GC_invoke_finalizers();
  CHECK(destroyed > 25);

  // The global new is uncollectable memory the collector scans.
  Plain *plain = new Plain;
  CHECK(GC_base(plain) != nullptr);
  plain->leaf = new Leaf(42);
  GC_word hidden = GC_HIDE_POINTER(plain);
  plain = nullptr;
  collect(3);
  for (int i = 0; i < 20000; i++) (void)new Leaf(i);
  plain = (Plain *)GC_REVEAL_POINTER(hidden);
  CHECK(plain->leaf->value == 42);
  delete plain;

  // NoGC placement: not collected until deleted.
  Leaf *kept = new (NoGC) Leaf(7);
  GC_word hk = GC_HIDE_POINTER(kept);
  kept = nullptr;
  collect(2);
  kept = (Leaf *)GC_REVEAL_POINTER(hk);
  CHECK(GC_base(kept) == kept && kept->value == 7);
  gc::operator delete(kept);

  // gc_allocator: a vector whose elements are the only pointers to collected objects.
  {
    std::vector<Leaf *, gc_allocator<Leaf *> > v;
    for (int i = 0; i < 1000; i++) v.push_back(new Leaf(i));
    collect(2);
    for (int i = 0; i < 20000; i++) (void)new Leaf(-1);
    for (int i = 0; i < 1000; i++) CHECK(v[i]->value == i);
    std::map<int, Leaf *, std::less<int>, traceable_allocator<std::pair<const int, Leaf *> > > m;
    for (int i = 0; i < 100; i++) m[i] = new Leaf(i * 2);
    collect(2);
    for (int i = 0; i < 20000; i++) (void)new Leaf(-1);
    for (int i = 0; i < 100; i++) CHECK(m[i]->value == i * 2);
  }
  std::printf("PASS\n");
  return 0;
}
