//! Writable static data (.data, .bss) of the executable and every loaded library, found
//! with `dl_iterate_phdr`. Refreshed before each collection, outside stop-the-world:
//! `dl_iterate_phdr` takes the loader's lock, which a stopped thread might hold.

use crate::util::mmap::MmapVec;
use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A function that decides which part of a writable segment is a root: called with the
/// loaded object's name (`""` for the executable) and the segment's `[start, end)`, it
/// calls `keep` for each range to scan (none: the segment is not scanned). Runs before
/// each collection with the heap lock held and the loader's lock held (inside
/// `dl_iterate_phdr`): it must not allocate from the collected heap, take the heap lock,
/// or load or unload libraries. The C ABI's `GC_no_dls`, `GC_exclude_static_roots` and
/// `GC_register_has_static_roots_callback` use it.
pub type StaticSegmentFilter =
    fn(name: &CStr, start: usize, end: usize, keep: &mut dyn FnMut(usize, usize));

/// The filter, as a `fn` address (0: every segment is scanned whole).
static FILTER: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the static-segment filter; it applies from the next
/// collection.
pub fn set_static_segment_filter(filter: Option<StaticSegmentFilter>) {
    FILTER.store(filter.map_or(0, |f| f as usize), Ordering::Release);
}

fn filter() -> Option<StaticSegmentFilter> {
    let f = FILTER.load(Ordering::Acquire);
    // SAFETY: only `set_static_segment_filter` stores nonzero values: the address of a
    // `StaticSegmentFilter`.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, StaticSegmentFilter>(f) })
}

extern "C" fn collect_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the &mut MmapVec passed to dl_iterate_phdr below, used only for
    // the duration of that call.
    let out = unsafe { &mut *(data as *mut MmapVec<(usize, usize)>) };
    // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback.
    let info = unsafe { &*info };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    let name = if info.dlpi_name.is_null() {
        c""
    } else {
        // SAFETY: the loader passes a NUL-terminated name valid during the callback.
        unsafe { CStr::from_ptr(info.dlpi_name) }
    };
    let filter = filter();
    let mut full = false;
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 {
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            let end = start + ph.p_memsz as usize;
            let mut keep = |s: usize, e: usize| {
                let (s, e) = (s.max(start) & !7, e.min(end));
                if s < e && out.push((s, e)).is_err() {
                    full = true;
                }
            };
            match filter {
                Some(f) => f(name, start, end, &mut keep),
                None => keep(start, end),
            }
            if full {
                return 1;
            }
        }
    }
    0
}

/// Replace `out` with the writable segments of every loaded object.
pub fn refresh(out: &mut MmapVec<(usize, usize)>) {
    out.clear();
    // SAFETY: the callback only appends to `out`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect_segments),
            out as *mut MmapVec<(usize, usize)> as *mut libc::c_void,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    static mut IN_DATA: usize = 0x1234_5678;

    #[test]
    fn finds_our_own_data_segment() {
        let mut v = MmapVec::new();
        refresh(&mut v);
        let addr = std::ptr::addr_of!(IN_DATA) as usize;
        assert!(
            v.as_slice().iter().any(|&(s, e)| s <= addr && addr < e),
            "static not in any root range"
        );
    }
}
