// Layer 6: public API (dune-hw/LAYERS).
//! The sandbox's vCPU: its CPL0 pages, its syscall stub, and the exit loop that runs it.
//!
//! The syscall stub is the ring-3 path of [`crate::arch::entry`] (LSTAR runs natively in PVM
//! supervisor mode, where only `iretq` works; a CPL3 trampoline rings the MMIO doorbell),
//! with one difference: the stub and trampoline sit alone on their page, and the doorbell
//! address they load sits alone on another, so both pages can be mapped user-accessible
//! (read/execute, read) without exposing anything else of the host.

use super::calls::{self, Step};
use super::view::View;
use super::{Entry, Outcome, Policy, Sandbox, SandboxError};
use crate::arch::addr::{read_guest, write_guest, Gva, BYTES_IN_PAGE};
use crate::arch::entry::{
    exception_stub, ExceptionFrame, EXCEPTION_PORT, SFMASK, SYSCALL_DOORBELL_VALUE,
};
use crate::arch::gdt;
use crate::state::dune::{seg, Dune};
use kmod::{Exit, Vcpu};
use kvm_bindings::kvm_segment;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

core::arch::global_asm!(
    ".pushsection .text.dune_sandbox, \"ax\"",
    ".p2align 12",
    ".globl dune_sandbox_page",
    "dune_sandbox_page:",
    ".globl dune_sandbox_lstar",
    "dune_sandbox_lstar:",
    "lea -128(%rsp), %rsp", // step over the red zone
    "push %rcx",            // user return rip (host reads it at trampoline rsp + 8)
    "pushq $0x2b",          // SS
    "pushq %rsp",           // RSP for the trampoline (= user rsp - 144)
    "pushq %r11",           // RFLAGS (user's)
    "pushq $0x33",          // CS
    "lea dune_sandbox_tramp(%rip), %rcx",
    "push %rcx",
    "mov {doorbell}(%rip), %rcx", // a page of its own, user read-only in the view
    "iretq",
    "dune_sandbox_tramp:", // CPL3
    "movl ${magic}, (%rcx)",
    "ud2",
    ".p2align 12",
    ".globl dune_sandbox_page_end",
    "dune_sandbox_page_end:",
    ".popsection",
    doorbell = sym SANDBOX_DOORBELL,
    magic = const SYSCALL_DOORBELL_VALUE,
    options(att_syntax),
);

/// The doorbell address, alone on its page (the view maps that page user read-only: on
/// PVM hosts the LSTAR stub's loads are checked as user accesses).
#[repr(C, align(4096))]
struct DoorbellPage {
    addr: AtomicU64,
    _pad: [u64; 511],
}

static SANDBOX_DOORBELL: DoorbellPage = DoorbellPage {
    addr: AtomicU64::new(0),
    _pad: [0; 511],
};

extern "C" {
    fn dune_sandbox_page();
    fn dune_sandbox_page_end();
    fn dune_sandbox_lstar();
}

/// Bytes of the monitor (CPL0) stack of a sandbox vCPU: exception frames only.
const MONITOR_STACK_BYTES: u64 = 16 << 10;
/// The whole CPL0 area: GDT at +0, TSS at +0x800, then the stack.
const CPU_PAGES_BYTES: u64 = BYTES_IN_PAGE + MONITOR_STACK_BYTES;
/// Consecutive EFAULT retries of KVM_RUN before the run is ended (see the monitor).
const HOST_MEMORY_GONE_LIMIT: u32 = 1000;

/// The GDT, TSS and monitor stack of a sandbox (mapped supervisor-only in its view).
#[derive(Debug)]
pub(crate) struct CpuPages {
    base: u64,
}

fn page_down(a: u64) -> u64 {
    a & !(BYTES_IN_PAGE - 1)
}

impl CpuPages {
    /// Allocates and fills the CPL0 pages and maps them and the shared ones (IDT,
    /// exception stubs, the doorbell) into `view`; every range given a memory slot is
    /// added to `slots`.
    pub(crate) fn new(
        d: &Dune,
        view: &mut View,
        slots: &mut Vec<(u64, u64)>,
    ) -> Result<CpuPages, SandboxError> {
        let mut register = |s: u64, e: u64| {
            slots.push((s, e));
            d.register_slots(s, e)
        };
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                CPU_PAGES_BYTES as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(SandboxError::Os {
                op: "mmap(sandbox GDT/TSS/monitor stack)",
                source: std::io::Error::last_os_error(),
            });
        }
        let cpu = CpuPages { base: p as u64 };
        let base = cpu.base;
        // SAFETY: a fresh writable mapping of CPU_PAGES_BYTES; the GDT fits at +0.
        unsafe { write_guest(Gva(base), gdt::gdt(base + 0x800)) };
        let top = cpu.stack_top();
        // SAFETY: as above; the TSS fits at +0x800 of the first page.
        unsafe { write_guest(Gva(base + 0x800), gdt::tss(top, top)) };
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let rx = libc::PROT_READ | libc::PROT_EXEC;
        register(base, base + CPU_PAGES_BYTES)?;
        view.map_supervisor(base, base + CPU_PAGES_BYTES, rw)?;
        // shared, read-only for CPL0: IDT, exception stubs, the doorbell address
        let idt = d.sandbox_idt;
        register(idt, idt + BYTES_IN_PAGE)?;
        view.map_supervisor(idt, idt + BYTES_IN_PAGE, libc::PROT_READ)?;
        let exc_start = page_down(exception_stub(0));
        let exc_end = (exception_stub(255) + 64).next_multiple_of(BYTES_IN_PAGE);
        register(exc_start, exc_end)?;
        view.map_supervisor(exc_start, exc_end, rx)?;
        SANDBOX_DOORBELL.addr.store(d.doorbell, Ordering::Release);
        let db_var = &SANDBOX_DOORBELL as *const DoorbellPage as u64;
        register(db_var, db_var + BYTES_IN_PAGE)?;
        view.map_user(db_var, db_var + BYTES_IN_PAGE, libc::PROT_READ)?;
        // the syscall stub page: user-executable (the trampoline runs at CPL3)
        let (sp, se) = (
            dune_sandbox_page as *const () as usize as u64,
            dune_sandbox_page_end as *const () as usize as u64,
        );
        register(sp, se)?;
        view.map_user(sp, se, rx)?;
        // the doorbell: user-writable, no memory slot (every store exits)
        view.map_user(d.doorbell, d.doorbell + BYTES_IN_PAGE, rw)?;
        Ok(cpu)
    }

    fn stack_top(&self) -> u64 {
        self.base + CPU_PAGES_BYTES
    }

    fn stack_low(&self) -> u64 {
        self.base + BYTES_IN_PAGE
    }
}

impl Drop for CpuPages {
    fn drop(&mut self) {
        // SAFETY: mapped by `new`; no vCPU uses these pages once the sandbox is dropped.
        unsafe { libc::munmap(self.base as *mut libc::c_void, CPU_PAGES_BYTES as usize) };
    }
}

/// A run requested by a Dune thread from its monitor ([`serve_hypercall`]).
pub(crate) struct RunRequest<'a> {
    pub(crate) sandbox: &'a mut Sandbox,
    pub(crate) entry: Entry,
    pub(crate) policy: &'a mut dyn Policy,
    pub(crate) result: Option<Result<Outcome, SandboxError>>,
}

/// Issues Dune hypercall `nr` with `arg` in rdi.
pub(crate) fn hypercall_with_arg(nr: u64, arg: u64) -> u64 {
    let r: u64;
    // SAFETY: only called in Dune mode, where the monitor answers the hypercall; it may
    // read and write the memory `arg` points to (the asm is not `nomem`). `syscall`
    // clobbers rcx and r11; clobber_abi("C") covers them and the other scratch registers.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr => r, in("rdi") arg, clobber_abi("C"));
    }
    r
}

/// The monitor's side of [`Sandbox::run`] on a Dune thread: runs the request at `p`.
/// Exported unmangled as `dune_sandbox_run` for the syscall service, which declares it
/// `extern` (it sits below this layer).
#[export_name = "dune_sandbox_run"]
pub(crate) extern "C" fn serve_hypercall(p: u64) -> i64 {
    if p == 0 || !p.is_multiple_of(core::mem::align_of::<RunRequest<'_>>() as u64) {
        return -libc::EINVAL as i64;
    }
    // SAFETY: SANDBOX_RUN is issued only by `Sandbox::run`, with a pointer to its live
    // `RunRequest` on the stack of this very thread, which is stopped in this exit until
    // we return; GPA == HVA, so the pointer is valid on the host side.
    let req = unsafe { &mut *(p as *mut RunRequest<'_>) };
    req.result = Some(run(req.sandbox, req.entry, req.policy));
    0
}

/// What a closure run starts with: takes the closure from the stack, runs it, exits.
pub(crate) extern "C" fn closure_entry<F: FnOnce() -> i32>(p: *mut F) -> ! {
    // SAFETY: `Sandbox::run_closure` moved an `F` to `p` (aligned, in the stack it gave
    // this code) and never touches it again: ownership passes here.
    let f = unsafe { core::ptr::read(p) };
    let status = f();
    super::sys::exit(status)
}

/// The signal that kicks a sandbox vCPU out of KVM_RUN at its deadline (SIGRTMAX - 1,
/// with a handler that does nothing; no SA_RESTART, so a blocked forwarded call returns
/// EINTR too). A run with a timeout fails if the program has its own handler for it.
pub fn kick_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

extern "C" fn ignore_kick(_sig: i32) {}

/// Installs the kick signal's no-op handler, unless the program uses that signal itself.
fn install_kick_handler() -> Result<(), SandboxError> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let ours = ignore_kick as extern "C" fn(i32) as usize;
    // SAFETY: zero is a valid `sigaction` (empty mask, no flags, SIG_DFL).
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: reads the current action into a local.
    if unsafe { libc::sigaction(kick_signal(), core::ptr::null(), &mut old) } != 0 {
        return Err(SandboxError::Os {
            op: "sigaction(sandbox kick signal, query)",
            source: std::io::Error::last_os_error(),
        });
    }
    if old.sa_sigaction == ours {
        return Ok(());
    }
    if old.sa_sigaction != libc::SIG_DFL {
        return Err(SandboxError::Dune(
            crate::arch::error::DuneError::Unsupported {
                feature: "sandbox timeout",
                reason: format!(
                    "signal {} (the timeout's kick) already has a handler in this process",
                    kick_signal()
                ),
            },
        ));
    }
    // SAFETY: zero is a valid `sigaction`.
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = ours;
    // SAFETY: installs a handler that does nothing (async-signal-safe) for a signal nobody
    // else in the process handles (checked above).
    if unsafe { libc::sigaction(kick_signal(), &act, core::ptr::null_mut()) } != 0 {
        return Err(SandboxError::Os {
            op: "sigaction(sandbox kick signal)",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Kicks the running thread out of KVM_RUN at the deadline.
struct Watchdog {
    state: Arc<(Mutex<bool>, Condvar)>,
    fired: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(after: Duration, vcpu: &mut Vcpu) -> Result<Watchdog, SandboxError> {
        install_kick_handler()?;
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let ie = vcpu.immediate_exit_ptr() as usize;
        // SAFETY: getpid/gettid have no arguments.
        let (pid, tid) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
        let (st, fi) = (state.clone(), fired.clone());
        let thread = std::thread::Builder::new()
            .name("sandbox-watchdog".into())
            .spawn(move || {
                let deadline = Instant::now() + after;
                let (m, cv) = &*st;
                let mut done = m.lock().unwrap_or_else(|p| p.into_inner());
                while !*done {
                    let now = Instant::now();
                    if now >= deadline {
                        fi.store(true, Ordering::Release);
                        // SAFETY: the vCPU (and its kvm_run page) lives until `stop`
                        // joined this thread; the byte makes the next KVM_RUN exit.
                        unsafe { core::ptr::write_volatile(ie as *mut u8, 1) };
                        // SAFETY: signals the thread running the sandbox, which is
                        // inside its run (`done` is false under the lock it takes to
                        // finish); the handler does nothing.
                        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, kick_signal()) };
                        return;
                    }
                    done = cv
                        .wait_timeout(done, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            })
            .map_err(|e| SandboxError::Os {
                op: "spawn the sandbox watchdog",
                source: e,
            })?;
        Ok(Watchdog {
            state,
            fired,
            thread: Some(thread),
        })
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    fn stop(&mut self) {
        let (m, cv) = &*self.state;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            // a panic in the watchdog cannot happen (no unwrap there); nothing to report
            let _joined = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop()
    }
}

/// Runs `sb` from `entry` on a vCPU of its own until it ends.
pub(crate) fn run(
    sb: &mut Sandbox,
    entry: Entry,
    policy: &mut dyn Policy,
) -> Result<Outcome, SandboxError> {
    let d = sb.dune;
    // memory slots are evicted when the VM's table is full, and only what the process's
    // own page table uses is kept: register this sandbox's again (a no-op if present)
    for &(s, e) in &sb.slots {
        d.register_slots(s, e)?;
    }
    let idle = IDLE_VCPUS.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut vcpu = match idle {
        Some(v) => v,
        None => d.new_vcpu()?,
    };
    let r = setup(sb, &mut vcpu, &entry).and_then(|()| exit_loop(sb, &mut vcpu, policy));
    IDLE_VCPUS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(vcpu);
    r
}

/// vCPUs of finished sandbox runs, reused only by sandboxes (KVM cannot destroy a vCPU;
/// their number is the most sandboxes that ever ran at once).
static IDLE_VCPUS: Mutex<Vec<Vcpu>> = Mutex::new(Vec::new());

fn setup(sb: &Sandbox, vcpu: &mut Vcpu, entry: &Entry) -> Result<(), SandboxError> {
    let d = sb.dune;
    vcpu.reset_sync();
    vcpu.set_msrs(&[
        (0xc000_0081, gdt::STAR),
        (0xc000_0082, dune_sandbox_lstar as *const () as usize as u64),
        (0xc000_0084, SFMASK),
    ])?;
    let mut s = vcpu.sregs()?;
    s.cs = seg(gdt::USER_CS, 11, 3, true, 0);
    s.ss = seg(gdt::USER_SS, 3, 3, false, 0);
    s.ds = s.ss;
    s.es = s.ss;
    s.fs = seg(0, 3, 3, false, sb.fs_base);
    s.gs = seg(0, 3, 3, false, 0);
    s.ldt = kvm_segment {
        unusable: 1,
        ..Default::default()
    };
    s.tr = kvm_segment {
        base: sb.cpu.base + 0x800,
        limit: gdt::TSS_LEN_BYTES as u32 - 1,
        selector: gdt::TSS_SEL,
        type_: 11,
        present: 1,
        ..Default::default()
    };
    s.gdt.base = sb.cpu.base;
    s.gdt.limit = (gdt::GDT_ENTRIES * 8 - 1) as u16;
    s.idt.base = d.sandbox_idt;
    s.idt.limit = 256 * 16 - 1;
    s.cr0 = 0x8005_0033; // PG | AM | WP | NE | ET | MP | PE
    s.cr3 = sb.view.root();
    s.cr4 = d.cr4;
    s.efer = 0xd01; // NXE | LMA | LME | SCE
    vcpu.set_sregs(&s)?;
    if d.xcr0 != 0 {
        vcpu.set_xcr0(d.xcr0)?;
    }
    // a parked vCPU holds another thread's FPU/SSE/AVX registers: start from the init state
    let mut x = vcpu.xsave()?;
    x.region = [0; 1024];
    x.region[0] = 0x037f; // FCW
    x.region[6] = 0x1f80; // MXCSR
    vcpu.set_xsave(&x)?;
    let r = kvm_bindings::kvm_regs {
        rip: entry.rip,
        rsp: entry.rsp,
        rdi: entry.args[0],
        rsi: entry.args[1],
        rdx: entry.args[2],
        rflags: 0x202,
        ..Default::default()
    };
    vcpu.set_regs(&r)?;
    Ok(())
}

/// Full TLB flush of the sandbox vCPU (a changed CR3 makes KVM drop its shadow roots).
pub(crate) fn flush_tlb(vcpu: &mut Vcpu) -> Result<(), SandboxError> {
    let mut s = vcpu.sregs()?;
    s.cr3 ^= 1 << 3;
    vcpu.set_sregs(&s)?;
    Ok(())
}

fn fault(vector: u8, error_code: u64, rip: u64, addr: Option<u64>, what: &'static str) -> Outcome {
    Outcome::Fault {
        vector,
        name: crate::arch::idt::name(vector as u64),
        error_code,
        rip,
        addr,
        what,
    }
}

fn exit_loop(
    sb: &mut Sandbox,
    vcpu: &mut Vcpu,
    policy: &mut dyn Policy,
) -> Result<Outcome, SandboxError> {
    let mut watchdog = match sb.cfg.timeout {
        Some(t) => Some(Watchdog::start(t, vcpu)?),
        None => None,
    };
    let doorbell = sb.dune.doorbell;
    let mut gone_streak = 0u32;
    let outcome = loop {
        let exit = vcpu.run()?;
        sb.stats.exits += 1;
        if exit != Exit::HostMemoryGone {
            gone_streak = 0;
        }
        match exit {
            Exit::MmioWrite { gpa, value } if gpa & !(BYTES_IN_PAGE - 1) == doorbell => {
                if value != SYSCALL_DOORBELL_VALUE {
                    let rip = vcpu.regs()?.rip;
                    break fault(14, 0, rip, Some(gpa), "stray store to the syscall doorbell");
                }
                match calls::handle(sb, vcpu, policy)? {
                    Step::Resume => {}
                    Step::Finish(o) => break o,
                }
            }
            Exit::IoOut {
                port: EXCEPTION_PORT,
                ..
            } => break exception(sb, vcpu)?,
            Exit::Interrupted => {
                if watchdog.as_ref().is_some_and(|w| w.fired()) {
                    break Outcome::Timeout {
                        after: sb.cfg.timeout.unwrap_or_default(),
                    };
                }
            }
            Exit::Shutdown => {
                let rip = vcpu.regs()?.rip;
                break fault(
                    8,
                    0,
                    rip,
                    None,
                    "triple fault (exception while delivering one)",
                );
            }
            Exit::HostMemoryGone => {
                gone_streak += 1;
                if gone_streak > HOST_MEMORY_GONE_LIMIT {
                    let rip = vcpu.regs()?.rip;
                    break fault(14, 0, rip, None, "granted host memory no longer exists");
                }
                flush_tlb(vcpu)?;
            }
            Exit::MmioWrite { gpa, .. } | Exit::MmioRead { gpa } => {
                let rip = vcpu.regs()?.rip;
                break fault(
                    14,
                    0,
                    rip,
                    Some(gpa),
                    "access to memory without a memory slot",
                );
            }
            _ => {
                let rip = vcpu.regs()?.rip;
                break fault(
                    13,
                    0,
                    rip,
                    None,
                    "an exit the sandbox does not serve (I/O, HLT, emulation failure)",
                );
            }
        }
    };
    if let Some(w) = watchdog.as_mut() {
        w.stop();
    }
    // a kick that raced with the end must not make the vCPU's next user exit at once
    // SAFETY: the vCPU's kvm_run page is mapped while the vCPU lives.
    unsafe { core::ptr::write_volatile(vcpu.immediate_exit_ptr(), 0) };
    Ok(outcome)
}

fn exception(sb: &Sandbox, vcpu: &Vcpu) -> Result<Outcome, SandboxError> {
    let r = vcpu.regs()?;
    let frame_end = r
        .rsp
        .checked_add(core::mem::size_of::<ExceptionFrame>() as u64);
    if r.rsp < sb.cpu.stack_low() || frame_end.is_none_or(|e| e > sb.cpu.stack_top()) {
        return Ok(fault(
            255,
            0,
            r.rip,
            None,
            "exception exit with the monitor stack pointer outside its stack",
        ));
    }
    // SAFETY: the CPL0 stub pushed an ExceptionFrame at rsp, which lies inside this
    // sandbox's monitor stack (checked above; host memory we own).
    let f: ExceptionFrame = unsafe { read_guest(Gva(r.rsp)) };
    let vector = f.vector.min(255) as u8;
    let (addr, what) = match vector {
        14 => {
            let write = f.error & 2 != 0;
            let fetch = f.error & 16 != 0;
            (
                Some(vcpu.sregs()?.cr2),
                if fetch {
                    "instruction fetch outside the memory granted to the sandbox"
                } else if write {
                    "write outside the memory granted to the sandbox (or to read-only memory)"
                } else {
                    "read outside the memory granted to the sandbox"
                },
            )
        }
        13 => (
            None,
            "general protection: a privileged instruction or I/O at CPL3",
        ),
        6 => (None, "invalid opcode"),
        0 => (None, "divide error"),
        3 => (None, "breakpoint"),
        _ => (None, "CPU exception"),
    };
    Ok(fault(vector, f.error, f.rip, addr, what))
}
