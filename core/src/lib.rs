//! peerlab's protocol core: sans-IO state machines for every node of every
//! distribution protocol peerlab studies.
//!
//! Nothing in this crate reads a clock, touches a socket or a file, spawns a
//! thread or uses a global RNG. A node is driven by the simulator
//! (`peerlab-sim`) or by the tokio backend (`peerlab-net`) through the
//! [`Node`] trait:
//!
//! 1. feed it inputs with the `handle_*` methods, each given `now`;
//! 2. drain [`Node::poll_output`] until it returns `None`, carrying out each
//!    [`Output`] in order: send the [`Transmit`], execute the [`Command`],
//!    record the [`Event`];
//! 3. ask [`Node::poll_timeout`] for its next deadline and call
//!    [`Node::handle_timeout`] when it passes (early or twice is harmless);
//! 4. call [`Node::handle_sent`] when the transport has sent a block, so a
//!    node can keep the transport's queue short. A swarm peer with
//!    `serial_uploads` needs it: without it, its uploads stop after two
//!    blocks for [`swarm::upload::STALL`] at a time.
//!
//! Randomness comes from [`rng::node_rng`], seeded from (scenario seed, node
//! id). Ordered collections are used wherever order could leak into
//! behaviour; `clippy.toml` forbids the alternatives.
//!
//! # The driver loop
//!
//! A complete, if idealised, driver: a network that delivers every message
//! at once and storage that accepts every piece. The simulator is this loop
//! with a bandwidth model and a clock.
//!
//! ```
//! use std::collections::VecDeque;
//! use peerlab_core::client_server::{Client, ClientServerConfig, Server};
//! use peerlab_core::{
//!     Bitfield, Command, ConnectionEvent, Event, Node, NodeId, Output, PieceLayout,
//!     StorageResult, Time,
//! };
//!
//! let layout = PieceLayout::new(1_000_000, 256 * 1024, 16 * 1024).unwrap();
//! let (server_id, client_id) = (NodeId(0), NodeId(1));
//! let mut nodes: Vec<Box<dyn Node>> = vec![
//!     Box::new(Server::new(server_id, layout)),
//!     Box::new(Client::new(client_id, server_id, layout, Bitfield::new(layout.pieces()),
//!                          ClientServerConfig::default())),
//! ];
//! let now = Time::ZERO;
//! for node in &mut nodes {
//!     node.handle_start(now);
//! }
//! let mut complete = false;
//! let mut work = true;
//! while work {
//!     work = false;
//!     for i in 0..nodes.len() {
//!         // Drain every output of node i, then feed the results back in.
//!         let mut inputs = VecDeque::new();
//!         while let Some(output) = nodes[i].poll_output() {
//!             work = true;
//!             let me = nodes[i].id();
//!             match output {
//!                 Output::Transmit(t) => inputs.push_back((t.to, Some((me, t.msg)), None)),
//!                 Output::Command(Command::Connect { peer }) => {
//!                     inputs.push_back((peer, None, Some((me, ConnectionEvent::Opened))));
//!                     inputs.push_back((me, None, Some((peer, ConnectionEvent::Opened))));
//!                 }
//!                 Output::Command(Command::VerifyPiece { piece }) => {
//!                     nodes[i].handle_storage(StorageResult::Verified { piece }, now);
//!                 }
//!                 Output::Command(_) => {} // StoreBlock, Disconnect: nothing to model
//!                 Output::Event(Event::DownloadComplete) => complete = true,
//!                 Output::Event(_) => {}
//!             }
//!         }
//!         for (to, msg, conn) in inputs {
//!             let node = &mut nodes[to.0 as usize];
//!             if let Some((from, msg)) = msg { node.handle_message(from, msg, now); }
//!             if let Some((peer, ev)) = conn { node.handle_connection(peer, ev, now); }
//!         }
//!     }
//! }
//! assert!(complete);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod client_server;
pub mod download;
pub mod event;
pub mod message;
pub mod misbehave;
pub mod node;
pub mod pace;
pub mod pieces;
pub mod pipeline;
pub mod relay;
pub mod rng;
pub mod static_tracker;
pub mod swarm;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod timers;
pub mod vec_map;

pub use event::{Event, ViolationKind};
pub use message::{Message, Transmit};
pub use node::{Command, ConnectionEvent, Node, NodeId, Outbox, Output, StorageResult};
pub use pieces::{Bitfield, BlockRef, PieceLayout};
pub use time::Time;
