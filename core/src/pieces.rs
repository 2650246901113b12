//! How a file is cut up: pieces (the unit that is hash-checked and
//! advertised) and blocks (the unit that is requested and sent, 16 KiB as in
//! BitTorrent), and the bitfield that says which pieces a node holds.

use serde::{Deserialize, Serialize};

/// The block size every protocol requests in, as BEP 3 recommends.
pub const DEFAULT_BLOCK_SIZE: u32 = 16 * 1024;

/// The largest block a node will request or serve; larger requests are
/// protocol errors (BEP 3 clients drop peers that ask for more than 128 KiB).
pub const MAX_BLOCK_SIZE: u32 = 128 * 1024;

/// A block of a piece: `len` bytes starting `offset` bytes into `piece`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// Piece index.
    pub piece: u32,
    /// Byte offset inside the piece.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// The geometry of one file: its length, its piece length and its block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceLayout {
    file_len: u64,
    piece_len: u32,
    block_len: u32,
    pieces: u32,
}

/// Why a layout cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// The file is empty.
    EmptyFile,
    /// The piece length is zero.
    ZeroPieceLen,
    /// The block length is zero or larger than [`MAX_BLOCK_SIZE`].
    BadBlockLen(u32),
    /// More than `u32::MAX` pieces.
    TooManyPieces(u64),
}

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutError::EmptyFile => write!(f, "the file is empty"),
            LayoutError::ZeroPieceLen => write!(f, "the piece size is zero"),
            LayoutError::BadBlockLen(n) => {
                write!(f, "block size {n} is not in 1..={MAX_BLOCK_SIZE} bytes")
            }
            LayoutError::TooManyPieces(n) => {
                write!(f, "{n} pieces is more than {} supported", u32::MAX)
            }
        }
    }
}

impl std::error::Error for LayoutError {}

impl PieceLayout {
    /// A layout for `file_len` bytes in pieces of `piece_len` bytes, each
    /// requested in blocks of `block_len` bytes (capped at the piece length).
    pub fn new(file_len: u64, piece_len: u32, block_len: u32) -> Result<Self, LayoutError> {
        if file_len == 0 {
            return Err(LayoutError::EmptyFile);
        }
        if piece_len == 0 {
            return Err(LayoutError::ZeroPieceLen);
        }
        if block_len == 0 || block_len > MAX_BLOCK_SIZE {
            return Err(LayoutError::BadBlockLen(block_len));
        }
        let pieces = file_len.div_ceil(u64::from(piece_len));
        let pieces = u32::try_from(pieces).map_err(|_| LayoutError::TooManyPieces(pieces))?;
        Ok(PieceLayout {
            file_len,
            piece_len,
            block_len: block_len.min(piece_len),
            pieces,
        })
    }

    /// Total file length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The nominal piece length (every piece but maybe the last).
    pub fn piece_len(&self) -> u32 {
        self.piece_len
    }

    /// The nominal block length.
    pub fn block_len(&self) -> u32 {
        self.block_len
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.pieces
    }

    /// Length of piece `piece` in bytes (the last one may be short).
    pub fn piece_size(&self, piece: u32) -> u32 {
        debug_assert!(piece < self.pieces);
        let start = u64::from(piece) * u64::from(self.piece_len);
        (self.file_len - start).min(u64::from(self.piece_len)) as u32
    }

    /// Byte offset of piece `piece` in the file.
    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * u64::from(self.piece_len)
    }

    /// Number of blocks in piece `piece`.
    pub fn blocks_in(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(self.block_len)
    }

    /// Block number `index` of piece `piece`.
    pub fn block(&self, piece: u32, index: u32) -> BlockRef {
        let offset = index * self.block_len;
        let len = (self.piece_size(piece) - offset).min(self.block_len);
        BlockRef { piece, offset, len }
    }

    /// Whether `block` is exactly one of this layout's blocks. Peers may only
    /// request and send such blocks; anything else is a protocol error.
    pub fn is_valid_block(&self, block: BlockRef) -> bool {
        block.piece < self.pieces
            && block.offset % self.block_len == 0
            && block.offset < self.piece_size(block.piece)
            && block.len == self.block(block.piece, block.offset / self.block_len).len
    }
}

/// A fixed-size set of piece indices (which pieces a node holds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
    count: u32,
}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
            count: 0,
        }
    }

    /// The full set over `len` pieces.
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.insert(i);
        }
        b
    }

    /// The set over `len` pieces holding `pieces` (for tests).
    #[cfg(test)]
    pub(crate) fn of(len: u32, pieces: &[u32]) -> Self {
        let mut b = Bitfield::new(len);
        for &p in pieces {
            b.insert(p);
        }
        b
    }

    /// Number of pieces the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set ranges over no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces in the set.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether every piece is in the set.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Whether `piece` is in the set (false when out of range).
    pub fn contains(&self, piece: u32) -> bool {
        piece < self.len && self.words[(piece / 64) as usize] & (1 << (piece % 64)) != 0
    }

    /// Adds `piece`; returns whether it was new. Out-of-range is ignored.
    pub fn insert(&mut self, piece: u32) -> bool {
        if piece >= self.len || self.contains(piece) {
            return false;
        }
        self.words[(piece / 64) as usize] |= 1 << (piece % 64);
        self.count += 1;
        true
    }

    /// Removes `piece`; returns whether it was present.
    pub fn remove(&mut self, piece: u32) -> bool {
        if !self.contains(piece) {
            return false;
        }
        self.words[(piece / 64) as usize] &= !(1 << (piece % 64));
        self.count -= 1;
        true
    }

    /// The pieces in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter_masked(None)
    }

    /// The pieces in this set and not in `other`, in increasing order (what
    /// a neighbour holding `self` could give a node holding `other`). Word
    /// by word: a picker asks this on every request, and a set of 1,024
    /// pieces is 16 words.
    pub fn iter_minus<'a>(&'a self, other: &'a Bitfield) -> impl Iterator<Item = u32> + 'a {
        self.iter_masked(Some(other))
    }

    fn iter_masked<'a>(&'a self, minus: Option<&'a Bitfield>) -> impl Iterator<Item = u32> + 'a {
        self.words.iter().enumerate().flat_map(move |(w, &word)| {
            let mask = minus.and_then(|m| m.words.get(w)).map_or(u64::MAX, |&m| !m);
            let mut bits = word & mask;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                Some(w as u32 * 64 + bit)
            })
        })
    }

    /// The first piece at or after `from` that is not in the set.
    pub fn first_missing_from(&self, from: u32) -> Option<u32> {
        (from..self.len).find(|&i| !self.contains(i))
    }

    /// Size of the set on the wire (BEP 3 bitfield payload), in bytes.
    pub fn wire_len(&self) -> u32 {
        self.len.div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_and_block_are_short() {
        let l = PieceLayout::new(100_000, 40_000, 16_384).unwrap();
        assert_eq!(l.pieces(), 3);
        assert_eq!(l.piece_size(2), 20_000);
        assert_eq!(l.blocks_in(0), 3);
        assert_eq!(l.block(0, 2).len, 40_000 - 2 * 16_384);
        assert_eq!(l.blocks_in(2), 2);
        let total: u64 = (0..l.pieces())
            .flat_map(|p| (0..l.blocks_in(p)).map(move |b| (p, b)))
            .map(|(p, b)| u64::from(l.block(p, b).len))
            .sum();
        assert_eq!(total, 100_000);
    }

    #[test]
    fn only_exact_blocks_are_valid() {
        let l = PieceLayout::new(100_000, 40_000, 16_384).unwrap();
        assert!(l.is_valid_block(l.block(2, 1)));
        let mut b = l.block(2, 1);
        b.len += 1;
        assert!(!l.is_valid_block(b));
        assert!(!l.is_valid_block(BlockRef {
            piece: 3,
            offset: 0,
            len: 16_384
        }));
        assert!(!l.is_valid_block(BlockRef {
            piece: 0,
            offset: 1,
            len: 16_384
        }));
    }

    #[test]
    fn layout_rejects_impossible_geometry() {
        assert_eq!(PieceLayout::new(0, 1, 1), Err(LayoutError::EmptyFile));
        assert_eq!(PieceLayout::new(1, 0, 1), Err(LayoutError::ZeroPieceLen));
        assert_eq!(PieceLayout::new(1, 1, 0), Err(LayoutError::BadBlockLen(0)));
    }

    #[test]
    fn bitfield_counts_and_ignores_out_of_range() {
        let mut b = Bitfield::new(70);
        assert!(b.insert(69));
        assert!(!b.insert(69));
        assert!(!b.insert(70));
        assert_eq!(b.count(), 1);
        assert_eq!(b.first_missing_from(69), None);
        assert_eq!(b.first_missing_from(0), Some(0));
        assert!(b.remove(69));
        assert_eq!(b.count(), 0);
        assert!(Bitfield::full(70).is_full());
        assert_eq!(b.wire_len(), 9);
    }

    #[test]
    fn iteration_word_by_word_matches_a_bit_by_bit_scan() {
        // Sets straddling word boundaries, a partial last word, and empty
        // and full words.
        let len = 200;
        let a_bits: Vec<u32> = (0..len).filter(|i| i % 3 == 0 || (60..130).contains(i)).collect();
        let b_bits: Vec<u32> = (0..len).filter(|i| i % 5 == 0 || *i == 63 || *i == 199).collect();
        let (mut a, mut b) = (Bitfield::new(len), Bitfield::new(len));
        for &i in &a_bits {
            a.insert(i);
        }
        for &i in &b_bits {
            b.insert(i);
        }
        let scan = |set: &Bitfield| (0..len).filter(|&i| set.contains(i)).collect::<Vec<u32>>();
        assert_eq!(a.iter().collect::<Vec<_>>(), scan(&a));
        assert_eq!(a.iter().collect::<Vec<_>>(), a_bits);
        let minus: Vec<u32> = a_bits.iter().copied().filter(|i| !b_bits.contains(i)).collect();
        assert_eq!(a.iter_minus(&b).collect::<Vec<_>>(), minus);
        assert_eq!(b.iter_minus(&b).count(), 0);
        assert_eq!(
            Bitfield::full(len).iter_minus(&Bitfield::new(len)).count(),
            len as usize
        );
        assert_eq!(Bitfield::new(0).iter().count(), 0);
    }
}
