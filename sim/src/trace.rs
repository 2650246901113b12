//! The trace hash: a fingerprint of every event a run processed, in order.
//! Two runs of the same scenario and seed must produce the same hash; a
//! changed hash means the run diverged somewhere.

use std::hash::{Hash, Hasher};

/// FNV-1a over 64 bits: tiny, fast and fixed forever (unlike the standard
/// library's hasher, whose algorithm may change between Rust releases).
#[derive(Clone, Debug)]
pub struct TraceHasher {
    state: u64,
}

impl Default for TraceHasher {
    fn default() -> Self {
        TraceHasher {
            state: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Hasher for TraceHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.state ^= u64::from(b);
            self.state = self.state.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    // Fixed little-endian encodings, so the hash does not depend on the
    // machine's byte order or pointer width.
    fn write_u32(&mut self, i: u32) {
        self.write(&i.to_le_bytes());
    }

    fn write_u64(&mut self, i: u64) {
        self.write(&i.to_le_bytes());
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_isize(&mut self, i: isize) {
        self.write_u64(i as u64);
    }
}

impl TraceHasher {
    /// Adds one record: a tag naming its kind, then its fields.
    pub fn record<T: Hash + ?Sized>(&mut self, tag: u8, at: u64, node: u32, fields: &T) {
        self.write_u8(tag);
        self.write_u64(at);
        self.write_u32(node);
        fields.hash(self);
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.state)
    }
}

/// One record of a recorded trace as a JSON line: time, node, kind, and
/// the fields as they were hashed (debug form).
pub(crate) fn json_line<T: std::fmt::Debug + ?Sized>(at: u64, node: u32, kind: &str, fields: &T) -> String {
    serde_json::json!({
        "t": at,
        "node": node,
        "kind": kind,
        "detail": format!("{fields:?}"),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_value_and_order_sensitivity() {
        let mut h = TraceHasher::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 of \"a\"");
        let mut x = TraceHasher::default();
        x.record(1, 2, 3, &4u32);
        x.record(1, 2, 3, &5u32);
        let mut y = TraceHasher::default();
        y.record(1, 2, 3, &5u32);
        y.record(1, 2, 3, &4u32);
        assert_ne!(x.hex(), y.hex());
    }
}
