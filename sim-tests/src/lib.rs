//! # corral-sim-tests
//!
//! Whole Corral ensembles and their clients inside madsim's deterministic simulator: one seed,
//! one exact run, replayable. Built with `RUSTFLAGS="--cfg madsim"` into its own target
//! directory (see `docs/testing.md`); in the normal build only the checkers compile, and their
//! unit tests run there.
//!
//! - [`checker`]: the linearizability checker for versioned registers (pure).
//! - [`sequential`]: the checker for concurrently created sequential nodes (pure).
//! - [`watches`]: the checker for watch events against replies, per session (pure).
//! - [`sim`]: simulated members with crash-able disks, the nemesis and the log audit; only under
//!   `cfg(madsim)`.
//! - [`membership`]: an operator that removes voters and adds them back, as a fault; only under
//!   `cfg(madsim)`.
//! - [`harness`]: runs a scenario over seeds, deterministically (replaces `#[madsim::test]`).

pub mod checker;
pub mod sequential;
pub mod watches;

#[cfg(madsim)]
pub mod harness;
#[cfg(madsim)]
pub mod membership;
#[cfg(madsim)]
pub mod sim;
