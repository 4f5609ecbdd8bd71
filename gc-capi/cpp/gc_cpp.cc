// libgccpp for dunegc: what Debian's libgccpp.so.1 (bdwgc 8.2) exports, over dunegc's
// libgc.so.1. The global operator new and new[] allocate uncollectable objects (traced
// roots until deleted) and operator delete frees them, as bdwgc's gc_cpp.cc does, so
// ordinary C++ objects can hold the only pointers to collected ones. A failed
// allocation throws std::bad_alloc (GC_throw_bad_alloc). gc_cpp.h's class gc and
// placement forms are inline in the header.
#include <gc/gc_cpp.h>
#include <new>


GC_API void GC_CALL GC_throw_bad_alloc() { throw std::bad_alloc(); }

void *operator new(size_t size) {
  void *obj = GC_MALLOC_UNCOLLECTABLE(size);
  if (!obj) GC_throw_bad_alloc();
  return obj;
}

void *operator new[](size_t size) {
  void *obj = GC_MALLOC_UNCOLLECTABLE(size);
  if (!obj) GC_throw_bad_alloc();
  return obj;
}

void operator delete(void *obj) GC_NOEXCEPT { GC_FREE(obj); }
void operator delete[](void *obj) GC_NOEXCEPT { GC_FREE(obj); }
void operator delete(void *obj, size_t) GC_NOEXCEPT { GC_FREE(obj); }
void operator delete[](void *obj, size_t) GC_NOEXCEPT { GC_FREE(obj); }
