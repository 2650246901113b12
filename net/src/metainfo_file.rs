//! Metainfo files: hashing a file into a [`Metainfo`], saving it next to the
//! file as `<file>.peerlab.json`, loading it back, and the info hash that
//! names the file in a BEP 3 handshake.
//!
//! A metainfo file is the JSON of core's [`Metainfo`] with each piece digest
//! written as a lowercase hex string:
//!
//! ```json
//! {
//!   "name": "movie.mkv",
//!   "length": 600000,
//!   "piece_length": 262144,
//!   "pieces": ["a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "…", "…"]
//! }
//! ```
//!
//! Every digest is 40 hex digits (SHA-1, as in BEP 3) or 64 (SHA-256), all of
//! one kind, one per piece. Unknown fields are rejected, and every error names
//! the field at fault.
//!
//! # Example
//!
//! ```
//! use peerlab_net::metainfo_file::{self, HashKind};
//!
//! let dir = std::env::temp_dir().join(format!("peerlab-doc-metainfo-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let file = dir.join("hello.txt");
//! std::fs::write(&file, b"hello, peerlab")?;
//!
//! let metainfo = metainfo_file::create_metainfo(&file, 4, HashKind::Sha1)?;
//! assert_eq!(metainfo.pieces.len(), 4); // 14 bytes in pieces of 4
//! let saved = metainfo_file::save(&metainfo, &metainfo_file::metainfo_path(&file))?;
//! assert_eq!(metainfo_file::load(&saved)?, metainfo);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use peerlab_core::swarm::metainfo::Metainfo;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The suffix [`metainfo_path`] appends to a file's name.
pub const METAINFO_SUFFIX: &str = ".peerlab.json";

/// The largest metainfo file [`load`] reads, in bytes: enough for a million
/// pieces of SHA-256 digests with room to spare.
pub const MAX_METAINFO_FILE_LEN: u64 = 128 * 1024 * 1024;

/// How many bytes are read and hashed at a time, so that hashing a piece
/// needs this much memory whatever the piece length.
pub(crate) const HASH_CHUNK: usize = 64 * 1024;

/// The digest a metainfo's pieces are checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// SHA-1, 20-byte digests (BitTorrent's, BEP 3).
    Sha1,
    /// SHA-256, 32-byte digests.
    Sha256,
}

impl HashKind {
    /// Bytes in one digest of this kind.
    pub fn digest_len(self) -> usize {
        match self {
            HashKind::Sha1 => 20,
            HashKind::Sha256 => 32,
        }
    }

    /// The kind whose digests are `len` bytes long, if any.
    pub fn from_digest_len(len: usize) -> Option<HashKind> {
        match len {
            20 => Some(HashKind::Sha1),
            32 => Some(HashKind::Sha256),
            _ => None,
        }
    }

    /// A fresh incremental hasher of this kind.
    pub(crate) fn hasher(self) -> PieceHasher {
        match self {
            HashKind::Sha1 => PieceHasher::Sha1(Sha1::new()),
            HashKind::Sha256 => PieceHasher::Sha256(Sha256::new()),
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashKind::Sha1 => "SHA-1",
            HashKind::Sha256 => "SHA-256",
        })
    }
}

/// An incremental piece hasher of either kind.
#[derive(Clone, Debug)]
pub(crate) enum PieceHasher {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl PieceHasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            PieceHasher::Sha1(h) => h.update(bytes),
            PieceHasher::Sha256(h) => h.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            PieceHasher::Sha1(h) => h.finalize().to_vec(),
            PieceHasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// A metainfo that no file can match, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct InvalidMetainfo {
    /// The field, as a JSON path (`length`, `pieces[3]`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl InvalidMetainfo {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        InvalidMetainfo {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Checks that `metainfo` describes a file the real backend can store and
/// verify, and returns its digest kind: `name` is one plain file name (no
/// directory, so that a metainfo from the network cannot write outside the
/// data directory) and not one of the [`RESERVED_NAMES`] a node gives its own
/// files there, `length` and `piece_length` are not zero, and there is
/// exactly one digest per piece, all 20 bytes (SHA-1) or all 32 (SHA-256).
pub fn validate(metainfo: &Metainfo) -> Result<HashKind, InvalidMetainfo> {
    check_name(&metainfo.name)?;
    if metainfo.length == 0 {
        return Err(InvalidMetainfo::new("length", "is 0: the file is empty"));
    }
    if metainfo.piece_length == 0 {
        return Err(InvalidMetainfo::new("piece_length", "is 0"));
    }
    let pieces = metainfo.length.div_ceil(u64::from(metainfo.piece_length));
    if pieces > u64::from(u32::MAX) {
        return Err(InvalidMetainfo::new(
            "piece_length",
            format!("makes {pieces} pieces, more than {} supported", u32::MAX),
        ));
    }
    if metainfo.pieces.len() as u64 != pieces {
        return Err(InvalidMetainfo::new(
            "pieces",
            format!(
                "has {} digests but {} bytes in pieces of {} make {pieces} pieces",
                metainfo.pieces.len(),
                metainfo.length,
                metainfo.piece_length
            ),
        ));
    }
    let first = metainfo.pieces[0].len();
    let kind = HashKind::from_digest_len(first).ok_or_else(|| {
        InvalidMetainfo::new(
            "pieces[0]",
            format!("is a digest of {first} bytes, expected 20 (SHA-1) or 32 (SHA-256)"),
        )
    })?;
    if let Some(i) = metainfo.pieces.iter().position(|d| d.len() != first) {
        return Err(InvalidMetainfo::new(
            format!("pieces[{i}]"),
            format!(
                "is a digest of {} bytes, but pieces[0] is a {kind} digest of {first}",
                metainfo.pieces[i].len()
            ),
        ));
    }
    Ok(kind)
}

fn check_name(name: &str) -> Result<(), InvalidMetainfo> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name == "." || name == ".." {
        "is not a file name"
    } else if name.contains(['/', '\\', '\0']) {
        "must be a plain file name, without a directory"
    } else if RESERVED_NAMES.contains(&name) || name.ends_with(crate::storage::RESUME_SUFFIX) {
        "is a name a node gives its own files in the data directory (its events, its log, \
         its misbehaviour control file, a download's resume journal): rename the file"
    } else {
        return Ok(());
    };
    Err(InvalidMetainfo::new("name", format!("{name:?} {problem}")))
}

/// What a node writes next to the file in its data directory: its events
/// (one JSON line each), run by `peerlab run` on a real backend its log, and
/// the control file a driver writes a misbehaviour fault to. A metainfo may
/// not name its file so.
pub const RESERVED_NAMES: [&str; 3] = [EVENTS_FILE, LOG_FILE, crate::misbehave::CONTROL_FILE];

/// A node's events in its data directory.
pub const EVENTS_FILE: &str = "events.jsonl";

/// A node's log in its data directory, when `peerlab run` starts it.
pub const LOG_FILE: &str = "node.log";

/// Why a metainfo could not be created, saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetainfoError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file could not be written.
    #[error(
        "cannot write {}: {source}; check that its directory exists and is writable",
        path.display()
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file to describe is empty, or its name is not valid UTF-8.
    #[error("cannot describe {}: {problem}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file's length changed while it was being hashed.
    #[error(
        "{} changed while it was being hashed (expected {expected} bytes); \
         wait until nothing writes to it and try again",
        path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its length when hashing started.
        expected: u64,
    },
    /// The metainfo file is larger than [`MAX_METAINFO_FILE_LEN`].
    #[error(
        "{} is {len} bytes, more than the {MAX_METAINFO_FILE_LEN} a metainfo file may have; \
         is it really a .peerlab.json file?",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The metainfo file is not valid JSON of the expected shape, or describes
    /// no file that could exist.
    #[error("{} is not a valid metainfo file: {source}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The field at fault and what is wrong with it.
        source: InvalidMetainfo,
    },
    /// The metainfo to save or describe is itself inconsistent.
    #[error("the metainfo for {} is inconsistent: {source}", path.display())]
    Invalid {
        /// The file it was to be saved to or created from.
        path: PathBuf,
        /// The field at fault and what is wrong with it.
        source: InvalidMetainfo,
    },
}

impl MetainfoError {
    /// The field at fault for [`MetainfoError::Malformed`] and
    /// [`MetainfoError::Invalid`].
    pub fn field(&self) -> Option<&str> {
        match self {
            MetainfoError::Malformed { source, .. } | MetainfoError::Invalid { source, .. } => {
                Some(&source.field)
            }
            _ => None,
        }
    }
}

/// Describes the file at `path`: its name, length, and the `hash` digest of
/// each piece of `piece_length` bytes. The file is read once, in chunks of
/// at most 64 KiB, so memory stays bounded whatever the file or piece size.
pub fn create_metainfo(path: &Path, piece_length: u32, hash: HashKind) -> Result<Metainfo, MetainfoError> {
    let read_err = |source| MetainfoError::Read {
        path: path.to_path_buf(),
        source,
    };
    let unsupported = |problem: &str| MetainfoError::Unsupported {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let name = path
        .file_name()
        .ok_or_else(|| unsupported("the path names no file"))?
        .to_str()
        .ok_or_else(|| unsupported("its name is not valid UTF-8"))?
        .to_string();
    let mut file = File::open(path).map_err(read_err)?;
    let length = file.metadata().map_err(read_err)?.len();
    if length == 0 {
        return Err(unsupported("the file is empty: there is nothing to distribute"));
    }
    if piece_length == 0 {
        return Err(unsupported("the piece length is 0"));
    }
    let count = length.div_ceil(u64::from(piece_length));
    let mut pieces = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 20));
    let mut buf = vec![0; HASH_CHUNK];
    let mut left = length;
    while left > 0 {
        let mut piece_left = left.min(u64::from(piece_length));
        left -= piece_left;
        let mut hasher = hash.hasher();
        while piece_left > 0 {
            let n = piece_left.min(HASH_CHUNK as u64) as usize;
            file.read_exact(&mut buf[..n]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    MetainfoError::Changed {
                        path: path.to_path_buf(),
                        expected: length,
                    }
                } else {
                    read_err(e)
                }
            })?;
            hasher.update(&buf[..n]);
            piece_left -= n as u64;
        }
        pieces.push(hasher.finish());
    }
    // A file that grew while it was read would be described only in part.
    if file.read(&mut buf[..1]).map_err(read_err)? != 0 {
        return Err(MetainfoError::Changed {
            path: path.to_path_buf(),
            expected: length,
        });
    }
    let metainfo = Metainfo {
        name,
        length,
        piece_length,
        pieces,
    };
    validate(&metainfo).map_err(|source| MetainfoError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(metainfo)
}

/// Where the metainfo of `file` is kept: `<file>.peerlab.json`.
pub fn metainfo_path(file: &Path) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(METAINFO_SUFFIX);
    PathBuf::from(name)
}

/// The JSON shape of a metainfo file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetainfoJson {
    name: String,
    length: u64,
    piece_length: u32,
    pieces: Vec<String>,
}

/// Writes `metainfo` to `path` as JSON (see the [module docs](self)) and
/// returns `path`. The file is replaced atomically: a reader sees the old
/// file or the new one, never half of one.
pub fn save(metainfo: &Metainfo, path: &Path) -> Result<PathBuf, MetainfoError> {
    validate(metainfo).map_err(|source| MetainfoError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    let json = MetainfoJson {
        name: metainfo.name.clone(),
        length: metainfo.length,
        piece_length: metainfo.piece_length,
        pieces: metainfo.pieces.iter().map(|d| hex_encode(d)).collect(),
    };
    let mut text = serde_json::to_vec_pretty(&json).expect("a metainfo serializes");
    text.push(b'\n');
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write_err = |source| MetainfoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(&tmp).map_err(write_err)?;
    file.write_all(&text).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    Ok(path.to_path_buf())
}

/// Reads the metainfo file at `path` (see the [module docs](self)). A
/// malformed file is a [`MetainfoError::Malformed`] naming the field.
pub fn load(path: &Path) -> Result<Metainfo, MetainfoError> {
    let read_err = |source| MetainfoError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_METAINFO_FILE_LEN {
        return Err(MetainfoError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    let mut text = Vec::with_capacity(len as usize);
    file.take(MAX_METAINFO_FILE_LEN)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    parse(&text).map_err(|source| MetainfoError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the JSON text of a metainfo file (what [`load`] reads) and
/// [`validate`]s it.
pub fn parse(text: &[u8]) -> Result<Metainfo, InvalidMetainfo> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let json: MetainfoJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "(top level)".to_string(),
            p => p,
        };
        InvalidMetainfo::new(field, e.inner().to_string())
    })?;
    de.end()
        .map_err(|e| InvalidMetainfo::new("(top level)", e.to_string()))?;
    let pieces = json
        .pieces
        .iter()
        .enumerate()
        .map(|(i, digest)| {
            hex_decode(digest).map_err(|problem| InvalidMetainfo::new(format!("pieces[{i}]"), problem))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metainfo = Metainfo {
        name: json.name,
        length: json.length,
        piece_length: json.piece_length,
        pieces,
    };
    validate(&metainfo)?;
    Ok(metainfo)
}

/// Lowercase hex of `bytes`.
fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The bytes of a hex digest (either case), or what is wrong with it.
fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    let digit = |i: usize, c: u8| {
        char::from(c)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("character {:?} at {i} is not a hex digit", char::from(c)))
    };
    let bytes = text.as_bytes();
    if !bytes.is_ascii() {
        return Err("is not a hex string".to_string());
    }
    if bytes.len() != 40 && bytes.len() != 64 {
        return Err(format!(
            "has {} hex digits, expected 40 (SHA-1) or 64 (SHA-256)",
            bytes.len()
        ));
    }
    bytes
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| Ok((digit(2 * i, pair[0])? << 4) | digit(2 * i + 1, pair[1])?))
        .collect()
}

/// The 20-byte info hash that names `metainfo`'s file in a BEP 3 handshake
/// ([`crate::wire::Handshake::info_hash`]).
///
/// It is the SHA-1 of the metainfo's canonical encoding: the bencoded BEP 3
/// info dictionary of a single-file torrent, with its keys in sorted order,
///
/// ```text
/// d 6:length i<length>e 4:name <len>:<name> 12:piece length i<piece_length>e
///   6:pieces <len>:<every digest, concatenated> e          (without the spaces)
/// ```
///
/// so for SHA-1 digests it equals the info hash of a `.torrent` holding
/// exactly these four keys, and real BitTorrent clients can recognise the
/// swarm. SHA-256 digests are encoded the same way (32 bytes each).
pub fn info_hash(metainfo: &Metainfo) -> [u8; 20] {
    let mut h = Sha1::new();
    let digests: usize = metainfo.pieces.iter().map(Vec::len).sum();
    h.update(format!(
        "d6:lengthi{}e4:name{}:",
        metainfo.length,
        metainfo.name.len()
    ));
    h.update(metainfo.name.as_bytes());
    h.update(format!(
        "12:piece lengthi{}e6:pieces{digests}:",
        metainfo.piece_length
    ));
    for digest in &metainfo.pieces {
        h.update(digest);
    }
    h.update(b"e");
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unique scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "peerlab-metainfo-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn create_hashes_each_piece_and_round_trips_through_json() {
        let scratch = Scratch::new("roundtrip");
        let data = content(100_000);
        let file = scratch.0.join("data.bin");
        std::fs::write(&file, &data).unwrap();
        for kind in [HashKind::Sha1, HashKind::Sha256] {
            let m = create_metainfo(&file, 40_000, kind).unwrap();
            assert_eq!(
                (m.name.as_str(), m.length, m.piece_length),
                ("data.bin", 100_000, 40_000)
            );
            assert_eq!(m.pieces.len(), 3);
            for (i, chunk) in data.chunks(40_000).enumerate() {
                let mut h = kind.hasher();
                h.update(chunk);
                assert_eq!(m.pieces[i], h.finish(), "{kind} digest of piece {i}");
            }
            let path = save(&m, &metainfo_path(&file)).unwrap();
            assert!(path.to_str().unwrap().ends_with("data.bin.peerlab.json"));
            assert_eq!(load(&path).unwrap(), m);
        }
    }

    #[test]
    fn sha1_digest_matches_a_known_vector() {
        let scratch = Scratch::new("vector");
        let file = scratch.0.join("abc");
        std::fs::write(&file, b"abc").unwrap();
        let m = create_metainfo(&file, 1024, HashKind::Sha1).unwrap();
        assert_eq!(
            hex_encode(&m.pieces[0]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn empty_file_is_refused() {
        let scratch = Scratch::new("empty");
        let file = scratch.0.join("empty");
        std::fs::write(&file, b"").unwrap();
        let err = create_metainfo(&file, 1024, HashKind::Sha1).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    fn malformed(text: &str) -> MetainfoError {
        let scratch = Scratch::new("malformed");
        let path = scratch.0.join("x.peerlab.json");
        std::fs::write(&path, text).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, MetainfoError::Malformed { .. }), "{err}");
        assert!(
            err.to_string().contains("x.peerlab.json"),
            "names the file: {err}"
        );
        err
    }

    #[test]
    fn malformed_files_name_the_field() {
        let d = "a".repeat(40);
        let ok = format!(r#"{{"name":"f","length":10,"piece_length":4,"pieces":["{d}","{d}","{d}"]}}"#);
        let scratch = Scratch::new("ok");
        let path = scratch.0.join("ok.json");
        std::fs::write(&path, &ok).unwrap();
        assert_eq!(load(&path).unwrap().pieces.len(), 3);

        let cases = [
            (ok.replace(r#""length":10"#, r#""length":"ten""#), "length"),
            (ok.replace(r#","piece_length":4"#, ""), "(top level)"),
            (ok.replace(r#""name":"f""#, r#""name":"../f""#), "name"),
            (ok.replace(r#""name":"f""#, r#""name":"events.jsonl""#), "name"),
            (ok.replace(r#""name":"f""#, r#""name":"node.log""#), "name"),
            (ok.replace(r#""name":"f""#, r#""name":"misbehave""#), "name"),
            (
                ok.replace(r#""name":"f""#, r#""name":"g.peerlab-resume""#),
                "name",
            ),
            (ok.replace(r#""length":10"#, r#""length":0"#), "length"),
            (ok.replace(r#""piece_length":4"#, r#""piece_length":5"#), "pieces"),
            (ok.replacen(&d, &"g".repeat(40), 1), "pieces[0]"),
            (ok.replacen(&d, &"a".repeat(39), 2), "pieces[0]"),
            (ok.replacen(&d, &"a".repeat(64), 2), "pieces[2]"),
            (ok.replace(r#""name":"f""#, r#""name":"f","extra":1"#), "extra"),
            (format!("{ok} trailing"), "(top level)"),
        ];
        for (text, field) in cases {
            let err = malformed(&text);
            assert_eq!(err.field(), Some(field), "{text}: {err}");
        }
        // The field is named in the message, as a user sees it.
        let z = "z".repeat(40);
        let err = malformed(&format!(
            r#"{{"name":"f","length":10,"piece_length":4,"pieces":["{d}","{d}","{z}"]}}"#
        ));
        assert!(err.to_string().contains("pieces[2]"), "{err}");
        assert!(
            malformed(&ok.replace(r#""length":10"#, r#""length":"ten""#))
                .to_string()
                .contains("length")
        );
    }

    #[test]
    fn mixed_digest_kinds_are_inconsistent() {
        let m = Metainfo {
            name: "f".into(),
            length: 10,
            piece_length: 5,
            pieces: vec![vec![0; 20], vec![0; 32]],
        };
        let err = validate(&m).unwrap_err();
        assert_eq!(err.field, "pieces[1]");
        let m = Metainfo::without_hashes("f", 10, 5).unwrap();
        assert_eq!(validate(&m).unwrap_err().field, "pieces[0]");
    }

    #[test]
    fn hex_round_trips_and_accepts_uppercase() {
        let bytes: Vec<u8> = (0..32).map(|i| i * 8).collect();
        assert_eq!(hex_decode(&hex_encode(&bytes)).unwrap(), bytes);
        assert_eq!(hex_decode(&hex_encode(&bytes).to_uppercase()).unwrap(), bytes);
        assert!(hex_decode(&"é".repeat(20)).is_err());
    }

    #[test]
    fn info_hash_is_the_bep3_info_dictionary_hash() {
        let m = Metainfo {
            name: "a.txt".into(),
            length: 5,
            piece_length: 16_384,
            pieces: vec![vec![0xab; 20]],
        };
        let mut bencoded = b"d6:lengthi5e4:name5:a.txt12:piece lengthi16384e6:pieces20:".to_vec();
        bencoded.extend([0xab; 20]);
        bencoded.push(b'e');
        let expected: [u8; 20] = Sha1::digest(&bencoded).into();
        assert_eq!(info_hash(&m), expected);
        let mut other = m.clone();
        other.pieces[0][0] ^= 1;
        assert_ne!(info_hash(&other), expected);
    }
}
