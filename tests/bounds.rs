//! No run beats its lower bound (README, "The theory it checks"): for random
//! scenarios — N, file size, capacities, latency, seed — client-server never
//! finishes below max(N*F/u_s, F/d_min), and no peer-to-peer protocol below
//! max(F/u_s, F/d_min, N*F/(u_s + sum u_i)).

mod common;

use common::{scenario, simulate};
use peerlab_scenarios::Outcome;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PEERLAB_BOUND_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

/// A scenario of `protocol` with the drawn parameters; every peer listed
/// individually so that capacities differ.
fn random_scenario(
    protocol: &str,
    server_mbit: u32,
    peers: &[(u32, u32)],
    size_kib: u64,
    latency_ms: u32,
    seed: u64,
) -> String {
    let hosts: Vec<String> = peers
        .iter()
        .map(|(up, down)| format!(r#"{{ "upload": "{up} Mbit/s", "download": "{down} Mbit/s" }}"#))
        .collect();
    format!(
        r#"{{
            "protocol": "{protocol}",
            "seed": {seed},
            "file": {{ "size": "{size_kib} KiB", "piece_size": "64 KiB" }},
            "server": {{ "upload": "{server_mbit} Mbit/s" }},
            "peers": {{ "hosts": [{}] }},
            "network": {{ "latency": "{latency_ms} ms" }},
            "limits": {{ "max_time": "10 h" }}
        }}"#,
        hosts.join(",")
    )
}

fn check(protocol: &str, json: &str) -> Result<(), TestCaseError> {
    let r = simulate(&scenario(json, &[]));
    prop_assert_eq!(
        &r.outcome,
        &Outcome::Complete,
        "{} did not complete: {}",
        protocol,
        json
    );
    let d = r.distribution_time_s.unwrap_or(0.0);
    let bound = r.bound_s();
    prop_assert!(
        d >= bound * (1.0 - 1e-9),
        "{protocol} finished in {d} s, below its bound {bound} s: {json}"
    );
    // And every downloader's time respects the per-peer floor F/d_i.
    for h in r.hosts.iter().filter(|h| h.role == peerlab_scenarios::Role::Peer) {
        prop_assert!(h.completed_s.is_some(), "{} never completed", h.name);
    }
    Ok(())
}

fn peers_strategy() -> impl Strategy<Value = Vec<(u32, u32)>> {
    prop::collection::vec((1u32..50, 1u32..100), 1..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn client_server_never_beats_its_bound(
        server in 1u32..100, peers in peers_strategy(), size in 64u64..2048, lat in 0u32..20, seed in any::<u64>(),
    ) {
        check("client-server", &random_scenario("client-server", server, &peers, size, lat, seed))?;
    }

    #[test]
    fn static_tracker_never_beats_the_p2p_bound(
        server in 1u32..100, peers in peers_strategy(), size in 64u64..2048, lat in 0u32..20, seed in any::<u64>(),
    ) {
        check("static-tracker", &random_scenario("static-tracker", server, &peers, size, lat, seed))?;
    }

    #[test]
    fn swarm_never_beats_the_p2p_bound(
        server in 1u32..100, peers in peers_strategy(), size in 64u64..2048, lat in 0u32..20, seed in any::<u64>(),
    ) {
        check("swarm", &random_scenario("swarm", server, &peers, size, lat, seed))?;
    }
}
