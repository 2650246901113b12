//! The contract between peerlab's parts (README: "Scenarios" and "Reports"):
//! the scenario format that drives every backend, the report every backend
//! writes, the theory bounds reports are measured against, and the library of
//! named scenarios.
//!
//! ```
//! use peerlab_scenarios::{Scenario, library};
//! let s = Scenario::from_json(library::get("lab-client-server").unwrap(), "lab", &[
//!     "peers.count=4".to_string(),
//!     "network.goodput=1".to_string(), // no TCP/IP overhead: the textbook bound
//! ]).unwrap();
//! assert_eq!(s.downloaders(), 4);
//! let b = peerlab_scenarios::Bounds::of(&s);
//! // 4 copies of 10 MiB through a 20 Mbit/s server uplink.
//! assert!((b.client_server_s - 4.0 * 10.0 * 1024.0 * 1024.0 * 8.0 / 20e6).abs() < 1e-9);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bounds;
pub mod faults;
pub mod library;
pub mod nodes;
pub mod overrides;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod swarm;
pub mod units;

pub use bounds::Bounds;
pub use report::{Outcome, Report, ReportBuilder};
pub use scenario::{
    CALIBRATED_ACK_LOAD, CALIBRATED_GOODPUT, CALIBRATED_RTO, CALIBRATED_SEND_WINDOW, Host, Protocol, Role,
    Scenario, ScenarioError, SimModel, SimulatorOptions,
};
pub use units::{Dur, Rate, Size};
