//! Bencoding (BEP 3), as much as a tracker's announce reply needs: byte
//! strings, integers, lists and dictionaries with byte-string keys.
//!
//! [`decode`] reads a whole buffer under a nesting bound and never
//! allocates more than the input holds; [`Value::encode`] writes dictionary
//! keys in sorted order (they are kept in a `BTreeMap`), as BEP 3 demands.

use std::collections::BTreeMap;

/// Deepest nesting of lists and dictionaries [`decode`] accepts.
pub const MAX_DEPTH: usize = 16;

/// A bencoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i<n>e`.
    Int(i64),
    /// `<len>:<bytes>`.
    Bytes(Vec<u8>),
    /// `l<values>e`.
    List(Vec<Value>),
    /// `d<key><value>…e`, keys sorted.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why a buffer is not one bencoded value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BencodeError {
    /// The buffer ended inside a value.
    #[error("bencoded value truncated at byte {at}")]
    Truncated {
        /// Where the input ran out.
        at: usize,
    },
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte {byte:#04x} at byte {at} of bencoded value")]
    Unexpected {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// An integer or a length that is not a canonical decimal number, or
    /// does not fit.
    #[error("bad number at byte {at} of bencoded value")]
    BadNumber {
        /// Where the number starts.
        at: usize,
    },
    /// Lists and dictionaries nested deeper than [`MAX_DEPTH`].
    #[error("bencoded value nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Dictionary keys out of order or repeated.
    #[error("dictionary key at byte {at} is not after the previous key")]
    UnsortedKey {
        /// Where the key starts.
        at: usize,
    },
    /// Bytes after the value.
    #[error("{extra} bytes after the bencoded value")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

impl Value {
    /// A byte string value.
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// The value under `key`, if this is a dictionary holding it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => encode_bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    encode_bytes(k, out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Decodes `input`, which must hold exactly one value.
pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
    let mut at = 0;
    let value = value(input, &mut at, 0)?;
    match input.len() - at {
        0 => Ok(value),
        extra => Err(BencodeError::Trailing { extra }),
    }
}

fn peek(input: &[u8], at: usize) -> Result<u8, BencodeError> {
    input.get(at).copied().ok_or(BencodeError::Truncated { at })
}

fn value(input: &[u8], at: &mut usize, depth: usize) -> Result<Value, BencodeError> {
    match peek(input, *at)? {
        b'i' => {
            *at += 1;
            let start = *at;
            let digits = until(input, at, b'e')?;
            Ok(Value::Int(
                number(digits, true).ok_or(BencodeError::BadNumber { at: start })?,
            ))
        }
        b'0'..=b'9' => bytes(input, at).map(|b| Value::Bytes(b.to_vec())),
        b'l' | b'd' if depth >= MAX_DEPTH => Err(BencodeError::TooDeep),
        b'l' => {
            *at += 1;
            let mut items = Vec::new();
            while peek(input, *at)? != b'e' {
                items.push(value(input, at, depth + 1)?);
            }
            *at += 1;
            Ok(Value::List(items))
        }
        b'd' => {
            *at += 1;
            let mut dict = BTreeMap::new();
            while peek(input, *at)? != b'e' {
                let key_at = *at;
                let key = bytes(input, at)?;
                if dict
                    .last_key_value()
                    .is_some_and(|(last, _): (&Vec<u8>, _)| last.as_slice() >= key)
                {
                    return Err(BencodeError::UnsortedKey { at: key_at });
                }
                let v = value(input, at, depth + 1)?;
                dict.insert(key.to_vec(), v);
            }
            *at += 1;
            Ok(Value::Dict(dict))
        }
        byte => Err(BencodeError::Unexpected { byte, at: *at }),
    }
}

/// A `<len>:<bytes>` string, its length bounded by what is left of `input`.
fn bytes<'a>(input: &'a [u8], at: &mut usize) -> Result<&'a [u8], BencodeError> {
    let start = *at;
    let digits = until(input, at, b':')?;
    let len = number(digits, false)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(BencodeError::BadNumber { at: start })?;
    let end = at
        .checked_add(len)
        .filter(|&end| end <= input.len())
        .ok_or(BencodeError::Truncated { at: input.len() })?;
    let b = &input[*at..end];
    *at = end;
    Ok(b)
}

/// The bytes up to `stop`, consuming `stop`.
fn until<'a>(input: &'a [u8], at: &mut usize, stop: u8) -> Result<&'a [u8], BencodeError> {
    let rest = &input[*at..];
    let len = rest
        .iter()
        .position(|&b| b == stop)
        .ok_or(BencodeError::Truncated { at: input.len() })?;
    *at += len + 1;
    Ok(&rest[..len])
}

/// A canonical decimal: no leading zeros, no `-0`, a sign only if `signed`.
fn number(digits: &[u8], signed: bool) -> Option<i64> {
    let unsigned = match digits {
        [b'-', rest @ ..] if signed => rest,
        _ => digits,
    };
    let canonical = match unsigned {
        [] => false,
        [b'0'] => unsigned.len() == digits.len(),
        [b'0', ..] => false,
        _ => unsigned.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let v = Value::dict([
            ("interval", Value::Int(120)),
            ("peers", Value::bytes(vec![127, 0, 0, 1, 0x1a, 0xe1])),
            ("neg", Value::Int(-42)),
            (
                "list",
                Value::List(vec![Value::Int(0), Value::bytes(b"".to_vec()), Value::dict([])]),
            ),
        ]);
        let bytes = v.to_bytes();
        assert_eq!(decode(&bytes), Ok(v));
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                proptest::collection::btree_map(proptest::collection::vec(any::<u8>(), 0..12), inner, 0..8)
                    .prop_map(Value::Dict),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn every_value_round_trips(v in any_value()) {
            proptest::prop_assert_eq!(decode(&v.to_bytes()), Ok(v));
        }
    }

    #[test]
    fn announce_reply_layout_is_bep3s() {
        let v = Value::dict([
            ("peers", Value::bytes(vec![1, 2, 3, 4, 5, 6])),
            ("interval", Value::Int(30)),
        ]);
        assert_eq!(v.to_bytes(), b"d8:intervali30e5:peers6:\x01\x02\x03\x04\x05\x06e");
    }

    #[test]
    fn malformed_input_is_refused_without_allocating_its_claims() {
        let cases: [(&[u8], BencodeError); 9] = [
            (b"", BencodeError::Truncated { at: 0 }),
            (b"i12", BencodeError::Truncated { at: 3 }),
            (b"i012e", BencodeError::BadNumber { at: 1 }),
            (b"i-0e", BencodeError::BadNumber { at: 1 }),
            (b"ie", BencodeError::BadNumber { at: 1 }),
            (b"99999999999:x", BencodeError::Truncated { at: 13 }),
            (b"d1:bi1e1:ai2ee", BencodeError::UnsortedKey { at: 7 }),
            (b"i1ei2e", BencodeError::Trailing { extra: 3 }),
            (b"x", BencodeError::Unexpected { byte: b'x', at: 0 }),
        ];
        for (input, want) in cases {
            assert_eq!(decode(input), Err(want), "{:?}", String::from_utf8_lossy(input));
        }
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(decode(&deep), Err(BencodeError::TooDeep));
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(decode(&ok).is_ok());
    }
}
