//! The distribution-time lower bounds of the README's "The theory it checks",
//! computed on payload rates (capacity x goodput factor). No run may beat them.

use serde::{Deserialize, Serialize};

use crate::scenario::{Role, Scenario};

/// Both lower bounds for one scenario, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// `max(N*F/u_s, F/d_min)`.
    pub client_server_s: f64,
    /// `max(F/u_s, F/d_min, N*F/(u_s + sum u_i))`.
    pub p2p_s: f64,
}

/// `max(N*F/u_s, F/d_min)`: rates in bits/s, `file_bits` in bits.
pub fn client_server(file_bits: f64, n: u32, u_s: f64, d_min: f64) -> f64 {
    (f64::from(n) * file_bits / u_s).max(file_bits / d_min)
}

/// `max(F/u_s, F/d_min, N*F/(u_s + sum_u))`: rates in bits/s.
pub fn p2p(file_bits: f64, n: u32, u_s: f64, d_min: f64, sum_u: f64) -> f64 {
    (file_bits / u_s)
        .max(file_bits / d_min)
        .max(f64::from(n) * file_bits / (u_s + sum_u))
}

/// The exact piece-level optimum for N peers and a server of equal upload
/// `u`, unlimited download and M pieces: `(F/u)(1 + floor(log2 N)/M)`
/// (Mundinger, Weber & Weiss 2008).
pub fn piece_level_optimum(file_bits: f64, n: u32, u: f64, pieces: u32) -> f64 {
    let log = f64::from(n.max(1).ilog2());
    file_bits / u * (1.0 + log / f64::from(pieces))
}

impl Bounds {
    /// The bounds of `scenario` on payload rates.
    pub fn of(scenario: &Scenario) -> Bounds {
        let g = scenario.network.goodput;
        let hosts = scenario.hosts();
        let file_bits = scenario.file.size.0 as f64 * 8.0;
        let n = scenario.downloaders();
        let u_s = scenario.server.upload.bits_per_sec() * g;
        let peers = hosts.iter().filter(|h| h.role == Role::Peer);
        let d_min = peers
            .clone()
            .map(|h| h.download.bits_per_sec() * g)
            .fold(f64::INFINITY, f64::min);
        let sum_u: f64 = peers.map(|h| h.upload.bits_per_sec() * g).sum();
        Bounds {
            client_server_s: client_server(file_bits, n, u_s, d_min),
            p2p_s: p2p(file_bits, n, u_s, d_min, sum_u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_numbers() {
        // F = 10 Mbit, u_s = 10 Mbit/s, 4 peers at 1 Mbit/s up, 5 Mbit/s down.
        assert_eq!(client_server(10e6, 4, 10e6, 5e6), 4.0);
        assert_eq!(p2p(10e6, 4, 10e6, 5e6, 4e6), 40.0 / 14.0);
        // Unlimited download removes the F/d_min term.
        assert_eq!(client_server(10e6, 1, 10e6, f64::INFINITY), 1.0);
        // One peer: nothing to share, the optimum is F/u.
        assert_eq!(piece_level_optimum(8.0, 1, 1.0, 4), 8.0);
        assert_eq!(piece_level_optimum(8.0, 8, 1.0, 4), 8.0 * 1.75);
    }
}
