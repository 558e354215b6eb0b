//! Running a job natively: each run in its own scope, a transient failure
//! retried, runs repeated on an interval until the registry shuts down.

use std::future::Future;
use std::time::Duration;

use http::StatusCode;
use provision::{Error, Registry};
use tokio::task::JoinHandle;

/// How a failed run is retried: a transient failure (a `503`: the database
/// unreachable, busy, a statement cancelled or timed out, a serialization
/// failure) up to `attempts` runs in all, waiting `backoff`, then twice as
/// long, between them. Any other failure is not retried: running the same
/// work again would fail the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Runs in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second run; doubled for each one after.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Whether a run that failed with `error` is worth running again.
pub fn is_transient(error: &Error) -> bool {
    error.status() == Some(StatusCode::SERVICE_UNAVAILABLE)
}

/// Runs `work()` in a scope of its own ([`Registry::job`]) until it
/// succeeds, fails for good, or `retry` is spent. Each attempt is a fresh
/// scope: a transaction rolled back by a failed attempt is not reused. No
/// attempt starts once the registry is shutting down, and one running then
/// is cut and released with `Exit::Shutdown`.
pub async fn run_with_retry<T, F, Fut>(
    registry: &Registry,
    name: &'static str,
    retry: Retry,
    mut work: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.backoff;
    let mut attempt = 1;
    loop {
        let outcome = registry
            .job(name)
            .on_drop(|close| {
                // Aborted (its task was): release on the runtime.
                tokio::spawn(close);
            })
            .run(work())
            .await;
        match outcome {
            Err(error) if attempt < attempts && is_transient(&error) => {
                tracing::warn!(job = name, attempt, %error, ?backoff, "job failed; retrying");
                tokio::select! {
                    biased;
                    () = registry.shutdown_begun() => return Err(error),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = backoff.saturating_mul(2);
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Starts `work` on the runtime every `interval` (the first run after one
/// interval), each run through [`run_with_retry`], until the registry
/// shuts down: no run starts after that, and one in progress is cut and
/// released with `Exit::Shutdown`. Await the handle after
/// [`Registry::shutdown`] to know the loop has ended.
pub fn spawn_periodic<T, F, Fut>(
    registry: Registry,
    name: &'static str,
    interval: Duration,
    retry: Retry,
    mut work: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        // A run longer than the interval delays the next, not a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = registry.shutdown_begun() => break,
                _ = ticks.tick() => {}
            }
            if let Err(error) = run_with_retry(&registry, name, retry, &mut work).await {
                tracing::error!(job = name, %error, "job failed");
            }
        }
        tracing::info!(job = name, "job stopped: shutting down");
    })
}
