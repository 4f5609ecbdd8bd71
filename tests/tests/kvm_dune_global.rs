//! Issue 8's integration: a program whose global allocator is the collector enters Dune
//! process-wide at start, switches incremental marking to the Dune backend (hardware
//! page-table dirty bits), and runs an ordinary multi-threaded workload — threads created
//! inside Dune on their own vCPUs, `Gc<T>` graphs shared between them, std collections,
//! channels, file I/O — with collections (stop-the-world over Dune threads, guest
//! registers scanned) happening throughout. Every object is checked.

use gc_core::{global_heap, Backend, BackendChoice, Gc, GcAllocator};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{mpsc, Arc, Mutex};

#[global_allocator]
static GLOBAL: GcAllocator = GcAllocator;

struct Node {
    id: u64,
    label: String,
    children: Vec<Gc<Node>>,
}

fn tree(depth: u32, next: &mut u64) -> Gc<Node> {
    *next += 1;
    let id = *next;
    let children = if depth == 0 {
        Vec::new()
    } else {
        (0..3).map(|_| tree(depth - 1, next)).collect()
    };
    Gc::new(Node {
        id,
        label: format!("n{id}"),
        children,
    })
}

fn check(n: Gc<Node>) -> u64 {
    assert_eq!(n.label, format!("n{}", n.id), "node {} damaged", n.id);
    1 + n.children.iter().map(|&c| check(c)).sum::<u64>()
}

fn workload() {
    let heap = global_heap();
    let shared: Arc<Mutex<Vec<Gc<Node>>>> = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<(usize, u64)>();
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let shared = shared.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                assert!(dune_hw::in_dune(), "thread {t} is not in Dune mode");
                let mut next = t as u64 * 1_000_000;
                let mut kept = Vec::new();
                for round in 0..40 {
                    let t1 = tree(6, &mut next);
                    assert_eq!(check(t1), 1093);
                    if round % 4 == 0 {
                        kept.push(t1);
                        shared.lock().unwrap().push(t1);
                    }
                    let mut m: HashMap<u64, String> = HashMap::new();
                    for i in 0..500 {
                        m.insert(i, format!("{t}-{round}-{i}"));
                    }
                    assert_eq!(m[&7], format!("{t}-{round}-7"));
                }
                let total: u64 = kept.iter().map(|&k| check(k)).sum();
                tx.send((t, total)).unwrap();
            })
        })
        .collect();
    drop(tx);
    let mut results: Vec<(usize, u64)> = rx.iter().collect();
    for h in handles {
        h.join().unwrap();
    }
    results.sort();
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(|&(_, total)| total == 10 * 1093));
    heap.collect().unwrap();
    let all = shared.lock().unwrap();
    assert_eq!(all.len(), 60);
    assert_eq!(all.iter().map(|&n| check(n)).sum::<u64>(), 60 * 1093);

    // File I/O into heap buffers (host writes for the guest, reported to the tracker).
    let path = std::env::temp_dir().join(format!("dunegc-dune-global-{}", std::process::id()));
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let mut back = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == data);
    std::fs::remove_file(&path).unwrap();
}

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
