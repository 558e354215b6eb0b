//! Getting a connection again after a transient failure: bounded exponential
//! backoff with jitter, all within the acquire budget.
//!
//! Only obtaining a connection is retried (connecting, or leasing from the
//! pool, which may connect). Nothing has been sent to the database yet, so
//! a retry can never repeat a write that may have committed. Statements are
//! never retried.
//!
//! Hyperdrive taught this: the first connect after an idle period, or during
//! a failover, is sometimes refused or reset in the startup handshake, and
//! succeeds a moment later.

use std::future::Future;
use std::time::Duration;

use crate::{ErrorKind, PgError, Timer};

/// First pause; each retry doubles it, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(500);
/// Attempts in all, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 6;

/// Runs `attempt` until it succeeds, fails with an error that is not
/// [transient](PgError::is_transient), runs out of attempts, or `budget`
/// has passed (then a [`ErrorKind::Timeout`] error). Without a timer there
/// is no budget and no pause between attempts.
pub(crate) async fn with_backoff<T, F, Fut>(
    timer: Option<&dyn Timer>,
    budget: Duration,
    mut attempt: F,
) -> Result<T, PgError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PgError>>,
{
    let attempts = async {
        let mut delay = FIRST_DELAY;
        let mut tries = 0;
        loop {
            tries += 1;
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) if !error.is_transient() || tries >= MAX_ATTEMPTS => return Err(error),
                Err(error) => error,
            };
            let pause = jitter(delay);
            tracing::debug!(tries, ?pause, %error, "transient connect failure; retrying");
            if let Some(timer) = timer {
                timer.sleep(pause).await;
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
    };
    let Some(timer) = timer else {
        return attempts.await;
    };
    match crate::timer::within(Some(timer), budget, attempts).await {
        Some(outcome) => outcome,
        None => Err(PgError::new(
            ErrorKind::Timeout,
            "timed out connecting to the database",
        )),
    }
}

/// Between half and one and a half times `delay`, so that many requests
/// failing together do not retry together.
fn jitter(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    let factor = 0.5 + f64::from(random) / f64::from(u32::MAX);
    delay.mul_f64(factor)
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::TokioTimer;

    fn refused() -> PgError {
        PgError::transient("refused")
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_then_succeeds() {
        let tries = AtomicU32::new(0);
        let result = with_backoff(Some(&TokioTimer), Duration::from_secs(5), || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(refused()),
                _ => Ok("connected"),
            }
        })
        .await;
        assert_eq!(result.unwrap(), "connected");
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts() {
        let tries = AtomicU32::new(0);
        let result: Result<(), _> =
            with_backoff(Some(&TokioTimer), Duration::from_secs(60), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(refused())
            })
            .await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(tries.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_budget_is_spent() {
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: Result<(), _> =
            with_backoff(Some(&TokioTimer), Duration::from_millis(50), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(refused())
            })
            .await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert!(tries.load(Ordering::SeqCst) < MAX_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_is_cut_at_the_budget() {
        let started = tokio::time::Instant::now();
        let result: Result<(), _> =
            with_backoff(Some(&TokioTimer), Duration::from_millis(300), || {
                std::future::pending()
            })
            .await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_error_is_not_retried() {
        let tries = AtomicU32::new(0);
        let result: Result<(), _> =
            with_backoff(Some(&TokioTimer), Duration::from_secs(5), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(PgError::new(ErrorKind::Unavailable, "bad password"))
            })
            .await;
        assert!(!result.unwrap_err().is_transient());
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    /// A timer that counts the sleeps asked of it (tokio's underneath).
    struct Counting(AtomicU32);

    impl Timer for Counting {
        fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(tokio::time::sleep(duration))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_ready_at_once_starts_no_timer() {
        // A lease from a pool with an idle connection: the common case,
        // on every request.
        let timer = Counting(AtomicU32::new(0));
        let result = with_backoff(Some(&timer), Duration::from_secs(5), || async { Ok(7) }).await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(timer.0.load(Ordering::SeqCst), 0, "no sleep was made");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_at_the_budget_by_any_timer() {
        let timer = Counting(AtomicU32::new(0));
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = with_backoff(Some(&timer), Duration::from_millis(300), || {
            std::future::pending()
        })
        .await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(timer.0.load(Ordering::SeqCst), 1, "one sleep: the budget");
    }

    #[tokio::test]
    async fn without_a_timer_attempts_are_still_bounded_in_number() {
        let tries = AtomicU32::new(0);
        let result: Result<(), _> = with_backoff(None, Duration::ZERO, || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(refused())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), MAX_ATTEMPTS);
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
