//! The pieces model (`simulator.model = pieces`, docs/simulator.md): a swarm
//! simulated one piece at a time. It must keep the promises of the message
//! model — everyone completes, nobody beats the bounds, bytes add up, runs
//! are reproducible — stay close to the message model's distribution time,
//! and refuse by name what it does not model.

mod common;

use common::{scenario, simulate};
use peerlab_scenarios::bounds::piece_level_optimum;
use peerlab_scenarios::{Outcome, Report, Role, Scenario, library};
use proptest::prelude::*;

fn swarm(sets: &[&str]) -> Scenario {
    let mut all: Vec<String> = vec!["simulator.model=pieces".into()];
    all.extend(sets.iter().map(|s| s.to_string()));
    scenario(library::get("swarm-homogeneous").unwrap(), &all)
}

/// Everyone completes with every piece once, no run beats the P2P bound,
/// and every byte received was sent by someone.
fn check_report(r: &Report, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&r.outcome, &Outcome::Complete, "{} did not complete", what);
    let d = r.distribution_time_s.unwrap();
    prop_assert!(
        d >= r.bounds.p2p_s * (1.0 - 1e-9),
        "{what}: {d} s beats the P2P bound {} s",
        r.bounds.p2p_s
    );
    let pieces = r.file_bytes.div_ceil(r.piece_bytes) as u32;
    for h in r.hosts.iter().filter(|h| h.role == Role::Peer) {
        prop_assert!(h.completed_s.is_some(), "{what}: {} never completed", h.name);
        prop_assert_eq!(h.pieces_verified, pieces, "{}: {} verified", what, h.name);
        prop_assert!(
            h.bytes_down >= r.file_bytes,
            "{what}: {} received {} of {} bytes",
            h.name,
            h.bytes_down,
            r.file_bytes
        );
    }
    let down: u64 = r.hosts.iter().map(|h| h.bytes_down).sum();
    let up: u64 = r.hosts.iter().map(|h| h.bytes_up).sum();
    prop_assert_eq!(down, up, "{}: bytes received and sent differ", what);
    Ok(())
}

fn random_swarm(server_mbit: u32, uploads: &[u32], size_kib: u64, seed: u64) -> String {
    let hosts: Vec<String> = uploads
        .iter()
        .map(|up| format!(r#"{{ "upload": "{up} Mbit/s" }}"#))
        .collect();
    format!(
        r#"{{
            "protocol": "swarm",
            "seed": {seed},
            "file": {{ "size": "{size_kib} KiB", "piece_size": "64 KiB" }},
            "server": {{ "upload": "{server_mbit} Mbit/s" }},
            "peers": {{ "download": "unlimited", "hosts": [{}] }},
            "simulator": {{ "model": "pieces" }},
            "limits": {{ "max_time": "10 h" }}
        }}"#,
        hosts.join(",")
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The bounds of the README's "The theory it checks" for the pieces model:
    /// random N, file size, uplinks and seed; with equal uplinks also the
    /// piece-level optimum.
    #[test]
    fn the_pieces_model_never_beats_its_bounds(
        server in 1u32..100,
        uploads in prop::collection::vec(1u32..50, 1..40),
        size in 64u64..4096,
        seed in any::<u64>(),
        equal in any::<bool>(),
    ) {
        let uploads: Vec<u32> = if equal { vec![server; uploads.len()] } else { uploads };
        let json = random_swarm(server, &uploads, size, seed);
        let r = simulate(&scenario(&json, &[]));
        check_report(&r, &json)?;
        if equal {
            let pieces = size.div_ceil(64) as u32;
            let u = f64::from(server) * 1e6 * r.goodput_factor;
            let optimum = piece_level_optimum(size as f64 * 8192.0, uploads.len() as u32, u, pieces);
            let d = r.distribution_time_s.unwrap();
            prop_assert!(d >= optimum * (1.0 - 1e-9), "{d} s beats the piece-level optimum {optimum} s: {json}");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let a = simulate(&swarm(&["peers.count=40", "file.size=8 MiB"]));
    let b = simulate(&swarm(&["peers.count=40", "file.size=8 MiB"]));
    let c = simulate(&swarm(&["peers.count=40", "file.size=8 MiB", "seed=2"]));
    assert_eq!(a, b, "two runs of one scenario differ");
    assert_ne!(a.trace_hash, c.trace_hash, "the seed changes nothing");
    check_report(&a, "seed 1").unwrap();
}

/// The point of the model: a small fraction of the message model's events.
#[test]
fn the_pieces_model_takes_a_small_fraction_of_the_events() {
    let sets = ["peers.count=32", "file.size=64 MiB"];
    let pieces = simulate(&swarm(&sets));
    let messages = simulate(&swarm(&[&sets[..], &["simulator.model=messages"]].concat()));
    let (pe, me) = (pieces.sim.unwrap().events, messages.sim.unwrap().events);
    assert!(
        pe * 20 <= me,
        "the pieces model took {pe} events, the message model {me}"
    );
}

/// How closely the models agree over the comparison grid at N = 128 with
/// the 64 MiB reference file, on distribution time, p50 and p90 of the
/// peers' completion times, each the mean over seeds 1-3: within 3% on
/// average over the knob sets, and within 5% for every one (here the
/// pieces model is 2.0% optimistic to 1.8% pessimistic; super-seeding,
/// where the server's uplink sets the pace, agrees within 0.5%); a knob
/// set it does not model would have to be refused by name.
/// docs/simulator.md has the grid at N = 32 and 128.
///
/// Churn at completion is judged on seeds 1-10 and within 10%: in both
/// models a run ends at 34-39 s or at 40-46 s, by whether the server's last
/// new piece reaches peers that still lack others before the first ones
/// complete (a peer completing on that piece leaves without passing it
/// on, so the server sends it once per peer). The message model lands in
/// the long mode more often (9 of 10 seeds end after 40 s, against 6 of
/// 10): the pieces model is 5.7% faster on the mean of seeds 1-10, and
/// single seeds differ by -20% to +12%.
#[test]
fn the_two_models_agree_across_the_knob_grid() {
    const FIGURES: [&str; 3] = ["distribution time", "p50", "p90"];
    use peerlab_sim::agreement::{KNOBS, Point, difference};
    // The knob set judged on more seeds, and its tolerance (above).
    let at_completion = KNOBS
        .iter()
        .position(|(name, _)| name.contains("at completion"))
        .expect("the grid has churn at completion");
    let seeds = |knobs: usize| if knobs == at_completion { 10 } else { 3 };
    let points: Vec<Point> = (0..KNOBS.len())
        .flat_map(|knobs| {
            (1..=seeds(knobs)).map(move |seed| Point {
                knobs,
                n: 128,
                mib: 64,
                seed,
            })
        })
        .collect();
    let queue = std::sync::Mutex::new(points.into_iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while let Some(p) = queue.lock().unwrap().next() {
                    let out = p.measure();
                    results.lock().unwrap().push((p, out));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut failures = Vec::new();
    let mut means: Vec<[f64; 3]> = Vec::new();
    for (k, (name, sets)) in KNOBS.iter().enumerate() {
        let mine: Vec<_> = results
            .iter()
            .filter(|(p, _)| p.knobs == k)
            .map(|(_, o)| o)
            .collect();
        if let Err(field) = mine[0] {
            assert!(
                sets.iter().any(|s| s.starts_with(field.as_str())),
                "{name}: refused for `{field}`, not for the knob it sets"
            );
            continue;
        }
        let diffs: Vec<[f64; 3]> = mine
            .iter()
            .map(|o| {
                let (m, p) = o.as_ref().expect("a knob set is refused for every seed or none");
                difference(m, p)
            })
            .collect();
        let mean = [0, 1, 2].map(|i| diffs.iter().map(|d| d[i]).sum::<f64>() / diffs.len() as f64);
        let tolerance = if k == at_completion { 0.10 } else { 0.05 };
        for (i, what) in FIGURES.iter().enumerate() {
            if mean[i].abs() > tolerance {
                failures.push(format!("{name}: {what} differs by {:+.1}%", 100.0 * mean[i]));
            }
        }
        means.push(mean);
    }
    for (i, what) in FIGURES.iter().enumerate() {
        let overall = means.iter().map(|m| m[i]).sum::<f64>() / means.len() as f64;
        if overall.abs() > 0.03 {
            failures.push(format!(
                "all knob sets: {what} differs by {:+.1}% on average",
                100.0 * overall
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the models disagree:\n{}",
        failures.join("\n")
    );
}

/// Churn in the pieces model (`swarm-churn`: mixed uplinks, peers leaving
/// at completion or after seeding a while): the run completes, every
/// downloader completes exactly once and leaves at most once, not before
/// it completed, and a peer that left uploads nothing after.
#[test]
fn peers_leave_in_the_pieces_model_and_upload_nothing_after() {
    use peerlab_core::{Event, NodeId, Time};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    for leave in ["at-completion", "after 3 s"] {
        let s = scenario(
            library::get("swarm-churn").unwrap(),
            &[format!("swarm.leave={leave}"), "simulator.model=pieces".into()],
        );
        type Seen = (BTreeMap<NodeId, Vec<Time>>, BTreeMap<NodeId, Time>, Vec<String>);
        let seen: Rc<RefCell<Seen>> = Rc::default();
        let log = Rc::clone(&seen);
        let sim = peerlab_sim::Simulation::new(&s, "churn")
            .unwrap()
            .observe(move |at, node, event| {
                let (completed, left, wrong) = &mut *log.borrow_mut();
                match event {
                    Event::DownloadComplete => completed.entry(node).or_default().push(at),
                    Event::Left => {
                        if left.insert(node, at).is_some() {
                            wrong.push(format!("{node:?} left twice"));
                        }
                        if !completed.contains_key(&node) {
                            wrong.push(format!("{node:?} left before it completed"));
                        }
                    }
                    Event::BlockReceived { from, block } => {
                        if let Some(&gone) = left.get(from)
                            && at > gone
                        {
                            wrong.push(format!(
                                "{node:?} received {block:?} from {from:?} at {at:?}, gone at {gone:?}"
                            ));
                        }
                    }
                    _ => {}
                }
            });
        let r = sim.run(|_| {});
        check_report(&r, &format!("swarm-churn, leave {leave}")).unwrap();
        let (completed, left, wrong) = &*seen.borrow();
        assert!(wrong.is_empty(), "{leave}: {wrong:?}");
        assert_eq!(completed.len() as u32, s.downloaders(), "{leave}");
        assert!(
            completed.values().all(|t| t.len() == 1),
            "{leave}: a peer completed twice"
        );
        assert!(!left.is_empty(), "{leave}: nobody left");
    }
}

/// Super-seeding (`swarm-super-seed` at 32 peers and 16 MiB) in both
/// models: the run completes, and no piece leaves the server twice before
/// every piece has left it once — until every piece has been received
/// from the server whole, the bytes of each piece received from it (kept
/// or discarded) stay within the piece. The server's whole upload
/// (super-seeding, then seeding normally) is close in the two models:
/// 20,697,821 bytes in the pieces model, 20,840,448 in the message model
/// (-0.7%; 1.23 to 1.24 x the file, the rest sent after super-seeding
/// ended).
#[test]
fn a_super_seed_sends_no_piece_twice_before_every_piece_left_once() {
    use peerlab_core::{Event, NodeId};
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut server_up = Vec::new();
    for model in ["pieces", "messages"] {
        let s = scenario(
            library::get("swarm-super-seed").unwrap(),
            &[
                "peers.count=32".into(),
                "file.size=16 MiB".into(),
                format!("simulator.model={model}"),
            ],
        );
        let layout = s.layout();
        // Bytes of each piece received from the server, how many pieces
        // it has sent whole, and what went wrong.
        type Seen = (Vec<u64>, u32, Vec<String>);
        let seen: Rc<RefCell<Seen>> =
            Rc::new(RefCell::new((vec![0; layout.pieces() as usize], 0, Vec::new())));
        let log = Rc::clone(&seen);
        let sim = peerlab_sim::Simulation::new(&s, "super-seed")
            .unwrap()
            .observe(move |at, node, event| {
                let (Event::BlockReceived { from, block } | Event::BlockDiscarded { from, block }) = event else {
                    return;
                };
                let (bytes, whole, wrong) = &mut *log.borrow_mut();
                if *from != NodeId(0) || *whole == layout.pieces() {
                    return;
                }
                let size = u64::from(layout.piece_size(block.piece));
                let sent = &mut bytes[block.piece as usize];
                let before = *sent;
                *sent += u64::from(block.len);
                if *sent > size {
                    wrong.push(format!(
                        "{model}: at {at:?} {node:?} received {block:?} from the server, which had sent {before} bytes of it"
                    ));
                } else if *sent == size {
                    *whole += 1;
                }
            });
        let r = sim.run(|_| {});
        check_report(&r, &format!("swarm-super-seed in the {model} model")).unwrap();
        let (_, whole, wrong) = &*seen.borrow();
        assert!(wrong.is_empty(), "{wrong:?}");
        assert_eq!(
            *whole,
            layout.pieces(),
            "{model}: the server sent every piece once"
        );
        server_up.push(r.server_bytes_up);
    }
    let (pieces, messages) = (server_up[0] as f64, server_up[1] as f64);
    assert!(
        (pieces / messages - 1.0).abs() <= 0.03,
        "the server uploaded {pieces} bytes in the pieces model, {messages} in the message model"
    );
}

#[test]
fn a_heterogeneous_swarm_completes_in_the_pieces_model() {
    let s = scenario(
        library::get("swarm-churn").unwrap(),
        &["swarm.leave=stay".into(), "simulator.model=pieces".into()],
    );
    let r = simulate(&s);
    check_report(&r, "swarm-churn, staying").unwrap();
}

#[test]
fn what_the_pieces_model_does_not_simulate_is_refused_by_name() {
    let lib = library::get("swarm-homogeneous").unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["swarm.pipeline=8"], "swarm.pipeline"),
        (&["network.send_window=0 B"], "network.send_window"),
        (&["swarm.serial_uploads=true"], "swarm.serial_uploads"),
        (&["peers.download=10 Mbit/s"], "peers (p1)"),
        (&["network.latency=5 ms"], "network.latency"),
        (&["server.latency=5 ms"], "server.latency"),
        (&["swarm.max_peers=300"], "swarm.max_peers"),
        (&["protocol=client-server"], "simulator.model"),
    ];
    for (sets, field) in cases {
        let mut all: Vec<String> = vec!["simulator.model=pieces".into()];
        all.extend(sets.iter().map(|s| s.to_string()));
        let err = peerlab_scenarios::Scenario::from_json(lib, "lib", &all).expect_err(field);
        assert_eq!(err.field, field, "{sets:?}: {err}");
        assert!(err.message.contains("pieces model"), "{sets:?}: {err}");
    }
    let faults = r#"{ "protocol": "swarm", "file": { "size": "1 MiB" }, "server": { "upload": "1 Mbit/s" },
        "peers": { "count": 2, "upload": "1 Mbit/s", "download": "unlimited" },
        "simulator": { "model": "pieces" },
        "faults": [ { "kind": "crash", "host": "p1", "at": "1 s" } ] }"#;
    let err = peerlab_scenarios::Scenario::from_json(faults, "inline", &[]).expect_err("faults");
    assert_eq!(err.field, "faults", "{err}");
    let typo = peerlab_scenarios::Scenario::from_json(lib, "lib", &["simulator.model=blocks".into()])
        .expect_err("an unknown model");
    assert_eq!(typo.field, "simulator.model", "{typo}");
}

/// The scenario check holds for scenarios built or changed in code too:
/// the simulator refuses what the pieces model does not simulate by name
/// instead of running it with the knob ignored.
#[test]
fn a_scenario_changed_in_code_is_checked_before_it_runs() {
    let mut s = swarm(&["peers.count=4", "file.size=1 MiB"]);
    s.swarm.pipeline = 16;
    let err = peerlab_sim::run(&s, "changed in code").expect_err("pipeline 16 in the pieces model");
    assert_eq!(err.field, "swarm.pipeline", "{err}");
    s.swarm.pipeline = 0;
    s.simulator.model = peerlab_scenarios::SimModel::Messages;
    let err = peerlab_sim::run(&s, "changed in code").expect_err("pipeline 0");
    assert_eq!(err.field, "swarm.pipeline", "{err}");
}

/// Periodic announces are simulated: peers that the tracker handed too few
/// neighbours (numwant 1) dial more at every `announce_interval`, so a
/// sweep over it is not a flat line, and both models move the same way
/// (the mean of seeds 1-3; single seeds scatter by more than the effect in
/// the message model, where starving peers also announce early).
#[test]
fn the_announce_interval_matters_in_both_models() {
    let mean_time = |model: &str, interval: &str| {
        let runs = (1..=3).map(|seed| {
            let seed = format!("seed={seed}");
            let sets = [
                "peers.count=64",
                "file.size=16 MiB",
                "swarm.numwant=1",
                interval,
                model,
                &seed,
            ];
            simulate(&swarm(&sets)).distribution_time_s.unwrap()
        });
        runs.sum::<f64>() / 3.0
    };
    for model in ["simulator.model=pieces", "simulator.model=messages"] {
        let (often, rarely) = (
            mean_time(model, "swarm.announce_interval=1 s"),
            mean_time(model, "swarm.announce_interval=600 s"),
        );
        assert!(
            often < rarely,
            "{model}: announcing every second took {often} s, every 10 minutes {rarely} s"
        );
    }
}
