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

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use peerlab_scenarios::faults::FaultKind;
use peerlab_scenarios::units::Rate;
use peerlab_scenarios::{Outcome, Scenario, nodes};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::orchestrate::{self, EventsFile};
use crate::run::RunArgs;
use crate::{human, loopback, run, scenario_arg};

/// The system Python, which has Mininet (not pyenv's).
const PYTHON: &str = "/usr/bin/python3";

/// The driver, written to the work directory of every run.
const DRIVER: &str = include_str!("../scenarios/mininet/peerlab_mininet.py");

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

/// The driver's plan for `scenario`.
fn plan(
    args: &RunArgs,
    scenario: &Scenario,
    prep: &orchestrate::Prepared,
    addresses: &Path,
) -> Result<Value> {
    let hosts = scenario.hosts();
    let exe = std::env::current_exe().context("cannot find the peerlab executable")?;
    let host_plans: Vec<Value> = hosts
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let data = prep.work.join("hosts").join(&h.name);
            let mut node_args: Vec<String> = [
                "--scenario",
                &prep.scenario.display().to_string(),
                "--addresses",
                &addresses.display().to_string(),
                "--metainfo",
                &prep.metainfo.display().to_string(),
                "--host",
                &h.name,
                "--data",
                &data.display().to_string(),
                "--exit-with-parent",
                "--quiet",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if k == 0 {
                node_args.extend(["--file".into(), prep.source.display().to_string()]);
                if let Some(gap) = args.pace_server {
                    node_args.extend(["--pace".into(), format!("{} ns", gap.0.as_nanos())]);
                }
            }
            node_args.extend((0..args.verbose.max(1)).map(|_| "-v".to_string()));
            json!({
                "name": h.name,
                "mn": format!("h{}", k + 1),
                "ip": ip(k),
                "up_mbit": mbit(h.upload),
                "down_mbit": mbit(h.download),
                "data": data,
                "args": node_args,
            })
        })
        .collect();
    let order = nodes::start_order(scenario);
    let faults: Vec<Value> = orchestrate::schedule(scenario)
        .into_iter()
        .map(|(at, kind, host, k)| {
            let mut f = json!({"at_s": at.as_secs_f64(), "kind": kind.name(), "host": host});
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
        "queue": args.link_queue.unwrap_or_default().name(),
    }))
}

/// Runs `peerlab run SCENARIO --on mininet`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let (scenario, _origin) = scenario_arg::load(&args.scenario, &args.set)?;
    if args.trace.is_some() {
        bail!("--trace records the simulator's events; it is for --on sim only");
    }
    check_environment()?;
    let started = Instant::now();
    let prep = orchestrate::prepare(args, &scenario, "mininet")?;
    let work = prep.work.clone();
    let hosts = scenario.hosts();
    let addrs: Vec<_> = (0..hosts.len())
        .map(|k| format!("{}:{PORT}", ip(k)).parse())
        .collect::<Result<_, _>>()?;
    let addresses = work.join("addresses.txt");
    orchestrate::write_addresses(&addresses, &hosts, &addrs)?;
    let plan_path = work.join("plan.json");
    std::fs::write(
        &plan_path,
        serde_json::to_string_pretty(&plan(args, &scenario, &prep, &addresses)?)?,
    )
    .with_context(|| format!("cannot write {}", plan_path.display()))?;
    let driver = work.join("peerlab_mininet.py");
    std::fs::write(&driver, DRIVER).with_context(|| format!("cannot write {}", driver.display()))?;
    if !args.quiet {
        println!(
            "mininet: {} hosts on one LinuxBridge switch, work directory {} (prepared in {})",
            hosts.len(),
            work.display(),
            human::secs(started.elapsed().as_secs_f64())
        );
    }

    let log_path = work.join("driver.log");
    let log =
        std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let interrupted = loopback::interrupt_flag();
    let run_started = Instant::now();
    let mut child = Command::new(PYTHON)
        .arg(&driver)
        .arg(&plan_path)
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
            // The driver stops the nodes and tears the network down.
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = run_started.elapsed();
    let result_path = work.join("RESULT.json");
    let result: DriverResult = std::fs::read_to_string(&result_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .with_context(|| {
            format!(
                "the Mininet driver ended ({status}) without a result; see {}:\n{}",
                log_path.display(),
                tail(&log_path)
            )
        })?;
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
                .is_ok_and(orchestrate::counts_as_fault)
        })
        .count() as u64;

    let dirs: Vec<PathBuf> = hosts.iter().map(|h| work.join("hosts").join(&h.name)).collect();
    let mut records = Vec::new();
    for dir in &dirs {
        records.extend(EventsFile::in_dir(dir).read_new()?);
    }
    // The driver stops at the deadline (max_time) unless every downloader
    // completed; a complete run has nobody left waiting at its end.
    let end = records
        .iter()
        .map(|r| Duration::from_nanos(r.t_ns))
        .max()
        .unwrap_or_default()
        .max(if outcome == Outcome::Complete {
            Duration::ZERO
        } else {
            scenario.limits.max_time.0
        });
    let report = orchestrate::build_report(&scenario, records, applied, outcome.clone(), "mininet", end);
    let report_path = orchestrate::report_path(args, &prep.name);
    run::write_report(&report_path, &report)?;
    let identical = if outcome == Outcome::Complete {
        orchestrate::compare_files(&hosts, &prep.source, &dirs)?
    } else {
        Vec::new()
    };
    let stats = json!({"wall_s": wall.as_secs_f64(), "identical": identical});
    std::fs::write(
        work.join("mininet-stats.json"),
        serde_json::to_string_pretty(&stats)?,
    )
    .with_context(|| format!("cannot write the stats in {}", work.display()))?;
    if !args.quiet {
        run::print_table(&report, args.all, wall);
        println!(
            "mininet: {} hosts, {applied} faults applied, wall {} (network setup and teardown included)",
            hosts.len(),
            human::secs(wall.as_secs_f64())
        );
        println!("note: no netem on this kernel: link rates are shaped (htb), latencies are not emulated");
    }
    Ok(orchestrate::conclude(
        args,
        &report_path,
        &outcome,
        &identical,
        &work,
    ))
}

/// The last lines of a log.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}
