//! `peerlab run SCENARIO` on the simulator: run it with a progress bar,
//! record the trace if asked, write the report, print the table.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use peerlab_scenarios::Outcome;
use peerlab_sim::Simulation;

use super::RunArgs;
use super::output::{print_table, progress_bar, write_report};
use crate::{human, scenario_arg};

/// Runs `peerlab run SCENARIO --on sim`.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let (scenario, origin) = scenario_arg::load(&args.scenario, &args.set)?;
    let mut sim = Simulation::new(&scenario, &origin)?;
    let trace = match &args.trace {
        Some(path) => Some(crate::trace_file::TraceWriter::start(path, &scenario, &mut sim)?),
        None => None,
    };
    let bar = progress_bar(args.quiet);
    let started = Instant::now();
    let report = sim.run(|p| {
        if let Some(bar) = &bar {
            bar.set_length(p.bytes_wanted.max(1));
            bar.set_position(p.bytes_down);
            bar.set_message(format!(
                "t={} · {}/{} done · {} events",
                human::secs(p.now.as_secs_f64()),
                p.completed,
                p.downloaders,
                human::count(p.events)
            ));
        }
    });
    let wall = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let name = scenario.name.clone().unwrap_or_else(|| "scenario".into());
    let path = super::output::report_path(args, &name);
    write_report(&path, &report)?;
    if let Some(trace) = trace {
        trace.finish(&report)?;
    }
    if !args.quiet {
        print_table(&report, args.all, wall);
    }
    println!("report: {}", path.display());
    if let Some(trace) = &args.trace {
        println!(
            "trace:  {} (replay with: peerlab replay {})",
            trace.display(),
            trace.display()
        );
    }
    Ok(match report.outcome {
        Outcome::Complete => ExitCode::SUCCESS,
        _ => ExitCode::from(3),
    })
}
