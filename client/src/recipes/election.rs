//! [`Election`]: leader election as kazoo's `Election` does it, on top of the
//! [`Mutex`](super::Mutex) queue: every candidate queues a lock node holding
//! its value; the holder of the lock is the leader. Observers follow the first
//! contender's node: a data watch on it while there is one (no herd: only its
//! deletion or a new value wakes them), a child watch on the election's node
//! while there is none.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::Stream;
use tokio::time::Instant;

use super::mutex::{sorted_contenders, LockCore, LockGuard, Wait, EXCLUSIVE};
use super::{join, retry, Backoff, Lost, LostReason, LockNaming};
use crate::{Client, Error, ErrorCode, Watch};

/// Leader election at a path (kazoo's `Election` layout): campaign to lead,
/// observe who leads, hand over by resigning.
///
/// ```no_run
/// # async fn demo(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::recipes::Election;
/// let election = Election::new(&client, "/election/scheduler");
/// let leadership = election.campaign(b"host-a:8080".to_vec()).await?;
/// tokio::select! {
///     reason = leadership.lost() => eprintln!("no longer the leader: {reason}"),
///     () = lead(leadership.fencing_token()) => {}
/// }
/// leadership.resign().await?; // the next candidate takes over
/// # Ok(()) }
/// # async fn lead(_token: i64) {}
/// ```
#[derive(Clone)]
pub struct Election {
    core: Arc<LockCore>,
}

/// Who leads: the first contender's value and node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// What the leader campaigned with (or last proclaimed).
    pub value: Vec<u8>,
    /// The leader's node.
    pub node: String,
    /// The node's czxid: the term's fencing token.
    pub fencing_token: i64,
    /// The leader's session.
    pub session_id: i64,
}

impl Election {
    /// A candidate (and observer) of the election at `path`. Nothing is sent yet.
    pub fn new(client: &Client, path: &str) -> Election {
        Election { core: Arc::new(LockCore::new(client, path, EXCLUSIVE, LockNaming::Kazoo)) }
    }

    pub fn path(&self) -> &str {
        &self.core.dir
    }

    /// Campaigns with `value` and waits until elected. Candidates are elected
    /// in the order they campaigned.
    ///
    /// # Errors
    /// As [`Mutex::acquire`](super::Mutex::acquire).
    pub async fn campaign(&self, value: impl Into<Vec<u8>>) -> Result<Leadership, Error> {
        let value = value.into();
        let acquired = self.core.acquire(&value, Wait::Forever).await?;
        acquired
            .map(|a| Leadership { guard: LockGuard::new(self.core.clone(), a) })
            .ok_or_else(|| Error::InvalidArgument("a campaign without a deadline gave up".into()))
    }

    /// Campaigns for at most `timeout`; `None` (and no candidacy left behind)
    /// if not elected by then.
    pub async fn campaign_timeout(&self, value: impl Into<Vec<u8>>, timeout: Duration) -> Result<Option<Leadership>, Error> {
        let value = value.into();
        let acquired = self.core.acquire(&value, Wait::Until(Instant::now() + timeout)).await?;
        Ok(acquired.map(|a| Leadership { guard: LockGuard::new(self.core.clone(), a) }))
    }

    /// The current leader, if any.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, Error> {
        loop {
            let nodes = self.core.contender_nodes().await?;
            let Some(first) = nodes.first() else { return Ok(None) };
            let path = join(&self.core.dir, first);
            match retry(None, || self.core.client.get_data(&path)).await {
                Ok((value, stat)) => {
                    return Ok(Some(LeaderInfo {
                        value,
                        node: path,
                        fencing_token: stat.czxid,
                        session_id: stat.ephemeral_owner,
                    }))
                }
                // Gone since the listing: the next one leads now.
                Err(e) if e.code() == ErrorCode::NoNode => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The leader now, then every change of leader (or of its value) as it
    /// happens; `None` while there is no leader. Consecutive items always
    /// differ. Needs a session (for the watches); the stream yields the error
    /// and ends if the session does.
    pub fn observe(&self) -> LeaderChanges {
        let state = Observer { client: self.core.client.clone(), dir: self.core.dir.clone(), last: None, watch: None, done: false };
        LeaderChanges { inner: Box::pin(futures::stream::unfold(state, Observer::next_change)) }
    }

    /// Every candidate's value, the leader's first.
    pub async fn contenders(&self) -> Result<Vec<Vec<u8>>, Error> {
        self.core.contenders().await
    }
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election").field("path", &self.core.dir).finish()
    }
}

/// This candidate leads. Resign (or drop it) to hand over to the next one.
#[must_use = "leadership ends when this is dropped"]
#[derive(Debug)]
pub struct Leadership {
    guard: LockGuard,
}

impl Leadership {
    /// The term's fencing token (the leader node's czxid): higher for every
    /// later leader.
    pub fn fencing_token(&self) -> i64 {
        self.guard.fencing_token()
    }

    /// The leader's node.
    pub fn node(&self) -> &str {
        self.guard.node()
    }

    /// Resolves when leadership is lost (see [`LostReason`]): stop acting as
    /// the leader then.
    pub fn lost(&self) -> Lost {
        self.guard.lost()
    }

    pub fn lost_reason(&self) -> Option<LostReason> {
        self.guard.lost_reason()
    }

    /// Replaces the value observers see, keeping the leadership.
    pub async fn proclaim(&self, value: &[u8]) -> Result<(), Error> {
        retry(None, || self.guard.client().set_data(self.node(), value, None)).await.map(drop)
    }

    /// Steps down: the next candidate in line is elected.
    pub async fn resign(self) -> Result<(), Error> {
        self.guard.release().await
    }
}

/// The stream [`Election::observe`] returns.
#[must_use = "a stream does nothing unless polled"]
pub struct LeaderChanges {
    inner: BoxStream<'static, Result<Option<LeaderInfo>, Error>>,
}

impl Stream for LeaderChanges {
    type Item = Result<Option<LeaderInfo>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for LeaderChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderChanges")
    }
}

struct Observer {
    client: Client,
    dir: String,
    /// What was last reported (`Some(None)`: "no leader" was).
    last: Option<Option<LeaderInfo>>,
    /// Fires when the reported state may have changed.
    watch: Option<Watch>,
    done: bool,
}

impl Observer {
    async fn next_change(mut self) -> Option<(Result<Option<LeaderInfo>, Error>, Observer)> {
        if self.done {
            return None;
        }
        let mut pause = Backoff::new();
        loop {
            if let Some(watch) = self.watch.take() {
                if let Err(e) = watch.await {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
            match self.look().await {
                Ok((leader, watch)) => {
                    self.watch = Some(watch);
                    if self.last.as_ref() != Some(&leader) {
                        self.last = Some(leader.clone());
                        return Some((Ok(leader), self));
                    }
                }
                Err(e) if !e.is_definite() => pause.wait().await,
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
        }
    }

    /// The leader now, and a watch that fires when that may change.
    async fn look(&self) -> Result<(Option<LeaderInfo>, Watch), Error> {
        loop {
            let children = match self.client.get_children(&self.dir).await {
                Ok((children, _)) => children,
                Err(e) if e.code() == ErrorCode::NoNode => {
                    let (stat, created) = self.client.exists_watch(&self.dir).await?;
                    if stat.is_none() {
                        return Ok((None, created));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let patterns = [EXCLUSIVE.blockers, &[EXCLUSIVE.node_name]].concat();
            match sorted_contenders(&children, &patterns).first() {
                Some(first) => {
                    let node = join(&self.dir, first);
                    match self.client.get_data_watch(&node).await {
                        Ok((value, stat, changed)) => {
                            let info = LeaderInfo {
                                value,
                                node,
                                fencing_token: stat.czxid,
                                session_id: stat.ephemeral_owner,
                            };
                            return Ok((Some(info), changed));
                        }
                        Err(e) if e.code() == ErrorCode::NoNode => {}
                        Err(e) => return Err(e),
                    }
                }
                None => match self.client.get_children_watch(&self.dir).await {
                    Ok((children, _, changed)) => {
                        if sorted_contenders(&children, &patterns).is_empty() {
                            return Ok((None, changed));
                        }
                    }
                    Err(e) if e.code() == ErrorCode::NoNode => {}
                    Err(e) => return Err(e),
                },
            }
        }
    }
}
