//! Static-tracker P2P (seed 001, part 2): a tracker file names one owner
//! peer for every piece; each owner fetches its pieces from the server and
//! every other peer fetches each piece from its owner, so the server uploads
//! the file once and the peers' uplinks do the rest.
//!
//! The protocol, peer by peer ([`Peer`]):
//!
//! - it connects to the server and fetches the pieces it owns, keeping a
//!   bounded pipeline of block requests outstanding ([`crate::pipeline`]);
//! - it connects to every other owner and asks it, again pipelined, for each
//!   piece it lacks that the owner owns;
//! - an owner asked for a block of a piece it does not hold yet keeps the
//!   request (module `deferred`), moves that piece to the front of its own
//!   server fetch (module `sources`), and answers once the piece has passed
//!   its hash check — nothing is counted or served before
//!   [`crate::Command::VerifyPiece`] succeeds;
//! - when the connection to an owner fails or closes, or an owner sends a
//!   piece that fails its hash check, the peer gives up on that owner for
//!   good and fetches its pieces from the server instead: one bounded
//!   fallback, nobody waits forever on a lost owner;
//! - an owner that sends nothing for `stall_timeout` (30 s by default) while
//!   requests to it are outstanding — hung, or cut off with its connection
//!   open — is given up the same way. An owner legitimately queued behind a
//!   very busy server looks alike; falling back then costs the server some
//!   upload, never correctness, and the timeout is a scenario knob.
//! - a peer holding every piece reports [`crate::Event::DownloadComplete`],
//!   leaves the server, and keeps serving the peers still connected to it.
//!
//! The server is the client-server protocol's
//! [`Server`](crate::client_server::Server): it answers every valid request.

mod deferred;
mod peer;
mod sources;
mod tracker_file;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use peer::Peer;
pub use tracker_file::TrackerFile;

use crate::client_server::ClientServerConfig;

/// Knobs of the static-tracker protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticTrackerConfig {
    /// Block requests a peer keeps outstanding on each connection (to the
    /// server and to every owner). It must cover the path's bandwidth-delay
    /// product or the sender's link idles.
    pub pipeline: u32,
    /// First delay before a peer retries a lost connection to the server;
    /// doubled on each failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts to the server.
    pub reconnect_max: Duration,
    /// How long an owner may send nothing while requests to it are
    /// outstanding before its pieces are fetched from the server instead.
    pub stall_timeout: Duration,
}

impl Default for StaticTrackerConfig {
    fn default() -> Self {
        let cs = ClientServerConfig::default();
        StaticTrackerConfig {
            pipeline: cs.pipeline,
            reconnect_min: cs.reconnect_min,
            reconnect_max: cs.reconnect_max,
            stall_timeout: Duration::from_secs(30),
        }
    }
}
