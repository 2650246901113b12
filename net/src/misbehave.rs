//! Misbehaviour a node can be switched into, so that a scenario can test how
//! the others cope (the faults `corrupt`, `silent`, `lying`; the rules are
//! [`peerlab_core::misbehave`], shared with the simulator):
//!
//! - corrupt: every block of a spoiled piece this process sends carries the
//!   bitwise complement of the bytes it read from its file ([`spoil`]), so
//!   the piece fails its hash check at the receiver;
//! - silent: the driver hands the node no request ([`passes_request`]);
//! - lying: the driver sends a full bitfield for the node's own
//!   ([`outgoing`]) and hands it no request for a piece it lacks;
//! - flood: the driver's flood task opens half-handshaked connections to
//!   every other node of the address book ([`flood_rate`]).
//!
//! `peerlab node` switches it on signals: SIGUSR1 reads the wanted
//! misbehaviour from the control file [`CONTROL_FILE`] in the node's data
//! directory, written by whoever signals (one [`Misbehaviour::to_line`]
//! line; no file means `corrupt`, every piece);
//! SIGUSR2 makes it honest. One mode per process: a node is one process.

use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use peerlab_core::misbehave::Misbehaviour;
use peerlab_core::{BlockRef, Message};

/// The control file, in the node's data directory.
pub const CONTROL_FILE: &str = "misbehave";

const HONEST: u8 = 0;
const CORRUPT: u8 = 1;
const SILENT: u8 = 2;
const LYING: u8 = 3;
const FLOOD: u8 = 4;

static MODE: AtomicU8 = AtomicU8::new(HONEST);
static EVERY: AtomicU32 = AtomicU32::new(1);
static RATE: AtomicU32 = AtomicU32::new(1);

/// Switches this process to `mode`.
pub fn set(mode: Misbehaviour) {
    let code = match mode {
        Misbehaviour::Honest => HONEST,
        Misbehaviour::Corrupt { every } => {
            // Before the mode: a reader that sees CORRUPT sees this `every`.
            EVERY.store(every.max(1), Ordering::Release);
            CORRUPT
        }
        Misbehaviour::Silent => SILENT,
        Misbehaviour::Lying => LYING,
        Misbehaviour::Flood { rate } => {
            RATE.store(rate.max(1), Ordering::Release);
            FLOOD
        }
    };
    MODE.store(code, Ordering::Release);
}

/// What this process does wrong now.
pub fn current() -> Misbehaviour {
    match MODE.load(Ordering::Acquire) {
        CORRUPT => Misbehaviour::Corrupt {
            every: EVERY.load(Ordering::Acquire),
        },
        SILENT => Misbehaviour::Silent,
        LYING => Misbehaviour::Lying,
        FLOOD => Misbehaviour::Flood {
            rate: RATE.load(Ordering::Acquire),
        },
        _ => Misbehaviour::Honest,
    }
}

/// The misbehaviour asked for in `dir`'s control file; `corrupt` (every
/// piece) when there is none.
pub fn read_control(dir: &Path) -> Result<Misbehaviour, String> {
    let path = dir.join(CONTROL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Misbehaviour::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Misbehaviour::Corrupt { every: 1 }),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Spoils the payload of `block` about to be sent, when its piece is to be
/// spoiled.
pub fn spoil(block: BlockRef, payload: &mut [u8]) {
    if current().spoils(block.piece) {
        for b in payload {
            *b = !*b;
        }
    }
}

/// Whether a request reaches the node ([`Misbehaviour::passes_request`]).
pub fn passes_request(holds_piece: impl FnOnce() -> bool) -> bool {
    current().passes_request(holds_piece)
}

/// New connections a second this process opens to each other node while
/// it floods; `None` when it does not.
pub fn flood_rate() -> Option<u32> {
    match current() {
        Misbehaviour::Flood { rate } => Some(rate),
        _ => None,
    }
}

/// `msg` as it leaves the node ([`Misbehaviour::outgoing`]).
pub fn outgoing(msg: Message) -> Message {
    current().outgoing(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the mode is the process's.
    #[test]
    fn the_mode_switches_what_is_sent_and_what_is_heard() {
        let block = |piece| BlockRef {
            piece,
            offset: 0,
            len: 3,
        };
        let mut bytes = [0u8, 1, 0xff];
        spoil(block(0), &mut bytes);
        assert_eq!(bytes, [0, 1, 0xff], "honest by default");
        set(Misbehaviour::Corrupt { every: 1 });
        spoil(block(0), &mut bytes);
        assert_eq!(bytes, [0xff, 0xfe, 0]);
        set(Misbehaviour::Corrupt { every: 2 });
        spoil(block(1), &mut bytes);
        assert_eq!(bytes, [0xff, 0xfe, 0], "piece 1 is not spoiled");
        spoil(block(2), &mut bytes);
        assert_eq!(bytes, [0, 1, 0xff]);
        set(Misbehaviour::Silent);
        assert!(!passes_request(|| true));
        set(Misbehaviour::Lying);
        assert!(passes_request(|| true) && !passes_request(|| false));
        set(Misbehaviour::Honest);
        assert_eq!(current(), Misbehaviour::Honest);

        let dir = std::env::temp_dir().join(format!("peerlab-misbehave-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            read_control(&dir),
            Ok(Misbehaviour::Corrupt { every: 1 }),
            "no file"
        );
        std::fs::write(dir.join(CONTROL_FILE), "corrupt every=4\n").unwrap();
        assert_eq!(read_control(&dir), Ok(Misbehaviour::Corrupt { every: 4 }));
        std::fs::write(dir.join(CONTROL_FILE), "flood\n").unwrap();
        assert!(read_control(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
