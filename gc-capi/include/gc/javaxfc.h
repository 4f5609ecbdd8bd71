/*
 * javaxfc.h -- dunegc's version of bdwgc's <gc/javaxfc.h> (API of bdwgc 8.2).
 * GC_suspend_thread and friends are declared here only if dunegc provides them.
 */
#ifndef GC_JAVAXFC_H
#define GC_JAVAXFC_H

#ifndef GC_H
# include "gc.h"
#endif

#ifdef __cplusplus
  extern "C" {
#endif

/* Run every finalizer that has not run yet (registered ones included, as if their   */
/* objects were unreachable now) on this thread, until none is left.  Objects still  */
/* referenced may be finalized: not recommended for general use (as in bdwgc).       */
GC_API void GC_CALL GC_finalize_all(void);

#ifdef __cplusplus
  } /* extern "C" */
#endif

#endif /* GC_JAVAXFC_H */
