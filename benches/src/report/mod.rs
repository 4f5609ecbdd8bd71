//! The comparison report (issue 9): every workload under every configuration, each run in
//! a child process, reduced to medians, written as markdown with SVG plots.
//!
//! Tour:
//! - [`plan`] — the configurations ([`Subject`]), scales and repetitions ([`Plan`]).
//! - [`machine`] — the machine description collected from /proc, /sys and uname.
//! - [`measure`] — running the plan through the runner binaries; medians.
//! - [`markdown`] — the report text: summary, machine, method, tables.
//! - [`ledger`] — the Dune section's reconciliation of the cost ledger with wall time.
//! - [`svg`] — the plots (hand-written SVG).
//!
//! The binary is `dunegc-report` (`demo` or `report`, `--out DIR`).

pub mod ledger;
pub mod machine;
pub mod markdown;
pub mod measure;
pub mod plan;
pub mod svg;

pub use machine::Machine;
pub use measure::{run_plan, Outcome, Results, Runners, Sample, Summary};
pub use plan::{Kind, Plan, Subject};

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day, hour, minute) UTC of `secs` since the epoch.
pub fn civil_utc(secs: u64) -> (i64, u32, u32, u32, u32) {
    // Howard Hinnant's days-to-civil.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, ((rem % 3600) / 60) as u32)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Now, UTC, as `YYYY-MM-DD HH:MM`.
pub fn utc_now_string() -> String {
    let (y, mo, d, h, mi) = civil_utc(now_secs());
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// The files a report consists of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The markdown file.
    pub markdown: PathBuf,
    /// The plots.
    pub svgs: Vec<PathBuf>,
}

/// Write `<date>-<machine>.md` and its two plots into `dir` (created if needed).
/// `intro`, if given, is placed above the computed summary.
pub fn write_files(dir: &Path, r: &Results, intro: Option<&str>) -> Result<Written, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {} failed: {e}", dir.display()))?;
    let date = r.started_utc.split(' ').next().unwrap_or("undated");
    let stem = format!("{date}-{}", r.machine.file_stem());
    let time_name = format!("{stem}-time.svg");
    let pauses_name = format!("{stem}-pauses.svg");
    let links = markdown::PlotLinks {
        time_svg: Some(time_name.clone()),
        pauses_svg: Some(pauses_name.clone()),
    };
    let files = [
        (dir.join(&time_name), svg::time_plot(r)),
        (dir.join(&pauses_name), svg::pause_plot(r)),
        (
            dir.join(format!("{stem}.md")),
            markdown::render(r, &links, intro),
        ),
    ];
    for (path, text) in &files {
        std::fs::write(path, text)
            .map_err(|e| format!("writing {} failed: {e}", path.display()))?;
    }
    let [(time, _), (pauses, _), (md, _)] = files;
    Ok(Written {
        markdown: md,
        svgs: vec![time, pauses],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_utc(0), (1970, 1, 1, 0, 0));
        // 2026-11-26 01:57 UTC.
        assert_eq!(civil_utc(1_795_658_220), (2026, 11, 26, 1, 57));
        // 2000-02-29 12:00 UTC.
        assert_eq!(civil_utc(951_825_600), (2000, 2, 29, 12, 0));
    }
}
