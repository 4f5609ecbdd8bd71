//! Finalization: `GC_register_finalizer` and its variants, `GC_invoke_finalizers`.
//!
//! A C registration is kept in a small uncollectable object (the *closure*: the C
//! function and its client data) passed to gc-core as the finalizer's data. Being
//! uncollectable, the closure is a root, so — as in bdwgc — everything the client data
//! points to stays reachable until the finalizer has run (client data pointing to the
//! object itself therefore keeps it from ever being finalized, as in bdwgc).
//!
//! Finalizers run, as with bdwgc's default `GC_finalize_on_demand == 0`, on the thread
//! that next allocates (or calls `GC_gcollect`) after the collection that found them,
//! never nested inside another finalizer on the same thread. With
//! `GC_set_finalize_on_demand(1)` they run only in `GC_invoke_finalizers`, and the
//! finalizer notifier (`GC_set_finalizer_notifier`) is called once per collection that
//! queued some. The await procedure (`GC_set_await_finalize_proc`) is called for each
//! object as the collection queues it, before its finalizer can run.

use crate::init::heap;
use crate::types::GcFinalizationProc;
use crate::warn::warn_text;
use gc_core::{FinalizerFn, FinalizerOrder, Heap, ObjectKind};
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// Words in a closure: the C function and the client data.
const CLOSURE_WORDS: usize = 2;

/// Closures alive (registrations made through this API and not yet run or replaced).
static LIVE_CLOSURES: AtomicUsize = AtomicUsize::new(0);
/// bdwgc's `GC_finalize_on_demand` (deprecated exported variable; the setter and getter
/// below use it): nonzero, finalizers run only in `GC_invoke_finalizers`. Read at every
/// allocation that finds finalizers queued, so a program may also write it directly.
#[no_mangle]
pub static mut GC_finalize_on_demand: c_int = 0;

/// bdwgc's `GC_java_finalization` (deprecated exported variable; the setter and getter
/// use it), 1 by default as in Debian's bdwgc. gc-core reads it at every collection.
#[no_mangle]
pub static GC_java_finalization: AtomicI32 = AtomicI32::new(1);

/// bdwgc's `GC_finalizer_notifier` (deprecated exported variable; the setter and getter
/// use it): called when finalizers were queued while on-demand mode is on. NULL: none.
#[no_mangle]
pub static mut GC_finalizer_notifier: GcFinalizerNotifierProc = None;

fn on_demand() -> bool {
    // SAFETY: a plain load of an int the program may write at any time (as in bdwgc).
    unsafe { (&raw const GC_finalize_on_demand).read_volatile() != 0 }
}

fn notifier() -> GcFinalizerNotifierProc {
    // SAFETY: a plain load of a pointer-sized variable the program may write at any time.
    unsafe { (&raw const GC_finalizer_notifier).read_volatile() }
}

/// Make gc-core read [`GC_java_finalization`] (at initialisation).
pub(crate) fn install(heap: &'static Heap) {
    heap.link_java_finalization_flag(&GC_java_finalization);
    gc_core::api::capi_hooks::set_finalization_queued_hook(Some(on_queued));
}

/// bdwgc's `GC_await_finalize_proc`: `void (*)(void *obj)`.
pub type GcAwaitFinalizeProc = Option<unsafe extern "C" fn(obj: *mut c_void)>;

/// The await procedure (`GC_set_await_finalize_proc`), as an address (0: none).
static AWAIT_PROC: AtomicUsize = AtomicUsize::new(0);

/// gc-core's finalization-queued hook: tell the program's await procedure.
fn on_queued(obj: usize) {
    let f = AWAIT_PROC.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only GC_set_await_finalize_proc stores nonzero values: the address of
        // an `unsafe extern "C" fn(*mut c_void)`.
        let f = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void)>(f) };
        // SAFETY: the program installed `f` to be called, with the lock held, for each
        // object queued for finalization; `obj` is such an object (still allocated).
        unsafe { f(obj as *mut c_void) };
    }
}

/// Call `f(obj)` for every object a collection queues for finalization, as it is
/// queued (with the lock held and the world stopped, before the finalizer can run);
/// NULL removes it (bdwgc's `GC_set_await_finalize_proc`).
///
/// # Safety
/// `f` stays callable while installed, and neither allocates nor calls the collector.
#[no_mangle]
pub unsafe extern "C" fn GC_set_await_finalize_proc(f: GcAwaitFinalizeProc) {
    heap();
    AWAIT_PROC.store(f.map_or(0, |f| f as usize), Ordering::Release);
}

/// The await procedure, or NULL (bdwgc's `GC_get_await_finalize_proc`).
#[no_mangle]
pub extern "C" fn GC_get_await_finalize_proc() -> GcAwaitFinalizeProc {
    heap();
    let f = AWAIT_PROC.load(Ordering::Acquire);
    // SAFETY: nonzero values are addresses of `unsafe extern "C" fn(*mut c_void)`.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void)>(f) })
}

thread_local! {
    /// This thread is running finalizers from an allocation (no nesting).
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

type CFinalizer = unsafe extern "C" fn(obj: *mut c_void, cd: *mut c_void);

/// Read a closure.
///
/// # Safety
/// `closure` is a live closure made by `make_closure`.
unsafe fn read_closure(closure: usize) -> (CFinalizer, *mut c_void) {
    let words = closure as *const usize;
    // SAFETY: the closure holds CLOSURE_WORDS initialised words (caller's duty).
    let f = unsafe { words.read() };
    // SAFETY: as above.
    let cd = unsafe { words.add(1).read() };
    // SAFETY: word 0 was written from a non-null `CFinalizer` by `make_closure`.
    let f = unsafe { std::mem::transmute::<usize, CFinalizer>(f) };
    (f, cd as *mut c_void)
}

/// Allocate a closure for `(f, cd)`; None if out of memory.
fn make_closure(heap: &'static Heap, f: CFinalizer, cd: *mut c_void) -> Option<usize> {
    let closure = heap
        .alloc(
            ObjectKind::Uncollectable,
            CLOSURE_WORDS * std::mem::size_of::<usize>(),
            crate::alloc::GRANULE_BYTES,
        )
        .ok()?;
    let words = closure as *mut usize;
    // SAFETY: a fresh object of CLOSURE_WORDS words, owned by us.
    unsafe { words.write(f as usize) };
    // SAFETY: as above.
    unsafe { words.add(1).write(cd as usize) };
    LIVE_CLOSURES.fetch_add(1, Ordering::AcqRel);
    Some(closure)
}

/// Free a closure that will not run.
fn drop_closure(heap: &'static Heap, closure: usize) {
    if let Err(e) = heap.free(closure) {
        warn_text(&format!("dunegc: freeing a finalizer closure failed: {e}"));
    }
    LIVE_CLOSURES.fetch_sub(1, Ordering::AcqRel);
}

/// gc-core's finalizer for C registrations: run the C function with the client data.
///
/// # Safety
/// gc-core's contract: called once, with the object and the data registered (a closure).
unsafe fn run_c_finalizer(obj: usize, closure: usize) {
    // SAFETY: registered by `register` with a closure from `make_closure`, run once.
    let (f, cd) = unsafe { read_closure(closure) };
    drop_closure(crate::init::heap(), closure);
    // SAFETY: the program registered `f` to be called with the unreachable object and
    // its client data.
    unsafe { f(obj as *mut c_void, cd) };
}

/// The finalizer gc-core calls for every C registration.
const TRAMPOLINE: FinalizerFn = run_c_finalizer;

/// Decode a previous registration returned by gc-core (and free its closure).
fn take_old(
    heap: &'static Heap,
    old: Option<(FinalizerFn, usize)>,
) -> (GcFinalizationProc, *mut c_void) {
    match old {
        Some((func, closure)) if std::ptr::fn_addr_eq(func, TRAMPOLINE) => {
            // SAFETY: our trampoline's data is always a live closure; gc-core handed the
            // registration back, so it will not run.
            let (f, cd) = unsafe { read_closure(closure) };
            drop_closure(heap, closure);
            (Some(f), cd)
        }
        // None, or a finalizer registered from Rust (`Gc<T>`), which has no C form.
        _ => (None, std::ptr::null_mut()),
    }
}

/// The common body of the registration functions.
///
/// # Safety
/// `ofn` and `ocd` are NULL or writable; `f` is NULL or callable as a finalizer.
unsafe fn register(
    obj: *mut c_void,
    f: GcFinalizationProc,
    cd: *mut c_void,
    ofn: *mut GcFinalizationProc,
    ocd: *mut *mut c_void,
    order: FinalizerOrder,
) {
    let heap = heap();
    let addr = obj as usize;
    let write_old = |old_f: GcFinalizationProc, old_cd: *mut c_void| {
        if !ofn.is_null() {
            // SAFETY: the caller passes NULL or a writable GC_finalization_proc.
            unsafe { ofn.write(old_f) };
        }
        if !ocd.is_null() {
            // SAFETY: the caller passes NULL or a writable void *.
            unsafe { ocd.write(old_cd) };
        }
    };
    if heap.base_of(addr) != Some(addr) {
        // bdwgc: NULL or a pointer outside the heap: fn is ignored, *ofn and *ocd = NULL.
        write_old(None, std::ptr::null_mut());
        return;
    }
    let new = match f {
        Some(f) => match make_closure(heap, f, cd) {
            Some(c) => Some((TRAMPOLINE, c)),
            None => {
                // bdwgc: on lack of memory *ofn and *ocd stay unchanged.
                warn_text("GC_register_finalizer: out of memory; finalizer not registered");
                return;
            }
        },
        None => None,
    };
    match heap.register_finalizer(addr, new, order) {
        Ok(old) => {
            let (old_f, old_cd) = take_old(heap, old);
            write_old(old_f, old_cd);
        }
        Err(e) => {
            if let Some((_, c)) = new {
                drop_closure(heap, c);
            }
            warn_text(&format!("GC_register_finalizer: {e}"));
        }
    }
}

/// Drop the finalizer of an object about to be freed explicitly (nothing to do unless C
/// finalizers exist at all).
pub(crate) fn forget_finalizer(heap: &'static Heap, addr: usize) {
    if LIVE_CLOSURES.load(Ordering::Acquire) == 0 || heap.base_of(addr) != Some(addr) {
        return;
    }
    if let Ok(old) = heap.register_finalizer(addr, None, FinalizerOrder::NoOrder) {
        take_old(heap, old);
    }
}

/// Run queued finalizers after an allocation or collection, unless on-demand mode is on
/// or this thread is already running finalizers.
/// With on-demand mode on, call the finalizer notifier instead (at most once per
/// collection).
#[inline]
pub(crate) fn invoke_if_due(heap: &'static Heap) {
    crate::errors::report_if_any();
    if heap.has_pending_finalizers() {
        if !on_demand() {
            run_guarded(heap);
        } else if notifier().is_some() {
            notify(heap);
        }
    }
}

/// One more than the collection count at the last notification (0: never).
static LAST_NOTIFIED: AtomicU64 = AtomicU64::new(0);

/// Call the notifier unless it was called already since the last collection.
#[cold]
fn notify(heap: &'static Heap) {
    let Some(f) = notifier() else {
        return;
    };
    let mark = heap.gc_count() + 1;
    let prev = LAST_NOTIFIED.load(Ordering::Acquire);
    if prev == mark
        || LAST_NOTIFIED
            .compare_exchange(prev, mark, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    // SAFETY: the program registered `f` to be called when finalizers are due.
    unsafe { f() };
}

/// bdwgc's `GC_finalizer_notifier_proc`: `void (*)(void)`.
pub type GcFinalizerNotifierProc = Option<unsafe extern "C" fn()>;

/// Call `f` when a collection has queued finalizers, while on-demand mode
/// (`GC_set_finalize_on_demand(1)`) is on, at most once per collection; typically it
/// wakes a thread that calls `GC_invoke_finalizers` (bdwgc's
/// `GC_set_finalizer_notifier`). It is called, as in bdwgc, from the thread that next
/// allocates or calls `GC_gcollect`, without the allocation lock. NULL removes it.
#[no_mangle]
pub extern "C" fn GC_set_finalizer_notifier(f: GcFinalizerNotifierProc) {
    let heap = heap();
    // SAFETY: a plain store of the pointer-sized variable, under the lock as in bdwgc.
    heap.with_lock_held(|_| unsafe { (&raw mut GC_finalizer_notifier).write_volatile(f) });
}

/// The finalizer notifier, or NULL (bdwgc's `GC_get_finalizer_notifier`).
#[no_mangle]
pub extern "C" fn GC_get_finalizer_notifier() -> GcFinalizerNotifierProc {
    let heap = heap();
    heap.with_lock_held(|_| notifier())
}

#[cold]
fn run_guarded(heap: &'static Heap) -> usize {
    if RUNNING.with(|r| r.replace(true)) {
        return 0;
    }
    let n = heap.run_finalizers();
    RUNNING.with(|r| r.set(false));
    n
}

/// Register `f(obj, cd)` to run once `obj` is unreachable, replacing (or, with a NULL
/// `f`, removing) a previous registration, whose function and data are stored in `*ofn`
/// and `*ocd` if those are not NULL (bdwgc's `GC_register_finalizer`).
///
/// Ordered: if finalizable objects A and B are unreachable and A points to B, A is
/// finalized first and B in a later collection. Differs from bdwgc in one point: a
/// pointer from an object to itself does not prevent its finalization (bdwgc's
/// `GC_register_finalizer_ignore_self` behaviour; longer cycles of finalizable objects
/// are never finalized, as in bdwgc). `obj` must be the start of an object; for NULL or
/// any other pointer `f` is ignored and `*ofn`, `*ocd` are set to NULL.
///
/// # Safety
/// `ofn`/`ocd` are NULL or writable; `f` is NULL or a function that may be called once
/// with `obj` and `cd` from any thread that allocates.
#[no_mangle]
pub unsafe extern "C" fn GC_register_finalizer(
    obj: *mut c_void,
    f: GcFinalizationProc,
    cd: *mut c_void,
    ofn: *mut GcFinalizationProc,
    ocd: *mut *mut c_void,
) {
    // SAFETY: the caller's guarantees are `register`'s.
    unsafe { register(obj, f, cd, ofn, ocd, FinalizerOrder::Ordered) }
}

/// bdwgc's `GC_register_finalizer_ignore_self`: what `GC_register_finalizer` does here.
///
/// # Safety
/// As `GC_register_finalizer`.
#[no_mangle]
pub unsafe extern "C" fn GC_register_finalizer_ignore_self(
    obj: *mut c_void,
    f: GcFinalizationProc,
    cd: *mut c_void,
    ofn: *mut GcFinalizationProc,
    ocd: *mut *mut c_void,
) {
    // SAFETY: the caller's guarantees are `register`'s.
    unsafe { register(obj, f, cd, ofn, ocd, FinalizerOrder::Ordered) }
}

/// Like `GC_register_finalizer`, but unordered: `obj` is finalized in the first
/// collection that finds it unreachable, whatever else points to it (bdwgc's
/// `GC_register_finalizer_no_order`). What `obj` references is kept alive for the
/// finalizer only with Java-style finalization on (the default; see
/// [`GC_set_java_finalization`]).
///
/// # Safety
/// As `GC_register_finalizer`.
#[no_mangle]
pub unsafe extern "C" fn GC_register_finalizer_no_order(
    obj: *mut c_void,
    f: GcFinalizationProc,
    cd: *mut c_void,
    ofn: *mut GcFinalizationProc,
    ocd: *mut *mut c_void,
) {
    // SAFETY: the caller's guarantees are `register`'s.
    unsafe { register(obj, f, cd, ofn, ocd, FinalizerOrder::BdwgcNoOrder) }
}

/// Nonzero if finalizers are queued and not yet run (bdwgc's
/// `GC_should_invoke_finalizers`).
#[no_mangle]
pub extern "C" fn GC_should_invoke_finalizers() -> c_int {
    heap().has_pending_finalizers() as c_int
}

/// Run every queued finalizer on this thread; returns how many ran (bdwgc's
/// `GC_invoke_finalizers`).
#[no_mangle]
pub extern "C" fn GC_invoke_finalizers() -> c_int {
    let n = heap().run_finalizers();
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// Nonzero: finalizers run only in `GC_invoke_finalizers`; zero (the default): also
/// after allocations and `GC_gcollect` (bdwgc's `GC_set_finalize_on_demand`).
#[no_mangle]
pub extern "C" fn GC_set_finalize_on_demand(value: c_int) {
    // SAFETY: a plain store of the int variable (unsynchronized, as bdwgc's setter).
    unsafe { (&raw mut GC_finalize_on_demand).write_volatile(value) };
}

/// The on-demand setting (bdwgc's `GC_get_finalize_on_demand`).
#[no_mangle]
pub extern "C" fn GC_get_finalize_on_demand() -> c_int {
    on_demand() as c_int
}

/// bdwgc's `GC_set_java_finalization`: nonzero (the default, as in Debian's bdwgc) keeps
/// what a queued no-order finalizable object (`GC_register_finalizer_no_order`)
/// references alive until its finalizer has run; zero keeps only the object itself, so
/// objects reachable only from it are freed in the same collection (their long links
/// cleared) and its finalizer must not follow its pointers. Ordered finalization
/// (`GC_register_finalizer`, `_ignore_self`) is the same either way, as in bdwgc.
/// Applies from the next collection.
#[no_mangle]
pub extern "C" fn GC_set_java_finalization(value: c_int) {
    heap();
    GC_java_finalization.store(value, Ordering::Relaxed);
}

/// The Java-style finalization setting (bdwgc's `GC_get_java_finalization`): 1 or 0.
#[no_mangle]
pub extern "C" fn GC_get_java_finalization() -> c_int {
    (GC_java_finalization.load(Ordering::Relaxed) != 0) as c_int
}

/// Like `GC_register_finalizer`, but the object is not finalized while an object queued
/// for no-order finalization (`GC_register_finalizer_no_order`) in the same collection
/// still reaches it; it stays registered and is finalized once nothing finalizable
/// reaches it any more (bdwgc's `GC_register_finalizer_unreachable`). That extra rule
/// needs Java-style finalization on (the default); with it off this is
/// `GC_register_finalizer`, as in bdwgc. Bad input as for `GC_register_finalizer`.
///
/// # Safety
/// As `GC_register_finalizer`.
#[no_mangle]
pub unsafe extern "C" fn GC_register_finalizer_unreachable(
    obj: *mut c_void,
    f: GcFinalizationProc,
    cd: *mut c_void,
    ofn: *mut GcFinalizationProc,
    ocd: *mut *mut c_void,
) {
    // SAFETY: the caller's guarantees are `register`'s.
    unsafe { register(obj, f, cd, ofn, ocd, FinalizerOrder::Unreachable) }
}

/// Run every finalizer that has not run yet, registered ones included, as if all
/// their objects had become unreachable, on this thread, until none is left (finalizers
/// that register new ones are run too); bdwgc's `GC_finalize_all` (javaxfc.h). The
/// objects stay allocated; objects still referenced may thus be finalized, as bdwgc
/// warns.
#[no_mangle]
pub extern "C" fn GC_finalize_all() {
    let heap = heap();
    loop {
        let queued = heap.enqueue_all_finalizers();
        heap.run_finalizers();
        if queued == 0 && !heap.has_pending_finalizers() {
            return;
        }
    }
}

/// Print every registered disappearing link and finalizable object to stdout, in
/// bdwgc's format (bdwgc's `GC_dump_finalization`): "Disappearing (short) links:",
/// "Disappearing long links:" with a line "Object: %p, link: %p" for each, then
/// "Finalizers:" with "Finalizable object: %p" for each registered (not yet queued)
/// object.
#[no_mangle]
pub extern "C" fn GC_dump_finalization() {
    use std::io::Write;
    let heap = heap();
    let links = heap.disappearing_link_list();
    let objects = heap.finalizable_objects();
    let mut text = String::from("Disappearing (short) links:\n");
    for long in [false, true] {
        if long {
            text.push_str("Disappearing long links:\n");
        }
        for &(_, link, obj) in links.iter().filter(|l| l.0 == long) {
            text.push_str(&format!("Object: {obj:#x}, link: {link:#x}\n"));
        }
    }
    text.push_str("Finalizers:\n");
    for obj in objects {
        text.push_str(&format!("Finalizable object: {obj:#x}\n"));
    }
    // C's stdout buffer first, so the dump lands after what the program printed.
    // SAFETY: fflush(NULL) flushes every C stream.
    unsafe { libc::fflush(std::ptr::null_mut()) };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
