//! Room on a disk, checked before writing files of known size, so that a run
//! or a download that cannot fit fails at once with the numbers instead of
//! filling the disk and failing half-way.

use std::path::Path;

use anyhow::{Result, bail};

use crate::human;

/// Bytes an unprivileged user may still write on the file system holding
/// `path` (or, if it does not exist yet, its nearest existing ancestor).
/// `None` when the system cannot say.
#[allow(clippy::useless_conversion)] // the field types differ between platforms
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size())))
}

/// Fails when the file system holding `dir` has less than `needed` bytes
/// free, saying what needed them (`what`). Passes when the system cannot
/// say how much is free.
pub fn ensure_room(dir: &Path, needed: u64, what: &str) -> Result<()> {
    match free_bytes(dir) {
        Some(free) if free < needed => bail!(
            "{what} needs {} but the disk holding {} has {} free; free space there or choose \
             another directory",
            human::bytes(needed),
            dir.display(),
            human::bytes(free)
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_space_of_a_new_directory_is_its_parents() {
        let tmp = std::env::temp_dir();
        let free = free_bytes(&tmp).expect("statvfs on the temporary directory");
        assert_eq!(
            free_bytes(&tmp.join("not/yet/created")).map(|f| f > 0),
            Some(free > 0)
        );
        assert!(ensure_room(&tmp, 1, "one byte").is_ok());
        let err = ensure_room(&tmp, u64::MAX, "everything").unwrap_err().to_string();
        assert!(err.contains("everything needs") && err.contains("free"), "{err}");
    }
}
