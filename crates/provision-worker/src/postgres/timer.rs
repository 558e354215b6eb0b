//! [`WorkersTimer`]: provision's clock on Workers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use worker::send::SendFuture;

/// provision's [`Timer`](provision::Timer) on Cloudflare Workers, where
/// there is no tokio: a JavaScript `setTimeout` (`worker::Delay`). For
/// provision-postgres it bounds getting a connection (the acquire timeout),
/// paces the retries of transient connect failures and times each
/// statement; given to `RegistryBuilder::timer`, it bounds settle and
/// release steps. Each sleep belongs to the request that started it, like
/// all I/O on Workers.
///
/// ```no_run
/// use std::sync::Arc;
/// use provision_postgres::PgOptions;
/// use provision_worker::postgres::WorkersTimer;
///
/// let options = PgOptions::default().timer(Arc::new(WorkersTimer));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkersTimer;

impl provision::Timer for WorkersTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // Workers runs one thread per isolate: the `Send` the trait asks
        // for is never exercised.
        Box::pin(SendFuture::new(worker::Delay::from(duration)))
    }

    /// JavaScript's `Date.now()`: std has no clock here, and the default
    /// would read zero, so a request's `acquire_wait` budget would give
    /// each acquisition the whole budget instead of what is left of it.
    /// On Workers the clock advances with I/O, which is what a wait is.
    fn now(&self) -> Duration {
        Duration::from_secs_f64(js_sys::Date::now().max(0.0) / 1000.0)
    }
}
