//! Process-wide Dune state (one VM, one guest page table) and per-thread state (one vCPU,
//! its GDT/TSS/monitor stack, the exit-loop stack), and entering/leaving.

use crate::addr::{Gva, USER_END};
use crate::entry::{self, EnterFrame, DOORBELL_ADDR, SFMASK};
use crate::error::DuneError;
use crate::gdt;
use crate::idt;
use crate::maps;
use crate::paging::frames::PoolFrames;
use crate::paging::{DirtyView, PageTable};
use crate::signal::SigState;
use kmod::{Mode, ModeChoice, System, Vcpu, Vm};
use kvm_bindings::kvm_segment;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Bytes reserved for guest page-table frames (NORESERVE: untouched frames are free).
const PT_POOL_BYTES: u64 = 1 << 30;
/// Mappings larger than this are mapped into the guest lazily, on fault.
pub const LAZY_MAP_BYTES: u64 = 64 << 20;
/// Page-table entries created per fault in a lazily mapped range (one leaf table).
pub const FAULT_WINDOW_BYTES: u64 = 2 << 20;
/// Memory slots are registered in aligned granules of this size.
pub const SLOT_GRANULE_BYTES: u64 = 2 << 20;
/// Memory-slot granularity in a lazily mapped range.
pub const SLOT_WINDOW_BYTES: u64 = 64 << 20;
/// Exit-loop stack per thread.
const LOOP_STACK_BYTES: usize = 1 << 20;
/// Monitor (CPL0) stack per thread.
const MONITOR_STACK_BYTES: usize = entry::MONITOR_STACK_BYTES as usize;

// The hypercall numbers are part of the guest ABI, so they live in the arch layer
// (`entry`, whose stubs answer some of them); this is their historical path.
pub use crate::entry::hypercall;

/// Whether a range being mapped is new memory or the same memory with a new protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// New memory (mmap, brk): old entries at these addresses are stale.
    Fresh,
    /// The same memory (mprotect, a mapping found on demand): keep A/D bits.
    Kept,
}

/// Guest memory the host wrote while executing a syscall for the guest (no D bit is set
/// for such writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostWrite {
    /// `[start, start+len_bytes)` may have been written.
    Range {
        /// First byte.
        start: Gva,
        /// Length.
        len_bytes: u64,
    },
    /// Syscall `nr` may have written guest memory we cannot name: treat all as written.
    Unknown {
        /// The syscall.
        nr: u64,
    },
}

/// The hook receiving [`HostWrite`]s. It runs in the exit loop: it must not allocate, lock
/// anything the guest may hold, or panic.
pub type HostWriteHook = fn(HostWrite);

/// Options for [`crate::enter_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Force a mode (otherwise detected; env `DUNEGC_DUNE_MODE` also forces).
    pub mode: Option<Mode>,
    /// Use at most this many KVM memory slots (default: what KVM allows). For tests of
    /// slot eviction.
    pub max_memslots: Option<usize>,
}

/// The process-wide state.
pub struct Dune {
    pub(crate) vm: Vm,
    pub(crate) mode: ModeChoice,
    pub(crate) pt: Mutex<PageTable>,
    pub(crate) root: u64,
    pub(crate) idt: u64,
    pub(crate) doorbell: u64,
    pub(crate) brk: AtomicU64,
    /// Bumped when a mapping is removed or restricted; every vCPU flushes before it next
    /// enters the guest if its generation is older.
    pub(crate) generation: AtomicU64,
    hook: AtomicUsize,
    next_vcpu: AtomicU64,
    /// Threads in Dune mode now (counted from before a new thread's first instruction to
    /// its exit or `exit()`).
    pub(crate) live_threads: AtomicUsize,
    /// vCPUs of threads that left Dune mode, reused by the next `enter` (KVM limits vCPU ids).
    idle_vcpus: Mutex<Vec<Vcpu>>,
    /// Contexts of threads that ended inside Dune (raw `Box<ThreadCtx>` pointers): their
    /// stacks and GDT/TSS pages are reused once their `exited` flag is set.
    retired: Mutex<Vec<usize>>,
    pub(crate) xcr0: u64,
    pub(crate) cr4: u64,
    /// Exceptions with a guest fault handler are delivered in the guest (IDT of
    /// [`entry::exception_stub_guest`]); see [`crate::fault::guest_delivery`].
    pub(crate) guest_delivery: bool,
    /// The IDT of sandbox vCPUs: the plain stubs ([`entry::exception_stub`]) with the same
    /// IST choice (the same page as `idt` without guest delivery).
    pub(crate) sandbox_idt: u64,
}

/// The process's Dune state: set once, read lock-free.
static DUNE: OnceLock<&'static Dune> = OnceLock::new();
/// Serialises the (fallible) creation.
static INIT: Mutex<()> = Mutex::new(());

fn mmap_anon(len: usize, prot: i32, flags: i32, op: &'static str) -> Result<u64, DuneError> {
    // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(DuneError::Os {
            op,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(p as u64)
}

fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: xgetbv(0) is valid when CPUID reports OSXSAVE, checked by the caller.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (hi as u64) << 32 | lo as u64
}

/// Set in a child forked from Dune mode (by [`crate::thread`]): this process has no VM of
/// its own.
pub(crate) static FORKED_CHILD: AtomicBool = AtomicBool::new(false);

impl Dune {
    /// The process's Dune state, created on first use.
    pub fn get_or_init(opts: &Options) -> Result<&'static Dune, DuneError> {
        let _serial = INIT.lock().unwrap_or_else(|p| p.into_inner());
        if FORKED_CHILD.load(Ordering::Acquire) {
            return Err(DuneError::Unsupported {
                feature: "Dune mode in a child forked from Dune mode",
                reason: "the KVM VM belongs to the parent process".into(),
            });
        }
        if let Some(&d) = DUNE.get() {
            if let Some(m) = opts.mode {
                if m != d.mode.mode {
                    return Err(DuneError::Unsupported {
                        feature: "changing the Dune mode",
                        reason: format!("this process already runs Dune in {}", d.mode.reason),
                    });
                }
            }
            return Ok(d);
        }
        let d: &'static Dune = Box::leak(Box::new(Dune::create(opts)?));
        Ok(*DUNE.get_or_init(|| d))
    }

    /// The state if Dune was initialised in this process.
    pub fn get() -> Option<&'static Dune> {
        DUNE.get().copied()
    }

    fn create(opts: &Options) -> Result<Dune, DuneError> {
        let system = System::open()?;
        let mode = kmod::mode::choose(&system, opts.mode)?;
        // XCR0: what both the host and KVM support (AVX etc. must work in the guest: libc
        // picked AVX2 string functions on the host).
        let leaf1 = core::arch::x86_64::__cpuid(1);
        let osxsave = leaf1.ecx & (1 << 27) != 0;
        let sup = system
            .supported_cpuid()
            .as_slice()
            .iter()
            .find(|e| e.function == 0xd && e.index == 0)
            .copied();
        let (xcr0, cr4_osxsave) = match (osxsave, sup) {
            (true, Some(e)) => (
                xgetbv0() & ((e.edx as u64) << 32 | e.eax as u64),
                1u64 << 18,
            ),
            _ => (0, 0),
        };
        let cr4 = 0x20 | 0x200 | 0x400 | cr4_osxsave; // PAE | OSFXSR | OSXMMEXCPT | OSXSAVE
        let vm = Vm::create_with_slot_limit(system, opts.max_memslots.unwrap_or(usize::MAX))?;

        let frames = PoolFrames::reserve(PT_POOL_BYTES)?;
        let pt = PageTable::new(frames)?;
        let root = pt.root();
        // IDT page
        let idt = mmap_anon(4096, libc::PROT_READ | libc::PROT_WRITE, 0, "mmap(IDT)")?;
        // ring-0 and PVM: exceptions arrive on IST 1 (the monitor stack). In PVM supervisor
        // mode an event is delivered on the *current* stack unless the gate names an IST
        // (TSS.rsp0 is never used there; see kmod::pvm).
        let ist = if mode.mode == Mode::Ring3 { 0 } else { 1 };
        // In-guest exception delivery (crate::fault::set_guest_fault_handler) wherever our
        // own supervisor code runs the exception: not ring-3 (its CPL0 is emulated and only
        // the stubs' `out` runs there), and only if the interrupted code's extended state
        // fits the area reserved on the monitor stack.
        let xsave_bytes = if xcr0 != 0 {
            core::arch::x86_64::__cpuid_count(0xd, 0).ebx as u64
        } else {
            512
        };
        let guest_delivery =
            mode.mode != Mode::Ring3 && xsave_bytes + 64 <= entry::GUEST_XSAVE_BYTES;
        entry::GUEST_XSAVE.store((xcr0 != 0) as u64, Ordering::Release);
        // sandboxes (crate::sandbox) keep the plain stubs: the in-guest path reads process
        // memory their page-table view does not map, and must never run program handlers
        let sandbox_idt = if guest_delivery {
            mmap_anon(
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                0,
                "mmap(sandbox IDT)",
            )?
        } else {
            idt
        };
        for v in 0..=255u8 {
            let g = idt::gate(entry::exception_stub(v), ist);
            // SAFETY: sandbox_idt is a fresh writable page of 256 16-byte gates (or `idt`).
            unsafe { crate::addr::write_guest(Gva(sandbox_idt + 16 * v as u64), g) };
        }
        for v in 0..=255u8 {
            let stub = if guest_delivery {
                entry::exception_stub_guest(v)
            } else {
                entry::exception_stub(v)
            };
            let g = idt::gate(stub, ist);
            // SAFETY: idt is a fresh writable page of 256 16-byte gates.
            unsafe { crate::addr::write_guest(Gva(idt + 16 * v as u64), g) };
        }
        // doorbell: a host page reserved PROT_NONE and mapped in the guest, which no memory
        // slot may cover (a store there must exit as MMIO): it gets a whole slot granule of
        // its own, reserved for the life of the process.
        let reserved = mmap_anon(
            2 * SLOT_GRANULE_BYTES as usize,
            libc::PROT_NONE,
            libc::MAP_NORESERVE,
            "mmap(doorbell)",
        )?;
        let doorbell = reserved.next_multiple_of(SLOT_GRANULE_BYTES);
        DOORBELL_ADDR.store(doorbell, Ordering::Release);
        // SAFETY: brk(0) only queries the break.
        let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
        let dune = Dune {
            vm,
            mode,
            pt: Mutex::new(pt),
            root,
            idt,
            doorbell,
            brk: AtomicU64::new(brk),
            generation: AtomicU64::new(0),
            hook: AtomicUsize::new(0),
            next_vcpu: AtomicU64::new(0),
            live_threads: AtomicUsize::new(0),
            // room for many parked vCPUs: parking happens in the exit loop (no allocation)
            idle_vcpus: Mutex::new(Vec::with_capacity(256)),
            retired: Mutex::new(Vec::with_capacity(256)),
            xcr0,
            cr4,
            guest_delivery,
            sandbox_idt,
        };
        dune.sync_all_mappings()?;
        {
            let mut pt = dune.pt.lock().unwrap_or_else(|p| p.into_inner());
            pt.map(
                doorbell,
                doorbell + 4096,
                libc::PROT_READ | libc::PROT_WRITE,
            )?;
        }
        Ok(dune)
    }

    /// Maps every current mapping of the process into the guest (slots + page tables).
    fn sync_all_mappings(&self) -> Result<(), DuneError> {
        let mut all = Vec::new();
        if !maps::for_each(&mut |m| all.push(m)) {
            return Err(DuneError::Os {
                op: "read /proc/self/maps",
                source: std::io::Error::last_os_error(),
            });
        }
        let (pool_start, pool_end) = self
            .pt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .frames_range();
        for m in all {
            if m.end > USER_END || m.prot == libc::PROT_NONE || m.start == self.doorbell {
                continue;
            }
            self.map_range(m.start, m.end, m.prot, Content::Kept)?;
        }
        // The page-table pool, eagerly: KVM reads the guest tables through memory slots,
        // and the guest reads its own A/D bits.
        self.map_now(pool_start, pool_end, libc::PROT_READ | libc::PROT_WRITE)
            .map(|_| ())
    }

    /// Registers slots and maps `[start, end)` with `prot` in the guest page table.
    ///
    /// Mappings larger than [`LAZY_MAP_BYTES`] (heap reservations, big buffers) are mapped
    /// lazily: only entries that already exist change; the rest is mapped on the first
    /// fault, one [`FAULT_WINDOW_BYTES`] window at a time (see [`Dune::map_fault_window`]),
    /// so a 64 GiB NORESERVE reservation costs neither 128 MiB of page tables nor a
    /// 64 GiB memory slot.
    ///
    /// With [`Content::Fresh`] (new memory: mmap, brk) entries left from an older mapping
    /// at the same addresses (one unmapped outside Dune) are reset first, so their stale
    /// A/D bits are not reported for the new memory.
    ///
    /// Returns whether a replaced entry had been used for a translation (its A bit was set):
    /// only then can a restriction need a TLB flush (see [`PageTable::map_accessed`]).
    pub(crate) fn map_range(
        &self,
        start: u64,
        end: u64,
        prot: i32,
        content: Content,
    ) -> Result<bool, DuneError> {
        if content == Content::Fresh {
            let mut pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
            // host munmap already made KVM drop its translations (MMU notifier): no flush
            let _no_stale_translation = pt.unmap(start, end);
        }
        if end - start > LAZY_MAP_BYTES {
            let mut pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
            let (_flush_by_caller, accessed) = pt.protect_present_accessed(start, end, prot);
            return Ok(accessed);
        }
        self.map_now(start, end, prot)
    }

    /// Maps the window around `addr` of the mapping `[vma_start, vma_end)` (a fault on a
    /// lazily mapped range): page-table entries for [`FAULT_WINDOW_BYTES`], a memory slot
    /// for [`SLOT_WINDOW_BYTES`], both aligned and clipped to the mapping.
    pub(crate) fn map_fault_window(
        &self,
        addr: u64,
        vma_start: u64,
        vma_end: u64,
        prot: i32,
    ) -> Result<(), DuneError> {
        if vma_end - vma_start <= LAZY_MAP_BYTES {
            return self.fill_now(vma_start, vma_end, prot);
        }
        let clip = |w: u64| {
            (
                (addr & !(w - 1)).max(vma_start),
                ((addr & !(w - 1)) + w).min(vma_end),
            )
        };
        let (ss, se) = clip(SLOT_WINDOW_BYTES);
        self.register_slots(ss, se)?;
        let (ps, pe) = clip(FAULT_WINDOW_BYTES);
        self.fill_now(ps, pe, prot)
    }

    /// [`Dune::map_now`] for the fault path: entries the program set through
    /// [`crate::pagetable`] keep their value.
    fn fill_now(&self, start: u64, end: u64, prot: i32) -> Result<(), DuneError> {
        if prot != libc::PROT_NONE {
            self.register_slots(start, end)?;
        }
        let mut pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
        pt.fill_accessed(start, end, prot).map(|_| ())
    }

    /// Registers the memory slots covering `[start, end)` (for [`crate::pagetable`]).
    pub(crate) fn ensure_slots(&self, start: u64, end: u64) -> Result<(), DuneError> {
        self.register_slots(start, end)
    }

    /// Registers slots covering `[start, end)`, widened to [`SLOT_GRANULE_BYTES`]: a slot
    /// registration costs KVM an SRCU synchronisation (hundreds of microseconds here), so
    /// neighbouring small mappings share granules. A slot over a hole is harmless: the
    /// guest page table never maps a page the process has not mapped.
    pub(crate) fn register_slots(&self, start: u64, end: u64) -> Result<(), DuneError> {
        let start = start & !(SLOT_GRANULE_BYTES - 1);
        let end = end.next_multiple_of(SLOT_GRANULE_BYTES).min(USER_END);
        let r = self
            .vm
            .with_memslots(|s, fd| s.register(&mut { fd }, start, end - start));
        if let Err(kmod::KmodError::MemslotsExhausted { .. }) = r {
            self.evict_unused_slots()?;
            self.vm
                .with_memslots(|s, fd| s.register(&mut { fd }, start, end - start))?;
            return Ok(());
        }
        Ok(r?)
    }

    fn map_now(&self, start: u64, end: u64, prot: i32) -> Result<bool, DuneError> {
        if prot != libc::PROT_NONE {
            self.register_slots(start, end)?;
        }
        let mut pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
        pt.map_accessed(start, end, prot)
    }

    /// Unmaps `[start, end)` from the guest; if any removed entry had been used for a
    /// translation (A bit set), every vCPU flushes before its next entry and this returns
    /// true (the caller flushes its own vCPU); entries never used need no flush.
    ///
    /// The memory slots stay: deleting a slot makes KVM drop every shadow page of the VM
    /// (measured: mmap+touch+munmap of 64 KiB costs 388 us with deletion, 69 us without).
    /// A kept slot is harmless: no guest entry maps its pages, and KVM follows host mapping
    /// changes through MMU notifiers. Slots are deleted when the table is full
    /// ([`Dune::evict_unused_slots`]).
    pub(crate) fn unmap_range(&self, start: u64, end: u64) -> bool {
        let accessed = {
            let mut pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
            let (_flush_via_generation, accessed) = pt.unmap_accessed(start, end);
            accessed
        };
        if accessed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        accessed
    }

    /// Deletes the memory slots no present guest entry points into.
    pub(crate) fn evict_unused_slots(&self) -> Result<usize, DuneError> {
        let view = self.dirty_view();
        let pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.vm.with_memslots(|s, fd| {
            s.evict_unused(&mut { fd }, &mut |start, len| {
                let mut live = false;
                view.for_each_present(start, start + len, &mut |_| live = true);
                live
            })
        })?;
        drop(pt);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(n)
    }

    /// The chosen mode and why.
    pub fn mode(&self) -> &ModeChoice {
        &self.mode
    }

    /// A lock-free view for reading and clearing A/D bits.
    pub fn dirty_view(&self) -> DirtyView {
        // SAFETY: the page table lives in a leaked, never-freed `Dune`.
        unsafe { DirtyView::new(self.root) }
    }

    /// Installs the hook that receives host writes made on the guest's behalf.
    pub fn set_host_write_hook(&self, hook: Option<HostWriteHook>) {
        self.hook
            .store(hook.map_or(0, |f| f as usize), Ordering::Release);
    }

    pub(crate) fn report_host_write(&self, w: HostWrite) {
        let h = self.hook.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: only `set_host_write_hook` stores here, always a valid `HostWriteHook`.
            let f: HostWriteHook = unsafe { core::mem::transmute::<usize, HostWriteHook>(h) };
            f(w)
        }
    }

    /// A new vCPU for a sandbox ([`crate::sandbox`], which keeps its own pool: a vCPU a
    /// Dune thread used may carry mode state a sandbox must not inherit, and the other way
    /// round).
    pub(crate) fn new_vcpu(&self) -> Result<Vcpu, DuneError> {
        Ok(self
            .vm
            .create_vcpu(self.next_vcpu.fetch_add(1, Ordering::AcqRel))?)
    }

    /// Keeps a vCPU whose thread left Dune mode for the next `enter` (every register is set
    /// again by `ThreadCtx::new` and the first entry).
    pub(crate) fn park_vcpu(&self, vcpu: Option<Vcpu>) {
        if let Some(v) = vcpu {
            self.idle_vcpus
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(v);
        }
    }

    /// Keeps the context of a thread ending inside Dune (it still runs on its stacks; they
    /// are reused once its `exited` flag says it is gone).
    pub(crate) fn retire(&self, ctx: *mut ThreadCtx) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ctx as usize);
    }

    /// The exit-loop stack and GDT/TSS/monitor pages of a thread that has ended.
    fn take_retired(&self) -> Option<(u64, u64)> {
        let mut list = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        let i = list.iter().position(|&p| {
            // SAFETY: retired contexts are never freed while listed.
            unsafe { &*(p as *const ThreadCtx) }
                .exited
                .load(Ordering::Acquire)
                != 0
        })?;
        let p = list.swap_remove(i) as *mut ThreadCtx;
        drop(list);
        // SAFETY: the thread that owned it has exited (its last store was `exited`); the
        // pointer came from Box::into_raw and is in no list any more.
        let mut old = unsafe { Box::from_raw(p) };
        let r = (old.loop_stack, old.cpu_pages);
        old.loop_stack = 0;
        old.cpu_pages = 0;
        Some(r)
    }

    /// Memory slots registered now.
    pub fn n_memslots(&self) -> usize {
        self.vm.with_memslots(|s, _| s.slots().len())
    }

    /// Page-table frames used so far.
    pub fn n_page_table_frames(&self) -> u64 {
        self.pt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .n_frames_used()
    }

    /// Whether guest page tables currently map `va` (debugging, tests).
    pub fn guest_entry(&self, va: u64) -> u64 {
        self.dirty_view().entry(va)
    }
}

impl std::fmt::Debug for Dune {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dune")
            .field("mode", &self.mode)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Counters of one thread's stay in Dune mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadStats {
    /// vCPU exits handled.
    pub exits: u64,
    /// Syscalls forwarded (or answered) for the guest.
    pub syscalls: u64,
    /// Guest page faults handled by the monitor.
    pub page_faults: u64,
    /// Full TLB flushes performed for this vCPU.
    pub tlb_flushes: u64,
    /// Ring-0 mode: instructions KVM could not emulate, run natively at CPL3 instead.
    pub native_steps: u64,
    /// Signals delivered to guest handlers.
    pub signals: u64,
    /// Threads this thread created (each entered Dune on its own vCPU).
    pub threads_created: u64,
    /// Exceptions resolved by a guest fault handler in the guest, without an exit
    /// ([`crate::fault::set_guest_fault_handler`]; counted by the in-guest path itself).
    pub guest_faults: u64,
}

/// Per-thread state: the vCPU and the stacks and tables it needs.
pub(crate) struct ThreadCtx {
    pub(crate) dune: &'static Dune,
    pub(crate) vcpu: Option<Vcpu>,
    pub(crate) frame: EnterFrame,
    pub(crate) mode: Mode,
    pub(crate) loop_stack: u64,
    pub(crate) cpu_pages: u64,
    pub(crate) cpu_pages_len: usize,
    pub(crate) seen_generation: u64,
    pub(crate) pending_error: Option<DuneError>,
    pub(crate) stats: ThreadStats,
    pub(crate) spurious_streak: u32,
    pub(crate) last_fault: u64,
    pub(crate) fs_base: u64,
    /// The current exit is a guest exception (rsp is on the monitor stack).
    pub(crate) in_exception: bool,
    /// Ring-0 mode: one instruction KVM cannot emulate is running natively at CPL3.
    pub(crate) native_step: bool,
    /// `pvm` mode: the vCPU stopped in PV supervisor mode (in a monitor stub); a resume in
    /// the program's code goes through the `iretq` stub ([`crate::monitor`]).
    pub(crate) pvm_supervisor: bool,
    /// Signal state shared with the host signal trampoline (also reachable through SIG).
    pub(crate) sig: Box<SigState>,
    /// Set by a thread that ended inside Dune as its very last store before exit(2): from
    /// then on its exit-loop stack and GDT/TSS pages may be reused.
    pub(crate) exited: AtomicU32,
}

/// Whether the calling thread is in Dune mode.
pub fn in_dune() -> bool {
    CTX.with(|c| !c.get().is_null())
}

/// Whether the calling Dune thread runs on the host side of its exit loop now (an
/// exception handler, a host-write hook, a host signal action) rather than in the guest.
/// False outside Dune mode.
pub fn on_host_side() -> bool {
    let p = CTX.with(|c| c.get());
    if p.is_null() {
        return false;
    }
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    // SAFETY: the ctx is live while the thread is in Dune mode; loop_stack is plain data.
    unsafe {
        let top = loop_stack_top(&*p);
        sp > (*p).loop_stack && sp <= top
    }
}

thread_local! {
    pub(crate) static CTX: Cell<*mut ThreadCtx> = const { Cell::new(core::ptr::null_mut()) };
    /// The thread's signal state while it is in Dune mode (read by signal handlers).
    pub(crate) static SIG: Cell<*const SigState> = const { Cell::new(core::ptr::null()) };
}

/// Makes `p` the calling thread's Dune context (null: none).
pub(crate) fn set_current(p: *mut ThreadCtx) {
    let sig = if p.is_null() {
        core::ptr::null()
    } else {
        // SAFETY: `p` is a live ThreadCtx owned by this thread.
        unsafe { &*(*p).sig as *const SigState }
    };
    SIG.with(|c| c.set(sig));
    CTX.with(|c| c.set(p));
}

fn arch_prctl_get(code: i32) -> u64 {
    let mut v = 0u64;
    // SAFETY: ARCH_GET_FS/GS write one u64 to the pointer.
    unsafe { libc::syscall(libc::SYS_arch_prctl, code, &mut v as *mut u64) };
    v
}

pub(crate) use kmod::vcpu::flat_segment as seg;

impl ThreadCtx {
    /// A context for the calling thread (FS/GS bases are the host thread's).
    pub(crate) fn new(dune: &'static Dune) -> Result<Box<ThreadCtx>, DuneError> {
        ThreadCtx::with_bases(dune, arch_prctl_get(0x1003), arch_prctl_get(0x1004))
    }

    /// A context whose guest starts with these FS/GS bases (a thread being created).
    pub(crate) fn with_bases(
        dune: &'static Dune,
        fs_base: u64,
        gs_base: u64,
    ) -> Result<Box<ThreadCtx>, DuneError> {
        let mode = dune.mode.mode;
        let idle = dune
            .idle_vcpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let vcpu = match idle {
            Some(v) => v,
            None => dune
                .vm
                .create_vcpu(dune.next_vcpu.fetch_add(1, Ordering::AcqRel))?,
        };
        // page 0: GDT at +0, TSS at +0x800; page 1: the PVM vif page; then the monitor stack
        let cpu_pages_len = 2 * 4096 + MONITOR_STACK_BYTES;
        let (loop_stack, cpu_pages) = match dune.take_retired() {
            Some(r) => r,
            None => {
                let loop_stack = mmap_anon(
                    LOOP_STACK_BYTES,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_NORESERVE | libc::MAP_STACK,
                    "mmap(exit-loop stack)",
                )?;
                let cpu_pages = mmap_anon(
                    cpu_pages_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    0,
                    "mmap(GDT/TSS/monitor stack)",
                );
                match cpu_pages {
                    Ok(c) => (loop_stack, c),
                    Err(e) => {
                        // SAFETY: the stack mapped just above; nothing uses it.
                        unsafe { libc::munmap(loop_stack as *mut libc::c_void, LOOP_STACK_BYTES) };
                        return Err(e);
                    }
                }
            }
        };
        let mut ctx = Box::new(ThreadCtx {
            dune,
            vcpu: Some(vcpu),
            frame: EnterFrame::default(),
            mode,
            loop_stack,
            cpu_pages,
            cpu_pages_len,
            // force a flush before the first entry (a reused vCPU may cache old translations)
            seen_generation: u64::MAX,
            pending_error: None,
            stats: ThreadStats::default(),
            spurious_streak: 0,
            last_fault: 0,
            fs_base,
            in_exception: false,
            native_step: false,
            pvm_supervisor: false,
            sig: Box::new(SigState::new()),
            exited: AtomicU32::new(0),
        });
        let tss = cpu_pages + 0x800;
        let stack_top = cpu_pages + cpu_pages_len as u64;
        // SAFETY: cpu_pages is a fresh writable mapping of cpu_pages_len bytes.
        unsafe {
            crate::addr::write_guest(Gva(cpu_pages), gdt::gdt(tss));
        }
        // SAFETY: as above; the TSS fits in the first page at +0x800.
        unsafe { crate::addr::write_guest(Gva(tss), gdt::tss(stack_top, stack_top)) };
        dune.map_range(
            cpu_pages,
            cpu_pages + cpu_pages_len as u64,
            libc::PROT_READ | libc::PROT_WRITE,
            Content::Fresh,
        )?;
        ctx.setup_vcpu(tss, gs_base)?;
        let ie = ctx.vcpu_mut().immediate_exit_ptr() as u64;
        ctx.sig.immediate_exit.store(ie, Ordering::Release);
        Ok(ctx)
    }

    pub(crate) fn vcpu(&self) -> &Vcpu {
        self.vcpu
            .as_ref()
            .expect("the vCPU lives until the thread leaves Dune mode")
    }

    pub(crate) fn vcpu_mut(&mut self) -> &mut Vcpu {
        self.vcpu
            .as_mut()
            .expect("the vCPU lives until the thread leaves Dune mode")
    }

    /// The signal state.
    pub(crate) fn sig(&self) -> &'static SigState {
        // SAFETY: the box lives as long as the ctx, and a ctx outlives every use of its
        // signal state by its thread (contexts of threads that end in Dune are never freed).
        unsafe { &*(&*self.sig as *const SigState) }
    }

    fn setup_vcpu(&mut self, tss: u64, gs: u64) -> Result<(), DuneError> {
        let d = self.dune;
        let lstar = match self.mode {
            Mode::Ring3 => entry::lstar_ring3(),
            Mode::Ring0 | Mode::PvmRing0 => entry::lstar_ring0(),
            Mode::Pvm => entry::lstar_pvm(),
        };
        let (fs, cpu_pages) = (self.fs_base, self.cpu_pages);
        let vcpu = self.vcpu_mut();
        vcpu.reset_sync();
        vcpu.set_msrs(&[
            (0xc000_0081, gdt::STAR),
            (0xc000_0082, lstar),
            (0xc000_0084, SFMASK),
        ])?;
        let mut s = vcpu.sregs()?;
        match d.mode.mode {
            Mode::Ring3 => {
                s.cs = seg(gdt::USER_CS, 11, 3, true, 0);
                s.ss = seg(gdt::USER_SS, 3, 3, false, 0);
                s.ds = s.ss;
                s.es = s.ss;
                s.fs = seg(0, 3, 3, false, fs);
                s.gs = seg(0, 3, 3, false, gs);
            }
            // PVM: every vCPU starts in supervisor mode (a host cannot select user mode);
            // in `pvm` the monitor's iret stub enters user mode before the program runs
            Mode::Ring0 | Mode::PvmRing0 | Mode::Pvm => {
                s.cs = seg(gdt::KERNEL_CS, 11, 0, true, 0);
                s.ss = seg(gdt::KERNEL_SS, 3, 0, false, 0);
                s.ds = s.ss;
                s.es = s.ss;
                s.fs = seg(0, 3, 0, false, fs);
                s.gs = seg(0, 3, 0, false, gs);
            }
        }
        s.ldt = kvm_segment {
            unusable: 1,
            ..Default::default()
        };
        s.tr = kvm_segment {
            base: tss,
            limit: gdt::TSS_LEN_BYTES as u32 - 1,
            selector: gdt::TSS_SEL,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        s.gdt.base = cpu_pages;
        s.gdt.limit = (gdt::GDT_ENTRIES * 8 - 1) as u16;
        s.idt.base = d.idt;
        s.idt.limit = 256 * 16 - 1;
        s.cr0 = 0x8005_0033; // PG | AM | WP | NE | ET | MP | PE
        s.cr3 = d.root;
        s.cr4 = d.cr4;
        s.efer = 0xd01; // NXE | LMA | LME | SCE
        vcpu.set_sregs(&s)?;
        if d.xcr0 != 0 {
            vcpu.set_xcr0(d.xcr0)?;
        }
        if d.mode.mode.is_pvm() {
            // the paravirtual supervisor mode: this vCPU's code (application and monitor
            // stubs alike) runs natively from its first instruction; the vif page (virtual
            // IF) is the thread's own (page 1 of its CPU pages)
            vcpu.set_msrs(&[(
                kmod::pvm::MSR_PVM_MODE,
                (cpu_pages + 4096) | kmod::pvm::MODE_FLAGS | kmod::pvm::MODE_HOST_ENABLED,
            )])?;
            // `pvm`: the first entry goes through the monitor's return to user mode
            self.pvm_supervisor = d.mode.mode == Mode::Pvm;
        }
        Ok(())
    }

    /// Full flush of this vCPU's TLB from the host: a changed CR3 (the PWT bit toggles, a
    /// no-op for the identity map's memory type) makes KVM drop its shadow roots.
    pub(crate) fn flush_tlb(&mut self) -> Result<(), DuneError> {
        let t0 = crate::ledger::ticks();
        let vcpu = self.vcpu_mut();
        let mut s = vcpu.sregs()?;
        s.cr3 ^= 1 << 3;
        vcpu.set_sregs(&s)?;
        crate::ledger::flush_monitor(crate::ledger::ticks().wrapping_sub(t0));
        self.stats.tlb_flushes += 1;
        self.seen_generation = self.dune.generation.load(Ordering::Acquire);
        Ok(())
    }
}

impl Drop for ThreadCtx {
    fn drop(&mut self) {
        if let Some(v) = self.vcpu.take() {
            // every register is set again by the next `ThreadCtx::new` / `start_guest`
            self.dune
                .idle_vcpus
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(v);
        }
        if self.cpu_pages != 0 {
            let (start, end) = (self.cpu_pages, self.cpu_pages + self.cpu_pages_len as u64);
            // Only reached on the host stack (never while the exit loop runs on `loop_stack`).
            self.dune.unmap_range(start, end);
            // SAFETY: the mapping was created by `new` and nothing refers to it any more:
            // the vCPU that used the GDT/TSS/stack was parked above.
            unsafe {
                libc::munmap(self.cpu_pages as *mut libc::c_void, self.cpu_pages_len);
            }
        }
        if self.loop_stack != 0 {
            // SAFETY: created by `new`; the loop stack is idle (we are not running on it).
            unsafe { libc::munmap(self.loop_stack as *mut libc::c_void, LOOP_STACK_BYTES) };
        }
    }
}

/// Whether `rsp` lies on this thread's monitor stack (IST 1): the code there is a monitor
/// stub or a guest fault handler, never the program itself.
pub(crate) fn on_monitor_stack(ctx: &ThreadCtx, rsp: u64) -> bool {
    let top = ctx.cpu_pages + ctx.cpu_pages_len as u64;
    rsp < top && rsp >= top - MONITOR_STACK_BYTES as u64
}

/// Top of the exit-loop stack.
pub(crate) fn loop_stack_top(ctx: &ThreadCtx) -> u64 {
    (ctx.loop_stack + LOOP_STACK_BYTES as u64) & !15
}
