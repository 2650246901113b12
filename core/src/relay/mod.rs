//! Relay failover (seed 000): a sender streams a file, cut into small
//! chunks, to one destination; when the destination stops answering, the
//! sender redirects the chunks it has not delivered to a relay peer, so that
//! its own upload finishes early; when the destination is back, the relay
//! forwards what it holds.
//!
//! # Roles
//!
//! - [`Sender`] holds the whole file. It pushes chunks (no requests) to the
//!   destination, keeping at most [`RelayConfig::window`] unacknowledged.
//!   When the destination makes no progress for
//!   [`RelayConfig::detection_timeout`] while chunks are outstanding (or its
//!   connection is lost), the sender picks a relay by spare capacity
//!   ([`choose_relay`]), sends it [`Message::RelayFor`] and pushes it every
//!   chunk the destination has not acknowledged. Its upload is finished
//!   ([`Event::SenderFinished`]) when every chunk is acknowledged by the
//!   destination or held by a live relay.
//! - [`Relay`] stores and acknowledges what the sender pushes, probes the
//!   destination (connect, push a window, wait; retries bounded, with
//!   backoff), forwards every chunk it holds once the destination answers,
//!   and reports each forwarded chunk to the sender ([`Message::Forwarded`]).
//!   While it holds chunks it tells the sender it is alive
//!   ([`Message::RelayAlive`]).
//! - [`Destination`] stores each new chunk, has it verified and acknowledges
//!   it to whoever pushed it; a chunk it already holds is acknowledged again
//!   and not stored twice.
//!
//! A relay that is lost (its connection closes, or it is silent for the
//! detection timeout) before it has reported every chunk forwarded costs
//! nothing but time: the sender still holds the file, takes those chunks
//! back ([`Event::RelayLost`]) and sends them to another relay or, when none
//! is left, to the destination again.
//!
//! # Chunks
//!
//! A chunk is a piece of [`chunk_layout`]: one block, hash-checked on its
//! own, so [`Download`](crate::download::Download) and
//! [`Command::VerifyPiece`](crate::Command::VerifyPiece) apply unchanged.
//!
//! # Waiting
//!
//! Nobody waits forever. Every wait for a peer is bounded by the detection
//! timeout; a wait that expires either moves the chunks elsewhere or counts
//! as one of at most [`RelayConfig::max_attempts`] retries, spaced by an
//! exponential backoff; any progress resets the count. A hung peer (the
//! simulator's `hang` fault: it stops reading, its connections stall, connect
//! attempts to it still open) is handled by the same timeouts: the
//! connection is kept, since what was sent on it arrives when the peer
//! resumes, and a crashed peer shows up as a closed or failed connection.
//!
//! [`Message::RelayFor`]: crate::Message::RelayFor
//! [`Message::Forwarded`]: crate::Message::Forwarded
//! [`Message::RelayAlive`]: crate::Message::RelayAlive
//! [`Event::SenderFinished`]: crate::Event::SenderFinished
//! [`Event::RelayLost`]: crate::Event::RelayLost

mod choice;
mod destination;
mod forwarder;
mod lane;
mod sender;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use choice::{RelayCandidate, choose_relay};
pub use destination::Destination;
pub use forwarder::Relay;
pub use sender::Sender;

use crate::pieces::{LayoutError, PieceLayout};

/// The default chunk size: the seed's 1024 bytes.
pub const DEFAULT_CHUNK_SIZE: u32 = 1024;

/// The layout of a file of `file_len` bytes cut into chunks of `chunk_len`
/// bytes: every piece is one chunk of one block.
pub fn chunk_layout(file_len: u64, chunk_len: u32) -> Result<PieceLayout, LayoutError> {
    PieceLayout::new(file_len, chunk_len, chunk_len)
}

/// Knobs of the relay failover protocol, shared by every role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Chunks pushed to one peer and not yet acknowledged, at most.
    pub window: u32,
    /// How long a peer may make no progress (no acknowledgement, or for a
    /// relay holding chunks, no message at all) while something is expected
    /// of it before it counts as not answering.
    pub detection_timeout: Duration,
    /// First extra wait before a retry; doubled on each failed retry up to
    /// `retry_max`.
    pub retry_min: Duration,
    /// Longest extra wait before a retry.
    pub retry_max: Duration,
    /// Retries without any progress after which a node gives up on a peer
    /// ([`Event::GaveUp`](crate::Event::GaveUp)).
    pub max_attempts: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            window: 64,
            detection_timeout: Duration::from_secs(2),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(5),
            max_attempts: 64,
        }
    }
}

impl RelayConfig {
    /// How often a relay holding chunks tells the sender it is alive: four
    /// times per detection timeout, so one late message is not a death.
    pub fn alive_interval(&self) -> Duration {
        (self.detection_timeout / 4).max(Duration::from_millis(1))
    }
}

/// Asserts that `layout` is a chunk layout (one block per piece).
fn assert_chunks(layout: &PieceLayout) {
    assert_eq!(
        layout.piece_len(),
        layout.block_len(),
        "relay failover needs one block per chunk: build the layout with chunk_layout"
    );
}
