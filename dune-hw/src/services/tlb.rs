// Layer 4: services (dune-hw/LAYERS).
//! TLB flush obligations. Under shadow paging (our PVM host) and on real hardware alike, a
//! cleared D bit or a removed mapping takes effect only after invlpg or a CR3 reload.

// `TlbFlush` is what paging changes leave behind, so it lives below paging, in `addr`;
// this is its historical path.
pub use crate::arch::addr::TlbFlush;

use crate::arch::addr::{Gva, BYTES_IN_PAGE};
use crate::arch::entry::hypercall;
use crate::arch::ledger;
use crate::state::dune::{in_dune, on_host_side, Dune};
use kmod::Mode;

/// Above this many pages a full flush (CR3 reload) is cheaper than invlpg per page (ring-0).
pub const INVLPG_MAX_PAGES: u64 = 32;

/// How a TLB request was carried out (see [`invlpg`], [`invlpg_range`], [`flush_all`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbMethod {
    /// Ring-0: `invlpg` of each page in the guest, on this vCPU.
    Invlpg {
        /// Pages invalidated.
        n_pages: u64,
    },
    /// Ring-0: CR3 reloaded with its own value in the guest (all non-global entries).
    Cr3Reload,
    /// Ring-3: the monitor changed the vCPU's CR3 (KVM drops its shadow roots): a full
    /// flush, since the monitor cannot run `invlpg` for the guest and the guest (CPL3)
    /// cannot either.
    MonitorCr3Reload,
    /// PVM modes: `HC_FLUSH_TLB_ONE` per page on this vCPU, without an exit (`pvm-ring0`:
    /// in the program's code; `pvm`: one page, in the monitor's supervisor-mode stub).
    HypercallOne {
        /// Pages invalidated.
        n_pages: u64,
    },
    /// PVM modes: the `HC_FLUSH_TLB` hypercall on this vCPU, without an exit (`pvm-ring0`:
    /// in the program's code; `pvm`: in the monitor's supervisor-mode syscall stub).
    Hypercall,
    /// Called from outside the guest (a host thread, or the host side of a Dune thread in
    /// an exception handler): every vCPU, the caller's included, flushes before its next
    /// entry into the guest.
    AtNextEntry,
}

fn dune_mode() -> Option<kmod::Mode> {
    crate::state::dune::Dune::get().map(|d| d.mode().mode)
}

fn bump_generation() {
    if let Some(d) = crate::state::dune::Dune::get() {
        d.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Whether the caller runs guest code now (in Dune mode, not on its host side).
fn in_guest() -> bool {
    in_dune() && !on_host_side()
}

/// Invalidates the translation of the page containing `page` (see [`invlpg_range`]).
pub fn invlpg(page: crate::arch::addr::Gva) -> TlbMethod {
    invlpg_range(page.page_down(), crate::arch::addr::BYTES_IN_PAGE)
}

/// Above this many pages [`invlpg_range`] reloads CR3 instead (ring-0): one emulated
/// instruction pair instead of thousands of `invlpg`s.
pub const INVLPG_RANGE_MAX_PAGES: u64 = 512;

/// Invalidates the translations of `[start, start + len_bytes)` (widened to pages) on every
/// vCPU: the caller's now — ring-0: `invlpg` per page, up to [`INVLPG_RANGE_MAX_PAGES`]
/// (a CR3 reload above; [`crate::flush`] already switches above [`INVLPG_MAX_PAGES`]);
/// ring-3: a full flush by the monitor — and every other vCPU before its next entry.
/// Allocation-free.
pub fn invlpg_range(start: crate::arch::addr::Gva, len_bytes: u64) -> TlbMethod {
    // Outside the guest, ring-3, or a long range: `flush_all` (which also covers the
    // other vCPUs, and reports `AtNextEntry` when the caller is not in the guest).
    flush_pages_here(
        start.0,
        start.0.saturating_add(len_bytes),
        INVLPG_RANGE_MAX_PAGES,
    )
    .unwrap_or_else(flush_all)
}

/// Invalidates `[start, end)` (widened to pages) on this vCPU page by page, where the mode
/// can and the range has at most `max_pages` pages, and makes every other vCPU flush
/// before its next entry: ring-0 `invlpg`, pvm-ring0 `HC_FLUSH_TLB_ONE` in the program,
/// pvm (one page only: a full flush costs about what one page's request does) a request
/// its supervisor-mode stub answers with `HC_FLUSH_TLB_ONE`. `None` (nothing done) when
/// the caller does not run guest code, in ring-3 (the monitor cannot `invlpg` for the
/// guest), or above the limit: the caller flushes everything instead. Allocation-free.
pub(crate) fn flush_pages_here(start: u64, end: u64, max_pages: u64) -> Option<TlbMethod> {
    let first = start & !(crate::arch::addr::BYTES_IN_PAGE - 1);
    let n_pages = end
        .max(start + 1)
        .saturating_sub(first)
        .div_ceil(crate::arch::addr::BYTES_IN_PAGE);
    if !in_guest() || n_pages > max_pages {
        return None;
    }
    let pages = (0..n_pages).map(|i| first + i * crate::arch::addr::BYTES_IN_PAGE);
    let t0 = ledger::ticks();
    let method = match dune_mode()? {
        kmod::Mode::Ring0 => {
            bump_generation();
            for a in pages {
                // SAFETY: at guest CPL0 (ring-0 mode, checked above), invlpg only drops a
                // translation.
                unsafe { core::arch::asm!("invlpg [{a}]", a = in(reg) a, options(nostack)) };
            }
            TlbMethod::Invlpg { n_pages }
        }
        kmod::Mode::PvmRing0 => {
            bump_generation();
            pages.for_each(pvm_flush_tlb_page);
            TlbMethod::HypercallOne { n_pages }
        }
        kmod::Mode::Pvm if n_pages == 1 => {
            bump_generation();
            pvm_request_flush_page(first);
            TlbMethod::HypercallOne { n_pages }
        }
        _ => return None,
    };
    ledger::flush_local(n_pages);
    ledger::flush_time(ledger::ticks().wrapping_sub(t0));
    Some(method)
}

/// Flushes the whole TLB of every vCPU: the caller's now (ring-0: CR3 reload; ring-3: the
/// monitor changes CR3), every other vCPU before its next entry. Allocation-free.
pub fn flush_all() -> TlbMethod {
    if !in_guest() {
        bump_generation();
        return TlbMethod::AtNextEntry;
    }
    flush_tlb_all();
    match dune_mode() {
        Some(kmod::Mode::Ring0) => TlbMethod::Cr3Reload,
        Some(kmod::Mode::Pvm | kmod::Mode::PvmRing0) => TlbMethod::Hypercall,
        _ => TlbMethod::MonitorCr3Reload,
    }
}

/// Where a [`TlbFeatures`] report comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidSource {
    /// The `cpuid` instruction run where the caller runs (see [`cpuid_instruction_features`]).
    Instruction,
    /// The CPUID table every vCPU of this process's VM gets (KVM's supported CPUID): what
    /// KVM enforces for the guest (e.g. a 1 GiB leaf without `pdpe1gb` is a reserved-bit
    /// fault).
    VcpuTable,
    /// The host CPU (`cpuid` outside Dune).
    Host,
}

/// TLB-related CPU features and what this runtime does with them.
///
/// PCID is not enabled (CR4.PCIDE = 0): a Dune process has one address space and one CR3,
/// and PCIDs only keep the translations of *other* address spaces across CR3 switches,
/// which never happen here; every flush this runtime requests wants the process's own
/// translations gone. INVPCID's single-address form does what `invlpg` does and its
/// context forms what a CR3 reload does; in ring-3 neither can run in the guest (CPL0),
/// and the monitor's route is a CR3 change through KVM whatever the guest asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbFeatures {
    /// CPUID.01H:ECX.PCID\[bit 17\].
    pub pcid: bool,
    /// CPUID.(EAX=07H,ECX=0):EBX.INVPCID\[bit 10\].
    pub invpcid: bool,
    /// CPUID.01H:EDX.PGE\[bit 13\] (global pages; the runtime maps none).
    pub pge: bool,
    /// CPUID.80000001H:EDX.Page1GB\[bit 26\] (1 GiB leaves, see
    /// [`crate::api::pagetable::map_huge`]).
    pub huge_1g: bool,
    /// CPUID.80000008H:EBX.INVLPGB\[bit 3\] (AMD broadcast invalidation; not used: other
    /// vCPUs flush at their next entry).
    pub invlpgb: bool,
    /// Whether the runtime enabled PCIDs (never, see above).
    pub pcid_enabled: bool,
    /// Whether `invlpg` runs in the guest (ring-0 mode) rather than as a monitor request.
    pub invlpg_in_guest: bool,
    /// Where the CPUID bits come from.
    pub source: CpuidSource,
}

/// Flushes the guest TLB of every vCPU: this thread's now (ring-0: CR3 reload in the
/// guest; ring-3: a request to the monitor; pvm: the `HC_FLUSH_TLB` hypercall, no exit),
/// every other vCPU before its next entry into the guest.
///
/// A vCPU running guest code right now keeps its cached translations until it exits, so a
/// caller that cleared D bits must have stopped the other Dune threads first (a stopped
/// Dune thread waits on the host side of its exit loop and flushes when it resumes): then
/// no write after the clear can go unrecorded.
pub fn flush_tlb_all() {
    let Some(d) = Dune::get() else { return };
    d.generation
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    if !in_dune() || on_host_side() {
        // the exit loop flushes this vCPU before it resumes the guest
        ledger::flush_deferred();
        return;
    }
    let t0 = ledger::ticks();
    match d.mode().mode {
        Mode::Ring0 => {
            // SAFETY: at guest CPL0 (ring-0 mode) reloading CR3 with its own value only
            // flushes non-global TLB entries.
            unsafe {
                core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack))
            }
        }
        // pvm: the LSTAR stub answers it in supervisor mode with the hypercall, no exit
        Mode::Ring3 | Mode::Pvm => {
            hypercall(hypercall::FLUSH_TLB);
        }
        Mode::PvmRing0 => pvm_flush_tlb(),
    }
    ledger::flush_guest_full();
    ledger::flush_time(ledger::ticks().wrapping_sub(t0));
}

/// `pvm`: asks the supervisor-mode syscall stub to flush this vCPU's translation of the
/// page holding `va` (`HC_FLUSH_TLB_ONE`, no exit).
pub(crate) fn pvm_request_flush_page(va: u64) {
    // SAFETY: in pvm mode the LSTAR stub answers this Dune-private number in supervisor
    // mode and returns with `sysretq`; `syscall` clobbers rcx and r11, the stub rax only
    // (rdi and rbx are exchanged back), clobber_abi("C") covers more than that.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") hypercall::FLUSH_TLB_PAGE => _,
            in("rdi") va,
            clobber_abi("C")
        );
    }
}

/// `pvm-ring0` (the thread runs in PVM supervisor mode): the flush hypercall, answered
/// without leaving the guest.
fn pvm_flush_tlb() {
    let r: u64;
    // SAFETY: in pvm-ring0 mode the thread runs in the paravirtual supervisor mode, where
    // `int $0x1b` is a hypercall (the self-test checked that it preserves every register but
    // rax); HC_FLUSH_TLB only drops this vCPU's cached translations.
    unsafe {
        core::arch::asm!("int 0x1b", inlateout("rax") kmod::pvm::HC_FLUSH_TLB => r, options(nostack))
    };
    if r != 0 {
        hypercall(hypercall::FLUSH_TLB);
    }
}

/// `pvm-ring0`: flush one page's translation (hypercall in the guest).
pub(crate) fn pvm_flush_tlb_page(va: u64) {
    let r: u64;
    // SAFETY: as in `pvm_flush_tlb`; HC_FLUSH_TLB_ONE takes the address in rbx (rbx is
    // reserved by LLVM, hence the xchg around the call) and only drops a translation.
    unsafe {
        core::arch::asm!(
            "xchg {va}, rbx",
            "int 0x1b",
            "xchg {va}, rbx",
            va = inout(reg) va => _,
            inlateout("rax") kmod::pvm::HC_FLUSH_TLB_ONE => r,
            options(nostack)
        )
    };
    if r != 0 {
        pvm_flush_tlb();
    }
}

/// Performs a flush obligation on every vCPU (see [`flush_tlb_all`]); for small ranges on
/// this vCPU ring-0 uses invlpg per page, pvm-ring0 the `HC_FLUSH_TLB_ONE` hypercall per
/// page, and pvm, for one page, a request its supervisor-mode stub answers with that
/// hypercall (no exit). Allocation-free (usable in stop-the-world and
/// fault paths).
pub fn flush(f: TlbFlush) {
    if Dune::get().is_none() {
        return;
    }
    if flush_pages_here(f.start, f.end, INVLPG_MAX_PAGES).is_none() {
        flush_tlb_all()
    }
}

/// Flushes the translation of the page containing `va` (ring-0: invlpg; pvm:
/// `HC_FLUSH_TLB_ONE`; ring-3: a full flush by the monitor, which cannot invlpg for the
/// guest) on every vCPU.
pub fn flush_tlb_page(va: Gva) {
    flush(TlbFlush::range(
        va.page_down().0,
        va.page_down().0 + BYTES_IN_PAGE,
    ))
}

impl TlbFeatures {
    /// The report from a CPUID function `cpuid(leaf, subleaf) -> [eax, ebx, ecx, edx]`
    /// (zeros for a leaf it lacks).
    pub fn from_cpuid(cpuid: &dyn Fn(u32, u32) -> [u32; 4], source: CpuidSource) -> TlbFeatures {
        let max = cpuid(0, 0)[0];
        let max_ext = cpuid(0x8000_0000, 0)[0];
        let l1 = cpuid(1, 0);
        let l7 = if max >= 7 { cpuid(7, 0) } else { [0; 4] };
        let e1 = if max_ext >= 0x8000_0001 {
            cpuid(0x8000_0001, 0)
        } else {
            [0; 4]
        };
        let e8 = if max_ext >= 0x8000_0008 {
            cpuid(0x8000_0008, 0)
        } else {
            [0; 4]
        };
        TlbFeatures {
            pcid: l1[2] & (1 << 17) != 0,
            invpcid: l7[1] & (1 << 10) != 0,
            pge: l1[3] & (1 << 13) != 0,
            huge_1g: e1[3] & (1 << 26) != 0,
            invlpgb: e8[1] & (1 << 3) != 0,
            pcid_enabled: false,
            invlpg_in_guest: source != CpuidSource::Host && dune_mode() == Some(kmod::Mode::Ring0),
            source,
        }
    }
}

fn cpuid_insn(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

fn cpuid_vcpu_table(leaf: u32, subleaf: u32) -> [u32; 4] {
    let Some(d) = crate::state::dune::Dune::get() else {
        return [0; 4];
    };
    d.vm.system()
        .supported_cpuid()
        .as_slice()
        .iter()
        .find(|e| {
            e.function == leaf
                && (e.index == subleaf
                    || e.flags & kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 0)
        })
        .map_or([0; 4], |e| [e.eax, e.ebx, e.ecx, e.edx])
}

/// The TLB features the guest has: the vCPU CPUID table once Dune is initialised (what KVM
/// enforces), the host CPU's otherwise ([`TlbFeatures::source`] says which).
pub fn features() -> TlbFeatures {
    if crate::state::dune::Dune::get().is_some() {
        TlbFeatures::from_cpuid(&cpuid_vcpu_table, CpuidSource::VcpuTable)
    } else {
        host_features()
    }
}

/// What the `cpuid` instruction answers where the caller runs. In ring-0 mode KVM
/// intercepts it and answers from the vCPU table; in ring-3 mode on a PVM host guest CPL3
/// runs natively and `cpuid` is not intercepted, so it returns the *host* CPU's bits
/// (measured here: pcid, invpcid, pdpe1gb set although the vCPU table has them clear) —
/// which is why [`features`] reads the table instead.
pub fn cpuid_instruction_features() -> TlbFeatures {
    TlbFeatures::from_cpuid(&cpuid_insn, CpuidSource::Instruction)
}

/// The host CPU's TLB features (`cpuid` on the host; called outside Dune it matches
/// `/proc/cpuinfo`'s flags).
pub fn host_features() -> TlbFeatures {
    TlbFeatures::from_cpuid(&cpuid_insn, CpuidSource::Host)
}

/// Whether guest 1 GiB leaves are allowed (the vCPU CPUID's pdpe1gb).
pub(crate) fn guest_cpuid_1g_pages() -> bool {
    TlbFeatures::from_cpuid(&cpuid_vcpu_table, CpuidSource::VcpuTable).huge_1g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_count() {
        let f = TlbFlush::range(0x1000, 0x3000).merge(TlbFlush::range(0x8000, 0x9000));
        assert_eq!(f, TlbFlush::range(0x1000, 0x9000));
        assert_eq!(f.n_pages(), 8);
    }
}
