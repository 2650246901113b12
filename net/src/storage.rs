//! Storage for the real backend: one node's copy of one file on disk, the
//! driver's side of [`Command::StoreBlock`] and [`Command::VerifyPiece`].
//!
//! The file is never held in memory: blocks are written and read in place
//! with positioned I/O (`pwrite`/`pread`), and a piece is hashed from disk
//! 64 KiB at a time. The calls are synchronous; an async driver runs them on
//! a blocking thread (`tokio::task::spawn_blocking`).
//!
//! # What storage promises
//!
//! - **Only verified data is served.** [`Storage::read_block`] refuses a
//!   piece until [`Storage::verify_piece`] has matched it against its
//!   metainfo digest (SHA-1 for 20-byte digests, SHA-256 for 32-byte).
//! - **Verified data is never written again.** Blocks of a verified piece
//!   are ignored by [`Storage::write_block`], so neither a late duplicate nor
//!   a write failing half-way on a full disk can touch it.
//! - **A killed node resumes.** Each verified piece is appended to a journal,
//!   `<file>.peerlab-resume` (format in `storage/journal.rs`), and the
//!   journal is `fdatasync`ed before the piece counts as verified. Storage
//!   keeps no state in memory that the disk lacks, so dropping it is the
//!   same as the process being killed with SIGKILL.
//! - **Resume trusts the disk, not the journal.** [`Storage::open`] re-hashes
//!   every piece the journal lists and trusts only those that match: a
//!   journal can only save work, never vouch for bytes. This costs one read
//!   of the verified part of the file at start-up (far less than fetching
//!   it again) and also covers data the page cache lost in a power failure
//!   after the journal record was synced.
//!
//! # Example
//!
//! ```
//! use peerlab_core::swarm::metainfo::Metainfo;
//! use peerlab_net::metainfo_file::{create_metainfo, HashKind};
//! use peerlab_net::storage::Storage;
//!
//! let root = std::env::temp_dir().join(format!("peerlab-doc-storage-{}", std::process::id()));
//! std::fs::create_dir_all(&root)?;
//! let source = root.join("file.bin");
//! std::fs::write(&source, vec![7u8; 50_000])?;
//! let metainfo = create_metainfo(&source, 32_768, HashKind::Sha256)?;
//! let layout = metainfo.layout(16_384)?;
//!
//! let seed = Storage::open_seed(&source, &metainfo)?;
//! let mut client = Storage::open(&root.join("client"), &metainfo, layout)?;
//! for piece in 0..layout.pieces() {
//!     for i in 0..layout.blocks_in(piece) {
//!         let block = layout.block(piece, i);
//!         client.write_block(block, &seed.read_block(block)?)?;
//!     }
//!     assert!(client.verify_piece(piece)?);
//! }
//! assert!(client.verified().is_full());
//! # std::fs::remove_dir_all(&root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Command::StoreBlock`]: peerlab_core::Command::StoreBlock
//! [`Command::VerifyPiece`]: peerlab_core::Command::VerifyPiece

mod journal;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use peerlab_core::pieces::{DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE};
use peerlab_core::swarm::metainfo::Metainfo;
use peerlab_core::{Bitfield, BlockRef, PieceLayout};

use crate::metainfo_file::{self, HASH_CHUNK, HashKind, InvalidMetainfo};
use journal::{Found, Journal};

/// The suffix of the resume journal beside a download:
/// `<file>.peerlab-resume`.
pub const RESUME_SUFFIX: &str = ".peerlab-resume";

/// Why storage could not do what was asked. Each message names the file and
/// says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The data directory or a file in it cannot be created or written
    /// (permissions, read-only file system, a path through a regular file).
    #[error(
        "cannot write {}: {source}; choose a data directory this user can create and write",
        path.display()
    )]
    Unwritable {
        /// The directory or file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file system is full (ENOSPC) or the user's quota is exhausted.
    #[error(
        "the disk holding {} is full ({source}); free space on it and restart: \
         the pieces verified so far are kept and will not be downloaded again",
        path.display()
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A seed's file does not have the length its metainfo describes.
    #[error(
        "seed file {} is {actual} bytes but its metainfo describes {expected}: it is not the \
         file the metainfo was made from; serve that file or recreate the metainfo from this one",
        path.display()
    )]
    SeedWrongSize {
        /// The seed's file.
        path: PathBuf,
        /// Its length on disk.
        actual: u64,
        /// The metainfo's length.
        expected: u64,
    },
    /// Pieces of a seed's file do not match their digests.
    #[error(
        "seed file {} does not match its metainfo: {bad} of {pieces} pieces fail their hash \
         check, the first is piece {first}; serve the file the metainfo was made from, or \
         recreate the metainfo from this one",
        path.display()
    )]
    SeedCorrupt {
        /// The seed's file.
        path: PathBuf,
        /// Pieces that fail.
        bad: u32,
        /// Pieces in the file.
        pieces: u32,
        /// The first piece that fails.
        first: u32,
    },
    /// The data directory already holds a file of that name that storage
    /// did not create for this metainfo, and of the wrong size to be it.
    #[error(
        "{} already exists and is {actual} bytes, not the {expected} of the file being \
         downloaded, with no resume journal: it is some other file; move it away or choose \
         another data directory",
        path.display()
    )]
    ExistingFile {
        /// The file.
        path: PathBuf,
        /// Its length on disk.
        actual: u64,
        /// The metainfo's length.
        expected: u64,
    },
    /// The resume journal beside the file was written for another metainfo.
    #[error(
        "{} belongs to a download of another metainfo with the same file name; \
         delete {} and the journal to start over, or choose another data directory",
        journal.display(),
        path.display()
    )]
    ForeignResume {
        /// The journal.
        journal: PathBuf,
        /// The data file.
        path: PathBuf,
    },
    /// The metainfo (or the layout given with it) describes no file that
    /// could be stored and verified.
    #[error("the metainfo of {name:?} is inconsistent: {source}; recreate it from the file")]
    InconsistentMetainfo {
        /// The metainfo's file name.
        name: String,
        /// The field at fault.
        source: InvalidMetainfo,
    },
    /// A block that is not one of the file's blocks.
    #[error(
        "block (piece {}, offset {}, {} bytes) is not a block of {}",
        block.piece, block.offset, block.len, path.display()
    )]
    InvalidBlock {
        /// The data file.
        path: PathBuf,
        /// The block.
        block: BlockRef,
    },
    /// A payload or buffer whose length is not the block's.
    #[error(
        "block (piece {}, offset {}) is {} bytes but its buffer has {got}",
        block.piece, block.offset, block.len
    )]
    PayloadLength {
        /// The block.
        block: BlockRef,
        /// The buffer's length.
        got: usize,
    },
    /// A piece index past the end of the file.
    #[error("piece {piece} does not exist: {} has {pieces} pieces", path.display())]
    NoSuchPiece {
        /// The data file.
        path: PathBuf,
        /// The piece asked for.
        piece: u32,
        /// Pieces in the file.
        pieces: u32,
    },
    /// A read of a piece that is not verified: unverified data is never served.
    #[error(
        "piece {piece} of {} is not verified; only verified pieces are served",
        path.display()
    )]
    NotVerified {
        /// The data file.
        path: PathBuf,
        /// The piece.
        piece: u32,
    },
    /// A write to a seed, whose file is opened read-only.
    #[error("{} is served by a seed, read-only; a seed's file is never written", path.display())]
    ReadOnly {
        /// The seed's file.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What storage was doing ("read", "write", "open", …).
        op: &'static str,
        /// What the system said.
        source: io::Error,
    },
}

impl StorageError {
    /// Classifies a failed file operation: a full disk or quota
    /// ([`io::ErrorKind::StorageFull`], [`io::ErrorKind::QuotaExceeded`]) is
    /// [`StorageError::DiskFull`], a refusal to write (permissions, read-only
    /// file system, a path through a regular file) is
    /// [`StorageError::Unwritable`], anything else [`StorageError::Io`].
    pub fn from_io(path: &Path, op: &'static str, source: io::Error) -> StorageError {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StorageError::DiskFull { path, source }
            }
            io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::NotADirectory => StorageError::Unwritable { path, source },
            _ => StorageError::Io { path, op, source },
        }
    }

    /// Whether the error is [`StorageError::DiskFull`].
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::DiskFull { .. })
    }
}

/// The data file, with (in tests) a simulated amount of free disk space.
#[derive(Debug)]
struct DataFile {
    file: File,
    /// Bytes that may still be written before writes fail with ENOSPC.
    #[cfg(test)]
    free: Option<u64>,
}

impl DataFile {
    fn new(file: File) -> DataFile {
        DataFile {
            file,
            #[cfg(test)]
            free: None,
        }
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(free) = &mut self.free {
            if buf.len() as u64 > *free {
                // Like a real full disk: part of the write lands, then ENOSPC.
                let n = *free as usize;
                self.file.write_all_at(&buf[..n], offset)?;
                *free = 0;
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            *free -= buf.len() as u64;
        }
        self.file.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// One node's copy of one file, on disk. See the [module docs](self).
#[derive(Debug)]
pub struct Storage {
    path: PathBuf,
    data: DataFile,
    /// The resume journal; `None` for a seed.
    journal: Option<Journal>,
    metainfo: Metainfo,
    layout: PieceLayout,
    hash: HashKind,
    verified: Bitfield,
}

impl Storage {
    /// Opens the download of `metainfo`'s file in `dir`, as
    /// `dir/<metainfo.name>`, requested in blocks of `layout`: creates the
    /// directory and a preallocated (sparse) file, or reopens them to resume.
    ///
    /// On a resume the pieces listed in the resume journal are re-hashed and
    /// only those that match count as verified (see the [module docs](self)).
    /// A file already there without a journal is adopted if it has the right
    /// length — every piece is checked, so a finished copy is not fetched
    /// again — and refused otherwise ([`StorageError::ExistingFile`]).
    pub fn open(dir: &Path, metainfo: &Metainfo, layout: PieceLayout) -> Result<Storage, StorageError> {
        let hash = check_metainfo(metainfo, &layout)?;
        std::fs::create_dir_all(dir).map_err(|source| {
            match StorageError::from_io(dir, "create", source) {
                StorageError::Io { path, source, .. } => StorageError::Unwritable { path, source },
                other => other,
            }
        })?;
        let path = dir.join(&metainfo.name);
        let journal_path = journal::path_for(&path);
        let fingerprint = metainfo_file::info_hash(metainfo);
        let pieces = layout.pieces();

        let found = journal::read(&journal_path, &fingerprint, pieces)
            .map_err(|e| StorageError::from_io(&journal_path, "read", e))?;
        let existing = match std::fs::metadata(&path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::from_io(&path, "inspect", e)),
        };
        let claimed = match found {
            Found::Foreign => {
                return Err(StorageError::ForeignResume {
                    journal: journal_path,
                    path,
                });
            }
            Found::Pieces { claimed, .. } => claimed,
            Found::Missing => match existing {
                None => {
                    // The journal goes first: from now on the data file is
                    // known to be this download's, whatever its length.
                    Journal::rewrite(&journal_path, &fingerprint, &Bitfield::new(pieces))
                        .map_err(|e| StorageError::from_io(&journal_path, "write", e))?;
                    Bitfield::new(pieces)
                }
                Some(len) if len == layout.file_len() => Bitfield::full(pieces),
                Some(actual) => {
                    return Err(StorageError::ExistingFile {
                        path,
                        actual,
                        expected: layout.file_len(),
                    });
                }
            },
        };

        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::from_io(&path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::from_io(&path, "inspect", e))?
            .len();
        if len != layout.file_len() {
            file.set_len(layout.file_len())
                .map_err(|e| StorageError::from_io(&path, "preallocate", e))?;
        }
        let mut storage = Storage {
            path,
            data: DataFile::new(file),
            journal: None,
            metainfo: metainfo.clone(),
            layout,
            hash,
            verified: Bitfield::new(pieces),
        };
        for piece in claimed.iter() {
            if storage.piece_matches(piece)? {
                storage.verified.insert(piece);
            }
        }
        storage.journal = Some(
            Journal::rewrite(&journal_path, &fingerprint, &storage.verified)
                .map_err(|e| StorageError::from_io(&journal_path, "write", e))?,
        );
        Ok(storage)
    }

    /// Opens the complete file at `path` to serve it as a seed, read-only,
    /// after checking every piece against `metainfo` (one read of the file).
    /// Blocks are served in any size up to [`MAX_BLOCK_SIZE`].
    pub fn open_seed(path: &Path, metainfo: &Metainfo) -> Result<Storage, StorageError> {
        let mut storage = Storage::open_seed_trusted(path, metainfo)?;
        let pieces = storage.layout.pieces();
        let mut bad = 0;
        let mut first = None;
        for piece in 0..pieces {
            if !storage.piece_matches(piece)? {
                bad += 1;
                first.get_or_insert(piece);
            }
        }
        if let Some(first) = first {
            storage.verified = Bitfield::new(pieces);
            return Err(StorageError::SeedCorrupt {
                path: storage.path,
                bad,
                pieces,
                first,
            });
        }
        Ok(storage)
    }

    /// Like [`Storage::open_seed`] but trusts the file without hashing it,
    /// for a seed whose metainfo was just created from this very file. Its
    /// length is still checked.
    pub fn open_seed_trusted(path: &Path, metainfo: &Metainfo) -> Result<Storage, StorageError> {
        let layout = metainfo
            .layout(DEFAULT_BLOCK_SIZE)
            .map_err(|e| inconsistent(metainfo, "length", e.to_string()))?;
        let hash = check_metainfo(metainfo, &layout)?;
        let file = File::open(path).map_err(|e| StorageError::from_io(path, "open", e))?;
        let actual = file
            .metadata()
            .map_err(|e| StorageError::from_io(path, "inspect", e))?
            .len();
        if actual != metainfo.length {
            return Err(StorageError::SeedWrongSize {
                path: path.to_path_buf(),
                actual,
                expected: metainfo.length,
            });
        }
        Ok(Storage {
            path: path.to_path_buf(),
            data: DataFile::new(file),
            journal: None,
            metainfo: metainfo.clone(),
            layout,
            hash,
            verified: Bitfield::full(layout.pieces()),
        })
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The metainfo the file is checked against.
    pub fn metainfo(&self) -> &Metainfo {
        &self.metainfo
    }

    /// The layout blocks are written in.
    pub fn layout(&self) -> &PieceLayout {
        &self.layout
    }

    /// The digest pieces are checked with.
    pub fn hash_kind(&self) -> HashKind {
        self.hash
    }

    /// Whether this is a seed's read-only storage.
    pub fn is_seed(&self) -> bool {
        self.journal.is_none()
    }

    /// The pieces verified so far: the only ones that may be read, counted
    /// or advertised.
    pub fn verified(&self) -> &Bitfield {
        &self.verified
    }

    /// Writes `payload` as `block`, which must be exactly one of the
    /// layout's blocks ([`PieceLayout::is_valid_block`]), with a payload of
    /// `block.len` bytes. The block counts once its piece is verified.
    ///
    /// A block of an already verified piece is ignored (`Ok`): it is the
    /// late duplicate of an end-game request, and verified data is never
    /// written again. A write that fails — [`StorageError::DiskFull`] above
    /// all — may have left part of the block in its (unverified) piece; write
    /// the block again, or let verification reject the piece.
    pub fn write_block(&mut self, block: BlockRef, payload: &[u8]) -> Result<(), StorageError> {
        if self.is_seed() {
            return Err(StorageError::ReadOnly {
                path: self.path.clone(),
            });
        }
        if !self.layout.is_valid_block(block) {
            return Err(StorageError::InvalidBlock {
                path: self.path.clone(),
                block,
            });
        }
        if payload.len() != block.len as usize {
            return Err(StorageError::PayloadLength {
                block,
                got: payload.len(),
            });
        }
        if self.verified.contains(block.piece) {
            return Ok(());
        }
        let offset = self.layout.piece_offset(block.piece) + u64::from(block.offset);
        self.data
            .write_all_at(payload, offset)
            .map_err(|e| StorageError::from_io(&self.path, "write", e))
    }

    /// Reads `block` of a verified piece into `buf`, which must be
    /// `block.len` bytes long. Any range of 1 to [`MAX_BLOCK_SIZE`] bytes
    /// inside one piece may be read. Unverified pieces are refused
    /// ([`StorageError::NotVerified`]).
    pub fn read_block_into(&self, block: BlockRef, buf: &mut [u8]) -> Result<(), StorageError> {
        self.check_readable(block)?;
        if buf.len() != block.len as usize {
            return Err(StorageError::PayloadLength {
                block,
                got: buf.len(),
            });
        }
        let offset = self.layout.piece_offset(block.piece) + u64::from(block.offset);
        self.data
            .read_exact_at(buf, offset)
            .map_err(|e| StorageError::from_io(&self.path, "read", e))
    }

    /// Reads `block` of a verified piece, as [`Storage::read_block_into`].
    pub fn read_block(&self, block: BlockRef) -> Result<Vec<u8>, StorageError> {
        // Checked before allocating: `block.len` may come from a peer.
        self.check_readable(block)?;
        let mut buf = vec![0; block.len as usize];
        self.read_block_into(block, &mut buf)?;
        Ok(buf)
    }

    /// Hashes `piece` from disk and compares it with its digest. On a match
    /// the piece is recorded in the resume journal (durably) and then counts
    /// as verified: `Ok(true)`. On a mismatch it stays unverified and
    /// unreadable, and its blocks may be written again: `Ok(false)`. A piece
    /// already verified answers `Ok(true)` at once.
    pub fn verify_piece(&mut self, piece: u32) -> Result<bool, StorageError> {
        self.check_piece(piece)?;
        if self.verified.contains(piece) {
            return Ok(true);
        }
        if !self.piece_matches(piece)? {
            return Ok(false);
        }
        if let Some(journal) = &mut self.journal {
            journal
                .append(piece)
                .map_err(|e| StorageError::from_io(&journal::path_for(&self.path), "write", e))?;
        }
        self.verified.insert(piece);
        Ok(true)
    }

    /// A digest of each block of `piece` as it is on disk, checked or not:
    /// the first 8 bytes of its SHA-1. Equal digests mean equal bytes (a
    /// sender would need a 64-bit second preimage to pass bad bytes as
    /// good), which is all a swarm peer needs to tell which neighbour sent
    /// a bad block of a failed piece (`peerlab_core::swarm::blame`).
    pub fn block_digests(&self, piece: u32) -> Result<Vec<u64>, StorageError> {
        use sha1::{Digest, Sha1};
        self.check_piece(piece)?;
        let mut buf = vec![0; self.layout.block_len() as usize];
        (0..self.layout.blocks_in(piece))
            .map(|i| {
                let block = self.layout.block(piece, i);
                let bytes = &mut buf[..block.len as usize];
                let offset = self.layout.piece_offset(piece) + u64::from(block.offset);
                self.data
                    .read_exact_at(bytes, offset)
                    .map_err(|e| StorageError::from_io(&self.path, "read", e))?;
                let hash = Sha1::digest(bytes);
                let mut first = [0; 8];
                first.copy_from_slice(&hash[..8]);
                Ok(u64::from_be_bytes(first))
            })
            .collect()
    }

    /// Whether `piece`'s bytes on disk match its digest, hashed in chunks of
    /// at most 64 KiB.
    fn piece_matches(&self, piece: u32) -> Result<bool, StorageError> {
        let size = u64::from(self.layout.piece_size(piece));
        let start = self.layout.piece_offset(piece);
        let mut buf = vec![0; HASH_CHUNK.min(size as usize)];
        let mut hasher = self.hash.hasher();
        let mut done = 0;
        while done < size {
            let n = (size - done).min(buf.len() as u64) as usize;
            self.data
                .read_exact_at(&mut buf[..n], start + done)
                .map_err(|e| StorageError::from_io(&self.path, "read", e))?;
            hasher.update(&buf[..n]);
            done += n as u64;
        }
        Ok(hasher.finish() == self.metainfo.pieces[piece as usize])
    }

    /// Checks that `block` is a readable range of a verified piece.
    /// `piece` is one of the file's pieces, or [`StorageError::NoSuchPiece`].
    fn check_piece(&self, piece: u32) -> Result<(), StorageError> {
        let pieces = self.layout.pieces();
        if piece >= pieces {
            return Err(StorageError::NoSuchPiece {
                path: self.path.clone(),
                piece,
                pieces,
            });
        }
        Ok(())
    }

    fn check_readable(&self, block: BlockRef) -> Result<(), StorageError> {
        let in_file = block.piece < self.layout.pieces()
            && (1..=MAX_BLOCK_SIZE).contains(&block.len)
            && u64::from(block.offset) + u64::from(block.len)
                <= u64::from(self.layout.piece_size(block.piece));
        if !in_file {
            return Err(StorageError::InvalidBlock {
                path: self.path.clone(),
                block,
            });
        }
        if !self.verified.contains(block.piece) {
            return Err(StorageError::NotVerified {
                path: self.path.clone(),
                piece: block.piece,
            });
        }
        Ok(())
    }

    /// Test hook: after this, only `bytes` more bytes fit on the simulated
    /// disk; the write that overflows it lands in part, then fails with ENOSPC.
    #[cfg(test)]
    fn set_free_space(&mut self, bytes: u64) {
        self.data.free = Some(bytes);
    }
}

fn inconsistent(metainfo: &Metainfo, field: &str, problem: String) -> StorageError {
    StorageError::InconsistentMetainfo {
        name: metainfo.name.clone(),
        source: InvalidMetainfo {
            field: field.to_string(),
            problem,
        },
    }
}

/// Checks `metainfo` and that `layout` is its layout; returns its digest kind.
fn check_metainfo(metainfo: &Metainfo, layout: &PieceLayout) -> Result<HashKind, StorageError> {
    let hash = metainfo_file::validate(metainfo).map_err(|source| StorageError::InconsistentMetainfo {
        name: metainfo.name.clone(),
        source,
    })?;
    if layout.file_len() != metainfo.length {
        return Err(inconsistent(
            metainfo,
            "length",
            format!(
                "is {} but the layout is for {} bytes",
                metainfo.length,
                layout.file_len()
            ),
        ));
    }
    if layout.piece_len() != metainfo.piece_length {
        return Err(inconsistent(
            metainfo,
            "piece_length",
            format!(
                "is {} but the layout has pieces of {} bytes",
                metainfo.piece_length,
                layout.piece_len()
            ),
        ));
    }
    Ok(hash)
}
