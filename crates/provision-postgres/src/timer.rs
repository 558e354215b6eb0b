//! [`Timer`]: how the library waits, so the same code runs on tokio and on
//! a host without it (Cloudflare Workers, where JavaScript owns the clock).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Sleeps for a while. The library uses it for three bounds: the acquire
/// budget (waiting, connecting and retrying), the pause between connect
/// attempts, and the client-side deadline of a statement.
///
/// Natively [`TokioTimer`] is the default. A host without tokio supplies
/// its own through [`PgOptions::timer`](crate::PgOptions::timer); without
/// one, nothing is bounded by the client (the server's
/// `statement_timeout` inside transactions still is).
///
/// ```
/// use std::{future::Future, pin::Pin, time::Duration};
/// use provision_postgres::Timer;
///
/// struct Instant;
/// impl Timer for Instant {
///     fn sleep(&self, _: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         Box::pin(async {})
///     }
/// }
/// ```
pub trait Timer: Send + Sync + 'static {
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// tokio's timer (feature `tokio`, the default).
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

#[cfg(feature = "tokio")]
impl Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}
