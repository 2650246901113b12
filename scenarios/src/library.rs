//! The library of named scenarios shipped with peerlab (`scenarios/library/`).
//! `peerlab run lab-client-server` finds them by name.

/// Every named scenario: (name, JSON text).
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "lab-client-server",
        include_str!("../library/lab-client-server.json"),
    ),
    (
        "lab-static-tracker",
        include_str!("../library/lab-static-tracker.json"),
    ),
    (
        "cs-heterogeneous",
        include_str!("../library/cs-heterogeneous.json"),
    ),
    ("cs-1000", include_str!("../library/cs-1000.json")),
    ("cs-faults", include_str!("../library/cs-faults.json")),
    (
        "swarm-homogeneous",
        include_str!("../library/swarm-homogeneous.json"),
    ),
    (
        "swarm-super-seed",
        include_str!("../library/swarm-super-seed.json"),
    ),
    ("swarm-churn", include_str!("../library/swarm-churn.json")),
    ("swarm-tuned", include_str!("../library/swarm-tuned.json")),
    ("relay-seed000", include_str!("../library/relay-seed000.json")),
];

/// The JSON text of the named scenario.
pub fn get(name: &str) -> Option<&'static str> {
    SCENARIOS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

/// The names of every library scenario.
pub fn names() -> impl Iterator<Item = &'static str> {
    SCENARIOS.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use crate::Scenario;

    #[test]
    fn every_library_scenario_loads_and_is_named_after_its_file() {
        for &(name, text) in super::SCENARIOS {
            let s = Scenario::from_json(text, name, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.name.as_deref(), Some(name));
            assert!(s.description.is_some(), "{name} needs a description");
        }
    }
}
