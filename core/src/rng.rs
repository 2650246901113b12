//! Per-node randomness. Every node owns a ChaCha stream derived from the
//! scenario seed and its own id, so adding a node never changes the random
//! choices of another, and a run is reproduced from its seed alone.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::NodeId;

/// The RNG type every node uses.
pub type NodeRng = ChaCha8Rng;

/// The RNG of node `node` in a run seeded with `seed`.
pub fn node_rng(seed: u64, node: NodeId) -> NodeRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&node.0.to_le_bytes());
    key[16..23].copy_from_slice(b"peerlab");
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias.
pub fn below(rng: &mut NodeRng, n: u64) -> u64 {
    use rand_core::Rng;
    assert!(n > 0, "below(0) has no value to return");
    // Lemire's nearly-divisionless method with rejection.
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Shuffles `items` in place (Fisher-Yates) with the node's RNG.
pub fn shuffle<T>(rng: &mut NodeRng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn streams_depend_on_seed_and_node_only() {
        let a = node_rng(7, NodeId(3)).next_u64();
        assert_eq!(a, node_rng(7, NodeId(3)).next_u64());
        assert_ne!(a, node_rng(7, NodeId(4)).next_u64());
        assert_ne!(a, node_rng(8, NodeId(3)).next_u64());
    }

    #[test]
    fn below_covers_the_range_uniformly_enough() {
        let mut rng = node_rng(1, NodeId(0));
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[below(&mut rng, 6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "skewed counts {counts:?}");
        }
    }
}
