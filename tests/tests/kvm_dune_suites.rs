//! gc-core's collector suites run in incremental mode on the Dune backend, with the whole
//! process in Dune: the graph property test (random graphs with interior pointers mutated
//! during marking, collections at random points, every reachable checksum verified), the
//! multi-threaded churn (six threads created inside Dune on two cores, sharing a graph,
//! collecting from any thread), and the deterministic lost-object race. The suites are
//! gc-core's own (`gc-core/tests/support`), not copies. Marking runs on the heap's marker
//! threads (`DUNEGC_MARKERS`, default the CPUs), which must be in Dune as well.

#[allow(unused_imports)]
#[path = "../../gc-core/tests/support/mod.rs"]
mod support;

use gc_core::{Backend, BackendChoice};
use proptest::test_runner::{Config, TestRunner};

fn main() {
    // SAFETY: gettid/getpid have no preconditions.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    assert!(main_thread, "harness = false runs on the main thread");
    if let Err(e) = gc_core::dirty::dune::enter_process() {
        if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
            panic!("kvm_dune_suites: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}");
        }
        println!("SKIPPED kvm_dune_suites: {e}");
        return;
    }
    let dune = BackendChoice::Exactly(Backend::Dune);
    let heap = support::heap_for(dune).expect("a heap on the Dune backend");

    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(support::ops::op(), 1..120);
    runner
        .run(&strategy, |ops| {
            support::ops::run_case(dune, &ops);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("graph proptest on the Dune backend: {e}"));
    println!("test graphs_survive_incremental_marking_on_dune ... ok");

    let (collections, seen, reachable) = support::churn::run_churn(heap);
    assert!(collections >= 4, "too few collections: {}", heap.stats());
    println!("test shared_graph_survives_dune_threads_and_collections ... ok ({collections} collections, {seen} objects walked, {reachable} reachable)");

    for _ in 0..20 {
        support::race::race_once(heap);
    }
    println!("test writes_into_scanned_objects_are_never_lost_on_dune ... ok");

    // Mostly-concurrent marking inside Dune: the helpers (in Dune, on their own vCPUs)
    // trace while this thread writes nothing; the hardware dirty bits must show no heap
    // page written by them. With one marker there are no helpers: the cycle takes steps.
    let mut quiet = 0;
    for _ in 0..3 {
        let o = support::concurrent::quiet_concurrent_cycle(heap, 41);
        println!("quiet cycle on dune: {o:?}");
        if heap.stats().markers > 1 {
            support::concurrent::check_quiet_cycle("dune", &o);
            quiet += 1;
        }
    }
    println!("test concurrent_markers_write_no_heap_page_on_dune ... ok ({quiet} concurrent cycles checked)");

    let st = heap.stats();
    assert_eq!(st.backend, Some(Backend::Dune), "{st}");
    assert!(st.incremental_cycles >= 20, "{st}");
    assert!(!st.backend_note.contains("arming failed"), "{st}");
    // The collector's marker threads were created by a thread in Dune (at the first
    // collection, after `enter_process`), so dune-hw put them in Dune too. They never
    // write heap pages either way (gc-core's `parallel_marking` test checks that).
    assert_eq!(st.marker_threads, st.markers - 1, "{st}");
    assert_eq!(st.markers_in_dune, st.marker_threads, "{st}");
    println!("{st}");
    println!("4 passed, 0 failed");
}
