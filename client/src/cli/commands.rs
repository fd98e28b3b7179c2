//! One function per command. Each takes the client to use (reads get the
//! consistency the user asked for) and prints its result with `emit`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use corral_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, Error, ErrorCode, EventType, SessionState, Stat,
};
use futures::StreamExt;

use super::format;
use super::{
    arg_bytes, emit, stdout_is_terminal, CliError, CreateArgs, DeleteArgs, GetArgs, LsArgs, MemberArgs, MemberOp,
    SetArgs, StatArgs, WatchArgs,
};

/// The session timeout `create -e` and `watch` ask for when not told
/// otherwise: short enough that a holder killed with SIGKILL releases its node
/// soon, once the server expires the session.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before looking again after a check that may not have
/// reached the ensemble (the session is reconnecting).
const RECHECK_AFTER: Duration = Duration::from_millis(200);

pub(super) fn timeout_ms(timeout: Option<Duration>) -> i32 {
    let timeout = timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

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
        return hold_ephemeral(client, &args.path, &data, options, timeout_ms(args.session_timeout)).await;
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
    session_timeout_ms: i32,
) -> Result<(), CliError> {
    // Installed before the node exists, so a signal that arrives at any point
    // after `Created` is printed is seen rather than killing the process with
    // the session still open.
    let mut stop = StopSignal::install()?;
    let session = client.start_session(session_timeout_ms).await?;
    let held = hold(client, path, data, options, session.id, &mut stop).await;
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
    stop: &mut StopSignal,
) -> Result<(), CliError> {
    let (path, _) = client.create(path, data, options).await?;
    emit(format!("Created {path}\n").as_bytes())?;
    if std::io::stderr().is_terminal() {
        eprintln!("Holding ephemeral node {path} (session 0x{session_id:x}); press Ctrl-C to delete it and exit.");
    }
    // The session's own pings keep it (and so the node) alive. An exists
    // watch notices when someone else deletes the node, at which point there
    // is nothing left to hold; a session that expires fails the watch.
    let deleted = || -> CliError {
        Error::Zk { code: ErrorCode::NoNode, message: format!("{path} was deleted while this command held it") }.into()
    };
    loop {
        let check = tokio::select! {
            () = stop.recv() => return Ok(()),
            check = client.exists_watch(&path) => check,
        };
        let watch = match check {
            Ok((Some(stat), watch)) if stat.ephemeral_owner == session_id => watch,
            Ok(_) => return Err(deleted()),
            // No member reachable for now: the session may well survive it.
            Err(e) if !e.is_definite() => {
                tokio::select! {
                    () = stop.recv() => return Ok(()),
                    () = tokio::time::sleep(RECHECK_AFTER) => continue,
                }
            }
            Err(e) => return Err(e.into()),
        };
        let event = tokio::select! {
            () = stop.recv() => return Ok(()),
            event = watch => event?,
        };
        if event.kind == EventType::NodeDeleted {
            return Err(deleted());
        }
        // Anything else (the data changed): look again, with a new watch.
    }
}

/// `watch PATH [-R]`: open a session, leave a persistent (or recursive) watch
/// and print each event as a line until a signal says to stop.
pub async fn watch(client: &Client, args: WatchArgs) -> Result<(), CliError> {
    let mut stop = StopSignal::install()?;
    client.start_session(timeout_ms(args.session_timeout)).await?;
    let followed = follow(client, &args, &mut stop).await;
    let closed = client.close_session().await;
    followed?;
    closed?;
    Ok(())
}

async fn follow(client: &Client, args: &WatchArgs, stop: &mut StopSignal) -> Result<(), CliError> {
    let mode = if args.recursive { AddWatchMode::PersistentRecursive } else { AddWatchMode::Persistent };
    let mut states = client.session_states();
    let mut events = client.add_watch(&args.path, mode).await?;
    let human = std::io::stderr().is_terminal();
    if human {
        let what = if args.recursive { "and everything under it" } else { "(the node itself)" };
        eprintln!("Watching {} {what}; press Ctrl-C to stop.", args.path);
    }
    loop {
        tokio::select! {
            () = stop.recv() => return Ok(()),
            event = events.next() => match event {
                Some(event) => emit(format!("{event}\n").as_bytes())?,
                // The stream ends with the session.
                None => {
                    return Err(Error::Zk {
                        code: ErrorCode::SessionExpired,
                        message: format!("the session ended ({}): no more events", client.session_state()),
                    }
                    .into())
                }
            },
            Some(state) = states.next() => {
                if human && matches!(state, SessionState::Disconnected | SessionState::Connected) {
                    eprintln!("({state})");
                }
            }
        }
    }
}

/// Ctrl-C, SIGTERM or SIGHUP (a closed terminal): every way a foreground
/// command is normally told to stop, so `create -e` always gets to close its
/// session.
pub(super) struct StopSignal {
    #[cfg(unix)]
    signals: Vec<tokio::signal::unix::Signal>,
}

impl StopSignal {
    #[cfg(unix)]
    pub(super) fn install() -> Result<StopSignal, CliError> {
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
    pub(super) fn install() -> Result<StopSignal, CliError> {
        Ok(StopSignal {})
    }

    #[cfg(unix)]
    pub(super) async fn recv(&mut self) {
        let waits = self.signals.iter_mut().map(|s| Box::pin(s.recv()));
        futures::future::select_all(waits).await;
    }

    #[cfg(not(unix))]
    pub(super) async fn recv(&mut self) {
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

pub async fn member(client: &Client, args: MemberArgs) -> Result<(), CliError> {
    let secret = &args.cluster_secret;
    let membership = match args.op {
        MemberOp::Add { observer, id, addr } => client.add_member(secret, id, &addr, !observer).await?,
        MemberOp::Remove { id } => client.remove_member(secret, id).await?,
        MemberOp::List => {
            let status = client.status().await?;
            return emit(format::members_table(&status).as_bytes());
        }
    };
    emit(format::membership_table(&membership).as_bytes())
}
