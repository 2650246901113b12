//! The fidelity matrix file: which scenarios, with which `--set` variations,
//! are run on the simulator and on a real network, how many times, and how
//! close they must agree.
//!
//! ```json
//! {
//!   "name": "fidelity",
//!   "repeats": 3,
//!   "set": ["file.size=20 MiB"],
//!   "tolerance": { "relative": 0.05, "relay_s": 0.1 },
//!   "rows": [
//!     { "name": "cs-8", "scenario": "lab-client-server", "set": ["peers.count=8"] }
//!   ]
//! }
//! ```
//!
//! `set` at the top applies to every row, before the row's own. A row's
//! `scenario` is a library name or a file path (relative to the matrix
//! file). Every error names the field at fault.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// A matrix as written in its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// Short name, shown in tables and figures.
    pub name: String,
    /// What the matrix shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Runs per row on each backend, run k with seed k (default 3).
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// `--set` overrides applied to every row, before its own.
    #[serde(default)]
    pub set: Vec<String>,
    /// How close the simulator must come.
    #[serde(default)]
    pub tolerance: Tolerance,
    /// The rows.
    pub rows: Vec<Row>,
}

/// How close the simulator must come to the real network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// Largest relative error |sim − real| / real of a mean (default 0.05).
    #[serde(default = "default_relative")]
    pub relative: f64,
    /// Relay timings (sender finished, detection) also pass within this
    /// many seconds (default 0.1).
    #[serde(default = "default_relay_s")]
    pub relay_s: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            relative: default_relative(),
            relay_s: default_relay_s(),
        }
    }
}

fn default_repeats() -> u32 {
    3
}
fn default_relative() -> f64 {
    0.05
}
fn default_relay_s() -> f64 {
    0.1
}

/// One row: a scenario with its variation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Unique name of the row.
    pub name: String,
    /// Library scenario or scenario file.
    pub scenario: String,
    /// `--set` overrides of this row.
    #[serde(default)]
    pub set: Vec<String>,
    /// This row's own tolerance, where the matrix's does not fit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
    /// Why this row is known to miss, if it does (shown with its result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_miss: Option<String>,
}

impl Matrix {
    /// Reads and checks a matrix: a file, or the name of a matrix shipped
    /// with peerlab ([`SHIPPED`]).
    pub fn load(arg: &str) -> Result<Matrix> {
        let path = Path::new(arg);
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the matrix file {}", path.display()))?;
            return Matrix::from_json(&text, path, path.parent().unwrap_or(Path::new(".")));
        }
        if let Some((_, text)) = SHIPPED.iter().find(|(name, _)| *name == arg) {
            return Matrix::from_json(text, Path::new(arg), Path::new("."));
        }
        let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        bail!(
            "no matrix file or shipped matrix named {arg:?}; shipped matrices: {}",
            names.join(", ")
        )
    }

    /// Parses and checks a matrix from `text`; `origin` names it in errors,
    /// scenario files are found relative to `base`.
    pub fn from_json(text: &str, origin: &Path, base: &Path) -> Result<Matrix> {
        let mut m: Matrix = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| {
            let field = e.path().to_string();
            anyhow::anyhow!("{}: field `{field}`: {}", origin.display(), e.into_inner())
        })?;
        m.check(origin)?;
        for row in &mut m.rows {
            let candidate = base.join(&row.scenario);
            if peerlab_scenarios::library::get(&row.scenario).is_none() && candidate.exists() {
                row.scenario = candidate.display().to_string();
            }
        }
        Ok(m)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let at = path.display();
        if self.repeats == 0 {
            bail!("{at}: field `repeats`: at least one run per row is needed");
        }
        if !(self.tolerance.relative > 0.0 && self.tolerance.relative < 1.0) {
            bail!("{at}: field `tolerance.relative`: must be in (0, 1), e.g. 0.05 for 5%");
        }
        if self.tolerance.relay_s < 0.0 {
            bail!("{at}: field `tolerance.relay_s`: must not be negative");
        }
        if self.rows.is_empty() {
            bail!("{at}: field `rows`: the matrix has no rows");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, row) in self.rows.iter().enumerate() {
            if row.name.is_empty() || row.name.contains(['/', ' ']) {
                bail!(
                    "{at}: field `rows[{i}].name`: {:?} must be a non-empty name without spaces or slashes",
                    row.name
                );
            }
            if !names.insert(&row.name) {
                bail!("{at}: field `rows[{i}].name`: {:?} is used twice", row.name);
            }
            if row
                .set
                .iter()
                .chain(&self.set)
                .any(|s| s.trim_start().starts_with("seed="))
            {
                bail!(
                    "{at}: field `rows[{i}].set`: the seed is the run's number (1..repeats); do not set it"
                );
            }
        }
        Ok(())
    }

    /// Every `--set` of row `row`, run `k` (seed k).
    pub fn sets(&self, row: &Row, k: u32) -> Vec<String> {
        let mut sets = self.set.clone();
        sets.extend(row.set.iter().cloned());
        sets.push(format!("seed={k}"));
        sets
    }

    /// Rows whose names are in `only` (all if empty); an unknown name is an
    /// error listing the known ones.
    pub fn select(&self, only: &[String]) -> Result<Vec<Row>> {
        for name in only {
            if !self.rows.iter().any(|r| &r.name == name) {
                let known: Vec<&str> = self.rows.iter().map(|r| r.name.as_str()).collect();
                bail!(
                    "no row named {name:?} in matrix {}; its rows: {}",
                    self.name,
                    known.join(", ")
                );
            }
        }
        Ok(self
            .rows
            .iter()
            .filter(|r| only.is_empty() || only.contains(&r.name))
            .cloned()
            .collect())
    }
}

/// The matrices shipped with peerlab, by name: the full one the docs show,
/// and the small one CI runs on Mininet.
pub const SHIPPED: [(&str, &str); 2] = [
    ("matrix", include_str!("../../scenarios/fidelity/matrix.json")),
    ("ci", include_str!("../../scenarios/fidelity/ci.json")),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Matrix> {
        let dir = std::env::temp_dir().join(format!("peerlab-matrix-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("m.json");
        std::fs::write(&path, text)?;
        Matrix::load(&path.display().to_string())
    }

    #[test]
    fn a_matrix_reads_with_defaults_and_errors_name_the_field() {
        let m = parse(r#"{ "name": "m", "rows": [ { "name": "a", "scenario": "lab-client-server" } ] }"#)
            .unwrap();
        assert_eq!(m.repeats, 3);
        assert_eq!(m.tolerance, Tolerance::default());
        assert_eq!(m.sets(&m.rows[0], 2), ["seed=2"]);
        let e = parse(r#"{ "name": "m", "rows": [ { "name": "a", "scenaro": "x" } ] }"#).unwrap_err();
        assert!(e.to_string().contains("rows[0]"), "{e}");
        let e = parse(r#"{ "name": "m", "rows": [] }"#).unwrap_err();
        assert!(e.to_string().contains("`rows`"), "{e}");
        let e = parse(
            r#"{ "name": "m", "rows": [ { "name": "a", "scenario": "x" }, { "name": "a", "scenario": "y" } ] }"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("rows[1].name"), "{e}");
        let e = parse(r#"{ "name": "m", "rows": [ { "name": "a", "scenario": "x", "set": ["seed=4"] } ] }"#)
            .unwrap_err();
        assert!(e.to_string().contains("seed"), "{e}");
        let m = parse(r#"{ "name": "m", "rows": [ { "name": "a", "scenario": "x" } ] }"#).unwrap();
        assert!(
            m.select(&["b".into()])
                .unwrap_err()
                .to_string()
                .contains("its rows: a")
        );
    }
}
