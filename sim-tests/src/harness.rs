//! Runs a simulation over seeds, replacing `#[madsim::test]` so that a seed replays the same run
//! whatever ran before it in the process, and `MADSIM_TEST_CHECK_DETERMINISM=1` holds.
//!
//! Why not `#[madsim::test]`: openraft's unbiased `tokio::select!` (real tokio's macro, also
//! behind madsim-tokio) draws from a thread-local generator that tokio seeds from a
//! *process-wide* counter (`tokio::loom::std::rand::seed`: `RandomState::new().hash_one(COUNTER)`,
//! `COUNTER` incremented by every thread that seeds one). madsim runs each seed in a fresh thread,
//! so the n-th seed run in a process sees a different counter from the same seed run alone, and
//! madsim's own determinism check (two runs in one process) sees two different counters. The
//! generator is replaced, though, while a real tokio runtime is entered, by one from the
//! runtime's seed generator, which `Builder::rng_seed` (tokio_unstable) fixes. So each seed here
//! runs madsim's runtime inside `block_on` of a real current-thread tokio runtime seeded from the
//! madsim seed. Nothing else uses that outer runtime: Corral's code runs on madsim's executor.
//!
//! Environment, as madsim's: `MADSIM_TEST_SEED` (first seed; random if unset), `MADSIM_TEST_NUM`
//! (how many seeds, default 1), `MADSIM_TEST_CHECK_DETERMINISM` (run each seed twice and compare
//! the fingerprints: simulated duration, one draw from the simulator's generator at the end, which
//! differs if the two runs drew different numbers of random values, and what the scenario returns).

use std::future::Future;
use std::time::Duration;

#[cfg(not(tokio_unstable))]
compile_error!("build the simulation with RUSTFLAGS=\"--cfg madsim --cfg tokio_unstable\" (see docs/testing.md)");

/// What a run leaves behind; two runs of one seed must leave the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub simulated: Duration,
    pub final_draw: u64,
    pub outcome: String,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

/// Simulated time a seed may take: the longest scenario takes a few minutes even under
/// faults.
const SIMULATED_LIMIT: std::time::Duration = std::time::Duration::from_secs(1800);

/// Runs `scenario` for each of `seeds`: seeds kept as regression tests (see docs/testing.md).
/// The environment's range is not used, but the determinism check is.
pub fn run_seeds<F>(seeds: &[u64], scenario: fn() -> F)
where
    F: Future<Output = String> + 'static,
{
    let check = std::env::var_os("MADSIM_TEST_CHECK_DETERMINISM").is_some();
    for &seed in seeds {
        run_checked(seed, scenario, check);
    }
}

/// Runs `scenario` for every seed of the environment's range; it returns a summary of its run
/// (part of the determinism fingerprint). Panics with the seed on the first failing one.
pub fn run<F>(scenario: fn() -> F)
where
    F: Future<Output = String> + 'static,
{
    let first = env_u64("MADSIM_TEST_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    let count = env_u64("MADSIM_TEST_NUM").unwrap_or(1);
    let check = std::env::var_os("MADSIM_TEST_CHECK_DETERMINISM").is_some();
    for seed in first..first + count {
        run_checked(seed, scenario, check);
    }
}

fn run_checked<F>(seed: u64, scenario: fn() -> F, check: bool)
where
    F: Future<Output = String> + 'static,
{
    let one = run_seed(seed, scenario);
    if check {
        let two = run_seed(seed, scenario);
        if one != two {
            eprintln!("note: run with `MADSIM_TEST_SEED={seed}` environment variable to reproduce this error");
            panic!("seed {seed} is not deterministic:\n first run:  {one:?}\n second run: {two:?}");
        }
    }
}

fn run_seed<F>(seed: u64, scenario: fn() -> F) -> Fingerprint
where
    F: Future<Output = String> + 'static,
{
    let run = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || {
            let outer = real_tokio::runtime::Builder::new_current_thread()
                .rng_seed(real_tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()))
                .build()
                .expect("a current-thread runtime");
            // Unconstrained: the whole simulation runs inside one poll of this future, and real
            // tokio's cooperative budget (which `tokio::sync` charges while a runtime is entered)
            // would otherwise run out and never be refilled, turning every channel receive into
            // an endless yield.
            outer.block_on(real_tokio::task::unconstrained(async move {
                let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
                rt.block_on(async move {
                    let start = madsim::time::Instant::now();
                    // A run that never ends is a failure too (a stalled proposer once kept a
                    // scenario's last client retrying forever), not a CI job that times out.
                    let Ok(outcome) = madsim::time::timeout(SIMULATED_LIMIT, scenario()).await else {
                        panic!("seed {seed} did not finish within {SIMULATED_LIMIT:?} of simulated time");
                    };
                    let simulated = start.elapsed();
                    Fingerprint { simulated, final_draw: madsim::rand::random::<u64>(), outcome }
                })
            }))
        })
        .expect("a thread for the seed")
        .join();
    match run {
        Ok(fingerprint) => fingerprint,
        Err(panic) => {
            eprintln!("note: run with `MADSIM_TEST_SEED={seed}` environment variable to reproduce this error");
            std::panic::resume_unwind(panic)
        }
    }
}
