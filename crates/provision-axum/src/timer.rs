//! [`TokioTimer`]: tokio's clock for the bounds on settle and release steps.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// tokio's timer, for [`RegistryBuilder::timer`](provision::RegistryBuilder::timer):
/// with it, a `settle` or `release` step that overruns its bound is
/// abandoned instead of holding its response, its request scope or a
/// shutdown for ever, and a request's
/// [`acquire_wait`](provision::Budget::acquire_wait) budget is measured and
/// enforced. Native only.
///
/// ```
/// # async fn run() -> Result<(), provision::Error> {
/// let registry = provision::Registry::builder()
///     .timer(provision_axum::TokioTimer)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl provision::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// tokio's clock, the one `sleep` follows: a request's acquire-wait
    /// budget then adds up waits on a paused test clock as it bounds them.
    fn now(&self) -> Duration {
        static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(tokio::time::Instant::now).elapsed()
    }
}
