//! The allocation lock and the world under the program's control: `GC_alloc_lock` /
//! `GC_alloc_unlock`, `GC_stop_world_external` / `GC_start_world_external`, fork
//! handling (`GC_set_handle_fork`, `GC_atfork_*`), suspending single threads
//! (`GC_suspend_thread`, `GC_resume_thread`, `GC_is_thread_suspended`), walking the
//! reachable objects (`GC_enumerate_reachable_objects_inner`).
//!
//! **Thread suspension.** `GC_suspend_thread(t)` sends `t` the collector's second signal
//! (bdwgc's restart signal: `SIGXCPU` unless `GC_set_thr_restart_signal` chose another
//! before `GC_init`; so no signal bdwgc leaves free is taken) with the allocation lock
//! held, and waits until `t`'s handler says it is suspended. The handler waits on a
//! futex until `GC_resume_thread(t)`. It does not block the collector's `SIGPWR`, so a
//! collection stops and scans a suspended thread as any other (its stack, from inside
//! both handlers, covers the interrupted frames and their saved registers). As in bdwgc,
//! a thread must not block the signal, and suspending the calling thread waits until
//! another thread resumes it. At most 256 threads are suspended at a time (more: the
//! call warns and returns).
//!
//! **Fork.** As Debian's bdwgc (built with `HANDLE_FORK`), initialisation installs
//! `pthread_atfork` handlers unless `GC_set_handle_fork(0)` was called before: the
//! parent takes the allocation lock around `fork`, so the child never inherits it held
//! by a thread that does not exist there. With `GC_set_handle_fork(0)` the program calls
//! `GC_atfork_prepare`/`_parent`/`_child` itself around `fork` (they do nothing while the
//! handlers are installed, as in bdwgc).

use crate::init::heap;
use crate::warn::warn_text;
use gc_core::api::capi_control::{ExternalLock, ExternalStop};
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Once;

thread_local! {
    /// The allocation lock, while this thread holds it through `GC_alloc_lock` or the
    /// fork handlers.
    static ALLOC_LOCK: RefCell<Option<ExternalLock>> = const { RefCell::new(None) };
    /// The world, while this thread keeps it stopped (`GC_stop_world_external`).
    static STOPPED: RefCell<Option<ExternalStop>> = const { RefCell::new(None) };
}

/// Take the allocation lock (bdwgc's `GC_alloc_lock`): no collection, allocation slow
/// path or free of another thread runs until `GC_alloc_unlock`. Not reentrant: the
/// holder's own allocations fail (return NULL with a warning) instead of deadlocking;
/// the unsynchronized getters (`GC_get_gc_no`, `GC_get_heap_size`, ...) may be called.
#[no_mangle]
pub extern "C" fn GC_alloc_lock() {
    let heap = heap();
    let lock = heap.lock_external();
    let snapshot = lock.snapshot();
    ALLOC_LOCK.with(|l| *l.borrow_mut() = Some(lock));
    crate::callbacks::set_locked_snapshot(Some(snapshot));
}

/// Release the allocation lock taken by this thread with `GC_alloc_lock` (bdwgc's
/// `GC_alloc_unlock`). Does nothing if this thread does not hold it.
#[no_mangle]
pub extern "C" fn GC_alloc_unlock() {
    let lock = ALLOC_LOCK.with(|l| l.borrow_mut().take());
    if lock.is_some() {
        crate::callbacks::set_locked_snapshot(None);
    }
    drop(lock);
}

/// Stop every other thread, as a collection does, and keep the allocation lock until
/// `GC_start_world_external` (bdwgc's `GC_stop_world_external`). The caller must not
/// allocate meanwhile (allocations fail cleanly).
#[no_mangle]
pub extern "C" fn GC_stop_world_external() {
    let heap = heap();
    match heap.stop_world_external() {
        Ok(stop) => {
            let snapshot = stop.snapshot();
            STOPPED.with(|s| *s.borrow_mut() = Some(stop));
            crate::callbacks::set_locked_snapshot(Some(snapshot));
        }
        Err(e) => warn_text(&format!("GC_stop_world_external: {e}")),
    }
}

/// Restart the threads stopped by this thread's `GC_stop_world_external` and release
/// the lock (bdwgc's `GC_start_world_external`).
#[no_mangle]
pub extern "C" fn GC_start_world_external() {
    let stop = STOPPED.with(|s| s.borrow_mut().take());
    if stop.is_some() {
        crate::callbacks::set_locked_snapshot(None);
    }
    drop(stop);
}

/// bdwgc's `GC_handle_fork`: 1 (install handlers at initialisation, Debian's default),
/// 0 (the program calls `GC_atfork_*`), -1 (install if possible, else as 0).
static HANDLE_FORK: AtomicI32 = AtomicI32::new(1);
/// The `pthread_atfork` handlers are installed.
static FORK_HANDLERS: Once = Once::new();

/// Choose how `fork` is handled; effective only before initialisation (bdwgc's
/// `GC_set_handle_fork`): nonzero installs `pthread_atfork` handlers at initialisation
/// (negative values other than -1 count as 1), 0 leaves it to the program's
/// `GC_atfork_*` calls.
#[no_mangle]
pub extern "C" fn GC_set_handle_fork(value: c_int) {
    if crate::init::GC_is_init_called() == 0 {
        HANDLE_FORK.store(if value >= -1 { value } else { 1 }, Ordering::Release);
    }
}

/// Install the fork handlers if asked to (at initialisation).
pub(crate) fn install_fork_handlers() {
    if HANDLE_FORK.load(Ordering::Acquire) == 0 {
        return;
    }
    FORK_HANDLERS.call_once(|| {
        // SAFETY: registers three plain extern "C" fns that live for the process.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc == 0 {
            HANDLE_FORK.store(1, Ordering::Release);
        } else {
            HANDLE_FORK.store(0, Ordering::Release);
            warn_text("GC_set_handle_fork: pthread_atfork failed; call GC_atfork_* around fork");
        }
    });
}

extern "C" fn prepare() {
    // The thread-start gate first (GC_pthread_create and GC_gcollect take it before the
    // heap lock, never while holding it), then the heap lock.
    crate::threads::fork_prepare();
    let lock = heap().lock_external();
    ALLOC_LOCK.with(|l| *l.borrow_mut() = Some(lock));
}

extern "C" fn parent() {
    drop(ALLOC_LOCK.with(|l| l.borrow_mut().take()));
    crate::threads::fork_parent();
}

extern "C" fn child() {
    // The child has this thread only: release the heap lock taken in `prepare`, and
    // forget the thread starts and collections of the parent's other threads.
    drop(ALLOC_LOCK.with(|l| l.borrow_mut().take()));
    let starting = crate::threads::fork_child();
    for _ in 0..starting {
        heap().enable();
    }
}

/// Call immediately before `fork` when fork handling is manual (`GC_set_handle_fork(0)`
/// before initialisation): takes the allocation lock (bdwgc's `GC_atfork_prepare`).
#[no_mangle]
pub extern "C" fn GC_atfork_prepare() {
    heap();
    if HANDLE_FORK.load(Ordering::Acquire) <= 0 {
        prepare();
    }
}

/// Call in the parent right after `fork` (bdwgc's `GC_atfork_parent`).
#[no_mangle]
pub extern "C" fn GC_atfork_parent() {
    if HANDLE_FORK.load(Ordering::Acquire) <= 0 {
        parent();
    }
}

/// Call in the child right after `fork` (bdwgc's `GC_atfork_child`).
#[no_mangle]
pub extern "C" fn GC_atfork_child() {
    if HANDLE_FORK.load(Ordering::Acquire) <= 0 {
        child();
    }
}

/// The collector's second signal (bdwgc's restart signal, `SIGXCPU` on Linux, chosen by
/// `GC_set_thr_restart_signal` before `GC_init`): it suspends a thread for
/// `GC_suspend_thread`. Its handler is installed in `GC_init`, as bdwgc installs its
/// restart handler there, so the program finds the same signals taken as with bdwgc.
static SIG_THREAD_SUSPEND: AtomicI32 = AtomicI32::new(libc::SIGXCPU);

/// The collector's second signal (see [`SIG_THREAD_SUSPEND`]).
pub(crate) fn thread_suspend_signal() -> c_int {
    SIG_THREAD_SUSPEND.load(Ordering::Acquire)
}

/// Choose the collector's second signal (bdwgc's `GC_set_thr_restart_signal`). No effect
/// after `GC_init`, as in bdwgc; a number that is no catchable signal, or the suspend
/// signal itself, is reported through the warning procedure and ignored.
#[no_mangle]
pub extern "C" fn GC_set_thr_restart_signal(sig: c_int) {
    if crate::init::GC_is_init_called() != 0 {
        return;
    }
    if sig <= 0
        || sig > libc::SIGRTMAX()
        || sig == libc::SIGKILL
        || sig == libc::SIGSTOP
        || sig == gc_core::world::suspend_signal()
    {
        warn_text(&format!(
            "GC_set_thr_restart_signal({sig}) ignored: not a catchable signal other than the suspend signal"
        ));
        return;
    }
    SIG_THREAD_SUSPEND.store(sig, Ordering::Release);
}
/// Most threads suspended at once.
const MAX_SUSPENDED: usize = 256;

/// One suspended (or being suspended) thread.
struct SuspendSlot {
    /// The thread's `pthread_t` (0: free).
    thread: AtomicUsize,
    /// 0: not suspended yet, 1: suspended (its handler waits).
    suspended: AtomicU32,
    /// 1 once `GC_resume_thread` let it go.
    resume: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: SuspendSlot = SuspendSlot {
    thread: AtomicUsize::new(0),
    suspended: AtomicU32::new(0),
    resume: AtomicU32::new(0),
};

static SLOTS: [SuspendSlot; MAX_SUSPENDED] = [FREE_SLOT; MAX_SUSPENDED];
static SUSPEND_HANDLER: Once = Once::new();

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// The slot of `thread`, if it is suspended or being suspended.
fn slot_of(thread: usize) -> Option<&'static SuspendSlot> {
    SLOTS
        .iter()
        .find(|s| s.thread.load(Ordering::Acquire) == thread)
}

/// Second-signal handler: if this thread is asked to suspend, say so and wait until resumed.
/// Async-signal-safe: atomics and futexes only.
extern "C" fn suspend_handler(_sig: c_int) {
    // SAFETY: errno is thread-local; restoring it keeps the interrupted code's view.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: pthread_self only reads the thread pointer.
    let me = unsafe { libc::pthread_self() } as usize;
    if let Some(slot) = slot_of(me) {
        if slot.suspended.load(Ordering::Acquire) == 0 {
            slot.suspended.store(1, Ordering::Release);
            futex_wake(&slot.suspended);
            while slot.resume.load(Ordering::Acquire) == 0 {
                futex_wait(&slot.resume, 0);
            }
            slot.suspended.store(0, Ordering::Release);
            slot.resume.store(0, Ordering::Release);
            slot.thread.store(0, Ordering::Release);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Install the `GC_suspend_thread` handler on the second signal (once; `GC_init` does).
pub(crate) fn install_suspend_handler() {
    SUSPEND_HANDLER.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the mask stays empty, so the collector's
        // suspend signal can stop (and scan) a suspended thread.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = suspend_handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        let sig = thread_suspend_signal();
        // SAFETY: installs an async-signal-safe handler (atomics and futexes only).
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            warn_text(&format!(
                "GC_suspend_thread: cannot install the handler of signal {sig}"
            ));
        }
    });
}

/// Suspend `thread` until `GC_resume_thread(thread)` (bdwgc's `GC_suspend_thread`).
/// Returns once it is suspended; does nothing if it is already. Collections still scan
/// it. Suspending the calling thread returns only after another thread resumed it.
#[no_mangle]
pub extern "C" fn GC_suspend_thread(thread: libc::pthread_t) {
    let heap = heap();
    install_suspend_handler();
    let t = thread as usize;
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    let claim = || -> Option<&'static SuspendSlot> {
        if slot_of(t).is_some() {
            return None;
        }
        let slot = SLOTS.iter().find(|s| {
            s.thread
                .compare_exchange(0, t, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if slot.is_none() {
            warn_text("GC_suspend_thread: too many suspended threads; not suspended");
        }
        slot
    };
    let send = |slot: &SuspendSlot| -> bool {
        // SAFETY: the caller passes a live thread's id, as to pthread_kill.
        if unsafe { libc::pthread_kill(thread, thread_suspend_signal()) } != 0 {
            slot.thread.store(0, Ordering::Release);
            return false;
        }
        true
    };
    if t == me {
        // The handler runs as pthread_kill returns, and returns once resumed.
        if let Some(slot) = claim() {
            send(slot);
        }
        return;
    }
    // With the allocation lock held the target cannot be holding it (a thread
    // suspended inside the lock would stop every collection).
    heap.with_lock_held(|_| {
        let Some(slot) = claim() else { return };
        if !send(slot) {
            return;
        }
        while slot.suspended.load(Ordering::Acquire) == 0 {
            futex_wait(&slot.suspended, 0);
        }
    });
}

/// Let a thread suspended by `GC_suspend_thread` run again (bdwgc's
/// `GC_resume_thread`); does nothing if it is not suspended.
#[no_mangle]
pub extern "C" fn GC_resume_thread(thread: libc::pthread_t) {
    heap();
    if let Some(slot) = slot_of(thread as usize) {
        if slot.suspended.load(Ordering::Acquire) == 1 {
            slot.resume.store(1, Ordering::Release);
            futex_wake(&slot.resume);
            // Wait until its handler has let the slot go, so that a GC_suspend_thread
            // right after this call suspends it again.
            while slot.thread.load(Ordering::Acquire) == thread as usize {
                std::thread::yield_now();
            }
        }
    }
}

/// 1 if `thread` is suspended by `GC_suspend_thread` (bdwgc's
/// `GC_is_thread_suspended`).
#[no_mangle]
pub extern "C" fn GC_is_thread_suspended(thread: libc::pthread_t) -> c_int {
    slot_of(thread as usize).is_some_and(|s| {
        s.suspended.load(Ordering::Acquire) == 1 && s.resume.load(Ordering::Acquire) == 0
    }) as c_int
}

/// bdwgc's `GC_reachable_object_proc`: `void (*)(void *obj, size_t bytes, void *cd)`.
pub type GcReachableObjectProc =
    Option<unsafe extern "C" fn(obj: *mut c_void, bytes: usize, client_data: *mut c_void)>;

/// Call `proc(obj, bytes, client_data)` for every object the last collection found
/// reachable (its mark bit is set; uncollectable objects included), with the allocation
/// lock held: only from inside `GC_call_with_alloc_lock` or between `GC_alloc_lock` and
/// `GC_alloc_unlock`, as bdwgc requires (bdwgc's `GC_enumerate_reachable_objects_inner`).
/// Called without the lock, it warns and does nothing. `proc` must not allocate or call
/// the collector.
///
/// # Safety
/// `proc` is callable with each object and `client_data`.
#[no_mangle]
pub unsafe extern "C" fn GC_enumerate_reachable_objects_inner(
    proc_: GcReachableObjectProc,
    client_data: *mut c_void,
) {
    let Some(f) = proc_ else { return };
    let walked = heap().for_each_marked_object(|base, len| {
        // SAFETY: the program's procedure, called with a live object and its size.
        unsafe { f(base as *mut c_void, len, client_data) }
    });
    if !walked {
        warn_text("GC_enumerate_reachable_objects_inner: the allocation lock is not held");
    }
}
