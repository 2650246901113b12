//! `--set path=value`: change any field of a scenario from the command line
//! before it is validated, e.g. `--set peers.count=14`,
//! `--set file.size="20 MiB"`, `--set peers.hosts.0.upload="1 Mbit/s"`.

use serde_json::Value;

/// Applies one `path=value` override to a scenario document. The value is
/// read as JSON when it parses as JSON (numbers, booleans, objects) and as a
/// plain string otherwise. Missing objects on the path are created; the
/// scenario's own checks then reject fields that do not exist.
///
/// On error returns `(field, message)`.
pub fn apply_override(doc: &mut Value, assignment: &str) -> Result<(), (String, String)> {
    let Some((path, raw)) = assignment.split_once('=') else {
        return Err((
            String::new(),
            format!("--set {assignment:?} is not of the form path=value (e.g. peers.count=8)"),
        ));
    };
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err((
            path.to_string(),
            format!("--set {assignment:?}: the path has an empty part"),
        ));
    }
    let value = serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.trim().to_string()));
    let mut here = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let so_far = parts[..=i].join(".");
        let last = i + 1 == parts.len();
        here = match here {
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_string(), value);
                    return Ok(());
                }
                map.entry((*part).to_string())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => {
                let len = items.len();
                let index: usize = part.parse().map_err(|_| {
                    (
                        so_far.clone(),
                        format!("--set: `{part}` should be a list index (0..{len})"),
                    )
                })?;
                let slot = items.get_mut(index).ok_or_else(|| {
                    (
                        so_far.clone(),
                        format!("--set: index {index} is past the end of a list of {len}"),
                    )
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err((
                    parts[..i].join("."),
                    format!("--set: cannot set `{part}` inside a value that is not an object"),
                ));
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_numbers_strings_and_list_items() {
        let mut doc = json!({"peers": {"count": 1, "hosts": [{"upload": "1 Mbit/s"}]}});
        apply_override(&mut doc, "peers.count=14").unwrap();
        apply_override(&mut doc, "peers.hosts.0.upload=3 Mbit/s").unwrap();
        apply_override(&mut doc, "network.latency=5 ms").unwrap();
        assert_eq!(
            doc,
            json!({"peers": {"count": 14, "hosts": [{"upload": "3 Mbit/s"}]}, "network": {"latency": "5 ms"}})
        );
    }

    #[test]
    fn bad_assignments_say_why() {
        let mut doc = json!({"seed": 1, "peers": {"hosts": []}});
        assert!(
            apply_override(&mut doc, "seed")
                .unwrap_err()
                .1
                .contains("path=value")
        );
        assert_eq!(apply_override(&mut doc, "seed.x=1").unwrap_err().0, "seed");
        assert!(
            apply_override(&mut doc, "peers.hosts.3.upload=1")
                .unwrap_err()
                .1
                .contains("past the end")
        );
    }
}
