//! Replays every input kept for the fuzz targets (`fuzz/corpus/<target>/`:
//! the seed inputs and every crash a fuzzing run found, once fixed) through
//! the same code the cargo-fuzz targets run (`fuzz/entry.rs`), on stable,
//! so CI checks the parsers of untrusted input against all of them without
//! a nightly toolchain. `fuzz/README.md` says how to fuzz.

#[path = "../fuzz/entry.rs"]
mod entry;

use std::path::Path;

#[test]
fn every_kept_fuzz_input_parses_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in entry::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "{target}: no inputs kept in {}",
            dir.display()
        );
        for input in inputs {
            let data = std::fs::read(&input).expect("read a kept input");
            let outcome = std::panic::catch_unwind(|| entry::run(target, &data));
            assert!(outcome.is_ok(), "{target}: {} panics", input.display());
        }
    }
}
