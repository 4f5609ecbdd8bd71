/*
 * <gc/leak_detector.h> -- bdwgc's leak-detector header for dunegc: include it (after the
 * system headers) to route malloc and friends to the debug allocator, then turn leak
 * detection on with GC_set_find_leak(1) before GC_INIT() or GC_FIND_LEAK=1.  Leaked
 * objects are reported at each collection ("Found N leaked objects:"), CHECK_LEAKS()
 * collects now, and a collection runs at exit.
 */
#ifndef GC_LEAK_DETECTOR_H
#define GC_LEAK_DETECTOR_H

#ifndef GC_DEBUG
# define GC_DEBUG
#endif
#include "gc.h"

#ifndef GC_DONT_INCLUDE_STDLIB
# include <stdlib.h>
# include <string.h>
#endif

#undef malloc
#define malloc(n) GC_MALLOC(n)
#undef calloc
#define calloc(m, n) GC_MALLOC((m) * (n))
#undef free
#define free(p) GC_FREE(p)
#undef realloc
#define realloc(p, n) GC_REALLOC(p, n)
#undef strdup
#define strdup(s) GC_STRDUP(s)
#undef strndup
#define strndup(s, n) GC_STRNDUP(s, n)
#undef memalign
#define memalign(a, n) GC_memalign(a, n)
#undef posix_memalign
#define posix_memalign(p, a, n) GC_posix_memalign(p, a, n)

#ifndef CHECK_LEAKS
# define CHECK_LEAKS() GC_gcollect()
#endif

#endif /* GC_LEAK_DETECTOR_H */
