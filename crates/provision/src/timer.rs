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
}
