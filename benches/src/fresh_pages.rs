//! The fresh-page microbenchmark (issue 15): map 64 MiB, write one byte per page (the first
//! touch), natively or inside Dune, with or without populating the host pages up front
//! (`madvise(MADV_POPULATE_WRITE)`, what gc-core's heap does when it grows in Dune mode).
//! Then the passes a dirty-tracking collector adds: a second write pass, and — inside Dune
//! — clearing every D bit and flushing (an arm), a write pass after it, and a read pass.
//!
//! `fresh-pages <native|dune> <populate|plain>` runs one configuration per process
//! ([`run`]) and prints one line ([`FreshPages::to_line`]); `scripts/fresh-pages.sh` runs
//! them interleaved, per Dune mode (`DUNEGC_DUNE_MODE`), and writes the table.

use crate::dune_timing::Tsc;
use gc_core::util::mmap::{populate_write, Mapping, BYTES_IN_PAGE};

/// Bytes the benchmark maps.
pub const BYTES_MAPPED: usize = 64 << 20;

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
    /// Whether host pages were populated up front.
    pub populate: bool,
    /// The `madvise(MADV_POPULATE_WRITE)` call, per page (0 without populate).
    pub populate_ns: f64,
    /// The first write to each page.
    pub first_write_ns: f64,
    /// `populate_ns + first_write_ns`: what a fresh page costs in all.
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

/// Runs one configuration in this process. Inside Dune, the timing uses the TSC (converted
/// on the host, after leaving).
pub fn run(place: Place, populate: bool) -> Result<FreshPages, String> {
    let tsc = Tsc::calibrate();
    let n = BYTES_MAPPED / BYTES_IN_PAGE;
    if place == Place::Dune {
        dune_hw::enter().map_err(|e| format!("entering Dune mode failed: {e}"))?;
    }
    let region = Mapping::new(BYTES_MAPPED).map_err(|e| e.to_string())?;
    let base = region.start();
    let mut ticks = [0u64; 7];
    let mut lap = |i: usize, f: &mut dyn FnMut()| {
        let t0 = Tsc::now();
        f();
        ticks[i] = Tsc::now() - t0;
    };
    if populate {
        lap(0, &mut || {
            populate_write(base, BYTES_MAPPED);
        });
    }
    lap(1, &mut || write_pass(base, n, 1));
    lap(2, &mut || write_pass(base, n, 2));
    let mut sum = 0;
    if place == Place::Dune {
        lap(3, &mut || arm(base, n));
        lap(4, &mut || write_pass(base, n, 3));
        arm(base, n);
        lap(5, &mut || sum = read_pass(base, n));
        lap(6, &mut || write_pass(base, n, 4));
    }
    let mode = match place {
        Place::Native => "native".to_owned(),
        Place::Dune => {
            let m = dune_hw::mode().map_or("-", |m| m.mode.name()).to_owned();
            dune_hw::exit().map_err(|e| format!("leaving Dune mode: {e}"))?;
            m
        }
    };
    if place == Place::Dune && sum != 3 * n as u64 {
        return Err(format!("read pass saw {sum}, expected {}", 3 * n));
    }
    drop(region);
    let per = |t: u64| tsc.to_duration(t).as_nanos() as f64 / n as f64;
    Ok(FreshPages {
        mode,
        populate,
        populate_ns: per(ticks[0]),
        first_write_ns: per(ticks[1]),
        total_ns: per(ticks[0] + ticks[1]),
        second_write_ns: per(ticks[2]),
        arm_ns: per(ticks[3]),
        write_after_arm_ns: per(ticks[4]),
        read_after_arm_ns: per(ticks[5]),
        write_after_read_ns: per(ticks[6]),
    })
}

impl FreshPages {
    /// `fresh-pages mode=.. populate=0|1 populate_ns=.. first_write_ns=.. ...`.
    pub fn to_line(&self) -> String {
        format!(
            "fresh-pages mode={} populate={} populate_ns={:.0} first_write_ns={:.0} total_ns={:.0} second_write_ns={:.0} arm_ns={:.0} write_after_arm_ns={:.0} read_after_arm_ns={:.0} write_after_read_ns={:.0}",
            self.mode,
            u8::from(self.populate),
            self.populate_ns,
            self.first_write_ns,
            self.total_ns,
            self.second_write_ns,
            self.arm_ns,
            self.write_after_arm_ns,
            self.read_after_arm_ns,
            self.write_after_read_ns,
        )
    }
}

/// Parses `fresh-pages`'s arguments and runs.
pub fn main_with_args(args: &[String]) -> Result<String, String> {
    let [place, pop] = args else {
        return Err("usage: fresh-pages <native|dune> <populate|plain>".to_owned());
    };
    let place = match place.as_str() {
        "native" => Place::Native,
        "dune" => Place::Dune,
        _ => return Err(format!("bad place '{place}' (native or dune)")),
    };
    let populate = match pop.as_str() {
        "populate" => true,
        "plain" => false,
        _ => return Err(format!("bad populate choice '{pop}' (populate or plain)")),
    };
    run(place, populate).map(|r| r.to_line())
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
        assert!(e.contains("bad populate"), "{e}");
    }
}
