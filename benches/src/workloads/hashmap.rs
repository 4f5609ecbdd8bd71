//! HashMap on gc-core, allocation for allocation the same as `benches/c/hashmap.c`: a
//! chained hash map with churn of GC-allocated keys and values.
//!
//! `scale * 1000` keys are inserted, then 8x as many random operations over a key space
//! twice that size: put (a new value and a fresh key string; the old ones dropped),
//! remove, get. Buckets double when the load exceeds 1; the old bucket array is dropped.
//! An unscanned shadow (a `Vec` from the system allocator, as the C side's `calloc`)
//! checks every get and, at the end, every key. Checksum: entries at the end.

use super::{rng_next, write_decimal, Allocator};

const CHURN_FACTOR: u64 = 8;
const RNG_SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const KEY_BYTES: usize = 24;

/// The scales the C code accepts.
pub const SCALES: std::ops::RangeInclusive<u32> = 1..=100_000;

/// A value (32 bytes): pointer-bearing, as in real maps.
#[repr(C)]
struct Value {
    id: u64,
    version: u64,
    key: *const u8,
    payload: u64,
}

/// A chain entry (32 bytes).
#[repr(C)]
struct Entry {
    next: *mut Entry,
    /// A pointer-free `KEY_BYTES` string "key-<id>\0".
    key: *mut u8,
    value: *mut Value,
    hash: u64,
}

/// The map header (24 bytes), GC-allocated like the C side's.
#[repr(C)]
struct Map {
    buckets: *mut *mut Entry,
    /// A power of two.
    n_buckets: u64,
    count: u64,
}

/// Format "key-<id>\0" into `out`; returns the length without the NUL.
#[inline]
fn format_key(out: &mut [u8], id: u64) -> usize {
    out[..4].copy_from_slice(b"key-");
    let len = 4 + write_decimal(&mut out[4..], id);
    out[len] = 0;
    len
}

/// The bytes of the NUL-terminated string at `s`, without the NUL.
#[inline]
fn c_bytes<'a>(s: *const u8) -> &'a [u8] {
    // SAFETY: every key the map holds or compares is a NUL-terminated string of at most
    // KEY_BYTES bytes, live while the caller uses the slice.
    unsafe { std::ffi::CStr::from_ptr(s.cast()) }.to_bytes()
}

fn fnv1a(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct HashMap<A: Allocator> {
    alloc: A,
    m: *mut Map,
}

impl<A: Allocator> HashMap<A> {
    /// A copy of the map header.
    #[inline]
    fn header(&self) -> (*mut *mut Entry, u64, u64) {
        // SAFETY: `m` is the live map header, used by this single thread only.
        unsafe { ((*self.m).buckets, (*self.m).n_buckets, (*self.m).count) }
    }

    #[inline]
    fn set_buckets(&self, buckets: *mut *mut Entry, n_buckets: u64) {
        // SAFETY: as in `header`.
        unsafe {
            (*self.m).buckets = buckets;
            (*self.m).n_buckets = n_buckets;
        }
    }

    #[inline]
    fn set_count(&self, count: u64) {
        // SAFETY: as in `header`.
        unsafe { (*self.m).count = count };
    }

    #[inline]
    fn bucket(&self, i: u64) -> *mut *mut Entry {
        let (buckets, n_buckets, _) = self.header();
        debug_assert!(i < n_buckets);
        // SAFETY: i < n_buckets, the length of the live bucket array.
        unsafe { buckets.add(i as usize) }
    }

    fn make_key(&self, id: u64) -> *mut u8 {
        let k = self.alloc.malloc_atomic(KEY_BYTES) as *mut u8;
        // SAFETY: a fresh allocation of KEY_BYTES bytes, written only here.
        let buf = unsafe { std::slice::from_raw_parts_mut(k, KEY_BYTES) };
        format_key(buf, id);
        k
    }

    fn grow(&self) {
        let (old, old_n, _) = self.header();
        let n = old_n * 2;
        let b = self
            .alloc
            .malloc(n as usize * std::mem::size_of::<*mut Entry>())
            as *mut *mut Entry;
        for i in 0..old_n {
            // SAFETY: i < old_n, inside the old bucket array.
            let mut e = unsafe { *old.add(i as usize) };
            while !e.is_null() {
                // SAFETY: `e` is an entry of the live map; `b` has n entries and the
                // index is masked to n - 1.
                unsafe {
                    let next = (*e).next;
                    let slot = b.add(((*e).hash & (n - 1)) as usize);
                    (*e).next = *slot;
                    *slot = e;
                    e = next;
                }
            }
        }
        self.set_buckets(b, n);
        if A::FREES {
            self.alloc.free(old as usize);
        }
    }

    /// The link that points at `key`'s entry, or the chain's terminating null link.
    fn slot(&self, key: &[u8], hash: u64) -> *mut *mut Entry {
        let mut p = self.bucket(hash & (self.header().1 - 1));
        // SAFETY: `p` is always a link of the live map (a bucket or an entry's `next`)
        // and every non-null entry and key it reaches is live.
        unsafe {
            while !(*p).is_null() {
                if (**p).hash == hash && c_bytes((**p).key) == key {
                    break;
                }
                p = &mut (**p).next;
            }
        }
        p
    }

    /// Insert or replace; a fresh key string and value either way.
    fn put(&self, id: u64, version: u64) {
        let key = self.make_key(id);
        let v = self.alloc.malloc(std::mem::size_of::<Value>()) as *mut Value;
        // SAFETY: a fresh, zeroed, aligned allocation of size_of::<Value>().
        unsafe {
            (*v).id = id;
            (*v).version = version;
            (*v).key = key;
            (*v).payload = id.wrapping_mul(31).wrapping_add(version);
        }
        let key_bytes = c_bytes(key);
        let hash = fnv1a(key_bytes);
        let p = self.slot(key_bytes, hash);
        // SAFETY: `p` is a link of the live map (see `slot`); a non-null target is a
        // live entry; a new entry is a fresh, zeroed allocation of size_of::<Entry>().
        unsafe {
            if !(*p).is_null() {
                let e = *p;
                if A::FREES {
                    self.alloc.free((*e).key as usize);
                    self.alloc.free((*e).value as usize);
                }
                (*e).key = key;
                (*e).value = v;
                return;
            }
            let e = self.alloc.malloc(std::mem::size_of::<Entry>()) as *mut Entry;
            *p = e;
            (*e).key = key;
            (*e).value = v;
            (*e).hash = hash;
        }
        let (_, n_buckets, count) = self.header();
        self.set_count(count + 1);
        if count + 1 > n_buckets {
            self.grow();
        }
    }

    fn get(&self, id: u64) -> *const Value {
        let mut key = [0u8; KEY_BYTES];
        let len = format_key(&mut key, id);
        let p = self.slot(&key[..len], fnv1a(&key[..len]));
        // SAFETY: a link of the live map; a non-null target is a live entry.
        unsafe {
            if (*p).is_null() {
                std::ptr::null()
            } else {
                (**p).value
            }
        }
    }

    fn remove(&self, id: u64) {
        let mut key = [0u8; KEY_BYTES];
        let len = format_key(&mut key, id);
        let p = self.slot(&key[..len], fnv1a(&key[..len]));
        // SAFETY: a link of the live map; a non-null target is a live entry that this
        // unlinks (and, with explicit frees, frees with its key and value).
        unsafe {
            if !(*p).is_null() {
                let e = *p;
                *p = (*e).next;
                if A::FREES {
                    self.alloc.free((*e).key as usize);
                    self.alloc.free((*e).value as usize);
                    self.alloc.free(e as usize);
                }
            } else {
                return;
            }
        }
        self.set_count(self.header().2 - 1);
    }

    fn check(&self, shadow: &[u32], id: u64) -> bool {
        let v = self.get(id);
        let want = u64::from(shadow[id as usize]);
        if want == 0 {
            return v.is_null();
        }
        if v.is_null() {
            return false;
        }
        let mut key = [0u8; KEY_BYTES];
        let len = format_key(&mut key, id);
        // SAFETY: a live value of the map.
        let v = unsafe { &*v };
        v.id == id
            && v.version == want
            && v.payload == id.wrapping_mul(31).wrapping_add(v.version)
            && c_bytes(v.key) == &key[..len]
    }

    /// Free everything (explicit-free allocators only).
    fn free_all(&self) {
        let (buckets, n_buckets, _) = self.header();
        for i in 0..n_buckets {
            // SAFETY: i < n_buckets; every entry reached is live and freed once.
            let mut e = unsafe { *buckets.add(i as usize) };
            while !e.is_null() {
                // SAFETY: as above.
                let next = unsafe { (*e).next };
                // SAFETY: as above.
                let (k, v) = unsafe { ((*e).key, (*e).value) };
                self.alloc.free(k as usize);
                self.alloc.free(v as usize);
                self.alloc.free(e as usize);
                e = next;
            }
        }
        self.alloc.free(buckets as usize);
        self.alloc.free(self.m as usize);
    }
}

/// Run HashMap at `scale` (thousands of keys). Returns the entries at the end, or an
/// error if a lookup disagreed with the shadow.
pub fn run<A: Allocator>(alloc: A, scale: u32) -> Result<u64, String> {
    if !SCALES.contains(&scale) {
        return Err(format!("hashmap scale {scale} outside {SCALES:?}"));
    }
    let n_keys = u64::from(scale) * 1000;
    let space = 2 * n_keys;
    let mut rng = RNG_SEED;
    let mut shadow = vec![0u32; space as usize];
    let m = alloc.malloc(std::mem::size_of::<Map>()) as *mut Map;
    let map = HashMap { alloc, m };
    map.set_buckets(
        alloc.malloc(1024 * std::mem::size_of::<*mut Entry>()) as *mut *mut Entry,
        1024,
    );

    for i in 0..n_keys {
        map.put(i, 1);
        shadow[i as usize] = 1;
    }
    let mut ok = true;
    for _ in 0..CHURN_FACTOR * n_keys {
        let x = rng_next(&mut rng);
        let id = x % space;
        match (x >> 32) % 4 {
            0 | 1 => {
                map.put(id, u64::from(shadow[id as usize]) + 1);
                shadow[id as usize] += 1;
            }
            2 => {
                map.remove(id);
                shadow[id as usize] = 0;
            }
            _ => ok &= map.check(&shadow, id),
        }
    }

    let mut live = 0;
    for i in 0..space {
        ok &= map.check(&shadow, i);
        live += u64::from(shadow[i as usize] != 0);
    }
    let count = map.header().2;
    if !ok || live != count {
        return Err(format!(
            "hashmap: lookups disagreed with the shadow (ok={ok}) or {count} entries != {live}"
        ));
    }
    if A::FREES {
        map.free_all();
    }
    std::hint::black_box(m);
    Ok(count)
}
