//! One simulated run, in the model the scenario asks for
//! (`simulator.model`): the message model ([`crate::engine`]) by default,
//! the pieces model ([`crate::piece_model`]) for large swarms. Both give the
//! same report.

use peerlab_core::{Event, NodeId, Time};
use peerlab_scenarios::{Report, Scenario, ScenarioError, SimModel};

use crate::engine::{MessageSim, Progress};
use crate::liveness::Starvation;
use crate::piece_model::PieceSim;

/// One simulated run of a scenario.
pub struct Simulation(Model);

enum Model {
    Messages(Box<MessageSim>),
    Pieces(Box<PieceSim>),
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Model::Messages(m) => m.fmt(f),
            Model::Pieces(_) => f.write_str("Simulation(pieces model)"),
        }
    }
}

impl Simulation {
    /// A simulation of `scenario` at time zero. `origin` names the scenario
    /// in errors.
    pub fn new(scenario: &Scenario, origin: &str) -> Result<Self, ScenarioError> {
        Ok(Simulation(match scenario.simulator.model {
            SimModel::Messages => Model::Messages(Box::new(MessageSim::new(scenario, origin)?)),
            SimModel::Pieces => Model::Pieces(Box::new(PieceSim::new(scenario, origin)?)),
        }))
    }

    /// Records the whole event trace: `sink` receives one JSON line per
    /// record, in order: the records the trace hash is made of.
    pub fn record_trace(&mut self, sink: impl FnMut(&str) + 'static) {
        match &mut self.0 {
            Model::Messages(m) => m.record_trace(sink),
            Model::Pieces(p) => p.record_trace(sink),
        }
    }

    /// Calls `observer` with every event a node reports, as it happens (for
    /// tests and tools that need more than the report).
    pub fn observe(self, observer: impl FnMut(Time, NodeId, &Event) + 'static) -> Self {
        Simulation(match self.0 {
            Model::Messages(m) => Model::Messages(Box::new(m.observe(observer))),
            Model::Pieces(mut p) => {
                p.observe(observer);
                Model::Pieces(p)
            }
        })
    }

    /// Checks liveness throughout the run (message model only): `sink`
    /// receives, at the end, every wait longer than `bound` of a downloader
    /// that lacked pieces while a running host with upload to spare held one
    /// of them ([`crate::liveness`]).
    ///
    /// # Errors
    /// The pieces model has no liveness check.
    pub fn check_liveness(
        self,
        bound: std::time::Duration,
        sink: impl FnOnce(Vec<Starvation>) + 'static,
    ) -> Result<Self, &'static str> {
        match self.0 {
            Model::Messages(m) => Ok(Simulation(Model::Messages(Box::new(
                m.check_liveness(bound, sink),
            )))),
            Model::Pieces(_) => {
                Err("the liveness check needs the message model (simulator.model = messages)")
            }
        }
    }

    /// Runs to the end: every downloader complete, nothing left to happen,
    /// or a limit reached. `progress` is called every so often.
    pub fn run(self, progress: impl FnMut(&Progress)) -> Report {
        match self.0 {
            Model::Messages(m) => m.run(progress),
            Model::Pieces(p) => p.run(progress),
        }
    }
}

/// Runs `scenario` to the end and returns its report.
pub fn run(scenario: &Scenario, origin: &str) -> Result<Report, ScenarioError> {
    Ok(Simulation::new(scenario, origin)?.run(|_| {}))
}
