/*
 * gc_disclaim.h -- dunegc's version of bdwgc's <gc/gc_disclaim.h> (API of bdwgc 8.2):
 * disclaim procedures and finalized allocation.
 *
 * A disclaim procedure runs on each unreachable object of its kind before it is
 * reclaimed, in the collection that finds it unreachable; a nonzero result keeps the
 * object for this cycle.  Differences from bdwgc: it runs with the allocation lock held
 * (as in bdwgc) and with the other threads stopped (bdwgc sweeps lazily, with them
 * running), so it must neither allocate nor take a lock another thread may hold
 * (stdio's included; pthread_mutex_trylock is fine).  It is called only on allocated
 * objects (never on free-list fragments).  With mark_from_all every allocated object of
 * the kind is scanned in every collection, whatever its first word holds.
 * GC_finalized_malloc's finalizers are called the same way.  Registering a kind that
 * was never made, GC_finalized_malloc before GC_init_finalized_malloc, or with a NULL
 * closure, warn and do nothing (return NULL).  Both registration calls are no-ops in
 * leak-finding mode, as in bdwgc.
 */
#ifndef GC_DISCLAIM_H
#define GC_DISCLAIM_H

#include "gc.h"

#ifdef __cplusplus
  extern "C" {
#endif

/* Prepare the kind GC_finalized_malloc uses (thread-safe, repeatable).               */
GC_API void GC_CALL GC_init_finalized_malloc(void);

/* Called with the allocation lock held (and, here, the world stopped).              */
typedef int (GC_CALLBACK * GC_disclaim_proc)(void * /*obj*/);

GC_API void GC_CALL GC_register_disclaim_proc(int /*kind*/,
                                GC_disclaim_proc /*proc*/,
                                int /*mark_from_all*/);

/* The finalizer closure used by GC_finalized_malloc.                                */
struct GC_finalizer_closure {
    GC_finalization_proc proc;
    void *cd;
};

/* lb bytes finalized by fc (fc->proc(obj, fc->cd)) in the cycle that reclaims them.  */
/* GC_size is a word more than lb; GC_base points one word before the object.        */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void * GC_CALL
        GC_finalized_malloc(size_t /*size*/,
                const struct GC_finalizer_closure * /*fc*/);

#ifdef __cplusplus
  } /* extern "C" */
#endif

#endif
