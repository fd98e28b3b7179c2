//! # corral-bench
//!
//! Measures Corral the way its users will judge it: against Apache ZooKeeper, on the same
//! machine, with the same client, in the same run.
//!
//! - [`zk`]: a small asynchronous ZooKeeper client on Corral's jute codec (pipelined requests,
//!   notifications, pings), so both systems receive identical bytes.
//! - [`driver`]: one session through either the ZooKeeper protocol or Corral's gRPC API.
//! - [`runner`]: `corral-bench run`, one workload (create, set, get, mixed, multi, watch
//!   fan-out, session establishment) with HDR histograms and error counts.
//! - [`report`]: the figures of one run, as JSON and as a table row.
//! - [`ensemble`]: starting and stopping local Apache ZooKeeper and Corral ensembles, RSS.
//! - [`machine`]: the machine's physical limits (fsync of a 4 KiB append, loopback round trip).
//! - [`compare`]: `corral-bench compare`, the side-by-side run that writes `bench/RESULTS.md`.
//! - [`plot`]: SVG plots of throughput against concurrency and of latency CDFs.
//!
//! See `bench/README.md` for how to run it and how to read the results.

pub mod compare;
pub mod driver;
pub mod ensemble;
pub mod machine;
pub mod plot;
pub mod report;
pub mod runner;
pub mod zk;
