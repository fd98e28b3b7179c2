//! Call-order dispatch: every request is queued when its method is called, and
//! one task per client starts them in queue order.
//!
//! Why a task instead of plain `async fn`s: an `async fn` sends nothing until
//! it is first polled, so `let a = c.set_data(..); let b = c.get_data(..);
//! join!(b, a)` would send the read first. Here the method call itself fixes
//! the order (STYLE item 12, as in zookeeper-client-rust).
//!
//! What order that buys: the dispatcher gives each request its first poll in
//! queue order, and that first poll hands the request to tonic's channel,
//! which puts it on the member's HTTP/2 connection in the same order. The
//! member, however, serves the streams of one connection concurrently, so two
//! requests *in flight at the same time* may be processed in either order, and
//! a retried read (see `connection.rs`) is re-sent after later requests. A
//! caller that needs B to see A's effect awaits A before calling B; the
//! `min_zxid` rule then holds even if B goes to another member.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

type Job = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The sending half of a client's request queue.
pub(crate) struct Dispatcher {
    queue: mpsc::UnboundedSender<Job>,
}

impl Dispatcher {
    /// Starts the dispatch task on the current runtime. It ends once every
    /// `Dispatcher` handle is dropped and the requests in flight are answered.
    pub(crate) fn start() -> Dispatcher {
        let (queue, jobs) = mpsc::unbounded_channel();
        // The handle is not kept: the task's lifetime is the queue's.
        drop(tokio::spawn(run(jobs)));
        Dispatcher { queue }
    }

    /// Queues `work` now; the returned future yields its result. Dropping the
    /// future does not withdraw the request.
    pub(crate) fn submit<T, W, Fut>(&self, work: W) -> Reply<T>
    where
        T: Send + 'static,
        W: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            Box::pin(async move {
                // The caller may have dropped its Reply; the request was
                // still made, only nobody listens for the answer.
                let _ = tx.send(work().await);
            })
        });
        match self.queue.send(job) {
            Ok(()) => Reply { state: State::Waiting(rx) },
            Err(_) => Reply::ready(Err(stopped())),
        }
    }
}

fn stopped() -> Error {
    Error::ConnectionLoss("the client's dispatch task has stopped (runtime shut down?)".into())
}

async fn run(mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    std::future::poll_fn(move |cx| {
        // Take every queued job before polling any: FuturesUnordered polls
        // newly pushed futures in push order, so first polls (which send)
        // happen in call order.
        while open {
            match jobs.poll_recv(cx) {
                Poll::Ready(Some(job)) => in_flight.push(job()),
                Poll::Ready(None) => open = false,
                Poll::Pending => break,
            }
        }
        loop {
            match in_flight.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                Poll::Ready(None) if open => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// The answer to one request. The request is already queued when you get
/// this; awaiting it only waits for the reply.
#[must_use = "the request is sent regardless; await the Reply to learn its outcome"]
pub struct Reply<T> {
    state: State<T>,
}

enum State<T> {
    Ready(Option<Result<T, Error>>),
    Waiting(oneshot::Receiver<Result<T, Error>>),
}

// Nothing inside is structurally pinned: the result is moved out by value and
// the receiver is itself Unpin.
impl<T> Unpin for Reply<T> {}

impl<T> Reply<T> {
    /// A reply known without asking the server (e.g. an invalid argument).
    pub(crate) fn ready(result: Result<T, Error>) -> Reply<T> {
        Reply { state: State::Ready(Some(result)) }
    }
}

impl<T> Future for Reply<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Ready(result) => Poll::Ready(result.take().unwrap_or_else(|| {
                Err(Error::InvalidArgument("Reply polled after it completed".into()))
            })),
            State::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                Poll::Ready(Err(_)) => Poll::Ready(Err(stopped())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Waiting(_) => "waiting",
        };
        f.debug_struct("Reply").field("state", &state).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    #[tokio::test]
    async fn jobs_start_in_call_order_even_if_awaited_backwards() {
        let d = Dispatcher::start();
        let log = Arc::new(Mutex::new(Vec::new()));
        let replies: Vec<Reply<usize>> = (0..50)
            .map(|i| {
                let log = log.clone();
                d.submit(move || async move {
                    // Only the first poll matters for the order; yielding
                    // afterwards lets later jobs interleave.
                    log.lock().push(i);
                    tokio::task::yield_now().await;
                    Ok(i)
                })
            })
            .collect();
        for (i, r) in replies.into_iter().enumerate().rev() {
            assert_eq!(r.await, Ok(i));
        }
        assert_eq!(*log.lock(), (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_dropped_reply_still_runs_its_request() {
        let d = Dispatcher::start();
        let (tx, rx) = oneshot::channel();
        drop(d.submit(move || async move {
            let _ = tx.send(());
            Ok(())
        }));
        assert!(rx.await.is_ok());
    }

    #[tokio::test]
    async fn ready_replies_need_no_task() {
        assert_eq!(Reply::ready(Err::<(), _>(Error::Timeout)).await, Err(Error::Timeout));
    }
}
