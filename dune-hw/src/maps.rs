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

/// The mapping containing `addr`, if any.
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
    fn finds_our_own_stack_variable() {
        let x = 5u64;
        let m = find(&x as *const u64 as u64).expect("stack is mapped");
        assert!(m.prot & libc::PROT_WRITE != 0);
    }
}
