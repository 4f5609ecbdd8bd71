//! The collector's ledger counts what the collector did: every incremental cycle arms the
//! tracker once and collects once (plus once more each for a concurrent cycle's
//! pre-cleaning pause), with the pages armed and the dirty pages reported the
//! heap's own statistics also see, and the mprotect tracker's write faults. Own binary: the
//! ledger is process-wide.

mod support;

use gc_core::{Backend, BackendChoice};
use support::race::race_once;
use support::*;

#[test]
fn ledger_matches_the_heaps_own_statistics() {
    let before = gc_core::collector_ledger();
    let heap = heap_for(BackendChoice::Exactly(Backend::Mprotect)).expect("heap");
    for _ in 0..3 {
        race_once(heap);
    }
    let l = gc_core::collector_ledger().since(&before);
    let st = heap.stats();
    assert_eq!(l.arms, st.incremental_cycles + st.precleans, "{l}\n{st}");
    assert_eq!(
        l.collects,
        st.incremental_cycles + st.precleans,
        "{l}\n{st}"
    );
    assert_eq!(l.pages_reported, st.dirty_pages, "{l}\n{st}");
    assert!(l.pages_armed >= l.arms, "every arm covers the heap: {l}");
    // each race stores a pointer into an object scanned before: a write fault on an armed,
    // write-protected page
    assert!(l.write_faults >= 3, "{l}");
    assert!(l.arm_time > std::time::Duration::ZERO && l.collect_time > std::time::Duration::ZERO);
}
