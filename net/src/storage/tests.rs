use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use peerlab_core::BlockRef;
use proptest::prelude::*;

use super::*;
use crate::metainfo_file::create_metainfo;

/// SplitMix64: reproducible test bytes and shuffles without an RNG crate.
struct TestRng(u64);

impl TestRng {
    fn seed_from_u64(seed: u64) -> TestRng {
        TestRng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A unique scratch directory under the system's temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "peerlab-storage-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 100,000 bytes in pieces of 40,000 (the last one 20,000), blocks of 16 KiB
/// (the last block of each piece short).
const LEN: usize = 100_000;
const PIECE: u32 = 40_000;
const BLOCK: u32 = 16_384;

/// A source file and its metainfo.
struct Source {
    scratch: Scratch,
    bytes: Vec<u8>,
    path: PathBuf,
    metainfo: Metainfo,
    layout: PieceLayout,
}

impl Source {
    fn new(tag: &str, len: usize, piece: u32, block: u32, hash: HashKind, seed: u64) -> Source {
        let scratch = Scratch::new(tag);
        let mut rng = TestRng::seed_from_u64(seed);
        let mut bytes = vec![0; len];
        rng.fill_bytes(&mut bytes);
        let path = scratch.join("file.bin");
        std::fs::write(&path, &bytes).unwrap();
        let metainfo = create_metainfo(&path, piece, hash).unwrap();
        let layout = metainfo.layout(block).unwrap();
        Source {
            scratch,
            bytes,
            path,
            metainfo,
            layout,
        }
    }

    fn standard(tag: &str) -> Source {
        Source::new(tag, LEN, PIECE, BLOCK, HashKind::Sha1, 7)
    }

    fn dir(&self) -> PathBuf {
        self.scratch.join("download")
    }

    fn open(&self) -> Result<Storage, StorageError> {
        Storage::open(&self.dir(), &self.metainfo, self.layout)
    }

    fn payload(&self, block: BlockRef) -> &[u8] {
        let start = self.layout.piece_offset(block.piece) as usize + block.offset as usize;
        &self.bytes[start..start + block.len as usize]
    }

    fn blocks(&self) -> Vec<BlockRef> {
        let l = self.layout;
        (0..l.pieces())
            .flat_map(|p| (0..l.blocks_in(p)).map(move |i| l.block(p, i)))
            .collect()
    }

    fn piece_blocks(&self, piece: u32) -> Vec<BlockRef> {
        (0..self.layout.blocks_in(piece))
            .map(|i| self.layout.block(piece, i))
            .collect()
    }

    fn write_piece(&self, storage: &mut Storage, piece: u32) {
        for block in self.piece_blocks(piece) {
            storage.write_block(block, self.payload(block)).unwrap();
        }
    }

    /// Every verified piece reads back as the source's bytes.
    fn assert_verified_pieces_match(&self, storage: &Storage) {
        for piece in storage.verified().iter() {
            for block in self.piece_blocks(piece) {
                assert_eq!(
                    storage.read_block(block).unwrap(),
                    self.payload(block),
                    "verified piece {piece} differs from the source at {block:?}"
                );
            }
        }
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut TestRng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn verified_list(storage: &Storage) -> Vec<u32> {
    storage.verified().iter().collect()
}

#[test]
fn blocks_in_random_order_make_a_byte_identical_file() {
    for hash in [HashKind::Sha1, HashKind::Sha256] {
        let src = Source::new("roundtrip", LEN, PIECE, BLOCK, hash, 1);
        assert_eq!(src.layout.pieces(), 3);
        assert_eq!(src.layout.piece_size(2), 20_000);
        let mut storage = src.open().unwrap();
        assert_eq!(storage.hash_kind(), hash);
        assert_eq!(storage.verified().count(), 0);
        let mut blocks = src.blocks();
        shuffle(&mut blocks, &mut TestRng::seed_from_u64(2));
        for block in blocks {
            storage.write_block(block, src.payload(block)).unwrap();
        }
        for piece in 0..3 {
            assert!(storage.verify_piece(piece).unwrap(), "piece {piece}");
        }
        assert!(storage.verified().is_full());
        src.assert_verified_pieces_match(&storage);
        assert_eq!(std::fs::read(storage.path()).unwrap(), src.bytes);
    }
}

#[test]
fn a_corrupt_block_fails_verification_and_can_be_rewritten() {
    let src = Source::standard("corrupt");
    let mut storage = src.open().unwrap();
    src.write_piece(&mut storage, 1);
    let block = src.layout.block(1, 1);
    let mut bad = src.payload(block).to_vec();
    bad[100] ^= 0x40;
    storage.write_block(block, &bad).unwrap();

    assert!(!storage.verify_piece(1).unwrap());
    assert!(!storage.verified().contains(1));
    assert!(matches!(
        storage.read_block(src.layout.block(1, 0)),
        Err(StorageError::NotVerified { piece: 1, .. })
    ));

    storage.write_block(block, src.payload(block)).unwrap();
    assert!(storage.verify_piece(1).unwrap());
    src.assert_verified_pieces_match(&storage);
}

/// The digests that tell a bad block from the good one: one per block of
/// the piece, read from disk whether the piece passed or not; the failed
/// copy and the good one differ exactly at the flipped block.
#[test]
fn block_digests_differ_exactly_where_a_block_was_bad() {
    let src = Source::standard("digests");
    let mut storage = src.open().unwrap();
    src.write_piece(&mut storage, 1);
    let block = src.layout.block(1, 2);
    let mut bad = src.payload(block).to_vec();
    bad[0] ^= 1;
    storage.write_block(block, &bad).unwrap();
    assert!(!storage.verify_piece(1).unwrap());
    let failed = storage.block_digests(1).unwrap();
    assert_eq!(failed.len(), src.layout.blocks_in(1) as usize);

    storage.write_block(block, src.payload(block)).unwrap();
    assert!(storage.verify_piece(1).unwrap());
    let good = storage.block_digests(1).unwrap();
    let differ: Vec<usize> = (0..good.len()).filter(|&i| good[i] != failed[i]).collect();
    assert_eq!(differ, vec![2]);
    assert!(matches!(
        storage.block_digests(src.layout.pieces()),
        Err(StorageError::NoSuchPiece { .. })
    ));
}

#[test]
fn reading_an_unverified_piece_is_refused() {
    let src = Source::standard("unverified");
    let mut storage = src.open().unwrap();
    src.write_piece(&mut storage, 0);
    let err = storage.read_block(src.layout.block(0, 0)).unwrap_err();
    assert!(matches!(err, StorageError::NotVerified { piece: 0, .. }), "{err}");
    assert!(err.to_string().contains("not verified"), "{err}");
    let mut buf = vec![0; BLOCK as usize];
    assert!(storage.read_block_into(src.layout.block(0, 0), &mut buf).is_err());
}

#[test]
fn resume_keeps_verified_pieces_without_refetching() {
    let src = Source::standard("resume");
    let mut storage = src.open().unwrap();
    src.write_piece(&mut storage, 0);
    src.write_piece(&mut storage, 2);
    src.write_piece(&mut storage, 1);
    assert!(storage.verify_piece(0).unwrap());
    assert!(storage.verify_piece(2).unwrap());
    // Piece 1 was written but not verified when the process died.
    drop(storage);

    let mut storage = src.open().unwrap();
    assert_eq!(verified_list(&storage), [0, 2]);
    src.assert_verified_pieces_match(&storage);
    // Only the unverified piece is fetched again.
    src.write_piece(&mut storage, 1);
    assert!(storage.verify_piece(1).unwrap());
    drop(storage);

    let storage = src.open().unwrap();
    assert!(storage.verified().is_full());
    assert_eq!(std::fs::read(storage.path()).unwrap(), src.bytes);
}

#[test]
fn resume_rechecks_journal_pieces_against_the_disk() {
    let src = Source::standard("recheck");
    let mut storage = src.open().unwrap();
    src.write_piece(&mut storage, 0);
    src.write_piece(&mut storage, 1);
    assert!(storage.verify_piece(0).unwrap());
    assert!(storage.verify_piece(1).unwrap());
    let path = storage.path().to_path_buf();
    drop(storage);

    // The bytes of piece 1 change behind the journal's back.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"XX", u64::from(PIECE) + 5).unwrap();
    drop(file);

    let storage = src.open().unwrap();
    assert_eq!(verified_list(&storage), [0]);
    src.assert_verified_pieces_match(&storage);
}

#[test]
fn a_torn_journal_record_is_ignored() {
    let src = Source::standard("torn");
    let mut storage = src.open().unwrap();
    for piece in 0..3 {
        src.write_piece(&mut storage, piece);
    }
    assert!(storage.verify_piece(0).unwrap());
    let journal_path = journal::path_for(storage.path());
    drop(storage);

    // A crash cut the record of piece 2 short, and left a record of zeros
    // where the file system had extended the file.
    let mut f = OpenOptions::new().append(true).open(&journal_path).unwrap();
    f.write_all(&[0; 8]).unwrap();
    f.write_all(&journal::encode(2)[..5]).unwrap();
    drop(f);
    let fingerprint = metainfo_file::info_hash(&src.metainfo);
    match journal::read(&journal_path, &fingerprint, 3).unwrap() {
        Found::Pieces { claimed, ignored } => {
            assert_eq!(claimed.iter().collect::<Vec<_>>(), [0]);
            assert_eq!(ignored, 2);
        }
        other => panic!("{other:?}"),
    }

    // Piece 2 is good on disk but not trusted from a torn record: it must be
    // verified again. Appends after the rewrite stay aligned.
    let mut storage = src.open().unwrap();
    assert_eq!(verified_list(&storage), [0]);
    assert!(storage.verify_piece(2).unwrap());
    drop(storage);
    assert_eq!(verified_list(&src.open().unwrap()), [0, 2]);
}

#[test]
fn a_journal_of_another_metainfo_is_refused() {
    let src = Source::standard("foreign");
    drop(src.open().unwrap());
    let mut other = src.metainfo.clone();
    other.pieces[0][0] ^= 1;
    let err = Storage::open(&src.dir(), &other, src.layout).unwrap_err();
    assert!(matches!(err, StorageError::ForeignResume { .. }), "{err}");
    assert!(err.to_string().contains(".peerlab-resume"), "{err}");
}

#[test]
fn an_existing_complete_file_is_adopted_after_checking() {
    let src = Source::standard("adopt");
    std::fs::create_dir_all(src.dir()).unwrap();
    std::fs::copy(&src.path, src.dir().join("file.bin")).unwrap();
    let storage = src.open().unwrap();
    assert!(storage.verified().is_full());

    let other = Source::standard("adopt-wrong");
    std::fs::create_dir_all(other.dir()).unwrap();
    std::fs::write(other.dir().join("file.bin"), b"short").unwrap();
    let err = other.open().unwrap_err();
    assert!(
        matches!(err, StorageError::ExistingFile { actual: 5, .. }),
        "{err}"
    );
}

#[test]
fn a_seed_serves_its_verified_file_read_only() {
    let src = Source::standard("seed");
    let mut seed = Storage::open_seed(&src.path, &src.metainfo).unwrap();
    assert!(seed.is_seed());
    assert!(seed.verified().is_full());
    // Any range inside a piece, not only the layout's blocks.
    let odd = BlockRef {
        piece: 2,
        offset: 3,
        len: 19_997,
    };
    assert_eq!(seed.read_block(odd).unwrap(), src.payload(odd));
    let past = BlockRef {
        piece: 2,
        offset: 3,
        len: 19_998,
    };
    assert!(matches!(
        seed.read_block(past),
        Err(StorageError::InvalidBlock { .. })
    ));
    let huge = BlockRef {
        piece: 0,
        offset: 0,
        len: u32::MAX,
    };
    assert!(matches!(
        seed.read_block(huge),
        Err(StorageError::InvalidBlock { .. })
    ));
    let block = src.layout.block(0, 0);
    assert!(matches!(
        seed.write_block(block, src.payload(block)),
        Err(StorageError::ReadOnly { .. })
    ));
}

#[test]
fn a_seed_of_the_wrong_size_or_content_is_refused() {
    let src = Source::standard("seed-bad");
    let short = src.scratch.join("short.bin");
    std::fs::write(&short, &src.bytes[..LEN - 1]).unwrap();
    let err = Storage::open_seed(&short, &src.metainfo).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::SeedWrongSize {
                actual: 99_999,
                expected: 100_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("short.bin"), "{err}");

    let mut changed = src.bytes.clone();
    changed[LEN - 1] ^= 1;
    let changed_path = src.scratch.join("changed.bin");
    std::fs::write(&changed_path, &changed).unwrap();
    let err = Storage::open_seed(&changed_path, &src.metainfo).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::SeedCorrupt {
                bad: 1,
                first: 2,
                pieces: 3,
                ..
            }
        ),
        "{err}"
    );
    // Trusted seeds skip the hash check but not the size check.
    assert!(Storage::open_seed_trusted(&changed_path, &src.metainfo).is_ok());
    assert!(Storage::open_seed_trusted(&short, &src.metainfo).is_err());
}

#[test]
fn bad_blocks_and_payloads_are_refused() {
    let src = Source::standard("badblock");
    let mut storage = src.open().unwrap();
    let mut block = src.layout.block(0, 0);
    block.len -= 1;
    let err = storage
        .write_block(block, &vec![0; block.len as usize])
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidBlock { .. }), "{err}");
    let block = src.layout.block(0, 0);
    let err = storage.write_block(block, &[1, 2, 3]).unwrap_err();
    assert!(matches!(err, StorageError::PayloadLength { got: 3, .. }), "{err}");
    assert!(matches!(
        storage.verify_piece(3),
        Err(StorageError::NoSuchPiece { .. })
    ));
}

#[test]
fn disk_full_maps_to_its_own_error_and_spares_verified_pieces() {
    let enospc = io::Error::from_raw_os_error(28);
    let err = StorageError::from_io(Path::new("/data/f"), "write", enospc);
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("/data/f"), "{err}");
    assert!(err.to_string().contains("free space"), "{err}");
    let edquot = io::Error::from_raw_os_error(122);
    assert!(StorageError::from_io(Path::new("f"), "write", edquot).is_disk_full());

    let src = Source::standard("full");
    let mut storage = src.open().unwrap();
    src.write_piece(&mut storage, 0);
    assert!(storage.verify_piece(0).unwrap());
    storage.set_free_space(u64::from(BLOCK) + 100);
    let blocks = src.piece_blocks(1);
    storage.write_block(blocks[0], src.payload(blocks[0])).unwrap();
    let err = storage
        .write_block(blocks[1], src.payload(blocks[1]))
        .unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    // A late duplicate of a verified block is ignored, not written.
    let garbage = vec![0xee; BLOCK as usize];
    storage.write_block(src.layout.block(0, 0), &garbage).unwrap();

    assert!(!storage.verify_piece(1).unwrap());
    assert_eq!(verified_list(&storage), [0]);
    src.assert_verified_pieces_match(&storage);
    drop(storage);

    // Space is freed; the node restarts and finishes.
    let mut storage = src.open().unwrap();
    assert_eq!(verified_list(&storage), [0]);
    for piece in [1, 2] {
        src.write_piece(&mut storage, piece);
        assert!(storage.verify_piece(piece).unwrap());
    }
    assert_eq!(std::fs::read(storage.path()).unwrap(), src.bytes);
}

#[test]
fn an_unwritable_directory_is_reported() {
    let src = Source::standard("unwritable");
    // A directory under a regular file cannot be created, even by root.
    let file = src.scratch.join("plain-file");
    std::fs::write(&file, b"").unwrap();
    let dir = file.join("sub");
    let err = Storage::open(&dir, &src.metainfo, src.layout).unwrap_err();
    assert!(matches!(err, StorageError::Unwritable { .. }), "{err}");
    assert!(err.to_string().contains("plain-file"), "{err}");

    // Permissions, where they are enforced (not for root).
    use std::os::unix::fs::PermissionsExt;
    let locked = src.scratch.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let enforced = std::fs::write(locked.join("probe"), b"").is_err();
    if enforced {
        let err = Storage::open(&locked.join("sub"), &src.metainfo, src.layout).unwrap_err();
        assert!(matches!(err, StorageError::Unwritable { .. }), "{err}");
        let err = Storage::open(&locked, &src.metainfo, src.layout).unwrap_err();
        assert!(matches!(err, StorageError::Unwritable { .. }), "{err}");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn an_inconsistent_metainfo_names_the_field() {
    let src = Source::standard("inconsistent");
    let mut m = src.metainfo.clone();
    m.pieces.pop();
    let err = Storage::open(&src.dir(), &m, src.layout).unwrap_err();
    assert!(
        matches!(&err, StorageError::InconsistentMetainfo { source, .. } if source.field == "pieces"),
        "{err}"
    );
    let mut m = src.metainfo.clone();
    m.pieces[1] = vec![0; 16];
    let err = Storage::open(&src.dir(), &m, src.layout).unwrap_err();
    assert!(err.to_string().contains("pieces[1]"), "{err}");
    let mut m = src.metainfo.clone();
    m.name = "../escape".into();
    let err = Storage::open(&src.dir(), &m, src.layout).unwrap_err();
    assert!(err.to_string().contains("`name`"), "{err}");
    let other_layout = PieceLayout::new(LEN as u64, PIECE / 2, BLOCK).unwrap();
    let err = Storage::open(&src.dir(), &src.metainfo, other_layout).unwrap_err();
    assert!(err.to_string().contains("piece_length"), "{err}");
    let err = Storage::open_seed(&src.path, &Metainfo::without_hashes("f", 10, 5).unwrap()).unwrap_err();
    assert!(matches!(err, StorageError::InconsistentMetainfo { .. }), "{err}");
}

/// One step of a download as the proptest plays it.
#[derive(Clone, Debug)]
enum Step {
    /// Write block `index % blocks`, corrupting byte `flip` of it if set.
    Write { index: usize, flip: Option<usize> },
    /// Verify piece `piece % pieces`.
    Verify { piece: u32 },
    /// The process dies and restarts.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<usize>(), proptest::option::weighted(0.2, any::<usize>()))
            .prop_map(|(index, flip)| Step::Write { index, flip }),
        3 => any::<u32>().prop_map(|piece| Step::Verify { piece }),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the order of writes, corruptions, verifications and
    /// restarts, a verified piece always reads back as the source's bytes.
    #[test]
    fn no_verified_piece_ever_differs_from_the_source(
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let src = Source::new("prop", 5_000, 1_200, 256, HashKind::Sha1, seed);
        let blocks = src.blocks();
        let pieces = src.layout.pieces();
        let mut storage = src.open().unwrap();
        for step in steps {
            match step {
                Step::Write { index, flip } => {
                    let block = blocks[index % blocks.len()];
                    let mut payload = src.payload(block).to_vec();
                    if let Some(at) = flip {
                        payload[at % block.len as usize] ^= 0x01;
                    }
                    storage.write_block(block, &payload).unwrap();
                }
                Step::Verify { piece } => {
                    let piece = piece % pieces;
                    let ok = storage.verify_piece(piece).unwrap();
                    prop_assert_eq!(ok, storage.verified().contains(piece));
                }
                Step::Restart => {
                    let before = verified_list(&storage);
                    drop(storage);
                    storage = src.open().unwrap();
                    prop_assert_eq!(verified_list(&storage), before);
                }
            }
            src.assert_verified_pieces_match(&storage);
        }
        // Finishing the download from any state gives the source's bytes.
        for piece in 0..pieces {
            if !storage.verified().contains(piece) {
                src.write_piece(&mut storage, piece);
                prop_assert!(storage.verify_piece(piece).unwrap());
            }
        }
        prop_assert_eq!(std::fs::read(storage.path()).unwrap(), src.bytes.clone());
    }
}
