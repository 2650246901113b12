//! What a fidelity row compares: numbers taken from each run's report, their
//! mean and spread over a row's runs on each backend, and the verdict.

use peerlab_scenarios::{Protocol, Report};
use serde::{Deserialize, Serialize};

use super::matrix::Tolerance;

/// A number the matrix compares, and whether it decides the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// When the last downloader completed.
    DistributionTime,
    /// Downloaders' completion times, 10th / 50th / 90th percentile.
    PeerP10,
    PeerP50,
    PeerP90,
    /// Payload bytes the server uploaded.
    ServerBytesUp,
    /// Relay runs: when the sender's upload finished.
    SenderFinished,
    /// Relay runs: how long the destination had been silent at failover.
    Detection,
    /// Relay runs: payload bytes the relays took.
    BytesRelayed,
    /// Faults applied, failovers made.
    Faults,
    Failovers,
    /// The longest a downloader lacking pieces received nothing.
    LongestStall,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 11] = [
        Metric::DistributionTime,
        Metric::PeerP10,
        Metric::PeerP50,
        Metric::PeerP90,
        Metric::ServerBytesUp,
        Metric::SenderFinished,
        Metric::Detection,
        Metric::BytesRelayed,
        Metric::Faults,
        Metric::Failovers,
        Metric::LongestStall,
    ];

    /// Its name in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::DistributionTime => "distribution_time",
            Metric::PeerP10 => "peer_p10",
            Metric::PeerP50 => "peer_p50",
            Metric::PeerP90 => "peer_p90",
            Metric::ServerBytesUp => "server_bytes_up",
            Metric::SenderFinished => "sender_finished",
            Metric::Detection => "detection",
            Metric::BytesRelayed => "bytes_relayed",
            Metric::Faults => "faults",
            Metric::Failovers => "failovers",
            Metric::LongestStall => "longest_stall",
        }
    }

    /// Whether the verdict depends on it: the times a user reads (the
    /// distribution time, the median and the 90th percentile of completion,
    /// a relay's timings). The others are shown, not judged: they are
    /// counts, or depend on scheduling details nobody promises.
    pub fn judged(self) -> bool {
        matches!(
            self,
            Metric::DistributionTime
                | Metric::PeerP50
                | Metric::PeerP90
                | Metric::SenderFinished
                | Metric::Detection
        )
    }

    /// Whether it is a time in seconds (else a count or bytes).
    pub fn is_time(self) -> bool {
        !matches!(
            self,
            Metric::ServerBytesUp | Metric::BytesRelayed | Metric::Faults | Metric::Failovers
        )
    }

    /// Its value in `r`, if the run has one.
    pub fn of(self, r: &Report) -> Option<f64> {
        let relay = r.protocol == Protocol::Relay;
        match self {
            Metric::DistributionTime => r.distribution_time_s,
            Metric::PeerP10 => r.completion_quantile(0.1),
            Metric::PeerP50 => r.completion_quantile(0.5),
            Metric::PeerP90 => r.completion_quantile(0.9),
            Metric::ServerBytesUp => Some(r.server_bytes_up as f64),
            Metric::SenderFinished => r.sender_finished_s.filter(|_| relay),
            Metric::Detection => r.detection_s.filter(|_| relay),
            Metric::BytesRelayed => r.bytes_relayed.filter(|_| relay).map(|b| b as f64),
            Metric::Faults => Some(r.counters.faults as f64),
            Metric::Failovers => Some(r.counters.failovers as f64).filter(|_| relay),
            Metric::LongestStall => r.longest_stall.as_ref().map(|s| s.length_s()),
        }
    }

    /// Whether `sim` agrees with `real` within `tol`: relative error of
    /// the means, or for a relay's timings an absolute margin too.
    pub fn agrees(self, sim: f64, real: f64, tol: &Tolerance) -> bool {
        let relay_time = matches!(self, Metric::SenderFinished | Metric::Detection);
        relative_error(sim, real).is_some_and(|e| e <= tol.relative)
            || (relay_time && (sim - real).abs() <= tol.relay_s)
            || (sim == real)
    }
}

/// |a − b| / b, when b is positive.
pub fn relative_error(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| (a - b).abs() / b)
}

/// Mean and sample standard deviation of some runs' values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Runs that had a value.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (0 for one run).
    pub sd: f64,
}

impl Stats {
    /// Of `values`, if there are any.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            n,
            mean,
            sd: var.sqrt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerlab_scenarios::report::nearest_rank;

    #[test]
    fn percentiles_are_nearest_rank_and_stats_are_sample_stats() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(nearest_rank(&v, 0.1), Some(1.0));
        assert_eq!(nearest_rank(&v, 0.5), Some(5.0));
        assert_eq!(nearest_rank(&v, 0.9), Some(9.0));
        assert_eq!(nearest_rank(&[3.0], 0.9), Some(3.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
        let s = Stats::of(&[2.0, 4.0, 6.0]).unwrap();
        assert_eq!((s.n, s.mean, s.sd), (3, 4.0, 2.0));
        assert_eq!(Stats::of(&[5.0]).unwrap().sd, 0.0);
    }

    #[test]
    fn relay_timings_pass_within_the_absolute_margin_too() {
        let tol = Tolerance::default();
        assert!(Metric::DistributionTime.agrees(10.4, 10.0, &tol));
        assert!(!Metric::DistributionTime.agrees(10.6, 10.0, &tol));
        assert!(Metric::Detection.agrees(2.08, 2.0, &tol), "4%");
        assert!(Metric::Detection.agrees(0.5, 0.45, &tol), "11% but 50 ms");
        assert!(!Metric::Detection.agrees(0.7, 0.45, &tol));
        assert!(Metric::Faults.agrees(0.0, 0.0, &tol));
    }
}
