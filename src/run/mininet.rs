//! `peerlab run SCENARIO --on mininet`: the whole scenario on an emulated
//! network, every host a real `peerlab node` in its own Mininet namespace.
//!
//! 1. Needs root and Mininet for the system Python (`/usr/bin/python3`).
//! 2. The work directory is prepared as for loopback (source file, metainfo,
//!    resolved scenario), with an address file of `10.0.0.k:7000` — host k
//!    of the scenario is Mininet's `hk`.
//! 3. A plan (JSON) tells the driver `scenarios/mininet/peerlab_mininet.py`
//!    (built into this binary, written to the work directory) the hosts,
//!    their rates, the node commands, the start order, the faults and what
//!    the run waits for. The driver builds one LinuxBridge switch with a
//!    link per host shaped by htb (upload on the host side, download on the
//!    switch side; one queue per other host with `--link-queue fair`), runs
//!    the nodes with a common epoch taken once the network is up, applies the faults — link-down and bandwidth included —
//!    and always tears the network down.
//! 4. The events files are merged into the simulator's [`ReportBuilder`]:
//!    `backend: "mininet"`, then every downloaded file is compared with the
//!    source.
//!
//! netem is not available here: link latencies are not emulated.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::scenario::Host;
use peerlab_scenarios::units::Rate;
use peerlab_scenarios::{Outcome, Scenario, nodes};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::real::{self, Launch, Ran, RealBackend};
use crate::human;

/// The system Python, which has Mininet (not pyenv's).
const PYTHON: &str = "/usr/bin/python3";

/// The driver, written to the work directory of every run.
const DRIVER: &str = include_str!("../../scenarios/mininet/peerlab_mininet.py");

/// The port every node listens on (each host has its own address).
const PORT: u16 = 7000;

/// What the driver reports in `RESULT.json`.
#[derive(Debug, Deserialize)]
struct DriverResult {
    /// `complete`, `deadline`, `interrupted` or `error`.
    outcome: String,
    /// The kinds of the faults it applied.
    applied: Vec<String>,
    error: Option<String>,
}

/// Fails unless this process is root and the system Python has Mininet.
pub fn check_environment() -> Result<()> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if uid != 0 {
        bail!("--on mininet needs root (Mininet creates network namespaces and links); run it with sudo");
    }
    let has_mininet = Command::new(PYTHON)
        .args(["-c", "import mininet.net"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_mininet {
        bail!(
            "--on mininet needs Mininet for {PYTHON}; install with: apt-get install mininet \
             bridge-utils iperf3 iputils-ping"
        );
    }
    Ok(())
}

/// A rate in Mbit/s for the driver; null when unlimited.
fn mbit(rate: Rate) -> Value {
    let bps = rate.bits_per_sec();
    if bps.is_finite() {
        json!(bps / 1e6)
    } else {
        Value::Null
    }
}

/// Host `k`'s address in Mininet's 10.0.0.0/8.
fn ip(k: usize) -> String {
    let n = k + 1;
    format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
}

/// The driver's plan for a prepared run.
fn plan(launch: &Launch) -> Result<Value> {
    let scenario = launch.scenario;
    let exe = std::env::current_exe().context("cannot find the peerlab executable")?;
    let host_plans: Vec<Value> = launch
        .hosts
        .iter()
        .enumerate()
        .map(|(k, h)| {
            json!({
                "name": h.name,
                "mn": format!("h{}", k + 1),
                "ip": ip(k),
                "up_mbit": mbit(h.upload),
                "down_mbit": mbit(h.download),
                "data": launch.dirs[k],
                "args": launch.node_args(k),
            })
        })
        .collect();
    let order = nodes::start_order(scenario);
    let faults: Vec<Value> = real::schedule(scenario)
        .into_iter()
        .map(|(at, kind, host, k)| {
            let mut f = json!({"at_s": at.as_secs_f64(), "kind": kind.name(), "host": host});
            // What a misbehaving node is to do: the driver writes it to the
            // node's control file before SIGUSR1 (src/run/loopback.rs).
            if let Some(mode) = scenario.faults[k].misbehaviour(kind) {
                f["control"] = json!(mode.to_line());
            }
            if kind == FaultKind::Bandwidth {
                let fault = &scenario.faults[k];
                if let Some(up) = fault.upload {
                    f["up_mbit"] = mbit(up);
                }
                if let Some(down) = fault.download {
                    f["down_mbit"] = mbit(down);
                }
            }
            f
        })
        .collect();
    let wait_for: Vec<Value> = nodes::run_ends_when(scenario)
        .into_iter()
        .map(|(k, m)| json!([k, m.event_name()]))
        .collect();
    Ok(json!({
        "binary": exe,
        "port": PORT,
        "hosts": host_plans,
        "wait_listening": order.clone(),
        "order": order,
        "faults": faults,
        "wait_for": wait_for,
        "deadline_s": scenario.limits.max_time.0.as_secs_f64(),
        "queue": launch.args.link_queue.unwrap_or_default().name(),
    }))
}

/// Every host a Mininet host on one LinuxBridge switch, run by the driver.
pub struct Mininet;

impl RealBackend for Mininet {
    const NAME: &'static str = "mininet";

    /// Every fault kind runs on Mininet; this machine needs root and Mininet.
    fn check(&self, _scenario: &Scenario, _origin: &str) -> Result<()> {
        check_environment()
    }

    /// `10.0.0.k:7000` for host k (Mininet's `hk`).
    fn addresses(&self, hosts: &[Host]) -> Result<Vec<SocketAddr>> {
        (0..hosts.len())
            .map(|k| Ok(format!("{}:{PORT}", ip(k)).parse()?))
            .collect()
    }

    fn describe(&self, hosts: usize) -> String {
        format!("{hosts} hosts on one LinuxBridge switch")
    }

    fn launch_and_wait(&mut self, launch: &Launch) -> Result<Ran> {
        let work = &launch.prep.work;
        let plan_path = work.join("plan.json");
        std::fs::write(&plan_path, serde_json::to_string_pretty(&plan(launch)?)?)
            .with_context(|| format!("cannot write {}", plan_path.display()))?;
        let driver = work.join("peerlab_mininet.py");
        std::fs::write(&driver, DRIVER).with_context(|| format!("cannot write {}", driver.display()))?;
        let log_path = work.join("driver.log");
        let run_started = Instant::now();
        let result = drive(&driver, &plan_path, &log_path, work)?;
        let wall = run_started.elapsed();
        let outcome = match result.outcome.as_str() {
            "complete" => Outcome::Complete,
            "deadline" => Outcome::TimeLimit,
            "interrupted" => bail!(
                "interrupted; Mininet was torn down; work directory {}",
                work.display()
            ),
            _ => bail!(
                "the Mininet driver failed: {}; work directory {}; its log ends:\n{}",
                result.error.unwrap_or_default(),
                work.display(),
                tail(&log_path)
            ),
        };
        let applied = result
            .applied
            .iter()
            .filter(|name| {
                serde_json::from_value::<FaultKind>(Value::String(name.to_string()))
                    .is_ok_and(real::counts_as_fault)
            })
            .count() as u64;
        let records = launch.read_all_events()?;
        // The driver stops at the deadline (max_time) unless every
        // downloader completed; a complete run has nobody left waiting at
        // its end.
        let end = records
            .iter()
            .map(|r| Duration::from_nanos(r.t_ns))
            .max()
            .unwrap_or_default()
            .max(if outcome == Outcome::Complete {
                Duration::ZERO
            } else {
                launch.scenario.limits.max_time.0
            });
        Ok(Ran {
            outcome,
            records,
            applied,
            wall,
            end,
            stats: Map::new(),
            summary: vec![
                format!(
                    "mininet: {} hosts, {applied} faults applied, wall {} (network setup and teardown included)",
                    launch.hosts.len(),
                    human::secs(wall.as_secs_f64())
                ),
                "note: no netem on this kernel: link rates are shaped (htb), latencies are not emulated"
                    .into(),
            ],
        })
    }
}

/// Runs the driver on the plan until it ends (passing Ctrl-C on as
/// SIGTERM: the driver stops the nodes and tears the network down), and
/// reads its result.
fn drive(driver: &Path, plan: &Path, log_path: &Path, work: &Path) -> Result<DriverResult> {
    let log =
        std::fs::File::create(log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let interrupted = real::interrupt_flag();
    let mut child = Command::new(PYTHON)
        .arg(driver)
        .arg(plan)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {PYTHON} {}", driver.display()))?;
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if interrupted.load(Ordering::Relaxed) && !signalled {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let result_path = work.join("RESULT.json");
    std::fs::read_to_string(&result_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| {
            format!(
                "the Mininet driver ended ({status}) without a result; see {}:\n{}",
                log_path.display(),
                tail(log_path)
            )
        })
}

/// The last lines of a log.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}
