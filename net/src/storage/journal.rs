//! The resume journal, `<file>.peerlab-resume`: which pieces of the data
//! file were verified, so that a restarted node does not download them again.
//!
//! ```text
//! header  "PLRESUM1" | fingerprint [u8; 20]          (28 bytes)
//! record  piece u32 LE | check u32 LE                (8 bytes each, appended)
//! ```
//!
//! The fingerprint is the metainfo's [`info_hash`](crate::metainfo_file::info_hash):
//! a journal written for another metainfo is recognised as foreign. `check`
//! is a 32-bit FNV-1a of a fixed tag and the piece index, so a record of
//! zeros (what a crash can leave past the end of a file) or any other
//! damaged record does not pass. A record is appended with one `write` and
//! `fdatasync`ed before the piece counts as verified; a last record cut short
//! by a crash is detected by its length and ignored.
//!
//! The journal is never trusted on its own: [`super::Storage::open`]
//! re-hashes every piece it lists, then rewrites it (to a temporary file,
//! renamed over the old one) with just the pieces that passed — which also
//! drops a torn tail, so appends always start on a record boundary.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use peerlab_core::Bitfield;

const MAGIC: &[u8; 8] = b"PLRESUM1";
const HEADER_LEN: usize = MAGIC.len() + 20;
const RECORD_LEN: usize = 8;
/// Mixed into every record's check so that zeros never pass.
const CHECK_TAG: &[u8] = b"peerlab-resume";

/// The journal of the data file at `data`.
pub(super) fn path_for(data: &Path) -> PathBuf {
    let mut name = OsString::from(data.as_os_str());
    name.push(super::RESUME_SUFFIX);
    PathBuf::from(name)
}

/// What [`read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// There is no journal.
    Missing,
    /// The journal was written for another metainfo (or is not a journal).
    Foreign,
    /// The pieces the journal lists, to be re-checked before they are
    /// trusted, and how many records were damaged, torn or out of range.
    Pieces { claimed: Bitfield, ignored: u64 },
}

/// Reads the journal at `path` for a metainfo with `fingerprint` and
/// `pieces` pieces, streaming it record by record.
pub(super) fn read(path: &Path, fingerprint: &[u8; 20], pieces: u32) -> io::Result<Found> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut header = [0; HEADER_LEN];
    if fill(&mut reader, &mut header)? < HEADER_LEN
        || &header[..MAGIC.len()] != MAGIC
        || &header[MAGIC.len()..] != fingerprint
    {
        return Ok(Found::Foreign);
    }
    let mut claimed = Bitfield::new(pieces);
    let mut ignored = 0;
    let mut record = [0; RECORD_LEN];
    loop {
        match fill(&mut reader, &mut record)? {
            0 => break,
            RECORD_LEN => match decode(record) {
                Some(piece) if piece < pieces => {
                    claimed.insert(piece);
                }
                _ => ignored += 1,
            },
            _ => {
                // A torn last record.
                ignored += 1;
                break;
            }
        }
    }
    Ok(Found::Pieces { claimed, ignored })
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn check(piece: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in CHECK_TAG.iter().chain(&piece.to_le_bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The record saying `piece` is verified.
pub(super) fn encode(piece: u32) -> [u8; RECORD_LEN] {
    let mut record = [0; RECORD_LEN];
    record[..4].copy_from_slice(&piece.to_le_bytes());
    record[4..].copy_from_slice(&check(piece).to_le_bytes());
    record
}

/// The piece a record names, or `None` when the record is damaged.
fn decode(record: [u8; RECORD_LEN]) -> Option<u32> {
    let piece = u32::from_le_bytes(record[..4].try_into().expect("4 bytes"));
    let sum = u32::from_le_bytes(record[4..].try_into().expect("4 bytes"));
    (sum == check(piece)).then_some(piece)
}

/// An open journal, appended to as pieces are verified.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    /// Bytes known to be whole records (plus the header).
    len: u64,
}

impl Journal {
    /// Replaces the journal at `path` by one listing exactly `verified`,
    /// atomically (temporary file, fsync, rename, fsync of the directory),
    /// and opens it for appending.
    pub(super) fn rewrite(path: &Path, fingerprint: &[u8; 20], verified: &Bitfield) -> io::Result<Journal> {
        let mut tmp = OsString::from(path.as_os_str());
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(fingerprint)?;
        for piece in verified.iter() {
            out.write_all(&encode(piece))?;
        }
        out.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Journal { file, len })
    }

    /// Records that `piece` is verified, durably: the record is on disk when
    /// this returns `Ok`. On failure the journal is cut back to its last
    /// whole record, so later appends stay aligned.
    pub(super) fn append(&mut self, piece: u32) -> io::Result<()> {
        let result = self
            .file
            .write_all(&encode(piece))
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += RECORD_LEN as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}
