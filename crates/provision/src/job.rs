//! [`Job`]: a scope of its own for work that is not an HTTP request (a
//! periodic job, a queue message, a cron trigger, a task that outlives the
//! request that started it), with the same guarantees as a request's.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use http::StatusCode;

use crate::ambient::Scoped;
use crate::catch_unwind::{CatchUnwind, panic_message};
use crate::{Error, Exit, Registry, RequestScope};

/// The close of a job's scope that nothing can await any more (its future
/// was dropped before the end), handed to [`Job::on_drop`].
pub type DetachedClose = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

type OnDrop = Box<dyn FnOnce(DetachedClose) + Send>;

/// One run of a job in a scope of its own, made by [`Registry::job`].
///
/// [`run`](Job::run) runs the work inside a new scope, as an HTTP request
/// runs its handler: services are built on first use
/// ([`RequestScope::current`] then [`resolve`](RequestScope::resolve), or a
/// [`Lazy`](crate::Lazy)), shared inside this run only, counted by the
/// registry's [`Probe`](crate::Probe) and [`Observer`](crate::Observer) like
/// a request's, and released exactly once, newest first, before `run`
/// returns. Each service is told how the job ended:
///
/// | the work | settle | release |
/// |---|---|---|
/// | returns `Ok` | `Exit::Success(200)` (a transaction commits) | the same |
/// | returns `Err(e)` | `Exit::Failure(e.status() or 500)` | the same |
/// | panics | not run | `Exit::Panic`; `run` returns an error |
/// | is still running when [`Registry::shutdown`] begins | not run: the work is cut at its next await | `Exit::Shutdown`; `run` returns a 503 error |
/// | its `run` future is dropped | not run | `Exit::Cancelled` (or `Shutdown`), through [`on_drop`](Job::on_drop) |
///
/// A settle step that fails turns the outcome into that error and releases
/// with `Exit::Failure`. A job started once shutdown has begun does not run.
/// A service that depends on [`RequestHead`](crate::RequestHead) cannot be
/// built in a job: there is no HTTP request.
///
/// ```
/// use provision::{Error, Exit, Provide, Registry, Request, RequestScope};
///
/// struct Tx;
/// impl Provide for Tx {
///     type Lifetime = Request;
///     type Deps = ();
///     async fn build(_: ()) -> Result<Self, Error> { Ok(Tx) }
///     async fn settle(&self, exit: Exit) -> Result<(), Error> {
///         assert!(exit.is_success()); // commit here
///         Ok(())
///     }
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
/// # }
/// # block_on(async {
/// let registry = Registry::builder().register::<Tx>().build().await?;
/// let deleted = registry
///     .run_scoped("expire-tokens", async {
///         let _tx = RequestScope::current().expect("inside the job").resolve::<Tx>().await?;
///         Ok(3) // rows deleted
///     })
///     .await?;
/// assert_eq!(deleted, 3);
/// assert_eq!(registry.probe().releases::<Tx>(), 1); // released before `run_scoped` returned
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[must_use = "a job does nothing until `run` is awaited"]
pub struct Job {
    registry: Registry,
    name: &'static str,
    on_drop: Option<OnDrop>,
}

impl Registry {
    /// A job named `name` (for logs) in this registry: see [`Job`].
    pub fn job(&self, name: &'static str) -> Job {
        Job {
            registry: self.clone(),
            name,
            on_drop: None,
        }
    }

    /// Runs `work` in a scope of its own: `self.job(name).run(work)`
    /// (see [`Job`]).
    pub async fn run_scoped<T, F>(&self, name: &'static str, work: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        self.job(name).run(work).await
    }
}

impl Job {
    /// Where the scope's release goes if the future of [`run`](Job::run) is
    /// dropped before the end (a tokio task aborted, a Worker event
    /// cancelled): `spawn` must run the given future to completion (natively
    /// `tokio::spawn`; on Workers the event's `wait_until`). Without it the
    /// core, which has no executor, can only drop the scope, and its
    /// services are logged and counted as never released.
    pub fn on_drop(mut self, spawn: impl FnOnce(DetachedClose) + Send + 'static) -> Job {
        self.on_drop = Some(Box::new(spawn));
        self
    }

    /// Runs `work` in this job's scope, settles and releases it (see
    /// [`Job`]), and returns what `work` returned, or why it did not finish.
    pub async fn run<T, F>(self, work: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let Job {
            registry,
            name,
            on_drop,
        } = self;
        if registry.is_shutting_down() {
            return Err(shutting_down(name));
        }
        let mut guard = Guard {
            // Boxed so that the guard owns it and can take its scope out if
            // this future is dropped mid-work.
            work: Some(Box::pin(registry.request(CatchUnwind::new(work)))),
            scope: None,
            on_drop,
        };
        let finished = {
            let work = guard.work.as_mut().expect("set above");
            let mut shutdown = std::pin::pin!(registry.shutdown_begun());
            poll_fn(|cx| {
                if let Poll::Ready(outcome) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(outcome));
                }
                match shutdown.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        let mut work = guard.work.take().expect("set above");
        guard.scope = work.as_mut().take_scope();
        // The work's own handles go before anything is released.
        drop(work);
        let Some(outcome) = finished else {
            tracing::warn!(job = name, "job cut short: the registry is shutting down");
            if let Some(scope) = guard.scope.take() {
                scope.close(Exit::Shutdown).await;
            }
            return Err(shutting_down(name));
        };
        let exit = match &outcome {
            Ok(Ok(_)) => Exit::Success(StatusCode::OK),
            Ok(Err(error)) => {
                Exit::Failure(error.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Err(_) => Exit::Panic,
        };
        let outcome = outcome.unwrap_or_else(|panic| {
            Err(Error::new(format!(
                "job `{name}` panicked: {}",
                panic_message(&*panic)
            )))
        });
        // The guard keeps the scope until the close starts: dropped
        // mid-settle, the job is still released (cancelled).
        let Some(scope) = guard.scope.clone() else {
            return outcome; // it asked for nothing
        };
        let (outcome, exit) = if exit == Exit::Panic {
            (outcome, exit)
        } else {
            match CatchUnwind::new(scope.settle(exit)).await {
                Ok(Ok(())) => (outcome, exit),
                Ok(Err(error)) => {
                    let status = error.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    (Err(error), Exit::Failure(status))
                }
                Err(panic) => (
                    Err(Error::new(format!(
                        "settling job `{name}` panicked: {}",
                        panic_message(&*panic)
                    ))),
                    Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR),
                ),
            }
        };
        guard.scope = None;
        scope.close(exit).await;
        match &outcome {
            Ok(_) => tracing::debug!(job = name, exit = exit.label(), "job done"),
            Err(error) => tracing::warn!(job = name, exit = exit.label(), %error, "job failed"),
        }
        outcome
    }
}

fn shutting_down(name: &str) -> Error {
    Error::new(format!(
        "job `{name}` did not finish: the registry is shutting down"
    ))
    .with_status(StatusCode::SERVICE_UNAVAILABLE)
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("on_drop", &self.on_drop.is_some())
            .finish_non_exhaustive()
    }
}

/// Closes the scope of a job whose `run` future was dropped before the end.
struct Guard<W> {
    work: Option<Pin<Box<Scoped<W>>>>,
    scope: Option<RequestScope>,
    on_drop: Option<OnDrop>,
}

impl<W> Drop for Guard<W> {
    fn drop(&mut self) {
        let scope = match (self.scope.take(), self.work.as_mut()) {
            (Some(scope), _) => Some(scope),
            (None, Some(work)) => work.as_mut().take_scope(),
            (None, None) => None,
        };
        // The work's handles go first, as on the normal path.
        self.work = None;
        let Some(scope) = scope else { return };
        let exit = if scope.registry().is_shutting_down() {
            Exit::Shutdown
        } else {
            Exit::Cancelled
        };
        match self.on_drop.take() {
            Some(spawn) => spawn(Box::pin(async move { scope.close(exit).await })),
            None => tracing::error!(
                request = scope.id(),
                "job dropped before the end and no `Job::on_drop` to release its services on"
            ),
        }
    }
}
