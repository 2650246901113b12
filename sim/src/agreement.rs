//! How closely the pieces model follows the message model: one point of a
//! comparison is a scenario run in both models, compared on distribution
//! time and on the peers' median (p50) and 90th-percentile (p90)
//! completion times. The example `model_agreement` prints a grid of them
//! (docs/simulator.md, "How closely the two models agree"), and
//! `tests/piece_model.rs` holds the models to it.

use peerlab_scenarios::{Scenario, library};

/// The knob sets compared: a name and the `--set` overrides of
/// `swarm-homogeneous`.
pub const KNOBS: [(&str, &[&str]); 12] = [
    ("defaults", &[]),
    ("1 slot", &["swarm.unchoke_slots=1"]),
    ("8 slots", &["swarm.unchoke_slots=8"]),
    ("end game 1 copy", &["swarm.endgame_copies=1"]),
    ("end game 3 copies", &["swarm.endgame_copies=3"]),
    ("no random first pieces", &["swarm.random_first_pieces=0"]),
    ("snub timeout 2 s", &["swarm.snub_timeout=2 s"]),
    (
        "rechoke 1 s, rotate 3 s",
        &["swarm.rechoke_interval=1 s", "swarm.optimistic_interval=3 s"],
    ),
    (
        "numwant 5, announce 10 s",
        &["swarm.numwant=5", "swarm.announce_interval=10 s"],
    ),
    ("super-seed", &["swarm.super_seed=true"]),
    ("churn (leave at completion)", &["swarm.leave=at-completion"]),
    ("churn (leave after 300 ms)", &["swarm.leave=after 300 ms"]),
];

/// Distribution time, p50 and p90 of the peers' completion times (s).
pub type Times = [f64; 3];

/// One point: `swarm-homogeneous` with `N` peers, a file of `mib` MiB, a
/// seed and a knob set from [`KNOBS`].
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// Index into [`KNOBS`].
    pub knobs: usize,
    /// Peers.
    pub n: u64,
    /// File size in MiB.
    pub mib: u64,
    /// The scenario's seed.
    pub seed: u64,
}

impl Point {
    /// The point's scenario in `model` (`messages` or `pieces`), or the
    /// field the scenario check refused.
    pub fn scenario(&self, model: &str) -> Result<Scenario, String> {
        let mut sets = vec![
            format!("peers.count={}", self.n),
            format!("file.size={} MiB", self.mib),
            format!("seed={}", self.seed),
            format!("simulator.model={model}"),
        ];
        sets.extend(KNOBS[self.knobs].1.iter().map(|s| s.to_string()));
        let lib = library::get("swarm-homogeneous").expect("a library scenario");
        Scenario::from_json(lib, "swarm-homogeneous", &sets).map_err(|e| e.field)
    }

    /// The point run in the message model and in the pieces model, or the
    /// field the pieces model refused.
    ///
    /// # Panics
    /// If a run does not complete.
    pub fn measure(&self) -> Result<(Times, Times), String> {
        let pieces = self.scenario("pieces")?;
        let messages = self.scenario("messages")?;
        Ok((times(&messages), times(&pieces)))
    }
}

fn times(s: &Scenario) -> Times {
    let r = crate::run(s, "agreement").expect("a checked scenario runs");
    let d = r
        .distribution_time_s
        .unwrap_or_else(|| panic!("{:?}: the run ended {:?}", s.name, r.outcome));
    let q = |q: f64| r.completion_quantile(q).expect("the run completed");
    [d, q(0.5), q(0.9)]
}

/// The pieces model's relative difference from the message model, per
/// figure (distribution time, p50, p90): `pieces / messages - 1`.
pub fn difference(messages: &Times, pieces: &Times) -> Times {
    [0, 1, 2].map(|i| pieces[i] / messages[i] - 1.0)
}
