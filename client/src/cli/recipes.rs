//! The recipe commands: `lock`, `elect` and `queue`. Each opens a session for
//! what it holds and closes it on the way out (which deletes whatever
//! ephemeral node is left).

use std::time::Duration;

use corral_client::recipes::{Election, LockNaming, LockOptions, LostReason, Mutex, Queue};
use corral_client::{Client, Error, ErrorCode};
use futures::StreamExt;

use super::commands::{timeout_ms, StopSignal};
use super::{arg_bytes, emit, CliError, ElectArgs, LockArgs, QueueArgs, QueueOp};

/// How long a command gets to exit after SIGTERM before it gets SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A bare name means `/corral/<kind>/<name>`; a path is used as it is.
pub(crate) fn recipe_path(kind: &str, name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/corral/{kind}/{name}")
    }
}

fn lost(what: &str, reason: LostReason) -> CliError {
    let code = match reason {
        LostReason::SessionExpired => ErrorCode::SessionExpired,
        LostReason::NodeDeleted => ErrorCode::NoNode,
        LostReason::Suspended | LostReason::ClientDropped => ErrorCode::ConnectionLoss,
        LostReason::SessionClosed | LostReason::Released => ErrorCode::SessionExpired,
    };
    Error::Zk { code, message: format!("lost {what}: {reason}") }.into()
}

/// Runs `inner` inside a session of its own, closed afterwards whatever
/// happened.
async fn in_session<F, Fut>(client: &Client, session_timeout: Option<Duration>, inner: F) -> Result<(), CliError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    client.start_session(timeout_ms(session_timeout)).await?;
    let outcome = inner().await;
    let closed = client.close_session().await;
    outcome?;
    closed?;
    Ok(())
}

/// `lock NAME [-- COMMAND...]`: hold the lock while the command runs (or,
/// without one, until a signal).
pub async fn lock(client: &Client, args: LockArgs) -> Result<(), CliError> {
    let mut stop = StopSignal::install()?;
    let session_timeout = args.session_timeout;
    in_session(client, session_timeout, || hold_lock(client, args, &mut stop)).await
}

async fn hold_lock(client: &Client, args: LockArgs, stop: &mut StopSignal) -> Result<(), CliError> {
    let path = recipe_path("locks", &args.name);
    let naming = if args.curator { LockNaming::Curator } else { LockNaming::Kazoo };
    let options = LockOptions::new().naming(naming).data(format!("corral lock (pid {})", std::process::id()));
    let mutex = Mutex::with_options(client, &path, options);
    let acquired = tokio::select! {
        () = stop.recv() => return Ok(()),
        acquired = async {
            match args.wait {
                Some(wait) => mutex.acquire_timeout(wait).await,
                None => mutex.acquire().await.map(Some),
            }
        } => acquired?,
    };
    let Some(guard) = acquired else {
        return Err(Error::Zk {
            code: ErrorCode::OperationTimeout,
            message: format!("{path} was not acquired within {:?}", args.wait.unwrap_or_default()),
        }
        .into());
    };
    let what = format!("the lock {path}");
    let Some((program, program_args)) = args.command.split_first() else {
        emit(format!("{}\n", guard.node()).as_bytes())?;
        if super::stderr_is_terminal() {
            eprintln!("Holding {path} (fencing token {}); press Ctrl-C to release it.", guard.fencing_token());
        }
        tokio::select! {
            () = stop.recv() => {}
            reason = guard.lost() => return Err(lost(&what, reason)),
        }
        guard.release().await?;
        return Ok(());
    };
    let mut child = tokio::process::Command::new(program)
        .args(program_args)
        .env("CORRAL_LOCK_NODE", guard.node())
        .env("CORRAL_LOCK_TOKEN", guard.fencing_token().to_string())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CliError::Io { context: "starting the command", source })?;
    let status = tokio::select! {
        status = child.wait() => status,
        reason = guard.lost() => {
            // The command must not go on thinking it is alone.
            terminate(&mut child).await;
            return Err(lost(&what, reason));
        }
        () = stop.recv() => {
            signal(&child, Signal::Term);
            child.wait().await
        }
    };
    let status = status.map_err(|source| CliError::Io { context: "waiting for the command", source })?;
    guard.release().await?;
    match exit_code(status) {
        0 => Ok(()),
        code => Err(CliError::Exit(code)),
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
}

#[cfg(unix)]
fn signal(child: &tokio::process::Child, sig: Signal) {
    let Signal::Term = sig;
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid we spawned and still wait for (so it has
        // not been reaped and reused) and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn signal(_child: &tokio::process::Child, _sig: Signal) {}

/// SIGTERM, then SIGKILL after the grace period.
async fn terminate(child: &mut tokio::process::Child) {
    signal(child, Signal::Term);
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The command's exit status as ours: its code, or 128 + the signal that
/// killed it (as shells report it).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(1);
        }
    }
    1
}

/// `elect NAME VALUE` campaigns and prints each leader change;
/// `elect -l NAME` only prints them.
pub async fn elect(client: &Client, args: ElectArgs) -> Result<(), CliError> {
    let mut stop = StopSignal::install()?;
    let session_timeout = args.session_timeout;
    in_session(client, session_timeout, || campaign(client, args, &mut stop)).await
}

async fn campaign(client: &Client, args: ElectArgs, stop: &mut StopSignal) -> Result<(), CliError> {
    let path = recipe_path("elections", &args.name);
    let election = Election::new(client, &path);
    let mut changes = election.observe();
    let value = args.value.map(arg_bytes);
    let campaigning = async {
        match &value {
            Some(v) => election.campaign(v.clone()).await.map(Some),
            None => futures::future::pending().await,
        }
    };
    tokio::pin!(campaigning);
    let mut leadership: Option<corral_client::recipes::Leadership> = None;
    loop {
        let lost_it = async {
            match &leadership {
                Some(l) => l.lost().await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.recv() => break,
            won = &mut campaigning, if leadership.is_none() => {
                let won = won?;
                if let (Some(l), true) = (&won, super::stderr_is_terminal()) {
                    eprintln!("Elected: leading {path} (fencing token {}); press Ctrl-C to resign.", l.fencing_token());
                }
                leadership = won;
            }
            change = changes.next() => match change {
                Some(Ok(Some(leader))) => {
                    let mut line = b"leader ".to_vec();
                    line.extend_from_slice(&leader.value);
                    line.push(b'\n');
                    emit(&line)?;
                }
                Some(Ok(None)) => emit(b"no leader\n")?,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Error::Zk { code: ErrorCode::SessionExpired, message: "the session ended".into() }.into()),
            },
            reason = lost_it => return Err(lost(&format!("the leadership of {path}"), reason)),
        }
    }
    if let Some(l) = leadership {
        l.resign().await?;
    }
    Ok(())
}

/// `queue put|take|len NAME`.
pub async fn queue(client: &Client, args: QueueArgs) -> Result<(), CliError> {
    match args.op {
        QueueOp::Put { priority, name, data } => {
            let data = arg_bytes(data);
            in_session(client, None, || async move {
                Queue::new(client, &recipe_path("queues", &name)).put_with_priority(&data, priority).await?;
                Ok(())
            })
            .await
        }
        QueueOp::Take { wait, name } => {
            let mut stop = StopSignal::install()?;
            in_session(client, None, || take(client, name, wait, &mut stop)).await
        }
        QueueOp::Len { name } => {
            let n = Queue::new(client, &recipe_path("queues", &name)).len().await?;
            emit(format!("{n}\n").as_bytes())
        }
    }
}

async fn take(client: &Client, name: String, wait: Option<Duration>, stop: &mut StopSignal) -> Result<(), CliError> {
    let path = recipe_path("queues", &name);
    let queue = Queue::new(client, &path);
    let taken = tokio::select! {
        () = stop.recv() => return Ok(()),
        taken = async {
            match wait {
                Some(w) => queue.take_timeout(w).await,
                None => queue.take().await.map(Some),
            }
        } => taken?,
    };
    let Some(item) = taken else {
        return Err(Error::Zk {
            code: ErrorCode::OperationTimeout,
            message: format!("no item in {path} within {:?}", wait.unwrap_or_default()),
        }
        .into());
    };
    // Printed first: an item is consumed only once it has been handed on.
    let mut out = item.data().to_vec();
    out.push(b'\n');
    if let Err(e) = emit(&out) {
        item.release().await?;
        return Err(e);
    }
    item.ack().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_go_under_corral() {
        assert_eq!(recipe_path("locks", "db"), "/corral/locks/db");
        assert_eq!(recipe_path("locks", "/app/lock"), "/app/lock");
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_follow_the_shell() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(libc::SIGKILL)), 128 + 9);
    }
}
