//! BitTorrent-style swarm distribution (seeds 002/003/004, BEP 3): a tracker
//! hands every peer a random subset of the swarm; peers exchange pieces
//! with their neighbours, choosing pieces rarest first and uploading by
//! tit-for-tat.
//!
//! One idea per module:
//!
//! - [`metainfo`]: the "kascade" / torrent file (name, length, piece length,
//!   one hash per piece);
//! - [`tracker`]: the tracker node (announce, random peer subsets);
//! - [`neighbours`]: how many peers a peer dials and accepts, and when it
//!   asks the tracker for more;
//! - [`picker`]: which block to ask a neighbour for (random first pieces,
//!   rarest first, end game);
//! - [`choker`]: whom to upload to (4 tit-for-tat slots re-evaluated every
//!   10 s, one optimistic unchoke rotated every 30 s, anti-snubbing);
//! - [`super_seed`]: the initial seed's super-seeding mode (no piece sent
//!   twice before every piece has left once);
//! - [`upload`]: in which order requested blocks are sent (one piece to one
//!   neighbour at a time, at the full rate of the uplink);
//! - [`peer`]: the peer node tying them together. The initial seed is the
//!   same node started with a full bitfield.

pub mod blame;
pub mod choker;
pub mod metainfo;
pub mod neighbours;
#[cfg(test)]
mod net_tests;
pub mod peer;
pub mod picker;
pub mod super_seed;
pub mod tracker;
pub mod upload;

use std::time::Duration;

pub use metainfo::Metainfo;
pub use peer::Peer;
pub use tracker::Tracker;

/// When a peer that completed the file leaves the swarm (churn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Leave {
    /// It stays and seeds until the run ends (altruistic).
    #[default]
    Stay,
    /// It leaves as soon as it holds the whole file (selfish).
    AtCompletion,
    /// It seeds for this long after completing, then leaves.
    After(Duration),
}

/// What a peer that has just completed the file does about leaving
/// ([`Leave::on_completion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// It leaves now: its completion is its last act (it neither announces
    /// it nor seeds).
    Now,
    /// It announces its completion and seeds until then, then leaves.
    At(crate::Time),
    /// It stays.
    Never,
}

impl Leave {
    /// When a peer that completed the file at `now` leaves: the rule of
    /// `core::swarm::Peer`, also followed by the simulator's pieces model.
    pub fn on_completion(self, now: crate::Time) -> Departure {
        match self {
            Leave::Stay => Departure::Never,
            Leave::AtCompletion => Departure::Now,
            Leave::After(d) => Departure::At(now + d),
        }
    }
}

/// Knobs of the swarm protocol; the defaults follow BitTorrent's
/// mainline client and the course notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwarmConfig {
    /// Regular (tit-for-tat) unchoke slots.
    pub unchoke_slots: u32,
    /// How often the regular slots are re-evaluated.
    pub rechoke_interval: Duration,
    /// How often the optimistic unchoke moves to another peer.
    pub optimistic_interval: Duration,
    /// A neighbour that sent us nothing for this long while we were
    /// interested is snubbed: it loses its regular slot.
    pub snub_timeout: Duration,
    /// Block requests kept outstanding per neighbour. It must cover the
    /// bandwidth-delay product of one connection (a sender shares its
    /// uplink among ~5 neighbours); deeper queues delay every newly
    /// advertised piece behind the blocks already queued, which lengthens
    /// the swarm's tail (docs/swarm.md).
    pub pipeline: u32,
    /// Most neighbours a peer holds. It dials peers itself only up to half
    /// of this and keeps the rest for peers that dial it.
    pub max_peers: u32,
    /// Peers asked of the tracker per announce.
    pub numwant: u32,
    /// Re-announce interval the tracker hands out.
    pub announce_interval: Duration,
    /// The first this many pieces are chosen at random, then rarest first.
    pub random_first_pieces: u32,
    /// Most peers one block is requested from at once in the end game.
    pub endgame_copies: u32,
    /// Whether the initial seed super-seeds ([`super_seed`]).
    pub super_seed: bool,
    /// Whether uploads go one piece to one neighbour at a time at the full
    /// rate of the uplink ([`upload`]) rather than every request being
    /// answered at once (the uplink shared among the unchoked neighbours).
    pub serial_uploads: bool,
    /// When a peer leaves after completing.
    pub leave: Leave,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            unchoke_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(60),
            pipeline: 4,
            max_peers: 80,
            numwant: 50,
            announce_interval: Duration::from_secs(120),
            random_first_pieces: 4,
            endgame_copies: 2,
            super_seed: false,
            serial_uploads: false,
            leave: Leave::Stay,
        }
    }
}
