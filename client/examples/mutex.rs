//! A fair distributed mutex with a fencing token, guarding a counter in a znode.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev          # in another terminal
//! cargo run -p corral-client --example mutex            # run it several times at once
//! ```
//!
//! Each process takes `/examples/mutex` five times; while it holds the lock it reads the
//! counter at `/examples/counter`, waits a little and writes it back plus one. The write is
//! conditional on the counter's version and carries the fencing token in the data, so even a
//! holder that lost its session mid-update (see `LockGuard::lost`) could not overwrite a newer
//! holder's work. Run several copies: the counter ends at 5 × the number of processes.

use std::time::Duration;

use corral_client::recipes::{LockOptions, Mutex};
use corral_client::{Client, CreateMode, CreateOptions, ErrorCode};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoints = std::env::var("CORRAL_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());
    let client = Client::connect(endpoints.split(',').map(String::from).collect()).await?;
    client.start_session(10_000).await?;
    match client.create("/examples", b"", CreateOptions::new(CreateMode::Persistent)).await {
        Ok(_) => {}
        Err(e) if e.code() == ErrorCode::NodeExists => {}
        Err(e) => return Err(e.into()),
    }
    match client.create("/examples/counter", b"0", CreateOptions::new(CreateMode::Persistent)).await {
        Ok(_) => {}
        Err(e) if e.code() == ErrorCode::NodeExists => {}
        Err(e) => return Err(e.into()),
    }
    let me = format!("pid {}", std::process::id());
    let mutex = Mutex::with_options(&client, "/examples/mutex", LockOptions::new().data(me.clone()));
    for round in 0..5 {
        let guard = mutex.acquire().await?;
        let token = guard.fencing_token();
        println!("{me}: round {round}: holding {} (fencing token {token})", guard.node());
        let update = async {
            let (data, stat) = client.get_data("/examples/counter").await?;
            let n: u64 = String::from_utf8_lossy(&data).split_whitespace().next().unwrap_or("0").parse()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            client.set_data("/examples/counter", format!("{} token={token}", n + 1).as_bytes(), Some(stat.version)).await?;
            anyhow::Ok(n + 1)
        };
        tokio::select! {
            reason = guard.lost() => {
                eprintln!("{me}: lost the lock ({reason}); the version check kept the counter safe");
                continue;
            }
            n = update => println!("{me}: counter is now {}", n?),
        }
        guard.release().await?;
    }
    client.close_session().await?;
    Ok(())
}
