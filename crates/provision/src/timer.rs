//! [`Timer`]: how provision and its integrations wait, so that none of them
//! depends on a runtime (tokio natively; on Cloudflare Workers, JavaScript
//! owns the clock).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Sleeps for a while: the one clock of provision and its integrations.
///
/// The registry waits out a settle or release step's bound with it
/// ([`RegistryBuilder::timer`](crate::RegistryBuilder::timer));
/// provision-postgres bounds getting a connection, paces its connect retries
/// and times each statement with it. Implemented once per platform:
/// natively `provision_axum::TokioTimer` (and `provision_postgres::TokioTimer`,
/// its default, whose sleep it keeps inline), on Cloudflare Workers
/// `provision_worker::postgres::WorkersTimer` over `worker::Delay`.
///
/// `Any` lets an integration recognise a timer it can drive more cheaply.
///
/// ```
/// use std::{future::Future, pin::Pin, time::Duration};
///
/// struct Never;
/// impl provision::Timer for Never {
///     fn sleep(&self, _: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         Box::pin(std::future::pending())
///     }
/// }
/// let builder = provision::Registry::builder().timer(Never);
/// ```
pub trait Timer: Any + Send + Sync + 'static {
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// The time on the clock [`sleep`](Timer::sleep) follows, as the time
    /// since a fixed point of the timer's choosing: a request's
    /// [`acquire_wait`](crate::Budget::acquire_wait) budget adds up its
    /// waits with it. Only differences between two readings matter.
    ///
    /// The default reads std's monotonic clock natively. Override it when
    /// the sleeps follow another clock (tokio's, which a test may pause;
    /// JavaScript's on Cloudflare Workers, where std has no clock and the
    /// default reads zero, so each acquisition gets the whole budget
    /// instead of what is left of it).
    fn now(&self) -> Duration {
        monotonic_now()
    }
}

/// Time since the first reading, on std's monotonic clock (zero on wasm32,
/// where `std::time::Instant` panics).
fn monotonic_now() -> Duration {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(std::time::Instant::now).elapsed()
    }
    #[cfg(target_arch = "wasm32")]
    {
        Duration::ZERO
    }
}
