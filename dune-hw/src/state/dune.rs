// Layer 3: state (dune-hw/LAYERS).
//! Process-wide Dune state (one VM, one guest page table) and per-thread state (one vCPU,
//! its GDT/TSS/monitor stack, the exit-loop stack), and entering/leaving.

use crate::arch::addr::{Gva, USER_END};
use crate::arch::entry::{self, DOORBELL_ADDR};
use crate::arch::error::DuneError;
use crate::arch::idt;
use crate::paging::frames::PoolFrames;
use crate::paging::maps;
use crate::paging::{DirtyView, PageTable};
use kmod::{Mode, ModeChoice, System, Vcpu, Vm};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

// The per-thread half of the state, kept at this path.
pub use super::thread_ctx::*;

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
pub(super) const LOOP_STACK_BYTES: usize = 1 << 20;
/// Monitor (CPL0) stack per thread.
pub(super) const MONITOR_STACK_BYTES: usize = entry::MONITOR_STACK_BYTES as usize;

// The hypercall numbers are part of the guest ABI, so they live in the arch layer
// (`entry`, whose stubs answer some of them); this is their historical path.
pub use crate::arch::entry::hypercall;

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
    pub(super) next_vcpu: AtomicU64,
    /// Threads in Dune mode now (counted from before a new thread's first instruction to
    /// its exit or `exit()`).
    pub(crate) live_threads: AtomicUsize,
    /// vCPUs of threads that left Dune mode, reused by the next `enter` (KVM limits vCPU ids).
    pub(super) idle_vcpus: Mutex<Vec<Vcpu>>,
    /// Contexts of threads that ended inside Dune (raw `Box<ThreadCtx>` pointers): their
    /// stacks and GDT/TSS pages are reused once their `exited` flag is set.
    retired: Mutex<Vec<usize>>,
    pub(crate) xcr0: u64,
    pub(crate) cr4: u64,
    /// Exceptions with a guest fault handler are delivered in the guest (IDT of
    /// [`entry::exception_stub_guest`]); see [`crate::services::fault::guest_delivery`].
    pub(crate) guest_delivery: bool,
    /// The IDT of sandbox vCPUs: the plain stubs ([`entry::exception_stub`]) with the same
    /// IST choice (the same page as `idt` without guest delivery).
    pub(crate) sandbox_idt: u64,
}

/// The process's Dune state: set once, read lock-free.
static DUNE: OnceLock<&'static Dune> = OnceLock::new();
/// Serialises the (fallible) creation.
static INIT: Mutex<()> = Mutex::new(());

pub(super) fn mmap_anon(
    len: usize,
    prot: i32,
    flags: i32,
    op: &'static str,
) -> Result<u64, DuneError> {
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

/// Set in a child forked from Dune mode (by [`crate::services::thread`]): this process has no VM of
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
        // In-guest exception delivery (crate::services::fault::set_guest_fault_handler) wherever our
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
        // sandboxes (crate::api::sandbox) keep the plain stubs: the in-guest path reads process
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
            unsafe { crate::arch::addr::write_guest(Gva(sandbox_idt + 16 * v as u64), g) };
        }
        for v in 0..=255u8 {
            let stub = if guest_delivery {
                entry::exception_stub_guest(v)
            } else {
                entry::exception_stub(v)
            };
            let g = idt::gate(stub, ist);
            // SAFETY: idt is a fresh writable page of 256 16-byte gates.
            unsafe { crate::arch::addr::write_guest(Gva(idt + 16 * v as u64), g) };
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
    /// [`crate::api::pagetable`] keep their value.
    fn fill_now(&self, start: u64, end: u64, prot: i32) -> Result<(), DuneError> {
        if prot != libc::PROT_NONE {
            self.register_slots(start, end)?;
        }
        let mut pt = self.pt.lock().unwrap_or_else(|p| p.into_inner());
        pt.fill_accessed(start, end, prot).map(|_| ())
    }

    /// Registers the memory slots covering `[start, end)` (for [`crate::api::pagetable`]).
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

    /// A new vCPU for a sandbox ([`crate::api::sandbox`], which keeps its own pool: a vCPU a
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
    pub(super) fn take_retired(&self) -> Option<(u64, u64)> {
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
