//! Multi-threaded churn: six threads on two cores share one object graph through static
//! roots, allocate, rewire and drop pointers at random, verify every object they reach,
//! and trigger collections from any thread — under full collections and every
//! incremental backend available. A live object freed or overwritten fails the test.

mod support;

use support::churn::run_churn;
use support::*;

#[test]
fn shared_graph_survives_threads_and_collections() {
    for (name, choice) in configurations() {
        let heap = heap_for(choice).expect("heap");
        let (collections, seen, reachable) = run_churn(heap);
        println!("{name}: {collections} collections, {seen} objects walked, {reachable} reachable at the end");
        assert!(
            collections >= 4,
            "{name}: too few collections: {}",
            heap.stats()
        );
    }
}
