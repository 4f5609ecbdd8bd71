//! A test binary whose every allocation — the test harness's included — comes from the
//! collector (`#[global_allocator]`). It runs an ordinary workload (std collections,
//! strings, threads, channels, file I/O) to the end while collections happen, with
//! `Gc<T>` objects stored in ordinary collections, and checks every result.

use gc_core::{global_heap, Gc, GcAllocator};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

#[global_allocator]
static GLOBAL: GcAllocator = GcAllocator;

struct Node {
    id: usize,
    label: String,
    children: Vec<Gc<Node>>,
}

fn tree(depth: usize, id: &mut usize) -> Gc<Node> {
    *id += 1;
    let me = *id;
    let children = if depth == 0 {
        Vec::new()
    } else {
        (0..3).map(|_| tree(depth - 1, id)).collect()
    };
    Gc::new(Node {
        id: me,
        label: format!("node-{me}"),
        children,
    })
}

fn check_tree(n: Gc<Node>) -> usize {
    assert_eq!(n.label, format!("node-{}", n.id));
    1 + n.children.iter().map(|&c| check_tree(c)).sum::<usize>()
}

#[test]
fn ordinary_program_runs_with_collections() {
    let heap = global_heap();
    let before = heap.gc_count();
    let mut id = 0;
    let keep = tree(6, &mut id);
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    let mut ordered = BTreeMap::new();
    for round in 0..40u64 {
        // Churn: build and drop garbage trees, strings and vectors.
        let mut tmp = 0;
        let garbage = tree(5, &mut tmp);
        assert_eq!(check_tree(garbage), 364);
        for i in 0..2_000u64 {
            map.entry(format!("k{}", i % 500))
                .or_default()
                .push(i * round);
        }
        ordered.insert(round, "x".repeat(round as usize * 10));
        if round % 10 == 0 {
            heap.collect().unwrap();
        }
    }
    assert_eq!(check_tree(keep), 1093);
    assert_eq!(map.len(), 500);
    assert_eq!(map["k7"].len(), 40 * 4);
    assert_eq!(ordered[&39].len(), 390);

    // Threads and channels.
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let total = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            let total = total.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let v: Vec<String> = (0..50).map(|j| format!("{t}-{i}-{j}")).collect();
                    total.fetch_add(v.len(), Ordering::Relaxed);
                    shared
                        .lock()
                        .unwrap()
                        .push(Gc::new(format!("shared-{t}-{i}")));
                    tx.send(v).unwrap();
                    if i % 50 == 0 {
                        global_heap().collect().unwrap();
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut received = 0;
    for v in rx {
        assert!(v[0].ends_with("-0"));
        received += v.len();
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(received, 4 * 200 * 50);
    assert_eq!(total.load(Ordering::Relaxed), received);
    heap.collect().unwrap();
    let s = shared.lock().unwrap();
    assert_eq!(s.len(), 800);
    assert!(s.iter().all(|g| g.starts_with("shared-")));

    // File I/O into fresh heap buffers.
    let dir = std::env::temp_dir().join(format!("dunegc-global-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.bin");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    heap.collect().unwrap();
    let mut back = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
    assert_eq!(std::fs::read(&path).unwrap(), data);
    std::fs::remove_dir_all(&dir).unwrap();

    let st = heap.stats();
    assert!(heap.gc_count() > before + 5, "collections happened: {st}");
    assert!(st.bytes_swept > 0, "{st}");
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[inline(never)]
fn make_counted(n: usize, counter: &Arc<AtomicUsize>) {
    for _ in 0..n {
        std::hint::black_box(Gc::new(Counted(counter.clone())));
    }
}

#[inline(never)]
fn clobber_stack() {
    let buf = [0u8; 64 << 10];
    std::hint::black_box(&buf);
}

#[test]
fn unreachable_gc_values_are_finalized() {
    let counter = Arc::new(AtomicUsize::new(0));
    make_counted(1_000, &counter);
    clobber_stack();
    let heap = global_heap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while counter.load(Ordering::SeqCst) < 900 && std::time::Instant::now() < deadline {
        heap.collect().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let n = counter.load(Ordering::SeqCst);
    assert!(
        n >= 900,
        "only {n} of 1000 unreachable Gc values were finalized"
    );
    assert!(n <= 1000);
}
