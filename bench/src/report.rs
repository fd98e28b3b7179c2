//! A run's figures: JSON for machines, a table row for people.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::runner::RunArgs;

/// The quantiles kept for latency CDF plots.
const CDF_QUANTILES: &[f64] = &[
    0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995,
    0.9999, 1.0,
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Which system or setting this was (e.g. "corral-3", "zookeeper-3").
    pub label: String,
    pub workload: String,
    pub protocol: String,
    pub members: usize,
    pub clients: usize,
    pub inflight: usize,
    pub size: usize,
    /// Measured successful requests (notifications for the watch workload).
    pub ops: u64,
    pub seconds: f64,
    pub throughput: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Failed requests during the measured interval, by kind.
    pub errors: BTreeMap<String, u64>,
    /// (quantile, latency ms) points of the latency distribution.
    pub cdf: Vec<(f64, f64)>,
}

impl Report {
    pub fn new(
        label: &str,
        args: &RunArgs,
        h: &Histogram<u64>,
        errors: BTreeMap<String, u64>,
        elapsed: Duration,
    ) -> Report {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |x: f64| if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(x)) };
        let seconds = elapsed.as_secs_f64();
        Report {
            label: label.to_string(),
            workload: args.workload.name().to_string(),
            protocol: format!("{:?}", args.protocol).to_lowercase(),
            members: args.endpoints.len(),
            clients: args.clients,
            inflight: args.inflight,
            size: args.size,
            ops: h.len(),
            seconds,
            throughput: h.len() as f64 / seconds.max(1e-9),
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            errors,
            cdf: if h.is_empty() { Vec::new() } else { CDF_QUANTILES.iter().map(|&x| (x, q(x))).collect() },
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// In-flight requests over all clients.
    pub fn concurrency(&self) -> usize {
        self.clients * self.inflight
    }

    pub fn table_header() -> String {
        format!(
            "{:<14} {:<9} {:>5} {:>5} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "system", "workload", "cli", "infl", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms", "errors"
        )
    }

    pub fn table_row(&self) -> String {
        format!(
            "{:<14} {:<9} {:>5} {:>5} {:>11.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>7}",
            self.label,
            self.workload,
            self.clients,
            self.inflight,
            self.throughput,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.error_count()
        )
    }

    /// The error kinds, for a line under the table.
    pub fn error_summary(&self) -> Option<String> {
        if self.errors.is_empty() {
            return None;
        }
        let kinds: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        Some(format!("{} {} errors: {}", self.label, self.workload, kinds.join(", ")))
    }
}
