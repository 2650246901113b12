//! `peerlab metainfo create FILE`: hash a file into its metainfo
//! (`FILE.peerlab.json`), the one thing every downloader needs from the
//! server's machine.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use peerlab_net::metainfo_file::{self, HashKind};
use peerlab_scenarios::units::Size;

/// `peerlab metainfo …`.
#[derive(Debug, Subcommand)]
pub enum MetainfoCmd {
    /// Hash FILE into FILE.peerlab.json and print its info hash.
    Create(CreateArgs),
}

/// Arguments of `peerlab metainfo create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file to describe (the file a server will serve).
    file: PathBuf,
    /// Length of a piece, the unit that is hash-checked. Must match the
    /// scenario's `file.piece_size` (relay runs: `relay.chunk_size`).
    #[arg(long, default_value = "256 KiB", value_parser = parse_size)]
    piece_size: Size,
    /// The piece digest.
    #[arg(long, value_enum, default_value_t = Hash::Sha1)]
    hash: Hash,
    /// Where to write the metainfo [default: FILE.peerlab.json].
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

/// A piece digest, as named on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Hash {
    /// SHA-1, as BitTorrent (BEP 3).
    Sha1,
    /// SHA-256.
    Sha256,
}

fn parse_size(text: &str) -> Result<Size, String> {
    serde_json::from_value::<Size>(serde_json::Value::String(text.to_string())).map_err(|e| e.to_string())
}

/// Runs `peerlab metainfo …`.
pub fn run(cmd: &MetainfoCmd) -> Result<ExitCode> {
    match cmd {
        MetainfoCmd::Create(args) => create(args),
    }
}

fn create(args: &CreateArgs) -> Result<ExitCode> {
    let piece = u32::try_from(args.piece_size.0)
        .ok()
        .filter(|&p| p > 0)
        .with_context(|| {
            format!(
                "--piece-size {} must be between 1 byte and 4 GiB",
                args.piece_size.0
            )
        })?;
    let kind = match args.hash {
        Hash::Sha1 => HashKind::Sha1,
        Hash::Sha256 => HashKind::Sha256,
    };
    let metainfo = metainfo_file::create_metainfo(&args.file, piece, kind)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| metainfo_file::metainfo_path(&args.file));
    metainfo_file::save(&metainfo, &out)?;
    println!("metainfo:  {}", out.display());
    println!(
        "file:      {} ({} bytes, {} pieces of {} bytes)",
        metainfo.name,
        metainfo.length,
        metainfo.pieces.len(),
        metainfo.piece_length
    );
    println!("info hash: {}", hex(&metainfo_file::info_hash(&metainfo)));
    Ok(ExitCode::SUCCESS)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
