//! The `swarm` section of a scenario: the knobs of the BitTorrent-style
//! swarm protocol, with BitTorrent's defaults.
//!
//! ```json
//! "swarm": { "unchoke_slots": 4, "rechoke_interval": "10 s",
//!            "optimistic_interval": "30 s", "leave": "after 20 s" }
//! ```

use std::fmt;
use std::time::Duration;

use peerlab_core::swarm::{Leave, SwarmConfig};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::Dur;

/// Knobs of the swarm protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmOptions {
    /// Regular (tit-for-tat) unchoke slots (default 4).
    #[serde(default = "d_slots")]
    pub unchoke_slots: u32,
    /// How often the regular slots are re-evaluated (default 10 s).
    #[serde(default = "d_rechoke")]
    pub rechoke_interval: Dur,
    /// How often the optimistic unchoke rotates (default 30 s).
    #[serde(default = "d_optimistic")]
    pub optimistic_interval: Dur,
    /// A neighbour silent this long while we are interested is snubbed
    /// (default 60 s).
    #[serde(default = "d_snub")]
    pub snub_timeout: Dur,
    /// Block requests kept outstanding per neighbour (default 4).
    #[serde(default = "d_pipeline")]
    pub pipeline: u32,
    /// Most neighbours per peer (default 80); a peer dials at most half of
    /// them itself and keeps the rest for peers that dial it.
    #[serde(default = "d_max_peers")]
    pub max_peers: u32,
    /// Peers asked of the tracker per announce (default 50).
    #[serde(default = "d_numwant")]
    pub numwant: u32,
    /// Re-announce interval the tracker hands out (default 120 s).
    #[serde(default = "d_announce")]
    pub announce_interval: Dur,
    /// Pieces chosen at random before rarest first takes over (default 4).
    #[serde(default = "d_random_first")]
    pub random_first_pieces: u32,
    /// Most concurrent requests for one block in the end game (default 2).
    #[serde(default = "d_endgame")]
    pub endgame_copies: u32,
    /// Whether the server super-seeds (default false).
    #[serde(default)]
    pub super_seed: bool,
    /// Whether peers send one piece to one neighbour at a time at full
    /// rate instead of answering every request at once (default false;
    /// see `core::swarm::upload` and docs/swarm.md).
    #[serde(default)]
    pub serial_uploads: bool,
    /// When a peer leaves after completing: `"stay"` (default),
    /// `"at-completion"` or `"after <duration>"`.
    #[serde(default)]
    pub leave: LeaveSpec,
}

fn defaults() -> SwarmConfig {
    SwarmConfig::default()
}
fn d_slots() -> u32 {
    defaults().unchoke_slots
}
fn d_rechoke() -> Dur {
    Dur(defaults().rechoke_interval)
}
fn d_optimistic() -> Dur {
    Dur(defaults().optimistic_interval)
}
fn d_snub() -> Dur {
    Dur(defaults().snub_timeout)
}
fn d_pipeline() -> u32 {
    defaults().pipeline
}
fn d_max_peers() -> u32 {
    defaults().max_peers
}
fn d_numwant() -> u32 {
    defaults().numwant
}
fn d_announce() -> Dur {
    Dur(defaults().announce_interval)
}
fn d_random_first() -> u32 {
    defaults().random_first_pieces
}
fn d_endgame() -> u32 {
    defaults().endgame_copies
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            unchoke_slots: d_slots(),
            rechoke_interval: d_rechoke(),
            optimistic_interval: d_optimistic(),
            snub_timeout: d_snub(),
            pipeline: d_pipeline(),
            max_peers: d_max_peers(),
            numwant: d_numwant(),
            announce_interval: d_announce(),
            random_first_pieces: d_random_first(),
            endgame_copies: d_endgame(),
            super_seed: false,
            serial_uploads: false,
            leave: LeaveSpec::default(),
        }
    }
}

impl SwarmOptions {
    /// Whether every knob has its default value.
    pub fn is_default(&self) -> bool {
        *self == SwarmOptions::default()
    }

    /// Checks what the types cannot: (field, message) of the first problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: &str| Err((format!("swarm.{f}"), m.to_string()));
        if self.unchoke_slots == 0 {
            return err(
                "unchoke_slots",
                "at least one unchoke slot is needed or nobody uploads",
            );
        }
        if self.pipeline == 0 {
            return err("pipeline", "at least one request must be outstanding");
        }
        if self.max_peers == 0 {
            return err("max_peers", "a peer needs at least one neighbour");
        }
        if self.numwant == 0 {
            return err("numwant", "ask the tracker for at least one peer");
        }
        if self.endgame_copies == 0 {
            return err(
                "endgame_copies",
                "must be at least 1 (1 disables end-game duplicates)",
            );
        }
        for (f, d) in [
            ("rechoke_interval", self.rechoke_interval),
            ("optimistic_interval", self.optimistic_interval),
            ("snub_timeout", self.snub_timeout),
        ] {
            if d.0.is_zero() {
                return err(f, "must be longer than zero");
            }
        }
        if self.announce_interval.0 < Duration::from_secs(1) {
            return err(
                "announce_interval",
                "must be at least 1 s (the tracker speaks whole seconds)",
            );
        }
        Ok(())
    }

    /// The knobs as the core takes them.
    pub fn config(&self) -> SwarmConfig {
        SwarmConfig {
            unchoke_slots: self.unchoke_slots,
            rechoke_interval: self.rechoke_interval.0,
            optimistic_interval: self.optimistic_interval.0,
            snub_timeout: self.snub_timeout.0,
            pipeline: self.pipeline,
            max_peers: self.max_peers,
            numwant: self.numwant,
            announce_interval: self.announce_interval.0,
            random_first_pieces: self.random_first_pieces,
            endgame_copies: self.endgame_copies,
            super_seed: self.super_seed,
            serial_uploads: self.serial_uploads,
            leave: self.leave.0,
        }
    }
}

/// `"stay"`, `"at-completion"` or `"after <duration>"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaveSpec(pub Leave);

impl LeaveSpec {
    /// Parses the scenario spelling.
    pub fn parse(text: &str) -> Result<LeaveSpec, String> {
        let t = text.trim();
        match t {
            "stay" => Ok(LeaveSpec(Leave::Stay)),
            "at-completion" => Ok(LeaveSpec(Leave::AtCompletion)),
            _ => match t.strip_prefix("after ") {
                Some(d) => Ok(LeaveSpec(Leave::After(Dur::parse(d.trim())?.0))),
                None => Err(format!(
                    "{text:?} is not a leave policy: write \"stay\", \"at-completion\" or \"after 30 s\""
                )),
            },
        }
    }
}

impl fmt::Display for LeaveSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Leave::Stay => f.write_str("stay"),
            Leave::AtCompletion => f.write_str("at-completion"),
            Leave::After(d) => write!(f, "after {}", Dur(d)),
        }
    }
}

impl Serialize for LeaveSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for LeaveSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LeaveSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"stay\", \"at-completion\" or \"after <duration>\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LeaveSpec, E> {
                LeaveSpec::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_policies_parse_and_print_back() {
        for text in ["stay", "at-completion", "after 20 s"] {
            assert_eq!(LeaveSpec::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            LeaveSpec::parse("after 1.5 s").unwrap().0,
            Leave::After(Duration::from_millis(1500))
        );
        assert!(
            LeaveSpec::parse("later")
                .unwrap_err()
                .contains("not a leave policy")
        );
        assert!(LeaveSpec::parse("after 3 parsecs").is_err());
    }
}
