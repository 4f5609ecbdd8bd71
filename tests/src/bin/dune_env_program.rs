//! A program that knows nothing about Dune: `GcAllocator` as its global allocator and an
//! ordinary multi-threaded workload. Run with `DUNEGC_DIRTY=dune`, the collector puts it
//! into Dune mode process-wide at start-up and collects incrementally from the hardware
//! dirty bits; it prints one line with the backend and the collections it saw.

use gc_core::{global_heap, GcAllocator};

#[global_allocator]
static GLOBAL: GcAllocator = GcAllocator;

fn main() {
    dunegc_tests::dune_workload::workload();
    let st = global_heap().stats();
    println!(
        "dune-env-program backend={} in_dune={} incremental_cycles={} full_collections={} dirty_pages={} note={:?}",
        st.backend.map_or("-", |b| b.name()),
        dune_hw::in_dune(),
        st.incremental_cycles,
        st.full_collections,
        st.dirty_pages,
        st.backend_note
    );
}
