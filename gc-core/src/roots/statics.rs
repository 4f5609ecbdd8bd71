//! Writable static data (.data, .bss) of the executable and every loaded library, found
//! with `dl_iterate_phdr`. Refreshed before each collection, outside stop-the-world:
//! `dl_iterate_phdr` takes the loader's lock, which a stopped thread might hold.

use crate::util::mmap::MmapVec;

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
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 {
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            let end = start + ph.p_memsz as usize;
            if out.push((start & !7, end)).is_err() {
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
