//! # corral-sim-tests
//!
//! Whole Corral ensembles and their clients inside madsim's deterministic simulator: one seed,
//! one exact run, replayable. Built with `RUSTFLAGS="--cfg madsim"` into its own target
//! directory (see `docs/testing.md`); in the normal build only the checkers compile, and their
//! unit tests run there.
//!
//! - [`checker`]: the linearizability checker for versioned registers (pure).
//! - [`sim`]: the harness (simulated members with crash-able disks, clients, the nemesis);
//!   only under `cfg(madsim)`.

pub mod checker;

#[cfg(madsim)]
pub mod sim;
