//! The C types of bdwgc's API, as they appear in `gc.h`.

use std::ffi::{c_char, c_void};

/// bdwgc's `GC_word`: an unsigned integer the size of a pointer.
pub type GcWord = usize;

/// bdwgc's `GC_finalization_proc`: `void (*)(void *obj, void *client_data)`.
pub type GcFinalizationProc = Option<unsafe extern "C" fn(obj: *mut c_void, cd: *mut c_void)>;

/// bdwgc's `GC_warn_proc`: `void (*)(char *msg, GC_word arg)`.
pub type GcWarnProc = Option<unsafe extern "C" fn(msg: *mut c_char, arg: GcWord)>;

/// bdwgc's `GC_oom_func`: `void *(*)(size_t bytes_requested)`.
pub type GcOomFunc = Option<unsafe extern "C" fn(bytes_requested: usize) -> *mut c_void>;

/// bdwgc's `GC_stack_base_func`: `void *(*)(struct GC_stack_base *, void *arg)`.
pub type GcStackBaseFunc =
    Option<unsafe extern "C-unwind" fn(sb: *mut GcStackBase, arg: *mut c_void) -> *mut c_void>;

/// A thread's start routine, as `pthread_create` takes it. Declared `C-unwind`: glibc's
/// `pthread_exit` and `pthread_cancel` unwind through the start routine's callers.
pub type StartRoutine = unsafe extern "C-unwind" fn(arg: *mut c_void) -> *mut c_void;

/// bdwgc's `struct GC_stack_base` on x86_64: the cold end of a thread's stack.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcStackBase {
    /// The highest address of the stack (stacks grow down).
    pub mem_base: *mut c_void,
}

/// bdwgc's `GC_SUCCESS`.
pub const GC_SUCCESS: i32 = 0;
/// bdwgc's `GC_DUPLICATE`: already registered.
pub const GC_DUPLICATE: i32 = 1;
/// bdwgc's `GC_NO_THREADS` (no longer returned by bdwgc either).
pub const GC_NO_THREADS: i32 = 2;
/// bdwgc's `GC_UNIMPLEMENTED`.
pub const GC_UNIMPLEMENTED: i32 = 3;
/// bdwgc's `GC_NOT_FOUND`.
pub const GC_NOT_FOUND: i32 = 4;

/// The bdwgc release whose API this library follows (`GC_get_version`).
pub const GC_VERSION_MAJOR: u32 = 8;
/// Minor part of the followed bdwgc release.
pub const GC_VERSION_MINOR: u32 = 2;
/// Micro part of the followed bdwgc release.
pub const GC_VERSION_MICRO: u32 = 0;
