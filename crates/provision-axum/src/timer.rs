//! [`TokioTimer`]: tokio's clock for the bounds on settle and release steps.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// tokio's timer, for [`RegistryBuilder::timer`](provision::RegistryBuilder::timer):
/// with it, a `settle` or `release` step that overruns its bound is
/// abandoned instead of holding its response, its request scope or a
/// shutdown for ever. Native only.
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
}
