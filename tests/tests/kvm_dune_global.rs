//! Issue 8's integration: a program whose global allocator is the collector enters Dune
//! process-wide at start, switches incremental marking to the Dune backend (hardware
//! page-table dirty bits), and runs an ordinary multi-threaded workload — threads created
//! inside Dune on their own vCPUs, `Gc<T>` graphs shared between them, std collections,
//! channels, file I/O — with collections (stop-the-world over Dune threads, guest
//! registers scanned) happening throughout. Every object is checked.

use dunegc_tests::dune_workload::workload;
use gc_core::{global_heap, Backend, BackendChoice, GcAllocator};

#[global_allocator]
static GLOBAL: GcAllocator = GcAllocator;

fn main() {
    // SAFETY: gettid/getpid have no preconditions.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    assert!(main_thread, "harness = false runs on the main thread");
    if let Err(e) = gc_core::dirty::dune::enter_process() {
        if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
            panic!("kvm_dune_global: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
        }
        println!("SKIPPED kvm_dune_global: {e}");
        return;
    }
    let heap = global_heap();
    let backend = heap
        .enable_incremental(BackendChoice::Exactly(Backend::Dune))
        .expect("the Dune backend opens in Dune mode");
    assert_eq!(backend, Backend::Dune);
    workload();
    let st = heap.stats();
    assert_eq!(st.backend, Some(Backend::Dune), "{st}");
    assert!(
        st.incremental_cycles >= 1,
        "no incremental cycle ran on the Dune backend: {st}"
    );
    assert!(!st.backend_note.contains("arming failed"), "{st}");
    println!("{st}");
    println!("test multithreaded_global_allocator_program_in_dune ... ok ({} incremental cycles, {} full, {} dirty pages, max pause {:?})", st.incremental_cycles, st.full_collections, st.dirty_pages, st.max_pause);
    println!("1 passed, 0 failed");
}
