//! The machine's physical limits, measured in the same run as the systems, so their figures can
//! be read against what the disk and the network stack allow.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// fdatasync after appending 4 KiB to a file in the data directory.
    pub fsync_4k_p50_ms: f64,
    pub fsync_4k_p99_ms: f64,
    /// A 64-byte request and reply over loopback TCP.
    pub loopback_rtt_p50_us: f64,
    pub loopback_rtt_p99_us: f64,
}

fn quantiles(h: &Histogram<u64>) -> (f64, f64) {
    (h.value_at_quantile(0.5) as f64, h.value_at_quantile(0.99) as f64)
}

/// Appends 4 KiB and syncs, `rounds` times, in `dir` (the disk the ensembles use).
pub fn fsync_latency(dir: &Path, rounds: usize) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    let block = vec![0x5au8; 4096];
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    for _ in 0..rounds {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        h.saturating_record(t.elapsed().as_micros() as u64);
    }
    drop(f);
    let _ = std::fs::remove_file(path);
    let (p50, p99) = quantiles(&h);
    Ok((p50 / 1000.0, p99 / 1000.0))
}

/// Ping-pong of 64 bytes over loopback TCP, `rounds` times.
pub fn loopback_rtt(rounds: usize) -> anyhow::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(_) => return Ok(()),
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let mut buf = [7u8; 64];
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        h.saturating_record(t.elapsed().as_micros() as u64);
    }
    drop(s);
    let _ = echo.join();
    Ok(quantiles(&h))
}

pub fn measure(dir: &Path, rounds: usize) -> anyhow::Result<Limits> {
    let (fsync_4k_p50_ms, fsync_4k_p99_ms) = fsync_latency(dir, rounds)?;
    let (loopback_rtt_p50_us, loopback_rtt_p99_us) = loopback_rtt(rounds * 5)?;
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    Ok(Limits {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel,
        fsync_4k_p50_ms,
        fsync_4k_p99_ms,
        loopback_rtt_p50_us,
        loopback_rtt_p99_us,
    })
}
