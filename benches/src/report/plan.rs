//! What a report runs: every workload under every configuration ([`Subject`]), at the
//! scales and repetitions of a [`Plan`].

use crate::bdwgc::{Mode, Workload};
use crate::runner::Config;
use gc_core::Backend;
use std::fmt;

/// One configuration of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The Rust workload on gc-core (or on the system allocator: `Config::Malloc`), run
    /// by `dunegc-runner`.
    Dunegc(Config),
    /// The C workload on bdwgc, run by `bdwgc-runner`.
    Bdwgc(Mode),
}

impl Subject {
    /// Every configuration, in report order: the no-GC baseline, gc-core full, gc-core full
    /// inside Dune mode, gc-core incremental with each backend, bdwgc full and incremental.
    pub fn all() -> Vec<Subject> {
        let mut v = vec![
            Subject::Dunegc(Config::Malloc),
            Subject::Dunegc(Config::Full),
            Subject::Dunegc(Config::DuneFull),
        ];
        for b in [
            Backend::None,
            Backend::Mprotect,
            Backend::SoftDirty,
            Backend::Uffd,
            Backend::Dune,
        ] {
            v.push(Subject::Dunegc(Config::Incremental(b)));
        }
        v.push(Subject::Bdwgc(Mode::Full));
        v.push(Subject::Bdwgc(Mode::Incremental));
        v
    }

    /// The baseline every ratio in the report is taken against first.
    pub const BASELINE: Subject = Subject::Dunegc(Config::Incremental(Backend::Mprotect));

    /// The bdwgc configuration this one is compared with: incremental configurations
    /// against bdwgc incremental, everything else against bdwgc full.
    pub fn bdwgc_peer(self) -> Subject {
        if self.is_incremental() {
            Subject::Bdwgc(Mode::Incremental)
        } else {
            Subject::Bdwgc(Mode::Full)
        }
    }

    /// Whether this configuration marks incrementally (gc-core's `none` backend does not:
    /// it is the full-rescan baseline).
    pub fn is_incremental(self) -> bool {
        matches!(
            self,
            Subject::Bdwgc(Mode::Incremental) | Subject::Dunegc(Config::Incremental(_))
        ) && self != Subject::Dunegc(Config::Incremental(Backend::None))
    }

    /// Whether a collector runs at all (everything but the malloc baseline).
    pub fn collects(self) -> bool {
        self != Subject::Dunegc(Config::Malloc)
    }

    /// The row label: `malloc`, `dunegc full`, `dunegc inc-uffd`, `bdwgc full`, ...
    pub fn label(self) -> String {
        match self {
            Subject::Dunegc(Config::Malloc) => "malloc (no GC)".to_owned(),
            Subject::Dunegc(Config::Full) => "dunegc full".to_owned(),
            Subject::Dunegc(Config::DuneFull) => "dunegc dune-full".to_owned(),
            Subject::Dunegc(Config::Incremental(b)) => format!("dunegc inc-{b}"),
            Subject::Bdwgc(Mode::Full) => "bdwgc full".to_owned(),
            Subject::Bdwgc(Mode::Incremental) => "bdwgc inc".to_owned(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Which kind of run: a quick demo or the full report (or a tiny smoke run for tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Short scales, few repetitions (~a minute).
    Demo,
    /// The scales of the stored reports (a few minutes).
    Report,
    /// The smallest scales, one repetition: a smoke test of the whole pipeline.
    Tiny,
}

impl Kind {
    /// `demo` or `report`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Demo => "demo",
            Kind::Report => "report",
            Kind::Tiny => "tiny",
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Demo or report.
    pub kind: Kind,
    /// Each workload with its scale.
    pub workloads: Vec<(Workload, u32)>,
    /// The configurations.
    pub subjects: Vec<Subject>,
    /// Repetitions of each (workload, configuration); the report shows medians.
    pub reps: u32,
}

impl Plan {
    /// The plan of `kind`: every workload and configuration.
    pub fn new(kind: Kind) -> Plan {
        let workloads = Workload::ALL
            .into_iter()
            .map(|w| {
                let scale = match (kind, w) {
                    // The demo: bdwgc's comparison scales (each well under a second).
                    (Kind::Demo, _) => w.full_scale(),
                    // The report: GCBench's classic, the others twice that size so that
                    // every configuration collects a few dozen times.
                    (Kind::Report, Workload::GcBench) => 16,
                    (Kind::Report, Workload::LinkedList) => 400,
                    (Kind::Report, Workload::HashMap) => 200,
                    (Kind::Report, Workload::Xml) => 100,
                    (Kind::Tiny, Workload::GcBench) => 8,
                    (Kind::Tiny, _) => 1,
                };
                (w, scale)
            })
            .collect();
        Plan {
            kind,
            workloads,
            subjects: Subject::all(),
            reps: match kind {
                Kind::Demo => 3,
                Kind::Report => 5,
                Kind::Tiny => 1,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        let all = Subject::all();
        assert_eq!(all.len(), 10);
        assert!(all.contains(&Subject::BASELINE));
        let dune_full = Subject::Dunegc(Config::DuneFull);
        assert_eq!(
            all.iter().position(|&s| s == dune_full),
            Some(2),
            "right after dunegc full"
        );
        assert_eq!(dune_full.label(), "dunegc dune-full");
        assert!(!dune_full.is_incremental());
        assert_eq!(dune_full.bdwgc_peer(), Subject::Bdwgc(Mode::Full));
        assert!(!Subject::Dunegc(Config::Incremental(Backend::None)).is_incremental());
        assert_eq!(
            Subject::Dunegc(Config::Incremental(Backend::Uffd)).bdwgc_peer(),
            Subject::Bdwgc(Mode::Incremental)
        );
        assert_eq!(
            Subject::Dunegc(Config::Malloc).bdwgc_peer(),
            Subject::Bdwgc(Mode::Full)
        );
        for kind in [Kind::Demo, Kind::Report, Kind::Tiny] {
            for w in Plan::new(kind).workloads {
                assert!(w.0.scale_range().contains(&w.1));
            }
        }
    }
}
