//! Faults a scenario injects (README, "When things break"): each happens at a
//! time, to one host, and is reproduced exactly from the scenario.
//!
//! ```json
//! "faults": [
//!   { "kind": "hang",      "host": "p1",     "at": "3 s", "for": "5 s" },
//!   { "kind": "crash",     "host": "server", "at": "8 s", "for": "2 s" },
//!   { "kind": "link-down", "host": "p2",     "at": "1 s", "for": "500 ms" },
//!   { "kind": "bandwidth", "host": "p3",     "at": "4 s", "upload": "1 Mbit/s" },
//!   { "kind": "corrupt",   "host": "p4",     "at": "0 s", "every": 3 },
//!   { "kind": "silent",    "host": "p5",     "at": "2 s", "for": "10 s" },
//!   { "kind": "lying",     "host": "p6",     "at": "0 s" },
//!   { "kind": "flood",     "host": "p7",     "at": "1 s", "rate": 50 }
//! ]
//! ```

use serde::{Deserialize, Serialize};

use peerlab_core::misbehave::Misbehaviour;

use crate::units::{Dur, Rate};

/// What happens to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The process dies: its memory and connections are lost, the pieces it
    /// had verified on disk are kept. With `for`, it restarts after that long.
    Crash,
    /// A crashed host starts again from what it has on disk.
    Restart,
    /// The process stops reading (SIGSTOP): messages to it wait, its timers
    /// wait, its connections stall so senders see no progress. With `for`,
    /// it resumes after that long. (A real node's peers close connections
    /// idle for 2 minutes; the simulator keeps them however long the hang.)
    Hang,
    /// A hung host carries on (SIGCONT).
    Resume,
    /// The host's access link is cut: nothing crosses it, the process keeps
    /// running. With `for`, the link comes back after that long.
    LinkDown,
    /// The host's access link works again.
    LinkUp,
    /// The host's access link changes capacity (`upload` and/or `download`).
    Bandwidth,
    /// The host leaves the distribution (churn); with `for`, it joins again
    /// after that long, from what it has on disk.
    Leave,
    /// A departed host joins again.
    Join,
    /// The host misbehaves: every block it sends carries wrong bytes, so
    /// each piece holding one fails its hash check at the receiver (a real
    /// node flips the bytes it reads from its file; the simulator fails the
    /// piece). With `every` = k, only blocks of pieces whose index is a
    /// multiple of k. With `for`, it is honest again after that long.
    Corrupt,
    /// The host stays connected but answers no request: it sends no block
    /// (its other messages as usual). With `for`, it answers again after
    /// that long.
    Silent,
    /// The host claims every piece (the bitfield it sends on each new
    /// connection is full) while holding fewer; requests for pieces it
    /// lacks are never answered. A host that lies is not waited for at the
    /// end of a run: peers that take it for a seed stop telling it what
    /// they have, and seeds drop it. With `for`, its bitfields are true
    /// again after that long.
    Lying,
    /// The host floods every other host with connections that send a
    /// quarter of a handshake and nothing more, `rate` new ones a second
    /// to each (default 20), besides its usual work. Real nodes limit what
    /// one address may hold in its handshake, so a flood costs them a few
    /// sockets; the simulator charges nothing for it. With `for`, it stops
    /// after that long.
    Flood,
    /// A misbehaving host (corrupt, silent, lying, flood) behaves again.
    Honest,
}

impl FaultKind {
    /// The fault that undoes this one when it is given a `for`.
    pub fn recovery(self) -> Option<FaultKind> {
        match self {
            FaultKind::Crash => Some(FaultKind::Restart),
            FaultKind::Hang => Some(FaultKind::Resume),
            FaultKind::LinkDown => Some(FaultKind::LinkUp),
            FaultKind::Leave => Some(FaultKind::Join),
            FaultKind::Corrupt | FaultKind::Silent | FaultKind::Lying | FaultKind::Flood => {
                Some(FaultKind::Honest)
            }
            _ => None,
        }
    }

    /// Whether it switches the host into a misbehaviour (a real node reads
    /// which from its control file on SIGUSR1).
    pub fn misbehaves(self) -> bool {
        matches!(
            self,
            FaultKind::Corrupt | FaultKind::Silent | FaultKind::Lying | FaultKind::Flood
        )
    }

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Hang => "hang",
            FaultKind::Resume => "resume",
            FaultKind::LinkDown => "link-down",
            FaultKind::LinkUp => "link-up",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Leave => "leave",
            FaultKind::Join => "join",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Silent => "silent",
            FaultKind::Lying => "lying",
            FaultKind::Flood => "flood",
            FaultKind::Honest => "honest",
        }
    }
}

/// One timed fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// The host it happens to (`server`, `p3`, …).
    pub host: String,
    /// When it happens.
    pub at: Dur,
    /// For crash, hang, link-down, leave, corrupt, silent and lying: undo it
    /// after this long.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// For bandwidth: the new upload capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Rate>,
    /// For bandwidth: the new download capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<Rate>,
    /// For corrupt: spoil only pieces whose index is a multiple of this
    /// (at least 1; absent: every piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u32>,
    /// For flood: new connections a second to each other host (1 to
    /// [`MAX_FLOOD_RATE`]; absent: [`DEFAULT_FLOOD_RATE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
}

/// A flood's connections a second to each host when the fault names none.
pub const DEFAULT_FLOOD_RATE: u32 = 20;

/// The most connections a second a flood may open to each host: enough to
/// hold every handshake slot an address gets many times over, few enough
/// that the flooding machine does not drown in its own sockets.
pub const MAX_FLOOD_RATE: u32 = 1000;

impl Fault {
    /// Checks the fields that only some kinds take; returns `(field, message)`
    /// relative to this fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let kind = self.kind.name();
        if self.duration.is_some() && self.kind.recovery().is_none() {
            return Err(("for", format!("a `{kind}` fault takes no `for`")));
        }
        let rates = self.upload.is_some() || self.download.is_some();
        if self.kind == FaultKind::Bandwidth && !rates {
            return Err((
                "upload",
                "a `bandwidth` fault needs `upload` and/or `download`".into(),
            ));
        }
        if self.kind != FaultKind::Bandwidth && rates {
            return Err((
                "upload",
                format!("only `bandwidth` faults take rates, not `{kind}`"),
            ));
        }
        match self.every {
            Some(_) if self.kind != FaultKind::Corrupt => {
                return Err((
                    "every",
                    format!("only `corrupt` faults take `every`, not `{kind}`"),
                ));
            }
            Some(0) => {
                return Err((
                    "every",
                    "must be at least 1: the host spoils pieces whose index is a multiple of it".into(),
                ));
            }
            _ => {}
        }
        match self.rate {
            Some(_) if self.kind != FaultKind::Flood => {
                return Err(("rate", format!("only `flood` faults take `rate`, not `{kind}`")));
            }
            Some(r) if !(1..=MAX_FLOOD_RATE).contains(&r) => {
                return Err((
                    "rate",
                    format!("must be 1 to {MAX_FLOOD_RATE} new connections a second to each host, not {r}"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// What `kind` (this fault's own or its undoing's, from [`Fault::expand`])
    /// makes the host do; `None` when it is no misbehaviour.
    pub fn misbehaviour(&self, kind: FaultKind) -> Option<Misbehaviour> {
        match kind {
            FaultKind::Corrupt => Some(Misbehaviour::Corrupt {
                every: self.every.unwrap_or(1).max(1),
            }),
            FaultKind::Silent => Some(Misbehaviour::Silent),
            FaultKind::Lying => Some(Misbehaviour::Lying),
            FaultKind::Flood => Some(Misbehaviour::Flood {
                rate: self.rate.unwrap_or(DEFAULT_FLOOD_RATE),
            }),
            FaultKind::Honest => Some(Misbehaviour::Honest),
            _ => None,
        }
    }

    /// This fault and, if it has a `for`, the one that undoes it, as
    /// `(at, kind)` pairs.
    pub fn expand(&self) -> Vec<(Dur, FaultKind)> {
        let mut out = vec![(self.at, self.kind)];
        if let (Some(d), Some(undo)) = (self.duration, self.kind.recovery()) {
            out.push((Dur(self.at.0 + d.0), undo));
        }
        out
    }
}
