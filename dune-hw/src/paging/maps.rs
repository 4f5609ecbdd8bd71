// Layer 2: paging (dune-hw/LAYERS).
//! Reading `/proc/self/maps` without allocating (it runs in the exit loop).

/// One mapping of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: i32,
    /// The main thread's stack (`[stack]`), which the kernel grows on demand.
    pub is_main_stack: bool,
}

/// Parses one maps line ("start-end perms ...").
pub fn parse_line(line: &[u8]) -> Option<Mapping> {
    let dash = line.iter().position(|&c| c == b'-')?;
    let sp = line.iter().position(|&c| c == b' ')?;
    let hex = |s: &[u8]| -> Option<u64> {
        let mut v = 0u64;
        for &c in s {
            v = v.checked_mul(16)? + (c as char).to_digit(16)? as u64;
        }
        Some(v)
    };
    let start = hex(&line[..dash])?;
    let end = hex(&line[dash + 1..sp])?;
    let perms = line.get(sp + 1..sp + 4)?;
    let mut prot = 0;
    if perms[0] == b'r' {
        prot |= libc::PROT_READ;
    }
    if perms[1] == b'w' {
        prot |= libc::PROT_WRITE;
    }
    if perms[2] == b'x' {
        prot |= libc::PROT_EXEC;
    }
    let is_main_stack = line.ends_with(b"[stack]");
    Some(Mapping {
        start,
        end,
        prot,
        is_main_stack,
    })
}

/// Calls `f` for each mapping. Returns false if the file could not be read.
pub fn for_each(f: &mut dyn FnMut(Mapping)) -> bool {
    // SAFETY: a NUL-terminated path literal; the fd is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 8192];
    let mut have = 0usize;
    let mut ok = true;
    loop {
        // SAFETY: reading into the unused tail of our stack buffer.
        let n = unsafe { libc::read(fd, buf[have..].as_mut_ptr().cast(), buf.len() - have) };
        if n < 0 {
            ok = false;
            break;
        }
        let n = n as usize;
        have += n;
        let mut consumed = 0;
        while let Some(nl) = buf[consumed..have].iter().position(|&c| c == b'\n') {
            if let Some(m) = parse_line(&buf[consumed..consumed + nl]) {
                f(m);
            }
            consumed += nl + 1;
        }
        if consumed == 0 && have == buf.len() {
            // a line longer than the buffer (a huge path): keep its start, drop the rest
            if let Some(m) = parse_line(&buf[..have]) {
                f(m);
            }
            have = 0;
            continue;
        }
        buf.copy_within(consumed..have, 0);
        have -= consumed;
        if n == 0 {
            break;
        }
    }
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    ok
}

/// `struct procmap_query` of Linux >= 6.11 (include/uapi/linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

const _: () = assert!(core::mem::size_of::<ProcmapQuery>() == 104);

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: u64 = (3 << 30) | (104 << 16) | ((b'f' as u64) << 8) | 17;

/// Answer of [`query`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// The mapping containing the address (`is_main_stack` is not filled: false).
    Mapped(Mapping),
    /// No mapping contains it.
    Unmapped,
    /// The kernel has no PROCMAP_QUERY (Linux < 6.11).
    Unsupported,
}

/// The mapping containing `addr` through the PROCMAP_QUERY ioctl: one VMA lookup in the
/// kernel instead of formatting all of /proc/self/maps (measured: the text scan was 60% of
/// a guest page fault's cost).
pub fn query(addr: u64) -> Query {
    // SAFETY: a NUL-terminated path literal; the fd is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Query::Unsupported;
    }
    let mut q = ProcmapQuery {
        size: 104,
        query_addr: addr,
        ..Default::default()
    };
    // SAFETY: PROCMAP_QUERY reads and writes one `struct procmap_query` (name and build-id
    // buffers are not requested: their sizes are 0).
    let r = unsafe { libc::ioctl(fd, PROCMAP_QUERY as _, &mut q as *mut ProcmapQuery) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if r == 0 {
        let mut prot = 0;
        for (bit, p) in [
            (1, libc::PROT_READ),
            (2, libc::PROT_WRITE),
            (4, libc::PROT_EXEC),
        ] {
            if q.vma_flags & bit != 0 {
                prot |= p;
            }
        }
        return Query::Mapped(Mapping {
            start: q.vma_start,
            end: q.vma_end,
            prot,
            is_main_stack: false,
        });
    }
    match errno {
        Some(libc::ENOENT) => Query::Unmapped,
        _ => Query::Unsupported,
    }
}

/// The mapping containing `addr`, if any (PROCMAP_QUERY when the kernel has it).
pub fn find_fast(addr: u64) -> Option<Mapping> {
    match query(addr) {
        Query::Mapped(m) => Some(m),
        Query::Unmapped => None,
        Query::Unsupported => find(addr),
    }
}

/// The mapping containing `addr`, if any, from the text of /proc/self/maps.
pub fn find(addr: u64) -> Option<Mapping> {
    let mut found = None;
    for_each(&mut |m| {
        if m.start <= addr && addr < m.end {
            found = Some(m)
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let m = parse_line(b"7f0000001000-7f0000003000 rw-p 00000000 00:00 0   [heap]").unwrap();
        assert_eq!(
            m,
            Mapping {
                start: 0x7f00_0000_1000,
                end: 0x7f00_0000_3000,
                prot: 3,
                is_main_stack: false,
            }
        );
        let st = parse_line(b"7ffc0000-7ffd0000 rw-p 00000000 00:00 0      [stack]").unwrap();
        assert!(st.is_main_stack);
        let x = parse_line(b"555555554000-555555556000 r-xp 00000000 fd:01 123 /bin/x").unwrap();
        assert_eq!(x.prot, libc::PROT_READ | libc::PROT_EXEC);
        assert!(parse_line(b"garbage").is_none());
    }

    #[test]
    fn query_agrees_with_the_text() {
        let v = vec![1u8; 1 << 20];
        let a = v.as_ptr() as u64 + 4096;
        let text = find(a).expect("mapped");
        match query(a) {
            Query::Mapped(q) => {
                assert_eq!((q.start, q.end, q.prot), (text.start, text.end, text.prot));
                assert_eq!(query(8), Query::Unmapped, "page 0 is not mapped");
            }
            Query::Unmapped => panic!("query says unmapped, the text says {text:?}"),
            Query::Unsupported => println!("PROCMAP_QUERY not available: text fallback only"),
        }
    }

    #[test]
    fn finds_our_own_stack_variable() {
        let x = 5u64;
        let m = find(&x as *const u64 as u64).expect("stack is mapped");
        assert!(m.prot & libc::PROT_WRITE != 0);
    }
}
