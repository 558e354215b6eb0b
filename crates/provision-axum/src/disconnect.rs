//! [`Finish`]: a route's disconnect policy. By default (`cancel`) a client
//! that goes away cancels its handler; a route wrapped in
//! `Finish::within(deadline)` runs to completion after the client left,
//! bounded by the deadline, its services settled and released as usual.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use provision::integration::{CatchUnwind, RegistryControl, ScopeControl, panic_message};
use provision::{Exit, Registry, RequestScope};
use tokio::sync::oneshot;
use tower_layer::Layer;
use tower_service::Service;

use crate::Background;

/// A route's disconnect policy `finish`: the handler runs to completion even
/// if the client goes away, within `deadline`.
///
/// Without it a route's policy is `cancel`: when the client disconnects,
/// the server drops the handler's future, and the request's services are
/// released with [`Exit::Cancelled`] (a transaction rolls back). That is
/// right for reads, and for a write a client will retry. For a write that
/// must not be abandoned halfway once begun (a payment, an import), wrap the
/// route in `Finish::within(deadline)`:
///
/// * the route (extractors, handler, and its response body, read to the end)
///   runs on a tokio task, in a scope of its own, so the client leaving
///   does not drop it;
/// * when it answers, its services are settled with the answer's exit (a
///   transaction commits on a 2xx) and released, before the answer is sent
///   (or, if the client left, dropped): the same steps as a request;
/// * past `deadline` it is cut: dropped, its services released with
///   [`Exit::Cancelled`] (a transaction rolls back), and the client, if
///   still there, gets a `503` in the application's error format;
/// * each outcome is logged and counted ([`Finish::outcomes`]).
///
/// The response body is read in full inside the task (a finishing route
/// answers when its work is done, so it should not stream). A route
/// outside [`ProvisionLayer`](crate::ProvisionLayer) is called as if the
/// layer were not there.
///
/// On a host without tokio the task goes to the request's [`Background`]
/// (on Cloudflare Workers, `provision-worker` makes it the fetch event's
/// `wait_until`), and the deadline is the host's bound on that work
/// (`provision-worker`'s release budget), since tokio's clock is not there.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use provision_axum::{Finish, ProvisionLayer};
///
/// async fn pay() -> &'static str { "paid" }
/// async fn search() -> &'static str { "found" }
///
/// # async fn run(registry: provision::Registry) {
/// let finish = Finish::within(Duration::from_secs(30));
/// let app: Router = Router::new()
///     .route("/payments", post(pay).layer(finish.clone())) // finish
///     .route("/search", post(search))                      // cancel (the default)
///     .layer(ProvisionLayer::new(registry));
/// // Later, for metrics: finish.outcomes().finished_after_disconnect
/// # }
/// ```
#[derive(Clone)]
pub struct Finish {
    deadline: Duration,
    shutdown_grace: Option<Duration>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    disconnected: AtomicU64,
    finished_after_disconnect: AtomicU64,
    cut_by_deadline: AtomicU64,
    cut_by_shutdown: AtomicU64,
}

/// What the routes wrapped in one [`Finish`] (or its clones) did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FinishOutcomes {
    /// Routes that finished with their client still there to be answered.
    pub answered: u64,
    /// Clients that went away before their answer (counted when they do).
    pub disconnected: u64,
    /// Routes that ran to completion after their client went away.
    pub finished_after_disconnect: u64,
    /// Routes cut by their deadline (rolled back), client there or not.
    pub cut_by_deadline: u64,
    /// Routes cut at the end of the shutdown grace period
    /// ([`Finish::shutdown_grace`]), rolled back and released with
    /// [`Exit::Shutdown`].
    pub cut_by_shutdown: u64,
}

impl Finish {
    /// The `finish` policy: run to completion, within `deadline` from the
    /// moment the route is called.
    pub fn within(deadline: Duration) -> Finish {
        Finish {
            deadline,
            shutdown_grace: None,
            counts: Arc::default(),
        }
    }

    /// Cuts a route still running `grace` after the registry's shutdown
    /// began ([`Registry::shutdown`](provision::Registry::shutdown)): it is
    /// dropped, rolled back and released with [`Exit::Shutdown`], and a
    /// client still there gets a 503. A finishing route runs on a task of
    /// its own, outside the server's connection, so the server cannot cut
    /// it; give it the server's own grace period, so that both end
    /// together. Without it, a route at shutdown runs to its deadline.
    pub fn shutdown_grace(mut self, grace: Duration) -> Finish {
        self.shutdown_grace = Some(grace);
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The counts of outcomes so far, shared by this value and its clones.
    pub fn outcomes(&self) -> FinishOutcomes {
        let c = &self.counts;
        FinishOutcomes {
            answered: c.answered.load(Ordering::Relaxed),
            disconnected: c.disconnected.load(Ordering::Relaxed),
            finished_after_disconnect: c.finished_after_disconnect.load(Ordering::Relaxed),
            cut_by_deadline: c.cut_by_deadline.load(Ordering::Relaxed),
            cut_by_shutdown: c.cut_by_shutdown.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Finish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finish")
            .field("deadline", &self.deadline)
            .field("outcomes", &self.outcomes())
            .finish()
    }
}

impl<S> Layer<S> for Finish {
    type Service = FinishService<S>;

    fn layer(&self, inner: S) -> FinishService<S> {
        FinishService {
            inner,
            finish: self.clone(),
        }
    }
}

/// The service made by [`Finish`].
#[derive(Clone, Debug)]
pub struct FinishService<S> {
    inner: S,
    finish: Finish,
}

/// The response future of [`FinishService`].
pub type FinishFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FinishService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = FinishFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> FinishFuture {
        // On a host without tokio (Workers), the task goes where the host
        // said (the fetch event's `wait_until`).
        let background = request.extensions().get::<Background>().cloned();
        let route = self.inner.call(request);
        let finish = self.finish.clone();
        Box::pin(async move {
            // Asked when first polled, inside the request (the layer's
            // future), not in `call`, which may run outside it.
            let Some(scope) = RequestScope::current() else {
                return route.await.map(|r| r.map(Body::new));
            };
            let registry = scope.registry().clone();
            // The route's own scope is under the request's budgets (a
            // budget layer outside this one).
            let budgets = scope.budgets();
            drop(scope);
            let (answer, answered) = oneshot::channel();
            let task = run(registry, route, finish.clone(), budgets, answer);
            match background {
                Some(background) => background.spawn(task),
                None => drop(tokio::spawn(task)),
            }
            let mut waiting = ClientWaits {
                counts: Some(finish.counts.clone()),
            };
            let response = answered
                .await
                .expect("the finishing task always answers, even when it panics");
            waiting.counts = None; // answered: the client did not leave
            Ok(response)
        })
    }
}

/// Counts a client that left while its route was still running.
struct ClientWaits {
    counts: Option<Arc<Counts>>,
}

impl Drop for ClientWaits {
    fn drop(&mut self) {
        if let Some(counts) = self.counts.take() {
            counts.disconnected.fetch_add(1, Ordering::Relaxed);
            tracing::info!("client went away; its `finish` route runs on");
        }
    }
}

/// Why a finishing route was cut.
enum Cut {
    Deadline,
    Shutdown,
}

/// The route in its own scope, to completion or its deadline; the answer
/// goes to `answer` (dropped if the client left).
async fn run<F, ResBody>(
    registry: Registry,
    route: F,
    finish: Finish,
    budgets: Vec<provision::Budget>,
    answer: oneshot::Sender<Response<Body>>,
) where
    F: Future<Output = Result<Response<ResBody>, Infallible>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    let deadline = finish.deadline;
    let mut request = Box::pin(registry.request(CatchUnwind::new(async move {
        if !budgets.is_empty()
            && let Some(scope) = RequestScope::current()
        {
            for budget in &budgets {
                scope.apply_budget(budget);
            }
        }
        // The body too: it may still use the request's services.
        let response = match route.await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(Body::new(body), usize::MAX).await {
            Ok(bytes) => Ok(Response::from_parts(parts, Body::from(bytes))),
            Err(error) => Err(error),
        }
    })));
    // The deadline needs tokio's clock; on a host without it (Workers) the
    // host's own bound on background work applies instead (`wait_until`).
    let polled = if tokio::runtime::Handle::try_current().is_ok() {
        let shutdown_cut = async {
            match finish.shutdown_grace {
                Some(grace) => {
                    registry.shutdown_begun().await;
                    tokio::time::sleep(grace).await;
                }
                None => std::future::pending().await,
            }
        };
        let mut bounded = std::pin::pin!(tokio::time::timeout(deadline, request.as_mut()));
        let mut shutdown_cut = std::pin::pin!(shutdown_cut);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(outcome) = bounded.as_mut().poll(cx) {
                return Poll::Ready(outcome.map_err(|_| Cut::Deadline));
            }
            shutdown_cut.as_mut().poll(cx).map(|()| Err(Cut::Shutdown))
        })
        .await
    } else {
        Ok(request.as_mut().await)
    };
    let scope = request.as_mut().take_scope();
    // The route's own handles go before anything is released.
    drop(request);
    let (response, exit) = match polled {
        Err(Cut::Shutdown) => {
            finish
                .counts
                .cut_by_shutdown
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "`finish` route cut at the end of the shutdown grace period; rolling back"
            );
            let response = registry.error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; try again",
            );
            (response, Exit::Shutdown)
        }
        Err(Cut::Deadline) => {
            finish
                .counts
                .cut_by_deadline
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                ?deadline,
                "`finish` route cut by its deadline; rolling back"
            );
            let response = registry.error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request did not finish within its deadline; nothing was saved",
            );
            (response, Exit::Cancelled)
        }
        Ok(Err(panic)) => {
            tracing::error!(panic = panic_message(&*panic), "handler panicked");
            let response = registry.error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the handler panicked",
            );
            (response, Exit::Panic)
        }
        Ok(Ok(Err(error))) => {
            tracing::error!(%error, "response body failed");
            let response = registry.error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the response could not be produced",
            );
            (response, Exit::Failure(StatusCode::INTERNAL_SERVER_ERROR))
        }
        Ok(Ok(Ok(response))) => {
            let exit = Exit::from_status(response.status());
            (response, exit)
        }
    };
    let (response, exit) = match &scope {
        Some(scope) if !matches!(exit, Exit::Cancelled | Exit::Panic | Exit::Shutdown) => {
            settle(scope, &registry, response, exit).await
        }
        _ => (response, exit),
    };
    if let Some(scope) = scope {
        scope.close(exit).await;
    }
    let status = response.status();
    match answer.send(response) {
        Ok(()) => {
            if !matches!(exit, Exit::Cancelled | Exit::Shutdown) {
                finish.counts.answered.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(_) if matches!(exit, Exit::Cancelled | Exit::Shutdown) => {} // counted as cut above
        Err(_) => {
            finish
                .counts
                .finished_after_disconnect
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                %status,
                exit = exit.label(),
                "`finish` route completed after its client went away"
            );
        }
    }
}

/// Settles the scope with the answer's exit; a failure replaces the answer,
/// as for any request.
async fn settle(
    scope: &RequestScope,
    registry: &Registry,
    response: Response<Body>,
    exit: Exit,
) -> (Response<Body>, Exit) {
    let failure = match CatchUnwind::new(scope.settle(exit)).await {
        Ok(Ok(())) => return (response, exit),
        Ok(Err(error)) => match error.status() {
            Some(status) => (status, error.message().to_owned()),
            None => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the request's work could not be completed".to_owned(),
            ),
        },
        Err(panic) => {
            tracing::error!(panic = panic_message(&*panic), "settle panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the request's work could not be completed".to_owned(),
            )
        }
    };
    let (status, message) = failure;
    (
        registry.error_response(status, &message),
        Exit::Failure(status),
    )
}
