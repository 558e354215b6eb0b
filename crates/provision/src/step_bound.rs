//! Time bounds on `settle` and `release` steps: a step that never finishes
//! must not hold a response, a request scope or a shutdown for ever.
//!
//! The core has no clock of its own (it runs on tokio and on Cloudflare
//! Workers alike): the integration hands the registry a [`Timer`]. Without
//! one, steps are not bounded.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::{ServiceInfo, Timer};

/// How long a `settle` or `release` step may run, unless the registry was
/// told otherwise ([`RegistryBuilder::step_timeout`](crate::RegistryBuilder::step_timeout)):
/// long enough for a commit or a rollback on a loaded database, short
/// enough that a hung one is noticed well inside a shutdown grace period
/// or the ~30 s Cloudflare Workers gives `waitUntil` work.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The lifecycle step that was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// [`Provide::settle`](crate::Provide::settle).
    Settle,
    /// [`Provide::release`](crate::Provide::release).
    Release,
}

impl Step {
    /// `settle` or `release`, for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            Step::Settle => "settle",
            Step::Release => "release",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A running [`Timer::sleep`].
type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The bounds of one registry: a timer, a default, and per-service
/// overrides.
pub(crate) struct StepBounds {
    timer: Arc<dyn Timer>,
    default: Duration,
    per_service: HashMap<TypeId, Duration>,
}

impl StepBounds {
    pub(crate) fn new(
        timer: Arc<dyn Timer>,
        default: Duration,
        per_service: HashMap<TypeId, Duration>,
    ) -> StepBounds {
        StepBounds {
            timer,
            default,
            per_service,
        }
    }

    /// The registry's timer (budgets measure and bound waits with it).
    pub(crate) fn timer(&self) -> &Arc<dyn Timer> {
        &self.timer
    }

    /// The bound of `info`'s steps.
    pub(crate) fn of(&self, info: &ServiceInfo) -> Duration {
        self.per_service
            .get(&info.type_id())
            .copied()
            .unwrap_or(self.default)
    }

    /// Runs `step` for at most its bound; `Err(bound)` if it was abandoned
    /// (dropped unfinished). The timer starts only if the step does not
    /// finish on its first poll: most steps (the default ones) are ready at
    /// once and cost no timer.
    pub(crate) async fn run<F: Future>(
        &self,
        info: &ServiceInfo,
        step: F,
    ) -> Result<F::Output, Duration> {
        let mut step = pin!(step);
        let mut sleep: Option<(Duration, Sleep)> = None;
        poll_fn(|cx| {
            if let Poll::Ready(output) = step.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            let (bound, sleep) = sleep.get_or_insert_with(|| {
                let bound = self.of(info);
                (bound, self.timer.sleep(bound))
            });
            sleep.as_mut().poll(cx).map(|()| Err(*bound))
        })
        .await
    }
}

/// Runs `step` under `bounds` (unbounded when there are none).
pub(crate) async fn bounded<F: Future>(
    bounds: Option<&StepBounds>,
    info: &ServiceInfo,
    step: F,
) -> Result<F::Output, Duration> {
    match bounds {
        Some(bounds) => bounds.run(info, step).await,
        None => Ok(step.await),
    }
}
