//! The announce reply (BEP 3 / BEP 23): `d8:intervali…e5:peers<6·k>e`, or
//! `d14:failure reason…e`. Peers travel as addresses; both ends map them
//! to [`NodeId`]s through their address book.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use peerlab_core::NodeId;

use crate::bencode::{self, Value};

/// Bytes per peer in a compact peer list: IPv4 address and port.
pub const COMPACT_PEER_LEN: usize = 6;

/// Largest reply body a peer reads (200 compact peers take 1,200 bytes).
pub const MAX_REPLY_LEN: usize = 64 * 1024;

/// What a peer's driver makes of a reply body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The tracker answered with peers.
    Peers {
        /// Seconds until the next regular announce.
        interval_s: u32,
        /// The peers, those found in the address book.
        peers: Vec<NodeId>,
    },
    /// The tracker refused the announce.
    Failure(String),
}

/// The bencoded reply carrying `peers`, each as its address in `book`.
/// A peer missing from the book or without an IPv4 address (BEP 23 has
/// none for it) is left out, with a debug log.
pub fn encode_peers(interval_s: u32, peers: &[NodeId], book: &BTreeMap<NodeId, SocketAddr>) -> Vec<u8> {
    let mut compact = Vec::with_capacity(peers.len() * COMPACT_PEER_LEN);
    for peer in peers {
        match book.get(peer) {
            Some(SocketAddr::V4(a)) => {
                compact.extend_from_slice(&a.ip().octets());
                compact.extend_from_slice(&a.port().to_be_bytes());
            }
            other => tracing::debug!(%peer, ?other, "peer left out of a compact reply: no IPv4 address"),
        }
    }
    Value::dict([
        ("interval", Value::Int(i64::from(interval_s))),
        ("peers", Value::Bytes(compact)),
    ])
    .to_bytes()
}

/// The bencoded refusal `reason`.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    Value::dict([("failure reason", Value::bytes(reason.as_bytes()))]).to_bytes()
}

/// Reads a reply body; compact peers are mapped to nodes through `by_addr`
/// (an address it does not hold is skipped, with a debug log). The error
/// says what is wrong with the body.
pub fn decode(body: &[u8], by_addr: &BTreeMap<SocketAddr, NodeId>) -> Result<Reply, String> {
    let value = bencode::decode(body).map_err(|e| format!("tracker reply is not bencoded: {e}"))?;
    if let Some(reason) = value.get("failure reason") {
        let reason = reason.as_bytes().map(String::from_utf8_lossy).unwrap_or_default();
        return Ok(Reply::Failure(reason.into_owned()));
    }
    let interval = value
        .get("interval")
        .and_then(Value::as_int)
        .ok_or("tracker reply has no integer `interval`")?;
    let interval_s = u32::try_from(interval.max(1)).unwrap_or(u32::MAX);
    let compact = value
        .get("peers")
        .and_then(Value::as_bytes)
        .ok_or("tracker reply has no compact `peers` string (BEP 23)")?;
    if compact.len() % COMPACT_PEER_LEN != 0 {
        return Err(format!(
            "tracker reply's compact peers take {} bytes, not a multiple of {COMPACT_PEER_LEN}",
            compact.len()
        ));
    }
    let peers = compact
        .chunks_exact(COMPACT_PEER_LEN)
        .filter_map(|c| {
            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            let addr = SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be_bytes([c[4], c[5]])));
            let node = by_addr.get(&addr).copied();
            if node.is_none() {
                tracing::debug!(%addr, "tracker named an address not in the address book: skipped");
            }
            node
        })
        .collect();
    Ok(Reply::Peers { interval_s, peers })
}

/// The address book turned around, to name the peers of a reply.
pub fn by_addr(book: &BTreeMap<NodeId, SocketAddr>) -> BTreeMap<SocketAddr, NodeId> {
    book.iter()
        .map(|(&id, &addr)| (addr, id))
        .filter(|(addr, _)| matches!(addr.ip(), IpAddr::V4(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_peers_round_trip_through_the_address_book() {
        let book: BTreeMap<NodeId, SocketAddr> = [
            (NodeId(1), "127.0.0.1:6881".parse().unwrap()),
            (NodeId(2), "10.0.0.2:1".parse().unwrap()),
            (NodeId(3), "[::1]:6881".parse().unwrap()),
        ]
        .into();
        let body = encode_peers(30, &[NodeId(2), NodeId(3), NodeId(9), NodeId(1)], &book);
        assert_eq!(
            body,
            b"d8:intervali30e5:peers12:\x0a\x00\x00\x02\x00\x01\x7f\x00\x00\x01\x1a\xe1e"
        );
        let reply = decode(&body, &by_addr(&book)).unwrap();
        assert_eq!(
            reply,
            Reply::Peers {
                interval_s: 30,
                peers: vec![NodeId(2), NodeId(1)]
            }
        );
        // An address the peer does not know is skipped.
        let partial: BTreeMap<NodeId, SocketAddr> = [(NodeId(1), book[&NodeId(1)])].into();
        assert_eq!(
            decode(&body, &by_addr(&partial)).unwrap(),
            Reply::Peers {
                interval_s: 30,
                peers: vec![NodeId(1)]
            }
        );
    }

    #[test]
    fn failures_and_broken_replies() {
        let none = BTreeMap::new();
        assert_eq!(
            decode(&encode_failure("wrong info_hash"), &none),
            Ok(Reply::Failure("wrong info_hash".into()))
        );
        assert!(decode(b"d8:intervali30e5:peers5:12345e", &none).is_err());
        assert!(decode(b"d5:peers0:e", &none).is_err());
        assert!(decode(b"<html>", &none).is_err());
    }
}
