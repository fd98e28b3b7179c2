//! The one seam for nondeterminism outside the simulator's reach: the wall clock
//! and randomness a member stamps into the log entries it proposes. Applying an
//! entry never calls these; only the proposing member does, so replicas agree.

/// Milliseconds since the Unix epoch: a znode's ctime/mtime.
pub fn now_ms() -> i64 {
    // madsim intercepts SystemTime, so this is simulated time under the simulator.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Random bytes for session passwords.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    #[cfg(madsim)]
    madsim::rand::thread_rng().fill_bytes(&mut buf);
    #[cfg(not(madsim))]
    rand::thread_rng().fill_bytes(&mut buf);
    buf
}
