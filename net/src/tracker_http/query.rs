//! The announce request's query string (BEP 3): built by a peer's driver,
//! parsed by the tracker's, every parameter checked and bounded.

use peerlab_core::message::AnnounceEvent;

/// Longest query string the tracker reads. A real announce takes ~300
/// bytes (two 20-byte ids url-encoded to at most 60 characters each).
pub const MAX_QUERY_LEN: usize = 2048;

/// Peers a request gets when it does not say `numwant` (BEP 3 trackers
/// commonly default to 50).
pub const DEFAULT_NUMWANT: u32 = 50;

/// One announce, as the parameters of `GET /announce?…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceQuery {
    /// The file's info hash.
    pub info_hash: [u8; 20],
    /// The announcing peer's id ([`crate::conn::peer_id`]).
    pub peer_id: [u8; 20],
    /// Where the peer accepts connections.
    pub port: u16,
    /// Payload bytes uploaded so far.
    pub uploaded: u64,
    /// Payload bytes downloaded so far.
    pub downloaded: u64,
    /// Bytes still needed.
    pub left: u64,
    /// Why it announces (no `event` parameter: [`AnnounceEvent::Periodic`]).
    pub event: AnnounceEvent,
    /// Peers wanted, as asked (the tracker bounds it).
    pub numwant: u32,
}

/// Why a query string is not a valid announce. The message names the
/// parameter, for the bencoded `failure reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query string is longer than [`MAX_QUERY_LEN`].
    #[error("query string of {len} bytes is longer than the {MAX_QUERY_LEN} allowed")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A required parameter is absent.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// A parameter's value is not what it must be.
    #[error("malformed parameter {param}: {reason}")]
    Malformed {
        /// The parameter.
        param: &'static str,
        /// What it must be.
        reason: &'static str,
    },
}

impl AnnounceQuery {
    /// The query string, without the `?`: binary ids percent-encoded,
    /// `compact=1`, no `event` for a periodic announce.
    pub fn encode(&self) -> String {
        let mut q = format!(
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}",
            percent_encode(&self.info_hash),
            percent_encode(&self.peer_id),
            self.port,
            self.uploaded,
            self.downloaded,
            self.left
        );
        let event = match self.event {
            AnnounceEvent::Started => Some("started"),
            AnnounceEvent::Completed => Some("completed"),
            AnnounceEvent::Stopped => Some("stopped"),
            AnnounceEvent::Periodic => None,
        };
        if let Some(event) = event {
            q.push_str("&event=");
            q.push_str(event);
        }
        q.push_str(&format!("&numwant={}&compact=1", self.numwant));
        q
    }

    /// Parses a query string (without the `?`). Unknown parameters (`key`,
    /// `ip`, `trackerid`, …) are ignored; of a repeated parameter the first
    /// counts. Only compact replies are served: `compact=0` is refused.
    pub fn parse(query: &str) -> Result<AnnounceQuery, QueryError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong { len: query.len() });
        }
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = None;
        let mut downloaded = None;
        let mut left = None;
        let mut event = None;
        let mut numwant = None;
        let mut compact = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "info_hash" => &mut info_hash,
                "peer_id" => &mut peer_id,
                "port" => &mut port,
                "uploaded" => &mut uploaded,
                "downloaded" => &mut downloaded,
                "left" => &mut left,
                "event" => &mut event,
                "numwant" => &mut numwant,
                "compact" => &mut compact,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        let event = match event {
            None | Some("" | "empty") => AnnounceEvent::Periodic,
            Some("started") => AnnounceEvent::Started,
            Some("completed") => AnnounceEvent::Completed,
            Some("stopped") => AnnounceEvent::Stopped,
            Some(_) => {
                return Err(QueryError::Malformed {
                    param: "event",
                    reason: "must be started, completed, stopped or empty",
                });
            }
        };
        if compact.is_some_and(|c| c != "1") {
            return Err(QueryError::Malformed {
                param: "compact",
                reason: "this tracker serves compact peer lists only (BEP 23): use compact=1",
            });
        }
        let numwant = match numwant {
            None => DEFAULT_NUMWANT,
            Some(v) => number(v, "numwant")?,
        };
        Ok(AnnounceQuery {
            info_hash: id(need(info_hash, "info_hash")?, "info_hash")?,
            peer_id: id(need(peer_id, "peer_id")?, "peer_id")?,
            port: number(need(port, "port")?, "port")?,
            uploaded: number(need(uploaded, "uploaded")?, "uploaded")?,
            downloaded: number(need(downloaded, "downloaded")?, "downloaded")?,
            left: number(need(left, "left")?, "left")?,
            event,
            numwant,
        })
    }
}

/// A required parameter's value.
fn need<'a>(value: Option<&'a str>, param: &'static str) -> Result<&'a str, QueryError> {
    value.ok_or(QueryError::Missing(param))
}

/// A 20-byte id, percent-decoded.
fn id(value: &str, param: &'static str) -> Result<[u8; 20], QueryError> {
    let malformed = QueryError::Malformed {
        param,
        reason: "must be 20 bytes, url-encoded",
    };
    let bytes = percent_decode(value).ok_or(malformed.clone())?;
    bytes.try_into().map_err(|_| malformed)
}

/// A decimal number that fits `T`.
fn number<T: std::str::FromStr>(value: &str, param: &'static str) -> Result<T, QueryError> {
    let malformed = || QueryError::Malformed {
        param,
        reason: "must be a non-negative decimal integer in range",
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    value.parse().map_err(|_| malformed())
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` on a broken escape. Other characters
/// stand for themselves (`+` too: ids are binary, not form text).
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AnnounceQuery {
        let mut info_hash = [0; 20];
        for (i, b) in info_hash.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(200);
        }
        AnnounceQuery {
            info_hash,
            peer_id: *b"-PL0100-000000000007",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: AnnounceEvent::Started,
            numwant: 50,
        }
    }

    #[test]
    fn queries_round_trip() {
        for event in [
            AnnounceEvent::Started,
            AnnounceEvent::Completed,
            AnnounceEvent::Stopped,
            AnnounceEvent::Periodic,
        ] {
            let q = AnnounceQuery { event, ..sample() };
            let encoded = q.encode();
            assert!(encoded.len() < 300, "{encoded}");
            assert_eq!(AnnounceQuery::parse(&encoded), Ok(q));
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let good = sample().encode();
        let without = |param: &str| {
            good.split('&')
                .filter(|p| !p.starts_with(&format!("{param}=")))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(
            AnnounceQuery::parse(&without("info_hash")),
            Err(QueryError::Missing("info_hash"))
        );
        let err = AnnounceQuery::parse(&format!("{}&numwant=lots", without("numwant"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed parameter numwant: must be a non-negative decimal integer in range"
        );
        let err = AnnounceQuery::parse(&good.replace("port=6881", "port=70000")).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        let err = AnnounceQuery::parse(&good.replace("info_hash=", "info_hash=%ZZ")).unwrap_err();
        assert!(err.to_string().contains("info_hash"), "{err}");
        let err = AnnounceQuery::parse(&good.replace("compact=1", "compact=0")).unwrap_err();
        assert!(err.to_string().contains("compact"), "{err}");
        let long = format!("{good}&key={}", "x".repeat(MAX_QUERY_LEN));
        assert!(matches!(
            AnnounceQuery::parse(&long),
            Err(QueryError::TooLong { .. })
        ));
    }
}
