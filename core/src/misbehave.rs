//! Misbehaviour a host can be switched into so that a scenario can test how
//! the honest nodes cope (the faults `corrupt`, `silent` and `lying`). It is
//! no protocol: no node chooses it. A driver applies it to what passes
//! between a node and the network, with the same rule in the simulator
//! (`sim/src/engine/`) and in a real node (`net/src/misbehave.rs`), so the
//! node itself runs unchanged and unaware:
//!
//! - [`Misbehaviour::Corrupt`]: blocks of every `every`-th piece (index
//!   `% every == 0`) carry wrong bytes, so such a piece fails its check at
//!   the receiver ([`Misbehaviour::spoils`]);
//! - [`Misbehaviour::Silent`]: requests never reach the node, so it sends no
//!   block; it stays connected and sends its other messages as usual
//!   ([`Misbehaviour::passes_request`]);
//! - [`Misbehaviour::Lying`]: the `Bitfield` it sends on a connection claims
//!   every piece ([`Misbehaviour::outgoing`]); a request for a piece it does
//!   not hold never reaches it, so it is never answered (neither junk nor a
//!   disconnection). Its `Have`s are sent as usual: they say nothing new.
//!   Connections opened before it began lying have its true bitfield.
//! - [`Misbehaviour::Flood`]: besides its usual work, the host opens `rate`
//!   connections a second to every other host it knows and sends each a
//!   quarter of a handshake, never the rest. Only a real node does this
//!   (its driver's flood task); the simulator opens no such connection and
//!   charges the honest hosts nothing for them, because a real node's
//!   per-address limit on connections in their handshake makes them cost
//!   the victims a few sockets and nothing more (measured on loopback and
//!   Mininet: the README's "When things break" gives the numbers).
//!
//! A host has one misbehaviour at a time; a new one replaces the last, and
//! [`Misbehaviour::Honest`] ends any.

use crate::message::Message;
use crate::pieces::Bitfield;

/// What a host does wrong, if anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Nothing.
    #[default]
    Honest,
    /// Spoils the blocks of pieces whose index is a multiple of `every`
    /// (1: every piece).
    Corrupt {
        /// One piece in how many (at least 1).
        every: u32,
    },
    /// Answers no request.
    Silent,
    /// Claims every piece; requests for pieces it lacks go unanswered.
    Lying,
    /// Opens `rate` half-handshaked connections a second to every other
    /// host, and otherwise behaves.
    Flood {
        /// New connections per second to each host (at least 1).
        rate: u32,
    },
}

impl Misbehaviour {
    /// Whether blocks of `piece` sent now carry wrong bytes.
    pub fn spoils(self, piece: u32) -> bool {
        match self {
            Misbehaviour::Corrupt { every } => piece % every.max(1) == 0,
            _ => false,
        }
    }

    /// Whether a request reaches the node; `holds_piece` says whether the
    /// node holds the requested piece verified (asked only when lying).
    pub fn passes_request(self, holds_piece: impl FnOnce() -> bool) -> bool {
        match self {
            Misbehaviour::Silent => false,
            Misbehaviour::Lying => holds_piece(),
            _ => true,
        }
    }

    /// `msg` as it leaves the node: a lying node's `Bitfield` claims every
    /// piece; everything else is unchanged.
    pub fn outgoing(self, msg: Message) -> Message {
        match (self, msg) {
            (Misbehaviour::Lying, Message::Bitfield(b)) => Message::Bitfield(Bitfield::full(b.len())),
            (_, msg) => msg,
        }
    }

    /// One line that [`Misbehaviour::parse`] reads back: `honest`,
    /// `corrupt every=K`, `silent` or `lying`. A driver writes it to a real
    /// node's control file.
    pub fn to_line(self) -> String {
        match self {
            Misbehaviour::Honest => "honest".into(),
            Misbehaviour::Corrupt { every } => format!("corrupt every={every}"),
            Misbehaviour::Silent => "silent".into(),
            Misbehaviour::Lying => "lying".into(),
            Misbehaviour::Flood { rate } => format!("flood rate={rate}"),
        }
    }

    /// Reads a line written by [`Misbehaviour::to_line`] (surrounding
    /// white space ignored; `corrupt` alone means every piece).
    pub fn parse(line: &str) -> Result<Misbehaviour, String> {
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap_or("");
        let mode = match kind {
            "honest" => Misbehaviour::Honest,
            "silent" => Misbehaviour::Silent,
            "lying" => Misbehaviour::Lying,
            "corrupt" => {
                let every = match words.next() {
                    None => 1,
                    Some(w) => w
                        .strip_prefix("every=")
                        .and_then(|k| k.parse::<u32>().ok())
                        .filter(|&k| k >= 1)
                        .ok_or_else(|| format!("`{w}`: expected every=K with K >= 1"))?,
                };
                Misbehaviour::Corrupt { every }
            }
            "flood" => {
                let w = words.next().unwrap_or("");
                let rate = w
                    .strip_prefix("rate=")
                    .and_then(|k| k.parse::<u32>().ok())
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| format!("`{w}`: expected rate=K with K >= 1 after `flood`"))?;
                Misbehaviour::Flood { rate }
            }
            other => {
                return Err(format!(
                    "unknown misbehaviour `{other}`: expected honest, corrupt [every=K], silent, lying or flood rate=K"
                ));
            }
        };
        if let Some(extra) = words.next() {
            return Err(format!("unexpected `{extra}` after `{kind}`"));
        }
        Ok(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_spoils_one_piece_in_every() {
        let every3 = Misbehaviour::Corrupt { every: 3 };
        let spoiled: Vec<u32> = (0..10).filter(|&p| every3.spoils(p)).collect();
        assert_eq!(spoiled, [0, 3, 6, 9]);
        assert!((0..10).all(|p| Misbehaviour::Corrupt { every: 1 }.spoils(p)));
        assert!(!(0..10).any(|p| Misbehaviour::Silent.spoils(p) || Misbehaviour::Honest.spoils(p)));
    }

    #[test]
    fn silent_drops_every_request_and_lying_those_for_missing_pieces() {
        assert!(!Misbehaviour::Silent.passes_request(|| true));
        assert!(Misbehaviour::Lying.passes_request(|| true));
        assert!(!Misbehaviour::Lying.passes_request(|| false));
        assert!(Misbehaviour::Honest.passes_request(|| false));
        assert!(Misbehaviour::Corrupt { every: 1 }.passes_request(|| false));
    }

    #[test]
    fn a_liar_claims_every_piece_and_only_in_its_bitfield() {
        let mut b = Bitfield::new(9);
        b.insert(2);
        let out = Misbehaviour::Lying.outgoing(Message::Bitfield(b.clone()));
        assert_eq!(out, Message::Bitfield(Bitfield::full(9)));
        assert_eq!(
            Misbehaviour::Honest.outgoing(Message::Bitfield(b.clone())),
            Message::Bitfield(b)
        );
        assert_eq!(
            Misbehaviour::Lying.outgoing(Message::Have { piece: 2 }),
            Message::Have { piece: 2 }
        );
    }

    #[test]
    fn control_lines_read_back() {
        for m in [
            Misbehaviour::Honest,
            Misbehaviour::Corrupt { every: 1 },
            Misbehaviour::Corrupt { every: 7 },
            Misbehaviour::Silent,
            Misbehaviour::Lying,
            Misbehaviour::Flood { rate: 40 },
        ] {
            assert_eq!(Misbehaviour::parse(&m.to_line()), Ok(m));
        }
        assert_eq!(
            Misbehaviour::parse(" corrupt\n"),
            Ok(Misbehaviour::Corrupt { every: 1 })
        );
        assert!(Misbehaviour::parse("corrupt every=0").is_err());
        assert!(Misbehaviour::parse("flood").is_err(), "a flood names its rate");
        assert!(Misbehaviour::parse("flood rate=0").is_err());
        assert!(Misbehaviour::parse("torrent").is_err());
        assert!(Misbehaviour::parse("silent now").is_err());
    }
}
