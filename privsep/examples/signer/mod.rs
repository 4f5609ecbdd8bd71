//! The signing server of `examples/server.rs` (shared with the benchmarks): each request
//! is parsed in an sthread that cannot see the server's key; signing happens in a
//! callgate that can. A parser that has been exploited (simulated: a request makes it
//! read an address it names, the key's) faults; the server records it and goes on.

use privsep::inside::callgate_call;
use privsep::{
    callgate_create, smalloc, sthread_run, tag_new, Callgate, Ended, PrivsepError, Recycler,
    Report, Rights, SPolicy, Tag,
};

/// Longest request / message.
pub const MAX_BYTES: usize = 240;

/// A length-prefixed byte buffer (lives in a tag).
#[repr(C)]
pub struct Buf {
    /// Bytes used.
    pub len: u64,
    /// The bytes.
    pub bytes: [u8; MAX_BYTES],
}

/// What the server answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The signature of the request's message.
    Signed(u64),
    /// Not a valid request.
    Rejected,
    /// The parser ended other than by returning: recorded, nothing sent.
    Contained(String),
}

/// The keyed hash the server signs with (FNV-1a over key then message).
pub fn keyed_hash(key: &[u8; 32], msg: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain(msg) {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The parser, as it would run unseparated: `SIGN <msg>` gives the message;
/// `EXPLOIT <16 hex digits>` is the simulated bug: it returns the 8 bytes at that address.
///
/// # Safety
/// With an `EXPLOIT` request, the address must be readable (the unseparated server's
/// own memory: what the bug leaks).
pub unsafe fn parse_plain(req: &[u8], out: &mut [u8; MAX_BYTES]) -> Option<usize> {
    if let Some(m) = req.strip_prefix(b"SIGN ") {
        out[..m.len()].copy_from_slice(m);
        return Some(m.len());
    }
    let hex = req.strip_prefix(b"EXPLOIT ")?;
    let a = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    // SAFETY: the caller's contract (the simulated memory-disclosure bug).
    let leaked = unsafe { (a as *const [u8; 8]).read_volatile() };
    out[..8].copy_from_slice(&leaked);
    Some(8)
}

fn hexval(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u64),
        b'a'..=b'f' => Some((c - b'a' + 10) as u64),
        _ => None,
    }
}

/// The parser as an sthread body. `arg` points to a [`Context`] (in a read-only tag).
fn parse_in_sthread(arg: u64) -> i32 {
    // SAFETY: the server placed a Context at `arg` in a tag this sthread may read; the
    // request buffer is readable and the parsed buffer writable in its view.
    let ctx = unsafe { &*(arg as *const Context) };
    // SAFETY: as above.
    let (req, out) = unsafe {
        (
            &*(ctx.request as *const Buf),
            &mut *(ctx.parsed as *mut Buf),
        )
    };
    let n = (req.len as usize).min(MAX_BYTES);
    let byte = |i: usize| -> u8 {
        // SAFETY: i < MAX_BYTES, inside the request buffer; volatile keeps this a loop
        // of loads (no libc memcpy/memcmp inside an sthread).
        unsafe { core::ptr::read_volatile(&req.bytes[i]) }
    };
    let starts = |p: &[u8]| n >= p.len() && (0..p.len()).all(|i| byte(i) == p[i]);
    let len = if starts(b"SIGN ") {
        for i in 5..n {
            // SAFETY: i - 5 < MAX_BYTES, inside the parsed buffer.
            unsafe { core::ptr::write_volatile(&mut out.bytes[i - 5], byte(i)) };
        }
        n - 5
    } else if starts(b"EXPLOIT ") && n == 24 {
        let mut a = 0u64;
        for i in 8..24 {
            let Some(v) = hexval(byte(i)) else { return -1 };
            a = a << 4 | v;
        }
        // the simulated bug: read 8 bytes where the request says (the key's address)
        // SAFETY: none intended: the view decides.
        let leaked = unsafe { (a as *const u64).read_volatile() };
        // SAFETY: the parsed buffer.
        unsafe { core::ptr::write_volatile(out.bytes.as_mut_ptr() as *mut u64, leaked) };
        8
    } else {
        return -1;
    };
    // SAFETY: the parsed buffer's length field.
    unsafe { core::ptr::write_volatile(&mut out.len, len as u64) };
    callgate_call(ctx.gate, 0) as i32
}

/// The signing callgate: `trusted` points to the key (and where to read and write).
fn sign_gate(trusted: u64, _arg: u64) -> i32 {
    // SAFETY: the server made `trusted` a GateContext in the gate's read-only tag; the key
    // and parsed buffer are readable and the response writable in the gate's view.
    let g = unsafe { &*(trusted as *const GateContext) };
    // SAFETY: as above.
    let (key, parsed) = unsafe { (&*(g.key as *const [u8; 32]), &*(g.parsed as *const Buf)) };
    let n = (parsed.len as usize).min(MAX_BYTES);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    for i in 0..n {
        // SAFETY: i < MAX_BYTES inside the parsed buffer.
        let b = unsafe { core::ptr::read_volatile(&parsed.bytes[i]) };
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    // SAFETY: the response slot in the gate's read-write tag.
    unsafe { core::ptr::write_volatile(g.response as *mut u64, h) };
    0
}

/// What the parser sthread is told (in a tag it reads).
#[repr(C)]
struct Context {
    request: u64,
    parsed: u64,
    gate: u64,
}

/// What the gate is told (its trusted argument, in the key's tag).
#[repr(C)]
struct GateContext {
    key: u64,
    parsed: u64,
    response: u64,
}

/// The server: its key, its buffers, its gate, its recycled parser.
pub struct Server {
    _tags: [Tag; 4],
    /// The key's address (what an exploit aims at).
    pub key_addr: u64,
    request: *mut Buf,
    response: *mut u64,
    context: u64,
    policy: SPolicy,
    parser: Recycler,
    /// (request number from 0, how the parser ended) of every contained request.
    pub incidents: Vec<(u64, Ended)>,
    served: u64,
}

fn alloc<T>(t: &Tag) -> Result<*mut T, PrivsepError> {
    Ok(smalloc(t, core::mem::size_of::<T>() as u64)?.as_ptr() as *mut T)
}

impl Server {
    /// A server with `key`.
    pub fn new(key: [u8; 32]) -> Result<Server, PrivsepError> {
        let secret = tag_new(4096)?; // key + gate context: only the gate reads it
        let input = tag_new(4096)?; // request + parser context: the parser reads it
        let parsed = tag_new(4096)?; // parser writes, gate reads
        let output = tag_new(4096)?; // gate writes
        let key_p = alloc::<[u8; 32]>(&secret)?;
        let gctx = alloc::<GateContext>(&secret)?;
        let request = alloc::<Buf>(&input)?;
        let ctx = alloc::<Context>(&input)?;
        let parsed_p = alloc::<Buf>(&parsed)?;
        let response = alloc::<u64>(&output)?;
        // SAFETY: fresh allocations of the right sizes; no sthread runs yet.
        unsafe {
            key_p.write(key);
            gctx.write(GateContext {
                key: key_p as u64,
                parsed: parsed_p as u64,
                response: response as u64,
            });
        }
        let mut gp = SPolicy::new();
        gp.grant_tag(&secret, Rights::Read)
            .grant_tag(&parsed, Rights::Read)
            .grant_tag(&output, Rights::ReadWrite);
        let gate: Callgate = callgate_create(sign_gate, &gp, gctx as u64)?;
        // SAFETY: as above.
        unsafe {
            ctx.write(Context {
                request: request as u64,
                parsed: parsed_p as u64,
                gate: gate.id(),
            })
        };
        let mut pp = SPolicy::new();
        pp.grant_tag(&input, Rights::Read)
            .grant_tag(&parsed, Rights::ReadWrite)
            .allow_gate(&gate);
        let parser = Recycler::new(&pp)?;
        Ok(Server {
            _tags: [secret, input, parsed, output],
            key_addr: key_p as u64,
            request,
            response,
            context: ctx as u64,
            policy: pp,
            parser,
            incidents: Vec::new(),
            served: 0,
        })
    }

    fn put(&mut self, req: &[u8]) -> Result<(), PrivsepError> {
        if req.len() > MAX_BYTES {
            return Err(PrivsepError::BadArgument {
                what: "request longer than 240 bytes",
            });
        }
        // SAFETY: the request buffer in the input tag; no sthread runs now (runs are
        // synchronous on this thread), and sthreads only read it.
        unsafe {
            (&mut (*self.request).bytes)[..req.len()].copy_from_slice(req);
            (*self.request).len = req.len() as u64;
            self.response.write_volatile(0);
        }
        Ok(())
    }

    fn answer(&mut self, r: Report) -> Answer {
        let n = self.served;
        self.served += 1;
        match r.ended {
            // SAFETY: the response slot; the gate finished.
            Ended::Exited(0) => Answer::Signed(unsafe { self.response.read_volatile() }),
            Ended::Exited(_) => Answer::Rejected,
            e => {
                let what = e.to_string();
                self.incidents.push((n, e));
                Answer::Contained(what)
            }
        }
    }

    /// Handles one request in the recycled parser sthread.
    pub fn handle(&mut self, req: &[u8]) -> Result<Answer, PrivsepError> {
        self.put(req)?;
        let r = self.parser.run(parse_in_sthread, self.context)?;
        Ok(self.answer(r))
    }

    /// Handles one request in a new sthread (a view built for it, then dropped).
    pub fn handle_fresh(&mut self, req: &[u8]) -> Result<Answer, PrivsepError> {
        self.put(req)?;
        let r = sthread_run(&self.policy, parse_in_sthread, self.context)?;
        Ok(self.answer(r))
    }
}

/// The unseparated server: parser and signer in one address space with the key.
pub fn handle_plain(key: &[u8; 32], req: &[u8]) -> Answer {
    let mut out = [0u8; MAX_BYTES];
    // SAFETY: the benchmarks and the example send EXPLOIT only with the key's address.
    match unsafe { parse_plain(req, &mut out) } {
        Some(n) => Answer::Signed(keyed_hash(key, &out[..n])),
        None => Answer::Rejected,
    }
}

/// Fork per request (the classic privilege-separated server): the child parses and signs
/// (it holds a copy of the key: fork isolates the parent, not the key), writes the
/// signature to a pipe and exits; the parent waits.
pub fn handle_forked(key: &[u8; 32], req: &[u8]) -> Answer {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Answer::Rejected;
    }
    // SAFETY: the child only computes, writes to the pipe and _exits (async-signal-safe
    // after fork in a multi-threaded parent: no allocation, no locks).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let sig = match handle_plain(key, req) {
            Answer::Signed(s) => s,
            _ => 0,
        };
        // SAFETY: writes 8 bytes from a local; _exit ends the child.
        unsafe {
            libc::write(fds[1], (&sig as *const u64).cast(), 8);
            libc::_exit(0)
        }
    }
    let mut sig = 0u64;
    // SAFETY: reads 8 bytes into a local, closes our pipe, reaps the child.
    unsafe {
        libc::close(fds[1]);
        libc::read(fds[0], (&mut sig as *mut u64).cast(), 8);
        libc::close(fds[0]);
        libc::waitpid(pid, core::ptr::null_mut(), 0);
    }
    if sig == 0 {
        Answer::Rejected
    } else {
        Answer::Signed(sig)
    }
}
