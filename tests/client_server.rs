//! Client-server in the simulator against the theory (README, "The theory it
//! checks"): the distribution time lands within 0.5% of max(N*F/u_s, F/d_min)
//! on payload rates, never below it.

mod common;

use common::{scenario, sets, simulate};
use peerlab_scenarios::{Outcome, Report};
use proptest::prelude::*;

const BASE: &str = r#"{
    "protocol": "client-server",
    "seed": 1,
    "file": { "size": "4 MiB" },
    "server": { "upload": "20 Mbit/s" },
    "peers": { "count": 1, "upload": "20 Mbit/s", "download": "20 Mbit/s" },
    "network": { "goodput": 1.0 }
}"#;

/// Asserts the run completed no sooner than the bound and within `slack` of it.
fn assert_near_cs_bound(r: &Report, slack: f64, what: &str) {
    assert_eq!(r.outcome, Outcome::Complete, "{what}: run did not complete");
    let d = r
        .distribution_time_s
        .expect("complete runs have a distribution time");
    let bound = r.bounds.client_server_s;
    assert!(
        d >= bound * (1.0 - 1e-9),
        "{what}: {d} s beats the bound {bound} s"
    );
    assert!(
        d <= bound * (1.0 + slack),
        "{what}: {d} s is more than {slack} over the bound {bound} s"
    );
    for h in &r.hosts[1..] {
        assert_eq!(
            h.bytes_down, r.file_bytes,
            "{what}: {} received the wrong byte count",
            h.name
        );
    }
    assert_eq!(
        r.server_bytes_up,
        r.file_bytes * u64::from(r.downloaders),
        "{what}: server upload"
    );
}

#[test]
fn homogeneous_clients_land_within_half_a_percent_for_n_1_to_64() {
    for n in 1..=64u32 {
        let s = scenario(BASE, &sets(&[("peers.count", n.to_string())]));
        let r = simulate(&s);
        assert_near_cs_bound(&r, 0.005, &format!("N={n}"));
    }
}

#[test]
fn the_slowest_download_link_sets_the_pace_when_the_server_is_fast() {
    // u_s = 1 Gbit/s: N*F/u_s is small, F/d_min (the 2 Mbit/s client) dominates.
    let json = BASE
        .replace(
            "\"server\": { \"upload\": \"20 Mbit/s\" }",
            "\"server\": { \"upload\": \"1 Gbit/s\" }",
        )
        .replace(
            "\"count\": 1,",
            "\"count\": 9, \"hosts\": [ { \"name\": \"slow\", \"download\": \"2 Mbit/s\" } ],",
        );
    let r = simulate(&scenario(&json, &[]));
    assert_near_cs_bound(&r, 0.005, "fast server, one slow client");
    let f_bits = r.file_bytes as f64 * 8.0;
    assert!(
        (r.bounds.client_server_s - f_bits / 2e6).abs() < 1e-9,
        "bound should be F/d_min"
    );
    let slow = r.hosts.iter().find(|h| h.name == "slow").expect("slow host");
    assert_eq!(
        slow.completed_s, r.distribution_time_s,
        "the slow client finishes last"
    );
}

#[test]
fn heterogeneous_download_rates_for_n_1_to_64() {
    // Download rates spread over 1..40 Mbit/s; for small N the slowest link
    // dominates, for large N the server's uplink does.
    for n in 1..=64u32 {
        let hosts: Vec<String> = (0..n)
            .map(|i| format!("{{ \"download\": \"{} Mbit/s\" }}", 1 + (i * 37 + n * 11) % 40))
            .collect();
        let json = BASE.replace(
            "\"count\": 1,",
            &format!("\"count\": 0, \"hosts\": [{}],", hosts.join(",")),
        );
        let r = simulate(&scenario(&json, &[]));
        assert_near_cs_bound(&r, 0.005, &format!("heterogeneous N={n}"));
    }
}

#[test]
fn goodput_factor_scales_the_bound_and_the_run_alike() {
    let full = simulate(&scenario(BASE, &sets(&[("peers.count", "8".into())])));
    let s = scenario(
        BASE,
        &sets(&[("peers.count", "8".into()), ("network.goodput", "0.9".into())]),
    );
    let lossy = simulate(&s);
    assert_near_cs_bound(&lossy, 0.005, "goodput 0.9");
    let expected = full.bounds.client_server_s / 0.9;
    assert!((lossy.bounds.client_server_s - expected).abs() < 1e-9 * expected);
    assert_eq!(lossy.goodput_factor, 0.9);
}

#[test]
fn too_short_a_pipeline_on_a_long_path_leaves_the_server_idle() {
    // Two requests in flight cannot cover a 40 ms round trip at 20 Mbit/s:
    // the run is far from the bound, which ignores latency. Deepening the
    // pipeline brings it back. This is the bandwidth-delay product at work.
    let pairs = |pipeline: u32| {
        sets(&[
            ("peers.count", "2".into()),
            ("network.latency", "10 ms".into()),
            ("client_server.pipeline", pipeline.to_string()),
        ])
    };
    let shallow = simulate(&scenario(BASE, &pairs(2)));
    let deep = simulate(&scenario(BASE, &pairs(64)));
    let ratio = |r: &Report| r.ratio_to_bound.expect("complete");
    assert!(
        ratio(&shallow) > 1.5,
        "shallow pipeline ratio {}",
        ratio(&shallow)
    );
    // With a deep pipeline only latency's fixed cost remains: the connection
    // handshake (one 40 ms round trip), the first request (20 ms) and the
    // last block's propagation (20 ms), plus the 0.08% of BEP 3 headers.
    let d = deep.distribution_time_s.expect("complete");
    let fixed = 0.040 + 0.020 + 0.020;
    let expected = deep.bounds.client_server_s * (1.0 + 13.0 / 16384.0) + fixed;
    assert!(
        (d - expected).abs() < 0.002,
        "deep pipeline: {d} s, expected {expected} s"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random sizes, rates and N: never below the bound, within 0.5% of it.
    #[test]
    fn random_scenarios_respect_the_client_server_bound(
        n in 1u32..40,
        size_kib in 16u64..8192,
        server_mbit in 1u32..1000,
        downs in prop::collection::vec(1u32..200, 40),
        seed in any::<u64>(),
    ) {
        let hosts: Vec<String> = downs[..n as usize]
            .iter()
            .map(|d| format!("{{ \"download\": \"{d} Mbit/s\" }}"))
            .collect();
        let json = BASE.replace("\"count\": 1,", &format!("\"count\": 0, \"hosts\": [{}],", hosts.join(",")));
        let s = scenario(&json, &sets(&[
            ("file.size", format!("{size_kib} KiB")),
            ("server.upload", format!("{server_mbit} Mbit/s")),
            ("seed", seed.to_string()),
        ]));
        let r = simulate(&s);
        assert_near_cs_bound(&r, 0.005, &format!("seed {seed}, N={n}"));
    }
}
