//! peerlab's real network backend.
//!
//! The tokio driver — the `peerlab` subcommands that run server, client,
//! tracker, peer and relay nodes over TCP, streaming pieces to and from disk —
//! lands with the real-backend issue. Today the crate provides its wire
//! codec, [`wire`]: BitTorrent's peer wire protocol (BEP 3), so that the
//! [`peerlab_core::Message`]s a node emits can cross a real socket and real
//! BitTorrent clients can later join a peerlab swarm.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod wire;

pub use wire::{Frame, Handshake, Limits, WireError};
