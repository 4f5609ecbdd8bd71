//! Threads: registration calls and the `GC_pthread_*` wrappers.
//!
//! dunegc needs no thread registration: a collection stops every thread of the process
//! (listed from `/proc/self/task`, each sent `SIGPWR`) and scans every thread's stack,
//! registers and static TLS, whether or not it was created through `GC_pthread_create`
//! or registered. So the registration calls only keep bdwgc's return codes honest:
//! `GC_thread_is_registered` is always true (the collector does see the thread);
//! `GC_register_my_thread` returns `GC_SUCCESS` the first time a thread calls it and
//! `GC_DUPLICATE` afterwards, and also for the thread that initialised the collector and
//! threads made by `GC_pthread_create` (which bdwgc registers itself).
//!
//! The one real duty left is bdwgc's: a thread must not block the suspend signal, or the
//! collector cannot stop it. `GC_pthread_sigmask` removes `SIGPWR` from the set, as
//! bdwgc's removes its own suspend signal.

use crate::init::heap;
use crate::types::{
    GcStackBase, GcStackBaseFunc, StartRoutine, GC_DUPLICATE, GC_SUCCESS, GC_UNIMPLEMENTED,
};
use crate::warn::warn_text;
use gc_core::ObjectKind;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Condvar, Mutex, MutexGuard};

thread_local! {
    /// This thread counts as registered in bdwgc's sense.
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Mark the calling thread registered (the initialising thread, `GC_pthread_create`'s).
pub(crate) fn mark_current_registered() {
    REGISTERED.with(|r| r.set(true));
}

extern "C-unwind" {
    /// glibc's `pthread_create`, declared with an unwinding start routine.
    #[link_name = "pthread_create"]
    fn pthread_create_unwind(
        thread: *mut libc::pthread_t,
        attr: *const libc::pthread_attr_t,
        start: StartRoutine,
        arg: *mut c_void,
    ) -> c_int;
    /// glibc's `pthread_exit`: unwinds the calling thread (forced unwind).
    #[link_name = "pthread_exit"]
    fn pthread_exit_unwind(retval: *mut c_void) -> !;
    /// glibc's `pthread_join`: a cancellation point, so it may unwind.
    #[link_name = "pthread_join"]
    fn pthread_join_unwind(thread: libc::pthread_t, retval: *mut *mut c_void) -> c_int;
}

extern "C" {
    /// glibc's `pthread_attr_getdetachstate` (not bound by the libc crate).
    fn pthread_attr_getdetachstate(attr: *const libc::pthread_attr_t, state: *mut c_int) -> c_int;
}

/// Allow threads to register themselves (bdwgc's `GC_allow_register_threads`). A no-op:
/// every thread is always seen.
#[no_mangle]
pub extern "C" fn GC_allow_register_threads() {
    heap();
}

/// Register the calling thread (bdwgc's `GC_register_my_thread`). Nothing to do for the
/// collector (see the module docs); returns `GC_SUCCESS` on a thread's first call and
/// `GC_DUPLICATE` if it counts as registered already.
#[no_mangle]
pub extern "C" fn GC_register_my_thread(_sb: *const GcStackBase) -> c_int {
    heap();
    if REGISTERED.with(|r| r.replace(true)) {
        GC_DUPLICATE
    } else {
        GC_SUCCESS
    }
}

/// Unregister the calling thread (bdwgc's `GC_unregister_my_thread`). Returns
/// `GC_SUCCESS` and drops the thread's declared stacks ([`crate::stacks`]); the collector
/// keeps scanning the thread while it exists (harmless: its stack only keeps objects
/// alive that it still points to).
#[no_mangle]
pub extern "C" fn GC_unregister_my_thread() -> c_int {
    REGISTERED.with(|r| r.set(false));
    crate::stacks::forget_current();
    GC_SUCCESS
}

/// Always 1: the collector scans every thread (bdwgc's `GC_thread_is_registered`).
#[no_mangle]
pub extern "C" fn GC_thread_is_registered() -> c_int {
    1
}

/// Store the calling thread's stack base (its highest address) in `*sb` (bdwgc's
/// `GC_get_stack_base`). Returns `GC_SUCCESS`, or `GC_UNIMPLEMENTED` if glibc cannot
/// tell.
///
/// # Safety
/// `sb` points to a writable `struct GC_stack_base`.
#[no_mangle]
pub unsafe extern "C" fn GC_get_stack_base(sb: *mut GcStackBase) -> c_int {
    match stack_base() {
        Some(base) => {
            // SAFETY: the caller passes a writable struct GC_stack_base.
            unsafe { sb.write(GcStackBase { mem_base: base }) };
            GC_SUCCESS
        }
        None => GC_UNIMPLEMENTED,
    }
}

/// The calling thread's stack base from glibc.
pub(crate) fn stack_base() -> Option<*mut c_void> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np initialises `attr` for the calling thread.
    if unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) } != 0 {
        return None;
    }
    let mut addr: *mut c_void = std::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: `attr` was initialised above; the out-pointers are valid locals.
    let rc = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut len) };
    // SAFETY: `attr` was initialised by pthread_getattr_np and is destroyed once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    (rc == 0).then(|| (addr as usize + len) as *mut c_void)
}

/// Call `f(sb, arg)` with a stack base inside this frame and return its result (bdwgc's
/// `GC_call_with_stack_base`).
///
/// # Safety
/// `f` is a callable `GC_stack_base_func`.
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_call_with_stack_base(
    f: GcStackBaseFunc,
    arg: *mut c_void,
) -> *mut c_void {
    let mut sb = GcStackBase {
        mem_base: std::ptr::null_mut(),
    };
    sb.mem_base = std::ptr::addr_of_mut!(sb).cast();
    match f {
        // SAFETY: the caller passes a callable function; `sb` lives across the call.
        Some(f) => unsafe { f(&mut sb, arg) },
        None => std::ptr::null_mut(),
    }
}

/// What `GC_pthread_create` keeps about a thread, in an uncollectable object (a root):
/// the argument until the thread has started, and its result from the time it returns
/// until it is joined. glibc keeps the result in the thread's descriptor, which the
/// collector no longer scans once the thread has exited (it is not in
/// `/proc/self/task`), so without this a result reachable only through
/// `pthread_join` could be freed (bdwgc keeps it in its thread table for the same
/// reason). Fields other than `start` change only under `THREADS`.
#[repr(C)]
struct ThreadRecord {
    start: StartRoutine,
    arg: *mut c_void,
    result: *mut c_void,
    detached: bool,
    finished: bool,
}

/// Threads made by `GC_pthread_create` and not yet joined or reclaimed: their ids and
/// records (addresses of uncollectable objects).
static THREADS: Mutex<Vec<(libc::pthread_t, usize)>> = Mutex::new(Vec::new());

fn threads_table() -> MutexGuard<'static, Vec<(libc::pthread_t, usize)>> {
    THREADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Thread start-up against collections. glibc starts a new thread with every signal
/// blocked and unblocks them just before the start routine runs; a stop-the-world in
/// that window cannot stop the thread, and gc-core's stop-the-world can then wait
/// forever for it (see the crate docs). So while a thread made by `GC_pthread_create` is
/// starting, automatic collections are disabled (`Heap::disable`, which also waits for
/// one in progress) and `GC_gcollect` waits; a thread does not start while
/// `GC_gcollect` collects.
struct StartGate {
    /// (threads starting, explicit collections running).
    state: Mutex<(usize, usize)>,
    changed: Condvar,
}

static GATE: StartGate = StartGate {
    state: Mutex::new((0, 0)),
    changed: Condvar::new(),
};

impl StartGate {
    fn lock(&self) -> MutexGuard<'_, (usize, usize)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, (usize, usize)>) -> MutexGuard<'a, (usize, usize)> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// A thread is about to be created (its start routine has not run yet).
    fn begin_start(&self) {
        let mut g = self.lock();
        while g.1 > 0 {
            g = self.wait(g);
        }
        g.0 += 1;
        drop(g);
        heap().disable();
    }

    /// The thread is running with signals unblocked (or was never created).
    fn end_start(&self) {
        heap().enable();
        let mut g = self.lock();
        g.0 -= 1;
        drop(g);
        self.changed.notify_all();
    }
}

thread_local! {
    /// The start gate's state, held by this thread across `fork` (the fork handlers).
    static GATE_HELD: std::cell::RefCell<Option<MutexGuard<'static, (usize, usize)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Before `fork`: hold the start gate, so that the child does not inherit it locked by a
/// thread it does not have.
pub(crate) fn fork_prepare() {
    let g = GATE.lock();
    GATE_HELD.with(|h| *h.borrow_mut() = Some(g));
}

/// After `fork`, in the parent: release the start gate.
pub(crate) fn fork_parent() {
    drop(GATE_HELD.with(|h| h.borrow_mut().take()));
}

/// After `fork`, in the child: the threads that were starting and the explicit
/// collections that were running belong to the parent; forget them and return how many
/// threads were starting (each holds one `Heap::disable` the child must undo).
pub(crate) fn fork_child() -> usize {
    let held = GATE_HELD.with(|h| h.borrow_mut().take());
    let mut g = held.unwrap_or_else(|| GATE.lock());
    let starting = g.0;
    *g = (0, 0);
    starting
}

/// Run an explicit collection `f` once no thread made by `GC_pthread_create` is starting.
pub(crate) fn while_no_thread_starts<R>(f: impl FnOnce() -> R) -> R {
    let mut g = GATE.lock();
    while g.0 > 0 {
        g = GATE.wait(g);
    }
    g.1 += 1;
    drop(g);
    let r = f();
    GATE.lock().1 -= 1;
    GATE.changed.notify_all();
    r
}

fn free_record(record: usize) {
    if let Err(e) = heap().free(record) {
        warn_text(&format!(
            "GC_pthread_create: freeing a thread record failed: {e}"
        ));
    }
}

/// The calling thread's record; finished (at the latest) when the thread exits, however
/// it exits.
struct RecordGuard(Cell<usize>);

impl RecordGuard {
    /// The thread is done: keep `result` (if known) for `pthread_join`, or free the
    /// record if the thread is detached.
    fn finish(&self, result: Option<*mut c_void>) {
        let record = self.0.replace(0);
        if record == 0 {
            return;
        }
        let rec = record as *mut ThreadRecord;
        let mut table = threads_table();
        // SAFETY: the record stays allocated until it is finished and then joined or
        // detached; it is not finished yet (this guard held it), and its fields are
        // changed only under THREADS, which we hold.
        unsafe {
            if let Some(r) = result {
                (*rec).result = r;
            }
            (*rec).arg = std::ptr::null_mut();
            (*rec).finished = true;
        }
        // SAFETY: as above.
        if unsafe { (*rec).detached } {
            table.retain(|&(_, r)| r != record);
            drop(table);
            free_record(record);
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}

thread_local! {
    static RECORD: RecordGuard = const { RecordGuard(Cell::new(0)) };
}

unsafe extern "C-unwind" fn thread_start(record: *mut c_void) -> *mut c_void {
    let rec = record as *const ThreadRecord;
    // SAFETY: `GC_pthread_create` passes a live, initialised record; `start` never
    // changes and `arg` changes only when the thread (this one) finishes.
    let (start, arg) = unsafe { ((*rec).start, (*rec).arg) };
    RECORD.with(|g| g.0.set(record as usize));
    mark_current_registered();
    GATE.end_start();
    // SAFETY: the program's start routine with its argument, as pthread_create would
    // call it. If it unwinds (pthread_exit, cancellation) nothing here needs dropping;
    // the record is finished by RECORD's destructor.
    let result = unsafe { start(arg) };
    RECORD.with(|g| g.finish(Some(result)));
    result
}

/// `pthread_create` (bdwgc's `GC_pthread_create`). The thread needs no registration;
/// the wrapper keeps `arg` reachable until the thread starts and the thread's result
/// until it is joined, and marks the thread registered for `GC_register_my_thread`'s
/// return code. Returns `EAGAIN` if the record cannot be allocated.
///
/// # Safety
/// As `pthread_create`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: StartRoutine,
    arg: *mut c_void,
) -> c_int {
    let heap = heap();
    let Ok(record) = heap.alloc(
        ObjectKind::Uncollectable,
        std::mem::size_of::<ThreadRecord>(),
        crate::alloc::GRANULE_BYTES,
    ) else {
        return libc::EAGAIN;
    };
    let mut detach_state = libc::PTHREAD_CREATE_JOINABLE;
    if !attr.is_null() {
        // SAFETY: the caller passes NULL or an initialised attribute object.
        unsafe { pthread_attr_getdetachstate(attr, &mut detach_state) };
    }
    // SAFETY: a fresh object, large enough and 16-byte aligned for a ThreadRecord.
    unsafe {
        (record as *mut ThreadRecord).write(ThreadRecord {
            start,
            arg,
            result: std::ptr::null_mut(),
            detached: detach_state == libc::PTHREAD_CREATE_DETACHED,
            finished: false,
        })
    };
    GATE.begin_start();
    // Hold the table while creating, so that the thread cannot finish (and, detached,
    // free its record) before it is in the table.
    let mut table = threads_table();
    let mut id: libc::pthread_t = 0;
    // SAFETY: the caller's attributes are pthread_create's; the start routine and record
    // stay valid for the thread; `id` is a valid out-pointer.
    let rc = unsafe { pthread_create_unwind(&mut id, attr, thread_start, record as *mut c_void) };
    if rc != 0 {
        drop(table);
        GATE.end_start();
        free_record(record);
        return rc;
    }
    table.push((id, record));
    drop(table);
    // SAFETY: the caller passes a writable pthread_t, as to pthread_create.
    unsafe { thread.write(id) };
    0
}

/// `pthread_join` (bdwgc's `GC_pthread_join`). A cancellation point: cancelling the
/// joining thread unwinds through this function.
///
/// # Safety
/// As `pthread_join`.
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_pthread_join(
    thread: libc::pthread_t,
    retval: *mut *mut c_void,
) -> c_int {
    // SAFETY: the caller's arguments are pthread_join's.
    let rc = unsafe { pthread_join_unwind(thread, retval) };
    if rc == 0 {
        let mut table = threads_table();
        if let Some(i) = table.iter().position(|&(t, _)| t == thread) {
            let (_, record) = table.swap_remove(i);
            drop(table);
            free_record(record);
        }
    }
    rc
}

/// `pthread_detach` (bdwgc's `GC_pthread_detach`).
///
/// # Safety
/// As `pthread_detach`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_detach(thread: libc::pthread_t) -> c_int {
    // SAFETY: the caller's argument is pthread_detach's.
    let rc = unsafe { libc::pthread_detach(thread) };
    if rc == 0 {
        let mut table = threads_table();
        if let Some(i) = table.iter().position(|&(t, _)| t == thread) {
            let record = table[i].1;
            let rec = record as *mut ThreadRecord;
            // SAFETY: a record in the table is allocated; its fields change only under
            // THREADS, which we hold.
            if unsafe { (*rec).finished } {
                table.swap_remove(i);
                drop(table);
                free_record(record);
            } else {
                // SAFETY: as above.
                unsafe { (*rec).detached = true };
            }
        }
    }
    rc
}

/// `pthread_cancel` (bdwgc's `GC_pthread_cancel`).
///
/// # Safety
/// As `pthread_cancel`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_cancel(thread: libc::pthread_t) -> c_int {
    // SAFETY: the caller's argument is pthread_cancel's.
    unsafe { libc::pthread_cancel(thread) }
}

/// `pthread_exit` (bdwgc's `GC_pthread_exit`); keeps `retval` reachable until the
/// thread is joined.
///
/// # Safety
/// As `pthread_exit`.
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_pthread_exit(retval: *mut c_void) -> ! {
    // Keep the result reachable for pthread_join (a no-op in threads not made by
    // GC_pthread_create).
    RECORD.with(|g| g.finish(Some(retval)));
    // SAFETY: as pthread_exit; this frame holds nothing that needs dropping.
    unsafe { pthread_exit_unwind(retval) }
}

/// `pthread_sigmask`, except that the collector's suspend signal (`SIGPWR`) is never
/// blocked (bdwgc's `GC_pthread_sigmask` does the same with its own signal).
///
/// # Safety
/// As `pthread_sigmask`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_sigmask(
    how: c_int,
    set: *const libc::sigset_t,
    oldset: *mut libc::sigset_t,
) -> c_int {
    if set.is_null() || how == libc::SIG_UNBLOCK {
        // SAFETY: the caller's arguments are pthread_sigmask's.
        return unsafe { libc::pthread_sigmask(how, set, oldset) };
    }
    // SAFETY: `set` is a readable sigset_t (the caller's duty).
    let mut fixed = unsafe { set.read() };
    // SAFETY: `fixed` is a valid sigset_t; the suspend signal is a valid signal number.
    unsafe { libc::sigdelset(&mut fixed, gc_core::world::suspend_signal()) };
    // SAFETY: `fixed` is a local sigset_t; `oldset` is the caller's.
    unsafe { libc::pthread_sigmask(how, &fixed, oldset) }
}

/// `dlopen` (bdwgc's `GC_dlopen`). No wrapping is needed: the static data of libraries
/// is found again before every collection.
///
/// # Safety
/// As `dlopen`.
#[no_mangle]
pub unsafe extern "C" fn GC_dlopen(path: *const c_char, mode: c_int) -> *mut c_void {
    // SAFETY: the caller's arguments are dlopen's.
    unsafe { libc::dlopen(path, mode) }
}

/// The signal the collector suspends threads with (bdwgc's `GC_get_suspend_signal`):
/// gc-core's stop-the-world signal, `SIGPWR` (bdwgc's default on Linux too) unless
/// `GC_set_suspend_signal` chose another before initialisation.
#[no_mangle]
pub extern "C" fn GC_get_suspend_signal() -> c_int {
    gc_core::world::suspend_signal()
}

/// Choose the signal the collector suspends threads with (bdwgc's
/// `GC_set_suspend_signal`). No effect after `GC_init` (the handler is installed then),
/// as in bdwgc; a number that is no catchable signal is reported through the warning
/// procedure and ignored.
#[no_mangle]
pub extern "C" fn GC_set_suspend_signal(sig: c_int) {
    if crate::init::GC_is_init_called() != 0 {
        return;
    }
    if let Err(why) = gc_core::world::set_suspend_signal(sig) {
        crate::warn::warn_text(&format!("GC_set_suspend_signal({sig}) ignored: {why}"));
    }
}

/// The collector's second signal (bdwgc's `GC_get_thr_restart_signal`): `SIGXCPU`, as in
/// bdwgc, unless `GC_set_thr_restart_signal` chose another before `GC_init`. bdwgc
/// resumes stopped threads with it; gc-core's stop-the-world resumes them through a futex
/// instead, and dunegc uses the signal for `GC_suspend_thread` (see `worldctl`). Either
/// way the collector occupies the same two signals, with its handler installed from
/// `GC_init` on.
#[no_mangle]
pub extern "C" fn GC_get_thr_restart_signal() -> c_int {
    crate::worldctl::thread_suspend_signal()
}

/// bdwgc's `GC_EVENT_THREAD_SUSPENDED`.
const GC_EVENT_THREAD_SUSPENDED: c_int = 10;
/// bdwgc's `GC_EVENT_THREAD_UNSUSPENDED`.
const GC_EVENT_THREAD_UNSUSPENDED: c_int = 11;

/// bdwgc's `GC_on_thread_event_proc`: `(event, thread_id)`.
pub type GcOnThreadEventProc = Option<unsafe extern "C" fn(c_int, *mut c_void)>;

/// The program's thread-event procedure, as an address (0: none).
static ON_THREAD_EVENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// gc-core's thread-event hook: hands each stopped or resumed thread to the program's
/// procedure with its `pthread_t` (on glibc the thread pointer gc-core reports).
fn thread_event(suspended: bool, thread_pointer: usize) {
    let f = ON_THREAD_EVENT.load(std::sync::atomic::Ordering::Acquire);
    if f == 0 {
        return;
    }
    // SAFETY: only GC_set_on_thread_event stores nonzero values, the addresses of
    // `unsafe extern "C" fn(c_int, *mut c_void)`.
    let f = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(c_int, *mut c_void)>(f) };
    let event = if suspended {
        GC_EVENT_THREAD_SUSPENDED
    } else {
        GC_EVENT_THREAD_UNSUSPENDED
    };
    // SAFETY: the program promised (GC_set_on_thread_event) that `f` is callable while
    // installed and neither allocates nor calls the collector.
    unsafe { f(event, thread_pointer as *mut c_void) };
}

/// Install the thread-event procedure (bdwgc's `GC_set_on_thread_event`): at every
/// collection (and `GC_stop_world_external`) it is called with
/// `GC_EVENT_THREAD_SUSPENDED` and the `pthread_t` (as `void *`) of each thread stopped,
/// once all are stopped, and with `GC_EVENT_THREAD_UNSUSPENDED` for each just before
/// they resume; on the collecting thread, with the world stopped. Every thread of the
/// process is stopped (see the module doc), so every thread but the collecting one is
/// reported. NULL removes it.
///
/// # Safety
/// `f` stays callable while installed, and neither allocates nor calls the collector.
#[no_mangle]
pub unsafe extern "C" fn GC_set_on_thread_event(f: GcOnThreadEventProc) {
    heap();
    gc_core::world::set_thread_event_hook(Some(thread_event));
    ON_THREAD_EVENT.store(
        f.map_or(0, |f| f as usize),
        std::sync::atomic::Ordering::Release,
    );
}

/// The thread-event procedure, or NULL (bdwgc's `GC_get_on_thread_event`).
#[no_mangle]
pub extern "C" fn GC_get_on_thread_event() -> GcOnThreadEventProc {
    let f = ON_THREAD_EVENT.load(std::sync::atomic::Ordering::Acquire);
    // SAFETY: nonzero values are addresses of `unsafe extern "C" fn(c_int, *mut c_void)`.
    (f != 0).then(|| unsafe {
        std::mem::transmute::<usize, unsafe extern "C" fn(c_int, *mut c_void)>(f)
    })
}
