//! Helpers shared by the cross-crate integration tests in `tests/tests/`.

/// Enter Dune on this thread, or say why not: `Ok(false)` after printing
/// `SKIPPED <test>: <reason>`. With `DUNEGC_REQUIRE_KVM=1` (CI) a skip is a failure.
pub fn enter_dune_or_skip(test: &str) -> Result<bool, String> {
    match dune_hw::enter() {
        Ok(()) => Ok(true),
        Err(e) if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") => Err(format!(
            "{test}: /dev/kvm required (DUNEGC_REQUIRE_KVM=1) but: {e}"
        )),
        Err(e) => {
            println!("SKIPPED {test}: {e}");
            Ok(false)
        }
    }
}

/// A multi-threaded workload on `Gc<T>` and the global allocator, for running inside Dune.
pub mod dune_workload {
    use gc_core::{global_heap, Gc};
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::sync::{mpsc, Arc, Mutex};

    /// A tree node with a label that must match its id.
    pub struct Node {
        /// Its id.
        pub id: u64,
        /// `n<id>`.
        pub label: String,
        /// Three children, or none at the leaves.
        pub children: Vec<Gc<Node>>,
    }

    /// A complete ternary tree of `depth`.
    pub fn tree(depth: u32, next: &mut u64) -> Gc<Node> {
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

    /// Check every node of a tree; returns the node count.
    pub fn check(n: Gc<Node>) -> u64 {
        assert_eq!(n.label, format!("n{}", n.id), "node {} damaged", n.id);
        1 + n.children.iter().map(|&c| check(c)).sum::<u64>()
    }

    /// Six threads building, sharing and checking `Gc<Node>` trees, with std collections,
    /// channels and file I/O; panics on any damaged or lost object.
    pub fn workload() {
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
}
