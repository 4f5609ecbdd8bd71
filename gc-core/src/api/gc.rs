//! `Gc<T>`: a copyable pointer to a collected object.
//!
//! `Gc::new(v)` moves `v` into the heap; the object lives while any pointer to it (or into
//! it) is visible to the collector: in another heap object, on a stack, in registers, in
//! static data or TLS. `Gc<T>` is `Copy` and gives `&T`; use `Cell`/`RefCell`/atomics
//! inside `T` for mutation.
//!
//! Finalization: when `T` needs `Drop`, its `drop` runs after the object became
//! unreachable, on the heap's finalizer thread (started on first need), never inside the
//! collector or an allocation. As in Java and Alloy: there is no promise *when* (or, at
//! process exit, *whether*) a finalizer runs; objects reachable from a finalizable object
//! stay allocated until it has run, but they may have been finalized already (no order
//! among `Gc` finalizers), so a `Drop` impl must not rely on other `Gc` fields' `Drop`
//! state. A finalized object is reclaimed at a later collection.
//!
//! `T` must be `Send + Sync` when it needs `Drop`, because `drop` runs on another thread.

use crate::api::global_heap;
use crate::error::GcError;
use crate::finalize::{Finalizer, FinalizerOrder};
use crate::heap::kind::ObjectKind;
use crate::heap::Heap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Once;
use std::time::Duration;

/// A pointer to a garbage-collected `T`.
pub struct Gc<T: ?Sized> {
    ptr: NonNull<T>,
    _marker: PhantomData<T>,
}

impl<T: ?Sized> Clone for Gc<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Gc<T> {}

// SAFETY: Gc<T> hands out &T only; sharing it across threads is sharing &T, which needs
// T: Sync; sending it also needs T: Send because the object may be dropped (finalized)
// on another thread.
unsafe impl<T: ?Sized + Sync + Send> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync + Send> Sync for Gc<T> {}

unsafe fn drop_value<T>(obj: usize, _data: usize) {
    // SAFETY: obj holds an initialised T written by Gc::new_in, dropped exactly once (the
    // finalizer queue hands out each entry once).
    unsafe { std::ptr::drop_in_place(obj as *mut T) };
}

static FINALIZER_THREAD: Once = Once::new();

fn ensure_finalizer_thread(heap: &'static Heap) {
    if !std::ptr::eq(heap, global_heap()) {
        return;
    }
    FINALIZER_THREAD.call_once(|| {
        let spawned = std::thread::Builder::new().name("dunegc-finalizer".into()).spawn(move || loop {
            heap.wait_for_finalizers(Duration::from_millis(100));
            heap.run_finalizers();
        });
        if let Err(e) = spawned {
            eprintln!("dunegc: could not start the finalizer thread ({e}); call Heap::run_finalizers yourself");
        }
    });
}

impl<T: Send + Sync + 'static> Gc<T> {
    /// Move `value` into the global heap. Aborts via `handle_alloc_error` on out of memory,
    /// like `Box::new`.
    pub fn new(value: T) -> Gc<T> {
        Self::try_new_in(global_heap(), value, ObjectKind::Normal)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>()))
    }

    /// Like `new`, but the object is never scanned for pointers: use it for data without
    /// pointers into the heap (numbers, strings of bytes held inline).
    pub fn new_atomic(value: T) -> Gc<T> {
        Self::try_new_in(global_heap(), value, ObjectKind::Atomic)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<T>()))
    }

    /// Move `value` into `heap` as an object of `kind`.
    pub fn try_new_in(heap: &'static Heap, value: T, kind: ObjectKind) -> Result<Gc<T>, GcError> {
        let addr = heap.alloc(kind, std::mem::size_of::<T>(), std::mem::align_of::<T>())?;
        let ptr = addr as *mut T;
        // SAFETY: the heap returned a fresh block of at least size_of::<T>() bytes with
        // T's alignment.
        unsafe { ptr.write(value) };
        if std::mem::needs_drop::<T>() {
            heap.register_new_finalizer(Finalizer {
                obj: addr,
                func: drop_value::<T>,
                data: 0,
                order: FinalizerOrder::NoOrder,
            });
            ensure_finalizer_thread(heap);
        }
        Ok(Gc {
            ptr: NonNull::new(ptr).expect("heap addresses are never null"),
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized> Gc<T> {
    /// The object's address.
    pub fn as_ptr(this: Gc<T>) -> *const T {
        this.ptr.as_ptr()
    }

    /// True if both point to the same object.
    pub fn ptr_eq(a: Gc<T>, b: Gc<T>) -> bool {
        std::ptr::addr_eq(a.ptr.as_ptr(), b.ptr.as_ptr())
    }
}

impl<T: ?Sized> Deref for Gc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a Gc<T> exists only for an initialised object, which the collector keeps
        // alive while this pointer is visible to it (it is on the stack, in registers, or
        // in a scanned object whenever `self` is reachable by the program).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + std::fmt::Display> std::fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}
