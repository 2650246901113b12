//! peerlab's real network backend.
//!
//! [`driver`] runs any core [`peerlab_core::Node`] over real TCP sockets and
//! a real file with tokio ([`driver::run_node`]); [`conn`] is one connection
//! (handshake, reader, writer). The `peerlab` subcommands and the loopback
//! orchestrator build on it. The wire codec, [`wire`], is BitTorrent's peer
//! wire protocol (BEP 3) plus the relay protocol's messages, so that the
//! [`peerlab_core::Message`]s a node emits can cross a real socket and real
//! BitTorrent clients can later join a peerlab swarm.
//!
//! [`storage`] is a node's copy of the file on disk, streamed piece by
//! piece, hash-checked, and resumable after a crash; [`metainfo_file`]
//! hashes a file into a metainfo, saves and loads it as
//! `<file>.peerlab.json`, and derives the handshake's info hash.
//!
//! [`tracker_http`] is the swarm tracker over HTTP (BEP 3 announce, BEP 23
//! compact peers): [`tracker_http::run_tracker`] serves the core tracker
//! node, and a driver given [`NodeIo::http_tracker`] announces to it;
//! [`bencode`] is the reply's encoding.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bencode;
pub mod conn;
pub mod driver;
pub mod metainfo_file;
pub mod misbehave;
pub mod storage;
pub mod tracker_http;
pub mod wire;

pub use driver::{DriverError, NodeIo, run_node};
pub use metainfo_file::{HashKind, MetainfoError};
pub use storage::{Storage, StorageError};
pub use tracker_http::{TrackerIo, run_tracker};
pub use wire::{Frame, Handshake, Limits, WireError};
