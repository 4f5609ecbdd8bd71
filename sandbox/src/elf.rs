//! Static x86-64 ELF programs: parse, load into a sandbox's arena, build the initial stack
//! (argc, argv, envp, auxv) the way Linux does for `execve`.
//!
//! Supported: `ET_EXEC` without an interpreter (static, linked at a fixed address: the
//! arena is placed there) and `ET_DYN` without an interpreter (static-pie: loaded at the
//! arena's start; its own start-up code relocates it). Anything else is a clear error.

use dune_hw::sandbox::{Config, Entry, Sandbox, SandboxError};
use std::fmt;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PAGE: u64 = 4096;

/// Why a file cannot run in the sandbox.
#[derive(Debug)]
pub enum ElfError {
    /// Not an ELF file, or a damaged one.
    Malformed(String),
    /// A valid ELF file of a kind the sandbox does not run.
    Unsupported(String),
    /// Building the sandbox for it failed.
    Sandbox(SandboxError),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Malformed(m) => write!(f, "not a usable ELF file: {m}"),
            ElfError::Unsupported(m) => write!(f, "unsupported program: {m}"),
            ElfError::Sandbox(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ElfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ElfError::Sandbox(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SandboxError> for ElfError {
    fn from(e: SandboxError) -> Self {
        ElfError::Sandbox(e)
    }
}

/// One loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address (before the load bias).
    pub vaddr: u64,
    /// Bytes in memory.
    pub mem_bytes: u64,
    /// File offset.
    pub offset: u64,
    /// Bytes in the file.
    pub file_bytes: u64,
    /// PROT_* bits.
    pub prot: i32,
}

/// A parsed static program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Position-independent (loaded at the arena start) or fixed.
    pub pie: bool,
    /// Entry point (before the bias).
    pub entry: u64,
    /// Program headers' address in memory (before the bias), if loaded.
    pub phdr: Option<u64>,
    /// Number of program headers.
    pub phnum: u64,
    /// Loadable segments.
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

impl Program {
    /// Parses `file`.
    pub fn parse(file: &[u8]) -> Result<Program, ElfError> {
        let bad = |m: &str| ElfError::Malformed(m.to_string());
        if file.len() < 64 || &file[..4] != b"\x7fELF" {
            return Err(bad("no ELF magic"));
        }
        if file[4] != 2 || file[5] != 1 {
            return Err(ElfError::Unsupported(
                "only 64-bit little-endian ELF runs in the sandbox".into(),
            ));
        }
        let e_type = u16_at(file, 16).ok_or_else(|| bad("short header"))?;
        let machine = u16_at(file, 18).ok_or_else(|| bad("short header"))?;
        if machine != EM_X86_64 {
            return Err(ElfError::Unsupported(format!(
                "machine {machine} is not x86-64"
            )));
        }
        let pie = match e_type {
            ET_EXEC => false,
            ET_DYN => true,
            t => {
                return Err(ElfError::Unsupported(format!(
                    "ELF type {t} is not an executable"
                )))
            }
        };
        let entry = u64_at(file, 24).ok_or_else(|| bad("short header"))?;
        let phoff = u64_at(file, 32).ok_or_else(|| bad("short header"))?;
        let phentsize = u16_at(file, 54).ok_or_else(|| bad("short header"))? as u64;
        let phnum = u16_at(file, 56).ok_or_else(|| bad("short header"))? as u64;
        if phentsize != 56 || phnum == 0 || phnum > 256 {
            return Err(bad("bad program header table"));
        }
        let mut segments = Vec::new();
        let mut phdr = None;
        for i in 0..phnum {
            let o = phoff
                .checked_add(i * phentsize)
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| bad("program header table out of the file"))?;
            let short = || bad("program header table out of the file");
            let p_type = u32_at(file, o).ok_or_else(short)?;
            let flags = u32_at(file, o + 4).ok_or_else(short)?;
            let offset = u64_at(file, o + 8).ok_or_else(short)?;
            let vaddr = u64_at(file, o + 16).ok_or_else(short)?;
            let file_bytes = u64_at(file, o + 32).ok_or_else(short)?;
            let mem_bytes = u64_at(file, o + 40).ok_or_else(short)?;
            match p_type {
                PT_INTERP => {
                    return Err(ElfError::Unsupported(
                        "dynamically linked (it has an ELF interpreter): only static programs \
                         run in the sandbox (link with -static or -static-pie)"
                            .into(),
                    ))
                }
                PT_PHDR => phdr = Some(vaddr),
                PT_LOAD => {
                    if file_bytes > mem_bytes
                        || offset
                            .checked_add(file_bytes)
                            .is_none_or(|e| e > file.len() as u64)
                        || vaddr.checked_add(mem_bytes).is_none()
                        || offset % PAGE != vaddr % PAGE
                    {
                        return Err(bad("a loadable segment lies outside the file"));
                    }
                    let mut prot = 0;
                    if flags & 4 != 0 {
                        prot |= libc::PROT_READ;
                    }
                    if flags & 2 != 0 {
                        prot |= libc::PROT_WRITE;
                    }
                    if flags & 1 != 0 {
                        prot |= libc::PROT_EXEC;
                    }
                    segments.push(Segment {
                        vaddr,
                        mem_bytes,
                        offset,
                        file_bytes,
                        prot,
                    });
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(bad("no loadable segment"));
        }
        if phdr.is_none() {
            // the headers are in memory if a segment maps file offset `phoff`
            phdr = segments
                .iter()
                .find(|s| s.offset <= phoff && phoff + phnum * 56 <= s.offset + s.file_bytes)
                .map(|s| s.vaddr + (phoff - s.offset));
        }
        Ok(Program {
            pie,
            entry,
            phdr,
            phnum,
            segments,
        })
    }

    /// Lowest and highest (page-rounded) addresses of the image, before the bias.
    pub fn span(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !(PAGE - 1);
        let hi = self
            .segments
            .iter()
            .map(|s| s.vaddr + s.mem_bytes)
            .max()
            .unwrap_or(0)
            .next_multiple_of(PAGE);
        (lo, hi)
    }
}

/// A program loaded into a sandbox, ready to run.
#[derive(Debug)]
pub struct Loaded {
    /// The sandbox (arena holds the image and the initial stack).
    pub sandbox: Sandbox,
    /// Where it starts.
    pub entry: Entry,
}

/// Builds a sandbox with `cfg` (its `arena_addr` is chosen here) and loads `file` into it,
/// with `argv` and `envp` on its stack.
pub fn load(
    file: &[u8],
    argv: &[&[u8]],
    envp: &[&[u8]],
    mut cfg: Config,
) -> Result<Loaded, ElfError> {
    let prog = Program::parse(file)?;
    let (lo, hi) = prog.span();
    let image_bytes = hi - lo;
    if image_bytes + cfg.stack_bytes + 16 * PAGE > cfg.arena_bytes {
        return Err(ElfError::Unsupported(format!(
            "the image ({image_bytes} bytes) and stack do not fit the memory limit \
             ({} bytes)",
            cfg.arena_bytes
        )));
    }
    cfg.arena_addr = if prog.pie { None } else { Some(lo) };
    let mut sb = Sandbox::new(cfg)?;
    let (start, _end) = sb.arena();
    let bias = if prog.pie { start - lo } else { 0 };
    {
        let arena = sb.arena_mut();
        for s in &prog.segments {
            let at = (s.vaddr + bias - start) as usize;
            let src = &file[s.offset as usize..(s.offset + s.file_bytes) as usize];
            arena[at..at + src.len()].copy_from_slice(src);
        }
    }
    // per page, the union of the protections of the segments touching it
    let mut page = lo;
    while page < hi {
        let prot_of = |p: u64| {
            prog.segments
                .iter()
                .filter(|s| s.vaddr < p + PAGE && s.vaddr + s.mem_bytes > p)
                .fold(0, |acc, s| acc | s.prot)
        };
        let prot = prot_of(page);
        let mut end = page + PAGE;
        while end < hi && prot_of(end) == prot {
            end += PAGE;
        }
        if prot != 0 {
            sb.map_image(page + bias, end + bias, prot)?;
        }
        page = end;
    }
    let entry = stack(&mut sb, &prog, bias, argv, envp);
    Ok(Loaded { sandbox: sb, entry })
}

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_EXECFN: u64 = 31;

/// Writes Linux's initial stack (strings, AT_RANDOM bytes, auxv, envp, argv, argc) at the
/// top of the sandbox's stack and returns the entry state.
fn stack(sb: &mut Sandbox, prog: &Program, bias: u64, argv: &[&[u8]], envp: &[&[u8]]) -> Entry {
    let top = sb.stack_top();
    let (start, _) = sb.arena();
    let mut sp = top;
    let arena = sb.arena_mut();
    let mut put = |sp: &mut u64, bytes: &[u8]| -> u64 {
        *sp -= bytes.len() as u64;
        let at = (*sp - start) as usize;
        arena[at..at + bytes.len()].copy_from_slice(bytes);
        *sp
    };
    let mut cstr = |sp: &mut u64, s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        put(sp, &v)
    };
    let argv_p: Vec<u64> = argv.iter().map(|a| cstr(&mut sp, a)).collect();
    let envp_p: Vec<u64> = envp.iter().map(|e| cstr(&mut sp, e)).collect();
    let platform = cstr(&mut sp, b"x86_64");
    let mut random = [0u8; 16];
    // SAFETY: getrandom writes at most 16 bytes into the local array.
    let n = unsafe { libc::getrandom(random.as_mut_ptr().cast(), 16, 0) };
    if n != 16 {
        // a weak but never-failing fallback: the stack canary need not be secret here
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        random = t.to_le_bytes();
    }
    let random_p = put(&mut sp, &random);
    let execfn = argv_p.first().copied().unwrap_or(platform);
    // SAFETY: getuid & co. have no arguments and cannot fail.
    let ids = unsafe {
        [
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        ]
    };
    let hwcap = core::arch::x86_64::__cpuid(1).edx as u64;
    let auxv: Vec<[u64; 2]> = [
        prog.phdr.map(|p| [AT_PHDR, p + bias]),
        Some([AT_PHENT, 56]),
        Some([AT_PHNUM, prog.phnum]),
        Some([AT_PAGESZ, PAGE]),
        Some([AT_BASE, 0]),
        Some([AT_FLAGS, 0]),
        Some([AT_ENTRY, prog.entry + bias]),
        Some([AT_UID, ids[0] as u64]),
        Some([AT_EUID, ids[1] as u64]),
        Some([AT_GID, ids[2] as u64]),
        Some([AT_EGID, ids[3] as u64]),
        Some([AT_SECURE, 0]),
        Some([AT_RANDOM, random_p]),
        Some([AT_HWCAP, hwcap]),
        Some([AT_CLKTCK, 100]),
        Some([AT_PLATFORM, platform]),
        Some([AT_EXECFN, execfn]),
        Some([AT_NULL, 0]),
    ]
    .into_iter()
    .flatten()
    .collect();
    let words = 1 + argv_p.len() + 1 + envp_p.len() + 1 + 2 * auxv.len();
    sp = (sp - 8 * words as u64) & !15;
    let mut v: Vec<u64> = Vec::with_capacity(words);
    v.push(argv_p.len() as u64);
    v.extend(&argv_p);
    v.push(0);
    v.extend(&envp_p);
    v.push(0);
    for a in &auxv {
        v.extend(a);
    }
    let bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
    let at = (sp - start) as usize;
    arena[at..at + bytes.len()].copy_from_slice(&bytes);
    Entry {
        rip: prog.entry + bias,
        rsp: sp,
        args: [0, 0, 0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_and_damaged_files_are_clear_errors() {
        let e = Program::parse(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert_eq!(e.to_string(), "not a usable ELF file: no ELF magic");
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1;
        h[5] = 1;
        assert!(Program::parse(&h)
            .unwrap_err()
            .to_string()
            .contains("only 64-bit"));
        h[4] = 2;
        h[16] = 2;
        h[18] = 62;
        h[54] = 56;
        h[56] = 1;
        h[32] = 200; // phoff beyond the file
        assert!(Program::parse(&h)
            .unwrap_err()
            .to_string()
            .contains("out of the file"));
    }
}
