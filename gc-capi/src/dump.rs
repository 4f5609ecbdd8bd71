//! `GC_dump`, `GC_dump_named` and `GC_dump_regions`: the collector's state printed to
//! standard output in bdwgc's layout (static roots, heap sections, free blocks, blocks
//! in use), from gc-core's snapshot ([`gc_core::api::dump`]).
//!
//! The text is written with `write(2)` to file descriptor 1, as bdwgc's `GC_printf`
//! does (unbuffered; flush `stdout` first if the program mixes in its own output).
//! dunegc's "heap sections" are its page spaces' used prefixes; its "blocks" are spans
//! (a run of pages holding small objects of one size, or one large object), listed
//! with their address, which bdwgc's block list omits.

use crate::callbacks::inside_alloc_lock;
use crate::init::heap;
use crate::warn::warn_text;
use gc_core::api::dump::{DumpRegionUse, HeapDump};
use gc_core::ObjectKind;
use std::ffi::{c_char, CStr};
use std::fmt::Write as _;

/// bdwgc's kind number for a gc-core kind (0 pointer-free, 1 normal, 2 uncollectable;
/// dunegc's malloc-replacement kind is bdwgc's uncollectable too).
fn bdwgc_kind(kind: ObjectKind) -> u32 {
    match kind {
        ObjectKind::Atomic => 0,
        ObjectKind::Normal => 1,
        ObjectKind::Malloc | ObjectKind::Uncollectable => 2,
    }
}

/// Write all of `text` to standard output (file descriptor 1).
fn write_stdout(text: &str) {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes from a live byte slice of the given length.
        let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// The snapshot, or None (with a warning) inside `GC_call_with_alloc_lock`, where the
/// heap lock is held and gc-core's lock is not reentrant, or if mapping memory fails.
fn snapshot(caller: &str) -> Option<HeapDump> {
    if inside_alloc_lock() {
        warn_text(&format!(
            "dunegc: {caller} inside GC_call_with_alloc_lock: the heap lock is held; nothing dumped"
        ));
        return None;
    }
    match heap().dump() {
        Ok(d) => Some(d),
        Err(e) => {
            warn_text(&format!(
                "dunegc: {caller}: mapping memory for the dump failed: {e}"
            ));
            None
        }
    }
}

/// The full dump's text: header, static roots, sections, free blocks, blocks in use.
fn format_dump(d: &HeapDump, name: Option<&str>) -> String {
    let mut s = String::new();
    match name {
        Some(n) => {
            let _ = writeln!(s, "***GC Dump {n}");
        }
        None => {
            let _ = writeln!(s, "***GC Dump collection #{}", d.gc_count);
        }
    }
    s.push_str("\n***Static roots:\n");
    let mut root_bytes = 0;
    for &(a, b) in d.static_roots() {
        let _ = writeln!(s, "From {a:#x} to {b:#x} (temporary)");
        root_bytes += b - a;
    }
    for &(a, b) in d.added_roots() {
        let _ = writeln!(s, "From {a:#x} to {b:#x}");
        root_bytes += b - a;
    }
    let _ = writeln!(s, "GC_root_size= {root_bytes}");
    s.push_str("\n***Heap sections:\n");
    let total: usize = d.sections().iter().map(|x| x.end - x.start).sum();
    let in_use: usize = d.sections().iter().map(|x| x.in_use_bytes).sum();
    let _ = writeln!(s, "Total heap size: {total} ({in_use} in spans)");
    for (i, x) in d.sections().iter().enumerate() {
        let _ = writeln!(
            s,
            "Section {i} from {:#x} to {:#x} {}/{} pages in spans",
            x.start,
            x.end,
            x.in_use_bytes / 4096,
            (x.end - x.start) / 4096
        );
    }
    s.push_str("\n***Free blocks:\n");
    let mut free_bytes = 0;
    for r in d.regions() {
        if r.what == DumpRegionUse::Free {
            let _ = writeln!(s, "\t{:#x} size {}", r.start, r.end - r.start);
            free_bytes += r.end - r.start;
        }
    }
    let _ = writeln!(s, "GC_large_free_bytes: {free_bytes}");
    s.push_str("\n***Blocks in use:\n");
    s.push_str("kind(0=ptrfree,1=normal,2=unc.),size_in_bytes,#_marks_set,#objs,address,bytes\n");
    let (mut blocks, mut bytes) = (0, 0);
    for r in d.regions() {
        let len = r.end - r.start;
        match r.what {
            DumpRegionUse::Free => continue,
            DumpRegionUse::Small {
                kind,
                obj_bytes,
                allocated,
                marked,
                ..
            } => {
                let _ = writeln!(
                    s,
                    "{},{obj_bytes},{marked},{allocated},{:#x},{len}",
                    bdwgc_kind(kind),
                    r.start
                );
            }
            DumpRegionUse::Large { kind, marked } => {
                let _ = writeln!(
                    s,
                    "{},{len},{},1,{:#x},{len}",
                    bdwgc_kind(kind),
                    marked as u32,
                    r.start
                );
            }
        }
        blocks += 1;
        bytes += len;
    }
    let _ = writeln!(s, "blocks= {blocks}, bytes= {bytes}");
    s
}

/// Print the collector's state to standard output (bdwgc's `GC_dump`): the collection
/// number, static roots, heap sections, free page runs and spans in use.
#[no_mangle]
pub extern "C" fn GC_dump() {
    if let Some(d) = snapshot("GC_dump") {
        write_stdout(&format_dump(&d, None));
    }
}

/// `GC_dump` under the name `name` (NULL: the collection number), bdwgc's
/// `GC_dump_named`. bdwgc's does not take the lock, so it may be called from a
/// `GC_call_with_alloc_lock` callback; dunegc's takes it, and there it warns and prints
/// nothing.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn GC_dump_named(name: *const c_char) {
    let name = (!name.is_null()).then(|| {
        // SAFETY: a NUL-terminated string (the caller's duty).
        unsafe { CStr::from_ptr(name) }.to_string_lossy()
    });
    if let Some(d) = snapshot("GC_dump_named") {
        write_stdout(&format_dump(&d, name.as_deref()));
    }
}

/// Print every span and free page run of every section (bdwgc's `GC_dump_regions`).
#[no_mangle]
pub extern "C" fn GC_dump_regions() {
    let Some(d) = snapshot("GC_dump_regions") else {
        return;
    };
    let mut s = String::new();
    for x in d.sections() {
        let _ = writeln!(s, "***Section from {:#x} to {:#x}", x.start, x.end);
        for r in d.regions() {
            if r.start < x.start || r.start >= x.end {
                continue;
            }
            let _ = match r.what {
                DumpRegionUse::Free => {
                    writeln!(
                        s,
                        "\t{:#x}\tfree block of size {:#x} bytes",
                        r.start,
                        r.end - r.start
                    )
                }
                DumpRegionUse::Small { obj_bytes, .. } => writeln!(
                    s,
                    "\t{:#x}\tused for blocks of size {obj_bytes:#x} bytes ({:#x} bytes of pages)",
                    r.start,
                    r.end - r.start
                ),
                DumpRegionUse::Large { .. } => writeln!(
                    s,
                    "\t{:#x}\tused for one object of size {:#x} bytes",
                    r.start,
                    r.end - r.start
                ),
            };
        }
    }
    write_stdout(&s);
}

/// bdwgc's heap block size: the "heap block" `GC_print_free_list` names is the
/// 4 KiB-aligned block holding the slot.
const HBLKSIZE: usize = 4096;

/// Print the free object slots of bdwgc kind `kind` (0 pointer-free, 1 normal, 2
/// uncollectable) whose objects are `sz_in_granules` granules of 16 bytes (bdwgc's
/// `GC_print_free_list`), one line each in bdwgc's format: `Free object in heap block
/// <page> [<n>]: <slot>`, to standard output. dunegc keeps no free lists: the slots are
/// the unallocated ones of every span of objects of exactly that kind and size (free
/// slots a thread holds in its allocation cache included), in address order. Nothing is
/// printed for another kind or a size no span has.
#[no_mangle]
pub extern "C" fn GC_print_free_list(kind: std::ffi::c_int, sz_in_granules: usize) {
    let Some(d) = snapshot("GC_print_free_list") else {
        return;
    };
    let heap = heap();
    let want_bytes = sz_in_granules.saturating_mul(crate::alloc::GRANULE_BYTES);
    let mut out = String::new();
    let mut n = 0usize;
    for r in d.regions() {
        let DumpRegionUse::Small {
            kind: k, obj_bytes, ..
        } = r.what
        else {
            continue;
        };
        if kind < 0 || bdwgc_kind(k) != kind as u32 || obj_bytes != want_bytes {
            continue;
        }
        let mut slot = r.start;
        while slot + obj_bytes <= r.end {
            if heap.find_object(slot).is_none() {
                let block = slot & !(HBLKSIZE - 1);
                let _ = writeln!(out, "Free object in heap block {block:#x} [{n}]: {slot:#x}");
                n += 1;
            }
            slot += obj_bytes;
        }
    }
    write_stdout(&out);
}
