//! [`TokioTimer`], the native default, and `within`: how the library bounds
//! its waits with a [`Timer`] (provision's, so one clock serves the registry
//! and the database), on tokio or on a host without it (Cloudflare Workers,
//! where JavaScript owns the clock).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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

/// Runs `work` bounded by `limit` on `timer` (unbounded without one): its
/// output, or `None` if the limit passed first.
///
/// The bound starts when `work` first has to wait, and no sleep is made
/// for work that finishes in its first poll (a lease from a pool with an
/// idle connection): a timer costs an allocation, a clock read and a
/// timer-wheel entry, on every request. Work that completes in one poll
/// cannot overrun a bound anyway, since nothing else runs meanwhile.
pub(crate) fn within<'t, F: Future>(
    timer: Option<&'t dyn Timer>,
    limit: Duration,
    work: F,
) -> Within<'t, F> {
    #[cfg(feature = "tokio")]
    let inline = timer.is_some_and(|timer| (timer as &dyn std::any::Any).is::<TokioTimer>());
    #[cfg(not(feature = "tokio"))]
    let inline = false;
    Within {
        work,
        inline,
        tokio_sleep: None,
        sleep: None,
        timer,
        limit,
    }
}

/// tokio's sleep, kept inline for [`TokioTimer`]; without the `tokio`
/// feature a placeholder that is never made.
#[cfg(feature = "tokio")]
type InlineSleep = tokio::time::Sleep;
#[cfg(not(feature = "tokio"))]
type InlineSleep = std::future::Pending<()>;

pin_project_lite::pin_project! {
    /// The future of [`within`].
    ///
    /// Written out rather than as an `async fn`: an `async fn` keeps its
    /// argument and the future it awaits in separate places, so it would
    /// hold `work` twice and copy it once more on its first poll, and
    /// every statement of every request passes through here.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Within<'t, F> {
        #[pin]
        work: F,
        // The timer is tokio's: its sleep is kept inline, not boxed.
        inline: bool,
        #[pin]
        tokio_sleep: Option<InlineSleep>,
        sleep: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
        timer: Option<&'t dyn Timer>,
        limit: Duration,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.work.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let Some(timer) = *this.timer else {
            return Poll::Pending;
        };
        #[cfg(feature = "tokio")]
        if *this.inline {
            let mut sleep = this.tokio_sleep;
            if sleep.is_none() {
                sleep.set(Some(tokio::time::sleep(*this.limit)));
            }
            return match sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(None),
                _ => Poll::Pending,
            };
        }
        let limit = *this.limit;
        match this
            .sleep
            .get_or_insert_with(|| timer.sleep(limit))
            .as_mut()
            .poll(cx)
        {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
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
        assert_eq!(
            within(Some(&TokioTimer), LIMIT, pending::<()>()).await,
            None
        );
        assert_eq!(start.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_statement_is_cut_at_its_own_limit() {
        let first = within(Some(&TokioTimer), LIMIT, async {
            tokio::task::yield_now().await;
            7
        });
        assert_eq!(first.await, Some(7));
        tokio::time::advance(LIMIT / 2).await;
        let start = Instant::now();
        assert_eq!(
            within(Some(&TokioTimer), LIMIT, pending::<()>()).await,
            None
        );
        assert_eq!(start.elapsed(), LIMIT);
    }
}
