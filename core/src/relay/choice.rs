//! Which relay the sender fails over to: the candidate with the most spare
//! capacity.
//!
//! A relay first receives the chunks (its download decides how soon the
//! sender's upload finishes) and later forwards them (its upload decides how
//! soon the destination catches up), so a candidate's capacity is the
//! smaller of the two: the bottleneck of store-and-forward. The sender knows
//! each candidate's access link from its configuration, not from
//! measurement; ties go to the larger download, then to the lowest id, so
//! the choice is deterministic.

use std::collections::BTreeSet;

use crate::node::NodeId;

/// A peer the sender may relay through, with its access link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayCandidate {
    /// The peer.
    pub id: NodeId,
    /// Its upload capacity in bytes per second (`u64::MAX`: unlimited).
    pub upload: u64,
    /// Its download capacity in bytes per second (`u64::MAX`: unlimited).
    pub download: u64,
}

impl RelayCandidate {
    /// The capacity it can give a relayed transfer: `min(upload, download)`.
    pub fn spare(&self) -> u64 {
        self.upload.min(self.download)
    }
}

/// The best candidate not in `excluded`: most spare capacity, then larger
/// download, then lowest id. `None` when every candidate is excluded.
pub fn choose_relay(candidates: &[RelayCandidate], excluded: &BTreeSet<NodeId>) -> Option<NodeId> {
    candidates
        .iter()
        .filter(|c| !excluded.contains(&c.id))
        .max_by(|a, b| {
            (a.spare(), a.download)
                .cmp(&(b.spare(), b.download))
                .then(b.id.cmp(&a.id))
        })
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u32, upload: u64, download: u64) -> RelayCandidate {
        RelayCandidate {
            id: NodeId(id),
            upload,
            download,
        }
    }

    #[test]
    fn the_bottleneck_decides_then_download_then_id() {
        let none = BTreeSet::new();
        // #1 has the fastest download but a slow upload: 10 < 20.
        let cands = [c(1, 10, 1000), c(2, 20, 20), c(3, 30, 20)];
        assert_eq!(
            choose_relay(&cands, &none),
            Some(NodeId(2)),
            "tie on 20: same download, lower id"
        );
        let cands = [c(4, 50, 20), c(2, 20, 50), c(3, 20, 20)];
        assert_eq!(
            choose_relay(&cands, &none),
            Some(NodeId(2)),
            "tie on 20: larger download"
        );
        let cands = [c(5, 7, 7), c(6, 7, 7)];
        assert_eq!(choose_relay(&cands, &none), Some(NodeId(5)));
        assert_eq!(
            choose_relay(&cands, &BTreeSet::from([NodeId(5)])),
            Some(NodeId(6))
        );
        assert_eq!(
            choose_relay(&cands, &BTreeSet::from([NodeId(5), NodeId(6)])),
            None
        );
        assert_eq!(choose_relay(&[c(9, u64::MAX, 3)], &none), Some(NodeId(9)));
    }
}
