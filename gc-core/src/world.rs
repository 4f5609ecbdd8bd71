//! Stopping and resuming every other thread of the process (stop-the-world).
//!
//! Every thread of the process is stopped, not only the threads that allocated: a thread
//! that has not allocated yet may still hold the only pointer to an object (a new thread's
//! start closure sits in glibc's thread descriptor until the thread runs it). The threads
//! are listed from `/proc/self/task`, each is sent the suspend signal (`SIGPWR` unless
//! [`set_suspend_signal`] chose another) with `rt_tgsigqueueinfo`
//! (its slot and the stop epoch in the signal value), and its handler records the
//! interrupted registers, its stack pointer and its FS base in the slot, acknowledges, and
//! waits on a futex until the collector resumes the world. The list is re-read until no
//! new thread appears (a stopped thread cannot create one). A thread that has not
//! answered is looked up in `/proc/self/task/<tid>/status`: gone threads are dropped;
//! threads that block the signal (glibc blocks all signals while a thread starts and
//! exits) are waited for up to two seconds, then collected without, with a warning;
//! a thread already inside the handler is always waited for. Nothing waits forever
//! without saying so.
//!
//! The handler takes no lock, allocates nothing and formats nothing.

use crate::roots::declared;
use crate::util::mmap::{Mapping, MmapVec};
use crate::util::procmaps;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

/// The default signal used to suspend threads (as bdwgc does on Linux).
pub const DEFAULT_SIG_SUSPEND: libc::c_int = libc::SIGPWR;
/// The signal stop-the-world uses; chosen before [`init`] ([`set_suspend_signal`]).
static SIG_SUSPEND: AtomicI32 = AtomicI32::new(DEFAULT_SIG_SUSPEND);

/// The signal stop-the-world suspends threads with (fixed once [`init`] has run).
pub fn suspend_signal() -> libc::c_int {
    SIG_SUSPEND.load(Ordering::Relaxed)
}

/// Choose the signal stop-the-world suspends threads with (bdwgc's
/// `GC_set_suspend_signal`). Only before [`init`]: afterwards the handler is installed
/// and the choice is refused. `SIGKILL`, `SIGSTOP` and numbers outside `1..=SIGRTMAX`
/// are refused too.
pub fn set_suspend_signal(sig: libc::c_int) -> Result<(), &'static str> {
    if INIT.is_completed() {
        return Err("the stop-the-world signal is fixed once the collector is initialised");
    }
    if sig <= 0 || sig > libc::SIGRTMAX() || sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return Err("not a signal that can be caught");
    }
    SIG_SUSPEND.store(sig, Ordering::Relaxed);
    Ok(())
}
/// Most threads that can be stopped at once.
pub const MAX_THREADS: usize = 1 << 15;
/// General-purpose registers saved per thread (`mcontext_t.gregs`).
pub const N_SAVED_REGS: usize = 23;

/// A function told of every thread a stop-the-world stops (`suspended` true, once all
/// have stopped) and resumes (`suspended` false, just before the world restarts), with
/// the thread's thread pointer (its FS base; on glibc that is its `pthread_t`). It runs
/// on the stopping thread with the world stopped: it must not allocate, lock, or call
/// the collector (bdwgc's `GC_set_on_thread_event`).
pub type ThreadEventHook = fn(suspended: bool, thread_pointer: usize);

/// The thread-event hook, as a `fn` address (0: none).
static THREAD_EVENT_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or, with `None`, remove) the thread-event hook.
pub fn set_thread_event_hook(hook: Option<ThreadEventHook>) {
    THREAD_EVENT_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// Tell the thread-event hook, if any, of every thread in `threads`.
fn report_threads(threads: &[StoppedThread], suspended: bool) {
    let f = THREAD_EVENT_HOOK.load(Ordering::Acquire);
    if f == 0 {
        return;
    }
    // SAFETY: only `set_thread_event_hook` stores nonzero values, and it stores the
    // address of a `ThreadEventHook`.
    let f = unsafe { std::mem::transmute::<usize, ThreadEventHook>(f) };
    for t in threads {
        f(suspended, t.fs_base);
    }
}

/// What a stopped thread recorded.
#[repr(C)]
pub struct Slot {
    tid: AtomicI32,
    entered_epoch: AtomicU32,
    acked_epoch: AtomicU32,
    sp: AtomicUsize,
    fs_base: AtomicUsize,
    regs: [AtomicUsize; N_SAVED_REGS],
}

static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());
static STOP_EPOCH: AtomicU32 = AtomicU32::new(0);
static RESUME_EPOCH: AtomicU32 = AtomicU32::new(0);
static ACKS: AtomicU32 = AtomicU32::new(0);
static WORLD: Mutex<()> = Mutex::new(());
/// The handler was installed from inside Dune mode (a guest signal action).
#[cfg(feature = "dune")]
static INSTALLED_IN_GUEST: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
static INIT: Once = Once::new();

fn slots() -> &'static [Slot] {
    let p = SLOTS.load(Ordering::Acquire);
    assert!(!p.is_null(), "world::init not run");
    // SAFETY: SLOTS points to a leaked mapping of MAX_THREADS zeroed Slots (all atomics,
    // zero is valid), set once in init.
    unsafe { std::slice::from_raw_parts(p, MAX_THREADS) }
}

/// Threads of the collector itself (parallel markers), never stopped by [`stop`]. Their
/// stacks are not roots: they hold no pointer the program needs between collections.
static EXEMPT: [AtomicI32; MAX_EXEMPT] = [const { AtomicI32::new(0) }; MAX_EXEMPT];
/// Entries of `EXEMPT` claimed so far.
static N_EXEMPT: AtomicUsize = AtomicUsize::new(0);
/// Most collector threads in a process (every heap's markers together).
const MAX_EXEMPT: usize = 1024;

/// Exempt the calling thread from stop-the-world for the rest of its life (the collector's
/// own marker threads: they run while the world is stopped). False if the table is full.
pub fn exempt_current_thread() -> bool {
    let i = N_EXEMPT.fetch_add(1, Ordering::AcqRel);
    if i >= MAX_EXEMPT {
        return false;
    }
    // SAFETY: gettid has no preconditions.
    EXEMPT[i].store(unsafe { libc::gettid() }, Ordering::Release);
    true
}

/// True if `tid` is one of the collector's own threads ([`exempt_current_thread`]).
pub fn is_exempt(tid: i32) -> bool {
    let n = N_EXEMPT.load(Ordering::Acquire).min(MAX_EXEMPT);
    EXEMPT[..n].iter().any(|e| e.load(Ordering::Acquire) == tid)
}

/// Sleep while `word` holds `expected` (or until `timeout`; spurious wake-ups happen).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the 32-bit word at a valid, aligned address and sleeps; the
    // timespec pointer is null or points to a live local.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tsp,
        )
    };
}

/// Wake up to `n` threads sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        )
    };
}

/// The FS base (thread pointer) of the calling thread: glibc keeps it at %fs:0.
#[inline]
pub fn current_fs_base() -> usize {
    let v: usize;
    // SAFETY: on x86_64 glibc the TCB's first word is its own address; reading it has no
    // side effects.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) v, options(nostack, readonly, preserves_flags))
    };
    v
}

extern "C" fn suspend_handler(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    uctx: *mut libc::c_void,
) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the interrupted code's
    // view intact.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo; for SI_QUEUE signals si_value is set.
    let value = unsafe { (*info).si_value().sival_ptr } as usize;
    let index = value & 0xffff;
    let epoch = (value >> 16) as u32;
    if index < MAX_THREADS && RESUME_EPOCH.load(Ordering::Acquire) < epoch {
        let slot = &slots()[index];
        // Say we are here first: from now on the collector waits for us instead of
        // wondering whether we block the signal (we do, while in this handler).
        slot.entered_epoch.store(epoch, Ordering::Release);
        let uc = uctx as *const libc::ucontext_t;
        for i in 0..N_SAVED_REGS {
            // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
            let r = unsafe { (*uc).uc_mcontext.gregs[i] } as usize;
            slot.regs[i].store(r, Ordering::Relaxed);
        }
        let marker = 0usize;
        slot.sp
            .store(&marker as *const usize as usize, Ordering::Relaxed);
        // A thread stopped while running in Dune mode was interrupted on the host side of
        // its exit loop: its own registers and stack are the guest's, read through KVM.
        // (Only when this handler is a host action — installed before entering Dune; one
        // installed from inside Dune runs in the guest with the guest's own ucontext.)
        #[cfg(feature = "dune")]
        if let Some(g) = (!INSTALLED_IN_GUEST.load(Ordering::Relaxed))
            .then(dune_hw::guest_regs)
            .flatten()
        {
            for (i, r) in g.gprs.iter().enumerate() {
                slot.regs[i].store(*r as usize, Ordering::Relaxed);
            }
            for r in &slot.regs[g.gprs.len()..] {
                r.store(g.rip as usize, Ordering::Relaxed);
            }
            slot.sp.store(g.stack_low as usize, Ordering::Relaxed);
        }
        slot.fs_base.store(current_fs_base(), Ordering::Relaxed);
        slot.acked_epoch.store(epoch, Ordering::Release);
        ACKS.fetch_add(1, Ordering::AcqRel);
        futex_wake(&ACKS, 1);
        loop {
            let r = RESUME_EPOCH.load(Ordering::Acquire);
            if r >= epoch {
                break;
            }
            futex_wait(&RESUME_EPOCH, r, None);
        }
        std::hint::black_box(&marker);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Install the suspend handler and map the slot table (once per process).
pub fn init() -> std::io::Result<()> {
    let mut result = Ok(());
    INIT.call_once(|| {
        let map = match Mapping::new(MAX_THREADS * std::mem::size_of::<Slot>()) {
            Ok(m) => m,
            Err(e) => {
                result = Err(e);
                return;
            }
        };
        SLOTS.store(map.start() as *mut Slot, Ordering::Release);
        std::mem::forget(map);
        result = install_handler();
    });
    result
}

/// Install (again) the suspend handler, as the calling thread's current mode sees it.
///
/// Called once by [`init`]; the Dune backend calls it again after the process entered Dune
/// mode, so that the handler becomes a *guest* signal action: dune-hw then delivers the
/// suspend signal inside the guest, at a point where the thread holds none of the
/// monitor's locks (a thread stopped on its host side in the middle of an exit could hold
/// the guest page-table lock that the collector's own `mmap` needs), with the guest's own
/// registers in the ucontext.
pub fn install_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; we fill handler, flags and
    // a full mask (no other signal interrupts the suspended thread's handler).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = suspend_handler as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t inside sa.
    unsafe { libc::sigfillset(&mut sa.sa_mask) };
    #[cfg(feature = "dune")]
    INSTALLED_IN_GUEST.store(dune_hw::in_dune(), Ordering::Relaxed);
    // SAFETY: installs a handler that is async-signal-safe (atomics and futex only).
    if unsafe { libc::sigaction(suspend_signal(), &sa, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A stopped thread, as seen by the collector.
#[derive(Clone, Copy, Debug)]
pub struct StoppedThread {
    /// Kernel thread id.
    pub tid: i32,
    /// Stack pointer inside the suspend handler (below the saved context).
    pub sp: usize,
    /// The thread's FS base (glibc TCB; static TLS lies just below it).
    pub fs_base: usize,
    /// Index of its slot (for its saved registers).
    pub slot: usize,
}

/// The world while stopped. Dropping it resumes every thread.
pub struct StoppedWorld {
    _guard: MutexGuard<'static, ()>,
    epoch: u32,
    /// The stopped threads.
    pub threads: MmapVec<StoppedThread>,
    /// Threads that were skipped because they block the suspend signal.
    pub skipped: usize,
    /// The thread-event hook was told these threads are suspended (so it is told of
    /// their resumption too).
    reported: bool,
}

impl StoppedWorld {
    /// The registers a stopped thread had when it was interrupted.
    pub fn saved_regs(&self, t: &StoppedThread) -> [usize; N_SAVED_REGS] {
        let s = &slots()[t.slot];
        std::array::from_fn(|i| s.regs[i].load(Ordering::Relaxed))
    }
}

impl Drop for StoppedWorld {
    fn drop(&mut self) {
        if self.reported {
            report_threads(self.threads.as_slice(), false);
        }
        RESUME_EPOCH.store(self.epoch, Ordering::Release);
        futex_wake(&RESUME_EPOCH, i32::MAX);
    }
}

/// Call `f` with each thread id of this process, read with raw `getdents64`.
pub(crate) fn for_each_tid(mut f: impl FnMut(i32)) -> std::io::Result<()> {
    const PATH: &[u8] = b"/proc/self/task\0";
    // SAFETY: NUL-terminated path.
    let fd = unsafe {
        libc::open(
            PATH.as_ptr().cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into our stack buffer.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off < n as usize {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let mut tid: i32 = 0;
            let mut digits = 0;
            for &b in name.iter().take_while(|&&b| b != 0) {
                if b.is_ascii_digit() {
                    tid = tid * 10 + (b - b'0') as i32;
                    digits += 1;
                } else {
                    digits = 0;
                    break;
                }
            }
            if digits > 0 {
                f(tid);
            }
            off += reclen;
        }
    }
    // SAFETY: our fd, closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

/// What `/proc/self/task/<tid>/status` says about a thread we are waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    /// The thread no longer exists.
    Gone,
    /// It blocks the suspend signal (glibc does so while a thread starts and exits).
    Blocked,
    /// It will take the signal when it next runs.
    Deliverable,
}

/// Read `/proc/self/task/<tid>/<file>` into `buf` without allocating; the bytes read, or
/// None if the thread is gone.
fn read_task_file<'a>(tid: i32, file: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let fd = open_task_file(tid, file);
    if fd < 0 {
        return None;
    }
    // SAFETY: reads into the caller's buffer.
    let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    (len > 0).then(|| &buf[..len as usize])
}

/// `PF_USER_WORKER`: a kernel worker living in the process (KVM's
/// `kvm-nx-lpage-recovery`, io_uring workers). It never runs user code and blocks every
/// signal, so stop-the-world leaves it alone.
const PF_USER_WORKER: u64 = 0x0000_4000;

/// Kernel workers seen before, so later stops skip them without waiting: their tid and an
/// open descriptor of their `/proc/self/task/<tid>/stat` (-1: none). Each is checked again
/// before being skipped, since thread ids are reused: through the kept descriptor, which
/// refers to that very task (a read fails once it has exited, whatever thread gets its id
/// later), with one `pread` — one forwarded call in Dune, where a stop would otherwise pay
/// open + read + close for every worker (each a VM exit: ~150 µs on a PVM host).
static KNOWN_WORKERS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];
static KNOWN_WORKER_FDS: [AtomicI32; 16] = [const { AtomicI32::new(-1) }; 16];

fn remember_worker(tid: i32) {
    for (w, fd) in KNOWN_WORKERS.iter().zip(&KNOWN_WORKER_FDS) {
        if w.load(Ordering::Acquire) == tid {
            return;
        }
        if w.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            fd.store(open_task_file(tid, b"stat"), Ordering::Release);
            return;
        }
    }
}

fn known_worker(tid: i32) -> bool {
    let Some(i) = KNOWN_WORKERS
        .iter()
        .position(|w| w.load(Ordering::Acquire) == tid)
    else {
        return false;
    };
    let fd = KNOWN_WORKER_FDS[i].load(Ordering::Acquire);
    if fd < 0 {
        return is_kernel_worker(tid);
    }
    let mut buf = [0u8; 1024];
    // SAFETY: reads into a local buffer from a descriptor this module opened (if the
    // program closed it meanwhile, the read fails or reads another file, which the check
    // of its content below rejects).
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    // The content is checked, not only the read's success: the descriptor number may have
    // been closed and reused by the program.
    n > 0 && stat_says_worker(tid, &buf[..n as usize])
}

/// Open `/proc/self/task/<tid>/<file>` read-only (close-on-exec); -1 if the thread is gone.
fn open_task_file(tid: i32, file: &[u8]) -> i32 {
    let mut path = [0u8; 64];
    let prefix = b"/proc/self/task/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut t = tid;
    loop {
        digits[d] = b'0' + (t % 10) as u8;
        d += 1;
        t /= 10;
        if t == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    path[n] = b'/';
    path[n + 1..n + 1 + file.len()].copy_from_slice(file);
    // SAFETY: NUL-terminated (the rest of `path` is zero).
    unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) }
}

/// True if `stat` (the content of `/proc/self/task/<tid>/stat`) is thread `tid`'s and has
/// `PF_USER_WORKER` in its flags.
fn stat_says_worker(tid: i32, stat: &[u8]) -> bool {
    // The first field is the thread id itself.
    let mut id = 0i64;
    let mut digits = 0;
    for &b in stat.iter().take_while(|b| b.is_ascii_digit()) {
        id = id * 10 + (b - b'0') as i64;
        digits += 1;
    }
    if digits == 0 || id != tid as i64 || stat.get(digits) != Some(&b' ') {
        return false;
    }
    // Fields after the command name (which may contain spaces): state is field 3, flags 9.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let flags = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(6)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    flags & PF_USER_WORKER != 0
}

/// True if `tid` is a kernel worker thread of this process (flag `PF_USER_WORKER` in its `stat`).
pub fn is_kernel_worker(tid: i32) -> bool {
    let mut buf = [0u8; 1024];
    let Some(stat) = read_task_file(tid, b"stat", &mut buf) else {
        return false;
    };
    stat_says_worker(tid, stat)
}

fn task_state(tid: i32) -> TaskState {
    let mut buf = [0u8; 4096];
    let Some(text) = read_task_file(tid, b"status", &mut buf) else {
        return TaskState::Gone;
    };
    let key = b"SigBlk:\t";
    let Some(pos) = text.windows(key.len()).position(|w| w == key) else {
        return TaskState::Deliverable;
    };
    let hex = &text[pos + key.len()..];
    let mut mask: u64 = 0;
    for &b in hex.iter().take(16) {
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => break,
        };
        mask = (mask << 4) | v as u64;
    }
    if mask & (1u64 << (suspend_signal() - 1)) != 0 {
        TaskState::Blocked
    } else {
        TaskState::Deliverable
    }
}

/// How long a thread may block the suspend signal before stop-the-world gives up on it
/// (with a warning): long enough for glibc's thread start-up and exit windows.
const MAX_BLOCKED: Duration = Duration::from_secs(2);

fn send_suspend(tid: i32, slot: usize, epoch: u32) -> bool {
    // SAFETY: a zeroed siginfo is valid; we fill the fields rt_tgsigqueueinfo reads.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    info.si_signo = suspend_signal();
    info.si_code = libc::SI_QUEUE;
    // The value lives at the same offset as in the kernel's _rt layout: after si_pid and
    // si_uid, at byte 24 on x86_64.
    let value = slot | ((epoch as usize) << 16);
    let raw = &mut info as *mut libc::siginfo_t as *mut u8;
    // SAFETY: offsets 16..32 are inside siginfo_t (128 bytes): si_pid (i32), si_uid (u32)
    // and the sigval union, per the x86_64 kernel ABI.
    unsafe {
        (raw.add(16) as *mut i32).write_unaligned(libc::getpid());
        (raw.add(20) as *mut u32).write_unaligned(libc::getuid());
        (raw.add(24) as *mut usize).write_unaligned(value);
    }
    // SAFETY: sends a signal to a thread of our own process with a valid siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            tid,
            suspend_signal(),
            &info as *const libc::siginfo_t,
        )
    };
    rc == 0
}

/// Stop every thread of the process except the caller. Allocates only through mmap.
pub fn stop() -> std::io::Result<StoppedWorld> {
    init()?;
    let guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    let epoch = STOP_EPOCH.fetch_add(1, Ordering::AcqRel) + 1;
    debug_assert!(RESUME_EPOCH.load(Ordering::Acquire) < epoch);
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let mut threads: MmapVec<StoppedThread> = MmapVec::new();
    // (tid, slot, milliseconds since `stop` began when first seen blocking; 0 = not)
    let mut pending: MmapVec<(i32, usize, u64)> = MmapVec::new();
    let mut given_up: MmapVec<i32> = MmapVec::new();
    let mut skipped = 0usize;
    let began = Instant::now();
    let mut next_slot = 0usize;
    let table = slots();
    loop {
        // Signal every thread not yet stopped.
        let mut new_ones = 0;
        let mut err = None;
        for_each_tid(|tid| {
            if tid == me || err.is_some() {
                return;
            }
            let known = threads.as_slice().iter().any(|t| t.tid == tid)
                || pending.as_slice().iter().any(|p| p.0 == tid)
                || given_up.as_slice().contains(&tid);
            if known || known_worker(tid) || is_exempt(tid) {
                return;
            }
            if next_slot >= MAX_THREADS {
                err = Some(std::io::Error::other(
                    "more threads than the collector can stop",
                ));
                return;
            }
            let slot = next_slot;
            next_slot += 1;
            table[slot].tid.store(tid, Ordering::Relaxed);
            table[slot].acked_epoch.store(0, Ordering::Release);
            table[slot].entered_epoch.store(0, Ordering::Release);
            if send_suspend(tid, slot, epoch) {
                if let Err(e) = pending.push((tid, slot, 0)) {
                    err = Some(e);
                }
                new_ones += 1;
            }
        })?;
        if let Some(e) = err {
            // Resume whoever we stopped before failing.
            drop(StoppedWorld {
                _guard: guard,
                epoch,
                threads,
                skipped,
                reported: false,
            });
            return Err(e);
        }
        if new_ones == 0 && pending.is_empty() {
            break;
        }
        // Wait for acknowledgements.
        let started = Instant::now();
        let mut last_check = Instant::now();
        // The first look at the threads that have not answered comes after 1 ms, the
        // later ones every 50 ms: a kernel worker (KVM's `kvm-nx-lpage-recovery`, which
        // every process in Dune has) never answers, and waiting the full 50 ms to find
        // that out made the first collection in Dune a 57 ms pause (GCBench: 72 ms max
        // pause in dune-full against 8.6 ms in full).
        let mut check_after = Duration::from_millis(1);
        while !pending.is_empty() {
            let seen = ACKS.load(Ordering::Acquire);
            let mut i = 0;
            while i < pending.len() {
                let (tid, slot, _) = pending.as_slice()[i];
                if table[slot].acked_epoch.load(Ordering::Acquire) == epoch {
                    threads
                        .push(StoppedThread {
                            tid,
                            sp: table[slot].sp.load(Ordering::Relaxed),
                            fs_base: table[slot].fs_base.load(Ordering::Relaxed),
                            slot,
                        })
                        .map_err(|e| {
                            std::io::Error::new(e.kind(), "mapping the stopped-thread list failed")
                        })?;
                    let last = pending.len() - 1;
                    pending.as_mut_slice().swap(i, last);
                    pending.pop();
                } else {
                    i += 1;
                }
            }
            if pending.is_empty() {
                break;
            }
            if last_check.elapsed() > check_after {
                last_check = Instant::now();
                check_after = Duration::from_millis(50);
                let now_ms = began.elapsed().as_millis() as u64 + 1;
                let mut j = 0;
                while j < pending.len() {
                    let (tid, slot, blocked_since) = pending.as_slice()[j];
                    let entered = table[slot].entered_epoch.load(Ordering::Acquire) == epoch;
                    let state = if entered {
                        TaskState::Deliverable
                    } else {
                        task_state(tid)
                    };
                    let give_up = match state {
                        TaskState::Gone => true,
                        TaskState::Deliverable => {
                            pending.as_mut_slice()[j].2 = 0;
                            if !entered {
                                // Send it again. Defensive: dune-hw once let a recorded
                                // signal wait behind a forwarded blocking call it raced
                                // with (fixed: such calls are now interrupted, see
                                // dune_hw::signal); a repeat costs nothing, since standard
                                // signals merge and a late duplicate finds the epoch
                                // resumed and returns at once.
                                send_suspend(tid, slot, epoch);
                            }
                            false
                        }
                        TaskState::Blocked if blocked_since == 0 && is_kernel_worker(tid) => {
                            // Not a user thread: nothing to stop, nothing to scan.
                            remember_worker(tid);
                            given_up.push(tid).map_err(|e| {
                                std::io::Error::new(
                                    e.kind(),
                                    "mapping the skipped-thread list failed",
                                )
                            })?;
                            let last = pending.len() - 1;
                            pending.as_mut_slice().swap(j, last);
                            pending.pop();
                            continue;
                        }
                        TaskState::Blocked if blocked_since == 0 => {
                            pending.as_mut_slice()[j].2 = now_ms;
                            false
                        }
                        TaskState::Blocked => {
                            now_ms - blocked_since > MAX_BLOCKED.as_millis() as u64
                        }
                    };
                    if give_up {
                        if state == TaskState::Blocked {
                            skipped += 1;
                            const MSG: &[u8] = b"dunegc: a thread has blocked the stop-the-world signal for 2 s; collecting without it: its stack is not scanned\n";
                            // SAFETY: writes a static buffer to stderr.
                            unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
                        }
                        // Never signal it again in this stop; if it enters the handler
                        // later it only waits for the resume.
                        given_up.push(tid).map_err(|e| {
                            std::io::Error::new(e.kind(), "mapping the skipped-thread list failed")
                        })?;
                        let last = pending.len() - 1;
                        pending.as_mut_slice().swap(j, last);
                        pending.pop();
                    } else {
                        j += 1;
                    }
                }
                if started.elapsed() > Duration::from_secs(30) {
                    const MSG: &[u8] = b"dunegc: a thread has not answered the stop-the-world signal for 30 s; still waiting\n";
                    // SAFETY: writes a static buffer to stderr.
                    unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
                }
            }
            futex_wait(&ACKS, seen, Some(Duration::from_millis(1)));
        }
    }
    report_threads(threads.as_slice(), true);
    Ok(StoppedWorld {
        _guard: guard,
        epoch,
        threads,
        skipped,
        reported: true,
    })
}

/// A range of memory a stopped (or the current) thread may hold pointers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadRoots {
    /// The stack from the stack pointer to the end of its mapping (for glibc threads this
    /// includes the TLS block and thread descriptor at the top of the stack mapping).
    pub stack: (usize, usize),
    /// Static TLS around the FS base when it lies outside `stack` (the main thread's).
    pub tls: (usize, usize),
    /// The thread's whole declared normal stack while it runs on its declared alternate
    /// signal stack (then `stack` is the alternate stack from the stack pointer up; see
    /// [`crate::roots::declared`]); else empty.
    pub extra: (usize, usize),
}

/// Bytes of static TLS scanned below the FS base when it is not inside the stack mapping.
const TLS_WINDOW_BELOW: usize = 64 << 10;
/// Bytes scanned above the FS base (the TCB itself).
const TLS_WINDOW_ABOVE: usize = 4 << 10;

/// Work out the root ranges of threads from their stack pointers and FS bases with one
/// read of `/proc/self/maps`.
pub fn thread_roots(
    threads: &[(usize, usize)],
    out: &mut MmapVec<ThreadRoots>,
) -> std::io::Result<()> {
    out.clear();
    out.reserve(threads.len())?;
    for _ in threads {
        out.push_within_capacity(ThreadRoots {
            stack: (0, 0),
            tls: (0, 0),
            extra: (0, 0),
        })
        .map_err(|_| std::io::Error::other("capacity"))?;
    }
    let roots = out.as_mut_slice();
    let declarations = declared::any();
    let mut readable = declared::ReadableRuns::new();
    procmaps::for_each_mapping(|m| {
        if declarations {
            readable.add(m.start, m.end, m.readable);
        }
        for (i, &(sp, fs)) in threads.iter().enumerate() {
            let sp_here = m.start <= sp && sp < m.end;
            if sp_here {
                roots[i].stack = (sp & !7, m.end);
            }
            if m.start <= fs && fs < m.end && m.readable {
                roots[i].tls = if sp_here && fs >= sp {
                    // glibc keeps a thread's static TLS and descriptor at the top of its
                    // stack mapping, above every frame: the stack range covers them. A
                    // window reaching below `sp` would scan dead frames (stale words of
                    // returned calls, e.g. an idle marker's loop) and retain garbage.
                    (0, 0)
                } else {
                    let hi = if sp_here { sp & !7 } else { m.end };
                    (
                        (fs.saturating_sub(TLS_WINDOW_BELOW)).max(m.start) & !7,
                        (fs + TLS_WINDOW_ABOVE).min(hi),
                    )
                };
            }
        }
        true
    });
    if declarations {
        for (r, &(sp, fs)) in roots.iter_mut().zip(threads) {
            if let Some(d) = declared::get(fs) {
                if let Some((stack, extra)) = declared::ranges(sp, &d, &readable) {
                    r.stack = stack;
                    r.extra = extra;
                    // TLS left to the default stack range (glibc's, at the top of the
                    // stack mapping) that the declared range no longer covers.
                    let covered = |(lo, hi): (usize, usize)| lo <= fs && fs < hi;
                    if r.tls == (0, 0) && !covered(stack) && !covered(extra) {
                        if let Some(run) = readable.containing(fs) {
                            let mut lo = fs.saturating_sub(TLS_WINDOW_BELOW).max(run.0);
                            if stack.1 <= fs && stack.0 >= run.0 {
                                lo = lo.max(stack.1);
                            }
                            r.tls = (lo & !7, (fs + TLS_WINDOW_ABOVE).min(run.1));
                        }
                    }
                }
            }
        }
    }
    for (r, &(sp, _)) in roots.iter_mut().zip(threads) {
        if r.tls.0 >= r.tls.1 {
            r.tls = (0, 0);
        }
        if r.stack == (0, 0) && r.tls == (0, 0) {
            r.stack = (sp & !7, sp & !7);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_roots_never_reach_below_its_stack_pointer() {
        // A spawned thread: its TLS sits at the top of its stack mapping, a few KiB above
        // its stack pointer, so a TLS window taken below the FS base would reach into
        // the dead frames below the stack pointer.
        let (sp, fs, roots) = std::thread::spawn(|| {
            let here = 0usize;
            let sp = std::hint::black_box(&here) as *const usize as usize;
            let fs = current_fs_base();
            let mut out = MmapVec::new();
            thread_roots(&[(sp, fs)], &mut out).expect("/proc/self/maps");
            (sp, fs, out.as_slice()[0])
        })
        .join()
        .unwrap();
        assert_eq!(roots.stack.0, sp & !7, "{roots:x?}");
        assert!(
            roots.stack.1 > fs,
            "the stack range covers the TLS: {roots:x?}"
        );
        assert_eq!(roots.tls, (0, 0), "no second, wider TLS range: {roots:x?}");
    }

    #[test]
    fn a_stat_line_names_a_worker_only_for_its_own_tid_and_flag() {
        // flags (field 9) 0x404040 has PF_USER_WORKER; the command name has a space and
        // a parenthesis, as a thread may name itself
        let worker = b"9596 (kvm-nx (lpage) S 9590 9590 1 0 -1 4210752 0 0 0 0";
        assert!(stat_says_worker(9596, worker));
        assert!(!stat_says_worker(9597, worker), "another thread's stat");
        assert!(
            !stat_says_worker(959, worker),
            "a prefix of the id is not the id"
        );
        let user = b"9597 (runner) S 9590 9590 1 0 -1 4194368 0 0 0 0";
        assert!(!stat_says_worker(9597, user));
        assert!(!stat_says_worker(1, b"garbage"));
        // this thread is no kernel worker, and a remembered tid that is not a worker any
        // more is not skipped
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        assert!(!is_kernel_worker(me));
        remember_worker(me);
        assert!(
            !known_worker(me),
            "the kept descriptor's content is checked"
        );
    }
}
