//! Unit costs for the Dune ledger's estimates (issue 15), measured in one process of the
//! same `dunegc-runner` binary that runs the workloads (`dunegc-runner calibrate`): what
//! the guest runtime cannot count — KVM's shadow-MMU work inside `KVM_RUN` and the exit
//! round trip itself — is estimated as a ledger count times one of these.
//!
//! Each figure is the minimum of [`REPS`] passes over [`N_PAGES`] pages (one store or
//! load per page), natively first, then inside Dune (the minimum: on a machine loaded by
//! other work a pass is often preempted, and the unit cost wanted is the work's own):
//! - `native_fresh` / `dune_fresh`: first store to each page of a fresh anonymous mapping
//!   (host fault natively; in Dune also the guest leaf and the shadow entry);
//! - `dune_populate` / `dune_fresh_populated`: the heap's Dune path, one
//!   `MADV_POPULATE_WRITE` for the region (per page), then the first store per page;
//! - `native_rewrite` / `dune_rewrite`: a store to a page already written (no fault);
//! - `mprotect_fault`: natively, the mprotect tracker armed, first store per page minus a
//!   rewrite (SIGSEGV, handler, `mprotect`);
//! - `dune_write_after_clear`: in Dune, the Dune tracker armed (D bits cleared, flushed),
//!   first store per page minus a rewrite (the shadow fault a write after a D clear costs);
//! - `dune_refill`: in Dune, a full TLB flush, then a load per page, minus a load pass
//!   without the flush (per page: the shadow refill after a flush);
//! - `native_scan`: `DirtyView::collect_and_clear` per page (every D set) on a page table
//!   of this process outside any VM, where page-table writes are plain stores;
//! - `native_getpid` / `dune_getpid`: a system call round trip; `dune_exit_handling`: the
//!   monitor's share of one (the ledger's handling time per syscall exit over the loop);
//!   `dune_getpid - native_getpid` is what an exit adds to a system call.
//!
//! Every figure is given in wall-clock and in CPU time ([`Cost`]).

use gc_core::dirty::{self, Backend, DirtySet};
use gc_core::util::mmap::{populate_write, Mapping, BYTES_IN_PAGE};
use gc_core::{Page, PageRange};
use std::time::Instant;

/// Pages per pass.
pub const N_PAGES: usize = 4096;
/// Passes per figure (the minimum is kept).
pub const REPS: usize = 7;
/// System calls per getpid pass.
const N_SYSCALLS: u64 = 2000;

/// The tag starting a calibration line.
pub const CALIBRATION_TAG: &str = "dunegc-calibration";

/// One unit cost, per page or per call, in ns: wall-clock and CPU time (`getrusage`: user
/// plus system, the scheduler's exact runtime; on a loaded machine wall time also holds
/// the waits for a CPU that every transition into the host kernel risks).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Wall-clock ns.
    pub wall: f64,
    /// CPU ns.
    pub cpu: f64,
}

impl Cost {
    fn minus(self, o: Cost) -> Cost {
        Cost {
            wall: self.wall - o.wall,
            cpu: self.cpu - o.cpu,
        }
    }
}

/// Unit costs measured by [`measure`] (see the module docs for each).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UnitCosts {
    /// First store to a fresh page, natively.
    pub native_fresh: Cost,
    /// Store to a page already written, natively.
    pub native_rewrite: Cost,
    /// mprotect tracker: extra cost of the first store after an arm (per page).
    pub mprotect_fault: Cost,
    /// getpid round trip, natively.
    pub native_getpid: Cost,
    /// First store to a fresh page in Dune (no populate).
    pub dune_fresh: Cost,
    /// `MADV_POPULATE_WRITE` in Dune, per page.
    pub dune_populate: Cost,
    /// First store to a fresh page in Dune after the populate.
    pub dune_fresh_populated: Cost,
    /// Store to a page already written, in Dune.
    pub dune_rewrite: Cost,
    /// Dune tracker: extra cost of the first store after an arm (D cleared + flushed).
    pub dune_write_after_clear: Cost,
    /// Extra cost of the first load per page after a full flush, in Dune.
    pub dune_refill: Cost,
    /// getpid round trip in Dune (one exit).
    pub dune_getpid: Cost,
    /// The monitor's handling time of one syscall exit (ledger; wall = cpu here).
    pub dune_exit_handling: Cost,
    /// `DirtyView::collect_and_clear` per page with every D bit set, run natively on a
    /// process-private page table (what the scan costs where guest page-table writes are
    /// plain stores, as under EPT/NPT). Optional in lines (0 when absent).
    pub native_scan: Cost,
    /// One shadow-MMU fault, priced per guest walk the host counted
    /// (`kvmmmu:kvm_mmu_pagetable_walk` on the vCPU thread): the Dune tracker armed, a
    /// first store per page minus a rewrite, times the pages, over the walks counted in
    /// that pass. Optional in lines (0 when absent: no host counters).
    pub dune_shadow_fault: Cost,
    /// One resync of a shadowed guest page table (`kvmmmu:kvm_mmu_sync_page`): the
    /// Dune tracker's arm of [`N_PAGES`] written pages (its guest page-table writes
    /// unsync the tables, its flush resyncs them) minus the native scan of as many pages
    /// and the arm's counted walks × [`UnitCosts::dune_shadow_fault`], over the syncs
    /// counted. Optional (0 when absent).
    pub dune_resync: Cost,
    /// Guest walks the host counted per page in the [`UnitCosts::dune_shadow_fault`]
    /// pass (≈ 1: one fault per write after a D clear), wall = cpu. Optional.
    pub dune_walks_per_write: Cost,
}

const FIELDS: [&str; 12] = [
    "native_fresh",
    "native_rewrite",
    "mprotect_fault",
    "native_getpid",
    "dune_fresh",
    "dune_populate",
    "dune_fresh_populated",
    "dune_rewrite",
    "dune_write_after_clear",
    "dune_refill",
    "dune_getpid",
    "dune_exit_handling",
];

impl UnitCosts {
    fn values(&self) -> [Cost; 12] {
        [
            self.native_fresh,
            self.native_rewrite,
            self.mprotect_fault,
            self.native_getpid,
            self.dune_fresh,
            self.dune_populate,
            self.dune_fresh_populated,
            self.dune_rewrite,
            self.dune_write_after_clear,
            self.dune_refill,
            self.dune_getpid,
            self.dune_exit_handling,
        ]
    }

    fn from_values(v: [Cost; 12]) -> UnitCosts {
        UnitCosts::from_required(v)
    }

    fn from_required(v: [Cost; 12]) -> UnitCosts {
        UnitCosts {
            native_fresh: v[0],
            native_rewrite: v[1],
            mprotect_fault: v[2],
            native_getpid: v[3],
            dune_fresh: v[4],
            dune_populate: v[5],
            dune_fresh_populated: v[6],
            dune_rewrite: v[7],
            dune_write_after_clear: v[8],
            dune_refill: v[9],
            dune_getpid: v[10],
            dune_exit_handling: v[11],
            native_scan: Cost::default(),
            dune_shadow_fault: Cost::default(),
            dune_resync: Cost::default(),
            dune_walks_per_write: Cost::default(),
        }
    }

    /// The extra cost of one exit over a native system call: `dune_getpid - native_getpid`.
    pub fn exit_extra(&self) -> Cost {
        self.dune_getpid.minus(self.native_getpid)
    }

    /// `dunegc-calibration key_wall=.. key_cpu=.. ...` (ns, one decimal).
    pub fn to_line(&self) -> String {
        let mut s = CALIBRATION_TAG.to_owned();
        for (k, v) in FIELDS.iter().zip(self.values()) {
            s.push_str(&format!(" {k}_wall={:.1} {k}_cpu={:.1}", v.wall, v.cpu));
        }
        for (k, n) in self.optional() {
            s.push_str(&format!(" {k}_wall={:.2} {k}_cpu={:.2}", n.wall, n.cpu));
        }
        s
    }

    /// The optional fields (absent in older lines: 0), by key.
    fn optional(&self) -> [(&'static str, Cost); 4] {
        [
            ("native_scan", self.native_scan),
            ("dune_shadow_fault", self.dune_shadow_fault),
            ("dune_resync", self.dune_resync),
            ("dune_walks_per_write", self.dune_walks_per_write),
        ]
    }

    fn optional_mut(&mut self, key: &str) -> Option<&mut Cost> {
        match key {
            "native_scan" => Some(&mut self.native_scan),
            "dune_shadow_fault" => Some(&mut self.dune_shadow_fault),
            "dune_resync" => Some(&mut self.dune_resync),
            "dune_walks_per_write" => Some(&mut self.dune_walks_per_write),
            _ => None,
        }
    }

    /// Parse [`UnitCosts::to_line`].
    pub fn from_line(line: &str) -> Result<UnitCosts, String> {
        let rest = line
            .strip_prefix(CALIBRATION_TAG)
            .ok_or_else(|| format!("not a {CALIBRATION_TAG} line: {line:?}"))?;
        let mut v = [(f64::NAN, f64::NAN); 12];
        let mut opt = UnitCosts::default();
        for field in rest.split_whitespace() {
            let (k, x) = field
                .split_once('=')
                .ok_or_else(|| format!("field without '=' in {line:?}"))?;
            let x: f64 = x
                .parse()
                .map_err(|_| format!("bad number for {k} in {line:?}"))?;
            if let Some(base) = k.strip_suffix("_wall") {
                if let Some(c) = opt.optional_mut(base) {
                    c.wall = x;
                }
            } else if let Some(base) = k.strip_suffix("_cpu") {
                if let Some(c) = opt.optional_mut(base) {
                    c.cpu = x;
                }
            }
            for (i, f) in FIELDS.iter().enumerate() {
                if k.strip_prefix(f) == Some("_wall") {
                    v[i].0 = x;
                } else if k.strip_prefix(f) == Some("_cpu") {
                    v[i].1 = x;
                }
            }
        }
        if let Some(i) = v.iter().position(|x| x.0.is_nan() || x.1.is_nan()) {
            return Err(format!("missing {} in {line:?}", FIELDS[i]));
        }
        Ok(UnitCosts {
            native_scan: opt.native_scan,
            dune_shadow_fault: opt.dune_shadow_fault,
            dune_resync: opt.dune_resync,
            dune_walks_per_write: opt.dune_walks_per_write,
            ..UnitCosts::from_values(v.map(|(wall, cpu)| Cost { wall, cpu }))
        })
    }
}

/// The element-wise minimum of `v` (wall and CPU separately).
fn min(v: Vec<Cost>) -> Cost {
    v.into_iter().fold(
        Cost {
            wall: f64::INFINITY,
            cpu: f64::INFINITY,
        },
        |a, b| Cost {
            wall: a.wall.min(b.wall),
            cpu: a.cpu.min(b.cpu),
        },
    )
}

/// Times `f`, divided by `n`.
fn timed(n: usize, f: impl FnOnce()) -> Cost {
    let (c0, t0) = (cpu_ns(), Instant::now());
    f();
    let wall = t0.elapsed().as_nanos() as f64;
    let cpu = cpu_ns().saturating_sub(c0) as f64;
    Cost {
        wall: wall / n as f64,
        cpu: cpu / n as f64,
    }
}

fn cpu_ns() -> u64 {
    let (u, s) = crate::runner::cpu_times_ns();
    u + s
}

/// A fresh region of [`N_PAGES`] pages.
fn region() -> Result<(Mapping, PageRange), String> {
    let m = Mapping::new(N_PAGES * BYTES_IN_PAGE).map_err(|e| format!("mmap: {e}"))?;
    let r = PageRange::new(Page::from_aligned(m.start()), N_PAGES);
    Ok((m, r))
}

/// Cost per page of one store (`write`) or load per page of `m`.
fn pass(m: &Mapping, write: bool) -> Cost {
    let mut sum = 0u8;
    let c = timed(N_PAGES, || {
        for i in 0..N_PAGES {
            let p = (m.start() + i * BYTES_IN_PAGE) as *mut u8;
            if write {
                // SAFETY: inside our own read/write mapping; an armed tracker (or the
                // kernel) lets the store complete.
                unsafe { p.write_volatile(i as u8) };
            } else {
                // SAFETY: as above, a load.
                sum = sum.wrapping_add(unsafe { p.read_volatile() });
            }
        }
    });
    std::hint::black_box(sum);
    c
}

fn getpid_cost() -> Cost {
    timed(N_SYSCALLS as usize, || {
        for _ in 0..N_SYSCALLS {
            // SAFETY: getpid has no arguments.
            std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
        }
    })
}

/// The extra cost per page of the first store after `backend`'s arm (minus a rewrite).
fn fault_after_arm(backend: Backend) -> Result<Cost, String> {
    let mut t = dirty::open(backend).map_err(|e| format!("opening {backend}: {e}"))?;
    let (m, r) = region()?;
    pass(&m, true);
    let mut out = DirtySet::new();
    let (mut firsts, mut rewrites) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        rewrites.push(pass(&m, true));
        t.arm(&[r]).map_err(|e| format!("arm: {e}"))?;
        firsts.push(pass(&m, true));
        t.collect_and_rearm(&mut out)
            .map_err(|e| format!("collect: {e}"))?;
        t.disarm().map_err(|e| format!("disarm: {e}"))?;
        out.clear();
    }
    Ok(min(firsts).minus(min(rewrites)))
}

/// Measures every unit cost; enters Dune (and leaves it) for the Dune ones.
pub fn measure() -> Result<UnitCosts, String> {
    let mut u = UnitCosts::default();
    let (mut fresh, mut rewrite) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let (m, _) = region()?;
        fresh.push(pass(&m, true));
        rewrite.push(pass(&m, true));
    }
    u.native_fresh = min(fresh);
    u.native_rewrite = min(rewrite);
    u.mprotect_fault = fault_after_arm(Backend::Mprotect)?;
    u.native_getpid = min((0..REPS).map(|_| getpid_cost()).collect());
    u.native_scan = native_scan()?;

    gc_core::world::init().map_err(|e| format!("installing the stop-the-world handler: {e}"))?;
    dune_hw::enter().map_err(|e| format!("entering Dune mode failed: {e}"))?;
    let r = measure_in_dune(&mut u);
    dune_hw::exit().map_err(|e| format!("leaving Dune mode: {e}"))?;
    r?;
    Ok(u)
}

/// `collect_and_clear` per page, every D set, on a private page table (no KVM involved).
fn native_scan() -> Result<Cost, String> {
    use dune_hw::paging::{frames::PoolFrames, pte, PageTable};
    const BASE: u64 = 0x4000_0000;
    let end = BASE + (N_PAGES * BYTES_IN_PAGE) as u64;
    let frames = PoolFrames::reserve(4 << 20).map_err(|e| format!("page-table frames: {e}"))?;
    let mut pt = PageTable::new(frames).map_err(|e| format!("page table: {e}"))?;
    pt.map(BASE, end, libc::PROT_READ | libc::PROT_WRITE)
        .map_err(|e| format!("map: {e}"))?;
    // SAFETY: `pt` outlives the view (both live to the end of this function).
    let view = unsafe { dune_hw::DirtyView::new(pt.root()) };
    let mut v = Vec::new();
    for _ in 0..REPS {
        for va in (BASE..end).step_by(BYTES_IN_PAGE) {
            if let Some(p) = pt.leaf(va) {
                p.set_bits(pte::D);
            }
        }
        let mut n = 0usize;
        v.push(timed(N_PAGES, || {
            let _no_tlb_here = view.collect_and_clear(BASE, end, &mut |_| n += 1);
        }));
        if n != N_PAGES {
            return Err(format!("native scan found {n} of {N_PAGES} dirty pages"));
        }
    }
    Ok(min(v))
}

fn measure_in_dune(u: &mut UnitCosts) -> Result<(), String> {
    let mut v: [Vec<Cost>; 6] = Default::default();
    let [fresh, fresh_pop, populate, rewrite, refill, plain] = &mut v;
    for _ in 0..REPS {
        let (m, _) = region()?;
        fresh.push(pass(&m, true));
        rewrite.push(pass(&m, true));
        let (p, _) = region()?;
        let mut ok = false;
        populate.push(timed(N_PAGES, || {
            ok = populate_write(p.start(), N_PAGES * BYTES_IN_PAGE)
        }));
        if !ok {
            return Err("madvise(MADV_POPULATE_WRITE) failed in Dune".to_owned());
        }
        fresh_pop.push(pass(&p, true));
        plain.push(pass(&m, false));
        dune_hw::flush_tlb_all();
        refill.push(pass(&m, false));
    }
    let [fresh, fresh_pop, populate, rewrite, refill, plain] = v;
    u.dune_fresh = min(fresh);
    u.dune_fresh_populated = min(fresh_pop);
    u.dune_populate = min(populate);
    u.dune_rewrite = min(rewrite);
    u.dune_refill = min(refill).minus(min(plain));
    u.dune_write_after_clear = fault_after_arm(Backend::Dune)?;
    if dune_hw::ledger().host_threads > 0 {
        shadow_units(u)?;
    }
    let (mut rt, mut handling) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        let before = dune_hw::ledger();
        rt.push(getpid_cost());
        let d = dune_hw::ledger().since(&before);
        let i = dune_hw::ExitReason::Syscall as usize;
        let h = d.exit_handling[i].as_nanos() as f64 / d.exits[i].max(1) as f64;
        handling.push(Cost { wall: h, cpu: h });
    }
    u.dune_getpid = min(rt);
    u.dune_exit_handling = min(handling);
    Ok(())
}

/// The events the host counted on this vCPU during `f` (a forwarded getpid on each side:
/// a KVM_RUN's events land when it returns), with its cost per page.
fn counted(f: impl FnOnce()) -> (dune_hw::DuneLedger, Cost) {
    let sync = || {
        // SAFETY: getpid has no arguments.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
    };
    sync();
    let before = dune_hw::ledger();
    let c = timed(N_PAGES, f);
    sync();
    (dune_hw::ledger().since(&before), c)
}

/// [`UnitCosts::dune_shadow_fault`], [`UnitCosts::dune_resync`] and
/// [`UnitCosts::dune_walks_per_write`], from passes whose host events were counted.
fn shadow_units(u: &mut UnitCosts) -> Result<(), String> {
    use dune_hw::{EV_SYNC_PAGE, EV_WALK};
    let mut t = dirty::open(Backend::Dune).map_err(|e| format!("opening dune: {e}"))?;
    let (m, r) = region()?;
    pass(&m, true);
    let mut out = DirtySet::new();
    let pages = N_PAGES as f64;
    let (mut rewrites, mut writes, mut walks, mut arms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REPS {
        rewrites.push(pass(&m, true));
        let (arm, arm_c) = counted(|| {
            t.arm(&[r]).expect("arm");
        });
        let (wr, wr_c) = counted(|| {
            pass(&m, true);
        });
        t.collect_and_rearm(&mut out)
            .map_err(|e| format!("collect: {e}"))?;
        t.disarm().map_err(|e| format!("disarm: {e}"))?;
        out.clear();
        writes.push(wr_c);
        walks.push(wr.host_events[EV_WALK] as f64);
        arms.push((
            arm_c,
            arm.host_events[EV_WALK] as f64,
            arm.host_events[EV_SYNC_PAGE] as f64,
        ));
    }
    walks.sort_by(f64::total_cmp);
    let w = walks[walks.len() / 2];
    if w == 0.0 {
        return Err("no guest walks counted for writes after a D clear".to_owned());
    }
    // the passes' minimum (the work's own cost), over the median count of walks
    let f = min(writes).minus(min(rewrites));
    let per_walk = Cost {
        wall: f.wall * pages / w,
        cpu: f.cpu * pages / w,
    };
    u.dune_shadow_fault = per_walk;
    u.dune_walks_per_write = Cost {
        wall: w / pages,
        cpu: w / pages,
    };
    // the arm with the fewest ticks; its walks and syncs
    let (arm_c, aw, syncs) = arms
        .into_iter()
        .min_by(|a, b| a.0.wall.total_cmp(&b.0.wall))
        .expect("REPS > 0");
    if syncs > 0.0 {
        let rest =
            |arm: f64, scan: f64, walk: f64| (arm * pages - scan * pages - aw * walk) / syncs;
        u.dune_resync = Cost {
            wall: rest(arm_c.wall, u.native_scan.wall, per_walk.wall),
            cpu: rest(arm_c.cpu, u.native_scan.cpu, per_walk.cpu),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips_and_missing_fields_are_errors() {
        let u = UnitCosts::from_values(std::array::from_fn(|i| Cost {
            wall: i as f64 + 0.5,
            cpu: i as f64 * 2.0,
        }));
        assert_eq!(UnitCosts::from_line(&u.to_line()), Ok(u));
        let mut w = u;
        w.dune_shadow_fault = Cost {
            wall: 12.5,
            cpu: 7.25,
        };
        w.dune_resync = Cost {
            wall: 3.5,
            cpu: 2.0,
        };
        assert_eq!(UnitCosts::from_line(&w.to_line()), Ok(w));
        let err = UnitCosts::from_line("dunegc-calibration native_fresh_wall=1 native_fresh_cpu=1")
            .unwrap_err();
        assert!(err.contains("missing native_rewrite"), "{err}");
    }
}
