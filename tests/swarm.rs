//! The BitTorrent-style swarm through the simulator: everyone completes,
//! nobody beats the P2P bound, runs are reproducible, the server is
//! relieved, super-seeding sends no piece twice too early, churn is
//! survived, serial uploads send whole pieces.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use peerlab_core::{Event, NodeId, Time};
use peerlab_scenarios::{Outcome, Report, Scenario, library};
use peerlab_sim::Simulation;

const SERVER: NodeId = NodeId(0);

fn scenario(sets: &[&str]) -> Scenario {
    library_scenario("swarm-homogeneous", sets)
}

fn library_scenario(name: &str, sets: &[&str]) -> Scenario {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Scenario::from_json(library::get(name).unwrap(), name, &sets).unwrap_or_else(|e| panic!("{e}"))
}

/// A small, fast variant: 4 MiB in 64 KiB pieces.
fn small(n: u32, extra: &[&str]) -> Scenario {
    let count = format!("peers.count={n}");
    let mut sets = vec![count.as_str(), "file.size=4 MiB", "file.piece_size=64 KiB"];
    sets.extend_from_slice(extra);
    scenario(&sets)
}

fn run(s: &Scenario) -> Report {
    peerlab_sim::run(s, "test").unwrap_or_else(|e| panic!("{e}"))
}

type Log = Rc<RefCell<Vec<(Time, NodeId, Event)>>>;

fn run_logged(s: &Scenario) -> (Report, Log) {
    let log: Log = Rc::default();
    let sink = log.clone();
    let sim = Simulation::new(s, "test")
        .unwrap()
        .observe(move |at, node, e| sink.borrow_mut().push((at, node, e.clone())));
    (sim.run(|_| {}), log)
}

fn assert_complete_within_bound(r: &Report, what: &str) {
    assert_eq!(
        r.outcome,
        Outcome::Complete,
        "{what}: seed {} did not complete",
        r.seed
    );
    let d = r.distribution_time_s.unwrap();
    assert!(
        d >= r.bounds.p2p_s * (1.0 - 1e-9),
        "{what}: {d} s beats the P2P bound {} s (seed {})",
        r.bounds.p2p_s,
        r.seed
    );
    for h in r.hosts.iter().filter(|h| h.role == peerlab_scenarios::Role::Peer) {
        assert!(h.completed_s.is_some(), "{what}: {} never completed", h.name);
        assert_eq!(
            h.pieces_verified, 64,
            "{what}: {} verified a piece twice or missed one",
            h.name
        );
    }
}

#[test]
fn every_peer_completes_for_1_to_32_homogeneous_peers_never_below_the_bound() {
    for n in 1..=32 {
        let r = run(&small(n, &[]));
        assert_complete_within_bound(&r, &format!("N={n}"));
    }
}

#[test]
fn a_heterogeneous_swarm_completes_within_the_bound() {
    let text = r#"{
        "name": "het", "description": "mixed links", "protocol": "swarm", "seed": 5,
        "file": { "size": "4 MiB", "piece_size": "64 KiB" },
        "server": { "upload": "10 Mbit/s" },
        "peers": { "count": 6, "upload": "5 Mbit/s", "download": "50 Mbit/s",
                   "hosts": [ { "upload": "1 Mbit/s", "download": "4 Mbit/s" },
                              { "upload": "40 Mbit/s" },
                              { "upload": "512 kbit/s", "download": "2 Mbit/s" },
                              { "upload": "20 Mbit/s", "download": "unlimited" } ] },
        "swarm": { "pipeline": 4 }
    }"#;
    for seed in 0..4 {
        let s = Scenario::from_json(text, "het", &[format!("seed={seed}")]).unwrap();
        let r = run(&s);
        assert_complete_within_bound(&r, &format!("heterogeneous seed {seed}"));
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let a = run(&small(12, &["seed=7"]));
    let b = run(&small(12, &["seed=7"]));
    let c = run(&small(12, &["seed=8"]));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a, b);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn the_server_uploads_far_less_than_n_copies_in_a_large_swarm() {
    let r = run(&small(64, &[]));
    assert_complete_within_bound(&r, "N=64");
    let f = r.file_bytes;
    assert!(
        r.server_bytes_up < 8 * f,
        "server sent {} copies of the file to 64 peers",
        r.server_bytes_up as f64 / f as f64
    );
    let c = r.counters.blocks_discarded * 16 * 1024;
    assert!(
        c < 64 * f / 10,
        "end-game duplicates are bounded: {c} bytes discarded"
    );
}

/// The tracker hands out 50 peers; with `max_peers` 16 a peer that dialled
/// them all would have no room left for peers dialling it, every peer would
/// refuse every other, and only pairs that dialled each other would trade
/// (so it was until 2026-11-21: 2.38 x the bound here). A peer dials half
/// of `max_peers` and keeps the rest for incoming: the small neighbourhood
/// costs a little, not half the swarm's speed (1.70 x the bound here,
/// against 1.58 with room for 80).
#[test]
fn fewer_neighbours_than_the_tracker_offers_still_connect_the_swarm() {
    let time = |max_peers: &str| {
        let r = run(&small(48, &[max_peers]));
        assert_complete_within_bound(&r, max_peers);
        r.distribution_time_s.unwrap()
    };
    let (narrow, wide) = (time("swarm.max_peers=16"), time("swarm.max_peers=80"));
    assert!(
        narrow < 1.15 * wide,
        "max_peers 16 took {narrow:.3} s, max_peers 80 {wide:.3} s"
    );
}

/// Per piece, the blocks the server has sent so far (BlockReceived from it).
fn server_sends(log: &Log, pieces: u32, blocks_per_piece: u32) -> (Option<usize>, Vec<(u32, u32)>) {
    let mut sent: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    let mut full = 0;
    let mut all_left_at = None;
    let mut early_duplicates = Vec::new();
    for (i, (_, _, e)) in log.borrow().iter().enumerate() {
        let (Event::BlockReceived { from, block } | Event::BlockDiscarded { from, block }) = e else {
            continue;
        };
        if *from != SERVER {
            continue;
        }
        let n = sent.entry((block.piece, block.offset)).or_default();
        *n += 1;
        if *n == 2 && all_left_at.is_none() {
            early_duplicates.push((block.piece, block.offset));
        }
        if *n == 1 {
            let piece_blocks = sent.range((block.piece, 0)..(block.piece + 1, 0)).count() as u32;
            if piece_blocks == blocks_per_piece {
                full += 1;
                if full == pieces {
                    all_left_at = Some(i);
                }
            }
        }
    }
    (all_left_at, early_duplicates)
}

#[test]
fn a_super_seed_sends_no_piece_twice_before_every_piece_has_left_once() {
    for n in [3, 16, 40] {
        let s = small(n, &["swarm.super_seed=true"]);
        let (r, log) = run_logged(&s);
        assert_complete_within_bound(&r, &format!("super-seed N={n}"));
        let (all_left, early) = server_sends(&log, 64, 4);
        assert!(all_left.is_some(), "N={n}: some piece never left the server");
        assert!(early.is_empty(), "N={n}: blocks sent twice early: {early:?}");
    }
    // Without super-seeding the server does send duplicates early (this is
    // what super-seeding is for).
    let (_, log) = run_logged(&small(40, &[]));
    assert!(!server_sends(&log, 64, 4).1.is_empty());
}

#[test]
fn churn_peers_leaving_at_completion_still_lets_everyone_complete() {
    for (n, seed) in [(8, 1), (24, 2), (48, 3)] {
        let seed = format!("seed={seed}");
        let s = small(n, &["swarm.leave=at-completion", &seed]);
        let (r, log) = run_logged(&s);
        assert_complete_within_bound(&r, &format!("churn N={n}"));
        // Peers did leave: nobody uploads after its own completion.
        let done: BTreeMap<NodeId, Time> = log
            .borrow()
            .iter()
            .filter(|(_, _, e)| *e == Event::DownloadComplete)
            .map(|(t, n, _)| (*n, *t))
            .collect();
        for (t, _, e) in log.borrow().iter() {
            if let Event::BlockReceived { from, .. } = e
                && let Some(&left) = done.get(from)
            {
                assert!(
                    *t <= left + std::time::Duration::from_millis(200),
                    "{from} uploaded after leaving"
                );
            }
        }
    }
    let s = small(16, &["swarm.leave=after 2 s"]);
    assert_complete_within_bound(&run(&s), "leave after 2 s");
}

/// A liar (`p3`, fault `corrupt`) in an end game where three neighbours
/// may send copies of one block: many spoiled pieces hold blocks from
/// honest neighbours too. Every downloader bans the liar and nobody else:
/// a spoiled piece is fetched again from others, and its good copy shows
/// whose block was bad (`core/src/swarm/blame.rs`). With three shared
/// strikes as the only rule, downloaders banned two or three neighbours in
/// each of these runs.
#[test]
fn a_liar_sharing_pieces_with_honest_neighbours_is_the_only_one_banned() {
    let liar = r#"faults=[{"kind": "corrupt", "host": "p3", "at": "0 s"}]"#;
    // The second is the fidelity matrix's row: end-game pieces with five or
    // six senders fail in quick succession, and three shared strikes must
    // not ban the liar's honest co-senders before any comparison.
    let swarms: [&[&str]; 2] = [
        &[
            "peers.count=16",
            "file.size=2 MiB",
            "file.piece_size=256 KiB",
            "swarm.endgame_copies=3",
        ],
        &["peers.count=8", "file.size=20 MiB", "peers.download=20 Mbit/s"],
    ];
    let mut suspensions = 0;
    for (swarm, seed) in swarms
        .iter()
        .flat_map(|w| ["seed=1", "seed=2", "seed=3"].map(|s| (w, s)))
    {
        let s = scenario(&[swarm, &[seed, liar][..]].concat());
        let (r, log) = run_logged(&s);
        assert_eq!(r.outcome, Outcome::Complete, "{seed}");
        assert!(r.counters.pieces_corrupt > 0, "{seed}: the liar spoiled nothing");
        let mut suspended = 0;
        for (_, node, e) in log.borrow().iter() {
            match e {
                Event::PeerBanned { peer } => {
                    assert_eq!(*peer, NodeId(3), "{seed}: {node} banned an honest neighbour");
                }
                Event::PeerSuspended { .. } => suspended += 1,
                _ => {}
            }
        }
        assert_eq!(
            r.counters.peers_suspended, suspended,
            "{seed}: suspensions reported"
        );
        suspensions += suspended;
        for h in r.hosts.iter().filter(|h| h.name != "p3") {
            assert!(
                h.peers_banned <= 1,
                "{seed}: {} banned {}",
                h.name,
                h.peers_banned
            );
        }
    }
    // Shared failures suspended neighbours (the 8-peer row, seed 2: p5
    // suspended p3 and its honest co-sender p6) where they once banned.
    assert!(suspensions > 0, "no run suspended anyone");
}

#[test]
fn swarm_options_are_checked_by_field() {
    let text = library::get("swarm-homogeneous").unwrap();
    let e = Scenario::from_json(text, "t", &["swarm.unchoke_slots=0".into()]).unwrap_err();
    assert_eq!(e.field, "swarm.unchoke_slots");
    let e = Scenario::from_json(text, "t", &["swarm.leave=sometimes".into()]).unwrap_err();
    assert_eq!(e.field, "swarm.leave");
    let e = Scenario::from_json(text, "t", &["swarm.chokes=3".into()]).unwrap_err();
    assert_eq!(e.field, "swarm.chokes");
    let s = Scenario::from_json(text, "t", &["peers.count=5".into()]).unwrap();
    let hosts = s.hosts();
    assert_eq!(hosts.len(), 7, "server, 5 peers, tracker");
    assert_eq!(hosts[6].role, peerlab_scenarios::Role::Tracker);
}

/// Blocks the server sent, in arrival order, as (receiver, piece); and the
/// mean length of the runs of one (receiver, piece).
fn server_runs(log: &Log) -> (usize, f64) {
    let sends: Vec<(NodeId, u32)> = log
        .borrow()
        .iter()
        .filter_map(|(_, node, e)| match e {
            Event::BlockReceived { from, block } | Event::BlockDiscarded { from, block }
                if *from == SERVER =>
            {
                Some((*node, block.piece))
            }
            _ => None,
        })
        .collect();
    let runs = 1 + sends.windows(2).filter(|w| w[0] != w[1]).count();
    (sends.len(), sends.len() as f64 / runs as f64)
}

#[test]
fn serial_uploads_send_one_piece_at_a_time_and_spare_the_server() {
    for n in [1, 2, 5, 16, 32] {
        let r = run(&small(n, &["swarm.serial_uploads=true"]));
        assert_complete_within_bound(&r, &format!("serial N={n}"));
    }
    // 4 MiB in 16 pieces of 16 blocks.
    let big = |extra: &[&str]| {
        let mut sets = vec!["peers.count=16", "file.size=4 MiB", "file.piece_size=256 KiB"];
        sets.extend_from_slice(extra);
        scenario(&sets)
    };
    // The scheduler's order shows on the wire only when the transport holds
    // nothing back: with a send window (the default) a real uploader's TCP
    // has blocks for several neighbours in flight at once and they
    // interleave (`a_serial_uploader_keeps_a_send_window_of_blocks_in_flight`).
    let (serial, serial_log) = run_logged(&big(&["swarm.serial_uploads=true", "network.send_window=0"]));
    let (parallel, parallel_log) = run_logged(&big(&["network.send_window=0"]));
    let (_, serial_run) = server_runs(&serial_log);
    let (_, parallel_run) = server_runs(&parallel_log);
    // Serial sends a piece's 16 blocks back to back (a run breaks where the
    // next piece starts while the last block of one is still going out);
    // parallel interleaves its neighbours block by block.
    assert!(serial_run > 6.0, "serial: runs of {serial_run:.2} blocks");
    assert!(parallel_run < 2.0, "parallel: runs of {parallel_run:.2} blocks");
    assert!(
        serial.server_bytes_up < parallel.server_bytes_up,
        "the seed sends fewer duplicates one piece at a time: {} vs {} bytes",
        serial.server_bytes_up,
        parallel.server_bytes_up
    );
}

/// The send window (`network.send_window`, docs/simulator.md): a serial
/// uploader hands over its next block once the blocks before it are in its
/// TCP, not once their last byte has left, so a real uploader keeps blocks
/// to several neighbours on the wire and a receiver's finite downlink does
/// not leave the uplink idle between blocks. Mininet ran the tuned profile
/// at N = 8 in 10.3 s with 20 Mbit/s downlinks and 9.9 s with unlimited
/// ones; without the window the simulator takes 26.9 s and 9.2 s.
#[test]
fn a_serial_uploader_keeps_a_send_window_of_blocks_in_flight() {
    let tuned = |extra: &[&str]| {
        let mut sets = vec![
            "peers.count=8",
            "file.size=20 MiB",
            "swarm.super_seed=true",
            "swarm.serial_uploads=true",
            "swarm.rechoke_interval=500 ms",
            "swarm.unchoke_slots=6",
        ];
        sets.extend_from_slice(extra);
        scenario(&sets)
    };
    let finite = ["peers.download=20 Mbit/s"];
    let runs = [
        tuned(&finite),
        tuned(&[]),
        tuned(&[finite[0], "network.send_window=0"]),
    ];
    let times: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs.iter().map(|s| scope.spawn(move || run(s))).collect();
        handles
            .into_iter()
            .map(|h| {
                let r = h.join().unwrap();
                assert_eq!(r.outcome, Outcome::Complete);
                r.distribution_time_s.unwrap()
            })
            .collect()
    });
    let (windowed, unlimited, none) = (times[0], times[1], times[2]);
    assert!(
        windowed < 1.15 * unlimited,
        "20 Mbit/s downlinks: {windowed:.3} s, unlimited: {unlimited:.3} s (Mininet: 1.04x)"
    );
    assert!(
        none > 2.0 * unlimited,
        "without a send window: {none:.3} s, unlimited downlinks {unlimited:.3} s; the window no longer matters"
    );
}

/// The heterogeneous swarm of docs/swarm.md (`swarm-churn`, peers staying)
/// comes within 1.11 x the P2P bound with BitTorrent's defaults, and the
/// tuned profile (`swarm-tuned`: super-seeding, serial
/// uploads, a 500 ms rechoke, 6 unchoke slots, 160 neighbours) beats that
/// with a margin. Its short rechoke still helps a homogeneous swarm of 64
/// on average (with BitTorrent's 10 s one, tit-for-tat takes longer to
/// settle), if little: 0.0024, 0.0035, 0.0049 and 0.0044 of the bound with
/// seeds 1-4, since an uploader unchokes another neighbour on top of one
/// that leaves its slot idle and a starting seed's slots go at random; in
/// the heterogeneous swarm it no longer does since stalled requests move to
/// idle neighbours (docs/swarm.md). Four seeds and their mean, because the
/// gain at N = 64 is of the order of the spread between seeds. The ratios
/// are deterministic (virtual time).
///
/// All of that holds with `network.send_window=0`, a transport that holds
/// nothing back, which is what the tuned profile was tuned for. With the
/// default send window (what a real TCP does, docs/simulator.md) its serial
/// uploads interleave on the wire and the profile loses its edge: 1.155 x
/// the bound on the heterogeneous swarm against the defaults' 1.104, and at
/// N = 64 the 500 ms rechoke costs time instead of gaining.
/// This test pins both, the second loosely (at most 1.20), until the
/// profile is tuned again for a buffering transport.
///
/// The defaults miss the heterogeneous target of 1.10 by 0.4% since the
/// simulator charges acknowledgements to the receivers' uplinks
/// (`network.ack_load`, 2.3% of what a peer receives; 1.076 without): the
/// bound counts no acknowledgements, a real network pays them. Pinned at
/// 1.11 so that a regression shows; likewise the tuned profile without a
/// send window, 1.0506 (1.028 without acknowledgements), at 1.055.
#[test]
fn the_heterogeneous_swarm_meets_its_target_and_the_tuned_profile_beats_it() {
    let defaults = library_scenario("swarm-churn", &["swarm.leave=stay"]);
    let tuned = library_scenario("swarm-tuned", &[]);
    let tuned_unbuffered = library_scenario("swarm-tuned", &["network.send_window=0"]);
    let tuned_knobs = [
        "peers.count=64",
        "swarm.super_seed=true",
        "swarm.serial_uploads=true",
        "swarm.unchoke_slots=6",
        "swarm.max_peers=160",
        "swarm.numwant=100",
    ];
    let n64 = |seed: &'static str, rechoke: &'static str| {
        scenario(&[&tuned_knobs[..], &[seed, rechoke, "network.send_window=0"]].concat())
    };
    let mut runs = vec![
        (defaults, "defaults".to_string()),
        (tuned, "tuned".to_string()),
        (tuned_unbuffered, "tuned, no send window".to_string()),
    ];
    for seed in ["seed=1", "seed=2", "seed=3", "seed=4"] {
        for rechoke in ["swarm.rechoke_interval=500 ms", "swarm.rechoke_interval=10 s"] {
            runs.push((n64(seed, rechoke), format!("N = 64, {seed}, {rechoke}")));
        }
    }
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs.iter().map(|(x, _)| scope.spawn(move || run(x))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ratios = Vec::new();
    for (r, (_, what)) in reports.iter().zip(&runs) {
        assert_eq!(r.outcome, Outcome::Complete, "{what}");
        let ratio = r.ratio_to_bound.unwrap();
        assert!(ratio >= 1.0, "{what}: {ratio} beats the P2P bound");
        ratios.push(ratio);
    }
    eprintln!("ratios: {ratios:.4?}");
    let (d, t, t0) = (ratios[0], ratios[1], ratios[2]);
    assert!(
        d <= 1.11,
        "defaults: time / P2P bound {d:.4}, 1.104 measured with acknowledgements charged"
    );
    assert!(
        t0 <= 1.055 && t0 < d,
        "tuned without a send window: {t0:.4}, defaults {d:.4}"
    );
    assert!(t <= 1.20, "tuned: {t:.4}");
    let gains: Vec<f64> = ratios[3..].chunks(2).map(|p| p[1] - p[0]).collect();
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    assert!(
        mean > 0.001,
        "N = 64, 10 s rechoke minus 500 ms, seeds 1-4: {gains:.4?}; the tuned profile's rechoke no longer matters"
    );
}

/// Bans by each downloader (node, banned neighbour), in order.
fn bans(log: &Log) -> Vec<(NodeId, NodeId)> {
    log.borrow()
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::PeerBanned { peer } => Some((*n, *peer)),
            _ => None,
        })
        .collect()
}

/// The smart ban at swarm level: a liar (`p3`) whose blocks sit in pieces
/// with honest neighbours' blocks (end game with three copies) is found by
/// comparing each spoiled piece with its good copy (`Blame::digests`):
/// every downloader that received a spoiled piece bans the liar, and only
/// it. With strikes alone (the comparison disabled) the liar rarely gets
/// three before the download ends: in these runs 1, 0 and 0 downloaders
/// banned it, of 7, 6 and 7 that received a spoiled piece.
#[test]
fn the_good_copy_of_a_spoiled_piece_shows_who_spoiled_it() {
    for seed in ["seed=1", "seed=2", "seed=3"] {
        let s = scenario(&[
            "peers.count=16",
            "file.size=2 MiB",
            "file.piece_size=256 KiB",
            "swarm.endgame_copies=3",
            seed,
            r#"faults=[{"kind": "corrupt", "host": "p3", "at": "0 s"}]"#,
        ]);
        let (r, log) = run_logged(&s);
        assert_eq!(r.outcome, Outcome::Complete, "{seed}");
        let victims: Vec<&str> = r
            .hosts
            .iter()
            .filter(|h| h.pieces_corrupt > 0)
            .map(|h| h.name.as_str())
            .collect();
        assert!(victims.len() >= 3, "{seed}: {victims:?}");
        let bans = bans(&log);
        assert!(
            bans.iter().all(|&(_, liar)| liar == NodeId(3)),
            "{seed}: {bans:?}"
        );
        for h in r.hosts.iter().filter(|h| h.pieces_corrupt > 0) {
            assert_eq!(h.peers_banned, 1, "{seed}: {} received a spoiled piece", h.name);
        }
    }
}

/// A liar spoiling one piece in three, in a swarm of four with end-game
/// copies: a spoiled piece that only suspects hold is fetched again from
/// one of them alone, so the liar is caught alone or by the comparison.
/// Mixed again and again, the last piece of p4 (seed 4) failed three times
/// in 60 ms with blocks from all four neighbours, which were all banned,
/// server included, and p4 never completed.
#[test]
fn a_piece_only_suspects_hold_is_fetched_from_one_of_them_alone() {
    for seed in ["seed=1", "seed=2", "seed=3", "seed=4"] {
        let s = scenario(&[
            "peers.count=4",
            "file.size=2 MiB",
            "file.piece_size=256 KiB",
            "swarm.endgame_copies=3",
            "limits.max_time=60 s",
            seed,
            r#"faults=[{"kind": "corrupt", "host": "p3", "at": "0 s", "every": 3}]"#,
        ]);
        let (r, log) = run_logged(&s);
        assert_eq!(r.outcome, Outcome::Complete, "{seed}");
        let bans = bans(&log);
        assert!(
            bans.iter().all(|&(_, liar)| liar == NodeId(3)),
            "{seed}: {bans:?}"
        );
    }
}

/// The fault `corrupt` with `every`: the liar spoils only pieces whose
/// index is a multiple of k, so every piece that fails is one of those;
/// honest downloaders still complete and ban it.
#[test]
fn a_liar_spoiling_one_piece_in_k_spoils_only_those() {
    let s = small(
        8,
        &[r#"faults=[{"kind": "corrupt", "host": "p3", "at": "0 s", "every": 4}]"#],
    );
    let (r, log) = run_logged(&s);
    assert_complete_within_bound(&r, "corrupt every 4");
    let failed: Vec<u32> = log
        .borrow()
        .iter()
        .filter_map(|(_, _, e)| match e {
            Event::PieceCorrupt { piece } => Some(*piece),
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty(), "the liar spoiled nothing");
    assert!(failed.iter().all(|p| p % 4 == 0), "{failed:?}");
    assert!(bans(&log).iter().all(|&(_, liar)| liar == NodeId(3)));
    assert!(r.counters.peers_banned > 0, "nobody banned the liar");
}

/// The (N + 1) / (N + 1 - k) slowdown of losing k of N + 1 equal uplinks,
/// with 15% to spare: what an honest swarm may lose to `k` peers that
/// upload nothing.
fn capacity_bound(n: u32, k: u32, honest_s: f64) -> f64 {
    honest_s * f64::from(n + 1) / f64::from(n + 1 - k) * 1.15
}

/// Peers that stay connected and unchoke but answer no request (fault
/// `silent`): the honest peers route around them. Requests left at a
/// silent neighbour move to idle neighbours after 500 ms or time out after
/// 5 s, and the silent one is asked nothing for a while, so the swarm
/// loses little more than the silent peers' uplinks: 8 MiB to 8 peers,
/// 3 of them silent, take 7.25 s (4.50 s all honest). A silent peer sends
/// nothing until its `for` ends, and is asked again after it.
#[test]
fn silent_peers_are_routed_around() {
    let base = ["peers.count=8", "file.size=8 MiB", "file.piece_size=64 KiB"];
    let honest = run(&scenario(&base)).distribution_time_s.expect("complete");
    let silent = |hosts: &[&str], extra: &str| {
        let faults: Vec<String> = hosts
            .iter()
            .map(|h| format!(r#"{{"kind": "silent", "host": "{h}", "at": "0 s"{extra}}}"#))
            .collect();
        let faults = format!("faults=[{}]", faults.join(","));
        let mut sets = base.to_vec();
        sets.push(&faults);
        run(&scenario(&sets))
    };
    for hosts in [&["p3"][..], &["p2", "p4", "p6"]] {
        let r = silent(hosts, "");
        let what = format!("{hosts:?} silent");
        assert_eq!(r.outcome, Outcome::Complete, "{what}");
        for h in &r.hosts {
            if hosts.contains(&h.name.as_str()) {
                assert_eq!(h.bytes_up, 0, "{what}: {} sent blocks", h.name);
            }
        }
        let d = r.distribution_time_s.unwrap();
        let bound = capacity_bound(8, hosts.len() as u32, honest);
        assert!(d <= bound, "{what}: {d} s, honest {honest} s, bound {bound} s");
        assert!(r.counters.requests_timed_out > 0, "{what}: no request timed out");
    }
    let r = silent(&["p3"], r#", "for": "1 s""#);
    assert_eq!(r.outcome, Outcome::Complete);
    assert!(r.hosts[3].bytes_up > 0, "p3 answers again after 1 s");
}

/// Peers that claim every piece while holding fewer (fault `lying`):
/// requests for pieces they lack go unanswered, time out and move to
/// honest neighbours, and seeds drop them as fellow seeds; every honest
/// peer completes, within what the liars' uplinks are worth (3 of 8:
/// 5.29 s, 5.14 s all honest). A liar is not waited for. With 14 liars
/// among 16 peers the 2 honest ones are done in 8.34 s (9.30 s all
/// honest).
#[test]
fn lying_peers_do_not_hold_up_the_honest_ones() {
    let liars = |n: u32| {
        let faults: Vec<String> = (1..=n)
            .map(|k| format!(r#"{{"kind": "lying", "host": "p{k}", "at": "0 s"}}"#))
            .collect();
        format!("faults=[{}]", faults.join(","))
    };
    for (n, k, size) in [(8, 3, "8 MiB"), (16, 14, "16 MiB")] {
        let count = format!("peers.count={n}");
        let size = format!("file.size={size}");
        let base = [count.as_str(), size.as_str()];
        let honest = run(&scenario(&base)).distribution_time_s.expect("complete");
        let faults = liars(k);
        let r = run(&scenario(&[&base[..], &[faults.as_str()]].concat()));
        let what = format!("{k} of {n} lying");
        assert_eq!(r.outcome, Outcome::Complete, "{what}");
        for h in r.hosts.iter().skip(k as usize + 1) {
            if h.role == peerlab_scenarios::Role::Peer {
                assert!(h.completed_s.is_some(), "{what}: {} never completed", h.name);
            }
        }
        let d = r.distribution_time_s.unwrap();
        // Most liars, few honest peers to wait for: no slower than all honest.
        let bound = if 2 * k > n {
            honest
        } else {
            capacity_bound(n, k, honest)
        };
        assert!(
            d <= bound,
            "{what}: {d} s, all honest {honest} s, bound {bound} s"
        );
        assert!(
            r.counters.requests_timed_out > 0,
            "{what}: nothing asked of a liar timed out"
        );
    }
}
