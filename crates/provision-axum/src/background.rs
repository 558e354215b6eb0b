//! [`Background`]: where the layer runs release steps it cannot await.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use provision::integration::ScopeControl;
use provision::{Exit, RequestScope};

/// A release step handed to a [`Background`].
pub type BackgroundTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

type Spawn = dyn Fn(BackgroundTask) + Send + Sync;

/// Runs the release steps that nothing can await: those of a request whose
/// handler future or response body was dropped before the end (the client
/// went away, the server shut down).
///
/// Natively the default is a tokio task on the current runtime, and nothing
/// needs to be configured. A host without tokio puts its own `Background` in
/// each request's extensions before the request reaches the
/// [`ProvisionLayer`](crate::ProvisionLayer): on Cloudflare Workers that is
/// the fetch event's `wait_until` (`provision-worker` does this), so the
/// release runs inside the request's own I/O context and the runtime keeps
/// the event alive until it is done.
///
/// ```
/// use provision_axum::Background;
///
/// let mut request = http::Request::new(axum::body::Body::empty());
/// // A host with its own executor (on Workers: `ctx.wait_until`):
/// request.extensions_mut().insert(Background::new(|task| {
///     tokio::spawn(task);
/// }));
/// ```
#[derive(Clone)]
pub struct Background {
    spawn: Arc<Spawn>,
    clock: Option<Clock>,
}

/// A host's clock, and the longest a task handed to it may run.
#[derive(Clone)]
struct Clock {
    timer: Arc<dyn provision::Timer>,
    longest: Duration,
}

impl Background {
    /// A background that hands each task to `spawn`, which must run it to
    /// completion.
    pub fn new(spawn: impl Fn(BackgroundTask) + Send + Sync + 'static) -> Self {
        Background {
            spawn: Arc::new(spawn),
            clock: None,
        }
    }

    /// Gives this background the host's clock, for a host without tokio's:
    /// a [`Finish`](crate::Finish) route running on it is then cut at its
    /// deadline, or at `longest` if that comes first (the host's own limit
    /// on background work, less the time a cut route needs to roll back and
    /// release). Without a clock, and without tokio, a finishing route has
    /// no deadline of its own. On Cloudflare Workers `provision-worker`
    /// gives every request's background a JavaScript timer.
    ///
    /// ```
    /// use std::{future::Future, pin::Pin, time::Duration};
    /// use provision_axum::Background;
    ///
    /// struct HostTimer;
    /// impl provision::Timer for HostTimer {
    ///     fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    ///         Box::pin(tokio::time::sleep(d)) // the host's own timer
    ///     }
    /// }
    /// let background = Background::new(|task| drop(tokio::spawn(task)))
    ///     .with_clock(HostTimer, Duration::from_secs(20));
    /// ```
    pub fn with_clock(mut self, timer: impl provision::Timer, longest: Duration) -> Self {
        self.clock = Some(Clock {
            timer: Arc::new(timer),
            longest,
        });
        self
    }

    /// Runs `task` in the background.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        (self.spawn)(Box::pin(task));
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

/// `work` within `deadline` (at most the clock's `longest`), on the clock of
/// `background`: `Err` with the deadline kept if it ran out first. Without
/// a background clock, `work` runs unbounded. For hosts without tokio.
pub(crate) async fn within_host_deadline<F: Future>(
    background: Option<&Background>,
    deadline: Duration,
    work: F,
) -> Result<F::Output, Duration> {
    let Some(clock) = background.and_then(|b| b.clock.as_ref()) else {
        return Ok(work.await);
    };
    let deadline = deadline.min(clock.longest);
    let mut work = pin!(work);
    let mut sleep = clock.timer.sleep(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        sleep.as_mut().poll(cx).map(|()| Err(deadline))
    })
    .await
}

/// Runs `task` on `background`, or on the current tokio runtime when the
/// request brought no background. Returns `false` if there was neither.
pub(crate) fn spawn(
    background: Option<&Background>,
    task: impl Future<Output = ()> + Send + 'static,
) -> bool {
    if let Some(background) = background {
        background.spawn(task);
        return true;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
            true
        }
        Err(_) => false,
    }
}

/// A background on the current tokio runtime, if there is one: for a task
/// whose release may have to run after the task itself was aborted.
pub(crate) fn current_runtime_background() -> Option<Background> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(Background::new(move |task| {
        runtime.spawn(task);
    }))
}

/// Closes `scope` in the background, for the paths that cannot await: a
/// request future or body dropped before the end.
pub(crate) fn close_in_background(
    background: Option<&Background>,
    scope: RequestScope,
    exit: Exit,
) {
    let id = scope.id();
    // If there is nowhere to run it, the task (and with it the scope) is
    // dropped, which logs and counts what could not be released.
    if !spawn(background, async move { scope.close(exit).await }) {
        tracing::error!(
            request = id,
            "no tokio runtime and no provision_axum::Background to run release steps on; \
             services of this request are dropped unreleased"
        );
    }
}
