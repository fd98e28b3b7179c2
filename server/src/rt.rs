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

/// openraft's runtime inside the simulator: tasks, timers and randomness from madsim, so a
/// seed replays a run exactly. (openraft's stock `TokioRuntime` panics under madsim.)
#[cfg(madsim)]
pub use sim::SimRuntime;

#[cfg(madsim)]
mod sim {
    use std::fmt;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use openraft::{AsyncRuntime, OptionalSend, TokioInstant};

    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct SimRuntime;

    /// A timeout over madsim's sleep (`madsim::time::timeout`'s future cannot be named).
    pub struct SimTimeout<F> {
        future: Pin<Box<F>>,
        sleep: Pin<Box<madsim::time::Sleep>>,
    }

    /// The deadline passed.
    #[derive(Debug)]
    pub struct Elapsed;

    impl fmt::Display for Elapsed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("deadline has elapsed")
        }
    }

    impl<R, F: Future<Output = R>> Future for SimTimeout<F> {
        type Output = Result<R, Elapsed>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if let Poll::Ready(r) = self.future.as_mut().poll(cx) {
                return Poll::Ready(Ok(r));
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    fn to_sim(deadline: TokioInstant) -> madsim::time::Instant {
        // Both read the one clock madsim intercepts.
        let now_tokio = TokioInstant::now();
        let now_sim = madsim::time::Instant::now();
        now_sim + deadline.saturating_duration_since(now_tokio)
    }

    impl AsyncRuntime for SimRuntime {
        type JoinError = madsim::task::JoinError;
        type JoinHandle<T: OptionalSend + 'static> = madsim::task::JoinHandle<T>;
        type Sleep = madsim::time::Sleep;
        type Instant = TokioInstant;
        type TimeoutError = Elapsed;
        type Timeout<R, T: Future<Output = R> + OptionalSend> = SimTimeout<T>;
        type ThreadLocalRng = madsim::rand::GlobalRng;
        type OneshotSender<T: OptionalSend> = openraft::async_runtime::TokioOneShotSender<T>;
        type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
        type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

        fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
        where
            T: Future + OptionalSend + 'static,
            T::Output: OptionalSend + 'static,
        {
            madsim::task::spawn(future)
        }

        fn sleep(duration: Duration) -> Self::Sleep {
            madsim::time::sleep(duration)
        }

        fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
            madsim::time::sleep_until(to_sim(deadline))
        }

        fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
            SimTimeout { future: Box::pin(future), sleep: Box::pin(madsim::time::sleep(duration)) }
        }

        fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
            SimTimeout { future: Box::pin(future), sleep: Box::pin(madsim::time::sleep_until(to_sim(deadline))) }
        }

        fn is_panic(_join_error: &Self::JoinError) -> bool {
            // A panic aborts the whole simulation; a JoinError here is a cancellation.
            false
        }

        fn thread_rng() -> Self::ThreadLocalRng {
            madsim::rand::thread_rng()
        }

        fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
        where
            T: OptionalSend,
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (openraft::async_runtime::TokioOneShotSender(tx), rx)
        }
    }
}
