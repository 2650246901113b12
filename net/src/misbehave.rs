//! Misbehaviour a node can be switched into, so that a scenario can test how
//! the others cope (the fault `corrupt`): while [`is_corrupting`], every block
//! this process sends carries the bitwise complement of the bytes it read
//! from its file, so each piece holding one fails its hash check at the
//! receiver. `peerlab node` switches it with SIGUSR1 (on) and SIGUSR2 (off).
//! One switch per process: a node is one process.

use std::sync::atomic::{AtomicBool, Ordering};

static CORRUPTING: AtomicBool = AtomicBool::new(false);

/// Turns corrupting on or off for this process.
pub fn set_corrupting(on: bool) {
    CORRUPTING.store(on, Ordering::Relaxed);
}

/// Whether this process sends corrupt blocks.
pub fn is_corrupting() -> bool {
    CORRUPTING.load(Ordering::Relaxed)
}

/// Spoils a block payload about to be sent, when corrupting.
pub fn spoil(payload: &mut [u8]) {
    if is_corrupting() {
        for b in payload {
            *b = !*b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupting_process_complements_what_it_sends() {
        let mut block = [0u8, 1, 0xff];
        spoil(&mut block);
        assert_eq!(block, [0, 1, 0xff], "honest by default");
        set_corrupting(true);
        spoil(&mut block);
        set_corrupting(false);
        assert_eq!(block, [0xff, 0xfe, 0]);
    }
}
