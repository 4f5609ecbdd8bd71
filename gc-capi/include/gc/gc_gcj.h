/*
 * gc_gcj.h -- dunegc's version of bdwgc's <gc/gc_gcj.h> (API of bdwgc 8.2).
 *
 * Objects whose first word points to a type structure (vtable) holding their mark
 * descriptor at MARK_DESCR_OFFSET (one word).  Debug objects are scanned by the mark
 * procedure given to GC_init_gcj_malloc, with environment 1.  Differences from bdwgc:
 * allocating before GC_init_gcj_malloc warns and returns NULL; mp_index outside the
 * reserved indices (0..7) or already in use aborts ("GC_init_gcj_malloc: bad index").
 */
#ifndef GC_GCJ_H
#define GC_GCJ_H

#ifndef MARK_DESCR_OFFSET
# define MARK_DESCR_OFFSET sizeof(GC_word)
#endif

#ifndef GC_H
# include "gc.h"
#endif

#ifdef __cplusplus
  extern "C" {
#endif

GC_API void GC_CALL GC_init_gcj_malloc(int /* mp_index */,
                                void * /* really mark_proc */ /* mp */);

GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_gcj_malloc(size_t /* lb */,
                      void * /* ptr_to_struct_containing_descr */);

GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_debug_gcj_malloc(size_t /* lb */,
                            void * /* ptr_to_struct_containing_descr */,
                            GC_EXTRA_PARAMS);

GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_gcj_malloc_ignore_off_page(size_t /* lb */,
                                void * /* ptr_to_struct_containing_descr */);

/* The kind numbers of normal and debug gcj objects.                                  */
GC_API int GC_gcj_kind;
GC_API int GC_gcj_debug_kind;

#ifdef GC_DEBUG
# define GC_GCJ_MALLOC(s,d) GC_debug_gcj_malloc(s,d,GC_EXTRAS)
# define GC_GCJ_MALLOC_IGNORE_OFF_PAGE(s,d) GC_debug_gcj_malloc(s,d,GC_EXTRAS)
#else
# define GC_GCJ_MALLOC(s,d) GC_gcj_malloc(s,d)
# define GC_GCJ_MALLOC_IGNORE_OFF_PAGE(s,d) GC_gcj_malloc_ignore_off_page(s,d)
#endif

#ifdef __cplusplus
  } /* extern "C" */
#endif

#endif /* GC_GCJ_H */
