//! The sweep's grid: each `--set path=v1,v2,…` is an axis, the sweep runs
//! their cartesian product. Values are lists (`a,b,c`), inclusive integer
//! ranges (`2..14`) and stepped ranges (`2..14/2`), mixed freely
//! (`1,2,4..16/4`). Every point is later applied with the scenario's own
//! `--set` machinery, so a value means here what it means to `peerlab run`.

use std::fmt;

/// Most points a sweep runs, so that a typo (`1..100000`) cannot start a
/// week of simulation or fill the memory with values.
pub const MAX_POINTS: usize = 10_000;

/// One swept field and the values it takes, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    /// The field, as `--set` spells it (`peers.count`).
    pub path: String,
    /// Its values, as `--set` would receive them.
    pub values: Vec<String>,
}

impl Axis {
    /// Whether the axis takes more than one value.
    pub fn varies(&self) -> bool {
        self.values.len() > 1
    }
}

/// A `--set` that cannot be swept, with the field it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GridError {
    /// The field (empty when the argument has no path).
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for GridError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "--set {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for GridError {}

/// Parses every `--set` of a sweep into its axes, in the order given.
pub fn parse(sets: &[String]) -> Result<Vec<Axis>, GridError> {
    let mut axes: Vec<Axis> = Vec::with_capacity(sets.len());
    let mut points: usize = 1;
    for set in sets {
        let axis = parse_axis(set)?;
        if axes.iter().any(|a| a.path == axis.path) {
            return Err(GridError {
                path: axis.path,
                message: "given twice; list every value in one --set (path=a,b,c)".into(),
            });
        }
        points = points.saturating_mul(axis.values.len());
        if points > MAX_POINTS {
            return Err(GridError {
                path: axis.path,
                message: format!(
                    "the grid has more than {MAX_POINTS} points (the product of the --set lists); \
                     sweep fewer values at once"
                ),
            });
        }
        axes.push(axis);
    }
    Ok(axes)
}

/// Parses one `path=values` argument.
pub fn parse_axis(set: &str) -> Result<Axis, GridError> {
    let Some((path, raw)) = set.split_once('=') else {
        return Err(GridError {
            path: String::new(),
            message: format!("--set {set:?} is not of the form path=values (e.g. peers.count=2..14)"),
        });
    };
    let path = path.trim().to_string();
    let err = |message: String| GridError {
        path: path.clone(),
        message,
    };
    if path.is_empty() {
        return Err(err(format!("--set {set:?} has no path before `=`")));
    }
    let raw = raw.trim();
    // A whole JSON list or object is one value, commas and all.
    if matches!(
        serde_json::from_str::<serde_json::Value>(raw),
        Ok(serde_json::Value::Array(_) | serde_json::Value::Object(_))
    ) {
        return Ok(Axis {
            path,
            values: vec![raw.to_string()],
        });
    }
    let mut values: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(err(format!(
                "{raw:?} has an empty value; values are separated by commas, and a value that \
                 itself contains a comma cannot be swept"
            )));
        }
        let expanded = match parse_range(item).map_err(&err)? {
            Some(range) => range,
            None => vec![item.to_string()],
        };
        for v in expanded {
            if values.contains(&v) {
                return Err(err(format!("the value {v:?} is listed twice")));
            }
            if values.len() == MAX_POINTS {
                return Err(err(format!("more than {MAX_POINTS} values; sweep fewer at once")));
            }
            values.push(v);
        }
    }
    Ok(Axis { path, values })
}

/// `2..14` or `2..14/3` as its values; `None` when `item` is not a range
/// (does not start like a number or has no `..`).
fn parse_range(item: &str) -> Result<Option<Vec<String>>, String> {
    let Some((start, rest)) = item.split_once("..") else {
        return Ok(None);
    };
    let looks_numeric = start
        .trim()
        .trim_start_matches('-')
        .starts_with(|c: char| c.is_ascii_digit());
    if !looks_numeric {
        return Ok(None);
    }
    let bad = || {
        format!(
            "{item:?} is not a range: write START..END or START..END/STEP with whole numbers \
             (e.g. 2..14 or 2..14/2)"
        )
    };
    let (end, step) = match rest.split_once('/') {
        Some((end, step)) => (end, Some(step)),
        None => (rest, None),
    };
    let int = |s: &str| s.trim().parse::<i64>().map_err(|_| bad());
    let (start, end) = (int(start)?, int(end)?);
    let step = match step {
        Some(s) => s.trim().parse::<u64>().map_err(|_| bad())?,
        None => 1,
    };
    if step == 0 {
        return Err(format!("{item:?}: the step must be at least 1"));
    }
    if end < start {
        return Err(format!(
            "{item:?} is empty: the end ({end}) is below the start ({start})"
        ));
    }
    let count = (end.abs_diff(start) / step).saturating_add(1);
    if count > MAX_POINTS as u64 {
        return Err(format!(
            "{item:?} has {count} values, more than the {MAX_POINTS} a sweep runs"
        ));
    }
    Ok(Some(
        (0..count)
            .map(|k| (i128::from(start) + i128::from(k) * i128::from(step)).to_string())
            .collect(),
    ))
}

/// Every point of the grid as the index of its value on each axis, in grid
/// order: the first axis varies slowest, the last fastest (nested loops in
/// the order of the `--set`s).
pub fn points(axes: &[Axis]) -> Vec<Vec<usize>> {
    let mut points = vec![Vec::with_capacity(axes.len())];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                (0..axis.values.len()).map(move |i| {
                    let mut q = p.clone();
                    q.push(i);
                    q
                })
            })
            .collect();
    }
    points
}

/// The `--set path=value` overrides of one point.
pub fn overrides(axes: &[Axis], point: &[usize]) -> Vec<String> {
    axes.iter()
        .zip(point)
        .map(|(a, &i)| format!("{}={}", a.path, a.values[i]))
        .collect()
}

/// A point for people: `protocol=swarm, peers.count=4` (the varying axes
/// only, or every axis when none varies).
pub fn describe(axes: &[Axis], point: &[usize]) -> String {
    let varying = axes.iter().any(Axis::varies);
    let parts: Vec<String> = axes
        .iter()
        .zip(point)
        .filter(|(a, _)| a.varies() || !varying)
        .map(|(a, &i)| format!("{}={}", a.path, a.values[i]))
        .collect();
    if parts.is_empty() {
        "the scenario as it is".into()
    } else {
        parts.join(", ")
    }
}

/// A value as JSON, read as `--set` reads it: JSON when it parses as JSON,
/// text otherwise.
pub fn json_value(value: &str) -> serde_json::Value {
    serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(set: &str) -> Vec<String> {
        parse_axis(set).unwrap_or_else(|e| panic!("{e}")).values
    }

    fn error(set: &str) -> GridError {
        parse_axis(set).expect_err(set)
    }

    #[test]
    fn lists_ranges_and_steps() {
        assert_eq!(
            values("protocol=client-server, swarm"),
            ["client-server", "swarm"]
        );
        assert_eq!(values("peers.count=2..5"), ["2", "3", "4", "5"]);
        assert_eq!(values("peers.count=2..14/4"), ["2", "6", "10", "14"]);
        assert_eq!(values("peers.count=2..13/4"), ["2", "6", "10"]);
        assert_eq!(
            values("peers.count=1,2,4..16/4"),
            ["1", "2", "4", "8", "12", "16"]
        );
        assert_eq!(values("seed=-2..1"), ["-2", "-1", "0", "1"]);
        assert_eq!(values("peers.count=7..7"), ["7"]);
        assert_eq!(values("network.latency=0 ms,5 ms"), ["0 ms", "5 ms"]);
        assert_eq!(values("file.size=1 MiB"), ["1 MiB"]);
        // Not ranges: text that merely contains `..`.
        assert_eq!(values("description=wait..."), ["wait..."]);
    }

    #[test]
    fn a_whole_json_list_or_object_is_one_value() {
        let v = values(r#"peers.hosts=[{"upload":"1 Mbit/s"},{"upload":"2 Mbit/s"}]"#);
        assert_eq!(v.len(), 1);
        assert_eq!(values(r#"network={"latency":"5 ms","goodput":0.9}"#).len(), 1);
    }

    #[test]
    fn bad_arguments_name_the_field_and_say_why() {
        let e = error("peers.count=2..x");
        assert_eq!(e.path, "peers.count");
        assert!(e.message.contains("START..END"), "{e}");
        assert!(error("peers.count=1.5..3").message.contains("whole numbers"));
        assert!(error("peers.count=5..2").message.contains("below the start"));
        assert!(error("peers.count=2..8/0").message.contains("at least 1"));
        assert!(error("peers.count=2..8/-1").message.contains("START..END/STEP"));
        assert!(error("peers.count=1,,2").message.contains("comma"));
        assert!(error("peers.count=1,2,").message.contains("empty value"));
        assert!(error("peers.count=1,2..3,2").message.contains("listed twice"));
        assert!(error("peers.count=1..20000").message.contains("more than"));
        assert!(error("peers.count").message.contains("path=values"));
        assert!(error("=3").message.contains("no path"));
        let e = error("peers.count=1..3/2/1");
        assert!(e.to_string().starts_with("--set peers.count: "), "{e}");
    }

    #[test]
    fn a_grid_is_the_product_of_its_axes_last_fastest() {
        let sets = ["protocol=a,b".to_string(), "peers.count=1..3".to_string()];
        let axes = parse(&sets).unwrap();
        let pts = points(&axes);
        assert_eq!(pts.len(), 6);
        assert_eq!(overrides(&axes, &pts[0]), ["protocol=a", "peers.count=1"]);
        assert_eq!(overrides(&axes, &pts[4]), ["protocol=b", "peers.count=2"]);
        assert_eq!(describe(&axes, &pts[5]), "protocol=b, peers.count=3");
        assert_eq!(points(&[]), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn grids_reject_repeated_fields_and_too_many_points() {
        let e = parse(&["peers.count=1".into(), "peers.count=2".into()]).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = parse(&["peers.count=1..100".into(), "seed=1..101".into()]).unwrap_err();
        assert_eq!(e.path, "seed");
        assert!(e.message.contains("10000"), "{e}");
    }

    #[test]
    fn point_values_are_json_like_set_reads_them() {
        assert_eq!(json_value("4"), serde_json::json!(4));
        assert_eq!(json_value("5 ms"), serde_json::json!("5 ms"));
    }
}
