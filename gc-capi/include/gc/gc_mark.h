/*
 * gc_mark.h -- dunegc's version of bdwgc's <gc/gc_mark.h>: object kinds, mark
 * descriptors and mark procedures (the API of bdwgc 8.2).
 *
 * A kind made with GC_new_kind is scanned by its descriptor; a GC_DS_PROC descriptor
 * calls the program's mark procedure with bdwgc's arguments.  Differences from
 * bdwgc:
 *  - A mark procedure's stack (mark_stack_ptr .. mark_stack_limit) is a private
 *    buffer of 511 entries; GC_mark_and_push pushes straight onto the collector's
 *    stack and returns mark_stack_ptr unchanged, so it never overflows.
 *  - The free list passed to GC_new_kind is not used; objects are always zeroed.
 *  - GC_generic_malloc and friends with a kind that was never made warn and return
 *    NULL.  GC_get_kind_and_size of a non-object returns -1.
 *  - Objects of kinds made with GC_new_kind are allocated under the allocation lock.
 */
#ifndef GC_MARK_H
#define GC_MARK_H

#ifndef GC_H
# include "../gc.h"
#endif

#ifdef __cplusplus
  extern "C" {
#endif

#define GC_PROC_BYTES 100

struct GC_ms_entry { void *opaque; };

typedef struct GC_ms_entry * (*GC_mark_proc)(GC_word * /* addr */,
                                struct GC_ms_entry * /* mark_stack_ptr */,
                                struct GC_ms_entry * /* mark_stack_limit */,
                                GC_word /* env */);

#define GC_LOG_MAX_MARK_PROCS 6
#define GC_MAX_MARK_PROCS (1 << GC_LOG_MAX_MARK_PROCS)
#define GC_RESERVED_MARK_PROCS 8
#define GC_GCJ_RESERVED_MARK_PROC_INDEX 0

#define GC_DS_TAG_BITS 2
#define GC_DS_TAGS   ((1 << GC_DS_TAG_BITS) - 1)
#define GC_DS_LENGTH 0  /* a length in bytes, scanned conservatively from the start */
#define GC_DS_BITMAP 1  /* 62 bits of pointer words, the msb for the first word    */
#define GC_DS_PROC   2  /* a mark procedure index and its environment              */
#define GC_MAKE_PROC(proc_index, env) \
            (((((env) << GC_LOG_MAX_MARK_PROCS) \
               | (proc_index)) << GC_DS_TAG_BITS) | GC_DS_PROC)
#define GC_DS_PER_OBJECT 3  /* the descriptor is in the object (see bdwgc)          */
#define GC_INDIR_PER_OBJ_BIAS 0x10

GC_API struct GC_ms_entry * GC_CALL GC_mark_and_push(void * /* obj */,
                                struct GC_ms_entry * /* mark_stack_ptr */,
                                struct GC_ms_entry * /* mark_stack_limit */,
                                void ** /* src */);

#define GC_MARK_AND_PUSH(obj, msp, lim, src) \
          ((GC_word)(obj) >= (GC_word)GC_least_plausible_heap_addr && \
           (GC_word)(obj) <= (GC_word)GC_greatest_plausible_heap_addr ? \
           GC_mark_and_push(obj, msp, lim, src) : (msp))

GC_API void ** GC_CALL GC_new_free_list(void);
GC_API void ** GC_CALL GC_new_free_list_inner(void);

GC_API unsigned GC_CALL GC_new_kind(void ** /* free_list */,
                            GC_word /* mark_descriptor_template */,
                            int /* add_size_to_descriptor */,
                            int /* clear_new_objects */);
GC_API unsigned GC_CALL GC_new_kind_inner(void ** /* free_list */,
                            GC_word /* mark_descriptor_template */,
                            int /* add_size_to_descriptor */,
                            int /* clear_new_objects */);

GC_API unsigned GC_CALL GC_new_proc(GC_mark_proc);
GC_API unsigned GC_CALL GC_new_proc_inner(GC_mark_proc);

GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL GC_generic_malloc(
                                            size_t /* lb */, int /* knd */);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_generic_malloc_ignore_off_page(size_t /* lb */, int /* knd */);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_generic_malloc_uncollectable(size_t /* lb */, int /* knd */);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_generic_or_special_malloc(size_t /* size */, int /* knd */);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_debug_generic_or_special_malloc(size_t /* size */, int /* knd */,
                                           GC_EXTRA_PARAMS);
#ifdef GC_DEBUG
# define GC_GENERIC_OR_SPECIAL_MALLOC(sz, knd) \
                GC_debug_generic_or_special_malloc(sz, knd, GC_EXTRAS)
#else
# define GC_GENERIC_OR_SPECIAL_MALLOC(sz, knd) GC_generic_or_special_malloc(sz, knd)
#endif

GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL GC_malloc_kind(
                                            size_t /* lb */, int /* knd */);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL GC_malloc_kind_global(
                                            size_t /* lb */, int /* knd */);
GC_API void GC_CALL GC_generic_malloc_many(size_t /* lb */, int /* knd */,
                                           void ** /* result */);

GC_API int GC_CALL GC_get_kind_and_size(const void *, size_t * /* psize */);

typedef void (GC_CALLBACK * GC_describe_type_fn)(void * /* p */,
                                                 char * /* out_buf */);
#define GC_TYPE_DESCR_LEN 40
GC_API void GC_CALL GC_register_describe_type_fn(int /* kind */,
                                                 GC_describe_type_fn);

GC_API int GC_CALL GC_is_marked(const void *);
GC_API void GC_CALL GC_clear_mark_bit(const void *);
GC_API void GC_CALL GC_set_mark_bit(const void *);

/* Root pushing, from a push-other-roots function or a mark procedure (ignored      */
/* elsewhere).  The default push-other-roots function does nothing: dunegc scans    */
/* every thread's stack itself.                                                     */
GC_API void GC_CALL GC_push_all(void * /* bottom */, void * /* top */);
GC_API void GC_CALL GC_push_all_eager(void * /* bottom */, void * /* top */);
GC_API void GC_CALL GC_push_conditional(void * /* bottom */, void * /* top */,
                                        int /* bool all */);
GC_API void GC_CALL GC_push_finalizer_structures(void);

typedef void (GC_CALLBACK * GC_push_other_roots_proc)(void);
GC_API void GC_CALL GC_set_push_other_roots(GC_push_other_roots_proc);
GC_API GC_push_other_roots_proc GC_CALL GC_get_push_other_roots(void);

GC_API int GC_CALL GC_is_tmp_root(void *);
GC_API void * GC_CALL GC_clear_stack(void *);

#ifdef __cplusplus
  } /* extern "C" */
#endif

#endif /* GC_MARK_H */
