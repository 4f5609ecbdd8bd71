/*
 * gc.h -- dunegc's bdwgc-compatible C API.
 *
 * A drop-in subset of the Boehm-Demers-Weiser collector's <gc.h> (API of bdwgc 8.2),
 * implemented by dunegc (libdunegc.so / libdunegc.a; installed as libgc.so.1 by
 * scripts/build-capi.sh so that programs linked with -lgc run on it unchanged).
 *
 *   #include <gc.h>          (or <gc/gc.h>)
 *   GC_INIT();
 *   struct node *n = GC_NEW(struct node);
 *
 * Link with -ldunegc (or -lgc against target/capi/) and -lpthread.
 *
 * Differences from bdwgc (everything else follows bdwgc's documented behaviour):
 *
 *  - Every object is zeroed, including GC_malloc_atomic's (bdwgc leaves atomic
 *    objects uninitialised).  Objects are 16-byte aligned.  Interior pointers are
 *    recognised (bdwgc's default) unless GC_set_all_interior_pointers(0).
 *  - GC_free of a pointer that is not the start of a live object of the collector
 *    (a malloc() pointer, an interior pointer, a double free) is reported through the
 *    warning procedure and ignored; bdwgc's GC_free has undefined behaviour there.
 *    GC_realloc of such a pointer warns and returns NULL.  GC_free drops the object's
 *    finalizer.
 *  - GC_register_finalizer ignores pointers from an object to itself, like bdwgc's
 *    GC_register_finalizer_ignore_self (bdwgc's plain variant never finalizes a
 *    self-referencing object).  Longer cycles of finalizable objects are never
 *    finalized, as in bdwgc.  Client data is kept reachable until the finalizer runs,
 *    as in bdwgc.
 *    GC_set_java_finalization(0) applies to GC_register_finalizer_no_order objects.
 *  - Threads need no registration: a collection stops every thread of the process
 *    (signal SIGPWR) and scans every stack, so GC_register_my_thread & co. are no-ops
 *    that return bdwgc's codes (GC_SUCCESS the first time a thread registers,
 *    GC_DUPLICATE after that and for the initialising thread and GC_pthread_create's
 *    threads), and GC_thread_is_registered() is always 1.  A thread must not block
 *    SIGPWR; GC_pthread_sigmask (pthread_sigmask under GC_THREADS) keeps it unblocked.
 *    Create threads with GC_pthread_create (define GC_THREADS before including gc.h),
 *    as bdwgc requires: it keeps collections off while the new thread starts (glibc
 *    starts threads with every signal blocked) and keeps the start argument and, until
 *    pthread_join, the thread's result reachable.
 *  - Static data of the program and of every loaded library are roots (found anew
 *    before each collection, as bdwgc does on Linux); libc malloc() memory is not
 *    scanned unless passed to GC_add_roots, as in bdwgc.
 *  - GC_get_heap_size counts pages that hold objects (bdwgc also counts free blocks);
 *    GC_get_free_bytes / GC_get_bytes_since_gc are estimates (other threads'
 *    allocation is counted as their caches are flushed).  GC_expand_hp is a no-op
 *    returning 1: the address space is reserved at start-up.
 *  - GC_enable_incremental uses the dirty-page tracker named by DUNEGC_DIRTY (auto:
 *    uffd, soft-dirty, then mprotect).  If none can be opened (or DUNEGC_DIRTY=none,
 *    or GC_DISABLE_INCREMENTAL is set) the collector stays stop-the-world, and says
 *    why through the warning procedure (bdwgc is silent); GC_is_incremental_mode()
 *    tells.  With the mprotect tracker, system calls writing into collected objects
 *    may fail with EFAULT during a cycle (as with bdwgc's mprotect mode).
 *  - Finalizers run on the thread that next allocates or calls GC_gcollect after the
 *    collection that found them, never nested (bdwgc's GC_finalize_on_demand == 0),
 *    or only in GC_invoke_finalizers after GC_set_finalize_on_demand(1).
 *  - On allocation failure the out-of-memory function (GC_set_oom_fn; default returns
 *    NULL) is called and its result returned, after a warning unless the size is
 *    overflow-sized (> SIZE_MAX/2).  The largest object is just under 4 GiB (and at
 *    most the per-space reservation, 16G, and the hard heap limit); bdwgc
 *    allocates larger objects if memory allows.  GC_set_max_heap_size and
 *    GC_MAXIMUM_HEAP_SIZE (or DUNEGC_MAX_HEAP_SIZE) set a hard limit on the heap size:
 *    growth past it, even after a collection, is an out-of-memory failure.
 *  - Environment: GC_INITIAL_HEAP_SIZE, GC_MAXIMUM_HEAP_SIZE (hard heap limit),
 *    GC_FREE_SPACE_DIVISOR, GC_PRINT_STATS (statistics block
 *    at exit, not a line per collection), GC_ENABLE_INCREMENTAL, GC_DISABLE_INCREMENTAL,
 *    GC_DONT_GC; dunegc's own DUNEGC_* variables win where both are set
 *    (DUNEGC_DIRTY=auto|none|mprotect|soft-dirty|uffd|dune picks the tracker and
 *    implies incremental mode unless none).  Also GC_FIND_LEAK, GC_ABORT_ON_LEAK,
 *    GC_PRINT_VERBOSE_STATS, GC_MARKERS / GC_NPROCS (the number of marker threads),
 *    GC_LOOP_ON_ABORT.  Other bdwgc variables are ignored.
 *  - The debug allocator (define GC_DEBUG before including gc.h) and leak detection
 *    (GC_set_find_leak, GC_find_leak, GC_FIND_LEAK) follow bdwgc 8.2: same header
 *    layout and reports (see the end of this file).  GC_debug_free of a pointer into an
 *    object without debug information, and GC_free of a debug object's body through
 *    the non-debug call, are reported (the latter through the warning procedure) and
 *    never corrupt the heap.
 *  - Typed allocation and custom kinds: <gc/gc_typed.h>, <gc/gc_mark.h> (see there);
 *    disclaim procedures and GC_finalized_malloc: <gc/gc_disclaim.h>; gcj objects:
 *    <gc/gc_gcj.h>; GC_finalize_all: <gc/javaxfc.h>; <gc/gc_inline.h> and
 *    <gc/gc_tiny_fl.h> are bdwgc's own.  Toggle-ref callbacks run at the start of each
 *    collection (of an incremental cycle: its start, not its end as in bdwgc).
 *  - Control variables exported as data, read where bdwgc reads them: GC_dont_gc,
 *    GC_gc_no, GC_free_space_divisor, GC_full_freq (every dunegc collection is full),
 *    GC_no_dls, GC_all_interior_pointers (read at GC_init), GC_parallel, GC_oom_fn,
 *    GC_find_leak, GC_java_finalization, GC_finalize_on_demand, GC_finalizer_notifier,
 *    GC_non_gc_bytes (every uncollectable allocation adds its GC_size; bdwgc 8.2 adds
 *    it only when the object comes from a free list, but always subtracts in GC_free).
 *    GC_dont_precollect (GC_init collects once unless it is set, as bdwgc).
 *    GC_time_limit and GC_set_rate bound the incremental mark steps of the allocating
 *    thread (time and least scanning); the pause that finishes a cycle, when an
 *    allocation started it, is abandoned at GC_time_limit up to
 *    GC_set_max_prior_attempts times per cycle (default 1), as in bdwgc.
 *    GC_max_retries: collections retried when the heap limit is reached.
 *    GC_set_suspend_signal and GC_set_thr_restart_signal (before GC_init) move the
 *    collector's signals; GC_set_pages_executable maps the heap executable.
 *    GC_dont_expand, GC_use_entire_heap and GC_set_allocd_bytes_per_finalizer steer
 *    heap growth as in bdwgc's GC_collect_or_expand (not in incremental mode); dunegc's
 *    GC_get_heap_size counts pages in use, so with GC_dont_expand it stays within the
 *    pages the heap has rather than at one fixed size.
 *  - GC_try_to_collect asks its stop function once, before the collection starts (a
 *    stop-the-world collection is not abandoned half way).
 *  - GC_suspend_thread uses the restart signal (SIGXCPU, bdwgc's on Linux).
 */
#ifndef GC_H
#define GC_H

#include <stddef.h>


#define GC_DUNEGC 1

#define GC_VERSION_MAJOR 8
#define GC_VERSION_MINOR 2
#define GC_VERSION_MICRO 0

#ifndef GC_API
# define GC_API extern
#endif
#ifndef GC_CALL
# define GC_CALL
#endif
#ifndef GC_CALLBACK
# define GC_CALLBACK GC_CALL
#endif
#if defined(__GNUC__)
# define GC_ATTR_MALLOC __attribute__((__malloc__))
# define GC_ATTR_ALLOC_SIZE(n) __attribute__((__alloc_size__(n)))
#else
# define GC_ATTR_MALLOC
# define GC_ATTR_ALLOC_SIZE(n)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned long GC_word;
typedef long GC_signed_word;

/* Return codes of the thread functions. */
#define GC_SUCCESS 0
#define GC_DUPLICATE 1
#define GC_NO_THREADS 2
#define GC_UNIMPLEMENTED 3
#define GC_NOT_FOUND 4

/* ---- Initialisation and versions ---------------------------------------------- */

/* Initialise; optional (every GC_ function initialises on first use); repeatable.  */
/* Call it from the main thread before other threads start: it translates bdwgc's  */
/* environment variables with setenv().                                            */
GC_API void GC_CALL GC_init(void);
#define GC_INIT() GC_init()
GC_API int GC_CALL GC_is_init_called(void);
/* (GC_VERSION_MAJOR << 16) | (GC_VERSION_MINOR << 8) | GC_VERSION_MICRO of the     */
/* bdwgc API followed.                                                              */
GC_API unsigned GC_CALL GC_get_version(void);
/* dunegc only: "dunegc <version>", and the dirty tracker in use ("none",           */
/* "mprotect", "soft-dirty", "uffd", "dune"; "pending" before its first use).       */
GC_API const char *GC_CALL GC_dunegc_version(void);
GC_API const char *GC_CALL GC_dunegc_dirty_backend(void);

/* ---- Allocation ---------------------------------------------------------------- */

/* Zeroed, traced, collected once unreachable.                                      */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_malloc(size_t);
/* Never scanned for pointers (zeroed here, unlike bdwgc).                          */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_malloc_atomic(size_t);
/* Traced, never collected: a root until GC_free.                                   */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL
    GC_malloc_uncollectable(size_t);
/* Same as GC_malloc / GC_malloc_atomic (interior pointers are always recognised).  */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL
    GC_malloc_ignore_off_page(size_t);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL
    GC_malloc_atomic_ignore_off_page(size_t);
GC_API GC_ATTR_MALLOC char *GC_CALL GC_strdup(const char *);
GC_API GC_ATTR_MALLOC char *GC_CALL GC_strndup(const char *, size_t);
/* Explicit deallocation; NULL is a no-op; see above for foreign pointers.          */
GC_API void GC_CALL GC_free(void *);
/* realloc(NULL, n) = GC_malloc(n); realloc(p, 0) frees p and returns NULL; the     */
/* object keeps its kind.                                                           */
GC_API GC_ATTR_ALLOC_SIZE(2) void *GC_CALL GC_realloc(void * /* old */,
                                                       size_t /* new size */);
/* Start of the object containing the pointer, or NULL.                             */
GC_API void *GC_CALL GC_base(void * /* displaced pointer */);
/* Usable bytes of the object (0 if not an object of the collector).                */
GC_API size_t GC_CALL GC_size(const void * /* object */);

typedef void *(GC_CALLBACK *GC_oom_func)(size_t /* bytes requested */);
/* Called when an allocation fails; its result is returned.  Default: NULL.         */
GC_API void GC_CALL GC_set_oom_fn(GC_oom_func);
GC_API GC_oom_func GC_CALL GC_get_oom_fn(void);

#define GC_MALLOC(sz) GC_malloc(sz)
#define GC_MALLOC_ATOMIC(sz) GC_malloc_atomic(sz)
#define GC_MALLOC_UNCOLLECTABLE(sz) GC_malloc_uncollectable(sz)
#define GC_MALLOC_IGNORE_OFF_PAGE(sz) GC_malloc_ignore_off_page(sz)
#define GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE(sz) GC_malloc_atomic_ignore_off_page(sz)
#define GC_REALLOC(old, sz) GC_realloc(old, sz)
#define GC_FREE(p) GC_free(p)
#define GC_STRDUP(s) GC_strdup(s)
#define GC_STRNDUP(s, sz) GC_strndup(s, sz)
#define GC_NEW(t) ((t *)GC_MALLOC(sizeof(t)))
#define GC_NEW_ATOMIC(t) ((t *)GC_MALLOC_ATOMIC(sizeof(t)))
#define GC_NEW_UNCOLLECTABLE(t) ((t *)GC_MALLOC_UNCOLLECTABLE(sizeof(t)))

/* ---- Collection ---------------------------------------------------------------- */

/* Full collection (or finish of the incremental cycle), then due finalizers.  Does */
/* nothing while collection is disabled; waits while a GC_pthread_create thread is  */
/* starting.                                                                        */
GC_API void GC_CALL GC_gcollect(void);
GC_API void GC_CALL GC_gcollect_and_unmap(void);
/* A mark step (or a collection if due); nonzero if a cycle is still in progress.   */
GC_API int GC_CALL GC_collect_a_little(void);
/* Nesting: collections stop until as many GC_enable() as GC_disable().             */
GC_API void GC_CALL GC_disable(void);
GC_API void GC_CALL GC_enable(void);
/* Nonzero while a GC_disable (or GC_DONT_GC) is not matched by GC_enable.          */
GC_API int GC_CALL GC_is_disabled(void);
/* Incremental marking with the DUNEGC_DIRTY tracker; see above.                    */
GC_API void GC_CALL GC_enable_incremental(void);
GC_API int GC_CALL GC_is_incremental_mode(void);
/* No-op returning 1.                                                               */
GC_API int GC_CALL GC_expand_hp(size_t /* number of bytes */);

/* ---- Statistics ---------------------------------------------------------------- */

GC_API size_t GC_CALL GC_get_heap_size(void);
/* Hard limit on the heap size in bytes (0: none); see the notes at the top.           */
GC_API void GC_CALL GC_set_max_heap_size(GC_word /* n */);
GC_API size_t GC_CALL GC_get_free_bytes(void);
GC_API size_t GC_CALL GC_get_bytes_since_gc(void);
GC_API size_t GC_CALL GC_get_total_bytes(void);
/* Collections so far (full and incremental).                                       */
GC_API GC_word GC_CALL GC_get_gc_no(void);

/* ---- Roots --------------------------------------------------------------------- */

/* Scan [low, high) at every collection (the range must stay readable).             */
GC_API void GC_CALL GC_add_roots(void * /* low */, void * /* high plus 1 */);
/* Stop scanning every added range inside [low, high).                              */
GC_API void GC_CALL GC_remove_roots(void * /* low */, void * /* high plus 1 */);

/* ---- Finalization -------------------------------------------------------------- */

typedef void (GC_CALLBACK *GC_finalization_proc)(void * /* obj */,
                                                 void * /* client data */);
/* Run fn(obj, cd) once obj is unreachable; fn == 0 removes the registration.  The  */
/* previous fn and cd are stored in *ofn and *ocd (either may be NULL).  obj must   */
/* be the start of an object; otherwise fn is ignored and *ofn, *ocd set to NULL.   */
/* Ordered: if a and b are unreachable and a points to b, a is finalized first.     */
GC_API void GC_CALL GC_register_finalizer(void * /* obj */, GC_finalization_proc,
                                          void * /* cd */,
                                          GC_finalization_proc * /* ofn */,
                                          void ** /* ocd */);
GC_API void GC_CALL GC_register_finalizer_ignore_self(void *, GC_finalization_proc,
                                                      void *, GC_finalization_proc *,
                                                      void **);
/* Unordered: finalized by the first collection that finds obj unreachable.         */
GC_API void GC_CALL GC_register_finalizer_no_order(void *, GC_finalization_proc,
                                                   void *, GC_finalization_proc *,
                                                   void **);
#define GC_REGISTER_FINALIZER(p, f, d, of, od) \
  GC_register_finalizer(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_IGNORE_SELF(p, f, d, of, od) \
  GC_register_finalizer_ignore_self(p, f, d, of, od)
#define GC_REGISTER_FINALIZER_NO_ORDER(p, f, d, of, od) \
  GC_register_finalizer_no_order(p, f, d, of, od)

/* Nonzero if finalizers are waiting to run.                                        */
GC_API int GC_CALL GC_should_invoke_finalizers(void);
/* Run the waiting finalizers on this thread; returns how many ran.                 */
GC_API int GC_CALL GC_invoke_finalizers(void);
GC_API void GC_CALL GC_set_finalize_on_demand(int);
GC_API int GC_CALL GC_get_finalize_on_demand(void);
/* Java-style finalization (default 1, as in Debian's bdwgc): what a queued no-order */
/* finalizable object references stays alive until its finalizer has run; with 0     */
/* only the object itself is kept.  Ordered finalization is the same either way.      */
GC_API void GC_CALL GC_set_java_finalization(int);
GC_API int GC_CALL GC_get_java_finalization(void);
/* With GC_finalize_on_demand set: called (from the next allocation or GC_gcollect,  */
/* without the lock) once per collection that queued finalizers.  May be NULL.       */
typedef void (GC_CALLBACK *GC_finalizer_notifier_proc)(void);
typedef void (GC_CALLBACK *GC_await_finalize_proc)(void * /* obj */);
GC_API void GC_CALL GC_set_await_finalize_proc(GC_await_finalize_proc);
GC_API GC_await_finalize_proc GC_CALL GC_get_await_finalize_proc(void);
GC_API void GC_CALL GC_set_finalizer_notifier(GC_finalizer_notifier_proc);
GC_API GC_finalizer_notifier_proc GC_CALL GC_get_finalizer_notifier(void);
/* The deprecated variables behind the setters and getters above; read by the       */
/* collector each time it needs them, so writing them directly works as in bdwgc.    */
GC_API int GC_finalize_on_demand;
GC_API int GC_java_finalization;
GC_API GC_finalizer_notifier_proc GC_finalizer_notifier;
/* Ordered like GC_register_finalizer; with Java-style finalization on, obj is not   */
/* finalized while an object queued for no-order finalization still reaches it.      */
GC_API void GC_CALL GC_register_finalizer_unreachable(void * /* obj */,
                        GC_finalization_proc /* fn */, void * /* cd */,
                        GC_finalization_proc * /* ofn */, void ** /* ocd */);
#define GC_REGISTER_FINALIZER_UNREACHABLE(p, f, d, of, od) \
  GC_register_finalizer_unreachable(p, f, d, of, od)
/* Print every registered disappearing link and finalizable object (stdout).        */
GC_API void GC_CALL GC_dump_finalization(void);

/* Never collected and never scanned: lives until GC_free, keeps nothing alive.     */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL
    GC_malloc_atomic_uncollectable(size_t);
#define GC_MALLOC_ATOMIC_UNCOLLECTABLE(sz) GC_malloc_atomic_uncollectable(sz)
/* A list of about a page of zeroed objects of at least lb bytes (normal kind),      */
/* linked through their first words (GC_NEXT; the last is NULL).                     */
GC_API GC_ATTR_MALLOC void *GC_CALL GC_malloc_many(size_t /* lb */);
#define GC_NEXT(p) (*(void **)(p))

/* Toggle-refs: external references that the callback makes strong or weak (or      */
/* drops) before each collection, called with the allocation lock held and the world */
/* running.  Weak ones end when the object is reclaimed.  Nothing is registered while */
/* no callback is set (GC_toggleref_add then returns GC_SUCCESS).                    */
typedef enum {
  GC_TOGGLE_REF_DROP,
  GC_TOGGLE_REF_STRONG,
  GC_TOGGLE_REF_WEAK
} GC_ToggleRefStatus;
typedef GC_ToggleRefStatus (GC_CALLBACK *GC_toggleref_func)(void * /* obj */);
GC_API void GC_CALL GC_set_toggleref_func(GC_toggleref_func);
GC_API GC_toggleref_func GC_CALL GC_get_toggleref_func(void);
/* GC_SUCCESS, or GC_NO_MEMORY.                                                      */
GC_API int GC_CALL GC_toggleref_add(void * /* obj */, int /* is_strong */);

/* ---- Warnings ------------------------------------------------------------------ */

/* msg is a printf format with at most one conversion, which takes arg.  The        */
/* default procedure prints "GC Warning: " and the message to stderr.               */
typedef void (GC_CALLBACK *GC_warn_proc)(char * /* msg */, GC_word /* arg */);
GC_API void GC_CALL GC_set_warn_proc(GC_warn_proc);
GC_API GC_warn_proc GC_CALL GC_get_warn_proc(void);
GC_API void GC_CALLBACK GC_ignore_warn_proc(char *, GC_word);

/* ---- Threads ------------------------------------------------------------------- */

struct GC_stack_base {
  void *mem_base; /* the cold (highest) end of the stack */
};
typedef void *(GC_CALLBACK *GC_stack_base_func)(struct GC_stack_base * /* sb */,
                                                void * /* arg */);
GC_API int GC_CALL GC_get_stack_base(struct GC_stack_base *);
GC_API void *GC_CALL GC_call_with_stack_base(GC_stack_base_func, void * /* arg */);
/* No-ops returning bdwgc's codes: every thread is always scanned (see above).      */
GC_API void GC_CALL GC_allow_register_threads(void);
GC_API int GC_CALL GC_register_my_thread(const struct GC_stack_base *);
GC_API int GC_CALL GC_unregister_my_thread(void);
GC_API int GC_CALL GC_thread_is_registered(void);

/* ---- Disappearing links (weak pointers) ---------------------------------------- */

#define GC_NO_MEMORY 2 /* Failure due to lack of memory. */
/* *link = NULL once obj is found unreachable, before finalizers are looked for.     */
/* GC_SUCCESS, GC_DUPLICATE (link re-registered for obj) or GC_NO_MEMORY; a NULL or   */
/* misaligned link, or obj not the start of a heap object, aborts.                   */
GC_API int GC_CALL GC_general_register_disappearing_link(void ** /* link */,
                                                         const void * /* obj */);
/* GC_general_register_disappearing_link(link, GC_base(link)).                       */
GC_API int GC_CALL GC_register_disappearing_link(void ** /* link */);
/* 1 if link was registered (and is no more), else 0.                                */
GC_API int GC_CALL GC_unregister_disappearing_link(void ** /* link */);
/* GC_SUCCESS, GC_DUPLICATE (another link at new_link) or GC_NOT_FOUND.               */
GC_API int GC_CALL GC_move_disappearing_link(void ** /* link */, void ** /* new_link */);
#define GC_GENERAL_REGISTER_DISAPPEARING_LINK(link, obj) \
  GC_general_register_disappearing_link(link, obj)
/* Long links: *link is cleared only once obj can no longer be resurrected by a      */
/* finalizer.  A separate table from the short links above; same return codes.       */
GC_API int GC_CALL GC_register_long_link(void ** /* link */, const void * /* obj */);
GC_API int GC_CALL GC_unregister_long_link(void ** /* link */);
GC_API int GC_CALL GC_move_long_link(void ** /* link */, void ** /* new_link */);
#define GC_REGISTER_LONG_LINK(link, obj) GC_register_long_link(link, obj)

/* ---- Locking, blocking regions, callbacks ---------------------------------------- */

typedef void *(GC_CALLBACK *GC_fn_type)(void * /* client_data */);
/* fn(client_data) with the allocation lock held: no collection, incremental step,   */
/* GC_free or allocation slow path runs meanwhile.  fn must not allocate.            */
GC_API void *GC_CALL GC_call_with_alloc_lock(GC_fn_type /* fn */,
                                             void * /* client_data */);
/* Plain calls in dunegc: every thread is always stopped and scanned whole, so       */
/* there is no "inactive" state to switch to (more conservative than bdwgc).         */
GC_API void *GC_CALL GC_do_blocking(GC_fn_type /* fn */, void * /* client_data */);
GC_API void *GC_CALL GC_call_with_gc_active(GC_fn_type /* fn */,
                                            void * /* client_data */);
/* (bdwgc: gc_mark.h.)  Called at the start of every collection (all are full),     */
/* with the allocation lock held; must not allocate or call into the collector.      */
typedef void (GC_CALLBACK *GC_start_callback_proc)(void);
GC_API void GC_CALL GC_set_start_callback(GC_start_callback_proc);
GC_API GC_start_callback_proc GC_CALL GC_get_start_callback(void);
/* No parallel markers in dunegc: does nothing (as in a bdwgc without PARALLEL_MARK). */
GC_API void GC_CALL GC_start_mark_threads(void);

/* ---- Heap queries ---------------------------------------------------------------- */

/* The five usage numbers under one lock; any pointer may be NULL.  Unmapped is 0.   */
GC_API void GC_CALL GC_get_heap_usage_safe(GC_word * /* pheap_size */,
                                           GC_word * /* pfree_bytes */,
                                           GC_word * /* punmapped_bytes */,
                                           GC_word * /* pbytes_since_gc */,
                                           GC_word * /* ptotal_bytes */);
/* Nonzero iff p points into a heap page holding objects (free slots included).      */
GC_API int GC_CALL GC_is_heap_ptr(const void *);
/* (bdwgc: gc_mark.h.)  Bounds of the whole reservation, set by GC_init.             */
GC_API void *GC_least_plausible_heap_addr;
GC_API void *GC_greatest_plausible_heap_addr;
/* A no-op, as in bdwgc with interior pointers recognised: dunegc always treats a    */
/* pointer to any byte of an object as a reference to it.                            */
GC_API void GC_CALL GC_register_displacement(size_t /* n */);
#define GC_REGISTER_DISPLACEMENT(n) GC_register_displacement(n)
/* Recognise any interior pointer (1, the default) or only object starts and        */
/* registered displacements (0) in heap objects and static data; pointers on        */
/* thread stacks and in registers count anywhere inside an object either way.      */
GC_API void GC_CALL GC_set_all_interior_pointers(int);
GC_API int GC_CALL GC_get_all_interior_pointers(void);

/* ---- Miscellaneous ------------------------------------------------------------- */

GC_API void GC_CALL GC_noop1(GC_word);
#define GC_reachable_here(ptr) GC_noop1((GC_word)(ptr))
#define GC_HIDE_POINTER(p) (~(GC_word)(p))
#define GC_REVEAL_POINTER(p) ((void *)GC_HIDE_POINTER(p))

#ifdef __cplusplus
} /* extern "C" */
#endif

/* ---- Configuration macros gc_cpp.h / gc_allocator.h use (bdwgc's) --------------- */

#if defined(__GNUC__) && defined(__GNUC_MINOR__)
# define GC_GNUC_PREREQ(major, minor) \
    ((__GNUC__ << 16) + __GNUC_MINOR__ >= ((major) << 16) + (minor))
#else
# define GC_GNUC_PREREQ(major, minor) 0
#endif
#ifdef __cplusplus
# ifndef GC_ATTR_EXPLICIT
#  if __cplusplus >= 201103L && !defined(__clang__)
#   define GC_ATTR_EXPLICIT explicit
#  else
#   define GC_ATTR_EXPLICIT
#  endif
# endif
# ifndef GC_NOEXCEPT
#  if __cplusplus >= 201103L
#   define GC_NOEXCEPT noexcept
#  else
#   define GC_NOEXCEPT throw()
#  endif
# endif
#endif
#ifdef __cplusplus
extern "C" {
#endif
/* Print "Insufficient memory for the allocation" and exit(1) (bdwgc's).             */
GC_API void GC_CALL GC_abort_on_oom(void) __attribute__((__noreturn__));
#ifdef __cplusplus
} /* extern "C" */
#endif

/* ---- Profiling statistics (bdwgc 8.2's struct, field for field) -------------------- */
/* Fields dunegc does not count hold (GC_word)-1, bdwgc's "unknown": non_gc_bytes,     */
/* bytes_reclaimed_since_gc, reclaimed_bytes_before_gc, expl_freed_bytes_since_gc,     */
/* obtained_from_os_bytes.  unmapped_bytes and markers_m1 are 0.                        */
struct GC_prof_stats_s {
  GC_word heapsize_full;
  GC_word free_bytes_full;
  GC_word unmapped_bytes;
  GC_word bytes_allocd_since_gc;
  GC_word allocd_bytes_before_gc;
  GC_word non_gc_bytes;
  GC_word gc_no;
  GC_word markers_m1;
  GC_word bytes_reclaimed_since_gc;
  GC_word reclaimed_bytes_before_gc;
  GC_word expl_freed_bytes_since_gc;
  GC_word obtained_from_os_bytes;
};
#ifdef __cplusplus
extern "C" {
#endif
/* Fill at most stats_sz bytes (0xff past the struct); returns the bytes filled.      */
GC_API size_t GC_CALL GC_get_prof_stats(struct GC_prof_stats_s *, size_t /* stats_sz */);
GC_API size_t GC_CALL GC_get_prof_stats_unsafe(struct GC_prof_stats_s *, size_t);
/* GC_get_heap_size() - GC_get_free_bytes().                                          */
GC_API size_t GC_CALL GC_get_memory_use(void);
/* 0: one marking thread.  GC_set_markers_count before GC_INIT sets DUNEGC_MARKERS.  */
GC_API int GC_CALL GC_get_parallel(void);
GC_API void GC_CALL GC_set_markers_count(unsigned);
#ifdef __cplusplus
} /* extern "C" */
#endif

/* ---- Debug allocator, leak detection, pointer checks (bdwgc 8.2) ---------------- */

#ifdef __cplusplus
extern "C" {
#endif
/* x86_64 glibc can save call stacks, so bdwgc passes no return address. */
#define GC_EXTRAS __FILE__, __LINE__
#define GC_EXTRA_PARAMS const char *s, int i
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_debug_malloc(size_t, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_debug_malloc_atomic(size_t, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC char *GC_CALL GC_debug_strdup(const char *, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC char *GC_CALL GC_debug_strndup(const char *, size_t, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_debug_malloc_uncollectable(size_t, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL
    GC_debug_malloc_atomic_uncollectable(size_t, GC_EXTRA_PARAMS);
GC_API void *GC_CALL GC_debug_malloc_stubborn(size_t, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_debug_malloc_ignore_off_page(size_t, GC_EXTRA_PARAMS);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_debug_malloc_atomic_ignore_off_page(size_t, GC_EXTRA_PARAMS);
/* GC_debug_free of a collectable object overwrites the body and leaves the object  */
/* to the collector (as bdwgc); a second free is reported, not repeated.  A pointer  */
/* outside the heap aborts: "Invalid pointer passed to free()".                      */
GC_API void GC_CALL GC_debug_free(void *);
GC_API void *GC_CALL GC_debug_realloc(void *, size_t, GC_EXTRA_PARAMS) GC_ATTR_ALLOC_SIZE(2);
GC_API void GC_CALL GC_debug_change_stubborn(const void *);
GC_API void GC_CALL GC_debug_end_stubborn_change(const void *);
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(1) void *GC_CALL GC_debug_malloc_replacement(size_t);
GC_API GC_ATTR_ALLOC_SIZE(2) void *GC_CALL GC_debug_realloc_replacement(void *, size_t);
GC_API void GC_CALL GC_debug_register_finalizer(void *, GC_finalization_proc, void *,
                                                GC_finalization_proc *, void **);
GC_API void GC_CALL GC_debug_register_finalizer_ignore_self(void *, GC_finalization_proc,
                                                            void *, GC_finalization_proc *,
                                                            void **);
GC_API void GC_CALL GC_debug_register_finalizer_no_order(void *, GC_finalization_proc,
                                                         void *, GC_finalization_proc *,
                                                         void **);
GC_API void GC_CALL GC_debug_register_finalizer_unreachable(void *, GC_finalization_proc,
                                                   void *, GC_finalization_proc *,
                                                   void **);
GC_API void GC_CALL GC_debug_register_displacement(size_t);
GC_API void GC_CALL GC_debug_ptr_store_and_dirty(void *, const void *);
GC_API size_t GC_CALL GC_get_debug_header_size(void);
GC_API const size_t GC_debug_header_size;

/* Stubborn objects are ordinary objects; the change calls are no-ops (writes are   */
/* seen by the dirty tracker).                                                       */
GC_API void *GC_CALL GC_malloc_stubborn(size_t);
GC_API void GC_CALL GC_change_stubborn(const void *);
GC_API void GC_CALL GC_end_stubborn_change(const void *);
GC_API void GC_CALL GC_ptr_store_and_dirty(void *, const void *);

/* Aligned allocation; posix_memalign returns EINVAL / ENOMEM as POSIX's does.       */
GC_API GC_ATTR_MALLOC GC_ATTR_ALLOC_SIZE(2) void *GC_CALL GC_memalign(size_t /* align */, size_t);
GC_API int GC_CALL GC_posix_memalign(void ** /* memptr */, size_t /* align */, size_t);

/* Leak detection: unreachable objects are reported ("Found N leaked objects:") at  */
/* the collection that finds them (at most 40 a collection), then freed.             */
GC_API int GC_find_leak;
GC_API void GC_CALL GC_set_find_leak(int);
GC_API int GC_CALL GC_get_find_leak(void);

/* Pointer checks; each returns its (first) argument and calls the print procedure  */
/* on failure (the defaults abort).                                                  */
GC_API void *GC_CALL GC_same_obj(void *, void *);
GC_API void *GC_CALL GC_pre_incr(void **, ptrdiff_t);
GC_API void *GC_CALL GC_post_incr(void **, ptrdiff_t);
GC_API void *GC_CALL GC_is_visible(void *);
GC_API void *GC_CALL GC_is_valid_displacement(void *);
/* Print the collector's state to stdout: static roots, heap sections (the page      */
/* spaces' used prefixes), free page runs and spans in use.  GC_dump takes the lock;  */
/* GC_dump_named names the dump (NULL: the collection number).  GC_dump_regions lists */
/* each span and free run of every section.                                           */
GC_API void GC_CALL GC_dump(void);
GC_API void GC_CALL GC_dump_named(const char * /* name */);
GC_API void GC_CALL GC_dump_regions(void);
GC_API void (GC_CALLBACK *GC_same_obj_print_proc)(void *, void *);
GC_API void (GC_CALLBACK *GC_is_valid_displacement_print_proc)(void *);
GC_API void (GC_CALLBACK *GC_is_visible_print_proc)(void *);
#ifdef __cplusplus
} /* extern "C" */
#endif

#ifdef GC_DEBUG
# undef GC_MALLOC
# undef GC_MALLOC_ATOMIC
# undef GC_MALLOC_UNCOLLECTABLE
# undef GC_MALLOC_IGNORE_OFF_PAGE
# undef GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE
# undef GC_REALLOC
# undef GC_FREE
# undef GC_STRDUP
# undef GC_STRNDUP
# undef GC_REGISTER_FINALIZER
# undef GC_REGISTER_FINALIZER_IGNORE_SELF
# undef GC_REGISTER_FINALIZER_NO_ORDER
# undef GC_REGISTER_FINALIZER_UNREACHABLE
# undef GC_MALLOC_ATOMIC_UNCOLLECTABLE
# undef GC_GENERAL_REGISTER_DISAPPEARING_LINK
# undef GC_REGISTER_LONG_LINK
# undef GC_REGISTER_DISPLACEMENT
# define GC_MALLOC(sz) GC_debug_malloc(sz, GC_EXTRAS)
# define GC_MALLOC_ATOMIC(sz) GC_debug_malloc_atomic(sz, GC_EXTRAS)
# define GC_MALLOC_UNCOLLECTABLE(sz) GC_debug_malloc_uncollectable(sz, GC_EXTRAS)
# define GC_MALLOC_ATOMIC_UNCOLLECTABLE(sz) \
    GC_debug_malloc_atomic_uncollectable(sz, GC_EXTRAS)
# define GC_REGISTER_FINALIZER_UNREACHABLE(p, f, d, of, od) \
    GC_debug_register_finalizer_unreachable(p, f, d, of, od)
# define GC_MALLOC_IGNORE_OFF_PAGE(sz) GC_debug_malloc_ignore_off_page(sz, GC_EXTRAS)
# define GC_MALLOC_ATOMIC_IGNORE_OFF_PAGE(sz) \
    GC_debug_malloc_atomic_ignore_off_page(sz, GC_EXTRAS)
# define GC_REALLOC(old, sz) GC_debug_realloc(old, sz, GC_EXTRAS)
# define GC_FREE(p) GC_debug_free(p)
# define GC_STRDUP(s) GC_debug_strdup(s, GC_EXTRAS)
# define GC_STRNDUP(s, sz) GC_debug_strndup(s, sz, GC_EXTRAS)
# define GC_REGISTER_FINALIZER(p, f, d, of, od) GC_debug_register_finalizer(p, f, d, of, od)
# define GC_REGISTER_FINALIZER_IGNORE_SELF(p, f, d, of, od) \
    GC_debug_register_finalizer_ignore_self(p, f, d, of, od)
# define GC_REGISTER_FINALIZER_NO_ORDER(p, f, d, of, od) \
    GC_debug_register_finalizer_no_order(p, f, d, of, od)
# define GC_GENERAL_REGISTER_DISAPPEARING_LINK(link, obj) \
    GC_general_register_disappearing_link(link, GC_base((void *)(obj)))
# define GC_REGISTER_LONG_LINK(link, obj) GC_register_long_link(link, GC_base((void *)(obj)))
# define GC_REGISTER_DISPLACEMENT(n) GC_debug_register_displacement(n)
# define GC_END_STUBBORN_CHANGE(p) GC_debug_end_stubborn_change(p)
# define GC_PTR_STORE_AND_DIRTY(p, q) GC_debug_ptr_store_and_dirty(p, q)
# ifdef __GNUC__
#  define GC_PTR_ADD(x, n) ((__typeof__(x))GC_same_obj((x) + (n), (x)))
#  define GC_PRE_INCR(x, n) ((__typeof__(x))GC_pre_incr((void **)(&(x)), (n) * sizeof(*x)))
#  define GC_POST_INCR(x) ((__typeof__(x))GC_post_incr((void **)(&(x)), sizeof(*x)))
#  define GC_POST_DECR(x) ((__typeof__(x))GC_post_incr((void **)(&(x)), -(ptrdiff_t)sizeof(*x)))
# endif
# define GC_PTR_STORE(p, q) (*(void **)GC_is_visible((void *)(p)) = GC_is_valid_displacement((void *)(q)))
#else
# define GC_END_STUBBORN_CHANGE(p) GC_end_stubborn_change(p)
# define GC_PTR_STORE_AND_DIRTY(p, q) GC_ptr_store_and_dirty(p, q)
#endif
#ifndef GC_PTR_ADD
# define GC_PTR_ADD(x, n) ((x) + (n))
# define GC_PRE_INCR(x, n) ((x) += (n))
# define GC_POST_INCR(x) ((x)++)
# define GC_POST_DECR(x) ((x)--)
#endif
#ifndef GC_PTR_STORE
# define GC_PTR_STORE(p, q) (*(void **)(p) = (void *)(q))
#endif

/* ---- pthread wrappers ---------------------------------------------------------- */

#if defined(GC_THREADS) || defined(GC_PTHREADS) || defined(GC_LINUX_THREADS)
# include <pthread.h>
# include <signal.h>
# ifndef GC_NO_DLOPEN
#  include <dlfcn.h>
# endif
# ifdef __cplusplus
extern "C" {
# endif
GC_API int GC_pthread_create(pthread_t *, const pthread_attr_t *,
                             void *(*)(void *), void * /* arg */);
GC_API int GC_pthread_join(pthread_t, void ** /* retval */);
GC_API int GC_pthread_detach(pthread_t);
GC_API int GC_pthread_cancel(pthread_t);
GC_API void GC_pthread_exit(void *) __attribute__((__noreturn__));
/* pthread_sigmask that never blocks the collector's suspend signal.                */
GC_API int GC_pthread_sigmask(int /* how */, const sigset_t *, sigset_t * /* old */);
/* The suspend signal (SIGPWR unless GC_set_suspend_signal, before GC_INIT, chose  */
/* another; later calls have no effect); the restart signal is SIGXCPU unless      */
/* GC_set_thr_restart_signal chose another before GC_INIT: stopped threads resume   */
/* on a futex, and that signal serves GC_suspend_thread.                            */
GC_API void GC_CALL GC_set_suspend_signal(int);
GC_API int GC_CALL GC_get_suspend_signal(void);
GC_API void GC_CALL GC_set_thr_restart_signal(int);
GC_API int GC_CALL GC_get_thr_restart_signal(void);
GC_API void *GC_dlopen(const char * /* path */, int /* mode */);
# ifdef __cplusplus
} /* extern "C" */
# endif
# ifndef GC_HAVE_PTHREAD_EXIT
#  define GC_HAVE_PTHREAD_EXIT
# endif
# if !defined(GC_NO_THREAD_REDIRECTS)
#  undef pthread_create
#  undef pthread_join
#  undef pthread_detach
#  undef pthread_cancel
#  undef pthread_sigmask
#  define pthread_create GC_pthread_create
#  define pthread_join GC_pthread_join
#  define pthread_detach GC_pthread_detach
#  define pthread_cancel GC_pthread_cancel
#  define pthread_sigmask GC_pthread_sigmask
#  undef pthread_exit
#  define pthread_exit GC_pthread_exit /* as bdwgc on Linux (GC_HAVE_PTHREAD_EXIT) */
#  ifndef GC_NO_DLOPEN
#   undef dlopen
#   define dlopen GC_dlopen
#  endif
# endif
#endif /* GC_THREADS */

/* ---- Control variables, collection control, roots, world and printing ---- */
#ifdef __cplusplus
extern "C" {
#endif
GC_API int GC_dont_gc;          /* != 0: no collection (GC_disable/GC_enable count) */
GC_API GC_word GC_gc_no;        /* collections so far (read-only) */
GC_API GC_word GC_free_space_divisor;
GC_API int GC_full_freq;
GC_API int GC_no_dls;
GC_API int GC_all_interior_pointers;
GC_API int GC_parallel;
GC_API GC_oom_func GC_oom_fn;
GC_API GC_word GC_non_gc_bytes; /* bytes of uncollectable objects (scheduling only) */

GC_API void GC_CALL GC_set_free_space_divisor(GC_word);
GC_API GC_word GC_CALL GC_get_free_space_divisor(void);
GC_API void GC_CALL GC_set_full_freq(int);
GC_API int GC_CALL GC_get_full_freq(void);
GC_API int GC_dont_precollect; /* != 0 before GC_init: no collection at GC_init */
GC_API void GC_CALL GC_set_dont_precollect(int);
GC_API int GC_CALL GC_get_dont_precollect(void);
GC_API unsigned long GC_time_limit; /* ms a mark step may take, or: */
#define GC_TIME_UNLIMITED 999999
struct GC_timeval_s {
  unsigned long tv_ms;   /* time in milliseconds */
  unsigned long tv_nsec; /* nanoseconds fraction (<1000000) */
};
GC_API void GC_CALL GC_set_time_limit(unsigned long);
GC_API unsigned long GC_CALL GC_get_time_limit(void);
GC_API void GC_CALL GC_set_time_limit_tv(struct GC_timeval_s);
GC_API struct GC_timeval_s GC_CALL GC_get_time_limit_tv(void);
GC_API void GC_CALL GC_set_rate(int); /* least incremental mark step, in pages */
GC_API int GC_CALL GC_get_rate(void);
/* How often per cycle the world-stopped finish may be abandoned at GC_time_limit. */
GC_API void GC_CALL GC_set_max_prior_attempts(int);
GC_API int GC_CALL GC_get_max_prior_attempts(void);
typedef void (GC_CALLBACK *GC_on_heap_resize_proc)(GC_word /* new_size */);
GC_API GC_on_heap_resize_proc GC_on_heap_resize; /* called as GC_get_heap_size changes */
GC_API void GC_CALL GC_set_on_heap_resize(GC_on_heap_resize_proc);
GC_API GC_on_heap_resize_proc GC_CALL GC_get_on_heap_resize(void);
GC_API size_t GC_CALL GC_get_obtained_from_os_bytes(void); /* address space mapped */
GC_API GC_word GC_max_retries; /* extra collections before out of memory */
GC_API void GC_CALL GC_set_max_retries(GC_word);
GC_API GC_word GC_CALL GC_get_max_retries(void);
GC_API int GC_dont_expand; /* != 0: grow only when a collection cannot make room */
GC_API void GC_CALL GC_set_dont_expand(int);
GC_API int GC_CALL GC_get_dont_expand(void);
GC_API int GC_use_entire_heap; /* != 0: use all free heap pages before collecting */
/* Collect rather than grow while finalizers registered since the last such collection */
/* x this value > bytes allocated since the last collection (0: off; default 10000). */
GC_API void GC_CALL GC_set_allocd_bytes_per_finalizer(GC_word);
GC_API GC_word GC_CALL GC_get_allocd_bytes_per_finalizer(void);
GC_API void GC_CALL GC_set_non_gc_bytes(GC_word);
GC_API GC_word GC_CALL GC_get_non_gc_bytes(void);
GC_API void GC_CALL GC_set_no_dls(int);
GC_API int GC_CALL GC_get_no_dls(void);
GC_API void GC_CALL GC_set_disable_automatic_collection(int);
GC_API int GC_CALL GC_get_disable_automatic_collection(void);
GC_API void GC_CALL GC_set_min_bytes_allocd(size_t);
GC_API size_t GC_CALL GC_get_min_bytes_allocd(void);
GC_API void GC_CALL GC_set_force_unmap_on_gcollect(int);
GC_API int GC_CALL GC_get_force_unmap_on_gcollect(void);
GC_API void GC_CALL GC_set_manual_vdb_allowed(int);
GC_API int GC_CALL GC_get_manual_vdb_allowed(void);
/* Before GC_INIT: map the heap executable too (nonzero), as bdwgc.                 */
GC_API void GC_CALL GC_set_pages_executable(int);
GC_API int GC_CALL GC_get_pages_executable(void);
#define GC_PROTECTS_POINTER_HEAP 1
#define GC_PROTECTS_PTRFREE_HEAP 2
#define GC_PROTECTS_STATIC_DATA 4
#define GC_PROTECTS_STACK 8
#define GC_PROTECTS_NONE 0
GC_API int GC_CALL GC_incremental_protection_needs(void);
GC_API size_t GC_CALL GC_get_expl_freed_bytes_since_gc(void);
GC_API void GC_CALL GC_start_performance_measurement(void);
GC_API unsigned long GC_CALL GC_get_full_gc_total_time(void);
GC_API size_t GC_CALL GC_get_size_map_at(int);
GC_API size_t GC_CALL GC_get_unmapped_bytes(void);
GC_API void GC_CALL GC_incr_bytes_allocd(size_t);
GC_API void GC_CALL GC_incr_bytes_freed(size_t);

typedef int (GC_CALLBACK *GC_stop_func)(void);
GC_API int GC_CALL GC_try_to_collect(GC_stop_func);
GC_API void GC_CALL GC_set_stop_func(GC_stop_func);
GC_API GC_stop_func GC_CALL GC_get_stop_func(void);
GC_API void GC_CALL GC_start_incremental_collection(void);
GC_API void GC_CALL GC_deinit(void);

typedef enum {
  GC_EVENT_START, GC_EVENT_MARK_START, GC_EVENT_MARK_END, GC_EVENT_RECLAIM_START,
  GC_EVENT_RECLAIM_END, GC_EVENT_END, GC_EVENT_PRE_STOP_WORLD, GC_EVENT_POST_STOP_WORLD,
  GC_EVENT_PRE_START_WORLD, GC_EVENT_POST_START_WORLD, GC_EVENT_THREAD_SUSPENDED,
  GC_EVENT_THREAD_UNSUSPENDED
} GC_EventType;
typedef void (GC_CALLBACK *GC_on_collection_event_proc)(GC_EventType);
GC_API void GC_CALL GC_set_on_collection_event(GC_on_collection_event_proc);
GC_API GC_on_collection_event_proc GC_CALL GC_get_on_collection_event(void);
/* Called with GC_EVENT_THREAD_SUSPENDED and each stopped thread's pthread_t (as void *)*/
/* once all are stopped, and GC_EVENT_THREAD_UNSUSPENDED before they resume.          */
typedef void (GC_CALLBACK *GC_on_thread_event_proc)(GC_EventType, void * /* thread */);
GC_API void GC_CALL GC_set_on_thread_event(GC_on_thread_event_proc);
GC_API GC_on_thread_event_proc GC_CALL GC_get_on_thread_event(void);

GC_API void GC_CALL GC_clear_roots(void);
GC_API void GC_CALL GC_exclude_static_roots(void * /* low */, void * /* high */);
GC_API void GC_CALL GC_clear_exclusion_table(void);
typedef int (GC_CALLBACK *GC_has_static_roots_func)(const char * /* dlpi_name */,
                                                    void * /* start */, size_t /* size */);
GC_API void GC_CALL GC_register_has_static_roots_callback(GC_has_static_roots_func);

GC_API void GC_CALL GC_alloc_lock(void);
GC_API void GC_CALL GC_alloc_unlock(void);
GC_API void GC_CALL GC_stop_world_external(void);
GC_API void GC_CALL GC_start_world_external(void);
GC_API void GC_CALL GC_set_handle_fork(int);
GC_API void GC_CALL GC_atfork_prepare(void);
GC_API void GC_CALL GC_atfork_parent(void);
GC_API void GC_CALL GC_atfork_child(void);
GC_API void *GC_CALL GC_get_my_stackbottom(struct GC_stack_base *);
/* The cold end of a thread's (or coroutine's) stack: its stack is scanned from the stack
 * pointer up to it (NULL handle: the calling thread; before GC_init: GC_stackbottom). */
GC_API void GC_CALL GC_set_stackbottom(void * /* gc_thread_handle */,
                                       const struct GC_stack_base *);
/* The cold end of the primordial thread's stack, if set before GC_init. */
GC_API char *GC_stackbottom;
/* The calling thread's normal and alternate signal stacks: a thread stopped while on the
 * alternate stack has both scanned. */
GC_API void GC_CALL GC_register_altstack(void * /* stack_start */, GC_word /* stack_size */,
                                         void * /* altstack_base */,
                                         GC_word /* altstack_size */);
typedef void (GC_CALLBACK *GC_reachable_object_proc)(void * /* obj */, size_t /* bytes */,
                                                     void * /* client_data */);
GC_API void GC_CALL GC_enumerate_reachable_objects_inner(GC_reachable_object_proc,
                                                         void * /* client_data */);

/* bdwgc exports these without declaring them in its headers. */
GC_API void GC_printf(const char *, ...) __attribute__((format(printf, 1, 2)));
GC_API void GC_err_printf(const char *, ...) __attribute__((format(printf, 1, 2)));
GC_API void GC_log_printf(const char *, ...) __attribute__((format(printf, 1, 2)));
GC_API void GC_CALL GC_set_log_fd(int);
typedef void (GC_CALLBACK *GC_abort_func)(const char * /* msg */);
GC_API void GC_CALL GC_set_abort_func(GC_abort_func);
GC_API GC_abort_func GC_CALL GC_get_abort_func(void);
#if defined(GC_THREADS)
# include <pthread.h>
  GC_API void GC_CALL GC_suspend_thread(pthread_t);
  GC_API void GC_CALL GC_resume_thread(pthread_t);
  GC_API int GC_CALL GC_is_thread_suspended(pthread_t);
#endif
#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GC_H */
