//! [`TokioTimer`], the native default, and `within`: how the library bounds
//! its waits with a [`Timer`] (provision's, so one clock serves the registry
//! and the database), on tokio or on a host without it (Cloudflare Workers,
//! where JavaScript owns the clock).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use crate::Timer;

/// tokio's timer (feature `tokio`, the default): the library keeps its
/// sleep inline instead of boxing one per statement.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Runs `work` bounded by `limit` on `timer`: its output, or `None` if the
/// limit passed first.
///
/// The bound starts when `work` first has to wait, and no sleep is made
/// for work that finishes in its first poll (a lease from a pool with an
/// idle connection): a timer costs an allocation, a clock read and a
/// timer-wheel entry, on every request. Work that completes in one poll
/// cannot overrun a bound anyway, since nothing else runs meanwhile.
pub(crate) async fn within<T>(
    timer: &dyn Timer,
    limit: Duration,
    work: impl Future<Output = T>,
) -> Option<T> {
    let mut work = std::pin::pin!(work);
    #[cfg(feature = "tokio")]
    if (timer as &dyn std::any::Any).is::<TokioTimer>() {
        let mut sleep = std::pin::pin!(None::<tokio::time::Sleep>);
        return std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            if sleep.is_none() {
                sleep.set(Some(tokio::time::sleep(limit)));
            }
            match sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(None),
                _ => Poll::Pending,
            }
        })
        .await;
    }
    let mut sleep: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match sleep
            .get_or_insert_with(|| timer.sleep(limit))
            .as_mut()
            .poll(cx)
        {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use std::future::pending;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{TokioTimer, within};

    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn work_that_never_ends_is_cut_at_the_limit() {
        let start = Instant::now();
        assert_eq!(within(&TokioTimer, LIMIT, pending::<()>()).await, None);
        assert_eq!(start.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_statement_is_cut_at_its_own_limit() {
        let first = within(&TokioTimer, LIMIT, async {
            tokio::task::yield_now().await;
            7
        });
        assert_eq!(first.await, Some(7));
        tokio::time::advance(LIMIT / 2).await;
        let start = Instant::now();
        assert_eq!(within(&TokioTimer, LIMIT, pending::<()>()).await, None);
        assert_eq!(start.elapsed(), LIMIT);
    }
}
