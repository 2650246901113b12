//! The metainfo ("kascade" file in seed 003, `.torrent` in BitTorrent): what
//! a peer must know about the file before it can join the swarm — its name,
//! length, piece length and one hash per piece, against which every piece
//! is checked before it counts or is served.
//!
//! The simulator needs no real hashes ([`Metainfo::without_hashes`]); the
//! real backend computes them (SHA-1 as in BEP 3, or SHA-256) when it
//! creates the file.

use serde::{Deserialize, Serialize};

use crate::pieces::{LayoutError, PieceLayout};

/// A torrent's description of its single file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metainfo {
    /// Suggested file name.
    pub name: String,
    /// File length in bytes.
    pub length: u64,
    /// Nominal piece length in bytes (the last piece may be shorter).
    pub piece_length: u32,
    /// Digest of each piece, in order (20 bytes for SHA-1, 32 for SHA-256;
    /// empty when the run does not check hashes).
    pub pieces: Vec<Vec<u8>>,
}

impl Metainfo {
    /// A metainfo for `length` bytes in pieces of `piece_length` bytes with
    /// empty digests (the simulator verifies nothing).
    pub fn without_hashes(name: &str, length: u64, piece_length: u32) -> Result<Self, LayoutError> {
        let layout = PieceLayout::new(length, piece_length, crate::pieces::DEFAULT_BLOCK_SIZE)?;
        Ok(Metainfo {
            name: name.to_string(),
            length,
            piece_length,
            pieces: vec![Vec::new(); layout.pieces() as usize],
        })
    }

    /// The file's layout when requested in blocks of `block_len` bytes.
    pub fn layout(&self, block_len: u32) -> Result<PieceLayout, LayoutError> {
        PieceLayout::new(self.length, self.piece_length, block_len)
    }

    /// Whether there is exactly one digest per piece.
    pub fn is_consistent(&self) -> bool {
        self.layout(crate::pieces::DEFAULT_BLOCK_SIZE)
            .is_ok_and(|l| l.pieces() as usize == self.pieces.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_digest_per_piece() {
        let m = Metainfo::without_hashes("f", 600 * 1024, 256 * 1024).unwrap();
        assert_eq!(m.pieces.len(), 3);
        assert!(m.is_consistent());
        assert_eq!(m.layout(16 * 1024).unwrap().blocks_in(2), 6);
        let mut bad = m.clone();
        bad.pieces.pop();
        assert!(!bad.is_consistent());
    }
}
