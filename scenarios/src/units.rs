//! Human units in scenario files: sizes (`"10 MiB"`, `"256 KiB"`, `1048576`),
//! rates (`"20 Mbit/s"`, `"2.5 MB/s"`, `"unlimited"`) and durations
//! (`"5 s"`, `"250 ms"`, `"2 min"`). Parsing errors say what was expected.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Splits `"12.5 MiB"` into `(12.5, "MiB")`, rejecting signs and junk.
fn split_number(text: &str, what: &str) -> Result<(f64, String), String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!("{what} {text:?} is negative; {what}s cannot be negative"));
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(end);
    let num: String = num.chars().filter(|&c| c != '_').collect();
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{what} {text:?} does not start with a number"))?;
    if !value.is_finite() {
        return Err(format!("{what} {text:?} is not a finite number"));
    }
    Ok((value, unit.trim().to_string()))
}

/// A number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// Parses `"10 MiB"`, `"1.5 KB"`, `"4096 B"` or `"4096"`.
    pub fn parse(text: &str) -> Result<Size, String> {
        let (value, unit) = split_number(text, "size")?;
        let mult: f64 = match unit.as_str() {
            "" | "B" | "byte" | "bytes" => 1.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "KiB" | "K" | "k" => 1024.0,
            "MiB" | "M" => 1024.0 * 1024.0,
            "GiB" | "G" => 1024.0 * 1024.0 * 1024.0,
            "TiB" | "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "size {text:?} has unknown unit {other:?}; use B, KiB, MiB, GiB (binary) or KB, MB, GB (decimal)"
                ));
            }
        };
        let bytes = value * mult;
        if bytes > u64::MAX as f64 {
            return Err(format!("size {text:?} is too large"));
        }
        if (bytes - bytes.round()).abs() > 1e-6 {
            return Err(format!("size {text:?} is not a whole number of bytes"));
        }
        Ok(Size(bytes.round() as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, mult) in UNITS {
            if self.0 >= mult && self.0 % mult == 0 {
                return write!(f, "{} {name}", self.0 / mult);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"10 MiB\" or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size {v} is negative; sizes cannot be negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Size, E> {
                Size::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Size::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A link rate in bits per second; `f64::INFINITY` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Rate(pub f64);

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate(f64::INFINITY);

    /// Parses `"20 Mbit/s"`, `"20Mbps"`, `"2.5 MB/s"`, `"unlimited"`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("inf") {
            return Ok(Rate::UNLIMITED);
        }
        let (value, unit) = split_number(t, "rate")?;
        let mult: f64 = match unit.as_str() {
            "bit/s" | "bps" | "b/s" => 1.0,
            "kbit/s" | "Kbit/s" | "kbps" | "Kbps" | "kb/s" | "Kb/s" => 1e3,
            "Mbit/s" | "mbit/s" | "Mbps" | "mbps" | "Mb/s" => 1e6,
            "Gbit/s" | "gbit/s" | "Gbps" | "gbps" | "Gb/s" => 1e9,
            "B/s" => 8.0,
            "KB/s" | "kB/s" => 8e3,
            "MB/s" => 8e6,
            "GB/s" => 8e9,
            "KiB/s" => 8.0 * 1024.0,
            "MiB/s" => 8.0 * 1024.0 * 1024.0,
            "GiB/s" => 8.0 * 1024.0 * 1024.0 * 1024.0,
            "" => {
                return Err(format!(
                    "rate {text:?} has no unit; write e.g. \"20 Mbit/s\" (bits) or \"2.5 MB/s\" (bytes)"
                ));
            }
            other => {
                return Err(format!(
                    "rate {text:?} has unknown unit {other:?}; use bit/s, kbit/s, Mbit/s, Gbit/s, B/s, KB/s, MB/s, MiB/s or \"unlimited\""
                ));
            }
        };
        let bits = value * mult;
        if bits <= 0.0 {
            return Err(format!("rate {text:?} must be greater than zero"));
        }
        Ok(Rate(bits))
    }

    /// Bits per second (infinite when unlimited).
    pub fn bits_per_sec(self) -> f64 {
        self.0
    }

    /// Bytes per second (infinite when unlimited).
    pub fn bytes_per_sec(self) -> f64 {
        self.0 / 8.0
    }

    /// Whether the rate is unlimited.
    pub fn is_unlimited(self) -> bool {
        self.0.is_infinite()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            return f.write_str("unlimited");
        }
        for (name, mult) in [("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)] {
            if self.0 >= mult && (self.0 / mult).fract() == 0.0 {
                return write!(f, "{} {name}", self.0 / mult);
            }
        }
        write!(f, "{} bit/s", self.0)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"20 Mbit/s\", \"2.5 MB/s\" or \"unlimited\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                Rate::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate {v} has no unit; write e.g. \"{v} Mbit/s\" (bits) or \"{v} MB/s\" (bytes)"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate {v} has no unit and rates cannot be negative"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Err(E::custom(format!(
                    "rate {v} has no unit; write e.g. \"{v} Mbit/s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A span of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses `"5 s"`, `"250 ms"`, `"2 min"`, `"1.5 h"`, `"0"`.
    pub fn parse(text: &str) -> Result<Dur, String> {
        let (value, unit) = split_number(text, "duration")?;
        let nanos_per: f64 = match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" | "sec" | "secs" => 1e9,
            "min" | "mins" => 60e9,
            "h" | "hour" | "hours" => 3600e9,
            "d" | "day" | "days" => 86_400e9,
            "" if value == 0.0 => 1.0,
            "" => {
                return Err(format!(
                    "duration {text:?} has no unit; write e.g. \"{value} s\" or \"{value} ms\""
                ));
            }
            other => {
                return Err(format!(
                    "duration {text:?} has unknown unit {other:?}; use ns, us, ms, s, min, h or d"
                ));
            }
        };
        let nanos = value * nanos_per;
        if nanos > u64::MAX as f64 {
            return Err(format!("duration {text:?} is too long"));
        }
        Ok(Dur(Duration::from_nanos(nanos.round() as u64)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        for (name, mult) in [("s", 1_000_000_000u128), ("ms", 1_000_000), ("us", 1_000)] {
            if ns >= mult && ns % mult == 0 {
                return write!(f, "{} {name}", ns / mult);
            }
        }
        if ns == 0 {
            return f.write_str("0 s");
        }
        write!(f, "{ns} ns")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"5 s\" or \"250 ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Dur::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("10 MiB"), Ok(Size(10 << 20)));
        assert_eq!(Size::parse("10MB"), Ok(Size(10_000_000)));
        assert_eq!(Size::parse("1.5 KiB"), Ok(Size(1536)));
        assert_eq!(Size::parse("4096"), Ok(Size(4096)));
        assert_eq!(Size::parse("1_000 B"), Ok(Size(1000)));
        assert!(Size::parse("-5 MiB").unwrap_err().contains("negative"));
        assert!(Size::parse("0.3 B").unwrap_err().contains("whole number"));
        assert!(Size::parse("10 furlongs").unwrap_err().contains("unknown unit"));
        assert!(Size::parse("MiB").unwrap_err().contains("number"));
    }

    #[test]
    fn rates_distinguish_bits_from_bytes() {
        assert_eq!(Rate::parse("20 Mbit/s"), Ok(Rate(20e6)));
        assert_eq!(Rate::parse("20Mbps"), Ok(Rate(20e6)));
        assert_eq!(Rate::parse("2.5 MB/s"), Ok(Rate(20e6)));
        assert!(Rate::parse("unlimited").unwrap().is_unlimited());
        assert!(Rate::parse("20").unwrap_err().contains("no unit"));
        assert!(Rate::parse("0 Mbit/s").unwrap_err().contains("greater than zero"));
        assert!(Rate::parse("-1 Mbit/s").unwrap_err().contains("negative"));
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("5 s"), Ok(Dur(Duration::from_secs(5))));
        assert_eq!(Dur::parse("250ms"), Ok(Dur(Duration::from_millis(250))));
        assert_eq!(Dur::parse("2 min"), Ok(Dur(Duration::from_secs(120))));
        assert_eq!(Dur::parse("0"), Ok(Dur(Duration::ZERO)));
        assert!(Dur::parse("5").unwrap_err().contains("no unit"));
    }

    #[test]
    fn display_round_trips() {
        for s in [Size(10 << 20), Size(1000), Size(3 << 10)] {
            assert_eq!(Size::parse(&s.to_string()), Ok(s));
        }
        for r in [Rate(20e6), Rate(1234.5), Rate::UNLIMITED, Rate(1.5e9)] {
            assert_eq!(Rate::parse(&r.to_string()), Ok(r));
        }
        for d in [
            Dur(Duration::from_millis(1500)),
            Dur(Duration::from_nanos(7)),
            Dur(Duration::ZERO),
        ] {
            assert_eq!(Dur::parse(&d.to_string()), Ok(d));
        }
    }
}
