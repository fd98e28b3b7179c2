//! One function per command. Each takes the client to use (reads get the
//! consistency the user asked for) and prints its result with `emit`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, Error, ErrorCode, Stat};

use super::format;
use super::{
    arg_bytes, emit, stdout_is_terminal, CliError, CreateArgs, DeleteArgs, GetArgs, LsArgs, SetArgs, StatArgs,
};

/// The session timeout `create -e` asks for when not told otherwise: short
/// enough that a holder killed with SIGKILL releases its node soon, once the
/// server expires the session.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// ZooKeeper's "any version" is -1 on the wire; the client spells it `None`.
fn version(v: Option<i32>) -> Option<i32> {
    v.filter(|v| *v != -1)
}

pub async fn create(client: &Client, args: CreateArgs) -> Result<(), CliError> {
    // Clap refuses the flag combinations that have no mode up front (a usage
    // error, exit 2); the library's rule still decides, should the two differ.
    let mode = CreateMode::from_flags(args.ephemeral, args.sequential, args.container, args.ttl.is_some())?;
    let mut options = CreateOptions::new(mode);
    if let Some(ttl) = args.ttl {
        options = options.with_ttl_ms(ttl);
    }
    let data = args.data.map(arg_bytes).unwrap_or_default();
    if mode.is_ephemeral() {
        let timeout = args.session_timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
        return hold_ephemeral(client, &args.path, &data, options, timeout).await;
    }
    let (path, _) = client.create(&args.path, &data, options).await?;
    emit(format!("Created {path}\n").as_bytes())
}

/// `create -e`: open a session, create the node, print its path, then keep the
/// session (and so the node) until a signal says to stop.
async fn hold_ephemeral(
    client: &Client,
    path: &str,
    data: &[u8],
    options: CreateOptions,
    session_timeout: Duration,
) -> Result<(), CliError> {
    // Installed before the node exists, so a signal that arrives at any point
    // after `Created` is printed is seen rather than killing the process with
    // the session still open.
    let mut stop = StopSignal::install()?;
    let timeout_ms = i32::try_from(session_timeout.as_millis()).unwrap_or(i32::MAX);
    let session = client.start_session(timeout_ms).await?;
    let held = hold(client, path, data, options, session.id, session.timeout_ms, &mut stop).await;
    // Closing the session is what deletes the node, so it happens whether the
    // hold ended by a signal or failed (a failed create must not leave an
    // open session behind either).
    let closed = client.close_session().await;
    held?;
    closed?;
    Ok(())
}

async fn hold(
    client: &Client,
    path: &str,
    data: &[u8],
    options: CreateOptions,
    session_id: i64,
    session_timeout_ms: i32,
    stop: &mut StopSignal,
) -> Result<(), CliError> {
    let (path, _) = client.create(path, data, options).await?;
    emit(format!("Created {path}\n").as_bytes())?;
    if std::io::stderr().is_terminal() {
        eprintln!("Holding ephemeral node {path} (session 0x{session_id:x}); press Ctrl-C to delete it and exit.");
    }
    // Checking the node a few times per session timeout keeps the session
    // busy (a server that expires idle sessions sees traffic) and notices when
    // the node is gone, at which point there is nothing left to hold.
    let period = Duration::from_millis(u64::try_from(session_timeout_ms / 3).unwrap_or(0).max(200));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.recv() => return Ok(()),
            _ = ticks.tick() => {}
        }
        let check = tokio::select! {
            () = stop.recv() => return Ok(()),
            check = client.exists(&path) => check,
        };
        match check {
            Ok(Some(stat)) if stat.ephemeral_owner == session_id => {}
            Ok(_) => {
                return Err(Error::Zk {
                    code: ErrorCode::NoNode,
                    message: format!("{path} was deleted while this command held it"),
                }
                .into())
            }
            // Lost contact for now: the session may well survive it, and the
            // next check will tell.
            Err(e) if !e.is_definite() => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Ctrl-C, SIGTERM or SIGHUP (a closed terminal): every way a foreground
/// command is normally told to stop, so `create -e` always gets to close its
/// session.
struct StopSignal {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl StopSignal {
    #[cfg(unix)]
    fn install() -> Result<StopSignal, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()];
        let signals = kinds
            .into_iter()
            .map(signal)
            .collect::<Result<_, _>>()
            .map_err(|source| CliError::Io { context: "installing signal handlers", source })?;
        Ok(StopSignal { signals })
    }

    #[cfg(not(unix))]
    fn install() -> Result<StopSignal, CliError> {
        Ok(StopSignal {})
    }

    #[cfg(unix)]
    async fn recv(&mut self) {
        let waits = self.signals.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        // Without a handler there is nothing better to do than wait forever;
        // failing here would skip closing the session.
        if tokio::signal::ctrl_c().await.is_err() {
            futures::future::pending::<()>().await;
        }
    }
}

pub async fn get(client: &Client, args: GetArgs) -> Result<(), CliError> {
    let (mut out, stat) = client.get_data(&args.path).await?;
    if args.stat {
        // Always exactly one newline before the Stat, so the data is everything
        // before the last 12 lines whatever it ends with.
        out.push(b'\n');
        out.extend_from_slice(format::stat(&stat).as_bytes());
    } else if stdout_is_terminal() && !out.is_empty() && !out.ends_with(b"\n") {
        // Only for a human: a pipe gets the bytes exactly as stored.
        out.push(b'\n');
    }
    emit(&out)
}

pub async fn set(client: &Client, args: SetArgs) -> Result<(), CliError> {
    let stat = client.set_data(&args.path, &arg_bytes(args.data), version(args.version)).await?;
    if args.stat {
        emit(format::stat(&stat).as_bytes())?;
    }
    Ok(())
}

pub async fn delete(client: &Client, args: DeleteArgs) -> Result<(), CliError> {
    client.delete(&args.path, version(args.version)).await?;
    Ok(())
}

pub async fn stat(client: &Client, args: StatArgs) -> Result<(), CliError> {
    // exists answers a missing node with None; for this command that is the
    // same NoNode error `get` reports.
    let stat: Stat = match client.exists(&args.path).await? {
        Some(stat) => stat,
        None => {
            return Err(Error::Zk { code: ErrorCode::NoNode, message: args.path }.into());
        }
    };
    emit(format::stat(&stat).as_bytes())
}

pub async fn ls(client: &Client, args: LsArgs) -> Result<(), CliError> {
    if !args.recursive {
        let (mut names, _) = client.get_children(&args.path).await?;
        names.sort();
        let out: String = names.iter().map(|n| format!("{n}\n")).collect();
        return emit(out.as_bytes());
    }
    let children = list_subtree(client, &args.path).await?;
    let out: String = format::depth_first(&args.path, &children).iter().map(|p| format!("{p}\n")).collect();
    emit(out.as_bytes())
}

/// Every node under `root`, as a map from path to its sorted children's full
/// paths. One level at a time, with a level's requests all queued before the
/// first is awaited, so a wide tree costs one round of latency per level rather
/// than one per node.
async fn list_subtree(client: &Client, root: &str) -> Result<HashMap<String, Vec<String>>, CliError> {
    let mut children = HashMap::new();
    let mut level = vec![root.to_string()];
    while !level.is_empty() {
        let replies: Vec<_> = level.iter().map(|p| client.get_children(p)).collect();
        let mut next = Vec::new();
        for (path, reply) in level.into_iter().zip(replies) {
            match reply.await {
                Ok((mut names, _)) => {
                    names.sort();
                    let paths: Vec<String> = names.iter().map(|n| format::child_path(&path, n)).collect();
                    next.extend(paths.iter().cloned());
                    children.insert(path, paths);
                }
                // Deleted since its parent was listed: it was still there a
                // moment ago, so it is listed, as a leaf.
                Err(Error::Zk { code: ErrorCode::NoNode, .. }) if path != root => {}
                Err(e) => return Err(e.into()),
            }
        }
        level = next;
    }
    Ok(children)
}

pub async fn status(client: &Client) -> Result<(), CliError> {
    let status = client.status().await?;
    emit(format::status_table(&status).as_bytes())
}
