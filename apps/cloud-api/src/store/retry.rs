//! Getting a connection again after a transient failure: bounded exponential
//! backoff with jitter, within the acquire timeout.
//!
//! Only obtaining a connection is retried (connecting, or leasing from the
//! pool, which may connect). Nothing has been sent to the database yet, so
//! a retry can never repeat a write that may have committed. Queries are
//! never retried.
//!
//! The source system learned this with Hyperdrive: the first connect after
//! an idle period, or during a failover, is sometimes refused or reset in
//! the startup handshake, and succeeds a moment later.

use std::future::Future;
use std::time::Duration;

use super::StoreError;

/// First delay; each retry doubles it, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(500);
/// Attempts in all, first included.
const MAX_ATTEMPTS: u32 = 6;

/// Runs `attempt` until it succeeds, fails with an error that retrying
/// cannot fix, runs out of attempts, or would overrun `budget`.
pub(crate) async fn with_backoff<T, F, Fut>(
    budget: Duration,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut delay = FIRST_DELAY;
    let mut tries = 0;
    loop {
        tries += 1;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let outcome = match tokio::time::timeout(remaining, attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "timed out connecting to the database".into(),
                ));
            }
        };
        let error = match outcome {
            Ok(value) => return Ok(value),
            Err(Attempt::Final(error)) => return Err(error),
            Err(Attempt::Transient(error)) => error,
        };
        let pause = jitter(delay);
        if tries >= MAX_ATTEMPTS || tokio::time::Instant::now() + pause >= deadline {
            return Err(error);
        }
        tracing::debug!(tries, ?pause, %error, "transient connect failure; retrying");
        tokio::time::sleep(pause).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// How one attempt failed.
pub(crate) enum Attempt {
    /// Refused, reset, or timed out: another attempt may succeed.
    Transient(StoreError),
    /// Retrying cannot help (bad password, no such database, pool closed).
    Final(StoreError),
}

/// Between half and one and a half times `delay`, so that many requests
/// failing together do not retry together.
fn jitter(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    let factor = 0.5 + f64::from(random) / f64::from(u32::MAX);
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_then_succeeds() {
        let tries = AtomicU32::new(0);
        let result = with_backoff(Duration::from_secs(5), || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Attempt::Transient(StoreError::Unavailable(
                    "refused".into(),
                ))),
                _ => Ok("connected"),
            }
        })
        .await;
        assert_eq!(result, Ok("connected"));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts_or_the_budget() {
        let tries = AtomicU32::new(0);
        let result: Result<(), _> = with_backoff(Duration::from_secs(60), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(Attempt::Transient(StoreError::Unavailable(
                "refused".into(),
            )))
        })
        .await;
        assert_eq!(result, Err(StoreError::Unavailable("refused".into())));
        assert_eq!(tries.load(Ordering::SeqCst), MAX_ATTEMPTS);

        let started = tokio::time::Instant::now();
        let tries = AtomicU32::new(0);
        let _ = with_backoff(Duration::from_millis(50), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Attempt::Transient(StoreError::Unavailable(
                "refused".into(),
            )))
        })
        .await;
        assert!(started.elapsed() <= Duration::from_millis(50));
        assert!(tries.load(Ordering::SeqCst) < MAX_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_error_is_not_retried() {
        let tries = AtomicU32::new(0);
        let result: Result<(), _> = with_backoff(Duration::from_secs(5), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(Attempt::Final(StoreError::Unavailable(
                "password authentication failed".into(),
            )))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_millis(100));
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(150),
                "{d:?}"
            );
        }
    }
}
