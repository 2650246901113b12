//! peerlab's real network backend.
//!
//! The tokio driver — the `peerlab` subcommands that run server, client,
//! tracker, peer and relay nodes over TCP, streaming pieces to and from disk —
//! lands with the real-backend issue. Today the crate provides its wire
//! codec, [`wire`]: BitTorrent's peer wire protocol (BEP 3), so that the
//! [`peerlab_core::Message`]s a node emits can cross a real socket and real
//! BitTorrent clients can later join a peerlab swarm.
//!
//! Its groundwork so far: [`storage`], a node's copy of the file on disk,
//! streamed piece by piece, hash-checked, and resumable after a crash; and
//! [`metainfo_file`], which hashes a file into a metainfo, saves and loads it
//! as `<file>.peerlab.json`, and derives the handshake's info hash.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod metainfo_file;
pub mod storage;
pub mod wire;

pub use metainfo_file::{HashKind, MetainfoError};
pub use storage::{Storage, StorageError};
pub use wire::{Frame, Handshake, Limits, WireError};
