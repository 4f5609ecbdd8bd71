//! Leak detection (`GC_find_leak`, `GC_FIND_LEAK`) and the collection-time check of
//! debug objects, and bdwgc's report of both (`GC_print_all_errors`).
//!
//! While leak detection or the debug allocator is in use, gc-core shows every allocated
//! object to [`visit`] just before each sweep (gc-core's sweep-visit hook), with the
//! world stopped:
//! - a live object with debug information whose header or trailer was overwritten is
//!   noted as smashed (at most 20 per collection, bdwgc's `MAX_SMASHED`);
//! - in leak mode, an unreachable object is noted as leaked and kept by this sweep
//!   (at most 40 per collection, bdwgc's `MAX_LEAKED`; the others are freed
//!   unreported, as in bdwgc, and later collections report more).
//!
//! After the collection, the next allocation or `GC_gcollect` prints what was noted,
//! in bdwgc's words, to stderr:
//!
//! ```text
//! GC_check_heap_block: found 1 smashed heap objects:
//!  0x7f.. in or near object at 0x7f.. (prog.c:10, sz= 10)
//! Found 2 leaked objects:
//! 0x7f.. (prog.c:14, sz= 24, NORMAL)
//! object at 0x7f.. of appr. 48 bytes (composite)
//! ```
//!
//! and then frees the leaked objects (bdwgc does the same). With `GC_ABORT_ON_LEAK`
//! set, it then aborts with "Leaked or smashed objects encountered", as bdwgc.
//!
//! Leak mode is on when `GC_find_leak` is nonzero at initialisation (the variable,
//! `GC_set_find_leak(1)` or `GC_FIND_LEAK` in the environment), or after
//! `GC_set_find_leak(1)`; writing the variable directly after initialisation takes
//! effect once a debug object is allocated or `GC_set_find_leak` is called (the hook
//! is installed then). As in bdwgc, a program that enabled it before initialisation
//! also collects once at exit, so leaks still reachable from nowhere are reported.

use crate::debug::{self, HEADER_BYTES};
use crate::init::heap;
use gc_core::api::capi_hooks::set_sweep_visit_hook;
use gc_core::api::options::getenv;
use gc_core::ObjectKind;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// bdwgc's `GC_find_leak`: nonzero turns leak detection on. Exported as a variable, as
/// in bdwgc; prefer `GC_set_find_leak`.
#[no_mangle]
pub static mut GC_find_leak: c_int = 0;

/// bdwgc's `MAX_LEAKED`.
const MAX_LEAKED: usize = 40;
/// bdwgc's `MAX_SMASHED`.
const MAX_SMASHED: usize = 20;

static LEAKED: [AtomicUsize; MAX_LEAKED] = [const { AtomicUsize::new(0) }; MAX_LEAKED];
static N_LEAKED: AtomicUsize = AtomicUsize::new(0);
static SMASHED: [AtomicUsize; MAX_SMASHED] = [const { AtomicUsize::new(0) }; MAX_SMASHED];
static N_SMASHED: AtomicUsize = AtomicUsize::new(0);
/// Something was noted or reported since the last check (bdwgc's `GC_have_errors`).
static HAVE_ERRORS: AtomicBool = AtomicBool::new(false);
static HOOK_INSTALLED: AtomicBool = AtomicBool::new(false);

/// True in leak-detection mode.
pub(crate) fn find_leak() -> bool {
    // SAFETY: a plain read of an exported int that the program may write; a torn or
    // stale value only delays the mode change.
    unsafe { std::ptr::read_volatile(&raw const GC_find_leak) != 0 }
}

/// Note that an error was reported (so `GC_ABORT_ON_LEAK` applies).
pub(crate) fn note_error() {
    HAVE_ERRORS.store(true, Ordering::Release);
}

/// Install gc-core's sweep-visit hook (once).
pub(crate) fn install_hook() {
    if !HOOK_INSTALLED.swap(true, Ordering::AcqRel) {
        set_sweep_visit_hook(Some(visit));
    }
}

/// Called at initialisation: honour `GC_FIND_LEAK` and an early `GC_find_leak`.
pub(crate) fn init() {
    if getenv(c"GC_FIND_LEAK").is_some() {
        // SAFETY: initialisation runs before the program's other GC calls return; a
        // plain store to the exported int.
        unsafe { std::ptr::write_volatile(&raw mut GC_find_leak, 1) };
    }
    if find_leak() {
        install_hook();
        // SAFETY: registers an extern "C" fn with no arguments valid for the process.
        if unsafe { libc::atexit(exit_check) } != 0 {
            crate::warn::warn_text("GC_find_leak: could not register the exit check");
        }
    }
}

extern "C" fn exit_check() {
    if find_leak() {
        crate::collect::GC_gcollect();
    }
}

/// The hook: see the module documentation. Runs with the world stopped: no allocation,
/// no locks.
fn visit(base: usize, len: usize, live: bool) -> bool {
    if live {
        if debug::debugging_started() {
            // SAFETY: gc-core passes a live allocated object `[base, base + len)`.
            if unsafe { debug::has_debug_info(base, len) } {
                // SAFETY: as above; has_debug_info checked the size.
                if let Some(c) = unsafe { debug::check_annotated(base, len) } {
                    push(&SMASHED, &N_SMASHED, c);
                }
            }
        }
        return false;
    }
    find_leak() && push(&LEAKED, &N_LEAKED, base)
}

/// Append `v` to a fixed list; false if it is full.
fn push(list: &[AtomicUsize], n: &AtomicUsize, v: usize) -> bool {
    let i = n.load(Ordering::Acquire);
    if i >= list.len() {
        return false;
    }
    list[i].store(v, Ordering::Release);
    n.store(i + 1, Ordering::Release);
    HAVE_ERRORS.store(true, Ordering::Release);
    true
}

/// Take the noted values (and empty the list).
fn take(list: &[AtomicUsize], n: &AtomicUsize) -> Vec<usize> {
    let k = n.swap(0, Ordering::AcqRel).min(list.len());
    list[..k]
        .iter()
        .map(|a| a.swap(0, Ordering::AcqRel))
        .filter(|&v| v != 0)
        .collect()
}

/// Print and clear the noted errors, if any (cheap when there are none); called after
/// allocations and `GC_gcollect`.
#[inline]
pub(crate) fn report_if_any() {
    if HAVE_ERRORS.load(Ordering::Relaxed) {
        print_all_errors();
    }
}

#[cold]
fn print_all_errors() {
    if !HAVE_ERRORS.swap(false, Ordering::AcqRel) {
        return;
    }
    let heap = heap();
    let smashed = take(&SMASHED, &N_SMASHED);
    if !smashed.is_empty() {
        eprintln!(
            "GC_check_heap_block: found {} smashed heap objects:",
            smashed.len()
        );
        for c in smashed {
            if let Some(base) = heap.base_of(c) {
                debug::print_smashed("", base + HEADER_BYTES, c);
            }
        }
    }
    let leaked = take(&LEAKED, &N_LEAKED);
    if !leaked.is_empty() {
        eprintln!("Found {} leaked objects:", leaked.len());
        for &base in &leaked {
            print_heap_obj(heap, base);
        }
        for base in leaked {
            crate::alloc::GC_free(base as *mut c_void);
        }
    }
    if getenv(c"GC_ABORT_ON_LEAK").is_some() {
        eprintln!("Leaked or smashed objects encountered");
        std::process::abort();
    }
}

/// Describe a heap object as bdwgc's `GC_print_heap_obj` does.
fn print_heap_obj(heap: &gc_core::Heap, base: usize) {
    let Some(info) = heap.find_object(base) else {
        return;
    };
    // SAFETY: `base` is a live object of `info.len_bytes` bytes (kept by the sweep).
    if unsafe { debug::has_debug_info(base, info.len_bytes) } {
        // SAFETY: as above; it has a header.
        let h = unsafe { debug::read_header(base) };
        let kind = match info.kind {
            ObjectKind::Atomic => "PTRFREE",
            ObjectKind::Uncollectable => "UNCOLLECTABLE",
            _ => "NORMAL",
        };
        eprintln!(
            "{:#x} ({}:{}, sz= {}, {kind})",
            base + HEADER_BYTES,
            debug::file_name(h.file),
            h.line as i32,
            h.size
        );
    } else {
        let kind = match info.kind {
            ObjectKind::Atomic => "atomic",
            ObjectKind::Uncollectable => "uncollectable",
            _ => "composite",
        };
        eprintln!(
            "object at {base:#x} of appr. {} bytes ({kind})",
            info.len_bytes
        );
    }
}

/// Turn leak detection on or off (bdwgc's `GC_set_find_leak`).
#[no_mangle]
pub extern "C" fn GC_set_find_leak(value: c_int) {
    // SAFETY: a plain store to the exported int.
    unsafe { std::ptr::write_volatile(&raw mut GC_find_leak, value) };
    if value != 0 && crate::init::GC_is_init_called() != 0 {
        install_hook();
    }
}

/// Nonzero in leak-detection mode (bdwgc's `GC_get_find_leak`).
#[no_mangle]
pub extern "C" fn GC_get_find_leak() -> c_int {
    find_leak() as c_int
}

/// Print "Insufficient memory for the allocation" and exit with status 1 (bdwgc's
/// `GC_abort_on_oom`, used by `gc_cpp.h` built with `GC_NEW_ABORTS_ON_OOM`).
#[no_mangle]
pub extern "C" fn GC_abort_on_oom() -> ! {
    eprintln!("Insufficient memory for the allocation");
    std::process::exit(1)
}
