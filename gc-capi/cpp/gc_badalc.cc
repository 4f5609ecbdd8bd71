// libgctba for dunegc: GC_throw_bad_alloc alone (what Debian's libgctba.so.1 exports),
// for programs that use gc_allocator.h without replacing the global operator new.
#include <gc.h>
#include <new>

GC_API void GC_CALL GC_throw_bad_alloc(); // C++ linkage, as gc_cpp.h declares it

GC_API void GC_CALL GC_throw_bad_alloc() { throw std::bad_alloc(); }
