//! The report's plots as hand-written SVG (no plotting dependency): small multiples, one
//! panel per workload, horizontal bars per configuration. Pure: [`Results`] in, text out.

use super::measure::{Outcome, Results};
use super::plan::Subject;
use std::fmt::Write as _;

/// `write!` into a String (which cannot fail).
macro_rules! out {
    ($dst:expr, $($arg:tt)*) => {
        $dst.write_fmt(format_args!($($arg)*)).expect("writing to a String cannot fail")
    };
}

const PANEL_W: f64 = 520.0;
const LABEL_W: f64 = 150.0;
const BAR_H: f64 = 16.0;
const ROW_GAP: f64 = 6.0;
const PANEL_TOP: f64 = 34.0;
const PANEL_BOTTOM: f64 = 30.0;
const COLS: usize = 2;

/// One bar (or a pair: `value` dark, `second` light and overlaid) of a panel.
#[derive(Clone, Debug, PartialEq)]
struct Bar {
    label: String,
    /// None: a note instead of a bar ("unsupported", "failed").
    value: Option<f64>,
    second: Option<f64>,
    whisker: Option<(f64, f64)>,
    note: String,
    color: &'static str,
}

struct Panel {
    title: String,
    bars: Vec<Bar>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about five ticks up to `max`.
pub fn tick_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_tick(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn color(subject: Subject) -> &'static str {
    use crate::bdwgc::Mode;
    use crate::runner::Config;
    use gc_core::Backend;
    match subject {
        Subject::Dunegc(Config::Malloc) => "#888888",
        Subject::Dunegc(Config::Full) => "#1f77b4",
        Subject::Dunegc(Config::DuneFull) => "#17becf",
        Subject::Dunegc(Config::Incremental(Backend::None)) => "#6baed6",
        Subject::Dunegc(Config::Incremental(Backend::Mprotect)) => "#d62728",
        Subject::Dunegc(Config::Incremental(Backend::SoftDirty)) => "#9467bd",
        Subject::Dunegc(Config::Incremental(Backend::Uffd)) => "#2ca02c",
        Subject::Dunegc(Config::Incremental(Backend::Dune)) => "#ff7f0e",
        Subject::Bdwgc(Mode::Full) => "#8c564b",
        Subject::Bdwgc(Mode::Incremental) => "#e377c2",
    }
}

fn panel_height(p: &Panel) -> f64 {
    PANEL_TOP + p.bars.len() as f64 * (BAR_H + ROW_GAP) + PANEL_BOTTOM
}

fn draw_panel(s: &mut String, p: &Panel, x0: f64, y0: f64, unit: &str) {
    // Room on the right for the value printed after the longest bar.
    let plot_w = PANEL_W - LABEL_W - 56.0;
    let max = p
        .bars
        .iter()
        .flat_map(|b| [b.value, b.second, b.whisker.map(|w| w.1)])
        .flatten()
        .fold(0.0f64, f64::max);
    let step = tick_step(max);
    let top = if max > 0.0 {
        (max / step).ceil() * step
    } else {
        1.0
    };
    let sx = |v: f64| x0 + LABEL_W + v / top * plot_w;
    out!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-weight="bold">{}</text>"#,
        x0 + 8.0,
        y0 + 18.0,
        escape(&p.title)
    );
    let rows_h = p.bars.len() as f64 * (BAR_H + ROW_GAP);
    let axis_y = y0 + PANEL_TOP + rows_h;
    let mut t = 0.0;
    while t <= top + step / 2.0 {
        let x = sx(t);
        out!(
            s,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="#dddddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"##,
            y0 + PANEL_TOP - 4.0,
            axis_y + 12.0,
            fmt_tick(t)
        );
        t += step;
    }
    out!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
        x0 + LABEL_W + plot_w / 2.0,
        axis_y + 25.0,
        escape(unit)
    );
    for (i, b) in p.bars.iter().enumerate() {
        let y = y0 + PANEL_TOP + i as f64 * (BAR_H + ROW_GAP);
        out!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
            x0 + LABEL_W - 6.0,
            y + BAR_H - 4.0,
            escape(&b.label)
        );
        match b.value {
            Some(v) => {
                out!(
                    s,
                    r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{BAR_H}" fill="{}"><title>{}: {v:.2} {}</title></rect>"#,
                    sx(0.0),
                    (sx(v) - sx(0.0)).max(0.5),
                    b.color,
                    escape(&b.label),
                    escape(unit)
                );
                if let Some(v2) = b.second {
                    out!(
                        s,
                        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="white" fill-opacity="0.55"><title>p99: {v2:.2}</title></rect>"#,
                        sx(0.0),
                        y + BAR_H * 0.25,
                        (sx(v2) - sx(0.0)).max(0.5),
                        BAR_H * 0.5
                    );
                }
                if let Some((lo, hi)) = b.whisker {
                    let ym = y + BAR_H / 2.0;
                    out!(
                        s,
                        r#"<line x1="{:.1}" y1="{ym:.1}" x2="{:.1}" y2="{ym:.1}" stroke="black"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
                        sx(lo),
                        sx(hi),
                        sx(lo),
                        ym - 4.0,
                        sx(lo),
                        ym + 4.0,
                        sx(hi),
                        ym - 4.0,
                        sx(hi),
                        ym + 4.0
                    );
                }
                out!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                    sx(b.whisker.map_or(v, |w| w.1.max(v))) + 4.0,
                    y + BAR_H - 4.0,
                    fmt_tick((v * 100.0).round() / 100.0)
                );
            }
            None => out!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#999999">{}</text>"##,
                sx(0.0) + 4.0,
                y + BAR_H - 4.0,
                escape(&b.note)
            ),
        }
    }
}

fn render(title: &str, unit: &str, panels: &[Panel]) -> String {
    let rows = panels.len().div_ceil(COLS);
    let mut row_heights = vec![0.0f64; rows];
    for (i, p) in panels.iter().enumerate() {
        row_heights[i / COLS] = row_heights[i / COLS].max(panel_height(p));
    }
    let width = PANEL_W * COLS as f64;
    let height = 30.0 + row_heights.iter().sum::<f64>();
    let mut s = String::new();
    out!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    s.push('\n');
    out!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    s.push('\n');
    for (i, p) in panels.iter().enumerate() {
        let y0 = 30.0 + row_heights[..i / COLS].iter().sum::<f64>();
        let x0 = (i % COLS) as f64 * PANEL_W;
        draw_panel(&mut s, p, x0, y0, unit);
        s.push('\n');
    }
    s.push_str("</svg>\n");
    s
}

fn note(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Measured(_) => String::new(),
        Outcome::Unsupported(_) => "unsupported here".to_owned(),
        Outcome::Failed(_) => "FAILED (see the table)".to_owned(),
    }
}

/// Wall time per workload (one panel each) per configuration, with min–max whiskers.
pub fn time_plot(r: &Results) -> String {
    let panels: Vec<Panel> = r
        .plan
        .workloads
        .iter()
        .map(|&(w, scale)| Panel {
            title: format!("{w} (scale {scale})"),
            bars: r
                .plan
                .subjects
                .iter()
                .filter_map(|&subject| {
                    let c = r.cell(w, subject)?;
                    let (value, whisker) = match &c.outcome {
                        Outcome::Measured(s) => (
                            Some(s.median.wall_ns as f64 / 1e6),
                            Some((s.wall_min_ns as f64 / 1e6, s.wall_max_ns as f64 / 1e6)),
                        ),
                        _ => (None, None),
                    };
                    Some(Bar {
                        label: subject.label(),
                        value,
                        second: None,
                        whisker,
                        note: note(&c.outcome),
                        color: color(subject),
                    })
                })
                .collect(),
        })
        .collect();
    render(
        &format!(
            "Wall time, median of {} (whiskers: fastest, slowest) — {}",
            r.plan.reps,
            r.machine.file_stem()
        ),
        "ms",
        &panels,
    )
}

/// Max pause (bar) and p99 pause (inner light bar) per configuration that collects.
pub fn pause_plot(r: &Results) -> String {
    let panels: Vec<Panel> = r
        .plan
        .workloads
        .iter()
        .map(|&(w, scale)| Panel {
            title: format!("{w} (scale {scale})"),
            bars: r
                .plan
                .subjects
                .iter()
                .filter(|s| s.collects())
                .filter_map(|&subject| {
                    let c = r.cell(w, subject)?;
                    let (value, second) = match &c.outcome {
                        Outcome::Measured(s) => (
                            Some(s.median.max_pause_ns as f64 / 1e6),
                            Some(s.median.p99_pause_ns as f64 / 1e6),
                        ),
                        _ => (None, None),
                    };
                    Some(Bar {
                        label: subject.label(),
                        value,
                        second,
                        whisker: None,
                        note: note(&c.outcome),
                        color: color(subject),
                    })
                })
                .collect(),
        })
        .collect();
    render(
        &format!(
            "Pauses: max (bar) and p99 (inner light bar), median of {} — {}",
            r.plan.reps,
            r.machine.file_stem()
        ),
        "ms",
        &panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(1200.0), 500.0);
        assert_eq!(tick_step(0.0), 1.0);
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
    }
}
