//! What each fuzz target does with one input: parse it as untrusted bytes
//! from the network or a user, and check what must hold for any input (no
//! panic, frames that consume what they say). Shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/`, nightly) and by `tests/fuzz_corpus.rs`,
//! which replays every kept input on stable.

use peerlab_net::wire::{self, Limits};

/// The targets, by name (`fuzz/corpus/<name>/` holds each one's inputs).
#[allow(dead_code)] // each cargo-fuzz binary runs one target
pub const TARGETS: [&str; 5] = ["wire", "bencode", "tracker_query", "metainfo", "scenario"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "wire" => wire_frames(data),
        "bencode" => bencode(data),
        "tracker_query" => tracker_query(data),
        "metainfo" => metainfo(data),
        "scenario" => scenario(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// A handshake, then peer-wire frames, as a node reads them from a socket.
pub fn wire_frames(data: &[u8]) {
    let mut rest = data;
    if let Ok(Some((_, used))) = wire::decode_handshake(rest) {
        assert!(
            used > 0 && used <= rest.len(),
            "a handshake of {used} bytes in {}",
            rest.len()
        );
        rest = &rest[used..];
    }
    let limits = Limits::new(64);
    while let Ok(Some((frame, used))) = wire::decode(rest, &limits) {
        assert!(
            used > 0 && used <= rest.len(),
            "a frame of {used} bytes in {}",
            rest.len()
        );
        let _ = frame.into_message();
        rest = &rest[used..];
    }
}

/// A tracker's reply or a `.torrent`: bencode that decodes re-encodes to
/// something that decodes to the same value.
pub fn bencode(data: &[u8]) {
    if let Ok(value) = peerlab_net::bencode::decode(data) {
        let again = peerlab_net::bencode::decode(&value.to_bytes()).expect("what was encoded decodes");
        assert_eq!(again, value);
    }
}

/// The query string of an HTTP announce.
pub fn tracker_query(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = peerlab_net::tracker_http::query::AnnounceQuery::parse(text);
    }
}

/// A metainfo file; one that parses is valid and its info hash computes.
pub fn metainfo(data: &[u8]) {
    if let Ok(m) = peerlab_net::metainfo_file::parse(data) {
        peerlab_net::metainfo_file::validate(&m).expect("a parsed metainfo is valid");
        let _ = peerlab_net::metainfo_file::info_hash(&m);
    }
}

/// A scenario file; one that loads can be asked for its hosts and layout.
pub fn scenario(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(s) = peerlab_scenarios::Scenario::from_json(text, "fuzz", &[])
    {
        let _ = s.hosts();
        let _ = s.layout();
    }
}
