//! Per-page dirty-tracker costs measured the same way for every backend — the Dune one
//! included, which needs its process in Dune mode — so they can stand side by side in one
//! run (`dirty-probe <backend>` runs one backend per process; the `dirty_trackers` bench
//! prints the table).

use gc_core::dirty::{self, Backend, DirtySet};
use gc_core::util::mmap::{Mapping, BYTES_IN_PAGE};
use gc_core::{Page, PageRange};
use std::time::Instant;

/// Nanoseconds per armed page (per written page for `first_write`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerPage {
    /// Pages armed.
    pub n_pages: usize,
    /// Arming.
    pub arm_ns: f64,
    /// Collecting when nothing was written.
    pub collect_clean_ns: f64,
    /// Collecting after a write to every page.
    pub collect_dirty_ns: f64,
    /// The first store to a page after arming (the fault the program takes).
    pub first_write_ns: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn touch_all(base: usize, n_pages: usize, v: u8) {
    for i in 0..n_pages {
        // SAFETY: inside our own writable mapping.
        unsafe { ((base + i * BYTES_IN_PAGE) as *mut u8).write_volatile(v) };
    }
}

/// Measure `backend` over `n_pages` (median of `reps` rounds).
pub fn measure(backend: Backend, n_pages: usize, reps: usize) -> Result<PerPage, String> {
    let mut t = dirty::open(backend).map_err(|e| e.to_string())?;
    let region = Mapping::new(n_pages * BYTES_IN_PAGE).map_err(|e| e.to_string())?;
    let base = region.start();
    let range = [PageRange::new(Page::from_aligned(base), n_pages)];
    touch_all(base, n_pages, 1);
    let mut out = DirtySet::new();
    let (mut arm, mut clean, mut dirty_c, mut first) = (vec![], vec![], vec![], vec![]);
    let per = |d: std::time::Duration| d.as_nanos() as f64 / n_pages as f64;
    for round in 0..reps {
        t.disarm().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        t.arm(&range).map_err(|e| e.to_string())?;
        arm.push(per(t0.elapsed()));
        let t0 = Instant::now();
        touch_all(base, n_pages, round as u8);
        first.push(per(t0.elapsed()));
        out.clear();
        t.collect_and_rearm(&mut out).map_err(|e| e.to_string())?;
        out.clear();
        let t0 = Instant::now();
        t.collect_and_rearm(&mut out).map_err(|e| e.to_string())?;
        clean.push(per(t0.elapsed()));
        touch_all(base, n_pages, round as u8 ^ 0x55);
        out.clear();
        let t0 = Instant::now();
        t.collect_and_rearm(&mut out).map_err(|e| e.to_string())?;
        dirty_c.push(per(t0.elapsed()));
        if out.n_pages() < n_pages {
            return Err(format!(
                "{backend}: {} of {n_pages} written pages reported",
                out.n_pages()
            ));
        }
    }
    t.disarm().map_err(|e| e.to_string())?;
    Ok(PerPage {
        n_pages,
        arm_ns: median(arm),
        collect_clean_ns: median(clean),
        collect_dirty_ns: median(dirty_c),
        first_write_ns: median(first),
    })
}

/// One result line: `dirty-probe backend=.. n_pages=.. arm_ns=.. ...`.
pub fn to_line(backend: Backend, p: &PerPage) -> String {
    format!(
        "dirty-probe backend={backend} n_pages={} arm_ns={:.2} collect_clean_ns={:.2} collect_dirty_ns={:.2} first_write_ns={:.2}",
        p.n_pages, p.arm_ns, p.collect_clean_ns, p.collect_dirty_ns, p.first_write_ns
    )
}

/// Parse a line made by [`to_line`].
pub fn from_line(line: &str) -> Option<(String, PerPage)> {
    let rest = line.strip_prefix("dirty-probe ")?;
    let mut backend = None;
    let mut p = PerPage::default();
    for kv in rest.split(' ') {
        let (k, v) = kv.split_once('=')?;
        match k {
            "backend" => backend = Some(v.to_owned()),
            "n_pages" => p.n_pages = v.parse().ok()?,
            "arm_ns" => p.arm_ns = v.parse().ok()?,
            "collect_clean_ns" => p.collect_clean_ns = v.parse().ok()?,
            "collect_dirty_ns" => p.collect_dirty_ns = v.parse().ok()?,
            "first_write_ns" => p.first_write_ns = v.parse().ok()?,
            _ => {}
        }
    }
    Some((backend?, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_uffd_or_mprotect_measures() {
        let p = measure(Backend::Mprotect, 64, 3).expect("mprotect works everywhere");
        assert!(p.first_write_ns > 0.0);
        let (b, q) = from_line(&to_line(Backend::Mprotect, &p)).unwrap();
        assert_eq!(b, "mprotect");
        assert_eq!(q.n_pages, 64);
        assert!((q.arm_ns - p.arm_ns).abs() < 0.01);
    }
}
