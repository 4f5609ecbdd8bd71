//! Reading `/proc/self/maps` without allocating, to find the mapping around an address.
//! Used when a thread registers (its TLS block) and when the world is stopped, where no
//! allocation is allowed.

/// One line of `/proc/self/maps`: `[start, end)` with its permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapsEntry {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Readable.
    pub readable: bool,
    /// Writable.
    pub writable: bool,
}

/// Parse one maps line (`start-end perms ...`).
pub fn parse_line(line: &[u8]) -> Option<MapsEntry> {
    let dash = line.iter().position(|&b| b == b'-')?;
    let space = line.iter().position(|&b| b == b' ')?;
    let start = parse_hex(&line[..dash])?;
    let end = parse_hex(&line[dash + 1..space])?;
    let perms = line.get(space + 1..space + 3)?;
    Some(MapsEntry {
        start,
        end,
        readable: perms[0] == b'r',
        writable: perms[1] == b'w',
    })
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0usize;
    for &b in s {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | d as usize;
    }
    Some(v)
}

/// Call `f` for every mapping of this process, reading with raw syscalls and a stack buffer.
/// Stops early when `f` returns false. Returns false if the file could not be read.
pub fn for_each_mapping(mut f: impl FnMut(MapsEntry) -> bool) -> bool {
    const PATH: &[u8] = b"/proc/self/maps\0";
    // SAFETY: PATH is NUL-terminated; open has no memory-safety preconditions beyond that.
    let fd = unsafe { libc::open(PATH.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 8192];
    let mut filled = 0usize;
    let mut ok = true;
    'outer: loop {
        // SAFETY: the destination is the unfilled tail of our stack buffer.
        let n = unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            ok = false;
            break;
        }
        let n = n as usize;
        let eof = n == 0;
        filled += n;
        let mut consumed = 0;
        while let Some(nl) = buf[consumed..filled].iter().position(|&b| b == b'\n') {
            if let Some(e) = parse_line(&buf[consumed..consumed + nl]) {
                if !f(e) {
                    break 'outer;
                }
            }
            consumed += nl + 1;
        }
        if eof {
            if consumed < filled {
                if let Some(e) = parse_line(&buf[consumed..filled]) {
                    f(e);
                }
            }
            break;
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if filled == buf.len() {
            // A single line longer than the buffer (a very long path): drop it.
            filled = 0;
        }
    }
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    ok
}

/// The mapping that contains `addr`, if any.
pub fn mapping_containing(addr: usize) -> Option<MapsEntry> {
    let mut found = None;
    for_each_mapping(|e| {
        if e.start <= addr && addr < e.end {
            found = Some(e);
            false
        } else {
            true
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_line() {
        let e = parse_line(b"7ffd1000-7ffd3000 rw-p 00000000 00:00 0   [stack]").unwrap();
        assert_eq!(
            e,
            MapsEntry {
                start: 0x7ffd1000,
                end: 0x7ffd3000,
                readable: true,
                writable: true
            }
        );
        assert!(parse_line(b"garbage").is_none());
    }

    #[test]
    fn finds_the_stack_of_this_thread() {
        let local = 5u64;
        let addr = &local as *const u64 as usize;
        let m = mapping_containing(addr).expect("stack is mapped");
        assert!(m.start <= addr && addr < m.end && m.writable);
    }
}
