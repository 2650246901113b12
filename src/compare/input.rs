//! Reading one side of a comparison: a single report (`peerlab run
//! --report`, usually pretty-printed) or a sweep's `reports.jsonl`.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use peerlab_scenarios::Report;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// What a file held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One report.
    Report,
    /// A sweep's lines.
    Sweep,
}

/// One run: its point (empty for a single report) and its report.
#[derive(Debug)]
pub struct Entry {
    /// The point's fields in the file's order.
    pub point: Vec<(String, Value)>,
    /// Line of the file it was read from (1-based; 0 for a single report).
    pub line: usize,
    /// The run's report.
    pub report: Report,
}

impl Entry {
    /// Where in its file the entry is, for messages.
    pub fn at(&self) -> String {
        if self.line == 0 {
            "the report".to_string()
        } else {
            format!("line {}", self.line)
        }
    }
}

/// One side of a comparison.
#[derive(Debug)]
pub struct Input {
    /// The file it was read from.
    pub path: PathBuf,
    /// A report or a sweep.
    pub kind: Kind,
    /// Its runs, in the file's order (at least one).
    pub entries: Vec<Entry>,
}

/// A sweep point with its fields in the file's order.
struct OrderedPoint(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedPoint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of --set fields and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedPoint, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    fields.push((k, v));
                }
                Ok(OrderedPoint(fields))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Line {
    point: OrderedPoint,
    report: Value,
}

impl Input {
    /// Reads `path`; every error names the file and, in a sweep, the line.
    pub fn load(path: &Path) -> Result<Input> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let p = path.display();
        if text.trim().is_empty() {
            bail!("{p} is empty: expected a report (peerlab run --report) or a sweep's reports.jsonl");
        }
        // A whole file that is one JSON object is a report, or a sweep of one
        // point; anything else is read line by line.
        if let Ok(whole) = serde_json::from_str::<Value>(&text) {
            let is_line = whole.get("point").is_some() && whole.get("report").is_some();
            if !is_line {
                let report = serde_json::from_value::<Report>(whole).map_err(|e| {
                    anyhow::anyhow!(
                        "{p} is not a report (peerlab run --report) nor a sweep's reports.jsonl: {e}"
                    )
                })?;
                return Ok(Input {
                    path: path.to_path_buf(),
                    kind: Kind::Report,
                    entries: vec![Entry {
                        point: Vec::new(),
                        line: 0,
                        report,
                    }],
                });
            }
        }
        let mut entries: Vec<Entry> = Vec::new();
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).map_err(|e| {
                anyhow::anyhow!(
                    "{p}:{n}: not JSON ({e}): expected a report or a sweep line \
                     {{\"point\": {{...}}, \"report\": {{...}}}}"
                )
            })?;
            let parsed: Line = serde_json::from_value(value).map_err(|e| {
                anyhow::anyhow!("{p}:{n}: not a sweep line {{\"point\": {{...}}, \"report\": {{...}}}}: {e}")
            })?;
            let report: Report = serde_json::from_value(parsed.report)
                .map_err(|e| anyhow::anyhow!("{p}:{n}: the \"report\" is not a report: {e}"))?;
            let point = parsed.point.0;
            if let Some(first) = entries.iter().find(|e| same_point(&e.point, &point)) {
                bail!(
                    "{p}:{n}: the point {{{}}} appears twice (first on line {}): one run per point",
                    super::describe(&point),
                    first.line
                );
            }
            entries.push(Entry {
                point,
                line: n,
                report,
            });
        }
        Ok(Input {
            path: path.to_path_buf(),
            kind: Kind::Sweep,
            entries,
        })
    }

    /// The entry whose point has the same values of the fields `keys` as
    /// `point`, whatever the fields' order.
    pub fn find(&self, point: &[(String, Value)], keys: &[String]) -> Option<&Entry> {
        let key = project(point, keys);
        self.entries
            .iter()
            .find(|e| same_point(&project(&e.point, keys), &key))
    }

    /// The fields whose value is not the same on every line: the sweep's
    /// coordinates (the others are its fixed settings).
    pub fn varying(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.entries {
            for (k, v) in &e.point {
                let differs = self
                    .entries
                    .iter()
                    .any(|o| !o.point.iter().any(|(k2, v2)| k2 == k && same_value(v, v2)));
                if differs && !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
        out
    }
}

/// The fields of `point` among `keys`.
fn project(point: &[(String, Value)], keys: &[String]) -> Vec<(String, Value)> {
    point.iter().filter(|(k, _)| keys.contains(k)).cloned().collect()
}

/// The same fields with the same values, in any order.
fn same_point(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && same_value(v, v2)))
}

/// Equal JSON, numbers compared by value (`2` matches `2.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn points_match_whatever_the_order_of_their_fields() {
        let a = vec![
            ("peers.count".to_string(), json!(2)),
            ("file.size".to_string(), json!("1 MiB")),
        ];
        let b = vec![
            ("file.size".to_string(), json!("1 MiB")),
            ("peers.count".to_string(), json!(2.0)),
        ];
        assert!(same_point(&a, &b));
        assert!(!same_point(&a[..1], &b));
        let c = vec![
            ("peers.count".to_string(), json!(3)),
            ("file.size".to_string(), json!("1 MiB")),
        ];
        assert!(!same_point(&a, &c));
    }
}
