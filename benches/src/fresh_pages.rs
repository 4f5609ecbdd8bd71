//! The fresh-page microbenchmark (issue 15): map 64 MiB, write one byte per page (the first
//! touch), natively or inside Dune, with or without populating the host pages up front
//! (`madvise(MADV_POPULATE_WRITE)`, what gc-core's heap does when it grows in Dune mode).
//! Then the passes a dirty-tracking collector adds: a second write pass, and — inside Dune
//! — clearing every D bit and flushing (an arm), a write pass after it, a read pass, and
//! setting the D bits again (the end of a cycle) with a write pass after that.
//!
//! `fresh-pages <native|dune> <plain|populate|huge> [MiB]` runs one configuration per process
//! ([`run`], 64 MiB unless given: ring-0 mode, where guest CPL0 is emulated, uses less)
//! and prints one line ([`FreshPages::to_line`]); `scripts/fresh-pages.sh` runs them
//! interleaved, per Dune mode (`DUNEGC_DUNE_MODE`), and prints the table.

use crate::dune_timing::Tsc;
use gc_core::util::mmap::{populate_write, Mapping, BYTES_IN_PAGE};

/// Bytes the benchmark maps unless told otherwise.
pub const BYTES_MAPPED: usize = 64 << 20;

/// What is done to the mapping before the first write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prep {
    /// Nothing: the first write faults the host page in (and, in Dune, the shadow entry).
    #[default]
    Plain,
    /// `madvise(MADV_POPULATE_WRITE)` over the whole mapping first (timed with the total).
    Populate,
    /// `madvise(MADV_HUGEPAGE)` + populate, and inside Dune the guest leaves made 2 MiB
    /// (`dune_hw::pagetable::map_huge`): what a fresh page costs when KVM's shadow MMU can
    /// map 2 MiB per fault. Not what the collector does (a 2 MiB leaf has one D bit); it
    /// measures the host mechanism.
    Huge,
}

impl Prep {
    /// The name `main_with_args` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Prep::Plain => "plain",
            Prep::Populate => "populate",
            Prep::Huge => "huge",
        }
    }
}

/// Where the pages are touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On the host, outside Dune.
    Native,
    /// Inside Dune (the mode `DUNEGC_DUNE_MODE` or detection chooses).
    Dune,
}

/// Nanoseconds per page of each pass (zero for a pass that did not run).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FreshPages {
    /// Dune mode name, or `native`.
    pub mode: String,
    /// Bytes mapped and touched.
    pub bytes: usize,
    /// What was done before the first write.
    pub prep: Prep,
    /// The preparation (`madvise` calls, huge leaves), per page (0 for `plain`).
    pub prep_ns: f64,
    /// The first write to each page.
    pub first_write_ns: f64,
    /// `prep_ns + first_write_ns`: what a fresh page costs in all.
    pub total_ns: f64,
    /// A second write pass.
    pub second_write_ns: f64,
    /// Dune only: clearing every page's D bit plus one flush (an arm), per page.
    pub arm_ns: f64,
    /// Dune only: the write pass after the arm (the first write after a D clear).
    pub write_after_arm_ns: f64,
    /// Dune only: a read pass after a second arm (D clear, A kept).
    pub read_after_arm_ns: f64,
    /// Dune only: a write pass after that read pass.
    pub write_after_read_ns: f64,
    /// Dune only: after a third arm, setting every D bit again plus one flush (the Dune
    /// backend's end of a cycle, `DirtyView::set_dirty`), per page.
    pub set_dirty_ns: f64,
    /// Dune only: the write pass after that.
    pub write_after_set_dirty_ns: f64,
}

fn write_pass(base: usize, n: usize, v: u8) {
    for i in 0..n {
        // SAFETY: inside our own writable mapping.
        unsafe { ((base + i * BYTES_IN_PAGE) as *mut u8).write_volatile(v) };
    }
}

fn read_pass(base: usize, n: usize) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        // SAFETY: inside our own readable mapping.
        s += unsafe { ((base + i * BYTES_IN_PAGE) as *const u8).read_volatile() } as u64;
    }
    s
}

/// Clears the D bits of `[base, base + n pages)` and flushes (the Dune backend's arm).
fn arm(base: usize, n: usize) {
    let view = dune_hw::dirty_view().expect("inside Dune");
    let f = view.collect_and_clear(base as u64, (base + n * BYTES_IN_PAGE) as u64, &mut |_| {});
    dune_hw::flush(f);
}

/// 2 MiB.
const HUGE: usize = 2 << 20;

/// `madvise(MADV_HUGEPAGE)`, populate, and inside Dune 2 MiB guest leaves.
fn prepare_huge(place: Place, base: usize, bytes: usize) -> Result<(), String> {
    // SAFETY: advice on our own anonymous mapping; it changes no contents.
    if unsafe { libc::madvise(base as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE) } != 0 {
        return Err(format!(
            "MADV_HUGEPAGE: {}",
            std::io::Error::last_os_error()
        ));
    }
    populate_write(base, bytes);
    if place == Place::Dune {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let size = dune_hw::pagetable::PageSize::Size2M;
        dune_hw::pagetable::map_huge(dune_hw::Gva(base as u64), bytes as u64, rw, size)
            .map_err(|e| format!("2 MiB guest leaves: {e}"))?;
    }
    Ok(())
}

/// Sets the D bits of `[base, base + n pages)` again and flushes (the Dune backend's
/// `collect_and_disarm`).
fn set_dirty(base: usize, n: usize) {
    let view = dune_hw::dirty_view().expect("inside Dune");
    let (f, _) = view.set_dirty(base as u64, (base + n * BYTES_IN_PAGE) as u64);
    dune_hw::flush(f);
}

/// Runs one configuration in this process. Inside Dune, the timing uses the TSC (converted
/// on the host, after leaving).
pub fn run(place: Place, prep: Prep, bytes: usize) -> Result<FreshPages, String> {
    if bytes == 0 || !bytes.is_multiple_of(BYTES_IN_PAGE) {
        return Err(format!("{bytes} bytes is not a positive number of pages"));
    }
    let tsc = Tsc::calibrate();
    let n = bytes / BYTES_IN_PAGE;
    if place == Place::Dune {
        dune_hw::enter().map_err(|e| format!("entering Dune mode failed: {e}"))?;
    }
    let measured = passes(place, prep, bytes);
    // Leave Dune whatever happened, then report.
    let mode = match place {
        Place::Native => "native".to_owned(),
        Place::Dune => {
            let m = dune_hw::mode().map_or("-", |m| m.mode.name()).to_owned();
            dune_hw::exit().map_err(|e| format!("leaving Dune mode: {e}"))?;
            m
        }
    };
    let ticks = measured?;
    let per = |t: u64| tsc.to_duration(t).as_nanos() as f64 / n as f64;
    Ok(FreshPages {
        mode,
        bytes,
        prep,
        prep_ns: per(ticks[0]),
        first_write_ns: per(ticks[1]),
        total_ns: per(ticks[0] + ticks[1]),
        second_write_ns: per(ticks[2]),
        arm_ns: per(ticks[3]),
        write_after_arm_ns: per(ticks[4]),
        read_after_arm_ns: per(ticks[5]),
        write_after_read_ns: per(ticks[6]),
        set_dirty_ns: per(ticks[7]),
        write_after_set_dirty_ns: per(ticks[8]),
    })
}

/// The timed passes (TSC ticks per pass, in [`FreshPages`] field order), where `run` put
/// the caller (natively or in Dune).
fn passes(place: Place, prep: Prep, bytes: usize) -> Result<[u64; 9], String> {
    let n = bytes / BYTES_IN_PAGE;
    // 2 MiB aligned (for `huge`): map 2 MiB more and start at the first boundary.
    let region = Mapping::new(bytes + HUGE).map_err(|e| e.to_string())?;
    let base = region.start().next_multiple_of(HUGE);
    let mut ticks = [0u64; 9];
    let mut lap = |i: usize, f: &mut dyn FnMut()| {
        let t0 = Tsc::now();
        f();
        ticks[i] = Tsc::now() - t0;
    };
    let mut prep_result = Ok(());
    match prep {
        Prep::Plain => {}
        Prep::Populate => lap(0, &mut || {
            populate_write(base, bytes);
        }),
        Prep::Huge => lap(0, &mut || prep_result = prepare_huge(place, base, bytes)),
    }
    prep_result?;
    lap(1, &mut || write_pass(base, n, 1));
    lap(2, &mut || write_pass(base, n, 2));
    let mut sum = 0;
    if place == Place::Dune && prep != Prep::Huge {
        lap(3, &mut || arm(base, n));
        lap(4, &mut || write_pass(base, n, 3));
        arm(base, n);
        lap(5, &mut || sum = read_pass(base, n));
        lap(6, &mut || write_pass(base, n, 4));
        arm(base, n);
        lap(7, &mut || set_dirty(base, n));
        lap(8, &mut || write_pass(base, n, 5));
    }
    if place == Place::Dune && prep != Prep::Huge && sum != 3 * n as u64 {
        return Err(format!("read pass saw {sum}, expected {}", 3 * n));
    }
    drop(region);
    Ok(ticks)
}

impl FreshPages {
    /// `fresh-pages mode=.. mib=.. prep=.. prep_ns=.. first_write_ns=.. ...`.
    pub fn to_line(&self) -> String {
        format!(
            "fresh-pages mode={} mib={} prep={} prep_ns={:.0} first_write_ns={:.0} total_ns={:.0} second_write_ns={:.0} arm_ns={:.0} write_after_arm_ns={:.0} read_after_arm_ns={:.0} write_after_read_ns={:.0} set_dirty_ns={:.0} write_after_set_dirty_ns={:.0}",
            self.mode,
            self.bytes >> 20,
            self.prep.name(),
            self.prep_ns,
            self.first_write_ns,
            self.total_ns,
            self.second_write_ns,
            self.arm_ns,
            self.write_after_arm_ns,
            self.read_after_arm_ns,
            self.write_after_read_ns,
            self.set_dirty_ns,
            self.write_after_set_dirty_ns,
        )
    }
}

/// Parses `fresh-pages`'s arguments and runs.
pub fn main_with_args(args: &[String]) -> Result<String, String> {
    let (place, pop, mib) = match args {
        [place, pop] => (place, pop, BYTES_MAPPED >> 20),
        [place, pop, mib] => match mib.parse::<usize>() {
            Ok(m) if (1..=4096).contains(&m) => (place, pop, m),
            _ => return Err(format!("bad size '{mib}' (MiB, 1 to 4096)")),
        },
        _ => return Err("usage: fresh-pages <native|dune> <plain|populate|huge> [MiB]".to_owned()),
    };
    let place = match place.as_str() {
        "native" => Place::Native,
        "dune" => Place::Dune,
        _ => return Err(format!("bad place '{place}' (native or dune)")),
    };
    let prep = match pop.as_str() {
        "plain" => Prep::Plain,
        "populate" => Prep::Populate,
        "huge" => Prep::Huge,
        _ => return Err(format!("bad preparation '{pop}' (plain, populate or huge)")),
    };
    run(place, prep, mib << 20).map(|r| r.to_line())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_refused_with_the_usage() {
        let e = main_with_args(&["dune".to_owned()]).unwrap_err();
        assert!(e.contains("usage"), "{e}");
        let e = main_with_args(&["guest".to_owned(), "plain".to_owned()]).unwrap_err();
        assert!(e.contains("bad place"), "{e}");
        let e = main_with_args(&["native".to_owned(), "maybe".to_owned()]).unwrap_err();
        assert!(e.contains("bad preparation"), "{e}");
        let args = ["native".to_owned(), "plain".to_owned(), "0".to_owned()];
        let e = main_with_args(&args).unwrap_err();
        assert!(e.contains("bad size"), "{e}");
    }
}
