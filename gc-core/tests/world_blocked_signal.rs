//! Stop-the-world with threads that block the suspend signal (SIGPWR): glibc does so
//! briefly while a thread starts and exits, a program may do it on purpose. A thread that
//! blocks it for a while is waited for (and its stack scanned) once it unblocks; one that
//! never unblocks is given up on after a bounded wait, with a warning — never a hang.

use gc_core::{HeapBuilder, ObjectKind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The tests stop the whole process: one at a time, or one's blocking thread would show
/// up in the other's collection.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn block_sigpwr(block: bool) {
    // SAFETY: a zeroed sigset is valid input to sigemptyset; pthread_sigmask changes only
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPWR);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
    }
}

#[test]
fn briefly_blocking_thread_is_waited_for_and_scanned() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .build()
        .unwrap();
    static READY: AtomicBool = AtomicBool::new(false);
    static ADDR: AtomicUsize = AtomicUsize::new(0);
    let t = std::thread::spawn(move || {
        block_sigpwr(true);
        // The only reference to this object lives on this thread's stack (ADDR holds it
        // disguised, so statics do not keep it alive).
        let obj = heap.alloc(ObjectKind::Normal, 64, 8).unwrap();
        // SAFETY: fresh 64-byte object.
        unsafe { *(obj as *mut u64) = 0xfeed_f00d };
        ADDR.store(!obj, Ordering::Release);
        READY.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_millis(400));
        block_sigpwr(false);
        std::thread::sleep(Duration::from_millis(200));
        let obj = std::hint::black_box(obj);
        // SAFETY: the object must still be live: it was on our stack all along.
        assert_eq!(unsafe { *(obj as *const u64) }, 0xfeed_f00d);
        assert!(heap.find_object(obj).is_some());
    });
    while !READY.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    heap.collect().unwrap();
    let waited = t0.elapsed();
    let obj = !ADDR.load(Ordering::Acquire);
    assert!(
        heap.find_object(obj).is_some(),
        "object held only by a briefly-blocking thread was freed"
    );
    assert_eq!(heap.stats().threads_skipped, 0);
    assert!(
        waited >= Duration::from_millis(200),
        "collection did not wait for the blocking thread ({waited:?})"
    );
    t.join().unwrap();
}

#[test]
fn permanently_blocking_thread_does_not_hang_the_collector() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let heap = HeapBuilder::new()
        .max_space_bytes(64 << 20)
        .build()
        .unwrap();
    static STOP: AtomicBool = AtomicBool::new(false);
    static UP: AtomicBool = AtomicBool::new(false);
    let t = std::thread::spawn(|| {
        block_sigpwr(true);
        UP.store(true, Ordering::Release);
        while !STOP.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    while !UP.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    heap.collect().unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "stop-the-world took {took:?}"
    );
    assert!(
        heap.stats().threads_skipped >= 1,
        "the blocking thread was not reported"
    );
    STOP.store(true, Ordering::Release);
    t.join().unwrap();
}
