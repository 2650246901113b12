//! Client-server distribution (seed 001, part 1): one server holds the file;
//! every client connects to it, requests the file block by block with a
//! pipeline of outstanding requests, has each piece hash-checked, and is done
//! when every piece is verified.
//!
//! The server answers each valid request at once; how its upload is shared
//! between clients is up to the network (TCP in reality, max-min fair sharing
//! in the simulator), which is exactly what the client-server bound
//! `max(N*F/u_s, F/d_min)` assumes.

mod client;
mod server;

use std::time::Duration;

pub use client::Client;
pub use server::Server;

/// Knobs of the client-server protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientServerConfig {
    /// Block requests a client keeps outstanding. It must cover the
    /// bandwidth-delay product of the path or the server's link idles.
    pub pipeline: u32,
    /// First delay before a client retries a lost or refused connection;
    /// doubled on each failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
}

impl Default for ClientServerConfig {
    fn default() -> Self {
        ClientServerConfig {
            pipeline: 64,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        }
    }
}
