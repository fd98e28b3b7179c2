//! Leader election: campaign, lead until told to stop or until leadership is lost, resign.
//!
//! ```sh
//! cargo run --release -p corral-server -- dev          # in another terminal
//! cargo run -p corral-client --example election -- host-a   # and in others: host-b, host-c
//! ```
//!
//! Each process prints every change of leader it observes and, while it leads, does its
//! "leader work" every second (tagged with the term's fencing token). Ctrl-C resigns: the next
//! candidate takes over at once. Kill a leader with SIGKILL instead and the next one takes over
//! when its session expires (10 s). `corral elect -l /examples/election` observes from a shell.

use std::time::Duration;

use corral_client::recipes::Election;
use corral_client::Client;
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| format!("pid-{}", std::process::id()));
    let endpoints = std::env::var("CORRAL_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003".into());
    let client = Client::connect(endpoints.split(',').map(String::from).collect()).await?;
    client.start_session(10_000).await?;
    let election = Election::new(&client, "/examples/election");
    let mut changes = election.observe();
    let observer = tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            match change {
                Ok(Some(leader)) => println!("leader: {} (term {})", String::from_utf8_lossy(&leader.value), leader.fencing_token),
                Ok(None) => println!("no leader"),
                Err(e) => eprintln!("observing: {e}"),
            }
        }
    });
    let leadership = tokio::select! {
        l = election.campaign(name.clone()) => l?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
    };
    println!("{name}: elected (term {})", leadership.fencing_token());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            reason = leadership.lost() => {
                eprintln!("{name}: no longer the leader: {reason}");
                break;
            }
            _ = tick.tick() => println!("{name}: leading (term {})", leadership.fencing_token()),
            _ = tokio::signal::ctrl_c() => {
                leadership.resign().await?;
                println!("{name}: resigned");
                break;
            }
        }
    }
    observer.abort();
    client.close_session().await?;
    Ok(())
}
