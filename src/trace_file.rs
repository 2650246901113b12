//! Trace files: `peerlab run --trace FILE` records every event of a simulated
//! run; `peerlab replay FILE` runs it again and says whether the outcome is
//! identical, and if not, where it first diverged.
//!
//! Format (JSON lines): a header `{"peerlab_trace": 1, "version": …,
//! "scenario": {…}}` carrying the scenario with every override applied, one
//! line per record (`{"t": ns, "node": n, "kind": …, "detail": …}`), and a
//! footer `{"end": {"trace_hash": …, "events": …, "outcome": …}}`.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use peerlab_scenarios::{Report, Scenario};
use peerlab_sim::Simulation;
use serde_json::{Value, json};

const FORMAT: u64 = 1;

/// Writes a trace file as the run goes; [`TraceWriter::finish`] completes it.
pub struct TraceWriter {
    path: PathBuf,
    partial: PathBuf,
    out: Rc<RefCell<(BufWriter<File>, Option<std::io::Error>)>>,
}

impl TraceWriter {
    /// Starts `path` (written as `path.partial`, renamed when complete) and
    /// hooks it into `sim`.
    pub fn start(path: &Path, scenario: &Scenario, sim: &mut Simulation) -> Result<TraceWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let partial = path.with_extension("partial");
        let file = File::create(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
        let mut w = BufWriter::new(file);
        let header = json!({
            "peerlab_trace": FORMAT,
            "version": env!("CARGO_PKG_VERSION"),
            "scenario": scenario,
        });
        writeln!(w, "{header}").with_context(|| format!("cannot write {}", partial.display()))?;
        let out = Rc::new(RefCell::new((w, None)));
        let sink = Rc::clone(&out);
        sim.record_trace(move |line| {
            let (w, err) = &mut *sink.borrow_mut();
            if err.is_none()
                && let Err(e) = writeln!(w, "{line}")
            {
                *err = Some(e);
            }
        });
        Ok(TraceWriter {
            path: path.to_path_buf(),
            partial,
            out,
        })
    }

    /// Writes the footer and moves the file into place.
    pub fn finish(self, report: &Report) -> Result<()> {
        let (w, err) = &mut *self.out.borrow_mut();
        if let Some(e) = err.take() {
            return Err(e).with_context(|| format!("cannot write the trace {}", self.partial.display()));
        }
        let footer = json!({ "end": footer(report) });
        writeln!(w, "{footer}")
            .and_then(|()| w.flush())
            .and_then(|()| w.get_ref().sync_all())
            .and_then(|()| std::fs::rename(&self.partial, &self.path))
            .with_context(|| format!("cannot write the trace {}", self.path.display()))
    }
}

fn footer(report: &Report) -> Value {
    json!({
        "trace_hash": report.trace_hash,
        "events": report.sim.as_ref().map(|s| s.events),
        "outcome": report.outcome,
        "distribution_time_s": report.distribution_time_s,
    })
}

/// What a replay found.
#[derive(Debug)]
pub enum Verdict {
    /// Every record and the outcome matched.
    Identical {
        /// Records compared.
        records: u64,
        /// The run's trace hash.
        trace_hash: String,
    },
    /// The runs parted ways at `line` of the file.
    Diverged {
        /// 1-based line number in the trace file.
        line: u64,
        /// What the file says.
        recorded: String,
        /// What the replay did.
        replayed: String,
    },
}

/// Replays the trace at `path`.
pub fn replay(path: &Path) -> Result<(Verdict, Report)> {
    let file = File::open(path).with_context(|| format!("cannot open the trace {}", path.display()))?;
    let mut lines = BufReader::new(file).lines();
    let header: Value = match lines.next() {
        Some(line) => serde_json::from_str(&line?)
            .with_context(|| format!("{}: line 1 is not a trace header", path.display()))?,
        None => bail!("{} is empty: not a peerlab trace", path.display()),
    };
    if header["peerlab_trace"].as_u64() != Some(FORMAT) {
        bail!(
            "{}: not a peerlab trace (format {FORMAT}): line 1 lacks \"peerlab_trace\"",
            path.display()
        );
    }
    let origin = format!("the scenario in {}", path.display());
    let scenario = Scenario::from_json(&header["scenario"].to_string(), &origin, &[])?;
    let mut sim = Simulation::new(&scenario, &origin)?;
    // Compare record by record as the replay produces them.
    struct State {
        lines: std::io::Lines<BufReader<File>>,
        line: u64,
        divergence: Option<(u64, String, String)>,
        error: Option<std::io::Error>,
    }
    let state = Rc::new(RefCell::new(State {
        lines,
        line: 1,
        divergence: None,
        error: None,
    }));
    let st = Rc::clone(&state);
    sim.record_trace(move |got| {
        let s = &mut *st.borrow_mut();
        if s.divergence.is_some() || s.error.is_some() {
            return;
        }
        s.line += 1;
        match s.lines.next() {
            Some(Ok(want)) if want == got => {}
            Some(Ok(want)) => s.divergence = Some((s.line, want, got.to_string())),
            Some(Err(e)) => s.error = Some(e),
            None => s.divergence = Some((s.line, "(end of file)".into(), got.to_string())),
        }
    });
    let report = sim.run(|_| {});
    let s = &mut *state.borrow_mut();
    if let Some(e) = s.error.take() {
        return Err(e).with_context(|| format!("cannot read {}", path.display()));
    }
    if let Some((line, recorded, replayed)) = s.divergence.take() {
        return Ok((
            Verdict::Diverged {
                line,
                recorded,
                replayed,
            },
            report,
        ));
    }
    s.line += 1;
    let want_footer = match s.lines.next() {
        Some(line) => line.with_context(|| format!("cannot read {}", path.display()))?,
        None => String::from("(end of file: the recorded run was cut short)"),
    };
    let got_footer = json!({ "end": footer(&report) }).to_string();
    if want_footer != got_footer {
        return Ok((
            Verdict::Diverged {
                line: s.line,
                recorded: want_footer,
                replayed: got_footer,
            },
            report,
        ));
    }
    let trace_hash = report.trace_hash.clone().unwrap_or_default();
    Ok((
        Verdict::Identical {
            records: s.line - 2,
            trace_hash,
        },
        report,
    ))
}
