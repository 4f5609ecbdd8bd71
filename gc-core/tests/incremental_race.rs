//! The lost-object race of mostly-parallel marking, made deterministic: an incremental
//! cycle marks everything reachable, then the mutator allocates a new (unmarked) object
//! and stores the only pointer to it into an already-scanned object. Only the dirty
//! tracker can tell the finish to rescan that object; if it misses the write, the new
//! object is freed while reachable. Run for every backend available here.

mod support;

use support::race::race_once;
use support::*;

#[test]
fn writes_into_scanned_objects_are_never_lost() {
    for (name, choice) in configurations().into_iter().skip(1) {
        let heap = heap_for(choice).expect("heap");
        for _ in 0..20 {
            race_once(heap);
        }
        let st = heap.stats();
        assert!(
            st.incremental_cycles >= 20,
            "{name}: cycles did not run: {st}"
        );
        println!(
            "{name}: {} cycles, {} dirty pages reported",
            st.incremental_cycles, st.dirty_pages
        );
    }
}
