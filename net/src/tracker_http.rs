//! The swarm tracker over HTTP, as BitTorrent's (BEP 3 announce, BEP 23
//! compact peer lists), so that a swarm runs over real sockets.
//!
//! No protocol decision is made here: the core
//! [`Tracker`](peerlab_core::swarm::Tracker) node still decides who gets
//! which peers, and the core [`Peer`](peerlab_core::swarm::Peer) when to
//! announce. This module only carries [`Message::Announce`] and
//! [`Message::AnnounceReply`] over HTTP instead of the peer wire:
//!
//! - [`server`]: [`run_tracker`] runs the tracker node behind
//!   `GET /announce?info_hash=…&peer_id=…&port=…&uploaded=…&downloaded=…&left=…&event=…&numwant=…&compact=1`,
//!   answering `d8:intervali…e5:peers<6·k bytes>e` with each peer's IPv4
//!   address and port from the address book, or a bencoded `failure
//!   reason` naming what is wrong (a missing or malformed parameter,
//!   another file's info hash, an unknown peer);
//! - [`client`]: a peer's driver given [`NodeIo::http_tracker`] reaches
//!   that node over HTTP; the node sees the same connection events and
//!   messages as in the simulator;
//! - [`query`] and [`reply`]: the request and reply formats, every field
//!   bounded ([`query::MAX_QUERY_LEN`], [`reply::MAX_REPLY_LEN`], numwant
//!   at most [`MAX_NUMWANT`]).
//!
//! The announcing peer's [`NodeId`](peerlab_core::NodeId) is the one its
//! `peer_id` carries ([`crate::conn::node_of`]); it must be in the
//! tracker's address book, with the port it announces.
//!
//! [`Message::Announce`]: peerlab_core::Message::Announce
//! [`Message::AnnounceReply`]: peerlab_core::Message::AnnounceReply
//! [`NodeIo::http_tracker`]: crate::driver::NodeIo::http_tracker
//! [`MAX_NUMWANT`]: peerlab_core::swarm::tracker::MAX_NUMWANT

pub mod client;
pub mod query;
pub mod reply;
pub mod server;

pub use client::ANNOUNCE_TIMEOUT;
pub use query::{AnnounceQuery, QueryError};
pub use server::{TrackerIo, run_tracker};
