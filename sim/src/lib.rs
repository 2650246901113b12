//! peerlab's deterministic discrete-event simulator.
//!
//! It drives the same sans-IO nodes as the real backend over a modelled star
//! network: every host has an access link with an upload and a download
//! capacity, concurrent transfers share each link max-min fairly
//! ([`bandwidth`]), and an optional latency delays every message. Time is an
//! integer number of nanoseconds; events at the same time are taken in the
//! order they were scheduled; every node's randomness is its own seeded
//! ChaCha stream. The same scenario and seed therefore give a bit-identical
//! event trace, fingerprinted by the report's `trace_hash`.
//!
//! ```
//! use peerlab_scenarios::{Scenario, library};
//! let s = Scenario::from_json(library::get("lab-client-server").unwrap(), "lab",
//!                             &["peers.count=3".into()]).unwrap();
//! let report = peerlab_sim::run(&s, "lab").unwrap();
//! let d = report.distribution_time_s.unwrap();
//! assert!(d >= report.bounds.client_server_s);
//! assert!(d <= report.bounds.client_server_s * 1.005);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agreement;
pub mod bandwidth;
mod engine;
pub mod liveness;
mod piece_model;
mod queue;
mod simulation;
pub mod trace;

pub use engine::Progress;
pub use simulation::{Simulation, run};
