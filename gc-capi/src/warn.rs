//! Warnings, as bdwgc reports them: a `printf`-style format and one word argument passed
//! to the warning procedure (`GC_set_warn_proc`). The default procedure prints
//! `GC Warning: ` and the formatted message to stderr, like bdwgc's.

use crate::types::{GcWarnProc, GcWord};
use std::ffi::{c_char, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    /// glibc's `dprintf` (not bound by the libc crate).
    fn dprintf(fd: std::ffi::c_int, format: *const c_char, ...) -> std::ffi::c_int;
}

/// The installed warning procedure as an address; 0 means the default one.
static WARN_PROC: AtomicUsize = AtomicUsize::new(0);

/// The default warning procedure: `GC Warning: ` and the message formatted with `arg`,
/// on stderr.
unsafe extern "C" fn default_warn_proc(msg: *mut c_char, arg: GcWord) {
    const PREFIX: &[u8] = b"GC Warning: ";
    // SAFETY: writes a static buffer to fd 2.
    unsafe { libc::write(2, PREFIX.as_ptr().cast(), PREFIX.len()) };
    // SAFETY: `msg` is a NUL-terminated format made by `warn` (ours, or a caller-built
    // one escaped by `warn_text`) with at most one conversion, which takes a word.
    unsafe { dprintf(2, msg, arg) };
}

/// The procedure that receives warnings now.
fn current() -> unsafe extern "C" fn(*mut c_char, GcWord) {
    let p = WARN_PROC.load(Ordering::Acquire);
    if p == 0 {
        return default_warn_proc;
    }
    // SAFETY: only `GC_set_warn_proc` stores a non-zero value, and it stores the address
    // of a non-null `extern "C" fn(char *, GC_word)` that its caller promised stays valid.
    unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_char, GcWord)>(p) }
}

/// Report a warning: `msg` is a `printf` format with at most one conversion, which
/// consumes `arg` (a word: `%p`, `%lu`, `%lx`, `%ld`).
pub(crate) fn warn(msg: &CStr, arg: GcWord) {
    let proc_ = current();
    // SAFETY: the procedure is the default one or a caller-installed valid one; it gets
    // a NUL-terminated string that lives across the call (bdwgc's contract: the message
    // is not modified or kept).
    unsafe { proc_(msg.as_ptr().cast_mut(), arg) };
}

/// Report a warning whose text is built at run time: `%` in `text` is escaped, so the
/// message has no conversion and `arg` is passed along unused (as 0 if not needed).
pub(crate) fn warn_text(text: &str) {
    let escaped = text.replace('%', "%%").replace('\0', " ");
    let msg = CString::new(escaped + "\n").expect("NUL bytes were replaced");
    warn(&msg, 0);
}

/// Install the warning procedure (bdwgc's `GC_set_warn_proc`). A NULL `p` (which bdwgc
/// forbids) restores the default procedure.
///
/// # Safety
/// `p`, if not NULL, must be a function with the C signature
/// `void p(char *msg, GC_word arg)` that stays callable for the rest of the process; it
/// may be called from any thread, including from inside other `GC_*` calls.
#[no_mangle]
pub unsafe extern "C" fn GC_set_warn_proc(p: GcWarnProc) {
    WARN_PROC.store(p.map_or(0, |f| f as usize), Ordering::Release);
}

/// The current warning procedure (bdwgc's `GC_get_warn_proc`); the default one if none
/// was installed.
#[no_mangle]
pub extern "C" fn GC_get_warn_proc() -> GcWarnProc {
    Some(current())
}

/// A warning procedure that ignores every warning (bdwgc's `GC_ignore_warn_proc`).
///
/// # Safety
/// None: the arguments are not used.
#[no_mangle]
pub unsafe extern "C" fn GC_ignore_warn_proc(_msg: *mut c_char, _arg: GcWord) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    static SEEN: AtomicU64 = AtomicU64::new(0);

    unsafe extern "C" fn record(_msg: *mut c_char, arg: GcWord) {
        SEEN.store(arg as u64, Ordering::SeqCst);
    }

    #[test]
    fn installed_proc_receives_the_argument_and_null_restores_default() {
        // SAFETY: `record` is a valid warn proc for the whole test process.
        unsafe { GC_set_warn_proc(Some(record)) };
        warn(c"test %lu\n", 42);
        assert_eq!(SEEN.load(Ordering::SeqCst), 42);
        // SAFETY: NULL restores the default.
        unsafe { GC_set_warn_proc(None) };
        assert_eq!(
            GC_get_warn_proc().map(|f| f as usize),
            Some(default_warn_proc as *const () as usize)
        );
    }
}
