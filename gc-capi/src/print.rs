//! bdwgc's printing functions and the abort function: `GC_printf` (to stdout),
//! `GC_err_printf` (to stderr), `GC_log_printf` (to the log, stderr unless
//! `GC_set_log_fd`), and `GC_set_abort_func` / `GC_on_abort`, called on fatal errors.
//!
//! The printing functions are C-variadic, which stable Rust cannot define. Their
//! bodies are C (`csrc/printf.c`, compiled by `build.rs`, hidden); each exported name
//! here is a naked function that only jumps there, so the caller's argument registers
//! (and `%al`, the count of vector registers) and stack arrive untouched, exactly as in
//! a direct call.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicPtr, Ordering};

extern "C" {
    fn dunegc_printf_impl(fmt: *const c_char, ...);
    fn dunegc_err_printf_impl(fmt: *const c_char, ...);
    fn dunegc_log_printf_impl(fmt: *const c_char, ...);
    fn dunegc_set_log_fd_impl(fd: c_int);
}

/// `void GC_printf(const char *format, ...)`: print to standard output, as `printf`
/// (bdwgc's; exported by bdwgc without a header declaration).
///
/// # Safety
/// Called from C with a format string and matching arguments, as `printf`. The Rust
/// signature lists no parameters: the function only jumps to the C implementation.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn GC_printf() {
    core::arch::naked_asm!("jmp {}", sym dunegc_printf_impl)
}

/// `void GC_err_printf(const char *format, ...)`: print to standard error (bdwgc's).
///
/// # Safety
/// As [`GC_printf`].
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn GC_err_printf() {
    core::arch::naked_asm!("jmp {}", sym dunegc_err_printf_impl)
}

/// `void GC_log_printf(const char *format, ...)`: print to the log file descriptor
/// (standard error unless `GC_set_log_fd` changed it; bdwgc's).
///
/// # Safety
/// As [`GC_printf`].
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn GC_log_printf() {
    core::arch::naked_asm!("jmp {}", sym dunegc_log_printf_impl)
}

/// Send `GC_log_printf` output to `fd` from now on (bdwgc's `GC_set_log_fd`).
#[no_mangle]
pub extern "C" fn GC_set_log_fd(fd: c_int) {
    // SAFETY: stores an int in the shim's log descriptor; no other effect.
    unsafe { dunegc_set_log_fd_impl(fd) }
}

/// bdwgc's `GC_abort_func`: `void (*)(const char *msg)`.
pub type GcAbortFunc = Option<unsafe extern "C" fn(msg: *const c_char)>;

/// The default abort function: `msg` and a newline to stderr (bdwgc's).
unsafe extern "C" fn default_abort_func(msg: *const c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: the collector passes a NUL-terminated message.
    let bytes = unsafe { std::ffi::CStr::from_ptr(msg) }.to_bytes();
    // SAFETY: writes our buffers to fd 2.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
}

/// bdwgc's `GC_on_abort` (exported by bdwgc without a header declaration; set through
/// `GC_set_abort_func`): called with the message on a fatal error, before the process
/// aborts.
#[no_mangle]
pub static GC_on_abort: AtomicPtr<c_void> = AtomicPtr::new(default_abort_func as *mut c_void);

/// Install the function called on fatal errors before the process aborts (bdwgc's
/// `GC_set_abort_func`; NULL, which bdwgc forbids, restores the default).
///
/// # Safety
/// `f` stays callable for the rest of the process.
#[no_mangle]
pub unsafe extern "C" fn GC_set_abort_func(f: GcAbortFunc) {
    let f = f.map_or(default_abort_func as *mut c_void, |f| f as *mut c_void);
    GC_on_abort.store(f, Ordering::Release);
}

/// The abort function (bdwgc's `GC_get_abort_func`).
#[no_mangle]
pub extern "C" fn GC_get_abort_func() -> GcAbortFunc {
    Some(abort_func())
}

fn abort_func() -> unsafe extern "C" fn(*const c_char) {
    let p = GC_on_abort.load(Ordering::Acquire);
    if p.is_null() {
        return default_abort_func;
    }
    // SAFETY: GC_on_abort holds the address of a `void (*)(const char *)`: the default,
    // one from GC_set_abort_func, or one the program assigned.
    unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*const c_char)>(p) }
}

/// Tell the abort function about a fatal error (it may not return; the caller aborts
/// after it if it does).
pub(crate) fn call_abort_func(msg: &str) {
    let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the abort function takes a NUL-terminated message, valid for the call.
    unsafe { abort_func()(msg.as_ptr()) };
}
