//! Property test: random object graphs (with interior pointers) mutated at random, with
//! collections and incremental mark steps at random points, under full collections and
//! every incremental backend available. Every reachable object's checksum is verified
//! after every operation: no live object is ever freed or overwritten. At the end, with
//! every root dropped, the heap returns to a small bound: unreachable objects are reclaimed.

mod support;

use proptest::prelude::*;
use support::ops::*;
use support::*;

// One proptest per configuration keeps failures attributable; each runs the same
// strategy. The roots are process-global statics, so cases run one at a time (a mutex).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, .. ProptestConfig::default() })]

    #[test]
    fn graphs_survive_full_collections(ops in proptest::collection::vec(op(), 1..120)) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        run_case(gc_core::BackendChoice::Exactly(gc_core::Backend::None), &ops);
    }

    #[test]
    fn graphs_survive_incremental_marking_every_backend(ops in proptest::collection::vec(op(), 1..120)) {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        for (_, choice) in configurations().into_iter().skip(1) {
            run_case(choice, &ops);
        }
    }
}
