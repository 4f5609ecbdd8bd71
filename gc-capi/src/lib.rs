//! # gc-capi: dunegc behind bdwgc's C API
//!
//! Builds `libdunegc.so` and `libdunegc.a` exporting the part of the Boehm–Demers–Weiser
//! collector's (bdwgc's) API listed in `include/gc.h`, over gc-core's global heap, so C
//! and C++ programs written for bdwgc link against dunegc unchanged:
//!
//! ```sh
//! cc prog.c -Igc-capi/include -Ltarget/release -ldunegc -Wl,-rpath,$PWD/target/release
//! # or, for a program built against bdwgc (`-lgc`):
//! scripts/build-capi.sh && LD_LIBRARY_PATH=target/capi ./prog
//! ```
//!
//! `scripts/build-capi.sh` builds the release library and installs it under
//! `target/capi/` as `libgc.so.1` (with `libgc.so` → `libgc.so.1`), `libdunegc.so`,
//! `libdunegc.a` and the headers (`gc.h`, `gc_cpp.h`, `gc/*.h`: bdwgc's layout), and
//! builds the C++ parts from `cpp/` as Debian ships them: `libgccpp.so.1` (the global
//! `operator new`/`delete` over `GC_MALLOC_UNCOLLECTABLE`/`GC_FREE`, and
//! `GC_throw_bad_alloc`) and `libgctba.so.1`. `gc_cpp.h` and `gc_allocator.h` are
//! bdwgc's own headers, unmodified (their notices retained, as their licence asks), and
//! so are `gc/gc_inline.h` and `gc/gc_tiny_fl.h`.
//!
//! Tour:
//! - [`init`] — `GC_init`, bdwgc's environment variables mapped to gc-core's, versions.
//! - [`alloc`] — `GC_malloc` and friends, `GC_realloc`, `GC_free`, `GC_base`, `GC_size`,
//!   the out-of-memory function.
//! - [`collect`] — `GC_gcollect`, incremental mode, `GC_enable`/`GC_disable`, roots,
//!   heap statistics.
//! - [`control`] — bdwgc's control variables (`GC_dont_gc`, `GC_gc_no`,
//!   `GC_free_space_divisor`, ...) read where bdwgc reads them, their getters and
//!   setters, `GC_try_to_collect` and the stop function, collection events.
//! - [`staticroots`] — `GC_no_dls`, excluded static roots, the has-static-roots
//!   callback, `GC_clear_roots`.
//! - [`worldctl`] — the allocation lock and the world held by the program, fork
//!   handling, `GC_suspend_thread`, `GC_enumerate_reachable_objects_inner`.
//! - [`stacks`] — stacks the program declares: `GC_stackbottom`, `GC_set_stackbottom`,
//!   `GC_get_my_stackbottom`, `GC_register_altstack`.
//! - [`print`](mod@print) — `GC_printf` & co. (C-variadic, in `csrc/printf.c`), the abort function.
//! - [`callbacks`] — `GC_call_with_alloc_lock`, `GC_do_blocking`,
//!   `GC_call_with_gc_active`, the start callback, `GC_start_mark_threads`.
//! - [`heapinfo`] — `GC_get_heap_usage_safe`, `GC_is_heap_ptr`, the plausible heap
//!   bounds.
//! - [`kinds`] — `gc_mark.h`: object kinds, mark procedures, `GC_generic_malloc`,
//!   `GC_mark_and_push`, mark bits; interior pointers, displacements,
//!   `GC_is_visible`.
//! - [`typed`] — `gc_typed.h`: bitmap descriptors and explicitly typed objects.
//! - [`markroots`] — `gc_mark.h`'s root pushing: `GC_push_all` and friends, the
//!   push-other-roots callback, `GC_is_tmp_root`, `GC_clear_stack`.
//! - [`finalize`] — finalizer registration (ordered, unordered, "unreachable") and
//!   invocation, `GC_finalize_all`, `GC_dump_finalization`, the finalization variables.
//! - [`disclaim`] — `gc_disclaim.h`: disclaim procedures, `GC_finalized_malloc`.
//! - [`gcj`] — `gc_gcj.h`: objects scanned by the descriptor in their vtable.
//! - [`toggleref`] — toggle-refs (`GC_toggleref_add` and the callback).
//! - [`many`] — `GC_malloc_many` (what `gc_inline.h` refills from) and
//!   `GC_malloc_atomic_uncollectable`.
//! - [`links`] — disappearing links, short and long (register, unregister, move).
//! - [`dump`] — `GC_dump`, `GC_dump_named`, `GC_dump_regions`: roots, sections and
//!   spans printed as bdwgc does.
//! - [`debug`] — the `GC_DEBUG` allocator (`GC_debug_*`): bdwgc's headers, trailers
//!   and reports.
//! - [`errors`] — leak detection and the collection-time check of debug objects, and
//!   their reports.
//! - [`ptrcheck`] — `GC_same_obj`, `GC_pre_incr`, `GC_is_visible` & co.
//! - [`stubborn`] — the stubborn-object calls (documented no-ops).
//! - [`prof`] — `GC_get_prof_stats`, `GC_get_memory_use`, `GC_get_parallel`.
//! - [`memalign`] — `GC_memalign`, `GC_posix_memalign`.
//! - [`env`] — bdwgc's environment variables beyond those [`init`] maps.
//! - [`threads`] — thread registration (no-ops with bdwgc's codes), `GC_pthread_*`.
//! - [`warn`] — the warning procedure.
//! - [`types`] — the C types and constants.
//!
//! ## Differences from bdwgc
//! Every one is also listed in `gc.h`.
//! - **Zeroing**: every object is zeroed, `GC_malloc_atomic`'s too (bdwgc leaves atomic
//!   objects uninitialised; a superset of its guarantee).
//! - **`GC_free` of a foreign pointer** (not the start of a live object of the collector:
//!   a `malloc` pointer, an interior pointer, a double free) is reported through the
//!   warning procedure and ignored. bdwgc's `GC_free` has undefined behaviour there
//!   (only its debug allocator warns); dunegc always detects it. `GC_realloc` of such a
//!   pointer warns and returns NULL.
//! - **Finalizer order**: `GC_register_finalizer` ignores pointers from an object to
//!   itself (bdwgc's `GC_register_finalizer_ignore_self` behaviour); bdwgc's plain variant
//!   never finalizes a self-referencing object. Longer cycles behave as in bdwgc.
//!   `GC_free` of an object drops its finalizer. Java-style finalization (`GC_set_java_finalization`, on by
//!   default as in Debian's bdwgc) is bdwgc's: off, a queued no-order object keeps
//!   only itself alive, not what it references.
//! - **Disclaim procedures** (`gc_disclaim.h`, and so `GC_finalized_malloc`'s
//!   finalizers) run in the collection that finds their objects unreachable, with the
//!   lock held as in bdwgc but also with the world stopped (bdwgc sweeps lazily): they
//!   must not take locks other threads may hold. They see only allocated objects, and
//!   `mark_from_all` scans every allocated object of the kind (bdwgc: those whose first
//!   word is tagged).
//! - **gcj and `GC_finalized_malloc` before their init calls** warn and return NULL
//!   (bdwgc's behaviour is undefined). `GC_objfreelist_ptr` & co. (bdwgc-internal, in
//!   no installed header: the addresses of bdwgc's own global free-list arrays) are not
//!   exported; dunegc has no such arrays.
//! - **Toggle-refs** are asked at the start of each collection (an incremental cycle's
//!   start, not its end as in bdwgc).
//! - **`GC_dump`** prints bdwgc's sections from gc-core's layout: a "section" is a page
//!   space's used prefix, a "block" a span (listed with its address). `GC_dump_named`
//!   takes the lock, so inside `GC_call_with_alloc_lock` it warns and prints nothing.
//! - **Signals**: `GC_get_suspend_signal` is `SIGPWR` unless `GC_set_suspend_signal`
//!   chose another before `GC_init` (later calls have no effect, as in bdwgc; the
//!   handler is installed in `GC_init`); `GC_get_thr_restart_signal` is `SIGXCPU` unless
//!   `GC_set_thr_restart_signal` chose another before `GC_init`: gc-core resumes stopped
//!   threads through a futex, and that second signal serves `GC_suspend_thread` (see
//!   [`worldctl`]), so the collector occupies the same two signals as bdwgc. Where this
//!   page says `SIGPWR`, read the suspend signal.
//! - **Fork**: `pthread_atfork` handlers are installed at initialisation, as in
//!   Debian's bdwgc, unless `GC_set_handle_fork(0)` came first.
//! - **Disappearing links** are kept in a table sorted by address: registering costs
//!   O(log n) plus a move of the entries after it; each collection scans the table.
//! - **Threads** need no registration: a collection stops every thread of the process
//!   with `SIGPWR` and scans all stacks, so the registration calls are no-ops that return
//!   bdwgc's codes (see [`threads`]); `GC_thread_is_registered` is always 1. A thread
//!   must not block `SIGPWR` (`GC_pthread_sigmask` keeps it unblocked; gc-core's
//!   stop-the-world skips a thread that blocks it, and can stall if the thread unblocks
//!   it later). glibc starts every thread with all signals blocked, so
//!   `GC_pthread_create` holds automatic collections off (and makes `GC_gcollect` wait)
//!   until the new thread runs; prefer it (the `GC_THREADS` redirects) over a bare
//!   `pthread_create`, as bdwgc requires anyway. `GC_pthread_create` keeps the start
//!   argument and, until `pthread_join`, the thread's result reachable.
//! - **Blocking regions**: `GC_do_blocking` and `GC_call_with_gc_active` are plain
//!   calls: every thread is stopped by signal and scanned whole, so there is no
//!   "inactive" state (bdwgc skips the frames of a blocking call; dunegc scans them).
//!   Marking runs on `GC_MARKERS` (= `DUNEGC_MARKERS`, default the CPUs) marker threads,
//!   started by the first collection; `GC_start_mark_threads` does nothing more.
//! - **Roots**: static data of the executable and of every loaded library is found with
//!   `dl_iterate_phdr` before each collection (as bdwgc on Linux); `GC_add_roots` adds
//!   more. Memory from libc's `malloc` is not scanned, as in bdwgc.
//! - **Heap size**: `GC_get_heap_size` counts pages holding objects (bdwgc also counts
//!   free blocks); `GC_get_free_bytes` and `GC_get_bytes_since_gc` are estimates that
//!   include other threads' allocation once their caches are flushed. `GC_expand_hp` is
//!   a no-op returning 1 (the address space is reserved up front).
//! - **Incremental mode** uses a dirty-page tracker chosen by `DUNEGC_DIRTY` (`auto`:
//!   uffd, soft-dirty, mprotect in that order). If none can be opened the collector stays
//!   stop-the-world and says why through the warning procedure (bdwgc is silent). With
//!   the mprotect tracker, system calls that write into heap pages can fail with `EFAULT`
//!   while a cycle is in progress (bdwgc's mprotect mode has the same caveat).
//! - **Finalizers** run after allocations and `GC_gcollect` on the allocating thread,
//!   never nested (bdwgc's default, `GC_finalize_on_demand == 0`), or only in
//!   `GC_invoke_finalizers` after `GC_set_finalize_on_demand(1)`, when the finalizer
//!   notifier (`GC_set_finalizer_notifier`) is called from the next allocation or
//!   `GC_gcollect` after a collection that queued finalizers, once per collection.
//! - **Out of memory**: the out-of-memory function (`GC_set_oom_fn`, default: return
//!   NULL) is called and its result returned, after a warning unless the size can only
//!   come from an overflow (> `SIZE_MAX / 2`; bdwgc is silent there too). The largest
//!   object is just under 4 GiB (gc-core's large-object limit) and never more than the
//!   per-space reservation (16G) or the hard heap limit (`GC_set_max_heap_size`,
//!   `GC_MAXIMUM_HEAP_SIZE`, `DUNEGC_MAX_HEAP_SIZE`); bdwgc allocates
//!   larger objects if memory allows.
//! - **Environment**: `GC_INITIAL_HEAP_SIZE`, `GC_MAXIMUM_HEAP_SIZE`,
//!   `GC_FREE_SPACE_DIVISOR`, `GC_PRINT_STATS`, `GC_ENABLE_INCREMENTAL`,
//!   `GC_DISABLE_INCREMENTAL`, `GC_DONT_GC` are honoured (see [`init`]), and
//!   `GC_FIND_LEAK`, `GC_ABORT_ON_LEAK`, `GC_PRINT_VERBOSE_STATS`, `GC_MARKERS`,
//!   `GC_NPROCS`, `GC_LOOP_ON_ABORT` (see [`env`]), plus gc-core's `DUNEGC_*` (which
//!   win). `GC_PRINT_STATS` prints a statistics block at exit rather
//!   than a line per collection. Other bdwgc variables are ignored.
//! - **Custom kinds** ([`kinds`]): objects of kinds made with `GC_new_kind` are
//!   allocated under the heap lock (no per-thread fast path) and always zeroed; a mark
//!   procedure's own stack is a private buffer of 511 entries and `GC_mark_and_push`
//!   bypasses it. `GC_generic_malloc` of a kind never made warns and returns NULL.
//! - **Interior pointers off** (`GC_set_all_interior_pointers(0)`) applies to words in
//!   heap objects and static data; stacks and registers keep objects alive through
//!   any interior pointer, as in bdwgc. Memory from Rust's global allocator is exempt.
//! - **Debug allocator and leak detection** follow bdwgc 8.2 (header layout, report
//!   texts, at most 40 leaks and 20 smashed objects a collection, leaks freed after
//!   the report). `GC_free` of a debug body (an interior pointer) warns and is ignored
//!   (bdwgc corrupts its heap there). Debian's bdwgc is built without
//!   `KEEP_BACK_PTRS`, so `gc_backptr.h`'s functions are not exported by it, nor here.
//! - **Control variables** ([`control`], [`staticroots`]): `GC_dont_gc`, `GC_gc_no`,
//!   `GC_free_space_divisor`, `GC_full_freq`, `GC_no_dls`, `GC_all_interior_pointers`
//!   (read at initialisation), `GC_parallel`, `GC_oom_fn`, `GC_on_abort`,
//!   `GC_non_gc_bytes` (kept out of collection scheduling), `GC_dont_precollect`
//!   ([`init`]: `GC_init` collects once unless it is set) are exported as data and read
//!   where bdwgc reads them. `GC_time_limit` (`GC_set_time_limit_tv`) and `GC_set_rate`
//!   bound each incremental mark step of the allocating thread by time and set its
//!   least scanning. The pause that finishes a cycle, when an allocation started it,
//!   is abandoned at `GC_time_limit` up to `GC_set_max_prior_attempts` times per cycle
//!   (default 1, as bdwgc), and the cycle goes on; explicit collections run to the end.
//!   `GC_try_to_collect` and the default stop function are asked once, before a
//!   collection starts (a stop-the-world collection is not abandoned half way; bdwgc
//!   also asks during marking). Collection events are
//!   reported in bdwgc's order; the per-thread suspend events go to
//!   `GC_set_on_thread_event`'s procedure (see [`threads`]).
//! - **Heap growth** ([`control`]): `GC_dont_expand`, `GC_use_entire_heap` (and
//!   `GC_USE_ENTIRE_HEAP`) and `GC_set_allocd_bytes_per_finalizer` decide, as bdwgc's
//!   `GC_collect_or_expand`, whether an allocation that needs fresh pages collects
//!   first or grows the heap (gc-core's `heap::growth`); not in incremental mode.
//! - **Not provided** (bdwgc internals no public header declares; the reasons are in
//!   `tests/abi_internal.txt`): the four `GC_*objfreelist_ptr` (bdwgc's own free-list
//!   arrays, declared only in a private header) and `GC_arrays`.

// The exported names are bdwgc's, which are not snake case.
#![allow(non_snake_case)]

pub mod alloc;
pub mod callbacks;
pub mod collect;
pub mod control;
pub mod debug;
pub mod disclaim;
pub mod dump;
pub mod env;
pub mod errors;
pub mod finalize;
pub mod gcj;
pub mod heapinfo;
pub mod init;
pub mod kinds;
pub mod links;
pub mod many;
pub mod markroots;
pub mod memalign;
pub mod print;
pub mod prof;
pub mod ptrcheck;
pub mod stacks;
pub mod staticroots;
pub mod stubborn;
pub mod threads;
pub mod toggleref;
pub mod typed;
pub mod types;
pub mod warn;
pub mod worldctl;

pub use types::{GcFinalizationProc, GcOomFunc, GcStackBase, GcWarnProc, GcWord};
